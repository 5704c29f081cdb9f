package payprotocol

import (
	"encoding/json"
	"strconv"
	"testing"
)

// FuzzFlexInt checks the integers of Pay Protocol's answers (code,
// paymentStatus, refundStatus, isLegalTender, chainId): one is taken only
// as written in full, plainly ("0", "-1", as a number or a string), so
// that a status written "+0" or "00" is not read as paid.
func FuzzFlexInt(f *testing.F) {
	for _, s := range []string{`0`, `"0"`, `200`, `"200"`, `-1`, `null`, `"+0"`, `"00"`, `"-0"`, `" 0"`, `"0 "`,
		`"٣"`, `"0x10"`, `1e0`, `1.0`, `"1e0"`, `99999999999999999999`, `"9223372036854775807"`, `true`, `""`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var n flexInt
		if err := n.UnmarshalJSON(b); err != nil {
			return
		}
		text := string(b)
		var s string
		if json.Unmarshal(b, &s) == nil {
			text = s
		}
		if text != strconv.Itoa(int(n)) {
			t.Fatalf("flexInt %s read as %d", b, n)
		}
	})
}

// FuzzWireAnswers checks the reading of a payment and a refund as the
// detail queries and callbacks write them: what is accepted has a known
// status; a final payment names its order, says 0 or 1 for isLegalTender,
// and every scaled amount it keeps is empty or ASCII digits (one in
// progress is held whatever else it says); a refund's amounts are not
// negative, and a successful one has an amount.
func FuzzWireAnswers(f *testing.F) {
	for _, s := range []string{
		`{"outTradeNo":"T1","paymentStatus":0,"isLegalTender":1,"quoteCurrencySymbol":"USD","quoteAmount":"12.34","expectedAmount":"12340000","settlementAmount":"12340000","settlementCurrencySymbol":"USDT","chainId":1}`,
		`{"outTradeNo":"T1","paymentStatus":"+0","isLegalTender":"01","quoteCurrencySymbol":"USD","quoteAmount":"12.34"}`,
		`{"paymentStatus":1}`,
		`{"outTradeNo":"T1","paymentStatus":0,"isLegalTender":1,"quoteCurrencySymbol":"USD","quoteAmount":1.2e1,"expectedAmount":1.2e7}`,
		`{"refundId":82,"outTradeNo":"T1","refundStatus":0,"refundAmount":"1000000","refundFee":"0"}`,
		`{"refundId":"82","refundStatus":"0","refundAmount":null,"refundFee":"-1"}`,
		`{"refundId":"82","refundStatus":1,"refundAmount":"+5"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var wp wirePayment
		if json.Unmarshal(b, &wp) == nil {
			if p, err := wp.payment(); err == nil {
				switch {
				case !p.Status.Valid():
					t.Fatalf("payment %s: status %d", b, p.Status)
				case !p.Status.InProgress() && (p.OutTradeNo == "" || *wp.IsLegalTender != 0 && *wp.IsLegalTender != 1):
					t.Fatalf("payment %s: %+v", b, p)
				case !p.Status.InProgress() && (!emptyOrDigits(p.ExpectedAmount) || !emptyOrDigits(p.SettlementAmount)):
					t.Fatalf("payment %s: amounts %q, %q", b, p.ExpectedAmount, p.SettlementAmount)
				}
			}
		}
		var wr wireRefund
		if json.Unmarshal(b, &wr) == nil {
			if r, err := wr.refund(); err == nil {
				switch {
				case !r.Status.Valid() || r.RefundID == "":
					t.Fatalf("refund %s: %+v", b, r)
				case r.Amount != nil && r.Amount.Sign() < 0, r.Fee == nil || r.Fee.Sign() < 0:
					t.Fatalf("refund %s: amount %v, fee %v", b, r.Amount, r.Fee)
				case r.Status == RefundSuccess && r.Amount == nil:
					t.Fatalf("refund %s: a success without an amount", b)
				}
			}
		}
	})
}

func emptyOrDigits(s string) bool { return s == "" || digits(s) }
