package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/load"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

func TestMain(m *testing.M) {
	pgtest.Main(m)
	// The binary the process tests built (binary): each run of the
	// package left one in the temporary directory (found by a flake hunt).
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
}

const testDate = "2026-11-23"

// faultSeedEnv shifts the seeds of the fault matrices (their data and
// their faults), to try them on other seeds and to replay a failure: a
// failing scenario logs the seed it ran with (found useful by a flake
// hunt, which had to patch the tests to vary them).
const faultSeedEnv = "SETTLE_TEST_FAULT_SEED_OFFSET"

// faultSeed is scenario n's seed: n shifted by faultSeedEnv, logged when
// shifted.
func faultSeed(t *testing.T, n int) int {
	t.Helper()
	v := os.Getenv(faultSeedEnv)
	if v == "" {
		return n
	}
	off, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: want an integer", faultSeedEnv, v)
	}
	t.Logf("seed %d (%s=%d)", n+off, faultSeedEnv, off)
	return n + off
}

// skipAll says that no provider is configured on purpose: without it, a run
// with orders and no provider ends with exit 4 (work left undone).
const skipAll = "--skip-channel=infiniapay,wechatpay,payprotocol"

// env is one test's database, reports directory and rules file.
type env struct {
	t       *testing.T
	url     string
	db      *sqlx.DB
	reports string
	rules   string
	// pastMemory leaves settle run's dates past the providers' memory
	// held as settle holds them (pipeline.DatePastMemory). Unset, every
	// settle run is given --send-past-memory: the tests' dates are fixed
	// (testDate), and the machine's clock moves past their memory (thirty
	// days) while the tests stay the same; the tests of the hold set it.
	pastMemory bool
}

// newEnv is a test's env on a copy of a ledger migrated once per test
// binary (pgtest.Template): a test's own migration cost it about half a
// second of PostgreSQL's time, and goose's parse of every migration a
// sixth of a CPU-second under -race. A test of what migrating does takes
// newBareEnv.
func newEnv(t *testing.T) *env {
	t.Helper()
	return envOn(t, pgtest.URLFrom(t, pgtest.Template(t, "settle-ledger", migrateLedger)))
}

// newSeededEnv is newEnv on a copy of a ledger migrated and seeded once
// per test binary, as seed(orders, bad) seeds it: for the tests that each
// need a large day of their own to start from (150,000 orders took about
// a third of each of three subtests' time to seed). The day is seeded by
// settle as a process (seedByProcess).
func newSeededEnv(t *testing.T, orders, bad int) *env {
	t.Helper()
	key := fmt.Sprintf("settle-ledger-seeded-%d-%d", orders, bad)
	bin := binary(t)
	return envOn(t, pgtest.URLFrom(t, pgtest.Template(t, key, func(url string) error {
		if err := migrateLedger(url); err != nil {
			return err
		}
		return seedByProcess(bin, url, orders, bad)
	})))
}

// seedByProcess seeds the database at url as seed(orders, bad) does, by
// the binary bin (binary) rather than in-process: settle seed's data is
// the same either way, but under the race detector the test binary took
// ten times as long to write a large day (100,000 orders: 16 s in-process,
// 1.6 s as a process).
func seedByProcess(bin, url string, orders, bad int) error {
	cmd := exec.Command(bin, append([]string{"seed"}, seedArgs(orders, bad)...)...)
	cmd.Env = append(os.Environ(), dbEnv(url)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("settle seed: %w\n%s", err, out)
	}
	return nil
}

// newBareEnv is newEnv on a new, empty database: nothing migrated.
func newBareEnv(t *testing.T) *env {
	t.Helper()
	return envOn(t, pgtest.URL(t))
}

// migrateLedger migrates the ledger (schema settle) of the database at
// url, as settle migrate does.
func migrateLedger(url string) error {
	var out, errb bytes.Buffer
	err := run(context.Background(), plainTextArgs([]string{"settle", "migrate", "--database-url", url}), func(string) string { return "" }, &out, &errb)
	if err != nil {
		return fmt.Errorf("settle migrate: %w\n%s%s", err, &out, &errb)
	}
	return nil
}

func envOn(t *testing.T, url string) *env {
	t.Helper()
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.csv")
	if err := os.WriteFile(rules, demoRules, 0o600); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, url: url, db: db, reports: filepath.Join(dir, "reports"), rules: rules}
}

// sendingPastMemory is args, an in-process command line (args[0] the
// program's name), with --send-past-memory added to a settle run's: the
// tests' dates are fixed (testDate), and the machine's clock moves past
// the providers' memory of them (thirty days: from 2026-12-24 for
// testDate), which would hold every new request (pipeline.DatePastMemory).
// Every in-process run of the tests goes through it (env.raw, and the tests
// that call run or runAt themselves), but those of the hold's own tests
// (env.pastMemory).
func sendingPastMemory(args []string) []string {
	if len(args) > 1 && args[1] == "run" && !slices.Contains(args, "--help") && !slices.Contains(args, "--"+flagSendPastMemory) {
		return append(slices.Clip(args), "--"+flagSendPastMemory)
	}
	return args
}

// settle runs the command line in-process with the database flag set, and
// returns its output and exit code.
func (e *env) settle(args ...string) (string, int) {
	e.t.Helper()
	full := append([]string{"settle"}, args...)
	if len(args) > 0 {
		full = append([]string{"settle", args[0], "--database-url", e.url}, args[1:]...)
	}
	return e.raw(full...)
}

// raw runs the command line as given (full[0] is the program name).
func (e *env) raw(full ...string) (string, int) {
	e.t.Helper()
	var out, errb bytes.Buffer
	cfg := func(string) string { return "" }
	if !e.pastMemory {
		full = sendingPastMemory(full)
	}
	err := run(context.Background(), plainTextArgs(full), cfg, &out, &errb)
	code := exitCode(err, &errb)
	return out.String() + errb.String(), code
}

