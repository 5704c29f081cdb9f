package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A configuration error stops forEach from starting more work and comes
// back alone (one line); other errors are joined, every element run.
func TestForEachStopsOnAConfigurationError(t *testing.T) {
	xs := make([]int, 100)
	for i := range xs {
		xs[i] = i
	}
	var ran atomic.Int32
	err := ForEach(context.Background(), 1, xs, func(i int) error {
		ran.Add(1)
		if i >= 3 {
			return E(KindUsage, "", fmt.Errorf("refused credentials (%d)", i))
		}
		return nil
	})
	if KindOf(err) != KindUsage || strings.Contains(err.Error(), "\n") || ran.Load() > 5 {
		t.Fatalf("%d ran: %v", ran.Load(), err)
	}
	ran.Store(0)
	err = ForEach(context.Background(), 4, xs, func(i int) error {
		ran.Add(1)
		if i%10 == 0 {
			return errors.New("one subject")
		}
		return nil
	})
	if ran.Load() != 100 || strings.Count(err.Error(), "one subject") != 10 {
		t.Fatalf("%d ran: %v", ran.Load(), err)
	}
}

func TestSubjectOnly(t *testing.T) {
	for err, want := range map[error]bool{
		fmt.Errorf("x: %w", ErrNotFound):                  true,
		fmt.Errorf("x: %w", ErrRefused):                   true,
		E(KindUsage, "", fmt.Errorf("x: %w", ErrRefused)): false,
		errors.New("connection reset"):                    false,
		nil:                                               false,
	} {
		if SubjectOnly(err) != want {
			t.Errorf("%v: %v", err, !want)
		}
	}
}

// tokenCount is a Limiter that never waits and counts the tokens taken.
type tokenCount struct{ n atomic.Int32 }

func (l *tokenCount) Wait(context.Context) error { l.n.Add(1); return nil }

// Every question of EachFirstAlonePaced takes its token, the first one
// (asked alone) included; a failure of the first asks nothing more.
func TestEachFirstAlonePacedPacesTheFirst(t *testing.T) {
	tokens := &tokenCount{}
	p := NewPacer(Limits{Limit: tokens})
	var asked atomic.Int32
	if err := EachFirstAlonePaced(context.Background(), p, []int{1, 2, 3}, func(int) error { asked.Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	if asked.Load() != 3 || tokens.n.Load() != 3 {
		t.Fatalf("%d asked, %d tokens taken; want 3 and 3", asked.Load(), tokens.n.Load())
	}
	down := errors.New("provider down")
	asked.Store(0)
	if err := EachFirstAlonePaced(context.Background(), p, []int{1, 2, 3}, func(int) error { asked.Add(1); return down }); err != down || asked.Load() != 1 {
		t.Fatalf("first failing: %v after %d asked; want the error itself after 1", err, asked.Load())
	}
}

// EachAtMost runs no more than its calls at once, however many lanes the
// pacer walks side by side, and starts the next as one ends: one slow
// call holds back no other. A call waiting for its place takes no token,
// and none starts once the Each stopped.
func TestEachAtMostKeepsItsCallsAndFillsEachPlace(t *testing.T) {
	tokens := &tokenCount{}
	p := NewPacer(Limits{Limit: tokens, MaxInFlight: 64})
	const n, most = 40, 4
	slow := make(chan struct{})
	var running, peak, done atomic.Int32
	err := make(chan error, 1)
	go func() {
		err <- p.EachAtMost(context.Background(), n, most, func(i int) string { return fmt.Sprint(i) }, func(_ context.Context, i int) error {
			now := running.Add(1)
			for {
				old := peak.Load()
				if now <= old || peak.CompareAndSwap(old, now) {
					break
				}
			}
			defer running.Add(-1)
			if i == 0 {
				<-slow // held until every other call is done
			}
			done.Add(1)
			return nil
		})
	}()
	for deadline := time.Now().Add(30 * time.Second); done.Load() < n-1 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	others := done.Load()
	close(slow)
	if e := <-err; e != nil {
		t.Fatal(e)
	}
	if others != n-1 || peak.Load() > most || tokens.n.Load() != n {
		t.Fatalf("%d others done while one call was slow (want %d), %d at once (at most %d), %d tokens (want %d)", others, n-1, peak.Load(), most, tokens.n.Load(), n)
	}

	// Stopped by a configuration error: the calls waiting for a place
	// start not, and took no token.
	tokens.n.Store(0)
	var ran atomic.Int32
	e := p.EachAtMost(context.Background(), n, 2, func(i int) string { return fmt.Sprint(i) }, func(context.Context, int) error {
		ran.Add(1)
		return E(KindUsage, "", errors.New("refused credentials"))
	})
	if KindOf(e) != KindUsage || ran.Load() > 2 || tokens.n.Load() > 2 {
		t.Fatalf("after a configuration error: %v, %d calls ran, %d tokens; want at most the 2 running", e, ran.Load(), tokens.n.Load())
	}
}
