package wechatpay

import (
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

// TestReasonsWriteAmountsWithTheirCurrencysDecimals: what a person reads
// of WeChat Pay's order - the receivers paid all the same beside a closed
// one (the payout's reason), a line in another currency or lines that move
// another amount (the held transaction's reason), a line given twice (the
// mismatch's detail) - gives each amount in its currency's major unit, as
// every other reason does. They were the bare minor units: "paid all the
// same: 1900000001 200" for 2.00 CNY (read as 200 yuan), "receiver 2's 300
// in HKD" for 3.00 HKD, and in yen or dinars the same figure meant another
// power of ten again.
func TestReasonsWriteAmountsWithTheirCurrencysDecimals(t *testing.T) {
	t.Parallel()
	const sub, platform = "1900000109", "1900000001"
	for _, tc := range []struct {
		cur                              pipeline.Currency
		paid, moves, effect, line, twice string
	}{
		{"CNY", "2.00 CNY", "3.01 CNY", "3.00 CNY", "3.00 HKD", "6.00 CNY"},
		{"JPY", "200 JPY", "301 JPY", "300 JPY", "3.00 HKD", "600 JPY"},
		{"KWD", "0.200 KWD", "0.301 KWD", "0.300 KWD", "3.00 HKD", "0.600 KWD"},
	} {
		e := pipeline.Effect{ID: 1, Kind: KindDistribution, Key: "WX20250903O1A1", Currency: tc.cur, Amount: 300}
		rest := ShareResult{Type: TypeMerchantID, Account: sub, Amount: 700, Result: ResultSuccess}
		line := func(amount int64, result string) ShareResult {
			return ShareResult{Type: TypeMerchantID, Account: platform, Amount: amount, Result: result}
		}
		order := func(lines ...ShareResult) Order {
			return Order{SubMchID: sub, TransactionID: "4208450740201411110007820472", OutOrderNo: e.Key,
				OrderID: "3008450740201411110007820472", State: StateFinished, Receivers: append([]ShareResult{rest}, lines...)}
		}

		// One line closed, the other paid: failed, naming what was paid.
		out, err := outcome(e, sub, order(line(200, ResultSuccess), line(100, ResultClosed)))
		if want := "paid all the same: " + platform + " " + tc.paid; err != nil || !strings.HasSuffix(out.Reason, want) {
			t.Errorf("%s, a line closed: %+v, %v; want the reason to end %q", tc.cur, out, err, want)
		}
		// A line that names the request's currency reads the same.
		named := line(200, ResultSuccess)
		named.Currency = tc.cur
		if out, err := outcome(e, sub, order(named, line(100, ResultClosed))); err != nil || !strings.HasSuffix(out.Reason, tc.paid) {
			t.Errorf("%s, a line closed beside one naming %s: %+v, %v; want the reason to end %q", tc.cur, tc.cur, out, err, tc.paid)
		}

		// A unit more than the effect moves.
		_, err = outcome(e, sub, order(line(301, ResultSuccess)))
		if want := "moves " + tc.moves + ", the effect " + tc.effect; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s, a unit more moved: %v; want it to say %q", tc.cur, err, want)
		}

		// The platform's line in HKD.
		hkd := line(300, ResultSuccess)
		hkd.Currency = "HKD"
		_, err = outcome(e, sub, order(hkd))
		if want := "in HKD (" + tc.line + "), the effect's are in " + string(tc.cur); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s, a line in HKD: %v; want it to say %q", tc.cur, err, want)
		}

		// The reconciliation: the platform's line twice.
		a := pipeline.Attempt{Effect: pipeline.Effect{Kind: KindDistribution, Key: e.Key, Currency: tc.cur, Amount: 300, State: pipeline.EffectSucceeded},
			Item: pipeline.ChannelItem{Account: sub, Currency: tc.cur, SellerShare: 700}}
		pl := OrderLine{Platform: true, Result: ResultSuccess, Currency: tc.cur, Amount: 300}
		ms := compareOrder(a, OrderStatus{State: StateFinished, Lines: []OrderLine{pl, pl}}, 0)
		if want := "moving " + tc.twice + " in all"; len(ms) != 1 || !strings.Contains(ms[0].Detail, want) {
			t.Errorf("%s, the platform's line twice: %+v; want one finding saying %q", tc.cur, ms, want)
		}
	}
}

// TestMoneyOfACurrencySettleDoesNotKnowSaysMinorUnits: a line WeChat Pay
// names in a code settle does not know cannot be written in major units;
// it is written as the minor units it is, never as a bare figure that
// reads as major ones.
func TestMoneyOfACurrencySettleDoesNotKnowSaysMinorUnits(t *testing.T) {
	t.Parallel()
	if got, want := money(300, "XYZ"), "300 minor units of XYZ"; got != want {
		t.Errorf("money(300, XYZ) = %q, want %q", got, want)
	}
	if got, want := money(-5, "CNY"), "-0.05 CNY"; got != want {
		t.Errorf("money(-5, CNY) = %q, want %q", got, want)
	}
}
