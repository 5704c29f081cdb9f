package infiniapay_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
	"github.com/settlekit/settle/pipeline"
)

// memEffects is an EffectStore of the effects given, in memory.
type memEffects struct {
	mu      sync.Mutex
	effects map[int64]pipeline.Effect
}

func (s *memEffects) PlanEffect(_ context.Context, e pipeline.Effect) (pipeline.Effect, error) {
	return e, nil
}

func (s *memEffects) MarkSent(_ context.Context, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.effects[id]
	e.State, e.Sends = pipeline.EffectSent, e.Sends+1
	s.effects[id] = e
	return nil
}

func (s *memEffects) RecordOutcome(_ context.Context, id int64, state pipeline.EffectState, ref, lastErr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.effects[id]
	e.State, e.ProviderRef, e.LastError = state, ref, lastErr
	s.effects[id] = e
	return nil
}

// TestAHungInfiniaHoldsTheRevenueSharesNoLongerThanTheWait: Infinia
// stopped (SIGSTOP) once the revenue shares are sent accepts connections
// and never answers. Each status query took its client's 5 attempts, each
// cut by the attempt's timeout, a few at a time (the window sized by the
// latency seen while Infinia answered): an operator's distribute of 27
// shares ran 545 s with --provider-wait 20s, with no "unanswered" in its
// progress, and ended with 27 "revenue-sharing/query ... context
// deadline exceeded" lines. Here, with attempts of 100 ms, 27 queries 3
// at a time took about 5 s past a wait of 200 ms; now the first question
// that gets no answer after the wait stops the others, and the shares are
// left sent, never sent again, the stage's end the summarised "still
// processing".
func TestAHungInfiniaHoldsTheRevenueSharesNoLongerThanTheWait(t *testing.T) {
	const n, wait = 27, 200 * time.Millisecond
	release := make(chan struct{})
	var queries atomic.Int64
	hung := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if strings.HasSuffix(req.URL.Path, "revenue-sharing/query") {
				queries.Add(1)
				select { // accepted, never answered
				case <-req.Context().Done():
				case <-release:
				}
				return
			}
			next.ServeHTTP(w, req)
		})
	}
	r := newRig(t, infiniapaytest.Options{}, hung, func(c *infiniapay.Config) { c.Timeout = 100 * time.Millisecond })
	t.Cleanup(func() { close(release) }) // before the server's Close
	payable(r)
	s := &memEffects{effects: map[int64]pipeline.Effect{}}
	var effects []pipeline.Effect
	for i := range n {
		e := effect(fmt.Sprintf("RS-HUNG-%02d", i), 100)
		e.ID = int64(i + 1)
		s.effects[e.ID] = e
		effects = append(effects, e)
	}
	en := &pipeline.Engine{Store: s, Sender: func(pipeline.Effect) pipeline.EffectSender { return infiniapay.RevenueShareSender{Client: r.client} },
		Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: 3}), FirstPoll: 20 * time.Millisecond, Poll: 20 * time.Millisecond, Wait: wait,
		Error: func(_ context.Context, e pipeline.Effect, err error) error { // as the distribute stage's
			if pipeline.SubjectOnly(err) {
				return nil
			}
			return fmt.Errorf("revenue share %s: %w", e.Key, err)
		}}
	began := time.Now()
	res, err := en.RunFeed(context.Background(), func(context.Context) ([]pipeline.Effect, error) {
		page := effects
		effects = nil
		return page, nil
	})
	took := time.Since(began)
	t.Logf("took %s, %d queries made", took, queries.Load())
	if err != nil {
		t.Fatalf("after %s: %d error lines, first %.200v; want the shares pending", took, strings.Count(err.Error(), "\n")+1, err)
	}
	// A query takes 5 attempts of 100 ms and their backoff: the first
	// ones end past the wait, and stop the others (0.6-0.9 s; asked
	// through, they took 5 s: the bound leaves a busy machine its margin).
	if took > 3*time.Second {
		t.Errorf("took %s with a wait of %s: a hung Infinia held the stage", took, wait)
	}
	if got := len(r.fake.RevenueShares()); got != n {
		t.Errorf("%d revenue shares at Infinia, want %d: none sent again", got, n)
	}
	if len(res.Pending) != n {
		t.Fatalf("%d pending, want all %d", len(res.Pending), n)
	}
	for _, e := range s.effects {
		// Sent (unknown when a loaded machine cut its send's answer):
		// never final without an answer, never sent again.
		if e.State.Final() || e.Sends != 1 {
			t.Errorf("%s %s after %d sends, want sent once, left as it is", e.Key, e.State, e.Sends)
		}
	}
	sp := res.StillProcessing("revenue shares", "Infinia", wait)
	t.Log(sp)
	if !errors.Is(sp, pipeline.ErrStillProcessing) || !strings.Contains(sp.Error(), fmt.Sprintf("%d revenue shares still processing at Infinia", n)) ||
		!strings.Contains(sp.Error(), "revenue-sharing/query") || !strings.Contains(sp.Error(), "not asked again once Infinia did not answer after the wait") {
		t.Errorf("%v: want the summarised still processing, with the question that got no answer", sp)
	}
}
