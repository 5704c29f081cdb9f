package payprotocol

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/settlekit/settle/pipeline"
)

// The API names: the paths under the base URL, used in errors and by the
// fake as fault endpoints.
const (
	APIPaymentDetail      = "payment/detail"
	APIRefundDetail       = "refund/detail"
	APICreatePaymentOrder = "payment/createPaymentOrder"
	APICreateRefundOrder  = "refund/createRefundOrder"
	APINotifyPayment      = "payment/notify"
	APINotifyRefund       = "refund/notify"
	APIChainList          = "conf/list/chain" // "Get Chain List", as Pay Protocol's plugin calls it
)

// PaymentStatus is a payment order's paymentStatus.
type PaymentStatus int

// The documented payment statuses.
const (
	PaymentPaid              PaymentStatus = 0
	PaymentPending           PaymentStatus = 1
	PaymentBlockConfirmation PaymentStatus = 2
	PaymentPartiallyPaid     PaymentStatus = 3
	PaymentFailed            PaymentStatus = 4
	PaymentRefunded          PaymentStatus = 5
)

var paymentStatusNames = [...]string{"paid", "pending", "block confirmation", "partially paid", "failed", "refunded"}

// String names the status ("paid", "block confirmation").
func (s PaymentStatus) String() string {
	if s.Valid() {
		return paymentStatusNames[s]
	}
	return "PaymentStatus(" + strconv.Itoa(int(s)) + ")"
}

// Valid reports whether s is a documented status.
func (s PaymentStatus) Valid() bool { return s >= 0 && int(s) < len(paymentStatusNames) }

// Final reports whether the payment will not move on by itself: paid,
// failed or refunded. Only PaymentPaid means the money arrived in full;
// a failed payment may still be paid late, on chain, and Pay Protocol
// then answers paid (the verification holds it, HeldFailedPayment).
func (s PaymentStatus) Final() bool {
	return s == PaymentPaid || s == PaymentFailed || s == PaymentRefunded
}

// RefundStatus is a refund order's refundStatus.
type RefundStatus int

// The documented refund statuses.
const (
	RefundSuccess           RefundStatus = 0
	RefundPendingApproval   RefundStatus = 1
	RefundUnderReview       RefundStatus = 2
	RefundBlockConfirmation RefundStatus = 3
	RefundFailed            RefundStatus = 4
	RefundRejected          RefundStatus = 5
)

var refundStatusNames = [...]string{"success", "pending approval", "under review", "block confirmation", "failed", "rejected"}

// String names the status ("success", "pending approval").
func (s RefundStatus) String() string {
	if s.Valid() {
		return refundStatusNames[s]
	}
	return "RefundStatus(" + strconv.Itoa(int(s)) + ")"
}

// Valid reports whether s is a documented status.
func (s RefundStatus) Valid() bool { return s >= 0 && int(s) < len(refundStatusNames) }

// Final reports whether the refund will not move on: success, failed or
// rejected.
func (s RefundStatus) Final() bool {
	return s == RefundSuccess || s == RefundFailed || s == RefundRejected
}

// InProgress reports whether the payment is still moving: pending, block
// confirmation or partially paid. Such a payment is held, whatever else
// its answer says or lacks.
func (s PaymentStatus) InProgress() bool {
	return s == PaymentPending || s == PaymentBlockConfirmation || s == PaymentPartiallyPaid
}

// Payment is a payment order as Pay Protocol reports it (the published
// payment detail). QuoteAmount is the order's price as a decimal string in
// major units, written as Pay Protocol chooses ("313.5", "313.500000");
// ExpectedAmount and SettlementAmount are integer strings scaled by
// 10^decimals of SettlementCurrency on ChainID, kept as written: the
// payment detail does not say those decimals (Pay Protocol's currency list
// does: Client.Currencies).
type Payment struct {
	OutTradeNo         string        // our order number
	OutPaymentNo       string        // Pay Protocol's payment order number
	Status             PaymentStatus // paymentStatus
	ChainID            int           // Pay Protocol's internal chain id
	IsLegalTender      bool          // the quote is in a fiat currency (isLegalTender 1)
	QuoteCurrency      string        // quoteCurrencySymbol: ISO 4217 code when IsLegalTender
	QuoteAmount        string        // quoteAmount, a decimal string in major units
	ExpectedAmount     string        // expectedAmount, scaled; "" when absent
	SettlementAmount   string        // settlementAmount, scaled; "" when absent
	SettlementCurrency string        // settlementCurrencySymbol: what the buyer paid in ("USDT")
	TxHash             string        // transferHash, when paid
	WalletAddress      string        // userWalletAddress, the sub-contract address
	FromAddress        string        // fromAddress, the buyer's
}

