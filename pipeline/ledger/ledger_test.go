package ledger_test

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The channels of the tests, named as the provider packages name them:
// the ledger's provider columns and queries still know these names.
const (
	chInfinia     pipeline.Channel = "infiniapay"
	chWeChat      pipeline.Channel = "wechatpay"
	chPayProtocol pipeline.Channel = "payprotocol"
)

// open returns a migrated ledger in a fresh database: a copy of one
// migrated once per test binary (migrating each test's own took a few
// tenths of a second of the server's time and, under -race, much of the
// test process's). The tests of migrating itself use pgtest.URL.
func open(t *testing.T) (*ledger.Ledger, string) {
	t.Helper()
	url := pgtest.URLFrom(t, pgtest.Template(t, "migrated ledger", migrated))
	l, err := ledger.Open(context.Background(), url, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if n, err := l.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	} else if len(n) != 0 {
		t.Fatalf("the migrated template was behind: %v", n)
	}
	l.SetActor("ledger test") // who the tests' resolutions are recorded with
	return l, url
}

// migrated migrates the ledger at url: the template open copies.
func migrated(url string) error {
	l, err := ledger.Open(context.Background(), url, "")
	if err != nil {
		return err
	}
	defer l.Close()
	_, err = l.Migrate(context.Background())
	return err
}

// openAt opens a ledger of its own migrated up to version alone, for a
// test of a later migration's work on what the versions before it wrote.
func openAt(t *testing.T, version int64) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(context.Background(), pgtest.URL(t), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.MigrateTo(context.Background(), version); err != nil {
		t.Fatal(err)
	}
	return l
}

var day = pipeline.Date{Year: 2026, Month: 11, Day: 23}

