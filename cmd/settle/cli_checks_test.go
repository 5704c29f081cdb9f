package main

// Checks of the command line as an operator meets it, each a defect a
// review found: secrets in errors, values that silently switch a guard off,
// a flag a subcommand ignored, metrics that kept the last night's word.

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/settlekit/settle/internal/paysim"
)

// unreachableDB names a server nobody listens on: the commands below must
// stop before they would connect to it.
const unreachableDB = "postgres://settle@127.0.0.1:1/nowhere?sslmode=disable"

// validRules writes a valid rules file and returns its path.
func validRules(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rules.csv")
	if err := os.WriteFile(p, demoRules, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDatabasePasswordNeverInErrors: a platform database URL that
// does not parse (a password with a stray '%', a port typo) must not be
// printed with its password; and it is a configuration error (exit 2),
// not "failed, retry is safe" (exit 1). openDB hands the URL to lib/pq,
// whose url.Parse error quotes the whole URL.
func TestDatabasePasswordNeverInErrors(t *testing.T) {
	t.Parallel()
	const secret = "S3cretPw"
	rules := validRules(t)
	cases := []struct {
		name string
		args []string
	}{
		{"run --dry-run, bad port in the source URL", []string{"run", "--date", "2026-11-23", "--rules", rules, "--dry-run", skipAll,
			"--database-url", unreachableDB, "--source-database-url", "postgres://reader:" + secret + "@127.0.0.1:abc/platform?sslmode=disable"}},
		{"run --dry-run, bad escape in the source URL", []string{"run", "--date", "2026-11-23", "--rules", rules, "--dry-run", skipAll,
			"--database-url", unreachableDB, "--source-database-url", "postgres://reader:" + secret + "%zz@127.0.0.1:5432/platform?sslmode=disable"}},
		{"seed, bad port", []string{"seed", "--date", "2026-11-23", "--database-url", "postgres://settle:" + secret + "@127.0.0.1:abc/platform?sslmode=disable"}},
	}
	for _, tc := range cases {
		stdout, stderr, code := invoke(nil, tc.args...)
		all := stdout + stderr
		if strings.Contains(all, secret) {
			t.Errorf("%s: the password is printed:\n%s", tc.name, all)
		}
		if code != 2 {
			t.Errorf("%s: exit %d, want 2 (a URL that does not parse is configuration):\n%s", tc.name, code, all)
		}
	}
}

// TestEmptyTimeZoneIsRefused: --tz "" (or SETTLE_TZ set to an empty
// string by a template) is time.LoadLocation(""), UTC: the run settles
// [D 00:00Z, D+1 00:00Z) and records "UTC" as the date's zone, silently.
// After nights in Asia/Shanghai the first UTC date leaves 8 hours of
// orders in no window at all. "Local" is the machine's zone, as bad.
func TestEmptyTimeZoneIsRefused(t *testing.T) {
	t.Parallel()
	rules := validRules(t)
	for _, tz := range []string{"", "Local"} {
		stdout, stderr, code := invoke(nil, "run", "--date", "2026-11-23", "--rules", rules, "--dry-run", skipAll,
			"--database-url", unreachableDB, "--tz", tz)
		all := stdout + stderr
		if code != 2 || !strings.Contains(all, "--tz") {
			t.Errorf("--tz %q: exit %d, want 2 naming --tz:\n%s", tz, code, all)
		}
	}
}

// TestNaNRejectRatioIsRefused: --max-reject-ratio NaN passes the
// check "ratio < 0 || ratio > 1" (every comparison with NaN is false), and
// the gate's "rejected > ratio x read" is then never true: a day with a
// fifth of its rows rejected goes on to send money.
func TestNaNRejectRatioIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(100, 20)
	out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, "--until", "transform", "--max-reject-ratio", "NaN")
	if code != 2 && code != 3 {
		t.Fatalf("--max-reject-ratio NaN: exit %d, want 2 (refused) or 3 (gated), as with the default 0.05:\n%s", code, out)
	}
}

