package main

import (
	"testing"
)

// TestALateRefundNettedByItsOrdersLaterSettlementIsNotClawedBack: R1
// (40.00 of O1, confirmed on day 1) is read as a late refund by day 2's
// run while day 1 has not run yet: its order has no item, so it waits.
// The platform then moves O1 to day 3, and day 3's source row of O1 nets
// R1 (refunds recorded before the window's end): the seller is owed
// 54.00 on 60.00 of sale. The pending R1 then found O1 paid and clawed
// back another 36.00: the buyer's one refund was taken from the seller
// twice.
func TestALateRefundNettedByItsOrdersLaterSettlementIsNotClawedBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenario()
	e.db.MustExec(`UPDATE refunds SET amount_minor = 4000 WHERE refund_no = 'R1'`)
	if out, code := e.runDay(sim, scenarioDays[1]); code != 0 {
		t.Fatalf("day 2: exit %d\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.late_refunds WHERE refund_no = 'R1' AND state = 'pending'`); n != 1 {
		t.Fatalf("R1 not waiting for O1 after day 2")
	}
	e.db.MustExec(`UPDATE orders SET confirmed_at = '2026-11-22 09:30Z' WHERE order_no = 'O1'`)
	for i := range 2 {
		out, code := e.runDay(sim, scenarioDays[2])
		if code != 0 {
			t.Fatalf("day 3, run %d: exit %d\n%s", i+1, code, out)
		}
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE order_no = 'O1' AND business_date = '2026-11-22' AND refunded_minor = 4000`); n != 1 {
		t.Fatalf("O1 not settled on day 3 with R1 netted")
	}
	if n := e.count(`SELECT COALESCE(sum(-amount_minor), 0) FROM settle.adjustments WHERE kind = 'clawback' AND order_no = 'O1'`); n != 0 {
		t.Errorf("O1's item netted R1 already, and %d more was clawed back from the seller for it", n)
	}
	if n := e.count(`SELECT count(*) FROM settle.late_refunds WHERE refund_no = 'R1' AND state = 'ignored'`); n != 1 {
		t.Errorf("R1 not ignored (netted by its order's settlement)")
	}
}
