package payprotocol_test

import (
	"context"
	"strings"
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

// TestARefundAtTheRateIsReadToTheMinorUnitItWasAskedIn: a refund is asked
// in the quote's minor units (1000 JPY of an order of 15000 JPY settled as
// 100 USDT) and paid in the coin, which cannot hold 1000/150 USDT
// (6.666...): Pay Protocol pays 6.666667 or 6.666666 USDT. Read exactly,
// that is 1000.00005 or 999.9999 JPY, "not a whole number of minor units",
// and every partial refund of an order quoted in another currency than
// its coin rejected the order, its seller unpaid. A coin finer than the
// quote's minor unit is read as the one whole amount of minor units within
// one unit of the coin of it; one that is not within a unit of any (6.666
// USDT, 999.9 JPY), or a coin coarser than the minor unit (where several
// would be), is still refused.
func TestARefundAtTheRateIsReadToTheMinorUnitItWasAskedIn(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, coin string
		decimals   int
		expected   string // the payment, in the coin's units
		quote      string // the order's total, JPY
		refund     string // the refund, in the coin's units
		want       int64  // JPY; 0: refused
	}{
		{"rounded up", "USDT", 6, "100000000", "15000", "6666667", 1000},
		{"rounded down", "USDT", 6, "100000000", "15000", "6666666", 1000},
		{"exact", "USDT", 6, "100000000", "15000", "50000000", 7500},
		{"18 decimals, rounded", "WETH", 18, "31234567890123456789", "15000", "2082304526008230453", 1000},
		{"not within a unit of the coin", "USDT", 6, "100000000", "15000", "6666000", 0},
		{"a coin coarser than the yen", "COARSE", 0, "100", "15001", "7", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, payprotocoltest.Options{Polls: -1}, func(c *payprotocol.Config) { c.Decimals = map[string]int{"1:" + tc.coin: tc.decimals} })
			if _, err := r.fake.AddPayment("T-JPY", tc.coin, tc.decimals, tc.expected, payprotocol.PaymentPaid); err != nil {
				t.Fatal(err)
			}
			if err := r.fake.SetQuote("T-JPY", "JPY", tc.quote, true); err != nil {
				t.Fatal(err)
			}
			if _, err := r.fake.AddRefund("T-JPY", tc.refund, payprotocol.RefundSuccess); err != nil {
				t.Fatal(err)
			}
			api := payprotocol.Adapter{Client: r.client}
			o, err := api.Order(ctx, "T-JPY")
			if err != nil || o.Refund == nil {
				t.Fatalf("%+v, %v", o, err)
			}
			if tc.want == 0 {
				if o.Refund.AmountProblem == "" {
					t.Errorf("refund %s %s of %s %s for %s JPY read as %d JPY, want it refused", tc.refund, tc.coin, tc.expected, tc.coin, tc.quote, o.Refund.Amount)
				}
				return
			}
			if o.Refund.Amount != tc.want || o.Refund.AmountProblem != "" {
				t.Fatalf("refund %s %s of %s %s for %s JPY: %+v, want %d JPY", tc.refund, tc.coin, tc.expected, tc.coin, tc.quote, *o.Refund, tc.want)
			}
			// The order nets that refund: verified, not rejected.
			it := pipeline.VerifyItem{State: pipeline.ItemUnverified, Split: pipeline.Split{Order: pipeline.Order{OrderNo: "O-JPY", SellerID: "S",
				Channel: payprotocol.Channel, ProviderTxnID: "T-JPY", Currency: "JPY", Amount: 15000, Refunded: tc.want}}}
			store := &verifyStore{states: map[string]string{}, items: []pipeline.VerifyItem{it}}
			if _, err := payprotocol.Verify(ctx, store, api, nil, nil, &pipeline.Run{ID: 42}); err != nil {
				t.Fatal(err)
			}
			if got := store.states["O-JPY"]; !strings.HasPrefix(got, string(pipeline.ItemRecorded)+":") {
				t.Errorf("order netting the refund: %q, want it verified (%s)", got, pipeline.ItemRecorded)
			}
		})
	}
}
