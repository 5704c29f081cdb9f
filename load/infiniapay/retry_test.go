package infiniapay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
	"github.com/settlekit/settle/pipeline"
)

func faults(rules ...fault.Rule) infiniapaytest.Options {
	return infiniapaytest.Options{Faults: fault.New(7, rules...)}
}

// payable makes the fake ready to accept revenue shares to S1 in USD.
func payable(r *rig) {
	r.fake.SetBinding("S1", infiniapay.StatusActive)
	r.fake.SetBalance("USD", 1_000_00)
	r.fake.SetAvailable("S1", "USD", 1_000_00)
}

var share = infiniapay.RevenueShareRequest{RequestNo: "RS-20250903-S1-USD-1", SellerID: "S1", Currency: "USD", Amount: 123_45}

func TestQueriesRetryTransientFailures(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []fault.Kind{fault.Unavailable, fault.ServerError, fault.Reset} {
		r := newRig(t, faults(fault.Rule{Endpoint: "balance/query", Kind: kind, Calls: []int{1, 2}}), nil, nil)
		if _, err := r.client.Balance(ctx, "BAL-1", "USD"); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if n := r.fake.Calls("balance/query"); n != 3 {
			t.Fatalf("%s: %d calls, want 3", kind, n)
		}
	}
}

func TestRetriesAreBounded(t *testing.T) {
	r := newRig(t, faults(fault.Rule{Endpoint: "*", Kind: fault.Unavailable, Prob: 1}), nil, nil)
	_, err := r.client.Balance(context.Background(), "BAL-1", "USD")
	var ie *infiniapay.Error
	if !errors.As(err, &ie) || ie.Code != infiniapay.CodeUnavailable || !ie.Transient() || ie.API != "balance/query" || ie.RequestNo != "BAL-1" {
		t.Fatalf("err = %v", err)
	}
	if n := r.fake.Calls("balance/query"); n != 5 {
		t.Fatalf("%d calls, want 1 + MaxRetries (4)", n)
	}
	// Cancelling stops the retries, and the error still names the last
	// answer. The deadline falls in the hour-long backoff after the first
	// answer; it leaves that answer two seconds, which load does not cross.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r = newRig(t, faults(fault.Rule{Endpoint: "*", Kind: fault.Unavailable, Prob: 1}), nil, func(c *infiniapay.Config) {
		c.RetryBase, c.RetryMax, c.MaxRetries = time.Hour, time.Hour, 100
	})
	start := time.Now()
	if _, err := r.client.Balance(ctx, "BAL-1", "USD"); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "SYS-008") || time.Since(start) > time.Minute {
		t.Fatalf("cancelled: %v after %s", err, time.Since(start))
	}
	if n := r.fake.Calls("balance/query"); n != 1 {
		t.Fatalf("%d calls, want 1", n)
	}
}

func TestPermanentCodesAreNotRetried(t *testing.T) {
	// An appId Infinia does not know: SYS-002, definite.
	r := newRig(t, infiniapaytest.Options{}, nil, func(c *infiniapay.Config) { c.AppID = "SOMEONE-ELSE" })
	_, err := r.client.Balance(context.Background(), "BAL-1", "USD")
	var ie *infiniapay.Error
	if !errors.As(err, &ie) || ie.Code != infiniapay.CodeInvalidParameter || ie.Transient() {
		t.Fatalf("err = %v", err)
	}
	if n := r.fake.Calls("balance/query"); n != 1 {
		t.Fatalf("SYS-002 was retried: %d calls", n)
	}
}

func TestRevenueShareLostAnswerIsUnknownNotResent(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, faults(fault.Rule{Endpoint: "revenue-sharing/request", Kind: fault.Lost, Calls: []int{1}}), nil, nil)
	payable(r)
	_, err := r.client.RevenueShare(ctx, share)
	if !errors.Is(err, infiniapay.ErrUnknownOutcome) || !strings.Contains(err.Error(), "revenue-sharing/request "+share.RequestNo) {
		t.Fatalf("lost answer: %v, want ErrUnknownOutcome naming the API and requestNo", err)
	}
	if n := r.fake.Calls("revenue-sharing/request"); n != 1 {
		t.Fatalf("a money request with a lost answer was sent %d times", n)
	}
	// It was applied: the status query finds it.
	got, err := r.client.RevenueShareStatus(ctx, share.RequestNo)
	if err != nil || got.Status != infiniapay.StatusProcessing {
		t.Fatalf("status after lost answer: %+v, %v", got, err)
	}
	if r.fake.Paid("S1", "USD") != share.Amount {
		t.Fatal("paid")
	}
}

