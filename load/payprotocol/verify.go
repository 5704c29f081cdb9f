package payprotocol

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// VerifyAPI is what the verification needs of Pay Protocol's API (Adapter
// over a Client): the order's answer in two steps, so that the latest
// refund is asked only when a refund we net needs it.
type VerifyAPI interface {
	// Payment returns Pay Protocol's word on the payment of our order
	// outTradeNo, its refund not asked (Order.Refund nil);
	// pipeline.ErrNotFound when Pay Protocol does not know the order.
	Payment(ctx context.Context, outTradeNo string) (Order, error)
	// Refund returns the latest refund of the order whose payment Payment
	// returned as o; nil when Pay Protocol knows none.
	Refund(ctx context.Context, outTradeNo string, o Order) (*OrderRefund, error)
}

// VerifyHoldPrefix starts the reason of an item the verification held: a
// later run verifies it again.
const VerifyHoldPrefix = "held: Pay Protocol"

// HeldFailedPayment starts the reason of an item the verification held
// because Pay Protocol answered its payment failed: a later run verifies
// it again (a late payment turns it paid), until a person rejects it for
// good (settle resolve --order --reject).
const HeldFailedPayment = VerifyHoldPrefix + " payment is failed"

// VerifyStore is what the verification needs of the ledger.
type VerifyStore interface {
	// ItemsToVerifyAfter walks the next limit of the run's items of
	// channel ch whose order number comes after `after`, by order number
	// (one page of a keyset pagination), and returns the unverified ones
	// and those an earlier verification held (their reason starts with
	// heldPrefix), by order number; next is where the next page starts,
	// "" when no item follows the walk.
	ItemsToVerifyAfter(ctx context.Context, runID int64, ch pipeline.Channel, heldPrefix, after string, limit int) (
		items []pipeline.VerifyItem, next string, err error)
	SetItemState(ctx context.Context, runID int64, orderNo, from, to, reason string) error
}

// Verify checks every unverified Pay Protocol item of the run against Pay
// Protocol's payment detail, never trusting our own database alone: paid
// in the expected currency and amount, and any refund we net confirmed as
// successful. Verified items are recorded (and the provider that pays Pay
// Protocol's orders files them); a payment still pending, confirming or
// partially paid, a refund we net that Pay Protocol does not show yet or that awaits
// approval, or one that cannot be read against the payment (on another
// chain, of another payment order, in another currency than the
// payment's settlement currency, or with configured decimals that
// disagree with Pay Protocol's currency list), or one above what the
// order nets, holds the item, and every later run of the date verifies
// it again until it is decided; so does a failed payment (it may be paid
// late, on chain: HeldFailedPayment), until it is paid or a person
// rejects it; a refunded or mismatched payment rejects it. A payment
// whose refunds cannot be read because Pay Protocol's currency list of
// their chain could not be (read once per chain, Client.Currencies)
// stays unverified, for the next run of the date (the error is then
// pipeline.ErrStillProcessing), and the others go on. Each verdict is
// recorded at once, so a resumed run asks only about what is left. An answer about one order that
// cannot be used (or a definite refusal of it) holds that order with the
// reason and the others go on; one Pay Protocol does not answer about
// past the client's retries stays unverified, for the next run (the
// error is then transient), and the others go on; only what concerns
// every order (refused credentials, Pay Protocol down: downAfter orders
// in a row unanswered, and through NewProvider the pre-flight's question
// not answered either; the run stopping) stops the verification.
//
// The latest refund is asked only of a payment paid in our amount whose
// order has a refund we net; Verify reads no refund list (NewProvider's
// verification does, and holds an order whose refunds there add up to more
// than it nets: see verify). Once the ledger has an item recorded, what
// the verification found is kept in final for the reconciliation of the
// run (nil final: nothing is kept): when it read the refund and Pay
// Protocol's whole answer is one the matcher would find final and in
// agreement, under the matcher's key (finalKey), and that order is not
// asked again; otherwise, its payment having agreed (paymentAgreed), under
// the payment's key (paymentKey, PaymentAnswersName), and the matcher asks
// that order's latest refund alone.
//
// The questions go out as fast as pacer allows (Pay Protocol's limits; nil:
// no limit), one at a time until Pay Protocol answers one. The items are
// read 10,000 at a time by order number (keyset pagination): the
// verification holds one page, however large the day.
func Verify(ctx context.Context, store VerifyStore, api VerifyAPI, pacer *pipeline.Pacer, final pipeline.FinalAnswers, run *pipeline.Run) (string, error) {
	return verify(ctx, store, api, pacer, final, nil, nil, nil, nil, run)
}

