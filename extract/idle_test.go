package extract_test

import (
	"context"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/extract"
	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/pipeline"
)

// TestReadsGetPastASessionTheServerEndedWhileIdle: the platform's reads
// in one snapshot (the orders, the late refunds) take a connection of
// their own from the pool, and database/sql hands out an idle one as it
// is. One whose session the server ended while it sat idle - the
// database's idle_session_timeout, set for the platform's web sessions -
// failed the read, "driver: bad connection": the late refunds, read in
// the distribute stage after the trade files' wait, failed every run of
// every day whose upload took longer than the timeout, exit 1, and the day
// was never distributed (found by a review). A broken idle connection is
// now let go of, and the read made on another.
func TestReadsGetPastASessionTheServerEndedWhileIdle(t *testing.T) {
	url := pgtest.URL(t)
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.MustExec(`CREATE TABLE refunds (refund_no text, order_no text, seller_id text, amount_minor bigint, created_at timestamptz);
		INSERT INTO refunds VALUES ('R1', 'A', 'S1', 150, now() - interval '90 minutes')`)
	w := pipeline.Window{Start: time.Now().Add(-2 * time.Hour), End: time.Now().Add(-time.Hour)}
	late := &extract.LateRefunds{DB: db, Name: "l.sql", Margin: time.Minute,
		Query: `SELECT refund_no, order_no, seller_id, amount_minor, created_at FROM refunds WHERE created_at >= $1 AND created_at < $2`}
	src := &extract.Source{DB: db, Name: "q.sql", Query: `SELECT 'A'::text AS order_no, 'S1'::text AS seller_id, 'infiniapay'::text AS provider,
		NULL::text AS provider_txn_id, 'USD'::text AS currency, 100::bigint AS amount_minor, 0::bigint AS refunded_minor, 'c'::text AS category,
		$1::timestamptz AS paid_at, $1::timestamptz AS confirmed_at WHERE $2::timestamptz > $1`}
	for round := 1; round <= 2; round++ {
		pgtest.EndSessions(t, url)
		var refunds int
		if err := late.LateRefunds(context.Background(), w, func(pipeline.LateRefundRow) error { refunds++; return nil }); err != nil || refunds != 1 {
			t.Fatalf("round %d: late refunds after the idle session ended: %d rows, %v", round, refunds, err)
		}
		pgtest.EndSessions(t, url)
		var orders int
		if err := src.Orders(context.Background(), w, func(pipeline.SourceRow) error { orders++; return nil }); err != nil || orders != 1 {
			t.Fatalf("round %d: orders after the idle session ended: %d rows, %v", round, orders, err)
		}
	}
}
