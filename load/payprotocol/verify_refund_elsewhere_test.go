package payprotocol_test

import (
	"context"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
	"github.com/settlekit/settle/pipeline"
)

// TestARefundElsewhereThanItsPaymentIsHeld: the refund detail names its
// own chain (chainId) and payment order (outPaymentNo). A refund on
// another chain than the payment is a scaled integer of another currency
// (USDT has 6 decimals on one chain, 18 on another), and one of another
// payment order of the same order is not this payment's: its amount says
// nothing in the payment's units. Read as if it were, 1 USDT on the chain
// with 18 decimals (0.000000000001 USDT) passed for the 1.00 USD the order
// nets, and the order was verified and its seller paid. Such a refund is
// not read: the order is held with both chains (or payment orders) named,
// never paid on, verified again by every run of its date; the other
// orders go on; the reconciliation says why it cannot compare.
func TestARefundElsewhereThanItsPaymentIsHeld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newRig(t, payprotocoltest.Options{Polls: -1}, func(c *payprotocol.Config) {
		var err error
		if c.Decimals, err = payprotocol.ParseDecimals("1:USDT=6,2:USDT=18"); err != nil {
			t.Fatal(err)
		}
	})
	for _, no := range []string{"T-CHAIN", "T-PAYMENT", "T-OK"} {
		if _, err := r.fake.AddPayment(no, "USDT", 6, "10000000", payprotocol.PaymentPaid); err != nil {
			t.Fatal(err)
		}
		if err := r.fake.SetQuote(no, "USD", "10.00", true); err != nil {
			t.Fatal(err)
		}
	}
	refund := map[string]string{}
	for _, no := range []string{"T-CHAIN", "T-PAYMENT", "T-OK"} {
		id, err := r.fake.AddRefund(no, "1000000", payprotocol.RefundSuccess)
		if err != nil {
			t.Fatal(err)
		}
		refund[no] = id
	}
	if err := r.fake.PoisonRefund(refund["T-CHAIN"], "chainId", 2); err != nil {
		t.Fatal(err)
	}
	if err := r.fake.PoisonRefund(refund["T-PAYMENT"], "outPaymentNo", "PP-ANOTHER"); err != nil {
		t.Fatal(err)
	}
	p, _ := r.fake.Payment("T-PAYMENT")

	api := payprotocol.Adapter{Client: r.client}
	store := &verifyStore{states: map[string]string{}, items: []pipeline.VerifyItem{toVerify("T-CHAIN", 100), toVerify("T-OK", 100), toVerify("T-PAYMENT", 100)}}
	summary, err := payprotocol.Verify(ctx, store, api, nil, nil, &pipeline.Run{ID: 42})
	if summary != "Pay Protocol: 1 payments verified, 2 held, 0 rejected" || pipeline.KindOf(err) != pipeline.KindNeedsPerson {
		t.Fatalf("%q, %v", summary, err)
	}
	for no, want := range map[string][]string{
		"OT-CHAIN":   {"held: held: Pay Protocol refund " + refund["T-CHAIN"] + " ", "on chain 2", "payment on chain 1"},
		"OT-PAYMENT": {"held: held: Pay Protocol refund " + refund["T-PAYMENT"] + " ", "payment order PP-ANOTHER", p.OutPaymentNo},
		"OT-OK":      {"recorded: "},
	} {
		got := store.states[no]
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q, want it to say %q", no, got, w)
			}
		}
	}
	if !strings.Contains(err.Error(), "order OT-CHAIN") || !strings.Contains(err.Error(), "order OT-PAYMENT") {
		t.Errorf("the run's problem does not name both held orders: %v", err)
	}

	// The reconciliation does not compare such a refund either: a row for
	// a person, saying why.
	for _, no := range []string{"T-CHAIN", "T-PAYMENT"} {
		o, err := api.Order(ctx, no)
		if err != nil || o.Refund == nil {
			t.Fatalf("%s: %+v, %v", no, o, err)
		}
		it := pipeline.RefundedItem{OrderNo: "O" + no, ProviderTxnID: no, Currency: "USD", Gross: 1000, Refunded: 100, State: pipeline.ItemRecorded}
		ms := payprotocol.Match(it, o)
		if len(ms) != 1 || ms[0].Expected || ms[0].Theirs != "" || !strings.Contains(ms[0].Detail, "cannot be compared") {
			t.Errorf("%s: %+v, want one unexpected row saying the refund cannot be compared", no, ms)
		}
	}
}
