package payprotocol

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// ReconcileStore is what the Pay Protocol reconciliation needs of the
// ledger.
type ReconcileStore interface {
	// RefundedItemsAfter returns at most limit of the run's items of
	// channel ch that the verification accepted (every state but
	// unverified and rejected) whose order number comes after `after`, by
	// order number (a keyset page).
	RefundedItemsAfter(ctx context.Context, runID int64, ch pipeline.Channel, after string, limit int) ([]pipeline.RefundedItem, error)
}

// DefaultPageSize is how many items the matcher reads, asks about and
// holds at a time unless MatcherConfig.PageSize says otherwise.
const DefaultPageSize = pipeline.MatchPage

// Order is Pay Protocol's word on one of our orders: its payment detail
// and, for a paid payment, its latest refund.
type Order struct {
	Status string // the payment's status: PaymentPaid.String(), ... PaymentRefunded.String()
	// Quote is the price the payment was asked for, in minor units of a
	// fiat currency. QuoteProblem says why it could not be read exactly
	// (a crypto quote, an amount finer than the currency's minor unit);
	// Quote is then zero.
	Quote        pipeline.Money
	QuoteProblem string
	// Refund is the order's latest refund; nil when Pay Protocol knows
	// none, or when the payment is not paid (it is not asked then), or
	// when Listed holds the order's refunds and the latest was not asked.
	Refund *OrderRefund
	// Listed are the order's refunds that Pay Protocol's refund list
	// showed, each read as Refund is (RefundListing): the successful ones,
	// and an entry of the list that could not be read (its AmountProblem
	// says so). Listed, the refunds other than Refund are added to it, and
	// their sum is what the ledger's refunded total is compared with.
	Listed []OrderRefund

	// What Refund needs of the payment detail to read a refund's amount:
	// its chain, payment order (outPaymentNo), settlement currency and
	// expected amount.
	chain      int
	paymentNo  string
	settlement string
	expected   string // expectedAmount, scaled in settlement: with Quote, the rate the payment was settled at
	read       bool   // those were read from the payment detail
	// listed says the refund list was read (Listed holds what it showed
	// of the order), from listedFrom (zero: from the start).
	listed     bool
	listedFrom time.Time
}

// OrderRefund is one refund as Pay Protocol reports it.
type OrderRefund struct {
	ID     string // Pay Protocol's refundId
	Status string // RefundStatus.String(): "success", "pending approval", ... "rejected"
	// Amount is the refund in minor units of the payment's Quote currency.
	// AmountProblem says why it could not be converted exactly; Amount is
	// then zero, or, Inexact, the refund rounded up to the next minor unit
	// (a bound of what it returned, not what it returned).
	Amount        int64
	AmountProblem string
	// Unconfigured says AmountProblem is settle's configuration, not Pay
	// Protocol's answer: the decimals --payprotocol-decimals gives the
	// refund's currency on its chain disagree with Pay Protocol's
	// currency list.
	Unconfigured bool
	// Inexact says AmountProblem is that the refund, in the payment's
	// coin, is not a whole number of the quote's minor units: Amount is
	// the least whole number above it.
	Inexact bool
	// Elsewhere says AmountProblem is that the refund is on another chain
	// than the payment, or of another payment order, or in another
	// currency than the payment's settlement currency (or one Pay
	// Protocol's currency list does not have): its amount is not in the
	// payment's units, and is not read.
	Elsewhere bool
	// CurrenciesUnread says AmountProblem is that Pay Protocol's currency
	// list of the refund's chain could not be read, or lists the refund's
	// currency, or one of the payment's symbol, so that it cannot be used
	// (Currency.Problem): whether the refund is in the payment's
	// settlement currency cannot be told, and its amount is not read. The verification leaves its order unverified for the
	// next run of the date.
	CurrenciesUnread bool
}

// ReconcileAPI is what the reconciliation needs of Pay Protocol's API
// (Adapter over a Client).
type ReconcileAPI interface {
	// Order returns the payment of our order outTradeNo and, when it is
	// paid, its latest refund (the refund detail answers no other: the
	// others are seen in the refund list, MatcherConfig.Listing).
	// pipeline.ErrNotFound when Pay Protocol does not know the order.
	Order(ctx context.Context, outTradeNo string) (Order, error)
	// OrderPaid returns what Order would about our order outTradeNo whose
	// payment an earlier answer found paid as paid (kept: keptPayment),
	// asking its latest refund first. When Pay Protocol knows no refund
	// of the order, the payment cannot have changed since (a paid payment
	// changes only by a refund) and paid is returned as it is, after one
	// query; otherwise the payment is asked again too (the refund may
	// have refunded it whole, and a refund's amount is read in the
	// payment's settlement currency).
	OrderPaid(ctx context.Context, outTradeNo string, paid Order) (Order, error)
}

