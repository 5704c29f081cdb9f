package wechatpay_test

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// TestWeChatPreflight: the adapter's preflight passes with the
// credentials WeChat Pay knows and is exit 2, in one line naming WeChat Pay,
// with a merchant key it refuses; nothing but the one query is sent.
func TestWeChatPreflight(t *testing.T) {
	keys, err := wechatpaytest.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	fake := wechatpaytest.New(wechatpaytest.Options{Keys: keys, MchID: "1900000100"})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	setup := func(key *rsa.PrivateKey) *wechatpay.Adapter {
		cfg := fake.ClientConfig(srv.URL)
		cfg.PrivateKey, cfg.HTTP = key, wechatpay.NewHTTPClient(10*time.Second)
		return newAdapter(t, cfg)
	}
	ctx := context.Background()
	if err := setup(keys.MerchantPrivate).Preflight(ctx); err != nil {
		t.Fatalf("good credentials: %v", err)
	}
	err = setup(keys.PlatformPrivate).Preflight(ctx)
	if pipeline.KindOf(err) != pipeline.KindUsage || pipeline.KindOf(err).ExitCode() != 2 || !strings.HasPrefix(err.Error(), "WeChat Pay: our request signature was refused") ||
		strings.Contains(err.Error(), "\n") {
		t.Fatalf("refused merchant key: %v", err)
	}
	if n := fake.Calls(wechatpay.APIQueryOrder); n != 2 {
		t.Fatalf("%d queries, want one per preflight", n)
	}
}

// TestWeChatRefusedReceiverIsAskedOnce: where WeChat Pay refuses the
// platform's receiver, every transaction of that sub-merchant gets the
// same refusal, which is asked for once a run.
func TestWeChatRefusedReceiverIsAskedOnce(t *testing.T) {
	keys, err := wechatpaytest.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	fake := wechatpaytest.New(wechatpaytest.Options{Keys: keys, MchID: "1900000100"})
	fake.PoisonReceivers("1900000042", "PARAM_ERROR")
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	cfg := fake.ClientConfig(srv.URL)
	api := newAdapter(t, cfg)
	for range 3 {
		var we *wechatpay.Error
		if _, err := api.EnsureReceiver(context.Background(), "1900000042"); !errors.As(err, &we) || !we.Refused() || we.Code != "PARAM_ERROR" {
			t.Fatalf("refused receiver: %v", err)
		}
	}
	if n := fake.Calls(wechatpay.APIAddReceiver); n != 1 {
		t.Fatalf("%d adds, want 1", n)
	}
}

// TestWeChatReceiverUnderReviewIsAskedOnceAMinute: a receiver under
// review holds every transaction of its sub-merchant on one answer for
// ReviewRecheck; the first after it asks again, and an EFFECTIVE answer
// is kept for the run.
func TestWeChatReceiverUnderReviewIsAskedOnceAMinute(t *testing.T) {
	keys, err := wechatpaytest.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	fake := wechatpaytest.New(wechatpaytest.Options{Keys: keys, MchID: "1900000100", ReviewPolls: 1 << 20})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	api := newAdapter(t, fake.ClientConfig(srv.URL))
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	api.Now = func() time.Time { return now }
	asked := func() int { return fake.Calls(wechatpay.APIAddReceiver) + fake.Calls(wechatpay.APIReceiverResult) }
	ensure := func(want string) {
		t.Helper()
		if state, err := api.EnsureReceiver(context.Background(), "1900000042"); err != nil || state != want {
			t.Fatalf("receiver: %q, %v; want %s", state, err, want)
		}
	}
	ensure(wechatpay.ReceiverInit)
	first := asked()
	for range 5 {
		now = now.Add(10 * time.Second)
		ensure(wechatpay.ReceiverInit)
	}
	if asked() != first {
		t.Fatalf("%d more requests within a minute of the answer, want none", asked()-first)
	}
	now = now.Add(wechatpay.ReviewRecheck)
	ensure(wechatpay.ReceiverInit)
	if asked() != first+1 {
		t.Fatalf("%d requests after a minute, want one result query", asked()-first)
	}
	fake.ApproveReceivers()
	now = now.Add(wechatpay.ReviewRecheck)
	ensure(wechatpay.ReceiverEffective)
	n := asked()
	now = now.Add(time.Hour)
	ensure(wechatpay.ReceiverEffective)
	if asked() != n {
		t.Fatal("an EFFECTIVE receiver was asked again")
	}
}

// newAdapter returns the adapter of a client of cfg, paying the platform's
// receiver 1900009999.
func newAdapter(t testing.TB, cfg wechatpay.Config) *wechatpay.Adapter {
	t.Helper()
	client, err := wechatpay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return wechatpay.NewAdapter(client, wechatpay.NewReceiver{Type: wechatpay.TypeMerchantID, Account: "1900009999",
		Name: "Platform Ltd", RelationType: wechatpay.RelationDistributor})
}

// The ledger is the store of the stage and the matcher.
var _ wechatpay.ProviderStore = (*ledger.Ledger)(nil)

// TestRemainingTakesEveryNotReadyCode: Config.NotReadyCodes lists the codes
// meaning "not distributable yet" (ORDER_NOT_READY is assumed); the
// remaining-amount check knew ORDER_NOT_READY alone, so another code
// configured failed the run (exit 1) where the transaction was to wait
// (found by a review).
func TestRemainingTakesEveryNotReadyCode(t *testing.T) {
	const code = "TRADE_NOT_SETTLED"
	notYet := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, "/amounts") {
				next.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"code":%q,"message":"the transaction is not settled yet"}`, code)
		})
	}
	for _, configured := range []bool{true, false} {
		r := newRig(t, wechatpaytest.Options{}, notYet, func(c *wechatpay.Config) {
			if configured {
				c.NotReadyCodes = []string{wechatpay.CodeOrderNotReady, code}
			}
		})
		api := wechatpay.NewAdapter(r.client, wechatpay.NewReceiver{Type: wechatpay.TypeMerchantID, Account: "1900009999",
			Name: "Platform Ltd", RelationType: wechatpay.RelationDistributor})
		_, err := api.Remaining(context.Background(), subMchID, "T1")
		if errors.Is(err, wechatpay.ErrNotReady) != configured {
			t.Fatalf("%s answered, configured as not ready %v: %v", code, configured, err)
		}
	}
}
