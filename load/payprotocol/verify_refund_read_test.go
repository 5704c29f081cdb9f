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

// TestARefundOfSubMinorUnitsIsBoundedNotRejected: the person who approves
// a refund on Pay Protocol's console may change its amount, and the
// merchant negotiates the network fee with the buyer (Pay Protocol's
// refund process), so a refund may return an amount of the coin that is
// no whole number of the order's minor units: 0.965432 USDT of a payment
// settled one to one for a dollar order. Such a refund cannot be compared
// exactly, but it can be bounded: rounded up to the next minor unit it is
// still no more than what the order nets, so the platform holds at least
// what it pays, as with any latest refund below what the order nets, and
// the order is verified (the reconciliation reports the difference for a
// person). One above what the order nets (and its late refunds) is held
// until the platform records the refund. Each was rejected for good as
// "an amount that cannot be checked": its seller never paid for an order
// whose money the platform still holds.
func TestARefundOfSubMinorUnitsIsBoundedNotRejected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name            string
		quote, cur      string // the order's total and currency
		expected        string // the payment, micro USDT
		amount          int64  // the order's gross, minor units
		refund          string // micro USDT
		nets, late      int64  // what the order nets and its late refunds, minor units
		want            string // the item's state
		reason, matched string // what the reason and the reconciliation's row say
	}{
		{"below what the order nets", "10.00", "USD", "10000000", 1000, "965432", 100, 0, "recorded", "", "not a whole number"},
		{"above what the order nets", "10.00", "USD", "10000000", 1000, "1000001", 100, 0, "held", "more than the 1.00 USD the order nets", "not a whole number"},
		{"made up by a late refund", "10.00", "USD", "10000000", 1000, "1000001", 100, 1, "recorded", "", "not a whole number"},
		{"at the payment's rate", "15000", "JPY", "100000000", 15000, "6650000", 1000, 0, "recorded", "", "not a whole number"},
		{"at the payment's rate, above", "15000", "JPY", "100000000", 15000, "6650000", 997, 0, "held", "more than the 997 JPY the order nets", "not a whole number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, payprotocoltest.Options{Polls: -1}, func(c *payprotocol.Config) { c.Decimals = map[string]int{"1:USDT": 6} })
			if _, err := r.fake.AddPayment("T1", "USDT", 6, tc.expected, payprotocol.PaymentPaid); err != nil {
				t.Fatal(err)
			}
			if err := r.fake.SetQuote("T1", tc.cur, tc.quote, true); err != nil {
				t.Fatal(err)
			}
			if _, err := r.fake.AddRefund("T1", tc.refund, payprotocol.RefundSuccess); err != nil {
				t.Fatal(err)
			}
			api := payprotocol.Adapter{Client: r.client}
			it := pipeline.VerifyItem{State: pipeline.ItemUnverified, LateRefunded: tc.late, Split: pipeline.Split{Order: pipeline.Order{OrderNo: "OT1", SellerID: "S",
				Channel: payprotocol.Channel, ProviderTxnID: "T1", Currency: pipeline.Currency(tc.cur), Amount: tc.amount, Refunded: tc.nets}}}
			store := &verifyStore{states: map[string]string{}, items: []pipeline.VerifyItem{it}}
			if _, err := payprotocol.Verify(ctx, store, api, nil, nil, &pipeline.Run{ID: 42}); (err != nil) != (tc.want == "held") {
				t.Fatalf("verify: %v", err)
			}
			got := store.states["OT1"]
			if !strings.HasPrefix(got, tc.want+": ") || !strings.Contains(got, tc.reason) {
				t.Errorf("refund %s USDT of %s %s (netting %d, late %d): %q, want %s saying %q", tc.refund, tc.quote, tc.cur, tc.nets, tc.late, got, tc.want, tc.reason)
			}
			// The reconciliation still reports the difference: the buyer
			// got another amount than the platform recorded.
			o, err := api.Order(ctx, "T1")
			if err != nil {
				t.Fatal(err)
			}
			ri := pipeline.RefundedItem{OrderNo: "OT1", ProviderTxnID: "T1", Currency: pipeline.Currency(tc.cur), Gross: tc.amount, Refunded: tc.nets + tc.late, State: pipeline.ItemRecorded}
			if ms := payprotocol.Match(ri, o); len(ms) != 1 || ms[0].Expected || !strings.Contains(ms[0].Detail, tc.matched) {
				t.Errorf("matched: %+v, want one unexpected row saying %q", ms, tc.matched)
			}
		})
	}
}

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