// refundInProgress reports whether a refund status moves on by itself (a
// person approves, the chain confirms).
func refundInProgress(status string) bool {
	switch status {
	case RefundPendingApproval.String(), RefundUnderReview.String(), RefundBlockConfirmation.String():
		return true
	}
	return false
}

// paymentInProgress reports whether the verification holds an item for a
// payment status.
func paymentInProgress(status string) bool {
	switch status {
	case PaymentPending.String(), PaymentBlockConfirmation.String(), PaymentPartiallyPaid.String():
		return true
	}
	return false
}

// MatcherConfig is what the Pay Protocol matcher works with.
type MatcherConfig struct {
	Store ReconcileStore
	API   ReconcileAPI
	// Pacer keeps to Pay Protocol's limits: the per-order queries start as
	// fast as it allows, after the first alone. The verification shares
	// it. nil: no limit.
	Pacer *pipeline.Pacer
	// Final keeps which orders had an answer that can no longer change and
	// agreed with the ledger: a payment paid (or refunded whole) whose
	// quote and refunds agree. Each is keyed by the order and what the
	// ledger said of it (finalKey: gross, our refunded total, how many late
	// refunds that counts, whether the item went on or is held), so a later
	// reconciliation does not ask about it again until the ledger changes
	// (a late refund since, say). The verification keeps the answers it
	// found so already (Verify), and the run's own reconciliation does not
	// ask them again. The verification also keeps, under
	// PaymentAnswersName, the orders whose payment alone it found paid in
	// agreement with the ledger (paymentAgreed; paymentKey): of those the
	// matcher asks the latest refund alone (ReconcileAPI.OrderPaid) and
	// matches it with the payment kept. nil: every order is asked every
	// time.
	Final pipeline.FinalAnswers
	// PageSize is how many items are read, asked about and held at a time
	// (keyset pages by order number, each asked as fast as Pacer allows
	// after its first alone, its final answers recorded before the next
	// page is read); 0: DefaultPageSize.
	PageSize int
	// WentOn leaves out the held items: only those the verification let
	// on are matched (see askAhead).
	WentOn bool
	// held has the answers this run's verification got about the payments
	// it held (NewProvider's): those are matched without asking again.
	held *heldAnswers
	// read has the payments this run's verification read of orders whose
	// refunds its refund list showed (NewProvider's): of such an order
	// kept as final, the refunds listed are read against it, not asked.
	read *paymentsRead
	// Up asks Pay Protocol a question of its own (Client.Preflight: a
	// payment detail of no order of ours), when a matching asked orders
	// and got no answer about any: answered, Pay Protocol is up and fails
	// on those orders alone, each a row; nil, or not answered, it is down
	// and the matcher fails.
	Up func(ctx context.Context) error
	// Rejected, when set, has the matcher ask too about the run's orders
	// rejected for a failed payment, by a person or by an older settle
	// (RejectedReasons; matchRejected): a payment paid since is a row for
	// a person. nil (and with WentOn): they are not asked.
	Rejected RejectedStore
	// Log, when set, gets one line for each rejected order whose payment
	// is paid now (logPaid).
	Log *slog.Logger
	// Listing, when set, has the matcher read Pay Protocol's refund list
	// once per matching (before its first page) and compare with our
	// refunded total every successful refund it shows of each order, not
	// only the latest (Order.Listed, matchRefunds): of an order kept as
	// final (Final) that it shows a refund of, the payment is asked again
	// (its detail reads the refunds' amounts). A list that cannot be read
	// is a row of its own (unexpected), and the orders are matched with
	// their latest refund alone. nil: no list is read.
	Listing *RefundListing
}

