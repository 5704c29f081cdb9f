package wechatpaytest

import (
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/wechatpay"
)

type wireShare struct {
	Currency    string `json:"currency"`
	Type        string `json:"type"`
	Account     string `json:"account"`
	Name        string `json:"name,omitempty"`
	Amount      int64  `json:"amount"`
	Description string `json:"description"`
}

// distribute accepts a distribution once per out_order_no: it checks the
// transaction, the ratio cap and the unsplit amount, decides each line at
// once (SUCCESS, or CLOSED for a failing or not EFFECTIVE receiver) and
// shows PROCESSING for Polls queries. The same out_order_no with the same
// request answers the order as it stands; with another, it is refused.
func (s *Server) distribute(c call) reply {
	var in struct {
		SubMchID        string      `json:"sub_mchid"`
		AppID           string      `json:"appid,omitempty"`
		SubAppID        string      `json:"sub_appid,omitempty"`
		TransactionID   string      `json:"transaction_id"`
		OutOrderNo      string      `json:"out_order_no"`
		Receivers       []wireShare `json:"receivers"`
		UnfreezeUnsplit bool        `json:"unfreeze_unsplit"`
	}
	if a, ok := c.decode(&in); !ok {
		return a
	}
	if a, ok := s.checkOrder(in.SubMchID, in.TransactionID, in.OutOrderNo); !ok {
		return a
	}
	if n := len(in.Receivers); n < 1 || n > wechatpay.MaxReceivers {
		return paramError(fmt.Sprintf("receivers: want 1 to %d", wechatpay.MaxReceivers))
	}
	var total int64
	seen := map[[2]string]bool{}
	for i := range in.Receivers {
		r := &in.Receivers[i]
		if a, ok := s.checkShare(c, r); !ok {
			return a
		}
		// Published (Request funds-distribution, error codes): duplicate
		// receivers are refused, and so is the sponsor (the sub-merchant)
		// as a receiver unless unfreeze_unsplit is false.
		switch id := [2]string{r.Type, r.Account}; {
		case seen[id]:
			return refuse(http.StatusBadRequest, wechatpay.CodeInvalidRequest, "duplicate IDs in the receiver list")
		case in.UnfreezeUnsplit && r.Type == wechatpay.TypeMerchantID && r.Account == in.SubMchID:
			return refuse(http.StatusBadRequest, wechatpay.CodeInvalidRequest, "the sponsor can be a receiver only when unfreeze_unsplit is false")
		default:
			seen[id] = true
		}
		total += r.Amount
	}
	canon, _ := json.Marshal(in) // names decrypted: the ciphertext differs at every send
	if o, a, done := s.replay(in.SubMchID, in.OutOrderNo, "orders:"+string(canon)); done {
		if o != nil {
			return ok(o.view(s.processing(o)))
		}
		return a
	}
	t, a, ok2 := s.acceptable(in.SubMchID, in.TransactionID)
	if !ok2 {
		return a
	}
	switch {
	case total > t.frozen:
		return refuse(http.StatusBadRequest, wechatpay.CodeNotEnough, "the amount exceeds what is left to distribute")
	case t.distributed+total > ratioCap(t.amount, s.o.MaxRatio):
		return paramError("the amount exceeds the maximum distribution ratio of the order")
	}
	o := s.newOrder(t, in.TransactionID, in.OutOrderNo, "orders:"+string(canon))
	for _, r := range in.Receivers {
		l := line{typ: r.Type, account: r.Account, desc: r.Description, amount: r.Amount, result: wechatpay.ResultSuccess,
			detailID: fmt.Sprintf("36%018d", s.next())}
		if reason, failing := s.failing[r.Account]; failing {
			l.result, l.reason = wechatpay.ResultClosed, reason
		} else if rc := s.receivers[receiverKey(in.SubMchID, r.Type, r.Account)]; rc == nil || rc.state != wechatpay.ReceiverEffective {
			l.result, l.reason = wechatpay.ResultClosed, "NO_RELATION"
		}
		if l.result == wechatpay.ResultSuccess {
			t.frozen -= r.Amount
			t.distributed += r.Amount
			o.batch = s.settle(in.SubMchID, t.currency, r.Amount, o.at)
		}
		o.lines = append(o.lines, l)
	}
	if in.UnfreezeUnsplit {
		if t.frozen > 0 {
			o.lines = append(o.lines, line{typ: wechatpay.TypeMerchantID, account: in.SubMchID, desc: RestDescription,
				amount: t.frozen, result: wechatpay.ResultSuccess, detailID: fmt.Sprintf("36%018d", s.next()), rest: true})
		}
		t.unfrozen += t.frozen
		t.frozen = 0
	}
	return ok(o.view(s.processing(o)))
}

