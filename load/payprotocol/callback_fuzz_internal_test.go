package payprotocol

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParseCallback reads any body as a callback: it never panics; one it
// takes is a payment or a refund with a documented status, whose amounts
// are as an answer's (digits only), and reads the same again from the
// body it keeps; one it refuses is an error saying it is a callback's.
func FuzzParseCallback(f *testing.F) {
	for _, s := range []string{
		`{"outTradeNo":"o1","outPaymentNo":"p1","paymentStatus":0,"isLegalTender":1,"quoteCurrencySymbol":"USD","quoteAmount":"12.30","expectedAmount":"12300000","settlementAmount":"12300000","settlementCurrencySymbol":"USDT","chainId":1}`,
		`{"code":0,"msg":"ok","data":{"outTradeNo":"o1","paymentStatus":"1"}}`,
		`{"refundId":82,"outTradeNo":"o1","refundStatus":2,"refundAmount":"1000"}`,
		`{"data":{"refundId":"7","refundStatus":0}}`,
		`{"refundId":"7","refundStatus":"+0"}`,
		`{"paymentStatus":null,"refundStatus":null}`,
		`{"data":{"data":{"paymentStatus":0}}}`,
		`[]`, `null`, ``, `{"paymentStatus":0,"refundStatus":1,"refundId":"r"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		cb, err := ParseCallback(body)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "callback") && !strings.Contains(err.Error(), ErrAnswer.Error()) {
				t.Fatalf("error %q says neither callback nor answer", err)
			}
			return
		}
		switch cb.Kind {
		case CallbackPayment:
			if !cb.Payment.Status.Valid() {
				t.Fatalf("payment status %d taken", cb.Payment.Status)
			}
			if !cb.Payment.Status.InProgress() {
				for _, a := range []string{cb.Payment.ExpectedAmount, cb.Payment.SettlementAmount} {
					if a != "" && !digits(a) {
						t.Fatalf("payment amount %q taken", a)
					}
				}
			}
		case CallbackRefund:
			if !cb.Refund.Status.Valid() || cb.Refund.RefundID == "" {
				t.Fatalf("refund %+v taken", cb.Refund)
			}
			if cb.Refund.Status == RefundSuccess && (cb.Refund.Amount == nil || cb.Refund.Amount.Sign() < 0) {
				t.Fatalf("successful refund without an amount: %+v", cb.Refund)
			}
		default:
			t.Fatalf("kind %q", cb.Kind)
		}
		if !json.Valid(cb.Body) || string(cb.Body) != string(body) {
			t.Fatalf("body kept as %q", cb.Body)
		}
		again, err := ParseCallback(cb.Body)
		if err != nil || again.Key() != cb.Key() {
			t.Fatalf("read again: key %q, %v; first %q", again.Key(), err, cb.Key())
		}
	})
}

// FuzzCallbackKey: two callbacks have one key (CallbackHandler delivers
// the second as a repeat, never) only when they report the same event:
// the same order, payment, status and paid amount, or the same refund and
// status.
func FuzzCallbackKey(f *testing.F) {
	f.Add("o1", "p1", 1, "100", "o1", "p1", 1, "100", false)
	f.Add("a/b", "c", 0, "5", "a", "b/c", 0, "5", false)
	f.Add("o", "p", 0, "", "o", "p", 0, "0", false)
	f.Add("7/SUCCESS", "", 2, "", "7", "", 2, "", true)
	f.Add("a%2Fb", "c", 0, "5", "a/b", "c", 0, "5", false)
	f.Fuzz(func(t *testing.T, order1, pay1 string, st1 int, paid1, order2, pay2 string, st2 int, paid2 string, refund bool) {
		var a, b Callback
		same := false
		if refund {
			a = Callback{Kind: CallbackRefund, Refund: Refund{RefundID: order1, Status: RefundStatus(st1)}}
			b = Callback{Kind: CallbackRefund, Refund: Refund{RefundID: order2, Status: RefundStatus(st2)}}
			same = order1 == order2 && st1 == st2
		} else {
			a = Callback{Kind: CallbackPayment, Payment: Payment{OutTradeNo: order1, OutPaymentNo: pay1, Status: PaymentStatus(st1), SettlementAmount: paid1}}
			b = Callback{Kind: CallbackPayment, Payment: Payment{OutTradeNo: order2, OutPaymentNo: pay2, Status: PaymentStatus(st2), SettlementAmount: paid2}}
			norm := func(s string) string {
				if s == "" {
					return "0"
				}
				return s
			}
			same = order1 == order2 && pay1 == pay2 && st1 == st2 && norm(paid1) == norm(paid2)
		}
		if (a.Key() == b.Key()) != same {
			t.Fatalf("keys %q and %q, same event %v", a.Key(), b.Key(), same)
		}
	})
}
