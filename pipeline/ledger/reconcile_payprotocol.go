package ledger

import (
	"context"
	"fmt"
	"strconv"

	"github.com/settlekit/settle/pipeline"
)

// PayProtocolItemsToReconcile returns the run's payprotocol items that the
// verification accepted (every state but unverified and rejected), by order
// number, each with our refunded total: the refunds netted when it settled
// plus its late refunds that were not rejected (pending, clawed or ignored:
// the platform says the money went back to the buyer, whatever the seller
// owes for it).
func (l *Ledger) PayProtocolItemsToReconcile(ctx context.Context, runID int64) ([]pipeline.PayProtocolItem, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT i.order_no, i.seller_id, i.provider_txn_id, i.currency, i.gross_minor,
		i.refunded_minor, COALESCE(lr.amount, 0)::text, COALESCE(lr.n, 0), COALESCE(lr.last, 0), i.state
		FROM items i
		LEFT JOIN LATERAL (SELECT sum(amount_minor) AS amount, count(*) AS n,
			(array_agg(amount_minor ORDER BY created_at DESC, refund_no DESC))[1] AS last FROM late_refunds
			WHERE order_no = i.order_no AND state <> 'rejected') lr ON true
		WHERE i.run_id = $1 AND i.channel = $2 AND i.state NOT IN ($3, $4)
		ORDER BY i.order_no`, runID, "payprotocol", ItemUnverified, ItemRejected)
	if err != nil {
		return nil, fmt.Errorf("read Pay Protocol items to reconcile: %w", err)
	}
	defer rows.Close()
	var out []pipeline.PayProtocolItem
	for rows.Next() {
		var it pipeline.PayProtocolItem
		var cur, late string
		if err := rows.Scan(&it.OrderNo, &it.SellerID, &it.OutTradeNo, &cur, &it.Gross, &it.Refunded, &late,
			&it.LateRefunds, &it.LastLateRefund, &it.State); err != nil {
			return nil, fmt.Errorf("read Pay Protocol items to reconcile: %w", err)
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
