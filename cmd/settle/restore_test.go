package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/seed"
)

// These tests restore the ledger (settle's schema) from a backup taken at
// some point of a night's run, while the providers keep everything the
// run did after it: the restored ledger no longer knows what was sent
// since. Settling the date again must neither pay twice nor lose a
// payment, and must not end 0 while the ledger and the providers disagree.

// backupLedger dumps settle's schema as pg_dump would for an operator's
// backup, and returns the dump's path.
func (e *env) backupLedger(name string) string {
	e.t.Helper()
	for _, tool := range []string{"pg_dump", "pg_restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
				e.t.Fatalf("CI=true: %s is not installed (PostgreSQL's client, installed by scripts/test-deps.sh): %v", tool, err)
			}
			e.t.Skipf("SKIPPED, %s is not installed: %v", tool, err)
		}
	}
	file := filepath.Join(e.t.TempDir(), name+".dump")
	if out, err := exec.Command("pg_dump", "--format=custom", "--schema=settle", "--file", file, e.url).CombinedOutput(); err != nil {
		e.t.Fatalf("pg_dump: %v\n%s", err, out)
	}
	return file
}

// restoreLedger replaces settle's schema by the dump's.
func (e *env) restoreLedger(file string) {
	e.t.Helper()
	if _, err := e.db.Exec(`DROP SCHEMA settle CASCADE`); err != nil {
		e.t.Fatal(err)
	}
	if out, err := exec.Command("pg_restore", "--dbname", e.url, file).CombinedOutput(); err != nil {
		e.t.Fatalf("pg_restore: %v\n%s", err, out)
	}
}

// TestARestoredLedgerSettlesTheDateAgainWithoutPayingTwice: the ledger
// is restored from a backup taken before the date's run, after its
// transform, after its uploads, or after it finished; the run had paid
// every revenue share. Run again, the date pays nothing new and records
// every share paid: Infinia's platform balance and the sellers' available
// shares no longer hold what the shares paid, and the requestNos the
// restored ledger plans again are the ones Infinia paid (before, every
// share was carried as Infinia's available share was short, for a
// person, while Infinia had paid it).
func TestARestoredLedgerSettlesTheDateAgainWithoutPayingTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("restore test")
	}
	t.Parallel()
	for _, point := range []string{"before", "transform", "upload", "finished"} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.mustSettle("seed", "--date", testDate, "--orders", "200", "--sellers", "8", "--seed", "8")
			const balance = 1_000_000_000_00
			sim := e.sim(nil, 8, nil, balance)
			var backup string
			switch point {
			case "before":
				e.mustSettle("migrate")
				backup = e.backupLedger(point)
			case "transform", "upload":
				if out, code := e.runInfinia(sim, "--until", point); code != 0 {
					t.Fatalf("run until %s: exit %d\n%s", point, code, out)
				}
				backup = e.backupLedger(point)
			}
			out, code := e.runInfinia(sim)
			if code != 0 {
				t.Fatalf("first run: exit %d\n%s", code, out)
			}
			if point == "finished" {
				backup = e.backupLedger(point)
			}
			shares := len(sim.Infinia.RevenueShares())
			e.restoreLedger(backup)
			again, code := e.runInfinia(sim)
			if code != 0 {
				t.Fatalf("run after the restore: exit %d\nfirst:\n%s\nagain:\n%s", code, out, again)
			}
			e.checkPaidOnce(sim, balance)
			e.checkFilesWhole(sim)
			if n := len(sim.Infinia.RevenueShares()); n != shares {
				t.Errorf("%d revenue shares at Infinia after the re-run, %d before", n, shares)
			}
			third, code := e.runInfinia(sim)
			if code != 0 || !strings.Contains(third, "0 new money movements") {
				t.Fatalf("third run: exit %d, want 0 moving nothing:\n%s", code, third)
			}
		})
	}
}

// TestARestoredLedgerSettlesWeChatTransactionsOnce: the ledger is
// restored from a backup taken before the date's run, or after its
// uploads (its WeChat requests planned, none sent), while WeChat Pay
// settled every transaction of the date since. Run again, the date sends
// each transaction's request again under its out_order_no (WeChat Pay
// answers the order it holds) and records it settled. Before, the
// restored ledger found WeChat holding nothing of each transaction and
// held all of them for a person ("WeChat holds 0.00 CNY, the order says
// ..."), while WeChat Pay had settled them.
func TestARestoredLedgerSettlesWeChatTransactionsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("restore test")
	}
	t.Parallel()
	for _, point := range []string{"before", "upload"} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.mustSettle("seed", "--date", testDate, "--orders", "120", "--sellers", "4", "--seed", "14")
			sim := e.weChatSim(nil, 0)
			var backup string
			if point == "before" {
				e.mustSettle("migrate")
				backup = e.backupLedger(point)
			} else {
				if out, code := e.runWeChat(sim, "--until", point); code != 0 {
					t.Fatalf("run until %s: exit %d\n%s", point, code, out)
				}
				backup = e.backupLedger(point)
			}
			out, first := e.runWeChat(sim)
			capped := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay' AND reason LIKE 'held: commission % above WeChat''s cap%'`)
			if first != 0 && !(first == 4 && capped > 0) {
				t.Fatalf("first run: exit %d\n%s", first, out)
			}
			paid := e.checkWeChatOnce(sim)
			e.restoreLedger(backup)
			again, code := e.runWeChat(sim)
			if code != first {
				t.Fatalf("run after the restore: exit %d, want %d\nfirst:\n%s\nagain:\n%s", code, first, out, again)
			}
			if n := e.checkWeChatOnce(sim); n != paid {
				t.Fatalf("%d transactions settled after the restore, %d before:\n%s", n, paid, again)
			}
		})
	}
}

