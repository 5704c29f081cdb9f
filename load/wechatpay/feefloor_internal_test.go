package wechatpay

import (
	"testing"

	"github.com/settlekit/settle/pipeline"
)

// TestTheLeastNetOfTheFeeIsRoundedDown: WeChat Pay holds an order's
// amount less its fee, and the fee is rounded up at most: the least it may
// hold (netOf) and the least an unfreeze may release (agrees) are rounded
// down. 10.01 at a 0.6% fee is 9.94994: 9.94 is right, 9.93 is not; a
// least rounded to nearest (9.95) took a transaction holding exactly
// 9.94 for one that disagrees, for a person, and so an unfreeze that
// released it.
func TestTheLeastNetOfTheFeeIsRoundedDown(t *testing.T) {
	t.Parallel()
	c := &StageConfig{MaxFeeBps: 60}
	if got, err := c.netOf(1001); err != nil || got != 994 {
		t.Errorf("netOf(1001) at 60 bps = %d, %v; want 994", got, err)
	}
	a := pipeline.Attempt{Effect: pipeline.Effect{Kind: KindUnfreeze, Currency: "CNY", Amount: 1001},
		Item: pipeline.ChannelItem{Currency: "CNY", SellerShare: 1001}}
	for got, want := range map[int64]bool{1001: true, 995: true, 994: true, 993: false, 1002: false} {
		if agrees(a, got, 60) != want {
			t.Errorf("an unfreeze of 10.01 releasing %d at a fee of 60 bps: agrees %v, want %v", got, !want, want)
		}
	}
}
