package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// LateRefundRow is one row of the late-refunds query exactly as read: a
// refund the platform recorded in the run's window for an order whose
// escrow was released before it. A nil field was NULL.
type LateRefundRow struct {
	Seq         int64
	RefundNo    *string
	OrderNo     *string
	SellerID    *string
	AmountMinor *string
	CreatedAt   *time.Time
}

// LateRefundSource streams the refunds recorded in a window for orders
// confirmed before it.
type LateRefundSource interface {
	LateRefunds(ctx context.Context, w Window, fn func(LateRefundRow) error) error
}

// Late refund states (the late_refunds table).
const (
	LateRefundPending  = "pending"  // its order is not settled, or not yet paid or carried
	LateRefundClawed   = "clawed"   // an adjustment takes it back from the seller
	LateRefundIgnored  = "ignored"  // nothing to take back (reason says why)
	LateRefundRejected = "rejected" // cannot be right (reason says why): a person decides
)

// LateRefundOfRejected is the reason of a late refund ignored because its
// order's item was rejected by its provider: nothing was paid on it. An
// item sent again (ledger.SendAgain, --refused-rows) is paid after all, and
// its late refunds ignored so are pending again, to be clawed back.
const LateRefundOfRejected = "the order was rejected: nothing was paid on it"

// LateRefund is a late refund as the ledger keeps it.
type LateRefund struct {
	Date      Date // the business date of the run that read it
	RefundNo  string
	OrderNo   string
	SellerID  string
	Amount    int64 // minor units of the order's currency
	CreatedAt time.Time
	State     string
	Reason    string
}

// ReadLateRefund validates a row; a row that cannot be right comes back
// rejected with the reason (amount 0 when unreadable).
func ReadLateRefund(row LateRefundRow, runID int64) LateRefund {
	r := LateRefund{State: LateRefundPending}
	r.RefundNo, r.OrderNo, r.SellerID = deref(row.RefundNo), deref(row.OrderNo), deref(row.SellerID)
	reject := func(why string) LateRefund {
		r.State, r.Reason, r.Amount = LateRefundRejected, why, 0
		return r
	}
	if r.RefundNo == "" {
		r.RefundNo = fmt.Sprintf("(no refund_no: run %d row %d)", runID, row.Seq)
		return reject("refund_no is NULL or empty")
	}
	if r.OrderNo == "" {
		return reject("order_no is NULL or empty")
	}
	// A corrupt key is kept as a reject keeps it (RejectText): one huge
	// refund number stopped distribute on every run (no index takes it).
	for _, k := range []struct{ col, v string }{{"refund_no", r.RefundNo}, {"order_no", r.OrderNo}, {"seller_id", r.SellerID}} {
		if err := CheckIdentifier(k.col, k.v); err != nil {
			r.RefundNo, r.OrderNo, r.SellerID = RejectText(r.RefundNo), RejectText(r.OrderNo), RejectText(r.SellerID)
			return reject(err.Error())
		}
	}
	if strings.HasPrefix(r.RefundNo, OwnRefundPrefix) {
		// Under its own number the ledger would take it for one of
		// settle's (MovedRefundNo, RenumberRefundNo): resolved, deleted
		// or never resolved as settle's own are. Kept as a row without a
		// number is, under a number of neither.
		given := r.RefundNo
		r.RefundNo = fmt.Sprintf("(refund_no in settle's numbering: run %d row %d)", runID, row.Seq)
		return reject(fmt.Sprintf("refund_no %q begins as settle's own refund numbers do (%s): the ledger cannot keep it apart from them; the platform must give it another number",
			given, OwnRefundPrefix))
	}
	if row.CreatedAt == nil {
		return reject("created_at is NULL")
	}
	r.CreatedAt = *row.CreatedAt
	if row.AmountMinor == nil {
		return reject("amount_minor is NULL")
	}
	v, err := strconv.ParseInt(*row.AmountMinor, 10, 64)
	var ne *strconv.NumError
	switch {
	case errors.As(err, &ne) && ne.Err == strconv.ErrRange:
		return reject(fmt.Sprintf("amount_minor overflows int64: %q", *row.AmountMinor))
	case err != nil:
		return reject(fmt.Sprintf("amount_minor is not an integer: %q", *row.AmountMinor))
	case strconv.FormatInt(v, 10) != *row.AmountMinor:
		// "+5", "05": not as PostgreSQL writes an integer (a text
		// column, say), as the orders' amounts (transform).
		return reject(fmt.Sprintf("amount_minor is not written as an integer: %q", *row.AmountMinor))
	case v <= 0:
		return reject(fmt.Sprintf("amount_minor must be positive: %d", v))
	}
	r.Amount = v
	return r
}

