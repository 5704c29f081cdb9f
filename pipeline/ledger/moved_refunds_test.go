package ledger_test

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// TestMovedOrderRefundsTakeBackOnlyWhatTheLedgerDoesNotKnow: the rows of
// a run rejected as already settled on an earlier date show refunds; what
// is pending is what the row shows beyond the item's refund and the late
// refunds up to the run's date that are not rejected. M1: 500 shown, 100
// netted, 150 + 50 (the run's own date) known, a rejected 1000 and a later
// date's 40 not: 200. M7: this date's moved refund (20) read again, the
// row now showing 50: 30. Nothing for a row rejected for another reason
// (M2), an item of the run's own date (M3), another currency's (M4), a
// row showing no more than known (M5), an order whose later date's moved
// refund is not rejected (M6; a rejected one, M8, does not count). Each
// of these conditions survived every test when dropped or moved by one
// (cmd/settle's moved-order tests caught only the refund_no prefix of the
// later date's moved refund), the amount without the known late refunds
// too: the seller would be clawed back twice what the platform refunded.
func TestMovedOrderRefundsTakeBackOnlyWhatTheLedgerDoesNotKnow(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	before, run, after := openRun(t, l, day.AddDays(-1)), openRun(t, l, day), openRun(t, l, day.AddDays(1))
	write := func(r *pipeline.Run, orders ...pipeline.Order) {
		t.Helper()
		at := time.Date(r.Key.Date.Year, time.Month(r.Key.Date.Month), r.Key.Date.Day, 12, 0, 0, 0, time.UTC)
		if _, err := l.WriteItems(ctx, r, func(w pipeline.ItemWriter) error {
			for i, o := range orders {
				o.Seq, o.SellerID, o.Channel, o.ProviderTxnID, o.PaidAt, o.ConfirmedAt = int64(i+1), "S1", chInfinia, "T"+o.OrderNo, at, at
				o.Currency = cmp.Or(o.Currency, "USD")
				if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 10, SellerShare: o.Amount - o.Refunded - 10}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	write(before, pipeline.Order{OrderNo: "M1", Amount: 1000, Refunded: 100}, pipeline.Order{OrderNo: "M2", Amount: 1000},
		pipeline.Order{OrderNo: "M4", Amount: 1000}, pipeline.Order{OrderNo: "M5", Amount: 1000}, pipeline.Order{OrderNo: "M6", Amount: 1000},
		pipeline.Order{OrderNo: "M7", Amount: 1000}, pipeline.Order{OrderNo: "M8", Amount: 1000})
	write(run, pipeline.Order{OrderNo: "M3", Amount: 1000})
	settled := "already settled on " + before.Key.Date.String()
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO rejects (run_id, seq, order_no, seller_id, provider, currency, amount, refunded, reason) VALUES
			(%[1]d, 1, 'M1', 'S1', 'infiniapay', 'USD', '1000', '500', '%[2]s'),
			(%[1]d, 2, 'M2', 'S1', 'infiniapay', 'USD', '1000', '70', 'amount: not a number'),
			(%[1]d, 3, 'M3', 'S1', 'infiniapay', 'USD', '1000', '60', '%[2]s'),
			(%[1]d, 4, 'M4', 'S1', 'infiniapay', 'EUR', '1000', '80', '%[2]s'),
			(%[1]d, 5, 'M5', 'S1', 'infiniapay', 'USD', '1000', '30', '%[2]s'),
			(%[1]d, 6, 'M6', 'S1', 'infiniapay', 'USD', '1000', '90', '%[2]s'),
			(%[1]d, 7, 'M7', 'S1', 'infiniapay', 'USD', '1000', '50', '%[2]s'),
			(%[1]d, 8, 'M8', 'S1', 'infiniapay', 'USD', '1000', '25', '%[2]s')`, run.ID, settled),
		fmt.Sprintf(`INSERT INTO late_refunds (refund_no, order_no, seller_id, amount_minor, run_id, business_date, state, reason) VALUES
			('L1', 'M1', 'S1', 150, %[1]d, '%[2]s', 'pending', ''),
			('L2', 'M1', 'S1', 50, %[3]d, '%[4]s', 'clawed', ''),
			('L3', 'M1', 'S1', 1000, %[1]d, '%[2]s', 'rejected', 'bad'),
			('L4', 'M1', 'S1', 40, %[5]d, '%[6]s', 'pending', ''),
			('L5', 'M5', 'S1', 30, %[1]d, '%[2]s', 'pending', ''),
			('%[7]s', 'M6', 'S1', 90, %[5]d, '%[6]s', 'pending', ''),
			('%[8]s', 'M7', 'S1', 20, %[3]d, '%[4]s', 'pending', ''),
			('%[9]s', 'M8', 'S1', 25, %[5]d, '%[6]s', 'rejected', 'bad')`,
			before.ID, before.Key.Date, run.ID, run.Key.Date, after.ID, after.Key.Date,
			pipeline.MovedRefundNo("M6", after.Key.Date), pipeline.MovedRefundNo("M7", run.Key.Date), pipeline.MovedRefundNo("M8", after.Key.Date)),
	} {
		if _, err := l.DB().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.MovedOrderRefunds(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	amounts := map[string]int64{}
	for _, r := range got {
		if r.SellerID != "S1" || r.Date != day || r.RefundNo != pipeline.MovedRefundNo(r.OrderNo, day) || r.State != pipeline.LateRefundPending {
			t.Errorf("moved refund %+v: want S1's, pending, of %s, under its moved number", r, day)
		}
		amounts[r.OrderNo] = r.Amount
	}
	if want := map[string]int64{"M1": 200, "M7": 30, "M8": 25}; !reflect.DeepEqual(amounts, want) {
		t.Fatalf("moved refunds %v, want %v", amounts, want)
	}
}
