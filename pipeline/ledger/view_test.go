package ledger_test

import (
	"context"
	"testing"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// TestViewReadsTheLedgerAtOneInstant: a revenue share recorded succeeded
// while a View reads the date's reports (another shard's payout, between
// two of them) is in none of the View's reads, payouts.csv's and
// sellers.csv's alike, even those begun after it; a read after the View
// sees it.
func TestViewReadsTheLedgerAtOneInstant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := open(t)
	runID := newRun(t, l)
	e := plan(t, l, runID, "RS/20261123/S1/CNY", 12345)
	if err := l.MarkSent(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	read := func(r ledger.Reader) (state string, paid int64) {
		t.Helper()
		if err := r.PayoutLines(ctx, day, func(p pipeline.PayoutLine) error {
			state = p.State
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := r.SellerLines(ctx, day, func(s pipeline.SellerLine) error {
			paid += s.Paid
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return state, paid
	}
	err := l.View(ctx, func(r ledger.Reader) error {
		if state, paid := read(r); state != "sent" || paid != 0 {
			t.Fatalf("before the answer: payout %s, paid %d; want sent, 0", state, paid)
		}
		if err := l.RecordOutcome(ctx, e.ID, pipeline.EffectSucceeded, "REF", ""); err != nil {
			t.Fatal(err)
		}
		if state, paid := read(r); state != "sent" || paid != 0 {
			t.Errorf("the same View after the answer was recorded: payout %s, paid %d; want sent, 0 as it first read", state, paid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if state, paid := read(l.Reader); state != "succeeded" || paid != 12345 {
		t.Errorf("a read after the View: payout %s, paid %d; want succeeded, 12345", state, paid)
	}
}
