package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// mute is a provider that, while hung, holds every request for hang and
// ends it with no answer (ErrNoAnswer), as its client would after its
// retries against a provider that accepts connections and never answers;
// every other send it holds so is applied all the same (an answer lost
// says nothing of the money). Answering, it keeps each key's request once
// (idempotent by key): a query answers succeeded for a key it holds, not
// found for any other.
type mute struct {
	hang time.Duration
	hung atomic.Bool

	mu      sync.Mutex
	held    map[string]bool // the keys it holds a request of
	again   []string        // keys sent again while it held them: a blind resend
	sends   int             // sends while hung
	queries int             // queries while hung
	asked   int             // queries while answering
	sent    int             // sends while answering
}

func newMute(hang time.Duration) *mute {
	m := &mute{hang: hang, held: map[string]bool{}}
	m.hung.Store(true)
	return m
}

func (m *mute) wait(ctx context.Context) error {
	select {
	case <-time.After(m.hang):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *mute) Send(ctx context.Context, e Effect) (Outcome, error) {
	m.mu.Lock()
	if m.held[e.Key] {
		m.again = append(m.again, e.Key)
	}
	if !m.hung.Load() {
		m.held[e.Key] = true
		m.sent++
		m.mu.Unlock()
		return Outcome{Status: OutcomeSucceeded, Ref: "ref-" + e.Key}, nil
	}
	m.sends++
	if m.sends%2 == 1 {
		m.held[e.Key] = true
	}
	m.mu.Unlock()
	if err := m.wait(ctx); err != nil {
		return Outcome{}, fmt.Errorf("send %s: %w", e.Key, err)
	}
	return Outcome{}, NoAnswer(fmt.Errorf("provider request %s: context deadline exceeded", e.Key))
}

func (m *mute) Query(ctx context.Context, e Effect) (Outcome, error) {
	m.mu.Lock()
	if !m.hung.Load() {
		m.asked++
		held := m.held[e.Key]
		m.mu.Unlock()
		if held {
			return Outcome{Status: OutcomeSucceeded, Ref: "ref-" + e.Key}, nil
		}
		return Outcome{Status: OutcomeNotFound}, nil
	}
	m.queries++
	m.mu.Unlock()
	if err := m.wait(ctx); err != nil {
		return Outcome{}, fmt.Errorf("query %s: %w", e.Key, err)
	}
	return Outcome{}, NoAnswer(fmt.Errorf("provider query %s: context deadline exceeded", e.Key))
}

func (m *mute) counts() (sends, queries int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sends, m.queries
}

// ledger returns the effects s holds, by id.
func (s *memEffects) ledger() []Effect {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Effect
	for _, e := range s.effects {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Effect) int { return int(a.ID - b.ID) })
	return out
}

// finishOnce runs the effects s holds again against m answering, and
// checks that each ends succeeded once: none sent again while m held it,
// each passed to Final once.
func finishOnce(t *testing.T, s *memEffects, m *mute) {
	t.Helper()
	m.hung.Store(false)
	var f finals
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return m }, Pacer: NewPacer(Limits{MaxInFlight: 3}),
		FirstPoll: 10 * time.Millisecond, Poll: 10 * time.Millisecond, Wait: time.Minute, Final: f.fn}
	res, err := en.Run(context.Background(), s.ledger())
	if err != nil || len(res.Pending) > 0 || res.NotAnswering != "" {
		t.Fatalf("re-run against the provider answering: %d pending, %q, err %v; want all final", len(res.Pending), res.NotAnswering, err)
	}
	for _, e := range s.ledger() {
		if e.State != EffectSucceeded || f.n[e.Key] != 1 {
			t.Errorf("%s %s after the re-run, passed to Final %d times; want succeeded, once", e.Key, e.State, f.n[e.Key])
		}
	}
	if len(m.again) > 0 {
		t.Errorf("sent again while the provider held them: %v (an unknown send is asked about, never sent blindly)", m.again)
	}
}

