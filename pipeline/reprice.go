package pipeline

import (
	"context"
	"fmt"
	"sort"
)

// AdjustReprice is the kind of an entry a reprice records: the difference
// a corrected rules file makes to an order's seller share (+ owed to the
// seller, - taken back), the platform's commission moving by the opposite.
const AdjustReprice = "reprice"

// RulesFile is a rules file as read: its base name, its bytes and the hash
// of its rules' content (transform.Rules.Hash).
type RulesFile struct {
	Name string
	Body []byte
	Hash string
}

// RepriceItem is an item of the date a reprice prices again, as the ledger
// has it now: its split, its late refunds' clawbacks and earlier reprices
// (SettledItem), and the run that recorded it (its entries are recorded
// under that run).
type RepriceItem struct {
	SettledItem
	RunID int64
}

// Now returns the order's refunded total, commission and seller share as
// the ledger has them now: the split it settled with, less what its late
// refunds took back, with what earlier reprices moved. Refunded +
// commission + seller share is the order's gross.
func (it SettledItem) Now() (refunded, commission, seller int64) {
	return it.Refunded + it.LateRefunded, it.Commission - it.LateCommissionBack - it.Repriced, it.SellerShare - it.LateSellerBack + it.Repriced
}

// RepriceTotal is what a reprice moves for one seller in one currency.
type RepriceTotal struct {
	SellerID string
	Currency Currency
	Orders   int64
	Amount   int64 // signed minor units: + owed to the seller, - taken back
}

// Repricing is what a reprice of a date under a rules file works out,
// item by item (Add): the entries to record, the items named for a
// person, the items that stop it.
type Repricing struct {
	Date     Date
	Rules    RulesFile
	Channels Channels
	// Adjust are the entries of the orders whose seller share changes,
	// each under its item's run (RunID).
	Adjust []Adjustment
	// Named lists the items whose share changes but whose channel's
	// shares are not netted into revenue shares (a provider that
	// distributed the commission already): nothing is recorded for them, a
	// person corrects them with the provider.
	Named Problems
	// Undeclared lists the items whose share would pass what their upload
	// declared, on a channel whose provider pays only that
	// (ChannelSpec.OnlyDeclared): the reprice is refused while there is
	// one, nothing recorded (the date's rules would no longer split the
	// order as it stands).
	Undeclared Problems
	// InFlight lists the items whose share changes that are not paid or
	// carried yet (recorded, uploaded, unverified, held): the reprice is
	// refused while there is one, nothing recorded.
	InFlight Problems
	totals   map[SellerCurrency]*RepriceTotal
}

// RepriceSplit splits an order under the rules a reprice is given, for the
// order's business date.
type RepriceSplit func(o Order, d Date) (Split, error)

// Add works out one item: split again under the reprice's rules with the
// refunded total the ledger has now (late refunds included), its seller
// share's difference from what it has now is an entry (none when it is
// the same). An item a provider rejected was never paid: left alone.
func (r *Repricing) Add(it RepriceItem, split RepriceSplit) error {
	if it.State == string(ItemRejected) {
		return nil
	}
	refunded, commission, seller := it.Now()
	o := it.Order
	o.Refunded = refunded
	s, err := split(o, it.Date)
	if err != nil {
		return Errorf(KindUsage, "--rules", "%s does not split order %s of %s: %v; nothing recorded", r.Rules.Name, it.OrderNo, it.Date, err)
	}
	diff := s.SellerShare - seller
	if s.Commission+s.SellerShare != commission+seller || s.Commission < 0 || s.SellerShare < 0 {
		return fmt.Errorf("reprice order %s: the split under %s (commission %d, seller %d) does not fit what is left of the order (commission %d, seller %d); nothing recorded",
			it.OrderNo, s.Rule, s.Commission, s.SellerShare, commission, seller)
	}
	if diff == 0 {
		return nil
	}
	cur := it.Currency
	what := fmt.Sprintf("order %s (seller %s, %s): commission %s -> %s under %s, seller share %s -> %s",
		it.OrderNo, it.SellerID, it.Channel, Money{commission, cur}, Money{s.Commission, cur}, s.Rule, Money{seller, cur}, Money{s.SellerShare, cur})
	// A channel whose late refunds are clawed back is one whose shares an
	// entry nets into (revenue sharing); the others' are not.
	spec, known := r.Channels.Spec(it.Channel)
	switch {
	case !known || spec.LateRefundIgnored != "":
		why := "its channel is not known"
		if known {
			why = "its channel's shares are not paid by revenue sharing, which nets an entry; its late refunds are not clawed back either: " + spec.LateRefundIgnored
		}
		r.Named.Add(fmt.Sprintf("%s: not adjusted (%s); correct it with the provider", what, why))
		return nil
	case diff > 0 && spec.OnlyDeclared != "" && s.SellerShare > it.SellerShare:
		// Above the share its upload declared, the entry would make
		// every later revenue share of the seller in the currency ask
		// more than the provider holds for it: the seller's whole payout
		// held short, night after night (found by the session's review).
		// Up to it (a share taken back by an earlier reprice, given
		// again), the provider holds it still.
		r.Undeclared.Add(fmt.Sprintf("%s: the share would pass the %s its upload declared (%s)", what, Money{it.SellerShare, cur}, spec.OnlyDeclared))
		return nil
	case it.State != string(ItemPaid) && it.State != "carried":
		r.InFlight.Add(fmt.Sprintf("%s: %s, not paid or carried yet", what, it.State))
		return nil
	}
	verb := "owed to the seller"
	if diff < 0 {
		verb = "taken back from the seller"
	}
	r.Adjust = append(r.Adjust, Adjustment{SellerID: it.SellerID, Currency: cur, Kind: AdjustReprice, Amount: diff,
		OrderNo: it.OrderNo, CommissionBack: diff, Date: it.Date, RunID: it.RunID,
		Reason: fmt.Sprintf("repriced under %s (rules %s): %s; %s %s", r.Rules.Name, shortHash(r.Rules.Hash), what, Money{abs(diff), cur}, verb)})
	if r.totals == nil {
		r.totals = map[SellerCurrency]*RepriceTotal{}
	}
	k := SellerCurrency{it.SellerID, cur}
	t := r.totals[k]
	if t == nil {
		t = &RepriceTotal{SellerID: it.SellerID, Currency: cur}
		r.totals[k] = t
	}
	t.Orders++
	if t.Amount, err = Add(t.Amount, diff); err != nil {
		return fmt.Errorf("reprice seller %s %s: %w", it.SellerID, cur, err)
	}
	return nil
}

