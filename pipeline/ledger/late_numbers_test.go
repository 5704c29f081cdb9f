package ledger_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

// TestLateRefundsRecordedOtherwiseAreTheOnesHeldForAnotherRefund: of the
// refunds read, those whose number the ledger holds, not rejected, for
// another order, seller or amount (mutants: the state dropped, or the
// amount left out of the comparison, each survived every test: a refund
// rejected before and read again corrected needed a person, and one read
// again for another amount under a number already clawed back did not).
func TestLateRefundsRecordedOtherwiseAreTheOnesHeldForAnotherRefund(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	if _, err := l.DB().Exec(fmt.Sprintf(`INSERT INTO late_refunds (refund_no, order_no, seller_id, amount_minor, run_id, business_date, state, reason) VALUES
		('N1', 'O1', 'S1', 100, %[1]d, '%[2]s', 'pending', ''),
		('N2', 'O2', 'S1', 200, %[1]d, '%[2]s', 'rejected', 'bad'),
		('N3', 'O3', 'S1', 300, %[1]d, '%[2]s', 'clawed', '')`, run.ID, day)); err != nil {
		t.Fatal(err)
	}
	got, err := l.LateRefundsRecordedOtherwise(ctx, []pipeline.LateRefund{
		{RefundNo: "N1", OrderNo: "O1", SellerID: "S1", Amount: 100},
		{RefundNo: "N2", OrderNo: "O2", SellerID: "S1", Amount: 201},
		{RefundNo: "N3", OrderNo: "O3", SellerID: "S1", Amount: 301},
		{RefundNo: "N4", OrderNo: "O4", SellerID: "S1", Amount: 400},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []pipeline.LateRefund{{RefundNo: "N3", OrderNo: "O3", SellerID: "S1", Amount: 300, Date: day, State: pipeline.LateRefundClawed}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("recorded otherwise\n got %+v\nwant %+v", got, want)
	}
}

// TestRenumberedSinceResolvesOnlyTheRunsDateAndShard: a refund kept under
// a number of settle's that the platform no longer gives is resolved,
// ignored (one of amount 0 too, kept: migration 00032), by the run of its date and shard
// alone (mutants: the date dropped, or the shard's sellers not checked,
// each survived every test: a run resolved another date's or another
// shard's refunds, which that run still reads).
func TestRenumberedSinceResolvesOnlyTheRunsDateAndShard(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	key := pipeline.RunKey{Date: day, Shard: pipeline.Shard{Index: 0, Count: 2}}
	run, _, err := l.OpenRun(ctx, key, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	earlier := openRun(t, l, day.AddDays(-1))
	var mine, theirs string
	for i := 0; mine == "" || theirs == ""; i++ {
		s := fmt.Sprintf("S%d", i)
		if key.Shard.Owns(s) {
			mine = s
		} else {
			theirs = s
		}
	}
	p := pipeline.RenumberPrefix
	if _, err := l.DB().Exec(fmt.Sprintf(`INSERT INTO late_refunds (refund_no, order_no, seller_id, amount_minor, run_id, business_date, state, reason) VALUES
		('%[1]sa', 'Oa', '%[2]s', 100, %[4]d, '%[5]s', 'rejected', 'was'),
		('%[1]sb', 'Ob', '%[2]s', 0, %[4]d, '%[5]s', 'rejected', 'was'),
		('%[1]sc', 'Oc', '%[3]s', 100, %[4]d, '%[5]s', 'rejected', 'was'),
		('%[1]sd', 'Od', '%[2]s', 100, %[6]d, '%[7]s', 'rejected', 'was'),
		('%[1]se', 'Oe', '%[2]s', 100, %[4]d, '%[5]s', 'rejected', 'was')`,
		p, mine, theirs, run.ID, day, earlier.ID, earlier.Key.Date)); err != nil {
		t.Fatal(err)
	}
	if err := l.RenumberedSince(ctx, run, []pipeline.LateRefund{{RefundNo: p + "e"}}); err != nil {
		t.Fatal(err)
	}
	rows, err := l.DB().Query(`SELECT refund_no, state FROM late_refunds`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]string{}
	for rows.Next() {
		var no, state string
		if err := rows.Scan(&no, &state); err != nil {
			t.Fatal(err)
		}
		got[no] = state
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{p + "a": "ignored", p + "b": "ignored", p + "c": "rejected", p + "d": "rejected", p + "e": "rejected"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("late refunds after the run's resolution: %v, want %v", got, want)
	}
}