// TestEngineStopsSendingToAProviderThatDoesNotAnswer: a provider that
// accepts connections and never answers, from the first send. Each send
// spent its client's retries and was left unknown, a window at a time,
// and the next ones went out all the same: 60 sends of 200 ms, 3 at a
// time, held the stage 4 s before the wait even began (at real figures,
// a send's 10 s timeout for each request of the day). Now the third send
// in a row that gets no answer stops the engine: nothing more is sent,
// the requests sent are left unknown (asked by their key on the next
// run), the others planned, and the stage ends naming the provider as
// not answering (exit 1). The re-run against the provider answering
// finishes each once: those it had are found by their query, never sent
// again.
func TestEngineStopsSendingToAProviderThatDoesNotAnswer(t *testing.T) {
	t.Parallel()
	const n, inFlight, hang = 60, 3, 200 * time.Millisecond
	s, m := newMemEffects(), newMute(hang)
	var f finals
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return m }, Pacer: NewPacer(Limits{MaxInFlight: inFlight}),
		FirstPoll: 20 * time.Millisecond, Poll: 20 * time.Millisecond, Wait: 2 * time.Second, Final: f.fn}
	began := time.Now()
	res, err := en.Run(context.Background(), plan(t, s, n))
	took := time.Since(began)
	sends, queries := m.counts()
	t.Logf("took %s: %d sends, %d queries", took, sends, queries)
	if err != nil {
		t.Fatalf("err %v; want the effects left as they are, no error of their own", err)
	}
	// The first sends in flight end together, with no answer: the third
	// stops the engine; the places the first two freed were taken by two
	// more. Sent through, all 60 went out (and each was asked about).
	if limit := inFlight + NotAnsweringAfter; sends+queries > limit {
		t.Errorf("%d sends and %d queries to a provider that does not answer, want at most %d", sends, queries, limit)
	}
	if took > n/inFlight*hang/2 {
		t.Errorf("took %s, sends of %s: the provider held the stage", took, hang)
	}
	if len(res.Pending) != n {
		t.Fatalf("%d pending, want all %d left as they are", len(res.Pending), n)
	}
	var unknown, planned int
	for _, e := range s.ledger() {
		switch {
		case e.State == EffectUnknown && e.Sends == 1:
			unknown++
		case e.State == EffectPlanned && e.Sends == 0:
			planned++
		default:
			t.Errorf("%s %s after %d sends, want unknown after its one send, or planned", e.Key, e.State, e.Sends)
		}
	}
	if unknown != sends || unknown+planned != n || len(f.n) > 0 {
		t.Errorf("%d unknown, %d planned, %d final; want the %d sent unknown, the others planned, none final", unknown, planned, len(f.n), sends)
	}
	sp := res.StillProcessing("revenue shares", "the provider", en.Wait)
	t.Log(sp)
	if !errors.Is(sp, ErrStillProcessing) || KindOf(sp) != KindFailed || !strings.Contains(sp.Error(), "the provider is not answering") ||
		!strings.Contains(sp.Error(), fmt.Sprintf("%d revenue shares planned and not sent", planned)) || !strings.Contains(sp.Error(), "context deadline exceeded") {
		t.Errorf("%v: want the resumable still processing, the provider not answering, the shares not sent counted", sp)
	}
	finishOnce(t, s, m)
}

