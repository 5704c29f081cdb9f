package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gocarina/gocsv"

	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/internal/scenario"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
	"github.com/settlekit/settle/seed"
)

// The three dates of the adjustments scenario, settled in UTC.
var scenarioDays = []string{"2026-11-20", "2026-11-21", "2026-11-22"}

// scenario is a small marketplace over three days, every amount chosen so
// that the expected figures below can be worked out by hand (commission
// 10% everywhere, minimum payout USD 50.00):
//
//	day 1: S1 sells O1 100.00 and O2 50.00 (10.00 refunded that day): owed 90.00 + 36.00 = 126.00, paid.
//	       S2 sells O3 200.00: owed 180.00, not bound yet: carried.
//	       S3 sells O4 30.00: owed 27.00, below the minimum: carried.
//	day 2: O1 is refunded in full, late (R1): S1 gives back 90.00 (the platform 10.00 of commission).
//	       S1 sells O5 40.00: owed 36.00; net 36.00 - 90.00 = -54.00: carried, nothing sent.
//	       S2 binds and sells O6 20.00: owed 18.00; net 18.00 + 180.00 = 198.00, paid.
//	       S3 sells O7 30.00: owed 27.00; net 27.00 + 27.00 = 54.00, paid.
//	day 3: O2 is refunded 20.00 more, late (R2): 30.00 of 50.00 refunded, split again: the seller
//	       keeps 18.00 of 36.00 (gives back 18.00), the commission 2.00 of 4.00.
//	       S1 sells O8 200.00: owed 180.00; net 180.00 - 54.00 - 18.00 = 108.00, paid.
//	       O3 is refunded in full, late (R3): S2 gives back 180.00; S2 sells nothing: -180.00 carried.
//	       S3 sells O9 10.00: owed 9.00, below the minimum: carried.
//
// The platform rows and the rules are the late-refunds scenario
// (testdata/late-refunds: platform.sql, rules.csv).
func (e *env) scenario() *paysim.Sim {
	e.t.Helper()
	sc := scenario.Load(e.t, "late-refunds")
	sc.WriteT(e.t, e.db)
	e.rules = sc.Rules()
	return e.sim(nil, 3, map[int]bool{2: true}, 1_000_000_00)
}

func (e *env) runDay(sim *paysim.Sim, day string, extra ...string) (string, int) {
	e.t.Helper()
	args := append([]string{"run", "--date", day, "--tz", "UTC", "--rules", e.rules, "--out", e.reports, "--min-payout", "USD=50.00",
		"--work-dir", filepath.Join(e.reports, "work"), "--provider-wait", "6s", "--provider-poll", "20ms", "--provider-rate", "0"}, sim.Config.Args()...)
	return e.settle(append(args, extra...)...)
}

func (e *env) sellersReport(day string) map[string]pipeline.SellerLine {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.reports, day, "sellers.csv"))
	if err != nil {
		e.t.Fatal(err)
	}
	var lines []pipeline.SellerLine
	if err := gocsv.UnmarshalBytes(b, &lines); err != nil {
		e.t.Fatal(err)
	}
	out := map[string]pipeline.SellerLine{}
	for _, l := range lines {
		if !l.Balanced {
			e.t.Errorf("%s sellers.csv: %s %s does not balance: %+v", day, l.SellerID, l.Currency, l)
		}
		out[l.SellerID] = l
	}
	return out
}

