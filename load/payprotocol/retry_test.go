package payprotocol_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
	"github.com/settlekit/settle/pipeline"
)

func faults(rules ...fault.Rule) payprotocoltest.Options {
	return payprotocoltest.Options{Faults: fault.New(7, rules...)}
}

var usdOrder = payprotocol.PaymentOrder{ChainID: 1, Description: "order T-1", OutTradeNo: "T-1", IsLegalTender: true,
	QuoteCurrency: "USD", QuoteAmount: 1234, NotifyURL: "https://shop.example/hooks/pp"}

// paid adds a paid USDT payment for T-1 to the fake.
func paid(t *testing.T, r *rig) {
	t.Helper()
	if _, err := r.fake.AddPayment("T-1", "USDT", 6, "12340000", payprotocol.PaymentPaid); err != nil {
		t.Fatal(err)
	}
}

func TestQueriesAndNotifyRetryTransientFailures(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []fault.Kind{fault.ServerError, fault.Unavailable, fault.Reset, fault.Lost} {
		for _, api := range []string{payprotocol.APIPaymentDetail, payprotocol.APIRefundDetail, payprotocol.APINotifyPayment, payprotocol.APINotifyRefund} {
			r := newRig(t, faults(fault.Rule{Endpoint: api, Kind: kind, Calls: []int{1, 2}}), nil)
			paid(t, r)
			if _, err := r.client.CreateRefundOrder(ctx, payprotocol.RefundOrder{OutTradeNo: "T-1"}); err != nil {
				t.Fatal(err)
			}
			var err error
			switch api {
			case payprotocol.APIPaymentDetail:
				_, err = r.client.PaymentDetail(ctx, "T-1", "")
			case payprotocol.APIRefundDetail:
				_, err = r.client.RefundDetail(ctx, "T-1", "")
			case payprotocol.APINotifyPayment:
				err = r.client.NotifyPayment(ctx, "T-1")
			case payprotocol.APINotifyRefund:
				err = r.client.NotifyRefund(ctx, "T-1", "")
			}
			if err != nil {
				t.Fatalf("%s %s: %v", kind, api, err)
			}
			if n := r.fake.Calls(api); n != 3 {
				t.Fatalf("%s %s: %d calls, want 3", kind, api, n)
			}
		}
	}
}

func TestRetriesAreBounded(t *testing.T) {
	r := newRig(t, faults(fault.Rule{Endpoint: "*", Kind: fault.ServerError, Prob: 1}), nil)
	_, err := r.client.PaymentDetail(context.Background(), "T-1", "")
	var pe *payprotocol.Error
	if !errors.As(err, &pe) || pe.Code != payprotocol.CodeSystemError || pe.HTTPStatus != http.StatusInternalServerError ||
		!pe.Transient() || pe.API != payprotocol.APIPaymentDetail || pe.OutTradeNo != "T-1" {
		t.Fatalf("err = %v", err)
	}
	if n := r.fake.Calls(payprotocol.APIPaymentDetail); n != 5 {
		t.Fatalf("%d calls, want 1 + MaxRetries (4)", n)
	}
	// Cancelling stops the retries, and the error still names the last
	// answer. The deadline falls in the hour-long backoff after the first
	// answer; it leaves that answer two seconds, which load does not cross.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r = newRig(t, faults(fault.Rule{Endpoint: "*", Kind: fault.ServerError, Prob: 1}), func(c *payprotocol.Config) {
		c.RetryBase, c.RetryMax, c.MaxRetries = time.Hour, time.Hour, 100
	})
	start := time.Now()
	if _, err := r.client.PaymentDetail(ctx, "T-1", ""); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "code 500") || time.Since(start) > time.Minute {
		t.Fatalf("cancelled: %v after %s", err, time.Since(start))
	}
	if n := r.fake.Calls(payprotocol.APIPaymentDetail); n != 1 {
		t.Fatalf("%d calls, want 1", n)
	}
}

