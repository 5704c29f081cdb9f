package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
)

// The WeChat stage names the subject of a transaction's distribution or
// unfreeze "WX/<YYYYMMDD>/<order_no>" (pipeline.DistributeWeChatStage):
// weChatSubject joins an effect e to its item i by it, and lets the items'
// primary key find the item (the order number starts at character 13).
const weChatSubject = `i.order_no = substr(e.subject, 13)
	AND e.subject = 'WX/' || to_char(i.business_date, 'YYYYMMDD') || '/' || i.order_no`

// WeChatItems returns the run's wechatpay items, whatever their state, with
// the sub-merchant the run recorded for their seller ("" when none), by
// order number.
func (l *Ledger) WeChatItems(ctx context.Context, runID int64) ([]pipeline.WeChatItem, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT i.order_no, i.seller_id, COALESCE(s.wechat_sub_mchid, ''), i.provider_txn_id,
		i.currency, i.seller_minor, i.state, i.reason
		FROM items i LEFT JOIN run_sellers s ON s.run_id = i.run_id AND s.seller_id = i.seller_id
		WHERE i.run_id = $1 AND i.channel = $2 ORDER BY i.order_no`, runID, "wechatpay")
	if err != nil {
		return nil, fmt.Errorf("read wechatpay items: %w", err)
	}
	defer rows.Close()
	var out []pipeline.WeChatItem
	for rows.Next() {
		var it pipeline.WeChatItem
		var cur string
		if err := rows.Scan(&it.OrderNo, &it.SellerID, &it.SubMchID, &it.TransactionID, &cur, &it.SellerShare, &it.State, &it.Reason); err != nil {
			return nil, fmt.Errorf("read wechatpay items: %w", err)
		}
		it.Currency = pipeline.Currency(cur)
		out = append(out, it)
	}
	return out, rows.Err()
}

const weChatAttemptColumns = `e.id, e.run_id, e.kind, e.subject, e.attempt, e.idem_key, e.currency, e.amount_minor, e.state,
	e.provider_ref, e.last_error, e.sends, e.created_at, e.updated_at,
	i.order_no, i.seller_id, COALESCE(s.wechat_sub_mchid, ''), i.provider_txn_id, i.currency, i.seller_minor, i.state, i.reason`

// WeChatAttempts returns every distribution and unfreeze attempt of the
// run's wechatpay items that may have been sent (not planned), with the
// sub-merchant of the run that sent it, by out_order_no.
func (l *Ledger) WeChatAttempts(ctx context.Context, runID int64) ([]pipeline.WeChatAttempt, error) {
	return l.weChatAttempts(ctx, `SELECT `+weChatAttemptColumns+`
		FROM items i JOIN effects e ON `+weChatSubject+`
		LEFT JOIN run_sellers s ON s.run_id = e.run_id AND s.seller_id = i.seller_id
		WHERE i.run_id = $1 AND i.channel = $2 AND e.kind = ANY ($3) AND e.state <> 'planned'
		ORDER BY e.idem_key`, runID, "wechatpay", pq.Array([]string{pipeline.KindDistribution, pipeline.KindUnfreeze}))
}

// WeChatDistributed returns the succeeded distributions with a positive
// amount, of any run and date, sent to one of subMchIDs, that were planned
// before to and recorded succeeded at or after from: every one WeChat Pay
// may have accepted in [from, to). By out_order_no.
func (l *Ledger) WeChatDistributed(ctx context.Context, subMchIDs []string, from, to time.Time) ([]pipeline.WeChatAttempt, error) {
	return l.weChatAttempts(ctx, `SELECT `+weChatAttemptColumns+`
		FROM effects e JOIN items i ON `+weChatSubject+`
		JOIN run_sellers s ON s.run_id = e.run_id AND s.seller_id = i.seller_id
		WHERE e.kind = $1 AND e.state = 'succeeded' AND e.amount_minor > 0 AND e.created_at < $3 AND e.updated_at >= $2
		  AND s.wechat_sub_mchid = ANY ($4)
		ORDER BY e.idem_key`, pipeline.KindDistribution, from, to, pq.Array(subMchIDs))
}

func (l *Ledger) weChatAttempts(ctx context.Context, query string, args ...any) ([]pipeline.WeChatAttempt, error) {
	rows, err := l.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read wechatpay attempts: %w", err)
	}
	defer rows.Close()
	var out []pipeline.WeChatAttempt
	for rows.Next() {
		var a pipeline.WeChatAttempt
		var cur, state, itemCur string
		if err := rows.Scan(&a.ID, &a.RunID, &a.Kind, &a.Subject, &a.Attempt, &a.Key, &cur, &a.Amount, &state,
			&a.ProviderRef, &a.LastError, &a.Sends, &a.Planned, &a.Recorded,
			&a.Item.OrderNo, &a.Item.SellerID, &a.Item.SubMchID, &a.Item.TransactionID, &itemCur, &a.Item.SellerShare,
			&a.Item.State, &a.Item.Reason); err != nil {
			return nil, fmt.Errorf("read wechatpay attempts: %w", err)
		}
		a.Currency, a.State, a.Item.Currency = pipeline.Currency(cur), pipeline.EffectState(state), pipeline.Currency(itemCur)
		out = append(out, a)
	}
	return out, rows.Err()
}
