package payprotocol_test

import (
	"context"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
	"github.com/settlekit/settle/pipeline"
)

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
