package pipeline

// VerifyItem is an item whose payment a provider is to verify before it
// is paid, in its current state (unverified, or held by an earlier
// verification with Reason).
type VerifyItem struct {
	Split
	State  string
	Reason string
	// LateRefunded is what the late refunds of the order the ledger
	// holds (pending, or clawed back) add up to, read for an order that
	// nets a refund: a refund at the provider larger than the order nets
	// may be one the platform recorded since, late. Only those read by a
	// date after the item's: one read earlier is netted by its row.
	LateRefunded int64
}