func TestAdjustmentsOverThreeDaysAccountForEveryCent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenario()

	// want is each day's sellers.csv, worked out by hand (see scenario).
	type row struct{ orders, gross, refunded, commission, payable, carriedIn, clawback, paid, carriedFwd, unsettled int64 }
	want := []map[string]row{
		{
			"S00001": {2, 15000, 1000, 1400, 12600, 0, 0, 12600, 0, 0},
			"S00002": {1, 20000, 0, 2000, 18000, 0, 0, 0, 18000, 0},
			"S00003": {1, 3000, 0, 300, 2700, 0, 0, 0, 2700, 0},
		},
		{
			"S00001": {1, 4000, 0, 400, 3600, 0, -9000, 0, -5400, 0},
			"S00002": {1, 2000, 0, 200, 1800, 18000, 0, 19800, 0, 0},
			"S00003": {1, 3000, 0, 300, 2700, 2700, 0, 5400, 0, 0},
		},
		{
			"S00001": {1, 20000, 0, 2000, 18000, -5400, -1800, 10800, 0, 0},
			"S00002": {0, 0, 0, 0, 0, 0, -18000, 0, -18000, 0},
			"S00003": {1, 1000, 0, 100, 900, 0, 0, 0, 900, 0},
		},
	}
	var payable, clawback, paid int64
	for i, day := range scenarioDays {
		if i == 1 {
			sim.Infinia.SetBinding(seed.InfiniaID(2), "ACTIVE") // S2 binds on day two
		}
		out, code := e.runDay(sim, day)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", day, code, out)
		}
		got := e.sellersReport(day)
		if len(got) != len(want[i]) {
			t.Errorf("%s: sellers.csv has %d sellers, want %d", day, len(got), len(want[i]))
		}
		for id, w := range want[i] {
			g := got[id]
			if (row{g.Orders, g.Gross, g.Refunded, g.Commission, g.Payable, g.CarriedIn, g.Clawback, g.Paid, g.Held, g.Unsettled}) != w {
				t.Errorf("%s %s:\n got %+v\nwant %+v", day, id, g, w)
			}
			payable += g.Payable
			clawback += g.Clawback
			paid += g.Paid
		}
	}
	// Across the three days: 603.00 owed on orders, 288.00 taken back
	// (90 + 18 + 180), 486.00 paid (126 + 198 + 54 + 108), and -171.00
	// carried (S2 -180.00, S3 +9.00): 603 - 288 = 486 - 171.
	carried := e.count(`SELECT COALESCE(sum(amount_minor), 0) FROM settle.adjustments WHERE netted_into = ''`)
	if payable != 60300 || clawback != -28800 || paid != 48600 || carried != -17100 || payable+clawback != paid+carried {
		t.Errorf("across the days: payable %d, clawbacks %d, paid %d, carried %d; want 60300, -28800, 48600, -17100",
			payable, clawback, paid, carried)
	}
	// The provider saw exactly those revenue shares, once each, and the
	// platform's balance fell by exactly what was paid.
	shares := map[string][]int64{}
	for _, s := range sim.Infinia.RevenueShares() {
		if s.Status != "FAILED" {
			shares[s.SellerID] = append(shares[s.SellerID], s.Amount)
		}
	}
	wantShares := map[string][]int64{"INF00000001": {12600, 10800}, "INF00000002": {19800}, "INF00000003": {5400}}
	for id, w := range wantShares {
		if !equalInts(shares[id], w) {
			t.Errorf("revenue shares to %s: %v, want %v", id, shares[id], w)
		}
	}
	if len(shares) != len(wantShares) {
		t.Errorf("revenue shares: %v", shares)
	}
	if fell := 1_000_000_00 - sim.Infinia.Balance("USD"); fell != 48600 {
		t.Errorf("platform balance fell by %d, want 48600", fell)
	}
	// S2's revenue share of day two, for an auditor (settle status
	// --subject): its attempt, the order of the day it paid and the one
	// of day one carried into it, and the carried entry netted into it.
	d2, err := pipeline.ParseDate(scenarioDays[1])
	if err != nil {
		t.Fatal(err)
	}
	subject := infiniapay.RevenueShareSubject(d2, "S00002", "USD")
	var h ledger.SubjectHistory
	if err := json.Unmarshal([]byte(e.mustSettle("status", "--date", scenarioDays[1], "--subject", subject, "-o", "json")), &h); err != nil {
		t.Fatal(err)
	}
	var orders []string
	for _, it := range h.Items {
		if it.State != "paid" || it.PayoutKey != h.Attempts[0].Key || it.Source == nil || it.Rule == "" {
			t.Errorf("status --subject %s: order %+v, want paid by its attempt, with its rule and source row", subject, it)
		}
		orders = append(orders, it.OrderNo)
	}
	if len(h.Attempts) != 1 || h.Attempts[0].Amount != 19800 || len(h.Attempts[0].History) == 0 || len(h.Runs) != 1 ||
		strings.Join(orders, ",") != "O3,O6" || len(h.Adjustments) != 1 || h.Adjustments[0].Amount != 18000 || h.Adjustments[0].NettedInto != subject {
		t.Errorf("status --subject %s: %+v\nwant its one attempt of 198.00 with its history, orders O3 (carried from day one) and O6, and the entry of 180.00 netted into it", subject, h)
	}
	// Its trade file of day two, the same way: the order the file listed
	// (the carried one was listed in day one's), paid since by the share.
	up := infiniapay.UploadSubject(d2, "S00002", "USD", 1)
	var uh ledger.SubjectHistory
	if err := json.Unmarshal([]byte(e.mustSettle("status", "--date", scenarioDays[1], "--subject", up, "-o", "json")), &uh); err != nil {
		t.Fatal(err)
	}
	if len(uh.Items) != 1 || uh.Items[0].OrderNo != "O6" || uh.Items[0].State != "paid" || len(uh.Attempts) != 1 || uh.Attempts[0].Key == "" {
		t.Errorf("status --subject %s: %+v\nwant its one attempt and the order it listed, O6, paid", up, uh)
	}
	if text := e.mustSettle("status", "--date", scenarioDays[1], "--subject", up); !strings.Contains(text, "orders its file listed (and no later file of theirs): 1\n  O6 ") {
		t.Errorf("status --subject %s as text: want the order its file listed:\n%s", up, text)
	}
	// The clawbacks: refunds = seller share taken back + commission given back.
	var refunds, sellerBack, commissionBack int64
	e.db.QueryRow(`SELECT sum(refund_minor), -sum(amount_minor), sum(commission_back) FROM settle.adjustments WHERE kind = 'clawback'`).
		Scan(&refunds, &sellerBack, &commissionBack)
	if refunds != 32000 || sellerBack != 28800 || commissionBack != 3200 {
		t.Errorf("clawbacks: refunds %d, seller %d, commission %d; want 32000, 28800, 3200", refunds, sellerBack, commissionBack)
	}
	// Each late refund is in the orders report of the day it arrived.
	day3, err := os.ReadFile(filepath.Join(e.reports, scenarioDays[2], "orders.csv"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"O2,S00001,infiniapay,USD,,2000,-200,-1800,late_refund,clawed", "O3,S00002,infiniapay,USD,,20000,-2000,-18000,late_refund,clawed"} {
		if !strings.Contains(string(day3), s) {
			t.Errorf("%s orders.csv lacks %q:\n%s", scenarioDays[2], s, day3)
		}
	}
	// Carried items are paid by the payout that netted them.
	if n := e.count(`SELECT count(*) FROM settle.items WHERE order_no IN ('O3', 'O4') AND state = 'paid' AND carry_id IS NOT NULL
		AND payout_key LIKE 'RS-20261121-%'`); n != 2 {
		t.Errorf("O3 and O4 (carried on day 1) paid by day 2's revenue shares: %d of 2", n)
	}
	// A dry run of day 3 sees its two late refunds (R2, R3) and the open balances.
	out := e.mustSettle("run", "--date", scenarioDays[2], "--tz", "UTC", "--rules", e.rules, "--dry-run")
	for _, s := range []string{"late refunds in the window: 2 (0 that cannot be right)", "2 open carried balances"} {
		if !strings.Contains(out, s) {
			t.Errorf("dry run lacks %q:\n%s", s, out)
		}
	}
	// status shows the carried balances.
	out = e.mustSettle("status", "--date", scenarioDays[2])
	for _, s := range []string{"S00002", "-180.00 USD", "S00003", "9.00 USD"} {
		if !strings.Contains(out, s) {
			t.Errorf("status lacks %q:\n%s", s, out)
		}
	}

	// A re-run of every day sends nothing and rewrites the same reports.
	// (Day 1's orders.csv written on day 1 showed O3 and O4 carried; a
	// later day paid them, so "settle report" rewrites it first; its
	// sellers.csv, by date, does not change.)
	before := map[string][]byte{}
	for _, day := range scenarioDays {
		sellers := readFile(t, filepath.Join(e.reports, day, "sellers.csv"))
		e.mustSettle("report", "--date", day, "--out", e.reports)
		if got := readFile(t, filepath.Join(e.reports, day, "sellers.csv")); !bytes.Equal(got, sellers) {
			t.Errorf("%s: sellers.csv changed after later days:\n%s\n---\n%s", day, sellers, got)
		}
		for _, f := range reportFiles {
			before[day+f] = readFile(t, filepath.Join(e.reports, day, f))
		}
	}
	sent := len(sim.Infinia.RevenueShares())
	for _, day := range scenarioDays {
		if out, code := e.runDay(sim, day); code != 0 {
			t.Fatalf("re-run %s: exit %d\n%s", day, code, out)
		}
		for _, f := range reportFiles {
			if got := readFile(t, filepath.Join(e.reports, day, f)); !bytes.Equal(got, before[day+f]) {
				t.Errorf("re-run %s: %s changed:\n%s\n---\n%s", day, f, before[day+f], got)
			}
		}
	}
	if n := len(sim.Infinia.RevenueShares()); n != sent {
		t.Errorf("re-runs sent %d more revenue shares", n-sent)
	}
}

var reportFiles = []string{"orders.csv", "payouts.csv", "sellers.csv", "summary.csv", "mismatches.csv", "manifest.csv"}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (e *env) mismatches(day string) []pipeline.Mismatch {
	e.t.Helper()
	var ms []pipeline.Mismatch
	if err := gocsv.UnmarshalBytes(readFile(e.t, filepath.Join(e.reports, day, "mismatches.csv")), &ms); err != nil {
		e.t.Fatal(err)
	}
	return ms
}

