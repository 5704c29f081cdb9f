package ledger

// ItemsForTradeQuery is the per-file item query, for tests that look at
// its plan.
const ItemsForTradeQuery = itemsForTradeQuery

// SetMaxHeldRejects sets how many rejects the direct way of WriteItems
// holds, until restore is called.
func SetMaxHeldRejects(n int) (restore func()) {
	old := maxHeldRejects
	maxHeldRejects = n
	return func() { maxHeldRejects = old }
}
