package ledger

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/settlekit/settle/pipeline"
)

// sellerHoldsQuery reads the run's items held for their sellers' accounts
// from the notes of its held items (items_held, migration 00034), each
// checked against its item: what every invocation's upload stage asks, at
// the cost of the few it finds.
const sellerHoldsQuery = `SELECT i.seller_id, i.channel, i.currency, count(*), sum(i.seller_minor), min(i.reason)
	FROM items_held h JOIN items i ON i.order_no = h.order_no AND i.run_id = h.run_id
	WHERE h.run_id = $1 AND i.state = 'held' AND starts_with(i.reason, $2)
	GROUP BY i.seller_id, i.channel, i.currency ORDER BY i.seller_id, i.channel, i.currency`

// SellerHolds returns the run's items held for their sellers' accounts
// (pipeline.SellerHoldPrefix), by seller, channel and currency, in that
// order.
func (l *Ledger) SellerHolds(ctx context.Context, runID int64) ([]pipeline.SellerHold, error) {
	out, err := l.sellerHolds(ctx, sellerHoldsQuery, runID, pipeline.SellerHoldPrefix)
	if err != nil {
		return nil, fmt.Errorf("read the orders held for their sellers' accounts: %w", err)
	}
	for i := range out {
		out[i].Reason = out[i].Reason[len(pipeline.SellerHoldPrefix):]
	}
	return out, nil
}

// sellerHolds runs q, a query of a run's items by seller, channel and
// currency (sellerHoldsQuery's columns) with its run and its reasons'
// prefix, each row a SellerHold with its whole reason.
func (l *Ledger) sellerHolds(ctx context.Context, q string, runID int64, prefix string) ([]pipeline.SellerHold, error) {
	rows, err := l.db.QueryContext(ctx, q, runID, prefix)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []pipeline.SellerHold
	for rows.Next() {
		var h pipeline.SellerHold
		var ch, cur string
		if err := rows.Scan(&h.SellerID, &ch, &cur, &h.Orders, &h.Share, &h.Reason); err != nil {
			return nil, err
		}
		h.Channel, h.Currency = pipeline.Channel(ch), pipeline.Currency(cur)
		out = append(out, h)
	}
	return out, rows.Err()
}

// sellersRejectedHeldQuery is SellersRejectedHeld's.
const sellersRejectedHeldQuery = `SELECT i.seller_id, i.channel, i.currency, count(*), sum(i.seller_minor), min(i.reason)
	FROM items_rejected r JOIN items i ON i.order_no = r.order_no AND i.run_id = r.run_id
	WHERE r.run_id = $1 AND i.state = 'rejected' AND starts_with(i.reason, $2)
	GROUP BY i.seller_id, i.channel, i.currency ORDER BY i.seller_id, i.channel, i.currency`

// SellersRejectedHeld returns the run's items a person rejected for good
// while they were held for their sellers' accounts (settle resolve
// --seller --reject, pipeline.RejectedSellerHold), by seller, channel and
// currency, in that order, Reason their whole reason: read from the notes
// of the run's rejected items (items_rejected, migration 00018), each
// checked against its item, the few. Read from items by run (there is no
// index of the run's rejected items since 00018) it walked every item of
// the run, or the whole table, on every Infinia distribute stage (found
// by a review).
func (l *Ledger) SellersRejectedHeld(ctx context.Context, runID int64) ([]pipeline.SellerHold, error) {
	out, err := l.sellerHolds(ctx, sellersRejectedHeldQuery, runID, pipeline.RejectedSellerHold)
	if err != nil {
		return nil, fmt.Errorf("read the orders a person rejected while held for their sellers' accounts: %w", err)
	}
	return out, nil
}

