package extract_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/extract"
	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/pipeline"
)

// A platform database whose statement_timeout is shorter than settle's
// queries take ended every run at the same query, exit 1, its last line
// saying running again was safe. Such a timeout is configuration (exit 2)
// naming the setting and what to change, for the source, sellers and
// late-refunds queries alike; settle does not lift the DBA's setting by
// itself, and the URL parameter the message names does. A statement
// cancelled otherwise (a person's pg_cancel_backend) is not configuration.
func TestAStatementTimeoutOfThePlatformIsConfiguration(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	open := func(url string) *sqlx.DB {
		db, err := sqlx.Open("postgres", url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	admin := open(url)
	admin.MustExec(`DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET statement_timeout = %L', current_database(), '50ms'); END $$`)
	w := pipeline.Window{Start: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)}
	// Each query streams thousands of rows before its last one sleeps: the
	// timeout comes mid-stream, as on a large day (rows.Err), after rows
	// were handed on.
	const slow = `FROM generate_series(1, 5000) g WHERE (g < 5000 OR pg_sleep(0.3)::text = '')`
	const orders = `SELECT 'A' || g AS order_no, 'S1'::text AS seller_id, 'infiniapay'::text AS provider, repeat('x', 100) AS provider_txn_id,
			'USD'::text AS currency, 1200 AS amount_minor, 0 AS refunded_minor, 'c'::text AS category,
			$1::timestamptz AS paid_at, $1::timestamptz AS confirmed_at ` + slow + ` AND $1::timestamptz < $2::timestamptz`
	const sellers = `SELECT 'S1'::text AS seller_id, repeat('x', 100) AS name, NULL::text AS entity_type, NULL::text AS country,
			'INF1'::text AS infinia_seller_id, NULL::text AS wechat_sub_mchid ` + slow + ` AND 'S1' = ANY ($1)`
	const refunds = `SELECT 'R' || g AS refund_no, repeat('x', 100) AS order_no, 'S1'::text AS seller_id, 100 AS amount_minor,
			$1::timestamptz AS created_at ` + slow + ` AND $1::timestamptz < $2::timestamptz`
	var handed int // orders and late refunds handed on
	read := func(db *sqlx.DB, o, s, r string) []error {
		ctx := context.Background()
		handed = 0
		return []error{
			(&extract.Source{DB: db, Name: "orders.sql", Query: o}).Orders(ctx, w, func(pipeline.SourceRow) error { handed++; return nil }),
			(&extract.Sellers{DB: db, Name: "sellers.sql", Query: s}).Sellers(ctx, []string{"S1"}, func(pipeline.Seller) error { return nil }),
			(&extract.LateRefunds{DB: db, Name: "refunds.sql", Query: r}).LateRefunds(ctx, w, func(pipeline.LateRefundRow) error { handed++; return nil }),
		}
	}
	errs := read(open(url), orders, sellers, refunds)
	if handed == 0 {
		t.Errorf("no row handed on before the timeout: the test does not time out mid-stream")
	}
	for i, err := range errs {
		what := []string{"source query orders.sql", "sellers query sellers.sql", "late-refunds query refunds.sql"}[i]
		if pipeline.KindOf(err) != pipeline.KindUsage || !strings.HasPrefix(err.Error(), what) ||
			!strings.Contains(err.Error(), "statement_timeout") || !strings.Contains(err.Error(), "ALTER ROLE") {
			t.Errorf("%s under a 50ms statement_timeout: %v (kind %v), want a usage error naming the query and statement_timeout", what, err, pipeline.KindOf(err))
		}
	}
	// What the message says to set on the URL lifts it.
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	for _, lifted := range []string{url + sep + "statement_timeout=0", url + sep + "options=-c%20statement_timeout%3D0"} {
		for i, err := range read(open(lifted), orders, sellers, refunds) {
			if err != nil || handed != 2*5000 {
				t.Errorf("query %d with %s: %v (%d rows handed on)", i, lifted[len(url):], err, handed)
			}
		}
	}
	// A statement a person cancels is no timeout.
	cancelled := func(q string) string {
		return strings.Replace(q, "pg_sleep(0.3)", "pg_cancel_backend(pg_backend_pid())::text = '' OR pg_sleep(1)", 1)
	}
	admin.MustExec(`DO $$ BEGIN EXECUTE format('ALTER DATABASE %I RESET statement_timeout', current_database()); END $$`)
	for i, err := range read(open(url), cancelled(orders), cancelled(sellers), cancelled(refunds)) {
		if err == nil || !strings.Contains(err.Error(), "user request") || strings.Contains(err.Error(), "statement_timeout") {
			t.Errorf("query %d cancelled by a person: %v, want the cancel, not a statement timeout", i, err)
		}
	}
}

// TestAQueryStoppedByTheRunIsNoConfiguration: the run told to stop
// (SIGTERM: a node drained, the Job's deadline) while a source, sellers or
// late-refunds query was in flight ended it with the same error as a
// query the platform refuses, configuration (exit 2), and the Job's
// podFailurePolicy failed the whole night for good. A query the run's
// own context stopped is the interruption: not KindUsage, and
// context.Canceled in its chain (exit 1, resumed by the next run). So is
// one whose session the server ended (a restart): a failure to retry.
func TestAQueryStoppedByTheRunIsNoConfiguration(t *testing.T) {
	t.Parallel()
	db, err := sqlx.Open("postgres", pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w := pipeline.Window{Start: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)}
	// Each query sleeps before its first row: the stop comes while the
	// query is being answered.
	const slow = `FROM generate_series(1, 10) g, (SELECT pg_sleep(20)) s WHERE true`
	const orders = `SELECT 'A' || g AS order_no, 'S1'::text AS seller_id, 'infiniapay'::text AS provider, 'T' || g AS provider_txn_id,
			'USD'::text AS currency, 1200 AS amount_minor, 0 AS refunded_minor, 'c'::text AS category,
			$1::timestamptz AS paid_at, $1::timestamptz AS confirmed_at ` + slow + ` AND $1::timestamptz < $2::timestamptz`
	const sellers = `SELECT 'S1'::text AS seller_id, 'x' AS name, NULL::text AS entity_type, NULL::text AS country,
			'INF1'::text AS infinia_seller_id, NULL::text AS wechat_sub_mchid ` + slow + ` AND 'S1' = ANY ($1)`
	const refunds = `SELECT 'R' || g AS refund_no, 'A1' AS order_no, 'S1'::text AS seller_id, 100 AS amount_minor,
			$1::timestamptz AS created_at ` + slow + ` AND $1::timestamptz < $2::timestamptz`
	reads := map[string]func(context.Context) error{
		"source query orders.sql": func(ctx context.Context) error {
			return (&extract.Source{DB: db, Name: "orders.sql", Query: orders, Unfinished: true}).Orders(ctx, w, func(pipeline.SourceRow) error { return nil })
		},
		"sellers query sellers.sql": func(ctx context.Context) error {
			return (&extract.Sellers{DB: db, Name: "sellers.sql", Query: sellers}).Sellers(ctx, []string{"S1"}, func(pipeline.Seller) error { return nil })
		},
		"late-refunds query refunds.sql": func(ctx context.Context) error {
			return (&extract.LateRefunds{DB: db, Name: "refunds.sql", Query: refunds}).LateRefunds(ctx, w, func(pipeline.LateRefundRow) error { return nil })
		},
	}
	// The server ends the session mid-query (a restart, a failover,
	// pg_terminate_backend): a failure a retry may get past (exit 1), not
	// the query refused (exit 2, which failed the Job for good).
	for what, read := range reads {
		time.AfterFunc(300*time.Millisecond, func() {
			db.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%pg_sleep(20)%'`)
		})
		err := read(context.Background())
		if err == nil || pipeline.KindOf(err) != pipeline.KindFailed || !strings.HasPrefix(err.Error(), what) {
			t.Errorf("%s whose session the server ended: %v (kind %v), want a failure to retry naming the query", what, err, pipeline.KindOf(err))
		}
	}
	// A person cancels the query before its first row (a DBA's
	// pg_cancel_backend of a long read, "canceling statement due to user
	// request"): an operator's intervention, a failure to retry as it is
	// on a later row, not the query refused (exit 2 failed the Job for
	// good).
	for what, read := range reads {
		time.AfterFunc(300*time.Millisecond, func() {
			db.Exec(`SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%pg_sleep(20)%'`)
		})
		err := read(context.Background())
		if err == nil || pipeline.KindOf(err) != pipeline.KindFailed || !strings.HasPrefix(err.Error(), what) || !strings.Contains(err.Error(), "user request") {
			t.Errorf("%s a person cancelled: %v (kind %v), want a failure to retry naming the query", what, err, pipeline.KindOf(err))
		}
	}
	for what, read := range reads {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(300*time.Millisecond, cancel)
		start := time.Now()
		err := read(ctx)
		cancel()
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("%s: stopped after %s", what, took)
		}
		if err == nil || pipeline.KindOf(err) == pipeline.KindUsage || !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), what) {
			t.Errorf("%s stopped by the run: %v (kind %v), want the interruption (context.Canceled, not configuration), naming the query", what, err, pipeline.KindOf(err))
		}
	}
}

