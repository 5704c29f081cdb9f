package pipeline

// Hold is why a subject (an order, a seller's payout) waits instead of
// being paid, for a later run to try again. Reason says why, in the
// provider's words where it gave some. NeedsPerson tells a hold that will
// not pass by itself - the provider refused it, its data and ours
// disagree - and ends the run needing a person (exit 4), from one that
// will (a payment too recent, a receiver still under review).
type Hold struct {
	Reason      string
	NeedsPerson bool
}

// Waits returns a hold that passes by itself.
func Waits(reason string) *Hold { return &Hold{Reason: reason} }

// NeedsAPerson returns a hold that a person must look at.
func NeedsAPerson(reason string) *Hold { return &Hold{Reason: reason, NeedsPerson: true} }
