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

// TestACarriedOnlyRevenueShareSucceededIsAppliedByTheReRun: day 2's
// revenue share to S2 pays its carried 180.00 (O3, carried on day 1)
// alone. The run is killed after the engine recorded it succeeded and
// before PayoutSucceeded marked O3 paid (the state is set up as the kill
// leaves it). On the re-run S2 has no uploaded item and no open entry (it
// was netted), so it is no candidate, and driveOpen drives only payouts
// not final: O3 stayed carried for good, orders.csv never showed it paid
// by the revenue share that paid it.
func TestACarriedOnlyRevenueShareSucceededIsAppliedByTheReRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.carriedOnlySeller()
	if out, code := e.runDay(sim, scenarioDays[1]); code != 0 {
		t.Fatalf("day 2: exit %d\n%s", code, out)
	}
	const subject = `RS/20261121/S00002/USD`
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE subject = $1 AND state = 'succeeded'`, subject); n != 1 {
		t.Fatalf("S2's carried-only revenue share of day 2 did not succeed")
	}
	// As a kill between the engine's record of the success and
	// PayoutSucceeded leaves it.
	e.db.MustExec(`UPDATE settle.items SET state = 'carried', payout_key = '' WHERE order_no = 'O3'`)
	out, code := e.runDay(sim, scenarioDays[1])
	var state, key string
	if err := e.db.QueryRow(`SELECT state, payout_key FROM settle.items WHERE order_no = 'O3'`).Scan(&state, &key); err != nil {
		t.Fatal(err)
	}
	if state != "paid" || key == "" {
		t.Fatalf("re-run of day 2 (exit %d): O3 is %s (payout key %q), its carried share paid by %s\n%s", code, state, key, subject, out)
	}
}

// TestARefundOfAnOrderMovedTwiceIsClawedBackOnce: O1 is paid on day 1;
// the platform moves it to day 2 and refunds 40.00 there (R1). Day 2 stops
// after transform (its row shows 40.00 refunded: the reject gate, say);
// the platform moves O1 again, to day 3, and day 3 runs: its row shows
// the same 40.00, rejected as already settled, and records it as day 3's
// moved refund. Day 2 then ran on and recorded its row's 40.00 again -
// day 3's moved refund, of a later date, was left out of what the ledger
// knew - and the seller gave back 72.00 for a 40.00 refund.
func TestARefundOfAnOrderMovedTwiceIsClawedBackOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenarioDayOneSettled()
	e.db.MustExec(`UPDATE orders SET confirmed_at = '2026-11-21 09:00Z' WHERE order_no = 'O1'`)
	e.db.MustExec(`UPDATE refunds SET amount_minor = 4000 WHERE refund_no = 'R1'`)
	if out, code := e.runDay(sim, scenarioDays[1], "--until", "transform", "--max-reject-ratio", "1"); code != 0 {
		t.Fatalf("day 2 until transform: exit %d\n%s", code, out)
	}
	e.db.MustExec(`UPDATE orders SET confirmed_at = '2026-11-22 09:00Z' WHERE order_no = 'O1'`)
	out3, _ := e.runDay(sim, scenarioDays[2], "--max-reject-ratio", "1")
	out2, _ := e.runDay(sim, scenarioDays[1], "--max-reject-ratio", "1")
	if n := e.count(`SELECT COALESCE(sum(refund_minor), 0) FROM settle.adjustments WHERE kind = 'clawback' AND order_no = 'O1'`); n != 4000 {
		t.Fatalf("O1 was refunded 40.00 after its settlement; its clawbacks take back refunds of %d\nday 3:\n%s\nday 2:\n%s", n, out3, out2)
	}
}
