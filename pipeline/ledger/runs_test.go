package ledger_test

import (
	"context"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

func TestReextractDropsWhatWasNotSentAndRefusesOnceSomethingWas(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	ch := pipeline.InfiniaChannels
	count := func(q string, args ...any) int64 {
		t.Helper()
		var n int64
		if err := l.DB().GetContext(ctx, &n, q, args...); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Day 1 carries 2 x 10.00; day 2 plans a payout netting it, unsent.
	r1 := uploadedItems(t, l, day, "A", 2, 1000)
	if _, _, err := l.CarryItems(ctx, r1, "S1", "USD", ch, "RS/x", "binding PENDING"); err != nil {
		t.Fatal(err)
	}
	r2 := uploadedItems(t, l, day.AddDays(1), "B", 1, 500)
	if _, err := l.PlanPayout(ctx, r2, "S1", ch, payout(r2, 2500, 1)); err != nil {
		t.Fatal(err)
	}
	if b := openBalance(t, l); b != 0 {
		t.Fatalf("netted: %d still open", b)
	}
	// Nothing of day 2 was sent: read again, its planned payout is gone and
	// day 1's balance is open again for the next payout.
	if err := l.Reextract(ctx, r2.ID); err != nil {
		t.Fatal(err)
	}
	if n := count(`SELECT count(*) FROM items WHERE run_id = $1`, r2.ID) + count(`SELECT count(*) FROM effects WHERE run_id = $1`, r2.ID); n != 0 {
		t.Fatalf("%d items and effects of day 2 left", n)
	}
	if b := openBalance(t, l); b != 2000 {
		t.Fatalf("after reading day 2 again, %d open, want day 1's 2000", b)
	}
	if n := count(`SELECT cardinality(stages_done) FROM runs WHERE id = $1`, r2.ID); n != 0 {
		t.Fatalf("%d stages still done", n)
	}
	// Day 1's balance was netted into nothing sent: day 1 can be read again
	// too, and its carried balance goes with its items.
	if err := l.Reextract(ctx, r1.ID); err != nil {
		t.Fatal(err)
	}
	if b := openBalance(t, l); b != 0 {
		t.Fatalf("after reading day 1 again, %d open, want 0", b)
	}

	// Day 3 carries; day 4's payout netting it is sent: neither can be read
	// again, and each refusal names what went out.
	r3 := uploadedItems(t, l, day.AddDays(2), "C", 1, 1000)
	if _, _, err := l.CarryItems(ctx, r3, "S1", "USD", ch, "RS/y", "below the minimum"); err != nil {
		t.Fatal(err)
	}
	r4 := uploadedItems(t, l, day.AddDays(3), "D", 1, 700)
	e, err := l.PlanPayout(ctx, r4, "S1", ch, payout(r4, 1700, 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.MarkSent(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	// Day 5's order had a late refund clawed back already.
	r5 := uploadedItems(t, l, day.AddDays(4), "E", 1, 100)
	addLateRefund(t, l, r5.ID, "R9", "Ea", 50, "clawed")
	for _, tc := range []struct {
		run  *pipeline.Run
		want string
	}{
		{r4, "1 side effects sent (revenue_share " + e.Subject + " sent)"},
		{r3, "1 carried balances netted into a payout (S1 USD into " + e.Subject + ")"},
		{r5, "1 late refunds worked out on its orders (R9 of Ea clawed)"},
	} {
		items := count(`SELECT count(*) FROM items WHERE run_id = $1`, tc.run.ID)
		err := l.Reextract(ctx, tc.run.ID)
		if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run %d: %v, want a refusal naming %q", tc.run.ID, err, tc.want)
		}
		if n := count(`SELECT count(*) FROM items WHERE run_id = $1`, tc.run.ID); n != items || n == 0 {
			t.Errorf("run %d: a refused reextract changed its items (%d, was %d)", tc.run.ID, n, items)
		}
	}
}