func (e *env) mustSettle(args ...string) string {
	e.t.Helper()
	out, code := e.settle(args...)
	if code != 0 {
		e.t.Fatalf("settle %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

func (e *env) seed(orders, bad int) {
	e.t.Helper()
	e.mustSettle(append([]string{"seed"}, seedArgs(orders, bad)...)...)
}

// seedArgs are the arguments of settle seed after its name that seed
// (and newSeededEnv) give.
func seedArgs(orders, bad int) []string {
	return []string{"--date", testDate, "--orders", fmt.Sprint(orders), "--sellers", "30", "--bad-rows", fmt.Sprint(bad), "--seed", "7"}
}

func (e *env) count(q string, args ...any) int64 {
	e.t.Helper()
	var n int64
	if err := e.db.Get(&n, q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// checkEveryOrderOnce verifies that every order confirmed on the date is
// either one item or rejected, exactly once, and that each item conserves
// its amount.
func (e *env) checkEveryOrderOnce() {
	e.t.Helper()
	window := `o.confirmed_at >= '2026-11-23 00:00:00+08' AND o.confirmed_at < '2026-11-24 00:00:00+08'`
	if n := e.count(`SELECT count(*) FROM orders o WHERE ` + window); n == 0 {
		e.t.Fatal("no orders seeded in the window")
	}
	// Each source row in the window became exactly one item or one reject.
	if n := e.count(`SELECT count(*) FROM orders o WHERE ` + window); n != e.count(`SELECT count(*) FROM settle.items`)+e.count(`SELECT count(*) FROM settle.rejects`) {
		e.t.Fatalf("%d rows in the window, %d items + %d rejects", n, e.count(`SELECT count(*) FROM settle.items`), e.count(`SELECT count(*) FROM settle.rejects`))
	}
	// Every good order is an item: none lost, none doubled.
	missing := e.count(`SELECT count(*) FROM orders o WHERE ` + window + ` AND o.order_no IS NOT NULL
		AND NOT EXISTS (SELECT 1 FROM settle.items i WHERE i.order_no = o.order_no)
		AND NOT EXISTS (SELECT 1 FROM settle.rejects r WHERE r.order_no = o.order_no)`)
	if missing != 0 {
		e.t.Fatalf("%d orders neither settled nor rejected", missing)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE gross_minor <> refunded_minor + commission_minor + seller_minor`); n != 0 {
		e.t.Fatalf("%d items break gross = refunded + commission + seller share", n)
	}
	if n := e.count(`SELECT count(*) FROM settle.items i JOIN orders o USING (order_no) WHERE o.amount_minor <> i.gross_minor`); n != 0 {
		e.t.Fatalf("%d items do not carry the order's amount", n)
	}
}

func TestRunSettlesEveryOrderOnceAndReRunChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(3000, 24)
	out := e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--until", "transform", "--out", e.reports)
	if !strings.Contains(out, "extract") || !strings.Contains(out, "items recorded") {
		t.Fatalf("run output lacks its stages:\n%s", out)
	}
	e.checkEveryOrderOnce()
	items, rejects := e.count(`SELECT count(*) FROM settle.items`), e.count(`SELECT count(*) FROM settle.rejects`)
	// 24 bad rows cycling through the nine kinds; each of the three
	// duplicates rejects both of its rows.
	if rejects != 27 {
		t.Fatalf("rejects %d, want 27 (24 bad rows, 3 of them duplicated)", rejects)
	}
	if items != 3000-24 {
		t.Fatalf("items %d, want %d", items, 3000-24)
	}
	// The rows read, recorded with the snapshot by the day's one pass
	// (runs.rows_read: what the reject gate reads at every run).
	if n, want := e.count(`SELECT rows_read FROM settle.runs`), e.count(`SELECT count(*) FROM settle.source_rows`); n != want || n < 3000 {
		t.Fatalf("rows read %d, want the snapshot's %d", n, want)
	}
	// The rest of the stages, then the same date again.
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, skipAll)
	report, err := os.ReadFile(filepath.Join(e.reports, testDate, "orders.csv"))
	if err != nil {
		t.Fatal(err)
	}
	again := e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, skipAll)
	if !strings.Contains(again, "nothing new") || !strings.Contains(again, "0 new money movements") {
		t.Fatalf("re-run did not say nothing was new:\n%s", again)
	}
	if n := e.count(`SELECT count(*) FROM settle.items`); n != items {
		t.Fatalf("re-run changed the items: %d, was %d", n, items)
	}
	if n := e.count(`SELECT attempts FROM settle.runs`); n != 3 {
		t.Fatalf("attempts %d, want 3", n)
	}
	// Rejected rows are visible with reasons in the report and in status.
	lines := strings.Split(strings.TrimSpace(string(report)), "\n")
	if len(lines) != int(items+rejects)+1 {
		t.Fatalf("orders.csv has %d lines, want %d", len(lines), items+rejects+1)
	}
	if !strings.HasPrefix(lines[0], "order_no,seller_id,provider,currency,gross_minor,refunded_minor,commission_minor,seller_minor,action,state,reason") {
		t.Fatalf("orders.csv header: %s", lines[0])
	}
	for _, reason := range []string{"duplicate order_no", "seller_id is NULL", "overflows int64", "unknown currency", "unknown provider", "must be positive", "exceeds amount_minor", "provider_txn_id", "not in the platform's sellers"} {
		if !strings.Contains(string(report), reason) {
			t.Errorf("orders.csv lacks a reject with reason %q", reason)
		}
	}
	status := e.mustSettle("status", "--date", testDate)
	for _, want := range []string{"extract done", "transform done", "rejected: 27 rows", "duplicate order_no", "wechatpay"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}
	// settle report rewrites the same bytes.
	e.mustSettle("report", "--date", testDate, "--out", e.reports)
	rewritten, _ := os.ReadFile(filepath.Join(e.reports, testDate, "orders.csv"))
	if !bytes.Equal(report, rewritten) {
		t.Fatal("settle report wrote different bytes for the same ledger")
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	t.Parallel()
	e := newBareEnv(t)
	e.seed(500, 8)
	out := e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--dry-run")
	for _, want := range []string{"dry run", "would record 492 items", "rejected: 9 rows", "ledger: no schema yet",
		"channel wechatpay: ", "orders and no provider configured (--wechat-url): a real run ends with exit 4"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if n := e.count(`SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'settle'`); n != 0 {
		t.Fatal("dry run created the ledger schema")
	}
	// After a real run, the dry run reports what is already done.
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--until", "transform", "--out", e.reports)
	out = e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--dry-run")
	if !strings.Contains(out, "stages done: [extract transform]") {
		t.Fatalf("dry run after a run does not show what is done:\n%s", out)
	}
	if n := e.count(`SELECT attempts FROM settle.runs`); n != 1 {
		t.Fatalf("dry run touched the run (attempts %d)", n)
	}
	if strings.Contains(out, "under other rules") {
		t.Fatalf("dry run with the rules the date was split under says they differ:\n%s", out)
	}
	// Other rules than those the date was split under: the plan is
	// theirs, what a real run pays is not; the dry run says so.
	other := filepath.Join(t.TempDir(), "rules.csv")
	os.WriteFile(other, []byte("seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from\n,,,900,,,,2020-01-01\n"), 0o600)
	out = e.mustSettle("run", "--date", testDate, "--rules", other, "--dry-run")
	if !strings.Contains(out, "split its day under other rules than these") || !strings.Contains(out, "a real run pays them, not the plan's") {
		t.Fatalf("dry run with other rules than the date's splits does not say so:\n%s", out)
	}
}

func TestBadRulesAndConfigurationExit2BeforeAnything(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(50, 0)
	bad := filepath.Join(t.TempDir(), "rules.csv")
	os.WriteFile(bad, []byte("seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from\n,,,500,,,,2020-01-01\n,books,,12.5,,,,2020-01-01\n"), 0o600)
	late := filepath.Join(t.TempDir(), "late.csv")
	os.WriteFile(late, []byte("seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from\n,,,500,,,,2027-01-01\n"), 0o600)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"rate not an integer", []string{"--rules", bad}, "rules.csv:3"},
		{"no default rule on the date", []string{"--rules", late}, "2026-11-23"},
		{"missing rules", []string{}, "--rules"},
		{"unknown time zone", []string{"--rules", e.rules, "--tz", "Mars/Olympus"}, "--tz"},
		{"bad shard", []string{"--rules", e.rules, "--shard", "4/4"}, "shard"},
		{"bad date", []string{"--rules", e.rules, "--date", "2026-13-01"}, "--date"},
		// The day before is year 0, no date to PostgreSQL: it was exit 1.
		{"year 1", []string{"--rules", e.rules, "--date", "0001-01-01"}, "--date: date \"0001-01-01\": before 1900"},
		{"a backfill from year 1", []string{"--rules", e.rules, "--from", "0001-01-01", "--to", "0001-01-02"}, "--from: "},
		// Taken as 0 without a word before.
		{"negative recheck days", []string{"--rules", e.rules, "--recheck-days", "-1"}, "--recheck-days"},
		{"negative lock wait", []string{"--rules", e.rules, "--lock-wait", "-1s"}, "--lock-wait"},
		// Its orders are still being confirmed: a run would record the
		// day as read and never settle the rest (a dry run may look).
		{"a date not over yet", []string{"--rules", e.rules, "--date", time.Now().AddDate(0, 0, 2).Format(time.DateOnly)}, "is not over yet in Asia/Shanghai"},
		{"a backfill to a date not over yet", []string{"--rules", e.rules, "--from", testDate, "--to", time.Now().AddDate(0, 0, 2).Format(time.DateOnly)}, "--to: "},
		{"bad stage", []string{"--rules", e.rules, "--until", "payout"}, "--until"},
		{"unknown flag", []string{"--rules", e.rules, "--no-such-flag"}, "no-such-flag"},
		{"source query file missing", []string{"--rules", e.rules, "--source-query", "/nonexistent.sql"}, "--source-query"},
	}
	for _, tc := range cases {
		args := append([]string{"run", "--date", testDate}, tc.args...)
		if tc.name == "bad date" || tc.name == "year 1" || strings.Contains(tc.name, "not over yet") || strings.Contains(tc.name, "from year 1") {
			args = append([]string{"run"}, tc.args...)
		}
		out, code := e.settle(args...)
		if code != 2 || !strings.Contains(out, tc.want) {
			t.Errorf("%s: exit %d, want 2 naming %q:\n%s", tc.name, code, tc.want, out)
		}
	}
	if status := e.mustSettle("status", "--date", testDate); !strings.Contains(status, "no run recorded") {
		t.Fatalf("a configuration error still recorded a run:\n%s", status)
	}
	// Nor are there reports to write: empty files would read as "nothing to pay".
	if out, code := e.settle("report", "--date", testDate, "--out", e.reports); code != 2 || !strings.Contains(out, "no run recorded, nothing to report") {
		t.Fatalf("report of a date never run: exit %d, want 2:\n%s", code, out)
	}
	// A database URL without sslmode is a configuration error too.
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"settle", "run", "--date", testDate, "--database-url", "postgres://x@127.0.0.1/db", "--rules", e.rules}, os.Getenv, &out, &errb)
	if code := exitCode(err, &errb); code != 2 || !strings.Contains(errb.String(), "sslmode") {
		t.Errorf("URL without sslmode: exit %d: %s", code, errb.String())
	}
	// So is a database that does not exist: running again cannot help.
	missing, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	missing.Path = "/settle_no_such_database"
	if got, code := e.raw("settle", "status", "--date", testDate, "--database-url", missing.String()); code != 2 || !strings.Contains(got, "does not exist") {
		t.Errorf("a database that does not exist: exit %d:\n%s", code, got)
	}
	// A source query with the wrong columns names them.
	q := filepath.Join(t.TempDir(), "q.sql")
	os.WriteFile(q, []byte("SELECT order_no, seller_id FROM orders WHERE confirmed_at >= $1 AND confirmed_at < $2"), 0o600)
	got, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--source-query", q, "--until", "extract")
	if code != 2 || !strings.Contains(got, "returns columns (order_no, seller_id)") {
		t.Errorf("bad source query: exit %d:\n%s", code, got)
	}
}

func TestSecondRunOfSameDateExits75(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(50, 0)
	e.mustSettle("migrate")
	release := e.holdLock(pipeline.Whole)
	out, code := e.settle("run", "--date", testDate, "--rules", e.rules)
	if code != 75 || !strings.Contains(out, "holds the lock") {
		t.Fatalf("exit %d, want 75 with a clear message:\n%s", code, out)
	}
	// Another date is not blocked.
	if _, code := e.settle("run", "--date", "2026-11-22", "--rules", e.rules, "--out", e.reports, skipAll); code != 0 {
		t.Fatalf("another date exit %d", code)
	}
	release()
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, skipAll)
}

func TestTooManyRejectsExit3AndSendNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(100, 20)
	// Stopped before anything is sent, the run says so too.
	if out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, "--until", "transform"); code != 3 || !strings.Contains(out, "rows rejected") {
		t.Fatalf("--until transform: exit %d, want 3:\n%s", code, out)
	}
	out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports)
	if code != 3 || !strings.Contains(out, "rows rejected") {
		t.Fatalf("exit %d, want 3:\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(e.reports, testDate, "orders.csv")); err != nil {
		t.Fatalf("the rejects must still be reported: %v", err)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects`); n != 0 {
		t.Fatalf("%d side effects planned on bad data", n)
	}
	// Still gated on a re-run; a raised tolerance lets it through.
	if _, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports); code != 3 {
		t.Fatalf("re-run exit %d, want 3 again", code)
	}
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, "--max-reject-ratio", "0.5", skipAll)
}

// shareKeysAcrossShards adds to a seeded day rows whose keys rows of
// another shard's sellers (of 4) name: an Infinia Pay order number, a
// WeChat Pay and a Pay Protocol transaction (on sellers with both
// accounts, so that the copy alone would be an item), and an order number
// that a copy with a bad amount names. It returns the order numbers
// involved.
func shareKeysAcrossShards(e *env) []string {
	e.t.Helper()
	var sellers []string
	if err := e.db.Select(&sellers, `SELECT seller_id FROM sellers
		WHERE infinia_seller_id IS NOT NULL AND wechat_sub_mchid IS NOT NULL ORDER BY seller_id`); err != nil {
		e.t.Fatal(err)
	}
	shard := func(seller string) int {
		for i := 0; i < 4; i++ {
			if (pipeline.Shard{Index: i, Count: 4}).Owns(seller) {
				return i
			}
		}
		return -1
	}
	elsewhere := func(seller string) string {
		for _, s := range sellers {
			if shard(s) != shard(seller) {
				return s
			}
		}
		e.t.Fatalf("every seller with both accounts is in the shard of %s", seller)
		return ""
	}
	var involved []string
	copyOf := func(provider, orderNo, amount string, n int) {
		var orig, seller string
		if err := e.db.QueryRow(`SELECT order_no, seller_id FROM orders o
			WHERE provider = $1 AND seller_id = ANY ($2) AND amount_minor > 0
			  AND confirmed_at >= '2026-11-23 00:00:00+08' AND confirmed_at < '2026-11-24 00:00:00+08'
			  AND (SELECT count(*) FROM orders d WHERE d.order_no = o.order_no) = 1
			ORDER BY order_no OFFSET $3 LIMIT 1`, provider, pq.Array(sellers), n).Scan(&orig, &seller); err != nil {
			e.t.Fatal(err)
		}
		if orderNo == "" {
			orderNo = orig
		}
		e.db.MustExec(`INSERT INTO orders SELECT $2, $3, provider, provider_txn_id, currency, COALESCE(NULLIF($4, '')::numeric, amount_minor),
			category, buyer_country, paid_at, confirmed_at FROM orders WHERE order_no = $1`, orig, orderNo, elsewhere(seller), amount)
		involved = append(involved, orig, orderNo)
	}
	copyOf("infiniapay", "", "", 0)
	copyOf("wechatpay", "WX-OTHER-SHARD", "", 0)
	copyOf("payprotocol", "PP-OTHER-SHARD", "", 0)
	copyOf("infiniapay", "", "-5", 1)
	return involved
}

func TestShardsSettleExactlyTheItemsOfAWholeRun(t *testing.T) {
	t.Parallel()
	whole, sharded := newEnv(t), newEnv(t)
	whole.seed(2000, 16)
	sharded.seed(2000, 16)
	// Keys that rows of two shards share are rejected whole, as an
	// unsharded run rejects them, whichever shard runs first.
	involved := shareKeysAcrossShards(whole)
	shareKeysAcrossShards(sharded)
	whole.mustSettle("run", "--date", testDate, "--rules", whole.rules, "--until", "transform")
	for i := 0; i < 3; i++ {
		if i%2 == 1 { // the stages one by one: the transform from the snapshot
			sharded.mustSettle("run", "--date", testDate, "--rules", sharded.rules, "--until", "extract", "--shard", fmt.Sprintf("%d/4", i))
		}
		sharded.mustSettle("run", "--date", testDate, "--rules", sharded.rules, "--until", "transform", "--shard", fmt.Sprintf("%d/4", i))
	}
	// A date is settled in one sharding: a run in another is refused
	// (exit 2, nothing opened), and the date asked for whole (a re-run by
	// hand) runs its shards, here resuming three and running the fourth,
	// which never started.
	for _, tc := range []struct {
		e     *env
		shard string
		want  string
	}{
		{sharded, "0/2", "was run in 4 shards (runs "},
		{whole, "1/4", "was run whole (run "},
	} {
		out, code := tc.e.settle("run", "--date", testDate, "--rules", tc.e.rules, "--until", "transform", "--shard", tc.shard)
		if code != 2 || !strings.Contains(out, tc.want) {
			t.Fatalf("--shard %s of a date run otherwise: exit %d, want 2 saying %q:\n%s", tc.shard, code, tc.want, out)
		}
	}
	// The dry run says what a real run would do.
	for shard, want := range map[string][]string{
		"":    {"ledger: the date was run in shards: a real run settles 0/4, 1/4, 2/4, 3/4 one after another", "ledger: run " + testDate + " shard 3/4 has not started"},
		"0/2": {"ledger: a real run is refused: " + testDate + " was run in 4 shards (runs "},
	} {
		args := []string{"run", "--date", testDate, "--rules", sharded.rules, "--dry-run"}
		if shard != "" {
			args = append(args, "--shard", shard)
		}
		out := sharded.mustSettle(args...)
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Fatalf("the dry run (--shard %q) does not say %q:\n%s", shard, w, out)
			}
		}
	}
	out := sharded.mustSettle("run", "--date", testDate, "--rules", sharded.rules, "--until", "transform")
	if !strings.Contains(out, "was run in shards: settling 0/4, 1/4, 2/4, 3/4 one after another") || strings.Count(out, "settle run "+testDate+" shard ") != 4 {
		t.Fatalf("the whole date did not run its four shards:\n%s", out)
	}
	if n := sharded.count(`SELECT count(*) FROM settle.runs`); n != 4 {
		t.Fatalf("%d runs, want the 4 shards'", n)
	}
	dump := func(e *env) string {
		var rows []string
		if err := e.db.Select(&rows, `SELECT order_no || ' ' || seller_id || ' ' || currency || ' ' || gross_minor || ' ' || commission_minor || ' ' || seller_minor || ' ' || rule
			FROM settle.items ORDER BY order_no`); err != nil {
			t.Fatal(err)
		}
		var rejects []string
		if err := e.db.Select(&rejects, `SELECT order_no || ' ' || reason FROM settle.rejects ORDER BY order_no, reason`); err != nil {
			t.Fatal(err)
		}
		return strings.Join(rows, "\n") + "\n--\n" + strings.Join(rejects, "\n")
	}
	a, b := dump(whole), dump(sharded)
	if a != b {
		t.Fatalf("sharded items differ from the whole run's")
	}
	for _, e := range []*env{whole, sharded} {
		if n := e.count(`SELECT count(*) FROM settle.items WHERE order_no = ANY ($1)`, pq.Array(involved)); n != 0 {
			t.Fatalf("%d items of orders sharing a key", n)
		}
		if n := e.count(`SELECT count(*) FROM settle.rejects WHERE order_no = ANY ($1) AND reason LIKE 'duplicate %: 2 %'`, pq.Array(involved)); n != 8 {
			t.Fatalf("%d rows rejected as sharing a key with one other, want 8", n)
		}
	}
	if n := sharded.count(`SELECT count(DISTINCT run_id) FROM settle.items`); n != 4 {
		t.Fatalf("items came from %d runs, want 4 shards", n)
	}
	// Each shard holds its own sellers only.
	if n := sharded.count(`SELECT count(*) FROM (SELECT seller_id FROM settle.items GROUP BY seller_id HAVING count(DISTINCT run_id) > 1) s`); n != 0 {
		t.Fatalf("%d sellers split across shards", n)
	}
	// A ledger from before the rule, where a whole-day run was opened
	// beside the shards: the date asked whole resumes every run and opens
	// none (the whole run finds every order settled by the shards).
	items := sharded.count(`SELECT count(*) FROM settle.items`)
	sharded.db.MustExec(`INSERT INTO settle.runs (business_date, shard_index, shard_count, time_zone, rules_hash, config_hash)
		VALUES ($1, 0, 1, 'Asia/Shanghai', '', '')`, testDate)
	out = sharded.mustSettle("run", "--date", testDate, "--rules", sharded.rules, "--until", "transform", "--max-reject-ratio", "1")
	if !strings.Contains(out, "was run in shards: settling 0/1, 0/4, 1/4, 2/4, 3/4 one after another") {
		t.Fatalf("the date in two shardings did not resume its runs:\n%s", out)
	}
	if n := sharded.count(`SELECT count(*) FROM settle.runs`); n != 5 || sharded.count(`SELECT count(*) FROM settle.items`) != items {
		t.Fatalf("%d runs, %d items; want 5 and %d", n, sharded.count(`SELECT count(*) FROM settle.items`), items)
	}
}

func TestOrderSettlesOnceEverAcrossDates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(200, 0)
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--until", "transform")
	// The platform moves an already settled order to the next day.
	e.db.MustExec(`UPDATE orders SET confirmed_at = confirmed_at + interval '1 day' WHERE order_no = 'O20261123-00000010'`)
	e.mustSettle("run", "--date", "2026-11-24", "--rules", e.rules, "--until", "transform", "--max-reject-ratio", "1") // a day of three rows, one rejected
	var reason string
	if err := e.db.Get(&reason, `SELECT reason FROM settle.rejects WHERE order_no = 'O20261123-00000010'`); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(reason, "already settled on 2026-11-23") {
		t.Fatalf("reason %q", reason)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE order_no = 'O20261123-00000010'`); n != 1 {
		t.Fatalf("order recorded %d times", n)
	}
	// A date resumed in another time zone than it read its day in is
	// refused: its late refunds would be read in other hours.
	if out, code := e.settle("run", "--date", "2026-11-24", "--tz", "UTC", "--rules", e.rules, "--until", "transform", "--max-reject-ratio", "1"); code != 2 ||
		!strings.Contains(out, "read its day in time zone Asia/Shanghai (run 2), and this run is in UTC") {
		t.Fatalf("a run in another time zone: exit %d, want 2 naming both zones:\n%s", code, out)
	}
	// The same hours in another zone: nothing to say.
	if out := e.mustSettle("run", "--date", "2026-11-24", "--tz", "Asia/Hong_Kong", "--rules", e.rules, "--until", "transform", "--max-reject-ratio", "1"); strings.Contains(out, "time zone") {
		t.Fatalf("Hong Kong keeps Shanghai's hours in 2026:\n%s", out)
	}
}

// Values no order can have are rejects naming the column, never a reason
// to stop the day: an over-long order number (twice: its duplicates' rejects
// keep it cut short, as every reject does), a control character in a key,
// infinite timestamps, amounts whose sums would leave int64. The good
// orders settle, and a transform redone from the snapshot classifies the
// same rows the same way.
func TestBadValuesAreRejectsNotFatal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(200, 0)
	long := strings.Repeat("0123456789abcdef", 125) // 2,000 bytes: the platform's index takes it
	const like = `INSERT INTO orders SELECT %s FROM orders WHERE order_no = 'O20261123-00000010'`
	cols := map[string]string{"order_no": "order_no", "seller_id": "seller_id", "provider": "provider",
		"provider_txn_id": "provider_txn_id", "currency": "currency", "amount_minor": "amount_minor", "category": "category",
		"buyer_country": "buyer_country", "paid_at": "paid_at", "confirmed_at": "confirmed_at"}
	bad := []map[string]string{
		{"order_no": "'" + long + "'", "provider_txn_id": "'L1'"},
		{"order_no": "'" + long + "'", "provider_txn_id": "'L2'"},
		{"order_no": `E'BAD\x01KEY'`, "provider_txn_id": "'C1'"},
		{"order_no": "'NEG-INF'", "provider_txn_id": "'I1'", "paid_at": "'-infinity'"},
		{"order_no": "'POS-INF'", "provider_txn_id": "'I2'", "paid_at": "'infinity'"},
		{"order_no": "'HUGE-1'", "provider_txn_id": "'H1'", "amount_minor": "5000000000000000000"},
		{"order_no": "'HUGE-2'", "provider_txn_id": "'H2'", "amount_minor": "5000000000000000000"},
	}
	for _, b := range bad {
		var sel []string
		for _, c := range []string{"order_no", "seller_id", "provider", "provider_txn_id", "currency", "amount_minor", "category", "buyer_country", "paid_at", "confirmed_at"} {
			v := cols[c]
			if o, ok := b[c]; ok {
				v = o
			}
			sel = append(sel, v)
		}
		e.db.MustExec(fmt.Sprintf(like, strings.Join(sel, ", ")))
	}
	want := map[string]string{
		long[:127] + "…": "duplicate order_no: 2 rows share it",
		`BAD\x01KEY`:     `order_no contains the control character U+0001: "BAD\x01KEY"`,
		"NEG-INF":        "paid_at is -infinity",
		"POS-INF":        "paid_at is infinity",
		"HUGE-1":         "amount_minor 5000000000000000000 is more than an order may carry (1000000000000)",
		"HUGE-2":         "amount_minor 5000000000000000000 is more than an order may carry (1000000000000)",
	}
	check := func(stage string) {
		t.Helper()
		var rejects []struct{ OrderNo, Reason string }
		if err := e.db.Select(&rejects, `SELECT replace(order_no, E'\x01', '\x01') AS orderno, reason FROM settle.rejects ORDER BY seq`); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, r := range rejects {
			if _, seen := got[r.OrderNo]; seen && got[r.OrderNo] != r.Reason {
				t.Fatalf("%s: %q rejected as %q and as %q", stage, r.OrderNo, got[r.OrderNo], r.Reason)
			}
			got[r.OrderNo] = r.Reason
		}
		if !reflect.DeepEqual(got, want) || len(rejects) != len(bad) {
			t.Fatalf("%s: rejects (%d)\n%q\nwant\n%q", stage, len(rejects), got, want)
		}
		if n := e.count(`SELECT count(*) FROM settle.items`); n != 200 {
			t.Fatalf("%s: %d items, want the 200 good orders", stage, n)
		}
	}
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--until", "transform")
	check("one pass")
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--until", "extract", "--reextract")
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--until", "transform")
	check("transform from the snapshot")
}

// Two orders naming one provider transaction are both rejected: with one
// payment behind them, neither can be trusted (a copy of a Pay Protocol
// order under a new number was verified against the same payment and paid
// twice). An order of a later date naming a transaction already settled is
// rejected too.
func TestOneTransactionTwoOrdersSettlesNeither(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(200, 0)
	var orig, txn string
	if err := e.db.QueryRow(`SELECT order_no, provider_txn_id FROM orders WHERE provider = 'payprotocol' ORDER BY order_no LIMIT 1`).Scan(&orig, &txn); err != nil {
		t.Fatal(err)
	}
	e.db.MustExec(`INSERT INTO orders SELECT 'PP-COPY', seller_id, provider, provider_txn_id, currency, amount_minor, category, buyer_country,
		paid_at, confirmed_at FROM orders WHERE order_no = $1`, orig)
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--until", "transform")
	var reasons []string
	if err := e.db.Select(&reasons, `SELECT order_no || ': ' || reason FROM settle.rejects ORDER BY order_no`); err != nil {
		t.Fatal(err)
	}
	want := []string{orig + ": duplicate provider_txn_id: 2 orders name it", "PP-COPY: duplicate provider_txn_id: 2 orders name it"}
	if !reflect.DeepEqual(reasons, want) {
		t.Fatalf("rejects %q, want %q", reasons, want)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE provider_txn_id = $1`, txn); n != 0 {
		t.Fatalf("%d items of the shared transaction", n)
	}

	// The next day, an order naming a transaction the first day settled.
	var settled, settledTxn string
	if err := e.db.QueryRow(`SELECT order_no, provider_txn_id FROM settle.items WHERE channel = 'wechatpay' ORDER BY order_no LIMIT 1`).Scan(&settled, &settledTxn); err != nil {
		t.Fatal(err)
	}
	e.db.MustExec(`INSERT INTO orders SELECT 'WX-LATER', seller_id, provider, provider_txn_id, currency, amount_minor, category, buyer_country,
		paid_at, confirmed_at + interval '1 day' FROM orders WHERE order_no = $1`, settled)
	e.mustSettle("run", "--date", "2026-11-24", "--rules", e.rules, "--until", "transform", "--max-reject-ratio", "1") // a day of three rows, one rejected
	var reason string
	if err := e.db.Get(&reason, `SELECT reason FROM settle.rejects WHERE order_no = 'WX-LATER'`); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(reason, "provider_txn_id already settled with order "+settled+" on 2026-11-23 by run ") {
		t.Fatalf("reason %q", reason)
	}
}