// Matcher compares the ledger's view of a run's Pay Protocol orders with
// Pay Protocol's payment and refund details, the queries paced by
// c.Pacer, and skips the orders c.Final kept as final (of an order whose
// payment alone is kept, it asks the refund alone: the findings are the
// same as asking both, see ReconcileAPI.OrderPaid). For every item the
// verification let on (recorded, uploaded, paid or held) it reports, with
// Provider Name and the order's outTradeNo as subject:
//
//   - missing_at_provider: Pay Protocol does not know the order;
//
//   - currency / amount: the payment's fiat quote differs from the order's
//     gross amount (or cannot be read exactly);
//
//   - status: the payment is no longer paid (failed, refunded beyond our
//     refunds, or back to pending while we went on with the item);
//
//   - amount (detail "refunds: ..."): the successful refund Pay Protocol
//     shows differs from our refunded total (netted at settlement plus late
//     refunds not rejected): its latest refund, or, with c.Listing, the sum
//     of every successful refund its refund list shows of the order (a
//     refund made twice, or on Pay Protocol's console, is a row naming the
//     refunds); a refund of them that cannot be read is a row too, one in
//     another currency than the payment's settlement currency, or whose
//     chain's currency list could not be read, among them;
//
//   - timing, expected: a held item whose payment is still pending,
//     confirming or partially paid, or failed (it may still be paid late;
//     the run names it for a person), or a refund still awaiting
//     approval, under review or confirming on chain.
//
//   - unverifiable (not expected): Pay Protocol's answer about the order
//     could not be used (unreadable, or the order refused definitely), or
//     Pay Protocol did not answer about it past the client's retries
//     while it answered other orders.
//
// With c.Rejected it also asks about the run's orders rejected for a
// failed payment, by a person or by an older settle, and reports what
// MatchRejected finds of them: one paid since is a status row for a
// person (and a line on c.Log), one still failed an expected timing row.
//
// Without c.Listing, Pay Protocol's refund detail shows an order's latest
// refund alone; when our total is above a successful latest refund the
// row says that earlier refunds cannot be listed, for a person to check on
// Pay Protocol's console. With it, the refund list is read once per
// matching, and a list that cannot be read is an unexpected
// unverifiable row of its own (subject APIRefundList): the orders are then
// matched with their latest refund alone. A failure that
// concerns every order (refused credentials, Pay Protocol down past its
// retries: downAfter orders in a row unanswered, asked one at a time
// until it answers one, or none answered, and c.Up not answered either)
// fails the matcher: findings are never guessed (the final
// answers got before it stay kept, of its page too: each agreed, and a
// re-run asks only the rest; pipeline.KeepFinal).
//
// The items are read a page at a time (c.PageSize), so the matcher's
// memory does not grow with the day; the findings are the same, sorted
// (pipeline.SortMismatches).
func Matcher(c MatcherConfig) pipeline.Matcher {
	if c.Pacer == nil {
		c.Pacer = pipeline.NewPacer(pipeline.Limits{})
	}
	size := c.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	return func(ctx context.Context, run *pipeline.Run) ([]pipeline.Mismatch, error) {
		var out []pipeline.Mismatch
		ans := answers{probe: c.Up}
		after := ""
		var listed *listedRefunds
		listing := c.Listing != nil
		for {
			items, err := c.Store.RefundedItemsAfter(ctx, run.ID, Channel, after, size)
			if err != nil {
				return nil, fmt.Errorf("read the Pay Protocol items of run %d: %w", run.ID, err)
			}
			if listing && len(items) > 0 {
				// Once, and only for a run with orders to match.
				listing = false
				if listed, err = c.Listing.list(ctx, run); err != nil {
					if ctx.Err() != nil || pipeline.KindOf(err) == pipeline.KindUsage {
						return nil, err
					}
					out = append(out, pipeline.Mismatch{Provider: Name, Category: pipeline.MismatchUnverifiable, Subject: APIRefundList,
						Detail: "refunds: Pay Protocol's refund list could not be read, so each order's refunds were compared with its latest refund alone (a refund made twice is not seen): " +
							pipeline.OneLine(err.Error())})
				}
			}
			found, err := c.matchPage(ctx, run, items, &ans, listed)
			if err != nil {
				return nil, err
			}
			out = append(out, found...)
			if len(items) < size {
				break
			}
			after = items[len(items)-1].OrderNo
		}
		if c.Rejected != nil && !c.WentOn {
			found, err := c.matchRejected(ctx, run, size, &ans)
			if err != nil {
				return nil, err
			}
			out = append(out, found...)
		}
		if err := ans.down(); err != nil {
			// No order answered: Pay Protocol down, or failing on the few
			// asked alone (a recheck, or a run whose verification kept
			// the others' answers, asks one). A question of its own tells.
			if c.Up == nil {
				return nil, err
			}
			if uerr := c.Up(ctx); uerr != nil {
				return nil, err // Pay Protocol is down, not failing on these
			}
		}
		pipeline.SortMismatches(out)
		return out, nil
	}
}