// RestDescription is the description of the line WeChat Pay adds to a
// distribution sent with unfreeze_unsplit: the rest, released to the
// seller (published answers show it so).
const RestDescription = "解冻给分账方"

// checkShare checks a receiver line and decrypts its name in place.
func (s *Server) checkShare(c call, r *wireShare) (reply, bool) {
	switch {
	case !slices.Contains([]string{wechatpay.TypeMerchantID, wechatpay.TypePersonalOpenID, wechatpay.TypePersonalSubOpenID}, r.Type):
		return paramError("receivers: unknown type"), false
	case r.Account == "" || r.Description == "" || r.Currency == "":
		return paramError("receivers: account, currency and description are required"), false
	case len([]rune(r.Description)) > wechatpay.MaxDescription:
		return paramError(fmt.Sprintf("receivers: description: at most %d characters", wechatpay.MaxDescription)), false
	case r.Amount <= 0:
		return paramError("receivers: amount must be positive"), false
	case r.Currency != string(wechatpay.DistributionCurrency):
		// Published: receivers[].currency is CNY (only, today).
		return paramError("receivers: currency " + r.Currency + " is not supported: funds are distributed in " + string(wechatpay.DistributionCurrency) + " only"), false
	}
	if r.Name == "" {
		return reply{}, true
	}
	if c.r.Header.Get(wechatpay.HeaderSerial) != s.o.Keys.PlatformSerial {
		return paramError("Wechatpay-Serial does not name the platform key the name is encrypted with"), false
	}
	name, err := wechatpay.DecryptSensitive(s.o.Keys.PlatformPrivate, r.Name)
	if err != nil {
		return paramError("receivers: name: " + err.Error()), false
	}
	r.Name = name
	return reply{}, true
}

// unfreeze releases the rest of a transaction to the seller: one line to
// the sub-merchant, frozen -> 0. Idempotent by out_order_no like
// distribute, in the same out_order_no space.
func (s *Server) unfreeze(c call) reply {
	var in struct {
		SubMchID      string `json:"sub_mchid"`
		TransactionID string `json:"transaction_id"`
		OutOrderNo    string `json:"out_order_no"`
		Description   string `json:"description"`
	}
	if a, ok := c.decode(&in); !ok {
		return a
	}
	if a, ok := s.checkOrder(in.SubMchID, in.TransactionID, in.OutOrderNo); !ok {
		return a
	}
	if in.Description == "" || len([]rune(in.Description)) > wechatpay.MaxDescription {
		return paramError(fmt.Sprintf("description: want 1 to %d characters", wechatpay.MaxDescription))
	}
	canon, _ := json.Marshal(in)
	if o, a, done := s.replay(in.SubMchID, in.OutOrderNo, "unfreeze:"+string(canon)); done {
		if o != nil {
			return ok(o.view(s.processing(o)))
		}
		return a
	}
	t, a, ok2 := s.acceptable(in.SubMchID, in.TransactionID)
	if !ok2 {
		return a
	}
	o := s.newOrder(t, in.TransactionID, in.OutOrderNo, "unfreeze:"+string(canon))
	o.unfreeze = true
	o.lines = []line{{typ: wechatpay.TypeMerchantID, account: in.SubMchID, desc: in.Description, amount: t.frozen,
		result: wechatpay.ResultSuccess, detailID: fmt.Sprintf("36%018d", s.next())}}
	t.unfrozen += t.frozen
	t.frozen = 0
	return ok(o.view(s.processing(o)))
}

func (s *Server) checkOrder(subMchID, transactionID, outOrderNo string) (reply, bool) {
	if a, ok := require([2]string{"sub_mchid", subMchID}, [2]string{"transaction_id", transactionID}, [2]string{"out_order_no", outOrderNo}); !ok {
		return a, false
	}
	if !wechatpay.ValidOutOrderNo(outOrderNo) {
		return paramError("out_order_no: at most 64 characters of [0-9A-Za-z_-]"), false
	}
	return reply{}, true
}

