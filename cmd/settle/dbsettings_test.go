package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/pressly/goose/v3"

	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/pipeline/ledger"
	settlesql "github.com/settlekit/settle/sql"
)

// TestALedgerThatRefusesWritesIsConfiguration: the ledger's URL reaching
// a read replica by mistake, or a DBA's default_transaction_read_only on
// settle's role or database, refused every write ("cannot execute ... in a
// read-only transaction", 25006): that was exit 1, "a retry is safe", and
// the Job retried it to its deadline. It is exit 2, saying where to point
// the URL or what to turn off - at the migration of a new ledger and at
// the first write of one migrated already alike.
func TestALedgerThatRefusesWritesIsConfiguration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(20, 0)
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	db := pq.QuoteIdentifier(strings.TrimPrefix(u.Path, "/"))
	e.db.MustExec(`ALTER DATABASE ` + db + ` SET default_transaction_read_only = on`)
	for _, migrated := range []bool{false, true} {
		if migrated {
			e.db.MustExec(`ALTER DATABASE ` + db + ` RESET default_transaction_read_only`)
			e.mustSettle("migrate")
			e.db.MustExec(`ALTER DATABASE ` + db + ` SET default_transaction_read_only = on`)
		}
		out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, skipAll)
		if code != 2 || !strings.Contains(out, "read-only") || !strings.Contains(out, "default_transaction_read_only") || strings.Contains(out, "running the same command again is safe") {
			t.Fatalf("migrated %v: exit %d, want 2 saying what refused the write:\n%s", migrated, code, out)
		}
	}
}

// TestARunUnderLeastPrivilegeRoles: production roles, not the superuser
// the other tests run as. The platform's role may only SELECT the
// platform's tables; the ledger's run role owns nothing and holds only the
// rows' privileges on the ledger's tables, while "settle migrate" ran as
// the schema's owner: the run creates nothing (no schema, no table but its
// temporary ones) and settles the day. The roles were granted on a ledger
// of migration 00029, then the owner migrated it: 00030 added a table
// every run writes (rules_files), which a grant "on all tables" made
// before it does not cover, so the migration grants it to the roles that
// may open a run (the first night after the deploy was exit 2); so does
// 00034 its items_held, which every run's reject gate reads, and 00037
// its late_order_looks and late_orders, which a run's look writes.
func TestARunUnderLeastPrivilegeRoles(t *testing.T) {
	t.Parallel()
	e := newBareEnv(t)
	e.seed(40, 2)
	migrateTo(t, e.url, 29)
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	dbname := strings.TrimPrefix(u.Path, "/")
	suffix := strings.TrimPrefix(dbname, "settle_t_")
	runRole, srcRole := "settle_t_run_"+suffix, "settle_t_src_"+suffix
	for _, q := range []string{
		`CREATE ROLE ` + runRole + ` LOGIN`,
		`CREATE ROLE ` + srcRole + ` LOGIN`,
		`GRANT CONNECT ON DATABASE ` + dbname + ` TO ` + runRole + `, ` + srcRole,
		`GRANT USAGE ON SCHEMA settle TO ` + runRole,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA settle TO ` + runRole,
		`GRANT USAGE ON ALL SEQUENCES IN SCHEMA settle TO ` + runRole,
		`GRANT SELECT ON orders, refunds, sellers TO ` + srcRole,
	} {
		e.db.MustExec(q)
	}
	t.Cleanup(func() {
		for _, r := range []string{runRole, srcRole} {
			e.db.Exec(`DROP OWNED BY ` + r)
			e.db.Exec(`DROP ROLE ` + r)
		}
	})
	e.mustSettle("migrate") // the deploy's, by the schema's owner
	runURL, srcURL := *u, *u
	runURL.User, srcURL.User = url.User(runRole), url.User(srcRole)
	out, code := e.raw("settle", "run", "--database-url", runURL.String(), "--source-database-url", srcURL.String(),
		"--date", testDate, "--rules", e.rules, "--out", e.reports, skipAll)
	if code != 0 {
		t.Fatalf("run under least-privilege roles: exit %d, want 0:\n%s", code, out)
	}
	e.checkEveryOrderOnce()
	// Run again, it looks at its date's window (read before) and records
	// the look (00037's late_order_looks, granted as 00034's items_held).
	if out, code := e.raw("settle", "run", "--database-url", runURL.String(), "--source-database-url", srcURL.String(),
		"--date", testDate, "--rules", e.rules, "--out", e.reports, skipAll); code != 0 {
		t.Fatalf("run again under least-privilege roles: exit %d, want 0:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.late_order_looks WHERE business_date = $1`, testDate); n != 1 {
		t.Fatalf("the look of the run again not recorded (%d)", n)
	}
	if n := e.count(`SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = $1`, runRole); n != 0 {
		t.Fatalf("the run role owns %d relations, want none", n)
	}
	// A privilege missing is exit 2, PostgreSQL naming the table and
	// settle what its roles need.
	e.db.MustExec(`REVOKE INSERT ON settle.runs FROM ` + runRole)
	out, code = e.raw("settle", "run", "--database-url", runURL.String(), "--source-database-url", srcURL.String(),
		"--date", "2026-11-22", "--rules", e.rules, "--out", e.reports, skipAll)
	if code != 2 || !strings.Contains(out, "permission denied for table runs") || !strings.Contains(out, "INSERT, UPDATE and DELETE on the ledger schema's tables") {
		t.Fatalf("run role without INSERT on runs: exit %d, want 2 naming the table and what the role needs:\n%s", code, out)
	}
	// A migration pending (the image deployed before settle migrate ran)
	// is the run role's to apply, which it may not: exit 2, not a retry.
	// 00035 alters run_sellers, which only its owner may; 00036, after it,
	// only updates rows, which the run role may do.
	e.db.MustExec(`GRANT INSERT ON settle.runs TO ` + runRole)
	e.db.MustExec(`DELETE FROM settle.goose_db_version WHERE version_id >= 35`)
	out, code = e.raw("settle", "run", "--database-url", runURL.String(), "--source-database-url", srcURL.String(),
		"--date", "2026-11-22", "--rules", e.rules, "--out", e.reports, skipAll)
	if code != 2 || !strings.Contains(out, "migrate") {
		t.Fatalf("run role with a migration pending: exit %d, want 2 naming the migration refused:\n%s", code, out)
	}
}

