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
// processing" (Infinia named as not answering: the 3 questions in flight
// all got none).
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
	// The sends go through a client of the rig's ordinary timeout: at
	// 100 ms, a send a loaded machine answered late was a send with no
	// answer, and three of them in a row took Infinia as not answering
	// before any question (seen under -race beside other tests).
	cfg := r.cfg
	cfg.Timeout = 5 * time.Second
	sends, err := infiniapay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sender := sendsAndQueries{send: infiniapay.RevenueShareSender{Client: sends}, query: infiniapay.RevenueShareSender{Client: r.client}}
	en := &pipeline.Engine{Store: s, Sender: func(pipeline.Effect) pipeline.EffectSender { return sender },
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
	// The 3 questions in flight all got no answer: Infinia is not
	// answering (pipeline.NotAnsweringAfter), which the end says first.
	if !errors.Is(sp, pipeline.ErrStillProcessing) || !strings.Contains(sp.Error(), "Infinia is not answering") ||
		!strings.Contains(sp.Error(), fmt.Sprintf("%d revenue shares sent and not final are left as they are", n)) ||
		!strings.Contains(sp.Error(), "revenue-sharing/query") || !strings.Contains(sp.Error(), "24 not asked again") {
		t.Errorf("%v: want the summarised still processing, with the question that got no answer", sp)
	}
}

// TestAReRunAgainstAHungInfiniaStopsAsking: a re-run whose every revenue
// share is pending (sent by the run before) asks Infinia about each as
// soon as its feed gives them, before the wait begins: against an
// Infinia that accepts connections and never answers, each question took
// its client's 5 attempts, 3 at a time, and the wait could not stop them
// (27 shares, attempts of 100 ms: 135 attempts, about 5 s past a wait of
// 200 ms; at real figures, 5 attempts of 10 s, about 9 minutes). Now the
// third question in a row that gets no answer stops the engine (the
// questions in flight cut), every share left sent as the ledger holds
// it, and the stage's end names Infinia as not answering. The re-run once
// Infinia answers finishes each share once, nothing sent again.
func TestAReRunAgainstAHungInfiniaStopsAsking(t *testing.T) {
	const n, inFlight, wait = 27, 3, 200 * time.Millisecond
	release := make(chan struct{})
	var hung atomic.Bool
	var attempts atomic.Int64 // HTTP requests Infinia took while hung
	r := newRig(t, infiniapaytest.Options{}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if hung.Load() {
				attempts.Add(1)
				select { // accepted, never answered
				case <-req.Context().Done():
				case <-release:
				}
				return
			}
			next.ServeHTTP(w, req)
		})
	}, func(c *infiniapay.Config) { c.Timeout = 100 * time.Millisecond })
	t.Cleanup(func() { close(release) }) // before the server's Close
	payable(r)
	sender := infiniapay.RevenueShareSender{Client: r.client}
	// The run before sent with a client of ordinary patience: a send is
	// never retried on a timeout, and a loaded machine can take longer
	// than the 100 ms this test gives the re-run's questions.
	before := r.cfg
	before.Timeout = 5 * time.Second
	beforeClient, err := infiniapay.New(before)
	if err != nil {
		t.Fatal(err)
	}
	s := &memEffects{effects: map[int64]pipeline.Effect{}}
	for i := range n { // sent by the run before: Infinia has them PROCESSING
		e := effect(fmt.Sprintf("RS-RERUN-%02d", i), 100)
		e.ID = int64(i + 1)
		if out, err := (infiniapay.RevenueShareSender{Client: beforeClient}).Send(context.Background(), e); err != nil || out.Status != pipeline.OutcomePending {
			t.Fatalf("send %s: %+v, %v", e.Key, out, err)
		}
		e.State, e.Sends = pipeline.EffectSent, 1
		s.effects[e.ID] = e
	}
	ledger := func() []pipeline.Effect {
		var out []pipeline.Effect
		for id := range int64(n) {
			out = append(out, s.effects[id+1])
		}
		return out
	}
	run := func(wait time.Duration) (pipeline.EngineResult, error) {
		en := &pipeline.Engine{Store: s, Sender: func(pipeline.Effect) pipeline.EffectSender { return sender },
			Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: inFlight}), FirstPoll: 20 * time.Millisecond, Poll: 20 * time.Millisecond, Wait: wait,
			Error: func(_ context.Context, e pipeline.Effect, err error) error { // as the distribute stage's
				if pipeline.SubjectOnly(err) {
					return nil
				}
				return fmt.Errorf("revenue share %s: %w", e.Key, err)
			}}
		page := ledger()
		return en.RunFeed(context.Background(), func(context.Context) ([]pipeline.Effect, error) {
			next := page
			page = nil
			return next, nil
		})
	}

	hung.Store(true)
	began := time.Now()
	res, err := run(wait)
	took := time.Since(began)
	hung.Store(false)
	t.Logf("took %s, %d attempts made", took, attempts.Load())
	if err != nil {
		t.Fatalf("after %s: %d error lines, first %.200v; want the shares pending", took, strings.Count(err.Error(), "\n")+1, err)
	}
	// The first 3 questions spend their 5 attempts, and stop the engine;
	// the 2 begun as the first ones ended are cut. Asked through, the 27
	// took 135 attempts.
	if limit := int64((inFlight + pipeline.NotAnsweringAfter) * 5); attempts.Load() > limit {
		t.Errorf("%d attempts to a hung Infinia, want at most %d", attempts.Load(), limit)
	}
	if len(res.Pending) != n {
		t.Fatalf("%d pending, want all %d", len(res.Pending), n)
	}
	for _, e := range s.effects {
		if e.State != pipeline.EffectSent || e.Sends != 1 {
			t.Errorf("%s %s after %d sends, want sent once, left as it is", e.Key, e.State, e.Sends)
		}
	}
	sp := res.StillProcessing("revenue shares", "Infinia", wait)
	t.Log(sp)
	if !errors.Is(sp, pipeline.ErrStillProcessing) || pipeline.KindOf(sp) != pipeline.KindFailed || !strings.Contains(sp.Error(), "Infinia is not answering") ||
		!strings.Contains(sp.Error(), "revenue-sharing/query") {
		t.Errorf("%v: want the resumable still processing, naming Infinia as not answering", sp)
	}

	// The re-run, Infinia answering again: each share asked about and
	// adopted, none sent again.
	sendsBefore := r.fake.Calls(infiniapay.APIRevenueShare)
	res, err = run(10 * time.Second)
	if err != nil || len(res.Pending) > 0 || res.NotAnswering != "" {
		t.Fatalf("re-run: %d pending, %q, err %v; want every share final", len(res.Pending), res.NotAnswering, err)
	}
	for _, e := range s.effects {
		if e.State != pipeline.EffectSucceeded || e.Sends != 1 {
			t.Errorf("%s %s after %d sends, want succeeded after its one send", e.Key, e.State, e.Sends)
		}
	}
	if got, sent := len(r.fake.RevenueShares()), r.fake.Calls(infiniapay.APIRevenueShare)-sendsBefore; got != n || sent != 0 {
		t.Errorf("%d revenue shares at Infinia, %d sent on the re-run; want %d, none sent again", got, sent, n)
	}
}

// sendsAndQueries sends with send and asks with query.
type sendsAndQueries struct{ send, query pipeline.EffectSender }

func (s sendsAndQueries) Send(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	return s.send.Send(ctx, e)
}

func (s sendsAndQueries) Query(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	return s.query.Query(ctx, e)
}