// Adjustment kinds: a payout held (owed to the seller, positive), a
// clawback (owed by the seller, negative), and a balance a person closed
// (settle sellers close: the opposite of the balance, moved to the
// platform's books; see ledger.CloseBalance).
const (
	AdjustHeld     = "held"
	AdjustClawback = "clawback"
	AdjustClose    = "close"
)

// Adjustment is one entry of a seller's carried balance in one currency.
type Adjustment struct {
	ID             int64
	SellerID       string
	Currency       Currency
	Kind           string
	Amount         int64 // signed minor units: + owed to the seller, - owed by the seller
	OrderNo        string
	RefundNo       string
	RefundMinor    int64 // clawback: the refund; = CommissionBack - Amount
	CommissionBack int64 // clawback: commission the platform gives back
	Subject        string
	Reason         string
	Date           Date // the business date it belongs to (zero: the recording run's)
	// RunID is the run it is recorded under (0: the recording run's): a
	// reprice's entry, its order's run.
	RunID int64
	// Repriced, of a clawback, is the sum of its order's reprice entries
	// it was worked out with (SettledItem.Repriced): when they no longer
	// add up to it (a reprice recorded meanwhile), nothing is recorded
	// (ErrBalanceMoved). Not recorded.
	Repriced int64
	// RulesReprice, of a clawback, is the reprice of its order's date
	// whose rules it was split under (SettledItem.RepriceID; 0: the
	// date's runs' rules): when the date's latest reprice is another by
	// the time it is recorded (one that changed the date's rules and no
	// entry of the order, committed meanwhile), nothing is recorded
	// (ErrBalanceMoved). Not recorded.
	RulesReprice int64
}

// SettledItem is an item as a late refund finds it: its split, business
// date and state, and what earlier late refunds already took back.
type SettledItem struct {
	Split
	Date               Date
	State              string
	LateRefunded       int64 // sum of earlier clawed late refunds of the order
	LateSellerBack     int64 // what they took back from the seller
	LateCommissionBack int64 // and from the commission
	// Repriced is the sum of the order's reprice entries (settle reprice):
	// what corrected rules files gave the seller (+) or took back (-) since,
	// the commission moving by the opposite; RepricedN how many there are.
	// A repriced order splits under its date's repriced rules (Now).
	Repriced  int64
	RepricedN int64
	// RepriceID is its date's latest reprice when the item was read (0:
	// the date was not repriced): its rules are the date's (those a late
	// refund splits under: Resplit), which priced every order of the date
	// at its refunded total of then, those they left as they were (no
	// entry) too. Not recorded.
	RepriceID int64
}

// PendingLateRefund is a late refund not resolved yet, with its order's
// item when the order is settled.
type PendingLateRefund struct {
	LateRefund
	Item *SettledItem // nil: the order has no item (not settled, or rejected at the source)
	// SourceRejected, when the order has no item, says why its source row
	// was rejected and on which date ("" when it was not).
	SourceRejected string
}