// TestNegativeRatesAreRefused: a negative --provider-rate is taken
// as "no limit" (newInfinia, newPayProtocol and pacer make a limiter only
// for a rate > 0), so a typo lifts Infinia's and Pay Protocol's token
// buckets instead of being refused; so do --wechat-qps and
// --wechat-sub-merchant-qps (newWeChat, pacer: WeChat answers
// FREQUENCY_LIMITED above 300/s and 30/s per sub-merchant).
func TestNegativeRatesAreRefused(t *testing.T) {
	t.Parallel()
	refusedFlags(t, validRules(t), "--provider-rate=-5", "--wechat-qps=-300", "--wechat-sub-merchant-qps=-30")
}

// refusedFlags checks that a dry run given each flag is refused, exit 2,
// naming it, before it connects to anything.
func refusedFlags(t *testing.T, rules string, flags ...string) {
	t.Helper()
	for _, flag := range flags {
		name := strings.SplitN(flag, "=", 2)[0]
		stdout, stderr, code := invoke(nil, "run", "--date", "2026-11-23", "--rules", rules, "--dry-run", skipAll,
			"--database-url", unreachableDB, flag)
		all := stdout + stderr
		if code != 2 || !strings.Contains(all, name) {
			t.Errorf("%s: exit %d, want 2 naming %s:\n%s", flag, code, name, all)
		}
	}
}

// TestMetricsFileOfARunThatFailedBeforeTheLedger: the README says
// the textfile gets the invocation's exit code when it "failed before any
// run opened". A rules file the nightly job cannot read (exit 2) fails
// before the ledger is opened, and metricsSink.flush returns at once when
// there is no ledger: the textfile keeps the previous night's
// settle_exit_code 0.
func TestMetricsFileOfARunThatFailedBeforeTheLedger(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	file := filepath.Join(t.TempDir(), "settle.prom")
	out, code := e.settle("run", "--date", testDate, "--rules", filepath.Join(t.TempDir(), "missing.csv"), "--out", e.reports, "--metrics-file", file, skipAll)
	if code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("no metrics file for a run that failed with exit 2: %v", err)
	}
	if !strings.Contains(string(b), "settle_exit_code 2\n") {
		t.Errorf("metrics file lacks settle_exit_code 2:\n%s", b)
	}
}

// TestSellersBindReadsTheSellersQuery: "settle run" reads the
// platform's sellers with --sellers-query (SETTLE_SELLERS_QUERY), for a
// platform with its own schema; "settle sellers bind" reads the same
// sellers but defines no such flag, so c.String(flagSellersQuery) is ""
// and it always runs the built-in query on the reference schema
// (SETTLE_SELLERS_QUERY in the job's environment is ignored).
func TestSellersBindReadsTheSellersQuery(t *testing.T) {
	t.Parallel()
	q := filepath.Join(t.TempDir(), "sellers.sql")
	if err := os.WriteFile(q, []byte("SELECT 1"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, _ := invoke(nil, "sellers", "bind", "--database-url", unreachableDB, "--sellers-query", q, "--store-url", "https://s.example", "S1")
	if all := stdout + stderr; strings.Contains(all, "flag provided but not defined") {
		t.Errorf("sellers bind has no --sellers-query (nor SETTLE_SELLERS_QUERY):\n%s", all)
	}
}

// A ledger a newer settle migrated: a real run is refused (exit 2); its
// dry run says so, rather than which runs a real run would resume (found
// by an operator's walkthrough: it read as if the run would go on).
func TestADryRunOnANewerLedgerSaysTheRunIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "10", "--sellers", "2")
	e.mustSettle("migrate")
	if _, err := e.db.Exec(`INSERT INTO settle.goose_db_version (version_id, is_applied) VALUES (9999, true)`); err != nil {
		t.Fatal(err)
	}
	if out, code := e.settle("run", "--date", testDate, "--rules", e.rules, skipAll); code != 2 || !strings.Contains(out, "newer than this settle knows") {
		t.Fatalf("a run on a newer ledger: exit %d\n%s", code, out)
	}
	out := e.mustSettle("run", "--date", testDate, "--rules", e.rules, skipAll, "--dry-run")
	if !strings.Contains(out, "ledger: a real run is refused") || !strings.Contains(out, "at migration 9999, newer than this settle knows") ||
		strings.Contains(out, "has not been run") {
		t.Fatalf("the dry run on a newer ledger:\n%s", out)
	}
}

