package extract_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/settlekit/settle/extract"
	"github.com/settlekit/settle/internal/pgserver"
	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/pipeline"
)

// TestOrdersWaitForAStandbyToReplayTheDay: the platform's database read on
// a hot standby whose replay is behind its primary. Its own clock is past
// the day's end and margin, so the day was read - without the orders the
// primary committed in its last moments, not replayed yet - and recorded
// as read: those orders were never paid. Orders refuses (exit 1, a retry)
// until the standby has replayed what the primary committed past the day's
// end and margin. The standby is a real one, streaming from its primary,
// its replay paused (pg_wal_replay_pause) as a lag would hold it.
func TestOrdersWaitForAStandbyToReplayTheDay(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, pdb, sdb := primaryAndStandby(ctx, t)
	pdb.MustExec(`CREATE TABLE orders (order_no text, confirmed_at timestamptz)`)
	replayed := func(q string) { t.Helper(); waitReplayed(t, sdb, q) }
	replayed(`SELECT count(*) FROM pg_class WHERE relname = 'orders'`)
	sdb.MustExec(`SELECT pg_wal_replay_pause()`)

	var now time.Time
	if err := pdb.Get(&now, `SELECT statement_timestamp()`); err != nil {
		t.Fatal(err)
	}
	w := pipeline.Window{Start: now.Add(-time.Hour), End: now.Add(300 * time.Millisecond)}
	margin := 300 * time.Millisecond
	// An order confirmed in the day's last moment, committed within the
	// margin; then, past it, the primary commits on.
	pdb.MustExec(`INSERT INTO orders VALUES ('LAST', $1)`, w.End.Add(-time.Millisecond))
	for {
		if err := pdb.Get(&now, `SELECT statement_timestamp()`); err != nil {
			t.Fatal(err)
		}
		if now.After(w.End.Add(margin)) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	pdb.MustExec(`INSERT INTO orders VALUES ('NEXT DAY', $1)`, now)

	src := &extract.Source{DB: sdb, Name: "q.sql", Margin: margin, Query: `SELECT order_no, 'S1'::text AS seller_id, 'infiniapay'::text AS provider,
		NULL::text AS provider_txn_id, 'USD'::text AS currency, 1::bigint AS amount_minor, 0::bigint AS refunded_minor, 'c'::text AS category,
		confirmed_at AS paid_at, confirmed_at FROM orders WHERE confirmed_at >= $1 AND confirmed_at < $2`}
	read := func() ([]string, error) {
		var got []string
		err := src.Orders(ctx, w, func(r pipeline.SourceRow) error { got = append(got, *r.OrderNo); return nil })
		return got, err
	}
	got, err := read()
	if err == nil || pipeline.KindOf(err) != pipeline.KindFailed || !strings.Contains(err.Error(), "standby") {
		t.Fatalf("on a standby behind the day's end: rows %q, %v; want a failure to retry naming the standby", got, err)
	}
	late := &extract.LateRefunds{DB: sdb, Name: "late.sql", Margin: margin, Query: `SELECT order_no AS refund_no, order_no, 'S1'::text AS seller_id,
		1::bigint AS amount_minor, confirmed_at AS created_at FROM orders WHERE confirmed_at >= $1 AND confirmed_at < $2`}
	readLate := func() ([]string, error) {
		var got []string
		err := late.LateRefunds(ctx, w, func(r pipeline.LateRefundRow) error { got = append(got, *r.RefundNo); return nil })
		return got, err
	}
	if got, err := readLate(); err == nil || pipeline.KindOf(err) != pipeline.KindFailed || !strings.Contains(err.Error(), "standby") {
		t.Fatalf("late refunds on a standby behind the day's end: rows %q, %v; want a failure to retry naming the standby", got, err)
	}
	sdb.MustExec(`SELECT pg_wal_replay_resume()`)
	replayed(`SELECT count(*) FROM orders WHERE order_no = 'NEXT DAY'`)
	if got, err := read(); err != nil || strings.Join(got, ",") != "LAST" {
		t.Fatalf("on a standby caught up: rows %q, %v; want LAST", got, err)
	}
	if got, err := readLate(); err != nil || strings.Join(got, ",") != "LAST" {
		t.Fatalf("late refunds on a standby caught up: rows %q, %v; want LAST", got, err)
	}
}

// TestOrdersOnAStandbyOfAQuietPrimary: a standby of a primary that
// committed nothing after the day's end and margin (a quiet platform) has
// no replayed commit past them to show, and was refused (exit 1) on every
// run until something committed. Told it streams straight from the
// primary, Orders reads it once its WAL receiver shows it replayed all the
// primary had when it last heard from it, at or after the day's end and
// margin - and still refuses while an order committed before then is not
// replayed (replay paused), while settle's role cannot read the receiver
// (pg_read_all_stats names the grant), or while a receiver just restarted
// has heard nothing from the primary yet.
func TestOrdersOnAStandbyOfAQuietPrimary(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	standby, pdb, sdb := primaryAndStandby(ctx, t)
	pdb.MustExec(`CREATE TABLE orders (order_no text, confirmed_at timestamptz)`)
	pdb.MustExec(`CREATE ROLE reader LOGIN`)
	pdb.MustExec(`CREATE ROLE stats LOGIN IN ROLE pg_read_all_stats`)
	pdb.MustExec(`GRANT SELECT ON orders TO reader, stats`)
	replayed := func(q string) { t.Helper(); waitReplayed(t, sdb, q) }
	replayed(`SELECT count(*) FROM pg_roles WHERE rolname = 'stats'`)
	replayed(`SELECT count(*) FROM pg_class WHERE relname = 'orders'`)
	sdb.MustExec(`SELECT pg_wal_replay_pause()`)

	var now time.Time
	if err := pdb.Get(&now, `SELECT statement_timestamp()`); err != nil {
		t.Fatal(err)
	}
	margin := 300 * time.Millisecond
	w := pipeline.Window{Start: now.Add(-time.Hour), End: now.Add(300 * time.Millisecond)}
	from := w.End.Add(margin)
	// The day's last order, committed within the margin; then the primary
	// commits nothing more.
	pdb.MustExec(`INSERT INTO orders VALUES ('LAST', $1)`, w.End.Add(-time.Millisecond))
	// The standby hears from the primary after from, its replay paused
	// before LAST.
	heard := func() {
		t.Helper()
		for i := 0; ; i++ {
			var ok bool
			if err := sdb.Get(&ok, `SELECT coalesce(bool_or(last_msg_send_time >= $1::timestamptz), false) FROM pg_stat_wal_receiver WHERE status = 'streaming'`, from); err != nil {
				t.Fatal(err)
			}
			if ok {
				return
			}
			if i == 200 {
				t.Fatal("the standby never heard from the primary after the day's end and margin")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	heard()

	query := `SELECT order_no, 'S1'::text AS seller_id, 'infiniapay'::text AS provider,
		NULL::text AS provider_txn_id, 'USD'::text AS currency, 1::bigint AS amount_minor, 0::bigint AS refunded_minor, 'c'::text AS category,
		confirmed_at AS paid_at, confirmed_at FROM orders WHERE confirmed_at >= $1 AND confirmed_at < $2`
	lateQuery := `SELECT order_no AS refund_no, order_no, 'S1'::text AS seller_id,
		1::bigint AS amount_minor, confirmed_at AS created_at FROM orders WHERE confirmed_at >= $1 AND confirmed_at < $2`
	read := func(db *sqlx.DB, direct bool) ([]string, error) {
		var got []string
		src := &extract.Source{DB: db, Name: "q.sql", Margin: margin, Query: query, StandbyOfPrimary: direct}
		err := src.Orders(ctx, w, func(r pipeline.SourceRow) error { got = append(got, *r.OrderNo); return nil })
		return got, err
	}
	readLate := func(db *sqlx.DB, direct bool) ([]string, error) {
		var got []string
		late := &extract.LateRefunds{DB: db, Name: "late.sql", Margin: margin, Query: lateQuery, StandbyOfPrimary: direct}
		err := late.LateRefunds(ctx, w, func(r pipeline.LateRefundRow) error { got = append(got, *r.RefundNo); return nil })
		return got, err
	}
	refused := func(what string, got []string, err error, word string) {
		t.Helper()
		if err == nil || pipeline.KindOf(err) != pipeline.KindFailed || !strings.Contains(err.Error(), word) {
			t.Fatalf("%s: rows %q, %v; want a failure to retry naming %q", what, got, err, word)
		}
	}
	got, err := read(sdb, true)
	refused("LAST not replayed, the primary heard from after the day's end and margin", got, err, "replayed all the primary had")
	got, err = readLate(sdb, true)
	refused("late refunds, LAST not replayed", got, err, "replayed all the primary had")

	sdb.MustExec(`SELECT pg_wal_replay_resume()`)
	replayed(`SELECT count(*) FROM orders WHERE order_no = 'LAST'`)
	heard()
	// Nothing was committed past from: the last replayed commit says
	// nothing of it.
	var last time.Time
	if err := sdb.Get(&last, `SELECT pg_last_xact_replay_timestamp()`); err != nil {
		t.Fatal(err)
	}
	if !last.Before(from) {
		t.Fatalf("the primary committed at %s, after %s: the test needs it quiet", last, from)
	}
	got, err = read(sdb, false)
	refused("a standby not said to stream from the primary", got, err, "--source-standby-of-primary")
	if got, err := read(sdb, true); err != nil || strings.Join(got, ",") != "LAST" {
		t.Fatalf("on a standby of a quiet primary, caught up: rows %q, %v; want LAST", got, err)
	}
	if got, err := readLate(sdb, true); err != nil || strings.Join(got, ",") != "LAST" {
		t.Fatalf("late refunds on a standby of a quiet primary, caught up: rows %q, %v; want LAST", got, err)
	}
	as := func(role string) *sqlx.DB {
		db := sqlx.MustOpen("postgres", strings.Replace(standby.URL("postgres"), "postgres@", role+"@", 1))
		t.Cleanup(func() { db.Close() })
		return db
	}
	got, err = read(as("reader"), true)
	refused("a role that cannot read the WAL receiver", got, err, "GRANT pg_read_all_stats")
	if got, err := read(as("stats"), true); err != nil || strings.Join(got, ",") != "LAST" {
		t.Fatalf("a role with pg_read_all_stats: rows %q, %v; want LAST", got, err)
	}

	// A WAL receiver restarted (here for a new primary_conninfo; a restart
	// of the standby too) shows its own start, on the standby's clock, as
	// its last message's time, and its predecessor's end of WAL (none
	// after a restart of the standby), until the primary first answers
	// its pings: 30 s apart now.
	var conninfo string
	var pid int
	if err := sdb.Get(&conninfo, `SHOW primary_conninfo`); err != nil {
		t.Fatal(err)
	}
	if err := sdb.Get(&pid, `SELECT pid FROM pg_stat_wal_receiver`); err != nil {
		t.Fatal(err)
	}
	// The new receiver asks for WAL from the start of the segment it is
	// in, which the primary sends at once; from the start of a new one, it
	// has nothing to send until pinged.
	var flushed string
	pdb.MustExec(`SELECT pg_switch_wal()`)
	if err := pdb.Get(&flushed, `SELECT pg_current_wal_flush_lsn()`); err != nil {
		t.Fatal(err)
	}
	replayed(fmt.Sprintf(`SELECT count(*) FROM pg_stat_wal_receiver WHERE pg_last_wal_replay_lsn() >= '%s' AND latest_end_lsn >= '%s'`, flushed, flushed))
	sdb.MustExec(`ALTER SYSTEM SET wal_receiver_timeout = '60s'`)
	sdb.MustExec(`ALTER SYSTEM SET primary_conninfo = ` + pq.QuoteLiteral(conninfo+" application_name=restarted"))
	sdb.MustExec(`SELECT pg_reload_conf()`)
	replayed(fmt.Sprintf(`SELECT count(*) FROM pg_stat_wal_receiver WHERE pid <> %d AND status = 'streaming' AND last_msg_send_time = last_msg_receipt_time`, pid))
	got, err = read(sdb, true)
	refused("a WAL receiver that has heard nothing from the primary since it started", got, err, "heard nothing from the primary")
}

// primaryAndStandby starts a primary and a hot standby streaming from it
// (pgtest.PrimaryAndStandby) and opens their postgres databases (closed
// when t ends); it returns the standby and both databases.
func primaryAndStandby(_ context.Context, t *testing.T) (standby *pgserver.Server, pdb, sdb *sqlx.DB) {
	t.Helper()
	primary, standby := pgtest.PrimaryAndStandby(t)
	pdb, sdb = sqlx.MustOpen("postgres", primary.URL("postgres")), sqlx.MustOpen("postgres", standby.URL("postgres"))
	t.Cleanup(func() { pdb.Close(); sdb.Close() })
	return standby, pdb, sdb
}

// waitReplayed waits (up to 10 s) until q, a count, is positive on the
// standby sdb: what the primary did has been replayed there.
func waitReplayed(t *testing.T, sdb *sqlx.DB, q string) {
	t.Helper()
	for i := 0; ; i++ {
		var n int
		if err := sdb.Get(&n, q); err == nil && n > 0 {
			return
		}
		if i == 200 {
			t.Fatalf("the standby never replayed: %s", q)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
