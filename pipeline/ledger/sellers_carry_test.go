package ledger_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

// TestSellersLinesCarryEachEntryInAndOutOnce: sellers.csv's carried
// figures of a date, from the adjustments journal alone (no item). S1
// comes in with an open entry of the day before (100) and one its
// revenue share of the date netted and paid (200), and has a clawback of
// the date still open (-30): carried in 300, paid 200, carried forward
// 70. S2's entry (400) is netted into a revenue share of the date still in
// flight: carried in and unsettled. Mutants that each survived every
// ledger test: carried in without the open entries, or without those
// netted on the date (netted_date > for >=, in carried_in or in the
// entries read); carried forward counting one netted on the date;
// unsettled counting one its payout paid; a payout not succeeded seen as
// paid; the date's own open entries left out (< for <=).
func TestSellersLinesCarryEachEntryInAndOutOnce(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	before := openRun(t, l, day.AddDays(-1))
	run := openRun(t, l, day)
	// entry records an entry of r's date; a clawback's refund is what it
	// takes back (no commission given back).
	entry := func(seller, kind string, amount int64, r *pipeline.Run, refundNo string) {
		t.Helper()
		if _, err := l.DB().Exec(fmt.Sprintf(`INSERT INTO adjustments (seller_id, currency, kind, amount_minor, refund_no, refund_minor,
			business_date, run_id) VALUES ('%s', 'USD', '%s', %d, '%s', %d, '%s', %d)`,
			seller, kind, amount, refundNo, max(-amount, 0), r.Key.Date, r.ID)); err != nil {
			t.Fatal(err)
		}
	}
	plan := func(seller string, amount int64) pipeline.Effect {
		t.Helper()
		e := pipeline.Effect{RunID: run.ID, Kind: kindRevenueShare, Subject: shareSubject(day, seller, "USD"), Attempt: 1,
			Key: shareKey(day, seller, "USD", 1), Currency: "USD", Amount: amount}
		stored, err := l.PlanPayout(ctx, run, seller, shareChannels, e)
		if err != nil {
			t.Fatal(err)
		}
		return stored
	}
	entry("S1", "held", 200, before, "")
	e := plan("S1", 200)
	if err := l.RecordOutcome(ctx, e.ID, pipeline.EffectSucceeded, "REF", ""); err != nil {
		t.Fatal(err)
	}
	entry("S1", "held", 100, before, "")
	entry("S1", "clawback", -30, run, "R1")
	entry("S2", "held", 400, before, "")
	plan("S2", 400)

	var got []pipeline.SellerLine
	if err := l.SellerLines(ctx, day, func(s pipeline.SellerLine) error {
		got = append(got, s)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []pipeline.SellerLine{
		{SellerID: "S1", Currency: "USD", CarriedIn: 300, Clawback: -30, Paid: 200, Held: 70, Balanced: true},
		{SellerID: "S2", Currency: "USD", CarriedIn: 400, Unsettled: 400, Balanced: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("sellers of %s\n got %+v\nwant %+v", day, got, want)
	}
}
