package payprotocol_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
)

// TestALatestRefundTurnedDownIsNotTheOrdersOnlyRefund: a refund made
// twice at Pay Protocol whose second its approver rejects (or that
// fails) leaves the order's latest refund rejected, while the first,
// successful, returned what the order nets. The verification, reading
// the latest refund alone, rejected such an order for good ("the order's
// refund cannot be netted"): its seller never paid, for the very
// duplicate the approver caught. With the refund list, which shows the
// earlier successful refund, the order is verified as a latest refund of
// that amount would be; one whose listed refunds return more than it nets
// is held; one with no successful refund listed is rejected as before.
func TestALatestRefundTurnedDownIsNotTheOrdersOnlyRefund(t *testing.T) {
	ctx := context.Background()
	r := listRig(t, "CAUGHT", "FAILED", "OVER", "NONE")
	turnedDown := func(no string, st payprotocol.RefundStatus) {
		t.Helper()
		if _, err := r.fake.AddRefund(no, "1000000", st); err != nil {
			t.Fatal(err)
		}
	}
	r.refund(t, "CAUGHT", "1000000")
	turnedDown("CAUGHT", payprotocol.RefundRejected)
	r.refund(t, "FAILED", "500000")
	r.refund(t, "FAILED", "500000")
	turnedDown("FAILED", payprotocol.RefundFailed)
	r.refund(t, "OVER", "1000000")
	r.refund(t, "OVER", "1000000")
	turnedDown("OVER", payprotocol.RefundRejected)
	turnedDown("NONE", payprotocol.RefundRejected)
	store := &verifyStore{states: map[string]string{}, items: []pipeline.VerifyItem{toVerify("CAUGHT", 100), toVerify("FAILED", 100),
		toVerify("OVER", 100), toVerify("NONE", 100)}}
	p := payprotocol.NewProvider(payprotocol.ProviderConfig{Client: r.client, Store: store})
	s, err := p.Upload(ctx, &pipeline.Run{ID: 42, Key: pipeline.RunKey{Date: pipeline.DateOf(time.Now().UTC())}, TimeZone: "UTC"})
	if !heldForAPerson(err, "1 Pay Protocol payments held") || s != "Pay Protocol: 2 payments verified, 1 held, 1 rejected" {
		t.Fatalf("%q, %v", s, err)
	}
	for no, want := range map[string]string{
		"OCAUGHT": "recorded: ",
		"OFAILED": "recorded: ",
		"OOVER":   "held: " + payprotocol.VerifyHoldPrefix + " refunds ",
		"ONONE":   "rejected: Pay Protocol refund is rejected: the order's refund cannot be netted",
	} {
		if got := store.states[no]; !strings.HasPrefix(got, want) {
			t.Errorf("%s: %q, want %q...", no, got, want)
		}
	}
}
