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
