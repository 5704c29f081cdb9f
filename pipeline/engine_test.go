package pipeline

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memEffects is an in-memory EffectStore for the engine's unit tests (the
// ledger's own test drives the engine over PostgreSQL).
type memEffects struct {
	mu      sync.Mutex
	effects map[int64]Effect
	causes  map[int64][]EffectCause
}

func newMemEffects() *memEffects {
	return &memEffects{effects: map[int64]Effect{}, causes: map[int64][]EffectCause{}}
}

func (s *memEffects) PlanEffect(_ context.Context, e Effect) (Effect, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.ID, e.State = int64(len(s.effects)+1), EffectPlanned
	s.effects[e.ID] = e
	s.causes[e.ID] = []EffectCause{CausePlanned}
	return e, nil
}

func (s *memEffects) MarkSent(_ context.Context, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.effects[id]
	e.State, e.Sends = EffectSent, e.Sends+1
	s.effects[id] = e
	s.causes[id] = append(s.causes[id], CauseSent)
	return nil
}

func (s *memEffects) RecordOutcome(ctx context.Context, id int64, state EffectState, ref, lastErr string) error {
	return s.RecordOutcomeCause(ctx, id, state, ref, lastErr, "")
}

func (s *memEffects) RecordOutcomeCause(_ context.Context, id int64, state EffectState, ref, lastErr string, cause EffectCause) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.effects[id]
	if e.State.Final() {
		return fmt.Errorf("effect %d is %s already", id, e.State)
	}
	e.State, e.ProviderRef, e.LastError = state, ref, lastErr
	s.effects[id] = e
	s.causes[id] = append(s.causes[id], cause)
	return nil
}

// slowProvider answers after latency; a key is PROCESSING for its first
// processing queries; it applies each key at most once and can lose the
// answer of the first send of some keys (applied anyway).
type slowProvider struct {
	latency    time.Duration
	processing int
	lose       map[string]bool
	accepted   bool // a send is answered PROCESSING even when no query is

	mu       sync.Mutex
	applied  map[string]int
	queries  map[string]int
	sends    int
	inFlight int
	peak     int
	sendAt   []time.Time
	queryAt  []time.Time
}

func newSlowProvider(latency time.Duration, processing int) *slowProvider {
	return &slowProvider{latency: latency, processing: processing, lose: map[string]bool{}, applied: map[string]int{}, queries: map[string]int{}}
}

func (p *slowProvider) enter() {
	p.mu.Lock()
	p.inFlight++
	p.peak = max(p.peak, p.inFlight)
	p.mu.Unlock()
	time.Sleep(p.latency)
}

func (p *slowProvider) leave() { p.inFlight-- }

func (p *slowProvider) Send(_ context.Context, e Effect) (Outcome, error) {
	p.enter()
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.leave()
	p.sends++
	p.sendAt = append(p.sendAt, time.Now())
	p.applied[e.Key]++
	if p.lose[e.Key] {
		delete(p.lose, e.Key)
		return Outcome{}, errors.New("connection reset")
	}
	if p.processing > 0 || p.accepted {
		return Outcome{Status: OutcomePending}, nil
	}
	return Outcome{Status: OutcomeSucceeded, Ref: "ref-" + e.Key}, nil
}

func (p *slowProvider) Query(_ context.Context, e Effect) (Outcome, error) {
	p.enter()
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.leave()
	p.queryAt = append(p.queryAt, time.Now())
	if p.applied[e.Key] == 0 {
		return Outcome{Status: OutcomeNotFound}, nil
	}
	p.queries[e.Key]++
	if p.queries[e.Key] <= p.processing {
		return Outcome{Status: OutcomePending}, nil
	}
	return Outcome{Status: OutcomeSucceeded, Ref: "ref-" + e.Key}, nil
}

// bucket is a token bucket of burst 1 (what cmd wires with rate.Limiter).
type bucket struct {
	mu    sync.Mutex
	every time.Duration
	next  time.Time
}

func newBucket(perSecond float64) *bucket {
	return &bucket{every: time.Duration(float64(time.Second) / perSecond)}
}

func (b *bucket) Wait(ctx context.Context) error {
	b.mu.Lock()
	now := time.Now()
	at := b.next
	if at.Before(now) {
		at = now
	}
	b.next = at.Add(b.every)
	b.mu.Unlock()
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func plan(t *testing.T, s *memEffects, n int) []Effect {
	t.Helper()
	var out []Effect
	for i := 0; i < n; i++ {
		e, err := s.PlanEffect(context.Background(), Effect{Kind: "test", Subject: fmt.Sprintf("S%03d", i), Attempt: 1, Key: fmt.Sprintf("K%03d", i), Amount: 100})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// finals counts the Final calls per key.
type finals struct {
	mu sync.Mutex
	n  map[string]int
}

func (f *finals) fn(_ context.Context, e Effect) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == nil {
		f.n = map[string]int{}
	}
	f.n[e.Key]++
	return nil
}

// TestEngineThroughputFollowsTheLimit: 200 effects at 100 requests a
// second against a provider taking 50 ms a request finish in about 2 s:
// the rate, not a worker count (4 workers would take 200 x 50 ms / 4 =
// 2.5 s at best, and 1 s per extra poll each), and about rate x latency
// are in flight.
func TestEngineThroughputFollowsTheLimit(t *testing.T) {
	t.Parallel()
	s, p := newMemEffects(), newSlowProvider(50*time.Millisecond, 0)
	effects := plan(t, s, 200)
	var f finals
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return p }, Pacer: NewPacer(Limits{Limit: newBucket(100), Rate: 100}), Final: f.fn}
	began := time.Now()
	res, err := en.Run(context.Background(), effects)
	took := time.Since(began)
	if err != nil || len(res.Pending) != 0 || res.Sent != 200 {
		t.Fatalf("err %v, %d pending, %d sent", err, len(res.Pending), res.Sent)
	}
	if took < 1900*time.Millisecond || took > 3*time.Second {
		t.Fatalf("took %s, want about 2s (200 at 100/s)", took)
	}
	// About 100/s x 50ms = 5 in flight; the window follows the latency
	// observed (the moving average, at most twice the fastest, and that
	// bound never below 32), so a machine under load, whose 50 ms sleeps
	// overrun, sees more (15 under CI's -race load): never the 200.
	if p.peak < 4 || p.peak > 32 {
		t.Fatalf("%d in flight at most, want about 100/s x 50ms = 5 (up to the window's 32 under load)", p.peak)
	}
	if len(f.n) != 200 {
		t.Fatalf("%d effects final, want 200", len(f.n))
	}
	// Without a limit, the 200 go out together (the cap), not 4 at a time.
	s2, p2 := newMemEffects(), newSlowProvider(50*time.Millisecond, 0)
	en2 := &Engine{Store: s2, Sender: func(Effect) EffectSender { return p2 }}
	began = time.Now()
	if _, err := en2.Run(context.Background(), plan(t, s2, 200)); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > time.Second {
		t.Fatalf("unlimited: took %s for 200 x 50ms", took)
	}
}