// matchPage matches one page of the run's items (see Matcher) and records
// the answers found final, so that a page is held in memory at a time.
// ans tells Pay Protocol down from Pay Protocol failing on a few orders,
// over the pages of one matching; listed is what the refund list showed
// of the run's orders (nil: none was read).
func (c MatcherConfig) matchPage(ctx context.Context, run *pipeline.Run, items []pipeline.RefundedItem, ans *answers, listed *listedRefunds) ([]pipeline.Mismatch, error) {
	if c.WentOn {
		items = slices.DeleteFunc(slices.Clone(items), func(it pipeline.RefundedItem) bool { return it.State == pipeline.ItemHeld })
	}
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = finalKey(it)
	}
	known, err := c.finalKeys(ctx, run, Name, keys)
	if err != nil {
		return nil, err
	}
	var ask []int
	var paymentKeys []string
	paymentOnly := map[int]bool{} // kept as final, with refunds listed: its payment alone is asked
	for i, it := range items {
		switch {
		case !known[keys[i]]:
			ask = append(ask, i)
			paymentKeys = append(paymentKeys, paymentKey(it))
		case listed.adds(it.ProviderTxnID, false, "", it.Refunded):
			ask = append(ask, i)
			paymentOnly[i] = true
		}
	}
	// Of the orders to ask, those whose payment alone is kept.
	paid, err := c.finalKeys(ctx, run, PaymentAnswersName, paymentKeys)
	if err != nil {
		return nil, err
	}
	found := make([][]pipeline.Mismatch, len(items))
	final := make([]bool, len(items))
	// match compares item i with Pay Protocol's answer o, or the error of
	// asking.
	match := func(i int, o Order, err error) error {
		it := items[i]
		if pipeline.IsNotFound(err) {
			found[i] = []pipeline.Mismatch{row(it, pipeline.MismatchMissingAtProvider, pipeline.Minor(it.Gross), "", "not found",
				"Pay Protocol does not know order "+it.ProviderTxnID)}
			return nil
		}
		if err != nil {
			found[i], err = unanswered(ctx, it, err, ans)
			return err
		}
		o.Listed, o.listed, o.listedFrom = nil, false, time.Time{} // a held answer's are the verification's
		if listed != nil {
			shown, err := listed.read(ctx, c.Listing.API, it.ProviderTxnID, o)
			if err != nil {
				return err // concerns every order: refused credentials, the run stopping
			}
			o.Listed, o.listed, o.listedFrom = shown, true, listed.from
		}
		found[i] = Match(it, o)
		final[i] = finalAndAgreed(found[i], o)
		for j, m := range found[i] {
			if m.Detail == heldPaidNow && !pipeline.Rechecking(ctx) {
				// Its run verified it minutes ago; the next run of the
				// date settles it. From a later date's run it is late.
				found[i][j].Category, found[i][j].Expected = pipeline.MismatchTiming, true
			}
		}
		return nil
	}
	// The held payments this run's verification was told about minutes
	// ago are matched with that answer: no request, so no token of the
	// pacer either (a 100,000-order re-run waited 37 s for the tokens of
	// its 1,830 held payments at 50 a second).
	var send []int
	for _, i := range ask {
		o, ok := c.held.take(run.ID, items[i])
		if !ok && paymentOnly[i] {
			o, ok = c.read.take(run.ID, items[i].ProviderTxnID)
		}
		if ok {
			if err := match(i, o, nil); err != nil {
				return nil, err
			}
		} else {
			send = append(send, i)
		}
	}
	ask1 := func(i int) error {
		it := items[i]
		var o Order
		var err error
		switch {
		case paymentOnly[i]:
			o, err = c.Listing.API.Payment(ctx, it.ProviderTxnID)
		case paid[paymentKey(it)]:
			o, err = c.API.OrderPaid(ctx, it.ProviderTxnID, keptPayment(it))
		default:
			o, err = c.API.Order(ctx, it.ProviderTxnID)
		}
		if err == nil && !o.read && listed.adds(it.ProviderTxnID, true, latestID(o), it.Refunded) {
			// The payment kept (no latest refund shown): the listed
			// refunds are read against its detail.
			latest := o.Refund
			if o, err = c.Listing.API.Payment(ctx, it.ProviderTxnID); err == nil {
				o.Refund = latest
			}
		}
		if err == nil || !transient(err) {
			ans.answered()
		}
		return match(i, o, err)
	}
	// One at a time until Pay Protocol answers one (it may fail on the
	// first order alone), then the others at the pacer's rate.
	var asked error
	j := 0
	for ; asked == nil && j < len(send) && !ans.isUp(); j++ {
		asked = pipeline.EachFirstAlonePaced(ctx, c.Pacer, send[j:j+1], ask1)
	}
	if asked == nil {
		asked = pipeline.EachFirstAlonePaced(ctx, c.Pacer, send[j:], ask1)
	}
	var out []pipeline.Mismatch
	var clean []string
	for i, ms := range found {
		out = append(out, ms...)
		if final[i] {
			clean = append(clean, keys[i])
		}
	}
	// What was answered before a failure is kept too (KeepFinal).
	if err := pipeline.KeepFinal(ctx, c.Final, Name, clean, asked); err != nil {
		if asked != nil {
			return nil, err
		}
		return nil, fmt.Errorf("record the final Pay Protocol answers of run %d: %w", run.ID, err)
	}
	return out, nil
}