// A run that migrates the ledger on its way (no one ran "settle migrate"
// at the deploy) says which migrations it applied and how long they took:
// some hold items for minutes, and the run's log said nothing of it (found
// by a review of the upgrade path). A run on a ledger up to date says
// nothing of migrations.
func TestARunThatMigratesTheLedgerSaysSo(t *testing.T) {
	t.Parallel()
	e := newBareEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "10", "--sellers", "2")
	out := e.mustSettle("run", "--date", testDate, "--rules", e.rules, skipAll, "--until", "extract")
	if !strings.Contains(out, "migrated the ledger") || !strings.Contains(out, "00001_ledger.sql") ||
		!strings.Contains(out, "00023_items_txn_once_required.sql") || !strings.Contains(out, " took=") {
		t.Fatalf("a run that migrated the ledger does not say so:\n%s", out)
	}
	if out := e.mustSettle("run", "--date", testDate, "--rules", e.rules, skipAll, "--until", "extract"); strings.Contains(out, "migrated the ledger") {
		t.Fatalf("a run on a ledger up to date says it migrated it:\n%s", out)
	}
}

// A ledger a newer settle migrated: settle report refuses it as settle run
// does (exit 2, naming both versions), and leaves the date's reports as
// the newer wrote them; it wrote them over with its own code, from rows
// whose newer rules it does not know (found by the review of an upgrade
// rolled back). settle status, which writes nothing, still reads it.
func TestReportOnANewerLedgerIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "10", "--sellers", "2")
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, skipAll, "--out", e.reports)
	orders := filepath.Join(e.reports, testDate, "orders.csv")
	before, err := os.ReadFile(orders)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(orders, append(before, "# the newer settle's\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	e.db.MustExec(`INSERT INTO settle.goose_db_version (version_id, is_applied) VALUES (9999, true)`)
	if out, code := e.settle("report", "--date", testDate, "--out", e.reports); code != 2 || !strings.Contains(out, "is at migration 9999, newer than this settle knows") {
		t.Errorf("settle report on a ledger a newer settle migrated: exit %d\n%s", code, out)
	}
	if after, err := os.ReadFile(orders); err != nil || !strings.HasSuffix(string(after), "# the newer settle's\n") {
		t.Errorf("the date's orders.csv was written over: %v", err)
	}
	e.mustSettle("status", "--date", testDate)
}

// A ledger an older settle left (the new image deployed before "settle
// migrate" ran): status and report, which read it without migrating it,
// say so and what to do, exit 2, rather than fail on a column the older
// ledger lacks ("column other_shard does not exist", exit 1; found by a
// review of the upgrade path); once migrated they read it.
func TestStatusAndReportOnAnOlderLedgerSayToMigrateIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "10", "--sellers", "2")
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, skipAll, "--out", e.reports)
	// Back to migration 19, as its later migrations' down sections undo them.
	for _, q := range []string{
		`ALTER TABLE settle.runs DROP COLUMN accounts`,
		`CREATE INDEX run_sellers_infinia ON settle.run_sellers (infinia_seller_id) WHERE infinia_seller_id <> ''`,
		`DROP INDEX settle.run_sellers_infinia_run`,
		`ALTER TABLE settle.items ALTER COLUMN txn_once SET DEFAULT false`,
		`ALTER TABLE settle.adjustments DROP COLUMN reopened_from`,
		`DROP TABLE settle.resolutions`,
		`DELETE FROM settle.source_rows WHERE other_shard`,
		`ALTER TABLE settle.source_rows DROP COLUMN other_shard`,
		`DELETE FROM settle.goose_db_version WHERE version_id >= 20`,
	} {
		if _, err := e.db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, args := range [][]string{
		{"status", "--date", testDate},
		{"status", "--date", testDate, "-o", "json"},
		{"report", "--date", testDate, "--out", e.reports},
	} {
		if out, code := e.settle(args...); code != 2 || !strings.Contains(out, "is at migration 19, older than this settle") ||
			!strings.Contains(out, `run "settle migrate"`) {
			t.Errorf("settle %s on a ledger at migration 19: exit %d\n%s", strings.Join(args, " "), code, out)
		}
	}
	e.mustSettle("migrate")
	e.mustSettle("status", "--date", testDate)
	e.mustSettle("report", "--date", testDate, "--out", e.reports)
}

