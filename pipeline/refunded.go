package pipeline

// RefundedItem is one item of a run as a reconciliation of payments sees
// it: the payment, the item's state, and our refunded total. Amounts are
// minor units of Currency.
type RefundedItem struct {
	OrderNo       string
	SellerID      string
	ProviderTxnID string // the order's number at its provider (items.provider_txn_id)
	Currency      Currency
	Gross         int64
	// Refunded is our refunded total: what was netted when the order
	// settled plus every late refund of the order not rejected.
	Refunded       int64
	LateRefunds    int    // how many late refunds Refunded counts
	LastLateRefund int64  // the latest of them (minor units)
	State          string // the item's state in the ledger (recorded, uploaded, paid, held; rejected for RejectedItemsAfter's)
	// Reason is the item's reason in the ledger, given with a rejected
	// item only (why it was rejected: a person, a provider's answer).
	Reason string
	// Date is the item's business date, given with a watched item only
	// (a Watcher's, of an earlier run than the one reconciled).
	Date Date
}
