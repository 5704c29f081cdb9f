package main

import (
	"strings"
	"testing"
)

// TestAnOrderReopenedAfterARepriceSaysToRepriceAgain: a reprice leaves an
// order a provider rejected alone (never paid). A Pay Protocol order
// rejected for its failed payment, paid late and reopened by a person
// after the date was repriced, is then paid by the date's next run at the
// split it was recorded with - under the rules the reprice replaced - and
// nothing said so. settle resolve --reopen now says the date was repriced
// and what adjusts the order once it is paid: the same reprice again,
// which records its difference alone.
func TestAnOrderReopenedAfterARepriceSaysToRepriceAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim, order, txn, _ := e.failedPaymentDay()
	if _, code := e.runInfinia(sim); code != 4 {
		t.Fatalf("payment failed: exit %d, want 4", code)
	}
	resolve := func(how string) (string, int) {
		return e.settle(append([]string{"resolve", "--date", testDate, "--order", order, how, "--note", "ticket PP-79"}, sim.Config.Args()...)...)
	}
	if out, code := resolve("--reject"); code != 0 {
		t.Fatalf("resolve --reject: exit %d:\n%s", code, out)
	}
	if out, code := e.runInfinia(sim); code != 0 {
		t.Fatalf("rejected: exit %d, want 0:\n%s", code, out)
	}
	// The whole order as commission: no order's seller share grows, so
	// none passes what its trade file declared to Infinia (a reprice that
	// would raise one is refused whole).
	all := e.writeRules("rules-100.csv", 10000)
	reprice := func() string {
		t.Helper()
		out, code := e.settle("reprice", "--date", testDate, "--rules", all, "--out", e.reports)
		if code != 0 && code != 4 {
			t.Fatalf("reprice: exit %d\n%s", code, out)
		}
		return out
	}
	reprice()
	if n := e.count(`SELECT count(*) FROM settle.reprices`); n != 1 {
		t.Fatalf("%d reprices recorded, want 1", n)
	}
	if n := e.count(`SELECT count(*) FROM settle.adjustments WHERE kind = 'reprice' AND order_no = $1`, order); n != 0 {
		t.Fatalf("the rejected order repriced (%d entries)", n)
	}

	e.situations(sim, "--payprotocol-status", txn+"=paid")
	if _, code := e.runInfinia(sim); code != 4 {
		t.Fatalf("rejected and paid since: exit %d, want 4", code)
	}
	out, code := resolve("--reopen")
	if code != 0 || !strings.Contains(out, "is held again") {
		t.Fatalf("resolve --reopen: exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "repriced") || !strings.Contains(out, "settle reprice --date "+testDate+" --rules") || !strings.Contains(out, "rules-100.csv") {
		t.Errorf("resolve --reopen of an order of a repriced date: want it said, and what adjusts the order once paid:\n%s", out)
	}
	if out, code := e.runInfinia(sim); code != 0 {
		t.Fatalf("reopened: exit %d, want 0:\n%s", code, out)
	}
	// Paid at its split of before the reprice; the same file again
	// records its difference alone.
	reprice()
	if n := e.count(`SELECT count(*) FROM settle.adjustments WHERE kind = 'reprice' AND order_no = $1`, order); n != 1 {
		t.Errorf("the reopened order, paid, repriced again: %d entries, want 1", n)
	}
}
