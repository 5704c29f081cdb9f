package extract_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/extract"
	"github.com/settlekit/settle/internal/dbconn"
	"github.com/settlekit/settle/pipeline"
)

// TestReadsOnAStandbyUnderASerializableDefault: the platform's role (or
// database) has default_transaction_isolation = serializable, as a DBA may
// set it for the platform's own sessions, and settle reads a hot standby.
// A standby refuses a serializable transaction ("cannot use serializable
// mode in a hot standby"): the orders and late refunds, read in a
// REPEATABLE READ transaction settle asks for, passed, while the sellers
// query and the late-refunds query's check, read in the role's default,
// were refused on every run (exit 2). Every read asks for its isolation.
func TestReadsOnAStandbyUnderASerializableDefault(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	standby, pdb, sdb := primaryAndStandby(ctx, t)
	pdb.MustExec(`CREATE ROLE serial LOGIN`)
	pdb.MustExec(`ALTER ROLE serial SET default_transaction_isolation = 'serializable'`)
	pdb.MustExec(`CREATE TABLE t (seller_id text, at timestamptz)`)
	pdb.MustExec(`INSERT INTO t VALUES ('S1', now() - interval '1 hour')`)
	pdb.MustExec(`GRANT SELECT ON t TO serial`)
	waitReplayed(t, sdb, `SELECT count(*) FROM pg_roles WHERE rolname = 'serial' AND rolconfig IS NOT NULL AND EXISTS (SELECT 1 FROM t)`)
	db := sqlx.MustOpen("postgres", strings.Replace(standby.URL("postgres"), "postgres@", "serial@", 1))
	t.Cleanup(func() { db.Close() })
	var iso string
	if err := db.Get(&iso, `SHOW default_transaction_isolation`); err != nil || iso != "serializable" {
		t.Fatalf("the role's default isolation on the standby: %q (%v)", iso, err)
	}

	if err := dbconn.UnderIdleTimeout(ctx, db.DB); err != nil {
		t.Errorf("the pool's idle timeout: %v", err)
	}
	var at time.Time
	if err := pdb.Get(&at, `SELECT at FROM t`); err != nil {
		t.Fatal(err)
	}
	w := pipeline.Window{Start: at.Add(-time.Minute), End: at.Add(time.Minute)}
	orders := `SELECT 'A1'::text AS order_no, seller_id, 'infiniapay'::text AS provider, NULL::text AS provider_txn_id, 'USD'::text AS currency,
		100::bigint AS amount_minor, 0::bigint AS refunded_minor, 'c'::text AS category, at AS paid_at, at AS confirmed_at
		FROM t WHERE at >= $1 AND at < $2`
	sellers := `SELECT seller_id, 'one'::text AS name, NULL::text AS entity_type, NULL::text AS country, 'INF1'::text AS infinia_seller_id,
		NULL::text AS wechat_sub_mchid FROM t WHERE seller_id = ANY ($1)`
	refunds := `SELECT 'R1'::text AS refund_no, 'A1'::text AS order_no, seller_id, 10::bigint AS amount_minor, at AS created_at
		FROM t WHERE at >= $1 AND at < $2`
	var rows, found, late int
	if err := (&extract.Source{DB: db, Name: "orders.sql", Query: orders}).Orders(ctx, w, func(pipeline.SourceRow) error { rows++; return nil }); err != nil || rows != 1 {
		t.Errorf("orders: %d rows, %v", rows, err)
	}
	if err := (&extract.Sellers{DB: db, Name: "sellers.sql", Query: sellers}).Sellers(ctx, []string{"S1"}, func(pipeline.Seller) error { found++; return nil }); err != nil || found != 1 {
		t.Errorf("sellers: %d found, %v", found, err)
	}
	lr := &extract.LateRefunds{DB: db, Name: "late.sql", Query: refunds, Margin: time.Minute}
	if err := lr.Check(ctx, w); err != nil {
		t.Errorf("late refunds' check: %v", err)
	}
	if err := lr.LateRefunds(ctx, w, func(pipeline.LateRefundRow) error { late++; return nil }); err != nil || late != 1 {
		t.Errorf("late refunds: %d rows, %v", late, err)
	}
}