// TestDemo is not parallel: it exports SETTLE_DATABASE_URL and SETTLE_OUT,
// as an operator's shell might, and checks that the demo writes to neither:
// it starts its own throwaway server, and removes it when done.
func TestDemo(t *testing.T) {
	e := newBareEnv(t)
	operator := e.url
	t.Setenv("SETTLE_DATABASE_URL", operator)
	t.Setenv("SETTLE_OUT", filepath.Join(t.TempDir(), "operator-reports"))
	// A temporary directory of the demo's own, searchable by the
	// unprivileged user the server runs as when the tests run as root.
	tmp, err := os.MkdirTemp("", "settle-demo-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp)
	out, code := e.raw("settle", "demo", "--out", e.reports, "--date", testDate, "--orders", "300", "--bad-rows", "4")
	if code != 0 {
		t.Fatalf("demo: exit %d:\n%s", code, out)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("the demo left %d entries in the temporary directory (%s ...)", len(left), left[0].Name())
	}
	db, err := sqlx.Open("postgres", operator)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables int
	if err := db.Get(&tables, `SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')`); err != nil || tables != 0 {
		t.Fatalf("the demo wrote %d tables into the database of SETTLE_DATABASE_URL (%v)", tables, err)
	}
	if _, err := os.Stat(os.Getenv("SETTLE_OUT")); err == nil {
		t.Fatal("the demo wrote reports where SETTLE_OUT says")
	}
	for _, want := range []string{"== first run", "== the same date again", "0 new money movements", "== summary", "sent no money request again", "reconciled against all three providers: 0 unexpected"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(e.reports, testDate, "orders.csv")); err != nil {
		t.Fatal(err)
	}
}

// TestDemoOfADateSettledOnItsDatabaseIsRefused: settle demo
// --database-url URL of a date an earlier demo settled there settled
// nothing new, and its self-check, comparing what the ledger paid on the
// date with what its new simulator's balances moved, ended 1 ("DOES NOT
// MATCH the ledger", "running the same command again is safe") on every
// run again. It is refused, exit 2, naming the date, before anything is
// written; another date of the same database is a demo of its own.
func TestDemoOfADateSettledOnItsDatabaseIsRefused(t *testing.T) {
	t.Parallel()
	e := newBareEnv(t)
	demo := func(date string) (string, int) {
		return e.raw("settle", "demo", "--database-url", e.url, "--out", e.reports, "--date", date, "--orders", "20", "--sellers", "2")
	}
	if out, code := demo(testDate); code != 0 {
		t.Fatalf("first demo: exit %d:\n%s", code, out)
	}
	orders := e.count(`SELECT count(*) FROM orders`)
	out, code := demo(testDate)
	if code != 2 || !strings.Contains(out, testDate+" was settled on this database already") {
		t.Fatalf("the same date again: exit %d, want 2 naming the date:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM orders`); n != orders {
		t.Errorf("the refused demo seeded: %d orders, were %d", n, orders)
	}
	if out, code := demo("2026-11-20"); code != 0 {
		t.Fatalf("another date: exit %d:\n%s", code, out)
	}
}

func TestBackfillSettlesEachDateInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, d := range []string{"2026-11-21", "2026-11-22", "2026-11-23"} {
		e.mustSettle("seed", "--date", d, "--orders", "50", "--sellers", "5")
	}
	out := e.mustSettle("run", "--from", "2026-11-21", "--to", "2026-11-23", "--rules", e.rules, "--until", "transform")
	i1, i2, i3 := strings.Index(out, "run 2026-11-21"), strings.Index(out, "run 2026-11-22"), strings.Index(out, "run 2026-11-23")
	if i1 < 0 || i2 < i1 || i3 < i2 {
		t.Fatalf("dates not run in order:\n%s", out)
	}
	if n := e.count(`SELECT count(*) FROM settle.runs`); n != 3 {
		t.Fatalf("%d runs, want 3", n)
	}
	// 50 a day, plus the seed's orders confirmed just outside each day that
	// fall into a neighbour of the range: 2 + 2 after midnight, 1 + 1 before.
	if n := e.count(`SELECT count(*) FROM settle.items`); n != 156 {
		t.Fatalf("%d items, want 156", n)
	}
	// The whole range to the end (no provider configured: every channel
	// skipped), then again after the middle date's run failed: the backfill
	// resumes there, skipping the dates done with nothing left.
	full := []string{"run", "--from", "2026-11-21", "--to", "2026-11-23", "--rules", e.rules,
		"--skip-channel", "infiniapay", "--skip-channel", "wechatpay", "--skip-channel", "payprotocol"}
	e.mustSettle(full...)
	if n := e.count(`SELECT count(*) FROM settle.runs WHERE state = 'done' AND last_error = ''`); n != 3 {
		t.Fatalf("%d runs done, want 3", n)
	}
	ran := func(out string) (dates []string) {
		for _, d := range []string{"2026-11-21", "2026-11-22", "2026-11-23"} {
			if strings.Contains(out, "settle run "+d) {
				dates = append(dates, d)
			} else if !strings.Contains(out, d+": done earlier, with nothing left for a person; skipped") {
				t.Fatalf("the backfill again neither ran %s nor said it skipped it:\n%s", d, out)
			}
		}
		return dates
	}
	// Their items of the skipped channels are still to settle (a provider
	// may be configured since): every date runs again.
	if got := ran(e.mustSettle(full...)); len(got) != 3 {
		t.Fatalf("the backfill again ran %v, want every date: their items are still to settle", got)
	}
	// Pay Protocol's payments still unverified (its channel skipped): the
	// same.
	e.db.MustExec(`UPDATE settle.items SET state = 'rejected', reason = 'rejected by the provider' WHERE state IN ('recorded', 'uploaded')`)
	if n := e.count(`SELECT count(DISTINCT business_date) FROM settle.items WHERE state = 'unverified'`); n != 3 {
		t.Fatalf("unverified items on %d dates, want 3", n)
	}
	if got := ran(e.mustSettle(full...)); len(got) != 3 {
		t.Fatalf("the backfill again ran %v, want every date: their Pay Protocol items are still to settle", got)
	}
	// Settled (as if their providers had rejected them), one date's run failed and one
	// done needing a person: those two run again, the other is skipped.
	e.db.MustExec(`UPDATE settle.items SET state = 'rejected', reason = 'rejected by the provider' WHERE state = 'unverified'`)
	e.db.MustExec(`UPDATE settle.runs SET state = 'failed', last_error = 'stage reconcile: interrupted' WHERE business_date = '2026-11-22'`)
	e.db.MustExec(`UPDATE settle.runs SET last_error = $1 WHERE business_date = '2026-11-21'`, pipeline.NeedsPersonNote+"a mismatch")
	if got := strings.Join(ran(e.mustSettle(full...)), " "); got != "2026-11-21 2026-11-22" {
		t.Fatalf("the backfill again ran %s, want 2026-11-21 2026-11-22", got)
	}
	for _, bad := range [][]string{{"--from", "2026-11-23", "--to", "2026-11-21"}, {"--from", "2026-11-21"}, {"--from", "2020-01-01", "--to", "2026-01-01"}} {
		if _, code := e.settle(append([]string{"run", "--rules", e.rules}, bad...)...); code != 2 {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
}

func TestRunPushesItsMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(100, 0)
	got := make(chan string, 4)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r.Method + " " + r.URL.Path + " " + string(b)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer gw.Close()
	file := filepath.Join(t.TempDir(), "settle.prom")
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, "--metrics-pushgateway", gw.URL, "--metrics-file", file, skipAll)
	select {
	case req := <-got:
		if !strings.HasPrefix(req, "PUT /metrics/job/settle/shard/0-of-1 ") || !strings.Contains(req, "settle_orders") {
			t.Fatalf("push: %.200q", req)
		}
	default:
		t.Fatal("nothing was pushed")
	}
	b, _ := os.ReadFile(file)
	if !strings.Contains(string(b), `settle_orders{outcome="item"} 100`) {
		t.Fatalf("metrics file:\n%s", b)
	}
}

func TestChannelWithOrdersAndNoProviderExits4UnlessSkipped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(200, 0)
	waiting := func(ch string) int64 {
		return e.count(`SELECT count(*) FROM settle.items WHERE channel = $1 AND state IN ('recorded', 'unverified')`, ch)
	}
	out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, "--skip-channel", "infiniapay")
	if code != 4 {
		t.Fatalf("no provider for wechatpay and payprotocol: exit %d, want 4:\n%s", code, out)
	}
	for _, ch := range []string{"wechatpay", "payprotocol"} {
		n := waiting(ch)
		if want := fmt.Sprintf("channel %s: %d orders and no provider configured", ch, n); n == 0 || !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "channel infiniapay:") {
		t.Errorf("a skipped channel is named as a problem:\n%s", out)
	}
	if state := e.count(`SELECT count(*) FROM settle.runs WHERE state = 'done'`); state != 0 {
		t.Fatal("the run is recorded done with work undone")
	}
	// Only the channel skipped reads as left out on purpose: the others
	// are work left undone.
	if text := e.mustSettle("status", "--date", testDate); !strings.Contains(text, fmt.Sprintf("channel infiniapay left out on purpose (%d orders", waiting("infiniapay"))) ||
		strings.Contains(text, "channel wechatpay left out") || strings.Contains(text, "channel payprotocol left out") {
		t.Errorf("settle status does not show infiniapay alone left out on purpose:\n%s", text)
	}
	// Skipped on purpose, by flag and by environment alike: exit 0, the
	// orders stay unpaid and the summary says so.
	out = e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, "--skip-channel", "infiniapay,wechatpay", "--skip-channel", "payprotocol")
	if !strings.Contains(out, fmt.Sprintf("wechatpay: %d orders left unpaid (--skip-channel)", waiting("wechatpay"))) {
		t.Errorf("the skipped channels are not counted in the output:\n%s", out)
	}
}

