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

// paidSQL and heldSQL classify an item's seller share: paid, carried
// forward (held by any stage), or not settled yet.
const (
	paidSQL = `i.state = 'paid'`
	heldSQL = `(i.state = 'held' OR i.reason LIKE 'held:%')`
)

// PayoutLines streams every effect of the date's runs, by kind, subject and
// attempt.
func (l *Ledger) PayoutLines(ctx context.Context, d pipeline.Date, fn func(pipeline.PayoutLine) error) error {
	rows, err := l.db.QueryContext(ctx, `SELECT e.kind, e.subject, e.attempt, e.idem_key, e.currency, e.amount_minor, e.state,
		e.provider_ref, e.last_error, e.sends FROM effects e JOIN runs r ON r.id = e.run_id
		WHERE r.business_date = $1 ORDER BY e.kind, e.subject, e.attempt`, d.String())
	if err != nil {
		return fmt.Errorf("read payouts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p pipeline.PayoutLine
		if err := rows.Scan(&p.Kind, &p.Subject, &p.Attempt, &p.Key, &p.Currency, &p.Amount, &p.State, &p.ProviderRef, &p.LastError, &p.Sends); err != nil {
			return err
		}
		if err := fn(p); err != nil {
			return err
		}
	}
	return rows.Err()
}

// SellerLines streams the date's sellers by seller and currency.
func (l *Ledger) SellerLines(ctx context.Context, d pipeline.Date, fn func(pipeline.SellerLine) error) error {
	rows, err := l.db.QueryContext(ctx, `
		WITH s AS (
			SELECT i.seller_id, i.currency, count(*) AS orders, sum(i.gross_minor) AS gross, sum(i.refunded_minor) AS refunded,
			       sum(i.commission_minor) AS commission,
			       sum(i.seller_minor) FILTER (WHERE i.state <> 'rejected') AS payable,
			       sum(i.seller_minor) FILTER (WHERE `+paidSQL+`) AS paid,
			       sum(i.seller_minor) FILTER (WHERE `+heldSQL+` AND i.state <> 'rejected') AS held,
			       count(*) FILTER (WHERE i.state = 'rejected') AS rejected
			FROM items i WHERE i.business_date = $1 GROUP BY i.seller_id, i.currency)
		SELECT seller_id, currency, orders, gross, refunded, commission, COALESCE(payable, 0), COALESCE(paid, 0), COALESCE(held, 0), rejected
		FROM s ORDER BY seller_id, currency`, d.String())
	if err != nil {
		return fmt.Errorf("read sellers report: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s pipeline.SellerLine
		if err := rows.Scan(&s.SellerID, &s.Currency, &s.Orders, &s.Gross, &s.Refunded, &s.Commission, &s.Payable, &s.Paid, &s.Held, &s.Rejected); err != nil {
			return err
		}
		s.Unsettled = s.Payable - s.Paid - s.Held
		if err := fn(s); err != nil {
			return err
		}
	}
	return rows.Err()
}

// SummaryLines streams the date's totals by channel and currency, with the
// conservation check, and a row per channel for the rejected source rows.
func (l *Ledger) SummaryLines(ctx context.Context, d pipeline.Date, fn func(pipeline.SummaryLine) error) error {
	rows, err := l.db.QueryContext(ctx, `
		SELECT i.channel, i.currency, count(*), sum(i.gross_minor), sum(i.refunded_minor), sum(i.commission_minor), sum(i.seller_minor),
		       COALESCE(sum(i.seller_minor) FILTER (WHERE `+paidSQL+`), 0),
		       COALESCE(sum(i.seller_minor) FILTER (WHERE `+heldSQL+` AND i.state <> 'rejected'), 0),
		       count(*) FILTER (WHERE i.state = 'rejected')
		FROM items i WHERE i.business_date = $1 GROUP BY i.channel, i.currency ORDER BY i.channel, i.currency`, d.String())
	if err != nil {
		return fmt.Errorf("read summary: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s pipeline.SummaryLine
		if err := rows.Scan(&s.Channel, &s.Currency, &s.Orders, &s.Gross, &s.Refunded, &s.Commission, &s.Seller, &s.Paid, &s.Held, &s.Rejected); err != nil {
			return err
		}
		s.Balanced = s.Gross == s.Refunded+s.Commission+s.Seller
		if err := fn(s); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var rejected int64
	if err := l.db.QueryRowContext(ctx, `SELECT count(*) FROM rejects j JOIN runs r ON r.id = j.run_id WHERE r.business_date = $1`, d.String()).Scan(&rejected); err != nil {
		return err
	}
	if rejected > 0 {
		return fn(pipeline.SummaryLine{Channel: "(source rows rejected)", Rejected: rejected, Balanced: true})
	}
	return nil
}
