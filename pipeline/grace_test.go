package pipeline

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// longSend is a request that takes `takes` when nothing stops it: a trade
// file of some megabytes over SFTP. A context whose deadline comes first
// aborts it (load.SFTP.guard closes the connection when ctx is done); the
// sender answers at once what that abort would answer, so that the test
// takes no 20 s. With stop set, it cancels the run while in flight and
// takes a moment.
type longSend struct {
	takes   time.Duration
	stop    context.CancelFunc
	applied atomic.Bool
	sends   atomic.Int64
}

func (s *longSend) Send(ctx context.Context, e Effect) (Outcome, error) {
	s.sends.Add(1)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < s.takes {
		return Outcome{}, fmt.Errorf("upload %s: aborted at the context's deadline: %w", e.Key, context.DeadlineExceeded)
	}
	if s.stop != nil {
		s.stop() // SIGTERM while the request is in flight
		time.Sleep(50 * time.Millisecond)
		if err := ctx.Err(); err != nil {
			return Outcome{}, err
		}
	}
	s.applied.Store(true)
	return Outcome{Status: OutcomeSucceeded, Ref: e.Key}, nil
}

func (s *longSend) Query(context.Context, Effect) (Outcome, error) {
	if s.applied.Load() {
		return Outcome{Status: OutcomeSucceeded}, nil
	}
	return Outcome{Status: OutcomeNotFound}, nil
}

// TestASendIsCutOnlyOnceTheRunStops: InFlightGrace is the time a request
// in flight gets after the run is told to stop; it was every send's
// deadline, so a send that took longer than 15 s (a large trade file over
// SFTP) was cut on every attempt and could never finish (found by a
// review). A send in flight when the run stops still gets to answer.
func TestASendIsCutOnlyOnceTheRunStops(t *testing.T) {
	t.Parallel()
	for _, stopping := range []bool{false, true} {
		store := newMemEffects()
		e, _ := store.PlanEffect(context.Background(), Effect{Kind: "upload", Subject: "F1", Attempt: 1, Key: "F1-1"})
		ctx, cancel := context.WithCancel(context.Background())
		sender := &longSend{takes: 20 * time.Second}
		if stopping {
			sender.stop = cancel
		}
		en := &Engine{Store: store, Sender: func(Effect) EffectSender { return sender }, Poll: 10 * time.Millisecond, Wait: 300 * time.Millisecond}
		_, _ = en.Run(ctx, []Effect{e})
		cancel()
		if got := store.effects[e.ID]; got.State != EffectSucceeded || sender.sends.Load() != 1 {
			t.Fatalf("stopping %v: state %s after %d sends (last error %q); want it let finish at its first send",
				stopping, got.State, sender.sends.Load(), got.LastError)
		}
	}
}
