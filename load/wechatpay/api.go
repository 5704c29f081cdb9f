package wechatpay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// The API names used in errors, and by wechatpaytest as fault endpoints.
const (
	APIMark           = "transactions/mark"
	APIOrders         = "orders"
	APIUnfreeze       = "orders/unfreeze"
	APIQueryOrder     = "orders/query"
	APIAmounts        = "amounts"
	APIAddReceiver    = "receivers"
	APIReceiverResult = "receivers/query"
	APIDeleteReceiver = "receivers/delete"
	APIBillURL        = "bill-download-url"
	APIBill           = "bill"
	APISettlements    = "settlements"
	APIPreflight      = "preflight" // Client.Preflight, an orders query (the fake counts it as "orders/query")
)

// Distribution order states and receiver results.
const (
	StateProcessing = "PROCESSING"
	StateFinished   = "FINISHED"
	ResultPending   = "PENDING"
	ResultSuccess   = "SUCCESS"
	ResultClosed    = "CLOSED"
)

// Receiver types.
const (
	TypeMerchantID        = "MERCHANT_ID"
	TypePersonalOpenID    = "PERSONAL_OPENID"
	TypePersonalSubOpenID = "PERSONAL_SUB_OPENID"
)

// Limits WeChat Pay documents (Request funds-distribution,
// pay.weixin.qq.com/doc/global/v3/en/4012356850): a request is checked
// against them before it is sent, and wechatpaytest refuses what crosses
// them (PARAM_ERROR).
const (
	MaxReceivers     = 50 // receivers in one distribution request (receivers array[1,50])
	MaxOutOrderNo    = 64 // characters of an out_order_no (string[1,64] of [0-9A-Za-z_-])
	MaxTransactionID = 32 // characters of a transaction_id (string[1,32])
	MaxSubMchID      = 32 // characters of a sub_mchid (string[1,32])
	MaxDescription   = 80 // characters of a receiver line's description (mainland figure)

	// MaxSettlementLimit is the largest limit of a settlement details page
	// (Query Fund Settlement Details, pay.weixin.qq.com/doc/global/v3/en/4012356469:
	// "preferably 10 or less. The system supports up to 30 records").
	MaxSettlementLimit = 30
)

// FreezeWindow is how long WeChat Pay keeps a transaction's funds frozen
// for distribution: "Please process the funds of an order within 180
// days. After that, the WeChat Pay will automatically unfreeze the funds
// and settle them overseas" (Funds-distribution FAQ,
// pay.weixin.qq.com/wiki/doc/api_external/en/faq/chapter2_1_5.shtml). A
// transaction paid longer ago than that of which WeChat Pay holds less
// than the order is held saying so (StageConfig.Now), and wechatpaytest
// releases it to the seller.
const FreezeWindow = 180 * 24 * time.Hour

var (
	outOrderNo   = regexp.MustCompile(`^[0-9A-Za-z_-]{1,64}$`)
	orderStates  = []string{StateProcessing, StateFinished}
	results      = []string{ResultPending, ResultSuccess, ResultClosed}
	receiverKind = []string{TypeMerchantID, TypePersonalOpenID, TypePersonalSubOpenID}
)

// ValidOutOrderNo reports whether s may be an out_order_no: 1 to 64
// characters of [0-9A-Za-z_-].
func ValidOutOrderNo(s string) bool { return outOrderNo.MatchString(s) }

// MarkRequest marks an order for funds distribution, before it is paid.
type MarkRequest struct {
	SubMchID   string
	OutTradeNo string // the merchant's order number of the payment
	Currency   pipeline.Currency
}

// Distribution asks WeChat Pay to pay parts of a transaction's frozen funds
// to receivers.
type Distribution struct {
	SubMchID        string // the sub-merchant (seller) whose transaction is split
	AppID           string // optional; required for PERSONAL_OPENID receivers
	SubAppID        string // optional; required for PERSONAL_SUB_OPENID receivers
	TransactionID   string // WeChat Pay's transaction id of the payment
	OutOrderNo      string // the idempotency key: deterministic, one per attempt
	Receivers       []Share
	UnfreezeUnsplit bool // unfreeze what is left for the seller once this is done
}

