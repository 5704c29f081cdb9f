package main

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/settlekit/settle/seed"
)

// writeRules writes a rules file of one default rule of bps, named name,
// and returns its path.
func (e *env) writeRules(name string, bps int) string {
	e.t.Helper()
	path := filepath.Join(e.t.TempDir(), name)
	body := "seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from\n,,," + strconv.Itoa(bps) + ",,,,2020-01-01\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// orderRows returns the rows of day's orders.csv of action.
func (e *env) orderRows(day, action string) [][]string {
	e.t.Helper()
	f, err := os.Open(filepath.Join(e.reports, day, "orders.csv"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		e.t.Fatal(err)
	}
	var out [][]string
	for _, r := range rows[1:] {
		if r[8] == action {
			out = append(out, r)
		}
	}
	return out
}

// TestARepriceIsAnAdjustmentNettedIntoTheNextRevenueShare: a date settled
// under a rules file later found wrong (10% where 12%, then 11%, was meant)
// is priced again by settle reprice: each paid or carried order's seller
// share difference becomes an entry of its seller's carried balance - a
// clawback when it shrank, an entry owed when it grew - netted into the
// seller's next revenue share by the next date's run, at paysim. A dry run
// records nothing; the same file twice records once; a third file only its
// difference from the second; every order still balances (gross = refunded
// + commission + seller share, its reprices included); a late refund of a
// repriced order splits under the repriced rules (no note for a person),
// a routine run of the date with the old file changes nothing, and a
// WeChat Pay order is named for a person (exit 4), not adjusted.
//
// Before the command existed, settle had no reprice: exit 2, unknown
// command.
func TestARepriceIsAnAdjustmentNettedIntoTheNextRevenueShare(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenario()
	day1, day2 := scenarioDays[0], scenarioDays[1]
	if out, code := e.runDay(sim, day1); code != 0 {
		t.Fatalf("%s: exit %d\n%s", day1, code, out)
	}
	reprices := func() int64 { return e.count(`SELECT count(*) FROM settle.adjustments WHERE kind = 'reprice'`) }
	repriced := func() int64 {
		return e.count(`SELECT COALESCE(sum(amount_minor), 0) FROM settle.adjustments WHERE kind = 'reprice'`)
	}
	twelve, eleven := e.writeRules("rules-12.csv", 1200), e.writeRules("rules-11.csv", 1100)
	reprice := func(rules string, extra ...string) string {
		t.Helper()
		return e.mustSettle(append([]string{"reprice", "--date", day1, "--rules", rules, "--out", e.reports}, extra...)...)
	}

	// 12%: O1 100.00 -> 88.00 (-2.00), O2 40.00 left -> 35.20 (-0.80),
	// O3 200.00 (S2, carried) -> 176.00 (-4.00), O4 30.00 (S3, carried)
	// -> 26.40 (-0.60).
	out := reprice(twelve, "--dry-run")
	if !strings.Contains(out, "DRY RUN") || !strings.Contains(out, "S00001 USD: 2 orders would be adjusted, -2.80 USD") ||
		!strings.Contains(out, "S00002 USD: 1 orders would be adjusted, -4.00 USD") || reprices() != 0 ||
		e.count(`SELECT count(*) FROM settle.reprices`) != 0 {
		t.Fatalf("reprice --dry-run: want what would be adjusted per seller, nothing recorded (%d entries):\n%s", reprices(), out)
	}
	out = reprice(twelve)
	if reprices() != 4 || repriced() != -740 {
		t.Fatalf("reprice under 12%%: %d entries of %d, want 4 of -740:\n%s", reprices(), repriced(), out)
	}
	// As if killed after it recorded, before it wrote the date's reports:
	// the same file again records nothing and writes them.
	if err := os.RemoveAll(filepath.Join(e.reports, day1)); err != nil {
		t.Fatal(err)
	}
	if out := reprice(twelve); len(e.orderRows(day1, "reprice")) != 4 || !strings.Contains(out, "nothing recorded") || reprices() != 4 || repriced() != -740 ||
		e.count(`SELECT count(*) FROM settle.reprices`) != 1 {
		t.Fatalf("the same file again: want nothing recorded, %d entries of %d:\n%s", reprices(), repriced(), out)
	}
	// 11%: only the difference from 12%: +1.00, +0.40, +2.00, +0.30.
	reprice(eleven)
	if reprices() != 8 || repriced() != -370 ||
		e.count(`SELECT count(*) FROM settle.adjustments WHERE kind = 'reprice' AND amount_minor > 0`) != 4 {
		t.Fatalf("reprice under 11%%: %d entries of %d, want 8 of -370 (4 of them owed to the sellers)", reprices(), repriced())
	}
	// Every order balances, its reprices in, and each reprice row of
	// orders.csv moves commission and seller share by opposite amounts.
	if n := e.count(`SELECT count(*) FROM settle.items i
		JOIN (SELECT order_no, sum(commission_back) AS c, sum(amount_minor) AS s FROM settle.adjustments WHERE kind = 'reprice' GROUP BY 1) a USING (order_no)
		WHERE i.gross_minor <> i.refunded_minor + (i.commission_minor - a.c) + (i.seller_minor + a.s)
		   OR i.commission_minor - a.c <> (i.gross_minor - i.refunded_minor) * 11 / 100`); n != 0 {
		t.Errorf("%d orders do not balance at 11%% with their reprices", n)
	}
	rows := e.orderRows(day1, "reprice")
	if len(rows) != 8 {
		t.Fatalf("orders.csv of %s: %d reprice rows, want 8", day1, len(rows))
	}
	for _, r := range rows {
		if r[5] != "0" || r[15] != "true" || r[6] == "" || r[7] == "" || strings.TrimPrefix(r[6], "-") == strings.TrimPrefix(r[7], "-") && r[6] == r[7] {
			t.Errorf("orders.csv reprice row %v: want refunded 0, commission and seller share moved by opposite amounts, balanced", r)
		}
	}
	e.sellersReport(day1) // every line balances
	if got := e.sellersReport(day1)["S00001"]; got.Clawback != -140 || got.Paid != 12600 || got.Held != -140 {
		t.Errorf("sellers.csv of %s, S00001: %+v; want the reprices, -1.40, in clawback and carried forward", day1, got)
	}
	summary, err := os.ReadFile(filepath.Join(e.reports, day1, "summary.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(summary), "(rules repriced),USD,8,") {
		t.Errorf("summary.csv of %s: no row of the reprices:\n%s", day1, summary)
	}
	if st := e.mustSettle("status", "--date", day1); !strings.Contains(st, "repriced "+day1) || !strings.Contains(st, "rules-11.csv") {
		t.Errorf("status: want the date's reprices:\n%s", st)
	}
	if st := e.mustSettle("status", "--date", day1, "--rules"); !strings.Contains(st, "rules-11.csv") || !strings.Contains(st, "the date's rules now") {
		t.Errorf("status --rules: want the repriced rules, the last the date's:\n%s", st)
	}
	// A routine run of the date with the file it settled under: warned,
	// nothing changes.
	if out, code := e.runDay(sim, day1); code != 0 || reprices() != 8 || repriced() != -370 {
		t.Fatalf("%s again with its old rules: exit %d, %d entries of %d\n%s", day1, code, reprices(), repriced(), out)
	}

	// A WeChat Pay order of the date, paid: its commission went to the
	// platform's receiver and the rest to the seller, so nothing nets it.
	// The reprice names it for a person (exit 4) and records nothing.
	if _, err := e.db.Exec(`INSERT INTO settle.items SELECT (jsonb_populate_record(NULL::settle.items, to_jsonb(i) ||
		'{"order_no": "OW1", "channel": "wechatpay", "provider_txn_id": "TW1", "state": "paid", "carry_id": null, "payout_key": "", "txn_once": false}')).*
		FROM settle.items i WHERE order_no = 'O1'`); err != nil {
		t.Fatal(err)
	}
	out, code := e.settle("reprice", "--date", day1, "--rules", eleven, "--out", e.reports)
	if code != 4 || !strings.Contains(out, "order OW1") || !strings.Contains(out, "not adjusted") || reprices() != 8 || repriced() != -370 {
		t.Fatalf("reprice with a WeChat Pay order whose share changes: exit %d, %d entries of %d; want exit 4 naming OW1, nothing recorded\n%s",
			code, reprices(), repriced(), out)
	}

	// Day 2: O1 is refunded in full, late: split again under 11%, the
	// seller gives back what it has left of it, 89.00, and the platform
	// 11.00 of commission. S2's revenue share nets its reprices (-2.00):
	// 18.00 + 180.00 - 2.00; S3's (-0.30): 27.00 + 27.00 - 0.30.
	sim.Infinia.SetBinding(seed.InfiniaID(2), "ACTIVE")
	if out, code := e.runDay(sim, day2); code != 0 {
		t.Fatalf("%s: exit %d\n%s", day2, code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.adjustments WHERE kind = 'clawback' AND order_no = 'O1' AND amount_minor = -8900 AND commission_back = 1100`); n != 1 {
		t.Errorf("the late refund of O1: want 89.00 back from the seller, 11.00 of commission (split under the repriced rules)")
	}
	shares := map[string][]int64{}
	for _, s := range sim.Infinia.RevenueShares() {
		if s.Status != "FAILED" {
			shares[s.SellerID] = append(shares[s.SellerID], s.Amount)
		}
	}
	if !equalInts(shares["INF00000002"], []int64{19600}) || !equalInts(shares["INF00000003"], []int64{5370}) {
		t.Errorf("revenue shares: %v; want S2 196.00 and S3 53.70, their reprices netted", shares)
	}
	if n := e.count(`SELECT count(*) FROM settle.adjustments WHERE kind = 'reprice' AND seller_id IN ('S00002', 'S00003') AND netted_into = ''`); n != 0 {
		t.Errorf("%d reprice entries of S2 and S3 not netted into their revenue shares", n)
	}
	for _, day := range []string{day1, day2} {
		e.mustSettle("report", "--date", day, "--out", e.reports)
		e.sellersReport(day)
	}
}

// TestARepriceNamesAShareAboveWhatInfiniaWasDeclared: Infinia pays a
// seller's revenue share only out of what its accepted trade files
// declared the seller's. A reprice at 9% (the day split at 10%) would
// give each order's seller more than its trade file declared: recorded,
// the entries made every later revenue share of the seller ask more than
// Infinia holds ("Infinia shows 198.00 USD available, we owe 200.00"),
// and the next date's run held the sellers' whole payouts, exit 4, night
// after night (found by the session's review). The reprice is refused
// whole (exit 4), naming those orders, nothing recorded and the date's
// rules unchanged, and the next date is paid as it would have been. A
// share taken back by a reprice and given back up to what was declared
// is recorded (the other test: 12% then 11%).
func TestARepriceNamesAShareAboveWhatInfiniaWasDeclared(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenario()
	day1, day2 := scenarioDays[0], scenarioDays[1]
	if out, code := e.runDay(sim, day1); code != 0 {
		t.Fatalf("%s: exit %d\n%s", day1, code, out)
	}
	nine := e.writeRules("rules-9.csv", 900)
	out, code := e.settle("reprice", "--date", day1, "--rules", nine, "--out", e.reports)
	if code != 4 || !strings.Contains(out, "its upload declared") {
		t.Fatalf("reprice under 9%%: exit %d, want 4 naming the orders whose share would pass what Infinia was declared:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.adjustments WHERE kind = 'reprice'`); n != 0 {
		t.Fatalf("%d reprice entries recorded above what Infinia was declared, want none", n)
	}
	sim.Infinia.SetBinding(seed.InfiniaID(2), "ACTIVE")
	if out, code := e.runDay(sim, day2); code != 0 {
		t.Fatalf("%s after the reprice: exit %d\n%s", day2, code, out)
	}
}
