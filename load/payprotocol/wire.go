package payprotocol

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
)

// flexString is a JSON string or number, kept as written: Pay Protocol's
// examples show ids and amounts sometimes as numbers (refundId 82), and an
// 18-decimal amount must never pass through a float.
type flexString string

// UnmarshalJSON takes a string, a number's literal text, or null ("").
func (f *flexString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		err := json.Unmarshal(b, &s)
		*f = flexString(s)
		return err
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("want a string or a number")
	}
	*f = flexString(n)
	return nil
}

// flexInt is a JSON integer, also accepted written as a string.
type flexInt int

// UnmarshalJSON takes an integer or a string holding one, written plainly
// as strconv.Itoa writes it: "+0", "00" or "-0" is not a status 0 (paid).
func (f *flexInt) UnmarshalJSON(b []byte) error {
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	n, err := strconv.Atoi(string(s))
	if err != nil || strconv.Itoa(n) != string(s) {
		return fmt.Errorf("want an integer, got %q", clip(string(s)))
	}
	*f = flexInt(n)
	return nil
}

// wirePayment is a payment as the detail query and the payment callback
// write it: the fields of Pay Protocol's "Query payment order details"
// (doc.payprotocol.network/docs/api/merchant/get-payment-detail), by
// their published names. There is no decimals field: expectedAmount and
// settlementAmount are integers scaled by 10^decimals of
// settlementCurrencySymbol on chainId, which Pay Protocol's currency list
// gives (Client.Currencies).
type wirePayment struct {
	ChainID            *flexInt   `json:"chainId"`
	OrgID              *flexInt   `json:"orgId"`
	OutTradeNo         string     `json:"outTradeNo"`
	OutPaymentNo       string     `json:"outPaymentNo"`
	Description        string     `json:"description"`
	IsLegalTender      *flexInt   `json:"isLegalTender"`
	QuoteCurrency      string     `json:"quoteCurrencySymbol"`
	QuoteAmount        flexString `json:"quoteAmount"`
	PaymentStatus      *flexInt   `json:"paymentStatus"`
	PaymentType        *flexInt   `json:"paymentType"`
	ExpectedAmount     flexString `json:"expectedAmount"`
	SettlementAmount   flexString `json:"settlementAmount"`
	SettlementCurrency string     `json:"settlementCurrencySymbol"`
	TransferHash       string     `json:"transferHash"`
	WalletAddress      string     `json:"userWalletAddress"`
	FromAddress        string     `json:"fromAddress"`
}

// payment reads w, the status first: a payment still in progress (pending,
// block confirmation, partially paid) is returned as soon as its status is
// known, whatever else is missing, since it is held anyway. Any other
// status needs the order number, and the quote (isLegalTender,
// quoteCurrencySymbol, quoteAmount) that decides whether it paid our order.
// The scaled amounts, when present, must be integers of ASCII digits; they
// are kept as written and converted only when needed, with the decimals of
// Pay Protocol's currency list (Client.Currencies).
func (w wirePayment) payment() (Payment, error) {
	p := Payment{OutTradeNo: w.OutTradeNo, OutPaymentNo: w.OutPaymentNo, QuoteCurrency: w.QuoteCurrency,
		QuoteAmount: string(w.QuoteAmount), ExpectedAmount: string(w.ExpectedAmount),
		SettlementAmount: string(w.SettlementAmount), SettlementCurrency: w.SettlementCurrency,
		TxHash: w.TransferHash, WalletAddress: w.WalletAddress, FromAddress: w.FromAddress}
	if w.PaymentStatus == nil || !PaymentStatus(*w.PaymentStatus).Valid() {
		return p, fmt.Errorf("%w: payment %s: missing or unknown paymentStatus", ErrAnswer, clip(w.OutTradeNo))
	}
	p.Status = PaymentStatus(*w.PaymentStatus)
	if w.ChainID != nil {
		p.ChainID = int(*w.ChainID)
	}
	p.IsLegalTender = w.IsLegalTender != nil && *w.IsLegalTender == 1
	if p.Status.InProgress() {
		return p, nil
	}
	switch {
	case w.OutTradeNo == "":
		return p, fmt.Errorf("%w: payment without outTradeNo", ErrAnswer)
	case w.IsLegalTender == nil || (*w.IsLegalTender != 0 && *w.IsLegalTender != 1):
		return p, fmt.Errorf("%w: payment %s: missing or invalid isLegalTender", ErrAnswer, clip(w.OutTradeNo))
	case p.Status == PaymentPaid && (w.QuoteCurrency == "" || w.QuoteAmount == ""):
		return p, fmt.Errorf("%w: payment %s: paid without quoteCurrencySymbol or quoteAmount", ErrAnswer, clip(w.OutTradeNo))
	}
	for _, a := range []struct {
		name string
		v    flexString
	}{{"expectedAmount", w.ExpectedAmount}, {"settlementAmount", w.SettlementAmount}} {
		if _, err := amount(a.name, a.v, false); err != nil {
			return p, fmt.Errorf("%w: payment %s: %v", ErrAnswer, clip(w.OutTradeNo), err)
		}
	}
	if w.QuoteAmount != "" {
		// Not a number at all (a sign, garbage): an answer that cannot be
		// used, the order held and asked again; one that is a number but
		// not the order's price (finer than its currency's minor unit)
		// is for Payment.Quote to refuse.
		if _, _, err := decimalNumber(string(w.QuoteAmount)); err != nil {
			return p, fmt.Errorf("%w: payment %s: quoteAmount: %v", ErrAnswer, clip(w.OutTradeNo), err)
		}
	}
	return p, nil
}

