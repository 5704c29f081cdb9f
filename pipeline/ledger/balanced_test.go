package ledger_test

import (
	"testing"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// An orders.csv row says whether its parts add up: a settled order's
// gross is its refund, commission and seller share; a late refund clawed
// back is its commission and seller share given back (they sum to
// nothing with the refund), one not clawed back has no parts; a rejected
// row says nothing.
func TestOrderLinesSayWhetherTheyBalance(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    pipeline.OrderLine
		want string
	}{
		{"settled", pipeline.OrderLine{Action: "settle", Gross: "1000", Refunded: "100", Commission: "90", Seller: "810"}, "true"},
		{"settled, seller share short", pipeline.OrderLine{Action: "settle", Gross: "1000", Refunded: "100", Commission: "90", Seller: "800"}, "false"},
		{"settled, no refund counted", pipeline.OrderLine{Action: "settle", Gross: "1000", Refunded: "100", Commission: "100", Seller: "900"}, "false"},
		{"settled, not a number", pipeline.OrderLine{Action: "settle", Gross: "1000", Refunded: "x", Commission: "100", Seller: "900"}, "false"},
		{"late refund clawed back", pipeline.OrderLine{Action: "late_refund", Refunded: "500", Commission: "-50", Seller: "-450"}, "true"},
		{"late refund clawed back short", pipeline.OrderLine{Action: "late_refund", Refunded: "500", Commission: "-50", Seller: "-400"}, "false"},
		{"late refund waiting", pipeline.OrderLine{Action: "late_refund", Refunded: "500"}, "true"},
		{"rejected", pipeline.OrderLine{Action: "rejected", Gross: "1000", Refunded: "5"}, ""},
	} {
		if got := ledger.OrderBalanced(tc.o); got != tc.want {
			t.Errorf("%s: balanced %q, want %q", tc.name, got, tc.want)
		}
	}
}
