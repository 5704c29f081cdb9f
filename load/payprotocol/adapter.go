package payprotocol

import (
	"context"
	"errors"
	"fmt"

	"github.com/settlekit/settle/pipeline"
)

// Adapter adapts the client to what the verification (VerifyAPI) and the
// reconciliation (ReconcileAPI) consume: Pay Protocol's "not found" is
// pipeline.ErrNotFound, statuses are their names.
type Adapter struct{ Client *Client }

// Payment reads the status first: a payment in progress needs nothing
// else. A paid one is checked as Pay Protocol's own plugin checks it, by
// its quote (quoteCurrencySymbol and quoteAmount, compared exactly as a
// number): no crypto amount, hence no decimals, is needed.
func (a Adapter) Payment(ctx context.Context, outTradeNo string) (string, pipeline.Money, error) {
	p, err := a.Client.PaymentDetail(ctx, outTradeNo, "")
	if errors.Is(err, ErrNotFound) {
		return "", pipeline.Money{}, fmt.Errorf("%w: %v", pipeline.ErrNotFound, err)
	}
	if err != nil {
		return "", pipeline.Money{}, err
	}
	if p.Status != PaymentPaid {
		return p.Status.String(), pipeline.Money{}, nil
	}
	quote, err := p.Quote()
	if err != nil {
		// Paid, but not in an amount we can compare exactly: not verified.
		return "paid in an amount that cannot be checked (" + err.Error() + ")", pipeline.Money{}, nil
	}
	return p.Status.String(), quote, nil
}

// LatestRefund returns the status of the order's latest refund, or
// RefundNone.
func (a Adapter) LatestRefund(ctx context.Context, outTradeNo string) (string, error) {
	r, err := a.Client.RefundDetail(ctx, outTradeNo, "")
	if errors.Is(err, ErrNotFound) {
		return RefundNone, nil
	}
	if err != nil {
		return "", err
	}
	return r.Status.String(), nil
}

// Order asks for the payment detail and, for a paid payment, the latest
// refund (by outTradeNo: Pay Protocol lists no refunds, and the platform
// does not keep Pay Protocol's refund ids). A refunded payment needs no
// refund query: all of it went back. Refund amounts are scaled integers of
// the payment's settlement currency (settlementCurrencySymbol), whose
// decimals on the chain come from Config.Decimals (settle's
// --payprotocol-decimals; an unknown one is reported, never guessed); like
// ToMinor, they are taken one to one in the quote's fiat currency (a
// stable coin), exactly or not at all.
func (a Adapter) Order(ctx context.Context, outTradeNo string) (Order, error) {
	p, err := a.Client.PaymentDetail(ctx, outTradeNo, "")
	if errors.Is(err, ErrNotFound) {
		return Order{}, fmt.Errorf("%w: %v", pipeline.ErrNotFound, err)
	}
	if err != nil {
		return Order{}, err
	}
	o := Order{Status: p.Status.String()}
	if o.Quote, err = p.Quote(); err != nil {
		o.Quote, o.QuoteProblem = pipeline.Money{}, err.Error()
	}
	if p.Status != PaymentPaid {
		return o, nil
	}
	r, err := a.Client.RefundDetail(ctx, outTradeNo, "")
	if errors.Is(err, ErrNotFound) {
		return o, nil
	}
	if err != nil {
		return Order{}, err
	}
	o.Refund = &OrderRefund{ID: r.RefundID, Status: r.Status.String()}
	chain := r.ChainID
	if chain == 0 {
		chain = p.ChainID
	}
	decimals, known := a.Client.Decimals(chain, p.SettlementCurrency)
	switch {
	case o.QuoteProblem != "":
		o.Refund.AmountProblem = "the payment's quote currency is not known"
	case r.Amount == nil:
		o.Refund.AmountProblem = "Pay Protocol shows no refundAmount"
	case !known:
		o.Refund.AmountProblem = fmt.Sprintf("the decimals of %q on chain %d are not configured (--payprotocol-decimals)", p.SettlementCurrency, chain)
	default:
		if o.Refund.Amount, err = ToMinor(r.Amount.String(), decimals, o.Quote.Currency); err != nil {
			o.Refund.Amount, o.Refund.AmountProblem = 0, err.Error()
		}
	}
	return o, nil
}
