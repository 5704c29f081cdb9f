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
	// Pacer keeps to WeChat Pay's limits: the service provider's bucket,
	// and one per sub-merchant (its lanes are sub-merchant ids). nil: no
	// limit but Parallel (or DefaultMaxInFlight) in flight.
	Pacer *Pacer
	// Parallel caps the requests in flight when Pacer is nil (deprecated:
	// the Pacer sizes them).
	Parallel int
	// Wait bounds the wait for final outcomes once the requests are
	// sent (default 10m), for all of them together; FirstPoll is how long after a send it is first asked about
	// (default Poll), Poll between later queries (default 1s).
	Wait, FirstPoll, Poll time.Duration
}

// weChatTxn is one transaction as the stage drives it.
type weChatTxn struct {
	it     Split
	order  WeChatOrder
	before int // sends of its effect before this run
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
// The checks and the requests go out as fast as WeChat Pay's limits allow
// (c.Pacer: per service provider and per sub-merchant), driven by the
// Engine: requests still PROCESSING are asked about in waves until final
// or until c.Wait after the sends is over, when they are left in the ledger to the next
// run (ErrStillProcessing, exit 1).
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
	if c.Wait <= 0 {
		c.Wait = 10 * time.Minute
	}
	if c.Pacer == nil {
		c.Pacer = NewPacer(Limits{MaxInFlight: c.Parallel})
	}
	return func(ctx context.Context, run *Run) (string, error) {
		items, err := c.Store.ItemsInState(ctx, run.ID, Channel("wechatpay"), ItemRecorded)
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
			todo             []Effect
			txns             = map[string]*weChatTxn{} // by effect subject
		)
		hold := func(ctx context.Context, it Split, outcome string) error {
			mu.Lock()
			held++
			if isProblem(outcome) {
				problems = append(problems, fmt.Sprintf("order %s: %s", it.OrderNo, outcome[1:]))
			}
			mu.Unlock()
			return c.Store.SetItemState(ctx, run.ID, it.OrderNo, ItemRecorded, ItemRecorded, "held: "+strings.TrimPrefix(outcome, "!"))
		}
		order := func(it Split) WeChatOrder {
			return WeChatOrder{SubMchID: sellers[it.SellerID].Account("wechatpay"), TransactionID: it.ProviderTxnID, Currency: it.Currency, Commission: it.Commission}
		}
		// Plan: each transaction checked and its request recorded
		// (intent first), paced under WeChat Pay's limits.
		err = c.Pacer.Each(ctx, len(items), func(i int) string { return order(items[i]).SubMchID }, func(ctx context.Context, i int) error {
			it := items[i]
			o := order(it)
			e, outcome, err := planWeChat(ctx, &c, run, it, o)
			if err != nil && weChatSubjectError(err) {
				// WeChat Pay refused this transaction, or answered about it
				// what cannot be read: it is held with the answer; the
				// others go on.
				outcome, err = "!"+weChatRefusal+err.Error(), nil
			}
			if err != nil && KindOf(err) == KindUsage {
				return err // the others would be refused alike: one line, exit 2
			}
			if err != nil {
				progress.Add(1)
				return fmt.Errorf("order %s: %w", it.OrderNo, err)
			}
			if outcome != "" {
				progress.Add(1)
				return hold(ctx, it, outcome)
			}
			mu.Lock()
			todo = append(todo, e)
			txns[e.Subject] = &weChatTxn{it: it, order: o, before: e.Sends}
			mu.Unlock()
			return nil
		})
		if KindOf(err) == KindUsage || ctx.Err() != nil {
			return "", err
		}
		planErr := err
		// Send and resolve: the engine.
		en := &Engine{Store: c.Store, Pacer: c.Pacer, FirstPoll: c.FirstPoll, Poll: c.Poll, Wait: c.Wait,
			Sender: func(e Effect) EffectSender { return weChatSender{api: c.API, order: txns[e.Subject].order} },
			Lane:   func(e Effect) string { return txns[e.Subject].order.SubMchID },
			Final: func(ctx context.Context, e Effect) error {
				defer progress.Add(1)
				t := txns[e.Subject]
				switch e.State {
				case EffectSucceeded:
					mu.Lock()
					paid++
					if e.Sends > t.before {
						sent++
					}
					mu.Unlock()
					return c.Store.SetItemPaid(ctx, run.ID, t.it.OrderNo, e.Key, e.ProviderRef)
				default:
					return hold(ctx, t.it, fmt.Sprintf("!%s %s CLOSED: %s (a re-run tries a new request)", e.Kind, e.Key, e.LastError))
				}
			},
			Error: func(ctx context.Context, e Effect, err error) error {
				t := txns[e.Subject]
				if weChatSubjectError(err) {
					progress.Add(1)
					return hold(ctx, t.it, "!"+weChatRefusal+err.Error())
				}
				if KindOf(err) == KindUsage {
					return err
				}
				return fmt.Errorf("order %s: %w", t.it.OrderNo, err)
			},
		}
		res, err := en.Run(ctx, todo)
		if KindOf(err) == KindUsage {
			return "", err
		}
		if err = errors.Join(planErr, err); err != nil {
			return "", err
		}
		summary := fmt.Sprintf("WeChat: %d transactions settled (%d sent now), %d held", paid, sent, held)
		if len(res.Pending) > 0 {
			return summary, StillProcessing("WeChat transactions", "WeChat Pay", c.Wait, res.Pending)
		}
		return summary, NeedsPerson(problems)
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

// planWeChat returns the transaction's effect to drive - the one in
// flight, or a new attempt planned (intent recorded) once the checks pass
// - or the reason it is held ("!"-prefixed when a person must look).
func planWeChat(ctx context.Context, c *WeChatConfig, run *Run, it Split, o WeChatOrder) (Effect, string, error) {
	kind := KindDistribution
	if o.Commission == 0 {
		kind = KindUnfreeze
	}
	subject := fmt.Sprintf("WX/%s/%s", run.Key.Date.Compact(), it.OrderNo)
	keyFor := func(attempt int) string { return WeChatOutOrderNo(run.Key.Date, it.OrderNo, attempt) }
	e, ok, err := c.Store.LatestEffect(ctx, kind, subject)
	if err != nil || (ok && e.State != EffectFailed) {
		return e, "", err
	}
	if reason, err := checkWeChat(ctx, c, it, o); err != nil || reason != "" {
		return Effect{}, reason, err
	}
	next := Effect{RunID: run.ID, Kind: kind, Subject: subject, Attempt: 1, Key: keyFor(1), Currency: o.Currency, Amount: o.Commission}
	if ok {
		if next, err = NextAttempt(e, c.MaxRequests, keyFor); err != nil {
			return e, "!" + err.Error(), nil
		}
		next.RunID = run.ID
	}
	e, err = c.Store.PlanEffect(ctx, next)
	return e, "", err
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