// Share is one receiver's part of a distribution.
type Share struct {
	Type        string            // TypeMerchantID, TypePersonalOpenID or TypePersonalSubOpenID
	Account     string            // a merchant id or an OpenID
	Name        string            // optional plain name; sent encrypted (RSA-OAEP) under the platform key
	Currency    pipeline.Currency // CNY today
	Amount      int64             // minor units, > 0
	Description string            // shown to the receiver; required
}

// Total returns the sum of the receivers' amounts (minor units), or an
// error on overflow.
func (d Distribution) Total() (int64, error) {
	var total int64
	for _, r := range d.Receivers {
		var err error
		if total, err = pipeline.Add(total, r.Amount); err != nil {
			return 0, err
		}
	}
	return total, nil
}

// Unfreeze asks WeChat Pay to release what is left of a transaction's
// frozen funds to the seller. It shares the out_order_no space with
// distributions.
type Unfreeze struct {
	SubMchID      string
	TransactionID string
	OutOrderNo    string
	Description   string
}

// Order is WeChat Pay's word on one distribution or unfreeze.
type Order struct {
	SubMchID      string
	TransactionID string
	OutOrderNo    string
	OrderID       string // WeChat Pay's distribution order id
	State         string // StateProcessing or StateFinished
	Receivers     []ShareResult
}

// ShareResult is the state of one receiver line of an Order. An unfreeze
// has one line paying the rest to the seller.
type ShareResult struct {
	Type    string
	Account string
	// Currency is the line's currency (receivers[].currency, 分账币种,
	// published in the answer as in the request: CNY today); "" when the
	// answer does not give it. Amount is in its minor units.
	Currency           pipeline.Currency
	Amount             int64 // minor units of Currency (of the transaction's currency when not given)
	Description        string
	Result             string // ResultPending, ResultSuccess or ResultClosed
	FailReason         string // with ResultClosed, e.g. ACCOUNT_ABNORMAL, NO_RELATION
	DetailID           string
	CreateTime         time.Time // zero when not given
	FinishTime         time.Time // zero until finished
	SettlementCurrency pipeline.Currency
	SettlementAmount   int64  // minor units of SettlementCurrency
	Rate               string // the exchange rate as WeChat Pay writes it
}

// Unsplit is what is left to distribute of a transaction.
type Unsplit struct {
	TransactionID string
	Currency      pipeline.Currency
	Amount        int64 // minor units
}

// The wire forms (PROVIDERS.md): amounts are integers in minor units.
type (
	wireMark struct {
		SubMchID   string `json:"sub_mchid"`
		OutTradeNo string `json:"out_trade_no"`
		Currency   string `json:"currency"`
	}
	wireShare struct {
		Currency    string `json:"currency"`
		Type        string `json:"type"`
		Account     string `json:"account"`
		Name        string `json:"name,omitempty"`
		Amount      int64  `json:"amount"`
		Description string `json:"description"`
	}
	wireDistribution struct {
		SubMchID        string      `json:"sub_mchid"`
		AppID           string      `json:"appid,omitempty"`
		SubAppID        string      `json:"sub_appid,omitempty"`
		TransactionID   string      `json:"transaction_id"`
		OutOrderNo      string      `json:"out_order_no"`
		Receivers       []wireShare `json:"receivers"`
		UnfreezeUnsplit bool        `json:"unfreeze_unsplit"`
	}
	wireUnfreeze struct {
		SubMchID      string `json:"sub_mchid"`
		TransactionID string `json:"transaction_id"`
		OutOrderNo    string `json:"out_order_no"`
		Description   string `json:"description"`
	}
	wireShareResult struct {
		Currency           string `json:"currency,omitempty"`
		Type               string `json:"type"`
		Account            string `json:"account"`
		Amount             int64  `json:"amount"`
		Description        string `json:"description"`
		Result             string `json:"result"`
		FailReason         string `json:"fail_reason,omitempty"`
		DetailID           string `json:"detail_id"`
		CreateTime         string `json:"create_time,omitempty"`
		FinishTime         string `json:"finish_time,omitempty"`
		SettlementCurrency string `json:"settlement_currency,omitempty"`
		SettlementAmount   int64  `json:"settlement_amount,omitempty"`
		Rate               number `json:"rate,omitempty"`
	}
	wireOrder struct {
		SubMchID      string            `json:"sub_mchid"`
		TransactionID string            `json:"transaction_id"`
		OutOrderNo    string            `json:"out_order_no"`
		OrderID       string            `json:"order_id"`
		State         string            `json:"state"`
		Receivers     []wireShareResult `json:"receivers"`
	}
	wireUnsplit struct {
		TransactionID string `json:"transaction_id,omitempty"`
		UnsplitAmount *int64 `json:"unsplit_amount"` // required: missing is not 0
		Currency      string `json:"currency"`
	}
)

