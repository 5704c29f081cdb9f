// Package extract reads the platform's orders for a business day from its
// PostgreSQL database, streaming: rows are handed on one at a time and never
// collected, so memory stays flat however large the day.
package extract

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/pipeline"
)

// Columns are the columns a source query must return, in this order.
var Columns = []string{"order_no", "seller_id", "provider", "provider_txn_id", "currency",
	"amount_minor", "refunded_minor", "category", "paid_at", "confirmed_at"}

// Source runs a source query against the platform database. It implements
// pipeline.Source.
type Source struct {
	DB    *sqlx.DB
	Query string // with $1 = window start (inclusive), $2 = window end (exclusive), both timestamptz
	Name  string // where the query came from, for error messages
}

// Orders streams the rows of the query for window w inside a read-only
// REPEATABLE READ transaction, so that the day is read as one consistent
// snapshot even while the platform keeps writing.
func (s *Source) Orders(ctx context.Context, w pipeline.Window, fn func(pipeline.SourceRow) error) error {
	tx, err := s.DB.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return fmt.Errorf("read orders: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, s.Query, w.Start, w.End)
	if err != nil {
		return pipeline.E(pipeline.KindUsage, "source query "+s.name(), err)
	}
	defer rows.Close()
	if err := checkColumns(rows); err != nil {
		return pipeline.E(pipeline.KindUsage, "source query "+s.name(), err)
	}
	var seq int64
	for rows.Next() {
		seq++
		r := pipeline.SourceRow{Seq: seq}
		if err := rows.Scan(&r.OrderNo, &r.SellerID, &r.Provider, &r.ProviderTxnID, &r.Currency,
			&r.AmountMinor, &r.RefundedMinor, &r.Category, &r.PaidAt, &r.ConfirmedAt); err != nil {
			return fmt.Errorf("read orders: row %d: %w", seq, err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read orders: %w", err)
	}
	return nil
}

func (s *Source) name() string {
	if s.Name == "" {
		return "(built in)"
	}
	return s.Name
}

func checkColumns(rows *sql.Rows) error {
	got, err := rows.Columns()
	if err != nil {
		return err
	}
	if strings.Join(got, ",") != strings.Join(Columns, ",") {
		return fmt.Errorf("returns columns (%s), want (%s)", strings.Join(got, ", "), strings.Join(Columns, ", "))
	}
	return nil
}