// TestEngineReRunStopsAskingAProviderThatDoesNotAnswer: a re-run whose
// every effect is pending (sent by the run before) asks about each before
// the wait begins (its feed is not done), each question through its
// client's retries: against a provider that does not answer, 27 questions
// of 5 attempts of 10 s, 3 at a time, held a re-run about 9 minutes, and a
// feed longer than the engine's window was never done at all (its
// pending effects asked again and again). Now the third question in a
// row that gets no answer stops the engine: no page more is read, nothing
// more asked, every effect as the ledger holds it; and the re-run against
// the provider answering finishes each once, nothing sent again.
func TestEngineReRunStopsAskingAProviderThatDoesNotAnswer(t *testing.T) {
	t.Parallel()
	const n, page, inFlight, hang = 60, 10, 3, 200 * time.Millisecond
	s, m := newMemEffects(), newMute(hang)
	for _, e := range plan(t, s, n) { // sent by the run before, held by the provider
		if err := s.MarkSent(context.Background(), e.ID); err != nil {
			t.Fatal(err)
		}
		m.held[e.Key] = true
	}
	all, pages := s.ledger(), 0
	var f finals
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return m }, Pacer: NewPacer(Limits{MaxInFlight: inFlight}),
		FirstPoll: 20 * time.Millisecond, Poll: 20 * time.Millisecond, Wait: 2 * time.Second, Window: page, Final: f.fn}
	// Bounded, so that an engine that never stops fails rather than hangs.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	began := time.Now()
	res, err := en.RunFeed(ctx, func(context.Context) ([]Effect, error) {
		pages++
		next := all[:min(page, len(all))]
		all = all[len(next):]
		return next, nil
	})
	took := time.Since(began)
	sends, queries := m.counts()
	t.Logf("took %s: %d pages read, %d sends, %d queries", took, pages, sends, queries)
	if err != nil {
		t.Fatalf("err %v; want the effects left as they are", err)
	}
	if limit := inFlight + NotAnsweringAfter; sends+queries > limit || sends > 0 {
		t.Errorf("%d sends and %d queries to a provider that does not answer, want no send and at most %d queries", sends, queries, limit)
	}
	if pages != 1 || !res.Unread {
		t.Errorf("%d pages read, unread %v; want the feed's first page alone, the rest left unread", pages, res.Unread)
	}
	if len(res.Pending) != page {
		t.Errorf("%d pending, want the page's %d left as they are", len(res.Pending), page)
	}
	for _, e := range s.ledger() {
		if e.State != EffectSent || e.Sends != 1 {
			t.Errorf("%s %s after %d sends, want sent once, left as it is", e.Key, e.State, e.Sends)
		}
	}
	sp := res.StillProcessing("revenue shares", "the provider", en.Wait)
	t.Log(sp)
	if !errors.Is(sp, ErrStillProcessing) || KindOf(sp) != KindFailed || !strings.Contains(sp.Error(), "the provider is not answering") ||
		!strings.Contains(sp.Error(), "in the ledger were not read") || !strings.Contains(sp.Error(), "provider query") {
		t.Errorf("%v: want the resumable still processing, the provider not answering, the feed left unread", sp)
	}
	finishOnce(t, s, m)
	if m.sent > 0 {
		t.Errorf("%d sent on the re-run, want none: each was held by the provider", m.sent)
	}
}

// flaky answers its queries at once: with no answer (ErrNoAnswer), or,
// every third, with an error it answered ("retry later").
type flaky struct {
	answerEvery int // every answerEvery'th query is answered; 0: none
	queries     atomic.Int64
}

func (p *flaky) Send(context.Context, Effect) (Outcome, error) {
	return Outcome{}, errors.New("not sent in this test")
}

func (p *flaky) Query(_ context.Context, e Effect) (Outcome, error) {
	n := p.queries.Add(1)
	if p.answerEvery > 0 && n%int64(p.answerEvery) == 0 {
		return Outcome{}, fmt.Errorf("provider query %s: SYS-008 service unavailable, retry later", e.Key)
	}
	return Outcome{}, NoAnswer(fmt.Errorf("provider query %s: connection reset", e.Key))
}

// TestEngineTellsAnAnswerThatSaysErrorFromNone: only requests in a row
// that got no answer at all stop the engine; an answer that says error
// ("retry later") is an answer, and starts the count again.
func TestEngineTellsAnAnswerThatSaysErrorFromNone(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		answerEvery int
		stops       bool
	}{{0, true}, {NotAnsweringAfter, false}} {
		s, p := newMemEffects(), &flaky{answerEvery: c.answerEvery}
		effects := plan(t, s, 5)
		for i := range effects {
			effects[i].State, effects[i].Sends = EffectSent, 1
		}
		en := &Engine{Store: s, Sender: func(Effect) EffectSender { return p }, Pacer: NewPacer(Limits{MaxInFlight: 1}),
			FirstPoll: 5 * time.Millisecond, Poll: 5 * time.Millisecond, Wait: 200 * time.Millisecond}
		res, err := en.Run(context.Background(), effects)
		if err != nil {
			t.Fatal(err)
		}
		q := p.queries.Load()
		if stopped := res.NotAnswering != ""; stopped != c.stops || (c.stops && q != NotAnsweringAfter) || (!c.stops && q <= NotAnsweringAfter) {
			t.Errorf("every %d answered: %d queries, stopped as not answering %v (%q); want stopped %v", c.answerEvery, q, stopped, res.NotAnswering, c.stops)
		}
		if len(res.Pending) != len(effects) {
			t.Errorf("every %d answered: %d pending, want all %d left as they are", c.answerEvery, len(res.Pending), len(effects))
		}
	}
}
