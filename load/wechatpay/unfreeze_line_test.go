package wechatpay_test

import (
	"context"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
)

// TestAnUnfreezeReleasedToAnotherAccountIsNotPaid: an unfreeze releases
// what WeChat Pay holds of a transaction to its sub-merchant (the
// sponsor) and names no receiver. WeChat Pay's answer of an unfreeze
// whose line releases it to another account was judged by its state and
// results alone: SUCCESS, WeChat Pay holding nothing more of the
// transaction, and the item was recorded paid to the seller (exit 0)
// while the answer says someone else got it. It is not the request we
// sent: held for a person, asked again, never sent again.
func TestAnUnfreezeReleasedToAnotherAccountIsNotPaid(t *testing.T) {
	edit := editJSON(func(m map[string]any) {
		if lines, ok := m["receivers"].([]any); ok {
			for _, l := range lines {
				if l := l.(map[string]any); l["account"] == subMchID {
					l["account"] = "1900000777"
				}
			}
		}
	})
	r, store, stage, _ := reviewRig(t, wechatpaytest.Options{Polls: -1}, edit, 1)
	it := store.items["ORD-00000"]
	it.SellerShare, it.Commission = it.SellerShare+it.Commission, 0
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}
	for i := range 2 {
		summary, err := stage(context.Background(), run)
		if paid := store.count(pipeline.ItemPaid); paid != 0 {
			t.Fatalf("run %d: %d paid (%q; summary %q, err %v): an unfreeze released to 1900000777 taken as the seller's", i+1, paid, store.reasonOf(), summary, err)
		}
		if pipeline.KindOf(err) != pipeline.KindNeedsPerson || !strings.Contains(store.reasonOf(), `"1900000777", not to sub-merchant `+subMchID) {
			t.Fatalf("run %d: err %v (kind %d), held %q: want it held for a person naming the account", i+1, err, pipeline.KindOf(err), store.reasonOf())
		}
	}
	if sent := r.fake.Calls(wechatpay.APIUnfreeze) + r.fake.Calls(wechatpay.APIOrders); sent != 1 {
		t.Fatalf("%d requests sent, want the one (asked again, never sent again)", sent)
	}
}

// TestTheMatchersOrderKnowsTheSellersLine: the matcher's order
// (Adapter.Order) tells an unfreeze's line as the seller's
//   - by the sub-merchant asked about when WeChat Pay's answer does not
//     echo sub_mchid (optional in the published schema);
//   - by its account when the line names no receiver type, as the sender
//     judges it: the matcher took it for no line of the seller's, an
//     unexpected missing_at_provider at every reconciliation of a settled
//     unfreeze.
func TestTheMatchersOrderKnowsTheSellersLine(t *testing.T) {
	for name, edit := range map[string]func(map[string]any){
		"without an echo": func(m map[string]any) { delete(m, "sub_mchid") },
		"without a type": func(m map[string]any) {
			rs, _ := m["receivers"].([]any)
			for _, r := range rs {
				if r, ok := r.(map[string]any); ok {
					delete(r, "type")
				}
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			r, _, _, api := reviewRig(t, wechatpaytest.Options{Polls: -1}, editJSON(edit), 1)
			r.fake.AddTransaction(subMchID, "T9", "CNY", 10_00)
			e := pipeline.Effect{ID: 1, Kind: wechatpay.KindUnfreeze, Subject: "WX/20250903/S1/T9", Attempt: 1, Key: "WXU-20250903-S1-1", Currency: "CNY", State: pipeline.EffectPlanned}
			if out, _, err := api.Send(context.Background(), e, wechatpay.Txn{SubMchID: subMchID, TransactionID: "T9", Currency: "CNY"}); err != nil || out.Status != pipeline.OutcomeSucceeded {
				t.Fatalf("Send = %+v, %v", out, err)
			}
			st, err := api.Order(context.Background(), subMchID, "T9", e.Key)
			if err != nil || len(st.Lines) != 1 || !st.Lines[0].Rest || st.Lines[0].Amount != 10_00 {
				t.Fatalf("Order = %+v, %v; want the one line, the seller's, of 10.00", st, err)
			}
		})
	}
}