// verify is Verify that also gives held the answers about the payments it
// holds, for the run's own reconciliation (nil: kept nowhere), and asks
// Pay Protocol a question of its own with up (nil: none) before it takes
// downAfter orders in a row unanswered for Pay Protocol down (answers).
//
// With listing, it reads Pay Protocol's refund list once, before it asks
// about the first order (none when there is no order to verify), and
// holds an order whose successful refunds there (and its latest refund)
// add up to more than it nets with its late refunds, or may once a refund
// there still in progress goes through, or one of which cannot be read
// (overListed), and verifies one whose latest refund was turned down but
// whose earlier ones there succeeded, no more than it nets; a list that cannot be read leaves every
// payment not verified yet for the next run of the date (the error is
// pipeline.ErrStillProcessing), as Pay Protocol not answering does. The
// payments it read of the orders the list shows refunds of go to read
// (nil: nowhere), for the run's own reconciliation.
func verify(ctx context.Context, store VerifyStore, api VerifyAPI, pacer *pipeline.Pacer, final pipeline.FinalAnswers, held *heldAnswers, up func(context.Context) error,
	listing *RefundListing, read *paymentsRead, run *pipeline.Run) (string, error) {
	var mu sync.Mutex
	counts := map[string]int{}
	var firstHeld []heldLine // the held orders first by number, for the problem's lines
	if pacer == nil {
		pacer = pipeline.NewPacer(pipeline.Limits{})
	}
	ans := answers{probe: up}
	kept := map[string]*keptAnswers{Name: {final: final, name: Name}, PaymentAnswersName: {final: final, name: PaymentAnswersName}}
	progress := pipeline.ProgressFrom(ctx) // the stage's first phase: the payments verified
	progress.Restart(0)
	var list refundsShown // what the refund list shows (none without listing)
	var left struct {     // the orders left unverified for want of the currency list
		n          int
		order, why string // the first by number, and why
	}
	check := func(it pipeline.VerifyItem) error {
		defer progress.Add(1)
		to, reason, v, err := verdict(ctx, api, list, it.Split, it.LateRefunded)
		var unread *currenciesUnreadError
		if errors.As(err, &unread) {
			// Pay Protocol answered, but its currency list could not be
			// read: whether this order's refunds are in its payment's
			// currency cannot be told. It stays unverified, for the next
			// run of its date; the orders without refunds go on.
			ans.answered()
			mu.Lock()
			if left.n++; left.order == "" || it.OrderNo < left.order {
				left.order, left.why = it.OrderNo, unread.Error()
			}
			mu.Unlock()
			return nil
		}
		if err != nil && pipeline.KindOf(err) != pipeline.KindFailed {
			return err // configuration: says it all, about every order
		}
		if err != nil && pipeline.ConcernsEveryone(ctx, err) {
			err = fmt.Errorf("verify %s with Pay Protocol: %w", it.OrderNo, err)
			if ctx.Err() != nil || !transient(err) {
				return err
			}
			// No answer about this order after its retries: Pay Protocol
			// down, or failing on this order alone. It stays as it is,
			// for the next run; the others are asked until downAfter in
			// a row go unanswered.
			return ans.failed(ctx, err)
		}
		ans.answered()
		if err != nil {
			// An answer about this order we cannot use, or a definite
			// refusal of it: the order waits, with the reason, and is
			// asked about again by the next run; the others go on.
			to, reason = pipeline.ItemHeld, VerifyHoldPrefix+" answer about "+it.ProviderTxnID+" could not be used: "+pipeline.OneLine(err.Error())
		}
		if to == pipeline.ItemRejected && it.State == pipeline.ItemHeld && strings.HasPrefix(reason, unknownPayment) {
			// A payment Pay Protocol reported before (the item held as
			// pending) and does not know now contradicts its own word: held
			// for a person and asked again, not rejected for good on what
			// may be a passing fault (found by an operator's walkthrough).
			to, reason = pipeline.ItemHeld, VerifyHoldPrefix+" "+unknownPayment+it.ProviderTxnID+" any more, which it reported before ("+
				strings.TrimPrefix(it.Reason, VerifyHoldPrefix+" ")+"): ask Pay Protocol"
			if strings.HasPrefix(it.Reason, VerifyHoldPrefix+" "+unknownPayment) {
				// Still not known: the reason an earlier run wrote says
				// what Pay Protocol reported before; it is kept as it is.
				reason = it.Reason
			}
		}
		if err := store.SetItemState(ctx, run.ID, it.OrderNo, it.State, to, reason); err != nil {
			return err
		}
		mu.Lock()
		counts[to]++
		if to == pipeline.ItemHeld {
			firstHeld = keepFirst(firstHeld, heldLine{it.OrderNo, reason})
		}
		mu.Unlock()
		if to == pipeline.ItemHeld && v != nil {
			held.put(run.ID, it.ProviderTxnID, v.Order)
		}
		if v != nil && v.read && list.listed.has(it.ProviderTxnID) {
			read.put(run.ID, it.ProviderTxnID, v.Order)
		}
		if to != pipeline.ItemRecorded || v == nil {
			return nil
		}
		// The ledger has the item recorded now: the answer may be kept.
		name, key := keep(verifiedItem(it.Split), *v)
		if key == "" {
			return nil
		}
		return kept[name].add(ctx, key)
	}
	var (
		err   error
		after string // the last order number read: the next page starts after it
		seen  int64
	)
	for err == nil {
		var items []pipeline.VerifyItem
		if items, after, err = store.ItemsToVerifyAfter(ctx, run.ID, Channel, VerifyHoldPrefix, after, verifyBatch); err != nil {
			break
		}
		if listing != nil && list.listed == nil && len(items) > 0 {
			// Once, and only for a run with payments to verify.
			list.api = listing.API
			if list.listed, err = listing.list(ctx, run); err != nil {
				if ctx.Err() == nil && pipeline.KindOf(err) == pipeline.KindFailed {
					err = fmt.Errorf("%w: Pay Protocol's refund list could not be read, so its payments not verified yet wait for the next run of this date (the other orders went on): %w",
						pipeline.ErrStillProcessing, err)
				}
				break
			}
		}
		seen += int64(len(items))
		progress.SetTotal(seen)
		// One at a time until Pay Protocol answers one (it may fail on
		// the first order alone), then the others at the pacer's rate.
		i := 0
		for ; err == nil && i < len(items) && !ans.isUp(); i++ {
			err = pipeline.EachFirstAlonePaced(ctx, pacer, items[i:i+1], check)
		}
		if err == nil {
			err = pipeline.EachFirstAlonePaced(ctx, pacer, items[i:], check)
		}
		if after == "" {
			break
		}
	}
	for _, name := range []string{Name, PaymentAnswersName} {
		if ferr := kept[name].flush(ctx); err == nil {
			err = ferr
		}
	}
	summary := fmt.Sprintf("Pay Protocol: %d payments verified, %d held, %d rejected", counts[pipeline.ItemRecorded], counts[pipeline.ItemHeld], counts[pipeline.ItemRejected])
	var unverified []error // what is left unverified for the next run: resumable
	if err == nil && ans.unanswered > 0 {
		// Transient: the caller leaves them for the next run (exit 1)
		// while everything else goes on.
		summary += fmt.Sprintf(", %d not answered", ans.unanswered)
		unverified = append(unverified, fmt.Errorf("no answer from Pay Protocol about %d payments, left unverified for the next run of this date (first: %w)", ans.unanswered, ans.first))
	}
	if err == nil && left.n > 0 {
		// As when the refund list cannot be read, but for the payments
		// with refunds alone: the next run (exit 1), the others went on.
		summary += fmt.Sprintf(", %d with refunds left unverified", left.n)
		unverified = append(unverified, pipeline.E(pipeline.KindFailed, "", fmt.Errorf("%w: Pay Protocol's currency list could not be read, or not for their refunds' currencies, so %d payments with refunds were not verified yet: they wait for the next run of this date (the other orders went on; first: order %s, %s)",
			pipeline.ErrStillProcessing, left.n, left.order, left.why)))
	}
	var resumable error
	switch {
	case err != nil:
	case len(unverified) == 1:
		resumable = unverified[0]
	case len(unverified) > 1:
		resumable = pipeline.E(pipeline.KindFailed, "", errors.Join(unverified...))
	}
	if resumable != nil {
		err = resumable
	}
	stop := pipeline.KindOf(err) == pipeline.KindUsage // our credentials refused, say: exit 2
	if (err == nil || err == resumable || stop) && counts[pipeline.ItemHeld] > 0 {
		// A held payment is verified again only by a run of this date:
		// the run must not end as if all were done.
		n := counts[pipeline.ItemHeld]
		list := make([]string, len(firstHeld))
		for i, h := range firstHeld {
			list[i] = fmt.Sprintf("order %s: %s", h.order, strings.TrimPrefix(h.reason, VerifyHoldPrefix+" "))
		}
		problems := pipeline.E(pipeline.KindNeedsPerson, "", &pipeline.Problems{Total: n,
			Summary: fmt.Sprintf("%d Pay Protocol payments held: only a run of this date verifies them again (run it again once Pay Protocol has settled them)", n),
			List:    list})
		switch {
		case stop:
			// The payments held before the stop go with it
			// (pipeline.WithProblems: said by the runner in the stage's
			// NEEDS A PERSON line, the last line the stop's alone); they
			// were dropped, and only the re-run told them.
			err = pipeline.WithProblems(err, problems)
		case resumable != nil:
			// Resumable (exit 1), and saying what needs a person too.
			err = pipeline.E(pipeline.KindFailed, "", errors.Join(resumable, problems))
		default:
			err = problems
		}
	}
	return summary, err
}