// AdjustStore is what the adjustment step needs of the ledger.
type AdjustStore interface {
	// RecordLateRefunds records refunds not seen before (by refund_no) and
	// returns how many were new.
	RecordLateRefunds(ctx context.Context, run *Run, rs []LateRefund) (int, error)
	// LateRefundsRecordedOtherwise returns, of rs, the refunds whose
	// refund_no the ledger holds, not rejected, for another refund: one of
	// another order, seller or amount. Each comes back as the ledger holds
	// it (RecordLateRefunds keeps the first, and drops rs's).
	LateRefundsRecordedOtherwise(ctx context.Context, rs []LateRefund) ([]LateRefund, error)
	// RenumberedSince resolves (ignored, with the reason) the refunds the
	// run's date kept under a number of settle's (RenumberRefundNo) for
	// the sellers of the run's shard that the date's late refunds no
	// longer give so: the platform gave them a number of their own, read
	// and worked out as any other. keep are those it still gives so.
	RenumberedSince(ctx context.Context, run *Run, keep []LateRefund) error
	// NoLongerRead resolves the refunds the run's date recorded rejected,
	// of the sellers of the run's shard, under a platform's number (not one
	// of settle's) that its late-refunds query no longer gives: read are
	// the numbers it gave now. The platform removed the row, or gave a row
	// without a number one (kept under "(no refund_no: ...)", which no
	// corrected row replaces): nothing of it is to take back.
	NoLongerRead(ctx context.Context, run *Run, read []string) error
	// PendingLateRefunds returns the pending late refunds of the first
	// orders orders numbered after after (byte order), every pending
	// refund of each, with its item, ordered by order, creation time and
	// refund number.
	PendingLateRefunds(ctx context.Context, after string, orders int) ([]PendingLateRefund, error)
	// ResolveLateRefund sets a pending late refund's state and reason and,
	// for a clawback, records adj, in one transaction. A clawback was
	// worked out from the order's earlier clawbacks of prior refunds in
	// all: when they no longer add up (another run clawed back a refund of
	// the order meanwhile), or the order's reprice entries no longer add
	// up to adj.Repriced, or its date's latest reprice is no longer
	// adj.RulesReprice (a reprice committed meanwhile: the split was
	// worked out under the rules it replaced), nothing is recorded and
	// the error wraps ErrBalanceMoved.
	ResolveLateRefund(ctx context.Context, run *Run, refundNo, state, reason string, adj *Adjustment, prior int64) error
	// MovedOrderRefunds returns, as late refunds pending (RefundNo
	// MovedRefundNo), what the run's rows rejected as already settled on
	// an earlier date show refunded beyond what the ledger knows of their
	// orders (the item's refund and every late refund recorded but those
	// rejected): the platform moved such an order to this date after its
	// settlement, so the late-refunds query, which reads the refunds of
	// orders confirmed before the window, never returns its refunds.
	MovedOrderRefunds(ctx context.Context, run *Run) ([]LateRefund, error)
}

// OwnRefundPrefix begins every refund number settle makes (MovedRefundNo,
// RenumberRefundNo), which the ledger keeps among the platform's and tells
// apart by it: a platform's refund_no that begins so is rejected
// (ReadLateRefund).
const OwnRefundPrefix = "settle:"

// MovedRefundNo is the refund number settle gives the refunds of an
// order it read again on date d, moved there by the platform after its
// settlement (AdjustStore.MovedOrderRefunds): one a date, never a
// platform's refund number.
func MovedRefundNo(orderNo string, d Date) string {
	return "settle:moved:" + orderNo + ":" + d.String()
}

// Resplit recomputes an order's split under the rules of date d (the
// order's business date), for the refunded total the order now has: the
// rules of the date's reprice reprice (SettledItem.RepriceID), else (0)
// those the date's runs split with. The rules of a reprice never change;
// a later reprice is another id, so rules looked up once may be kept for
// a run. An error with ErrNotRead in its chain (the rules of the date
// could not be read) stops the clawbacks; any other is the rules' word on
// the order.
type Resplit func(ctx context.Context, o Order, d Date, reprice int64) (Split, error)