// migrateTo applies the ledger's migrations (schema settle) at url up to
// version alone: a ledger an older settle migrated.
func migrateTo(t *testing.T, dbURL string, version int64) {
	t.Helper()
	withPath, err := ledger.WithParam(dbURL, "search_path", ledger.DefaultSchema)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("postgres", withPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE SCHEMA IF NOT EXISTS ` + ledger.DefaultSchema); err != nil {
		t.Fatal(err)
	}
	fsys, err := fs.Sub(settlesql.Migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(context.Background(), version); err != nil {
		t.Fatal(err)
	}
}

// TestAStandbysRecoveryConflictIsARetry: the platform's database read on a
// hot standby, which cancels a query whose snapshot needs rows the
// primary's vacuum removed, "canceling statement due to conflict with
// recovery" (serialization_failure, 40001): the next read is likely to go
// through, so it is exit 1, a retry, with a hint of what to change if it
// recurs. The function here raises what the standby raises, where the
// standby does, in the middle of the query.
func TestAStandbysRecoveryConflictIsARetry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(20, 0)
	e.db.MustExec(`CREATE FUNCTION recovery_conflict() RETURNS boolean LANGUAGE plpgsql AS $$
		BEGIN
			RAISE EXCEPTION USING ERRCODE = 'serialization_failure', MESSAGE = 'canceling statement due to conflict with recovery',
				DETAIL = 'User query might have needed to see row versions that must be removed.';
		END $$`)
	query := filepath.Join(t.TempDir(), "source.sql")
	if err := os.WriteFile(query, []byte("SELECT * FROM (\n"+settlesql.SourceQuery+"\n) s WHERE recovery_conflict()"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, "--source-query", query, skipAll)
	if code != 1 || !strings.Contains(out, "conflict with recovery") || !strings.Contains(out, "max_standby_streaming_delay") {
		t.Fatalf("exit %d, want 1 with a hint about the standby:\n%s", code, out)
	}
}

// TestALedgerOnAStandbyIsRetried: in a failover the ledger's address can
// reach the demoted primary, now a standby, for a while after the new one
// took over. Every write is refused there as read-only (25006), as under
// default_transaction_read_only, and that was exit 2: the Job failed for
// good and the night was missed until a person ran it. settle asks the
// server which it is: a standby (in recovery) is exit 1, a failure the
// Job's retry gets past, and the message says what to check if it keeps
// failing; the same run against the primary then settles the day.
func TestALedgerOnAStandbyIsRetried(t *testing.T) {
	t.Parallel()
	primary, standby := pgtest.PrimaryAndStandby(t)
	p := envOn(t, primary.URL("postgres"))
	p.seed(20, 0)
	p.mustSettle("migrate")
	s := envOn(t, standby.URL("postgres"))
	s.rules, s.reports = p.rules, p.reports
	for i := 0; ; i++ { // the standby has replayed the migration and the day
		var n int
		if err := s.db.Get(&n, `SELECT count(*) FROM settle.goose_db_version`); err == nil && n > 1 {
			if err := s.db.Get(&n, `SELECT count(*) FROM orders`); err == nil && n > 0 {
				break
			}
		}
		if i == 200 {
			t.Fatal("the standby never replayed the ledger's migration and the day's orders")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A ledger migrated already: the run's first write is refused (0A000,
	// "during recovery"); one to migrate (a new schema, as at a deploy
	// with a migration): the migration's (25006, "read-only transaction").
	for _, args := range [][]string{nil, {"--schema", "settle_new"}} {
		out, code := s.settle(append([]string{"run", "--date", testDate, "--rules", s.rules, "--out", s.reports, skipAll}, args...)...)
		if code != 1 || !strings.Contains(out, "reaches a standby") || !strings.Contains(out, "running the same command again is safe") ||
			strings.Contains(out, "default_transaction_read_only is on") {
			t.Fatalf("a run on a standby %v: exit %d, want 1 saying the ledger is a standby and a retry is safe:\n%s", args, code, out)
		}
	}
	p.mustSettle("run", "--date", testDate, "--rules", p.rules, "--out", p.reports, skipAll)
}

// TestAReadOnlyRefusalThatPassedIsRetried: a write refused as read-only by
// a server that, asked after it, takes writes (a failover that ended in
// between) or cannot be asked is exit 1, saying so; only a server that
// says it is read-only by default for settle's session makes it exit 2.
func TestAReadOnlyRefusalThatPassedIsRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	refused := fmt.Errorf("open run: %w", &pq.Error{Code: "25006", Message: "cannot execute INSERT in a read-only transaction"})
	for _, url := range []string{e.url, "postgres://127.0.0.1:1/nothing?sslmode=disable"} {
		cfg := &config{ledgerURL: url}
		err := cfg.whyReadOnly(context.Background(), refused)
		if codeOf(err) != 1 || failureHint(err) != hintReadOnlyPassed || !errors.Is(err, errReadOnlyPassed) {
			t.Fatalf("ledger %s: exit %d, hint %q (%v); want 1 and hintReadOnlyPassed", url, codeOf(err), failureHint(err), err)
		}
		cfg.ledgerURL = "postgres://127.0.0.1:1/asked-once?sslmode=disable"
		if again := cfg.whyReadOnly(context.Background(), err); again != err {
			t.Fatalf("asked again: %v", again) // the run's action asks, then runAt: once
		}
	}
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	e.db.MustExec(`ALTER DATABASE ` + pq.QuoteIdentifier(strings.TrimPrefix(u.Path, "/")) + ` SET default_transaction_read_only = on`)
	cfg := &config{ledgerURL: e.url}
	if err := cfg.whyReadOnly(context.Background(), refused); codeOf(err) != 2 || failureHint(err) != hintReadOnly {
		t.Fatalf("read-only by default: exit %d, hint %q; want 2 and hintReadOnly", codeOf(err), failureHint(err))
	}
}

// TestTheReadOnlyProbeIsBounded: whyReadOnly asks the ledger's server
// within a bound of its own. lib/pq bounds by the context the dial alone:
// a server, or a proxy in front of it in a failover, that takes the
// connection and never answers the startup held the process - a pod
// stopping, its exit code not yet given - for as long as it kept the
// connection open. No answer in time is errReadOnlyPassed, exit 1.
func TestTheReadOnlyProbeIsBounded(t *testing.T) {
	t.Parallel()
	addr, _ := silentServer(t)
	refused := fmt.Errorf("open run: %w", &pq.Error{Code: "25006", Message: "cannot execute INSERT in a read-only transaction"})
	cfg := &config{ledgerURL: "postgres://settle@" + addr + "/settle?sslmode=disable"}
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- cfg.whyReadOnly(context.Background(), refused) }()
	select {
	case err := <-done:
		if took := time.Since(start); took > readOnlyProbeWait+2*time.Second || codeOf(err) != 1 || !errors.Is(err, errReadOnlyPassed) {
			t.Fatalf("after %v: exit %d (%v); want exit 1, no answer, within %v", took, codeOf(err), err, readOnlyProbeWait)
		}
	case <-time.After(readOnlyProbeWait + 10*time.Second):
		t.Fatalf("whyReadOnly still waiting on a server that never answers after %v (its bound: %v)", time.Since(start), readOnlyProbeWait)
	}
}

// TestASourceQueryRefusedAsReadOnlyIsConfiguration: settle reads the
// platform in read-only transactions, and a source query that locks rows
// (FOR UPDATE) or writes (nextval, a function that logs) is refused there
// as read-only, 25006, on every run. That is the query's to change, exit
// 2, whichever row the refusal came on - lib/pq reports the first row's
// from the query, a later one's from the end of the rows, which was exit
// 1 - and the message is the platform database's: settle asked the
// ledger's server why it was read-only, added its answer to the error
// ("the ledger's server takes writes") and, for the later row, said "a
// failover that has ended? running the same command again is safe".
func TestASourceQueryRefusedAsReadOnlyIsConfiguration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(20, 0)
	e.db.MustExec(`CREATE SEQUENCE source_query_writes`)
	base := strings.TrimRight(strings.TrimSpace(settlesql.SourceQuery), ";")
	laterRow := strings.Replace(base, "o.category,", `o.category || CASE WHEN o.order_no = (SELECT max(order_no) FROM orders
		WHERE confirmed_at >= $1 AND confirmed_at < $2) THEN nextval('source_query_writes')::text ELSE '' END AS category,`, 1)
	if laterRow == base {
		t.Fatal("the source query has no o.category to change")
	}
	for name, q := range map[string]string{"locks.sql": base + "\nFOR UPDATE OF o\n", "writes.sql": laterRow + "\nORDER BY o.order_no\n"} {
		f := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(f, []byte(q), 0o600); err != nil {
			t.Fatal(err)
		}
		out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, skipAll, "--"+flagSourceQuery, f)
		if code != 2 || !strings.Contains(out, "source query "+f) || !strings.Contains(out, "read-only transaction") ||
			strings.Contains(out, "ledger's server") || strings.Contains(out, "again is safe") {
			t.Errorf("%s: exit %d, want 2 naming the source query and its refusal, not the ledger:\n%s", name, code, out)
		}
	}
}

// silentServer listens on a port of its own and takes every connection
// without ever answering, as a database, or a proxy in front of one in a
// failover, that hangs does: its address, and how many connections it
// took so far.
func silentServer(t *testing.T) (string, func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // taken, never answered
			mu.Unlock()
		}
	}()
	return ln.Addr().String(), func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(conns)
	}
}