// downAfter is how many orders in a row Pay Protocol may leave without an
// answer (each after the client's retries) before the verification takes
// it for down and stops; fewer concern those orders alone.
const downAfter = 3

// answers tells Pay Protocol down from Pay Protocol failing on a few
// orders: a 5xx or a time-out on one order, every time, stopped the whole
// verification, and on every later run that order came first, asked
// alone, so no payment of the date was verified again (found by a
// review).
type answers struct {
	mu         sync.Mutex
	up         bool  // Pay Protocol answered a question of this verification
	streak     int   // orders in a row left without an answer since its last one
	unanswered int   // orders left without an answer, unverified
	first      error // the first of them
	// probe asks Pay Protocol a question of its own (Client.Preflight),
	// once, when downAfter orders in a row go unanswered: answered, those
	// orders fail alone (the first unverified ones by number failing on
	// every run stopped every run there, found by a review) and the
	// others are asked; nil or not answered, Pay Protocol is down.
	probe  func(context.Context) error
	probed bool
}

func (a *answers) answered() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.up, a.streak = true, 0
}

func (a *answers) isUp() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.up
}

// failed counts an order left without an answer (err); it returns err
// once downAfter orders in a row were and Pay Protocol does not answer
// its probe either (asked once): Pay Protocol is down.
func (a *answers) failed(ctx context.Context, err error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.streak++; a.streak >= downAfter {
		if a.probe == nil || a.probed {
			return err
		}
		a.probed = true
		if a.probe(ctx) != nil {
			return err
		}
		a.up, a.streak = true, 0 // it answers: these orders fail alone
	}
	a.unanswered++
	if a.first == nil {
		a.first = err
	}
	return nil
}

