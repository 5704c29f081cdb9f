package wechatpay_test

import (
	"context"
	"errors"
	"strings"
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

// TestTheFakeRefusesATransactionUnderAnotherSubMerchant: every global page
// that names a transaction (Request funds-distribution, Unfreeze remaining
// funds, Query funds-distribution result, Remaining Funds Amount to be
// Distributed Query) says its sub_mchid "needs to be consistent with the
// sub-merchant ID in the transaction of Weixin Pay". A request naming a
// transaction under another sub-merchant (a seller re-onboarded since, a
// platform's sellers table that is wrong) is refused 400 INVALID_REQUEST,
// the closest published answer ("非本商户的订单不支持查询", an order not
// of this merchant; see the fake's acceptable), nothing applied - never
// 404 "not found", which would let settle read a request it sent as one
// that never arrived. The fake answered 404 RESOURCE_NOT_EXISTS.
func TestTheFakeRefusesATransactionUnderAnotherSubMerchant(t *testing.T) {
	ctx := context.Background()
	const other = "1900000110"
	r := newRig(t, wechatpaytest.Options{}, nil, nil)
	payable(r)
	r.fake.SetReceiver(other, wechatpay.TypeMerchantID, mchID, wechatpay.ReceiverEffective)

	// The distribution sent under its own sub-merchant, to be asked about
	// under the other.
	if _, err := r.client.Distribute(ctx, distribution("D-OWN", 10_00)); err != nil {
		t.Fatal(err)
	}
	moved := func() (int64, int64, int) {
		return r.fake.Distributed("T1"), r.fake.Frozen("T1"), r.fake.Requests("T1")
	}
	d0, f0, n0 := moved()

	wrong := distribution("D-OTHER", 10_00)
	wrong.SubMchID = other
	_, errDist := r.client.Distribute(ctx, wrong)
	_, errUnfreeze := r.client.Unfreeze(ctx, wechatpay.Unfreeze{SubMchID: other, TransactionID: "T1", OutOrderNo: "U-OTHER", Description: "unfreeze"})
	_, errAmounts := r.client.RemainingAmount(ctx, other, "T1")
	_, errQuery := r.client.QueryOrder(ctx, other, "T1", "D-OWN")
	for name, err := range map[string]error{"distribution": errDist, "unfreeze": errUnfreeze, "remaining amount": errAmounts, "query of its distribution": errQuery} {
		if !refusedWith(err, wechatpay.CodeInvalidRequest) || errors.Is(err, wechatpay.ErrNotFound) {
			t.Errorf("%s under another sub-merchant: %v; want a refusal INVALID_REQUEST, not \"not found\"", name, err)
		} else if !strings.Contains(err.Error(), "sub-merchant "+other) {
			t.Errorf("%s under another sub-merchant: %v; want WeChat's message to name the sub-merchant", name, err)
		}
	}
	if d, f, n := moved(); d != d0 || f != f0 || n != n0 {
		t.Fatalf("refused requests moved money: distributed %d -> %d, frozen %d -> %d, requests %d -> %d", d0, d, f0, f, n0, n)
	}

	// A transaction WeChat Pay does not know at all is still not found,
	// and so is an out_order_no it does not know of a transaction of the
	// sub-merchant asked.
	if _, err := r.client.RemainingAmount(ctx, subMchID, "T-NONE"); !errors.Is(err, wechatpay.ErrNotFound) {
		t.Errorf("unknown transaction: %v, want not found", err)
	}
	if _, err := r.client.QueryOrder(ctx, subMchID, "T1", "D-NONE"); !errors.Is(err, wechatpay.ErrNotFound) {
		t.Errorf("unknown out_order_no: %v, want not found", err)
	}
}
