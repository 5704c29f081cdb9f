package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
)

// The WeChat Pay stage (load/wechatpay, which the ledger may not import)
// names the subject of a transaction's distribution or unfreeze
// "WX/<YYYYMMDD>/<order_no>": weChatSubject joins an effect e to its item i
// by it, and lets the items' primary key find the item (the order number
// starts at character 13). It must change with the stage's subject format.
const weChatSubject = `i.order_no = substr(e.subject, 13)
	AND e.subject = 'WX/' || to_char(i.business_date, 'YYYYMMDD') || '/' || i.order_no`

const weChatAttemptColumns = `e.id, e.run_id, e.kind, e.subject, e.attempt, e.idem_key, e.currency, e.amount_minor, e.state,
	e.provider_ref, e.last_error, e.sends, e.created_at, e.updated_at,
	i.order_no, i.seller_id, COALESCE(s.wechat_sub_mchid, ''), i.provider_txn_id, i.currency, i.seller_minor, i.state, i.reason`

func (l *Ledger) weChatAttempts(ctx context.Context, query string, args ...any) ([]pipeline.Attempt, error) {
	rows, err := l.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read wechatpay attempts: %w", err)
	}
	defer rows.Close()
	var out []pipeline.Attempt
	for rows.Next() {
		var a pipeline.Attempt
		var cur, state, itemCur string
		if err := rows.Scan(&a.ID, &a.RunID, &a.Kind, &a.Subject, &a.Attempt, &a.Key, &cur, &a.Amount, &state,
			&a.ProviderRef, &a.LastError, &a.Sends, &a.Planned, &a.Recorded,
			&a.Item.OrderNo, &a.Item.SellerID, &a.Item.Account, &a.Item.TransactionID, &itemCur, &a.Item.SellerShare,
			&a.Item.State, &a.Item.Reason); err != nil {
			return nil, fmt.Errorf("read wechatpay attempts: %w", err)
		}
		a.Currency, a.State, a.Item.Currency = pipeline.Currency(cur), pipeline.EffectState(state), pipeline.Currency(itemCur)
		out = append(out, a)
	}
	return out, rows.Err()
}

// The WeChat matcher (load/wechatpay) reads a run in pages, so that it
// holds one page of items, attempts or bill lines at a time however large
// the day: the queries below are the pages of a keyset pagination (limit
// 0: every row), and the look-ups a page of a bill needs.

// weChatItemColumns are a run's item with the WeChat Pay sub-merchant the
// run recorded for its seller as its Account ("" when none).
const weChatItemColumns = `i.order_no, i.seller_id, COALESCE(s.wechat_sub_mchid, ''), i.provider_txn_id,
	i.currency, i.seller_minor, i.state, i.reason
	FROM items i LEFT JOIN run_sellers s ON s.run_id = i.run_id AND s.seller_id = i.seller_id`

// weChatOwnAttempts are the attempts at a run's items of a channel ($1,
// $2) of one of kinds ($3) that may have been sent (not planned), from
// any run of the date, with the sub-merchant of the run that sent each as
// its item's Account.
const weChatOwnAttempts = `SELECT ` + weChatAttemptColumns + `
	FROM items i JOIN effects e ON ` + weChatSubject + `
	LEFT JOIN run_sellers s ON s.run_id = e.run_id AND s.seller_id = i.seller_id
	WHERE i.run_id = $1 AND i.channel = $2 AND e.kind = ANY ($3) AND e.state <> 'planned'`

// limitOf is a page's LIMIT: NULL (every row) for 0.
func limitOf(limit int) sql.NullInt64 {
	return sql.NullInt64{Int64: int64(limit), Valid: limit > 0}
}

// weChatItemsAfterQuery is WeChatItemsAfter's page: items_run_order starts
// it at its cursor and ends it at its limit (migration 00008).
const weChatItemsAfterQuery = `SELECT ` + weChatItemColumns + `
	WHERE i.run_id = $1 AND i.channel = $2 AND i.order_no > $3 ORDER BY i.order_no LIMIT $4`

// WeChatItemsAfter returns at most limit (0: every one) of the run's items
// of channel ch whose order number comes after `after`, whatever their
// state, by order number, each with the WeChat Pay sub-merchant the run
// recorded for its seller as its Account ("" when none).
func (l *Ledger) WeChatItemsAfter(ctx context.Context, runID int64, ch pipeline.Channel, after string, limit int) ([]pipeline.ChannelItem, error) {
	return l.weChatItems(ctx, weChatItemsAfterQuery, runID, string(ch), after, limitOf(limit))
}

// WeChatItemsByTransaction returns the run's items of channel ch whose
// WeChat transaction is one of txnIDs, as WeChatItemsAfter, by order
// number.
func (l *Ledger) WeChatItemsByTransaction(ctx context.Context, runID int64, ch pipeline.Channel, txnIDs []string) ([]pipeline.ChannelItem, error) {
	if len(txnIDs) == 0 {
		return nil, nil
	}
	return l.weChatItems(ctx, `SELECT `+weChatItemColumns+`
		WHERE i.run_id = $1 AND i.channel = $2 AND i.provider_txn_id = ANY ($3) ORDER BY i.order_no`,
		runID, string(ch), pq.Array(txnIDs))
}

