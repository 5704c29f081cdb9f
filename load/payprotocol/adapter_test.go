package payprotocol_test

import (
	"context"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
	"github.com/settlekit/settle/pipeline"
)

// TestPayProtocolRefundAmountsNeedConfiguredDecimals: a refund amount
// is scaled by its currency's decimals, which no payment or refund answer
// carries: the refund names its currency by currencyId, and Pay
// Protocol's currency list of its chain gives that currency's symbol and
// decimals. The list's decimals read it, whether --payprotocol-decimals
// has the currency or not; configured decimals that disagree with the
// list's are reported (Unconfigured: settle's configuration to correct),
// never guessed between. (With 18 for USDT's 6 the refund was read at
// the payment's own rate, in which the decimals cancel, and was taken.)
func TestPayProtocolRefundAmountsNeedConfiguredDecimals(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, payprotocoltest.Options{Polls: -1}, nil) // refunds approved at once
	fake := r.fake
	if _, err := fake.AddPayment("T-1", "USDT", 6, "12340000", payprotocol.PaymentPaid); err != nil {
		t.Fatal(err)
	}
	if err := fake.SetQuote("T-1", "USD", "12.340000", true); err != nil {
		t.Fatal(err)
	}
	if _, err := fake.AddRefund("T-1", "2000000", payprotocol.RefundSuccess); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		decimals string
		amount   int64
		problem  string
	}{
		{"1:USDT=6", 200, ""},
		{"", 200, ""},                  // the list's
		{"2:USDT=6,1:USDC=6", 200, ""}, // the list's: USDT on chain 1 is not configured
		{"1:USDT=18", 0, "--payprotocol-decimals gives USDT on chain 1 18 decimals, Pay Protocol's currency list 6 (currency 1): correct or remove 1:USDT"},
	} {
		cfg := r.cfg
		dec, err := payprotocol.ParseDecimals(tc.decimals)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Decimals = dec
		c, err := payprotocol.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		o, err := payprotocol.Adapter{Client: c}.Order(ctx, "T-1")
		if err != nil || o.Quote != (pipeline.Money{Minor: 1234, Currency: "USD"}) || o.Refund == nil {
			t.Fatalf("%q: %+v, %v", tc.decimals, o, err)
		}
		// Decimals configured wrong are settle's to fix: the verification
		// holds the order (Unconfigured) rather than reject it.
		if o.Refund.Amount != tc.amount || !strings.Contains(o.Refund.AmountProblem, tc.problem) || (tc.problem == "") != (o.Refund.AmountProblem == "") ||
			o.Refund.Unconfigured != (tc.problem != "") {
			t.Errorf("%q: refund %+v, want %d %q", tc.decimals, *o.Refund, tc.amount, tc.problem)
		}
	}
}