// down returns the first failure when Pay Protocol answered no question
// at all (fewer orders than downAfter, none answered): that says nothing
// about those orders but about Pay Protocol.
func (a *answers) down() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.up {
		return nil
	}
	return a.first
}

// transient reports whether err says the same question may be answered
// later.
func transient(err error) bool {
	var t interface{ Transient() bool }
	return errors.As(err, &t) && t.Transient()
}

// heldLine is a held order and its reason, for the problem's lines.
type heldLine struct{ order, reason string }

// keepFirst adds h to first, the held orders first by number, keeping
// pipeline.ProblemsListed of them: the run's last line names the first
// few held payments, not one (found by an operator's review).
func keepFirst(first []heldLine, h heldLine) []heldLine {
	i, _ := slices.BinarySearchFunc(first, h.order, func(e heldLine, order string) int { return strings.Compare(e.order, order) })
	if i >= pipeline.ProblemsListed {
		return first
	}
	first = slices.Insert(first, i, h)
	if len(first) > pipeline.ProblemsListed {
		first = first[:pipeline.ProblemsListed]
	}
	return first
}

// verifyBatch is how many items the verification reads at a time.
var verifyBatch = 10000

// verifiedItem is a verified item as the reconciliation reads it
// (ReconcileStore) while the order has no late refund: a late refund
// since changes our refunded total, hence its key, and the order is asked
// about again.
func verifiedItem(s pipeline.Split) pipeline.RefundedItem {
	return pipeline.RefundedItem{OrderNo: s.OrderNo, SellerID: s.SellerID, ProviderTxnID: s.ProviderTxnID, Currency: s.Currency,
		Gross: s.Amount, Refunded: s.Refunded, State: pipeline.ItemRecorded}
}

// keep returns under which name (Name or PaymentAnswersName) and key
// the answer o about the verified item it is kept ("" key: not at all).
// The whole answer is kept when its refund was read (a refund we net) and
// the matcher would find it final and in agreement; else the payment's,
// when it agrees.
func keep(it pipeline.RefundedItem, o verified) (name, key string) {
	switch {
	case o.refundRead && finalAndAgreed(Match(it, o.Order), o.Order):
		return Name, finalKey(it)
	case paymentAgreed(it, o.Order):
		return PaymentAnswersName, paymentKey(it)
	}
	return "", ""
}

// verified is Pay Protocol's answer about a verified order, and whether its
// latest refund was asked (only then does a nil Order.Refund say that Pay
// Protocol knows none).
type verified struct {
	Order
	refundRead bool
}

// keepBatch is how many final answers the verification records at once.
const keepBatch = 1000

// keptAnswers collects the final answers the verification found and
// records them in batches of keepBatch.
type keptAnswers struct {
	final pipeline.FinalAnswers
	name  string // the name they are kept under
	mu    sync.Mutex
	keys  []string
}

// add keeps key, recording the batch once it is full.
func (k *keptAnswers) add(ctx context.Context, key string) error {
	if k.final == nil {
		return nil
	}
	k.mu.Lock()
	k.keys = append(k.keys, key)
	var full []string
	if len(k.keys) >= keepBatch {
		full, k.keys = k.keys, nil
	}
	k.mu.Unlock()
	return k.record(ctx, full)
}

