package ledger

// ItemsForTradeQuery is the per-file item query, for tests that look at
// its plan.
const ItemsForTradeQuery = itemsForTradeQuery

// PageQueries are the keyset pages of a run's items, for tests that look
// at their plans: each query's arguments are the run, the channel, then
// those the function named gives it.
var PageQueries = map[string]string{
	"ItemsInStateAfter":   itemsInStateAfterQuery,
	"RefundedItemsAfter":  refundedItemsAfterQuery,
	"WeChatItemsAfter":    weChatItemsAfterQuery,
	"WeChatAttemptsAfter": weChatAttemptsAfterQuery,
	"ItemsToVerifyAfter":  itemsToVerifyAfterQuery,
}

// SetMaxHeldRejects sets how many rejects the direct way of WriteItems
// holds, until restore is called.
func SetMaxHeldRejects(n int) (restore func()) {
	old := maxHeldRejects
	maxHeldRejects = n
	return func() { maxHeldRejects = old }
}

// OpenTradeFilesQuery is the keyset page of a run's open trade files,
// for tests that look at its plan: its arguments are the run, the cursor
// (an id) and the page's size.
const OpenTradeFilesQuery = openTradeFilesQuery

// EffectsOfKindAfterQuery is the keyset page of a run's effects of one
// kind and subject prefix, for tests that look at its plan: its
// arguments are the run, the kind, the prefix and its end, the cursor
// (subject, attempt) and the page's size.
const EffectsOfKindAfterQuery = effectsOfKindAfterQuery
