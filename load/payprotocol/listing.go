package payprotocol

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// RefundLister is what seeing every refund of a run's orders needs of Pay
// Protocol's API (Adapter over a Client): the refund detail answers an
// order's latest refund alone, the refund list every refund of the
// merchant, by creation time.
type RefundLister interface {
	// ListRefunds gives each, a page at a time, every refund order Pay
	// Protocol lists created from `from` (zero: unbounded) to `to`, of
	// every status, and the entries it could not read; each may get a
	// refund more than once (Client.RefundList).
	ListRefunds(ctx context.Context, from, to time.Time, each func(RefundPage) error) error
	// Payment returns Pay Protocol's word on the payment of our order
	// outTradeNo, its refund not asked (VerifyAPI.Payment).
	Payment(ctx context.Context, outTradeNo string) (Order, error)
	// ReadRefund reads refund r of the order whose payment Payment
	// returned as o, in the quote's minor units, with the checks of its
	// chain, payment order and currency, as the latest refund is read.
	// The error concerns every order (refused credentials, the context
	// ended): what concerns this refund alone is its AmountProblem.
	ReadRefund(ctx context.Context, r Refund, o Order) (OrderRefund, error)
}

// RunOrders is what listing the refunds of a run's orders needs of the
// ledger.
type RunOrders interface {
	// ProviderTxnsOfRun returns which of txns are the provider order
	// numbers (provider_txn_id) of the run's items of channel ch, a
	// channel whose orders settle once per provider transaction.
	ProviderTxnsOfRun(ctx context.Context, runID int64, ch pipeline.Channel, txns []string) (map[string]bool, error)
}

// DefaultRefundLookback is how long before the start of a run's date the
// refunds it lists may have been created, unless RefundListing.Lookback
// says otherwise: a refund the platform nets is made before the buyer
// confirms receipt, which ends the escrow, and may be made as early as the
// payment.
const DefaultRefundLookback = 30 * 24 * time.Hour

// RefundListing has a stage see every successful refund Pay Protocol
// holds of the run's orders, not only each order's latest, and those
// still in progress (which may yet return money): the refund
// list (GET /refund/list) read once per stage, merchant-wide, from
// Lookback before the start of the run's date to Now (or the end of the
// date: UpToTheDate), and kept for the
// run's orders alone (Store), so that its memory is what the run's
// orders were refunded, not what the merchant was.
type RefundListing struct {
	API   RefundLister
	Store RunOrders
	// Lookback: see DefaultRefundLookback (0: it). A refund created
	// before it is not listed: the latest refund of each order is still
	// read (by the verification for an order that nets a refund, by the
	// matcher for every order it asks about), and a duplicate older than
	// that is not seen.
	Lookback time.Duration
	// UpToTheDate ends the listing at the end of the run's date (when that
	// is before its usual end): the verification's. A refund of an order
	// of the date made after it is a late refund of the next date, which
	// the date's run has not read (the late-refunds query reads the
	// refunds created in a date's window for the orders of earlier ones):
	// listed, it held an order that nets no refund, and ended the nightly
	// run 4, for any refund made between midnight and the verification;
	// the next date's run claws it back from the seller, as it did before
	// the list was read (found by a review).
	UpToTheDate bool
	Now         func() time.Time // default time.Now; the listing ends there
}

// ListingMargin is how much earlier than the first a second walk of the
// refund list ends, when the first found its count moved: more than the
// 60 s by which Pay Protocol takes a request's clock to differ from its
// own. A listing that ends at this machine's now, its clock ahead, asks
// for refunds Pay Protocol is still creating while it reads them: the
// count moved from page to page, and at a merchant making refunds every
// few seconds no walk of the list was complete (found by a review: 50 s
// ahead, "21 refunds listed, Pay Protocol counts 30").
const ListingMargin = 2 * time.Minute

// listedRefunds is what a stage's refund listing found of its run's
// orders: their successful refunds, those still in progress, and the
// entries of the list that could not be read, by outTradeNo.
type listedRefunds struct {
	from       time.Time // the listing's start; zero: unbounded
	refunds    map[string][]Refund
	inProgress map[string][]Refund // awaiting approval, under review or confirming on chain when listed
	unreadable map[string][]UnreadableRefund
}

// has reports whether the listing shows anything of order txn.
func (l *listedRefunds) has(txn string) bool {
	return l != nil && (len(l.refunds[txn]) > 0 || len(l.unreadable[txn]) > 0)
}

// adds reports whether the listing shows of order txn more than its
// latest refund and our refunded total (refunded) say already: an entry
// that cannot be read, more than one successful refund, or one that is
// not the latest (asked: its id latest, "" for none; not asked, one while
// we count no refund, made on Pay Protocol's console). Only then does the
// matcher need the payment detail of an order whose answer it kept as
// final (or whose payment it kept), to read the listed refunds against:
// the order of one refund that agreed is not asked again (the payment
// details of the day's refunded orders, asked at every reconciliation
// and re-check of the date, were the listing's largest cost, found by a
// review). A kept answer agreed with the latest refund then; a refund
// made since is the latest now, and the list shows two.
func (l *listedRefunds) adds(txn string, asked bool, latest string, refunded int64) bool {
	switch {
	case !l.has(txn):
		return false
	case len(l.unreadable[txn]) > 0 || len(l.refunds[txn]) > 1:
		return true
	case asked:
		return l.refunds[txn][0].RefundID != latest
	}
	return refunded == 0
}