func (l *Ledger) weChatItems(ctx context.Context, query string, args ...any) ([]pipeline.ChannelItem, error) {
	rows, err := l.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read wechatpay items: %w", err)
	}
	defer rows.Close()
	var out []pipeline.ChannelItem
	for rows.Next() {
		var it pipeline.ChannelItem
		var cur string
		if err := rows.Scan(&it.OrderNo, &it.SellerID, &it.Account, &it.TransactionID, &cur, &it.SellerShare, &it.State, &it.Reason); err != nil {
			return nil, fmt.Errorf("read wechatpay items: %w", err)
		}
		it.Currency = pipeline.Currency(cur)
		out = append(out, it)
	}
	return out, rows.Err()
}

// weChatAttemptsAfterQuery is WeChatAttemptsAfter's page: the run's items
// from the cursor on, in order (items_run_order), each with its attempts
// found by their subject (effects' (kind, subject, attempt) key), so that
// a page costs what it returns. (Written as weChatOwnAttempts' join, the
// planner, unable to estimate the join on the subject, read every effect
// of the ledger and every item of the run after the cursor for each page.)
const weChatAttemptsAfterQuery = `SELECT ` + weChatAttemptColumns + `
	FROM items i
	JOIN LATERAL (SELECT * FROM effects e
		WHERE e.kind = ANY ($3) AND e.subject = 'WX/' || to_char(i.business_date, 'YYYYMMDD') || '/' || i.order_no
		  AND e.state <> 'planned') e ON true
	LEFT JOIN run_sellers s ON s.run_id = e.run_id AND s.seller_id = i.seller_id
	WHERE i.run_id = $1 AND i.channel = $2 AND i.order_no >= $4 AND (i.order_no, e.idem_key) > ($4, $5)
	ORDER BY i.order_no, e.idem_key LIMIT $6`

// WeChatAttemptsAfter returns at most limit (0: every one) of the attempts
// of one of kinds (the stage's distributions and unfreezes) at the run's
// items of channel ch that may have been sent (not planned), from any run
// of the date, with the sub-merchant of the run that sent each as the
// item's Account: those after (afterOrder, afterKey), by the item's order
// number and then the attempt's key (out_order_no). (The order number's
// own bound lets items_run_order start the page at its cursor.)
func (l *Ledger) WeChatAttemptsAfter(ctx context.Context, runID int64, ch pipeline.Channel, kinds []string, afterOrder, afterKey string, limit int) ([]pipeline.Attempt, error) {
	return l.weChatAttempts(ctx, weChatAttemptsAfterQuery, runID, string(ch), pq.Array(kinds), afterOrder, afterKey, limitOf(limit))
}

// WeChatAttemptsByKey returns those of the attempts WeChatAttemptsAfter
// reads whose key (out_order_no) is one of keys, by key.
func (l *Ledger) WeChatAttemptsByKey(ctx context.Context, runID int64, ch pipeline.Channel, kinds, keys []string) ([]pipeline.Attempt, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	return l.weChatAttempts(ctx, weChatOwnAttempts+` AND e.idem_key = ANY ($4) ORDER BY e.idem_key`,
		runID, string(ch), pq.Array(kinds), pq.Array(keys))
}

// weChatDistributedAfterQuery finds each effect's item and seller by their
// keys (the LATERAL joins, which the planner keeps as look-ups): the
// succeeded effects in the window drive it. Joined plainly, with the
// sub-merchants of a small shard, the planner began from them instead - no
// index on a sub-merchant - and read every item and every run's sellers of
// the ledger for each page.
//
// The run's own distributions - most of the window on a night - are left
// out by their effect's run (e.run_id <> $5) before their item is looked
// up: the WeChat stage plans a first attempt only under the run whose item
// of its channel it names (load/wechatpay's firstAttempt), and a later one
// keeps its run (pipeline.NextAttempt), so an effect of run $5 is at an
// item the item's condition leaves out as well; that condition stays, as
// it says what is meant. Without it each of the run's own was looked up
// and dropped: 1.9 s to return nothing after a day of 24,000 WeChat
// distributions, 0.18 s with it (PERFORMANCE.md).
const weChatDistributedAfterQuery = `SELECT ` + weChatAttemptColumns + `
	FROM effects e
	JOIN LATERAL (SELECT * FROM items i WHERE i.order_no = substr(e.subject, 13) LIMIT 1) i
	  ON e.subject = 'WX/' || to_char(i.business_date, 'YYYYMMDD') || '/' || i.order_no
	JOIN LATERAL (SELECT * FROM run_sellers s WHERE s.run_id = e.run_id AND s.seller_id = i.seller_id LIMIT 1) s ON true
	WHERE e.kind = $1 AND e.state = 'succeeded' AND e.amount_minor > 0 AND e.created_at < $3 AND e.updated_at >= $2
	  AND e.run_id <> $5
	  AND s.wechat_sub_mchid = ANY ($4) AND NOT (i.run_id = $5 AND i.channel = $6) AND e.idem_key > $7
	ORDER BY e.idem_key LIMIT $8`

// WeChatDistributedAfter returns at most limit (0: every one) of the
// succeeded effects of kind (the stage's distributions) with a positive
// amount, of any run and date but those at the items of run exceptRun's
// channel ch (its own, which its matching reads by WeChatAttemptsAfter),
// sent to one of subMchIDs, that were planned before to and recorded
// succeeded at or after from: every other one WeChat Pay may have accepted
// in [from, to). Those whose key comes after `after`, by key.
func (l *Ledger) WeChatDistributedAfter(ctx context.Context, kind string, subMchIDs []string, from, to time.Time, exceptRun int64, ch pipeline.Channel, after string, limit int) ([]pipeline.Attempt, error) {
	return l.weChatAttempts(ctx, weChatDistributedAfterQuery, kind, from, to, pq.Array(subMchIDs), exceptRun, string(ch), after, limitOf(limit))
}
