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
// (scaled by the settlement currency's decimals, which no answer carries)
// is read with the configured decimals of its chain and symbol
// (--payprotocol-decimals), and without
// them it is reported, never guessed.
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
		{"", 0, `the decimals of "USDT" on chain 1 are not configured (--payprotocol-decimals)`},
		{"2:USDT=6,1:USDC=6", 0, `the decimals of "USDT" on chain 1 are not configured`},
		// Decimals that make the payment look settled at another rate
		// than one to one: its refund is read at the payment's own rate
		// (expectedAmount for the quote), in which the decimals cancel.
		{"1:USDT=18", 200, ""},
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
		// Decimals not configured are settle's to fix: the verification
		// holds the order (Unconfigured) rather than reject it.
		if o.Refund.Amount != tc.amount || !strings.Contains(o.Refund.AmountProblem, tc.problem) || (tc.problem == "") != (o.Refund.AmountProblem == "") ||
			o.Refund.Unconfigured != (tc.problem != "") {
			t.Errorf("%q: refund %+v, want %d %q", tc.decimals, *o.Refund, tc.amount, tc.problem)
		}
	}
}