// flush records what is kept.
func (k *keptAnswers) flush(ctx context.Context) error {
	k.mu.Lock()
	keys := k.keys
	k.keys = nil
	k.mu.Unlock()
	return k.record(ctx, keys)
}

func (k *keptAnswers) record(ctx context.Context, keys []string) error {
	if len(keys) == 0 || k.final == nil {
		return nil
	}
	if err := k.final.RecordFinal(ctx, k.name, keys); err != nil {
		return fmt.Errorf("record the final Pay Protocol answers of the verification: %w", err)
	}
	return nil
}

// unknownPayment begins the reason of an item whose payment Pay Protocol
// does not know.
const unknownPayment = "Pay Protocol does not know payment "

// verdict is what the verification decides of one item, with Pay
// Protocol's answer about its order when the payment was verified or held
// for a payment or a refund still under way, or a payment failed (nil
// otherwise): the answer
// Adapter.Order gives, the refund read when the payment is paid. late is
// what the order's late refunds in the ledger add up to
// (pipeline.VerifyItem.LateRefunded).
func verdict(ctx context.Context, api VerifyAPI, list refundsShown, it pipeline.Split, late int64) (state, reason string, a *verified, err error) {
	o, err := api.Payment(ctx, it.ProviderTxnID)
	if pipeline.IsNotFound(err) {
		return pipeline.ItemRejected, unknownPayment + it.ProviderTxnID, nil, nil
	}
	if err != nil {
		return "", "", nil, err
	}
	switch o.Status {
	case PaymentPaid.String():
	case PaymentPending.String(), PaymentBlockConfirmation.String(), PaymentPartiallyPaid.String():
		return pipeline.ItemHeld, VerifyHoldPrefix + " payment is " + o.Status, &verified{Order: o}, nil
	case PaymentFailed.String():
		// The platform released the order's escrow, so it believes the
		// buyer paid, and a failed payment can still be paid late, on
		// chain: Pay Protocol then answers paid (its own WooCommerce
		// plugin reopens an order it cancelled as failed when a later
		// answer says paid). Held, verified again by every run of its
		// date and settled once paid; a person rejects it for good when
		// the payment will never arrive (settle resolve --order
		// --reject). Rejected, as it was, its seller was never paid for it.
		return pipeline.ItemHeld, HeldFailedPayment + ": verified again by every run of its date until it is paid; if it never will be, settle resolve --order --reject",
			&verified{Order: o}, nil
	case PaymentRefunded.String():
		// All of it went back to the buyer. That agrees with an order the
		// platform refunded whole before it settled (its seller's share
		// is 0), as the matcher finds (Match): such an order was not
		// refused by Pay Protocol. Any other refunded payment is.
		if o.QuoteProblem == "" && o.Quote.Currency == it.Currency && o.Quote.Minor == it.Amount && it.Refunded == it.Amount {
			return pipeline.ItemRecorded, "", &verified{Order: o, refundRead: true}, nil
		}
		if o.QuoteProblem == "" && o.Quote.Currency == it.Currency && o.Quote.Minor == it.Amount && late > 0 && it.Refunded+late == it.Amount {
			// The order nets part of it and the platform recorded the
			// rest since, as late refunds (clawed back from the seller
			// once the order is paid): the matcher, counting them, agrees,
			// as it does for a refund above what the order nets that its
			// late refunds make up.
			return pipeline.ItemRecorded, "", &verified{Order: o}, nil
		}
		return pipeline.ItemRejected, "Pay Protocol payment is " + o.Status, nil, nil
	default:
		return pipeline.ItemRejected, "Pay Protocol payment is " + o.Status, nil, nil
	}
	if o.QuoteProblem != "" {
		// Paid, but not in an amount we can compare exactly: not verified.
		return pipeline.ItemRejected, "Pay Protocol payment is paid in an amount that cannot be checked (" + o.QuoteProblem + ")", nil, nil
	}
	if o.Quote.Currency != it.Currency || o.Quote.Minor != it.Amount {
		return pipeline.ItemRejected, fmt.Sprintf("Pay Protocol says %s was paid, the order says %s", o.Quote, pipeline.Money{Minor: it.Amount, Currency: it.Currency}), nil, nil
	}
	var shown, coming []OrderRefund
	if list.listed != nil {
		if shown, err = list.listed.read(ctx, list.api, it.ProviderTxnID, o); err != nil {
			return "", "", nil, err
		}
		if coming, err = list.listed.pending(ctx, list.api, it.ProviderTxnID, o); err != nil {
			return "", "", nil, err
		}
		o.Listed, o.listed, o.listedFrom = shown, true, list.listed.from
	}
	if err := currenciesUnread(shown, coming); err != nil {
		return "", "", nil, err
	}
	if it.Refunded == 0 {
		// The verdict needs no latest refund: none is asked (the
		// reconciliation asks it). A refund the list shows that the
		// platform does not count (made on Pay Protocol's console),
		// successful or in progress, holds the order.
		if hold := overListed(it, late, shown, coming, nil); hold != "" {
			return pipeline.ItemHeld, hold, &verified{Order: o}, nil
		}
		return pipeline.ItemRecorded, "", &verified{Order: o}, nil
	}
	r, err := api.Refund(ctx, it.ProviderTxnID, o)
	if err != nil {
		return "", "", nil, err
	}
	if r != nil {
		if err := currenciesUnread([]OrderRefund{*r}); err != nil {
			return "", "", nil, err
		}
	}
	o.Refund = r
	if hold := overListed(it, late, shown, coming, r); hold != "" {
		return pipeline.ItemHeld, hold, &verified{Order: o, refundRead: true}, nil
	}
	switch {
	case r == nil:
		// Nothing returned to the buyer yet: the platform recorded the
		// refund before its refund order reached Pay Protocol (created
		// later, approved by a person on its console). Held, never paid
		// on, verified again by every run of its date and settled once
		// Pay Protocol shows the refund; rejected, its seller lost the
		// order for good over a refund a few minutes early, while a
		// latest refund of any smaller amount is taken.
		return pipeline.ItemHeld, VerifyHoldPrefix + " knows no refund of the order, the " + netted(it, late) + ": verified again once Pay Protocol shows it (its refund order created, approved)",
			&verified{Order: o, refundRead: true}, nil
	case r.Status == RefundSuccess.String() && r.AmountProblem != "" && r.Unconfigured:
		// Settle's configuration, not the payment: held, verified again by
		// every run of its date, paid once --payprotocol-decimals agrees
		// with Pay Protocol's currency list. Rejected, its seller lost the
		// order for good over a setting (found by a review of the
		// deployment, whose ConfigMap left --payprotocol-decimals out,
		// when they came from it alone).
		return pipeline.ItemHeld, VerifyHoldPrefix + " refund " + r.ID + " is in an amount settle cannot read (" + r.AmountProblem + "): configure them, then run the date again",
			&verified{Order: o, refundRead: true}, nil
	case r.Status == RefundSuccess.String() && r.AmountProblem != "" && r.Elsewhere:
		// Pay Protocol's answer, not the payment, is what cannot be read:
		// held, never paid on, and verified again by every run of its date
		// (a later refund of the payment becomes the latest); rejected, its
		// seller lost the order for good over a refund settle cannot read.
		return pipeline.ItemHeld, VerifyHoldPrefix + " refund " + r.ID + " cannot be read against the payment (" + r.AmountProblem + "): ask Pay Protocol what it returned",
			&verified{Order: o, refundRead: true}, nil
	case r.Status == RefundSuccess.String() && r.AmountProblem != "" && r.Inexact && r.Amount > it.Refunded+late:
		// No whole number of minor units (its amount changed when it was
		// approved, a network fee taken off), and more than the order
		// nets (its next whole minor unit is above it): held as any such
		// refund is.
		return pipeline.ItemHeld, fmt.Sprintf("%s refund %s returned more than the %s (%s): verified again once the platform records the refund",
			VerifyHoldPrefix, r.ID, netted(it, late), r.AmountProblem), &verified{Order: o, refundRead: true}, nil
	case r.Status == RefundSuccess.String() && r.AmountProblem != "" && r.Inexact:
		// Rounded up to the next minor unit, it is still no more than
		// the order nets (and its late refunds): the platform holds at
		// least what it pays, as for any latest refund below what the
		// order nets, and the reconciliation reports the difference.
		// Rejected, its seller lost the order for good over a refund of
		// 0.965432 USDT where the order nets 1.00 USD.
		return pipeline.ItemRecorded, "", &verified{Order: o, refundRead: true}, nil
	case r.Status == RefundSuccess.String() && r.AmountProblem != "":
		return pipeline.ItemRejected, "Pay Protocol refund " + r.ID + " is in an amount that cannot be checked (" + r.AmountProblem + ")", nil, nil
	case r.Status == RefundSuccess.String() && r.Amount > it.Refunded+late:
		// The seller's share would be paid out of money the platform no
		// longer holds: not verified. Held, not rejected: the platform may
		// record the refund since, late (a later date's late refunds
		// read it), and the order is verified again by every run of its
		// date; rejected, the seller lost the rest of the order for good
		// (found by a review). A latest refund smaller than what the
		// order nets is taken: the refund detail shows no earlier refund
		// of the order (the refund list, when read, added them up in
		// overListed), and the platform then holds more than it pays (the
		// reconciliation compares).
		return pipeline.ItemHeld, fmt.Sprintf("%s refund %s returned %s, more than the %s: verified again once the platform records the refund",
			VerifyHoldPrefix, r.ID, pipeline.Money{Minor: r.Amount, Currency: o.Quote.Currency}, netted(it, late)), &verified{Order: o, refundRead: true}, nil
	case r.Status == RefundSuccess.String() && r.Amount > it.Refunded:
		// Larger than the order nets, but the platform recorded the rest
		// since, as late refunds: verified; they are clawed back from the
		// seller once the order is paid.
		return pipeline.ItemRecorded, "", &verified{Order: o}, nil
	case r.Status == RefundSuccess.String():
		return pipeline.ItemRecorded, "", &verified{Order: o, refundRead: true}, nil
	case refundInProgress(r.Status):
		return pipeline.ItemHeld, VerifyHoldPrefix + " refund is " + r.Status, &verified{Order: o, refundRead: true}, nil
	case slices.ContainsFunc(shown, func(x OrderRefund) bool { return x.ID != r.ID && x.Status == RefundSuccess.String() }):
		// The latest refund failed or was turned down (a refund made
		// twice, the second rejected by its approver), and the refund
		// list shows earlier ones successful, adding up to no more than
		// the order nets (overListed): verified, as a latest refund of
		// that sum would be. Rejected, its seller lost the order for good
		// over the duplicate its approver caught.
		return pipeline.ItemRecorded, "", &verified{Order: o, refundRead: true}, nil
	default:
		return pipeline.ItemRejected, "Pay Protocol refund is " + r.Status + ": the order's refund cannot be netted", nil, nil
	}
}

