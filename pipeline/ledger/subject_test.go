package ledger_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
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
	// Counted before and after: the backend's counts not yet reported
	// include its earlier transactions' (those of the pool's connection).
	sourceRowsRead := func() int64 {
		t.Helper()
		var read int64
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables
			WHERE relid = 'source_rows'::regclass`).Scan(&read); err != nil {
			t.Fatal(err)
		}
		return read
	}
	before := sourceRowsRead()
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
	if read := sourceRowsRead() - before; read > 2*rows {
		t.Errorf("read %d source rows for %d orders of a run of %d: want one pass over the run's (at most %d)", read, orders, rows, 2*rows)
	}
}

// TestASubjectIsFoundByItsKey: settle status --subject takes an attempt's
// key too - orders.csv gives an order's payout_key, not its subject, and a
// provider's support names the requestNo - and shows the whole subject,
// every attempt of it; a key of another date is refused naming that date
// and the command for it. Before, a key was "no side effect of D has this
// subject", and the person had to find the key's row in payouts.csv.
func TestASubjectIsFoundByItsKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := open(t)
	r1, r2 := openRun(t, l, day), openRun(t, l, day.AddDays(1))
	s1 := "RS/" + day.Compact() + "/S1/USD"
	s2 := "RS/" + day.AddDays(1).Compact() + "/S1/USD"
	if _, err := l.DB().Exec(`INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state) VALUES
		($1, 'revenue_share', $2, 1, 'RS-A-1', 'USD', 100, 'failed'),
		($1, 'revenue_share', $2, 2, 'RS-A-2', 'USD', 100, 'succeeded'),
		($3, 'revenue_share', $4, 1, 'RS-B-1', 'USD', 50, 'succeeded')`, r1.ID, s1, r2.ID, s2); err != nil {
		t.Fatal(err)
	}

	for _, asked := range []string{s1, "RS-A-1", "RS-A-2"} {
		h, err := l.SubjectHistory(ctx, day, asked)
		if err != nil {
			t.Fatalf("%s: %v", asked, err)
		}
		if h.Subject != s1 || len(h.Attempts) != 2 || h.Attempts[0].Key != "RS-A-1" || h.Attempts[1].Key != "RS-A-2" {
			t.Errorf("%s: subject %s, attempts %+v, want %s with both attempts", asked, h.Subject, h.Attempts, s1)
		}
	}

	_, err := l.SubjectHistory(ctx, day, "RS-B-1")
	if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(fmt.Sprint(err), "settle status --date "+day.AddDays(1).String()+" --subject "+s2) {
		t.Errorf("a key of another date: %v, want a usage error naming its date and subject", err)
	}
	_, err = l.SubjectHistory(ctx, day, "RS-NONE-1")
	if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(fmt.Sprint(err), "no side effect of") {
		t.Errorf("an unknown key: %v", err)
	}
	// A subject of another date, copied from that date's payouts.csv, is
	// named with its date and the command, as its key is (it was "no side
	// effect of D has this subject or key", though the subject names its
	// date: found following the README against paysim).
	_, err = l.SubjectHistory(ctx, day, s2)
	if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(fmt.Sprint(err), "settle status --date "+day.AddDays(1).String()+" --subject "+s2) {
		t.Errorf("a subject of another date: %v, want a usage error naming its date and the command", err)
	}
	for _, asked := range []string{"RS/" + day.AddDays(2).Compact() + "/S1/USD", "RS/notadate/S1/USD", "RS"} {
		_, err = l.SubjectHistory(ctx, day, asked)
		if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(fmt.Sprint(err), "no side effect of") {
			t.Errorf("%s, of no date's side effect: %v", asked, err)
		}
	}
}

// TestAnUploadsHistoryGivesItsFilesStatus: the history of an upload gives
// the trade file it delivered with the status the provider last gave it
// and the reason of a refusal. The upload's own state says only that the
// file arrived: "succeeded" for a file the provider refused or never
// knew, with its status in the ledger and nowhere in the history.
func TestAnUploadsHistoryGivesItsFilesStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := open(t)
	run := openRun(t, l, day)
	subject := "TD/" + day.Compact() + "/S1/EUR"
	if _, err := l.DB().Exec(`INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state, provider_ref)
		VALUES ($1, 'upload', $2, 1, 'TDU-1', 'EUR', 100, 'succeeded', 'TD_1.csv')`, run.ID, subject); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DB().Exec(`INSERT INTO trade_files (run_id, business_date, seller_id, currency, attempt, request_no, name, sha256, rows, bytes, seller_minor, status, reason)
		VALUES ($1, $2, 'S1', 'EUR', 1, 'TDU-1', 'TD_1.csv', 'x', 1, 10, 100, 'FAILED', '1 rows refused, first O1: product type not allowed')`,
		run.ID, day.String()); err != nil {
		t.Fatal(err)
	}
	h, err := l.SubjectHistory(ctx, day, subject)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Files) != 1 || h.Files[0].Name != "TD_1.csv" || h.Files[0].RequestNo != "TDU-1" || h.Files[0].Rows != 1 || h.Files[0].Status != "FAILED" ||
		h.Files[0].Reason != "1 rows refused, first O1: product type not allowed" {
		t.Errorf("files: %+v, want TD_1.csv refused with its reason", h.Files)
	}
}

// TestASubjectsHistoryGivesWhatTheReconciliationFound: what the date's
// reconciliation last found of a subject's attempts (a revenue share the
// provider no longer knows, say) is in its history. A question that
// changes nothing leaves no event, so the history of a share left "sent"
// said nothing of Infinia's "not found", which mismatches.csv held.
func TestASubjectsHistoryGivesWhatTheReconciliationFound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := open(t)
	run := openRun(t, l, day)
	subject := "RS/" + day.Compact() + "/S1/USD"
	if _, err := l.DB().Exec(`INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state)
		VALUES ($1, 'revenue_share', $2, 1, 'RS-1', 'USD', 100, 'sent')`, run.ID, subject); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DB().Exec(`INSERT INTO mismatches (run_id, seq, provider, category, subject, currency, ours_minor, ours_state, theirs_state, expected, detail)
		VALUES ($1, 1, 'infiniapay', 'status', 'RS-1', 'USD', 100, 'sent', 'not found', false, 'ask Infinia'),
		       ($1, 2, 'infiniapay', 'status', 'RS-2', 'USD', 5, 'sent', 'not found', false, 'another share')`, run.ID); err != nil {
		t.Fatal(err)
	}
	h, err := l.SubjectHistory(ctx, day, subject)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Mismatches) != 1 || h.Mismatches[0].Key != "RS-1" || h.Mismatches[0].TheirsState != "not found" || h.Mismatches[0].Ours == nil ||
		*h.Mismatches[0].Ours != 100 || h.Mismatches[0].Theirs != nil || h.Mismatches[0].Detail != "ask Infinia" {
		t.Errorf("mismatches: %+v, want RS-1's alone", h.Mismatches)
	}
}