// TestARestoredLedgerThatComputesOtherAmountsPaysNothingMore: the ledger
// is restored from a backup taken before the date's run, and the date is
// run again under rules changed since: every revenue share is planned
// again under the requestNo Infinia paid, for another amount. Nothing
// more is paid, and the run does not end 0.
func TestARestoredLedgerThatComputesOtherAmountsPaysNothingMore(t *testing.T) {
	if testing.Short() {
		t.Skip("restore test")
	}
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "200", "--sellers", "8", "--seed", "8")
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 8, nil, balance)
	e.mustSettle("migrate")
	backup := e.backupLedger("before")
	if out, code := e.runInfinia(sim); code != 0 {
		t.Fatalf("first run: exit %d\n%s", code, out)
	}
	shares := sim.Infinia.RevenueShares()
	e.restoreLedger(backup)
	rules := strings.Replace(string(demoRules), ",,,500,,,,2020-01-01", ",,,900,,,,2020-01-01", 1)
	if err := os.WriteFile(e.rules, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	again, code := e.runInfinia(sim)
	t.Logf("after the restore, other rules: exit %d\n%s", code, again)
	if code == 0 {
		t.Errorf("the run after the restore ended 0 while Infinia paid other amounts under its requestNos")
	}
	if n := len(sim.Infinia.RevenueShares()); n != len(shares) {
		t.Errorf("%d revenue shares at Infinia after the re-run, %d before", n, len(shares))
	}
	for _, cur := range demoCurrencies {
		var paid int64
		for _, s := range shares {
			if s.Currency == cur && s.Status != "FAILED" {
				paid += s.Amount
			}
		}
		if got := balance - sim.Infinia.Balance(cur); got != paid {
			t.Errorf("%s: the balance fell by %d, the first run paid %d", cur, got, paid)
		}
	}
	third, code := e.runInfinia(sim)
	t.Logf("third: exit %d\n%s", code, third)
	if code == 0 {
		t.Errorf("the third run ended 0")
	}
}

// TestARestoredLedgerRunOutOfOrderPaysNothingMore: the ledger is restored
// from a backup taken after the first of three days, whose carried
// balances the second day paid; the third day is then run before the
// second (a nightly run before the backfill). Nothing more is paid, and
// neither run ends 0 while the ledger and Infinia disagree; run again in
// their order, the days settle as they did.
func TestARestoredLedgerRunOutOfOrderPaysNothingMore(t *testing.T) {
	if testing.Short() {
		t.Skip("restore test")
	}
	t.Parallel()
	e := newEnv(t)
	sim := e.scenario()
	if out, code := e.runDay(sim, scenarioDays[0]); code != 0 {
		t.Fatalf("%s: exit %d\n%s", scenarioDays[0], code, out)
	}
	backup := e.backupLedger("day1")
	sim.Infinia.SetBinding(seed.InfiniaID(2), "ACTIVE") // S2 binds on day two
	for _, day := range scenarioDays[1:] {
		if out, code := e.runDay(sim, day); code != 0 {
			t.Fatalf("%s: exit %d\n%s", day, code, out)
		}
	}
	shares := sim.Infinia.RevenueShares()
	spent := 1_000_000_00 - sim.Infinia.Balance("USD")
	e.restoreLedger(backup)
	for i, day := range []string{scenarioDays[2], scenarioDays[1], scenarioDays[2]} {
		out, code := e.runDay(sim, day)
		t.Logf("after the restore, %s: exit %d\n%s", day, code, out)
		if code == 0 && i == 0 {
			t.Errorf("%s run before %s after the restore ended 0", day, scenarioDays[1])
		}
		if got := 1_000_000_00 - sim.Infinia.Balance("USD"); got != spent {
			t.Fatalf("after %s: the balance fell by %d, by %d before the restore", day, got, spent)
		}
	}
	if n := len(sim.Infinia.RevenueShares()); n != len(shares) {
		t.Errorf("%d revenue shares at Infinia, %d before the restore", n, len(shares))
	}
}

