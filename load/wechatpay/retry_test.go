package wechatpay_test

import (
	"cmp"
	"context"
	"crypto/rsa"
	"errors"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
)

// payable makes T1 (100.00 CNY) distributable to the platform.
func payable(r *rig) {
	r.fake.AddTransaction(subMchID, "T1", "CNY", 100_00)
	r.fake.SetReceiver(subMchID, wechatpay.TypeMerchantID, mchID, wechatpay.ReceiverEffective)
}

func TestQueriesRetryTransientFailures(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []fault.Kind{fault.ServerError, fault.Unavailable, fault.Reset, fault.Lost} {
		r := newRig(t, faults(fault.Rule{Endpoint: wechatpay.APIAmounts, Kind: kind, Calls: []int{1, 2}}), nil, nil)
		payable(r)
		if u, err := r.client.RemainingAmount(ctx, subMchID, "T1"); err != nil || u.Amount != 100_00 {
			t.Fatalf("%s: %+v, %v", kind, u, err)
		}
		if n := r.fake.Calls(wechatpay.APIAmounts); n != 3 {
			t.Fatalf("%s: %d calls, want 3", kind, n)
		}
	}
}

func TestRetriesAreBounded(t *testing.T) {
	r := newRig(t, faults(fault.Rule{Endpoint: "*", Kind: fault.ServerError, Prob: 1}), nil, nil)
	_, err := r.client.QueryOrder(context.Background(), subMchID, "T1", "D-1")
	var we *wechatpay.Error
	if !errors.As(err, &we) || we.Code != wechatpay.CodeSystemError || we.HTTPStatus != 500 || !we.Transient() || we.API != wechatpay.APIQueryOrder || we.Key != "D-1" {
		t.Fatalf("err = %v", err)
	}
	if n := r.fake.Calls(wechatpay.APIQueryOrder); n != 5 {
		t.Fatalf("%d calls, want 1 + MaxRetries (4)", n)
	}
	// Cancelling stops the retries.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	r = newRig(t, faults(fault.Rule{Endpoint: "*", Kind: fault.ServerError, Prob: 1}), nil, func(c *wechatpay.Config) {
		c.RetryBase, c.RetryMax, c.MaxRetries = time.Hour, time.Hour, 100
	})
	start := time.Now()
	if _, err := r.client.QueryOrder(ctx, subMchID, "T1", "D-1"); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("cancelled: %v after %s", err, time.Since(start))
	}
	if n := r.fake.Calls(wechatpay.APIQueryOrder); n > 1 {
		t.Fatalf("%d calls after cancelling", n)
	}
}

func TestTooManyHonoursRetryAfter(t *testing.T) {
	r := newRig(t, faults(fault.Rule{Endpoint: wechatpay.APIOrders, Kind: fault.TooMany, Calls: []int{1}}), nil, nil)
	payable(r)
	start := time.Now()
	if _, err := r.client.Distribute(context.Background(), distribution("D-1", 100)); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < time.Second || r.fake.Calls(wechatpay.APIOrders) != 2 || r.fake.Count429() != 1 || r.fake.Requests("T1") != 1 {
		t.Fatalf("429 then retry after 1s: %s, %d calls, %d 429s", time.Since(start), r.fake.Calls(wechatpay.APIOrders), r.fake.Count429())
	}
	// A Retry-After longer than we wait for ends the call.
	r = newRig(t, faults(fault.Rule{Endpoint: wechatpay.APIOrders, Kind: fault.TooMany, Calls: []int{1}}), nil,
		func(c *wechatpay.Config) { c.MaxRetryAfter = 100 * time.Millisecond })
	payable(r)
	var we *wechatpay.Error
	if _, err := r.client.Distribute(context.Background(), distribution("D-1", 100)); !errors.As(err, &we) || we.RetryAfter != time.Second ||
		we.Code != wechatpay.CodeFrequencyLimited || errors.Is(err, wechatpay.ErrUnknownOutcome) {
		t.Fatalf("long Retry-After: %v", err)
	}
}