func TestInfiniaTamperingIsAMismatchAndExit4(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenario()
	day := scenarioDays[0]
	if out, code := e.runDay(sim, day); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if ms := e.mismatches(day); len(ms) != 0 {
		t.Fatalf("clean run: mismatches %+v", ms)
	}
	shares := sim.Infinia.RevenueShares()
	if len(shares) != 1 {
		t.Fatalf("revenue shares %+v", shares)
	}
	key := shares[0].RequestNo

	// Infinia reports the payout with another amount. A re-run trusts the
	// answer it kept as final (the share SUCCESS, as the ledger says): it
	// does not ask; --reconcile-all asks everything again and finds it.
	sim.Infinia.ReportShareAmount(key, 12000)
	asked, available := sim.Infinia.Calls("revenue-sharing/query"), sim.Infinia.Calls("revenue-sharing/available")
	if out, code := e.runDay(sim, day); code != 0 || sim.Infinia.Calls("revenue-sharing/query") != asked ||
		sim.Infinia.Calls("revenue-sharing/available") != available {
		t.Fatalf("re-run: exit %d, %d revenue-share and %d available-share queries, want 0 and none\n%s", code,
			sim.Infinia.Calls("revenue-sharing/query")-asked, sim.Infinia.Calls("revenue-sharing/available")-available, out)
	}
	out, code := e.runDay(sim, day, "--"+flagReconcileAll)
	if code != 4 {
		t.Fatalf("tampered amount: exit %d, want 4\n%s", code, out)
	}
	ms := e.mismatches(day)
	if len(ms) != 1 || ms[0].Category != pipeline.MismatchAmount || ms[0].Subject != key || ms[0].Ours != "12600" ||
		ms[0].Theirs != "12000" || ms[0].Expected {
		t.Errorf("tampered amount: mismatches %+v", ms)
	}
	if n := len(sim.Infinia.RevenueShares()); n != 1 {
		t.Errorf("a mismatch sent %d revenue shares", n-1)
	}

	// Infinia loses it.
	sim.Infinia.ForgetShare(key)
	if out, code := e.runDay(sim, day); code != 4 {
		t.Fatalf("lost payout: exit %d, want 4\n%s", code, out)
	}
	if ms := e.mismatches(day); len(ms) != 1 || ms[0].Category != pipeline.MismatchMissingAtProvider || ms[0].Subject != key {
		t.Errorf("lost payout: mismatches %+v", ms)
	}
	// "settle report" rewrites the same mismatches from the ledger.
	before := readFile(t, filepath.Join(e.reports, day, "mismatches.csv"))
	e.mustSettle("report", "--date", day, "--out", e.reports)
	if after := readFile(t, filepath.Join(e.reports, day, "mismatches.csv")); !bytes.Equal(before, after) {
		t.Errorf("report rewrote mismatches.csv differently:\n%s\n---\n%s", before, after)
	}

	// Someone moves the seller's available share behind our back: a run
	// trusts the agreement it kept while the ledger records nothing for
	// the seller; --reconcile-all asks every seller again and finds it.
	sim.Infinia.SetAvailable(seed.InfiniaID(1), "USD", 500)
	available = sim.Infinia.Calls("revenue-sharing/available")
	if _, code := e.runDay(sim, day); code != 4 || sim.Infinia.Calls("revenue-sharing/available") != available {
		t.Fatalf("available share, re-run: exit %d (want 4, the lost payout), %d available-share queries, want none",
			code, sim.Infinia.Calls("revenue-sharing/available")-available)
	}
	if _, code := e.runDay(sim, day, "--"+flagReconcileAll); code != 4 {
		t.Fatalf("available share: exit %d, want 4", code)
	}
	var found bool
	for _, m := range e.mismatches(day) {
		if m.Subject == "available/S00001/USD" && m.Category == pipeline.MismatchAmount && m.Ours == "0" && m.Theirs == "500" {
			found = true
		}
	}
	if !found {
		t.Errorf("available share mismatch missing: %+v", e.mismatches(day))
	}
}

// Issue 12: a seller's available share found as the ledger expects it is
// not asked again by a re-run of the finished day (none is asked), and is
// asked again as soon as the ledger records something that could move it:
// the next date's trade file of the seller finds a share tampered with
// since, as does --reconcile-all.
func TestInfiniaAvailableShareAskedAgainWhenTheLedgerMoves(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenario()
	if out, code := e.runDay(sim, scenarioDays[0]); code != 0 {
		t.Fatalf("day 1: exit %d\n%s", code, out)
	}
	// S1 was paid in full on day 1: the ledger expects 0 available (as it
	// will after every full payout: the figure alone is not the key).
	sim.Infinia.SetAvailable(seed.InfiniaID(1), "USD", 500)
	available := sim.Infinia.Calls("revenue-sharing/available")
	if out, code := e.runDay(sim, scenarioDays[0]); code != 0 || sim.Infinia.Calls("revenue-sharing/available") != available {
		t.Fatalf("re-run of day 1: exit %d, %d available-share queries, want 0 and none\n%s",
			code, sim.Infinia.Calls("revenue-sharing/available")-available, out)
	}
	tampered := func(day string, want string) {
		t.Helper()
		for _, m := range e.mismatches(day) {
			if m.Subject == "available/S00001/USD" && m.Category == pipeline.MismatchAmount && m.Theirs == want && !m.Expected {
				return
			}
		}
		t.Errorf("%s: no available-share mismatch of S00001 at %s: %+v", day, want, e.mismatches(day))
	}
	// Day 2: S1 sells again (a new trade file, credited at Infinia: 500 +
	// 3600 against the 3600 expected), nets a negative amount and is
	// sent nothing; its share is asked again and the 500 found.
	sim.Infinia.SetBinding(seed.InfiniaID(2), "ACTIVE")
	if out, code := e.runDay(sim, scenarioDays[1]); code != 4 {
		t.Fatalf("day 2: exit %d, want 4\n%s", code, out)
	}
	tampered(scenarioDays[1], "4100")
	if out, code := e.runDay(sim, scenarioDays[0], "--"+flagReconcileAll); code != 4 {
		t.Fatalf("day 1, --reconcile-all: exit %d, want 4\n%s", code, out)
	}
	tampered(scenarioDays[0], "4100")
}

// weChatDay seeds a small day, settles it with only WeChat Pay
// configured, and returns the simulator.
func (e *env) weChatDay() *paysim.Sim {
	e.t.Helper()
	e.mustSettle("seed", "--date", testDate, "--orders", "120", "--sellers", "4", "--seed", "14")
	sim := e.weChatSim(nil, 0)
	if out, code := e.runWeChat(sim); code != 0 {
		e.t.Fatalf("run: exit %d:\n%s", code, out)
	}
	return sim
}

func TestWeChatTamperingIsAMismatchAndExit4(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.weChatDay()
	for _, m := range e.mismatches(testDate) {
		if !m.Expected {
			t.Fatalf("clean run: unexpected mismatch %+v", m)
		}
	}
	unsettled := func() (n int) {
		for _, m := range e.mismatches(testDate) {
			if strings.Contains(m.Detail, "UNSETTLE") {
				n++
			}
		}
		return n
	}
	if unsettled() == 0 {
		t.Fatalf("clean run: want the funds still UNSETTLE (expected): %+v", e.mismatches(testDate))
	}
	// WeChat settles the funds; the next night's run (of the next date)
	// reconciles this date again, since it still had timing gaps.
	sim.WeChat.Settle()
	next := "2026-11-24"
	if out, code := e.runWeChatOn(sim, next); code != 0 {
		t.Fatalf("next date: exit %d\n%s", code, out)
	}
	if n := unsettled(); n != 0 {
		t.Errorf("after the funds settled, the next date's run left %d UNSETTLE rows in %s's mismatches", n, testDate)
	}

	var keys []string
	if err := e.db.Select(&keys, `SELECT idem_key FROM settle.effects WHERE kind = 'distribution' AND state = 'succeeded' ORDER BY idem_key LIMIT 2`); err != nil || len(keys) != 2 {
		t.Fatalf("distributions %v: %v", keys, err)
	}
	sim.WeChat.ForgetOrder(keys[0])          // a distribution missing
	sim.WeChat.SetReportedAmount(keys[1], 1) // a distribution reported with another amount
	// The next date's run finds it, reconciling this one again: asking
	// every order again (--reconcile-all; by default the answers kept as
	// final are trusted and only the day's settlement total shows it).
	out, code := e.runWeChatOn(sim, next, "--"+flagReconcileAll)
	if code != 4 || !strings.Contains(out, testDate+": wechatpay") {
		t.Fatalf("tampered, next date's run: exit %d, want 4 naming %s\n%s", code, testDate, out)
	}
	out, code = e.runWeChat(sim, "--"+flagReconcileAll)
	if code != 4 {
		t.Fatalf("tampered: exit %d, want 4\n%s", code, out)
	}
	found := map[string]string{}
	for _, m := range e.mismatches(testDate) {
		if !m.Expected {
			found[m.Subject] += m.Category + " "
		}
	}
	if !strings.Contains(found[keys[0]], pipeline.MismatchMissingAtProvider) || !strings.Contains(found[keys[1]], pipeline.MismatchAmount) {
		t.Errorf("mismatches by subject %v; want %s missing_at_provider and %s amount", found, keys[0], keys[1])
	}
	if !strings.Contains(out, "unexpected mismatches") {
		t.Errorf("output does not name the mismatches:\n%s", out)
	}
}