// currenciesUnreadError is verdict's error about an order one of whose
// refunds could not be read for want of Pay Protocol's currency list
// (OrderRefund.CurrenciesUnread): the order stays unverified, for the
// next run of its date, as when the refund list cannot be read.
type currenciesUnreadError struct{ refund, problem string }

func (e *currenciesUnreadError) Error() string { return "refund " + e.refund + ": " + e.problem }

// currenciesUnread returns a *currenciesUnreadError for the first of
// lists' refunds that could not be read for want of the currency list,
// nil when none.
func currenciesUnread(lists ...[]OrderRefund) error {
	for _, l := range lists {
		for _, x := range l {
			if x.CurrenciesUnread {
				return &currenciesUnreadError{refund: x.ID, problem: x.AmountProblem}
			}
		}
	}
	return nil
}

// refundsShown is what a verification's refund list showed (listed nil:
// none was read), with the API that reads its refunds against a payment.
type refundsShown struct {
	listed *listedRefunds
	api    RefundLister
}

// overListed is why the verification holds item it, which nets
// it.Refunded and whose late refunds add up to late, for the refunds the
// refund list shows of it, successful (shown) and in progress (coming),
// with its latest refund r (nil: not asked, or none): "" when it does
// not. Only refunds other than r count here; r alone is judged by verdict.
// With any, every successful one, r too, is added up (one whose amount is
// no whole number of minor units at the next one above it, as verdict
// bounds r): above what the order nets with its late refunds, the
// seller's share would be paid out of money the platform no longer holds,
// and one that cannot be read leaves the sum unknown. Then each refund in
// progress is added as what it may yet return: above what the order nets,
// or of an amount Pay Protocol does not show, the order is held too (its
// approver may let it through once the seller is paid; a refund in
// progress that is the latest holds the order by itself, in verdict).
// Held, the order is verified again by every run of its date, until the
// platform records the refund (a late refund), the refund fails, or a
// person sees to it.
func overListed(it pipeline.Split, late int64, shown, coming []OrderRefund, r *OrderRefund) string {
	var all, pending []OrderRefund
	for _, l := range shown {
		if r == nil || l.ID != r.ID {
			all = append(all, l)
		}
	}
	for _, l := range coming {
		if r == nil || l.ID != r.ID {
			pending = append(pending, l)
		}
	}
	if len(all) == 0 && len(pending) == 0 {
		return ""
	}
	if r != nil && r.Status == RefundSuccess.String() {
		if r.AmountProblem != "" && !r.Inexact {
			return "" // verdict holds or rejects it for that
		}
		all = append(all, *r)
	}
	var sum int64
	for _, x := range all {
		if x.AmountProblem != "" && !x.Inexact {
			return fmt.Sprintf("%s refund %s of the order cannot be read (%s): verified again by every run of its date", VerifyHoldPrefix, x.ID, x.AmountProblem)
		}
		var err error
		if sum, err = pipeline.Add(sum, x.Amount); err != nil {
			return fmt.Sprintf("%s %s of the order cannot be added up (%v): verified again by every run of its date", VerifyHoldPrefix, refundsNamed(all), err)
		}
	}
	if sum > it.Refunded+late {
		return fmt.Sprintf("%s %s returned %s, more than the %s: verified again once the platform records the refund",
			VerifyHoldPrefix, refundsNamed(all), pipeline.Money{Minor: sum, Currency: it.Currency}, netted(it, late))
	}
	for _, x := range pending {
		if x.AmountProblem != "" && !x.Inexact {
			return fmt.Sprintf("%s refund %s of the order is %s at Pay Protocol, of an amount that cannot be read (%s): verified again once it is final",
				VerifyHoldPrefix, x.ID, x.Status, x.AmountProblem)
		}
		var err error
		if sum, err = pipeline.Add(sum, x.Amount); err != nil {
			return fmt.Sprintf("%s refund %s of the order, %s, cannot be added up (%v): verified again by every run of its date", VerifyHoldPrefix, x.ID, x.Status, err)
		}
		if sum > it.Refunded+late {
			return fmt.Sprintf("%s refund %s of the order is %s at Pay Protocol: with it, the order's refunds may return %s, more than the %s: verified again once it is final",
				VerifyHoldPrefix, x.ID, x.Status, pipeline.Money{Minor: sum, Currency: it.Currency}, netted(it, late))
		}
	}
	return ""
}