// TestARestoredLedgerWithAPaymentVerifiedSincePaysNothingMore: the ledger
// is restored to its state after transform; since then, the date's run
// uploaded its trade files and paid its revenue shares, and a Pay
// Protocol payment held then was paid and went out in a further trade
// file of the date. The restored ledger verifies that payment at once:
// the first trade file of its seller and currency is not the one Infinia
// holds under the same requestNo. It is uploaded again all the same (the
// ledger cannot know Infinia holds another), and the simulated Infinia
// refuses it as a duplicate requestNo: a known limit (README, "The ledger
// restored from a backup"). What this test holds to: nothing more is
// paid, and no run ends 0.
func TestARestoredLedgerWithAPaymentVerifiedSincePaysNothingMore(t *testing.T) {
	if testing.Short() {
		t.Skip("restore test")
	}
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "300", "--sellers", "10", "--seed", "8")
	const balance = 1_000_000_000_00
	sim := e.payProtocolSim(nil, 10, balance)
	if out, code := e.runInfinia(sim, "--until", "transform"); code != 0 {
		t.Fatalf("run until transform: exit %d\n%s", code, out)
	}
	backup := e.backupLedger("transform")
	if out, code := e.runInfinia(sim); code != 4 {
		t.Fatalf("first run: exit %d, want 4 (payments held)\n%s", code, out)
	}
	var txn string
	if err := e.db.Get(&txn, `SELECT provider_txn_id FROM settle.items WHERE channel = 'payprotocol' AND state = 'held'
		AND reason LIKE 'held: Pay Protocol payment is%' AND refunded_minor = 0 ORDER BY order_no LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	if err := sim.PayProtocol.SetPaymentStatus(txn, payprotocol.PaymentPaid); err != nil {
		t.Fatal(err)
	}
	if out, code := e.runInfinia(sim); code != 4 {
		t.Fatalf("second run: exit %d, want 4\n%s", code, out)
	}
	shares := len(sim.Infinia.RevenueShares())
	spent := map[pipeline.Currency]int64{}
	for _, cur := range demoCurrencies {
		spent[cur] = balance - sim.Infinia.Balance(cur)
	}
	e.restoreLedger(backup)
	for i := range 2 {
		out, code := e.runInfinia(sim)
		if code != 4 {
			t.Errorf("run %d after the restore: exit %d, want 4\n%s", i+1, code, out)
		}
	}
	if n := len(sim.Infinia.RevenueShares()); n != shares {
		t.Errorf("%d revenue shares at Infinia after the restore, %d before", n, shares)
	}
	for _, cur := range demoCurrencies {
		if got := balance - sim.Infinia.Balance(cur); got != spent[cur] {
			t.Errorf("%s: the balance fell by %d, by %d before the restore", cur, got, spent[cur])
		}
	}
}

// TestARestoredLedgerFindsTheShareInfiniaPaidOnItsSecondAttempt: Infinia
// failed a seller's revenue share (attempt 1), and the date's next run
// paid it under the share's second requestNo; the ledger is then restored
// from a backup taken before the date's first run. Run again, the restored
// ledger plans attempt 1 again, which Infinia holds FAILED, while the
// seller's available share went to attempt 2: nothing more is paid, and
// the date's runs come to end 0 with the share recorded paid under attempt
// 2's requestNo, as Infinia paid it.
func TestARestoredLedgerFindsTheShareInfiniaPaidOnItsSecondAttempt(t *testing.T) {
	if testing.Short() {
		t.Skip("restore test")
	}
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "120", "--sellers", "4", "--seed", "8")
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 4, nil, balance)
	e.mustSettle("migrate")
	backup := e.backupLedger("before")
	failing := seed.InfiniaID(3)
	sim.Infinia.FailSharesOf(failing, "account frozen")
	if out, code := e.runInfinia(sim); code != 4 {
		t.Fatalf("first run: exit %d, want 4 (a revenue share failed)\n%s", code, out)
	}
	sim.Infinia.FailSharesOf(failing, "")
	out, code := e.runInfinia(sim)
	if code != 0 {
		t.Fatalf("second run: exit %d, want 0\n%s", code, out)
	}
	shares := len(sim.Infinia.RevenueShares())
	e.restoreLedger(backup)
	var runs []string
	for i := range 4 {
		out, code = e.runInfinia(sim)
		runs = append(runs, fmt.Sprintf("run %d after the restore: exit %d\n%s", i+1, code, out))
		if n := len(sim.Infinia.RevenueShares()); n != shares {
			t.Fatalf("%d revenue shares at Infinia after run %d after the restore, %d before:\n%s", n, i+1, shares, strings.Join(runs, "\n"))
		}
		if code == 0 {
			break
		}
	}
	if code != 0 {
		t.Fatalf("the date never ended 0 after the restore:\n%s", strings.Join(runs, "\n"))
	}
	t.Logf("%d runs after the restore", len(runs))
	e.checkPaidOnce(sim, balance)
}
