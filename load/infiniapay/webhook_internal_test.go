package infiniapay

import (
	"context"
	"fmt"
	"testing"
)

// TestWebhookRemembersABoundedNumber: the notifications dealt with were kept
// for the life of the process, one more for every notification anyone
// made. The latest are remembered; an older one is asked of Seen (and
// confirmed again without it).
func TestWebhookRemembersABoundedNumber(t *testing.T) {
	queries := 0
	h := WebhookHandler(nil, nil, func(context.Context, string) (string, error) { queries++; return StatusActive, nil },
		func(context.Context, SellerStatus) error { return nil })
	h.remembers = 3
	for i := range 5 {
		if err := h.record(context.Background(), SellerStatus{RequestNo: fmt.Sprint("N-", i), SellerID: "S1", Notified: StatusActive}); err != nil {
			t.Fatal(err)
		}
	}
	if len(h.done) != 3 || len(h.order) != 3 {
		t.Fatalf("%d requestNos remembered (%d in order), want 3", len(h.done), len(h.order))
	}
	for _, tc := range []struct {
		n       int
		queries int
	}{{4, 0}, {2, 0}, {0, 1}} { // N-2..N-4 remembered; N-0 forgotten
		before := queries
		if err := h.record(context.Background(), SellerStatus{RequestNo: fmt.Sprint("N-", tc.n), SellerID: "S1", Notified: StatusActive}); err != nil {
			t.Fatal(err)
		}
		if queries-before != tc.queries {
			t.Errorf("N-%d again: %d binding queries, want %d", tc.n, queries-before, tc.queries)
		}
	}
}