// TestEnginePollsPendingInWaves: effects PROCESSING for 2 queries are
// asked about in waves - every one once a wave - never one request
// polled alone until it is final.
func TestEnginePollsPendingInWaves(t *testing.T) {
	t.Parallel()
	s, p := newMemEffects(), newSlowProvider(5*time.Millisecond, 2)
	var f finals
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return p }, Final: f.fn,
		Pacer: NewPacer(Limits{Limit: newBucket(1000), Rate: 1000}), FirstPoll: 200 * time.Millisecond, Poll: 100 * time.Millisecond}
	res, err := en.Run(context.Background(), plan(t, s, 50))
	if err != nil || len(res.Pending) != 0 {
		t.Fatalf("err %v, %d pending", err, len(res.Pending))
	}
	if len(f.n) != 50 || p.sends != 50 {
		t.Fatalf("%d final, %d sends", len(f.n), p.sends)
	}
	if res.Waves < 2 || res.Waves > 6 {
		t.Fatalf("%d waves for 3 queries each", res.Waves)
	}
	// Every send happens before the first query: the engine did not wait
	// on any request before sending the next.
	lastSend := p.sendAt[len(p.sendAt)-1]
	if first := p.queryAt[0]; first.Before(lastSend) {
		t.Fatalf("a query at %s before the last send at %s", first, lastSend)
	}
	if gap := p.queryAt[0].Sub(p.sendAt[0]); gap < 200*time.Millisecond {
		t.Fatalf("first query %s after the first send, want FirstPoll (200ms)", gap)
	}
	for k, n := range p.queries {
		if n != 3 {
			t.Fatalf("%s asked %d times, want 3 (2 PROCESSING, then final)", k, n)
		}
	}
}

// TestEngineResolvesUnknownOnlyByQuery: a send whose answer is lost leaves
// the effect unknown; the engine asks with the same key and adopts the
// answer; nothing is applied twice and no new key is made.
func TestEngineResolvesUnknownOnlyByQuery(t *testing.T) {
	t.Parallel()
	s, p := newMemEffects(), newSlowProvider(time.Millisecond, 0)
	effects := plan(t, s, 20)
	for i := 0; i < 20; i += 2 {
		p.lose[effects[i].Key] = true
	}
	var f finals
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return p }, Final: f.fn, Poll: 10 * time.Millisecond}
	if res, err := en.Run(context.Background(), effects); err != nil || len(res.Pending) != 0 {
		t.Fatalf("err %v, %+v", err, res)
	}
	if p.sends != 20 || len(p.applied) != 20 {
		t.Fatalf("%d sends, %d keys applied: want each key sent once", p.sends, len(p.applied))
	}
	for k, n := range p.applied {
		if n != 1 {
			t.Fatalf("%s applied %d times", k, n)
		}
	}
	for id, causes := range s.causes {
		e := s.effects[id]
		if e.State != EffectSucceeded {
			t.Fatalf("%s is %s", e.Key, e.State)
		}
		want := []EffectCause{CausePlanned, CauseSent, CauseAnswer}
		if id%2 == 1 { // the lost ones: resolved by query
			want = []EffectCause{CausePlanned, CauseSent, CauseSendError, CauseQuery}
		}
		if fmt.Sprint(causes) != fmt.Sprint(want) {
			t.Fatalf("%s: history %v, want %v", e.Key, causes, want)
		}
	}
	// An unknown effect from an earlier run the provider never saw is
	// sent again with its key (the protocol's "not found").
	s2, p2 := newMemEffects(), newSlowProvider(time.Millisecond, 0)
	e := plan(t, s2, 1)[0]
	_ = s2.MarkSent(context.Background(), e.ID)
	_ = s2.RecordOutcomeCause(context.Background(), e.ID, EffectUnknown, "", "reset", CauseSendError)
	e = s2.effects[e.ID]
	if _, err := (&Engine{Store: s2, Sender: func(Effect) EffectSender { return p2 }}).Run(context.Background(), []Effect{e}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(s2.causes[e.ID]); got != fmt.Sprint([]EffectCause{CausePlanned, CauseSent, CauseSendError, CauseSent, CauseAnswer}) || p2.applied[e.Key] != 1 {
		t.Fatalf("history %s, applied %d", got, p2.applied[e.Key])
	}
}

// TestEngineDeadlineLeavesPendingRecorded: effects still PROCESSING when
// the deadline passes are returned, left sent in the store, and their
// error says to re-run.
func TestEngineDeadlineLeavesPendingRecorded(t *testing.T) {
	t.Parallel()
	s, p := newMemEffects(), newSlowProvider(time.Millisecond, 1000)
	var f finals
	wait := 300 * time.Millisecond
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return p }, Final: f.fn, Poll: 50 * time.Millisecond, Wait: wait}
	began := time.Now()
	res, err := en.Run(context.Background(), plan(t, s, 10))
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > wait+200*time.Millisecond {
		t.Fatalf("took %s with a deadline of %s", took, wait)
	}
	if len(res.Pending) != 10 || len(f.n) != 0 {
		t.Fatalf("%d pending, %d final", len(res.Pending), len(f.n))
	}
	for _, e := range s.effects {
		if e.State != EffectSent || e.Sends != 1 {
			t.Fatalf("%s left %s after %d sends", e.Key, e.State, e.Sends)
		}
	}
	err = StillProcessing("revenue shares", "the provider", wait, res.Pending)
	if !errors.Is(err, ErrStillProcessing) || KindOf(err) != KindFailed {
		t.Fatalf("%v: want ErrStillProcessing, exit 1", err)
	}
	// The wait begins once the effects are sent: sending 30 at 50/s takes
	// longer than the wait, and they are still asked about, all together.
	s2, p2 := newMemEffects(), newSlowProvider(time.Millisecond, 0)
	p2.accepted = true
	en2 := &Engine{Store: s2, Sender: func(Effect) EffectSender { return p2 }, Pacer: NewPacer(Limits{Limit: newBucket(50), Rate: 50}),
		Poll: 20 * time.Millisecond, Wait: 200 * time.Millisecond}
	res, err = en2.Run(context.Background(), plan(t, s2, 30))
	if err != nil || len(res.Pending) != 0 {
		t.Fatalf("sends longer than the wait: %v, %d pending", err, len(res.Pending))
	}
}

// failingSender's sends never get an answer, and its queries never find
// them: a request the provider keeps refusing to take (a file the server
// will not open, a 500 every time).
type failingSender struct{ sends, queries atomic.Int64 }

func (f *failingSender) Send(context.Context, Effect) (Outcome, error) {
	f.sends.Add(1)
	return Outcome{}, errors.New("permission denied")
}

func (f *failingSender) Query(context.Context, Effect) (Outcome, error) {
	f.queries.Add(1)
	return Outcome{Status: OutcomeNotFound}, nil
}

// A request whose every send fails is sent again with its key only as
// its queries find it never arrived, waiting twice as long after each
// failed send, and not at all once the wait is over: the engine ends at
// its deadline with the request pending (unknown, exit 1 to the caller),
// where it used to send it, ask and send again for ever.
func TestEngineRequestThatKeepsFailingEndsAtTheWait(t *testing.T) {
	t.Parallel()
	s, f := newMemEffects(), &failingSender{}
	wait := 400 * time.Millisecond
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return f }, Poll: 10 * time.Millisecond, Wait: wait}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	began := time.Now()
	res, err := en.Run(ctx, plan(t, s, 1))
	if err != nil || ctx.Err() != nil {
		t.Fatalf("err %v (%v)", err, ctx.Err())
	}
	if len(res.Pending) != 1 || res.Pending[0].State != EffectUnknown {
		t.Fatalf("pending %+v, want the request, unknown", res.Pending)
	}
	// Sent at 0, then asked and sent again after 10, 20, 40, 80, 160 ms
	// of backoff (310 ms), the next after 320 ms more: past the wait,
	// when it is asked once and not sent. However slow the machine, never
	// more; once a poll interval through the wait would be 40.
	if n := f.sends.Load(); n < 2 || n > 7 {
		t.Fatalf("%d sends in %s", n, time.Since(began))
	}
	if q := f.queries.Load(); q != f.sends.Load() {
		t.Fatalf("%d queries for %d sends: each send but the first follows a query, and the last query sends nothing", q, f.sends.Load())
	}
	// The error says why it is not final: no answer, and the last error,
	// not only "still processing" (a provider down for the whole wait
	// left a run's log with nothing but progress lines and that).
	err = StillProcessing("revenue shares", "the provider", wait, res.Pending)
	if msg := err.Error(); !errors.Is(err, ErrStillProcessing) ||
		!strings.Contains(msg, "1 of them got no answer to their last request") || !strings.Contains(msg, ": permission denied)") {
		t.Fatalf("%q: want the unanswered request counted and its last error", msg)
	}
}