// unanswered is the row about item it that asking Pay Protocol about it
// failed with err (not "not found"), or the error that fails the whole
// matching: refused credentials, or Pay Protocol down (ans counts the
// orders left without an answer, over one matching).
func unanswered(ctx context.Context, it pipeline.RefundedItem, err error, ans *answers) ([]pipeline.Mismatch, error) {
	if pipeline.KindOf(err) != pipeline.KindFailed {
		return nil, err // configuration: says it all, about every order
	}
	if pipeline.ConcernsEveryone(ctx, err) {
		err = fmt.Errorf("reconcile %s with Pay Protocol: %w", it.OrderNo, err)
		if ctx.Err() != nil || !transient(err) {
			return nil, err
		}
		if err := ans.failed(ctx, err); err != nil {
			return nil, err // downAfter orders in a row: Pay Protocol is down
		}
		// Not answered about this order alone, past the client's
		// retries, while it answers the others: a row for a person
		// (not kept: the next reconciliation asks again), the others
		// matched. It failed the whole reconciliation, every
		// provider's, on every run that rechecked the date (found by
		// a review).
		return []pipeline.Mismatch{row(it, pipeline.MismatchUnverifiable, pipeline.Minor(it.Gross), "", "no answer",
			"Pay Protocol did not answer about "+it.ProviderTxnID+" past its retries, while it answered other orders: "+pipeline.OneLine(err.Error()))}, nil
	}
	// About this order alone: a row for a person, the others go on.
	return []pipeline.Mismatch{row(it, pipeline.MismatchUnverifiable, pipeline.Minor(it.Gross), "", "unreadable",
		"Pay Protocol's answer about "+it.ProviderTxnID+" could not be used: "+pipeline.OneLine(err.Error()))}, nil
}

// finalKeys returns which of keys c.Final kept under name (none without
// c.Final).
func (c MatcherConfig) finalKeys(ctx context.Context, run *pipeline.Run, name string, keys []string) (map[string]bool, error) {
	if c.Final == nil || len(keys) == 0 {
		return map[string]bool{}, nil
	}
	known, err := c.Final.FinalKeys(ctx, name, keys)
	if err != nil {
		return nil, fmt.Errorf("read the final Pay Protocol answers of run %d: %w", run.ID, err)
	}
	return known, nil
}

// finalAndAgreed reports whether Pay Protocol's answer o about an order
// can no longer change and agrees with the ledger, found being what Match
// found of it: no finding, and the payment paid (a refund since is a late
// refund of the platform, which changes the ledger) or refunded whole.
func finalAndAgreed(found []pipeline.Mismatch, o Order) bool {
	return len(found) == 0 && (o.Status == PaymentPaid.String() || o.Status == PaymentRefunded.String())
}

// finalKey names what was asked about an item and what the ledger said of
// it, the key under which an answer finalAndAgreed is kept (by the
// matcher, and by the verification once the ledger has the item
// recorded): a change in the ledger is another key, and the order is
// asked about again.
//
// It holds every field of the item that Match reads to find nothing: the
// order (its outTradeNo), its gross and currency, our refunded total and
// how many late refunds that counts. Of the item's state it holds only
// whether the item went on (recorded, uploaded or paid: Match treats them
// alike) or is held (a paid payment is then a finding), not the state
// itself: the item moves from recorded to uploaded to paid after the
// verification, and what Match says of it does not change with that, so
// the verification's answer stays the matcher's. An item held since, or
// with a late refund since, has another key and is asked about again.
func finalKey(it pipeline.RefundedItem) string {
	went := "on"
	if it.State == pipeline.ItemHeld {
		went = "held"
	}
	return fmt.Sprintf("%s %d %s refunded %d late %d %s", it.ProviderTxnID, it.Gross, it.Currency, it.Refunded, it.LateRefunds, went)
}