// Mark marks an order for funds distribution (WeChat Pay answers 204).
// Marking again is harmless, so it is retried.
func (c *Client) Mark(ctx context.Context, r MarkRequest) error {
	sp := c.spec(APIMark, http.MethodPost, distributionPrefix+"transactions/mark", nil, r.OutTradeNo, r.SubMchID)
	if r.SubMchID == "" || r.OutTradeNo == "" || !r.Currency.Valid() {
		return sp.fail(failLocal, errors.New("want a sub_mchid, an out_trade_no and a known currency"))
	}
	return c.call(ctx, sp, wireMark{SubMchID: r.SubMchID, OutTradeNo: r.OutTradeNo, Currency: string(r.Currency)}, nil)
}

// Distribute asks WeChat Pay to distribute d; the answer is usually
// PROCESSING. The same out_order_no is the same request, so it is resent
// only when WeChat Pay says it was not processed (HTTP 429, or
// SYSTEM_ERROR with the same parameters) or no connection was made. When
// the answer never arrived or cannot be trusted, the error wraps
// ErrUnknownOutcome: ask QueryOrder with the same out_order_no first.
func (c *Client) Distribute(ctx context.Context, d Distribution) (Order, error) {
	sp := c.spec(APIOrders, http.MethodPost, distributionPrefix+"orders", nil, d.OutOrderNo, d.SubMchID)
	sp.once, sp.keyed = true, true
	in, err := c.wireDistribution(d)
	if err != nil {
		return Order{}, sp.fail(failLocal, err)
	}
	return c.order(ctx, sp, in, d.TransactionID)
}

func (c *Client) wireDistribution(d Distribution) (wireDistribution, error) {
	if err := checkOrderKeys(d.SubMchID, d.TransactionID, d.OutOrderNo); err != nil {
		return wireDistribution{}, err
	}
	if n := len(d.Receivers); n < 1 || n > MaxReceivers {
		return wireDistribution{}, fmt.Errorf("%d receivers: want 1 to %d", n, MaxReceivers)
	}
	if _, err := d.Total(); err != nil {
		return wireDistribution{}, err
	}
	in := wireDistribution{SubMchID: d.SubMchID, AppID: d.AppID, SubAppID: d.SubAppID, TransactionID: d.TransactionID,
		OutOrderNo: d.OutOrderNo, UnfreezeUnsplit: d.UnfreezeUnsplit}
	for i, r := range d.Receivers {
		switch {
		case !slices.Contains(receiverKind, r.Type):
			return wireDistribution{}, fmt.Errorf("receiver %d: unknown type %q", i+1, r.Type)
		case !validAccount(r.Account):
			return wireDistribution{}, fmt.Errorf("receiver %d: account must be 1 to 64 characters of [0-9A-Za-z_-]", i+1)
		case !r.Currency.Valid() || r.Amount <= 0:
			return wireDistribution{}, fmt.Errorf("receiver %d: want a known currency and a positive amount (got %d)", i+1, r.Amount)
		case r.Description == "" || len([]rune(r.Description)) > MaxDescription:
			return wireDistribution{}, fmt.Errorf("receiver %d: want a description of 1 to %d characters", i+1, MaxDescription)
		}
		w := wireShare{Currency: string(r.Currency), Type: r.Type, Account: r.Account, Amount: r.Amount, Description: r.Description}
		if r.Name != "" {
			name, err := c.encrypt(r.Name)
			if err != nil {
				return wireDistribution{}, fmt.Errorf("receiver %d: %w", i+1, err)
			}
			w.Name = name
		}
		in.Receivers = append(in.Receivers, w)
	}
	return in, nil
}

