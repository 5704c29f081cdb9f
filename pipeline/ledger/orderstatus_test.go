package ledger_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// TestAnOrdersHistoryReadsItByIndex: settle status --order gives what the
// ledger holds of one order - its rows, rejects, item, payout, trade
// file, late refunds, clawbacks and what a person resolved of it - reading
// each table by index, on a day of 10,000 other items, rejects and late
// refunds; only its item's row is found in its run's snapshot (source_rows
// has no index by order number), in one pass. A rejected order's rows are
// read by their key.
func TestAnOrdersHistoryReadsItByIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := open(t)
	run := openRun(t, l, day)
	const rows = 10000
	subject := "RS/" + day.Compact() + "/S1/USD"
	if _, err := l.DB().Exec(strings.NewReplacer("$run", fmt.Sprint(run.ID), "$date", "'"+day.String()+"'::date", "$rows", fmt.Sprint(rows), "$subject", "'"+subject+"'").Replace(`
		UPDATE runs SET stages_done = '{extract,transform}' WHERE id = $run;
		INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state, provider_ref)
		VALUES ($run, 'revenue_share', $subject, 1, 'RS-K1', 'USD', 99, 'succeeded', 'IRS1');
		INSERT INTO trade_files (run_id, business_date, seller_id, currency, request_no, name, sha256, rows, bytes, seller_minor, status)
		VALUES ($run, $date, 'S1', 'USD', 'TDU-1', 'TD_1.csv', 'h', 1, 10, 99, 'SUCCESS');
		INSERT INTO items (order_no, run_id, business_date, seller_id, channel, provider_txn_id, currency, category,
		                   gross_minor, refunded_minor, commission_minor, seller_minor, rule, paid_at, confirmed_at, state, txn_once, payout_key, provider_ref, trade_file)
		SELECT 'O' || lpad(s::text, 5, '0'), $run, $date, 'S2', 'infiniapay', 'T' || s, 'USD', 'c', 100, 0, 1, 99, 'rules.csv:2', now(), now(), 'recorded', true, '', '', NULL
		FROM generate_series(1, $rows) s
		UNION ALL SELECT 'OP', $run, $date, 'S1', 'infiniapay', 'TP', 'USD', 'c', 100, 0, 1, 99, 'rules.csv:3', now(), now(), 'paid', true, 'RS-K1', 'IRS1', 'TDU-1';
		INSERT INTO source_rows (run_id, seq, order_no, seller_id, provider, provider_txn_id, currency, amount_minor, refunded_minor, category, paid_at)
		SELECT $run, s, 'O' || lpad(s::text, 5, '0'), 'S2', 'infiniapay', 'T' || s, 'USD', '100', '0', 'c', now() FROM generate_series(1, $rows) s
		UNION ALL SELECT $run, $rows + 1, 'OP', 'S1', 'infiniapay', 'TP', 'USD', '100', '0', 'c', now()
		UNION ALL SELECT $run, $rows + 1 + s, 'OD', 'S1', 'infiniapay', 'TD' || s, 'USD', '5' || s, '0', 'c', now() FROM generate_series(1, 2) s
		UNION ALL SELECT $run, $rows + 3 + s, 'X' || s, 'S3', 'infiniapay', 'TX' || s, 'ZZZ', '1', '0', 'c', now() FROM generate_series(1, $rows) s;
		INSERT INTO rejects (run_id, seq, order_no, seller_id, provider, currency, amount, refunded, reason)
		SELECT $run, $rows + 1 + s, 'OD', 'S1', 'infiniapay', 'USD', '5' || s, '0', 'duplicate order_no: 2 rows share it' FROM generate_series(1, 2) s
		UNION ALL SELECT $run, $rows + 3 + s, 'X' || s, 'S3', 'infiniapay', 'ZZZ', '1', '0', 'unknown currency "ZZZ"' FROM generate_series(1, $rows) s;
		INSERT INTO late_refunds (refund_no, order_no, seller_id, amount_minor, created_at, run_id, business_date, state)
		SELECT 'RF' || s, 'O' || lpad(s::text, 5, '0'), 'S2', 10, now(), $run, $date, 'pending' FROM generate_series(1, $rows) s
		UNION ALL SELECT 'RFP', 'OP', 'S1', 50, now(), $run, $date, 'clawed';
		INSERT INTO adjustments (seller_id, currency, kind, amount_minor, order_no, refund_no, refund_minor, commission_back, business_date, run_id, reason)
		SELECT 'S2', 'USD', 'clawback', -9, 'O' || lpad(s::text, 5, '0'), 'RF' || s, 10, 1, $date, $run, 'r' FROM generate_series(1, $rows) s
		UNION ALL SELECT 'S1', 'USD', 'clawback', -45, 'OP', 'RFP', 50, 5, $date, $run, 'late refund RFP';
		INSERT INTO mismatches (run_id, seq, provider, category, subject, order_no, seller_id, currency, ours_minor, theirs_minor, ours_state, theirs_state, expected, detail)
		VALUES ($run, 1, 'payprotocol', 'amount', 'TP', 'OP', 'S1', 'USD', 100, 90, 'paid', 'confirmed', false, 'the order'),
			($run, 2, 'infiniapay', 'status', 'RS-K1', '', 'S1', 'USD', 99, NULL, 'succeeded', 'NOT_FOUND', true, 'its payout'),
			($run, 3, 'infiniapay', 'status', 'TDU-1', '', 'S1', 'USD', NULL, NULL, 'uploaded', 'PROCESSING', true, 'its file'),
			($run, 4, 'payprotocol', 'amount', 'T1', 'O00001', 'S2', 'USD', 100, 90, 'paid', 'confirmed', false, 'another order');
		INSERT INTO resolutions (kind, subject, idem_key, note) VALUES ('settled_outside', 'TP', 'OP', 'paid by hand, ref 7'),
			('settled_outside', 'T1', 'O00001', 'another order');
		ANALYZE`)); err != nil {
		t.Fatal(err)
	}
	history := func(order string) (*ledger.OrderHistory, map[string]int64) {
		t.Helper()
		tx, err := l.DB().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		// What the backend counted so far, before the read: its
		// counts not yet flushed (an earlier transaction's) are in the
		// view too.
		counts := func() map[string]int64 {
			read := map[string]int64{}
			rs, err := tx.QueryContext(ctx, `SELECT relname, coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables`)
			if err != nil {
				t.Fatal(err)
			}
			defer rs.Close()
			for rs.Next() {
				var name string
				var n int64
				if err := rs.Scan(&name, &n); err != nil {
					t.Fatal(err)
				}
				read[name] = n
			}
			return read
		}
		before := counts()
		h, err := ledger.OrderHistoryIn(ctx, tx, day, order)
		if err != nil {
			t.Fatalf("order %s: %v", order, err)
		}
		read := counts()
		for name, n := range before {
			read[name] -= n
		}
		return h, read
	}
	byIndex := func(order string, read map[string]int64, snapshot int64) {
		t.Helper()
		for _, table := range []string{"items", "rejects", "late_refunds", "adjustments", "effects", "trade_files", "source_rows"} {
			max := int64(10)
			if table == "source_rows" {
				max = snapshot
			}
			if read[table] > max {
				t.Errorf("order %s: read %d rows of %s, want at most %d (by index)", order, read[table], table, max)
			}
		}
	}

	h, read := history("OP")
	if len(h.Items) != 1 || h.Items[0].State != "paid" || h.Items[0].Rule != "rules.csv:3" || h.Items[0].Source == nil || h.Items[0].Source.Seq != rows+1 ||
		len(h.Rows) != 1 || h.Rows[0].Reject != nil || h.Rows[0].Seq != rows+1 {
		t.Errorf("OP: rows %+v, items %+v; want its one row, settled as its paid item", h.Rows, h.Items)
	}
	if len(h.Payouts) != 1 || h.Payouts[0].Subject != subject || h.Payouts[0].Key != "RS-K1" || h.Payouts[0].ProviderRef != "IRS1" || h.Payouts[0].Date != day.String() ||
		len(h.Files) != 1 || h.Files[0].RequestNo != "TDU-1" || h.Files[0].Status != "SUCCESS" {
		t.Errorf("OP: payouts %+v, files %+v; want RS-K1 of %s and TDU-1", h.Payouts, h.Files, subject)
	}
	if len(h.LateRefunds) != 1 || h.LateRefunds[0].RefundNo != "RFP" || h.LateRefunds[0].Currency != "USD" || h.LateRefunds[0].State != "clawed" ||
		len(h.Clawbacks) != 1 || h.Clawbacks[0].Amount != -45 || len(h.Resolved) != 1 || h.Resolved[0].Note != "paid by hand, ref 7" {
		t.Errorf("OP: late refunds %+v, clawbacks %+v, resolved %+v; want RFP clawed, -45, its resolution", h.LateRefunds, h.Clawbacks, h.Resolved)
	}
	var found []string
	for _, m := range h.Mismatches {
		found = append(found, m.Detail)
	}
	if strings.Join(found, ",") != "its payout,its file,the order" {
		t.Errorf("OP: mismatches %v, want those of the order, its payout and its file", found)
	}
	byIndex("OP", read, 2*rows+10) // its item's row: one pass over its run's snapshot

	h, read = history("OD")
	if len(h.Items) != 0 || len(h.Rows) != 2 || h.Rows[0].Reject == nil || h.Rows[1].Reject == nil || h.Rows[0].Source == nil ||
		*h.Rows[1].Source.Amount != "52" || !strings.HasPrefix(h.Rows[0].Reject.Reason, "duplicate order_no") || len(h.Resolved) != 0 || len(h.Mismatches) != 0 {
		t.Errorf("OD: rows %+v, items %+v; want its two rows, rejected as duplicates", h.Rows, h.Items)
	}
	byIndex("OD", read, 10) // its rows by their key

	tx, err := l.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := ledger.OrderHistoryIn(ctx, tx, day, "NOPE"); pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "no row of "+day.String()+"'s runs has this order") {
		t.Errorf("an order of no row: %v, want a usage error", err)
	}
}