// wireRefund is a refund as the detail query and the refund callback
// write it: the fields of "Query refund order details"
// (doc.payprotocol.network/docs/api/merchant/get-refund-detail).
// refundAmount and refundFee are integers scaled by 10^decimals of the
// currency currencyId on chainId; refundAmount may be null.
type wireRefund struct {
	ChainID       *flexInt   `json:"chainId"`
	CurrencyID    *flexInt   `json:"currencyId"`
	RefundID      flexString `json:"refundId"`
	OutTradeNo    string     `json:"outTradeNo"`
	OutPaymentNo  string     `json:"outPaymentNo"`
	RefundAddress string     `json:"refundAddress"`
	RefundAmount  flexString `json:"refundAmount"`
	RefundFee     flexString `json:"refundFee"`
	RefundStatus  *flexInt   `json:"refundStatus"`
	RefundTime    string     `json:"refundTime"`
	TransferHash  string     `json:"transferHash"`
}

func (w wireRefund) refund() (Refund, error) {
	r := Refund{RefundID: string(w.RefundID), OutTradeNo: w.OutTradeNo, OutPaymentNo: w.OutPaymentNo,
		Address: w.RefundAddress, TxHash: w.TransferHash, Time: w.RefundTime}
	if r.RefundID == "" {
		return r, fmt.Errorf("%w: refund without refundId", ErrAnswer)
	}
	if w.RefundStatus == nil || !RefundStatus(*w.RefundStatus).Valid() {
		return r, fmt.Errorf("%w: refund %s: missing or unknown refundStatus", ErrAnswer, clip(r.RefundID))
	}
	r.Status = RefundStatus(*w.RefundStatus)
	if w.ChainID != nil {
		r.ChainID = int(*w.ChainID)
	}
	if w.CurrencyID != nil {
		r.CurrencyID = int(*w.CurrencyID)
	}
	var err error
	if r.Amount, err = amount("refundAmount", w.RefundAmount, r.Status == RefundSuccess); err != nil {
		return r, fmt.Errorf("%w: refund %s: %v", ErrAnswer, clip(r.RefundID), err)
	}
	if w.RefundAmount == "" {
		r.Amount = nil // null before it succeeds: unknown, not zero
	}
	if r.Fee, err = amount("refundFee", w.RefundFee, false); err != nil {
		return r, fmt.Errorf("%w: refund %s: %v", ErrAnswer, clip(r.RefundID), err)
	}
	return r, nil
}

// amount reads a scaled integer amount: ASCII digits only, no sign, point
// or exponent. An absent (or null) optional amount is zero.
func amount(field string, s flexString, required bool) (*big.Int, error) {
	if s == "" && !required {
		return new(big.Int), nil
	}
	v, err := parseScaled(string(s), 0)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %v", field, clip(string(s)), err)
	}
	return v, nil
}
