package infiniapaytest

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/pipeline"
)

// Share is one revenue-sharing request as the fake recorded it; Status is
// its final status (SUCCESS or FAILED), whatever the polls show so far.
type Share struct {
	RequestNo  string
	SellerID   string
	Currency   pipeline.Currency
	Amount     int64 // minor units
	Status     string
	Reference  string
	FailReason string
}

type share struct {
	Share
	req      map[string]string
	left     int       // PROCESSING answers still to give
	ready    time.Time // PROCESSING until then too (Options.ShareDelay)
	reported *int64    // ReportShareAmount: what queries say was paid
	lost     bool      // ForgetShare: queries answer not found
	at       time.Time // received, on Options.Now (Options.Memory)
}

// forgotten reports whether the fake no longer knows sh: lost
// (ForgetShare), or received longer than Options.Memory ago.
func (s *Server) forgotten(sh *share) bool { return sh.lost || s.expired(sh) }

// expired reports whether sh was received longer than Options.Memory ago.
func (s *Server) expired(sh *share) bool { return s.o.Memory > 0 && s.o.Now().Sub(sh.at) > s.o.Memory }

// ReportShareAmount makes status queries of the revenue share requestNo
// report minor as its amount (tampering, for reconciliation tests); the
// money moved is unchanged.
func (s *Server) ReportShareAmount(requestNo string, minor int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sh, ok := s.shares[requestNo]; ok {
		sh.reported = &minor
	}
}

// ForgetShare makes Infinia lose the revenue share requestNo: status
// queries answer not found (tampering, for reconciliation tests).
func (s *Server) ForgetShare(requestNo string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sh, ok := s.shares[requestNo]; ok {
		sh.lost = true
	}
}

var country = regexp.MustCompile(`^[A-Z]{3}$`)

// SetBinding sets a seller's binding status (PENDING, ACTIVE, FROZEN,
// REJECTED), creating the binding if needed.
func (s *Server) SetBinding(sellerID, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bindings[sellerID] = status
}

// RemoveBinding drops a seller's binding: Infinia no longer knows the
// seller, and its binding and available-share queries answer not found.
func (s *Server) RemoveBinding(sellerID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.bindings, sellerID)
}

// FailSharesOf makes every later revenue share to seller sellerID FAILED
// with reason, however its binding, the balance and its available share
// stand: a payout Infinia fails after the job's checks passed (for
// rehearsing a failed payout). An empty reason lets them succeed again.
func (s *Server) FailSharesOf(sellerID, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if reason == "" {
		delete(s.failShares, sellerID)
		return
	}
	if s.failShares == nil {
		s.failShares = map[string]string{}
	}
	s.failShares[sellerID] = reason
}

// Binding returns a seller's binding status, and whether there is one.
func (s *Server) Binding(sellerID string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.bindings[sellerID]
	return st, ok
}

// SetBalance sets the platform account's available balance in cur (minor
// units).
func (s *Server) SetBalance(cur pipeline.Currency, minor int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.balances[cur] = minor
}

// BalanceCurrencies returns the currencies a platform balance was set in
// (SetBalance), sorted.
func (s *Server) BalanceCurrencies() []pipeline.Currency {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]pipeline.Currency, 0, len(s.balances))
	for c := range s.balances {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// Balance returns the platform account's available balance in cur: what was
// set, less every accepted revenue share (debited on acceptance).
func (s *Server) Balance(cur pipeline.Currency) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.balances[cur]
}

// SetAvailable overrides a seller's available revenue share in cur.
func (s *Server) SetAvailable(sellerID string, cur pipeline.Currency, minor int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.available[account{sellerID, cur}] = minor
}

// Available returns a seller's available revenue share in cur: credited by
// successful trade files (or SetAvailable), debited by accepted shares.
func (s *Server) Available(sellerID string, cur pipeline.Currency) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.available[account{sellerID, cur}]
}

// Paid returns the total of the accepted revenue shares to a seller in
// cur: money that left the platform's balance (it shows SUCCESS after the
// polls).
func (s *Server) Paid(sellerID string, cur pipeline.Currency) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paid[account{sellerID, cur}]
}

// RevenueShares returns every distinct revenue-sharing request, in the
// order they were first received.
func (s *Server) RevenueShares() []Share {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Share, 0, len(s.shareOrder))
	for _, sh := range s.shareOrder {
		out = append(out, sh.Share)
	}
	return out
}

// bindAccount creates a PENDING binding for a new seller and answers a
// redirect URL; a repeated requestNo replays its first answer.
func (s *Server) bindAccount(c call) answer {
	if a, ok := c.require("requestNo", "sellerId", "sellerCertNo", "sellerName", "storeName", "storeUrl", "entityType", "country", "currency"); !ok {
		return a
	}
	if _, a, ok := c.currency(); !ok {
		return a
	}
	if e := c.req["entityType"]; e != "Corporate" && e != "Individual" {
		return refuse(infiniapay.CodeInvalidParameter, "invalid parameter: entityType")
	}
	if !country.MatchString(c.req["country"]) {
		return refuse(infiniapay.CodeInvalidParameter, "invalid parameter: country")
	}
	no := c.req["requestNo"]
	if prev, seen := s.bindReqs[no]; seen {
		if !sameRequest(prev.req, c.req) {
			return refuse(infiniapay.CodeInvalidParameter, "invalid parameter: requestNo already used with other parameters")
		}
		return success(prev.answer)
	}
	if _, bound := s.bindings[c.req["sellerId"]]; !bound {
		s.bindings[c.req["sellerId"]] = infiniapay.StatusPending
	}
	a := map[string]string{"requestNo": no, "redirectUrl": c.base + "bind/" + url.PathEscape(no)}
	s.bindReqs[no] = replay{req: c.req, answer: a}
	return success(a)
}

