package wechatpay_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
)

// WeChat Pay's answer about a distribution or unfreeze names each line's
// currency (receivers[].currency, 分账币种: published in the query's answer
// as in the request, "Query funds-distribution result",
// pay.weixin.qq.com/wiki/doc/api/wxpay/ch/profitsharing/chapter3_4.shtml).
// settle did not read it: a line in another currency than asked was
// judged by its minor units alone, and 9.00 HKD paid to the platform, or
// released to the seller, was recorded as 9.00 CNY - the commission
// collected and the item paid, exit 0. Such an answer is not the request
// we sent: the transaction is held for a person, nothing recorded paid.

// TestAnOrderLineInAnotherCurrencyIsNotPaid: the stage, with WeChat Pay
// answering the platform's line, the rest's line, or an unfreeze's line
// in HKD (amounts and results as asked).
func TestAnOrderLineInAnotherCurrencyIsNotPaid(t *testing.T) {
	for name, tc := range map[string]struct {
		commission bool
		line       func(l map[string]any) bool
	}{
		"the platform's line": {true, func(l map[string]any) bool { return l["account"] == "1900009999" }},
		"the rest's line":     {true, func(l map[string]any) bool { return l["description"] == wechatpaytest.RestDescription }},
		"an unfreeze's line":  {false, func(l map[string]any) bool { return l["account"] == subMchID }},
	} {
		t.Run(name, func(t *testing.T) {
			edit := editJSON(func(m map[string]any) {
				if lines, ok := m["receivers"].([]any); ok {
					for _, l := range lines {
						if l := l.(map[string]any); tc.line(l) {
							l["currency"] = "HKD"
						}
					}
				}
			})
			r, store, stage, _ := reviewRig(t, wechatpaytest.Options{Polls: -1}, edit, 1)
			if !tc.commission {
				it := store.items["ORD-00000"]
				it.SellerShare, it.Commission = it.SellerShare+it.Commission, 0
			}
			run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}
			// The run that sends it, then a re-run that asks it again.
			for i := range 2 {
				summary, err := stage(context.Background(), run)
				if paid := store.count(pipeline.ItemPaid); paid != 0 {
					t.Fatalf("run %d: %d paid (%q; summary %q, err %v): a line in HKD taken as CNY", i+1, paid, store.reasonOf(), summary, err)
				}
				if pipeline.KindOf(err) != pipeline.KindNeedsPerson || !strings.Contains(store.reasonOf(), "in HKD") ||
					!strings.Contains(store.reasonOf(), "not the request we sent") {
					t.Fatalf("run %d: err %v (kind %d), held %q: want it held for a person naming HKD", i+1, err, pipeline.KindOf(err), store.reasonOf())
				}
			}
			if sent := r.fake.Calls(wechatpay.APIOrders) + r.fake.Calls(wechatpay.APIUnfreeze); sent != 1 {
				t.Fatalf("%d requests sent, want the one (asked again, never sent again)", sent)
			}
		})
	}
}

// TestTheFakeAnswersALineInAnotherCurrency: the fake names each line's
// currency, as published, and can be made to name another
// (SetReportedCurrency); the sender then takes its answer as one it
// cannot use.
func TestTheFakeAnswersALineInAnotherCurrency(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []string{wechatpay.KindDistribution, wechatpay.KindUnfreeze} {
		t.Run(kind, func(t *testing.T) {
			r := newRig(t, wechatpaytest.Options{Polls: -1}, nil, nil)
			payable(r)
			s := sender(r)
			e := effect(kind, "WXD-20250903-S1-1", 20_00)
			account := mchID
			if kind == wechatpay.KindUnfreeze {
				e.Amount, account = 0, subMchID
			}
			if out, err := s.Send(ctx, e); err != nil || out.Status != pipeline.OutcomeSucceeded {
				t.Fatalf("Send = %+v, %v; want succeeded", out, err)
			}
			o, err := r.client.QueryOrder(ctx, subMchID, "T1", e.Key)
			if err != nil || len(o.Receivers) != 1 || o.Receivers[0].Currency != "CNY" {
				t.Fatalf("QueryOrder = %+v, %v; want its line in CNY", o, err)
			}
			r.fake.SetReportedCurrency(e.Key, account, "HKD")
			if o, err := r.client.QueryOrder(ctx, subMchID, "T1", e.Key); err != nil || o.Receivers[0].Currency != "HKD" {
				t.Fatalf("QueryOrder = %+v, %v; want its line in HKD", o, err)
			}
			out, err := s.Query(ctx, e)
			if !errors.Is(err, wechatpay.ErrAnswer) || !strings.Contains(err.Error(), "in HKD") {
				t.Fatalf("a line in HKD for an effect in CNY: %+v, %v; want an answer we cannot use (ErrAnswer)", out, err)
			}
			// Its amount with the currency's decimals: 20.00 HKD, not 2000.
			if kind == wechatpay.KindDistribution && !strings.Contains(err.Error(), "in HKD (20.00 HKD)") {
				t.Fatalf("a line of 20.00 HKD: %v; want it named with its decimals", err)
			}
		})
	}
}