// TestTheSkippedChannelsLineCountsHeldOrdersAsHeld: the line of a run
// that leaves a channel out on purpose counted its orders waiting, those
// held with a reason (a WeChat Pay transaction its stage held, on an
// earlier run of the date) among them, while summary.csv and settle status
// count those held, not left out: the line counts as they do.
func TestTheSkippedChannelsLineCountsHeldOrdersAsHeld(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(200, 0)
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, "--until", "transform")
	// What the WeChat Pay stage records of a transaction it holds.
	e.db.MustExec(`UPDATE settle.items SET reason = $1 || 'WeChat Pay holds the transaction (test)'
		WHERE order_no IN (SELECT order_no FROM settle.items WHERE channel = 'wechatpay' AND state = 'recorded' ORDER BY order_no LIMIT 3)`, pipeline.HeldPrefix)
	left := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay' AND state IN ('recorded', 'unverified') AND reason NOT LIKE 'held:%'`)
	if held := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay' AND reason LIKE 'held:%'`); held != 3 || left == 0 {
		t.Fatalf("%d WeChat Pay orders held, %d waiting: want 3 held and some waiting", held, left)
	}
	out := e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, skipAll)
	if want := fmt.Sprintf("wechatpay: %d orders left unpaid (--skip-channel)", left); !strings.Contains(out, want) {
		t.Errorf("the run's output lacks %q:\n%s", want, out)
	}
	if text, want := e.mustSettle("status", "--date", testDate), fmt.Sprintf("channel wechatpay left out on purpose (%d orders", left); !strings.Contains(text, want) {
		t.Errorf("settle status lacks %q:\n%s", want, text)
	}
	var inSummary int64
	for _, l := range e.checkReportsBalance(testDate, "held and left out") {
		if l.Channel == "wechatpay" {
			inSummary += l.SkippedOrders
		}
	}
	if inSummary != left {
		t.Errorf("summary.csv: %d wechatpay orders left out on purpose, want %d", inSummary, left)
	}
}

