package main

import "testing"

// An order number the platform holds twice, for two sellers: day 1 settles
// O4 to S3 (27.00, carried), and the platform has another order O4, of S2,
// confirmed on day 2 and refunded in full there. Day 2 rejects S2's row as
// already settled; its refund was clawed back from S3 (the late-refunds
// query joined the refund to S3's row by number, and the moved-order
// refund took S3 as its seller), who never had an order refunded: exit 0,
// S3 short 27.00. Now the refund is for a person (exit 4), nothing taken.
func TestARefundOfAnotherSellersOrderUnderTheSameNumberIsNotClawedBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenarioDayOneSettled()
	e.db.MustExec(`INSERT INTO orders (order_no, seller_id, provider, provider_txn_id, currency, amount_minor, category, paid_at, confirmed_at)
		VALUES ('O4', 'S00002', 'infiniapay', 'TX', 'USD', 3000, 'toys', '2026-11-20 09:00Z', '2026-11-21 13:00Z')`)
	e.db.MustExec(`INSERT INTO refunds (refund_no, order_no, amount_minor, created_at) VALUES ('RX', 'O4', 3000, '2026-11-21 14:00Z')`)
	out, code := e.runDay(sim, scenarioDays[1], "--max-reject-ratio", "1")
	if n := e.count(`SELECT COALESCE(sum(-amount_minor), 0) FROM settle.adjustments WHERE kind = 'clawback' AND order_no = 'O4'`); n != 0 {
		t.Fatalf("S3 gave back %d for a refund of S2's order numbered O4\n%s", n, out)
	}
	if code != 4 {
		t.Fatalf("day 2: exit %d, want 4 (a refund for a person)\n%s", code, out)
	}
}

// The same two orders numbered O4, the refund of S2's read late (day 3).
func TestALateRefundOfAnotherSellersOrderUnderTheSameNumberIsNotClawedBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenarioDayOneSettled()
	e.db.MustExec(`INSERT INTO orders (order_no, seller_id, provider, provider_txn_id, currency, amount_minor, category, paid_at, confirmed_at)
		VALUES ('O4', 'S00002', 'infiniapay', 'TX', 'USD', 3000, 'toys', '2026-11-20 09:00Z', '2026-11-21 13:00Z')`)
	if out, code := e.runDay(sim, scenarioDays[1], "--max-reject-ratio", "1"); code != 0 {
		t.Fatalf("day 2: exit %d\n%s", code, out)
	}
	e.db.MustExec(`INSERT INTO refunds (refund_no, order_no, amount_minor, created_at) VALUES ('RX', 'O4', 3000, '2026-11-22 14:00Z')`)
	out, code := e.runDay(sim, scenarioDays[2], "--max-reject-ratio", "1")
	if n := e.count(`SELECT COALESCE(sum(-amount_minor), 0) FROM settle.adjustments WHERE kind = 'clawback' AND order_no = 'O4'`); n != 0 {
		t.Fatalf("S3 gave back %d for a refund of S2's order numbered O4\n%s", n, out)
	}
	if code != 4 {
		t.Fatalf("day 3: exit %d, want 4 (a refund for a person)\n%s", code, out)
	}
}

// Day 1 settles O4 (S3, carried). The platform moves O4 to day 2 and
// refunds 10.00 there; day 2 (which sends nothing) rejects O4's row as
// already settled and claws the refund back as a moved-order refund. The
// platform then puts O4 back on day 1, and day 2 is read again with
// --reextract: allowed, it dropped the row the moved refund came from but
// kept the clawback, and the late-refunds query now returned the
// platform's refund of O4 too: clawed back a second time (exit 0, S3 short
// 10.00 more). A clawed moved refund now refuses --reextract (exit 2).
func TestReextractKeepsNoRefundOfAMovedOrderTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenarioDayOneSettled()
	e.db.MustExec(`DELETE FROM orders WHERE order_no IN ('O5', 'O6', 'O7')`) // day 2 sends nothing
	e.db.MustExec(`UPDATE orders SET confirmed_at = '2026-11-21 13:00Z' WHERE order_no = 'O4'`)
	e.db.MustExec(`INSERT INTO refunds (refund_no, order_no, amount_minor, created_at) VALUES ('RM', 'O4', 1000, '2026-11-21 14:00Z')`)
	if out, code := e.runDay(sim, scenarioDays[1], "--max-reject-ratio", "1"); code != 0 {
		t.Fatalf("day 2: exit %d\n%s", code, out)
	}
	e.db.MustExec(`UPDATE orders SET confirmed_at = '2026-11-20 13:00Z' WHERE order_no = 'O4'`)
	out, code := e.runDay(sim, scenarioDays[1], "--max-reject-ratio", "1", "--reextract")
	if n := e.count(`SELECT COALESCE(sum(refund_minor), 0) FROM settle.adjustments WHERE kind = 'clawback' AND order_no = 'O4'`); n != 1000 {
		t.Fatalf("O4 was refunded 10.00 once; clawed back %d (day 2 read again: exit %d)\n%s", n, code, out)
	}
	if code != 2 {
		t.Fatalf("--reextract after a moved order's refund was clawed back: exit %d, want 2\n%s", code, out)
	}
}
