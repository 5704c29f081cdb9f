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

// UnmarshalJSON takes an integer or a string holding one.
func (f *flexInt) UnmarshalJSON(b []byte) error {
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	n, err := strconv.Atoi(string(s))
	if err != nil {
		return fmt.Errorf("want an integer, got %q", clip(string(s)))
	}
	*f = flexInt(n)
	return nil
}

// wirePayment is a payment as the detail query and the payment callback
// write it. Names marked assumed are not in the public documentation.
type wirePayment struct {
	ChainID          *flexInt   `json:"chainId"`
	OutTradeNo       string     `json:"outTradeNo"`
	OutPaymentNo     string     `json:"outPaymentNo"`
	IsLegalTender    *flexInt   `json:"isLegalTender"`
	QuoteCurrency    string     `json:"quoteCurrencySymbol"`
	QuoteAmount      flexString `json:"quoteAmount"`
	PaymentStatus    *flexInt   `json:"paymentStatus"`
	CurrencySymbol   string     `json:"currencySymbol"` // assumed
	Decimals         *flexInt   `json:"decimals"`       // assumed
	ExpectedAmount   flexString `json:"expectedAmount"`
	SettlementAmount flexString `json:"settlementAmount"` // assumed name
	TransferHash     string     `json:"transferHash"`     // assumed name
	WalletAddress    string     `json:"userWalletAddress"`
}

// payment checks w and returns it as a Payment. Without a decimals field,
// fallback (by currency symbol) gives them; when it does not either,
// Decimals is -1 when allowUnknown, else it is an error.
func (w wirePayment) payment(fallback map[string]int, allowUnknown bool) (Payment, error) {
	p := Payment{OutTradeNo: w.OutTradeNo, OutPaymentNo: w.OutPaymentNo, Currency: w.CurrencySymbol,
		QuoteCurrency: w.QuoteCurrency, QuoteAmount: string(w.QuoteAmount), TxHash: w.TransferHash,
		WalletAddress: w.WalletAddress}
	if w.OutTradeNo == "" {
		return p, fmt.Errorf("%w: payment without outTradeNo", ErrAnswer)
	}
	if w.PaymentStatus == nil || !PaymentStatus(*w.PaymentStatus).Valid() {
		return p, fmt.Errorf("%w: payment %s: missing or unknown paymentStatus", ErrAnswer, clip(w.OutTradeNo))
	}
	p.Status = PaymentStatus(*w.PaymentStatus)
	if w.ChainID != nil {
		p.ChainID = int(*w.ChainID)
	}
	p.IsLegalTender = w.IsLegalTender != nil && *w.IsLegalTender == 1
	switch d, ok := fallback[w.CurrencySymbol]; {
	case w.Decimals != nil:
		if p.Decimals = int(*w.Decimals); p.Decimals < 0 || p.Decimals > MaxDecimals {
			return p, fmt.Errorf("%w: payment %s: decimals %d outside 0..%d", ErrAnswer, clip(w.OutTradeNo), p.Decimals, MaxDecimals)
		}
	case ok:
		p.Decimals = d
	case allowUnknown:
		p.Decimals = -1
	default:
		return p, fmt.Errorf("%w: payment %s: no decimals for currency %q (set Config.Decimals)", ErrAnswer, clip(w.OutTradeNo), clip(w.CurrencySymbol))
	}
	var err error
	if p.Amount, err = amount("expectedAmount", w.ExpectedAmount, true); err != nil {
		return p, fmt.Errorf("%w: payment %s: %v", ErrAnswer, clip(w.OutTradeNo), err)
	}
	if p.PaidAmount, err = amount("settlementAmount", w.SettlementAmount, false); err != nil {
		return p, fmt.Errorf("%w: payment %s: %v", ErrAnswer, clip(w.OutTradeNo), err)
	}
	return p, nil
}

// wireRefund is a refund as the detail query and the refund callback write
// it.
type wireRefund struct {
	RefundID      flexString `json:"refundId"`
	OutTradeNo    string     `json:"outTradeNo"`
	OutPaymentNo  string     `json:"outPaymentNo"`
	RefundStatus  *flexInt   `json:"refundStatus"`
	RefundAmount  flexString `json:"refundAmount"`
	RefundFee     flexString `json:"refundFee"`
	RefundAddress string     `json:"refundAddress"`
	TransferHash  string     `json:"transferHash"`
}

func (w wireRefund) refund() (Refund, error) {
	r := Refund{RefundID: string(w.RefundID), OutTradeNo: w.OutTradeNo, OutPaymentNo: w.OutPaymentNo,
		Address: w.RefundAddress, TxHash: w.TransferHash}
	if r.RefundID == "" {
		return r, fmt.Errorf("%w: refund without refundId", ErrAnswer)
	}
	if w.RefundStatus == nil || !RefundStatus(*w.RefundStatus).Valid() {
		return r, fmt.Errorf("%w: refund %s: missing or unknown refundStatus", ErrAnswer, clip(r.RefundID))
	}
	r.Status = RefundStatus(*w.RefundStatus)
	var err error
	if r.Amount, err = amount("refundAmount", w.RefundAmount, true); err != nil {
		return r, fmt.Errorf("%w: refund %s: %v", ErrAnswer, clip(r.RefundID), err)
	}
	if r.Fee, err = amount("refundFee", w.RefundFee, false); err != nil {
		return r, fmt.Errorf("%w: refund %s: %v", ErrAnswer, clip(r.RefundID), err)
	}
	return r, nil
}

// amount reads a scaled integer amount: ASCII digits only, no sign, point
// or exponent. An absent optional amount is zero.
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