func TestRerunOfAnEarlierDateNetsOnlyWhatIsDueByThen(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenario()
	sim.Infinia.SetBinding(seed.InfiniaID(2), "ACTIVE")
	sim.Infinia.SetBalance("USD", 0) // short: every payout is carried
	for _, day := range scenarioDays[:2] {
		if out, code := e.runDay(sim, day); code != 4 || !strings.Contains(out, "short of") {
			t.Fatalf("%s with no balance: exit %d, want 4\n%s", day, code, out)
		}
	}
	// Topped up, the operator re-runs day 1: it pays what day 1 owed,
	// and leaves day 2's entries (S1's clawback among them) to day 2.
	sim.Infinia.SetBalance("USD", 1_000_000_00)
	for _, day := range scenarioDays[:2] {
		if out, code := e.runDay(sim, day); code != 0 {
			t.Fatalf("re-run %s: exit %d\n%s", day, code, out)
		}
	}
	paid := map[string]int64{}
	for _, s := range sim.Infinia.RevenueShares() {
		if s.Status != "FAILED" {
			paid[s.RequestNo[:11]+"/"+s.SellerID] += s.Amount
		}
	}
	// Day 1: S1 126.00 and S2 180.00 (bound now; S3's 27.00 is below the
	// minimum). Day 2: S1 -90.00 + 36.00 and S2 18.00 carried (negative,
	// below the minimum); S3 27.00 + 27.00.
	want := map[string]int64{"RS-20261120/INF00000001": 12600, "RS-20261120/INF00000002": 18000,
		"RS-20261121/INF00000003": 5400}
	if len(paid) != len(want) {
		t.Errorf("revenue shares %v, want %v", paid, want)
	}
	for k, v := range want {
		if paid[k] != v {
			t.Errorf("%s: paid %d, want %d (all: %v)", k, paid[k], v, paid)
		}
	}
	for _, day := range scenarioDays[:2] {
		e.mustSettle("report", "--date", day, "--out", e.reports)
		e.sellersReport(day) // every line balances
	}
	if got := e.sellersReport(scenarioDays[1])["S00001"]; got.Held != -5400 || got.Paid != 0 {
		t.Errorf("S1 on day 2: %+v, want -54.00 carried forward", got)
	}
}

// TestAClawbackIsDatedByTheRunThatRecordsIt: a late refund read on day 2
// while its order (day 1, uploaded, not paid yet) is not settled waits;
// day 1 is paid; day 3's run claws it back, dated day 3, so that the
// sellers.csv of day 2 (written before the clawback existed) still carries
// forward what day 3's carries in, and day 3's shows the clawback.
func TestAClawbackIsDatedByTheRunThatRecordsIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenario()
	sim.Infinia.SetBinding(seed.InfiniaID(2), "ACTIVE")
	e.runDay(sim, scenarioDays[0], "--until", "upload")
	e.runDay(sim, scenarioDays[1]) // R1 read: waits for O1
	if r1 := e.lateRefundRows(scenarioDays[1])["O1"]; len(r1) != 1 || r1[0].State != "pending" ||
		!strings.HasSuffix(r1[0].Reason, ": waiting for its order to be paid or carried; clawed back then") {
		t.Errorf("%s: R1's row %+v, want it waiting, saying for what", scenarioDays[1], r1)
	}
	e.runDay(sim, scenarioDays[0]) // O1 paid
	day2 := e.sellersReport(scenarioDays[1])["S00001"]
	e.runDay(sim, scenarioDays[2]) // R1 clawed back
	day3 := e.sellersReport(scenarioDays[2])["S00001"]
	if day2.Held != day3.CarriedIn {
		t.Errorf("S1: day 2's sellers.csv carries forward %d, day 3's carries in %d", day2.Held, day3.CarriedIn)
	}
	var dated string
	if err := e.db.Get(&dated, `SELECT business_date::text FROM settle.adjustments WHERE refund_no = 'R1'`); err != nil || dated != scenarioDays[2] {
		t.Errorf("R1's clawback dated %q (%v), want %s", dated, err, scenarioDays[2])
	}
	// Each date's orders.csv gives the parts of the clawbacks its
	// summary.csv and sellers.csv count, and no others: R1's are on day 3,
	// the date of its clawback; day 2, which read it, names that date.
	// Before, day 2's rows (rewritten by day 3's recheck or `settle
	// report`) showed R1's parts, which no report of day 2 counted, and day
	// 3's summary counted a clawback that its orders.csv did not show.
	e.mustSettle("report", "--date", scenarioDays[1], "--out", e.reports)
	for _, day := range scenarioDays[1:] {
		e.checkLateRefundRowsAreTheClawbacks(day)
	}
	if r1 := e.lateRefundRows(scenarioDays[1])["O1"]; len(r1) != 1 || r1[0].Seller != "" ||
		!strings.Contains(r1[0].Reason, "clawed back on "+scenarioDays[2]) {
		t.Errorf("%s: R1's row %+v, want it without parts, naming %s", scenarioDays[1], r1, scenarioDays[2])
	}
	if r1 := e.lateRefundRows(scenarioDays[2])["O1"]; len(r1) != 1 || r1[0].Seller != "-9000" || r1[0].Commission != "-1000" ||
		!strings.Contains(r1[0].Reason, "read on "+scenarioDays[1]) {
		t.Errorf("%s: R1's row %+v, want its parts, read on %s", scenarioDays[2], r1, scenarioDays[1])
	}
}

// lateRefundRows reads the late_refund rows of day's orders.csv, by order.
func (e *env) lateRefundRows(day string) map[string][]pipeline.OrderLine {
	e.t.Helper()
	var lines []pipeline.OrderLine
	if err := gocsv.UnmarshalBytes(readFile(e.t, filepath.Join(e.reports, day, "orders.csv")), &lines); err != nil {
		e.t.Fatal(err)
	}
	out := map[string][]pipeline.OrderLine{}
	for _, l := range lines {
		if l.Action == "late_refund" {
			out[l.OrderNo] = append(out[l.OrderNo], l)
		}
	}
	return out
}

// checkLateRefundRowsAreTheClawbacks checks that the parts of day's
// late_refund rows in orders.csv add up, per currency, to the clawbacks row
// of its summary.csv and to the clawback column of its sellers.csv.
func (e *env) checkLateRefundRowsAreTheClawbacks(day string) {
	e.t.Helper()
	type parts struct{ refunded, commission, seller int64 }
	rows, summary, sellers := map[string]parts{}, map[string]parts{}, map[string]int64{}
	for _, ls := range e.lateRefundRows(day) {
		for _, l := range ls {
			if l.Seller == "" {
				continue // ignored, waiting, or clawed back on another date
			}
			var p [3]int64
			for i, v := range []string{l.Refunded, l.Commission, l.Seller} {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					e.t.Fatalf("%s orders.csv: %+v: %v", day, l, err)
				}
				p[i] = n
			}
			r := rows[l.Currency]
			rows[l.Currency] = parts{r.refunded + p[0], r.commission + p[1], r.seller + p[2]}
		}
	}
	for _, l := range e.checkReportsBalance(day, day) {
		if l.Channel == "(late refunds clawed back)" {
			summary[l.Currency] = parts{l.Refunded, l.Commission, l.Seller}
		}
	}
	for _, l := range e.sellersReport(day) {
		sellers[l.Currency] += l.Clawback
	}
	for cur, s := range summary {
		if rows[cur] != s || sellers[cur] != s.seller {
			e.t.Errorf("%s %s: orders.csv's late refunds give back %+v, summary.csv's clawbacks %+v, sellers.csv's %d", day, cur, rows[cur], s, sellers[cur])
		}
	}
	for cur, r := range rows {
		if _, ok := summary[cur]; !ok {
			e.t.Errorf("%s %s: orders.csv's late refunds give back %+v, summary.csv has no clawback", day, cur, r)
		}
	}
}