// ReadLateRefunds records the late refunds of the run's window for the
// sellers of its shard. It is idempotent: a refund is keyed by refund_no;
// one recorded as rejected (bad data) is replaced when read again, so a
// corrected platform row counts once the date runs again. It returns how
// many were new, and for a person each refund it could not record because
// the ledger holds its number for another refund (a platform that numbers
// refunds per order, or changed a refund after it was taken back):
// dropped, it was a refund the seller kept.
//
// A refund whose created_at is outside w is not recorded: the source query
// netted every refund created before its order's window ended into the
// order's refunded_minor, so a late-refunds query that returns refunds
// from before its window (one that forgot its lower bound, say) had each
// of them clawed back a second time, exit 0. Each is for a person
// (outside: the first few lines and how many in all) on every run that
// reads it, until the query is fixed; nothing is taken back for it.
func ReadLateRefunds(ctx context.Context, src LateRefundSource, store AdjustStore, run *Run, w Window) (int, []string, OutsideWindow, error) {
	var rs []LateRefund
	var seq int64
	var outside OutsideWindow
	// A refund number the query gives in rows that disagree (the platform
	// holds two orders under the refund's order number, of two sellers,
	// say) is no refund settle can take back from anyone.
	first := map[string]LateRefund{}
	rows, disagree := map[string]int{}, map[string]bool{}
	outsideOnly := map[string]bool{} // refund numbers first met outside the window
	err := src.LateRefunds(ctx, w, func(row LateRefundRow) error {
		seq++
		row.Seq = seq
		r := ReadLateRefund(row, run.ID)
		r.Date = run.Key.Date
		rows[r.RefundNo]++
		if r.State == LateRefundPending && !w.Contains(r.CreatedAt) {
			if run.Key.Shard.Owns(r.SellerID) {
				outside.add(r, w)
			}
			// A row of the refund number in the window as well is one
			// that disagrees (its time): neither is taken back.
			if _, seen := first[r.RefundNo]; seen {
				disagree[r.RefundNo] = true
			} else {
				first[r.RefundNo] = r
				outsideOnly[r.RefundNo] = true
			}
			return nil
		}
		if prev, seen := first[r.RefundNo]; !seen {
			first[r.RefundNo] = r
		} else if outsideOnly[r.RefundNo] || prev.OrderNo != r.OrderNo || prev.SellerID != r.SellerID || prev.Amount != r.Amount ||
			!prev.CreatedAt.Equal(r.CreatedAt) || prev.State != r.State || prev.Reason != r.Reason {
			disagree[r.RefundNo] = true
		}
		if run.Key.Shard.Owns(r.SellerID) {
			rs = append(rs, r)
		}
		return nil
	})
	if err != nil {
		return 0, nil, outside, fmt.Errorf("late refunds: %w", err)
	}
	for i, r := range rs {
		if disagree[r.RefundNo] {
			rs[i].State, rs[i].Amount = LateRefundRejected, 0
			rs[i].Reason = fmt.Sprintf("the late-refunds query gives refund_no %s in %d rows that disagree (order, seller, amount or time)", r.RefundNo, rows[r.RefundNo])
		}
	}
	n, err := store.RecordLateRefunds(ctx, run, rs)
	if err != nil {
		return n, nil, outside, err
	}
	held, err := store.LateRefundsRecordedOtherwise(ctx, rs)
	if err != nil {
		return n, nil, outside, err
	}
	var problems []string
	renumber := make([]LateRefund, 0, len(held))
	for _, h := range held {
		r := first[h.RefundNo]
		problems = append(problems, fmt.Sprintf("late refund %s of order %s (seller %q, amount_minor %d): the ledger holds refund_no %s for another refund "+
			"(order %s, seller %q, amount_minor %d, read on %s, %s), so nothing is taken back for this one: "+
			"a refund number must name one refund (give it a number of its own, then run the date again)",
			r.RefundNo, r.OrderNo, r.SellerID, r.Amount, h.RefundNo, h.OrderNo, h.SellerID, h.Amount, h.Date, h.State))
		// Kept in the ledger under a number of settle's, rejected, so
		// that the date's reports show it (orders.csv, a bad_data row of
		// mismatches.csv) and the seller is not paid on it, as for any
		// late refund that cannot be right: before, it was in the run's
		// message alone, and the reports read as if nothing was refunded.
		x := r
		x.RefundNo, x.State = RenumberRefundNo(r.RefundNo, r.OrderNo), LateRefundRejected
		x.Reason = fmt.Sprintf("refund_no %s is the ledger's for another refund (order %s, seller %q, amount_minor %d, read on %s, %s): "+
			"nothing is taken back for this one until the platform gives it a number of its own and the date runs again",
			h.RefundNo, h.OrderNo, h.SellerID, h.Amount, h.Date, h.State)
		renumber = append(renumber, x)
	}
	if len(renumber) > 0 {
		if _, err := store.RecordLateRefunds(ctx, run, renumber); err != nil {
			return n, nil, outside, err
		}
	}
	if err := store.RenumberedSince(ctx, run, renumber); err != nil {
		return n, nil, outside, err
	}
	// A rejected refund the query no longer gives held its seller's
	// revenue shares in its currency on every run, for ever: one without
	// a number (the platform gave it one since: read under it) or one the
	// platform removed was never "corrected" by a row under its key
	// (found by an operator's trial).
	read := make([]string, 0, len(rows))
	for no := range rows {
		read = append(read, no)
	}
	if err := store.NoLongerRead(ctx, run, read); err != nil {
		return n, nil, outside, err
	}
	return n, problems, outside, nil
}

