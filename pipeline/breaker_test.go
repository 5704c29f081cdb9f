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

// hungChecks is a provider's check, as a stage asks it outside the
// engine, against a provider that accepts connections and never
// answers: the first few end with no answer, the n-th after n times hang
// (the client's retries spent), the later ones only once their context
// is done (a request that is not cut holds the stage for good).
type hungChecks struct {
	hang      time.Duration
	timingOut int // how many end by themselves, with no answer
	made      atomic.Int64
	cut       atomic.Int64 // ended by their context
}

func (h *hungChecks) check(ctx context.Context) (int, error) {
	n := h.made.Add(1)
	if n <= int64(h.timingOut) {
		select {
		case <-time.After(time.Duration(n) * h.hang):
			return 0, NoAnswer(fmt.Errorf("provider check %d: context deadline exceeded", n))
		case <-ctx.Done():
		}
	} else {
		<-ctx.Done()
	}
	h.cut.Add(1)
	return 0, fmt.Errorf("provider check %d: %w", n, ctx.Err())
}

// TestAStageBreakerStopsItsChecksAndItsEngine: a stage that checks each
// of its subjects with the provider before its engine (WithBreaker,
// Ask) stops once NotAnsweringAfter checks in a row got no answer: no
// check more is made, those in flight are cut, its Each starts no call
// more and says so once; the engine run with the same context reads no
// feed and sends nothing; and the stage ends naming the provider as not
// answering (exit 1, resumable), the checks' own errors said by it.
func TestAStageBreakerStopsItsChecksAndItsEngine(t *testing.T) {
	t.Parallel()
	const n, inFlight = 40, 3
	h := &hungChecks{hang: 50 * time.Millisecond, timingOut: NotAnsweringAfter}
	// Bounded, so that a check that is not cut fails the test rather
	// than hangs it.
	bound, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx := WithBreaker(bound)
	p := NewPacer(Limits{MaxInFlight: inFlight})
	err := p.EachAsNeeded(ctx, n, nil, func(ctx context.Context, i int) error {
		if err := Pace(ctx); err != nil {
			return err
		}
		if _, err := Ask(ctx, h.check); err != nil {
			return fmt.Errorf("subject %d: %w", i, err)
		}
		return nil
	})
	t.Logf("%d checks made, %d cut: %v", h.made.Load(), h.cut.Load(), err)
	if bound.Err() != nil {
		t.Fatal("the checks in flight were not cut once the provider was taken as not answering")
	}
	// The first three end one after another, each freeing its place to
	// one more check, which hangs: the third stops the stage, and the two
	// begun since are cut.
	if made, cut := h.made.Load(), h.cut.Load(); made > inFlight+NotAnsweringAfter-1 || cut != made-NotAnsweringAfter {
		t.Errorf("%d checks made, %d cut; want at most %d made, those in flight cut", made, cut, inFlight+NotAnsweringAfter-1)
	}
	if !errors.Is(err, ErrNotAnswering) || strings.Count(err.Error(), "subject") != NotAnsweringAfter {
		t.Errorf("%v: want the checks with no answer, the provider not answering said once", err)
	}
	if other := OtherThanNoAnswer(err); other != nil {
		t.Errorf("other than no answer: %v, want none", other)
	}
	if _, err := Ask(ctx, h.check); !errors.Is(err, ErrNotAnswering) || h.made.Load() > inFlight+NotAnsweringAfter {
		t.Errorf("a check once the provider is not answering: %v, %d made; want none made", err, h.made.Load())
	}

	s := newMemEffects()
	pages := 0
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return newMute(time.Millisecond) }, Pacer: p, Wait: time.Second}
	res, err := en.RunFeed(ctx, func(context.Context) ([]Effect, error) {
		pages++
		return plan(t, s, 5), nil
	})
	if err != nil || pages != 0 || res.NotAnswering == "" || !res.Unread {
		t.Errorf("engine: %d pages read, not answering %q, unread %v, err %v; want no page read, the provider not answering", pages, res.NotAnswering, res.Unread, err)
	}

	end := NotAnswering(ctx, "the provider")
	t.Log(end)
	if !errors.Is(end, ErrStillProcessing) || KindOf(end) != KindFailed || !strings.Contains(end.Error(), "the provider is not answering") ||
		!strings.Contains(end.Error(), "context deadline exceeded") || !strings.Contains(end.Error(), "re-run to resolve once the provider answers") {
		t.Errorf("%v: want the resumable end naming the provider as not answering", end)
	}
	if NotAnswering(WithBreaker(context.Background()), "the provider") != nil || NotAnswering(context.Background(), "the provider") != nil {
		t.Error("not answering with a breaker not open, or none")
	}
}

