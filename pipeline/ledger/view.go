package ledger

import (
	"context"
	"database/sql"
	"fmt"
)

// querier runs a Reader's queries: the Ledger's pool (*sqlx.DB), each
// statement on a snapshot of its own, or a View's transaction (*sql.Tx).
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Reader reads the lines of a date's reports (OrderLines, PayoutLines,
// SellerLines, SummaryLines, MismatchLines), streaming their rows. The
// Reader a Ledger embeds reads on the pool, each read as the ledger is
// when it begins; the one View gives reads them all as the ledger was at
// one instant.
type Reader struct{ q querier }

// View runs fn with a Reader all of whose reads see the ledger as it was at
// one instant: a REPEATABLE READ, READ ONLY transaction (one PostgreSQL
// snapshot, taken by its first read), so that the reports of one set,
// read one after another while other processes record payouts (the shards
// of a date), agree with each other. Its rows still stream: one read's
// rows are consumed before the next read begins (fn must not read with
// the Reader while another read's callback runs, nor keep it past its
// return). The session is one of the pool's, with the ledger's
// search_path and jit=off. What fn returns is View's error.
func (l *Ledger) View(ctx context.Context, fn func(Reader) error) error {
	tx, err := l.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("read the ledger at one instant: %w", err)
	}
	defer tx.Rollback()
	if err := fn(Reader{tx}); err != nil {
		return err
	}
	return tx.Commit()
}