// Quote returns the order's price as Money, for comparing with the order
// we settle, exactly: quoteAmount is read as a number, so "313.5" and
// "313.500000" are both 31350 USD cents, and an amount finer than the
// currency's minor unit ("313.505" USD) is an error, never rounded. It
// fails for a crypto quote (isLegalTender 0) and an unknown currency. No
// decimals are needed: a fiat-quoted payment is checked as Pay Protocol's
// own plugin checks it, by quoteCurrencySymbol and quoteAmount.
func (p Payment) Quote() (pipeline.Money, error) {
	if !p.IsLegalTender {
		return pipeline.Money{}, fmt.Errorf("payment %s: quoted in %q, not a fiat currency", p.OutTradeNo, clip(p.QuoteCurrency))
	}
	cur, err := pipeline.ParseCurrency(p.QuoteCurrency)
	if err != nil {
		return pipeline.Money{}, fmt.Errorf("payment %s: quote currency: %w", p.OutTradeNo, err)
	}
	minor, err := QuoteMinor(p.QuoteAmount, cur)
	if err != nil {
		return pipeline.Money{}, fmt.Errorf("payment %s: quote: %w", p.OutTradeNo, err)
	}
	return pipeline.Money{Minor: minor, Currency: cur}, nil
}

// QuoteMinor reads a decimal quote amount ("313.5", "313.500000", "313",
// "3.135E+2") in minor units of cur, exactly: it is compared as a number,
// as Pay Protocol's own plugin compares it (PHP's == on numeric strings,
// to which "1E+3" is 1000: what Java's BigDecimal.toString writes once
// trailing zeros are stripped), so an exponent is read too. Digits beyond
// cur's exponent are accepted only when zeros; a sign, anything that is
// not a decimal number (decimalNumber) and a value outside int64 are
// errors.
func QuoteMinor(dec string, cur pipeline.Currency) (int64, error) {
	exp, err := exponent(cur)
	if err != nil {
		return 0, err
	}
	m, scale, err := decimalNumber(dec)
	if err != nil {
		return 0, err
	}
	if shift := exp - scale; shift >= 0 {
		m.Mul(m, pow10(shift))
	} else if _, rem := m.QuoRem(m, pow10(-shift), new(big.Int)); rem.Sign() != 0 {
		return 0, fmt.Errorf("amount %s: more than %d decimals", strconv.Quote(clip(dec)), exp)
	}
	if !m.IsInt64() {
		return 0, fmt.Errorf("amount %q: %w", clip(dec), pipeline.ErrOverflow)
	}
	return m.Int64(), nil
}

// Settled returns SettlementAmount as a decimal string in major units of
// SettlementCurrency ("12.34"), given that currency's decimals on ChainID
// (Client.Currencies, or Config.Decimals via Client.Decimals). It fails for an absent or
// malformed amount.
func (p Payment) Settled(decimals int) (string, error) {
	if p.SettlementAmount == "" {
		return "", fmt.Errorf("payment %s: no settlementAmount", p.OutTradeNo)
	}
	return DecimalFromScaled(p.SettlementAmount, decimals)
}

