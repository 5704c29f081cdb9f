package wechatpay_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/settlekit/settle/load/wechatpay"
)

// acceptedOnly returns a wrapper that answers the first n calls whose
// path ends in suffix with WeChat Pay's signed HTTP 202 Accepted and no
// body, without passing them on (accepted, not processed yet); asked
// counts those calls.
func acceptedOnly(t *testing.T, suffix string, n int32, asked *atomic.Int32) func(http.Handler) http.Handler {
	keys := testKeys(t)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, suffix) || asked.Add(1) > n {
				next.ServeHTTP(w, r)
				return
			}
			ts, nonce := strconv.FormatInt(newClock().Now().Unix(), 10), "ACCEPTEDNONCE"
			sig, err := wechatpay.Sign(keys.PlatformPrivate, wechatpay.ResponseMessage(ts, nonce, nil))
			if err != nil {
				t.Error(err)
			}
			h := w.Header()
			h.Set(wechatpay.HeaderSerial, keys.PlatformSerial)
			h.Set(wechatpay.HeaderTimestamp, ts)
			h.Set(wechatpay.HeaderNonce, nonce)
			h.Set(wechatpay.HeaderSignature, sig)
			h.Set(wechatpay.HeaderRequestID, "accepted")
			w.WriteHeader(http.StatusAccepted)
		})
	}
}

// TestAcceptedIsAskedAgain: WeChat Pay Global publishes HTTP 202 as
// "服务器已接受请求,但尚未处理 - 请使用原参数重复请求一遍" (accepted, not
// processed yet: send the same request again with the same parameters;
// pay.weixin.qq.com/doc/global/v3/zh/4012354972, "HTTP状态码"). A query so
// answered was read as an answer that cannot be read (ErrAnswer,
// Unreadable): its transaction held for a person, as if WeChat Pay had
// said something wrong about it. A query is asked again; a distribution
// (idempotent by out_order_no) is sent again with the same parameters; one
// that never gets past 202 is unknown, resolved by its query, never
// refused nor "not taken".
func TestAcceptedIsAskedAgain(t *testing.T) {
	ctx := context.Background()

	var asked atomic.Int32
	r := newRig(t, faults(), acceptedOnly(t, "/amounts", 1, &asked), nil)
	payable(r)
	if u, err := r.client.RemainingAmount(ctx, subMchID, "T1"); err != nil || u.Amount != 100_00 || asked.Load() != 2 {
		t.Fatalf("a query answered 202 once: %+v, %v after %d calls; want WeChat Pay's answer, asked again", u, err, asked.Load())
	}

	asked.Store(0)
	r = newRig(t, faults(), acceptedOnly(t, "/orders/WXD-202", 1, &asked), nil)
	payable(r)
	if _, err := r.client.Distribute(ctx, distribution("WXD-202", 1_00)); err != nil {
		t.Fatal(err)
	}
	if o, err := r.client.QueryOrder(ctx, subMchID, "T1", "WXD-202"); err != nil || o.OrderID == "" || asked.Load() != 2 {
		t.Fatalf("an order query answered 202 once: %+v, %v after %d calls; want WeChat Pay's answer, asked again", o, err, asked.Load())
	}

	asked.Store(0)
	r = newRig(t, faults(), acceptedOnly(t, "/profit-sharing/orders", 1, &asked), nil)
	payable(r)
	if o, err := r.client.Distribute(ctx, distribution("WXD-202", 1_00)); err != nil || o.OrderID == "" || asked.Load() != 2 ||
		r.fake.Distributed("T1") != 1_00 {
		t.Fatalf("a distribution answered 202 once: %+v, %v after %d sends, %d distributed; want it sent again under its out_order_no, once applied",
			o, err, asked.Load(), r.fake.Distributed("T1"))
	}

	asked.Store(0)
	r = newRig(t, faults(), acceptedOnly(t, "/profit-sharing/orders", 1<<20, &asked), nil)
	payable(r)
	_, err := r.client.Distribute(ctx, distribution("WXD-202", 1_00))
	var we *wechatpay.Error
	if !errors.Is(err, wechatpay.ErrUnknownOutcome) || !errors.As(err, &we) || we.Refused() || we.Unreadable() || we.HTTPStatus != http.StatusAccepted {
		t.Fatalf("a distribution never past 202: %v; want an unknown outcome naming HTTP 202, neither refused nor unreadable", err)
	}

	asked.Store(0)
	r = newRig(t, faults(), acceptedOnly(t, "/amounts", 1<<20, &asked), nil)
	payable(r)
	_, err = r.client.RemainingAmount(ctx, subMchID, "T1")
	if !errors.As(err, &we) || we.Unreadable() || !we.Transient() {
		t.Fatalf("a query never past 202: %v; want a transient failure, not an answer that cannot be read", err)
	}
}
