package pipeline

// ExpectedShare is what the ledger expects a provider to show as a
// seller's available share in a currency: the seller amounts of every file
// of the seller's items the provider accepted, less every successful
// payout from it, over all dates.
type ExpectedShare struct {
	SellerID         string
	ProviderSellerID string // the seller's id at the provider; "" when none is recorded
	Currency         Currency
	Uploaded         int64 // seller amounts of accepted files
	Paid             int64 // successful payouts
	InFlight         int64 // payouts not final yet
	// Activity marks the ledger's latest activity that could move the
	// share at the provider (its files and payouts of the seller in the
	// currency, over all dates): it changes with every one recorded or
	// removed and every change of its status or state, amount, seller or
	// currency, so that an answer kept for the figures above is asked
	// again then.
	Activity string
}
