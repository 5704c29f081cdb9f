package ledger_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline/ledger"
)

// TestASubjectsHistoryReadsItsRunsSourceRowsOnce (found by a review):
// settle status --subject reads the source row beside each order of the
// subject in one pass over its runs' snapshots, whatever the number of
// its orders. Before, the planner joined each order to its run's rows
// one by one (source_rows has no index by order number): a seller's
// 3,000 orders on a day of 100,000 took 8 s, growing as orders times
// rows (a large seller on a day of millions: hours).
func TestASubjectsHistoryReadsItsRunsSourceRowsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := open(t)
	run := openRun(t, l, day)
	const orders, rows = 100, 10000
	subject := "RS/" + day.Compact() + "/S1/USD"
	// The subject's orders paid after the statistics were taken (a
	// night's run, then status before autovacuum analyzed them): the
	// planner takes its key for one order's, as most keys are.
	if _, err := l.DB().Exec(strings.NewReplacer("$run", fmt.Sprint(run.ID), "$date", "'"+day.String()+"'", "$orders", fmt.Sprint(orders), "$rows", fmt.Sprint(rows), "$subject", "'"+subject+"'").Replace(`
		INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state)
		VALUES ($run, 'revenue_share', $subject, 1, 'RS-K1', 'USD', 100, 'succeeded');
		INSERT INTO items (order_no, run_id, business_date, seller_id, channel, provider_txn_id, currency, category,
		                   gross_minor, refunded_minor, commission_minor, seller_minor, rule, paid_at, confirmed_at, state, txn_once, payout_key)
		SELECT 'O' || lpad(s::text, 5, '0'), $run, $date, CASE WHEN s <= $orders THEN 'S1' ELSE 'S2' END, 'infinia', 'T' || s, 'USD', 'c',
		       100, 0, 1, 99, 'r', now(), now(), 'paid', true, 'RS-K' || s
		FROM generate_series(1, $rows) s;
		INSERT INTO source_rows (run_id, seq, order_no, seller_id, provider, provider_txn_id, currency, amount_minor, refunded_minor, category, paid_at)
		SELECT $run, s, 'O' || lpad(s::text, 5, '0'), 'S1', 'infinia', 'T' || s, 'USD', '100', '0', 'c', now()
		FROM generate_series(1, $rows) s;
		ANALYZE;
		UPDATE items SET payout_key = 'RS-K1' WHERE run_id = $run AND seller_id = 'S1'`)); err != nil {
		t.Fatal(err)
	}
	tx, err := l.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	h, err := ledger.SubjectHistoryIn(ctx, tx, day, subject)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Items) != orders {
		t.Fatalf("%d orders, want %d", len(h.Items), orders)
	}
	for _, it := range h.Items {
		if it.Source == nil || it.Source.ProviderTxnID == nil || "T"+strings.TrimLeft(it.OrderNo[1:], "0") != *it.Source.ProviderTxnID {
			t.Fatalf("order %s: source row %+v, want its own", it.OrderNo, it.Source)
		}
	}
	var read int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables
		WHERE relid = 'source_rows'::regclass`).Scan(&read); err != nil {
		t.Fatal(err)
	}
	if read > 2*rows {
		t.Errorf("read %d source rows for %d orders of a run of %d: want one pass over the run's (at most %d)", read, orders, rows, 2*rows)
	}
}
