package httpcall

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

var fast = Policy{Timeout: time.Second, RetryBase: time.Millisecond, RetryMax: 2 * time.Millisecond, MaxRetries: 3, MaxRetryAfter: 50 * time.Millisecond}

type failure struct {
	retry bool
	after time.Duration
}

func (f *failure) Error() string { return "failed" }

func judge(err error) Verdict {
	var f *failure
	if !errors.As(err, &f) {
		return Verdict{}
	}
	return Verdict{Retry: f.retry, RetryAfter: f.after}
}

func TestLoop(t *testing.T) {
	cases := []struct {
		name     string
		fails    []*failure // what the attempts return, in order; then success
		before   error
		attempts int
		ok       bool
	}{
		{"success at once", nil, nil, 1, true},
		{"retried, then success", []*failure{{retry: true}, {retry: true}}, nil, 3, true},
		{"not retryable: one attempt", []*failure{{retry: false}}, nil, 1, false},
		{"retries spent", []*failure{{retry: true}, {retry: true}, {retry: true}, {retry: true}, {retry: true}}, nil, 4, false},
		{"Retry-After honoured", []*failure{{retry: true, after: 20 * time.Millisecond}}, nil, 2, true},
		{"Retry-After too long: stop", []*failure{{retry: true, after: time.Hour}}, nil, 1, false},
		{"before fails: nothing sent", nil, errors.New("rate limit"), 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := 0
			start := time.Now()
			err := Loop(context.Background(), fast, func(context.Context) error { return c.before }, func(context.Context) error {
				n++
				if n <= len(c.fails) {
					return c.fails[n-1]
				}
				return nil
			}, judge)
			if n != c.attempts || (err == nil) != c.ok {
				t.Fatalf("%d attempts, err %v; want %d, ok %v", n, err, c.attempts, c.ok)
			}
			if c.name == "Retry-After honoured" && time.Since(start) < 20*time.Millisecond {
				t.Fatal("did not wait for Retry-After")
			}
		})
	}
}

func TestLoopStopsWithTheContextAndKeepsTheError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := fast
	p.RetryBase, p.RetryMax = time.Hour, time.Hour
	f := &failure{retry: true}
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	err := Loop(ctx, p, nil, func(context.Context) error { return f }, judge)
	var got *failure
	if !errors.As(err, &got) || got != f || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "stopped retrying") {
		t.Fatalf("err %v", err)
	}
}

func TestLoopTimesOutEachAttempt(t *testing.T) {
	p := fast
	p.Timeout, p.MaxRetries = 5*time.Millisecond, 0
	err := Loop(context.Background(), p, nil, func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}, judge)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	r := func(status int, v string) *http.Response {
		return &http.Response{StatusCode: status, Header: http.Header{"Retry-After": {v}}}
	}
	for _, c := range []struct {
		resp *http.Response
		want time.Duration
	}{
		{r(429, "3"), 3 * time.Second},
		{r(429, now.Add(90*time.Second).Format(http.TimeFormat)), 90 * time.Second},
		{r(429, now.Add(-time.Minute).Format(http.TimeFormat)), 0},
		{r(429, "soon"), 0},
		{r(503, "3"), 3 * time.Second},
		{r(503, now.Add(time.Minute).Format(http.TimeFormat)), time.Minute},
		{r(502, "3"), 0},
		{r(500, "3"), 0},
	} {
		if got := RetryAfter(c.resp, clock); got != c.want {
			t.Errorf("%d %q: %v, want %v", c.resp.StatusCode, c.resp.Header.Get("Retry-After"), got, c.want)
		}
	}
}

// TestRetryAfterDateIsTheServersClock: an HTTP date in Retry-After is on
// the answering server's clock, which its Date header gives: read against
// ours, a machine 3 minutes behind it waited 3 minutes more than asked
// (past MaxRetryAfter: the call ended), one ahead not at all.
func TestRetryAfterDateIsTheServersClock(t *testing.T) {
	server := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for _, skew := range []time.Duration{-3 * time.Minute, 0, 3 * time.Minute} {
		ours := server.Add(skew)
		resp := &http.Response{StatusCode: 429, Header: http.Header{
			"Retry-After": {server.Add(2 * time.Second).Format(http.TimeFormat)},
			"Date":        {server.Format(http.TimeFormat)},
		}}
		if got := RetryAfter(resp, func() time.Time { return ours }); got != 2*time.Second {
			t.Errorf("our clock %v from the server's: waits %v, want the 2s asked", skew, got)
		}
	}
}