// bindingStatus, balance and availableShare answer with the requestNo
// asked echoed, as every other answer of the fake does and as the
// published upload status answer does (schema-199464716).
func (s *Server) bindingStatus(c call) answer {
	if a, ok := c.require("requestNo", "sellerId"); !ok {
		return a
	}
	st, bound := s.bindings[c.req["sellerId"]]
	if !bound {
		return notFound("seller")
	}
	return success(map[string]string{"requestNo": c.req["requestNo"], "sellerId": c.req["sellerId"], "status": st})
}

func (s *Server) balance(c call) answer {
	if a, ok := c.require("requestNo", "currency"); !ok {
		return a
	}
	cur, a, ok2 := c.currency()
	if !ok2 {
		return a
	}
	var frozen int64
	for _, sh := range s.shares {
		if sh.Currency == cur && sh.Status == infiniapay.StatusSuccess && sh.left > 0 {
			frozen += sh.Amount
		}
	}
	return success(map[string]string{"requestNo": c.req["requestNo"], "currency": wire(cur),
		"available": pipeline.FormatMinor(s.balances[cur], cur), "frozen": pipeline.FormatMinor(frozen, cur)})
}

func (s *Server) availableShare(c call) answer {
	if a, ok := c.require("requestNo", "sellerId", "currency"); !ok {
		return a
	}
	cur, a, ok2 := c.currency()
	if !ok2 {
		return a
	}
	seller := c.req["sellerId"]
	if _, bound := s.bindings[seller]; !bound {
		return notFound("seller")
	}
	return success(map[string]string{"requestNo": c.req["requestNo"], "sellerId": seller, "currency": wire(cur),
		"available": pipeline.FormatMinor(s.available[account{seller, cur}], cur)})
}

// revenueShare accepts a request once per requestNo: it decides the outcome
// at once (debiting the balance and the seller's available share when it
// will succeed) and shows PROCESSING for Polls status queries. A repeated
// requestNo with the same fields answers the current status and never pays
// again; with other fields it is refused. A requestNo past Options.Memory
// is taken as new, and pays again (simulated).
func (s *Server) revenueShare(c call) answer {
	if a, ok := c.require("requestNo", "sellerId", "currency", "amount"); !ok {
		return a
	}
	cur, a, ok2 := c.currency()
	if !ok2 {
		return a
	}
	amount, err := pipeline.ParseMinor(c.req["amount"], cur)
	if err != nil {
		return refuse(infiniapay.CodeBadFormat, "bad format: amount")
	}
	if amount <= 0 {
		return refuse(infiniapay.CodeOutOfRange, "out of range: amount")
	}
	no := c.req["requestNo"]
	if sh, seen := s.shares[no]; seen && !s.expired(sh) {
		if !sameRequest(sh.req, c.req) {
			return refuse(infiniapay.CodeInvalidParameter, "invalid parameter: requestNo already used with other parameters")
		}
		return success(sh.view(sh.left > 0 || fault.Processing(s.o.Now, sh.ready)))
	}
	s.refs++
	sh := &share{Share: Share{RequestNo: no, SellerID: c.req["sellerId"], Currency: cur, Amount: amount,
		Reference: fmt.Sprintf("IRS%010d", s.refs)}, req: c.req, left: s.polls, ready: fault.Ready(s.o.Now, s.o.ShareDelay), at: s.o.Now()}
	acct := account{sh.SellerID, cur}
	switch {
	case s.failShares[sh.SellerID] != "":
		sh.Status, sh.FailReason = infiniapay.StatusFailed, s.failShares[sh.SellerID]
	case s.bindings[sh.SellerID] != infiniapay.StatusActive:
		sh.Status, sh.FailReason = infiniapay.StatusFailed, "seller not ACTIVE"
	case s.balances[cur] < amount:
		sh.Status, sh.FailReason = infiniapay.StatusFailed, "insufficient balance"
	case s.available[acct] < amount:
		sh.Status, sh.FailReason = infiniapay.StatusFailed, "amount above the seller's available revenue share"
	default:
		sh.Status = infiniapay.StatusSuccess
		s.balances[cur] -= amount
		s.available[acct] -= amount
		s.paid[acct] += amount
	}
	s.shares[no] = sh
	s.shareOrder = append(s.shareOrder, sh)
	return success(sh.view(sh.left > 0 || fault.Processing(s.o.Now, sh.ready)))
}

// revenueShareStatus answers PROCESSING while polls are left (a Stuck fault
// adds Fault.Polls more), then the final status.
func (s *Server) revenueShareStatus(c call) answer {
	if a, ok := c.require("requestNo"); !ok {
		return a
	}
	sh, seen := s.shares[c.req["requestNo"]]
	if !seen || s.forgotten(sh) {
		return notFound("requestNo")
	}
	if c.fault.Kind == fault.Stuck {
		sh.left += c.fault.Polls
	}
	processing := sh.left > 0
	if processing {
		sh.left--
	}
	return success(sh.view(processing || fault.Processing(s.o.Now, sh.ready)))
}

func (sh *share) view(processing bool) map[string]string {
	amount := sh.Amount
	if sh.reported != nil {
		amount = *sh.reported
	}
	v := map[string]string{"requestNo": sh.RequestNo, "status": sh.Status, "reference": sh.Reference,
		"sellerId": sh.SellerID, "currency": wire(sh.Currency), "amount": pipeline.FormatMinor(amount, sh.Currency)}
	if processing {
		v["status"] = infiniapay.StatusProcessing
	} else if sh.FailReason != "" {
		v["failReason"] = sh.FailReason
	}
	return v
}
