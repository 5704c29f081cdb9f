package wechatpay

import (
	"testing"

	"github.com/settlekit/settle/pipeline"
)

// TestReconcileFindsAnOrderLineInAnotherCurrency: the matcher compared a
// line's amount alone; WeChat Pay's platform line of 3.00 HKD for a
// commission of 3.00 CNY agreed (and its answer was kept as final). It is
// a currency mismatch.
func TestReconcileFindsAnOrderLineInAnotherCurrency(t *testing.T) {
	t.Parallel()
	a := pipeline.Attempt{Effect: pipeline.Effect{Kind: KindDistribution, Key: "WX20250903O1A1", Currency: "CNY", Amount: 300,
		State: pipeline.EffectSucceeded}, Item: pipeline.ChannelItem{Account: "1900000109", Currency: "CNY", SellerShare: 700}}
	for cur, want := range map[pipeline.Currency]string{"CNY": "", "": "", "HKD": pipeline.MismatchCurrency} {
		st := OrderStatus{State: StateFinished, Lines: []OrderLine{{Platform: true, Result: ResultSuccess, Currency: cur, Amount: 300}}}
		ms := compareOrder(a, st, 0)
		switch {
		case want == "" && len(ms) != 0:
			t.Errorf("line in %q: %+v, want no finding", cur, ms)
		case want != "" && (len(ms) != 1 || ms[0].Category != want):
			t.Errorf("line in %q: %+v, want one %s finding", cur, ms, want)
		}
	}
}

// TestReconcileFindsAnUnfreezeReleasedToAnotherAccount: the matcher took
// any line of an unfreeze but the platform's as the seller's; an unfreeze
// WeChat Pay reports released to another account agreed with the ledger.
// Its line is the sub-merchant's own (OrderLine.Rest): without it, WeChat
// Pay's order has no unfreeze line.
func TestReconcileFindsAnUnfreezeReleasedToAnotherAccount(t *testing.T) {
	t.Parallel()
	a := pipeline.Attempt{Effect: pipeline.Effect{Kind: KindUnfreeze, Key: "WX20250903O1A1", Currency: "CNY", State: pipeline.EffectSucceeded},
		Item: pipeline.ChannelItem{Account: "1900000109", Currency: "CNY", SellerShare: 1000}}
	seller := OrderLine{Rest: true, Result: ResultSuccess, Currency: "CNY", Amount: 1000}
	if ms := compareOrder(a, OrderStatus{State: StateFinished, Lines: []OrderLine{seller}}, 0); len(ms) != 0 {
		t.Fatalf("the seller's line: %+v, want no finding", ms)
	}
	other := OrderLine{Result: ResultSuccess, Currency: "CNY", Amount: 1000}
	ms := compareOrder(a, OrderStatus{State: StateFinished, Lines: []OrderLine{other}}, 0)
	if len(ms) != 1 || ms[0].Category != pipeline.MismatchMissingAtProvider {
		t.Fatalf("released to another account: %+v, want one %s finding", ms, pipeline.MismatchMissingAtProvider)
	}
}