// A reset, a bare 500, and SYS-001 or SYS-003 (which Infinia does not
// document as "not processed", unlike SYS-008) leave a revenue share
// unknown: asked about, never resent blindly.
func TestRevenueShareResetAndServerErrorAreUnknown(t *testing.T) {
	ctx := context.Background()
	for _, rule := range []fault.Rule{{Kind: fault.Reset}, {Kind: fault.ServerError},
		{Kind: fault.ServerError, Code: infiniapay.CodeDatabase}, {Kind: fault.ServerError, Code: infiniapay.CodeInternal}} {
		kind := string(rule.Kind) + " " + rule.Code
		rule.Endpoint, rule.Calls = "revenue-sharing/request", []int{1}
		r := newRig(t, faults(rule), nil, nil)
		payable(r)
		if _, err := r.client.RevenueShare(ctx, share); !errors.Is(err, infiniapay.ErrUnknownOutcome) {
			t.Fatalf("%s: %v", kind, err)
		}
		if n := r.fake.Calls("revenue-sharing/request"); n != 1 {
			t.Fatalf("%s: sent %d times", kind, n)
		}
		// Not applied: the query says so, and then the same key may go again.
		if _, err := r.client.RevenueShareStatus(ctx, share.RequestNo); !errors.Is(err, infiniapay.ErrNotFound) {
			t.Fatalf("%s: status %v, want ErrNotFound", kind, err)
		}
		if res, err := r.client.RevenueShare(ctx, share); err != nil || res.Status != infiniapay.StatusProcessing {
			t.Fatalf("%s: resend %+v, %v", kind, res, err)
		}
	}
}

func TestRevenueShareDefiniteRefusalsAreRetried(t *testing.T) {
	ctx := context.Background()
	// SYS-008 says it was not processed: the same requestNo may go again.
	r := newRig(t, faults(fault.Rule{Endpoint: "revenue-sharing/request", Kind: fault.Unavailable, Calls: []int{1, 2}}), nil, nil)
	payable(r)
	res, err := r.client.RevenueShare(ctx, share)
	if err != nil || res.Status != infiniapay.StatusProcessing {
		t.Fatalf("%+v, %v", res, err)
	}
	if n := r.fake.Calls("revenue-sharing/request"); n != 3 || len(r.fake.RevenueShares()) != 1 || r.fake.Paid("S1", "USD") != share.Amount {
		t.Fatalf("%d calls, %d shares, paid %d", n, len(r.fake.RevenueShares()), r.fake.Paid("S1", "USD"))
	}
	// A connection never made sent nothing: retried too.
	k := keys(t)
	down, err := infiniapay.New(infiniapay.Config{BaseURL: "http://127.0.0.1:1/", AppID: "A", OurKey: k.PlatformPrivate,
		InfiniaKey: k.InfiniaPublic, HTTP: infiniapay.NewHTTPClient(time.Second), RetryBase: time.Millisecond, MaxRetries: 2})
	if err != nil {
		t.Fatal(err)
	}
	_, err = down.RevenueShare(ctx, share)
	var ie *infiniapay.Error
	if !errors.As(err, &ie) || errors.Is(err, infiniapay.ErrUnknownOutcome) || !ie.Transient() {
		t.Fatalf("refused connection: %v, want a transient error that is not unknown", err)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, faults(fault.Rule{Endpoint: "revenue-sharing/request", Kind: fault.TooMany, Calls: []int{1}}), nil, nil)
	payable(r)
	start := time.Now()
	if _, err := r.client.RevenueShare(ctx, share); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Fatalf("retried after %v, Retry-After said 1s", waited)
	}
	if n := r.fake.Calls("revenue-sharing/request"); n != 2 {
		t.Fatalf("%d calls", n)
	}
	// A Retry-After beyond MaxRetryAfter ends the call instead.
	r = newRig(t, faults(fault.Rule{Endpoint: "balance/query", Kind: fault.TooMany, Calls: []int{1}}), nil, func(c *infiniapay.Config) {
		c.MaxRetryAfter = 100 * time.Millisecond
	})
	_, err := r.client.Balance(ctx, "BAL-1", "USD")
	var ie *infiniapay.Error
	if !errors.As(err, &ie) || ie.HTTPStatus != http.StatusTooManyRequests || ie.RetryAfter != time.Second {
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
	r := newRig(t, faults(fault.Rule{Endpoint: "balance/query", Kind: fault.Latency, Calls: []int{1}, Delay: time.Minute}), readBody, func(c *infiniapay.Config) {
		c.Timeout = time.Second
	})
	start := time.Now()
	if _, err := r.client.Balance(context.Background(), "BAL-1", "USD"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %v: the slow attempt was not cut at 1s", d)
	}
	if n := r.fake.Calls("balance/query"); n != 2 {
		t.Fatalf("%d calls", n)
	}
}