// Unfreeze asks WeChat Pay to release the rest of a transaction to the
// seller. Like Distribute, it is never resent blindly: an answer that
// never arrived wraps ErrUnknownOutcome.
func (c *Client) Unfreeze(ctx context.Context, u Unfreeze) (Order, error) {
	sp := c.spec(APIUnfreeze, http.MethodPost, distributionPrefix+"orders/unfreeze", nil, u.OutOrderNo, u.SubMchID)
	sp.once, sp.keyed = true, true
	if err := checkOrderKeys(u.SubMchID, u.TransactionID, u.OutOrderNo); err != nil {
		return Order{}, sp.fail(failLocal, err)
	}
	if u.Description == "" || len([]rune(u.Description)) > MaxDescription {
		return Order{}, sp.fail(failLocal, fmt.Errorf("want a description of 1 to %d characters", MaxDescription))
	}
	return c.order(ctx, sp, wireUnfreeze(u), u.TransactionID)
}

// QueryOrder returns WeChat Pay's state of the distribution or unfreeze
// out_order_no of a transaction; ErrNotFound when WeChat Pay never saw it
// (it is then safe to send it again with the same out_order_no).
func (c *Client) QueryOrder(ctx context.Context, subMchID, transactionID, outOrderNo string) (Order, error) {
	q := url.Values{"sub_mchid": {subMchID}, "transaction_id": {transactionID}}
	sp := c.spec(APIQueryOrder, http.MethodGet, distributionPrefix+"orders/"+outOrderNo, q, outOrderNo, subMchID)
	if err := checkOrderKeys(subMchID, transactionID, outOrderNo); err != nil {
		return Order{}, sp.fail(failLocal, err)
	}
	return c.order(ctx, sp, nil, transactionID)
}

// order makes a call answered by an Order and checks the answer. A money
// request's answer that cannot be read says nothing of the money.
func (c *Client) order(ctx context.Context, sp spec, in any, transactionID string) (Order, error) {
	var out wireOrder
	if err := c.call(ctx, sp, in, &out); err != nil {
		return Order{}, err
	}
	o, err := readOrder(out, sp.key, transactionID)
	if err == nil && o.SubMchID != "" && o.SubMchID != sp.subMchID {
		// Our out_order_no and transaction at another sub-merchant: not
		// the request we sent (it was taken as ours).
		err = fmt.Errorf("answer for sub-merchant %q, the request is %s's", clip(o.SubMchID), sp.subMchID)
	}
	if err != nil {
		e := sp.fail(failBadAnswer, fmt.Errorf("%w: %w", ErrAnswer, err))
		if sp.once {
			e.Err = unknown(e.Err)
		}
		return Order{}, e
	}
	return o, nil
}

func readOrder(w wireOrder, outOrderNo, transactionID string) (Order, error) {
	switch {
	case !slices.Contains(orderStates, w.State):
		return Order{}, fmt.Errorf("unknown state %q", clip(w.State))
	case w.OutOrderNo != "" && w.OutOrderNo != outOrderNo:
		return Order{}, fmt.Errorf("answer for out_order_no %q", clip(w.OutOrderNo))
	case w.TransactionID != "" && w.TransactionID != transactionID:
		return Order{}, fmt.Errorf("answer for transaction %q", clip(w.TransactionID))
	}
	o := Order{SubMchID: w.SubMchID, TransactionID: transactionID, OutOrderNo: outOrderNo, OrderID: w.OrderID, State: w.State}
	for i, r := range w.Receivers {
		if !slices.Contains(results, r.Result) {
			return Order{}, fmt.Errorf("receiver %d: unknown result %q", i+1, clip(r.Result))
		}
		if r.Currency != "" && !pipeline.Currency(r.Currency).Valid() {
			return Order{}, fmt.Errorf("receiver %d: unknown currency %q", i+1, clip(r.Currency))
		}
		if r.Amount < 0 || r.SettlementAmount < 0 {
			// Taken, a negative line made the others add up to the
			// effect's amount while they moved more.
			return Order{}, fmt.Errorf("receiver %d: negative amount %d (settlement_amount %d)", i+1, r.Amount, r.SettlementAmount)
		}
		created, err1 := parseTime(r.CreateTime)
		finished, err2 := parseTime(r.FinishTime)
		if err := errors.Join(err1, err2); err != nil {
			return Order{}, fmt.Errorf("receiver %d: %w", i+1, err)
		}
		if finished.Year() <= 1970 {
			finished = time.Time{} // a PENDING line's finish_time is 1970-01-01T08:00:00+08:00
		}
		o.Receivers = append(o.Receivers, ShareResult{Type: r.Type, Account: r.Account, Currency: pipeline.Currency(r.Currency), Amount: r.Amount,
			Description: r.Description, Result: r.Result, FailReason: clip(r.FailReason), DetailID: r.DetailID,
			CreateTime: created, FinishTime: finished, SettlementCurrency: pipeline.Currency(r.SettlementCurrency),
			SettlementAmount: r.SettlementAmount, Rate: string(r.Rate)})
	}
	return o, nil
}