// RenumberRefundNo is the number under which the ledger keeps, rejected,
// a late refund the platform gave under refundNo, a number the ledger
// holds for another refund: one per refund number and order, never a
// platform's refund number.
func RenumberRefundNo(refundNo, orderNo string) string {
	return "settle:renumber:" + refundNo + ":" + orderNo
}

// RenumberPrefix begins every RenumberRefundNo.
const RenumberPrefix = "settle:renumber:"

// OutsideWindow counts the rows of a late-refunds query whose created_at
// is outside its window, and describes the first few.
type OutsideWindow struct {
	Lines []string // the first ProblemsListed
	N     int
}

func (o *OutsideWindow) add(r LateRefund, w Window) {
	o.N++
	if len(o.Lines) < ProblemsListed {
		o.Lines = append(o.Lines, fmt.Sprintf("late refund %s of order %s: %s", r.RefundNo, r.OrderNo, OutsideWindowReason(r.CreatedAt, w)))
	}
}

// AddTo adds the refunds outside the window to p, each counted.
func (o OutsideWindow) AddTo(p *Problems) {
	for _, l := range o.Lines {
		p.Add(l)
	}
	if rest := o.N - len(o.Lines); rest > 0 {
		p.AddMany(fmt.Sprintf("%d more late refunds outside the window", rest), rest)
	}
}

// OutsideWindowReason says why a late refund created at t, outside w, is
// not recorded.
func OutsideWindowReason(t time.Time, w Window) string {
	loc := w.Start.Location()
	return fmt.Sprintf("created_at %s is outside the late-refunds query's window [%s, %s): not recorded, nothing taken back "+
		"(one created before it was netted by its order's refunded_minor or is an earlier window's late refund); the query must return the refunds created in its window alone: fix it and run the date again",
		t.In(loc).Format(time.RFC3339Nano), w.Start.In(loc).Format(time.RFC3339Nano), w.End.In(loc).Format(time.RFC3339Nano))
}

// ClawBacks resolves the pending late refunds of the run's shard: a refund
// of an order whose seller share was paid or carried becomes a clawback
// (the order is split again under its date's rules with the refund, and
// the difference is taken back: from the seller's share and from the
// platform's commission); a refund of an order that was rejected, or of a
// channel whose spec says its late refunds are ignored (its provider
// refunds from the seller's own funds, say), is ignored with the reason; a
// refund above what is left of the order is rejected for a person. Others
// stay pending until their order settles. channels are the channels the
// run knows. It returns a summary and the problems a person must look at
// (all counted, the first few listed).
func ClawBacks(ctx context.Context, store AdjustStore, resplit Resplit, channels Channels, run *Run) (string, *Problems, error) {
	var clawed, ignored, waiting int
	problems := &Problems{}
	for after := ""; ; {
		pending, err := store.PendingLateRefunds(ctx, after, lateRefundOrdersPage)
		if err != nil {
			return "", nil, err
		}
		if len(pending) == 0 {
			break
		}
		after = pending[len(pending)-1].OrderNo
		c, i, w, err := clawBackPage(ctx, store, resplit, channels, run, pending, problems)
		clawed, ignored, waiting = clawed+c, ignored+i, waiting+w
		if err != nil {
			return "", nil, err
		}
	}
	return fmt.Sprintf("late refunds: %d clawed back, %d ignored, %d waiting for their order", clawed, ignored, waiting), problems, nil
}

// lateRefundOrdersPage is how many orders' pending late refunds ClawBacks
// reads at a time: what it holds does not grow with the refunds waiting
// in the ledger (a busy day's, or those of orders not settled yet).
const lateRefundOrdersPage = 1000