// TestTheServersOwnTroubleIsNoConfiguration: the platform's server failed
// a query for a trouble of its own before the query's first row - out of
// temporary file space for a large day's sort or hash, out of memory, an
// internal error. It says nothing of the query, and is a failure to retry
// (exit 1), as on a later row (refusedMidway); it was exit 2, the Job
// failed for good. A server cannot be made to run out of disk on demand:
// a function raises the server's codes, with their words, where the query
// is planned to evaluate it before any row.
func TestTheServersOwnTroubleIsNoConfiguration(t *testing.T) {
	t.Parallel()
	db, err := sqlx.Open("postgres", pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.MustExec(`CREATE FUNCTION trouble(code text, msg text) RETURNS int LANGUAGE plpgsql VOLATILE AS $$
		BEGIN RAISE EXCEPTION '%', msg USING ERRCODE = code; END $$`)
	w := pipeline.Window{Start: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)}
	for code, msg := range map[string]string{
		"53100": `could not write to file "base/pgsql_tmp/pgsql_tmp4242.0": No space left on device`,
		"53200": "out of memory",
		"XX000": "could not read block 7 in file \"base/16384/16385\": read only 0 of 8192 bytes",
		"58030": "could not open file \"base/16384/16385\": Input/output error",
	} {
		from := `FROM generate_series(1, 3) g, (SELECT trouble('` + code + `', '` + strings.ReplaceAll(msg, "'", "''") + `')) s WHERE $1::timestamptz < $2::timestamptz`
		orders := `SELECT 'A' || g AS order_no, 'S1'::text AS seller_id, 'infiniapay'::text AS provider, 'T' || g AS provider_txn_id,
			'USD'::text AS currency, 1200 AS amount_minor, 0 AS refunded_minor, 'c'::text AS category,
			$1::timestamptz AS paid_at, $1::timestamptz AS confirmed_at ` + from
		refunds := `SELECT 'R' || g AS refund_no, 'A1' AS order_no, 'S1'::text AS seller_id, 100 AS amount_minor, $1::timestamptz AS created_at ` + from
		sellers := `SELECT 'S1'::text AS seller_id, 'x' AS name, NULL::text AS entity_type, NULL::text AS country,
			'INF1'::text AS infinia_seller_id, NULL::text AS wechat_sub_mchid FROM (SELECT trouble('` + code + `', 'x')) s WHERE 'S1' = ANY ($1)`
		ctx := context.Background()
		for what, err := range map[string]error{
			"source query orders.sql":        (&extract.Source{DB: db, Name: "orders.sql", Query: orders, Unfinished: true}).Orders(ctx, w, func(pipeline.SourceRow) error { return nil }),
			"sellers query sellers.sql":      (&extract.Sellers{DB: db, Name: "sellers.sql", Query: sellers}).Sellers(ctx, []string{"S1"}, func(pipeline.Seller) error { return nil }),
			"late-refunds query refunds.sql": (&extract.LateRefunds{DB: db, Name: "refunds.sql", Query: refunds}).LateRefunds(ctx, w, func(pipeline.LateRefundRow) error { return nil }),
		} {
			if err == nil || pipeline.KindOf(err) != pipeline.KindFailed || !strings.HasPrefix(err.Error(), what) || !strings.Contains(err.Error(), code) {
				t.Errorf("%s failed by the server's %s: %v (kind %v), want a failure to retry naming the query and the code", what, code, err, pipeline.KindOf(err))
			}
		}
	}
}

