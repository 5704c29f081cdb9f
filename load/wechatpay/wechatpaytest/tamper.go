package wechatpaytest

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
)

// Tampering: WeChat Pay disagreeing with what it did, for reconciliation
// tests. Money already moved stays moved (Frozen, Distributed and Unfrozen
// do not change); only what WeChat Pay reports changes.

// ForgetOrder makes WeChat Pay lose the distribution or unfreeze
// outOrderNo, at whichever sub-merchant: queries answer 404 not found, and
// bills and settlement details no longer count it (a settlement batch left
// with nothing is gone).
func (s *Server) ForgetOrder(outOrderNo string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub, orders := range s.orders {
		o := orders[outOrderNo]
		if o == nil {
			continue
		}
		delete(orders, outOrderNo)
		if len(orders) == 0 {
			delete(s.orders, sub)
		}
		b := o.batch
		if b == nil {
			continue
		}
		for _, l := range o.lines {
			if l.result == wechatpay.ResultSuccess && !l.rest {
				b.amount -= l.amount
			}
		}
		if b.amount == 0 {
			s.batches = slices.DeleteFunc(s.batches, func(x *batch) bool { return x == b })
		}
	}
}

// SetReportedAmount makes queries and bills report minor (minor units) as
// the amount of the first receiver line of the distribution or unfreeze
// outOrderNo: the platform receiver's line of settle's distributions, which
// have one, or an unfreeze's only line. Settlement details keep what was
// moved.
func (s *Server) SetReportedAmount(outOrderNo string, minor int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, orders := range s.orders {
		if o := orders[outOrderNo]; o != nil && len(o.lines) > 0 {
			o.lines[0].reported = &minor
		}
	}
}

// SetReportedCurrency makes queries and bills report cur as the currency
// of the line to account (a receiver, or the sub-merchant for the rest
// or an unfreeze's line) of the distribution or unfreeze outOrderNo; its
// amount is unchanged. Settlement details keep what was moved.
func (s *Server) SetReportedCurrency(outOrderNo, account string, cur pipeline.Currency) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, orders := range s.orders {
		if o := orders[outOrderNo]; o != nil {
			for i := range o.lines {
				if o.lines[i].account == account {
					o.lines[i].reportedCur = cur
				}
			}
		}
	}
}

// Poison makes WeChat Pay refuse, definitely, every request about
// transaction transactionID (its remaining amount, distributions,
// unfreezes and their queries): a signed HTTP 400 with code and a message.
// Nothing about it is applied.
func (s *Server) Poison(transactionID, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.poisoned[transactionID] = code
}

// Cure undoes Poison and Garble of transaction transactionID: WeChat Pay
// answers about it again.
func (s *Server) Cure(transactionID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.poisoned, transactionID)
	delete(s.poisoned, "garbled@"+transactionID)
}

// Garble makes WeChat Pay answer, signed, what cannot be read about
// transaction transactionID's remaining amount.
func (s *Server) Garble(transactionID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.poisoned["garbled@"+transactionID] = "garbled"
}

// PoisonReceivers makes WeChat Pay refuse, definitely, adding a receiver
// at sub-merchant subMchID: a signed HTTP 400 with code.
func (s *Server) PoisonReceivers(subMchID, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.poisoned["receivers@"+subMchID] = code
}

// poison returns the refusal of a request about a poisoned transaction,
// or of a receiver add at a poisoned sub-merchant.
func (s *Server) poison(c call) (reply, bool) {
	if c.path == "receivers" && c.r.Method == http.MethodPost {
		var b struct {
			SubMchID string `json:"sub_mchid"`
		}
		json.Unmarshal(c.body, &b)
		s.mu.Lock()
		code := s.poisoned["receivers@"+b.SubMchID]
		s.mu.Unlock()
		if code != "" {
			return refuse(http.StatusBadRequest, code, "receivers refused at sub-merchant "+b.SubMchID), false
		}
	}
	txn := c.query.Get("transaction_id")
	if id, ok := strings.CutPrefix(c.path, "transactions/"); ok {
		txn, _, _ = strings.Cut(id, "/")
	}
	if txn == "" && len(c.body) > 0 {
		var b struct {
			TransactionID string `json:"transaction_id"`
		}
		json.Unmarshal(c.body, &b)
		txn = b.TransactionID
	}
	s.mu.Lock()
	code := s.poisoned[txn]
	s.mu.Unlock()
	if txn == "" || code == "" {
		return reply{}, true
	}
	return refuse(http.StatusBadRequest, code, "transaction "+txn+" refused"), false
}

// ProbeSignatures makes the next n answers of endpoint (a wechatpay API
// name) WeChat Pay's signature probes, which it publishes it sends in "a
// very few" answers and callbacks to check that merchants verify them:
// Wechatpay-Signature is wechatpay.SignProbePrefix before a signature,
// which then does not verify. Each answer is otherwise the one it would
// be, and what its request asked is applied.
func (s *Server) ProbeSignatures(endpoint string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.probes[endpoint] += n
}