// readBody reads a request's body before the fake does: Go's server
// notices a client that hung up (and ends the request's context, which
// ends a held answer) only once the body was read, and the fake holds its
// answer before it reads the body.
func readBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		h.ServeHTTP(w, r)
	})
}

func TestRateLimiterLimits(t *testing.T) {
	const every = 30 * time.Millisecond
	r := newRig(t, infiniapaytest.Options{}, nil, func(c *infiniapay.Config) {
		c.Limiter = rate.NewLimiter(rate.Every(every), 1)
	})
	start := time.Now()
	for i := 0; i < 6; i++ {
		if _, err := r.client.Balance(context.Background(), "BAL-1", "USD"); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 5*every {
		t.Fatalf("6 calls at one per %v took %v", every, d)
	}
	// A deadline the limiter cannot meet fails before anything is sent.
	r.cfg.Limiter = rate.NewLimiter(rate.Every(time.Hour), 1)
	c, _ := infiniapay.New(r.cfg)
	c.Balance(context.Background(), "BAL-1", "USD")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // far before the turn, an hour away: refused at once, however loaded the machine
	defer cancel()
	before := r.fake.Calls("balance/query")
	if _, err := c.Balance(ctx, "BAL-2", "USD"); err == nil || r.fake.Calls("balance/query") != before ||
		!strings.Contains(err.Error(), "not sent: settle's rate limit gives it no turn") {
		t.Fatalf("limited call: %v", err)
	}
	// A run stopped while a call waits its turn says the call was not
	// sent, not "rate limit: context canceled", which read like a limit
	// the provider had refused it on.
	ctx, stop := context.WithCancel(context.Background())
	// Its turn is an hour away: stopped a second later, the call waits
	// for it by then however loaded the machine (at 20 ms, a CI run's call
	// was stopped before it reached the wait: "context canceled" alone).
	time.AfterFunc(time.Second, stop)
	_, err := c.Balance(ctx, "BAL-3", "USD")
	if !errors.Is(err, context.Canceled) || r.fake.Calls("balance/query") != before ||
		!strings.Contains(err.Error(), "not sent: stopped while waiting its turn under settle's rate limit: context canceled") {
		t.Fatalf("call stopped while waiting: %v", err)
	}
}

// A provider whose rate limit is below ours slows the calls, it does not
// fail them: 429s are waited out (their Retry-After) without spending the
// retries, up to MaxRateLimited. Found by an operator's run against paysim
// at 10 requests a second against settle's 20: whole stages failed.
func TestRateLimitBelowOursSlowsQueriesWithoutFailingThem(t *testing.T) {
	r := newRig(t, infiniapaytest.Options{QPS: 4}, nil, func(c *infiniapay.Config) { c.MaxRetries = 1 })
	payable(r)
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.client.Balance(context.Background(), fmt.Sprintf("BAL-%d", i), "USD")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if r.fake.Count429() < 2 {
		t.Fatalf("%d 429s: the test did not meet the limit", r.fake.Count429())
	}
}

// TestNoAnswerIsToldFromAnAnswerThatSaysError: a call whose last attempt
// got no answer at all (a connection reset, none made) is
// pipeline.ErrNoAnswer, which the engine counts towards Infinia not
// answering; one Infinia answered with an error (SYS-008 to the end, a
// 500) is not.
func TestNoAnswerIsToldFromAnAnswerThatSaysError(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		kind     fault.Kind
		noAnswer bool
	}{{fault.Reset, true}, {fault.Unavailable, false}, {fault.ServerError, false}} {
		r := newRig(t, faults(fault.Rule{Endpoint: "*", Kind: c.kind, Prob: 1}), nil, nil)
		_, err := r.client.Balance(ctx, "BAL-1", "USD")
		if err == nil || errors.Is(err, pipeline.ErrNoAnswer) != c.noAnswer {
			t.Errorf("%s: %v, no answer %v; want %v", c.kind, err, errors.Is(err, pipeline.ErrNoAnswer), c.noAnswer)
		}
	}
	r := newRig(t, infiniapaytest.Options{}, nil, nil)
	r.srv.Close() // nothing listens: no connection made
	if _, err := r.client.Balance(ctx, "BAL-1", "USD"); !errors.Is(err, pipeline.ErrNoAnswer) {
		t.Errorf("no server: %v, want no answer", err)
	}
}
