package extract_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/extract"
	"github.com/settlekit/settle/internal/pgserver"
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
	primary, err := pgserver.Start(ctx, "", nil)
	if errors.Is(err, pgserver.ErrNotInstalled) {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatalf("CI=true: %v", err)
		}
		t.Skipf("SKIPPED, PostgreSQL is not installed: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { primary.Stop() })
	standby, err := pgserver.StartStandby(ctx, primary, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { standby.Stop() })
	pdb, sdb := sqlx.MustOpen("postgres", primary.URL("postgres")), sqlx.MustOpen("postgres", standby.URL("postgres"))
	defer pdb.Close()
	defer sdb.Close()
	pdb.MustExec(`CREATE TABLE orders (order_no text, confirmed_at timestamptz)`)
	replayed := func(q string) {
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