// Refund is a refund order as Pay Protocol reports it. Amount and Fee are
// integers scaled by 10^decimals of the refunded currency (CurrencyID on
// ChainID); the answer names no symbol and no decimals: Pay Protocol's
// currency list of the chain gives both (Client.Currencies), and a refund
// is read against its payment only in the payment's settlement currency.
type Refund struct {
	RefundID     string       // refundId (a number on the wire, kept as its text)
	OutTradeNo   string       // our order number
	OutPaymentNo string       // the payment order refunded
	Status       RefundStatus // refundStatus
	ChainID      int          // chainId
	CurrencyID   int          // currencyId (Pay Protocol's currency list)
	Amount       *big.Int     // refundAmount, scaled; nil when null and not yet successful
	Fee          *big.Int     // refundFee, scaled; the network fee, borne by the merchant
	Address      string       // refundAddress
	TxHash       string       // transferHash, once transferred
	Time         string       // refundTime, as written ("2024-01-19 00:48:41")
}

// PaymentOrder asks Pay Protocol for a payment page and sub-contract
// address for one of our orders.
type PaymentOrder struct {
	ChainID     int    // Pay Protocol's internal chain id (its chain list), > 0
	Description string // shown to the buyer
	OutTradeNo  string // our order number
	// IsLegalTender says QuoteCurrency is a fiat currency (ISO 4217, known
	// to pipeline); otherwise it is a crypto symbol ("USDT").
	IsLegalTender bool
	QuoteCurrency string
	// QuoteAmount is the price in minor units (> 0): of the ISO exponent
	// for a fiat currency, of 10^-QuoteDecimals for a crypto symbol.
	QuoteAmount    int64
	QuoteDecimals  int    // crypto quotes only
	NotifyURL      string // https URL of our CallbackHandler
	RedirectionURL string // optional: where the buyer goes after paying (never proof of payment)
}

// PaymentOrderResult is Pay Protocol's answer to a payment order.
type PaymentOrderResult struct {
	OutPaymentNo      string
	PaymentURL        string // a path, to be joined to Pay Protocol's payment domain
	UserWalletAddress string // the sub-contract address the buyer pays to
	SaltHash          string // verifies the sub-contract address
}

// RefundOrder asks Pay Protocol to refund a payment. A person approves it
// on Pay Protocol's console; the merchant bears the network fee.
type RefundOrder struct {
	OutTradeNo   string
	OutPaymentNo string // optional
	// Amount is the refund in minor units of Currency (assumed: the
	// payment's quote currency); 0 refunds the whole payment.
	Amount          int64
	Currency        pipeline.Currency
	NotifyURL       string // optional: our CallbackHandler
	TransferAddress string // optional: where the refund goes (default: the paying address)
}

// The request bodies and the create answers; field names as documented.
type (
	wirePaymentOrder struct {
		ChainID        int    `json:"chainId"`
		Description    string `json:"description"`
		OutTradeNo     string `json:"outTradeNo"`
		IsLegalTender  int    `json:"isLegalTender"`
		QuoteCurrency  string `json:"quoteCurrencySymbol"`
		QuoteAmount    string `json:"quoteAmount"`
		NotifyURL      string `json:"notifyUrl"`
		RedirectionURL string `json:"redirectionUrl,omitempty"`
	}
	wirePaymentOrderResult struct {
		OutPaymentNo      string `json:"outPaymentNo"`
		PaymentURL        string `json:"paymentUrl"`
		UserWalletAddress string `json:"userWalletAddress"`
		SaltHash          string `json:"saltHash"`
	}
	wireRefundOrder struct {
		OutTradeNo      string `json:"outTradeNo"`
		OutPaymentNo    string `json:"outPaymentNo,omitempty"`
		Amount          string `json:"amount,omitempty"`
		NotifyURL       string `json:"notifyUrl,omitempty"`
		TransferAddress string `json:"transferAddress,omitempty"`
	}
	wireRefundOrderResult struct {
		RefundID flexString `json:"refundId"`
	}
)

// query builds a query string in the order given, as sent and signed;
// empty values are left out.
func query(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(kv[i]) + "=" + url.QueryEscape(kv[i+1]))
	}
	return b.String()
}