// TestASellerBlockedByABadLateRefundNeedsAPersonOnEveryDate: a late
// refund above its order blocks its seller's payouts until corrected; every
// run that carries the seller for it says so (exit 4), not only the one
// that read it, as it does not pass by itself.
func TestASellerBlockedByABadLateRefundNeedsAPersonOnEveryDate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenarioDayOneSettled()
	e.db.MustExec(`INSERT INTO refunds (refund_no, order_no, amount_minor, created_at) VALUES ('RB', 'O4', 5000, '2026-11-21 09:30Z')`) // 50.00 of a 30.00 order
	if out, code := e.runDay(sim, scenarioDays[1]); code != 4 {
		t.Fatalf("day 2: exit %d, want 4\n%s", code, out)
	}
	out, code := e.runDay(sim, scenarioDays[2])
	if code != 4 || !strings.Contains(out, "late refund RB of one of its orders cannot be right") {
		t.Fatalf("day 3 carries S3 for RB: exit %d, want 4 naming RB\n%s", code, out)
	}
}

// scenarioDayOneSettled is the adjustments scenario with seller 2 bound
// and its first day settled.
// revenueSharedTo is what Infinia's revenue shares to seller n (seed's
// numbering) paid or have in flight: all but the failed ones.
func revenueSharedTo(sim *paysim.Sim, n int) (paid int64) {
	for _, s := range sim.Infinia.RevenueShares() {
		if s.SellerID == seed.InfiniaID(n) && s.Status != "FAILED" {
			paid += s.Amount
		}
	}
	return paid
}

func (e *env) scenarioDayOneSettled() *paysim.Sim {
	e.t.Helper()
	sim := e.scenario()
	sim.Infinia.SetBinding(seed.InfiniaID(2), "ACTIVE")
	if out, code := e.runDay(sim, scenarioDays[0]); code != 0 {
		e.t.Fatalf("day 1: exit %d\n%s", code, out)
	}
	return sim
}

func TestABadLateRefundStopsForAPersonUntilCorrected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenarioDayOneSettled()
	// The platform records a refund of O4 (S3, owed 27.00, carried) with
	// a zero amount.
	e.db.MustExec(`INSERT INTO refunds (refund_no, order_no, amount_minor, created_at) VALUES ('RB', 'O4', 0, '2026-11-21 09:30Z')`)
	out, code := e.runDay(sim, scenarioDays[1])
	if code != 4 {
		t.Fatalf("bad late refund: exit %d, want 4\n%s", code, out)
	}
	var bad []pipeline.Mismatch
	for _, m := range e.mismatches(scenarioDays[1]) {
		if m.Category == pipeline.MismatchBadData {
			bad = append(bad, m)
		}
	}
	if len(bad) != 1 || bad[0].Subject != "RB" || bad[0].Provider != pipeline.ProviderPlatform || !strings.Contains(bad[0].Detail, "must be positive") {
		t.Fatalf("bad_data rows %+v", bad)
	}
	// Never paid on bad data: S3's 27.00 + 27.00 is carried meanwhile.
	paidS3 := func() int64 { return revenueSharedTo(sim, 3) }
	if n := paidS3(); n != 0 {
		t.Fatalf("S3 was paid %d while its late refund could not be read", n)
	}
	// Corrected to 3.00, the next run of the date claws it back - S3
	// gives back 2.70 (the platform 0.30 of commission) - and pays S3
	// 27.00 + 27.00 - 2.70 = 51.30.
	e.db.MustExec(`UPDATE refunds SET amount_minor = 300 WHERE refund_no = 'RB'`)
	if out, code := e.runDay(sim, scenarioDays[1]); code != 0 {
		t.Fatalf("corrected: exit %d\n%s", code, out)
	}
	var back, commission int64
	if err := e.db.QueryRow(`SELECT -amount_minor, commission_back FROM settle.adjustments WHERE refund_no = 'RB'`).Scan(&back, &commission); err != nil {
		t.Fatal(err)
	}
	if back != 270 || commission != 30 {
		t.Errorf("clawback of RB: seller %d, commission %d; want 270, 30", back, commission)
	}
	if n := paidS3(); n != 5130 {
		t.Errorf("S3 paid %d after the correction, want 5130", n)
	}
	for _, m := range e.mismatches(scenarioDays[1]) {
		if m.Category == pipeline.MismatchBadData {
			t.Errorf("still reported after the correction: %+v", m)
		}
	}
}

