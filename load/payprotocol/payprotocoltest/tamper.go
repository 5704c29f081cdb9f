package payprotocoltest

import (
	"fmt"
	"math/big"
	"strconv"

	"github.com/settlekit/settle/load/payprotocol"
)

// Tampering: what happens at Pay Protocol behind the platform's back, for
// reconciliation tests. A payment whose price changes is SetQuote; one that
// fails or is refunded is SetPaymentStatus.

// AddRefund records a refund of a paid order that nobody asked for through
// the API (say, made by hand on Pay Protocol's console), for amount (an
// integer string scaled by 10^decimals of the payment's currency), in
// status, and returns its refundId. It becomes the order's latest refund.
// A successful one counts against the payment at once (all of it refunded:
// the payment is refunded) and sends its callback; one in progress is
// reserved and moves on with detail queries like any other; a failed or
// rejected one only sends its callback. Like createRefundOrder, it refuses
// an unpaid order and an amount above what is left to refund.
func (s *Server) AddRefund(outTradeNo, amount string, status payprotocol.RefundStatus) (string, error) {
	v, ok := new(big.Int).SetString(amount, 10)
	if !ok || v.Sign() <= 0 || !status.Valid() {
		return "", fmt.Errorf("payprotocoltest: AddRefund(%q, %q, %d): want a positive scaled amount and a valid status", outTradeNo, amount, status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.payments[outTradeNo]
	if p == nil {
		return "", fmt.Errorf("payprotocoltest: no order %s", outTradeNo)
	}
	if p.status != payprotocol.PaymentPaid {
		return "", fmt.Errorf("payprotocoltest: order %s is %s, not refundable", outTradeNo, p.status)
	}
	left := new(big.Int).Sub(p.paid, p.refunded)
	left.Sub(left, p.reserved)
	if v.Cmp(left) > 0 {
		return "", fmt.Errorf("payprotocoltest: refund %s of order %s: only %s is left to refund", amount, outTradeNo, left)
	}
	s.seq++
	rf := &refund{id: strconv.Itoa(s.seq), outTradeNo: p.outTradeNo, outPayment: p.outPayment, amount: v,
		status: status, left: s.polls, notifyURL: s.o.NotifyURL, address: "0xbuyer" + p.wallet[2:12], chainID: p.chainID, created: s.o.Now()}
	s.addRefund(rf)
	switch {
	case status == payprotocol.RefundSuccess:
		p.reserved.Add(p.reserved, v)
		s.advance(rf) // settles it: refunded total, payment status, hash, callback
	case !status.Final():
		p.reserved.Add(p.reserved, v)
	default:
		s.notify(payprotocol.CallbackRefund, rf.id, int(rf.status), rf.notifyURL, rf.view(rf.status))
	}
	return rf.id, nil
}

// RemovePayment forgets a payment order and its refunds, as if Pay
// Protocol had never had it: its detail queries answer not found.
func (s *Server) RemovePayment(outTradeNo string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.payments[outTradeNo] == nil {
		return fmt.Errorf("payprotocoltest: no order %s", outTradeNo)
	}
	delete(s.payments, outTradeNo)
	delete(s.latest, outTradeNo)
	kept := s.refundList[:0]
	for _, id := range s.refundList {
		if s.refunds[id].outTradeNo == outTradeNo {
			delete(s.refunds, id)
			continue
		}
		kept = append(kept, id)
	}
	s.refundList = kept
	return nil
}

// RefundedAmount returns what the order's successful refunds returned to
// the buyer in all, an integer string scaled like the payment's amount; ok
// is false for an unknown order. Pay Protocol's API does not show it (only
// the latest refund); tests compare with it.
func (s *Server) RefundedAmount(outTradeNo string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.payments[outTradeNo]
	if p == nil {
		return "", false
	}
	return p.refunded.String(), true
}

// PoisonPayment makes every later detail query and callback of a payment
// show value in field (say "settlementAmount": "1e6", an amount no client
// may read), whatever else the payment does; a nil value removes the
// field.
func (s *Server) PoisonPayment(outTradeNo, field string, value any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.payments[outTradeNo]
	if p == nil {
		return fmt.Errorf("payprotocoltest: no order %s", outTradeNo)
	}
	if p.poison == nil {
		p.poison = map[string]any{}
	}
	p.poison[field] = value
	return nil
}

// PoisonRefund makes every later detail query and callback of a refund
// show value in field (say "chainId": 2, a refund on another chain than
// its payment), whatever else the refund does; a nil value removes the
// field.
func (s *Server) PoisonRefund(refundID, field string, value any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rf := s.refunds[refundID]
	if rf == nil {
		return fmt.Errorf("payprotocoltest: no refund %s", refundID)
	}
	if rf.poison == nil {
		rf.poison = map[string]any{}
	}
	rf.poison[field] = value
	return nil
}

// ClearPoison undoes PoisonPayment: the payment's answers are its own
// again.
func (s *Server) ClearPoison(outTradeNo string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.payments[outTradeNo]; p != nil {
		p.poison = nil
	}
}