// PaymentDetail returns Pay Protocol's word on our order outTradeNo (and,
// when not empty, its payment order outPaymentNo): GET
// /payment/detail?outTradeNo=...&outPaymentNo=... . This, not a callback
// or the buyer's redirect, is what proves a payment. ErrNotFound when Pay
// Protocol has no such order. Retried on transient failures.
func (c *Client) PaymentDetail(ctx context.Context, outTradeNo, outPaymentNo string) (Payment, error) {
	sp := spec{api: APIPaymentDetail, method: http.MethodGet, outTradeNo: outTradeNo,
		query: query("outTradeNo", outTradeNo, "outPaymentNo", outPaymentNo)}
	if outTradeNo == "" {
		return Payment{}, sp.fail(failLocal, errors.New("outTradeNo is required"))
	}
	var w wirePayment
	if err := c.call(ctx, sp, nil, &w); err != nil {
		return Payment{}, err
	}
	p, err := w.payment()
	if err != nil {
		return Payment{}, sp.fail(failBadAnswer, err)
	}
	// An answer about another order is never taken; one that names no
	// order is taken only while in progress (it is held anyway).
	named := p.OutTradeNo != "" || !p.Status.InProgress()
	if (named && p.OutTradeNo != outTradeNo) || (outPaymentNo != "" && p.OutPaymentNo != "" && p.OutPaymentNo != outPaymentNo) {
		return Payment{}, sp.fail(failBadAnswer, fmt.Errorf("%w: answer for order %q, payment %q", ErrAnswer, clip(p.OutTradeNo), clip(p.OutPaymentNo)))
	}
	return p, nil
}

// RefundDetail returns a refund: GET /refund/detail?outTradeNo=...&refundId=...
// (as documented: at least one of the two). With only outTradeNo it is the
// order's latest refund (assumed: the docs do not say which refund of
// several is answered), which is how a refund order whose answer was lost
// is found. ErrNotFound when there is none. Retried on transient failures.
func (c *Client) RefundDetail(ctx context.Context, outTradeNo, refundID string) (Refund, error) {
	sp := spec{api: APIRefundDetail, method: http.MethodGet, outTradeNo: outTradeNo, refundID: refundID,
		query: query("outTradeNo", outTradeNo, "refundId", refundID)}
	if outTradeNo == "" && refundID == "" {
		return Refund{}, sp.fail(failLocal, errors.New("outTradeNo or refundId is required"))
	}
	var w wireRefund
	if err := c.call(ctx, sp, nil, &w); err != nil {
		return Refund{}, err
	}
	r, err := w.refund()
	if err != nil {
		return Refund{}, sp.fail(failBadAnswer, err)
	}
	if (refundID != "" && r.RefundID != refundID) || (outTradeNo != "" && r.OutTradeNo != outTradeNo) {
		return Refund{}, sp.fail(failBadAnswer, fmt.Errorf("%w: answer for refund %q of order %q", ErrAnswer, clip(r.RefundID), clip(r.OutTradeNo)))
	}
	return r, nil
}

// NotifyPayment asks Pay Protocol to send the payment callback of order
// outTradeNo again: GET /payment/notify?outTradeNo=... (query parameters,
// as documented). Callbacks are deduplicated by the receiver, so it is
// retried like a query.
func (c *Client) NotifyPayment(ctx context.Context, outTradeNo string) error {
	sp := spec{api: APINotifyPayment, method: http.MethodGet, outTradeNo: outTradeNo, query: query("outTradeNo", outTradeNo)}
	if outTradeNo == "" {
		return sp.fail(failLocal, errors.New("outTradeNo is required"))
	}
	return c.call(ctx, sp, nil, nil)
}

// NotifyRefund asks Pay Protocol to send the callback of a refund again:
// GET /refund/notify?outTradeNo=...&refundId=... (at least one). Retried
// like a query.
func (c *Client) NotifyRefund(ctx context.Context, outTradeNo, refundID string) error {
	sp := spec{api: APINotifyRefund, method: http.MethodGet, outTradeNo: outTradeNo, refundID: refundID,
		query: query("outTradeNo", outTradeNo, "refundId", refundID)}
	if outTradeNo == "" && refundID == "" {
		return sp.fail(failLocal, errors.New("outTradeNo or refundId is required"))
	}
	return c.call(ctx, sp, nil, nil)
}

