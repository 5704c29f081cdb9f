package ledger

import (
	"context"

	"github.com/settlekit/settle/pipeline"
)

// RefundedItems returns the run's items of channel ch in every state but
// unverified and rejected (those a verification let on), by order number,
// each with our refunded total: RefundedItemsAfter, every one at once.
func (l *Ledger) RefundedItems(ctx context.Context, runID int64, ch pipeline.Channel) ([]pipeline.RefundedItem, error) {
	return l.RefundedItemsAfter(ctx, runID, ch, "", 0)
}