// TestAuthFailuresAreNotRetried: a wrong secret or a clock more than 60 s
// off is refused by the fake with code 401, once. The two clocks are fixed
// (a whole second apart from the limit), so that load never moves a
// request across it.
func TestAuthFailuresAreNotRetried(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	clock := func(off time.Duration) func(*payprotocol.Config) {
		return func(c *payprotocol.Config) { c.Now = func() time.Time { return at.Add(off) } }
	}
	for name, mod := range map[string]func(*payprotocol.Config){
		"wrong secret": func(c *payprotocol.Config) { clock(0)(c); c.APISecret = "not-the-secret" },
		"wrong key":    func(c *payprotocol.Config) { clock(0)(c); c.APIKey = "someone-else" },
		"slow clock":   clock(-61 * time.Second),
		"fast clock":   clock(61 * time.Second),
	} {
		r := newRig(t, payprotocoltest.Options{Now: func() time.Time { return at }}, mod)
		paid(t, r)
		_, err := r.client.PaymentDetail(context.Background(), "T-1", "")
		var pe *payprotocol.Error
		if !errors.As(err, &pe) || !errors.Is(err, payprotocol.ErrUnauthorized) || pe.Code != payprotocol.CodeUnauthorized ||
			pe.HTTPStatus != http.StatusUnauthorized || pe.Transient() || !strings.Contains(pe.Message, "invalid sign") {
			t.Fatalf("%s: %v", name, err)
		}
		noSecret(t, name, err)
		// Refused credentials are configuration: exit 2, one line naming
		// Pay Protocol and what was refused - this machine's clock when
		// Pay Protocol's answer (its Date header) shows it off by more
		// than Pay Protocol takes, not the keys.
		why := "refused our credentials"
		if strings.HasSuffix(name, "clock") {
			why = "clock skew"
		}
		if pipeline.KindOf(err) != pipeline.KindUsage || strings.Contains(err.Error(), "\n") ||
			!strings.Contains(err.Error(), "Pay Protocol") || !strings.Contains(err.Error(), why) {
			t.Fatalf("%s: kind %v: %v", name, pipeline.KindOf(err), err)
		}
		if n := r.fake.Calls(payprotocol.APIPaymentDetail); n != 1 {
			t.Fatalf("%s: retried, %d calls", name, n)
		}
	}
	// 59 s off either way is within the skew.
	for _, off := range []time.Duration{-59 * time.Second, 59 * time.Second} {
		r := newRig(t, payprotocoltest.Options{Now: func() time.Time { return at }}, clock(off))
		paid(t, r)
		if _, err := r.client.PaymentDetail(context.Background(), "T-1", ""); err != nil {
			t.Fatalf("%v skew: %v", off, err)
		}
	}
}

func TestCreatePaymentOrderLostAnswerIsUnknownNotResent(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []fault.Kind{fault.Lost, fault.Reset, fault.ServerError} {
		r := newRig(t, faults(fault.Rule{Endpoint: payprotocol.APICreatePaymentOrder, Kind: kind, Calls: []int{1}}), nil)
		_, err := r.client.CreatePaymentOrder(ctx, usdOrder)
		if !errors.Is(err, payprotocol.ErrUnknownOutcome) || !strings.Contains(err.Error(), "createPaymentOrder order T-1") {
			t.Fatalf("%s: %v, want ErrUnknownOutcome naming the API and order", kind, err)
		}
		if n := r.fake.Calls(payprotocol.APICreatePaymentOrder); n != 1 {
			t.Fatalf("%s: sent %d times", kind, n)
		}
		// Resolved by the detail query: applied for Lost, not for the others.
		_, err = r.client.PaymentDetail(ctx, "T-1", "")
		if applied := kind == fault.Lost; (err == nil) != applied || (!applied && !errors.Is(err, payprotocol.ErrNotFound)) {
			t.Fatalf("%s: detail after unknown outcome: %v", kind, err)
		}
	}
}