func TestProviderRejectionsCountInTheGateTheSummaryAndTheMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(200, 2)
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, "--until", "transform")
	// What the upload stage records when Pay Protocol does not know a
	// payment: the item rejected, after transform.
	e.db.MustExec(`UPDATE settle.items SET state = 'rejected', reason = 'Pay Protocol does not know payment ' || provider_txn_id
		WHERE order_no IN (SELECT order_no FROM settle.items ORDER BY order_no LIMIT 9)`)
	file := filepath.Join(t.TempDir(), "settle.prom")
	out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, skipAll, "--metrics-file", file)
	// 2 bad rows + 9 provider rejections = 11 of 200 > 5%; the 2 alone pass.
	if code != 3 || !strings.Contains(out, "11 of 200 rows rejected (2 by transform, 9 by the providers)") {
		t.Fatalf("exit %d, want 3 counting the provider's rejections:\n%s", code, out)
	}
	if !strings.Contains(out, "rejected by the providers: 9 orders") || !strings.Contains(out, "--reextract") {
		t.Errorf("the summary does not show the providers' rejections or how to read the date again:\n%s", out)
	}
	b, _ := os.ReadFile(file)
	if !strings.Contains(string(b), `settle_orders{outcome="rejected"} 11`) || !strings.Contains(string(b), `settle_orders{outcome="item"} 189`) {
		t.Errorf("metrics do not count the providers' rejections:\n%s", b)
	}
}

