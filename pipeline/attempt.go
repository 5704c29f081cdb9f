package pipeline

import "time"

// ChannelItem is one of a run's items as a provider's matcher sees it:
// the order, its seller and the seller's account at the provider, the
// provider's transaction, and what the ledger says of it.
type ChannelItem struct {
	OrderNo       string
	SellerID      string
	Account       string // the seller's account at the provider (a sub-merchant), as the run recorded it; "" when none
	TransactionID string // the provider's transaction id of the payment
	Currency      Currency
	// SellerShare (minor units) is what is left to the seller after the
	// commission.
	SellerShare int64
	State       string // the item's state in the ledger, e.g. ItemRecorded
	Reason      string // why it is in that state, e.g. a hold
}

// Attempt is one effect the ledger recorded for an item, with the item
// and the times the ledger recorded it.
type Attempt struct {
	Effect               // Kind, Key, Currency, Amount, State, Planned (when the intent was recorded), ...
	Item     ChannelItem // Account: the one of the run that sent the attempt
	Recorded time.Time   // when the ledger last changed it: for a final attempt, when the provider's answer was recorded
}
