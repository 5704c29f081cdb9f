package payprotocoltest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
)

// paymentOrder is a createPaymentOrder body as the fake reads it: strict
// JSON types, as a Java backend would bind them.
type paymentOrder struct {
	ChainID        *int   `json:"chainId"`
	Description    string `json:"description"`
	OutTradeNo     string `json:"outTradeNo"`
	IsLegalTender  *int   `json:"isLegalTender"`
	QuoteCurrency  string `json:"quoteCurrencySymbol"`
	QuoteAmount    string `json:"quoteAmount"`
	NotifyURL      string `json:"notifyUrl"`
	RedirectionURL string `json:"redirectionUrl"`
}

type payment struct {
	order       paymentOrder // as created through the API; zero for AddPayment
	outTradeNo  string
	outPayment  string
	chainID     int
	legal       bool
	quoteCur    string
	quoteAmount string
	currency    string
	decimals    int
	amount      *big.Int // expected, scaled
	paid        *big.Int // settled, scaled
	refunded    *big.Int // by successful refunds
	reserved    *big.Int // by refunds still in progress
	status      payprotocol.PaymentStatus
	shown       payprotocol.PaymentStatus // what the last detail query showed
	stuck       int                       // detail queries still to show frozen
	frozen      payprotocol.PaymentStatus
	notifyURL   string
	wallet      string
	salt        string
	txHash      string
	createdAt   time.Time
	blockTime   int64          // Unix seconds the payment arrived
	poison      map[string]any // PoisonPayment's fields
}

// AddPayment adds a payment order for outTradeNo in a crypto currency
// (symbol, decimals) for amount (an integer string scaled by
// 10^decimals), quoted in the same currency, in the given status, and
// returns its outPaymentNo. Its callbacks go to Options.NotifyURL. A paid
// payment has its whole amount settled, a partially paid one half of it.
func (s *Server) AddPayment(outTradeNo, currency string, decimals int, amount string, status payprotocol.PaymentStatus) (string, error) {
	quote, err := payprotocol.DecimalFromScaled(amount, decimals)
	if err != nil {
		return "", err
	}
	if outTradeNo == "" || currency == "" || !status.Valid() {
		return "", fmt.Errorf("payprotocoltest: AddPayment(%q, %q, %d, %q, %d): want an order, a currency and a valid status", outTradeNo, currency, decimals, amount, status)
	}
	v, _ := new(big.Int).SetString(amount, 10)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.payments[outTradeNo]; dup {
		return "", fmt.Errorf("payprotocoltest: order %s exists", outTradeNo)
	}
	if c := s.currencyBy[currencyKey{1, currency}]; c != nil && c.decimals != decimals {
		// The currency list would say otherwise of the payment's amounts.
		return "", fmt.Errorf("payprotocoltest: AddPayment(%q, %q, %d, ...): %s is open on chain 1 with %d decimals", outTradeNo, currency, decimals, currency, c.decimals)
	}
	p := s.newPayment(outTradeNo, 1, false, currency, quote, currency, decimals, v)
	p.notifyURL = s.o.NotifyURL
	s.setStatus(p, status)
	p.shown = status
	return p.outPayment, nil
}

// newPayment records a pending payment; the caller holds s.mu.
func (s *Server) newPayment(outTradeNo string, chain int, legal bool, quoteCur, quoteAmount, currency string, decimals int, amount *big.Int) *payment {
	s.seq++
	sum := sha256.Sum256([]byte(outTradeNo))
	p := &payment{outTradeNo: outTradeNo, outPayment: fmt.Sprintf("PP%012d", s.seq), chainID: chain, legal: legal,
		quoteCur: quoteCur, quoteAmount: quoteAmount, currency: currency, decimals: decimals, amount: amount,
		paid: new(big.Int), refunded: new(big.Int), reserved: new(big.Int), status: payprotocol.PaymentPending,
		shown: payprotocol.PaymentPending, createdAt: s.o.Now(), wallet: "0x" + hex.EncodeToString(sum[:20]), salt: "0x" + hex.EncodeToString(sum[:])}
	s.payments[outTradeNo] = p
	s.openCurrency(chain, currency, decimals) // a payment is made in a currency the merchant opened
	return p
}

