package ledger_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// atLeast splits an order at 10% of what is left of it, the commission at
// least min: a rules file's min_minor.
func atLeast(min int64) func(pipeline.Order, pipeline.Date) (pipeline.Split, error) {
	return func(o pipeline.Order, _ pipeline.Date) (pipeline.Split, error) {
		base := o.Amount - o.Refunded
		c := max(base/10, min)
		return pipeline.Split{Order: o, Rule: "min", Commission: c, SellerShare: base - c}, nil
	}
}

// repricingMidway is the ledger, but that its first recorded clawback is
// followed, before the next is worked out, by a reprice of the date
// (another process's settle reprice committing meanwhile).
type repricingMidway struct {
	*ledger.Ledger
	once    sync.Once
	reprice func()
}

func (s *repricingMidway) ResolveLateRefund(ctx context.Context, run *pipeline.Run, refundNo, state, reason string, adj *pipeline.Adjustment, prior int64) error {
	err := s.Ledger.ResolveLateRefund(ctx, run, refundNo, state, reason, adj, prior)
	if err == nil {
		s.once.Do(s.reprice)
	}
	return err
}

// TestALateRefundIsNotSplitUnderRulesARepriceReplacedMeanwhile: a run
// looks a date's rules up once (cmd's resplit keeps them for the run), for
// its first late refund of the date's orders; a reprice of the date then
// commits, whose rules leave every order's split as it is (no entry: a
// minimum commission no order is below yet) but split the next refund
// otherwise. Its clawback, worked out on the rules of before, is not
// recorded (ErrBalanceMoved: waiting), and the next run splits it under
// the repriced rules. Before, it was recorded split under the rules the
// reprice replaced: 540 back from the seller and 60 of commission, where
// the date's rules give 550 and 50 (seen failing so).
func TestALateRefundIsNotSplitUnderRulesARepriceReplacedMeanwhile(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	at := time.Date(day.Year, time.Month(day.Month), day.Day, 12, 0, 0, 0, time.UTC)
	if _, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
		for i, no := range []string{"Qa", "Qb"} {
			o := pipeline.Order{Seq: int64(i + 1), OrderNo: no, SellerID: "S1", Channel: chInfinia, ProviderTxnID: "T" + no,
				Currency: "USD", Amount: 1000, PaidAt: at, ConfirmedAt: at}
			if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 100, SellerShare: 900}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DB().Exec(`UPDATE items SET state = 'paid'`); err != nil {
		t.Fatal(err)
	}
	run2 := openRun(t, l, day.AddDays(1))
	if _, err := l.RecordLateRefunds(ctx, run2, []pipeline.LateRefund{
		{RefundNo: "Q1", OrderNo: "Qa", SellerID: "S1", Amount: 500, CreatedAt: at.Add(24 * time.Hour), State: pipeline.LateRefundPending},
		{RefundNo: "Q2", OrderNo: "Qb", SellerID: "S1", Amount: 600, CreatedAt: at.Add(24 * time.Hour), State: pipeline.LateRefundPending},
	}); err != nil {
		t.Fatal(err)
	}

	// The date's rules: 10%; once repriced, 10% and at least 50.
	var mu sync.Mutex
	current := atLeast(0)
	// A run's resplit: the date's rules as they were when it first
	// looked them up, for the rest of the run.
	runResplit := func() pipeline.Resplit {
		cached := map[pipeline.Date]func(pipeline.Order, pipeline.Date) (pipeline.Split, error){}
		return func(_ context.Context, o pipeline.Order, d pipeline.Date, _ int64) (pipeline.Split, error) {
			mu.Lock()
			defer mu.Unlock()
			if cached[d] == nil {
				cached[d] = current
			}
			return cached[d](o, d)
		}
	}
	store := &repricingMidway{Ledger: l, reprice: func() {
		rules := pipeline.RulesFile{Name: "min.csv", Body: []byte("seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from\n,,USD,1000,,50,,2020-01-01\n"), Hash: "hmin"}
		res, err := pipeline.Reprice(ctx, l, day, rules, repriceChannels, atLeast(50), false)
		if err != nil || res.ID == 0 || len(res.Repricing.Adjust) != 0 {
			t.Errorf("reprice: %+v %v; want the rules recorded, no entry", res, err)
		}
		mu.Lock()
		current = atLeast(50)
		mu.Unlock()
	}}
	back := func(refundNo string) (seller, commission int64, found bool) {
		t.Helper()
		err := l.DB().QueryRow(`SELECT -amount_minor, commission_back FROM adjustments WHERE refund_no = $1`, refundNo).Scan(&seller, &commission)
		return seller, commission, err == nil
	}
	if _, _, err := pipeline.ClawBacks(ctx, store, runResplit(), repriceChannels, run2); err != nil {
		t.Fatal(err)
	}
	// Qa's, before the reprice: 10% of the 500 left, 50, both ways.
	if s, c, ok := back("Q1"); !ok || s != 450 || c != 50 {
		t.Fatalf("Q1: %d back from the seller, %d of commission (recorded %v); want 450 and 50", s, c, ok)
	}
	if s, c, ok := back("Q2"); ok && (s != 550 || c != 50) {
		t.Fatalf("Q2, worked out on the rules the reprice replaced: %d back from the seller, %d of commission; want 550 and 50, or nothing recorded yet", s, c)
	}
	// The next run splits it under the date's rules now.
	if _, _, err := pipeline.ClawBacks(ctx, l, runResplit(), repriceChannels, run2); err != nil {
		t.Fatal(err)
	}
	if s, c, ok := back("Q2"); !ok || s != 550 || c != 50 {
		t.Errorf("Q2 by the next run: %d back from the seller, %d of commission (recorded %v); want 550 and 50", s, c, ok)
	}
}
