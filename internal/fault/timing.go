package fault

import (
	"net/http"
	"sync"
	"time"
)

// The timing model: what makes a fake take time as a real provider does.
// Unlike the faults, it plays on every call: a latency before each answer
// (Pause), a processing delay in wall time before a final status (Ready),
// and the provider's rate limits (Limit). The fakes default to none of it,
// so tests and the demo get instant answers.

// Pause waits d before the fake answers, or until the request is
// cancelled. d <= 0: no wait.
func Pause(r *http.Request, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

// Ready is when a request accepted at now, with a processing delay of d,
// may show its final status. d <= 0: at once (the zero time, before any
// clock reading).
func Ready(now func() time.Time, d time.Duration) time.Time {
	if d <= 0 || now == nil {
		return time.Time{}
	}
	return now().Add(d)
}

// Processing reports whether a request ready at ready is still processing
// at now's reading.
func Processing(now func() time.Time, ready time.Time) bool {
	return !ready.IsZero() && now != nil && now().Before(ready)
}

// Limit is a token bucket: Rate requests a second on average, up to Burst
// at once, on an injectable clock. It counts what it allowed and denied.
// A nil *Limit allows everything. It is safe for concurrent use.
type Limit struct {
	rate  float64
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	tokens  float64
	last    time.Time
	allowed int
	denied  int
}

// NewLimit returns a bucket of rate requests a second and burst (at least
// 1; 0: rate rounded up) on clock now (nil: time.Now); it starts full. A
// rate <= 0 returns nil: unlimited.
func NewLimit(rate float64, burst int, now func() time.Time) *Limit {
	if rate <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = int(rate)
		if float64(burst) < rate {
			burst++
		}
	}
	if now == nil {
		now = time.Now
	}
	return &Limit{rate: rate, burst: float64(burst), now: now, tokens: float64(burst)}
}

// Allow takes a token, or reports that there is none now.
func (l *Limit) Allow() bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.now()
	if !l.last.IsZero() && t.After(l.last) {
		l.tokens += t.Sub(l.last).Seconds() * l.rate
		if l.tokens > l.burst {
			l.tokens = l.burst
		}
	}
	if l.last.IsZero() || t.After(l.last) {
		l.last = t
	}
	if l.tokens < 1 {
		l.denied++
		return false
	}
	l.tokens--
	l.allowed++
	return true
}

// Rate is the bucket's rate per second (0 for a nil Limit: unlimited).
func (l *Limit) Rate() float64 {
	if l == nil {
		return 0
	}
	return l.rate
}

// Denied reports how many requests the bucket refused.
func (l *Limit) Denied() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.denied
}

// Allowed reports how many requests the bucket let through.
func (l *Limit) Allowed() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.allowed
}