// Totals returns what the reprice moves per seller and currency, sorted.
func (r *Repricing) Totals() []RepriceTotal {
	out := make([]RepriceTotal, 0, len(r.totals))
	for _, t := range r.totals {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].SellerID != out[j].SellerID {
			return out[i].SellerID < out[j].SellerID
		}
		return out[i].Currency < out[j].Currency
	})
	return out
}

// RepriceStore is what a reprice needs of the ledger.
type RepriceStore interface {
	// Reprice prices date d again under rules, in one transaction holding
	// the date's reprice lock (no late refund of the date's orders is
	// clawed back meanwhile): it calls each with every item of d, then
	// plan, told whether rules are other than the date's (those it was
	// split or last repriced with); when plan says so, it records the
	// reprice, rules kept as the date's, with its entries, and returns
	// its id (0: nothing recorded).
	Reprice(ctx context.Context, d Date, rules RulesFile, each func(RepriceItem) error,
		plan func(rulesChanged bool) (adjust []Adjustment, named int64, record bool, err error)) (int64, error)
}

// RepriceResult is what a reprice did, or would do (a dry run).
type RepriceResult struct {
	ID           int64 // the reprice recorded; 0 when nothing was
	RulesChanged bool  // the rules are other than the date's
	Repricing    *Repricing
}

// Reprice prices the settled items of date d again under rules (DESIGN
// section 3, rule 6: a fixed rule becomes an adjustment line): each order
// whose seller share differs is an entry of the seller's carried balance,
// netted into the seller's next revenue share as a clawback is, and rules
// become the date's (a late refund of its orders splits under them). All
// or nothing, in one transaction; again with the same rules, nothing. An
// item whose share changes that is not paid or carried yet stops it: an
// error of kind KindNeedsPerson, nothing recorded. With dryRun, nothing is
// recorded either. The items named for a person (Repricing.Named) are
// the caller's to report.
func Reprice(ctx context.Context, store RepriceStore, d Date, rules RulesFile, channels Channels, split RepriceSplit, dryRun bool) (RepriceResult, error) {
	rp := &Repricing{Date: d, Rules: rules, Channels: channels}
	res := RepriceResult{Repricing: rp}
	id, err := store.Reprice(ctx, d, rules, func(it RepriceItem) error { return rp.Add(it, split) },
		func(changed bool) ([]Adjustment, int64, bool, error) {
			res.RulesChanged = changed
			if rp.InFlight.Count() > 0 {
				rp.InFlight.Summary = fmt.Sprintf("%s: %d orders whose seller share %s changes are not paid or carried yet: nothing repriced "+
					"(settle run --date %s pays them; then reprice again)", d, rp.InFlight.Count(), rules.Name, d)
				return nil, 0, false, rp.InFlight.NeedsPerson()
			}
			if rp.Undeclared.Count() > 0 {
				rp.Undeclared.Summary = fmt.Sprintf("%s: %d orders whose seller share %s would raise past what their upload declared, all their provider pays: nothing repriced "+
					"(give those orders their rate of before in the file, and correct them by hand with the provider)", d, rp.Undeclared.Count(), rules.Name)
				return nil, 0, false, rp.Undeclared.NeedsPerson()
			}
			record := !dryRun && (changed || len(rp.Adjust) > 0)
			return rp.Adjust, int64(rp.Named.Count()), record, nil
		})
	res.ID = id
	return res, err
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