func TestPermanentErrorsAreNotRetried(t *testing.T) {
	// Signed with a key WeChat Pay does not know: 401 SIGN_ERROR, definite,
	// and a configuration error (exit 2) in one line naming WeChat Pay.
	other := testKeys(t).PlatformPrivate
	r := newRig(t, wechatpaytest.Options{}, nil, func(c *wechatpay.Config) { c.PrivateKey = other })
	_, err := r.client.RemainingAmount(context.Background(), subMchID, "T1")
	var we *wechatpay.Error
	if !errors.As(err, &we) || we.Code != wechatpay.CodeSignError || we.Transient() || we.Refused() ||
		pipeline.KindOf(err) != pipeline.KindUsage || !strings.HasPrefix(err.Error(), "WeChat Pay: our request signature was refused") ||
		strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v", err)
	}
	noSecrets(t, err)
	if n := r.fake.Calls(wechatpay.APIAmounts); n != 1 {
		t.Fatalf("SIGN_ERROR was retried: %d calls", n)
	}
}

// TestDistributionLostAnswerIsUnknownNotResent: the request was applied,
// the answer lost. The client reports ErrUnknownOutcome and sends nothing
// more; the query finds the order.
func TestDistributionLostAnswerIsUnknownNotResent(t *testing.T) {
	ctx := context.Background()
	for _, api := range []string{wechatpay.APIOrders, wechatpay.APIUnfreeze} {
		r := newRig(t, faults(fault.Rule{Endpoint: api, Kind: fault.Lost, Calls: []int{1}}), nil, nil)
		payable(r)
		var err error
		if api == wechatpay.APIOrders {
			_, err = r.client.Distribute(ctx, distribution("D-LOST", 30_00))
		} else {
			_, err = r.client.Unfreeze(ctx, wechatpay.Unfreeze{SubMchID: subMchID, TransactionID: "T1", OutOrderNo: "D-LOST", Description: "rest"})
		}
		if !errors.Is(err, wechatpay.ErrUnknownOutcome) || !strings.Contains(err.Error(), "wechatpay "+api+" D-LOST") {
			t.Fatalf("%s lost answer: %v, want ErrUnknownOutcome naming the API and out_order_no", api, err)
		}
		if n := r.fake.Calls(api); n != 1 {
			t.Fatalf("%s: a money request with a lost answer was sent %d times", api, n)
		}
		o, err := r.client.QueryOrder(ctx, subMchID, "T1", "D-LOST")
		if err != nil || o.State != wechatpay.StateProcessing || r.fake.Requests("T1") != 1 {
			t.Fatalf("%s: query after the lost answer: %+v, %v", api, o, err)
		}
	}
}

// TestDistributionResetIsUnknownAndNotApplied: the connection dropped
// before WeChat Pay applied anything. Still unknown to us; the query says
// not found, and then the same key may go again.
func TestDistributionResetIsUnknownAndNotApplied(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, faults(fault.Rule{Endpoint: wechatpay.APIOrders, Kind: fault.Reset, Calls: []int{1}}), nil, nil)
	payable(r)
	if _, err := r.client.Distribute(ctx, distribution("D-1", 100)); !errors.Is(err, wechatpay.ErrUnknownOutcome) {
		t.Fatalf("reset: %v", err)
	}
	if n := r.fake.Calls(wechatpay.APIOrders); n != 1 {
		t.Fatalf("sent %d times", n)
	}
	if _, err := r.client.QueryOrder(ctx, subMchID, "T1", "D-1"); !errors.Is(err, wechatpay.ErrNotFound) {
		t.Fatalf("query: %v, want ErrNotFound", err)
	}
	if o, err := r.client.Distribute(ctx, distribution("D-1", 100)); err != nil || o.State != wechatpay.StateProcessing {
		t.Fatalf("resend: %+v, %v", o, err)
	}
}

