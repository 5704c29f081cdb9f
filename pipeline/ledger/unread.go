package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"iter"

	"github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
)

// SnapshotRows gives the rows runs read as their own (the rows of their
// snapshots, source_rows, but the other shards' keys a shard keeps: an
// order of a shard's seller is read only if that shard read it), their
// order number and the columns that decide money alone (seller_id,
// provider, provider_txn_id, currency, amount_minor, category: the rest
// nil), as the snapshot keeps them, a NULL order number left out, in byte
// order of their order numbers (ORDER BY order_no COLLATE "C": Go's string
// order, whatever the ledger database's default collation), each order
// number as often as read, streamed: nothing is held but the row at hand.
// It is what extract.Source.Compare compares the platform's orders of the
// date now with.
//
// The rows are read in one read-only REPEATABLE READ transaction, which
// first makes sure each run still has its extract recorded: a
// --reextract of the date between the caller's reading of its runs and
// this would have dropped the snapshot, and every order of the date would
// look unread. That is an error, as is a run that is gone.
func (l *Ledger) SnapshotRows(ctx context.Context, runIDs []int64) iter.Seq2[pipeline.SourceRow, error] {
	return func(yield func(pipeline.SourceRow, error) bool) {
		err := l.snapshotRows(ctx, runIDs, func(r pipeline.SourceRow) bool { return yield(r, nil) })
		if err != nil {
			yield(pipeline.SourceRow{}, err)
		}
	}
}

func (l *Ledger) snapshotRows(ctx context.Context, runIDs []int64, yield func(pipeline.SourceRow) bool) error {
	tx, err := l.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return fmt.Errorf("read the date's snapshot: %w", err)
	}
	defer tx.Rollback()
	var extracted int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM runs WHERE id = ANY ($1) AND 'extract' = ANY (stages_done)`,
		pq.Array(runIDs)).Scan(&extracted); err != nil {
		return fmt.Errorf("read the date's snapshot: %w", err)
	}
	if extracted != len(runIDs) {
		return fmt.Errorf("read the date's snapshot: %d of its %d runs have their extract recorded now (read again meanwhile?)", extracted, len(runIDs))
	}
	rows, err := tx.QueryContext(ctx, `SELECT order_no, seller_id, provider, provider_txn_id, currency, amount_minor, category FROM source_rows
		WHERE run_id = ANY ($1) AND NOT other_shard AND order_no IS NOT NULL ORDER BY order_no COLLATE "C"`, pq.Array(runIDs))
	if err != nil {
		return fmt.Errorf("read the date's snapshot: %w", err)
	}
	defer rows.Close()
	var no string
	var text [6]sql.NullString
	dest := []any{&no}
	for i := range text {
		dest = append(dest, &text[i])
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("read the date's snapshot: %w", err)
		}
		// The row's values, its own (the scan's are overwritten by the
		// next row's).
		var vals [7]string
		var v [6]*string
		vals[6] = no
		for i := range text {
			if text[i].Valid {
				vals[i] = text[i].String
				v[i] = &vals[i]
			}
		}
		r := pipeline.SourceRow{OrderNo: &vals[6], SellerID: v[0], Provider: v[1], ProviderTxnID: v[2], Currency: v[3], AmountMinor: v[4], Category: v[5]}
		if !yield(r) {
			return nil
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the date's snapshot: %w", err)
	}
	return nil
}

// An Item is what the ledger holds of a settled order (ItemsOf).
type Item struct {
	Date     pipeline.Date // the business date of the run that settled it
	SellerID string
	Gross    pipeline.Money
}

// ItemsOf returns, of orderNos, those the ledger holds an item of (an
// order settles once, ever: items' key), with the item: an order the
// platform moved into a date's window after another date's run settled it
// is no order no run read; an order read and settled on a date that the
// platform changed or no longer gives since was paid on what was read.
func (r Reader) ItemsOf(ctx context.Context, orderNos []string) (map[string]Item, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT order_no, to_char(business_date, 'YYYY-MM-DD'), seller_id, currency, gross_minor
		FROM items WHERE order_no = ANY ($1)`, pq.Array(orderNos))
	if err != nil {
		return nil, fmt.Errorf("read the items of orders: %w", err)
	}
	defer rows.Close()
	out := map[string]Item{}
	for rows.Next() {
		var no, date, currency string
		var it Item
		if err := rows.Scan(&no, &date, &it.SellerID, &currency, &it.Gross.Minor); err != nil {
			return nil, fmt.Errorf("read the items of orders: %w", err)
		}
		if it.Date, err = pipeline.ParseDate(date); err != nil {
			return nil, fmt.Errorf("read the items of orders: order %s: %w", no, err)
		}
		it.Gross.Currency = pipeline.Currency(currency)
		out[no] = it
	}
	return out, rows.Err()
}