// MoveSellerHolds records the accounts the platform's sellers give the
// run's held sellers now in the run's sellers, and moves the run's items
// held for their sellers' accounts as each move says (released, or held
// with the reason found now), in one transaction. It returns how many
// items it released.
func (l *Ledger) MoveSellerHolds(ctx context.Context, run *pipeline.Run, accounts []pipeline.SellerAccount, moves []pipeline.SellerHoldMove) (int64, error) {
	var released int64
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		for _, a := range accounts {
			column, err := accountColumn(a.Provider)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE run_sellers SET `+column+` = $3 WHERE run_id = $1 AND seller_id = $2`,
				run.ID, a.SellerID, a.Account); err != nil {
				return fmt.Errorf("record seller %s's %s account: %w", a.SellerID, a.Provider, err)
			}
		}
		for _, m := range moves {
			res, err := tx.ExecContext(ctx, `UPDATE items SET state = $4, reason = $5
				WHERE business_date = `+runDate+` AND seller_id = $2 AND run_id = $1 AND channel = $3
				  AND state = 'held' AND starts_with(reason, $6)
				  AND (state, reason) IS DISTINCT FROM ($4, $5)`,
				run.ID, m.SellerID, string(m.Channel), m.State, m.Reason, pipeline.SellerHoldPrefix)
			if err != nil {
				return fmt.Errorf("move the orders of seller %s held for its account: %w", m.SellerID, err)
			}
			if m.State != pipeline.ItemHeld {
				n, err := res.RowsAffected()
				if err != nil {
					return err
				}
				released += n
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return released, nil
}

// HoldSellerItems holds the run's items of each move's seller and channel
// that nothing was built or sent for yet - recorded and in no trade file,
// or unverified - in state held with the move's reason, in one
// transaction (pipeline.SellerHoldStore). It returns how many it held.
func (l *Ledger) HoldSellerItems(ctx context.Context, run *pipeline.Run, moves []pipeline.SellerHoldMove) (int64, error) {
	var held int64
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		for _, m := range moves {
			res, err := tx.ExecContext(ctx, `UPDATE items SET state = 'held', reason = $4
				WHERE business_date = `+runDate+` AND seller_id = $2 AND run_id = $1 AND channel = $3
				  AND (state = 'recorded' AND provider_ref = '' OR state = 'unverified')`,
				run.ID, m.SellerID, string(m.Channel), m.Reason)
			if err != nil {
				return fmt.Errorf("hold the orders of seller %s for its account: %w", m.SellerID, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			held += n
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return held, nil
}

// SellerHeldOrders returns the items of date d of seller sellerID held
// for the seller's account (pipeline.SellerHoldPrefix), by order number,
// for a person to reject them for good (settle resolve --seller --reject).
func (l *Ledger) SellerHeldOrders(ctx context.Context, d pipeline.Date, sellerID string) ([]HeldItem, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT order_no, channel FROM items
		WHERE business_date = $1 AND seller_id = $2 AND state = 'held' AND starts_with(reason, $3) ORDER BY order_no`,
		d.String(), sellerID, pipeline.SellerHoldPrefix)
	if err != nil {
		return nil, fmt.Errorf("read seller %s's orders held for its account: %w", sellerID, err)
	}
	defer rows.Close()
	var out []HeldItem
	for rows.Next() {
		it := HeldItem{SellerID: sellerID}
		var ch string
		if err := rows.Scan(&it.OrderNo, &ch); err != nil {
			return nil, err
		}
		it.Channel = pipeline.Channel(ch)
		out = append(out, it)
	}
	return out, rows.Err()
}

// SellerRejectedHeldCount returns how many orders of date d of seller
// sellerID a person rejected while they were held for its account
// (pipeline.RejectedSellerHold): settle resolve --seller --reject said
// again finds none held, and says they were rejected before.
func (l *Ledger) SellerRejectedHeldCount(ctx context.Context, d pipeline.Date, sellerID string) (int64, error) {
	var n int64
	err := l.db.QueryRowContext(ctx, `SELECT count(*) FROM items
		WHERE business_date = $1 AND seller_id = $2 AND state = 'rejected' AND starts_with(reason, $3)`,
		d.String(), sellerID, pipeline.RejectedSellerHold).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("read seller %s's orders rejected while held for its account: %w", sellerID, err)
	}
	return n, nil
}