// TestALockTimeoutOfThePlatformIsARetry: the platform's role or database
// has a lock_timeout (a DBA's guard for the platform's web sessions), and
// a table the query reads is locked when settle reads it - a migration of
// the platform's schema, a VACUUM FULL, a TRUNCATE at 02:30. The query is
// refused "canceling statement due to lock timeout" (55P03): a lock
// someone held then, which the next run is likely not to meet, not the
// query refused (exit 2 failed the Job for good, and the date waited for a
// person). A failure to retry, naming the query, before its first row or
// on a later one.
func TestALockTimeoutOfThePlatformIsARetry(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	admin, err := sqlx.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	admin.MustExec(`CREATE TABLE locked (seller_id text, at timestamptz)`)
	admin.MustExec(`INSERT INTO locked VALUES ('S1', '2026-11-23 12:00:00+00')`)
	admin.MustExec(`DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET lock_timeout = %L', current_database(), '100ms'); END $$`)
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w := pipeline.Window{Start: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)}
	orders := `SELECT 'A1'::text AS order_no, seller_id, 'infiniapay'::text AS provider, NULL::text AS provider_txn_id, 'USD'::text AS currency,
		100::bigint AS amount_minor, 0::bigint AS refunded_minor, 'c'::text AS category, at AS paid_at, at AS confirmed_at
		FROM locked WHERE at >= $1 AND at < $2`
	sellers := `SELECT seller_id, 'one'::text AS name, NULL::text AS entity_type, NULL::text AS country, 'INF1'::text AS infinia_seller_id,
		NULL::text AS wechat_sub_mchid FROM locked WHERE seller_id = ANY ($1)`
	refunds := `SELECT 'R1'::text AS refund_no, 'A1'::text AS order_no, seller_id, 10::bigint AS amount_minor, at AS created_at
		FROM locked WHERE at >= $1 AND at < $2`
	ctx := context.Background()
	read := func() map[string]error {
		lr := &extract.LateRefunds{DB: db, Name: "refunds.sql", Query: refunds}
		return map[string]error{
			"source query orders.sql":         (&extract.Source{DB: db, Name: "orders.sql", Query: orders, Unfinished: true}).Orders(ctx, w, func(pipeline.SourceRow) error { return nil }),
			"sellers query sellers.sql":       (&extract.Sellers{DB: db, Name: "sellers.sql", Query: sellers}).Sellers(ctx, []string{"S1"}, func(pipeline.Seller) error { return nil }),
			"late-refunds query refunds.sql":  lr.LateRefunds(ctx, w, func(pipeline.LateRefundRow) error { return nil }),
			"late-refunds query refunds.sql ": lr.Check(ctx, w),
		}
	}
	// A migration of the platform holds the table.
	tx := admin.MustBegin()
	tx.MustExec(`LOCK TABLE locked IN ACCESS EXCLUSIVE MODE`)
	for what, err := range read() {
		what = strings.TrimSpace(what)
		if err == nil || pipeline.KindOf(err) != pipeline.KindFailed || !strings.HasPrefix(err.Error(), what) || !strings.Contains(err.Error(), "lock timeout") {
			t.Errorf("%s on a table locked past the lock_timeout: %v (kind %v), want a failure to retry naming the query", what, err, pipeline.KindOf(err))
		}
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	for what, err := range read() {
		if err != nil {
			t.Errorf("%s once the lock is let go of: %v", what, err)
		}
	}
}
