package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/seed"
)

// TestAClawbackOfADatePastInfiniasMemoryIsTakenBackOnce: seller S00001 of
// the late-refunds scenario owes -54.00 after 2026-11-21 (its orders 36.00,
// a late refund's clawback 90.00) and -18.00 more from a late refund read
// on 2026-11-22, when it sells 180.00: the date's revenue share pays 108.00.
// The ledger is restored from a backup taken before that date's run
// ("lost run"), or the date is first run after Infinia's memory of it
// ("backfill"). Run again, the date is held past Infinia's memory; a later
// date, inside the memory, pays the seller 180.00 more, and the held date
// is sent with --send-past-memory, before or after it.
//
// Whatever the order, every clawback is taken from the seller once: what
// Infinia accepted for the seller is what the ledger's orders owe it less
// its clawbacks. Before, the guarded run recorded the late refund's
// clawback again and left it open with the -54.00, and the later date's
// share netted both (108.00), while the lost run's share, which Infinia
// paid and may have forgotten, had netted them already: the seller was
// clawed back 72.00 twice, and the held date, sent, was refused as another
// amount than Infinia paid under its requestNo.
func TestAClawbackOfADatePastInfiniasMemoryIsTakenBackOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("restore test")
	}
	t.Parallel()
	for _, c := range []struct {
		name            string
		lost, sentFirst bool
	}{
		{"lost run, later date first", true, false},
		{"lost run, held date sent first", true, true},
		{"backfill, later date first", false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			sim := e.scenario()
			e.pastMemory = true
			held := scenarioDays[2]
			// A later date, inside the memory this test gives Infinia: the
			// day before today in UTC, which ended less than a day ago.
			later := time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly)
			const memory = "--infinia-query-memory=48h" // the scenario's dates are past it, later is not
			if _, err := e.db.Exec(fmt.Sprintf(`INSERT INTO orders (order_no, seller_id, provider, provider_txn_id, currency, amount_minor, category, paid_at, confirmed_at)
				VALUES ('O10', 'S00001', 'infiniapay', 'T10', 'USD', 20000, 'toys', '%[1]s 09:00Z', '%[1]s 10:00Z')`, later)); err != nil {
				t.Fatal(err)
			}
			for i, day := range scenarioDays[:2] {
				if i == 1 {
					sim.Infinia.SetBinding(seed.InfiniaID(2), "ACTIVE")
				}
				if out, code := e.runDay(sim, day, "--send-past-memory"); code != 0 {
					t.Fatalf("%s: exit %d\n%s", day, code, out)
				}
			}
			if c.lost {
				backup := e.backupLedger("before")
				if out, code := e.runDay(sim, held, "--send-past-memory"); code != 0 {
					t.Fatalf("%s, the run the ledger loses: exit %d\n%s", held, code, out)
				}
				e.restoreLedger(backup)
			}
			out, code := e.runDay(sim, held, memory)
			if code != 4 || !strings.Contains(out, "of "+held+" sent") || !strings.Contains(out, "--send-past-memory") {
				t.Fatalf("%s after the restore: exit %d, want 4 holding it past Infinia's memory:\n%s", held, code, out)
			}
			runLater := func(held bool) {
				t.Helper()
				out, code := e.runDay(sim, later, memory)
				// While the date the ledger lost is held, Infinia shows
				// the seller's available share short of the ledger's by
				// what that run's share paid (its reconciliation, exit 4).
				if code != 0 && !(held && c.lost && code == 4 && strings.Contains(out, "available/S00001/USD")) {
					t.Fatalf("%s: exit %d\n%s", later, code, out)
				}
			}
			if !c.sentFirst {
				runLater(true)
			}
			if out, code := e.runDay(sim, held, memory, "--send-past-memory"); code != 0 {
				t.Errorf("%s with --send-past-memory: exit %d, want 0\n%s", held, code, out)
			}
			runLater(false) // after the held date: everything agrees
			var owed int64
			if err := e.db.Get(&owed, `SELECT (SELECT COALESCE(sum(seller_minor), 0) FROM settle.items WHERE seller_id = 'S00001')
				+ (SELECT COALESCE(sum(amount_minor), 0) FROM settle.adjustments WHERE seller_id = 'S00001' AND kind = 'clawback')`); err != nil {
				t.Fatal(err)
			}
			var paid int64
			var shares []string
			for _, s := range sim.Infinia.RevenueShares() {
				if s.SellerID == seed.InfiniaID(1) && s.Status != "FAILED" {
					paid += s.Amount
					shares = append(shares, fmt.Sprintf("%s %s %d", s.RequestNo, s.Status, s.Amount))
				}
			}
			if owed != 41400 || paid != owed {
				t.Errorf("S00001: Infinia accepted %d (%s), the ledger's orders less its clawbacks owe %d; want 41400 both", paid, strings.Join(shares, ", "), owed)
			}
			if n := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = 'S00001' AND state <> 'paid'`); n != 0 {
				t.Errorf("%d orders of S00001 not paid", n)
			}
			if n := e.count(`SELECT count(*) FROM settle.adjustments WHERE seller_id = 'S00001' AND netted_into NOT LIKE 'RS/%'`); n != 0 {
				t.Errorf("%d carried entries of S00001 netted into no revenue share", n)
			}
			for _, day := range []string{held, later} {
				e.sellersReport(day) // each line balanced
			}
		})
	}
}
