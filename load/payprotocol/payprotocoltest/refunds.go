package payprotocoltest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/payprotocol"
)

type refund struct {
	id         string
	outTradeNo string
	outPayment string
	amount     *big.Int
	status     payprotocol.RefundStatus
	left       int // detail queries still to answer the current status
	notifyURL  string
	address    string
	txHash     string
	chainID    int
	currencyID int // currencyId: its payment's currency unless SetRefundCurrency
	created    time.Time
	poison     map[string]any // PoisonRefund's fields
}

// Refunds returns every refund order, in the order they were created,
// with their current status.
func (s *Server) Refunds() []payprotocol.Refund {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]payprotocol.Refund, 0, len(s.refundList))
	for _, id := range s.refundList {
		rf := s.refunds[id]
		out = append(out, payprotocol.Refund{RefundID: rf.id, OutTradeNo: rf.outTradeNo, OutPaymentNo: rf.outPayment,
			Status: rf.status, CurrencyID: rf.currencyID, ChainID: rf.chainID, Amount: new(big.Int).Set(rf.amount), Fee: new(big.Int), Address: rf.address, TxHash: rf.txHash})
	}
	return out
}

// RejectRefund has the merchant's approver reject a refund still waiting
// (status 5, rejected, and its callback).
func (s *Server) RejectRefund(refundID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rf := s.refunds[refundID]
	if rf == nil {
		return fmt.Errorf("payprotocoltest: no refund %s", refundID)
	}
	if rf.status.Final() {
		return fmt.Errorf("payprotocoltest: refund %s is already %s", refundID, rf.status)
	}
	p := s.payments[rf.outTradeNo]
	p.reserved.Sub(p.reserved, rf.amount)
	rf.status = payprotocol.RefundRejected
	s.notify(payprotocol.CallbackRefund, rf.id, int(rf.status), rf.notifyURL, rf.view(rf.status))
	return nil
}

// refundDetail answers GET /refund/detail by refundId, or the order's
// latest refund by outTradeNo. A refund shows pending approval for Polls
// queries, then under review for Polls more, then success; a Stuck fault
// adds Fault.Polls queries to the current status.
func (s *Server) refundDetail(r request) reply {
	rf, rep, found := s.findRefund(r.query.Get("outTradeNo"), r.query.Get("refundId"))
	if !found {
		return rep
	}
	show := rf.status
	if !rf.status.Final() {
		if r.fault.Kind == fault.Stuck {
			rf.left += r.fault.Polls
		}
		if rf.left--; rf.left <= 0 {
			s.advance(rf)
		}
	}
	return success(rf.view(show))
}

// findRefund finds a refund by id (of outTradeNo, when given) or the
// latest of outTradeNo.
func (s *Server) findRefund(outTradeNo, id string) (*refund, reply, bool) {
	switch {
	case id != "":
		rf := s.refunds[id]
		if rf == nil || (outTradeNo != "" && rf.outTradeNo != outTradeNo) {
			return nil, s.notFound("refund"), false
		}
		return rf, reply{}, true
	case outTradeNo != "":
		if rf := s.latest[outTradeNo]; rf != nil {
			return rf, reply{}, true
		}
		return nil, s.notFound("refund"), false
	}
	return nil, refuse(payprotocol.CodeBadRequest, "missing parameter: outTradeNo or refundId"), false
}

// addRefund keeps a new refund, the latest of its order, in its payment's
// currency. s.mu is held.
func (s *Server) addRefund(rf *refund) {
	if p := s.payments[rf.outTradeNo]; p != nil {
		rf.currencyID = s.openCurrency(p.chainID, p.currency, p.decimals).id
	}
	s.refunds[rf.id] = rf
	s.refundList = append(s.refundList, rf.id)
	s.latest[rf.outTradeNo] = rf
}

// advance moves a refund on: pending approval to under review, under
// review to success.
func (s *Server) advance(rf *refund) {
	if rf.status == payprotocol.RefundPendingApproval && s.polls > 0 {
		rf.status, rf.left = payprotocol.RefundUnderReview, s.polls
		return
	}
	p := s.payments[rf.outTradeNo]
	p.reserved.Sub(p.reserved, rf.amount)
	p.refunded.Add(p.refunded, rf.amount)
	if p.refunded.Cmp(p.paid) >= 0 {
		p.status = payprotocol.PaymentRefunded
	}
	sum := sha256.Sum256([]byte("refund/" + rf.id))
	rf.status, rf.txHash = payprotocol.RefundSuccess, hex.EncodeToString(sum[:])
	s.notify(payprotocol.CallbackRefund, rf.id, int(rf.status), rf.notifyURL, rf.view(rf.status))
}

func (rf *refund) view(status payprotocol.RefundStatus) map[string]any {
	id, _ := strconv.Atoi(rf.id)
	v := map[string]any{"refundId": id, "chainId": rf.chainID, "currencyId": rf.currencyID, "outTradeNo": rf.outTradeNo,
		"outPaymentNo": rf.outPayment, "refundAddress": rf.address, "refundAmount": rf.amount.String(),
		"refundFee": "0", "refundStatus": int(status), "refundTime": rf.created.UTC().Format(time.DateTime)}
	if status == payprotocol.RefundSuccess {
		v["transferHash"] = rf.txHash
	}
	for k, x := range rf.poison {
		if x == nil {
			delete(v, k)
			continue
		}
		v[k] = x
	}
	return v
}

