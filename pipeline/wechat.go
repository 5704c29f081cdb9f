package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// ErrNotReady is what a WeChat adapter wraps when a transaction cannot be
// distributed yet (WeChat Pay needs a few minutes after the payment).
var ErrNotReady = errors.New("not distributable yet")

// Effect kinds of the WeChat stage.
const (
	KindDistribution = "distribution"
	KindUnfreeze     = "unfreeze"
)

// ReceiverEffective is the state of a receiver that can be paid.
const ReceiverEffective = "EFFECTIVE"

// WeChatOrder is what one WeChat payment transaction's settlement moves:
// the commission to the platform's receiver (the rest unfrozen to the
// seller), or, with no commission, a plain unfreeze.
type WeChatOrder struct {
	SubMchID      string
	TransactionID string
	Currency      Currency
	Commission    int64 // minor units; 0: unfreeze
}

// WeChat is what the WeChat stage needs of WeChat Pay Global's
// funds-distribution API.
type WeChat interface {
	// EnsureReceiver returns the state of the platform's receiver at the
	// sub-merchant, adding it first when it is missing.
	EnsureReceiver(ctx context.Context, subMchID string) (state string, err error)
	// Remaining returns what is still frozen for distribution in the
	// transaction (minor units); ErrNotReady when it cannot be distributed yet.
	Remaining(ctx context.Context, subMchID, transactionID string) (int64, error)
	// Send and Query perform and ask about one distribution or unfreeze,
	// keyed by e.Key (out_order_no), as EffectSender does.
	Send(ctx context.Context, e Effect, o WeChatOrder) (Outcome, error)
	Query(ctx context.Context, e Effect, o WeChatOrder) (Outcome, error)
}

// WeChatStore is what the WeChat stage needs of the ledger.
type WeChatStore interface {
	EffectStore
	LatestEffect(ctx context.Context, kind, subject string) (Effect, bool, error)
	RunSellers(ctx context.Context, runID int64) (map[string]Seller, error)
	ItemsInState(ctx context.Context, runID int64, ch Channel, state string) ([]Split, error)
	SetItemPaid(ctx context.Context, runID int64, orderNo, payoutKey, ref string) error
	SetItemState(ctx context.Context, runID int64, orderNo, from, to, reason string) error
}

// WeChatConfig configures the WeChat stage.
type WeChatConfig struct {
	Store       WeChatStore
	API         WeChat
	MaxRatioBps int64 // the most a transaction may send out, in basis points of its amount (default 3000)
	MaxRequests int   // distribution and unfreeze requests per transaction (default 50)
	Parallel    int
	Wait, Poll  time.Duration
}

