package payprotocol_test

import (
	"context"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
	"github.com/settlekit/settle/pipeline"
)

// TestARefundPayProtocolDoesNotShowYetHoldsTheOrder: the platform records
// an order's refund and the refund order reaches Pay Protocol later (it is
// created, then a person approves it on Pay Protocol's console). Asked in
// between, Pay Protocol knows no refund of the order: nothing was returned
// to the buyer yet, the platform holds the whole payment. That rejected
// the order for good, its seller never paid once the refund was made,
// while a latest refund of any smaller amount is taken. The order is held
// with the reason, never paid on while Pay Protocol shows no refund, and
// verified once it does.
func TestARefundPayProtocolDoesNotShowYetHoldsTheOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newRig(t, payprotocoltest.Options{Polls: -1}, func(c *payprotocol.Config) { c.Decimals = map[string]int{"1:USDT": 6} })
	if _, err := r.fake.AddPayment("T1", "USDT", 6, "10000000", payprotocol.PaymentPaid); err != nil {
		t.Fatal(err)
	}
	if err := r.fake.SetQuote("T1", "USD", "10.00", true); err != nil {
		t.Fatal(err)
	}
	api := payprotocol.Adapter{Client: r.client}
	store := &verifyStore{states: map[string]string{}, items: []pipeline.VerifyItem{toVerify("T1", 100)}}
	_, err := payprotocol.Verify(ctx, store, api, nil, nil, &pipeline.Run{ID: 42})
	if pipeline.KindOf(err) != pipeline.KindNeedsPerson || !strings.Contains(err.Error(), "order OT1") {
		t.Fatalf("verify: %v, want the held order named for a person", err)
	}
	if got := store.states["OT1"]; !strings.HasPrefix(got, "held: "+payprotocol.VerifyHoldPrefix+" knows no refund of the order") || !strings.Contains(got, "1.00 USD the order nets") {
		t.Fatalf("%q, want it held saying Pay Protocol knows no refund of the 1.00 USD the order nets", got)
	}

	// The refund reaches Pay Protocol: the next run of the date verifies it.
	if _, err := r.fake.AddRefund("T1", "1000000", payprotocol.RefundSuccess); err != nil {
		t.Fatal(err)
	}
	it := toVerify("T1", 100)
	it.State, it.Reason = pipeline.ItemHeld, strings.TrimPrefix(store.states["OT1"], "held: ")
	store = &verifyStore{states: map[string]string{}, items: []pipeline.VerifyItem{it}}
	if _, err := payprotocol.Verify(ctx, store, api, nil, nil, &pipeline.Run{ID: 42}); err != nil {
		t.Fatal(err)
	}
	if got := store.states["OT1"]; got != "recorded: " {
		t.Fatalf("once Pay Protocol shows the refund: %q, want it verified", got)
	}
}