func TestMigrateConcurrentlyAndTwice(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := ledger.Open(ctx, url, "custom_schema")
			if err != nil {
				errs[i] = err
				return
			}
			defer l.Close()
			_, errs[i] = l.Migrate(ctx)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent migrate: %v", err)
		}
	}
	l, err := ledger.Open(ctx, url, "custom_schema")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	applied, err := l.Migrate(ctx)
	if err != nil || len(applied) != 0 {
		t.Fatalf("second migrate applied %v, %v; want nothing", applied, err)
	}
	var n int
	if err := l.DB().Get(&n, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'custom_schema' AND table_name = 'items'`); err != nil || n != 1 {
		t.Fatalf("items table in custom_schema: %d, %v", n, err)
	}
}

// TestReleaseParseBuffers: after a migration that applied something,
// ReleaseParseBuffers lets go of the buffers goose parsed the files with
// (16 MiB kept in a sync.Pool), so that a run's peak memory is the day's.
// Not parallel: no other test allocates while it reads the heap.
func TestReleaseParseBuffers(t *testing.T) {
	l, err := ledger.Open(context.Background(), pgtest.URL(t), "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	applied, err := l.Migrate(context.Background())
	if err != nil || len(applied) == 0 {
		t.Fatalf("migrate a fresh database: %v, %v", applied, err)
	}
	ledger.ReleaseParseBuffers()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	if m.HeapAlloc > 12<<20 {
		t.Fatalf("%.1f MiB of heap still allocated after the migration, want under 12 (goose's buffers are 16)", float64(m.HeapAlloc)/(1<<20))
	}
}

// TestKeysCompareBytewise: every column of the ledger holding an order
// number, a seller, a currency, a refund number or an effect's subject
// compares byte-wise (migration 00007), whatever the database's locale: the
// day's COPY checks its keys without strcoll, reports list them in the same
// order on every server, and a join of two such columns can use either's
// index (a column left in the default collation would compare in "C"
// against them and lose its own index).
func TestKeysCompareBytewise(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	var cols []struct {
		Table     string `db:"table_name"`
		Column    string `db:"column_name"`
		Collation string `db:"collation"`
	}
	if err := l.DB().Select(&cols, `SELECT table_name::text, column_name::text, COALESCE(collation_name::text, '') AS collation
		FROM information_schema.columns
		WHERE table_schema = $1 AND data_type = 'text'
		  AND column_name IN ('order_no', 'seller_id', 'currency', 'refund_no', 'subject', 'netted_into')
		ORDER BY 1, 2`, l.Schema()); err != nil {
		t.Fatal(err)
	}
	if len(cols) < 20 {
		t.Fatalf("found %d key columns, want the ledger's (at least 20): %v", len(cols), cols)
	}
	for _, c := range cols {
		if c.Collation != "C" {
			t.Errorf("%s.%s: collation %q, want \"C\"", c.Table, c.Column, c.Collation)
		}
	}
}

func TestOpenRefusesURLWithoutSSLMode(t *testing.T) {
	_, err := ledger.Open(context.Background(), "postgres://u@127.0.0.1:1/db", "")
	if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "sslmode") {
		t.Fatalf("got %v, want a usage error about sslmode", err)
	}
	// "sslmode=" as text elsewhere is not the parameter: lib/pq would
	// connect with its default (require, the server's certificate
	// unchecked).
	for _, dsn := range []string{
		"postgres://u:sslmode=disable@127.0.0.1:1/db",
		"postgres://u@127.0.0.1:1/db?application_name=sslmode=disable",
		"host=127.0.0.1 port=1 user=u password='x sslmode=disable'",
	} {
		if err := ledger.CheckDSN(dsn); pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "sslmode") {
			t.Errorf("%s: got %v, want a usage error about sslmode", dsn, err)
		}
	}
	for _, dsn := range []string{"postgres://u@127.0.0.1:1/db?sslmode=verify-full", "host=127.0.0.1 sslmode = 'disable' user=u"} {
		if err := ledger.CheckDSN(dsn); err != nil {
			t.Errorf("%s: %v", dsn, err)
		}
	}
	// One lib/pq cannot read is refused without its text (a password).
	if err := ledger.CheckDSN("host=127.0.0.1 password='S3cret sslmode=disable"); pipeline.KindOf(err) != pipeline.KindUsage || strings.Contains(err.Error(), "S3cret") {
		t.Errorf("unterminated quote: got %v, want a usage error without the password", err)
	}
	_, err = ledger.Open(context.Background(), "postgres://u@127.0.0.1:1/db?sslmode=disable", "Bad-Schema")
	if pipeline.KindOf(err) != pipeline.KindUsage {
		t.Fatalf("bad schema: got %v, want a usage error", err)
	}
}

func TestLockExcludesSecondRunAndDiesWithConnection(t *testing.T) {
	t.Parallel()
	l, url := open(t)
	ctx := context.Background()
	other, err := ledger.Open(ctx, url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	whole := pipeline.RunKey{Date: day, Shard: pipeline.Whole}
	release, err := l.Lock(ctx, whole)
	if err != nil {
		t.Fatal(err)
	}
	_, err = other.Lock(ctx, whole)
	if !errors.Is(err, pipeline.ErrLocked) || pipeline.KindOf(err) != pipeline.KindLocked {
		t.Fatalf("second lock: got %v, want ErrLocked of KindLocked", err)
	}
	// A shard of the same date overlaps the whole date.
	if _, err := other.Lock(ctx, pipeline.RunKey{Date: day, Shard: pipeline.Shard{Index: 1, Count: 4}}); !errors.Is(err, pipeline.ErrLocked) {
		t.Fatalf("shard while whole date is locked: got %v, want ErrLocked", err)
	}
	// Another date is independent.
	rel2, err := other.Lock(ctx, pipeline.RunKey{Date: day.AddDays(1), Shard: pipeline.Whole})
	if err != nil {
		t.Fatalf("other date: %v", err)
	}
	rel2()

	// The holder dies (as with SIGKILL): its connection goes, and the lock
	// with it. Only this test's database is touched: tests run in parallel.
	var pids []int
	if err := other.DB().Select(&pids, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil || len(pids) == 0 {
		t.Fatalf("advisory lock holders: %v, %v", pids, err)
	}
	for _, pid := range pids {
		other.DB().MustExec(`SELECT pg_terminate_backend($1, 5000)`, pid) // waits for the backend to exit
	}
	var relOther func() error
	for i := 0; ; i++ {
		if relOther, err = other.Lock(ctx, whole); err == nil {
			break
		}
		if i == 50 {
			t.Fatalf("lock after the holder died: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	relOther()
	release() // the dead holder's release must not fail loudly or panic

	// Shards of one date run side by side.
	r0, err := l.Lock(ctx, pipeline.RunKey{Date: day, Shard: pipeline.Shard{Index: 0, Count: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer r0()
	r1, err := other.Lock(ctx, pipeline.RunKey{Date: day, Shard: pipeline.Shard{Index: 1, Count: 2}})
	if err != nil {
		t.Fatalf("second shard: %v", err)
	}
	defer r1()
	if _, err := other.Lock(ctx, pipeline.RunKey{Date: day, Shard: pipeline.Shard{Index: 1, Count: 2}}); !errors.Is(err, pipeline.ErrLocked) {
		t.Fatalf("same shard twice: got %v, want ErrLocked", err)
	}

	// The date's lock of a whole re-run: not while a shard runs; held, its
	// own runs of the date take their shard's lock under it, and no other
	// process runs any of the date.
	if _, err := l.LockDate(ctx, day); !errors.Is(err, pipeline.ErrLocked) {
		t.Fatalf("date lock while shards run: got %v, want ErrLocked", err)
	}
	next := day.AddDays(1)
	relDate, err := l.LockDate(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		k := pipeline.RunKey{Date: next, Shard: pipeline.Shard{Index: i, Count: 2}}
		if _, err := other.Lock(ctx, k); !errors.Is(err, pipeline.ErrLocked) {
			t.Fatalf("another process's shard under the date's lock: got %v, want ErrLocked", err)
		}
		rel, err := l.Lock(ctx, k)
		if err != nil {
			t.Fatalf("a shard under its own process's date lock: %v", err)
		}
		rel()
	}
	if err := relDate(); err != nil {
		t.Fatal(err)
	}
	rel, err := other.Lock(ctx, pipeline.RunKey{Date: next, Shard: pipeline.Whole})
	if err != nil {
		t.Fatalf("the date once released: %v", err)
	}
	rel()
}

// TestAReportHoldsItsDateAgainstRuns: settle report holds its date's lock
// while it reads (LockToReport), so no run of the date begins meanwhile -
// neither a whole run, a shard, nor a date re-run as a whole - and it is
// refused while any of them holds it. Before, it only looked for a holder
// before and after it read: a run that began in between left its files
// written, a moment of that run.
func TestAReportHoldsItsDateAgainstRuns(t *testing.T) {
	t.Parallel()
	l, url := open(t)
	ctx := context.Background()
	other, err := ledger.Open(ctx, url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	rel, err := l.LockToReport(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []pipeline.RunKey{{Date: day, Shard: pipeline.Whole}, {Date: day, Shard: pipeline.Shard{Index: 1, Count: 2}}} {
		if _, err := other.Lock(ctx, k); !errors.Is(err, pipeline.ErrLocked) || !strings.Contains(err.Error(), ": report "+day.String()) {
			t.Errorf("run %s while a report of its date reads: got %v, want ErrLocked naming the report", k, err)
		}
	}
	if _, err := other.LockDate(ctx, day); !errors.Is(err, pipeline.ErrLocked) {
		t.Errorf("date lock while a report of it reads: got %v, want ErrLocked", err)
	}
	if _, err := other.LockToReport(ctx, day); !errors.Is(err, pipeline.ErrLocked) {
		t.Errorf("a second report of the date: got %v, want ErrLocked", err)
	}
	relNext, err := other.LockToReport(ctx, day.AddDays(1))
	if err != nil {
		t.Fatalf("a report of another date: %v", err)
	}
	relNext()
	if err := rel(); err != nil {
		t.Fatal(err)
	}
	shard, err := other.Lock(ctx, pipeline.RunKey{Date: day, Shard: pipeline.Shard{Index: 0, Count: 2}})
	if err != nil {
		t.Fatalf("a shard once the report ended: %v", err)
	}
	if _, err := l.LockToReport(ctx, day); !errors.Is(err, pipeline.ErrLocked) {
		t.Errorf("a report while a shard of its date runs: got %v, want ErrLocked", err)
	}
	shard()
}

func TestOpenRunResumes(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	key := pipeline.RunKey{Date: day, Shard: pipeline.Whole}
	p := pipeline.RunParams{TimeZone: "Asia/Shanghai", RulesHash: "r1", ConfigHash: "c1"}
	run, created, err := l.OpenRun(ctx, key, p)
	if err != nil || !created || run.Attempts != 1 || run.State != pipeline.RunRunning {
		t.Fatalf("first open: %+v created=%v err=%v", run, created, err)
	}
	if err := l.CompleteStage(ctx, run.ID, pipeline.StageExtract); err != nil {
		t.Fatal(err)
	}
	if err := l.CompleteStage(ctx, run.ID, pipeline.StageExtract); err != nil {
		t.Fatal(err)
	}
	again, created, err := l.OpenRun(ctx, key, pipeline.RunParams{TimeZone: "Asia/Shanghai", RulesHash: "r2", ConfigHash: "c1"})
	if err != nil || created || again.ID != run.ID || again.Attempts != 2 {
		t.Fatalf("second open: %+v created=%v err=%v", again, created, err)
	}
	if !again.Done(pipeline.StageExtract) || len(again.StagesDone) != 1 || again.Done(pipeline.StageTransform) {
		t.Fatalf("stages done %v, want [extract]", again.StagesDone)
	}
	// Its transform stage not done, the day is split under the rules of
	// this attempt: the run names them, not those of an extract-only
	// attempt (or of the run before --reextract).
	if again.RulesHash != "r2" {
		t.Fatalf("rules hash %q before transform, want r2: the rules the items will be split under", again.RulesHash)
	}
	if err := l.CompleteStage(ctx, run.ID, pipeline.StageTransform); err != nil {
		t.Fatal(err)
	}
	third, _, err := l.OpenRun(ctx, key, pipeline.RunParams{TimeZone: "Asia/Shanghai", RulesHash: "r3", ConfigHash: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if third.RulesHash != "r2" {
		t.Fatalf("rules hash %q after transform, want r2: a resumed run keeps the rules that split its day", third.RulesHash)
	}
}

// TestCarryReferenceKept: items.carry_id is held to the adjustments by
// triggers rather than a foreign key (migration 00007), which the day's
// COPY paid for on every row: a carry_id must name an adjustment, and an
// adjustment that carries items can be neither deleted, renumbered nor
// truncated away, as the foreign key had it.
func TestCarryReferenceKept(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	run := openRun(t, l, day)
	db := l.DB()
	mustFail := func(what, q string, args ...any) {
		t.Helper()
		_, err := db.Exec(q, args...)
		var pe *pq.Error
		if !errors.As(err, &pe) || pe.Code != "23503" {
			t.Fatalf("%s: got %v, want a foreign_key_violation", what, err)
		}
	}
	insert := `INSERT INTO items (order_no, run_id, business_date, seller_id, channel, provider_txn_id, currency, category,
		gross_minor, refunded_minor, commission_minor, seller_minor, rule, paid_at, confirmed_at, carry_id, txn_once)
		VALUES ($1, $2, $3, 'S1', 'infiniapay', 'T' || $1::text, 'USD', 'c', 100, 0, 10, 90, 'r', now(), now(), $4, false)`
	if _, err := db.Exec(insert, "O1", run.ID, day.String(), nil); err != nil {
		t.Fatal(err)
	}
	mustFail("an item inserted into a carry that does not exist", insert, "O2", run.ID, day.String(), 424242)
	mustFail("an item carried into an adjustment that does not exist", `UPDATE items SET carry_id = 424242 WHERE order_no = 'O1'`)
	var id int64
	if err := db.Get(&id, `INSERT INTO adjustments (seller_id, currency, kind, amount_minor, business_date, run_id)
		VALUES ('S1', 'USD', 'held', 90, $1, $2) RETURNING id`, day.String(), run.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE items SET carry_id = $1 WHERE order_no = 'O1'`, id); err != nil {
		t.Fatalf("carry into an existing adjustment: %v", err)
	}
	mustFail("delete an adjustment that carries an item", `DELETE FROM adjustments WHERE id = $1`, id)
	mustFail("renumber an adjustment that carries an item", `UPDATE adjustments SET id = id + 1000 WHERE id = $1`, id)
	mustFail("truncate adjustments that carry an item", `TRUNCATE adjustments`)
	if _, err := db.Exec(`UPDATE items SET carry_id = NULL WHERE order_no = 'O1'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM adjustments WHERE id = $1`, id); err != nil {
		t.Fatalf("delete an adjustment that carries nothing: %v", err)
	}
}