// replay finds an earlier request with the same out_order_no: the order
// when it is the same request, a refusal when it is another one. done is
// false for a new out_order_no.
func (s *Server) replay(subMchID, outOrderNo, req string) (*order, reply, bool) {
	o := s.orders[subMchID][outOrderNo]
	switch {
	case o == nil, s.forgotten(o):
		return nil, reply{}, false
	case o.req != req:
		return nil, refuse(http.StatusBadRequest, wechatpay.CodeInvalidRequest, "out_order_no already used with other parameters"), true
	}
	return o, reply{}, true
}

// acceptable returns the transaction a new request may use, or the refusal.
func (s *Server) acceptable(subMchID, transactionID string) (*txn, reply, bool) {
	if a, other := s.otherSubMerchant(subMchID, transactionID); other {
		return nil, a, false
	}
	t := s.txns[transactionID]
	s.release(t)
	switch {
	case t == nil:
		return nil, notFound("transaction"), false
	case t.never || s.o.Now().Before(t.readyAt):
		return nil, refuse(http.StatusBadRequest, wechatpay.CodeOrderNotReady, "the transaction cannot be distributed yet, retry in a few minutes"), false
	case t.requests >= s.o.MaxRequests:
		return nil, refuse(http.StatusBadRequest, wechatpay.CodeInvalidRequest, fmt.Sprintf("at most %d distribution requests per transaction", s.o.MaxRequests)), false
	}
	return t, reply{}, true
}

// otherSubMerchant returns the refusal of a request naming, under
// sub-merchant subMchID, a transaction WeChat Pay holds at another
// sub-merchant, and true; false when the transaction is unknown or is
// subMchID's.
//
// Every global page naming a transaction (Request funds-distribution,
// Unfreeze remaining funds, Query funds-distribution result, Remaining
// Funds Amount to be Distributed Query: pay.weixin.qq.com/doc/global/v3/en/
// 4012356850, 4012356872, 4012356895) says its sub_mchid "needs to be
// consistent with the sub-merchant ID in the transaction of Weixin Pay",
// and none publishes the answer when it is not. The closest published one
// is the remaining-amount query's 400 INVALID_REQUEST "非本商户的订单不支持
// 查询" (an order not of this merchant cannot be queried: WeChat's
// official Go SDK wechatpay-go v0.2.20, services/profitsharing,
// QueryOrderAmount; the global page publishes 400 INVALID_REQUEST for a
// transaction it cannot distribute), so the fake answers that, to all
// four. The only published "not found" (404 RESOURCE_NOT_EXISTS, 记录不存在,
// the query's) is of an out_order_no that does not exist; the fake
// answered it here too, until a review: a request about a transaction of
// another sub-merchant is refused, its query included, never "not found"
// (which would let a distribution sent be read as one that never arrived).
func (s *Server) otherSubMerchant(subMchID, transactionID string) (reply, bool) {
	t := s.txns[transactionID]
	if t == nil || t.subMchID == subMchID {
		return reply{}, false
	}
	return refuse(http.StatusBadRequest, wechatpay.CodeInvalidRequest,
		"transaction "+transactionID+" is not of sub-merchant "+subMchID+": sub_mchid must be the sub-merchant of the transaction"), true
}

// newOrder records an accepted request on t.
func (s *Server) newOrder(t *txn, transactionID, outOrderNo, req string) *order {
	t.requests++
	o := &order{subMchID: t.subMchID, txnID: transactionID, outOrderNo: outOrderNo, req: req, left: s.o.Polls,
		orderID: fmt.Sprintf("30%018d", s.next()), at: s.o.Now(), cur: t.currency, ready: fault.Ready(s.o.Now, s.o.OrderDelay)}
	if s.orders[t.subMchID] == nil {
		s.orders[t.subMchID] = map[string]*order{}
	}
	s.orders[t.subMchID][outOrderNo] = o
	return o
}

// forgotten reports whether o was accepted longer than Options.Memory ago.
func (s *Server) forgotten(o *order) bool { return s.o.Memory > 0 && s.o.Now().Sub(o.at) > s.o.Memory }

// processing reports whether o still shows PROCESSING: polls left, or its
// OrderDelay not yet passed.
func (s *Server) processing(o *order) bool {
	return o.left > 0 || fault.Processing(s.o.Now, o.ready)
}