// A dry run checks the ledger's configuration as a real run does: a
// --schema that is no identifier was "ledger: not reachable", exit 0,
// while the real run is refused, exit 2 (found by an operator's review).
func TestADryRunRefusesTheLedgersConfigurationAsARunDoes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "10", "--sellers", "2")
	for _, dry := range []bool{false, true} {
		args := []string{"run", "--date", testDate, "--rules", e.rules, skipAll, "--schema", "Not An-Identifier"}
		if dry {
			args = append(args, "--dry-run")
		}
		if out, code := e.settle(args...); code != 2 || !strings.Contains(out, "want a lower-case SQL identifier") {
			t.Errorf("dry run %v with a bad --schema: exit %d, want 2 naming it\n%s", dry, code, out)
		}
	}
}

// TestDatabaseURLAndItsFileTogetherAreRefused: a URL and a file naming
// one (--database-url and --database-url-file, or their variables) were
// both accepted and the URL won, the file silently ignored: an operator
// who gave --database-url-file of the production secret in a shell that
// exports SETTLE_DATABASE_URL of another database ran on that other one
// (found by an operator's review). Both set is configuration, exit 2,
// naming both; nothing is connected to.
func TestDatabaseURLAndItsFileTogetherAreRefused(t *testing.T) {
	t.Parallel()
	rules := validRules(t)
	file := filepath.Join(t.TempDir(), "database-url")
	if err := os.WriteFile(file, []byte(unreachableDB+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ url, fileFlag string }{
		{"--database-url", "--database-url-file"},
		{"--source-database-url", "--source-database-url-file"},
	} {
		cmds := [][]string{{"run", "--date", "2026-11-23", "--rules", rules, "--dry-run", skipAll}}
		if tc.url == "--database-url" {
			cmds = append(cmds, []string{"status", "--date", "2026-11-23"}) // reads the ledger alone
		}
		for _, args := range cmds {
			args = append(args, "--database-url", unreachableDB, tc.url, unreachableDB, tc.fileFlag, file)
			stdout, stderr, code := invoke(nil, args...)
			all := stdout + stderr
			if code != 2 || !strings.Contains(all, tc.fileFlag) || !strings.Contains(all, tc.url+" (") {
				t.Errorf("%s: exit %d, want 2 naming %s and %s:\n%s", strings.Join(args, " "), code, tc.fileFlag, tc.url, all)
			}
		}
	}
}

// TestWaitsAndTheWeChatCapThatMeanNothingAreRefused: --provider-wait,
// --provider-poll and --infinia-lost-after of 0 or less were put back to
// their defaults by the stages, silently (SETTLE_PROVIDER_WAIT=0 waited
// ten minutes; settle resolve --trade-file took a lost-after of 0 as
// given), a negative --provider-first-poll or --parallel was taken as 0,
// and --wechat-max-ratio-bps 0 or less became 3000 while one above 10000
// capped nothing (found by an operator's review); a --wechat-max-fee-bps
// below 0 or of the whole amount means no fee. Each is configuration,
// exit 2, naming the flag. So is a --infinia-query-memory not above
// --infinia-lost-after, or a --wechat-query-memory not above 24h: a
// refused repeat is failed once the provider has not known it that long,
// which it must still remember then.
func TestWaitsAndTheWeChatCapThatMeanNothingAreRefused(t *testing.T) {
	t.Parallel()
	rules := validRules(t)
	refusedFlags(t, rules, "--provider-wait=0", "--provider-wait=-1m", "--provider-poll=0", "--provider-poll=-1s",
		"--infinia-lost-after=0", "--infinia-lost-after=-1h", "--provider-first-poll=-1s", "--parallel=-3",
		"--wechat-max-ratio-bps=0", "--wechat-max-ratio-bps=-1", "--wechat-max-ratio-bps=10001",
		"--wechat-max-fee-bps=-1", "--wechat-max-fee-bps=10000",
		"--infinia-query-memory=24h", "--infinia-query-memory=1h", "--wechat-query-memory=24h", "--wechat-query-memory=0")
	for _, args := range [][]string{
		{"resolve", "--date", "2026-11-23", "--trade-file", "F.csv", "--note", "n", "--infinia-lost-after=0"},
		{"sellers", "sync", "--provider-poll=0"},
	} {
		stdout, stderr, code := invoke(nil, append(args, "--database-url", unreachableDB)...)
		if all := stdout + stderr; code != 2 || !strings.Contains(all, "--infinia-lost-after") && !strings.Contains(all, "--provider-poll") {
			t.Errorf("%s: exit %d, want 2 naming the flag:\n%s", strings.Join(args, " "), code, all)
		}
	}
	for _, flag := range []string{"--provider-first-poll=0", "--parallel=0", "--wechat-max-ratio-bps=10000", "--provider-wait=1s", "--wechat-max-fee-bps=100",
		"--infinia-query-memory=2160h", "--wechat-query-memory=25h"} {
		stdout, stderr, code := invoke(nil, "run", "--date", "2026-11-23", "--rules", rules, "--dry-run", skipAll,
			"--database-url", unreachableDB, flag)
		if all := stdout + stderr; code == 2 {
			t.Errorf("%s: refused, want it taken:\n%s", flag, all)
		}
	}
}

// TestSeedRefusesAPlatformsDatabase: settle seed reads
// SETTLE_DATABASE_URL, which a production shell or pod exports, and
// wrote synthetic orders among a platform's own for the next run of their
// date to settle (found by an operator's review). A database holding an
// order no seeding wrote is refused, exit 2, naming it, and nothing is
// written; --allow-other-orders seeds a trial's database all the same.
func TestSeedRefusesAPlatformsDatabase(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "20", "--sellers", "2")
	e.mustSettle("seed", "--date", testDate, "--orders", "30", "--sellers", "2") // seeded again: its own orders
	e.db.MustExec(`INSERT INTO orders SELECT 'ORD-REAL-1', seller_id, provider, provider_txn_id, currency, amount_minor, category,
		buyer_country, paid_at, confirmed_at FROM orders WHERE order_no = 'O20261123-00000001'`)
	before := e.count(`SELECT count(*) FROM orders`)
	out, code := e.settle("seed", "--date", "2026-11-24", "--orders", "20", "--sellers", "2")
	if code != 2 || !strings.Contains(out, `"ORD-REAL-1"`) || !strings.Contains(out, "--allow-other-orders") {
		t.Fatalf("seed beside a platform's order: exit %d, want 2 naming it\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM orders`); n != before {
		t.Fatalf("%d orders after the refused seeding, want %d", n, before)
	}
	e.mustSettle("seed", "--date", "2026-11-24", "--orders", "20", "--sellers", "2", "--allow-other-orders")
	if n := e.count(`SELECT count(*) FROM orders WHERE order_no LIKE 'O20261124-%'`); n < 20 {
		t.Fatalf("%d orders of 2026-11-24 seeded with --allow-other-orders, want 20 or more", n)
	}
}

// TestAReportsOrWorkDirectoryThatCannotBeWrittenIsRefusedFirst: an --out
// that could not be written failed the reconcile stage, exit 1 ("retry is
// safe"), after the day's money had moved, and failed every retry the
// same way (found by an operator's review). It is configuration, exit 2
// naming the flag, before the ledger is opened; so is Infinia's
// --work-dir.
func TestAReportsOrWorkDirectoryThatCannotBeWrittenIsRefusedFirst(t *testing.T) {
	t.Parallel()
	rules := validRules(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(extra ...string) (string, int) {
		stdout, stderr, code := invoke(nil, append([]string{"run", "--date", "2026-11-23", "--rules", rules,
			"--database-url", unreachableDB}, extra...)...)
		return stdout + stderr, code
	}
	if out, code := run(skipAll, "--out", filepath.Join(file, "reports")); code != 2 || !strings.Contains(out, "--out") {
		t.Errorf("--out under a file: exit %d, want 2 naming --out\n%s", code, out)
	}
	if out, code := run(skipAll, "--out", filepath.Join(dir, "reports")); code == 2 || strings.Contains(out, "--out") {
		t.Errorf("--out that can be written: exit %d, want it taken (the database is what fails)\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "reports")); err != nil {
		t.Errorf("the reports directory was not made: %v", err)
	}
	sim, err := paysim.Start(paysim.Options{Dir: t.TempDir(), ShareKeys: true, KeyBits: testKeyBits})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	infinia := append(sim.Config.Args(), "--out", filepath.Join(dir, "reports"), "--work-dir", filepath.Join(file, "work"))
	if out, code := run(infinia...); code != 2 || !strings.Contains(out, "--work-dir") {
		t.Errorf("--work-dir under a file: exit %d, want 2 naming --work-dir\n%s", code, out)
	}
	// The date's own work directory, where its trade files are built, a
	// file (one made as another user alike): it passed, and the upload
	// stage failed there, exit 1, on every retry.
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "2026-11-23"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	infinia = append(sim.Config.Args(), "--out", filepath.Join(dir, "reports"), "--work-dir", work)
	if out, code := run(infinia...); code != 2 || !strings.Contains(out, "--work-dir: "+filepath.Join(work, "2026-11-23")) {
		t.Errorf("the date's work directory a file: exit %d, want 2 naming --work-dir and it\n%s", code, out)
	}
}

// TestADirectoryThatFailsAMomentIsNoConfiguration: a reports or work
// directory that could not be made or written was configuration (exit 2,
// the Job failed for good) whatever the failure, an I/O error of the
// volume or a network file system's server gone a moment among them. Those
// are failures to retry (exit 1); what says the directory cannot be
// written (no permission, read-only, a file in its path, no space) stays
// exit 2, naming the flag.
func TestADirectoryThatFailsAMomentIsNoConfiguration(t *testing.T) {
	t.Parallel()
	for errno, want := range map[syscall.Errno]int{
		syscall.EIO: 1, syscall.ESTALE: 1, syscall.ETIMEDOUT: 1, syscall.EINTR: 1,
		syscall.EACCES: 2, syscall.EPERM: 2, syscall.EROFS: 2, syscall.ENOTDIR: 2, syscall.ENOSPC: 2,
	} {
		err := dirError(flagOut, "/var/settle/reports", &os.PathError{Op: "mkdir", Path: "/var/settle/reports", Err: errno})
		if codeOf(err) != want || !strings.Contains(err.Error(), "--"+flagOut) {
			t.Errorf("%v: %v, exit %d; want %d naming --%s", errno, err, codeOf(err), want, flagOut)
		}
	}
}

// TestPlainTextToAnotherMachineIsRefused: a database URL of sslmode
// disable (or allow, prefer) to another machine carried the password,
// the platform's orders and the ledger in plain text, and settle took it.
// It is refused (exit 2, one line naming the flag, the mode, the host and
// the way out) unless --database-allow-plaintext; this machine's
// (127.0.0.1, the tests' and the demo's) is taken as before.
func TestPlainTextToAnotherMachineIsRefused(t *testing.T) {
	t.Parallel()
	rules := validRules(t)
	const secret = "S3cretPw"
	remote := "postgres://settle:" + secret + "@0.0.0.0:1/platform?sslmode=disable"
	for _, tc := range []struct {
		name, flag string
		args       []string
	}{
		{"run, ledger", "--database-url", []string{"run", "--date", "2026-11-23", "--rules", rules, "--dry-run", skipAll, "--database-url", remote}},
		{"run, platform", "--source-database-url", []string{"run", "--date", "2026-11-23", "--rules", rules, "--dry-run", skipAll,
			"--database-url", unreachableDB, "--source-database-url", strings.Replace(remote, "disable", "prefer", 1)}},
		{"migrate", "--database-url", []string{"migrate", "--database-url", remote}},
		{"status", "--database-url", []string{"status", "--date", "2026-11-23", "--database-url", remote}},
	} {
		stdout, stderr, code := invoke(nil, tc.args...)
		all := stdout + stderr
		want := tc.flag + ": sslmode="
		if code != 2 || !strings.Contains(all, want) || !strings.Contains(all, "0.0.0.0") || !strings.Contains(all, "--database-allow-plaintext (SETTLE_DATABASE_ALLOW_PLAINTEXT)") || strings.Contains(all, secret) {
			t.Errorf("%s: exit %d, want 2 with %q, the host and the way out, without the password:\n%s", tc.name, code, want, all)
		}
		// Allowed: settle goes on to connect (nobody listens there).
		if stdout, stderr, _ := invoke(nil, append(tc.args, "--database-allow-plaintext")...); strings.Contains(stdout+stderr, "plain text") {
			t.Errorf("%s with --database-allow-plaintext: still refused:\n%s", tc.name, stdout+stderr)
		}
	}
}

// TestTheDemoRefusesPlainTextBeforeItSeeds: settle demo --database-url
// to another machine in plain text seeded the platform's tables there
// first, then its ledger was refused, exit 2, naming a flag
// (--database-allow-plaintext, and its environment variable) that the
// demo had not. The demo checks its URL before it writes anything, names
// its own flag (it reads no environment), and takes it.
func TestTheDemoRefusesPlainTextBeforeItSeeds(t *testing.T) {
	t.Parallel()
	remote := "postgres://settle@0.0.0.0:1/platform?sslmode=disable"
	stdout, stderr, code := invoke(nil, "demo", "--database-url", remote)
	all := stdout + stderr
	if code != 2 || !strings.Contains(all, "--database-url: sslmode=disable to 0.0.0.0") || !strings.Contains(all, "or --database-allow-plaintext on a network you trust") {
		t.Errorf("demo to another machine in plain text: exit %d, want 2 naming the URL's mode and the demo's way out:\n%s", code, all)
	}
	stdout, stderr, code = invoke(nil, "demo", "--database-url", remote, "--database-allow-plaintext")
	if all := stdout + stderr; code == 2 || strings.Contains(all, "plain text") {
		t.Errorf("demo with --database-allow-plaintext: exit %d, want it to go on (to a server nobody runs):\n%s", code, all)
	}
}

// TestARunWarnsOfADatabaseItCannotVerify: sslmode=require to another
// machine is taken (encrypted), with a warning naming the flag and the
// host that nothing checks the server is that host (found by a security
// review); to this machine, nothing is said.
func TestARunWarnsOfADatabaseItCannotVerify(t *testing.T) {
	t.Parallel()
	const warning = "sslmode=require encrypts but does not check that the server is db.invalid"
	stdout, stderr, _ := invoke(nil, "run", "--date", "2026-11-23", "--rules", validRules(t), "--skip-channel", "infiniapay,wechatpay,payprotocol",
		"--database-url", "postgres://settle@db.invalid:5432/ledger?sslmode=require")
	if out := stdout + stderr; !strings.Contains(out, warning) || !strings.Contains(out, "--database-url") {
		t.Errorf("want the warning naming --database-url and db.invalid:\n%s", out)
	}
	stdout, stderr, _ = invoke(nil, "run", "--date", "2026-11-23", "--rules", validRules(t), "--skip-channel", "infiniapay,wechatpay,payprotocol",
		"--database-url", "postgres://settle@127.0.0.1:1/ledger?sslmode=require")
	if out := stdout + stderr; strings.Contains(out, "sslmode=require encrypts") {
		t.Errorf("warned of a database on this machine:\n%s", out)
	}
}
