package fault

import (
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestLimitBurstThenRate(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	l := NewLimit(10, 0, clk.now) // 10/s, burst 10
	for i := 0; i < 10; i++ {
		if !l.Allow() {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	if l.Allow() {
		t.Fatal("11th request at the same instant allowed")
	}
	clk.advance(100 * time.Millisecond) // one token
	if !l.Allow() || l.Allow() {
		t.Fatal("after 100 ms at 10/s want exactly one more request")
	}
	clk.advance(time.Hour) // refills to the burst, not beyond
	n := 0
	for l.Allow() {
		n++
	}
	if n != 10 {
		t.Fatalf("after an hour allowed %d at once, want the burst 10", n)
	}
	if l.Allowed() != 21 || l.Denied() != 3 {
		t.Fatalf("allowed %d denied %d, want 21 and 3", l.Allowed(), l.Denied())
	}
	if NewLimit(0, 0, nil) != nil || !(*Limit)(nil).Allow() {
		t.Fatal("rate 0 must be unlimited")
	}
}

// TestLimitRealClock runs the bucket on the real clock at a small rate:
// over ~1 s at 20/s (burst 5) it allows about 25, with wide margins.
func TestLimitRealClock(t *testing.T) {
	l := NewLimit(20, 5, nil)
	start := time.Now()
	n := 0
	for time.Since(start) < time.Second {
		if l.Allow() {
			n++
		}
		time.Sleep(time.Millisecond)
	}
	if n < 12 || n > 40 {
		t.Fatalf("allowed %d in 1 s at 20/s burst 5, want about 25", n)
	}
}

func TestReadyProcessing(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	r := Ready(clk.now, 20*time.Second)
	if !Processing(clk.now, r) {
		t.Fatal("not processing when accepted")
	}
	clk.advance(19 * time.Second)
	if !Processing(clk.now, r) {
		t.Fatal("not processing after 19 s of 20")
	}
	clk.advance(time.Second)
	if Processing(clk.now, r) {
		t.Fatal("still processing after 20 s")
	}
	if Processing(clk.now, Ready(clk.now, 0)) {
		t.Fatal("no delay must be final at once")
	}
}

func TestPause(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	start := time.Now()
	Pause(r, 30*time.Millisecond)
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("paused %v, want at least 30 ms", d)
	}
}
