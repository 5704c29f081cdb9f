package main

import (
	"strings"
	"testing"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
)

// wechatSeller returns a seller of the seeded day with a sub_mchid and at
// least three wechatpay orders, and its wechatpay orders.
func (e *env) wechatSeller() (string, []string) {
	e.t.Helper()
	var seller string
	if err := e.db.Get(&seller, `SELECT s.seller_id FROM sellers s WHERE s.wechat_sub_mchid IS NOT NULL
		AND (SELECT count(*) FROM orders o WHERE o.seller_id = s.seller_id AND o.provider = 'wechatpay') >= 3
		ORDER BY s.seller_id LIMIT 1`); err != nil {
		e.t.Fatal(err)
	}
	var orders []string
	if err := e.db.Select(&orders, `SELECT order_no FROM orders WHERE seller_id = $1 AND provider = 'wechatpay' ORDER BY order_no`, seller); err != nil {
		e.t.Fatal(err)
	}
	return seller, orders
}

// TestWeChatATransactionIDWeChatPayCannotTakeIsRejected: the platform's
// provider_txn_id of a wechatpay order goes into WeChat Pay's requests and
// their paths (transactions/{transaction_id}/amounts), which take 1 to 32
// characters of [0-9A-Za-z_-]. One longer, with a '.', or with a path and a
// query in it ("/../amounts?x=") passed the transform: the order was
// recorded, then held at every distribute ("keys WeChat Pay cannot
// take") and a mismatch at every reconcile, nothing ever sendable for it.
// It is bad data, rejected at transform naming the column and the rule;
// the seller's other orders and every other order settle, and nothing is
// asked of WeChat Pay about it.
func TestWeChatATransactionIDWeChatPayCannotTakeIsRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "60", "--sellers", "4", "--seed", "21")
	seller, orders := e.wechatSeller()
	bad := map[string]string{
		orders[0]: "4200000000202611230000000001999999",    // 34 characters
		orders[1]: "4200000000.2026112300000001",           // a '.'
		orders[2]: "42000000002026/../amounts?sub_mchid=1", // a path and a query
	}
	for no, txn := range bad {
		e.db.MustExec(`UPDATE orders SET provider_txn_id = $2 WHERE order_no = $1`, no, txn)
	}
	sim := e.weChatSim(nil, 0)
	for _, run := range []string{"first run", "re-run"} {
		out, _ := e.runWeChat(sim)
		for no, txn := range bad {
			var reason string
			if err := e.db.Get(&reason, `SELECT reason FROM settle.rejects WHERE order_no = $1`, no); err != nil {
				t.Fatalf("%s: order %s with provider_txn_id %q is not rejected: %v\n%s", run, no, txn, err, out)
			}
			if want := "provider_txn_id is not a wechatpay transaction id: " + `"` + txn + `" is not 1 to 32 characters of [0-9A-Za-z_-]`; reason != want {
				t.Fatalf("%s: order %s rejected as %q, want %q", run, no, reason, want)
			}
			if n := e.count(`SELECT count(*) FROM settle.items WHERE order_no = $1`, no); n != 0 {
				t.Fatalf("%s: order %s rejected and recorded", run, no)
			}
		}
		if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay' AND state <> 'paid'`); n != 0 {
			t.Fatalf("%s: %d wechatpay items not paid\n%s", run, n, out)
		}
		if n := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND channel = 'wechatpay' AND state = 'paid'`, seller); n != int64(len(orders)-len(bad)) {
			t.Fatalf("%s: %d of seller %s's other %d wechatpay orders paid", run, n, seller, len(orders)-len(bad))
		}
		for _, txn := range bad {
			if n := e.count(`SELECT count(*) FROM settle.mismatches WHERE subject LIKE '%' || $1 || '%' OR detail LIKE '%' || $1 || '%'`, txn); n != 0 {
				t.Fatalf("%s: %d mismatches about transaction %s\n%s", run, n, txn, out)
			}
		}
	}
	e.checkWeChatOnce(sim)
}

// TestWeChatASubMchIDLongerThanWeChatPayTakesHoldsItsSellerAtTransform: a
// seller's sub_mchid goes into every request about its transactions, which
// WeChat Pay takes of 1 to 32 characters (sub_mchid string[1,32]). The
// transform's check took up to 64, so one of 33 passed it: each of the
// seller's orders was recorded to be paid, every distribute asked WeChat
// Pay about it and was refused (PARAM_ERROR), and held it with the advice
// to settle it by hand at WeChat Pay and resolve it, and every reconcile
// reported mismatches. It is held at transform for its seller's account,
// as one with other characters is, nothing asked of WeChat Pay for it; the
// other sellers settle.
func TestWeChatASubMchIDLongerThanWeChatPayTakesHoldsItsSellerAtTransform(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "60", "--sellers", "4", "--seed", "21")
	seller, orders := e.wechatSeller()
	long := strings.Repeat("1", wechatpay.MaxSubMchID+1)
	e.db.MustExec(`UPDATE sellers SET wechat_sub_mchid = $2 WHERE seller_id = $1`, seller, long)
	sim := e.weChatSim(nil, 0)
	out, _ := e.runWeChat(sim)
	var rows []struct {
		OrderNo string `db:"order_no"`
		State   string `db:"state"`
		Reason  string `db:"reason"`
	}
	if err := e.db.Select(&rows, `SELECT order_no, state, reason FROM settle.items WHERE seller_id = $1 AND channel = 'wechatpay' ORDER BY order_no`, seller); err != nil || len(rows) != len(orders) {
		t.Fatal(rows, err)
	}
	for _, r := range rows {
		if r.State == "paid" || !strings.HasPrefix(r.Reason, pipeline.SellerHoldPrefix) ||
			!strings.Contains(r.Reason, `"`+long+`" is not 1 to 32 characters of [0-9A-Za-z_-]`) {
			t.Fatalf("order %s of the seller with a %d-character sub_mchid: %s %q, want held for its account naming the rule\n%s",
				r.OrderNo, len(long), r.State, r.Reason, out)
		}
	}
	paid := e.checkWeChatOnce(sim)
	if want := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay' AND seller_id <> $1`, seller); int64(paid) != want || want == 0 {
		t.Fatalf("%d of the other sellers' %d transactions settled\n%s", paid, want, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.mismatches WHERE subject LIKE '%' || $1 || '%' OR detail LIKE '%' || $1 || '%'`, long); n != 0 {
		t.Fatalf("%d mismatches about sub-merchant %s\n%s", n, long, out)
	}
}
