package paysim

import (
	"context"
	"strconv"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/pipeline"
)

// SeedWeChat creates at the simulated WeChat Pay the payment transactions
// of the platform's wechatpay orders confirmed in w, each frozen at its
// seller's sub-merchant for the order's amount less its refunds, and
// distributable at once. It returns how many it created.
//
// A refunded order is a transaction of the order's amount with its refunds
// returned to the buyer (wechatpaytest's Refund), not a smaller
// transaction: WeChat's ratio cap is on the order amount, as the job
// checks it. Before, its cap was on the net, and an order refunded past
// 70% whose commission was within 30% of its amount, but not of its net,
// was refused PARAM_ERROR on every run (found by seeds the fault matrix
// does not use).
func (s *Sim) SeedWeChat(ctx context.Context, db *sqlx.DB, query string, w pipeline.Window) (int, error) {
	rows, err := db.QueryContext(ctx, `SELECT q.provider_txn_id, s.wechat_sub_mchid, q.currency, q.amount_minor::text, q.refunded_minor::text
		FROM (`+query+`) q JOIN sellers s USING (seller_id)
		WHERE q.provider = 'wechatpay' AND q.provider_txn_id IS NOT NULL AND s.wechat_sub_mchid IS NOT NULL`, w.Start, w.End)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var txn, sub, cur, amount, refunded string
		if err := rows.Scan(&txn, &sub, &cur, &amount, &refunded); err != nil {
			return n, err
		}
		a, err1 := strconv.ParseInt(amount, 10, 64)
		r, err2 := strconv.ParseInt(refunded, 10, 64)
		if err1 != nil || err2 != nil || a <= 0 || r < 0 || r > a || !pipeline.Currency(cur).Valid() {
			continue // a bad row: the job rejects it
		}
		s.addWeChat(sub, txn, pipeline.Currency(cur), a, r)
		n++
	}
	return n, rows.Err()
}

// addWeChat creates a transaction of amount at sub-merchant sub, refunded
// refunded before its distribution.
func (s *Sim) addWeChat(sub, txn string, cur pipeline.Currency, amount, refunded int64) {
	s.WeChat.AddTransaction(sub, txn, cur, amount)
	s.WeChat.Refund(txn, refunded)
	s.trackWeChat(sub, txn)
}