// TestAStagesRequestsCountWithItsEngines: the stage's checks and its
// engine's requests count together: two checks with no answer, then the
// engine's first send with none, stop the engine at that send.
func TestAStagesRequestsCountWithItsEngines(t *testing.T) {
	t.Parallel()
	ctx := WithBreaker(context.Background())
	for range NotAnsweringAfter - 1 {
		if _, err := Ask(ctx, func(context.Context) (int, error) { return 0, NoAnswer(errors.New("check: connection refused")) }); err == nil || errors.Is(err, ErrNotAnswering) {
			t.Fatalf("check: %v, want no answer, the provider not taken as not answering yet", err)
		}
	}
	s, m := newMemEffects(), newMute(time.Millisecond)
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return m }, Pacer: NewPacer(Limits{MaxInFlight: 1}), Wait: time.Second}
	res, err := en.Run(ctx, plan(t, s, 10))
	if sends, _ := m.counts(); err != nil || sends != 1 || res.NotAnswering == "" {
		t.Errorf("%d sends, not answering %q, err %v; want the first send to stop it", sends, res.NotAnswering, err)
	}
	// An answer starts the count again.
	ctx = WithBreaker(context.Background())
	for i := range 2 * NotAnsweringAfter {
		_, err := Ask(ctx, func(context.Context) (int, error) {
			if i%NotAnsweringAfter == NotAnsweringAfter-1 {
				return 0, errors.New("check: SYS-008 retry later") // an answer that says error
			}
			return 0, NoAnswer(errors.New("check: connection refused"))
		})
		if errors.Is(err, ErrNotAnswering) {
			t.Fatalf("check %d: %v; an answer between them, want the provider answering", i, err)
		}
	}
}

// nestedAsk is a sender whose Query asks the provider through Ask (an
// adapter's method that asks so), and gets no answer.
type nestedAsk struct{ queries atomic.Int64 }

func (a *nestedAsk) Send(context.Context, Effect) (Outcome, error) {
	return Outcome{}, errors.New("not sent in this test")
}

func (a *nestedAsk) Query(ctx context.Context, e Effect) (Outcome, error) {
	return Ask(ctx, func(context.Context) (Outcome, error) {
		a.queries.Add(1)
		return Outcome{}, NoAnswer(fmt.Errorf("provider query %s: connection reset", e.Key))
	})
}

// TestAnAskWithinAnEffectsRequestIsThatRequest: an adapter's Ask within
// an engine's question is a part of that question, counted once: two
// questions with no answer do not take the provider as not answering.
func TestAnAskWithinAnEffectsRequestIsThatRequest(t *testing.T) {
	t.Parallel()
	s, a := newMemEffects(), &nestedAsk{}
	effects := plan(t, s, NotAnsweringAfter-1)
	for i := range effects {
		effects[i].State, effects[i].Sends = EffectSent, 1
	}
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return a }, Pacer: NewPacer(Limits{MaxInFlight: 1}),
		FirstPoll: time.Hour, Poll: time.Hour, Wait: time.Millisecond}
	res, err := en.Run(WithBreaker(context.Background()), effects)
	if err != nil || res.NotAnswering != "" || a.queries.Load() != int64(len(effects)) {
		t.Errorf("%d queries, not answering %q, err %v; want each asked once, %d questions with no answer not taken as %d",
			a.queries.Load(), res.NotAnswering, err, len(effects), 2*len(effects))
	}
}