func TestReextractReadsTheDateAgainUntilSomethingIsSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(100, 20)
	out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, skipAll)
	if code != 3 || !strings.Contains(out, "fix the data, then run again with --reextract") {
		t.Fatalf("exit %d, want 3 saying how to read the date again:\n%s", code, out)
	}
	// The platform fixes its data: the bad rows are gone.
	var bad []string
	if err := e.db.Select(&bad, `SELECT DISTINCT order_no FROM settle.rejects WHERE order_no <> ''`); err != nil {
		t.Fatal(err)
	}
	e.db.MustExec(`DELETE FROM orders WHERE order_no IS NULL OR seller_id IS NULL OR order_no = ANY ($1)`, pq.Array(bad))
	// A plain re-run still judges the frozen snapshot.
	if out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, skipAll); code != 3 {
		t.Fatalf("re-run without --reextract: exit %d, want 3 (the snapshot is frozen):\n%s", code, out)
	}
	out = e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, skipAll, "--reextract")
	if n := e.count(`SELECT count(*) FROM settle.rejects`); n > 5 {
		t.Fatalf("%d rejects after reading the fixed data again:\n%s", n, out)
	}
	e.checkEveryOrderOnce()
	if n := e.count(`SELECT count(*) FROM settle.runs WHERE state = 'done'`); n != 1 {
		t.Fatalf("the run is not done after --reextract:\n%s", out)
	}

	// Once something of the date was sent, reading it again is refused.
	f := newEnv(t)
	f.seed(60, 0)
	sim := f.sim(nil, 30, nil, 1_000_000_000_00)
	if out, code := f.runInfinia(sim); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	items, attempts := f.count(`SELECT count(*) FROM settle.items`), f.count(`SELECT attempts FROM settle.runs`)
	out, code = f.runInfinia(sim, "--reextract")
	if code != 2 || !strings.Contains(out, "refused") || !strings.Contains(out, "side effects sent (") || !strings.Contains(out, "trade files uploaded") {
		t.Fatalf("--reextract after sending: exit %d, want 2 naming what was sent:\n%s", code, out)
	}
	if strings.Count(strings.TrimSpace(out[strings.Index(out, "settle: "):]), "\n") != 0 {
		t.Errorf("the refusal takes more than one line:\n%s", out)
	}
	if n := f.count(`SELECT count(*) FROM settle.items`); n != items {
		t.Fatalf("a refused --reextract changed the items: %d, was %d", n, items)
	}
	if n := f.count(`SELECT count(*) FROM settle.runs WHERE state = 'done' AND last_error = ''`); n != 1 {
		t.Fatal("a refused --reextract changed the run's state")
	}
	if n := f.count(`SELECT attempts FROM settle.runs`); n != attempts {
		t.Fatalf("a refused --reextract counted an attempt: %d, was %d", n, attempts)
	}
}

