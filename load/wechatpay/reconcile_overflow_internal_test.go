package wechatpay

import (
	"math"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

// TestPlatformLinesPastInt64GiveNoFigure: WeChat Pay's order with the
// platform's line more than once, adding up past int64, is an amount
// finding with no figure for WeChat's side: the sum started again from 0
// where it overflowed, and the report said the order moved what its last
// line did (here 300, the commission asked: 2^63-1, 2^63-1, 2 and 300
// read as 302).
func TestPlatformLinesPastInt64GiveNoFigure(t *testing.T) {
	a := pipeline.Attempt{Effect: pipeline.Effect{Kind: KindDistribution, Key: "K1", Currency: "CNY", Amount: 300, State: pipeline.EffectSucceeded},
		Item: pipeline.ChannelItem{Account: "1900000109", Currency: "CNY", SellerShare: 700}}
	var lines []OrderLine
	for _, v := range []int64{math.MaxInt64, math.MaxInt64, 2, 300} {
		lines = append(lines, OrderLine{Platform: true, Result: ResultSuccess, Currency: "CNY", Amount: v})
	}
	ms := compareOrder(a, OrderStatus{State: StateFinished, Lines: lines}, 0)
	if len(ms) != 1 || ms[0].Category != pipeline.MismatchAmount || ms[0].Theirs != "" ||
		!strings.Contains(ms[0].Detail, "4 times, moving more than an int64 of minor units in all") {
		t.Fatalf("%+v", ms)
	}
	// Within int64, the figure is the sum.
	ms = compareOrder(a, OrderStatus{State: StateFinished, Lines: lines[2:]}, 0)
	if len(ms) != 1 || ms[0].Theirs != "302" || !strings.Contains(ms[0].Detail, "moving 3.02 CNY in all") {
		t.Fatalf("%+v", ms)
	}
}