// clawBackPage resolves one page of pending late refunds (every pending
// refund of each of its orders, in order), counts what it did and adds to
// problems what needs a person.
func clawBackPage(ctx context.Context, store AdjustStore, resplit Resplit, channels Channels, run *Run,
	pending []PendingLateRefund, problems *Problems) (clawed, ignored, waiting int, err error) {
	// Earlier refunds of an order resolved in this pass count for the next.
	done := map[string]*SettledItem{}
	for _, p := range pending {
		it := p.Item
		if d, ok := done[p.OrderNo]; ok {
			it = d
		}
		owner := p.SellerID
		if it != nil {
			owner = it.SellerID // the seller the order settled to
		}
		if !run.Key.Shard.Owns(owner) {
			continue
		}
		if it == nil && p.SourceRejected != "" {
			// An order settles once, ever: one rejected at the source has
			// nothing to take back, and waiting would be forever.
			err := store.ResolveLateRefund(ctx, run, p.RefundNo, LateRefundIgnored,
				"the order was rejected at the source, nothing was paid on it: "+p.SourceRejected, nil, 0)
			switch {
			case err == nil:
				ignored++
			case !errors.Is(err, ErrAlreadyResolved):
				return clawed, ignored, waiting, err
			}
			continue
		}
		if it == nil {
			waiting++
			continue
		}
		resolve := func(state, reason string, adj *Adjustment) error {
			return store.ResolveLateRefund(ctx, run, p.RefundNo, state, reason, adj, it.LateRefunded)
		}
		spec, _ := channels.Spec(it.Channel)
		switch {
		case !p.Date.IsZero() && !it.Date.Before(p.Date):
			// Read on p.Date (created in its window) while its order had no
			// item, and the order settled since on a date no earlier (the
			// platform moved it there): that date's source row counts every
			// refund recorded before its window's end, this one among them.
			// Clawing it back too took it from the seller twice.
			if err = resolve(LateRefundIgnored, fmt.Sprintf("netted by the order's settlement on %s (its refunds up to that day's end)", it.Date), nil); err == nil {
				ignored++
			}
		case spec.LateRefundIgnored != "":
			if err = resolve(LateRefundIgnored, spec.LateRefundIgnored, nil); err == nil {
				ignored++
			}
		case it.State == "rejected":
			if err = resolve(LateRefundIgnored, LateRefundOfRejected, nil); err == nil {
				ignored++
			}
		case it.State != "paid" && it.State != "carried":
			waiting++
			continue
		case p.SellerID != it.SellerID:
			// The refund is of an order of another seller than the one
			// its number settled to (another order under the same number,
			// rejected as already settled): taking it back from this
			// seller took a refund of an order it never sold.
			why := fmt.Sprintf("the refund is of seller %q's order, and order %s settled to seller %s on %s", p.SellerID, p.OrderNo, it.SellerID, it.Date)
			if err = resolve(LateRefundRejected, why, nil); err == nil {
				problems.Add(fmt.Sprintf("late refund %s of order %s: %s", p.RefundNo, p.OrderNo, why))
			}
		default:
			var adj *Adjustment
			var note string
			adj, note, err = clawback(ctx, it, p.LateRefund, resplit)
			if err != nil {
				var bad *badRefund
				if !errors.As(err, &bad) {
					return clawed, ignored, waiting, err
				}
				// Noted for a person once recorded here (another run may
				// have resolved it meanwhile).
				if err = resolve(LateRefundRejected, bad.why, nil); err == nil {
					problems.Add(fmt.Sprintf("late refund %s of order %s: %s", p.RefundNo, p.OrderNo, bad.why))
					if note != "" {
						problems.Add(note)
					}
				}
				break
			}
			// Dated the day the run that records it settles, not before
			// the refund was read: that run writes its date's reports, so
			// the clawback is in them, and an earlier date's reports,
			// written before it existed, stay true (a refund read on one
			// date and clawed back by a later date's run).
			adj.Date = p.Date
			if p.Date.Before(run.Key.Date) {
				adj.Date = run.Key.Date
			}
			if err = resolve(LateRefundClawed, adj.Reason, adj); errors.Is(err, ErrBalanceMoved) {
				// Another run clawed back a refund of the order, or a
				// reprice of its date committed, meanwhile: the next run
				// works it out again, on the order and rules of then.
				waiting++
				continue
			}
			if errors.Is(err, ErrAlreadyResolved) {
				continue // another run worked it out: nothing recorded here
			}
			if err == nil && note != "" {
				problems.Add(note)
			}
			clawed++
			if err == nil {
				next := *it
				next.LateRefunded += adj.RefundMinor
				next.LateSellerBack -= adj.Amount
				next.LateCommissionBack += adj.CommissionBack
				done[p.OrderNo] = &next
			}
		}
		if errors.Is(err, ErrAlreadyResolved) {
			err = nil // by another run meanwhile (two dates' runs read the same pending refund)
		}
		if err != nil {
			return clawed, ignored, waiting, err
		}
	}
	return clawed, ignored, waiting, nil
}

type badRefund struct{ why string }

