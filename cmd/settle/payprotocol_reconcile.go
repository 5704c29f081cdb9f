package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// payProtocolMatcher returns the reconciliation of a run's Pay Protocol
// orders with Pay Protocol over the configured client (pp, as
// payProtocolFromFlags returns it), asking about parallel orders at a time;
// nil when Pay Protocol is not configured. The client's rate limit is
// shared with the verification.
func payProtocolMatcher(l *ledger.Ledger, pp pipeline.PayProtocol, parallel int) pipeline.Matcher {
	api, ok := pp.(payProtocolAPI)
	if !ok || api.c == nil {
		return nil
	}
	return newPayProtocolMatcher(l, api.c, parallel)
}

// newPayProtocolMatcher is payProtocolMatcher over a given client.
func newPayProtocolMatcher(l *ledger.Ledger, c *payprotocol.Client, parallel int) pipeline.Matcher {
	return pipeline.PayProtocolMatcher(l, payProtocolReconcileAPI{c}, parallel)
}

// payProtocolReconcileAPI adapts the Pay Protocol client to what the
// reconciliation consumes.
type payProtocolReconcileAPI struct{ c *payprotocol.Client }

// Order asks for the payment detail and, for a paid payment, the latest
// refund (by outTradeNo: Pay Protocol lists no refunds, and the platform
// does not keep Pay Protocol's refund ids). A refunded payment needs no
// refund query: all of it went back. Refund amounts are scaled integers of
// the payment's settlement currency (settlementCurrencySymbol), whose
// decimals on the chain come from --payprotocol-decimals (an unknown one
// is reported, never guessed); like package payprotocol's ToMinor, they
// are taken one to one in the quote's fiat currency (a stable coin),
// exactly or not at all.
func (a payProtocolReconcileAPI) Order(ctx context.Context, outTradeNo string) (pipeline.PayProtocolOrder, error) {
	p, err := a.c.PaymentDetail(ctx, outTradeNo, "")
	if errors.Is(err, payprotocol.ErrNotFound) {
		return pipeline.PayProtocolOrder{}, fmt.Errorf("%w: %v", pipeline.ErrNotFound, err)
	}
	if err != nil {
		return pipeline.PayProtocolOrder{}, err
	}
	o := pipeline.PayProtocolOrder{Status: p.Status.String()}
	if o.Quote, err = p.Quote(); err != nil {
		o.Quote, o.QuoteProblem = pipeline.Money{}, err.Error()
	}
	if p.Status != payprotocol.PaymentPaid {
		return o, nil
	}
	r, err := a.c.RefundDetail(ctx, outTradeNo, "")
	if errors.Is(err, payprotocol.ErrNotFound) {
		return o, nil
	}
	if err != nil {
		return pipeline.PayProtocolOrder{}, err
	}
	o.Refund = &pipeline.PayProtocolRefund{ID: r.RefundID, Status: r.Status.String()}
	chain := r.ChainID
	if chain == 0 {
		chain = p.ChainID
	}
	decimals, known := a.c.Decimals(chain, p.SettlementCurrency)
	switch {
	case o.QuoteProblem != "":
		o.Refund.AmountProblem = "the payment's quote currency is not known"
	case r.Amount == nil:
		o.Refund.AmountProblem = "Pay Protocol shows no refundAmount"
	case !known:
		o.Refund.AmountProblem = fmt.Sprintf("the decimals of %q on chain %d are not configured (--%s)", p.SettlementCurrency, chain, flagPPDecimals)
	default:
		if o.Refund.Amount, err = payprotocol.ToMinor(r.Amount.String(), decimals, o.Quote.Currency); err != nil {
			o.Refund.Amount, o.Refund.AmountProblem = 0, err.Error()
		}
	}
	return o, nil
}