// read is what the listing shows of order txn, read against its payment
// o with api (ReadRefund): its successful refunds, then an entry for each
// of its list entries that could not be read (AmountProblem says why).
// The error is ReadRefund's, which concerns every order.
func (l *listedRefunds) read(ctx context.Context, api RefundLister, txn string, o Order) ([]OrderRefund, error) {
	if !l.has(txn) {
		return nil, nil
	}
	var out []OrderRefund
	for _, r := range l.refunds[txn] {
		x, err := api.ReadRefund(ctx, r, o)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	for _, u := range l.unreadable[txn] {
		out = append(out, OrderRefund{ID: u.RefundID, Status: "unreadable", AmountProblem: "Pay Protocol's refund list has an entry of the order that cannot be read: " + pipeline.OneLine(u.Err.Error())})
	}
	return out, nil
}

// pending is what the listing shows of order txn still in progress when
// it was listed (awaiting approval, under review, confirming on chain):
// refunds that may yet return money to the buyer, each read against its
// payment o with api (ReadRefund; one whose amount Pay Protocol does not
// show yet has an AmountProblem). The error is ReadRefund's.
func (l *listedRefunds) pending(ctx context.Context, api RefundLister, txn string, o Order) ([]OrderRefund, error) {
	if l == nil {
		return nil, nil
	}
	var out []OrderRefund
	for _, r := range l.inProgress[txn] {
		x, err := api.ReadRefund(ctx, r, o)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

// list reads the refund list for run, from Lookback before its date to
// now (or the end of the date, UpToTheDate): its successful refunds,
// those in progress and its unreadable entries, of the run's orders. An unreadable entry that names
// no order makes the list unreadable: any order's refunds may be in it.
func (c *RefundListing) list(ctx context.Context, run *pipeline.Run) (*listedRefunds, error) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	back := c.Lookback
	if back <= 0 {
		back = DefaultRefundLookback
	}
	l := &listedRefunds{refunds: map[string][]Refund{}, inProgress: map[string][]Refund{}, unreadable: map[string][]UnreadableRefund{}}
	to := now()
	if run.Key.Date != (pipeline.Date{}) {
		loc, err := time.LoadLocation(run.TimeZone)
		if err != nil {
			return nil, fmt.Errorf("the refund list of run %d: time zone %q: %w", run.ID, run.TimeZone, err)
		}
		w := pipeline.WindowOf(run.Key.Date, loc)
		l.from = w.Start.Add(-back)
		if end := w.End.Add(-time.Second); c.UpToTheDate && end.Before(to) {
			to = end // endTime is taken as inclusive, in seconds: the window's end is not in it
		}
	}
	err := c.API.ListRefunds(ctx, l.from, to, func(p RefundPage) error {
		var txns []string
		for _, r := range p.Refunds {
			if r.Status == RefundSuccess || !r.Status.Final() {
				txns = append(txns, r.OutTradeNo)
			}
		}
		for _, u := range p.Unreadable {
			if u.OutTradeNo == "" {
				return fmt.Errorf("%w: an entry of the refund list names no order: %v", ErrAnswer, u.Err)
			}
			txns = append(txns, u.OutTradeNo)
		}
		if len(txns) == 0 {
			return nil
		}
		slices.Sort(txns)
		ours, err := c.Store.ProviderTxnsOfRun(ctx, run.ID, Channel, slices.Compact(txns))
		if err != nil {
			return fmt.Errorf("read which listed refunds are of run %d: %w", run.ID, err)
		}
		for _, r := range p.Refunds {
			same := func(k Refund) bool { return k.RefundID == r.RefundID }
			switch {
			case !ours[r.OutTradeNo] || slices.ContainsFunc(l.refunds[r.OutTradeNo], same):
				// Another's, or seen successful on an earlier page.
			case !r.Status.Final():
				if !slices.ContainsFunc(l.inProgress[r.OutTradeNo], same) {
					l.inProgress[r.OutTradeNo] = append(l.inProgress[r.OutTradeNo], r)
				}
			default:
				// Final now, in progress on an earlier page (the list
				// walked twice): counted once, as what it returned if it
				// succeeded.
				if rest := slices.DeleteFunc(l.inProgress[r.OutTradeNo], same); len(rest) > 0 {
					l.inProgress[r.OutTradeNo] = rest
				} else {
					delete(l.inProgress, r.OutTradeNo)
				}
				if r.Status == RefundSuccess {
					l.refunds[r.OutTradeNo] = append(l.refunds[r.OutTradeNo], r)
				}
			}
		}
		for _, u := range p.Unreadable {
			if ours[u.OutTradeNo] {
				l.unreadable[u.OutTradeNo] = append(l.unreadable[u.OutTradeNo], u)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("the refund list from %s to %s: %w", stamp(l.from), stamp(to), err)
	}
	return l, nil
}

// stamp writes a listing's bound: UTC to the second, or "the start" for
// none.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "the start"
	}
	return t.UTC().Format(time.RFC3339)
}

// ListRefunds gives each the refund list's pages from `from` to `to`
// (RefundLister): every status, so that a refund succeeding while the list
// is read does not move the pages (only refunds created since would, and
// those are after `to`), at the largest published page size.
func (a Adapter) ListRefunds(ctx context.Context, from, to time.Time, each func(RefundPage) error) error {
	return a.Client.RefundList(ctx, RefundFilter{From: from, To: to}, each)
}

// ReadRefund reads refund r against the payment o as the latest refund
// is read (refundOf).
func (a Adapter) ReadRefund(ctx context.Context, r Refund, o Order) (OrderRefund, error) {
	x, err := a.refundOf(ctx, r, o)
	if err != nil {
		return OrderRefund{}, err
	}
	return *x, nil
}

// refundsNamed names refunds by their ids, in order, for a finding's
// detail: "refund 7", "refunds 7, 8".
func refundsNamed(rs []OrderRefund) string {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.ID
	}
	slices.Sort(ids)
	if len(ids) == 1 {
		return "refund " + ids[0]
	}
	return "refunds " + strings.Join(ids, ", ")
}