func TestNotSent(t *testing.T) {
	dial := &net.OpError{Op: "dial", Err: errors.New("connection refused")}
	read := &net.OpError{Op: "read", Err: errors.New("connection reset")}
	if !NotSent(dial) || NotSent(read) || NotSent(errors.New("EOF")) {
		t.Fatal("NotSent: only a dial error means nothing was sent")
	}
}

func TestJSONProblemDoesNotQuoteTheDocument(t *testing.T) {
	var v struct {
		A int `json:"a"`
	}
	err := jsonErr(`{"a": "secret-value"}`, &v)
	if p := JSONProblem(err, "x"); strings.Contains(p, "secret") || !strings.Contains(p, `field "a"`) {
		t.Fatalf("%q", p)
	}
	if p := JSONProblem(jsonErr(`{"a": secret}`, &v), "x"); strings.Contains(p, "secret") || !strings.Contains(p, "offset") {
		t.Fatalf("%q", p)
	}
	if p := JSONProblem(errors.New("other"), "fallback"); p != "fallback" {
		t.Fatalf("%q", p)
	}
}

func jsonErr(doc string, v any) error { return json.Unmarshal([]byte(doc), v) }

func TestLoopRunsBeforeEveryAttemptAndReturnsItsErrorAsItIs(t *testing.T) {
	stop := errors.New("rate limit")
	calls, attempts := 0, 0
	err := Loop(context.Background(), fast, func(context.Context) error {
		if calls++; calls == 3 {
			return stop
		}
		return nil
	}, func(context.Context) error {
		attempts++
		return &failure{retry: true}
	}, judge)
	if err != stop || calls != 3 || attempts != 2 {
		t.Fatalf("err %v after %d befores and %d attempts; want the before's error after 3 and 2", err, calls, attempts)
	}
}

// TestLoopTimesOutEachAttemptNotTheCall: each attempt has its own
// Policy.Timeout. The first two attempts are cut by theirs; each next
// attempt's deadline is after the previous attempt ended, which a timeout
// of the whole call (one deadline, already passed) is not. Nothing here is
// a race against the clock: an attempt that waited 20 ms under a 30 ms
// timeout was cut now and then on a loaded machine (2 of 200 runs).
func TestLoopTimesOutEachAttemptNotTheCall(t *testing.T) {
	p := fast
	p.Timeout = 30 * time.Millisecond
	n := 0
	var ended time.Time // when the previous attempt returned
	err := Loop(context.Background(), p, nil, func(ctx context.Context) error {
		n++
		deadline, ok := ctx.Deadline()
		switch {
		case !ok:
			return fmt.Errorf("attempt %d has no deadline", n)
		case n > 1 && !deadline.After(ended):
			return fmt.Errorf("attempt %d's deadline was %v before it began: the call's, not its own", n, ended.Sub(deadline))
		case n < 3:
			<-ctx.Done() // cut by its timeout
			ended = time.Now()
			return &failure{retry: true}
		}
		return nil
	}, judge)
	if err != nil || n != 3 {
		t.Fatalf("err %v after %d attempts", err, n)
	}
}

func TestLoopWaitsAtLeastTheBackoff(t *testing.T) {
	p := fast
	p.RetryBase, p.RetryMax = 30*time.Millisecond, 30*time.Millisecond
	n := 0
	start := time.Now()
	err := Loop(context.Background(), p, nil, func(context.Context) error {
		if n++; n == 1 {
			return &failure{retry: true, after: time.Millisecond} // shorter than the backoff: the backoff stands
		}
		return nil
	}, judge)
	if err != nil || time.Since(start) < 15*time.Millisecond {
		t.Fatalf("err %v, waited %v; want at least the backoff (30ms with jitter)", err, time.Since(start))
	}
}

// Answers that say the call was rate limited are waited out without
// spending its retries, up to MaxRateLimited of waiting in all (counted
// as the waits asked: the provider's Retry-After, or RetryBase); then they
// spend retries like any other. Without MaxRateLimited they always do.
func TestLoopWaitsOutRateLimitsWithoutSpendingRetries(t *testing.T) {
	limited := func(error) Verdict { return Verdict{Retry: true, RateLimited: true} }
	for _, c := range []struct {
		max      time.Duration
		attempts int
	}{{0, 1 + 3}, {20 * time.Millisecond, 1 + 20 + 3}} {
		p := fast
		p.MaxRateLimited = c.max
		n := 0
		err := Loop(context.Background(), p, nil, func(context.Context) error { n++; return errors.New("429") }, limited)
		if err == nil || n != c.attempts {
			t.Errorf("MaxRateLimited %s: %d attempts (%v), want %d", c.max, n, err, c.attempts)
		}
	}
}