// SYSTEM_ERROR means "retry with the same parameters"; the same
// out_order_no makes that safe. When it persists, the outcome is unknown.
func TestDistributionSystemErrorRetriedWithTheSameKey(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, faults(fault.Rule{Endpoint: wechatpay.APIOrders, Kind: fault.ServerError, Calls: []int{1}}), nil, nil)
	payable(r)
	if _, err := r.client.Distribute(ctx, distribution("D-1", 100)); err != nil {
		t.Fatal(err)
	}
	if r.fake.Calls(wechatpay.APIOrders) != 2 || r.fake.Requests("T1") != 1 || r.fake.Distributed("T1") != 100 {
		t.Fatal("retried once, applied once")
	}
	r = newRig(t, faults(fault.Rule{Endpoint: wechatpay.APIOrders, Kind: fault.ServerError, Prob: 1}), nil, nil)
	payable(r)
	_, err := r.client.Distribute(ctx, distribution("D-1", 100))
	var we *wechatpay.Error
	if !errors.Is(err, wechatpay.ErrUnknownOutcome) || !errors.As(err, &we) || we.Code != wechatpay.CodeSystemError {
		t.Fatalf("persistent SYSTEM_ERROR: %v", err)
	}
	// Cancelled while waiting to resend: still unknown, and the message
	// says so (it goes into logs and reports).
	r = newRig(t, faults(fault.Rule{Endpoint: wechatpay.APIOrders, Kind: fault.ServerError, Prob: 1}), nil, func(c *wechatpay.Config) {
		c.RetryBase, c.RetryMax, c.MaxRetries = time.Hour, time.Hour, 100
	})
	payable(r)
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = r.client.Distribute(cctx, distribution("D-1", 100))
	if !errors.Is(err, wechatpay.ErrUnknownOutcome) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), wechatpay.ErrUnknownOutcome.Error()) {
		t.Fatalf("cancelled after SYSTEM_ERROR: %v", err)
	}
}

func TestAddReceiverLostAnswerIsUnknown(t *testing.T) {
	r := newRig(t, faults(fault.Rule{Endpoint: wechatpay.APIAddReceiver, Kind: fault.Lost, Calls: []int{1}}), nil, nil)
	_, err := r.client.AddReceiver(context.Background(), wechatpay.NewReceiver{SubMchID: subMchID, Type: wechatpay.TypePersonalOpenID,
		Account: "of8YZ6LPmjDmYAqdobIvwTdQQjR8", RelationType: wechatpay.RelationSupplier})
	if !errors.Is(err, wechatpay.ErrUnknownOutcome) || r.fake.Calls(wechatpay.APIAddReceiver) != 1 {
		t.Fatalf("lost add: %v", err)
	}
	if st, err := r.client.ReceiverResult(context.Background(), wechatpay.ReceiverRef{SubMchID: subMchID, AppID: "wx8888888888888888",
		Type: wechatpay.TypePersonalOpenID, Account: "of8YZ6LPmjDmYAqdobIvwTdQQjR8"}); err != nil || st.State != wechatpay.ReceiverInit {
		t.Fatalf("resolved by the result query: %+v, %v", st, err)
	}
}

func TestStuckOrderStaysProcessing(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, faults(fault.Rule{Endpoint: wechatpay.APIQueryOrder, Kind: fault.Stuck, Calls: []int{1}, Polls: 3}), nil, nil)
	payable(r)
	if _, err := r.client.Distribute(ctx, distribution("D-1", 100)); err != nil {
		t.Fatal(err)
	}
	for i := range 6 { // 2 polls + 3 stuck + the final answer
		o, err := r.client.QueryOrder(ctx, subMchID, "T1", "D-1")
		if want := i == 5; err != nil || (o.State == wechatpay.StateFinished) != want {
			t.Fatalf("poll %d: %+v, %v", i+1, o, err)
		}
	}
}