// RemainingAmount returns what is left to distribute of a transaction.
// Distribution becomes possible a few minutes after payment.
func (c *Client) RemainingAmount(ctx context.Context, subMchID, transactionID string) (Unsplit, error) {
	q := url.Values{"sub_mchid": {subMchID}}
	sp := c.spec(APIAmounts, http.MethodGet, distributionPrefix+"transactions/"+transactionID+"/amounts", q, transactionID, subMchID)
	if err := checkTxnKeys(subMchID, transactionID); err != nil {
		return Unsplit{}, sp.fail(failLocal, err)
	}
	var out wireUnsplit
	if err := c.call(ctx, sp, nil, &out); err != nil {
		return Unsplit{}, err
	}
	switch {
	case out.TransactionID != "" && out.TransactionID != transactionID:
		return Unsplit{}, sp.fail(failBadAnswer, fmt.Errorf("%w: answer for transaction %q", ErrAnswer, clip(out.TransactionID)))
	case out.UnsplitAmount == nil:
		// Read as 0 it said WeChat Pay holds nothing, which the stage
		// takes as the seller's share released.
		return Unsplit{}, sp.fail(failBadAnswer, fmt.Errorf("%w: no unsplit_amount", ErrAnswer))
	case *out.UnsplitAmount < 0 || !pipeline.Currency(out.Currency).Valid():
		return Unsplit{}, sp.fail(failBadAnswer, fmt.Errorf("%w: unsplit amount %d %q", ErrAnswer, *out.UnsplitAmount, clip(out.Currency)))
	}
	return Unsplit{TransactionID: transactionID, Currency: pipeline.Currency(out.Currency), Amount: *out.UnsplitAmount}, nil
}

func checkOrderKeys(subMchID, transactionID, outOrderNo string) error {
	if !ValidOutOrderNo(outOrderNo) {
		return fmt.Errorf("%w: out_order_no %q: want 1 to %d characters of [0-9A-Za-z_-]", ErrBadKeys, clip(outOrderNo), MaxOutOrderNo)
	}
	return checkTxnKeys(subMchID, transactionID)
}

// checkTxnKeys checks a transaction's sub-merchant and id (ErrBadKeys).
func checkTxnKeys(subMchID, transactionID string) error {
	switch {
	case subMchID == "" || len(subMchID) > MaxSubMchID:
		return fmt.Errorf("%w: sub_mchid %q: want 1 to %d characters", ErrBadKeys, clip(subMchID), MaxSubMchID)
	case transactionID == "" || len(transactionID) > MaxTransactionID || !tokenChars(transactionID):
		return fmt.Errorf("%w: transaction id %q: want 1 to %d characters of [0-9A-Za-z_-]", ErrBadKeys, clip(transactionID), MaxTransactionID)
	}
	return nil
}

// validAccount reports whether s may go into a path: a merchant id, an
// OpenID or a transaction id.
func validAccount(s string) bool { return len(s) <= 64 && tokenChars(s) }

// encrypt encrypts a sensitive field under the platform key named by
// Config.EncryptSerial.
func (c *Client) encrypt(plain string) (string, error) {
	if c.encKey == nil {
		return "", errors.New("a name needs encrypting but Config.EncryptSerial names no platform key")
	}
	return EncryptSensitive(c.encKey, plain)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: want RFC 3339", clip(s))
	}
	return t, nil
}

// number is a decimal that WeChat Pay may write as a JSON number or as a
// string; it keeps the text.
type number string

// UnmarshalJSON accepts a JSON string or number.
func (n *number) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*n = number(s)
		return nil
	}
	var num json.Number
	if err := json.Unmarshal(b, &num); err != nil {
		return err
	}
	*n = number(num)
	return nil
}
