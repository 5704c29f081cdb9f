package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"iter"

	"github.com/lib/pq"
)

// SnapshotOrderNumbers gives the order numbers runs read as their own (the
// rows of their snapshots, source_rows, but the other shards' keys a shard
// keeps: an order of a shard's seller is read only if that shard read it),
// NULL left out, in byte order (ORDER BY order_no COLLATE "C": Go's string
// order, whatever the ledger database's default collation), each as often
// as read, streamed: nothing is held but the row at hand. It is what
// extract.Source.Unread compares the platform's orders of the date now
// with.
//
// The rows are read in one read-only REPEATABLE READ transaction, which
// first makes sure each run still has its extract recorded: a
// --reextract of the date between the caller's reading of its runs and
// this would have dropped the snapshot, and every order of the date would
// look unread. That is an error, as is a run that is gone.
func (l *Ledger) SnapshotOrderNumbers(ctx context.Context, runIDs []int64) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		err := l.snapshotOrderNumbers(ctx, runIDs, func(no string) bool { return yield(no, nil) })
		if err != nil {
			yield("", err)
		}
	}
}

func (l *Ledger) snapshotOrderNumbers(ctx context.Context, runIDs []int64, yield func(string) bool) error {
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
	rows, err := tx.QueryContext(ctx, `SELECT order_no FROM source_rows
		WHERE run_id = ANY ($1) AND NOT other_shard AND order_no IS NOT NULL ORDER BY order_no COLLATE "C"`, pq.Array(runIDs))
	if err != nil {
		return fmt.Errorf("read the date's snapshot: %w", err)
	}
	defer rows.Close()
	var no string
	for rows.Next() {
		if err := rows.Scan(&no); err != nil {
			return fmt.Errorf("read the date's snapshot: %w", err)
		}
		if !yield(no) {
			return nil
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the date's snapshot: %w", err)
	}
	return nil
}

// Settled returns, of orderNos, those the ledger holds an item of (an
// order settles once, ever: items' key): an order the platform moved into
// a date's window after another date's run settled it is no order no run
// read.
func (r Reader) Settled(ctx context.Context, orderNos []string) (map[string]bool, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT order_no FROM items WHERE order_no = ANY ($1)`, pq.Array(orderNos))
	if err != nil {
		return nil, fmt.Errorf("read the items of orders: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var no string
		if err := rows.Scan(&no); err != nil {
			return nil, fmt.Errorf("read the items of orders: %w", err)
		}
		out[no] = true
	}
	return out, rows.Err()
}