// TestABrokenLateRefundsQueryStopsTheDayBeforeAnythingIsSent: the
// late-refunds query is read in the distribute stage, after the trade
// files went up; one the database refused (a typo in the operator's file)
// stopped the day there, half sent. It is checked before the first
// sending stage: exit 2 naming the file, nothing sent; fixed, the day is
// settled.
func TestABrokenLateRefundsQueryStopsTheDayBeforeAnythingIsSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenario()
	query := filepath.Join(t.TempDir(), "late_refunds.sql")
	if err := os.WriteFile(query, []byte("SELECT r.refund_no, r.order_no, o.seller_id, r.amount_minor, r.created_at\n"+
		"FROM refunds r JOIN orders o ON o.order_no = r.order_no WHERE r.created_at >= $1 AND r.created_at < $2 AND r.refund_status = 'done'"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := e.runDay(sim, scenarioDays[0], "--late-refunds-query", query)
	if code != 2 || !strings.Contains(out, "late-refunds query "+query) || !strings.Contains(out, "refund_status") {
		t.Fatalf("a late-refunds query naming a missing column: exit %d, want 2 naming the file and the column\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects`); n != 0 {
		t.Errorf("%d requests recorded before the late-refunds query was found broken", n)
	}
	if out, code := e.runDay(sim, scenarioDays[0]); code != 0 {
		t.Fatalf("with the default query: exit %d, want 0\n%s", code, out)
	}
}

// TestABadLateRefundTheQueryNoLongerGivesReleasesItsSeller: a late
// refund without a number (kept as "(no refund_no: run R row N)") blocks
// its seller's revenue shares until corrected; but no corrected row could
// ever replace it, nor one the platform removed: once the platform gave
// the refund a number, the date's next run clawed that one back and still
// carried the seller for the numberless one, on every run of every date,
// for ever (found by an operator's trial). A rejected refund the
// late-refunds query no longer gives is nothing to take back: the seller
// is paid.
func TestABadLateRefundTheQueryNoLongerGivesReleasesItsSeller(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenarioDayOneSettled()
	// The platform's query gives a refund of O4 (S3, owed 27.00, carried)
	// without its number.
	query := filepath.Join(t.TempDir(), "late_refunds.sql")
	if err := os.WriteFile(query, []byte(`SELECT r.refund_no, r.order_no, o.seller_id, r.amount_minor, r.created_at
		FROM refunds r JOIN orders o ON o.order_no = r.order_no
		WHERE r.created_at >= $1 AND r.created_at < $2
		  AND EXISTS (SELECT 1 FROM orders c WHERE c.order_no = r.order_no AND c.confirmed_at < $1)
		UNION ALL SELECT NULL, o.order_no, o.seller_id, 300, $1 + interval '9 hours' FROM orders o WHERE o.order_no = 'O4'`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := e.runDay(sim, scenarioDays[1], "--late-refunds-query", query)
	if code != 4 || !strings.Contains(out, "(no refund_no: run") {
		t.Fatalf("a late refund without a number: exit %d, want 4 naming it\n%s", code, out)
	}
	paidS3 := func() int64 { return revenueSharedTo(sim, 3) }
	if n := paidS3(); n != 0 {
		t.Fatalf("S3 was paid %d while its late refund could not be read", n)
	}
	// The platform gives it a number (3.00): the date's next run, with
	// the default query, claws it back - S3 gives back 2.70 - and pays S3
	// 27.00 + 27.00 - 2.70 = 51.30.
	e.db.MustExec(`INSERT INTO refunds (refund_no, order_no, amount_minor, created_at) VALUES ('RN', 'O4', 300, '2026-11-21 09:00Z')`)
	if out, code := e.runDay(sim, scenarioDays[1]); code != 0 {
		t.Fatalf("numbered since: exit %d, want 0\n%s", code, out)
	}
	if n := paidS3(); n != 5130 {
		t.Errorf("S3 paid %d once the refund has a number, want 5130", n)
	}
	if n := e.count(`SELECT count(*) FROM settle.late_refunds WHERE state = 'rejected'`); n != 0 {
		t.Errorf("%d late refunds still rejected", n)
	}
	for _, m := range e.mismatches(scenarioDays[1]) {
		if m.Category == pipeline.MismatchBadData {
			t.Errorf("still reported: %+v", m)
		}
	}
}

// TestAnItemUploadedWhileTheDatesShareIsInFlightIsCarried: S2's trade
// file of day 2 is held on the first run (Infinia will not say what became
// of it), and the date's revenue share to S2 goes out on its carried
// balance alone and is still in flight when the run ends. On the re-run
// Infinia accepts the file: O6 cannot join that revenue share, so it is
// carried to S2's next one - it was left uploaded, covered by no payout,
// and the re-run ended 0, while later dates pay only their own items and
// the carried balances (found by a review). Day 3 carries it on (below
// the minimum payout on its own), never losing it. Day 3 read before the
// re-run, the re-run names it: its reports predate O6's carried share.
func TestAnItemUploadedWhileTheDatesShareIsInFlightIsCarried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenario()
	if out, code := e.runDay(sim, scenarioDays[0]); code != 0 {
		t.Fatalf("day 1: exit %d\n%s", code, out)
	}
	sim.Infinia.SetBinding(seed.InfiniaID(2), "ACTIVE")
	sim.Infinia.RefuseStatusOf(seed.InfiniaID(2), "SYS-005", "bad format: requestNo")
	if out, code := e.runDay(sim, scenarioDays[1], "--until", "upload"); code != 4 {
		t.Fatalf("day 2 upload: exit %d, want 4 (S2's file held)\n%s", code, out)
	}
	// Distribute with a wait so short that the revenue shares are still
	// PROCESSING when it is over.
	if out, code := e.runDay(sim, scenarioDays[1], "--provider-wait", "1ms", "--provider-poll", "50ms"); code == 0 {
		t.Fatalf("day 2, short wait: exit 0, want the revenue shares still in flight\n%s", out)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE subject = 'RS/20261121/S00002/USD' AND state IN ('planned', 'sent', 'unknown')`); n != 1 {
		t.Fatalf("want S2's day-2 revenue share (its carried 180.00) in flight, got %d", n)
	}
	// Day 3 is read before day 2 is run again: a later date with a run.
	if out, code := e.runDay(sim, scenarioDays[2], "--until", "transform"); code != 0 || strings.Contains(out, "after later dates were run") {
		t.Fatalf("day 3 --until transform: exit %d, or a note of later dates where there are none\n%s", code, out)
	}
	sim.Infinia.RefuseStatusOf(seed.InfiniaID(2), "", "")
	out, code := e.runDay(sim, scenarioDays[1])
	var state, reason string
	if err := e.db.QueryRow(`SELECT state, reason FROM settle.items WHERE order_no = 'O6'`).Scan(&state, &reason); err != nil {
		t.Fatal(err)
	}
	if state != "carried" || !strings.Contains(reason, "uploaded after revenue share") {
		t.Fatalf("re-run of day 2 (exit %d): O6 is %s (%q), want carried to S2's next revenue share\n%s", code, state, reason, out)
	}
	// O6's share is carried under day 2, after day 3 was run: day 3's
	// reports, once written, would not show it in their carried in (found
	// by a month-long audit); the re-run says so, naming day 3.
	if want := fmt.Sprintf("this run recorded carried balances dated %s, after later dates were run (%s)", scenarioDays[1], scenarioDays[2]); !strings.Contains(out, want) {
		t.Errorf("re-run of day 2 does not say %q\n%s", want, out)
	}
	// O6's 18.00 is in S2's carried balance (below the 50.00 minimum on
	// its own: day 3 carries it on), never lost between the two.
	if out, code := e.runDay(sim, scenarioDays[2]); code != 0 {
		t.Fatalf("day 3: exit %d\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.adjustments a JOIN settle.items i ON i.carry_id = a.id
		WHERE i.order_no = 'O6' AND a.amount_minor = i.seller_minor AND (a.netted_into = '' OR EXISTS (
			SELECT 1 FROM settle.effects f WHERE f.idem_key = a.netted_into AND f.state = 'succeeded'))`); n != 1 {
		t.Fatalf("after day 3, O6's 18.00 is neither carried nor paid")
	}
}

// TestACarriedOnlySellerIsPaid: S2, bound only after day 1, sells nothing
// on day 2: day 2's run pays it the 180.00 carried from day 1. The
// revenue share was planned to the seller's last recorded Infinia id, but
// its sender looked the id up in day 2's sellers only, found none, and
// the request looped "unknown" without ever leaving: exit 1 on every run,
// the balance netted into it for good (found by a review).
func TestACarriedOnlySellerIsPaid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.carriedOnlySeller()
	out, code := e.runDay(sim, scenarioDays[1])
	var got []int64
	for _, s := range sim.Infinia.RevenueShares() {
		if s.SellerID == seed.InfiniaID(2) {
			got = append(got, s.Amount)
		}
	}
	if code != 0 || len(got) != 1 || got[0] != 18000 {
		t.Fatalf("day 2: exit %d, revenue shares to S2 %v; want exit 0 and one of 18000\n%s", code, got, out)
	}
}

// TestARefundOfAnOrderMovedToALaterDateIsClawedBack: O1 is settled and
// paid on day 1; the platform then moves its confirmation to day 2 and
// refunds it in full there. Day 2's row is rejected as already settled,
// and the late-refunds query reads only the refunds of orders confirmed
// before the day: nothing clawed the refund back, the run ended 0 and the
// seller kept the share of a refunded order (found by a review). Day 2
// now records the refund its row shows beyond what the ledger knew, and
// claws it back; a re-run records nothing more.
func TestARefundOfAnOrderMovedToALaterDateIsClawedBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenario()
	if out, code := e.runDay(sim, scenarioDays[0]); code != 0 {
		t.Fatalf("day 1: exit %d\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE order_no = 'O1' AND state = 'paid' AND refunded_minor = 0`); n != 1 {
		t.Fatalf("O1 not paid, unrefunded, on day 1")
	}
	e.db.MustExec(`UPDATE orders SET confirmed_at = '2026-11-21 09:00Z' WHERE order_no = 'O1'`)
	for i := range 2 {
		out, _ := e.runDay(sim, scenarioDays[1], "--max-reject-ratio", "1") // a day of 4 rows; on a real day, 1 of thousands
		var got []struct {
			State  string `db:"state"`
			Amount int64  `db:"amount_minor"`
		}
		if err := e.db.Select(&got, `SELECT state, amount_minor FROM settle.late_refunds WHERE order_no = 'O1'`); err != nil {
			t.Fatal(err)
		}
		refunded := e.count(`SELECT COALESCE(sum(amount_minor), 0) FROM refunds WHERE order_no = 'O1'`)
		if len(got) != 1 || got[0].State != "clawed" || got[0].Amount != refunded {
			t.Fatalf("day 2, run %d: O1's late refunds %+v, want one of %d clawed\n%s", i+1, got, refunded, out)
		}
		if n := e.count(`SELECT count(*) FROM settle.adjustments WHERE kind = 'clawback' AND order_no = 'O1'`); n != 1 {
			t.Fatalf("day 2, run %d: %d clawbacks of O1, want 1", i+1, n)
		}
	}
}

// TestAMovedOrdersRefundCountsOnlyTheRefundsOfItsRow: O1 is paid on day
// 1; the platform moves it to day 2 and refunds 40.00 there, then 30.00
// on day 3. Day 2 stops after transform (its row shows 40.00 refunded);
// day 3 runs first and claws back its own 30.00. Day 2 then counted day
// 3's refund against its row, which never included it, and clawed back
// only 10.00 (found by a review): it claws back the 40.00.
func TestAMovedOrdersRefundCountsOnlyTheRefundsOfItsRow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenarioDayOneSettled()
	e.db.MustExec(`UPDATE orders SET confirmed_at = '2026-11-21 09:00Z' WHERE order_no = 'O1'`)
	e.db.MustExec(`UPDATE refunds SET amount_minor = 4000 WHERE refund_no = 'R1'`)
	e.db.MustExec(`INSERT INTO refunds (refund_no, order_no, amount_minor, created_at) VALUES ('R1B', 'O1', 3000, '2026-11-22 08:30Z')`)
	if out, code := e.runDay(sim, scenarioDays[1], "--until", "transform", "--max-reject-ratio", "1"); code != 0 {
		t.Fatalf("day 2 until transform: exit %d\n%s", code, out)
	}
	out3, _ := e.runDay(sim, scenarioDays[2], "--max-reject-ratio", "1")
	out2, _ := e.runDay(sim, scenarioDays[1], "--max-reject-ratio", "1")
	if n := e.count(`SELECT COALESCE(sum(amount_minor), 0) FROM settle.late_refunds WHERE order_no = 'O1' AND state = 'clawed'`); n != 7000 {
		t.Fatalf("O1 refunded 70.00 after its settlement; its late refunds clawed back add up to %d\nday 3:\n%s\nday 2:\n%s", n, out3, out2)
	}
}

// TestACarriedOnlyRevenueShareInFlightIsResolvedByTheReRun: a revenue
// share that pays a carried balance alone (S2 sells nothing on day 2) and
// is still PROCESSING when the wait is over was never asked about again:
// its planning netted the balance, so on the re-run S2 has neither an
// uploaded item nor an open carry and is no candidate, and only
// candidates' payouts were driven; the re-run ended 0 with it in flight
// (found by a review). Had Infinia failed it, the balance stayed netted
// into a dead payout. Now every open revenue share of the run is driven.
func TestACarriedOnlyRevenueShareInFlightIsResolvedByTheReRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.carriedOnlySeller()
	// The wait is over before Infinia decides.
	if out, code := e.runDay(sim, scenarioDays[1], "--provider-wait", "1ms", "--provider-poll", "50ms"); code != 1 {
		t.Fatalf("day 2, short wait: exit %d, want 1 with the revenue share still in flight\n%s", code, out)
	}
	const subject = `RS/20261121/S00002/USD`
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE subject = $1 AND state IN ('sent', 'unknown')`, subject); n != 1 {
		t.Fatalf("want S2's carried-only revenue share in flight after the short wait, got %d", n)
	}
	out, code := e.runDay(sim, scenarioDays[1])
	var state string
	if err := e.db.Get(&state, `SELECT state FROM settle.effects WHERE subject = $1 ORDER BY attempt DESC LIMIT 1`, subject); err != nil {
		t.Fatal(err)
	}
	if state != "succeeded" {
		t.Fatalf("re-run of day 2 (exit %d): S2's revenue share is still %s, never asked about again\n%s", code, state, out)
	}
}

// carriedOnlySeller is the adjustments scenario with its first day settled
// while S2 was not bound (its 180.00 carried), O6 gone (S2 sells nothing
// on day 2) and S2 bound since: day 2 pays S2 its carried balance alone.
func (e *env) carriedOnlySeller() *paysim.Sim {
	e.t.Helper()
	sim := e.scenario()
	if _, err := e.db.Exec(`DELETE FROM orders WHERE order_no = 'O6'`); err != nil {
		e.t.Fatal(err)
	}
	if out, code := e.runDay(sim, scenarioDays[0]); code != 0 {
		e.t.Fatalf("day 1: exit %d\n%s", code, out)
	}
	sim.Infinia.SetBinding(seed.InfiniaID(2), "ACTIVE")
	return sim
}

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

// A platform whose refund numbers are not unique across orders (numbered
// per order, say) gives on day 3 a refund of O4 (S3, paid on day 2) under
// R1, the number of O1's refund clawed back on day 2. The ledger keeps a
// late refund once by its number, so the second one was dropped without a
// word: "0 late refunds read", exit 0, and S3 kept the 10.00 the buyer got
// back (found by an adversarial data review). It is for a person until the
// platform gives it a number of its own; then it is clawed back.
func TestALateRefundUnderANumberTheLedgerHoldsForAnotherRefundNeedsAPerson(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenarioDayOneSettled()
	if out, code := e.runDay(sim, scenarioDays[1]); code != 0 {
		t.Fatalf("day 2: exit %d\n%s", code, out)
	}
	e.db.MustExec(`ALTER TABLE refunds DROP CONSTRAINT refunds_pkey`)
	e.db.MustExec(`INSERT INTO refunds (refund_no, order_no, amount_minor, created_at) VALUES ('R1', 'O4', 1000, '2026-11-22 14:00Z')`)
	out, code := e.runDay(sim, scenarioDays[2])
	if code != 4 || !strings.Contains(out, "late refund R1 of order O4") {
		t.Fatalf("day 3: exit %d, want 4 naming R1 of O4\n%s", code, out)
	}
	e.db.MustExec(`UPDATE refunds SET refund_no = 'O4-R1' WHERE order_no = 'O4'`)
	if out, code := e.runDay(sim, scenarioDays[2]); code != 0 {
		t.Fatalf("day 3 with the refund renumbered: exit %d\n%s", code, out)
	}
	// 30.00 - 10.00: commission 2.00 of 3.00, the seller gives back 9.00.
	if n := e.count(`SELECT COALESCE(sum(-amount_minor), 0) FROM settle.adjustments WHERE kind = 'clawback' AND order_no = 'O4'`); n != 900 {
		t.Errorf("S3 gave back %d for O4's refund, want 900", n)
	}
}

// TestALateRefundOutsideItsWindowIsNeverTakenBackTwice: a late-refunds
// query that returns refunds created before its window (its lower bound
// forgotten: an integrator's first query) returned R0, the refund of O2
// netted by O2's own day: it was clawed back from S1 a second time, exit
// 0. Such a row is not recorded and needs a person, naming it, while the
// window's own refunds (R1) are clawed back as before.
func TestALateRefundOutsideItsWindowIsNeverTakenBackTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenarioDayOneSettled()
	q := filepath.Join(t.TempDir(), "late.sql")
	if err := os.WriteFile(q, []byte(`SELECT r.refund_no, r.order_no, o.seller_id, r.amount_minor, r.created_at
FROM refunds r JOIN orders o ON o.order_no = r.order_no
WHERE r.created_at < $2 AND o.confirmed_at < $1`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := e.runDay(sim, scenarioDays[1], "--late-refunds-query", q)
	if code != 4 || !strings.Contains(out, "late refund R0 of order O2: created_at 2026-11-20T15:00:00Z is outside the late-refunds query's window") {
		t.Fatalf("day 2 with R0 of day 1 in the late refunds: exit %d, want 4 naming R0\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.late_refunds WHERE refund_no = 'R0'`); n != 0 {
		t.Fatalf("R0, netted by O2's own day, recorded as a late refund (%d rows)", n)
	}
	if n := e.count(`SELECT COALESCE(sum(amount_minor), 0) FROM settle.adjustments WHERE kind = 'clawback' AND seller_id = 'S00001'`); n != -9000 {
		t.Fatalf("S1's clawbacks %d, want -9000 (R1 alone)", n)
	}
	dry, code := e.settle("run", "--date", scenarioDays[1], "--tz", "UTC", "--rules", e.rules, "--dry-run", "--late-refunds-query", q)
	if code != 0 || !strings.Contains(dry, "late refunds outside the window: 1, never taken back") {
		t.Fatalf("dry run: exit %d, want it to count R0 outside the window\n%s", code, dry)
	}
}

