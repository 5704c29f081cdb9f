package ledger

import (
	"context"
	"fmt"

	"github.com/settlekit/settle/pipeline"
)

// OrderLines streams every order considered on date d by any of its runs -
// settled items and rejects - ordered by order_no then source position, for
// the orders report.
func (l *Ledger) OrderLines(ctx context.Context, d pipeline.Date, fn func(pipeline.OrderLine) error) error {
	rows, err := l.db.QueryContext(ctx, `
		SELECT i.order_no, i.seller_id, i.channel, i.currency, i.gross_minor::text, i.refunded_minor::text,
		       i.commission_minor::text, i.seller_minor::text, 'settle', i.state, i.reason, i.rule,
		       i.payout_key, i.provider_ref, r.shard_index || '/' || r.shard_count, 0 AS seq
		FROM items i JOIN runs r ON r.id = i.run_id
		WHERE i.business_date = $1
		UNION ALL
		SELECT j.order_no, j.seller_id, j.provider, j.currency, j.amount, j.refunded, '', '', 'rejected',
		       'rejected', j.reason, '', '', '', r.shard_index || '/' || r.shard_count, j.seq
		FROM rejects j JOIN runs r ON r.id = j.run_id
		WHERE r.business_date = $1
		ORDER BY 1, 16, 15`, d.String())
	if err != nil {
		return fmt.Errorf("read order lines: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var o pipeline.OrderLine
		var seq int64
		if err := rows.Scan(&o.OrderNo, &o.SellerID, &o.Provider, &o.Currency, &o.Gross, &o.Refunded,
			&o.Commission, &o.Seller, &o.Action, &o.State, &o.Reason, &o.Rule, &o.PayoutKey, &o.ProviderRef,
			&o.Shard, &seq); err != nil {
			return fmt.Errorf("read order lines: %w", err)
		}
		if err := fn(o); err != nil {
			return err
		}
	}
	return rows.Err()
}

// TotalsOfRun sums a run's items by channel and currency.
func (l *Ledger) TotalsOfRun(ctx context.Context, runID int64) ([]pipeline.Totals, error) {
	rows, err := l.db.QueryContext(ctx, `
		SELECT channel, currency, count(*), sum(gross_minor), sum(refunded_minor), sum(commission_minor), sum(seller_minor)
		FROM items WHERE run_id = $1 GROUP BY channel, currency ORDER BY channel, currency`, runID)
	if err != nil {
		return nil, fmt.Errorf("read totals: %w", err)
	}
	defer rows.Close()
	var out []pipeline.Totals
	for rows.Next() {
		var t pipeline.Totals
		var ch, cur string
		// numeric sums cannot overflow in SQL; scanning into int64 fails loudly if they exceed it.
		if err := rows.Scan(&ch, &cur, &t.Orders, &t.Gross, &t.Refunded, &t.Commission, &t.Seller); err != nil {
			return nil, fmt.Errorf("read totals: %w", err)
		}
		t.Channel, t.Currency = pipeline.Channel(ch), pipeline.Currency(cur)
		out = append(out, t)
	}
	return out, rows.Err()
}

// RejectReasons counts a run's rejects by reason, most frequent first.
type RejectReason struct {
	Reason string
	Count  int64
	Sample string // one order number (or source position) with this reason
}

// RejectsOfRun groups a run's rejects by reason.
func (l *Ledger) RejectsOfRun(ctx context.Context, runID int64) ([]RejectReason, error) {
	rows, err := l.db.QueryContext(ctx, `
		SELECT reason, count(*), min(CASE WHEN order_no = '' THEN '(row ' || seq || ')' ELSE order_no END)
		FROM rejects WHERE run_id = $1 GROUP BY reason ORDER BY count(*) DESC, reason`, runID)
	if err != nil {
		return nil, fmt.Errorf("read rejects: %w", err)
	}
	defer rows.Close()
	var out []RejectReason
	for rows.Next() {
		var r RejectReason
		if err := rows.Scan(&r.Reason, &r.Count, &r.Sample); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// SnapshotCount is how many source rows the run's extract stage recorded.
func (l *Ledger) SnapshotCount(ctx context.Context, runID int64) (int64, error) {
	var n int64
	err := l.db.QueryRowContext(ctx, `SELECT count(*) FROM source_rows WHERE run_id = $1`, runID).Scan(&n)
	return n, err
}
