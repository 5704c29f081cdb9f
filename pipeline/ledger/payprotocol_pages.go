package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"

	"github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
)

// refundedItemsAfterQuery is RefundedItemsAfter's page: items_run_order
// starts it at its cursor and ends it at its limit (migration 00008).
const refundedItemsAfterQuery = `SELECT i.order_no, i.seller_id, i.provider_txn_id, i.currency, i.gross_minor,
	i.refunded_minor, COALESCE(lr.amount, 0)::text, COALESCE(lr.n, 0), COALESCE(lr.last, 0), i.state
	FROM items i
	LEFT JOIN LATERAL (SELECT sum(amount_minor) AS amount, count(*) AS n,
		(array_agg(amount_minor ORDER BY created_at DESC, refund_no DESC))[1] AS last FROM late_refunds
		WHERE order_no = i.order_no AND state <> 'rejected'
		  -- read by a later date: one read on a date no later than the
		  -- item's (while the order had no item) is netted by its row
		  -- already, as the verification and the clawbacks take it
		  AND business_date > i.business_date) lr ON true
	WHERE i.run_id = $1 AND i.channel = $2 AND i.state NOT IN ($3, $4) AND i.order_no > $5
	ORDER BY i.order_no LIMIT $6`

// RefundedItemsAfter returns at most limit (0: every one) of the run's
// items of channel ch that a verification let on (every state but
// unverified and rejected) whose order number comes after `after`, by
// order number: one page of a keyset pagination, so that a reconciliation
// of a day's payments holds one page at a time. Each comes with our
// refunded total: the refunds netted when it settled plus its late refunds
// that were not rejected (pending, clawed or ignored: the platform says the
// money went back to the buyer, whatever the seller owes for it) read by a
// date after the item's (one read earlier, while the order had no item, is
// in the item's refunded total already), how many
// late refunds that counts and the latest of them.
func (l *Ledger) RefundedItemsAfter(ctx context.Context, runID int64, ch pipeline.Channel, after string, limit int) ([]pipeline.RefundedItem, error) {
	n := sql.NullInt64{Int64: int64(limit), Valid: limit > 0}
	rows, err := l.db.QueryContext(ctx, refundedItemsAfterQuery, runID, string(ch), ItemUnverified, ItemRejected, after, n)
	if err != nil {
		return nil, fmt.Errorf("read %s items to reconcile: %w", ch, err)
	}
	defer rows.Close()
	var out []pipeline.RefundedItem
	for rows.Next() {
		var it pipeline.RefundedItem
		var cur, late string
		if err := rows.Scan(&it.OrderNo, &it.SellerID, &it.ProviderTxnID, &cur, &it.Gross, &it.Refunded, &late,
			&it.LateRefunds, &it.LastLateRefund, &it.State); err != nil {
			return nil, fmt.Errorf("read %s items to reconcile: %w", ch, err)
		}
		it.Currency = pipeline.Currency(cur)
		// The sum is numeric: added here so that an overflow is an error,
		// never a wrapped amount.
		v, err := strconv.ParseInt(late, 10, 64)
		if err == nil {
			it.Refunded, err = pipeline.Add(it.Refunded, v)
		}
		if err != nil {
			return nil, fmt.Errorf("order %s: late refunds of %s: %w", it.OrderNo, late, err)
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// providerTxnsOfRunQuery is ProviderTxnsOfRun's: items_provider_txn
// finds each of $3 (its collation "C" on both sides, and its predicate).
const providerTxnsOfRunQuery = `SELECT i.provider_txn_id FROM unnest($3::text[]) t(txn)
	JOIN items i ON i.channel COLLATE "C" = $2 COLLATE "C" AND i.provider_txn_id COLLATE "C" = t.txn COLLATE "C"
	  AND i.txn_once AND i.provider_txn_id <> ''
	WHERE i.run_id = $1`

// ProviderTxnsOfRun returns which of txns are the provider transactions
// (provider_txn_id) of the run's items of channel ch, a channel that
// settles once per provider transaction (its items txn_once, migration
// 00019): each is looked up by the unique index items_provider_txn, so a
// page of a provider's listing (a few hundred of its order numbers, of
// every date) costs what it asks, not what the run holds.
func (l *Ledger) ProviderTxnsOfRun(ctx context.Context, runID int64, ch pipeline.Channel, txns []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(txns) == 0 {
		return out, nil
	}
	rows, err := l.db.QueryContext(ctx, providerTxnsOfRunQuery, runID, string(ch), pq.Array(txns))
	if err != nil {
		return nil, fmt.Errorf("read which of %d %s transactions are of run %d: %w", len(txns), ch, runID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var txn string
		if err := rows.Scan(&txn); err != nil {
			return nil, fmt.Errorf("read which %s transactions are of run %d: %w", ch, runID, err)
		}
		out[txn] = true
	}
	return out, rows.Err()
}

// rejectedNotesWalkQuery ends a page of the run's rejected items at its
// limit: the notes the trigger of migration 00018 keeps (items_rejected),
// a few a day, not the run's items.
const rejectedNotesWalkQuery = `SELECT max(order_no), count(*) FROM (SELECT order_no FROM items_rejected
	WHERE run_id = $1 AND order_no > $2 ORDER BY order_no LIMIT $3) w`

// rejectedItemsQuery reads the rejected items of channel $2 of a page
// ($4, $5] of the notes whose reason starts with one of $3, each note
// checked against its item (an item held again since keeps its note): no
// late refund is counted (nothing of such an order was settled).
const rejectedItemsQuery = `SELECT i.order_no, i.seller_id, i.provider_txn_id, i.currency, i.gross_minor, i.refunded_minor, i.state, i.reason
	FROM items_rejected r JOIN items i ON i.order_no = r.order_no AND i.run_id = r.run_id
	WHERE r.run_id = $1 AND r.order_no > $4 AND r.order_no <= $5
	  AND i.channel = $2 AND i.state = 'rejected'
	  AND EXISTS (SELECT 1 FROM unnest($3::text[]) p WHERE starts_with(i.reason, p))
	ORDER BY i.order_no`

// RejectedItemsAfter walks the next limit (0: every one) of the run's
// rejected items whose order number comes after `after` and returns those
// of channel ch rejected with a reason starting with one of reasons (a
// provider's rejections it may yet see overturned: an order a person
// rejected for a payment that failed, and that the buyer may still pay
// late), by order number, each with its Reason; next is the cursor of the
// next page, "" when the walk reached the run's last rejected item. It
// walks the notes of the run's rejected items (items_rejected), so a
// reconciliation costs what the run rejected, not what it settled.
func (l *Ledger) RejectedItemsAfter(ctx context.Context, runID int64, ch pipeline.Channel, reasons []string, after string, limit int) (
	items []pipeline.RefundedItem, next string, err error) {
	if len(reasons) == 0 {
		return nil, "", nil
	}
	var last sql.NullString
	var walked int64
	n := sql.NullInt64{Int64: int64(limit), Valid: limit > 0}
	if err := l.db.QueryRowContext(ctx, rejectedNotesWalkQuery, runID, after, n).Scan(&last, &walked); err != nil || !last.Valid {
		if err != nil {
			err = fmt.Errorf("read rejected %s items: %w", ch, err)
		}
		return nil, "", err
	}
	if limit > 0 && walked == int64(limit) {
		next = last.String
	}
	rows, err := l.db.QueryContext(ctx, rejectedItemsQuery, runID, string(ch), pq.Array(reasons), after, last.String)
	if err != nil {
		return nil, "", fmt.Errorf("read rejected %s items: %w", ch, err)
	}
	defer rows.Close()
	for rows.Next() {
		var it pipeline.RefundedItem
		var cur string
		if err := rows.Scan(&it.OrderNo, &it.SellerID, &it.ProviderTxnID, &cur, &it.Gross, &it.Refunded, &it.State, &it.Reason); err != nil {
			return nil, "", fmt.Errorf("read rejected %s items: %w", ch, err)
		}
		it.Currency = pipeline.Currency(cur)
		items = append(items, it)
	}
	return items, next, rows.Err()
}

// rejectedToWatchQuery reads a page of the rejected items of channel $7
// whose reason starts with one of $8, of the runs dated in [$3, $4) but
// those of $5, after order $6: the runs of shard $1 of $2 and, for shard 0
// (or a whole run), those of a date run in another sharding, as
// RunsToRecheck shares them out (each run watched by one shard of a
// night). The runs by their date (runs' unique key), the notes of each
// (items_rejected's key), each item by its order (items' key): what it
// reads is the window's rejected items, never the items it settled.
const rejectedToWatchQuery = `SELECT i.order_no, i.seller_id, i.provider_txn_id, i.currency, i.gross_minor, i.refunded_minor,
	i.state, i.reason, i.business_date::text
	FROM runs r JOIN items_rejected n ON n.run_id = r.id
	JOIN items i ON i.order_no = n.order_no AND i.run_id = n.run_id
	WHERE r.business_date >= $3 AND r.business_date < $4
	  AND ((r.shard_index = $1 AND r.shard_count = $2) OR ($1 = 0 AND r.shard_count <> $2))
	  AND r.id <> ALL(COALESCE($5::bigint[], '{}')) AND n.order_no > $6
	  AND i.channel = $7 AND i.state = 'rejected'
	  AND EXISTS (SELECT 1 FROM unnest($8::text[]) p WHERE starts_with(i.reason, p))
	ORDER BY n.order_no LIMIT $9`

// RejectedToWatch returns at most limit (0: every one) of the rejected
// items of channel ch whose reason starts with one of reasons (as
// RejectedItemsAfter: a provider's rejection it may yet see overturned)
// of the runs dated from since to the day before run's date, but the runs
// of skip (those reconciled anyway), whose order number comes after
// `after`, by order number, each with its Reason and Date. The runs are
// those of run's shard, and for shard 0 (or a whole run) those of a date
// run in another sharding, as RunsToRecheck shares them out: each earlier
// run is watched by one run of a night. It reads the notes of the runs'
// rejected items (items_rejected), so a watch costs what the window
// rejected.
func (l *Ledger) RejectedToWatch(ctx context.Context, run *pipeline.Run, since pipeline.Date, skip []int64, ch pipeline.Channel, reasons []string,
	after string, limit int) ([]pipeline.RefundedItem, error) {
	if len(reasons) == 0 || !since.Before(run.Key.Date) {
		return nil, nil
	}
	n := sql.NullInt64{Int64: int64(limit), Valid: limit > 0}
	rows, err := l.db.QueryContext(ctx, rejectedToWatchQuery, run.Key.Shard.Index, max(run.Key.Shard.Count, 1), since.String(), run.Key.Date.String(),
		pq.Array(skip), after, string(ch), pq.Array(reasons), n)
	if err != nil {
		return nil, fmt.Errorf("read the rejected %s items since %s: %w", ch, since, err)
	}
	defer rows.Close()
	var items []pipeline.RefundedItem
	for rows.Next() {
		var it pipeline.RefundedItem
		var cur string
		var d string
		if err := rows.Scan(&it.OrderNo, &it.SellerID, &it.ProviderTxnID, &cur, &it.Gross, &it.Refunded, &it.State, &it.Reason, &d); err != nil {
			return nil, fmt.Errorf("read the rejected %s items since %s: %w", ch, since, err)
		}
		if it.Date, err = pipeline.ParseDate(d); err != nil {
			return nil, fmt.Errorf("order %s: %w", it.OrderNo, err)
		}
		it.Currency = pipeline.Currency(cur)
		items = append(items, it)
	}
	return items, rows.Err()
}
