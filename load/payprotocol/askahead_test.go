package payprotocol_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/finaltest"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
)

// failFirst is a ReconcileAPI whose questions about some orders fail, as
// Pay Protocol timing out past its retries would, the first time each is
// asked; every other answer is api's.
type failFirst struct {
	*ppAPI
	nos    []string
	mu     sync.Mutex
	failed map[string]bool
}

func (f *failFirst) OrderPaid(ctx context.Context, no string, paid payprotocol.Order) (payprotocol.Order, error) {
	if f.fails(no) {
		return payprotocol.Order{}, transientErr{"refund/detail: timeout"}
	}
	return f.ppAPI.OrderPaid(ctx, no, paid)
}

func (f *failFirst) Order(ctx context.Context, no string) (payprotocol.Order, error) {
	if f.fails(no) {
		return payprotocol.Order{}, transientErr{"payment/detail: timeout"}
	}
	return f.ppAPI.Order(ctx, no)
}

// fails reports whether this question about no fails (its first), counted
// as asked.
func (f *failFirst) fails(no string) bool {
	f.mu.Lock()
	fail := slices.Contains(f.nos, no) && !f.failed[no]
	if fail {
		if f.failed == nil {
			f.failed = map[string]bool{}
		}
		f.failed[no] = true
	}
	f.mu.Unlock()
	if fail {
		f.ppAPI.mu.Lock()
		f.ppAPI.asked = append(f.ppAPI.asked, no)
		f.ppAPI.mu.Unlock()
	}
	return fail
}

// TestAskAheadTriesAgain: a pass of the ask-ahead that fails (three
// questions in a row timing out past their retries: Pay Protocol down) is
// tried again after the pause, and asks only what the failed pass did not
// answer; the summary says it reconciled ahead.
func TestAskAheadTriesAgain(t *testing.T) {
	items, orders := paidOrders(30)
	api := &failFirst{ppAPI: &ppAPI{orders: orders}, nos: []string{"T-12", "T-13", "T-14"}}
	final := &finaltest.Answers{}
	// One in flight, pages of 10: the first pass answers T-00..T-11 and
	// fails at T-12, T-13 and T-14.
	m := payprotocol.Matcher(payprotocol.MatcherConfig{Store: ppStore{items: items}, API: api,
		Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: 1}), Final: final, PageSize: 10, WentOn: true})
	s, err := payprotocol.AskAhead(m, 3, time.Millisecond)(context.Background(), &pipeline.Run{ID: 42})
	if err != nil || s != "Pay Protocol: reconciled ahead" {
		t.Fatalf("%q, %v; want reconciled ahead on the second pass", s, err)
	}
	if n := len(final.Keys(payprotocol.Name)); n != 30 {
		t.Fatalf("%d answers kept, want 30", n)
	}
	slices.Sort(api.asked)
	if len(api.asked) != 33 || len(slices.Compact(slices.Clone(api.asked))) != 30 {
		t.Fatalf("asked %v, want each order once and T-12, T-13, T-14 twice", api.asked)
	}
}

// The ask-ahead gives up after its passes, or at once on refused
// credentials, and says so; stopped during its pause, it stops.
func TestAskAheadGivesUp(t *testing.T) {
	calls := 0
	failing := func(err error) pipeline.Matcher {
		return func(context.Context, *pipeline.Run) ([]pipeline.Mismatch, error) {
			calls++
			return nil, err
		}
	}
	down := fmt.Errorf("reconcile O-1 with Pay Protocol: %w", transientErr{"payment/detail: timeout"})
	s, err := payprotocol.AskAhead(failing(down), 3, time.Millisecond)(context.Background(), &pipeline.Run{ID: 42})
	if err != nil || calls != 3 || s != "Pay Protocol: not reconciled ahead (3 passes; reconcile O-1 with Pay Protocol: payment/detail: timeout); reconcile asks" {
		t.Fatalf("%q, %v after %d passes", s, err, calls)
	}
	calls = 0
	refused := pipeline.Errorf(pipeline.KindUsage, "Pay Protocol", "refused our credentials")
	if s, err := payprotocol.AskAhead(failing(refused), 3, time.Millisecond)(context.Background(), &pipeline.Run{ID: 42}); err != nil || calls != 1 || !strings.Contains(s, "not reconciled ahead (1 pass;") {
		t.Fatalf("refused credentials: %q, %v after %d passes, want one", s, err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopping := func(context.Context, *pipeline.Run) ([]pipeline.Mismatch, error) {
		cancel() // SIGTERM while the pass fails
		return nil, down
	}
	done := make(chan error, 1)
	go func() {
		_, err := payprotocol.AskAhead(stopping, 3, time.Hour)(ctx, &pipeline.Run{ID: 42})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("stopped: %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the ask-ahead waited out its pause after the run stopped")
	}
}