// queryOrder answers PROCESSING while polls are left (a Stuck fault adds
// Fault.Polls more) and until OrderDelay has passed since the request was
// accepted, then FINISHED with each line's result.
func (s *Server) queryOrder(c call) reply {
	no, sub, txnID := strings.TrimPrefix(c.path, "orders/"), c.query.Get("sub_mchid"), c.query.Get("transaction_id")
	if a, ok := require([2]string{"sub_mchid", sub}, [2]string{"transaction_id", txnID}); !ok {
		return a
	}
	if a, other := s.otherSubMerchant(sub, txnID); other {
		return a
	}
	o := s.orders[sub][no]
	if o == nil || o.txnID != txnID || s.forgotten(o) {
		return notFound("out_order_no")
	}
	if c.fault.Kind == fault.Stuck {
		o.left += c.fault.Polls
	}
	processing := o.left > 0
	if processing {
		o.left--
	}
	return ok(o.view(processing || fault.Processing(s.o.Now, o.ready)))
}

type (
	wireLine struct {
		// Currency is published in the answer's receiver lines as in the
		// request's (分账币种, "CNY" today), the rest's line too.
		Currency           string `json:"currency"`
		Type               string `json:"type"`
		Account            string `json:"account"`
		Amount             int64  `json:"amount"`
		Description        string `json:"description"`
		Result             string `json:"result"`
		FailReason         string `json:"fail_reason,omitempty"`
		DetailID           string `json:"detail_id"`
		CreateTime         string `json:"create_time"`
		FinishTime         string `json:"finish_time,omitempty"`
		SettlementCurrency string `json:"settlement_currency"`
		SettlementAmount   int64  `json:"settlement_amount"`
		Rate               int64  `json:"rate"`
	}
	wireOrder struct {
		SubMchID      string     `json:"sub_mchid"`
		TransactionID string     `json:"transaction_id"`
		OutOrderNo    string     `json:"out_order_no"`
		OrderID       string     `json:"order_id"`
		State         string     `json:"state"`
		Receivers     []wireLine `json:"receivers"`
	}
)

func (o *order) view(processing bool) wireOrder {
	v := wireOrder{SubMchID: o.subMchID, TransactionID: o.txnID, OutOrderNo: o.outOrderNo, OrderID: o.orderID, State: wechatpay.StateFinished}
	if processing {
		v.State = wechatpay.StateProcessing
	}
	at := o.at.In(wechatpay.Beijing).Format(time.RFC3339)
	for _, l := range o.lines {
		w := wireLine{Currency: string(l.currency(o.cur)), Type: l.typ, Account: l.account, Amount: l.shown(), Description: l.desc, Result: l.result,
			DetailID: l.detailID, CreateTime: at, SettlementCurrency: string(o.cur), Rate: 1}
		if processing {
			w.Result = wechatpay.ResultPending
		} else {
			w.FailReason, w.FinishTime = l.reason, at
		}
		if w.Result == wechatpay.ResultSuccess {
			w.SettlementAmount = l.shown()
		}
		v.Receivers = append(v.Receivers, w)
	}
	return v
}

func (s *Server) amounts(c call) reply {
	id := strings.TrimSuffix(strings.TrimPrefix(c.path, "transactions/"), "/amounts")
	sub := c.query.Get("sub_mchid")
	if a, ok := require([2]string{"sub_mchid", sub}, [2]string{"transaction_id", id}); !ok {
		return a
	}
	if a, other := s.otherSubMerchant(sub, id); other {
		return a
	}
	t := s.txns[id]
	if t == nil {
		return notFound("transaction")
	}
	s.release(t)
	if t.never || s.o.Now().Before(t.readyAt) {
		// Published (Funds-distribution Mark): "When the transaction funds
		// cannot be distributed, an error prompt will be returned".
		return refuse(http.StatusBadRequest, wechatpay.CodeOrderNotReady, "the transaction cannot be distributed yet, retry in a few minutes")
	}
	if s.poisoned["garbled@"+id] != "" {
		return ok(map[string]any{"transaction_id": id, "unsplit_amount": "a lot", "currency": string(t.currency)})
	}
	return ok(map[string]any{"transaction_id": id, "unsplit_amount": t.frozen, "currency": string(t.currency)})
}

// ratioCap returns floor(amount * bp / 10000).
func ratioCap(amount int64, bp int) int64 {
	v := new(big.Int).Mul(big.NewInt(amount), big.NewInt(int64(bp)))
	return v.Quo(v, big.NewInt(10000)).Int64()
}