// PaymentAnswersName names, in pipeline.FinalAnswers, the payment-level
// answers the verification keeps (paymentKey): apart from the matcher's
// whole answers (under Name), since such an answer says nothing of the
// order's refund.
const PaymentAnswersName = Name + "/payments"

// paymentAgreed reports whether Pay Protocol's payment o agrees with the
// item in everything Match checks of the payment itself: its status is
// paid and its quote is the order's gross in its currency (matchQuote
// finds nothing). What Match still reads then is the latest refund
// (matchRefund) and the item. A payment refunded whole is not one: Pay
// Protocol is asked no refund of it, and its whole answer is kept
// (finalAndAgreed) or not at all.
func paymentAgreed(it pipeline.RefundedItem, o Order) bool {
	found, _ := matchQuote(it, o)
	return o.Status == PaymentPaid.String() && len(found) == 0
}

// keptPayment is the payment a kept payment-level answer about it said
// (paymentAgreed held): paid, quoted at the order's gross in its
// currency, its refund not asked. Match reads nothing else of a payment.
func keptPayment(it pipeline.RefundedItem) Order {
	return Order{Status: PaymentPaid.String(), Quote: pipeline.Money{Minor: it.Gross, Currency: it.Currency}}
}

// paymentKey is the key under which the verification keeps, under
// PaymentAnswersName, an answer whose payment agreed (paymentAgreed) once
// the ledger has the item recorded: the matcher then asks only the
// order's latest refund (ReconcileAPI.OrderPaid) and matches it with
// keptPayment. It holds what the ledger said that the payment's check
// depends on, the same fields as finalKey and for the same reasons: the
// order, its gross and currency (the quote's check); our refunded total
// and how many late refunds that counts (a payment refunded whole is
// compared with them, and a refund of ours since may have changed the
// payment at Pay Protocol); whether the item went on or is held (a
// payment in progress is a timing gap for a held item alone). A change in
// any of them is another key, and both the payment and the refund are
// asked again.
func paymentKey(it pipeline.RefundedItem) string {
	return finalKey(it)
}

// Match returns what disagrees between one item and Pay
// Protocol's word on its order (see Matcher). It is pure: the
// same item and order give the same rows.
func Match(it pipeline.RefundedItem, o Order) []pipeline.Mismatch {
	out, quote := matchQuote(it, o)
	switch {
	case o.Status == PaymentPaid.String():
		refunds := matchRefunds(it, o)
		if it.State == pipeline.ItemHeld && len(refunds) == 0 {
			// Verified again by every run of its date; Matcher
			// makes this a timing gap within the run itself.
			refunds = append(refunds, row(it, pipeline.MismatchStatus, pipeline.Minor(it.Gross), quote, o.Status, heldPaidNow))
		}
		return append(out, refunds...)
	case paymentInProgress(o.Status) && it.State == pipeline.ItemHeld:
		return append(out, expectedRow(it, pipeline.Minor(it.Gross), quote, o.Status,
			"payment: Pay Protocol's payment is still "+o.Status+"; the item stays held"))
	case o.Status == PaymentFailed.String() && it.State == pipeline.ItemHeld:
		// Held, nothing paid, and the verification asks again (it may be
		// paid late, on chain): the ledger and Pay Protocol agree that
		// nothing moved. The run names it for a person (the verification's
		// problem) until it is paid or a person rejects it.
		return append(out, expectedRow(it, pipeline.Minor(it.Gross), quote, o.Status,
			"payment: Pay Protocol's payment is failed; the item stays held until it is paid late, or a person rejects it (settle resolve --order --reject)"))
	case o.Status == PaymentRefunded.String() && quote != "":
		// All of it went back to the buyer: that agrees when we count
		// the whole order refunded.
		switch {
		case it.Refunded == o.Quote.Minor:
			return out
		case it.Refunded > o.Quote.Minor:
			return append(out, row(it, pipeline.MismatchAmount, pipeline.Minor(it.Refunded), quote, o.Status,
				"refunds: Pay Protocol refunded the whole payment, the ledger counts more "+ourRefunds(it)))
		}
		return append(out, row(it, pipeline.MismatchStatus, pipeline.Minor(it.Refunded), quote, o.Status,
			"refunds: Pay Protocol refunded the whole payment, the ledger counts "+ourRefunds(it)))
	}
	return append(out, row(it, pipeline.MismatchStatus, pipeline.Minor(it.Gross), quote, o.Status,
		"payment: the ledger has the item "+it.State+", Pay Protocol's payment is "+o.Status))
}