func TestBackfillGoesOnPastADateThatNeedsAPerson(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, d := range []string{"2026-11-21", "2026-11-22"} {
		e.mustSettle("seed", "--date", d, "--orders", "30", "--sellers", "5")
	}
	// No provider and no --skip-channel: each date ends with exit 4.
	out, code := e.settle("run", "--from", "2026-11-21", "--to", "2026-11-22", "--rules", e.rules, "--out", e.reports)
	if code != 4 || !strings.Contains(out, "2 of 2 dates need a person: 2026-11-21, 2026-11-22") {
		t.Fatalf("exit %d, want 4 listing both dates:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.runs WHERE 'reconcile' = ANY (stages_done)`); n != 2 {
		t.Fatalf("%d dates reconciled, want both", n)
	}
}

func TestPreflightRefusalStopsTheRunWithExit2BeforeSending(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(50, 0)
	e.mustSettle("migrate")
	l, err := ledger.Open(context.Background(), e.url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d, _ := pipeline.ParseDate(testDate)
	sh, _ := time.LoadLocation("Asia/Shanghai")
	rules, err := loadRules(e.rules, d)
	if err != nil {
		t.Fatal(err)
	}
	w := pipeline.WindowOf(d, sh)
	calls := 0
	o := &runOptions{key: pipeline.RunKey{Date: d, Shard: pipeline.Whole}, window: w, tz: sh.String(), until: pipeline.StageReconcile,
		classify: classifier(rules, d, w), rulesHash: rules.Hash(), rules: rules, query: sourceQueryDefault(),
		sellersQ: sellersQueryDefault(), lateQ: lateRefundsQueryDefault(), sourceURL: e.url,
		reports: reportWriter{reports: load.Reports{Dir: e.reports}}, maxRejectRt: 0.05, skip: map[pipeline.Channel]bool{},
		preflights: []func(context.Context) error{func(context.Context) error {
			calls++
			return pipeline.Errorf(pipeline.KindUsage, "Infinia Pay", "our signature was refused: check --infinia-private-key-file")
		}},
	}
	var out, errb bytes.Buffer
	cfg := &config{getenv: func(string) string { return "" }, stdout: &out, stderr: &errb}
	err = cfg.settle(context.Background(), l, o)
	code := exitCode(err, &errb)
	if code != 2 || calls != 1 || strings.Count(errb.String(), "\n") != 1 || !strings.Contains(errb.String(), "signature was refused") {
		t.Fatalf("exit %d after %d pre-flights, want 2 after one, with one line:\n%s", code, calls, errb.String())
	}
	var done []string
	if err := e.db.Select(&done, `SELECT unnest(stages_done) FROM settle.runs`); err != nil {
		t.Fatal(err)
	}
	if strings.Join(done, " ") != "extract transform" {
		t.Fatalf("stages done %v: nothing past transform may run", done)
	}
}

func TestPayProtocolRejectionsDuringUploadStopTheMoneyAtTheGate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(60, 0)
	sim := e.sim(nil, 30, nil, 1_000_000_000_00)
	withPayProtocol(sim) // configured, but it knows none of the day's payments
	out, code := e.runInfinia(sim)
	if code != 3 || !strings.Contains(out, "by the providers") || !strings.Contains(out, "--reextract is refused") {
		t.Fatalf("exit %d, want 3 counting Pay Protocol's rejections and saying the date cannot be read again:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE kind = 'revenue_share'`); n != 0 {
		t.Fatalf("%d revenue shares planned past the gate", n)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE kind = 'upload' AND sends > 0`); n == 0 {
		t.Fatal("the trade files of the verified orders were not uploaded: the test does not show the gate before distribute")
	}
	// The last JSON line, all a pod's log may show the on-call: its hint
	// said "fix the platform's data, then run the date again with
	// --reextract", which the error beside it said is refused, and which
	// is (found by an on-call's walk through the runbook).
	args := append([]string{"settle", "run", "--database-url", e.url}, e.infiniaArgs(sim)[1:]...)
	args = append(args, "--skip-channel", "wechatpay")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), plainTextArgs(args), func(k string) string {
		if k == "SETTLE_LOG_FORMAT" {
			return "json"
		}
		return ""
	}, &stdout, &stderr)
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var last map[string]any
	if code := exitCode(err, &stderr); code != 3 || json.Unmarshal([]byte(lines[len(lines)-1]), &last) != nil {
		t.Fatalf("run again in JSON: exit %d, want 3 and a JSON last line:\n%s%s", code, stdout.String(), stderr.String())
	}
	if hint, _ := last["hint"].(string); strings.Contains(hint, "again with --reextract") || !strings.Contains(hint, "--reextract is refused") {
		t.Errorf("the last line's hint %q advises --reextract, which this date refuses (error: %v)", hint, last["error"])
	}
	if out, code := e.runInfinia(sim, "--reextract"); code != 2 || !strings.Contains(out, "trade files uploaded") {
		t.Fatalf("--reextract after uploads: exit %d, want 2:\n%s", code, out)
	}
}

// TestReextractKeepsAnOrderALaterDateRejectedAsSettled: the platform moves
// an order's confirmation to the next day after its first date recorded
// it; the next day rejects its row as settled on the first. Reading the
// first date again would drop the order there too: settled nowhere, its
// only trace a reject naming a settlement gone (found by a review). The
// re-extract is refused, naming the order and the date that rejected it.
func TestReextractKeepsAnOrderALaterDateRejectedAsSettled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(200, 0)
	const x = "O20261123-00000010"
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--until", "transform")
	e.db.MustExec(`UPDATE orders SET confirmed_at = confirmed_at + interval '1 day' WHERE order_no = $1`, x)
	e.mustSettle("run", "--date", "2026-11-24", "--rules", e.rules, "--until", "transform", "--max-reject-ratio", "1")
	out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--until", "transform", "--reextract")
	if code != 2 || !strings.Contains(out, "rows another date rejected as settled by this run ("+x+" (2026-11-24))") {
		t.Fatalf("--reextract: exit %d, want 2 naming %s and the date that rejected it\n%s", code, x, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE order_no = $1`, x); n != 1 {
		t.Fatalf("order %s has %d items after the refused re-extract", x, n)
	}
}

// TestASellersUnusableAccountHoldsOnlyItsOrders: one seller's Infinia
// id is corrupt and huge (the platform does not index it); recording the
// run's sellers failed on the ledger's index of the accounts, and the
// whole day with it, on every run (found by a review). The value is
// recorded as a note of its length, which the account check refuses: that
// seller's orders are held with the reason, the day goes on.
func TestASellersUnusableAccountHoldsOnlyItsOrders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(200, 0)
	var seller string
	if err := e.db.Get(&seller, `SELECT min(seller_id) FROM orders WHERE provider = 'infiniapay'`); err != nil {
		t.Fatal(err)
	}
	e.db.MustExec(`UPDATE sellers SET infinia_seller_id = (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 250) g) WHERE seller_id = $1`, seller)
	out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--until", "transform")
	if code != 0 {
		t.Fatalf("exit %d, want the day recorded\n%s", code, out)
	}
	held := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND channel = 'infiniapay' AND state = 'held'
		AND reason LIKE 'held: seller account: %Infinia Pay seller id cannot be used to pay infiniapay orders: "(unusable: 8000 bytes)"%'`, seller)
	if n := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND channel = 'infiniapay'`, seller); n == 0 || held != n {
		t.Fatalf("%d of the seller's %d Infinia orders held for its unusable id", held, n)
	}
	if n := e.count(`SELECT count(*) FROM settle.rejects`); n != 0 {
		t.Fatalf("%d orders rejected", n)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE seller_id <> $1 AND state <> 'held'`, seller); n == 0 {
		t.Fatal("no other seller's orders recorded")
	}
}

// holdLock takes the lock of testDate's run in shard sh, as a run of it
// in another process holds it, until the release it returns (or the end
// of the test).
func (e *env) holdLock(sh pipeline.Shard) func() error {
	e.t.Helper()
	l, err := ledger.Open(context.Background(), e.url, "")
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { l.Close() })
	release, err := l.Lock(context.Background(), pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: sh})
	if err != nil {
		e.t.Fatal(err)
	}
	return release
}

// TestALedgerRoleWithoutAPrivilegeExits2: a ledger role the database
// refuses a privilege it needs (TEMP, which the transform's staging tables
// use, revoked from PUBLIC by a hardened database) failed every run with
// exit 1, "a retry is safe": it is a grant to make, exit 2.
func TestALedgerRoleWithoutAPrivilegeExits2(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(20, 0)
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	dbname := strings.TrimPrefix(u.Path, "/")
	role := "settle_t_notemp_" + strings.TrimPrefix(dbname, "settle_t_")
	for _, q := range []string{
		`CREATE ROLE ` + role + ` LOGIN`,
		`CREATE SCHEMA ledger_own AUTHORIZATION ` + role,
		`REVOKE TEMP ON DATABASE ` + dbname + ` FROM PUBLIC`,
		`GRANT CONNECT ON DATABASE ` + dbname + ` TO ` + role,
	} {
		e.db.MustExec(q)
	}
	t.Cleanup(func() {
		e.db.Exec(`DROP OWNED BY ` + role)
		e.db.Exec(`DROP ROLE ` + role)
	})
	u.User = url.User(role)
	out, code := e.raw("settle", "run", "--database-url", u.String(), "--source-database-url", e.url, "--schema", "ledger_own",
		"--date", testDate, "--rules", e.rules, "--out", e.reports, "--until", "transform")
	if code != 2 || !strings.Contains(out, "permission denied to create temporary tables") {
		t.Fatalf("exit %d, want 2 naming the privilege:\n%s", code, out)
	}
}

// TestAShardSplitUnderOtherRulesThanItsDatesOtherShardsIsWarnedAbout: the
// rules file changed while the shards of a date started: the shard given
// other rules than those another shard split its orders under says so
// before it splits its own, and says nothing once given the same.
func TestAShardSplitUnderOtherRulesThanItsDatesOtherShardsIsWarnedAbout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(60, 0)
	other := filepath.Join(t.TempDir(), "rules.csv")
	os.WriteFile(other, []byte("seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from\n,,,900,,,,2020-01-01\n"), 0o600)
	const warning = "shard 0/2 split its orders under other rules than these"
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--until", "transform", "--shard", "0/2")
	out := e.mustSettle("run", "--date", testDate, "--rules", other, "--until", "transform", "--shard", "1/2")
	if !strings.Contains(out, warning) {
		t.Fatalf("shard 1/2 under other rules than shard 0/2's does not say so:\n%s", out)
	}
	out = e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--until", "transform", "--shard", "1/2", "--reextract")
	if strings.Contains(out, "under other rules") {
		t.Fatalf("shard 1/2 read again under shard 0/2's rules still warns:\n%s", out)
	}
}

// TestARunStoppedByUntilSaysTheDateIsNotSettled: settle run --until
// transform ends 0, as asked, and its output ended "0 new money
// movements", as a date settled with nothing left would: nothing said
// the date is not settled, nor how to finish it (found by an on-call's
// walk through the runbook).
func TestARunStoppedByUntilSaysTheDateIsNotSettled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(20, 0)
	out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, "--until", "transform")
	if code != 0 || !strings.Contains(out, "stopped after the transform stage (--until), as asked: "+testDate+" is not settled") ||
		!strings.Contains(out, "settle run --date "+testDate+" without --until runs it to its end") {
		t.Fatalf("--until transform: exit %d, want 0 saying the date is not settled and how to finish it:\n%s", code, out)
	}
}
