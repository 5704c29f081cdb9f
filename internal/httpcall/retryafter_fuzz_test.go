package httpcall

import (
	"context"
	"errors"
	"math"
	"math/big"
	"net/http"
	"testing"
	"time"
)

// TestRetryAfterBeyondADurationIsTheLongest: a Retry-After in seconds
// that a time.Duration cannot hold (past 292 years) is the longest wait,
// past any MaxRetryAfter, so the call ends: multiplied into a Duration
// it wrapped, 18446744074 s read as 0.29 s and 9999999999 s as a
// negative wait, and the call was retried at once (found by
// FuzzRetryAfter).
func TestRetryAfterBeyondADurationIsTheLongest(t *testing.T) {
	for _, v := range []string{"18446744074", "9999999999", "9223372037", "99999999999999999"} {
		resp := &http.Response{StatusCode: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {v}}}
		if got := RetryAfter(resp, time.Now); got != time.Duration(math.MaxInt64) {
			t.Errorf("Retry-After %s: %v, want the longest wait", v, got)
		}
		attempts := 0
		err := Loop(context.Background(), fast, nil, func(context.Context) error { attempts++; return errors.New("429") },
			func(error) Verdict {
				return Verdict{Retry: true, RetryAfter: RetryAfter(resp, time.Now), RateLimited: true}
			})
		if err == nil || attempts != 1 {
			t.Errorf("Retry-After %s: %d attempts, %v; want the call ended after the first", v, attempts, err)
		}
	}
	resp := &http.Response{StatusCode: http.StatusServiceUnavailable, Header: http.Header{"Retry-After": {"9223372036"}}}
	if got := RetryAfter(resp, time.Now); got != 9223372036*time.Second {
		t.Errorf("the longest Retry-After a Duration holds: %v", got)
	}
}

// FuzzRetryAfter: a Retry-After in seconds is that many seconds exactly,
// or the longest wait when a Duration cannot hold them; an HTTP date is
// the time from the answer's Date (or now) to it, 0 when past; anything
// else is 0. Never negative.
func FuzzRetryAfter(f *testing.F) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for _, v := range []string{"3", "0", "-3", "+3", "18446744074", "9999999999", "9223372036", "9223372037", "Tue, 24 Nov 2026 12:01:30 GMT",
		"Tue, 24 Nov 2026 11:59:00 GMT", "soon", "", " 3", "3.5", "0x10"} {
		f.Add(v, "Tue, 24 Nov 2026 12:00:00 GMT", true)
	}
	f.Fuzz(func(t *testing.T, v, date string, tooMany bool) {
		status := http.StatusServiceUnavailable
		if tooMany {
			status = http.StatusTooManyRequests
		}
		h := http.Header{}
		h.Set("Retry-After", v)
		h.Set("Date", date)
		got := RetryAfter(&http.Response{StatusCode: status, Header: h}, func() time.Time { return now })
		if got < 0 {
			t.Fatalf("Retry-After %q: negative wait %v", v, got)
		}
		if n, ok := new(big.Int).SetString(h.Get("Retry-After"), 10); ok && n.Sign() > 0 {
			want := new(big.Int).Mul(n, big.NewInt(int64(time.Second)))
			if !want.IsInt64() {
				want = big.NewInt(math.MaxInt64)
			}
			if got != time.Duration(want.Int64()) {
				t.Fatalf("Retry-After %q: %v, want %v", v, got, time.Duration(want.Int64()))
			}
		}
	})
}
