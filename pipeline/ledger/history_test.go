package ledger_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// Issue 14: the reads that span the ledger's history - a run's sellers'
// totals at Infinia, the pending late refunds with their orders' clawbacks
// and rejects - cost what they return, not what the ledger holds. On a
// ledger of 30 dates, every scan of trade_files, effects, rejects or
// adjustments in their plans is bounded by the run or by an order (an
// index condition on run_id or order_no); none reads a table whole. Before
// migrations 00013 and 00014 the expected shares sorted every trade file
// and revenue share of the ledger, and each pending late refund scanned
// every reject.
func TestHistoryReadsAreBoundedByTheRun(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	const days, sellers = 30, 300
	var runs []*pipeline.Run
	for d := range days {
		runs = append(runs, openRun(t, l, day.AddDays(d)))
	}
	first, last := runs[0].ID, runs[days-1].ID
	if _, err := l.DB().Exec(strings.NewReplacer("$1", fmt.Sprint(first), "$2", fmt.Sprint(last), "$3", fmt.Sprint(sellers)).Replace(`
		INSERT INTO trade_files (run_id, business_date, seller_id, currency, request_no, name, sha256, rows, bytes, seller_minor, status)
		SELECT r.id, r.business_date, 'S' || s, 'USD', 'TF' || r.id || '-' || s, 'F' || r.id || '-' || s, 'x', 1, 1, 100, 'SUCCESS'
		FROM runs r, generate_series(1, $3) s WHERE r.id BETWEEN $1 AND $2 ORDER BY r.id, s;
		INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state)
		SELECT r.id, k, CASE k WHEN 'revenue_share' THEN 'RS/' || to_char(r.business_date, 'YYYYMMDD') || '/S' || s || '/USD'
		                       ELSE 'WX/' || to_char(r.business_date, 'YYYYMMDD') || '/O' || s END,
		       1, k || r.id || '-' || s, 'USD', 100, 'succeeded'
		FROM runs r, generate_series(1, $3) s, unnest(ARRAY['revenue_share', 'wechat_distribution']) k
		WHERE r.id BETWEEN $1 AND $2 ORDER BY r.id, s;
		INSERT INTO rejects (run_id, seq, order_no, seller_id, reason)
		SELECT r.id, s, 'R' || r.id || '-' || s, 'S1', 'bad' FROM runs r, generate_series(1, $3) s WHERE r.id BETWEEN $1 AND $2;
		INSERT INTO adjustments (run_id, business_date, kind, seller_id, currency, amount_minor, refund_minor, order_no, refund_no)
		SELECT r.id, r.business_date, 'clawback', 'S1', 'USD', -100, 100, 'C' || r.id || '-' || s, 'CR' || r.id || '-' || s
		FROM runs r, generate_series(1, $3 / 3) s WHERE r.id BETWEEN $1 AND $2;
		INSERT INTO late_refunds (refund_no, order_no, seller_id, amount_minor, created_at, run_id, business_date)
		SELECT 'LR' || s, CASE WHEN s % 2 = 0 THEN 'C' || $2 || '-' || s ELSE 'R' || $2 || '-' || s END, 'S1', 100, now(), $2, r.business_date
		FROM runs r, generate_series(1, 20) s WHERE r.id = $2;
		ANALYZE`)); err != nil {
		t.Fatal(err)
	}
	scan := regexp.MustCompile(`(Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan|Bitmap Index Scan)( Backward)?( using \S+)? on (trade_files|effects|rejects|adjustments)\b`)
	bounded := regexp.MustCompile(`(Index|Recheck) Cond: .*\b(run_id|order_no) = `)
	for name, q := range map[string]struct {
		sql  string
		args []any
	}{
		"expected shares":      {ledger.ExpectedSharesQuery, []any{runs[days/2].ID}},
		"pending late refunds": {ledger.PendingLateRefundsQuery, nil},
	} {
		var plan []string
		if err := l.DB().Select(&plan, `EXPLAIN `+q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i, line := range plan {
			m := scan.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			// The node's conditions follow it, up to the next node.
			ok := false
			for _, c := range plan[i+1:] {
				if strings.Contains(c, "->") {
					break
				}
				ok = ok || bounded.MatchString(c)
			}
			if !ok {
				t.Errorf("%s reads %s whole:\n%s", name, m[4], strings.Join(plan, "\n"))
				break
			}
		}
	}
	// And they still read right: the late refunds of orders never settled
	// say which reject, and those of clawed orders carry their clawbacks.
	pending, err := l.PendingLateRefunds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 20 {
		t.Fatalf("%d pending late refunds, want 20", len(pending))
	}
	for _, p := range pending {
		if strings.HasPrefix(p.OrderNo, "R") != strings.Contains(p.SourceRejected, "bad") {
			t.Errorf("%s: source rejected %q", p.OrderNo, p.SourceRejected)
		}
	}
}