// TestEngineLanesKeepTheirOwnLimit: a lane's bucket (a sub-merchant's)
// paces that lane only; the others go at the provider's rate.
func TestEngineLanesKeepTheirOwnLimit(t *testing.T) {
	t.Parallel()
	s, p := newMemEffects(), newSlowProvider(time.Millisecond, 0)
	effects := plan(t, s, 40)
	lane := func(e Effect) string {
		if e.ID <= 10 {
			return "slow"
		}
		return "fast"
	}
	var mu sync.Mutex
	doneAt := map[string]time.Time{}
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return p }, Lane: lane,
		Pacer: NewPacer(Limits{Limit: newBucket(1000), Rate: 1000, Lane: func(l string) Limiter {
			if l == "slow" {
				return newBucket(20)
			}
			return nil
		}}),
		Final: func(_ context.Context, e Effect) error {
			mu.Lock()
			doneAt[lane(e)] = time.Now()
			mu.Unlock()
			return nil
		}}
	began := time.Now()
	if _, err := en.Run(context.Background(), effects); err != nil {
		t.Fatal(err)
	}
	if slow := doneAt["slow"].Sub(began); slow < 400*time.Millisecond {
		t.Fatalf("10 at 20/s took %s", slow)
	}
	if fast := doneAt["fast"].Sub(began); fast > 300*time.Millisecond {
		t.Fatalf("the fast lane waited for the slow one: %s", fast)
	}
}

// TestEngineStopsOnUsageAndOnCancel: a configuration error stops new
// requests and comes back alone; a cancelled run starts nothing new.
func TestEngineStopsOnUsageAndOnCancel(t *testing.T) {
	t.Parallel()
	s, p := newMemEffects(), newSlowProvider(time.Millisecond, 0)
	effects := plan(t, s, 100)
	refused := Errorf(KindUsage, "", "key refused")
	var calls int
	var mu sync.Mutex
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return p }, Pacer: NewPacer(Limits{Limit: newBucket(20), Rate: 20}),
		Final: func(context.Context, Effect) error {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if calls == 5 {
				return refused
			}
			return nil
		}}
	_, err := en.Run(context.Background(), effects)
	if err != refused {
		t.Fatalf("err %v, want the usage error alone", err)
	}
	// An engine that does not stop sends all 100. One that stops sends
	// those whose turn came before the refusal was taken in: at 20/s
	// (a turn every 50 ms) 20 would need the refusal held up 750 ms. At
	// 200/s and 10 at most, 25 ms of a loaded machine's delay failed it
	// (1 run in 16, four at once).
	if p.sends > 20 {
		t.Fatalf("%d sent after the configuration error", p.sends)
	}
	// Counted are the sends that begin once the run is cancelled (those
	// in flight then are let finish), not a number that scheduling under
	// load could move. One call may have passed its last look at the
	// context as the cancel landed; the next token is 50 ms later.
	ctx, cancel := context.WithCancel(context.Background())
	s2, p2 := newMemEffects(), newSlowProvider(time.Millisecond, 0)
	after := &sendsAfter{EffectSender: p2, ctx: ctx}
	en2 := &Engine{Store: s2, Sender: func(Effect) EffectSender { return after }, Pacer: NewPacer(Limits{Limit: newBucket(20), Rate: 20}),
		Final: func(context.Context, Effect) error { cancel(); return nil }}
	if _, err := en2.Run(ctx, plan(t, s2, 100)); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	if n := after.n.Load(); n > 1 || p2.sends >= 100 {
		t.Fatalf("%d sent after the stop (%d in all)", n, p2.sends)
	}
}

// sendsAfter counts the sends that begin once ctx is done.
type sendsAfter struct {
	EffectSender
	ctx context.Context
	n   atomic.Int32
}

func (s *sendsAfter) Send(ctx context.Context, e Effect) (Outcome, error) {
	if s.ctx.Err() != nil {
		s.n.Add(1)
	}
	return s.EffectSender.Send(ctx, e)
}

// TestConcurrentChainsRunTogether: the distribute stage's chains run at
// the same time - one waiting on a PROCESSING payment does not hold back
// the other - problems needing a person are gathered from both, and a
// failure stops the other chain, which is told by its context.
func TestConcurrentChainsRunTogether(t *testing.T) {
	t.Parallel()
	secondDone := make(chan struct{})
	first := func(ctx context.Context, _ *Run) (string, error) {
		select { // stuck until the other chain has finished
		case <-secondDone:
		case <-time.After(5 * time.Second):
			return "", errors.New("the chains ran one after the other")
		}
		return "first", StillProcessing("revenue shares", "the provider", time.Second, []Effect{{Key: "RS1", State: EffectSent}})
	}
	second := func(ctx context.Context, _ *Run) (string, error) {
		close(secondDone)
		return "second", Errorf(KindNeedsPerson, "", "order 7 held")
	}
	s, err := Concurrent(first, second)(context.Background(), &Run{})
	if s != "first; second" || !errors.Is(err, ErrStillProcessing) || KindOf(err) != KindFailed {
		t.Fatalf("%q, %v: want both summaries and the pending error (exit 1)", s, err)
	}
	s, err = Concurrent(func(context.Context, *Run) (string, error) { return "a", Errorf(KindNeedsPerson, "", "x") },
		func(context.Context, *Run) (string, error) { return "b", Errorf(KindNeedsPerson, "", "y") })(context.Background(), &Run{})
	if KindOf(err) != KindNeedsPerson || err.Error() != "x\ny" || s != "a; b" {
		t.Fatalf("%q, %v: want both problems", s, err)
	}
	broken := errors.New("ledger gone")
	var stopped error
	_, err = Concurrent(func(context.Context, *Run) (string, error) { return "", broken },
		func(ctx context.Context, _ *Run) (string, error) {
			<-ctx.Done()
			stopped = ctx.Err()
			return "", ctx.Err()
		})(context.Background(), &Run{})
	if err != broken || stopped == nil {
		t.Fatalf("%v (other chain: %v): want the failure alone, the other chain stopped", err, stopped)
	}
}

// countingLimiter grants every token at once and counts them.
type countingLimiter struct {
	mu      sync.Mutex
	granted int
}

func (l *countingLimiter) Wait(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.granted++
	return nil
}

func (l *countingLimiter) n() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.granted
}

// closedLimiter never grants a token: Wait returns only when ctx is done.
type closedLimiter struct {
	mu    sync.Mutex
	waits int
}

func (l *closedLimiter) Wait(ctx context.Context) error {
	l.mu.Lock()
	l.waits++
	l.mu.Unlock()
	<-ctx.Done()
	return ctx.Err()
}

