package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocarina/gocsv"

	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
	"github.com/settlekit/settle/seed"
)

// closeDay is the night after the adjustments scenario's three days (no
// orders of its own): the sellers that left are no longer in the
// platform's sellers, and its runs consider their carried balances.
const closeDay = "2026-11-23"

// sellersLeft settles the adjustments scenario's three days, then has S2
// (-180.00 USD carried: a late refund clawed back after its last payout)
// and S3 (9.00 USD carried, below the minimum) leave the platform, and
// runs closeDay with a minimum payout of 5.00 USD: S3's 9.00 is due, to
// an Infinia binding that is FROZEN, so that the night needs a person
// (exit 4) for it, as every night after would.
func (e *env) sellersLeft() *paysim.Sim {
	e.t.Helper()
	sim := e.scenario()
	for i, day := range scenarioDays {
		if i == 1 {
			sim.Infinia.SetBinding(seed.InfiniaID(2), "ACTIVE")
		}
		if out, code := e.runDay(sim, day); code != 0 {
			e.t.Fatalf("%s: exit %d\n%s", day, code, out)
		}
	}
	e.db.MustExec(`DELETE FROM sellers WHERE seller_id IN ('S00002', 'S00003')`)
	sim.Infinia.SetBinding(seed.InfiniaID(3), "FROZEN")
	if out, code := e.runDay(sim, closeDay, "--min-payout", "USD=5.00"); code != 4 || !strings.Contains(out, "FROZEN") {
		e.t.Fatalf("%s: exit %d, want 4 for S3's balance held for its FROZEN binding\n%s", closeDay, code, out)
	}
	return sim
}

// closeBalance runs settle sellers close against the env's ledger.
func (e *env) closeBalance(args ...string) (string, int) {
	e.t.Helper()
	return e.raw(append([]string{"settle", "sellers", "close", "--database-url", e.url, "--actor", "finance@example.com"}, args...)...)
}

// openBalance is the seller's open carried balance in USD, and its entries.
func (e *env) openBalance(seller string) (int64, int64) {
	e.t.Helper()
	var sum, n int64
	if err := e.db.QueryRow(`SELECT COALESCE(sum(amount_minor), 0), count(*) FROM settle.adjustments
		WHERE seller_id = $1 AND currency = 'USD' AND netted_into = ''`, seller).Scan(&sum, &n); err != nil {
		e.t.Fatal(err)
	}
	return sum, n
}

