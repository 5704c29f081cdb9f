package ledger_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// addLateRefund records a late refund of order, read by the next date (a
// late refund of an order is read after its date: one read on its own date
// or earlier is netted by its row).
func addLateRefund(t *testing.T, l *ledger.Ledger, runID int64, refundNo, orderNo string, amount int64, state string) {
	t.Helper()
	l.DB().MustExec(`INSERT INTO late_refunds (refund_no, order_no, amount_minor, created_at, run_id, business_date, state, seller_id)
		VALUES ($1, $2, $3, '2026-11-24 12:00+08', $4, '2026-11-24', $5, 'S1')`, refundNo, orderNo, amount, runID, state)
}

func TestRefundedItems(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	split := func(no string, ch pipeline.Channel, gross, refunded int64) pipeline.Split {
		at := time.Date(2026, 11, 23, 1, 0, 0, 0, time.UTC)
		return pipeline.Split{Order: pipeline.Order{OrderNo: no, SellerID: "S1", Channel: ch, ProviderTxnID: "T" + no,
			Currency: "USD", Amount: gross, Refunded: refunded, Category: "c", PaidAt: at, ConfirmedAt: at},
			Rule: "r", SellerShare: gross - refunded, Unverified: ch == chPayProtocol}
	}
	pp := chPayProtocol
	_, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
		for _, s := range []pipeline.Split{split("O5", pp, 5000, 0), split("O1", pp, 1000, 100), split("O2", pp, 2000, 0),
			split("O3", pp, 3000, 0), split("O4", pp, 4000, 0), split("O6", chInfinia, 6000, 0)} {
			if err := w.Split(s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for no, state := range map[string]string{"O1": ledger.ItemPaid, "O2": ledger.ItemHeld, "O3": ledger.ItemRejected, "O5": ledger.ItemRecorded} {
		if err := l.SetItemState(ctx, run.ID, no, ledger.ItemUnverified, state, ""); err != nil {
			t.Fatal(err)
		}
	}
	addLateRefund(t, l, run.ID, "R1", "O1", 200, "clawed")
	addLateRefund(t, l, run.ID, "R2", "O1", 300, "pending")
	addLateRefund(t, l, run.ID, "R3", "O1", 400, "ignored")
	addLateRefund(t, l, run.ID, "R4", "O1", 5000, "rejected") // not counted
	addLateRefund(t, l, run.ID, "R5", "O3", 10, "pending")    // of a rejected item
	addLateRefund(t, l, run.ID, "R6", "O6", 10, "pending")    // of an Infinia item

	got, err := l.RefundedItems(ctx, run.ID, pp)
	if err != nil {
		t.Fatal(err)
	}
	want := []pipeline.RefundedItem{
		{OrderNo: "O1", SellerID: "S1", ProviderTxnID: "TO1", Currency: "USD", Gross: 1000, Refunded: 1000, LateRefunds: 3, LastLateRefund: 400, State: "paid"},
		{OrderNo: "O2", SellerID: "S1", ProviderTxnID: "TO2", Currency: "USD", Gross: 2000, State: "held"},
		{OrderNo: "O5", SellerID: "S1", ProviderTxnID: "TO5", Currency: "USD", Gross: 5000, State: "recorded"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	// Pages of any size, each after the last order of the one before, are
	// the same items.
	for _, size := range []int{1, 2, 3} {
		var paged []pipeline.RefundedItem
		after, pages := "", 0
		for {
			page, err := l.RefundedItemsAfter(ctx, run.ID, pp, after, size)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if len(page) > size {
				t.Fatalf("a page of %d: %d items", size, len(page))
			}
			paged = append(paged, page...)
			if len(page) < size {
				break
			}
			after = page[len(page)-1].OrderNo
		}
		if !reflect.DeepEqual(paged, want) || pages != len(want)/size+1 {
			t.Fatalf("pages of %d (%d pages): got  %+v\nwant %+v", size, pages, paged, want)
		}
	}
	if other, err := l.RefundedItems(ctx, run.ID+1, pp); err != nil || len(other) != 0 {
		t.Fatalf("another run: %v, %v", other, err)
	}
}