// netted says what item it nets, with late, what its late refunds add up
// to: "1.00 USD the order nets and the 7.50 USD of its late refunds".
func netted(it pipeline.Split, late int64) string {
	known := pipeline.Money{Minor: it.Refunded, Currency: it.Currency}.String() + " the order nets"
	if late > 0 {
		known += fmt.Sprintf(" and the %s of its late refunds", pipeline.Money{Minor: late, Currency: it.Currency})
	}
	return known
}

// paymentsRead keeps, for the run's own reconciliation, the payments the
// verification read of the orders whose refunds the refund list showed
// (their refunds and listing left out: the matcher reads its own): of
// such an order whose answer is kept as final, the matcher reads the
// refunds it lists against this payment rather than ask its detail again
// (a paid payment's chain, payment order, settlement currency and rate do
// not change). It holds at most paymentsReadMax, the first the
// verification met; each is taken once. nil keeps nothing.
type paymentsRead struct {
	mu     sync.Mutex
	orders map[heldKey]Order
}

// paymentsReadMax bounds paymentsRead: some 3 MB. A variable for the
// tests.
var paymentsReadMax = 20_000

func (p *paymentsRead) put(run int64, txn string, o Order) {
	if p == nil {
		return
	}
	o.Refund, o.Listed, o.listed, o.listedFrom = nil, nil, false, time.Time{}
	p.mu.Lock()
	defer p.mu.Unlock()
	k := heldKey{run, txn}
	if _, kept := p.orders[k]; !kept && len(p.orders) >= paymentsReadMax {
		return
	}
	if p.orders == nil {
		p.orders = map[heldKey]Order{}
	}
	p.orders[k] = o
}