// DistributeWeChatStage settles each recorded wechatpay item - one payment
// transaction frozen at the seller's sub-merchant - by one funds
// distribution sending the commission to the platform's receiver and
// unfreezing the rest, or by a plain unfreeze when the commission is zero.
// It first makes sure the platform's receiver is EFFECTIVE for the
// sub-merchant (added when missing), that the transaction can be
// distributed and still holds the order's amount, and that the commission
// stays within WeChat's ratio cap; otherwise the item is held, with the
// reason, for a later re-run. Every request is intent first with a
// deterministic out_order_no; a CLOSED one is retried with a new key only
// while the transaction's request limit allows.
//
// What concerns one transaction stays with it: a request WeChat Pay
// definitely refused, or an answer about it that cannot be read, holds that
// transaction with the answer as its reason ("needs a person", exit 4) and
// the others are settled. Refused credentials (pipeline.KindUsage) concern
// every transaction: the stage stops at the first, with that one error.
func DistributeWeChatStage(c WeChatConfig) StageFunc {
	if c.MaxRatioBps <= 0 {
		c.MaxRatioBps = 3000
	}
	if c.MaxRequests <= 0 {
		c.MaxRequests = 50
	}
	ic := InfiniaConfig{Parallel: c.Parallel, Wait: c.Wait, Poll: c.Poll}
	ic.defaults()
	return func(ctx context.Context, run *Run) (string, error) {
		items, err := c.Store.ItemsInState(ctx, run.ID, ChannelWeChatPay, ItemRecorded)
		if err != nil {
			return "", err
		}
		sellers, err := c.Store.RunSellers(ctx, run.ID)
		if err != nil {
			return "", err
		}
		progress := ProgressFrom(ctx)
		progress.Restart(int64(len(items)))
		var (
			mu               sync.Mutex
			paid, sent, held int
			problems         []string
			usage            error // the first configuration error: it concerns every transaction
		)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		count := func(n *int) { mu.Lock(); *n++; mu.Unlock() }
		err = forEach(ctx, ic.Parallel, items, func(it Split) error {
			defer progress.Add(1)
			o := WeChatOrder{SubMchID: sellers[it.SellerID].WeChatSubMchID, TransactionID: it.ProviderTxnID, Currency: it.Currency, Commission: it.Commission}
			outcome, e, err := settleWeChat(ctx, &c, &ic, run, it, o)
			if err != nil && weChatSubjectError(err) {
				// WeChat Pay refused this transaction, or answered about it
				// what cannot be read: it is held with the answer; the
				// others go on.
				outcome, err = "!"+weChatRefusal+err.Error(), nil
			}
			if err != nil && KindOf(err) == KindUsage {
				mu.Lock()
				if usage == nil {
					usage = err
					cancel() // the others would be refused alike: one line, exit 2
				}
				mu.Unlock()
				return nil
			}
			if err != nil {
				return fmt.Errorf("order %s: %w", it.OrderNo, err)
			}
			switch {
			case outcome == "paid":
				count(&paid)
				if e.Sends > 0 {
					count(&sent)
				}
				return c.Store.SetItemPaid(ctx, run.ID, it.OrderNo, e.Key, e.ProviderRef)
			case outcome != "":
				count(&held)
				if err := c.Store.SetItemState(ctx, run.ID, it.OrderNo, ItemRecorded, ItemRecorded, "held: "+strings.TrimPrefix(outcome, "!")); err != nil {
					return err
				}
				if isProblem(outcome) {
					mu.Lock()
					problems = append(problems, fmt.Sprintf("order %s: %s", it.OrderNo, outcome[1:]))
					mu.Unlock()
				}
			}
			return nil
		})
		if usage != nil {
			return "", usage
		}
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("WeChat: %d transactions settled (%d sent now), %d held", paid, sent, held), needsPerson(problems)
	}
}

// weChatRefusal starts the reason of a transaction held for WeChat Pay's
// answer about it (and the reconcile stage's row about it).
const weChatRefusal = "WeChat Pay: "

// weChatSubjectError reports whether err concerns only the transaction it
// came from: WeChat Pay definitely refused a request about it (Refused),
// or answered about it something that cannot be read (Unreadable). A
// configuration error (refused credentials), the ledger, the network or a
// WeChat Pay that does not answer concern every transaction.
func weChatSubjectError(err error) bool {
	if KindOf(err) == KindUsage || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var refused interface{ Refused() bool }
	if errors.As(err, &refused) && refused.Refused() {
		return true
	}
	var unreadable interface{ Unreadable() bool }
	return errors.As(err, &unreadable) && unreadable.Unreadable()
}

// isProblem tells holds that need a person from those that pass by
// themselves (a receiver under review, a payment too recent).
func isProblem(reason string) bool {
	return len(reason) > 0 && reason[0] == '!'
}