// TestPacerNoOpCallsTakeNoToken: calls of EachAsNeeded that send nothing
// (a re-run where everything is final) finish without a token, even from
// a bucket that never grants one, in every lane; Each, by contrast, takes
// one per call.
func TestPacerNoOpCallsTakeNoToken(t *testing.T) {
	t.Parallel()
	// The deadline only guards against a hang; nothing here is timed.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	closed, laneClosed := &closedLimiter{}, &closedLimiter{}
	p := NewPacer(Limits{Limit: closed, Rate: 1, Lane: func(string) Limiter { return laneClosed }})
	const n = 2000
	var mu sync.Mutex
	seen := map[int]bool{}
	err := p.EachAsNeeded(ctx, n, func(i int) string { return fmt.Sprint(i % 7) }, func(ctx context.Context, i int) error {
		mu.Lock()
		seen[i] = true
		mu.Unlock()
		return nil
	})
	if err != nil || len(seen) != n {
		t.Fatalf("err %v, %d of %d calls ran", err, len(seen), n)
	}
	if closed.waits != 0 || laneClosed.waits != 0 {
		t.Fatalf("no-op calls waited on the buckets: %d provider, %d lane", closed.waits, laneClosed.waits)
	}
	if ctx.Err() != nil {
		t.Fatal("no-op calls waited for the deadline")
	}
	// Each takes a token per call: with a counting bucket, n.
	c := &countingLimiter{}
	if err := NewPacer(Limits{Limit: c, Rate: 1}).Each(ctx, 50, nil, func(context.Context, int) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if c.n() != 50 {
		t.Fatalf("Each took %d tokens for 50 calls", c.n())
	}
}

// TestPacerRequestsKeepTheLimit: with EachAsNeeded, every request made
// through Pace takes one token of the provider's bucket and one of its
// lane's before it is sent (a call sending two takes two; Pace inside a
// paced Each takes none more), and calls sending nothing take none: the
// buckets' counts are exactly the requests, per lane too.
func TestPacerRequestsKeepTheLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	provider := &countingLimiter{}
	var lmu sync.Mutex
	lanes := map[string]*countingLimiter{}
	p := NewPacer(Limits{Limit: provider, Rate: 100, Lane: func(k string) Limiter {
		lmu.Lock()
		defer lmu.Unlock()
		lanes[k] = &countingLimiter{}
		return lanes[k]
	}})
	laneOf := func(i int) string { return fmt.Sprint(i % 5) }
	var mu sync.Mutex
	sent := map[string]int{}
	var early []string
	send := func(ctx context.Context, lane string) error {
		if err := Pace(ctx); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		sent[lane]++
		sent[""]++
		lmu.Lock()
		laneGranted := lanes[lane].n()
		lmu.Unlock()
		if sent[""] > provider.n() || sent[lane] > laneGranted {
			early = append(early, lane) // sent before its token
		}
		return nil
	}
	const n = 300
	err := p.EachAsNeeded(ctx, n, laneOf, func(ctx context.Context, i int) error {
		switch i % 3 {
		case 0:
			return nil // final already: nothing to send
		case 1:
			return send(ctx, laneOf(i))
		default:
			if err := send(ctx, laneOf(i)); err != nil { // a query answered "not found"
				return err
			}
			return send(ctx, laneOf(i)) // and the send again with its key
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(early) > 0 {
		t.Fatalf("%d requests sent before their token", len(early))
	}
	if want := n/3*1 + n/3*2; sent[""] != want || provider.n() != want {
		t.Fatalf("%d requests, %d tokens, want %d of each", sent[""], provider.n(), want)
	}
	for k, l := range lanes {
		if l.n() != sent[k] {
			t.Fatalf("lane %s: %d tokens for %d requests", k, l.n(), sent[k])
		}
	}
	// Pace inside a paced Each: the call paid before it started.
	c := &countingLimiter{}
	err = NewPacer(Limits{Limit: c, Rate: 100}).Each(ctx, 20, nil, func(ctx context.Context, i int) error { return Pace(ctx) })
	if err != nil || c.n() != 20 {
		t.Fatalf("err %v, %d tokens for 20 paced calls", err, c.n())
	}
}

// TestEngineTakesATokenPerRequest: the engine's requests - sends, queries
// of pending effects, a send whose answer was lost and its query - each
// take one token, and effects given final take none.
func TestEngineTakesATokenPerRequest(t *testing.T) {
	t.Parallel()
	s, p := newMemEffects(), newSlowProvider(time.Millisecond, 1)
	effects := plan(t, s, 30)
	p.lose["K003"], p.lose["K007"] = true, true
	var done []Effect
	for i := 0; i < 10; i++ {
		e, err := s.PlanEffect(context.Background(), Effect{Kind: "test", Subject: fmt.Sprintf("D%03d", i), Attempt: 1, Key: fmt.Sprintf("D%03d", i), Amount: 100})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RecordOutcome(context.Background(), e.ID, EffectSucceeded, "r", ""); err != nil {
			t.Fatal(err)
		}
		e.State = EffectSucceeded
		done = append(done, e)
	}
	// Sent as far as the ledger knows, never seen by the provider: asked,
	// "not found", sent again with the same key (two requests, one call).
	for i := 0; i < 5; i++ {
		e, err := s.PlanEffect(context.Background(), Effect{Kind: "test", Subject: fmt.Sprintf("U%03d", i), Attempt: 1, Key: fmt.Sprintf("U%03d", i), Amount: 100})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.MarkSent(context.Background(), e.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordOutcome(context.Background(), e.ID, EffectUnknown, "", "reset"); err != nil {
			t.Fatal(err)
		}
		e.State, e.Sends = EffectUnknown, 1
		effects = append(effects, e)
	}
	c := &countingLimiter{}
	var f finals
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return p }, Pacer: NewPacer(Limits{Limit: c, Rate: 1000}),
		Poll: time.Millisecond, Final: f.fn}
	res, err := en.Run(context.Background(), append(effects, done...))
	if err != nil || len(res.Pending) != 0 || len(f.n) != 45 {
		t.Fatalf("err %v, %d pending, %d final", err, len(res.Pending), len(f.n))
	}
	if requests := p.sends + len(p.queryAt); c.n() != requests {
		t.Fatalf("%d tokens for %d requests (%d sends, %d queries)", c.n(), requests, p.sends, len(p.queryAt))
	}
}

// TestEngineFeedHoldsAWindowAndOverlapsPages: RunFeed reads the next page
// while earlier ones wait on the provider (page 2 is read before page 1
// is asked about), never holds more than a window of pending effects
// when it reads one, and drives every effect final exactly once.
func TestEngineFeedHoldsAWindowAndOverlapsPages(t *testing.T) {
	t.Parallel()
	const n, pageSize, window = 300, 50, 100
	s := newMemEffects()
	effects := plan(t, s, n)
	p := newSlowProvider(0, 1)
	var f finals
	var reads, pendingAtRead []int // queries made, and effects pending, when each page was read
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return p }, Final: f.fn,
		FirstPoll: 50 * time.Millisecond, Poll: 10 * time.Millisecond, Window: window}
	res, err := en.RunFeed(context.Background(), func(context.Context) ([]Effect, error) {
		p.mu.Lock()
		queried := 0
		for _, q := range p.queries {
			queried += q
		}
		pendingNow := 0
		for k := range p.applied {
			if p.queries[k] <= p.processing {
				pendingNow++
			}
		}
		p.mu.Unlock()
		reads, pendingAtRead = append(reads, queried), append(pendingAtRead, pendingNow)
		page := effects[:min(pageSize, len(effects))]
		effects = effects[len(page):]
		return page, nil
	})
	if err != nil || len(res.Pending) != 0 {
		t.Fatalf("pending %d: %v", len(res.Pending), err)
	}
	if len(reads) != n/pageSize+1 {
		t.Fatalf("%d pages read, want %d and the empty one", len(reads), n/pageSize)
	}
	if reads[1] != 0 {
		t.Fatalf("page 2 read after %d queries: the feed waited on page 1", reads[1])
	}
	for i, held := range pendingAtRead {
		if held >= window {
			t.Fatalf("page %d read with %d effects pending (window %d)", i+1, held, window)
		}
	}
	if len(f.n) != n {
		t.Fatalf("%d effects final, want %d", len(f.n), n)
	}
	for k, c := range f.n {
		if c != 1 || p.applied[k] != 1 {
			t.Fatalf("%s: final %d times, applied %d times", k, c, p.applied[k])
		}
	}
}