// A distribution whose answer does not come within the per-attempt
// timeout is unknown: WeChat Pay may still apply it (the fake does). The
// timeout leaves a second to reach the fake, however busy the machine.
func TestDistributionTimeoutIsUnknown(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, faults(fault.Rule{Endpoint: wechatpay.APIOrders, Kind: fault.Latency, Calls: []int{1}, Delay: 3 * time.Second}), nil,
		func(c *wechatpay.Config) { c.Timeout = time.Second })
	payable(r)
	if _, err := r.client.Distribute(ctx, distribution("D-SLOW", 100)); !errors.Is(err, wechatpay.ErrUnknownOutcome) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: %v", err)
	}
	if n := r.fake.Calls(wechatpay.APIOrders); n != 1 {
		t.Fatalf("sent %d times", n)
	}
}

func TestBillDownloadErrorsHideTheToken(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, faults(fault.Rule{Endpoint: wechatpay.APIBill, Kind: fault.Reset, Prob: 1}), nil, nil)
	b, err := r.client.BillDownloadURL(ctx, subMchID, pipelineDate(2025, 9, 3))
	if err != nil || !strings.Contains(b.URL, "token=") {
		t.Fatalf("BillDownloadURL = %+v, %v", b, err)
	}
	_, err = r.client.DownloadBill(ctx, b)
	var we *wechatpay.Error
	if !errors.As(err, &we) || !we.Transient() || strings.Contains(err.Error(), "token") || r.fake.Calls(wechatpay.APIBill) < 5 {
		t.Fatalf("download through resets: %v (%d calls)", err, r.fake.Calls(wechatpay.APIBill))
	}
}

// A receiver add whose answer was lost is resolved by the receiver result
// query, locally: applied (lost), it is found; never applied (reset), it is
// sent once more. Neither fails the caller.
func TestEnsureReceiverResolvesALostAdd(t *testing.T) {
	for _, kind := range []fault.Kind{fault.Lost, fault.Reset} {
		t.Run(string(kind), func(t *testing.T) {
			r := newRig(t, faults(fault.Rule{Endpoint: wechatpay.APIAddReceiver, Kind: kind, Calls: []int{1}}), nil, nil)
			nr := wechatpay.NewReceiver{SubMchID: subMchID, Type: wechatpay.TypeMerchantID, Account: mchID, Name: "Platform Ltd",
				RelationType: wechatpay.RelationDistributor}
			st, err := r.client.EnsureReceiver(context.Background(), nr)
			wantAdds := map[fault.Kind]int{fault.Lost: 1, fault.Reset: 2}[kind]
			if err != nil || st.State != wechatpay.ReceiverInit || r.fake.Calls(wechatpay.APIAddReceiver) != wantAdds {
				t.Fatalf("EnsureReceiver = %+v, %v after %d adds; want INIT after %d", st, err, r.fake.Calls(wechatpay.APIAddReceiver), wantAdds)
			}
			if state, _, found := r.fake.Receiver(subMchID, wechatpay.TypeMerchantID, mchID); !found || state != wechatpay.ReceiverInit {
				t.Fatalf("at the fake: %s %v", state, found)
			}
			// Known now: no add at all.
			if st, err := r.client.EnsureReceiver(context.Background(), nr); err != nil || st.State == "" ||
				r.fake.Calls(wechatpay.APIAddReceiver) != wantAdds {
				t.Fatalf("again: %+v, %v", st, err)
			}
		})
	}
}

