package wechatpay_test

import (
	"context"
	"crypto/rsa"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
)

// proxyPage returns a wrapper that lets the fake answer (and apply) the
// first n calls whose path contains path, and answers them with a proxy's
// page instead: HTTP 200, the given Content-Type, and WeChat Pay's
// signature headers only when signed (they then no longer match the body).
func proxyPage(path string, n int32, contentType string, signed bool) func(http.Handler) http.Handler {
	var seen atomic.Int32
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.Contains(r.URL.Path, path) || seen.Add(1) > n {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			if signed {
				for k, v := range rec.Header() {
					if strings.HasPrefix(strings.ToLower(k), "wechatpay-") {
						w.Header()[k] = v
					}
				}
			}
			w.Header().Set("Content-Type", contentType)
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("<html><body>upstream hiccup</body></html>"))
		})
	}
}

// TestAnAnswerNotWeChatPaysIsNoConfigurationError: a query answered once
// with a proxy's 200 page (no WeChat Pay signature headers, or not JSON)
// stopped the run as a configuration error, exit 2, "check the platform
// public key". Such an answer is a transport problem: a query is asked
// again, a money request's outcome is unknown (resolved by query), and a
// query that never gets WeChat Pay's answer fails as one that may pass
// later. An answer with WeChat Pay's headers and a JSON body that does not
// verify is still our platform key's problem (TestPreflight), and a
// preflight that never reaches WeChat Pay names its URL.
func TestAnAnswerNotWeChatPaysIsNoConfigurationError(t *testing.T) {
	ctx := context.Background()
	for name, tc := range map[string]struct {
		contentType string
		signed      bool
	}{
		"html page":         {"text/html; charset=utf-8", false},
		"json, no headers":  {"application/json", false},
		"html with headers": {"text/html", true},
	} {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, faults(), proxyPage("/amounts", 1, tc.contentType, tc.signed), nil)
			r.fake.AddTransaction(subMchID, "T1", "CNY", 1000)
			if u, err := r.client.RemainingAmount(ctx, subMchID, "T1"); err != nil || u.Amount != 1000 || r.fake.Calls(wechatpay.APIAmounts) != 2 {
				t.Fatalf("a query answered once by a proxy: %+v, %v after %d calls; want WeChat Pay's answer, asked again", u, err, r.fake.Calls(wechatpay.APIAmounts))
			}

			r = newRig(t, faults(), proxyPage("/amounts", 1<<20, tc.contentType, tc.signed), nil)
			r.fake.AddTransaction(subMchID, "T1", "CNY", 1000)
			_, err := r.client.RemainingAmount(ctx, subMchID, "T1")
			var we *wechatpay.Error
			if pipeline.KindOf(err) == pipeline.KindUsage || !errors.Is(err, wechatpay.ErrNotWeChat) || errors.Is(err, wechatpay.ErrSignature) ||
				!errors.As(err, &we) || !we.Transient() || strings.Contains(err.Error(), "platform") {
				t.Fatalf("a query only a proxy answers: %v (kind %v); want a transient failure, not our keys", err, pipeline.KindOf(err))
			}

			r = newRig(t, faults(), proxyPage("/orders", 1, tc.contentType, tc.signed), nil)
			payable(r)
			_, err = r.client.Distribute(ctx, distribution("WXD-PROXY", 1_00))
			if pipeline.KindOf(err) == pipeline.KindUsage || !errors.Is(err, wechatpay.ErrUnknownOutcome) || !errors.Is(err, wechatpay.ErrNotWeChat) ||
				r.fake.Calls(wechatpay.APIOrders) != 1 {
				t.Fatalf("a distribution answered by a proxy: %v (kind %v) after %d sends; want unknown, sent once", err, pipeline.KindOf(err), r.fake.Calls(wechatpay.APIOrders))
			}
			if o, err := r.client.QueryOrder(ctx, subMchID, "T1", "WXD-PROXY"); err != nil || o.OrderID == "" {
				t.Fatalf("its query: %+v, %v; want the distribution WeChat Pay took", o, err)
			}

			r = newRig(t, faults(), proxyPage("/orders/", 1<<20, tc.contentType, tc.signed), nil)
			if err := r.client.Preflight(ctx); pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "check its URL") {
				t.Fatalf("a preflight only a proxy answers: %v (kind %v); want a configuration error naming the URL", err, pipeline.KindOf(err))
			}
		})
	}

	// WeChat Pay's own answer, with its headers, that our platform key
	// does not verify: our configuration, as before.
	r := newRig(t, faults(), nil, func(c *wechatpay.Config) {
		c.PlatformKeys = map[string]*rsa.PublicKey{platformSerial: &testKeys(t).MerchantPrivate.PublicKey}
	})
	r.fake.AddTransaction(subMchID, "T1", "CNY", 1000)
	if _, err := r.client.RemainingAmount(ctx, subMchID, "T1"); pipeline.KindOf(err) != pipeline.KindUsage ||
		!strings.Contains(err.Error(), "check the platform public key") || errors.Is(err, wechatpay.ErrNotWeChat) {
		t.Fatalf("WeChat Pay's answer our platform key does not verify: %v (kind %v); want a configuration error", err, pipeline.KindOf(err))
	}
}