func (b *badRefund) Error() string { return b.why }

// clawback works out what a late refund takes back from the seller and
// from the commission. The order is split again with every refund so far;
// what changed is given back. Should the rules no longer give the split
// the order settled with (a rule of its date changed since), should the
// new split not fit, or should the rules split no order of its date any
// more (a rules file without that date's rules), the seller gives back the
// refund up to its share left, and the commission the rest; a changed or
// lost rule is also a note for a person (the rules file changed or lost a
// date the ledger still needs). A split again under a changed rule would
// have priced the part of the order the buyer kept anew, as if refunded.
// An order of a repriced date (settle reprice: its date's rules are the
// repriced ones) is judged against the split it has now (its reprices, if
// any, in), at the refunded total of before the refund, and what is left
// of it counts them.
func clawback(ctx context.Context, it *SettledItem, r LateRefund, resplit Resplit) (*Adjustment, string, error) {
	cur := it.Currency
	refunded, err := Add(it.Refunded, it.LateRefunded)
	if err == nil {
		refunded, err = Add(refunded, r.Amount)
	}
	if err != nil || refunded > it.Amount {
		return nil, "", &badRefund{fmt.Sprintf("refunds would total %s, above the order's %s",
			Money{refunded, cur}, Money{it.Amount, cur})}
	}
	_, commissionLeft, sellerLeft := it.Now()
	o := it.Order
	o.Refunded = refunded
	// The seller's share first, unless the order splits again and fits.
	sellerBack := min(r.Amount, sellerLeft)
	commissionBack := r.Amount - sellerBack
	var how, note string
	s, err := resplit(ctx, o, it.Date, it.RepriceID)
	// The split the order stands at: the one it settled with, or, once
	// its date was repriced (settle reprice), the one it has now at the
	// refunded total of now - its date's rules now being the repriced
	// ones, which split the order as it settled no more (an order they
	// left as it was at the refunded total of the reprice, a late refund
	// in it, included: at its settlement's, a cap its larger base reached
	// may split it otherwise).
	base, settledWith := it.Order, it.Split
	if it.RepricedN > 0 || it.RepriceID != 0 {
		base.Refunded = it.Refunded + it.LateRefunded
		settledWith.Commission, settledWith.SellerShare, settledWith.Rule = commissionLeft, sellerLeft, it.Rule+" repriced"
	}
	var settled Split
	if err == nil {
		settled, err = resplit(ctx, base, it.Date, it.RepriceID)
	}
	if errors.Is(err, ErrNotRead) {
		// The rules could not be looked up (the ledger's kept file of
		// the date): nothing to judge the split by yet, not a lost rule.
		return nil, "", err
	}
	switch {
	case err != nil:
		how = fmt.Sprintf("seller's share first (the rules split no order of %s: %v)", it.Date, err)
		note = fmt.Sprintf("late refund %s of order %s: the rules split no order of %s (%v): clawed back from the seller's share first; give the rules file that date's rules again",
			r.RefundNo, it.OrderNo, it.Date, err)
	case settled.Commission != settledWith.Commission || settled.SellerShare != settledWith.SellerShare:
		how = fmt.Sprintf("seller's share first (the rules now give the order a commission of %s under %s, it settled with %s under %s)",
			Money{settled.Commission, cur}, settled.Rule, Money{settledWith.Commission, cur}, settledWith.Rule)
		note = fmt.Sprintf("late refund %s of order %s: the rules now split the order otherwise than it settled on %s (commission %s under %s, settled with %s under %s): clawed back from the seller's share first; give the rules file that date's rules again",
			r.RefundNo, it.OrderNo, it.Date, Money{settled.Commission, cur}, settled.Rule, Money{settledWith.Commission, cur}, settledWith.Rule)
	case sellerLeft-s.SellerShare < 0 || commissionLeft-s.Commission < 0 || sellerLeft-s.SellerShare+commissionLeft-s.Commission != r.Amount:
		how = "seller's share first (the rules no longer give the order's split)"
	default:
		sellerBack, commissionBack = sellerLeft-s.SellerShare, commissionLeft-s.Commission
		how = "split again under " + s.Rule
	}
	if commissionBack > commissionLeft {
		return nil, "", &badRefund{fmt.Sprintf("refund %s exceeds what is left of the order", Money{r.Amount, cur})}
	}
	return &Adjustment{SellerID: it.SellerID, Currency: cur, Kind: AdjustClawback, Amount: -sellerBack,
		OrderNo: it.OrderNo, RefundNo: r.RefundNo, RefundMinor: r.Amount, CommissionBack: commissionBack, Repriced: it.Repriced, RulesReprice: it.RepriceID,
		Reason: fmt.Sprintf("late refund %s of order %s (%s): %s back from the seller, %s of commission (%s)",
			r.RefundNo, it.OrderNo, it.Date, Money{sellerBack, cur}, Money{commissionBack, cur}, how)}, note, nil
}

