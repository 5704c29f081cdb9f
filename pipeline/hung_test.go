package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// hungProvider answers every send PROCESSING, then hangs: each status
// query takes hang (a client's attempts, each cut by its timeout, and
// their backoff) and ends with no answer, as a provider stopped
// (SIGSTOP) that accepts connections and never answers.
type hungProvider struct {
	hang, send     time.Duration // a query's time, a send's
	sends, queries atomic.Int64
}

func (h *hungProvider) Send(context.Context, Effect) (Outcome, error) {
	h.sends.Add(1)
	time.Sleep(h.send)
	return Outcome{Status: OutcomePending}, nil
}

func (h *hungProvider) Query(ctx context.Context, e Effect) (Outcome, error) {
	h.queries.Add(1)
	select {
	case <-time.After(h.hang):
	case <-ctx.Done():
	}
	return Outcome{}, fmt.Errorf("provider revenue-sharing/query %s: context deadline exceeded", e.Key)
}

// TestEngineHungProviderEndsSoonAfterTheWait: a provider that stops
// answering once the requests are sent held the stage for every query's
// whole retry time, a few at a time (the window sized by the latency seen
// while it answered): 27 queries of 300 ms, 3 at a time, ran 2.7 s past a
// wait of 100 ms (an operator's walkthrough: 545 s with
// --provider-wait 20s); the queries that got no answer were no
// "unanswered" of the progress lines, their effects left the engine, and
// the run ended with 27 error lines instead of "still processing". Once
// the wait is over, the first question that gets no answer stops the
// rest: every effect is left pending as it is (sent, never resent, never
// made final), the unanswered questions are counted, and the end is the
// summarised "still processing" (exit 1). The sends take a few
// milliseconds: the first are due to be asked about when the feed ends,
// and the wait begins before that wave of questions (begun after it, it
// had no wait to stop it).
func TestEngineHungProviderEndsSoonAfterTheWait(t *testing.T) {
	t.Parallel()
	const n, hang, wait = 27, 300 * time.Millisecond, 100 * time.Millisecond
	s, h := newMemEffects(), &hungProvider{hang: hang, send: 3 * time.Millisecond}
	var logs bytes.Buffer
	progress := &Progress{}
	ctx, cancel := context.WithCancel(WithProgress(context.Background(), progress))
	defer cancel()
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		progress.report(ctx, slog.New(slog.NewTextHandler(&logs, nil)), 50*time.Millisecond)
	}()
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return h }, Pacer: NewPacer(Limits{MaxInFlight: 3}),
		FirstPoll: 20 * time.Millisecond, Poll: 20 * time.Millisecond, Wait: wait,
		Error: func(_ context.Context, e Effect, err error) error {
			if SubjectOnly(err) {
				return nil
			}
			return fmt.Errorf("revenue share %s: %w", e.Key, err)
		}}
	began := time.Now()
	res, err := en.Run(ctx, plan(t, s, n))
	took := time.Since(began)
	time.Sleep(120 * time.Millisecond) // a progress line after the end
	cancel()
	<-reported
	if err != nil {
		t.Fatalf("err after %s: %.300v\nwant the effects pending, no error of their own", took, err)
	}
	// The first wave starts before the wait is over (20 ms): its first
	// queries end with no answer at 300 ms, and stop the rest. Asked
	// through, 3 at a time, they took 9 hangs; the bound leaves the load
	// of a busy machine (-race, other tests) its margin.
	if took > 5*hang {
		t.Errorf("took %s with a wait of %s and queries of %s: the hung provider held the stage", took, wait, hang)
	}
	if h.sends.Load() != n {
		t.Errorf("%d sends, want %d: nothing is sent again", h.sends.Load(), n)
	}
	if len(res.Pending) != n {
		t.Fatalf("%d pending, want all %d left as they are", len(res.Pending), n)
	}
	for _, e := range s.effects {
		if e.State != EffectSent || e.Sends != 1 {
			t.Errorf("%s %s after %d sends in the ledger, want sent once, left as it is", e.Key, e.State, e.Sends)
		}
	}
	sp := res.StillProcessing("revenue shares", "the provider", wait)
	if !errors.Is(sp, ErrStillProcessing) || KindOf(sp) != KindFailed || !strings.Contains(sp.Error(), "27 revenue shares still processing") ||
		!strings.Contains(sp.Error(), "got no answer") || !strings.Contains(sp.Error(), "context deadline exceeded") {
		t.Errorf("%v: want the summarised still processing, with the questions that got no answer", sp)
	}
	if !strings.Contains(logs.String(), "level=WARN msg=progress") || !strings.Contains(logs.String(), "unanswered=") {
		t.Errorf("progress lines:\n%s\nwant a WARN line counting the questions that got no answer", logs.String())
	}
}

// notFoundLater is a provider whose sends are lost (no answer) and whose
// queries answer, after latency, that the request never arrived.
type notFoundLater struct {
	latency        time.Duration
	sends, queries atomic.Int64
}

func (p *notFoundLater) Send(context.Context, Effect) (Outcome, error) {
	p.sends.Add(1)
	return Outcome{}, errors.New("connection reset")
}

func (p *notFoundLater) Query(context.Context, Effect) (Outcome, error) {
	p.queries.Add(1)
	time.Sleep(p.latency)
	return Outcome{Status: OutcomeNotFound}, nil
}

// TestEngineSendsNothingAgainAfterTheWait: a question asked before the
// wait was over whose answer, "never arrived", comes after it sent the
// request again (the wave was told to send nothing again only when it
// began after the wait). Nothing goes out again once the wait is over:
// the request is left unknown, for the next run to ask.
func TestEngineSendsNothingAgainAfterTheWait(t *testing.T) {
	t.Parallel()
	s, p := newMemEffects(), &notFoundLater{latency: 150 * time.Millisecond}
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return p }, FirstPoll: 10 * time.Millisecond, Poll: 10 * time.Millisecond,
		Wait: 50 * time.Millisecond}
	res, err := en.Run(context.Background(), plan(t, s, 1))
	if err != nil {
		t.Fatal(err)
	}
	if n := p.sends.Load(); n != 1 {
		t.Errorf("%d sends, want 1: the answer to the question came after the wait", n)
	}
	if len(res.Pending) != 1 || res.Pending[0].State != EffectUnknown || res.Pending[0].Sends != 1 {
		t.Errorf("pending %+v, want the request left unknown after its one send", res.Pending)
	}
}