// BenchmarkEachAsNeededManyLanes: a call per lane over 20,000 lanes (a
// provider limiting each of 20,000 sub-accounts on its own) under a small window. The
// lanes wait their turn in a queue; a broadcast that woke every waiting
// lane at every request made this quadratic:
//
//	go test ./pipeline -run '^$' -bench EachAsNeededManyLanes
func BenchmarkEachAsNeededManyLanes(b *testing.B) {
	const lanes = 20000
	for range b.N {
		p := NewPacer(Limits{MaxInFlight: 4})
		err := p.EachAsNeeded(context.Background(), lanes, func(i int) string { return fmt.Sprint(i) }, func(ctx context.Context, i int) error {
			if err := Pace(ctx); err != nil {
				return err
			}
			time.Sleep(100 * time.Microsecond) // the request
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// TestEachWalksThousandsOfLanesWithFewGoroutines: a wave over thousands
// of lanes (a day of 2,000 sub-merchants) walks them with at most
// DefaultMaxInFlight goroutines besides its calls, not one each, and
// still reaches every element once.
func TestEachWalksThousandsOfLanesWithFewGoroutines(t *testing.T) {
	const lanes, perLane = 3000, 2
	for _, asNeeded := range []bool{false, true} {
		p := NewPacer(Limits{MaxInFlight: 4})
		var (
			mu   sync.Mutex
			seen = make([]int, lanes*perLane)
			most int
		)
		base := runtime.NumGoroutine()
		fn := func(ctx context.Context, i int) error {
			if err := Pace(ctx); err != nil {
				return err
			}
			mu.Lock()
			seen[i]++
			most = max(most, runtime.NumGoroutine()-base)
			mu.Unlock()
			runtime.Gosched()
			return nil
		}
		lane := func(i int) string { return strconv.Itoa(i % lanes) }
		var err error
		if asNeeded {
			err = p.EachAsNeeded(context.Background(), lanes*perLane, lane, fn)
		} else {
			err = p.Each(context.Background(), lanes*perLane, lane, fn)
		}
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range seen {
			if n != 1 {
				t.Fatalf("element %d called %d times", i, n)
			}
		}
		// The lane walkers, the calls running (at most twice MaxInFlight),
		// and a margin for goroutines that are not the pacer's (the
		// runtime's, and those of earlier tests still ending: under -race
		// in CI the count once reached 283 against a margin of 16). One
		// goroutine a lane would be 3,000.
		if limit := DefaultMaxInFlight + 2*4 + 32; most > limit {
			t.Fatalf("as needed %v: %d goroutines for %d lanes, want at most %d", asNeeded, most, lanes, limit)
		}
	}
}

// TestWindowIsBoundedByTheFastestLatency: latency that is only queueing
// (a busy machine, a saturated provider) does not widen the window past
// twice the fastest latency of the last periods; a provider slower for
// good widens it within two periods; a failed call is not observed; and
// the bound never narrows the window below windowBoundedFrom.
func TestWindowIsBoundedByTheFastestLatency(t *testing.T) {
	clock := time.Unix(1_000_000, 0)
	pacer := func(rate float64) (*Pacer, func(d time.Duration, n int, failed bool)) {
		p := NewPacer(Limits{Rate: rate})
		p.now = func() time.Time { return clock }
		return p, func(d time.Duration, n int, failed bool) {
			for range n {
				p.mu.Lock()
				p.inFlight++
				p.mu.Unlock()
				p.release(d, failed)
			}
		}
	}
	p, took := pacer(400)
	took(50*time.Millisecond, 1, false)
	if w := p.Window(); w != 31 { // ceil(400 x 0.05 x 1.5) + 1
		t.Fatalf("window %d after one answer in 50ms, want 31", w)
	}
	took(time.Second, 40, false) // the average climbs to about 1 s
	if l := p.Latency(); l < 900*time.Millisecond {
		t.Fatalf("average latency %s, want about 1s", l)
	}
	if w := p.Window(); w != 61 { // ceil(400 x 2 x 0.05 x 1.5) + 1, not 256
		t.Fatalf("window %d with the fastest answer 50ms ago, want 61", w)
	}
	clock = clock.Add(fastestPeriod)
	took(time.Second, 1, false) // a new period: the 50 ms is the period before's
	if w := p.Window(); w != 61 {
		t.Fatalf("window %d one period on, want 61", w)
	}
	// A call that failed at once (a connection refused) is no round trip:
	// it narrows nothing, nor moves the average.
	took(time.Millisecond, 1, true)
	if w, l := p.Window(), p.Latency(); w != 61 || l < 900*time.Millisecond {
		t.Fatalf("window %d, latency %s after a failure in 1ms, want 61 and about 1s", w, l)
	}
	clock = clock.Add(fastestPeriod)
	took(time.Second, 1, false) // two periods of 1 s: slower for good
	if w := p.Window(); w != DefaultMaxInFlight {
		t.Fatalf("window %d after two periods of 1s answers, want %d (601, capped)", w, DefaultMaxInFlight)
	}

	// The bound takes no window below windowBoundedFrom: 10 ms at best,
	// 100 ms on average at 400/s are 61 by the average, 13 by the bound.
	p, took = pacer(400)
	took(10*time.Millisecond, 1, false)
	took(100*time.Millisecond, 40, false)
	if w := p.Window(); w != windowBoundedFrom {
		t.Fatalf("window %d for 100ms on average, 10ms at best, want %d", w, windowBoundedFrom)
	}
	// A fastest older than a whole period is forgotten: after an idle
	// stretch (between two stages) the first answers are the bound.
	clock = clock.Add(3 * fastestPeriod)
	took(100*time.Millisecond, 1, false)
	if w := p.Window(); w != 61 {
		t.Fatalf("window %d after an idle stretch, answers of 100ms, want 61", w)
	}

	// A provider in the process: 1 ms at best, 20 ms on average. The
	// average's window, 10, is below windowBoundedFrom: kept.
	p, took = pacer(300)
	took(time.Millisecond, 1, false)
	took(20*time.Millisecond, 40, false)
	if w := p.Window(); w != 10 { // ceil(300 x 0.02 x 1.5) + 1, not 3
		t.Fatalf("window %d for 20ms on average, 1ms at best, want 10", w)
	}
}

// TestEachAsNeededCallsFollowTheWindow: once the window is known, the
// calls of EachAsNeeded running at once are at most twice it or twice
// windowBoundedFrom (64; the window is about 31 at 1,000/s and 20 ms), not
// twice MaxInFlight (512: all 800 at once), and the
// lanes still share them: 20 lanes of 40 requests at 20 a second each go
// side by side (about 2 s; three lanes at a time would take 13 s).
func TestEachAsNeededCallsFollowTheWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := NewPacer(Limits{Limit: newBucket(1000), Rate: 1000,
		Lane: func(string) Limiter { return newBucket(20) }})
	var running, most, widest atomic.Int64
	raise := func(v *atomic.Int64, n int64) {
		for m := v.Load(); n > m && !v.CompareAndSwap(m, n); m = v.Load() {
		}
	}
	call := func(ctx context.Context, i int) error {
		raise(&most, running.Add(1))
		defer running.Add(-1)
		raise(&widest, int64(p.Window()))
		if err := Pace(ctx); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
		raise(&widest, int64(p.Window()))
		return nil
	}
	if err := p.EachAsNeeded(ctx, 20, nil, call); err != nil { // the latency observed
		t.Fatal(err)
	}
	w := p.Window()
	if w >= DefaultMaxInFlight {
		t.Fatalf("window %d: no latency observed", w)
	}
	most.Store(0)
	widest.Store(0)
	const lanes, perLane = 20, 40
	began := time.Now()
	err := p.EachAsNeeded(ctx, lanes*perLane, func(i int) string { return strconv.Itoa(i % lanes) }, call)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 6*time.Second {
		t.Fatalf("took %s for %d lanes of %d at 20/s each, want about 2s", took, lanes, perLane)
	}
	// The window moves with the latency (at most twice the fastest), and
	// the calls are at least twice windowBoundedFrom; a little slack for a
	// window wider between the samples.
	if m, w := most.Load(), max(widest.Load(), windowBoundedFrom); m > 2*w+4 || m > 200 {
		t.Fatalf("%d calls at once, want at most twice the window (at most %d, or %d)", m, widest.Load(), windowBoundedFrom)
	}
}

// TestEngineFailedSendsMoveNoWindow: a send refused at once (recorded
// unknown, so the call itself returns no error) and the query after it,
// refused too, are no round trips: they do not narrow the window sized by
// answers of 300 ms.
func TestEngineFailedSendsMoveNoWindow(t *testing.T) {
	t.Parallel()
	s, p := newMemEffects(), newSlowProvider(300*time.Millisecond, 0)
	pacer := NewPacer(Limits{Limit: newBucket(300), Rate: 300})
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return p }, Pacer: pacer}
	if _, err := en.Run(context.Background(), plan(t, s, 20)); err != nil {
		t.Fatal(err)
	}
	before := pacer.Window() // about ceil(300 x 0.3 x 1.5) + 1 = 136
	if before < 100 {
		t.Fatalf("window %d after answers of 300ms at 300/s, want about 136", before)
	}
	e, err := s.PlanEffect(context.Background(), Effect{Kind: "test", Subject: "R", Attempt: 1, Key: "R1", Amount: 100})
	if err != nil {
		t.Fatal(err)
	}
	en = &Engine{Store: s, Sender: func(Effect) EffectSender { return refusingSender{} }, Pacer: pacer,
		FirstPoll: time.Millisecond, Poll: time.Millisecond}
	if _, err := en.Run(context.Background(), []Effect{e}); err == nil {
		t.Fatal("a query refused: no error")
	}
	if w := pacer.Window(); w < before-5 {
		t.Fatalf("window %d after one send refused at once, want about %d", w, before)
	}
}

// refusingSender refuses every request at once, as a closed port does.
type refusingSender struct{}

func (refusingSender) Send(context.Context, Effect) (Outcome, error) {
	return Outcome{}, errors.New("connection refused")
}

func (refusingSender) Query(context.Context, Effect) (Outcome, error) {
	return Outcome{}, errors.New("connection refused")
}

// TestEachAsNeededLaneHoldsWhatItsRateNeeds: from the first call, before
// any latency is observed (when the window is MaxInFlight), a lane holds
// at most what its own rate needs (LaneRate 20 and a second: 31 calls),
// not every call it has, so two busy sub-merchants cannot take all the
// places.
func TestEachAsNeededLaneHoldsWhatItsRateNeeds(t *testing.T) {
	t.Parallel()
	p := NewPacer(Limits{Limit: newBucket(10000), Rate: 10000, LaneRate: 20,
		Lane: func(string) Limiter { return newBucket(20) }})
	const lanes, perLane = 20, 40
	var (
		mu      sync.Mutex
		running = map[string]int{}
		most    int
	)
	lane := func(i int) string { return strconv.Itoa(i % lanes) }
	err := p.EachAsNeeded(context.Background(), lanes*perLane, lane, func(ctx context.Context, i int) error {
		mu.Lock()
		running[lane(i)]++
		most = max(most, running[lane(i)])
		mu.Unlock()
		defer func() {
			mu.Lock()
			running[lane(i)]--
			mu.Unlock()
		}()
		if err := Pace(ctx); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if most > 31 {
		t.Fatalf("a lane held %d calls at once, want at most 31 (20/s for a second, x 1.5, + 1)", most)
	}
}

// failingStore is memEffects whose database stops answering after its
// first sends: MarkSent fails from then on with markErr, and so does
// RecordOutcome with recordErr when it is set.
type failingStore struct {
	*memEffects
	after              int
	markErr, recordErr error
	refused            atomic.Int32
	marked             atomic.Int32
}

func (s *failingStore) MarkSent(ctx context.Context, id int64) error {
	if int(s.marked.Add(1)) > s.after {
		s.refused.Add(1)
		return fmt.Errorf("mark effect %d sent: %w", id, s.markErr)
	}
	return s.memEffects.MarkSent(ctx, id)
}

func (s *failingStore) RecordOutcomeCause(ctx context.Context, id int64, state EffectState, ref, lastErr string, cause EffectCause) error {
	if s.recordErr != nil {
		return fmt.Errorf("record effect %d %s: %w", id, state, s.recordErr)
	}
	return s.memEffects.RecordOutcomeCause(ctx, id, state, ref, lastErr, cause)
}

// TestEngineStopsWhenTheLedgerCannotRecord: a run whose lock's session
// ended, or whose ledger database refused connections, went on through
// every effect left, taking a token of the provider's rate for each and
// failing each with the same words: a day of 20,000 payouts waited out
// the rate sending nothing, and its error was 20,000 lines (found by a
// review that terminated settle's sessions and refused connections to its
// database mid-distribute). Nothing is sent that is not recorded first,
// so the engine stops at the first such error and returns it alone; an
// answer it could not record leaves its effect sent, to be asked about.
func TestEngineStopsWhenTheLedgerCannotRecord(t *testing.T) {
	t.Parallel()
	down := errors.New(`pq: database "settle" is not currently accepting connections`)
	for _, tc := range []struct {
		name               string
		markErr, recordErr error
		want               error
	}{
		{"lock lost", ErrLockLost, nil, ErrLockLost},
		{"send not recorded", down, nil, ErrNotRecorded},
		{"answer not recorded", down, down, ErrNotRecorded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &failingStore{memEffects: newMemEffects(), after: 3, markErr: tc.markErr, recordErr: tc.recordErr}
			p := newSlowProvider(time.Millisecond, 0)
			effects := plan(t, s.memEffects, 500)
			limit := &countingLimiter{}
			en := &Engine{Store: s, Sender: func(Effect) EffectSender { return p }, Poll: 10 * time.Millisecond,
				Pacer: NewPacer(Limits{Limit: limit, Rate: 1000, MaxInFlight: 4})}
			_, err := en.Run(context.Background(), effects)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if n := strings.Count(err.Error(), "effect "); n != 1 {
				t.Fatalf("%d effects' errors returned, want the first alone:\n%.500s", n, err)
			}
			if n := s.refused.Load(); n > 20 {
				t.Fatalf("%d effects went on to be marked sent after the first failure, want the engine stopped", n)
			}
			if n := limit.n(); n > 30 {
				t.Fatalf("%d tokens taken for 3 requests sent: the run waited out the provider's rate sending nothing", n)
			}
			if p.sends > 3 {
				t.Fatalf("%d sent, want the 3 before the ledger failed", p.sends)
			}
			for _, e := range s.effects {
				if e.Sends > 0 && tc.recordErr != nil && e.State != EffectSent {
					t.Fatalf("effect %d sent, its answer not recorded, is %s: want sent, to be asked about", e.ID, e.State)
				}
			}
		})
	}
}

// subjectRefuser refuses every send with an error that concerns its
// subject alone (SubjectOnly), counting them.
type subjectRefuser struct{ sends atomic.Int32 }

func (s *subjectRefuser) Send(context.Context, Effect) (Outcome, error) {
	s.sends.Add(1)
	return Outcome{}, fmt.Errorf("refused, and the query refused too: %w", ErrRefused)
}

func (s *subjectRefuser) Query(context.Context, Effect) (Outcome, error) {
	return Outcome{}, fmt.Errorf("refused: %w", ErrRefused)
}

// TestEngineStopsWhenASubjectsErrorCannotBeRecorded: a send's error that
// concerns its subject alone, which a stage's Error handles (holds the
// subject, returns nil), joined with the ledger's failure to record it,
// was handled as the subject's: the engine went on sending what it could
// not record (found by a review). The ledger's failure stops it.
func TestEngineStopsWhenASubjectsErrorCannotBeRecorded(t *testing.T) {
	t.Parallel()
	down := errors.New(`pq: database "settle" is not currently accepting connections`)
	s := &failingStore{memEffects: newMemEffects(), after: 1 << 20, recordErr: down}
	effects := plan(t, s.memEffects, 200)
	p := &subjectRefuser{}
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return p }, Poll: 10 * time.Millisecond,
		Pacer: NewPacer(Limits{MaxInFlight: 4}),
		Error: func(_ context.Context, _ Effect, err error) error {
			if SubjectOnly(err) {
				return nil // held for a person, the others go on
			}
			return err
		}}
	_, err := en.Run(context.Background(), effects)
	if !errors.Is(err, ErrNotRecorded) {
		t.Fatalf("err %v, want the ledger's failure to record", err)
	}
	if n := p.sends.Load(); n > 8 {
		t.Fatalf("%d sent after the ledger failed to record the first, want the engine stopped", n)
	}
}