func TestCreateRefundOrderLostAnswerIsUnknownNotResent(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []fault.Kind{fault.Lost, fault.Reset, fault.ServerError} {
		r := newRig(t, faults(fault.Rule{Endpoint: payprotocol.APICreateRefundOrder, Kind: kind, Calls: []int{1}}), nil)
		paid(t, r)
		_, err := r.client.CreateRefundOrder(ctx, payprotocol.RefundOrder{OutTradeNo: "T-1", Amount: 100, Currency: "USD"})
		if !errors.Is(err, payprotocol.ErrUnknownOutcome) {
			t.Fatalf("%s: %v", kind, err)
		}
		if n := r.fake.Calls(payprotocol.APICreateRefundOrder); n != 1 || (kind == fault.Lost) != (len(r.fake.Refunds()) == 1) {
			t.Fatalf("%s: sent %d times, %d refunds", kind, n, len(r.fake.Refunds()))
		}
		// No idempotency key: the refund is found by order number before anything is resent.
		rf, err := r.client.RefundDetail(ctx, "T-1", "")
		switch kind {
		case fault.Lost:
			if err != nil || rf.Amount.String() != "1000000" {
				t.Fatalf("lost: %+v, %v", rf, err)
			}
		default:
			if !errors.Is(err, payprotocol.ErrNotFound) {
				t.Fatalf("%s: %v, want ErrNotFound", kind, err)
			}
		}
	}
}

// TestCreateRetriedOnlyWhenCertainlyNotProcessed: a 429 refuses before
// anything is done, so it is retried after Retry-After; so is a connection
// never made.
func TestCreateRetriedOnlyWhenCertainlyNotProcessed(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, faults(fault.Rule{Endpoint: payprotocol.APICreatePaymentOrder, Kind: fault.TooMany, Calls: []int{1}}), nil)
	start := time.Now()
	if _, err := r.client.CreatePaymentOrder(ctx, usdOrder); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Fatalf("retried after %v, Retry-After said 1s", waited)
	}
	if n := r.fake.Calls(payprotocol.APICreatePaymentOrder); n != 2 {
		t.Fatalf("%d calls", n)
	}
	down, err := payprotocol.New(payprotocol.Config{BaseURL: "http://127.0.0.1:1/api/mer", APIKey: testKey, APISecret: testSecret,
		HTTP: payprotocol.NewHTTPClient(time.Second), RetryBase: time.Millisecond, MaxRetries: 2})
	if err != nil {
		t.Fatal(err)
	}
	_, err = down.CreateRefundOrder(ctx, payprotocol.RefundOrder{OutTradeNo: "T-1"})
	var pe *payprotocol.Error
	if !errors.As(err, &pe) || errors.Is(err, payprotocol.ErrUnknownOutcome) || !pe.Transient() {
		t.Fatalf("refused connection: %v, want a transient error that is not unknown", err)
	}
	// A Retry-After beyond MaxRetryAfter ends the call instead.
	r = newRig(t, faults(fault.Rule{Endpoint: payprotocol.APIPaymentDetail, Kind: fault.TooMany, Calls: []int{1}}), func(c *payprotocol.Config) {
		c.MaxRetryAfter = 100 * time.Millisecond
	})
	_, err = r.client.PaymentDetail(ctx, "T-1", "")
	if !errors.As(err, &pe) || pe.HTTPStatus != http.StatusTooManyRequests || pe.RetryAfter != time.Second || !pe.Transient() {
		t.Fatalf("long Retry-After: %v", err)
	}
}

// TestPerAttemptTimeout: an attempt that gets no answer is cut at
// Config.Timeout and tried again. The margins are wide both ways: a 1 s
// timeout that a quick answer does not reach on a loaded machine (at
// 50 ms the retried attempt was cut too, now and then: 3 calls), and an
// answer held a minute, so that a call not cut takes far longer than
// the 10 s allowed (and is cut at 30 s by the HTTP client's own timeout).
func TestPerAttemptTimeout(t *testing.T) {
	r := newRig(t, faults(fault.Rule{Endpoint: payprotocol.APIPaymentDetail, Kind: fault.Latency, Calls: []int{1}, Delay: time.Minute}), func(c *payprotocol.Config) {
		c.Timeout = time.Second
	})
	paid(t, r)
	start := time.Now()
	if _, err := r.client.PaymentDetail(context.Background(), "T-1", ""); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %v: the slow attempt was not cut at 1s", d)
	}
	if n := r.fake.Calls(payprotocol.APIPaymentDetail); n != 2 {
		t.Fatalf("%d calls", n)
	}
}

