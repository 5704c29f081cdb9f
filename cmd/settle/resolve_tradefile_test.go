package main

import (
	"strings"
	"testing"
)

// A row Infinia refused is rejected; a late refund of its order read by a
// later date is then ignored ("the order was rejected: nothing was paid on
// it"). Sent again with resolve --trade-file --refused-rows, the order is
// paid after all: its late refund must then be clawed back, never left
// ignored (the seller would keep what the customer got back).
func TestRefusedRowSentAgainKeepsItsLateRefund(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenario()
	// Day 1: O1 (S1, 100.00, owed 90.00) is refused by Infinia; O2 is held.
	sim.Infinia.RefuseOrder("O1", "product type not allowed")
	if out, code := e.runDay(sim, scenarioDays[0], "--max-reject-ratio", "0.5"); code != 4 {
		t.Fatalf("day 1: exit %d, want 4\n%s", code, out)
	}
	var name string
	if err := e.db.Get(&name, `SELECT name FROM settle.trade_files WHERE status = 'FAILED'`); err != nil {
		t.Fatal(err)
	}
	// Day 2 reads R1, O1 refunded in full, late.
	if out, code := e.runDay(sim, scenarioDays[1], "--max-reject-ratio", "0.5"); code != 0 {
		t.Fatalf("day 2: exit %d\n%s", code, out)
	}
	var state string
	if err := e.db.Get(&state, `SELECT state FROM settle.late_refunds WHERE refund_no = 'R1'`); err != nil {
		t.Fatal(err)
	}
	if state != "ignored" {
		t.Fatalf("R1 of the rejected O1: %s, want ignored", state)
	}
	// The cause fixed, a person sends the file again with its refused row.
	sim.Infinia.RefuseOrder("O1", "")
	out := e.mustSettle("resolve", "--date", scenarioDays[0], "--trade-file", name, "--refused-rows", "--note", "Infinia ticket 7")
	if !strings.Contains(out, "go out again") {
		t.Fatalf("resolve:\n%s", out)
	}
	if out, code := e.runDay(sim, scenarioDays[0]); code != 0 {
		t.Fatalf("day 1 again: exit %d\n%s", code, out)
	}
	if out, code := e.runDay(sim, scenarioDays[2]); code != 0 {
		t.Fatalf("day 3: exit %d\n%s", code, out)
	}
	if err := e.db.Get(&state, `SELECT state FROM settle.items WHERE order_no = 'O1'`); err != nil {
		t.Fatal(err)
	}
	if state != "paid" && state != "carried" {
		t.Fatalf("O1 after it was sent again: %s", state)
	}
	// O1 was refunded in full: the 90.00 it paid the seller must be taken back.
	if back := e.count(`SELECT COALESCE(-sum(amount_minor), 0) FROM settle.adjustments WHERE kind = 'clawback' AND order_no = 'O1'`); back != 9000 {
		e.db.Get(&state, `SELECT state || ': ' || reason FROM settle.late_refunds WHERE refund_no = 'R1'`)
		t.Fatalf("O1, refunded in full late, was paid to its seller and %d of its 9000 taken back (R1 %s)", back, state)
	}
}
