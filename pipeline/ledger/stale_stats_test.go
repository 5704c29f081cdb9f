package ledger_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// staleCarryLedger builds a ledger whose statistics were taken before the
// night's carry, as every night's are: the pass analyzes the items it
// writes (all of them uploaded), and distribute carries sellers' items and
// writes their entries after. items are spread over sellers, an entry a
// seller carrying all of the seller's items; the entries of the first
// netted sellers are netted into a revenue share each ("RS/<date>/S<n>/USD"),
// their items still carried (the payouts planned, not yet applied).
// Autovacuum is off for the two tables, so that no analyze comes between.
func staleCarryLedger(t *testing.T, l *ledger.Ledger, run *pipeline.Run, items, sellers, netted int) {
	t.Helper()
	ctx := context.Background()
	r := strings.NewReplacer("$1", fmt.Sprint(run.ID), "$2", fmt.Sprint(items), "$3", fmt.Sprint(sellers), "$4", fmt.Sprint(netted))
	if _, err := l.DB().ExecContext(ctx, r.Replace(`
		ALTER TABLE items SET (autovacuum_enabled = false);
		ALTER TABLE adjustments SET (autovacuum_enabled = false);
		INSERT INTO items (order_no, run_id, business_date, seller_id, channel, provider_txn_id, currency, category,
		                   gross_minor, refunded_minor, commission_minor, seller_minor, rule, paid_at, confirmed_at, state, txn_once)
		SELECT 'O' || k, $1, r.business_date, 'S' || (k % $3), 'infiniapay', 'T' || k, 'USD', 'c', 100, 0, 1, 99, 'r', now(), now(), 'uploaded', false
		FROM runs r, generate_series(1, $2) k WHERE r.id = $1;
		ANALYZE items;
		ANALYZE adjustments`)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DB().ExecContext(ctx, r.Replace(`
		INSERT INTO adjustments (seller_id, currency, kind, amount_minor, business_date, run_id)
		SELECT 'S' || s, 'USD', 'held', 99 * ($2 / $3), r.business_date, $1 FROM runs r, generate_series(0, $3 - 1) s WHERE r.id = $1;
		UPDATE items i SET state = 'carried', carry_id = a.id FROM adjustments a WHERE a.seller_id = i.seller_id;
		UPDATE adjustments SET netted_into = 'RS/' || to_char(business_date, 'YYYYMMDD') || '/' || seller_id || '/USD', netted_date = business_date
		WHERE seller_id IN (SELECT 'S' || s FROM generate_series(0, $4 - 1) s)`)); err != nil {
		t.Fatal(err)
	}
}

// itemsReadByPlan runs query (a statement that may write) under EXPLAIN
// ANALYZE in a transaction it rolls back, and returns the rows its plan
// read from items (each node on items: rows x loops) and the plan.
func itemsReadByPlan(t *testing.T, l *ledger.Ledger, query string, args ...any) (int, string) {
	t.Helper()
	ctx := context.Background()
	tx, err := l.DB().BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var plan []string
	if err := tx.SelectContext(ctx, &plan, `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) `+query, args...); err != nil {
		t.Fatal(err)
	}
	read := regexp.MustCompile(`rows=(\d+) loops=(\d+)`)
	n := 0
	for _, line := range plan {
		if m := read.FindStringSubmatch(line); m != nil && strings.Contains(line, " on items ") {
			rows, _ := strconv.Atoi(m[1])
			loops, _ := strconv.Atoi(m[2])
			n += rows * loops
		}
	}
	return n, strings.Join(plan, "\n")
}

// PayoutSucceeded marks paid the carried items of the entries netted into
// the payout, and reads those: not every item ever carried. With
// statistics taken before the night's carry (no carried item, carry_id
// all NULL) the planner walked all of items_carry - every item the ledger
// ever carried, paid ones too, as an item keeps its carry_id - and looked
// up each one's entry, for every payout that succeeded: 244-491 ms and 322,000
// buffers a payout at 100,000 carried items (see PERFORMANCE.md). The
// entries netted into the payout now come first, whatever the statistics
// say, and their items are looked up by carry_id.
func TestPayoutSucceededWithStatisticsOfBeforeTheCarry(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	const items, sellers, netted = 6000, 1500, 10
	staleCarryLedger(t, l, run, items, sellers, netted)

	subject := "RS/" + strings.ReplaceAll(day.String(), "-", "") + "/S3/USD"
	e := pipeline.Effect{RunID: run.ID, Kind: "revenue_share", Subject: subject, Attempt: 1, Key: "K3", Currency: "USD",
		Amount: 99 * items / sellers, ProviderRef: "REF3"}
	n, plan := itemsReadByPlan(t, l, ledger.PayoutSucceededCarriedQuery, e.Subject, e.Key, e.ProviderRef)
	// S3's four carried items, a look-up or two's worth of slack.
	if n > 2*items/sellers {
		t.Fatalf("PayoutSucceeded read %d items to pay %d:\n%s", n, items/sellers, plan)
	}

	if err := l.PayoutSucceeded(ctx, run, "S3", "USD", []pipeline.Channel{"infiniapay"}, e); err != nil {
		t.Fatal(err)
	}
	var paid, otherPaid int
	if err := l.DB().QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE seller_id = 'S3' AND state = 'paid' AND payout_key = 'K3' AND provider_ref = 'REF3'),
		count(*) FILTER (WHERE seller_id <> 'S3' AND state <> 'carried') FROM items`).Scan(&paid, &otherPaid); err != nil {
		t.Fatal(err)
	}
	if paid != items/sellers || otherPaid != 0 {
		t.Fatalf("%d of S3's items paid (want %d), %d others no longer carried (want 0)", paid, items/sellers, otherPaid)
	}
}