// settleWeChat settles one transaction; it returns "paid", or the reason it
// is held ("!"-prefixed when a person must look).
func settleWeChat(ctx context.Context, c *WeChatConfig, ic *InfiniaConfig, run *Run, it Split, o WeChatOrder) (string, Effect, error) {
	kind := KindDistribution
	if o.Commission == 0 {
		kind = KindUnfreeze
	}
	subject := fmt.Sprintf("WX/%s/%s", run.Key.Date.Compact(), it.OrderNo)
	keyFor := func(attempt int) string { return WeChatOutOrderNo(run.Key.Date, it.OrderNo, attempt) }
	sender := weChatSender{api: c.API, order: o}
	e, ok, err := c.Store.LatestEffect(ctx, kind, subject)
	if err != nil {
		return "", e, err
	}
	if !ok || e.State == EffectFailed {
		if reason, err := checkWeChat(ctx, c, it, o); err != nil || reason != "" {
			return reason, Effect{}, err
		}
		next := Effect{RunID: run.ID, Kind: kind, Subject: subject, Attempt: 1, Key: keyFor(1), Currency: o.Currency, Amount: o.Commission}
		if ok {
			if next, err = NextAttempt(e, c.MaxRequests, keyFor); err != nil {
				return "!" + err.Error(), e, nil
			}
			next.RunID = run.ID
		}
		if e, err = c.Store.PlanEffect(ctx, next); err != nil {
			return "", e, err
		}
	}
	before := e.Sends
	e, err = settleEffect(ctx, c.Store, ic.Wait, ic.Poll, sender, e)
	if err != nil {
		return "", e, err
	}
	switch e.State {
	case EffectSucceeded:
		e.Sends -= before
		return "paid", e, nil
	case EffectFailed:
		return fmt.Sprintf("!%s %s CLOSED: %s (a re-run tries a new request)", kind, e.Key, e.LastError), e, nil
	}
	return "", e, fmt.Errorf("%s %s still %s after %s; run again to resume", kind, e.Key, e.State, ic.Wait)
}

// checkWeChat returns why a transaction cannot be settled now, or "".
func checkWeChat(ctx context.Context, c *WeChatConfig, it Split, o WeChatOrder) (string, error) {
	if o.Commission > 0 {
		state, err := c.API.EnsureReceiver(ctx, o.SubMchID)
		if err != nil {
			return "", fmt.Errorf("platform receiver at %s: %w", o.SubMchID, err)
		}
		if state != ReceiverEffective {
			return "the platform's receiver at sub-merchant " + o.SubMchID + " is " + state, nil
		}
	}
	left, err := c.API.Remaining(ctx, o.SubMchID, o.TransactionID)
	if errors.Is(err, ErrNotReady) {
		return "transaction " + o.TransactionID + " is not distributable yet", nil
	}
	if IsNotFound(err) {
		return "!WeChat Pay does not know transaction " + o.TransactionID + " at sub-merchant " + o.SubMchID, nil
	}
	if err != nil {
		return "", fmt.Errorf("remaining amount of %s: %w", o.TransactionID, err)
	}
	if base := it.Amount - it.Refunded; left != base {
		return fmt.Sprintf("!WeChat holds %s for transaction %s, the order says %s", Money{left, o.Currency}, o.TransactionID, Money{base, o.Currency}), nil
	}
	capMinor, err := MulDivHalfEven(it.Amount, c.MaxRatioBps, 10000)
	if err != nil {
		return "", err
	}
	if o.Commission > capMinor {
		return fmt.Sprintf("!commission %s is above WeChat's cap of %d bps of the order (%s)", Money{o.Commission, o.Currency}, c.MaxRatioBps, Money{capMinor, o.Currency}), nil
	}
	return "", nil
}

// weChatSender binds an order to the WeChat API as an EffectSender.
type weChatSender struct {
	api   WeChat
	order WeChatOrder
}

func (s weChatSender) Send(ctx context.Context, e Effect) (Outcome, error) {
	return s.api.Send(ctx, e, s.order)
}

func (s weChatSender) Query(ctx context.Context, e Effect) (Outcome, error) {
	return s.api.Query(ctx, e, s.order)
}