// matchQuote compares the payment's fiat quote with the order's gross
// amount and currency: the rows it finds, and Pay Protocol's side of the
// payment when comparable ("" otherwise).
func matchQuote(it pipeline.RefundedItem, o Order) (out []pipeline.Mismatch, quote string) {
	switch {
	case o.QuoteProblem != "":
		out = append(out, row(it, pipeline.MismatchAmount, pipeline.Minor(it.Gross), "", o.Status,
			"payment: Pay Protocol's quote cannot be compared: "+o.QuoteProblem))
	case o.Quote.Currency != it.Currency:
		out = append(out, row(it, pipeline.MismatchCurrency, pipeline.Minor(it.Gross), pipeline.Minor(o.Quote.Minor), o.Status,
			fmt.Sprintf("payment: Pay Protocol quotes %s, the order is %s", o.Quote, pipeline.Money{Minor: it.Gross, Currency: it.Currency})))
	case o.Quote.Minor != it.Gross:
		quote = pipeline.Minor(o.Quote.Minor)
		out = append(out, row(it, pipeline.MismatchAmount, pipeline.Minor(it.Gross), quote, o.Status,
			fmt.Sprintf("payment: Pay Protocol quotes %s, the order is %s", o.Quote, pipeline.Money{Minor: it.Gross, Currency: it.Currency})))
	default:
		quote = pipeline.Minor(o.Quote.Minor)
	}
	return out, quote
}

// heldPaidNow is the finding about a held item whose payment is complete
// now.
const heldPaidNow = "payment: Pay Protocol's payment is paid now, the item is still held: run its date again to settle it"

// matchRefund compares our refunded total with the latest
// refund of a paid order; limit ends the detail of a row whose total is
// above that refund: why no other refund was compared.
func matchRefund(it pipeline.RefundedItem, r *OrderRefund, limit string) []pipeline.Mismatch {
	switch {
	case r == nil:
		if it.Refunded == 0 {
			return nil
		}
		return []pipeline.Mismatch{row(it, pipeline.MismatchAmount, pipeline.Minor(it.Refunded), "0", "no refund",
			"refunds: Pay Protocol knows no refund of the order, the ledger counts "+ourRefunds(it))}
	case refundInProgress(r.Status):
		theirs := pipeline.Minor(r.Amount)
		if r.AmountProblem != "" {
			theirs = ""
		}
		return []pipeline.Mismatch{expectedRow(it, pipeline.Minor(it.Refunded), theirs, "refund "+r.Status,
			fmt.Sprintf("refunds: Pay Protocol's latest refund %s is %s, the ledger counts %s", r.ID, r.Status, ourRefunds(it)))}
	case r.AmountProblem != "":
		return []pipeline.Mismatch{row(it, pipeline.MismatchAmount, pipeline.Minor(it.Refunded), "", "refund "+r.Status,
			fmt.Sprintf("refunds: refund %s cannot be compared: %s", r.ID, r.AmountProblem))}
	case r.Status == RefundSuccess.String():
		if r.Amount == it.Refunded {
			return nil
		}
		d := fmt.Sprintf("refunds: Pay Protocol's latest refund %s succeeded for %s, the ledger counts %s",
			r.ID, pipeline.Money{Minor: r.Amount, Currency: it.Currency}, ourRefunds(it))
		m := row(it, pipeline.MismatchAmount, pipeline.Minor(it.Refunded), pipeline.Minor(r.Amount), "refund "+r.Status, d)
		if it.Refunded > r.Amount {
			m.Detail += limit
			if it.LateRefunds > 0 && r.Amount == it.LastLateRefund {
				// Several refunds on our side, the latest one visible on
				// theirs and agreeing: the earlier ones cannot be seen.
				m.Category, m.Expected = pipeline.MismatchUnverifiable, true
			}
		}
		return []pipeline.Mismatch{m}
	}
	// The latest refund failed or was rejected: it returned nothing.
	if it.Refunded == 0 {
		return nil
	}
	return []pipeline.Mismatch{row(it, pipeline.MismatchAmount, pipeline.Minor(it.Refunded), "0", "refund "+r.Status,
		fmt.Sprintf("refunds: Pay Protocol's latest refund %s is %s, the ledger counts %s%s", r.ID, r.Status, ourRefunds(it), limit))}
}

