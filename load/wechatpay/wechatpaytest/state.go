package wechatpaytest

import (
	"cmp"
	"net/http"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
)

// txn is a paid transaction whose funds are frozen for distribution, in
// CNY fen (wechatpay.DistributionCurrency), whatever it was paid in.
type txn struct {
	subMchID    string
	currency    pipeline.Currency // what it is held and distributed in: CNY
	amount      int64             // the order amount: the ratio cap's base
	frozen      int64             // still to distribute or unfreeze
	distributed int64             // paid to receivers (SUCCESS lines)
	unfrozen    int64             // released to the seller
	requests    int               // distinct distribution and unfreeze requests accepted
	readyAt     time.Time
	paidAt      time.Time // its frozen funds go to the seller wechatpay.FreezeWindow after
	never       bool      // waits for SetReady
}

// release gives the seller what is still frozen of t once
// wechatpay.FreezeWindow has passed since it was paid, as WeChat Pay
// publishes it does.
func (s *Server) release(t *txn) {
	if t != nil && t.frozen > 0 && !s.o.Now().Before(t.paidAt.Add(wechatpay.FreezeWindow)) {
		t.unfrozen += t.frozen
		t.frozen = 0
	}
}

// order is one distribution or unfreeze request. Its outcome is decided
// when it is accepted; left is how many queries still show PROCESSING.
type order struct {
	subMchID, txnID, outOrderNo, orderID string
	req                                  string // the request, canonical, for idempotency
	lines                                []line
	left                                 int
	ready                                time.Time // PROCESSING until then too (Options.OrderDelay)
	at                                   time.Time
	cur                                  pipeline.Currency
	unfreeze                             bool
	batch                                *batch // the settlement batch its SUCCESS lines went into
}

type line struct {
	typ, account, desc string
	amount             int64
	result, reason     string
	detailID           string
	reported           *int64            // the amount queries and bills show instead (SetReportedAmount)
	reportedCur        pipeline.Currency // the currency queries and bills show instead (SetReportedCurrency)
	// rest marks the line of a distribution sent with unfreeze_unsplit
	// that releases the rest to the seller ("解冻给分账方", as WeChat Pay
	// answers it): not a receiver's, in no settlement batch, an unfreeze
	// line in the bill.
	rest bool
}

// shown is the amount queries and bills report for the line.
func (l line) shown() int64 {
	if l.reported != nil {
		return *l.reported
	}
	return l.amount
}

// currency is the currency queries and bills report for the line of an
// order in cur.
func (l line) currency(cur pipeline.Currency) pipeline.Currency {
	return cmp.Or(l.reportedCur, cur)
}

// AddTransaction records a paid transaction of a sub-merchant: amount
// (minor units of paidIn) less WeChat Pay's fee (Options.FeeBps) is
// frozen for distribution, which becomes possible
// Options.ReadyAfter later (or after SetReady). WeChat Pay holds and
// distributes it in CNY whatever paidIn is: a transaction paid in another
// currency is held as that many CNY fen (the fake's rate is 1, as its
// settlement rate; WeChat Pay converts at its own), so that its amounts
// answer says CNY, not the order's currency.
func (s *Server) AddTransaction(subMchID, transactionID string, paidIn pipeline.Currency, amount int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.txns[transactionID] = &txn{subMchID: subMchID, currency: wechatpay.DistributionCurrency, amount: amount, frozen: amount - ratioCap(amount, s.o.FeeBps),
		readyAt: s.o.Now().Add(max(s.o.ReadyAfter, 0)), paidAt: s.o.Now(), never: s.o.ReadyAfter < 0}
}

// SetPaidAt says when a transaction was paid (AddTransaction: now): what
// is still frozen of it goes to the seller wechatpay.FreezeWindow after.
func (s *Server) SetPaidAt(transactionID string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.txns[transactionID]; t != nil {
		t.paidAt = at
	}
}

// Refund returns amount (minor units) of a transaction to the buyer out of
// what is still frozen, as a refund before its distribution does: the
// transaction holds less (amount less its share of WeChat Pay's fee,
// which the refund takes back), and its order amount, the ratio cap's
// base, stays what the buyer paid. A refund of more than is frozen is
// ignored.
func (s *Server) Refund(transactionID string, amount int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	net := amount - ratioCap(amount, s.o.FeeBps)
	if t := s.txns[transactionID]; t != nil && amount > 0 && net <= t.frozen {
		t.frozen -= net
	}
}

// SetReady makes a transaction distributable now.
func (s *Server) SetReady(transactionID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.txns[transactionID]; t != nil {
		t.never, t.readyAt = false, s.o.Now()
	}
}

// FailReceiver makes every later distribution line to account CLOSED
// with reason (e.g. "ACCOUNT_ABNORMAL"); an empty reason stops it.
func (s *Server) FailReceiver(account, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if reason == "" {
		delete(s.failing, account)
		return
	}
	s.failing[account] = reason
}

// Frozen returns what is left to distribute of a transaction (minor units).
func (s *Server) Frozen(transactionID string) int64 {
	return s.txnField(transactionID, func(t *txn) int64 { return t.frozen })
}

// Distributed returns what a transaction paid to receivers (minor units).
func (s *Server) Distributed(transactionID string) int64 {
	return s.txnField(transactionID, func(t *txn) int64 { return t.distributed })
}

// Unfrozen returns what a transaction released to the seller (minor units).
func (s *Server) Unfrozen(transactionID string) int64 {
	return s.txnField(transactionID, func(t *txn) int64 { return t.unfrozen })
}

// Requests returns how many distinct distribution and unfreeze requests a
// transaction accepted.
func (s *Server) Requests(transactionID string) int {
	return int(s.txnField(transactionID, func(t *txn) int64 { return int64(t.requests) }))
}

func (s *Server) txnField(id string, f func(*txn) int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.txns[id]; t != nil {
		return f(t)
	}
	return 0
}

// Marked reports whether an order was marked for distribution.
func (s *Server) Marked(subMchID, outTradeNo string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.marks[subMchID+"/"+outTradeNo]
}

func (s *Server) mark(c call) reply {
	var in struct {
		SubMchID   string `json:"sub_mchid"`
		OutTradeNo string `json:"out_trade_no"`
		Currency   string `json:"currency"`
	}
	if a, ok := c.decode(&in); !ok {
		return a
	}
	if a, ok := require([2]string{"sub_mchid", in.SubMchID}, [2]string{"out_trade_no", in.OutTradeNo}, [2]string{"currency", in.Currency}); !ok {
		return a
	}
	s.marks[in.SubMchID+"/"+in.OutTradeNo] = true
	return reply{status: http.StatusNoContent}
}