// CreatePaymentOrder asks for a payment page for o (POST
// /payment/createPaymentOrder). It is resent only when Pay Protocol
// certainly did not process it (429, no connection made); when the answer
// was lost the error wraps ErrUnknownOutcome: ask PaymentDetail for
// o.OutTradeNo before anything else.
func (c *Client) CreatePaymentOrder(ctx context.Context, o PaymentOrder) (PaymentOrderResult, error) {
	sp := spec{api: APICreatePaymentOrder, method: http.MethodPost, outTradeNo: o.OutTradeNo, create: true}
	in, err := o.wire()
	if err != nil {
		return PaymentOrderResult{}, sp.fail(failLocal, err)
	}
	var out wirePaymentOrderResult
	if err := c.call(ctx, sp, in, &out); err != nil {
		return PaymentOrderResult{}, err
	}
	if out.OutPaymentNo == "" || out.PaymentURL == "" {
		return PaymentOrderResult{}, sp.fail(failBadAnswer, unknown(fmt.Errorf("%w: no outPaymentNo or paymentUrl", ErrAnswer)))
	}
	return PaymentOrderResult(out), nil
}

func (o PaymentOrder) wire() (wirePaymentOrder, error) {
	w := wirePaymentOrder{ChainID: o.ChainID, Description: o.Description, OutTradeNo: o.OutTradeNo,
		QuoteCurrency: o.QuoteCurrency, NotifyURL: o.NotifyURL, RedirectionURL: o.RedirectionURL}
	switch {
	case o.ChainID <= 0 || o.OutTradeNo == "" || o.Description == "" || o.NotifyURL == "":
		return w, errors.New("chainId, description, outTradeNo and notifyUrl are required")
	case o.QuoteAmount <= 0:
		return w, fmt.Errorf("quote amount %d: want > 0", o.QuoteAmount)
	case o.QuoteCurrency == "" || strings.ToUpper(o.QuoteCurrency) != o.QuoteCurrency:
		return w, fmt.Errorf("quote currency %q: want an upper case symbol", clip(o.QuoteCurrency))
	}
	var err error
	if o.IsLegalTender {
		w.IsLegalTender = 1
		w.QuoteAmount, err = FormatDecimal(o.QuoteAmount, pipeline.Currency(o.QuoteCurrency))
	} else {
		w.QuoteAmount, err = DecimalFromScaled(strconv.FormatInt(o.QuoteAmount, 10), o.QuoteDecimals)
	}
	return w, err
}

// CreateRefundOrder asks Pay Protocol to refund o (POST
// /refund/createRefundOrder) and returns the refundId. Pay Protocol takes
// no idempotency key for refunds: the call is resent only when it certainly
// was not processed (429, no connection made). When the answer was lost the
// error wraps ErrUnknownOutcome, and RefundDetail by outTradeNo must show no
// refund before another is asked for.
func (c *Client) CreateRefundOrder(ctx context.Context, o RefundOrder) (string, error) {
	sp := spec{api: APICreateRefundOrder, method: http.MethodPost, outTradeNo: o.OutTradeNo, create: true}
	in := wireRefundOrder{OutTradeNo: o.OutTradeNo, OutPaymentNo: o.OutPaymentNo, NotifyURL: o.NotifyURL, TransferAddress: o.TransferAddress}
	switch {
	case o.OutTradeNo == "":
		return "", sp.fail(failLocal, errors.New("outTradeNo is required"))
	case o.Amount < 0:
		return "", sp.fail(failLocal, fmt.Errorf("refund amount %d: want >= 0", o.Amount))
	case o.Amount > 0:
		var err error
		if in.Amount, err = FormatDecimal(o.Amount, o.Currency); err != nil {
			return "", sp.fail(failLocal, err)
		}
	}
	var out wireRefundOrderResult
	if err := c.call(ctx, sp, in, &out); err != nil {
		return "", err
	}
	if out.RefundID == "" {
		return "", sp.fail(failBadAnswer, unknown(fmt.Errorf("%w: no refundId", ErrAnswer)))
	}
	return string(out.RefundID), nil
}
