package payprotocol

import (
	"context"
	"fmt"
	"strings"

	"github.com/settlekit/settle/pipeline"
)

// RejectedFailedPayment is the reason an older settle gave an item whose
// payment Pay Protocol answered failed: it rejected it outright, where
// settle now holds it (HeldFailedPayment). Such an order may be paid late,
// on chain, as one a person rejected may (pipeline.RejectedByPerson): the
// reconciliation asks about both (RejectedReasons).
const RejectedFailedPayment = "Pay Protocol payment is failed"

// RejectedReasons are the reasons of the rejected Pay Protocol items whose
// payment the reconciliation asks about again (RejectedStore): a person
// rejected them (settle resolve --order --reject: a payment Pay Protocol
// answered failed), or an older settle did for a failed payment. Either
// was a decision that nothing would arrive; a late payment on chain
// proves it wrong, and the seller is never paid unless a person is told.
var RejectedReasons = []string{pipeline.RejectedByPerson, RejectedFailedPayment}

// HeldReopened starts the reason of an item a person held again after
// its order was rejected for a failed payment that Pay Protocol answers
// paid since (settle resolve --order --reopen): a hold the verification
// takes up (VerifyHoldPrefix), so the next run of its date verifies it
// and settles it once, as any held payment paid late.
const HeldReopened = VerifyHoldPrefix + " payment was paid after its order was rejected, reopened by a person"

// RejectedStore is what the reconciliation needs of the ledger to ask
// about the rejected orders of RejectedReasons.
type RejectedStore interface {
	// RejectedItemsAfter walks the next limit of the run's rejected
	// items after `after` (by order number) and returns those of channel
	// ch rejected with a reason starting with one of reasons, each with
	// its Reason; next is the cursor of the next page, "" at the end.
	RejectedItemsAfter(ctx context.Context, runID int64, ch pipeline.Channel, reasons []string, after string, limit int) (
		items []pipeline.RefundedItem, next string, err error)
}

// matchRejected asks Pay Protocol about the run's rejected orders of
// RejectedReasons (c.Rejected's, a page of c.PageSize at a time, on the
// pacer, ans counting the unanswered over the matching) and returns what
// MatchRejected finds of each: only those orders, and only when the run is
// reconciled (its own run, or a recheck of a date within --recheck-days;
// the expected row of one still failed keeps its run among those
// rechecked while its date is within the window, and no longer).
func (c MatcherConfig) matchRejected(ctx context.Context, run *pipeline.Run, size int, ans *answers) ([]pipeline.Mismatch, error) {
	var out []pipeline.Mismatch
	after := ""
	for {
		items, next, err := c.Rejected.RejectedItemsAfter(ctx, run.ID, Channel, RejectedReasons, after, size)
		if err != nil {
			return nil, fmt.Errorf("read the rejected Pay Protocol items of run %d: %w", run.ID, err)
		}
		found := make([][]pipeline.Mismatch, len(items))
		ask1 := func(i int) (err error) {
			found[i], err = c.askRejected(ctx, items[i], run.Key.Date, ans)
			return err
		}
		if err := pipeline.EachFirstAlonePaced(ctx, c.Pacer, seq(len(items)), ask1); err != nil {
			return nil, err
		}
		for _, ms := range found {
			out = append(out, ms...)
		}
		if next == "" {
			return out, nil
		}
		after = next
	}
}

// askRejected asks Pay Protocol about the rejected item it of date d and
// returns what MatchRejected finds of it (a line on c.Log for one paid
// now), or the row saying why it could not be matched (unanswered: the
// error returned concerns every order).
func (c MatcherConfig) askRejected(ctx context.Context, it pipeline.RefundedItem, d pipeline.Date, ans *answers) ([]pipeline.Mismatch, error) {
	if strings.HasPrefix(it.Reason, pipeline.RejectedSellerHold) {
		// Rejected with its seller, which will never have an account
		// (settle resolve --seller --reject): its payment is paid, and
		// was found "paid after its rejection" on every run of its date,
		// for a person to reopen it and pay the seller that has no
		// account (found by a review).
		return nil, nil
	}
	o, err := c.API.Order(ctx, it.ProviderTxnID)
	if err == nil || !transient(err) {
		ans.answered()
	}
	switch {
	case pipeline.IsNotFound(err):
		return []pipeline.Mismatch{expectedRejected(it, "", "not found", rejectedBy(it)+"; Pay Protocol does not know payment "+it.ProviderTxnID+" any more: nothing to pay")}, nil
	case err != nil:
		return unanswered(ctx, it, err, ans)
	}
	found := MatchRejected(it, o, d)
	c.logPaid(d, it, o, found)
	return found, nil
}

