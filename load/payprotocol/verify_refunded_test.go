package payprotocol_test

import (
	"context"
	"testing"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
)

// TestVerifyAWholeRefundTheOrderNetsIsNotRejected: an order the platform
// refunded whole before it settled (refunded = gross, the seller's share
// 0) whose payment Pay Protocol shows refunded (status 5) agrees with the
// ledger - the matcher says so - and is not a payment Pay Protocol
// rejected: it is recorded, not counted among the providers' rejects
// (the reject gate, orders.csv, summary.csv). A refunded payment whose
// order nets less than the whole is still rejected.
func TestVerifyAWholeRefundTheOrderNetsIsNotRejected(t *testing.T) {
	refunded := payprotocol.PaymentRefunded.String()
	store := &verifyStore{states: map[string]string{}, items: []pipeline.VerifyItem{toVerify("W1", 1000), toVerify("W2", 100), toVerify("W3", 0)}}
	api := &verifyAPI{payments: map[string]string{"W1": refunded, "W2": refunded, "W3": refunded}}
	summary, err := payprotocol.Verify(context.Background(), store, api, nil, nil, &pipeline.Run{ID: 42})
	if err != nil {
		t.Fatalf("%q: %v", summary, err)
	}
	want := map[string]string{
		"OW1": "recorded: ",
		"OW2": "rejected: Pay Protocol payment is refunded",
		"OW3": "rejected: Pay Protocol payment is refunded",
	}
	for no, w := range want {
		if g := store.states[no]; g != w {
			t.Errorf("%s: %q, want %q", no, g, w)
		}
	}
	// The matcher finds the whole refund in agreement with the ledger.
	it := pipeline.RefundedItem{OrderNo: "OW1", ProviderTxnID: "W1", Currency: "USD", Gross: 1000, Refunded: 1000, State: pipeline.ItemRecorded}
	if ms := payprotocol.Match(it, payprotocol.Order{Status: refunded, Quote: pipeline.Money{Minor: 1000, Currency: "USD"}}); len(ms) != 0 {
		t.Errorf("matcher: %+v", ms)
	}
}
