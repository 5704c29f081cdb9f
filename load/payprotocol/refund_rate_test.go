package payprotocol_test

import (
	"context"
	"testing"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
	"github.com/settlekit/settle/pipeline"
)

// TestARefundIsReadAtThePaymentsRate: a refund's amount is a scaled
// integer of the payment's settlement currency (USDT), and the payment
// detail says at what rate the order's quote was settled: expectedAmount
// (100 USDT) for quoteAmount (15000 JPY). A refund of 50 USDT returned
// half the order, 7500 JPY - not 50 JPY, which is what reading it one to
// one in the quote's currency gives. Read so, the verification took a
// 7500 JPY refund for one of no more than the 1000 JPY the order nets, and
// paid the seller's share of 14000 JPY out of the 7500 JPY the platform
// still holds.
func TestARefundIsReadAtThePaymentsRate(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, payprotocoltest.Options{Polls: -1}, func(c *payprotocol.Config) { c.Decimals = map[string]int{"1:USDT": 6} })
	if _, err := r.fake.AddPayment("T-JPY", "USDT", 6, "100000000", payprotocol.PaymentPaid); err != nil {
		t.Fatal(err)
	}
	if err := r.fake.SetQuote("T-JPY", "JPY", "15000", true); err != nil {
		t.Fatal(err)
	}
	if _, err := r.fake.AddRefund("T-JPY", "50000000", payprotocol.RefundSuccess); err != nil {
		t.Fatal(err)
	}
	api := payprotocol.Adapter{Client: r.client}
	o, err := api.Order(ctx, "T-JPY")
	if err != nil || o.Quote != (pipeline.Money{Minor: 15000, Currency: "JPY"}) || o.Refund == nil {
		t.Fatalf("%+v, %v", o, err)
	}
	if o.Refund.Amount != 7500 || o.Refund.AmountProblem != "" {
		t.Errorf("refund of 50 USDT on a payment of 100 USDT for 15000 JPY: %+v, want 7500 JPY", *o.Refund)
	}

	// The verification of the order, which nets a refund of 1000 JPY.
	it := pipeline.VerifyItem{State: pipeline.ItemUnverified, Split: pipeline.Split{Order: pipeline.Order{OrderNo: "O-JPY", SellerID: "S",
		Channel: payprotocol.Channel, ProviderTxnID: "T-JPY", Currency: "JPY", Amount: 15000, Refunded: 1000}}}
	store := &verifyStore{states: map[string]string{}, items: []pipeline.VerifyItem{it}}
	if _, err := payprotocol.Verify(ctx, store, api, nil, nil, &pipeline.Run{ID: 42}); pipeline.KindOf(err) != pipeline.KindNeedsPerson {
		t.Fatal(err)
	}
	if got, want := store.states["O-JPY"], "held: held: Pay Protocol refund 2 returned 7500 JPY, more than the 1000 JPY the order nets: verified again once the platform records the refund"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}