// unreadLedger is a sender that must read the ledger for every request
// (the provider's account a payout pays) and cannot: each send and
// each query fails with ErrNotRead.
type unreadLedger struct{ sends, queries atomic.Int32 }

var errLedgerDown = errors.New(`read the seller's account: pq: database "settle" is not currently accepting connections`)

func (u *unreadLedger) Send(context.Context, Effect) (Outcome, error) {
	u.sends.Add(1)
	return Outcome{}, NotRead(errLedgerDown)
}

func (u *unreadLedger) Query(context.Context, Effect) (Outcome, error) {
	u.queries.Add(1)
	return Outcome{}, NotRead(errLedgerDown)
}

// TestEngineStopsWhenASenderCannotReadTheLedger: a status query (or a
// send) that must read the ledger for its payout, and cannot, failed that
// payout alone: the stage's Error returned it, and the run's error was
// one line a payout, 200 lines of the same words (and the sends' were not
// even errors: each was recorded unknown and the next one tried). The
// ledger that cannot be read is the run's failure: the engine stops at the
// first, told once, as for a ledger that cannot record.
func TestEngineStopsWhenASenderCannotReadTheLedger(t *testing.T) {
	t.Parallel()
	for _, state := range []EffectState{EffectSent, EffectPlanned} {
		t.Run(string(state), func(t *testing.T) {
			t.Parallel()
			s := newMemEffects()
			effects := plan(t, s, 200)
			for i := range effects {
				if state == EffectSent {
					if err := s.MarkSent(context.Background(), effects[i].ID); err != nil {
						t.Fatal(err)
					}
					effects[i].State, effects[i].Sends = EffectSent, 1
				}
			}
			u := &unreadLedger{}
			handled := atomic.Int32{}
			en := &Engine{Store: s, Sender: func(Effect) EffectSender { return u }, Poll: 10 * time.Millisecond,
				Pacer: NewPacer(Limits{MaxInFlight: 4}),
				Error: func(_ context.Context, e Effect, err error) error {
					handled.Add(1)
					if SubjectOnly(err) {
						return nil
					}
					return fmt.Errorf("payout %s: %w", e.Key, err)
				}}
			_, err := en.Run(context.Background(), effects)
			if !errors.Is(err, ErrNotRead) {
				t.Fatalf("err %v, want the ledger's failure to read", err)
			}
			if n := strings.Count(err.Error(), "not currently accepting"); n != 1 {
				t.Fatalf("the ledger's failure told %d times, want once:\n%.600s", n, err)
			}
			if n := u.sends.Load() + u.queries.Load(); n > 8 {
				t.Fatalf("%d requests tried after the ledger could not be read, want the engine stopped", n)
			}
			if n := handled.Load(); n != 0 {
				t.Fatalf("the stage's Error handled the ledger's failure %d times, want never (not a payout's error)", n)
			}
		})
	}
}