func TestRateLimiterLimits(t *testing.T) {
	const every = 30 * time.Millisecond
	r := newRig(t, payprotocoltest.Options{}, func(c *payprotocol.Config) {
		c.Limiter = rate.NewLimiter(rate.Every(every), 1)
	})
	paid(t, r)
	start := time.Now()
	for i := 0; i < 6; i++ {
		if _, err := r.client.PaymentDetail(context.Background(), "T-1", ""); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 5*every {
		t.Fatalf("6 calls at one per %v took %v", every, d)
	}
	// A deadline the limiter cannot meet fails before anything is sent.
	r.cfg.Limiter = rate.NewLimiter(rate.Every(time.Hour), 1)
	c, _ := payprotocol.New(r.cfg)
	c.PaymentDetail(context.Background(), "T-1", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // far before the turn, an hour away: refused at once, however loaded the machine
	defer cancel()
	before := r.fake.Calls(payprotocol.APIPaymentDetail)
	if _, err := c.PaymentDetail(ctx, "T-1", ""); err == nil || r.fake.Calls(payprotocol.APIPaymentDetail) != before {
		t.Fatalf("limited call: %v", err)
	}
}

// TestStuck: a Stuck fault keeps a status as it was for more polls.
func TestStuck(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, payprotocoltest.Options{Polls: 1, Faults: fault.New(1,
		fault.Rule{Endpoint: payprotocol.APIRefundDetail, Kind: fault.Stuck, Calls: []int{1}, Polls: 2},
		fault.Rule{Endpoint: payprotocol.APIPaymentDetail, Kind: fault.Stuck, Calls: []int{2}, Polls: 2})}, nil)
	if _, err := r.fake.AddPayment("T-1", "USDT", 6, "12340000", payprotocol.PaymentBlockConfirmation); err != nil {
		t.Fatal(err)
	}
	var got []payprotocol.PaymentStatus
	for i := 0; i < 5; i++ {
		if i == 1 {
			r.fake.SetPaymentStatus("T-1", payprotocol.PaymentPaid)
		}
		p, err := r.client.PaymentDetail(ctx, "T-1", "")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.Status)
	}
	want := []payprotocol.PaymentStatus{2, 2, 2, 0, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("payment statuses %v, want %v", got, want)
		}
	}
	id, err := r.client.CreateRefundOrder(ctx, payprotocol.RefundOrder{OutTradeNo: "T-1"})
	if err != nil {
		t.Fatal(err)
	}
	var rs []payprotocol.RefundStatus
	for i := 0; i < 6; i++ {
		rf, err := r.client.RefundDetail(ctx, "", id)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, rf.Status)
	}
	// Polls 1: one poll pending approval (+2 stuck), one under review, then success.
	wantR := []payprotocol.RefundStatus{1, 1, 1, 2, 0, 0}
	for i := range wantR {
		if rs[i] != wantR[i] {
			t.Fatalf("refund statuses %v, want %v", rs, wantR)
		}
	}
	if p, _ := r.fake.Payment("T-1"); p.Status != payprotocol.PaymentRefunded {
		t.Fatalf("payment after a full refund: %s", p.Status)
	}
}

func TestErrorText(t *testing.T) {
	e := &payprotocol.Error{API: payprotocol.APIRefundDetail, OutTradeNo: "T-1", RefundID: "82", HTTPStatus: 404, Code: 404, Message: "refund not found", Err: payprotocol.ErrNotFound}
	if got, want := e.Error(), "payprotocol refund/detail order T-1 refund 82: HTTP 404 code 404 refund not found: not found"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}
