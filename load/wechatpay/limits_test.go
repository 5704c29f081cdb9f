package wechatpay_test

import (
	"context"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
)

// TestATransactionIDLongerThanWeChatTakesIsHeldBeforeAnyRequest: WeChat
// Pay publishes transaction_id as string[1,32] (Request
// funds-distribution). The client let ids of up to 64 characters through:
// a platform row with a 33-character id was asked about and sent to
// WeChat Pay, which refuses it (PARAM_ERROR). It is held for a person
// with the reason before any request, while the run's other order is
// paid.
func TestATransactionIDLongerThanWeChatTakesIsHeldBeforeAnyRequest(t *testing.T) {
	r, store, stage, _ := reviewRig(t, wechatpaytest.Options{Polls: -1}, func(b []byte) []byte { return b }, 2)
	long, other := store.items["ORD-00000"], store.items["ORD-00001"]
	long.ProviderTxnID = strings.Repeat("4", wechatpay.MaxTransactionID+1)
	r.fake.AddTransaction(subMchID, long.ProviderTxnID, "CNY", long.Amount)
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}
	_, err := stage(context.Background(), run)
	// One question (its remaining amount) and one distribution, both
	// about the other order.
	if asked, sent := r.fake.Calls(wechatpay.APIAmounts), r.fake.Calls(wechatpay.APIOrders)+r.fake.Calls(wechatpay.APIUnfreeze); asked != 1 || sent != 1 {
		t.Fatalf("%d remaining amounts asked, %d requests sent: want 1 and 1, none about the transaction of %d characters",
			asked, sent, len(long.ProviderTxnID))
	}
	if reason := store.reasons["ORD-00000"]; store.state["ORD-00000"] == pipeline.ItemPaid || !strings.Contains(reason, "want 1 to 32 characters") {
		t.Fatalf("order ORD-00000: %s, reason %q (err %v): want it held naming WeChat's limit", store.state["ORD-00000"], reason, err)
	}
	if store.state["ORD-00001"] != pipeline.ItemPaid || r.fake.Distributed(other.ProviderTxnID) != other.Commission {
		t.Fatalf("order ORD-00001: %s, %d distributed: want paid its commission %d (err %v)",
			store.state["ORD-00001"], r.fake.Distributed(other.ProviderTxnID), other.Commission, err)
	}
}

// TestSettlementPagesUpToWhatWeChatPublishes: WeChat Pay publishes the
// limit of a settlement details page as "up to 30 records". The fake
// assumed 10 and refused more; the client took any page size and would
// have asked WeChat for pages it refuses.
func TestSettlementPagesUpToWhatWeChatPublishes(t *testing.T) {
	r := newRig(t, wechatpaytest.Options{}, nil, func(c *wechatpay.Config) { c.SettlementPageSize = wechatpay.MaxSettlementLimit })
	q := wechatpay.SettlementQuery{SubMchID: subMchID, State: wechatpay.SettleStateUnsettled}
	if _, err := r.client.SettlementPage(context.Background(), q, 0, wechatpay.MaxSettlementLimit); err != nil {
		t.Fatalf("a page of %d: %v", wechatpay.MaxSettlementLimit, err)
	}
	cfg := r.cfg
	cfg.SettlementPageSize = wechatpay.MaxSettlementLimit + 1
	if _, err := wechatpay.New(cfg); err == nil {
		t.Fatalf("a settlement page size of %d was taken: WeChat Pay returns at most %d", cfg.SettlementPageSize, wechatpay.MaxSettlementLimit)
	}
}