// take returns, and forgets, the payment kept of order txn of run.
func (p *paymentsRead) take(run int64, txn string) (Order, bool) {
	if p == nil {
		return Order{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	k := heldKey{run, txn}
	o, ok := p.orders[k]
	delete(p.orders, k)
	return o, ok
}

// heldAnswers keeps, for the run's own reconciliation, what the
// verification was told about the payments it held (a payment or a refund
// still under way): the matcher reports such an item's timing gap from
// that answer, minutes old, rather than ask Pay Protocol the same question
// again. Only the items of the run verified in this process, still held;
// a recheck from a later date and --reconcile-all ask. It holds at most
// heldAnswersMax answers (the first the verification met): the matcher
// asks about the rest, so a day with many payments under way costs a few
// more queries, not memory that grows with the day. Each answer is taken
// once. nil keeps nothing.
type heldAnswers struct {
	mu     sync.Mutex
	orders map[heldKey]Order
}

// heldAnswersMax bounds heldAnswers: about 1 MB of answers, kept from the
// verification to the end of distribute. A day of 1,000,000 orders in
// the benchmark holds some 18,000 payments: the matcher asks about 13,000
// of them at Pay Protocol's rate, side by side with WeChat's matcher. A
// variable for the tests.
var heldAnswersMax = 5_000

type heldKey struct {
	run int64
	txn string
}

func (h *heldAnswers) put(run int64, txn string, o Order) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	k := heldKey{run, txn}
	if _, kept := h.orders[k]; !kept && len(h.orders) >= heldAnswersMax {
		return // the matcher asks about this one
	}
	if h.orders == nil {
		h.orders = map[heldKey]Order{}
	}
	h.orders[k] = o // a newer answer replaces the one kept
}

// take returns, and forgets, the answer about the held item it of run.
func (h *heldAnswers) take(run int64, it pipeline.RefundedItem) (Order, bool) {
	if h == nil || it.State != pipeline.ItemHeld {
		return Order{}, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	k := heldKey{run, it.ProviderTxnID}
	o, ok := h.orders[k]
	delete(h.orders, k)
	return o, ok
}
