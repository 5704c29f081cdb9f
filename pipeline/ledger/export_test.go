package ledger

// ItemsForTradeQuery is the per-file item query, for tests that look at
// its plan.
const ItemsForTradeQuery = itemsForTradeQuery
