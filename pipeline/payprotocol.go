package pipeline

import (
	"context"
	"fmt"
	"sync"
)

// Pay Protocol payment and refund statuses, as the verification sees them.
const (
	PaymentPaid              = "paid"
	PaymentPending           = "pending"
	PaymentBlockConfirmation = "block confirmation"
	PaymentPartiallyPaid     = "partially paid"
	PaymentFailed            = "failed"
	PaymentRefunded          = "refunded"

	RefundSuccess = "success"
	RefundNone    = "none" // Pay Protocol knows no refund of the order
)

// PayProtocol is what the verification needs of Pay Protocol's API.
type PayProtocol interface {
	// Payment returns the payment's status and its fiat quote (the amount
	// and currency the buyer was asked to pay); ErrNotFound when Pay
	// Protocol does not know the order.
	Payment(ctx context.Context, outTradeNo string) (status string, quote Money, err error)
	// LatestRefund returns the status of the order's latest refund, or
	// RefundNone.
	LatestRefund(ctx context.Context, outTradeNo string) (status string, err error)
}

// VerifyHoldPrefix starts the reason of an item the verification held: a
// later run verifies it again.
const VerifyHoldPrefix = "held: Pay Protocol"

// VerifyItem is a Pay Protocol item to verify, in its current state.
type VerifyItem struct {
	Split
	State  string
	Reason string
}

// VerifyStore is what the verification needs of the ledger.
type VerifyStore interface {
	// ItemsToVerify returns the run's unverified Pay Protocol items and
	// those an earlier verification held.
	ItemsToVerify(ctx context.Context, runID int64) ([]VerifyItem, error)
	SetItemState(ctx context.Context, runID int64, orderNo, from, to, reason string) error
}

// VerifyPayProtocol checks every unverified Pay Protocol item of the run
// against the provider's payment detail, never trusting our own database
// alone: paid in the expected currency and amount, and any refund we net
// confirmed as successful. Verified items are recorded (and settle like an
// Infinia order); a payment still pending, confirming or partially paid, or
// a refund awaiting approval, holds the item, and every later run of the
// date verifies it again until it is decided; a failed, refunded or
// mismatched payment rejects it. Each verdict is recorded at once, so a
// resumed run asks only about what is left. An answer about one order that
// cannot be used (or a definite refusal of it) holds that order with the
// reason and the others go on; only what concerns every order (refused
// credentials, Pay Protocol down past its retries, the run stopping)
// stops the verification.
//
// The questions go out as fast as pacer allows (Pay Protocol's limits; nil:
// no limit), after the first alone.
func VerifyPayProtocol(ctx context.Context, store VerifyStore, api PayProtocol, pacer *Pacer, run *Run) (string, error) {
	items, err := store.ItemsToVerify(ctx, run.ID)
	if err != nil {
		return "", err
	}
	var mu sync.Mutex
	counts := map[string]int{}
	err = EachFirstAlonePaced(ctx, pacerOr(pacer), items, func(it VerifyItem) error {
		to, reason, err := verdict(ctx, api, it.Split)
		if err != nil && KindOf(err) != KindFailed {
			return err // configuration: says it all, about every order
		}
		if err != nil && ConcernsEveryone(ctx, err) {
			return fmt.Errorf("verify %s with Pay Protocol: %w", it.OrderNo, err)
		}
		if err != nil {
			// An answer about this order we cannot use, or a definite
			// refusal of it: the order waits, with the reason, and is
			// asked about again by the next run; the others go on.
			to, reason = ItemHeld, VerifyHoldPrefix+" answer about "+it.ProviderTxnID+" could not be used: "+OneLine(err.Error())
		}
		if err := store.SetItemState(ctx, run.ID, it.OrderNo, it.State, to, reason); err != nil {
			return err
		}
		mu.Lock()
		counts[to]++
		mu.Unlock()
		return nil
	})
	summary := fmt.Sprintf("Pay Protocol: %d payments verified, %d held, %d rejected", counts[ItemRecorded], counts[ItemHeld], counts[ItemRejected])
	return summary, err
}

func verdict(ctx context.Context, api PayProtocol, it Split) (state, reason string, err error) {
	status, quote, err := api.Payment(ctx, it.ProviderTxnID)
	if IsNotFound(err) {
		return ItemRejected, "Pay Protocol does not know payment " + it.ProviderTxnID, nil
	}
	if err != nil {
		return "", "", err
	}
	switch status {
	case PaymentPaid:
	case PaymentPending, PaymentBlockConfirmation, PaymentPartiallyPaid:
		return ItemHeld, VerifyHoldPrefix + " payment is " + status, nil
	default:
		return ItemRejected, "Pay Protocol payment is " + status, nil
	}
	if quote.Currency != it.Currency || quote.Minor != it.Amount {
		return ItemRejected, fmt.Sprintf("Pay Protocol says %s was paid, the order says %s", quote, Money{it.Amount, it.Currency}), nil
	}
	if it.Refunded == 0 {
		return ItemRecorded, "", nil
	}
	rs, err := api.LatestRefund(ctx, it.ProviderTxnID)
	if err != nil {
		return "", "", err
	}
	switch rs {
	case RefundSuccess:
		return ItemRecorded, "", nil
	case RefundNone:
		return ItemRejected, "the order shows a refund Pay Protocol does not know", nil
	case "pending approval", "under review", "block confirmation":
		return ItemHeld, VerifyHoldPrefix + " refund is " + rs, nil
	default:
		return ItemRejected, "Pay Protocol refund is " + rs + ": the order's refund cannot be netted", nil
	}
}
