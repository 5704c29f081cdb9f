package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
)

// TestWeChatASellerWhoseSubMerchantChanged: one seller among several is
// given by the platform's sellers a sub_mchid that is not the one its
// transactions were paid under (re-onboarded as a new entity after its
// orders were paid, or the platform's table wrong). WeChat Pay refuses
// every request naming one of those transactions under another
// sub-merchant (wechatpaytest: 400 INVALID_REQUEST). settle must pay
// nothing of that seller's, settle every other seller's, send no
// distribution or unfreeze under the wrong sub-merchant and loop on
// nothing, hold each of its orders naming the transaction, the seller and
// the sub-merchant asked, and exit 4 on every run until a person settles
// them. The way out: a person settles the transaction by hand at WeChat
// Pay under its own sub-merchant and records it with settle resolve
// --order --wechat-sub-mchid, which checks there that WeChat Pay holds
// nothing of it (the run's sellers, read once, keep the wrong one; its
// --reextract is refused once the others' distributions went out).
func TestWeChatASellerWhoseSubMerchantChanged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "120", "--sellers", "4", "--seed", "21")
	sim := e.weChatSim(nil, 0) // the transactions frozen at the sellers' sub-merchants of the day
	var movers []struct {
		Seller string `db:"seller_id"`
		Old    string `db:"wechat_sub_mchid"`
	}
	if err := e.db.Select(&movers, `SELECT s.seller_id, s.wechat_sub_mchid FROM sellers s
		WHERE s.wechat_sub_mchid IS NOT NULL AND EXISTS (SELECT 1 FROM orders o WHERE o.seller_id = s.seller_id AND o.provider = 'wechatpay' AND o.provider_txn_id IS NOT NULL)
		AND (SELECT count(*) FROM sellers x WHERE x.wechat_sub_mchid = s.wechat_sub_mchid) = 1
		ORDER BY s.seller_id LIMIT 2`); err != nil || len(movers) != 2 {
		t.Fatal(movers, err)
	}
	moved, wrong := movers[0], movers[1]
	const newSub, notOurs = "1900077777", "1900088888"
	// Re-onboarded after its orders were paid: the platform gives the new one.
	e.db.MustExec(`UPDATE sellers SET wechat_sub_mchid = $2 WHERE seller_id = $1`, moved.Seller, newSub)
	// The platform's sellers give another a sub_mchid that is none of the
	// service provider's: WeChat Pay refuses the platform's receiver there.
	e.db.MustExec(`UPDATE sellers SET wechat_sub_mchid = $2 WHERE seller_id = $1`, wrong.Seller, notOurs)
	sim.WeChat.PoisonReceivers(notOurs, wechatpay.CodeInvalidRequest)

	type item struct {
		OrderNo string `db:"order_no"`
		Txn     string `db:"provider_txn_id"`
		State   string `db:"state"`
		Reason  string `db:"reason"`
	}
	itemsOf := func(seller string) []item {
		var rows []item
		if err := e.db.Select(&rows, `SELECT order_no, provider_txn_id, state, reason FROM settle.items
			WHERE channel = 'wechatpay' AND seller_id = $1 ORDER BY order_no`, seller); err != nil || len(rows) == 0 {
			t.Fatal(rows, err)
		}
		return rows
	}
	items := func() []item { return itemsOf(moved.Seller) }
	moneyRequests := func() int { return sim.WeChat.Calls(wechatpay.APIOrders) + sim.WeChat.Calls(wechatpay.APIUnfreeze) }
	check := func(run string, out string, code int) {
		t.Helper()
		if code != 4 {
			t.Fatalf("%s: exit %d, want 4 (work left for a person)\n%s", run, code, out)
		}
		for _, m := range []struct{ seller, at string }{{moved.Seller, "transaction %s at sub-merchant " + newSub}, {wrong.Seller, "at sub-merchant " + notOurs}} {
			for _, r := range itemsOf(m.seller) {
				if r.State == "paid" {
					t.Fatalf("%s: order %s of a seller whose sub-merchant is not its transactions' is paid: %s", run, r.OrderNo, r.Reason)
				}
				if d, f := sim.WeChat.Distributed(r.Txn), sim.WeChat.Unfrozen(r.Txn); d != 0 || f != 0 {
					t.Fatalf("%s: transaction %s: %d distributed, %d unfrozen", run, r.Txn, d, f)
				}
				// Said in settle's own words (WeChat Pay's message need
				// not name anything): the transaction or the receiver, the
				// sub-merchant asked, the seller it is the run's sub_mchid
				// of, and the way out.
				at := m.at
				if strings.Contains(at, "%s") {
					at = fmt.Sprintf(at, r.Txn)
				}
				for _, want := range []string{"held: WeChat Pay: ", at, "seller " + m.seller + "'s sub_mchid", "INVALID_REQUEST",
					"settle resolve --order " + r.OrderNo + " --wechat-sub-mchid"} {
					if !strings.Contains(r.Reason, want) {
						t.Fatalf("%s: order %s held as %q: does not say %q", run, r.OrderNo, r.Reason, want)
					}
				}
			}
		}
		if n := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND reason LIKE $2`, wrong.Seller,
			"held: WeChat Pay: platform receiver at sub-merchant "+notOurs+", seller "+wrong.Seller+"'s sub_mchid%"); n == 0 {
			t.Fatalf("%s: no order of seller %s held for the receiver WeChat Pay refuses at %s", run, wrong.Seller, notOurs)
		}
		d, _ := pipeline.ParseDate(testDate)
		for _, r := range items() {
			if n := e.count(`SELECT count(*) FROM settle.effects WHERE subject = $1`, wechatpay.Subject(d, r.OrderNo)); n != 0 {
				t.Fatalf("%s: %d requests planned for order %s of the seller whose sub-merchant changed", run, n, r.OrderNo)
			}
		}
		// Every other seller's transaction is settled, once.
		if paid, want := e.checkWeChatOnce(sim), e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay' AND seller_id NOT IN ($1, $2)`, moved.Seller, wrong.Seller); int64(paid) != want || want == 0 {
			t.Fatalf("%s: %d of the other sellers' %d transactions settled\n%s", run, paid, want, out)
		}
	}
	out, code := e.runWeChat(sim)
	check("first run", out, code)
	sent, amounts := moneyRequests(), sim.WeChat.Calls(wechatpay.APIAmounts)
	held := len(items())
	// The re-run asks again about each held transaction, sends nothing.
	out, code = e.runWeChat(sim)
	check("second run", out, code)
	if moneyRequests() != sent {
		t.Fatalf("the re-run sent %d distributions or unfreezes", moneyRequests()-sent)
	}
	if n := sim.WeChat.Calls(wechatpay.APIAmounts) - amounts; n > 2*held {
		t.Fatalf("the re-run asked %d times what WeChat Pay holds of %d held transactions", n, held)
	}

	// The way out: released by hand at WeChat Pay under its own
	// sub-merchant, then recorded.
	client, err := wechatpay.New(sim.WeChat.ClientConfig(sim.Config.WeChatURL))
	if err != nil {
		t.Fatal(err)
	}
	wx := weChatArgs(sim)
	first := items()[0]
	resolve := func(flags ...string) (string, int) {
		return e.settle(append([]string{"resolve", "--date", testDate, "--order", first.OrderNo, "--note", "unfrozen by hand, OPS-7"}, append(wx, flags...)...)...)
	}
	// Before: WeChat Pay still holds it at its own sub-merchant.
	if out, code := resolve("--wechat-sub-mchid", moved.Old); code != 2 || !strings.Contains(out, "WeChat Pay still holds") ||
		!strings.Contains(out, "settle it by hand at WeChat Pay there first") {
		t.Fatalf("resolve while WeChat Pay holds the money: exit %d, want 2\n%s", code, out)
	}
	if _, err := client.Unfreeze(context.Background(), wechatpay.Unfreeze{SubMchID: moved.Old, TransactionID: first.Txn,
		OutOrderNo: "MANUAL-" + first.OrderNo, Description: "released by hand"}); err != nil {
		t.Fatal(err)
	}
	// The run's sub-merchant: WeChat Pay refuses, nothing recorded; so
	// does a sub-merchant that is not the transaction's.
	for _, c := range []struct {
		flags []string
		says  string
	}{{nil, "give that one with --wechat-sub-mchid"}, {[]string{"--wechat-sub-mchid", "1900066666"}, "is 1900066666, given with --wechat-sub-mchid, the sub-merchant"}} {
		if out, code := resolve(c.flags...); code != 2 || !strings.Contains(out, "nothing recorded") || !strings.Contains(out, c.says) {
			t.Fatalf("resolve %v: exit %d, want 2, nothing recorded, saying %q\n%s", c.flags, code, c.says, out)
		}
	}
	if out, code := e.settle(append([]string{"resolve", "--date", testDate, "--subject", "WX/x", "--note", "x", "--wechat-sub-mchid", moved.Old}, wx...)...); code != 2 ||
		!strings.Contains(out, "--wechat-sub-mchid: only with --order") {
		t.Fatalf("--wechat-sub-mchid with --subject: exit %d, want 2 naming the flag\n%s", code, out)
	}
	if out, code := resolve("--wechat-sub-mchid", "bad sub"); code != 2 || !strings.Contains(out, "--wechat-sub-mchid") {
		t.Fatalf("resolve with a sub_mchid WeChat Pay cannot take: exit %d, want 2 naming the flag\n%s", code, out)
	}
	out, code = resolve("--wechat-sub-mchid", moved.Old)
	if code != 0 || !strings.Contains(out, "WeChat Pay held nothing of transaction "+first.Txn+" at sub-merchant "+moved.Old) {
		t.Fatalf("resolve at the transaction's own sub-merchant once released: exit %d\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE order_no = $1 AND state = 'paid' AND reason LIKE '%OPS-7%'`, first.OrderNo); n != 1 {
		t.Fatalf("order %s is not paid with the note\n%s", first.OrderNo, out)
	}
	// A sub-merchant given where the run's is WeChat Pay's answer: refused
	// for an order that is not held (nothing to settle by hand).
	if out, code := resolve("--wechat-sub-mchid", moved.Old); code != 2 {
		t.Fatalf("resolve again: exit %d, want 2\n%s", code, out)
	}
}