// TestARefusedShardLockLetsGoOfTheDate: a shard's Lock refused on the
// shard's own lock (a pod of it runs) after it took the date's shared lock
// lets go of that too: once the pod ends, the date can be run whole.
func TestARefusedShardLockLetsGoOfTheDate(t *testing.T) {
	t.Parallel()
	l, url := open(t)
	ctx := context.Background()
	pod, err := ledger.Open(ctx, url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer pod.Close()
	third, err := ledger.Open(ctx, url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	k := pipeline.RunKey{Date: day, Shard: pipeline.Shard{Index: 1, Count: 2}}
	rel, err := pod.Lock(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Lock(ctx, k); !errors.Is(err, pipeline.ErrLocked) {
		t.Fatalf("got %v, want ErrLocked", err)
	}
	rel() // the pod ends
	relDate, err := third.LockDate(ctx, day)
	if err != nil {
		t.Fatalf("the date's lock, no run of it under way: %v", err)
	}
	relDate()
}

// TestMigrateIntoASchemaTheRoleOwns: a role given a schema of its own and
// no CREATE on the database (README, "Pointing it at a real database")
// migrates it; CREATE SCHEMA IF NOT EXISTS needs CREATE on the database
// even when the schema exists, and refused every such role (exit 1). A
// schema missing that the role may not create is a usage error naming it.
func TestMigrateIntoASchemaTheRoleOwns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin := pgtest.URL(t)
	adb, err := sql.Open("postgres", admin)
	if err != nil {
		t.Fatal(err)
	}
	defer adb.Close()
	role := "settle_t_role_" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	for _, q := range []string{
		`CREATE ROLE ` + role + ` LOGIN`,
		`REVOKE CREATE ON SCHEMA public FROM PUBLIC`,
		`CREATE SCHEMA ledger_own AUTHORIZATION ` + role,
	} {
		if _, err := adb.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		db, err := sql.Open("postgres", admin)
		if err != nil {
			return
		}
		defer db.Close()
		db.Exec(`DROP OWNED BY ` + role)
		db.Exec(`DROP ROLE ` + role)
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	for _, c := range []struct {
		schema, want string
	}{{"ledger_own", ""}, {"ledger_missing", "schema ledger_missing does not exist and this role may not create it"}} {
		l, err := ledger.Open(ctx, u.String(), c.schema)
		if err != nil {
			t.Fatal(err)
		}
		_, err = l.Migrate(ctx)
		l.Close()
		switch {
		case c.want == "" && err != nil:
			t.Fatalf("migrate schema %s the role owns, without CREATE on the database: %v", c.schema, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || pipeline.KindOf(err) != pipeline.KindUsage):
			t.Fatalf("migrate schema %s the role may not create: %v (kind %v), want a usage error containing %q", c.schema, err, pipeline.KindOf(err), c.want)
		}
	}
}

// TestLedgerSessionsCompileNothing: every session of the ledger's pool runs
// with JIT off. Its statements take milliseconds, but on a ledger of years
// the estimates of some pass jit_above_cost, and the server compiled them
// at every call (FailedPayouts, 7 ms of query, took 1.2 s and more).
func TestLedgerSessionsCompileNothing(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	var conns []*sql.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 3 {
		c, err := l.DB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var jit string
		if err := c.QueryRowContext(ctx, `SHOW jit`).Scan(&jit); err != nil || jit != "off" {
			t.Fatalf("a ledger session's jit: %q, %v; want off", jit, err)
		}
		// Even for a statement whose estimate passes every threshold.
		if _, err := c.ExecContext(ctx, `SET jit_above_cost = 0`); err != nil {
			t.Fatal(err)
		}
		var plan []string
		rows, err := c.QueryContext(ctx, `EXPLAIN (ANALYZE) SELECT count(*) FROM generate_series(1, 1000) s WHERE s % 7 = 1`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		rows.Close()
		if p := strings.Join(plan, "\n"); strings.Contains(p, "JIT:") {
			t.Fatalf("compiled:\n%s", p)
		}
		if _, err := c.ExecContext(ctx, `RESET jit_above_cost`); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenRunKeepsTheAccountsItSentFrom: a run resumed with another
// provider account for a kind it sent requests of is refused (KindUsage),
// naming both; another account for a kind it only planned, or a kind not
// configured now, opens it, and what it opens with is recorded.
func TestOpenRunKeepsTheAccountsItSentFrom(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	key := pipeline.RunKey{Date: day, Shard: pipeline.Whole}
	params := func(accounts map[string]string) pipeline.RunParams {
		return pipeline.RunParams{TimeZone: "UTC", RulesHash: "r", ConfigHash: "c", Accounts: accounts}
	}
	run, _, err := l.OpenRun(ctx, key, params(map[string]string{"revenue_share": "app A", "distribution": "mch M"}))
	if err != nil {
		t.Fatal(err)
	}
	// Planned, never sent: the account may still change.
	if _, err := l.PlanEffect(ctx, pipeline.Effect{RunID: run.ID, Kind: "revenue_share", Subject: "RS/1", Attempt: 1, Key: "RS-1", Currency: "USD", Amount: 100}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.OpenRun(ctx, key, params(map[string]string{"revenue_share": "app B", "distribution": "mch M"})); err != nil {
		t.Fatalf("another account before anything was sent: %v", err)
	}
	e, err := l.PlanEffect(ctx, pipeline.Effect{RunID: run.ID, Kind: "revenue_share", Subject: "RS/1", Attempt: 1, Key: "RS-1", Currency: "USD", Amount: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.MarkSent(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	_, _, err = l.OpenRun(ctx, key, params(map[string]string{"revenue_share": "app C", "distribution": "mch M"}))
	if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(fmt.Sprint(err), "1 revenue_share requests were sent from app B") ||
		!strings.Contains(fmt.Sprint(err), "go to app C") {
		t.Fatalf("another account once sent: %v, want a usage error naming app B and app C", err)
	}
	// The kind it sent, with its account; another for a kind it sent
	// nothing of; a provider not configured now.
	for _, a := range []map[string]string{
		{"revenue_share": "app B", "distribution": "mch N"},
		{"distribution": "mch O"},
		nil,
	} {
		if _, _, err := l.OpenRun(ctx, key, params(a)); err != nil {
			t.Fatalf("accounts %v: %v", a, err)
		}
	}
	var recorded string
	if err := l.DB().QueryRowContext(ctx, `SELECT accounts::text FROM runs WHERE id = $1`, run.ID).Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	if want := `{"distribution": "mch O", "revenue_share": "app B"}`; recorded != want {
		t.Fatalf("recorded %s, want %s", recorded, want)
	}
}

// TestTheLedgerReadsCommittedWhateverTheDatabaseDefault: a database (or
// role) whose default_transaction_isolation is serializable made every
// run fail at its upload stage, the trade files recorded side by side
// refused with serialization errors (40001), run after run: the day was
// never paid (found by a review that set it on the ledger's database).
// The ledger's sessions read committed, as its transactions are written
// for, from a URL and from a key=value string alike.
func TestTheLedgerReadsCommittedWhateverTheDatabaseDefault(t *testing.T) {
	t.Parallel()
	l, dsn := open(t)
	ctx := context.Background()
	var db string
	if err := l.DB().Get(&db, `SELECT current_database()`); err != nil {
		t.Fatal(err)
	}
	l.DB().MustExec(`ALTER DATABASE ` + pq.QuoteIdentifier(db) + ` SET default_transaction_isolation = 'serializable'`)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	kv := fmt.Sprintf("host=%s port=%s dbname=%s user=%s sslmode=disable", u.Hostname(), cmp.Or(u.Port(), "5432"), strings.TrimPrefix(u.Path, "/"), u.User.Username())
	if p, ok := u.User.Password(); ok {
		kv += " password='" + p + "'"
	}
	for _, dsn := range []string{dsn, kv} {
		other, err := ledger.Open(ctx, dsn, "")
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		var level string
		if err := other.DB().Get(&level, `SHOW transaction_isolation`); err != nil || level != "read committed" {
			t.Fatalf("the ledger's sessions are %q (%v), want read committed", level, err)
		}
	}
}

// TestTheLedgerHasNoStatementTimeout: a database (or role) whose
// statement_timeout is shorter than the ledger's largest statements (a
// day's copy, a whole day's reads) failed every run at the same statement,
// exit 1 "running again is safe". The ledger's sessions run without one,
// whatever the database's default.
func TestTheLedgerHasNoStatementTimeout(t *testing.T) {
	t.Parallel()
	l, dsn := open(t)
	ctx := context.Background()
	var db string
	if err := l.DB().Get(&db, `SELECT current_database()`); err != nil {
		t.Fatal(err)
	}
	l.DB().MustExec(`ALTER DATABASE ` + pq.QuoteIdentifier(db) + ` SET statement_timeout = '20ms'`)
	other, err := ledger.Open(ctx, dsn, "")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var timeout string
	if err := other.DB().Get(&timeout, `SHOW statement_timeout`); err != nil || timeout != "0" {
		t.Fatalf("the ledger's sessions' statement_timeout: %q (%v), want 0", timeout, err)
	}
	if _, err := other.DB().ExecContext(ctx, `SELECT pg_sleep(0.1)`); err != nil {
		t.Fatalf("a statement longer than the database's statement_timeout: %v", err)
	}
}

// TestRulesFilesKept: a run keeps the rules file it splits its day with,
// name and bytes as read (migration 00030), the one of the attempt that
// did the transform stage, as its rules hash: an item's rule, "rules.csv:3",
// is a line of that file. The same file opened again is kept once; kept
// files are never changed; a run opened with no file says so.
func TestRulesFilesKept(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	key := pipeline.RunKey{Date: day, Shard: pipeline.Whole}
	v1 := []byte("seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from\n,,,500,,,,2020-01-01\n")
	v2 := []byte("seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from\n,,,700,,,,2020-01-01\n")
	open := func(name string, body []byte, hash string) {
		t.Helper()
		if _, _, err := l.OpenRun(ctx, key, pipeline.RunParams{TimeZone: "UTC", RulesHash: hash, RulesName: name, RulesBody: body}); err != nil {
			t.Fatal(err)
		}
	}
	kept := func(what, name string, body []byte, hash string) {
		t.Helper()
		rs, err := l.RulesFiles(ctx, day)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 1 || !rs[0].Kept || rs[0].Name != name || rs[0].Body != string(body) || rs[0].RulesHash != hash || rs[0].ShardName != pipeline.Whole.String() {
			t.Fatalf("%s: %+v, want %s's %q under rules %s", what, rs, name, body, hash)
		}
	}
	open("rules.csv", v1, "h1")
	kept("first open", "rules.csv", v1, "h1")
	run, err := l.GetRun(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	open("new.csv", v2, "h2") // before the transform stage: this attempt's rules split the day
	kept("resumed before transform", "new.csv", v2, "h2")
	if err := l.CompleteStage(ctx, run.ID, pipeline.StageTransform); err != nil {
		t.Fatal(err)
	}
	open("rules.csv", v1, "h1") // after it: the file that split the day stays
	kept("resumed after transform", "new.csv", v2, "h2")
	open("other.csv", v1, "h1") // nor is this one kept: no run may split with it
	kept("resumed after transform with another file", "new.csv", v2, "h2")
	var n int
	if err := l.DB().Get(&n, `SELECT count(*) FROM rules_files`); err != nil || n != 2 {
		t.Fatalf("%d rules files kept (%v), want 2: each name and bytes once, none a run did not split with", n, err)
	}
	for _, q := range []string{`UPDATE rules_files SET body = 'x'`, `DELETE FROM rules_files`, `TRUNCATE rules_files CASCADE`} {
		if _, err := l.DB().Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Fatalf("%s: %v, want refused: a kept rules file is evidence", q, err)
		}
	}

	other := pipeline.RunKey{Date: day.AddDays(1), Shard: pipeline.Whole}
	if _, _, err := l.OpenRun(ctx, other, pipeline.RunParams{TimeZone: "UTC", RulesHash: "h3"}); err != nil {
		t.Fatal(err)
	}
	rs, err := l.RulesFiles(ctx, other.Date)
	if err != nil || len(rs) != 1 || rs[0].Kept || rs[0].RulesHash != "h3" || rs[0].Body != "" {
		t.Fatalf("a run with no file: %+v, %v; want one not kept, rules h3", rs, err)
	}
}

// TestOpenRunKeepsTheAccountsOfTheDatesBefore: a new date's run with
// another provider account for a kind than the latest earlier date sent
// requests of it from is refused (KindUsage) naming both, unless
// NewAccounts; once the date sent from the new account, its runs and the
// dates after go on from it without NewAccounts. A kind the dates before
// only planned is not judged.
func TestOpenRunKeepsTheAccountsOfTheDatesBefore(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	params := func(accounts map[string]string, fresh bool) pipeline.RunParams {
		return pipeline.RunParams{TimeZone: "UTC", RulesHash: "r", ConfigHash: "c", Accounts: accounts, NewAccounts: fresh}
	}
	send := func(run *pipeline.Run, kind, key string) {
		t.Helper()
		e, err := l.PlanEffect(ctx, pipeline.Effect{RunID: run.ID, Kind: kind, Subject: kind + "/" + key, Attempt: 1, Key: key, Currency: "USD", Amount: 100})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.MarkSent(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
	}
	before := pipeline.RunKey{Date: day.AddDays(-1), Shard: pipeline.Whole}
	run, _, err := l.OpenRun(ctx, before, params(map[string]string{"revenue_share": "app A", "distribution": "mch M"}, false))
	if err != nil {
		t.Fatal(err)
	}
	send(run, "revenue_share", "RS-A")
	if _, err := l.PlanEffect(ctx, pipeline.Effect{RunID: run.ID, Kind: "distribution", Subject: "D/1", Attempt: 1, Key: "D-1", Currency: "CNY", Amount: 100}); err != nil {
		t.Fatal(err)
	}
	key := pipeline.RunKey{Date: day, Shard: pipeline.Whole}
	_, _, err = l.OpenRun(ctx, key, params(map[string]string{"revenue_share": "app B", "distribution": "mch N"}, false))
	if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(fmt.Sprint(err), "revenue_share requests of "+before.Date.String()+" were sent from app A") ||
		!strings.Contains(fmt.Sprint(err), "go to app B") || strings.Contains(fmt.Sprint(err), "distribution") {
		t.Fatalf("a new date from another account: %v, want a usage error naming app A and app B alone", err)
	}
	if runs, err := l.RunsOn(ctx, day); err != nil || len(runs) != 0 {
		t.Fatalf("the refused run opened %d runs (%v)", len(runs), err)
	}
	// The same account for what was sent, another for what was only planned.
	if _, _, err := l.OpenRun(ctx, key, params(map[string]string{"revenue_share": "app A", "distribution": "mch N"}, false)); err != nil {
		t.Fatalf("the accounts the date before sent from: %v", err)
	}
	run, _, err = l.OpenRun(ctx, key, params(map[string]string{"revenue_share": "app B"}, true))
	if err != nil {
		t.Fatalf("another account with NewAccounts: %v", err)
	}
	send(run, "revenue_share", "RS-B")
	after := pipeline.RunKey{Date: day.AddDays(1), Shard: pipeline.Whole}
	for _, k := range []pipeline.RunKey{key, after} {
		if _, _, err := l.OpenRun(ctx, k, params(map[string]string{"revenue_share": "app B"}, false)); err != nil {
			t.Fatalf("%s from the new account, after the change: %v", k, err)
		}
	}
}

// TestOpenRunKeepsANewAccountOnceItSentAnything: the first date of a new
// account (NewAccounts) that sent requests of one kind of it (a trade
// file) and none yet of another from the same account (its revenue
// shares, or WeChat's unfreezes, sent some nights only) has taken the
// account for good: its own run resumed, and the dates after it, go on
// from it without NewAccounts. Judged by the kind alone, each was refused
// until a request of that kind went out from the new account, which no
// run could send: every nightly run after the change ended 2. Another
// account still is refused.
func TestOpenRunKeepsANewAccountOnceItSentAnything(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	params := func(account string, fresh bool) pipeline.RunParams {
		return pipeline.RunParams{TimeZone: "UTC", RulesHash: "r", ConfigHash: "c",
			Accounts: map[string]string{"upload": account, "revenue_share": account}, NewAccounts: fresh}
	}
	send := func(run *pipeline.Run, kind, key string) {
		t.Helper()
		e, err := l.PlanEffect(ctx, pipeline.Effect{RunID: run.ID, Kind: kind, Subject: kind + "/" + key, Attempt: 1, Key: key, Currency: "USD", Amount: 100})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.MarkSent(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
	}
	before := pipeline.RunKey{Date: day.AddDays(-1), Shard: pipeline.Whole}
	run, _, err := l.OpenRun(ctx, before, params("app A", false))
	if err != nil {
		t.Fatal(err)
	}
	send(run, "upload", "F-A")
	send(run, "revenue_share", "RS-A")
	key := pipeline.RunKey{Date: day, Shard: pipeline.Whole}
	if run, _, err = l.OpenRun(ctx, key, params("app B", true)); err != nil {
		t.Fatalf("another account with NewAccounts: %v", err)
	}
	send(run, "upload", "F-B") // its revenue shares not sent yet
	after := pipeline.RunKey{Date: day.AddDays(1), Shard: pipeline.Whole}
	for _, k := range []pipeline.RunKey{key, after} {
		if _, _, err := l.OpenRun(ctx, k, params("app B", false)); err != nil {
			t.Fatalf("%s from the new account, which sent a trade file on %s: %v", k.Date, day, err)
		}
	}
	later := pipeline.RunKey{Date: day.AddDays(2), Shard: pipeline.Whole}
	if _, _, err := l.OpenRun(ctx, later, params("app C", false)); pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(fmt.Sprint(err), "app B") {
		t.Fatalf("a third account: %v, want a usage error naming app B", err)
	}
}
