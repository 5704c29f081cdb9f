package wechatpay_test

import (
	"context"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
)

// TestATransactionWeChatHoldsInAnotherCurrencyIsHeld: the order says
// 1000 JPY with no commission (an unfreeze); WeChat Pay holds 1000 of
// transaction T in CNY (10.00 yuan). The check compared the minor units
// alone (WeChat's answer names the currency, and it was dropped): the
// unfreeze went out and the item was recorded paid 1000 JPY to the
// seller, on data the provider contradicts.
func TestATransactionWeChatHoldsInAnotherCurrencyIsHeld(t *testing.T) {
	r, store, stage, _ := reviewRig(t, wechatpaytest.Options{Polls: -1}, func(b []byte) []byte { return b }, 1)
	it := store.items["ORD-00000"]
	it.Currency, it.Amount, it.Commission, it.SellerShare = "JPY", 1000, 0, 1000
	r.fake.AddTransaction(subMchID, it.ProviderTxnID, "CNY", 1000)
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}
	summary, err := stage(context.Background(), run)
	if sent := r.fake.Calls(wechatpay.APIUnfreeze) + r.fake.Calls(wechatpay.APIOrders); sent != 0 || store.count(pipeline.ItemPaid) != 0 {
		t.Fatalf("%d requests sent, %d items paid (reason %q; summary %q, err %v): want the transaction held, nothing sent",
			sent, store.count(pipeline.ItemPaid), store.reasonOf(), summary, err)
	}
	if pipeline.KindOf(err) != pipeline.KindNeedsPerson || !strings.Contains(store.reasonOf(), "CNY") {
		t.Fatalf("err %v, reason %q: want it held for a person naming WeChat's currency", err, store.reasonOf())
	}
}
