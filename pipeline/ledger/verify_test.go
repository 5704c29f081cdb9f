package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// TestItemsToVerify: the run's unverified items of the channel asked for,
// and those of it held with a reason starting with the prefix given (held
// by an earlier verification), by order number; none of another channel or
// held for another reason.
func TestItemsToVerify(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	at := time.Date(2026, 11, 23, 1, 0, 0, 0, time.UTC)
	split := func(no string, ch pipeline.Channel) pipeline.Split {
		return pipeline.Split{Order: pipeline.Order{OrderNo: no, SellerID: "S1", Channel: ch, ProviderTxnID: "T" + no,
			Currency: "USD", Amount: 1000, Category: "c", PaidAt: at, ConfirmedAt: at}, Rule: "r", SellerShare: 1000,
			Unverified: ch == chPayProtocol} // as its channel's spec says
	}
	pp := chPayProtocol
	_, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
		for _, s := range []pipeline.Split{split("O4", pp), split("O1", pp), split("O2", pp), split("O3", pp), split("O5", chInfinia)} {
			if err := w.Split(s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for no, reason := range map[string]string{"O2": "held: checked% payment is pending", "O3": "held: another reason"} {
		if err := l.SetItemState(ctx, run.ID, no, ledger.ItemUnverified, ledger.ItemHeld, reason); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.ItemsToVerify(ctx, run.ID, pp, "held: checked%")
	if err != nil {
		t.Fatal(err)
	}
	var nos []string
	for _, v := range got {
		nos = append(nos, v.OrderNo+" "+v.State+" "+v.Reason)
		if v.Channel != pp || v.ProviderTxnID != "T"+v.OrderNo || v.Amount != 1000 || v.Currency != "USD" {
			t.Errorf("item %+v", v)
		}
	}
	want := []string{"O1 unverified ", "O2 held held: checked% payment is pending", "O4 unverified "}
	if len(nos) != len(want) || nos[0] != want[0] || nos[1] != want[1] || nos[2] != want[2] {
		t.Fatalf("got %q, want %q", nos, want)
	}
	// The prefix is a prefix, not a pattern.
	if got, err := l.ItemsToVerify(ctx, run.ID, pp, "held: %"); err != nil || len(got) != 2 {
		t.Fatalf("a prefix with %%: %d items, %v; want the 2 unverified", len(got), err)
	}
	// An order that nets a refund comes with what its late refunds in the
	// ledger add up to, pending or clawed back (not ignored or rejected).
	if _, err := l.DB().Exec(`UPDATE items SET refunded_minor = 100, seller_minor = 900 WHERE order_no IN ('O1', 'O4')`); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DB().Exec(`INSERT INTO late_refunds (refund_no, order_no, seller_id, amount_minor, created_at, run_id, business_date, state)
		SELECT 'R' || s, 'O1', 'S1', s * 10, now(), $1, $2, (ARRAY['pending', 'clawed', 'ignored', 'rejected'])[s]
		FROM generate_series(1, 4) s`, run.ID, day.AddDays(1).String()); err != nil {
		t.Fatal(err)
	}
	got, err = l.ItemsToVerify(ctx, run.ID, pp, "held: checked%")
	if err != nil || len(got) != 3 || got[0].LateRefunded != 30 || got[2].LateRefunded != 0 {
		t.Fatalf("late refunds of O1 (10 pending, 20 clawed), of O4 (none): %+v, %v", got, err)
	}
}

// TestItemsToVerifyCountsNoRefundItsOrderNetted: a late refund read on a
// date no later than its order's settlement (read while the order had no
// item; the platform then moved the order to the date that settled it) is
// in that date's source row already: the item's refunded_minor nets it,
// and the clawbacks ignore it as "netted by the order's settlement"
// (pipeline.ClawBacks). The verification's sum of the order's late
// refunds counted it a second time while it was still pending (the
// upload stage verifies before distribute resolves it): a Pay Protocol
// refund larger than everything the platform recorded passed as covered,
// and the seller was paid out of money refunded.
func TestItemsToVerifyCountsNoRefundItsOrderNetted(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	at := time.Date(2026, 11, 23, 1, 0, 0, 0, time.UTC)
	_, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
		return w.Split(pipeline.Split{Order: pipeline.Order{OrderNo: "O1", SellerID: "S1", Channel: chPayProtocol, ProviderTxnID: "TO1",
			Currency: "USD", Amount: 1000, Refunded: 300, Category: "c", PaidAt: at, ConfirmedAt: at}, Rule: "r", SellerShare: 700, Unverified: true})
	})
	if err != nil {
		t.Fatal(err)
	}
	// R1 (300, netted by O1's row of day) was read on the day before, while
	// O1 had no item; R2 (50) is a refund read by the day after: late.
	if _, err := l.DB().Exec(`INSERT INTO late_refunds (refund_no, order_no, seller_id, amount_minor, created_at, run_id, business_date, state)
		VALUES ('R1', 'O1', 'S1', 300, now(), $1, $2, 'pending'), ('R2', 'O1', 'S1', 50, now(), $1, $3, 'pending')`,
		run.ID, day.AddDays(-1).String(), day.AddDays(1).String()); err != nil {
		t.Fatal(err)
	}
	got, err := l.ItemsToVerify(ctx, run.ID, chPayProtocol, "held: Pay Protocol")
	if err != nil || len(got) != 1 {
		t.Fatalf("%+v, %v", got, err)
	}
	if got[0].LateRefunded != 50 {
		t.Fatalf("O1 nets 300 (R1) and has 50 of late refunds (R2): LateRefunded %d, want 50", got[0].LateRefunded)
	}
}