func TestClosingTheCarriedBalancesOfSellersThatLeft(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.sellersLeft()
	shares := len(sim.Infinia.RevenueShares())

	// A dry run says what it would close and records nothing.
	out, code := e.closeBalance("--seller", "S00003", "--currency", "USD", "--note", "paid by bank transfer, ticket FIN-1", "--dry-run")
	if code != 0 || !strings.Contains(out, "would close the carried balance of S00003 in USD: 9.00 USD") || !strings.Contains(out, "nothing recorded") {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	if sum, _ := e.openBalance("S00003"); sum != 900 || e.count(`SELECT count(*) FROM settle.adjustments WHERE kind = 'close'`) != 0 ||
		e.count(`SELECT count(*) FROM settle.resolutions`) != 0 {
		t.Fatalf("dry run recorded something: S3's balance %d", sum)
	}

	// S3: a positive balance below the minimum, paid outside settle.
	out, code = e.closeBalance("--seller", "S00003", "--currency", "USD", "--note", "paid by bank transfer, ticket FIN-1")
	if code != 0 || !strings.Contains(out, "closed the carried balance of S00003 in USD: 9.00 USD") || !strings.Contains(out, "recorded on "+closeDay) ||
		!strings.Contains(out, "finance@example.com") {
		t.Fatalf("close S3: exit %d\n%s", code, out)
	}
	// S2: a negative one, forgiven.
	if out, code := e.closeBalance("--seller", "S00002", "--currency", "USD", "--note", "written off, CFO approval FIN-2"); code != 0 ||
		!strings.Contains(out, "-180.00 USD") {
		t.Fatalf("close S2: exit %d\n%s", code, out)
	}
	for seller, was := range map[string]int64{"S00002": -18000, "S00003": 900} {
		if sum, n := e.openBalance(seller); sum != 0 || n != 0 {
			t.Errorf("%s: %d open entries of %d after the close, want none", seller, n, sum)
		}
		// The close is the balance's opposite, taken by the platform:
		// refund = commission_back - amount, as for every entry.
		var amount, back, refund int64
		if err := e.db.QueryRow(`SELECT amount_minor, commission_back, refund_minor FROM settle.adjustments
			WHERE kind = 'close' AND seller_id = $1`, seller).Scan(&amount, &back, &refund); err != nil {
			t.Fatal(err)
		}
		if amount != -was || back != -was || refund != 0 {
			t.Errorf("%s: close entry %d, commission back %d, refund %d; want %d, %d, 0", seller, amount, back, refund, -was, -was)
		}
	}

	// Closing again records nothing.
	out, code = e.closeBalance("--seller", "S00003", "--currency", "USD", "--note", "said again")
	if code != 0 || !strings.Contains(out, "was closed before") || !strings.Contains(out, "paid by bank transfer, ticket FIN-1") {
		t.Errorf("second close: exit %d\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.adjustments WHERE kind = 'close'`); n != 2 {
		t.Errorf("%d close entries, want 2", n)
	}
	if n := e.count(`SELECT count(*) FROM settle.resolutions WHERE kind = 'balance_closed'`); n != 2 {
		t.Errorf("%d close resolutions, want 2", n)
	}

	// The night again: nothing held for a person, nothing paid, nothing carried.
	if out, code := e.runDay(sim, closeDay, "--min-payout", "USD=5.00"); code != 0 {
		t.Fatalf("%s after the closes: exit %d\n%s", closeDay, code, out)
	}
	if n := len(sim.Infinia.RevenueShares()); n != shares {
		t.Errorf("%d revenue shares sent after the closes", n-shares)
	}
	for _, seller := range []string{"S00002", "S00003"} {
		if sum, n := e.openBalance(seller); n != 0 {
			t.Errorf("%s: %d entries (%d) carried again", seller, n, sum)
		}
	}
	got := e.sellersReport(closeDay)
	if s := got["S00003"]; s.CarriedIn != 900 || s.Clawback != -900 || s.Held != 0 || s.Paid != 0 || !s.Balanced {
		t.Errorf("%s sellers.csv S00003: %+v, want 900 carried in, closed (-900), nothing carried forward", closeDay, s)
	}
	if s := got["S00002"]; s.CarriedIn != -18000 || s.Clawback != 18000 || s.Held != 0 || !s.Balanced {
		t.Errorf("%s sellers.csv S00002: %+v, want -18000 carried in, closed (+18000), nothing carried forward", closeDay, s)
	}
	var summary []pipeline.SummaryLine
	if err := gocsv.UnmarshalBytes(readFile(t, filepath.Join(e.reports, closeDay, "summary.csv")), &summary); err != nil {
		t.Fatal(err)
	}
	closed := false
	for _, s := range summary {
		if s.Channel == "(balances closed)" {
			closed = s.Currency == "USD" && s.Orders == 2 && s.Seller == 18000-900 && s.Commission == 900-18000 && s.Balanced
		}
	}
	if !closed {
		t.Errorf("%s summary.csv: want a balanced (balances closed) row of the two closes: %+v", closeDay, summary)
	}
	orders, err := os.ReadFile(filepath.Join(e.reports, closeDay, "orders.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(orders), `,S00003,,USD,,0,900,-900,close,closed,"balance of 9.00 USD closed by finance@example.com`) {
		t.Errorf("%s orders.csv lacks S3's close:\n%s", closeDay, orders)
	}
	status := e.mustSettle("status", "--date", closeDay)
	if !strings.Contains(status, "balance_closed S00003/USD") || !strings.Contains(status, "paid by bank transfer, ticket FIN-1") ||
		!strings.Contains(status, "by finance@example.com") {
		t.Errorf("status --date %s: want the closes, with their notes and who:\n%s", closeDay, status)
	}
	// The earlier dates' reports are as they were: S3's 9.00 carried forward on day three.
	e.mustSettle("report", "--date", scenarioDays[2], "--out", e.reports)
	if s := e.sellersReport(scenarioDays[2])["S00003"]; s.Held != 900 {
		t.Errorf("%s sellers.csv S00003 written again: %+v, want 900 carried forward, as it was", scenarioDays[2], s)
	}
}

func TestClosingABalanceIsRefusedWhileAnythingMayMoveIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenario()
	for i, day := range scenarioDays {
		if i == 1 {
			sim.Infinia.SetBinding(seed.InfiniaID(2), "ACTIVE")
		}
		if out, code := e.runDay(sim, day); code != 0 {
			t.Fatalf("%s: exit %d\n%s", day, code, out)
		}
	}
	note := []string{"--currency", "USD", "--note", "paid by bank transfer, ticket FIN-1"}
	refused := func(what string, code int, want string, args ...string) {
		t.Helper()
		out, got := e.closeBalance(args...)
		if got != code || !strings.Contains(out, want) {
			t.Errorf("%s: exit %d, want %d saying %q\n%s", what, got, code, want, out)
		}
		if n := e.count(`SELECT count(*) FROM settle.adjustments WHERE kind = 'close'`); n != 0 {
			t.Fatalf("%s: %d closes recorded", what, n)
		}
	}
	refused("no note", 2, "--note", "--seller", "S00003", "--currency", "USD")
	refused("no balance", 2, "no carried balance: nothing to close", append([]string{"--seller", "S00001"}, note...)...)
	refused("a seller still on the platform", 2, "the platform still gave this seller on 2026-11-22", append([]string{"--seller", "S00003"}, note...)...)

	// A revenue share of the seller planned and not sent (its entries
	// would open again if it failed).
	var runID int64
	if err := e.db.Get(&runID, `SELECT id FROM settle.runs WHERE business_date = '2026-11-22'`); err != nil {
		t.Fatal(err)
	}
	e.db.MustExec(`INSERT INTO settle.effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor)
		VALUES ($1, 'revenue_share', 'RS/20261122/S00003/USD', 1, 'RS-TEST-S00003', 'USD', 900)`, runID)
	refused("a revenue share planned", 2, "revenue share RS/20261122/S00003/USD (2026-11-22) is planned", append([]string{"--seller", "S00003", "--force"}, note...)...)
	e.db.MustExec(`UPDATE settle.effects SET state = 'failed' WHERE idem_key = 'RS-TEST-S00003'`) // it never went out
	// An order of the seller not settled yet.
	e.db.MustExec(`UPDATE settle.items SET state = 'uploaded' WHERE order_no = 'O9'`)
	refused("an order in flight", 2, "order O9 of 2026-11-22 is uploaded, not settled yet", append([]string{"--seller", "S00003", "--force"}, note...)...)
	e.db.MustExec(`UPDATE settle.items SET state = 'carried' WHERE order_no = 'O9'`)

	// While a process holds the date it would be recorded on, or any
	// other date: a run of it may net the balance.
	l, err := ledger.Open(context.Background(), e.url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, day := range []string{scenarioDays[2], scenarioDays[0]} {
		d, err := pipeline.ParseDate(day)
		if err != nil {
			t.Fatal(err)
		}
		release, err := l.LockDate(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		refused("a process holding "+day, 75, "held by", append([]string{"--seller", "S00003", "--force"}, note...)...)
		if err := release(); err != nil {
			t.Fatal(err)
		}
	}

	// Nothing in the way: closed, with --force for a seller still on the platform.
	if out, code := e.closeBalance(append([]string{"--seller", "S00003", "--force"}, note...)...); code != 0 {
		t.Fatalf("close: exit %d\n%s", code, out)
	}
	if sum, n := e.openBalance("S00003"); n != 0 {
		t.Errorf("S3: %d entries (%d) still open", n, sum)
	}
}