// TestALateRefundGivenInAndOutsideItsWindowIsNotTakenBack: a refund number
// the late-refunds query gives twice, once in its window and once outside
// it (another time), is rows that disagree: neither is taken back, and the
// run needs a person. Before, the row outside was set aside first, and the
// one inside was clawed back as if the query agreed with itself (found by
// a review).
func TestALateRefundGivenInAndOutsideItsWindowIsNotTakenBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenarioDayOneSettled()
	q := filepath.Join(t.TempDir(), "late.sql")
	if err := os.WriteFile(q, []byte(`SELECT r.refund_no, r.order_no, o.seller_id, r.amount_minor, t.created_at
FROM refunds r JOIN orders o ON o.order_no = r.order_no,
     LATERAL (VALUES (r.created_at), (r.created_at - interval '2 days')) AS t (created_at)
WHERE r.created_at >= $1 AND r.created_at < $2 AND o.confirmed_at < $1`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := e.runDay(sim, scenarioDays[1], "--late-refunds-query", q)
	if code != 4 || !strings.Contains(out, "late refund R1 of order") {
		t.Fatalf("day 2 with R1 given in and outside the window: exit %d, want 4 naming R1\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.late_refunds WHERE refund_no = 'R1' AND state = 'rejected' AND reason LIKE '%rows that disagree%'`); n != 1 {
		t.Fatalf("R1 recorded %d times as rows that disagree, want once", n)
	}
	if n := e.count(`SELECT count(*) FROM settle.adjustments WHERE kind = 'clawback' AND refund_no = 'R1'`); n != 0 {
		t.Fatalf("R1 clawed back %d times, want none", n)
	}
}

// TestALateRefundUnderANumberTheLedgerHoldsIsInTheReports: the refund of
// O4 given under R1, the number of O1's refund clawed back on day 2, was
// in the run's message alone: day 3's orders.csv had no row for it and its
// mismatches.csv nothing, so the reports read as if O4 was never refunded,
// and S3 was paid on as if it owed nothing back (found by a finance review
// of the reports). It is a late_refund row, rejected, and a bad_data
// mismatch of its date until the platform gives it a number of its own;
// then the row says so and the refund is clawed back under its number.
func TestALateRefundUnderANumberTheLedgerHoldsIsInTheReports(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenarioDayOneSettled()
	if out, code := e.runDay(sim, scenarioDays[1]); code != 0 {
		t.Fatalf("day 2: exit %d\n%s", code, out)
	}
	e.db.MustExec(`ALTER TABLE refunds DROP CONSTRAINT refunds_pkey`)
	e.db.MustExec(`INSERT INTO refunds (refund_no, order_no, amount_minor, created_at) VALUES ('R1', 'O4', 1000, '2026-11-22 14:00Z')`)
	out, code := e.runDay(sim, scenarioDays[2])
	if code != 4 {
		t.Fatalf("day 3: exit %d, want 4\n%s", code, out)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(e.reports, scenarioDays[2], name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	row := func(report, prefix string) string {
		for _, l := range strings.Split(report, "\n") {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		return ""
	}
	if l := row(read("orders.csv"), "O4,S00003,infiniapay,USD,,1000,,,late_refund,rejected,"); !strings.Contains(l, "refund_no R1 is the ledger's for another refund (order O1") {
		t.Errorf("day 3's orders.csv has no rejected late_refund row of O4's refund under R1:\n%s", read("orders.csv"))
	}
	if l := row(read("mismatches.csv"), "platform,bad_data,settle:renumber:R1:O4,O4,S00003,"); l == "" {
		t.Errorf("day 3's mismatches.csv has no bad_data row of O4's refund under R1:\n%s", read("mismatches.csv"))
	}
	e.db.MustExec(`UPDATE refunds SET refund_no = 'O4-R1' WHERE order_no = 'O4'`)
	if out, code := e.runDay(sim, scenarioDays[2]); code != 0 {
		t.Fatalf("day 3 with the refund renumbered: exit %d\n%s", code, out)
	}
	if l := row(read("mismatches.csv"), "platform,bad_data,"); l != "" {
		t.Errorf("day 3's mismatches.csv after the refund was renumbered: %s", l)
	}
	orders := read("orders.csv")
	if l := row(orders, "O4,S00003,infiniapay,USD,,1000,,,late_refund,ignored,"); !strings.Contains(l, "read again under its own number") {
		t.Errorf("day 3's orders.csv: the row of the refund under R1 does not say it was renumbered:\n%s", orders)
	}
	if l := row(orders, "O4,S00003,infiniapay,USD,,1000,-100,-900,late_refund,clawed,"); l == "" {
		t.Errorf("day 3's orders.csv: no clawback of O4-R1:\n%s", orders)
	}
}

// TestALateRefundIsSplitUnderTheRulesItsOrderSettledWith: the rules file
// given now changed the rate of a date already settled (edited in place,
// not a new row from a later date). A late refund of an order of that date
// was split under the file given now: "the rules now split the order
// otherwise", the whole refund taken back from the seller's share, exit 4,
// and no run with the right file undid it (found by an operator's trial).
// It is split under the file its date's run split with, which the ledger
// keeps: O4 (S3, 30.00 at 10%) refunded 3.00 gives back 2.70 from the
// seller and 0.30 of commission, as under the rules it settled with.
func TestALateRefundIsSplitUnderTheRulesItsOrderSettledWith(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenarioDayOneSettled()
	e.db.MustExec(`INSERT INTO refunds (refund_no, order_no, amount_minor, created_at) VALUES ('RB', 'O4', 300, '2026-11-21 09:30Z')`)
	e.rules = filepath.Join(t.TempDir(), "rules.csv")
	if err := os.WriteFile(e.rules, []byte("seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from\n,,,2000,,,,2020-01-01\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := e.runDay(sim, scenarioDays[1])
	if code != 0 || strings.Contains(out, "otherwise than it settled") {
		t.Fatalf("day 2 under a file that changed day 1's rate: exit %d, want 0 with day 1's late refunds split under day 1's rules\n%s", code, out)
	}
	var back, commission int64
	var reason string
	if err := e.db.QueryRow(`SELECT -amount_minor, commission_back, reason FROM settle.adjustments WHERE refund_no = 'RB'`).Scan(&back, &commission, &reason); err != nil {
		t.Fatal(err)
	}
	if back != 270 || commission != 30 || !strings.Contains(reason, "split again under rules.csv:2") {
		t.Errorf("clawback of RB: seller %d, commission %d (%s); want 270 and 30, split again under the kept rules.csv:2", back, commission, reason)
	}
}