// SellerCurrency names a seller's account in one currency.
type SellerCurrency struct {
	SellerID string
	Currency Currency
}

// Carry is a seller's open carried balance in one currency: the sum of
// the entries not netted into a revenue share yet.
type Carry struct {
	SellerID string
	Currency Currency
	Amount   int64 // signed minor units
	Entries  int64
	// Account is the seller's account that carried balances are paid to
	// (the revenue-sharing provider's), as last recorded; "" when none.
	Account string
}

// PayoutCandidate is what a run may pay one seller in one currency: the
// run's items of the seller ready to be paid that no payout covers yet,
// and the seller's open carried balance up to the run's date.
type PayoutCandidate struct {
	SellerID string
	Currency Currency
	Payable  int64 // the run's items, minor units
	Items    int64
	Carried  int64 // the open carried balance, signed minor units
	// Account is the seller's account at the paying provider: the run's
	// ("" when the run recorded the seller with none), else (a seller
	// with only a carried balance, not in the run's snapshot) the last
	// recorded; "" when none, or when the run that recorded it held the
	// seller's orders there for that account (SellerHoldPrefix) or a
	// person rejected them so (RejectedSellerHold): one another seller
	// has too, or one the provider cannot use; "" too, where an account
	// is one seller's, when a seller with nothing of the run's to be paid
	// there has one the recording run recorded for another seller of its
	// date too, or, not in the run's snapshot, one a run of the run's
	// date records for another seller. The payout is sent to it (ledger
	// AccountOf).
	Account string
}

// Net is what the payout would send: the items and the carried balance.
func (p PayoutCandidate) Net() (int64, error) { return Add(p.Payable, p.Carried) }

// ErrAlreadyResolved is what the ledger wraps when a late refund a run
// worked out is no longer pending: another run (of another date, at the
// same time) resolved it first. Nothing is recorded; it is not an error of
// the run (it stopped the stage, exit 1: found by a review).
var ErrAlreadyResolved = errors.New("no longer pending: another run resolved it")

// ErrBalanceMoved is what the ledger wraps when a seller's payable and
// carried balance no longer add up to the amount checked before planning.
var ErrBalanceMoved = errors.New("the seller's carried balance changed while the payout was planned; run again")

// ClawBackStage reads the late refunds of the run's window and works out
// the clawbacks (ClawBacks). It runs at the start of distribute, on every
// invocation, before anything is netted. channels are the channels the
// run knows: their specs say whose late refunds are ignored.
func ClawBackStage(store AdjustStore, src LateRefundSource, w func(Date) Window, resplit Resplit, channels Channels) StageFunc {
	return func(ctx context.Context, run *Run) (string, error) {
		win := w(run.Key.Date)
		n, held, outside, err := ReadLateRefunds(ctx, src, store, run, win)
		if err != nil {
			return "", err
		}
		// The refunds of orders the platform moved here after their
		// settlement: no late-refunds query returns them (found by a
		// review; the seller kept the share of a refunded order).
		moved, err := store.MovedOrderRefunds(ctx, run)
		if err != nil {
			return "", err
		}
		var mine []LateRefund
		for _, r := range moved {
			if run.Key.Shard.Owns(r.SellerID) {
				r.CreatedAt = win.Start
				mine = append(mine, r)
			}
		}
		if len(mine) > 0 {
			k, err := store.RecordLateRefunds(ctx, run, mine)
			if err != nil {
				return "", err
			}
			n += k
		}
		summary, problems, err := ClawBacks(ctx, store, resplit, channels, run)
		if err != nil {
			return "", err
		}
		for _, h := range held {
			problems.Add(h)
		}
		outside.AddTo(problems)
		return fmt.Sprintf("%d late refunds read; %s", n, summary), problems.NeedsPerson()
	}
}