// TestAFeedThatFindsTheProviderNotAnsweringStopsTheEngine: a stage's feed
// that checks its page with the provider and finds it not answering
// (ErrNotAnswering) stops the engine as its own requests would: the page
// it gave held as it is (planned, never sent), no page more read, no
// error of its own.
func TestAFeedThatFindsTheProviderNotAnsweringStopsTheEngine(t *testing.T) {
	t.Parallel()
	ctx := WithBreaker(context.Background())
	s, m := newMemEffects(), newMute(time.Millisecond)
	pages := 0
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return m }, Pacer: NewPacer(Limits{MaxInFlight: 2}), Wait: time.Second, Window: 1}
	res, err := en.RunFeed(ctx, func(ctx context.Context) ([]Effect, error) {
		pages++
		page := plan(t, s, 3)
		for range NotAnsweringAfter {
			if _, err := Ask(ctx, func(context.Context) (int, error) { return 0, NoAnswer(errors.New("check: connection refused")) }); errors.Is(err, ErrNotAnswering) {
				return page, fmt.Errorf("page %d: %w", pages, err)
			}
		}
		return page, nil
	})
	sends, queries := m.counts()
	if err != nil || pages != 1 || sends+queries > 0 || !res.Unread || res.NotAnswering == "" || len(res.Pending) != 3 {
		t.Errorf("%d pages, %d requests, %d pending, unread %v, not answering %q, err %v; want the first page held, unsent, the rest unread",
			pages, sends+queries, len(res.Pending), res.Unread, res.NotAnswering, err)
	}
	for _, e := range s.ledger() {
		if e.State != EffectPlanned {
			t.Errorf("%s %s, want planned, never sent", e.Key, e.State)
		}
	}
	sp := res.StillProcessing("revenue shares", "the provider", en.Wait)
	if !strings.Contains(sp.Error(), "3 revenue shares planned and not sent") || !strings.Contains(sp.Error(), "not read") {
		t.Errorf("%v: want the page planned and not sent, the rest not read", sp)
	}
}

// TestOtherThanNoAnswer: what a stage stopped by a provider not answering
// still says besides: errors that are not about an answer missing, also
// among those joined.
func TestOtherThanNoAnswer(t *testing.T) {
	t.Parallel()
	none := NoAnswer(errors.New("check A: connection refused"))
	ledger := errors.New("ledger: disk full")
	refused := fmt.Errorf("subject 9: %w", errNotAsked)
	got := OtherThanNoAnswer(errors.Join(fmt.Errorf("subject 1: %w", none), ledger, refused), nil, notRecorded{errors.New("commit")})
	if got == nil || got.Error() != "ledger: disk full\ncommit" || !errors.Is(got, ErrNotRecorded) {
		t.Errorf("%q, want the ledger's errors alone", got)
	}
	if OtherThanNoAnswer(none, refused, nil) != nil {
		t.Error("no answer, not asked: want nothing else")
	}
}

// fileServerErr is a request's error that says which of a provider's
// servers it went to.
type fileServerErr struct{ error }

func (e fileServerErr) Unwrap() error { return e.error }

// TestNotAnsweringCauseIsTheRequestThatTookTheProviderSo: a stage whose
// requests go to two of its provider's servers tells by
// NotAnsweringCause which one stopped answering: the error, as it was,
// of the request that took the provider as not answering; nil while it
// answers.
func TestNotAnsweringCauseIsTheRequestThatTookTheProviderSo(t *testing.T) {
	t.Parallel()
	ctx := WithBreaker(context.Background())
	ask := func(err error) {
		_, _ = Ask(ctx, func(context.Context) (int, error) { return 0, err })
	}
	ask(NoAnswer(errors.New("api: context deadline exceeded")))
	ask(NoAnswer(errors.New("api: context deadline exceeded")))
	if err := NotAnsweringCause(ctx); err != nil {
		t.Fatalf("%v while the provider is not taken as not answering", err)
	}
	ask(NoAnswer(fileServerErr{errors.New("file server: stalled")}))
	ask(NoAnswer(errors.New("api: not asked")))
	var fs fileServerErr
	if err := NotAnsweringCause(ctx); !errors.As(err, &fs) || !errors.Is(err, ErrNoAnswer) {
		t.Errorf("%v: want the third request's error, the file server's", err)
	}
	if err := NotAnsweringCause(context.Background()); err != nil {
		t.Errorf("%v without a breaker", err)
	}
}
