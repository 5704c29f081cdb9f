package wechatpay_test

import (
	"context"
	"testing"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
)

// TestTheFakeRefusesWhatWeChatPublishesItRefuses: "Request
// funds-distribution" (chapter4_1_2) publishes 400 INVALID_REQUEST for
// duplicate IDs in the receiver list, and lets the sponsor (the
// sub-merchant) be a receiver only when unfreeze_unsplit is false. The
// fake took both, paying the sub-merchant its own frozen funds as a
// distribution; it refuses them now, nothing applied, and the client reads
// a refusal.
func TestTheFakeRefusesWhatWeChatPublishesItRefuses(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, wechatpaytest.Options{}, nil, nil)
	payable(r)
	r.fake.SetReceiver(subMchID, wechatpay.TypeMerchantID, subMchID, wechatpay.ReceiverEffective)

	dup := distribution("D-DUP", 10_00)
	dup.Receivers = append(dup.Receivers, dup.Receivers[0])
	sponsor := distribution("D-SPONSOR", 10_00)
	sponsor.Receivers[0].Account, sponsor.Receivers[0].Name = subMchID, ""
	sponsor.UnfreezeUnsplit = true
	for name, d := range map[string]wechatpay.Distribution{"duplicate receivers": dup, "sponsor with unfreeze_unsplit": sponsor} {
		if _, err := r.client.Distribute(ctx, d); !refusedWith(err, wechatpay.CodeInvalidRequest) {
			t.Fatalf("%s: %v, want a refusal INVALID_REQUEST", name, err)
		}
		if u, err := r.client.RemainingAmount(ctx, subMchID, "T1"); err != nil || u.Amount != 100_00 {
			t.Fatalf("%s: remaining %+v, %v: something was applied", name, u, err)
		}
	}

	// The sponsor without unfreeze_unsplit is published as allowed.
	sponsor.OutOrderNo, sponsor.UnfreezeUnsplit = "D-SPONSOR-2", false
	if o, err := r.client.Distribute(ctx, sponsor); err != nil || len(o.Receivers) != 1 || o.Receivers[0].Result == wechatpay.ResultClosed {
		t.Fatalf("sponsor without unfreeze_unsplit: %+v, %v", o, err)
	}
}
