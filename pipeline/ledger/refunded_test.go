package ledger_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

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

// TestProviderTxnsOfRun: of a provider's order numbers, those of the
// run's items of the channel, by the unique index of the transactions
// that settle once: not another run's, another channel's or unknown ones.
func TestProviderTxnsOfRun(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	write := func(run *pipeline.Run, splits ...pipeline.Split) {
		t.Helper()
		writeSplits(t, l, run, splits...)
	}
	split := func(no string, ch pipeline.Channel) pipeline.Split {
		at := time.Date(2026, 11, 20, 1, 0, 0, 0, time.UTC)
		return pipeline.Split{Order: pipeline.Order{OrderNo: no, SellerID: "S1", Channel: ch, ProviderTxnID: "T" + no,
			Currency: "USD", Amount: 1000, Category: "c", PaidAt: at, ConfirmedAt: at},
			Rule: "r", SellerShare: 1000, Unverified: ch == chPayProtocol, TxnOnce: ch == chPayProtocol}
	}
	run := openRun(t, l, day)
	write(run, split("O1", chPayProtocol), split("O2", chPayProtocol), split("O3", chInfinia))
	other := openRun(t, l, day.AddDays(1))
	write(other, split("O4", chPayProtocol))
	got, err := l.ProviderTxnsOfRun(ctx, run.ID, chPayProtocol, []string{"TO1", "TO3", "TO4", "TO9", "TO2"})
	if want := map[string]bool{"TO1": true, "TO2": true}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, %v; want %v", got, err, want)
	}
	if got, err := l.ProviderTxnsOfRun(ctx, other.ID, chPayProtocol, []string{"TO1", "TO4"}); err != nil || !reflect.DeepEqual(got, map[string]bool{"TO4": true}) {
		t.Fatalf("the other run: %v, %v", got, err)
	}
	if got, err := l.ProviderTxnsOfRun(ctx, run.ID, chPayProtocol, nil); err != nil || len(got) != 0 {
		t.Fatalf("none asked: %v, %v", got, err)
	}
	// Each is looked up by the index, not by walking the run's items:
	// with sequential scans priced out, the plan names the index (on
	// these few rows the planner would scan them otherwise).
	tx, err := l.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.QueryContext(ctx, `EXPLAIN `+ledger.ProviderTxnsOfRunQuery, run.ID, string(chPayProtocol), pq.Array([]string{"TO1"}))
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(plan, "\n"), "items_provider_txn") {
		t.Fatalf("the plan does not use items_provider_txn:\n%s", strings.Join(plan, "\n"))
	}
}
