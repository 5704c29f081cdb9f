package payprotocol_test

import (
	"context"
	"testing"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
)

// TestVerifyAWholeRefundTheLateRefundsMakeUpIsNotRejected: an order that
// nets part of its refund, whose rest the platform recorded since as late
// refunds (read by a later date), and whose payment Pay Protocol shows
// refunded whole, agrees with the ledger - the matcher counts the late
// refunds and finds no mismatch - as a refund above what the order nets
// is verified once its late refunds make up the difference (71d5b4c). It
// is no payment Pay Protocol rejected: not counted among the providers'
// rejects (reject gate, orders.csv, summary.csv).
func TestVerifyAWholeRefundTheLateRefundsMakeUpIsNotRejected(t *testing.T) {
	refunded := payprotocol.PaymentRefunded.String()
	covered, short, unitShort := toVerify("L1", 100), toVerify("L2", 100), toVerify("L3", 100)
	covered.LateRefunded, short.LateRefunded, unitShort.LateRefunded = 900, 800, 899
	store := &verifyStore{states: map[string]string{}, items: []pipeline.VerifyItem{covered, short, unitShort}}
	api := &verifyAPI{payments: map[string]string{"L1": refunded, "L2": refunded, "L3": refunded}}
	summary, err := payprotocol.Verify(context.Background(), store, api, nil, nil, &pipeline.Run{ID: 42})
	if err != nil {
		t.Fatalf("%q: %v", summary, err)
	}
	want := map[string]string{
		"OL1": "recorded: ",
		"OL2": "rejected: Pay Protocol payment is refunded",
		"OL3": "rejected: Pay Protocol payment is refunded", // a unit short of the whole
	}
	for no, w := range want {
		if g := store.states[no]; g != w {
			t.Errorf("%s: %q, want %q", no, g, w)
		}
	}
	// The matcher finds the whole refund in agreement with the ledger.
	it := pipeline.RefundedItem{OrderNo: "OL1", ProviderTxnID: "L1", Currency: "USD", Gross: 1000, Refunded: 1000, LateRefunds: 1, LastLateRefund: 900, State: pipeline.ItemRecorded}
	if ms := payprotocol.Match(it, payprotocol.Order{Status: refunded, Quote: pipeline.Money{Minor: 1000, Currency: "USD"}}); len(ms) != 0 {
		t.Errorf("matcher: %+v", ms)
	}
}