// createRefundOrder answers POST /refund/createRefundOrder: a paid order
// can be refunded up to what was settled and not yet refunded; the amount
// (a decimal string, one to one in the payment's currency) defaults to all
// of that.
func (s *Server) createRefundOrder(r request) reply {
	var in struct {
		OutTradeNo      string `json:"outTradeNo"`
		OutPaymentNo    string `json:"outPaymentNo"`
		Amount          string `json:"amount"`
		NotifyURL       string `json:"notifyUrl"`
		TransferAddress string `json:"transferAddress"`
	}
	if rep, ok := r.decode(&in); !ok {
		return rep
	}
	if in.OutTradeNo == "" {
		return refuse(payprotocol.CodeBadRequest, "missing parameter: outTradeNo")
	}
	p := s.payments[in.OutTradeNo]
	if p == nil || (in.OutPaymentNo != "" && in.OutPaymentNo != p.outPayment) {
		return s.notFound("order")
	}
	if p.status != payprotocol.PaymentPaid {
		return refuse(payprotocol.CodeBadRequest, "order not refundable: "+p.status.String())
	}
	left := new(big.Int).Sub(p.paid, p.refunded)
	left.Sub(left, p.reserved)
	amount := new(big.Int).Set(left)
	if in.Amount != "" {
		scaled, err := payprotocol.ScaledFromDecimal(in.Amount, p.decimals)
		if err != nil {
			return refuse(payprotocol.CodeBadRequest, "invalid parameter: amount")
		}
		amount.SetString(scaled, 10)
	}
	if amount.Sign() <= 0 || amount.Cmp(left) > 0 {
		return refuse(payprotocol.CodeBadRequest, "invalid parameter: amount exceeds the refundable amount")
	}
	s.seq++
	rf := &refund{id: strconv.Itoa(s.seq), outTradeNo: p.outTradeNo, outPayment: p.outPayment, amount: amount,
		status: payprotocol.RefundPendingApproval, left: s.polls, chainID: p.chainID, created: s.o.Now(), notifyURL: in.NotifyURL, address: in.TransferAddress}
	if rf.notifyURL == "" {
		rf.notifyURL = s.o.NotifyURL
	}
	if rf.address == "" {
		rf.address = "0xbuyer" + p.wallet[2:12]
	}
	p.reserved.Add(p.reserved, amount)
	s.addRefund(rf)
	if s.polls == 0 {
		s.advance(rf)
	}
	return success(map[string]any{"refundId": s.seq})
}

// notifyRefund answers GET /refund/notify?outTradeNo=...&refundId=... .
func (s *Server) notifyRefund(r request) reply {
	rf, rep, found := s.findRefund(r.query.Get("outTradeNo"), r.query.Get("refundId"))
	if !found {
		return rep
	}
	if rf.notifyURL == "" {
		return refuse(payprotocol.CodeBadRequest, "refund has no notifyUrl")
	}
	s.notify(payprotocol.CallbackRefund, rf.id, int(rf.status), rf.notifyURL, rf.view(rf.status))
	return success(nil)
}

// refundListPage answers GET /refund/list: the refund orders matching
// chainId, orderStatus, transactionHash and a creation time from startTime
// to endTime (Unix seconds, both included; assumed), newest first, a page
// of size (default 10, at most 500) at page (from 1, at most 1,000,000),
// with their count, as published. Listing moves no refund on (the detail
// query does).
func (s *Server) refundListPage(r request) reply {
	num := func(name string, def, lo, hi int64) (int64, bool) {
		v := r.query.Get(name)
		if v == "" {
			return def, true
		}
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil && n >= lo && n <= hi
	}
	page, ok1 := num("page", 1, 1, payprotocol.RefundListMaxPage)
	size, ok2 := num("size", 10, 1, payprotocol.RefundListMaxSize)
	chain, ok3 := num("chainId", 0, 1, math.MaxInt32)
	status, ok4 := num("orderStatus", -1, 0, 5)
	start, ok5 := num("startTime", math.MinInt64, 0, math.MaxInt64)
	end, ok6 := num("endTime", math.MaxInt64, 0, math.MaxInt64)
	for i, ok := range []bool{ok1, ok2, ok3, ok4, ok5, ok6} {
		if !ok {
			return refuse(payprotocol.CodeBadRequest, "invalid parameter: "+[]string{"page", "size", "chainId", "orderStatus", "startTime", "endTime"}[i])
		}
	}
	hash := r.query.Get("transactionHash")
	var match []*refund
	for i := len(s.refundList) - 1; i >= 0; i-- {
		rf := s.refunds[s.refundList[i]]
		switch at := rf.created.Unix(); {
		case chain != 0 && int64(rf.chainID) != chain, status >= 0 && int64(rf.status) != status,
			hash != "" && rf.txHash != hash, at < start, at > end:
			continue
		}
		match = append(match, rf)
	}
	list := []map[string]any{}
	if from := (page - 1) * size; from < int64(len(match)) {
		for _, rf := range match[from:min(from+size, int64(len(match)))] {
			list = append(list, rf.view(rf.status))
		}
	}
	return success(map[string]any{"count": len(match), "page": page, "size": size, "list": list})
}
