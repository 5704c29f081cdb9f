package payprotocol

import (
	"context"

	"github.com/settlekit/settle/pipeline"
)

// FinalKey is finalKey, for the tests.
var FinalKey = finalKey

// SetVerifyBatch sets how many items the verification reads at a time,
// until restore is called.
func SetVerifyBatch(n int) (restore func()) {
	old := verifyBatch
	verifyBatch = n
	return func() { verifyBatch = old }
}

// SetHeldAnswersMax sets how many answers about held payments the
// verification keeps for the run's reconcile, until restore is called.
func SetHeldAnswersMax(n int) (restore func()) {
	old := heldAnswersMax
	heldAnswersMax = n
	return func() { heldAnswersMax = old }
}

// AskAhead is askAhead, for the tests.
var AskAhead = askAhead

// SplitDecimalsKey is splitDecimalsKey, for the tests.
func SplitDecimalsKey(k string) (chainID int, symbol string, ok bool) {
	id, sym, err := splitDecimalsKey(k)
	return id, sym, err == nil
}

// ListedIDs reads the refund list for run as a stage does (list) and
// returns the ids of the refunds it keeps of each order: successful, and
// in progress.
func ListedIDs(ctx context.Context, c *RefundListing, run *pipeline.Run) (success, inProgress map[string][]string, err error) {
	l, err := c.list(ctx, run)
	if err != nil {
		return nil, nil, err
	}
	ids := func(m map[string][]Refund) map[string][]string {
		out := map[string][]string{}
		for txn, rs := range m {
			for _, r := range rs {
				out[txn] = append(out[txn], r.RefundID)
			}
		}
		return out
	}
	return ids(l.refunds), ids(l.inProgress), nil
}
