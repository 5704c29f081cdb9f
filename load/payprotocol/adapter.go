package payprotocol

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/settlekit/settle/pipeline"
)

// Adapter adapts the client to what the verification (VerifyAPI) and the
// reconciliation (ReconcileAPI) consume, both in the shape of an Order:
// Pay Protocol's "not found" is pipeline.ErrNotFound, statuses are their
// names.
type Adapter struct{ Client *Client }

// Payment asks for the payment detail alone: the payment's status and
// its quote, checked as Pay Protocol's own plugin checks it (by
// quoteCurrencySymbol and quoteAmount, compared exactly as a number: no
// crypto amount, hence no decimals, is needed). Order.Refund is nil:
// Refund asks for it. pipeline.ErrNotFound when Pay Protocol does not
// know the order.
func (a Adapter) Payment(ctx context.Context, outTradeNo string) (Order, error) {
	p, err := a.Client.PaymentDetail(ctx, outTradeNo, "")
	if errors.Is(err, ErrNotFound) {
		return Order{}, fmt.Errorf("%w: %v", pipeline.ErrNotFound, err)
	}
	if err != nil {
		return Order{}, err
	}
	o := Order{Status: p.Status.String(), chain: p.ChainID, paymentNo: p.OutPaymentNo, settlement: p.SettlementCurrency, expected: p.ExpectedAmount, read: true}
	if o.Quote, err = p.Quote(); err != nil {
		o.Quote, o.QuoteProblem = pipeline.Money{}, err.Error()
	}
	return o, nil
}

// Refund asks for the latest refund of the order whose payment Payment
// returned as o (by outTradeNo: the platform does not keep Pay Protocol's
// refund ids, and the refund list is not by order); nil when Pay Protocol
// knows none. Its amount is read as refundOf reads it.
func (a Adapter) Refund(ctx context.Context, outTradeNo string, o Order) (*OrderRefund, error) {
	r, err := a.latestRefund(ctx, outTradeNo)
	if err != nil || r == nil {
		return nil, err
	}
	return a.refundOf(ctx, *r, o)
}