// matchRefunds compares our refunded total with the refunds of a paid
// order: its latest refund alone (matchRefund), unless the refund list
// showed others (o.Listed): then every successful one, the latest with
// them, is added up, and their sum is compared. A refund of them that
// cannot be read makes a row of its own: the sum cannot be told. A sum
// above our total is money returned to the buyer that the platform does
// not count (a refund made twice, or on Pay Protocol's console), a sum
// below it a refund the platform counts that Pay Protocol's list does not
// show (made before the list's start, or never): both are unexpected.
func matchRefunds(it pipeline.RefundedItem, o Order) []pipeline.Mismatch {
	r := o.Refund
	var all []OrderRefund
	for _, l := range o.Listed {
		if r == nil || l.ID != r.ID {
			all = append(all, l)
		}
	}
	if len(all) == 0 {
		limit := " (Pay Protocol shows only an order's latest refund: earlier ones cannot be listed)"
		if o.listed {
			limit = " (Pay Protocol's refund list, read from " + stamp(o.listedFrom) + ", shows no other successful refund of the order)"
		}
		return matchRefund(it, r, limit)
	}
	var out []pipeline.Mismatch
	switch {
	case r == nil:
	case refundInProgress(r.Status):
		out = matchRefund(it, r, "") // its timing row
	case r.Status == RefundSuccess.String():
		all = append(all, *r)
	}
	what := "refunds: Pay Protocol's successful " + refundsNamed(all) + " of the order"
	var sum int64
	var problems []string
	for _, x := range all {
		if x.AmountProblem != "" {
			problems = append(problems, "refund "+x.ID+": "+x.AmountProblem)
			continue
		}
		var err error
		if sum, err = pipeline.Add(sum, x.Amount); err != nil {
			problems = append(problems, "their sum: "+err.Error())
		}
	}
	switch {
	case len(problems) > 0:
		return append(out, row(it, pipeline.MismatchAmount, pipeline.Minor(it.Refunded), "", "refund success",
			what+" cannot be added up: "+strings.Join(problems, "; ")))
	case sum == it.Refunded:
		return out
	case sum > it.Refunded:
		return append(out, row(it, pipeline.MismatchAmount, pipeline.Minor(it.Refunded), pipeline.Minor(sum), "refund success",
			fmt.Sprintf("%s returned %s, more than the ledger counts: %s", what, pipeline.Money{Minor: sum, Currency: it.Currency}, ourRefunds(it))))
	}
	since := " (Pay Protocol's refund list was read from " + stamp(o.listedFrom) + ": an earlier refund is not in it)"
	return append(out, row(it, pipeline.MismatchAmount, pipeline.Minor(it.Refunded), pipeline.Minor(sum), "refund success",
		fmt.Sprintf("%s returned %s, less than the ledger counts: %s%s", what, pipeline.Money{Minor: sum, Currency: it.Currency}, ourRefunds(it), since)))
}

// ourRefunds says what our refunded total is made of.
func ourRefunds(it pipeline.RefundedItem) string {
	total := pipeline.FormatMinor(it.Refunded, it.Currency) + " " + string(it.Currency) + " refunded"
	if it.LateRefunds == 0 {
		return total
	}
	return total + " (" + strconv.Itoa(it.LateRefunds) + " late refund(s) included)"
}

// row is one unexpected finding about an item.
func row(it pipeline.RefundedItem, category, ours, theirs, theirsState, detail string) pipeline.Mismatch {
	return pipeline.Mismatch{Provider: Name, Category: category, Subject: it.ProviderTxnID, OrderNo: it.OrderNo,
		SellerID: it.SellerID, Currency: string(it.Currency), Ours: ours, Theirs: theirs, OursState: it.State,
		TheirsState: theirsState, Detail: detail}
}

// expectedRow is a known timing gap about an item.
func expectedRow(it pipeline.RefundedItem, ours, theirs, theirsState, detail string) pipeline.Mismatch {
	m := row(it, pipeline.MismatchTiming, ours, theirs, theirsState, detail)
	m.Expected = true
	return m
}

// latestID is the id of o's latest refund, "" when it has none.
func latestID(o Order) string {
	if o.Refund == nil {
		return ""
	}
	return o.Refund.ID
}
