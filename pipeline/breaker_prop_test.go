package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// moody is a provider that, request by request, answers, answers an
// error, or gives no answer at all (ErrNoAnswer, some of those sends
// applied all the same), at random. Its queries are truthful: a key it
// holds is succeeded (or processing for its first few questions), any
// other not found.
type moody struct {
	rng  *rand.Rand
	none int // in 20: how often a request gets no answer
	mu   sync.Mutex
	held map[string]int // key -> questions answered about it since held
	told map[string]bool
	bad  []string // violations seen by the provider
}

func (m *moody) roll() (int, time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rng.IntN(20), time.Duration(m.rng.IntN(4)) * time.Millisecond
}

func (m *moody) Send(ctx context.Context, e Effect) (Outcome, error) {
	r, d := m.roll()
	m.mu.Lock()
	if _, ok := m.held[e.Key]; ok {
		m.bad = append(m.bad, "sent again while held: "+e.Key)
	}
	m.mu.Unlock()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return Outcome{}, ctx.Err()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case r < m.none: // no answer; applied or not
		if r%2 == 0 {
			m.held[e.Key] = 0
		}
		return Outcome{}, NoAnswer(fmt.Errorf("send %s: timeout", e.Key))
	case r < m.none+2: // an answer that says error, not taken
		return Outcome{}, fmt.Errorf("send %s: 503 retry later", e.Key)
	default:
		m.held[e.Key] = 0
		return Outcome{Status: OutcomePending}, nil
	}
}

func (m *moody) Query(ctx context.Context, e Effect) (Outcome, error) {
	r, d := m.roll()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return Outcome{}, ctx.Err()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case r < m.none:
		return Outcome{}, NoAnswer(fmt.Errorf("query %s: timeout", e.Key))
	case r < m.none+2:
		return Outcome{}, fmt.Errorf("query %s: 500", e.Key)
	}
	n, ok := m.held[e.Key]
	if !ok {
		return Outcome{Status: OutcomeNotFound}, nil
	}
	m.held[e.Key] = n + 1
	if n < 1 {
		return Outcome{Status: OutcomePending}, nil
	}
	m.told[e.Key] = true
	return Outcome{Status: OutcomeSucceeded, Ref: "r"}, nil
}

// TestEngineBreakerInvariants drives effects against a moody provider
// many times over, its breaker opening at any point or never, some runs
// stopped (SIGTERM): nothing is sent again while the provider holds it,
// nothing is final that the provider did not answer final, each final
// effect is passed to Final once, every effect given and not final is
// in Pending (the feed said unread where it was not all given), and the
// stage's end (StillProcessing) says all is done only when it is.
func TestEngineBreakerInvariants(t *testing.T) {
	t.Parallel()
	var tripped, unread, done, cut int
	defer func() { t.Logf("%d not answering (%d unread), %d all done, %d stopped", tripped, unread, done, cut) }()
	for seed := range uint64(150) {
		m := &moody{rng: rand.New(rand.NewPCG(seed, 7)), none: []int{1, 3, 8}[seed%3], held: map[string]int{}, told: map[string]bool{}}
		s := newMemEffects()
		all := plan(t, s, 20)
		var f finals
		en := &Engine{Store: s, Sender: func(Effect) EffectSender { return m }, Pacer: NewPacer(Limits{MaxInFlight: 3}),
			FirstPoll: time.Millisecond, Poll: 2 * time.Millisecond, Wait: 30 * time.Millisecond, Window: []int{5, 50}[seed%2], Final: f.fn}
		ctx, cancel := context.WithCancel(context.Background())
		if seed%5 == 0 {
			time.AfterFunc(time.Duration(seed%17)*time.Millisecond, cancel)
		}
		given := map[int64]bool{}
		next := all
		res, err := en.RunFeed(ctx, func(context.Context) ([]Effect, error) {
			page := next[:min(4, len(next))]
			next = next[len(page):]
			for _, e := range page {
				given[e.ID] = true
			}
			return page, nil
		})
		stopped := ctx.Err() != nil
		cancel()
		switch {
		case stopped:
			cut++
		case res.NotAnswering != "":
			tripped++
			if res.Unread {
				unread++
			}
		case len(res.Pending) == 0:
			done++
		}
		for _, b := range m.bad {
			t.Errorf("seed %d: %s", seed, b)
		}
		pending := map[int64]bool{}
		for _, e := range res.Pending {
			pending[e.ID] = true
		}
		for _, e := range s.ledger() {
			if e.State.Final() && !m.told[e.Key] {
				t.Errorf("seed %d: %s %s, never answered final", seed, e.Key, e.State)
			}
			if e.State.Final() && f.n[e.Key] != 1 {
				t.Errorf("seed %d: %s final, passed to Final %d times", seed, e.Key, f.n[e.Key])
			}
			// An effect given and not final is pending, unless the run
			// was stopped.
			if given[e.ID] && !e.State.Final() && !pending[e.ID] && !stopped {
				t.Errorf("seed %d: %s %s left out of Pending (err %v, not answering %q)", seed, e.Key, e.State, err, res.NotAnswering)
			}
			if !given[e.ID] && !res.Unread && !stopped {
				t.Errorf("seed %d: %s never given, the feed not said unread", seed, e.Key)
			}
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("seed %d: err %v", seed, err)
		}
		// The stage's end says all is done only when it is.
		if !stopped && err == nil && res.StillProcessing("effects", "the provider", en.Wait) == nil {
			for _, e := range s.ledger() {
				if !e.State.Final() {
					t.Errorf("seed %d: %s %s and the run says all is done", seed, e.Key, e.State)
				}
			}
		}
	}
}
