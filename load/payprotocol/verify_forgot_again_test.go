package payprotocol_test

import (
	"context"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
)

// TestAPaymentStillForgottenKeepsItsReason: a payment Pay Protocol
// reported before and does not know now stays held, run after run, with
// the same reason: each run of the date wrapped the reason the last one
// wrote in another "does not know ... any more, which it reported before
// (...)", so orders.csv's reason grew by a sentence a run and said
// Pay Protocol had reported what it had not (its own earlier "does not
// know").
func TestAPaymentStillForgottenKeepsItsReason(t *testing.T) {
	held := toVerify("T1", 0)
	held.State, held.Reason = pipeline.ItemHeld, payprotocol.VerifyHoldPrefix+" payment is pending"
	api := &verifyAPI{payments: map[string]string{}}
	var first string
	for run := 1; run <= 3; run++ {
		store := &verifyStore{states: map[string]string{}, items: []pipeline.VerifyItem{held}}
		if _, err := payprotocol.Verify(context.Background(), store, api, nil, nil, &pipeline.Run{ID: 42}); !heldForAPerson(err, "1 Pay Protocol payments held") {
			t.Fatalf("run %d: %v", run, err)
		}
		state, reason, _ := strings.Cut(store.states["OT1"], ": ")
		if state != pipeline.ItemHeld {
			t.Fatalf("run %d: %q", run, store.states["OT1"])
		}
		if run == 1 {
			first = reason
		} else if reason != first {
			t.Errorf("run %d: reason\n%q\nwant it as the first run wrote it\n%q", run, reason, first)
		}
		held.Reason = reason
	}
	if strings.Count(first, "any more") != 1 || !strings.Contains(first, "(payment is pending)") {
		t.Errorf("%q", first)
	}
}