// seq returns 0, 1, ... n-1.
func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// PaidAfterRejection is the message of the line logged (at WARN) for each
// rejected order whose payment Pay Protocol answers paid.
const PaidAfterRejection = "Pay Protocol payment paid after its order was rejected: the buyer paid, the seller is not paid; a person must act"

// logPaid logs, for a rejected order whose payment found says is paid now,
// one line naming the order, its date d, its amount and currency, and the
// command that settles it: the reconciliation's row of it may be one of
// many.
func (c MatcherConfig) logPaid(d pipeline.Date, it pipeline.RefundedItem, o Order, found []pipeline.Mismatch) {
	if c.Log == nil || o.Status != PaymentPaid.String() || len(found) == 0 {
		return
	}
	c.Log.Warn(PaidAfterRejection, "order", it.OrderNo, "date", d.String(), "payment", it.ProviderTxnID,
		"amount", pipeline.FormatMinor(it.Gross, it.Currency), "currency", string(it.Currency), "seller", it.SellerID,
		"rejected", rejectedBy(it), "command", reopenCommand(d, it.OrderNo))
}

// reopenCommand is the command that holds a rejected order again for its
// date's next run, which verifies it and settles it once.
func reopenCommand(d pipeline.Date, orderNo string) string {
	return fmt.Sprintf("settle resolve --date %s --order %s --reopen --note TEXT (with the --payprotocol-* flags of the run)", d, orderNo)
}

// rejectedBy says who rejected item it.
func rejectedBy(it pipeline.RefundedItem) string {
	if strings.HasPrefix(it.Reason, pipeline.RejectedByPerson) {
		return "a person rejected order " + it.OrderNo + " (settle resolve --order --reject)"
	}
	return "an older settle rejected order " + it.OrderNo + " for its failed payment"
}

// MatchRejected returns what disagrees between a rejected item of
// RejectedReasons and Pay Protocol's word on its order, d being its
// date. It is pure.
//
//   - paid: a status row, never expected, naming the order, its amount
//     and the command that settles it (reopenCommand): the buyer paid and
//     the seller is not paid, and nothing is paid by itself, since
//     somebody decided it would not be (with a quote row when the
//     payment's quote is not the order's);
//   - still failed, or a payment under way again: a timing row, expected:
//     nothing moved, and the runs of its date, and the reconciliations of
//     later dates within --recheck-days, ask again;
//   - refunded: nothing, all of it went back to the buyer.
func MatchRejected(it pipeline.RefundedItem, o Order, d pipeline.Date) []pipeline.Mismatch {
	who := rejectedBy(it)
	switch o.Status {
	case PaymentPaid.String():
		out, quote := matchQuote(it, o)
		return append(out, row(it, pipeline.MismatchStatus, pipeline.Minor(it.Gross), quote, o.Status,
			fmt.Sprintf("payment: %s, and Pay Protocol answers its payment paid now: the buyer paid %s and the seller is not paid for it; nothing is paid by itself: check with Pay Protocol, then %s holds it again for its date's next run, which settles it",
				who, pipeline.Money{Minor: it.Gross, Currency: it.Currency}, reopenCommand(d, it.OrderNo))))
	case PaymentRefunded.String():
		return nil
	}
	_, quote := matchQuote(it, o)
	return []pipeline.Mismatch{expectedRejected(it, quote, o.Status,
		fmt.Sprintf("payment: %s; Pay Protocol's payment is %s: asked again by each run of its date, and by later dates' reconciliations within --recheck-days", who, o.Status))}
}

// expectedRejected is the expected row about a rejected item still not
// paid.
func expectedRejected(it pipeline.RefundedItem, theirs, theirsState, detail string) pipeline.Mismatch {
	return expectedRow(it, pipeline.Minor(it.Gross), theirs, theirsState, detail)
}