// preparedSender reads the ledger before each send (EffectPreparer) and
// cannot while down is set; it counts its sends.
type preparedSender struct {
	down  atomic.Bool
	sends atomic.Int32
}

func (p *preparedSender) Prepare(_ context.Context, e Effect) (EffectSender, error) {
	if p.down.Load() {
		return nil, NotRead(errLedgerDown)
	}
	return p, nil
}

func (p *preparedSender) Send(context.Context, Effect) (Outcome, error) {
	p.sends.Add(1)
	return Outcome{Status: OutcomeSucceeded, Ref: "R"}, nil
}

func (p *preparedSender) Query(context.Context, Effect) (Outcome, error) {
	return Outcome{Status: OutcomeNotFound}, nil
}

// TestApplyEffectPreparesBeforeMarkingSent: a sender that reads the
// ledger for its request (the Infinia seller id of a revenue share) read
// it inside Send, after the effect was marked sent: a read that failed
// left the effect counted as sent once (unknown) though nothing went out,
// and a later refusal of it was taken as a refused repeat. Prepared before
// MarkSent, the effect stays planned, unsent, and the next call sends it
// once.
func TestApplyEffectPreparesBeforeMarkingSent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newMemEffects()
	e := plan(t, s, 1)[0]
	p := &preparedSender{}
	p.down.Store(true)
	got, err := ApplyEffect(ctx, s, p, e)
	if !errors.Is(err, ErrNotRead) {
		t.Fatalf("err %v, want the ledger's failure to read", err)
	}
	stored := s.effects[e.ID]
	if got.State != EffectPlanned || got.Sends != 0 || stored.State != EffectPlanned || stored.Sends != 0 || p.sends.Load() != 0 {
		t.Fatalf("after a failed read: returned %s/%d, stored %s/%d, %d sends; want planned, never sent",
			got.State, got.Sends, stored.State, stored.Sends, p.sends.Load())
	}
	if c := s.causes[e.ID]; len(c) != 1 {
		t.Fatalf("history %v, want the intent alone", c)
	}
	p.down.Store(false)
	got, err = ApplyEffect(ctx, s, p, got)
	if err != nil || got.State != EffectSucceeded || got.Sends != 1 || p.sends.Load() != 1 {
		t.Fatalf("after the ledger is back: %s/%d, %v, %d sends; want succeeded, sent once", got.State, got.Sends, err, p.sends.Load())
	}
}

