package ledger_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// timedProvider takes latency per request, keeps each key PROCESSING for
// its first processing queries, applies each key at most once, and calls
// onSend after each send (the test stops the run there).
type timedProvider struct {
	latency    time.Duration
	processing int
	onSend     func(n int)

	mu      sync.Mutex
	applied map[string]int
	queries map[string]int
	sends   int
}

func (p *timedProvider) Send(_ context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	time.Sleep(p.latency)
	p.mu.Lock()
	p.sends++
	n := p.sends
	p.applied[e.Key]++
	p.mu.Unlock()
	if p.onSend != nil {
		p.onSend(n)
	}
	return pipeline.Outcome{Status: pipeline.OutcomePending, Ref: "R" + e.Key}, nil
}

func (p *timedProvider) Query(_ context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	time.Sleep(p.latency)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.applied[e.Key] == 0 {
		return pipeline.Outcome{Status: pipeline.OutcomeNotFound}, nil
	}
	p.queries[e.Key]++
	if p.queries[e.Key] <= p.processing {
		return pipeline.Outcome{Status: pipeline.OutcomePending, Ref: "R" + e.Key}, nil
	}
	return pipeline.Outcome{Status: pipeline.OutcomeSucceeded, Ref: "R" + e.Key}, nil
}

// TestEngineStoppedMidWaveResumesFromTheLedger stops an engine run in the
// middle of its wave of sends (as SIGTERM does: nothing new starts, the
// requests in flight finish and are recorded), then runs a second engine
// over what the ledger holds: every effect ends succeeded, each key
// reached the provider once and was applied once, and each effect was
// final once.
func TestEngineStoppedMidWaveResumesFromTheLedger(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	runID := newRun(t, l)
	const n = 60
	var effects []pipeline.Effect
	for i := 0; i < n; i++ {
		effects = append(effects, plan(t, l, runID, fmt.Sprintf("RS/20261123/S%03d/CNY", i), 100+int64(i)))
	}
	p := &timedProvider{latency: 10 * time.Millisecond, processing: 2, applied: map[string]int{}, queries: map[string]int{}}
	var mu sync.Mutex
	finals := map[string]int{}
	final := func(_ context.Context, e pipeline.Effect) error {
		mu.Lock()
		defer mu.Unlock()
		if e.State != pipeline.EffectSucceeded {
			return fmt.Errorf("%s %s", e.Key, e.State)
		}
		finals[e.Key]++
		return nil
	}
	stopCtx, stop := context.WithCancel(ctx)
	p.onSend = func(sent int) {
		if sent == 25 {
			stop()
		}
	}
	engine := func() *pipeline.Engine {
		return &pipeline.Engine{Store: l, Sender: func(pipeline.Effect) pipeline.EffectSender { return p }, Final: final,
			Pacer: pipeline.NewPacer(pipeline.Limits{Limit: every(2 * time.Millisecond), Rate: 500}), Poll: 20 * time.Millisecond}
	}
	if _, err := engine().RunFeed(stopCtx, onePage(effects)); err == nil {
		t.Fatal("the stopped run says nothing")
	}
	left, err := l.EffectsOfKind(ctx, runID, "revenue_share")
	if err != nil {
		t.Fatal(err)
	}
	states := map[pipeline.EffectState]int{}
	var todo []pipeline.Effect
	for _, e := range left {
		states[e.State]++
		if !e.State.Final() {
			todo = append(todo, e)
		}
	}
	p.mu.Lock()
	sentFirst := p.sends
	p.mu.Unlock()
	// Every request that left is recorded sent; a few more may be marked
	// sent whose request never left (the stop came between the mark and
	// the send): the next run finds the provider does not know them and
	// sends them with the same key.
	if states[pipeline.EffectPlanned] == 0 || states[pipeline.EffectSent] < sentFirst || sentFirst < 25 || sentFirst >= n {
		t.Fatalf("after the stop: %v, %d sent: want the sent ones recorded sent, the rest planned", states, sentFirst)
	}
	// The next run: the ledger is the queue.
	p.onSend = nil
	res, err := engine().RunFeed(ctx, onePage(todo))
	if err != nil || len(res.Pending) != 0 {
		t.Fatalf("resumed: %v, %d pending", err, len(res.Pending))
	}
	after, err := l.EffectsOfKind(ctx, runID, "revenue_share")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range after {
		if e.State != pipeline.EffectSucceeded || e.Sends < 1 || e.Sends > 2 || e.ProviderRef != "R"+e.Key {
			t.Fatalf("%s: %s after %d sends, ref %q", e.Key, e.State, e.Sends, e.ProviderRef)
		}
		if p.applied[e.Key] != 1 || finals[e.Key] != 1 {
			t.Fatalf("%s applied %d times, final %d times", e.Key, p.applied[e.Key], finals[e.Key])
		}
	}
	if p.sends != n || len(after) != n {
		t.Fatalf("%d sends arrived for %d effects", p.sends, len(after))
	}
}

// every is a Limiter letting one request through per interval.
func every(d time.Duration) pipeline.Limiter { return &ticker{every: d} }

type ticker struct {
	mu    sync.Mutex
	every time.Duration
	next  time.Time
}

func (b *ticker) Wait(ctx context.Context) error {
	b.mu.Lock()
	at := b.next
	if now := time.Now(); at.Before(now) {
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

var _ pipeline.EffectStore = (*ledger.Ledger)(nil)

// onePage feeds effects to Engine.RunFeed as one page.
func onePage(effects []pipeline.Effect) pipeline.Feed {
	return func(context.Context) ([]pipeline.Effect, error) {
		page := effects
		effects = nil
		return page, nil
	}
}