// SetPaymentStatus moves a payment to status, as the chain would: paid
// settles the whole amount, partially paid half of it, pending and failed
// none. Any status may follow any other: a failed payment paid late, on
// chain, is paid. A change of status sends the payment callback.
func (s *Server) SetPaymentStatus(outTradeNo string, status payprotocol.PaymentStatus) error {
	if !status.Valid() {
		return fmt.Errorf("payprotocoltest: status %d", status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.payments[outTradeNo]
	if p == nil {
		return fmt.Errorf("payprotocoltest: no order %s", outTradeNo)
	}
	if p.status == status {
		return nil
	}
	s.setStatus(p, status)
	s.notify(payprotocol.CallbackPayment, p.outTradeNo, int(status), p.notifyURL, p.view(status))
	return nil
}

func (s *Server) setStatus(p *payment, status payprotocol.PaymentStatus) {
	p.status = status
	switch status {
	case payprotocol.PaymentPaid:
		p.paid.Set(p.amount)
	case payprotocol.PaymentPartiallyPaid:
		p.paid.Rsh(p.amount, 1)
	case payprotocol.PaymentPending, payprotocol.PaymentFailed:
		p.paid.SetInt64(0)
	}
	if p.paid.Sign() > 0 && p.txHash == "" {
		sum := sha256.Sum256([]byte("tx/" + p.outPayment))
		p.txHash = hex.EncodeToString(sum[:])
		p.blockTime = s.o.Now().Unix()
	}
}

// SetQuote sets the price a payment answers in quoteCurrencySymbol and
// quoteAmount (a decimal string), and whether it is a fiat currency.
func (s *Server) SetQuote(outTradeNo, symbol, amount string, legalTender bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.payments[outTradeNo]
	if p == nil {
		return fmt.Errorf("payprotocoltest: no order %s", outTradeNo)
	}
	p.quoteCur, p.quoteAmount, p.legal = symbol, amount, legalTender
	return nil
}

// Payment returns a payment as the fake holds it (its true status, not
// what a stuck query shows).
func (s *Server) Payment(outTradeNo string) (payprotocol.Payment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.payments[outTradeNo]
	if p == nil {
		return payprotocol.Payment{}, false
	}
	return payprotocol.Payment{OutTradeNo: p.outTradeNo, OutPaymentNo: p.outPayment, Status: p.status,
		ChainID: p.chainID, IsLegalTender: p.legal, QuoteCurrency: p.quoteCur, QuoteAmount: p.quoteAmount,
		ExpectedAmount: p.amount.String(), SettlementAmount: p.paid.String(), SettlementCurrency: p.currency,
		TxHash: p.txHash, WalletAddress: p.wallet, FromAddress: p.from()}, true
}

// paymentDetail answers GET /payment/detail. A Stuck fault keeps showing
// the status of the previous query for Fault.Polls more queries.
func (s *Server) paymentDetail(r request) reply {
	no := r.query.Get("outTradeNo")
	if no == "" {
		return refuse(payprotocol.CodeBadRequest, "missing parameter: outTradeNo")
	}
	p := s.payments[no]
	if pn := r.query.Get("outPaymentNo"); p == nil || (pn != "" && pn != p.outPayment) {
		return s.notFound("order")
	}
	show := p.status
	if r.fault.Kind == fault.Stuck {
		if p.stuck == 0 {
			p.frozen = p.shown
		}
		p.stuck += r.fault.Polls
	}
	if p.stuck > 0 {
		p.stuck--
		show = p.frozen
	}
	p.shown = show
	return success(p.view(show))
}

// view is the payment as Pay Protocol publishes it ("Query payment order
// details"): every documented field by its name, amounts as integer
// strings scaled by the settlement currency's decimals, and no decimals
// field (there is none).
func (p *payment) view(status payprotocol.PaymentStatus) map[string]any {
	settled := "0"
	if status != payprotocol.PaymentPending && status != payprotocol.PaymentFailed {
		settled = p.paid.String()
	}
	legal := 0
	if p.legal {
		legal = 1
	}
	v := map[string]any{"chainId": p.chainID, "orgId": 1, "outTradeNo": p.outTradeNo, "outPaymentNo": p.outPayment,
		"description": p.order.Description, "isLegalTender": legal, "quoteCurrencySymbol": p.quoteCur,
		"quoteAmount": p.quoteAmount, "paymentStatus": int(status), "paymentType": 0,
		"expectedAmount": p.amount.String(), "settlementAmount": settled, "settlementCurrencySymbol": p.currency,
		"transferHash": p.txHash, "userWalletAddress": p.wallet, "fromAddress": "", "createTime": p.createdAt.UTC().Format(time.DateTime)}
	if settled != "0" {
		v["fromAddress"] = p.from()
		v["blockTime"] = p.blockTime
	}
	for k, x := range p.poison {
		if x == nil {
			delete(v, k)
			continue
		}
		v[k] = x
	}
	return v
}

// from is the buyer's address, made up from the order.
func (p *payment) from() string {
	sum := sha256.Sum256([]byte("buyer/" + p.outTradeNo))
	return "0x" + hex.EncodeToString(sum[:20])
}

// createPaymentOrder answers POST /payment/createPaymentOrder.
func (s *Server) createPaymentOrder(r request) reply {
	var in paymentOrder
	if rep, ok := r.decode(&in); !ok {
		return rep
	}
	if rep, ok := in.check(); !ok {
		return rep
	}
	if p := s.payments[in.OutTradeNo]; p != nil {
		if !sameOrder(p.order, in) {
			return refuse(payprotocol.CodeBadRequest, "outTradeNo already exists")
		}
		return success(p.created())
	}
	currency, decimals := in.QuoteCurrency, s.o.CoinDecimals
	if *in.IsLegalTender == 1 {
		currency = s.o.Coin
	}
	scaled, err := payprotocol.ScaledFromDecimal(in.QuoteAmount, decimals)
	if err != nil {
		return refuse(payprotocol.CodeBadRequest, "invalid parameter: quoteAmount")
	}
	v, _ := new(big.Int).SetString(scaled, 10)
	p := s.newPayment(in.OutTradeNo, *in.ChainID, *in.IsLegalTender == 1, in.QuoteCurrency, in.QuoteAmount, currency, decimals, v)
	p.order, p.notifyURL = in, in.NotifyURL
	return success(p.created())
}

// check validates a payment order as Pay Protocol documents its fields.
func (in paymentOrder) check() (reply, bool) {
	for _, f := range []struct{ name, v string }{{"description", in.Description}, {"outTradeNo", in.OutTradeNo},
		{"quoteCurrencySymbol", in.QuoteCurrency}, {"quoteAmount", in.QuoteAmount}, {"notifyUrl", in.NotifyURL}} {
		if f.v == "" {
			return refuse(payprotocol.CodeBadRequest, "missing parameter: "+f.name), false
		}
	}
	switch {
	case in.ChainID == nil || *in.ChainID <= 0:
		return refuse(payprotocol.CodeBadRequest, "invalid parameter: chainId"), false
	case in.IsLegalTender == nil || (*in.IsLegalTender != 0 && *in.IsLegalTender != 1):
		return refuse(payprotocol.CodeBadRequest, "invalid parameter: isLegalTender"), false
	}
	if *in.IsLegalTender == 1 {
		cur, err := pipeline.ParseCurrency(in.QuoteCurrency)
		if err != nil {
			return refuse(payprotocol.CodeBadRequest, "invalid parameter: quoteCurrencySymbol"), false
		}
		if v, err := pipeline.ParseMinor(in.QuoteAmount, cur); err != nil || v <= 0 || in.QuoteAmount[0] == '-' {
			return refuse(payprotocol.CodeBadRequest, "invalid parameter: quoteAmount"), false
		}
	}
	if s, err := payprotocol.ScaledFromDecimal(in.QuoteAmount, payprotocol.MaxDecimals); err != nil || s == "0" {
		return refuse(payprotocol.CodeBadRequest, "invalid parameter: quoteAmount"), false
	}
	return reply{}, true
}

// sameOrder compares two payment orders field by field, by value.
func sameOrder(a, b paymentOrder) bool {
	ea, _ := json.Marshal(a)
	eb, _ := json.Marshal(b)
	return bytes.Equal(ea, eb)
}

func (p *payment) created() map[string]any {
	return map[string]any{"outPaymentNo": p.outPayment, "paymentUrl": "/pay/" + p.outPayment,
		"userWalletAddress": p.wallet, "saltHash": p.salt}
}

// notifyPayment answers GET /payment/notify?outTradeNo=...: the payment
// callback is sent again, on the whole schedule.
func (s *Server) notifyPayment(r request) reply {
	no := r.query.Get("outTradeNo")
	if no == "" {
		return refuse(payprotocol.CodeBadRequest, "missing parameter: outTradeNo")
	}
	p := s.payments[no]
	if p == nil {
		return s.notFound("order")
	}
	if p.notifyURL == "" {
		return refuse(payprotocol.CodeBadRequest, "order has no notifyUrl")
	}
	s.notify(payprotocol.CallbackPayment, p.outTradeNo, int(p.status), p.notifyURL, p.view(p.status))
	return success(nil)
}
