package payprotocol

import (
	"context"
	"fmt"
	"testing"
)

// TestCallbacksRememberABoundedNumber: the events delivered were kept for
// the life of the handler, one more for every event, in a web service
// that may run for months. The latest 65,536 are remembered; an older one
// delivered again is asked of seen (here none: delivered again, which
// deliver must take).
func TestCallbacksRememberABoundedNumber(t *testing.T) {
	delivered := map[string]int{}
	h := CallbackHandler("k", "s", 0, nil, nil, func(_ context.Context, cb Callback) error {
		delivered[cb.Key()]++
		return nil
	}).(*callbacks)
	const n = 1<<16 + 10
	cb := func(i int) Callback {
		return Callback{Kind: CallbackRefund, Refund: Refund{RefundID: fmt.Sprint("R", i)}}
	}
	for i := range n {
		if err := h.record(context.Background(), cb(i)); err != nil {
			t.Fatal(err)
		}
	}
	if h.done.Len() > 1<<16 {
		t.Fatalf("%d events remembered, want at most 65,536", h.done.Len())
	}
	for _, tc := range []struct{ i, times int }{{n - 1, 1}, {10, 1}, {0, 2}} { // R10..: remembered; R0: forgotten
		if err := h.record(context.Background(), cb(tc.i)); err != nil {
			t.Fatal(err)
		}
		if got := delivered[cb(tc.i).Key()]; got != tc.times {
			t.Errorf("R%d again: delivered %d times, want %d", tc.i, got, tc.times)
		}
	}
}
