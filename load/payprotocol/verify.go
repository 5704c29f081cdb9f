package payprotocol

import (
	"context"
	"fmt"
	"sync"

	"github.com/settlekit/settle/pipeline"
)

// VerifyAPI is what the verification needs of Pay Protocol's API (Adapter
// over a Client).
type VerifyAPI interface {
	// Payment returns the payment's status (PaymentStatus.String, or why a
	// paid payment cannot be checked) and its fiat quote (the amount and
	// currency the buyer was asked to pay); pipeline.ErrNotFound when Pay
	// Protocol does not know the order.
	Payment(ctx context.Context, outTradeNo string) (status string, quote pipeline.Money, err error)
	// LatestRefund returns the status of the order's latest refund
	// (RefundStatus.String), or RefundNone.
	LatestRefund(ctx context.Context, outTradeNo string) (status string, err error)
}

// RefundNone is LatestRefund's answer when Pay Protocol knows no refund of
// the order.
const RefundNone = "none"

// VerifyHoldPrefix starts the reason of an item the verification held: a
// later run verifies it again.
const VerifyHoldPrefix = "held: Pay Protocol"

// VerifyStore is what the verification needs of the ledger.
type VerifyStore interface {
	// ItemsToVerify returns the run's unverified items of channel ch and
	// those an earlier verification held (their reason starts with
	// heldPrefix).
	ItemsToVerify(ctx context.Context, runID int64, ch pipeline.Channel, heldPrefix string) ([]pipeline.VerifyItem, error)
	SetItemState(ctx context.Context, runID int64, orderNo, from, to, reason string) error
}

// Verify checks every unverified Pay Protocol item of the run against Pay
// Protocol's payment detail, never trusting our own database alone: paid
// in the expected currency and amount, and any refund we net confirmed as
// successful. Verified items are recorded (and the provider that pays Pay
// Protocol's orders files them); a payment still pending, confirming or
// partially paid, or a refund awaiting approval, holds the item, and every
// later run of the date verifies it again until it is decided; a failed, refunded or
// mismatched payment rejects it. Each verdict is recorded at once, so a
// resumed run asks only about what is left. An answer about one order that
// cannot be used (or a definite refusal of it) holds that order with the
// reason and the others go on; only what concerns every order (refused
// credentials, Pay Protocol down past its retries, the run stopping)
// stops the verification.
//
// The questions go out as fast as pacer allows (Pay Protocol's limits; nil:
// no limit), after the first alone.
func Verify(ctx context.Context, store VerifyStore, api VerifyAPI, pacer *pipeline.Pacer, run *pipeline.Run) (string, error) {
	items, err := store.ItemsToVerify(ctx, run.ID, Channel, VerifyHoldPrefix)
	if err != nil {
		return "", err
	}
	var mu sync.Mutex
	counts := map[string]int{}
	if pacer == nil {
		pacer = pipeline.NewPacer(pipeline.Limits{})
	}
	err = pipeline.EachFirstAlonePaced(ctx, pacer, items, func(it pipeline.VerifyItem) error {
		to, reason, err := verdict(ctx, api, it.Split)
		if err != nil && pipeline.KindOf(err) != pipeline.KindFailed {
			return err // configuration: says it all, about every order
		}
		if err != nil && pipeline.ConcernsEveryone(ctx, err) {
			return fmt.Errorf("verify %s with Pay Protocol: %w", it.OrderNo, err)
		}
		if err != nil {
			// An answer about this order we cannot use, or a definite
			// refusal of it: the order waits, with the reason, and is
			// asked about again by the next run; the others go on.
			to, reason = pipeline.ItemHeld, VerifyHoldPrefix+" answer about "+it.ProviderTxnID+" could not be used: "+pipeline.OneLine(err.Error())
		}
		if err := store.SetItemState(ctx, run.ID, it.OrderNo, it.State, to, reason); err != nil {
			return err
		}
		mu.Lock()
		counts[to]++
		mu.Unlock()
		return nil
	})
	summary := fmt.Sprintf("Pay Protocol: %d payments verified, %d held, %d rejected", counts[pipeline.ItemRecorded], counts[pipeline.ItemHeld], counts[pipeline.ItemRejected])
	return summary, err
}

func verdict(ctx context.Context, api VerifyAPI, it pipeline.Split) (state, reason string, err error) {
	status, quote, err := api.Payment(ctx, it.ProviderTxnID)
	if pipeline.IsNotFound(err) {
		return pipeline.ItemRejected, "Pay Protocol does not know payment " + it.ProviderTxnID, nil
	}
	if err != nil {
		return "", "", err
	}
	switch status {
	case PaymentPaid.String():
	case PaymentPending.String(), PaymentBlockConfirmation.String(), PaymentPartiallyPaid.String():
		return pipeline.ItemHeld, VerifyHoldPrefix + " payment is " + status, nil
	default:
		return pipeline.ItemRejected, "Pay Protocol payment is " + status, nil
	}
	if quote.Currency != it.Currency || quote.Minor != it.Amount {
		return pipeline.ItemRejected, fmt.Sprintf("Pay Protocol says %s was paid, the order says %s", quote, pipeline.Money{Minor: it.Amount, Currency: it.Currency}), nil
	}
	if it.Refunded == 0 {
		return pipeline.ItemRecorded, "", nil
	}
	rs, err := api.LatestRefund(ctx, it.ProviderTxnID)
	if err != nil {
		return "", "", err
	}
	switch rs {
	case RefundSuccess.String():
		return pipeline.ItemRecorded, "", nil
	case RefundNone:
		return pipeline.ItemRejected, "the order shows a refund Pay Protocol does not know", nil
	case RefundPendingApproval.String(), RefundUnderReview.String(), RefundBlockConfirmation.String():
		return pipeline.ItemHeld, VerifyHoldPrefix + " refund is " + rs, nil
	default:
		return pipeline.ItemRejected, "Pay Protocol refund is " + rs + ": the order's refund cannot be netted", nil
	}
}