// oneRefused is a provider that refuses every request of one key
// (ErrRefused, which concerns its subject alone) and pays the others.
type oneRefused struct {
	*slowProvider
	key string
}

func (p oneRefused) Send(ctx context.Context, e Effect) (Outcome, error) {
	if e.Key == p.key {
		return Outcome{}, fmt.Errorf("refused: %w", ErrRefused)
	}
	return p.slowProvider.Send(ctx, e)
}

func (p oneRefused) Query(ctx context.Context, e Effect) (Outcome, error) {
	if e.Key == p.key {
		return Outcome{}, fmt.Errorf("refused: %w", ErrRefused)
	}
	return p.slowProvider.Query(ctx, e)
}

// TestASubjectsErrorGoesToTheStageAndTheOthersArePaid: an error of one
// effect's request is the stage's Error's to handle (it holds the subject
// for a person and returns nil), not the run's: the run ends without
// error and every other effect is paid, once.
func TestASubjectsErrorGoesToTheStageAndTheOthersArePaid(t *testing.T) {
	t.Parallel()
	s := newMemEffects()
	effects := plan(t, s, 20)
	p := oneRefused{slowProvider: newSlowProvider(0, 0), key: effects[7].Key}
	var (
		mu   sync.Mutex
		held []string
	)
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return p }, Poll: 10 * time.Millisecond,
		Pacer: NewPacer(Limits{MaxInFlight: 4}),
		Error: func(_ context.Context, e Effect, err error) error {
			if !SubjectOnly(err) {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			held = append(held, e.Key)
			return nil
		}}
	if _, err := en.Run(context.Background(), effects); err != nil {
		t.Fatalf("run: %v; want the refused subject handled by the stage, no error", err)
	}
	if len(held) != 1 || held[0] != p.key {
		t.Fatalf("held %v, want %s alone", held, p.key)
	}
	for _, e := range effects {
		if e.Key == p.key {
			continue
		}
		if got := s.effects[e.ID]; got.State != EffectSucceeded || p.applied[e.Key] != 1 {
			t.Errorf("%s: %s, sent %d times; want paid once", e.Key, got.State, p.applied[e.Key])
		}
	}
}

// stopLimiter gives its first token at once and the next one only once
// the Each that asks for it stopped: a token given as the Each stopped
// (a rate.Limiter looks at its ctx only before it reserves).
type stopLimiter struct{ n atomic.Int32 }

func (l *stopLimiter) Wait(ctx context.Context) error {
	if l.n.Add(1) > 1 {
		<-ctx.Done()
	}
	return nil
}

// TestEachStartsNoCallGrantedItsTurnAsItStopped: a call of Each that
// stops it (a ledger that could not record) stops it for the calls whose
// tokens and place in flight were given as it stopped, too: they give
// the place back and never start. Before, the next call, handed its
// token as the first failed, took a free place and ran - its request
// sent after the ledger failed to record the one before (EachAsNeeded's
// calls were kept from it by Pace; Each's are paced before they start).
func TestEachStartsNoCallGrantedItsTurnAsItStopped(t *testing.T) {
	t.Parallel()
	p := NewPacer(Limits{Limit: &stopLimiter{}, MaxInFlight: 2})
	var calls atomic.Int32
	err := p.Each(context.Background(), 3, nil, func(context.Context, int) error {
		if calls.Add(1) > 1 {
			return nil
		}
		return fmt.Errorf("record: %w", ErrNotRecorded)
	})
	if !errors.Is(err, ErrNotRecorded) {
		t.Fatalf("%v, want the ledger's failure", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d calls, want the one that stopped the Each alone", n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inFlight != 0 {
		t.Fatalf("%d places in flight after the Each, want 0", p.inFlight)
	}
}

// While effects sent wait on the provider (PROCESSING), the stage's
// progress counts them: a distribute stage whose revenue shares were all
// PROCESSING read "0 of 3000" for minutes, as if stuck. Once the engine
// returns, none is counted.
func TestEngineProgressCountsWhatAwaitsAnAnswer(t *testing.T) {
	t.Parallel()
	s, p := newMemEffects(), newSlowProvider(time.Millisecond, 2)
	var f finals
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return p }, Final: f.fn,
		Pacer: NewPacer(Limits{Limit: newBucket(1000), Rate: 1000}), FirstPoll: 300 * time.Millisecond, Poll: 100 * time.Millisecond}
	stage := &Progress{}
	part := stage.Part()
	var peak atomic.Int64
	var line atomic.Value
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if n := stage.awaitingAll(); n > peak.Load() {
				peak.Store(n)
				line.Store(stage.snapshot(time.Second).line(StageDistribute))
			}
		}
	}()
	res, err := en.Run(WithProgress(context.Background(), part), plan(t, s, 40))
	close(done)
	if err != nil || len(res.Pending) != 0 || len(f.n) != 40 {
		t.Fatalf("err %v, %d pending, %d final", err, len(res.Pending), len(f.n))
	}
	if peak.Load() != 40 || !strings.Contains(line.Load().(string), "40 sent awaiting an answer") {
		t.Fatalf("at most %d counted awaiting (line %q), want the 40 sent before the first query", peak.Load(), line.Load())
	}
	if n := stage.awaitingAll(); n != 0 {
		t.Fatalf("%d still counted awaiting after the engine returned", n)
	}
}

// queryAnswers answers every query about a key with err, counting them.
type queryAnswers struct {
	err     error
	queries atomic.Int32
}

func (q *queryAnswers) Send(context.Context, Effect) (Outcome, error) {
	return Outcome{}, errors.New("not sent in this test")
}

func (q *queryAnswers) Query(context.Context, Effect) (Outcome, error) {
	q.queries.Add(1)
	return Outcome{}, q.err
}

// TestAQueryErrorTheStageDoesNotHandleIsNotWaitedOut: within the wait,
// a status query that got no answer is asked again. Not so one the
// provider answered with a refusal about its subject (SubjectOnly), which
// no wait changes, nor one the stage's Error turned into an error that
// stops everything: each is returned, asked once.
func TestAQueryErrorTheStageDoesNotHandleIsNotWaitedOut(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		err     error
		handler func(context.Context, Effect, error) error
		want    func(error) bool
	}{
		{"refused about its subject", fmt.Errorf("status query: %w", ErrRefused), nil,
			func(err error) bool { return errors.Is(err, ErrRefused) }},
		{"stopped by the stage", errors.New("connection reset"),
			func(_ context.Context, _ Effect, err error) error { return E(KindUsage, "credentials", err) },
			func(err error) bool { return KindOf(err) == KindUsage }},
	} {
		s := newMemEffects()
		e := plan(t, s, 1)[0]
		if err := s.MarkSent(context.Background(), e.ID); err != nil {
			t.Fatal(err)
		}
		p := &queryAnswers{err: tc.err}
		en := &Engine{Store: s, Sender: func(Effect) EffectSender { return p }, Poll: 5 * time.Millisecond, FirstPoll: 5 * time.Millisecond,
			Wait: 300 * time.Millisecond, Error: tc.handler}
		_, err := en.Run(context.Background(), []Effect{s.effects[e.ID]})
		if !tc.want(err) || p.queries.Load() != 1 {
			t.Errorf("%s: err %v after %d queries; want it returned after one", tc.name, err, p.queries.Load())
		}
	}
}