// latestRefund asks for the order's latest refund as Pay Protocol writes
// it; nil when Pay Protocol knows none.
func (a Adapter) latestRefund(ctx context.Context, outTradeNo string) (*Refund, error) {
	r, err := a.Client.RefundDetail(ctx, outTradeNo, "")
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// refundOf is refund r of the order whose payment is o. Refund amounts
// are scaled integers of the refund's currency, which the refund names by
// currencyId alone: Pay Protocol's currency list of the chain
// (Client.Currencies, read once per chain) says which symbol and how many
// decimals that is. A refund that returned or may return money (not
// failed, not rejected: those returned nothing, Amount 0) is read only in
// the payment's settlement currency (settlementCurrencySymbol): one in
// another currency, or in a currency the list does not have, is not read
// at all (Elsewhere), nor is one whose chain's list has more than one
// currency of the payment's symbol (which one the payment was settled in
// cannot be told), nor one on another chain than the payment, or of
// another payment order: its amount is not in the payment's units. The
// decimals are the list's; those of
// --payprotocol-decimals (Config.Decimals), when set for that currency,
// must agree with them (Unconfigured says they do not: settle's
// configuration to correct). A list that cannot be read leaves the refund
// unread (CurrenciesUnread). The amount is then read in the quote's fiat
// currency as refundInQuote reads it: one to one for a payment settled at
// par, else at the payment's own rate. The error is what concerns every
// order (refused credentials, the context ended), from reading the list.
func (a Adapter) refundOf(ctx context.Context, r Refund, o Order) (*OrderRefund, error) {
	out := &OrderRefund{ID: r.RefundID, Status: r.Status.String()}
	chain := r.ChainID
	if chain == 0 {
		chain = o.chain
	}
	switch {
	case o.QuoteProblem != "":
		out.AmountProblem = "the payment's quote currency is not known"
		return out, nil
	case o.chain != 0 && chain != o.chain:
		// A token's decimals differ from chain to chain (USDT: 6 on one,
		// 18 on another): read at the payment's rate, 1 USDT on a chain
		// with 18 decimals passed for a dollar.
		out.AmountProblem = fmt.Sprintf("the refund is on chain %d, the payment on chain %d: its amount is not in the payment's %s", chain, o.chain, clip(o.settlement))
		out.Elsewhere = true
		return out, nil
	case r.OutPaymentNo != "" && o.paymentNo != "" && r.OutPaymentNo != o.paymentNo:
		out.AmountProblem = fmt.Sprintf("the refund is of payment order %s, the order's payment is %s", clip(r.OutPaymentNo), clip(o.paymentNo))
		out.Elsewhere = true
		return out, nil
	case r.Amount == nil:
		out.AmountProblem = "Pay Protocol shows no refundAmount"
		return out, nil
	case r.Status == RefundFailed || r.Status == RefundRejected:
		// It returned nothing, in whatever currency: no list is asked for
		// it, and its Amount is what it returned, 0.
		return out, nil
	case chain == 0:
		out.AmountProblem = "Pay Protocol names the chain of neither the payment nor the refund: the refund's currency cannot be told"
		out.Elsewhere = true
		return out, nil
	case chain < 0:
		// No chain has a currency list: asked for, it failed as if Pay
		// Protocol did not answer, and left the order for a next run
		// that never could verify it.
		out.AmountProblem = fmt.Sprintf("Pay Protocol names chain %d, which is no chain: the refund's currency cannot be told", chain)
		out.Elsewhere = true
		return out, nil
	}
	decimals, err := a.currencyOf(ctx, chain, r, o, out)
	if err != nil || out.AmountProblem != "" {
		return out, err
	}
	out.Amount, out.Inexact, out.AmountProblem = refundInQuote(r.Amount, decimals, o)
	return out, nil
}

// currencyOf checks that refund r (on chain) is in the settlement currency
// of its payment o, by Pay Protocol's currency list of the chain, and
// returns that currency's decimals; when it cannot tell, or the decimals
// configured disagree with the list's, it says why in out (AmountProblem,
// and Elsewhere, Unconfigured or CurrenciesUnread). The error is what
// concerns every order: refused credentials, the context ended.
func (a Adapter) currencyOf(ctx context.Context, chain int, r Refund, o Order, out *OrderRefund) (int, error) {
	list, err := a.Client.Currencies(ctx, chain)
	if err != nil {
		if ctx.Err() != nil || pipeline.KindOf(err) != pipeline.KindFailed {
			return 0, err
		}
		out.AmountProblem = fmt.Sprintf("Pay Protocol's currency list of chain %d could not be read, so the refund's currency %d cannot be told to be the payment's %s: %s",
			chain, r.CurrencyID, clip(o.settlement), pipeline.OneLine(err.Error()))
		out.CurrenciesUnread = true
		return 0, nil
	}
	var theirs, unusable *Currency // unusable: an entry of the payment's symbol, or the refund's, with a Problem
	var ours []string              // the currencies of the payment's symbol, by id
	for i := range list {
		if list[i].ID == r.CurrencyID && theirs == nil {
			theirs = &list[i]
		}
		if list[i].Symbol == o.settlement {
			ours = append(ours, strconv.Itoa(list[i].ID))
		}
		if list[i].Problem != "" && unusable == nil && (list[i].ID == r.CurrencyID || list[i].Symbol == o.settlement) {
			unusable = &list[i]
		}
	}
	settled := clip(o.settlement)
	if len(ours) == 1 {
		settled += " (currency " + ours[0] + ")"
	}
	switch {
	case r.CurrencyID == 0:
		out.AmountProblem = fmt.Sprintf("the refund names no currencyId, the payment was settled in %s on chain %d: its amount cannot be told to be in the payment's %s", settled, chain, clip(o.settlement))
		out.Elsewhere = true
		return 0, nil
	case unusable != nil:
		// The refund's own currency, or one of the payment's symbol (of
		// which the payment's currency may be a namesake), is listed so
		// that it cannot be used: the order waits for the list to be
		// right, as for a list that cannot be read; the other refunds of
		// the chain are read.
		out.AmountProblem = fmt.Sprintf("Pay Protocol's currency list of chain %d cannot be used for the refund's currency %d, the payment settled in %s (%s)",
			chain, r.CurrencyID, clip(o.settlement), unusable.Problem)
		out.CurrenciesUnread = true
		return 0, nil
	case theirs == nil:
		out.AmountProblem = fmt.Sprintf("the refund is in currency %d, which Pay Protocol's currency list of chain %d does not have, the payment was settled in %s: its amount is not known to be in the payment's %s",
			r.CurrencyID, chain, settled, clip(o.settlement))
		out.Elsewhere = true
		return 0, nil
	case theirs.Symbol != o.settlement:
		out.AmountProblem = fmt.Sprintf("the refund is in %s (currency %d), the payment was settled in %s on chain %d: its amount is not in the payment's %s",
			clip(theirs.Symbol), theirs.ID, settled, chain, clip(o.settlement))
		out.Elsewhere = true
		return 0, nil
	case len(ours) > 1:
		// The payment names its currency by symbol alone: which of them
		// it was settled in cannot be told. Read as the payment's, a
		// refund in a namesake of fewer decimals (a bridged token) passed
		// for a fraction of what it returned, and its order was verified.
		out.AmountProblem = fmt.Sprintf("Pay Protocol's currency list of chain %d has more than one %s (currencies %s): the refund's currency %d cannot be told to be the one the payment was settled in",
			chain, clip(o.settlement), strings.Join(ours, ", "), r.CurrencyID)
		out.Elsewhere = true
		return 0, nil
	}
	if d, set := a.Client.Decimals(chain, o.settlement); set && d != theirs.Decimals {
		// Which is right cannot be told from here: a refund read with the
		// wrong decimals is off by powers of ten. Settle's configuration
		// to correct; the order is held, never paid on, until it is.
		out.AmountProblem = fmt.Sprintf("--payprotocol-decimals gives %s on chain %d %d decimals, Pay Protocol's currency list %d (currency %d): correct or remove %s",
			clip(o.settlement), chain, d, theirs.Decimals, theirs.ID, DecimalsKey(chain, o.settlement))
		out.Unconfigured = true
		return 0, nil
	}
	return theirs.Decimals, nil
}

// refundInQuote reads a refund's amount, scaled by 10^decimals of the
// payment's settlement currency, in minor units of the payment's quote
// currency, at the rate the payment itself was settled: expectedAmount (in
// the settlement currency) for the quote. A payment settled one to one
// (a dollar stable coin for a dollar quote) is read as ToMinor reads it;
// any other (a yen or yuan quote settled in USDT) at its own rate, never
// one to one: 50 USDT of a payment of 100 USDT for 15000 JPY is 7500 JPY,
// not 50. Exactly, or, for a coin finer than the quote's minor unit, the
// one whole amount of minor units it is the coin's rounding of
// (askedInMinor), or not at all: the third value says why not. A refund
// that is a whole number of the coin's units but not of the quote's minor
// units (a person changed its amount when approving it, or took a network
// fee off it) is read as the least whole amount of minor units above it,
// with inexact true and why: not the refund, but a bound of it, by which
// the verification can still tell whether it returned more than the order
// nets.
func refundInQuote(scaled *big.Int, decimals int, o Order) (v int64, inexact bool, why string) {
	if par, err := FromMinor(o.Quote.Minor, decimals, o.Quote.Currency); err == nil && par == o.expected {
		v, err := ToMinor(scaled.String(), decimals, o.Quote.Currency)
		if err != nil {
			if exp, _ := o.Quote.Currency.Exponent(); decimals > exp {
				if up, ok := ceilQuo(scaled, pow10(decimals-exp)); ok {
					return up, true, err.Error()
				}
			}
			return 0, false, err.Error()
		}
		return v, false, ""
	}
	expected, err := parseScaled(o.expected, decimals)
	if err != nil || expected.Sign() == 0 || o.Quote.Minor <= 0 {
		return 0, false, fmt.Sprintf("the payment's expectedAmount %q does not give the rate of its %s quote (%s)", clip(o.expected), o.settlement, o.Quote)
	}
	quote := big.NewInt(o.Quote.Minor)
	num := new(big.Int).Mul(scaled, quote)
	q, rem := new(big.Int).QuoRem(num, expected, new(big.Int))
	if rem.Sign() != 0 {
		var ok bool
		if q, ok = askedInMinor(q, rem, quote, expected); !ok {
			why := fmt.Sprintf("amount %s at the payment's rate (%s %s for %s) is not a whole number of minor units", scaled, expected, o.settlement, o.Quote)
			if up, ok := ceilQuo(num, expected); ok {
				return up, true, why
			}
			return 0, false, why
		}
	}
	switch {
	case !q.IsInt64():
		return 0, false, fmt.Sprintf("amount %s at the payment's rate: out of range", scaled)
	}
	return q.Int64(), false, ""
}

// ceilQuo returns num/den rounded up (num >= 0, den > 0), and whether it
// is within int64.
func ceilQuo(num, den *big.Int) (int64, bool) {
	q, r := new(big.Int).QuoRem(num, den, new(big.Int))
	if r.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	return q.Int64(), q.IsInt64()
}

// askedInMinor reads a refund that is not a whole number of the quote's
// minor units at the payment's rate (scaled x quote = v x expected + rem,
// 0 < rem < expected): a refund asked in the quote's minor units (1000
// JPY of 15000 JPY settled as 100 USDT) is paid in the coin rounded to its
// decimals (6.666667 USDT, 1000.00005 JPY at the rate), never exactly. It
// is the whole amount m of minor units whose value in the coin
// (m x expected / quote) is less than one unit of the coin from the
// refund, when exactly one m is: when the coin's unit is at most half the
// quote's minor unit (expected >= 2 x quote), v or v+1 is the only
// candidate. Anything else (a coin coarser than that, or a refund further
// than a unit of the coin from any whole amount) is refused: ok false.
func askedInMinor(v, rem, quote, expected *big.Int) (*big.Int, bool) {
	if expected.Cmp(new(big.Int).Lsh(quote, 1)) < 0 {
		return nil, false
	}
	switch {
	case rem.Cmp(quote) < 0: // v x expected is within a unit of the coin below
		return v, true
	case new(big.Int).Sub(expected, rem).Cmp(quote) < 0: // (v+1) x expected, above
		return new(big.Int).Add(v, big.NewInt(1)), true
	}
	return nil, false
}

// Order asks for the payment detail (Payment) and, for a paid payment, the
// latest refund (Refund). A refunded payment needs no refund query: all of
// it went back.
func (a Adapter) Order(ctx context.Context, outTradeNo string) (Order, error) {
	o, err := a.Payment(ctx, outTradeNo)
	if err != nil || o.Status != PaymentPaid.String() {
		return o, err
	}
	if o.Refund, err = a.Refund(ctx, outTradeNo, o); err != nil {
		return Order{}, err
	}
	return o, nil
}

// OrderPaid asks for the latest refund of an order whose payment was
// found paid as paid (ReconcileAPI.OrderPaid): paid itself when Pay
// Protocol knows none; otherwise the payment detail too, and the answer
// Order would give, the refund read once.
func (a Adapter) OrderPaid(ctx context.Context, outTradeNo string, paid Order) (Order, error) {
	r, err := a.latestRefund(ctx, outTradeNo)
	if err != nil {
		return Order{}, err
	}
	if r == nil {
		paid.Refund = nil
		return paid, nil
	}
	o, err := a.Payment(ctx, outTradeNo)
	if err != nil || o.Status != PaymentPaid.String() {
		return o, err
	}
	if o.Refund, err = a.refundOf(ctx, *r, o); err != nil {
		return Order{}, err
	}
	return o, nil
}