// Preflight: good credentials pass with one query; a merchant key WeChat
// Pay refuses, a platform key that does not verify its answers, or a URL
// that is not WeChat Pay's are configuration errors (exit 2), in one line
// naming WeChat Pay, sent once.
func TestPreflight(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, wechatpaytest.Options{}, nil, nil)
	if err := r.client.Preflight(ctx); err != nil || r.fake.Calls(wechatpay.APIQueryOrder) != 1 {
		t.Fatalf("good credentials: %v (%d calls)", err, r.fake.Calls(wechatpay.APIQueryOrder))
	}
	k := testKeys(t)
	for name, tc := range map[string]struct {
		mod  func(*wechatpay.Config)
		wrap func(http.Handler) http.Handler
		want string
	}{
		"merchant key": {mod: func(c *wechatpay.Config) { c.PrivateKey = k.PlatformPrivate }, want: "our request signature was refused"},
		"platform key": {mod: func(c *wechatpay.Config) { c.PlatformKeys[platformSerial] = &k.MerchantPrivate.PublicKey }, want: "does not verify with our platform key"},
		"platform serial": {mod: func(c *wechatpay.Config) {
			c.PlatformKeys = map[string]*rsa.PublicKey{"PUB_KEY_ID_OTHER": &k.PlatformPrivate.PublicKey}
			c.EncryptSerial = ""
		}, want: "signed with a platform key we do not hold (check --wechat-platform-serial"},
		"not WeChat Pay": {wrap: func(http.Handler) http.Handler { return http.NotFoundHandler() }, want: "not WeChat Pay's API"},
	} {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, wechatpaytest.Options{}, tc.wrap, func(c *wechatpay.Config) {
				c.PlatformKeys = maps.Clone(c.PlatformKeys)
				if tc.mod != nil {
					tc.mod(c)
				}
			})
			err := r.client.Preflight(ctx)
			if pipeline.KindOf(err) != pipeline.KindUsage || !strings.HasPrefix(err.Error(), "WeChat Pay: ") || !strings.Contains(err.Error(), tc.want) ||
				strings.Contains(err.Error(), "\n") || r.fake.Calls(wechatpay.APIQueryOrder) > 1 {
				t.Fatalf("%v (%d calls)", err, r.fake.Calls(wechatpay.APIQueryOrder))
			}
			noSecrets(t, err)
		})
	}
}

// TestReAddReceiverAfterAFailedReview: WeChat Pay publishes that a
// receiver whose review failed is added again (with new materials), while
// an INIT or EFFECTIVE one cannot be. The fake refused every second add
// and the client had no way to add one again: EnsureReceiver returned the
// failed state, and settle receivers add printed it as "added". The
// nightly EnsureReceiver still leaves it to a person; ReAddReceiver adds
// it again once, resolving a lost answer by the result query.
func TestReAddReceiverAfterAFailedReview(t *testing.T) {
	for _, kind := range []fault.Kind{"", fault.Lost, fault.Reset} {
		t.Run(cmp.Or(string(kind), "answered"), func(t *testing.T) {
			o := wechatpaytest.Options{ReviewPolls: 1 << 20}
			if kind != "" {
				o = faults(fault.Rule{Endpoint: wechatpay.APIAddReceiver, Kind: kind, Calls: []int{1}})
				o.ReviewPolls = 1 << 20
			}
			r := newRig(t, o, nil, nil)
			ctx := context.Background()
			nr := wechatpay.NewReceiver{SubMchID: subMchID, Type: wechatpay.TypeMerchantID, Account: mchID, Name: "Platform Ltd",
				RelationType: wechatpay.RelationDistributor}
			r.fake.SetReceiver(subMchID, wechatpay.TypeMerchantID, mchID, "FAILED")
			if st, err := r.client.EnsureReceiver(ctx, nr); err != nil || st.State != "FAILED" || !wechatpay.ReviewFailed(st.State) ||
				r.fake.Calls(wechatpay.APIAddReceiver) != 0 {
				t.Fatalf("EnsureReceiver = %+v, %v after %d adds: want the failed review shown, nothing added", st, err, r.fake.Calls(wechatpay.APIAddReceiver))
			}
			st, added, err := r.client.ReAddReceiver(ctx, nr)
			wantAdds := map[fault.Kind]int{"": 1, fault.Lost: 1, fault.Reset: 2}[kind]
			if err != nil || !added || st.State != wechatpay.ReceiverInit || r.fake.Calls(wechatpay.APIAddReceiver) != wantAdds {
				t.Fatalf("ReAddReceiver = %+v, added %v, %v after %d adds; want INIT after %d", st, added, err, r.fake.Calls(wechatpay.APIAddReceiver), wantAdds)
			}
			if state, _, found := r.fake.Receiver(subMchID, wechatpay.TypeMerchantID, mchID); !found || state != wechatpay.ReceiverInit {
				t.Fatalf("at the fake: %s %v", state, found)
			}
			// Under review now: nothing is added again.
			if st, added, err := r.client.ReAddReceiver(ctx, nr); err != nil || added || st.State != wechatpay.ReceiverInit || r.fake.Calls(wechatpay.APIAddReceiver) != wantAdds {
				t.Fatalf("again: %+v, added %v, %v after %d adds", st, added, err, r.fake.Calls(wechatpay.APIAddReceiver))
			}
		})
	}
}

// TestClockSkewIsNamed: on a machine whose clock is 6 minutes off WeChat
// Pay's, WeChat Pay refuses every request's timestamp (401 SIGN_ERROR, in
// an answer signed 6 minutes away from our clock). That was reported as
// "our request signature was refused (check the merchant id, our
// certificate serial and our API private key)", sending an operator to
// rotate keys that are right. It names the clock, is exit 2, and a
// distribution so answered is unknown, never failed (asked about again).
func TestClockSkewIsNamed(t *testing.T) {
	ctx := context.Background()
	for _, skew := range []time.Duration{6 * time.Minute, -6 * time.Minute} {
		t.Run(skew.String(), func(t *testing.T) {
			clock := newClock()
			r := newRig(t, wechatpaytest.Options{Now: func() time.Time { return clock.Now().Add(skew) }}, nil, func(c *wechatpay.Config) { c.Now = clock.Now })
			err := r.client.Preflight(ctx)
			if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "clock skew") ||
				strings.Contains(err.Error(), "--wechat-private-key-file") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("preflight: %v", err)
			}
			_, err = r.client.Distribute(ctx, distribution("WXD-20250903-S1-1", 20_00))
			if !errors.Is(err, wechatpay.ErrUnknownOutcome) || pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "clock skew") {
				t.Fatalf("distribution: %v", err)
			}
		})
	}
}

// TestNoAnswerIsToldFromAnAnswerThatSaysError: a call whose last attempt
// got no answer at all (a connection reset, none made) is
// pipeline.ErrNoAnswer, which the engine counts towards WeChat Pay not
// answering; one WeChat Pay answered with an error (SYSTEM_ERROR to the
// end, 503) is not.
func TestNoAnswerIsToldFromAnAnswerThatSaysError(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		kind     fault.Kind
		noAnswer bool
	}{{fault.Reset, true}, {fault.Unavailable, false}, {fault.ServerError, false}} {
		r := newRig(t, faults(fault.Rule{Endpoint: "*", Kind: c.kind, Prob: 1}), nil, nil)
		_, err := r.client.QueryOrder(ctx, subMchID, "T1", "D-1")
		if err == nil || errors.Is(err, pipeline.ErrNoAnswer) != c.noAnswer {
			t.Errorf("%s: %v, no answer %v; want %v", c.kind, err, errors.Is(err, pipeline.ErrNoAnswer), c.noAnswer)
		}
	}
	r := newRig(t, wechatpaytest.Options{}, nil, nil)
	r.srv.Close() // nothing listens: no connection made
	if _, err := r.client.QueryOrder(ctx, subMchID, "T1", "D-1"); !errors.Is(err, pipeline.ErrNoAnswer) {
		t.Errorf("no server: %v, want no answer", err)
	}
}
