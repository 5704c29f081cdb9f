package payprotocol_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/settlekit/settle/internal/finaltest"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
	"github.com/settlekit/settle/pipeline"
)

// TestMatcherWithPaymentsKept: of an order whose payment alone the
// verification found in agreement, the matcher asks the latest refund
// alone, and the payment too only when Pay Protocol shows a refund; what
// it finds is what asking both finds (--reconcile-all), whatever Pay
// Protocol shows since: a refund unknown to the platform, partial, whole
// (the payment refunded) or awaiting approval, a refund we net of another
// amount, a refund whose amount cannot be read (the decimals configured
// for its currency disagree with Pay Protocol's currency list), a payment
// failed since while the ledger changed (a late refund). A payment failed
// since while the ledger did not change is found by asking both alone (as
// a whole answer kept), and, its kept payment forgotten by it, by the
// default reconciliations after it. An order found clean keeps its whole
// answer.
func TestMatcherWithPaymentsKept(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, payprotocoltest.Options{Polls: 50}, func(c *payprotocol.Config) {
		var err error
		if c.Decimals, err = payprotocol.ParseDecimals("1:USDT=6,1:USDC=18"); err != nil {
			t.Fatal(err)
		}
	})
	add := func(no, currency string, st payprotocol.PaymentStatus) {
		t.Helper()
		if _, err := r.fake.AddPayment(no, currency, 6, "10000000", st); err != nil {
			t.Fatal(err)
		}
		if err := r.fake.SetQuote(no, "USD", "10.00", true); err != nil {
			t.Fatal(err)
		}
	}
	refund := func(no, amount string, st payprotocol.RefundStatus) {
		t.Helper()
		if _, err := r.fake.AddRefund(no, amount, st); err != nil {
			t.Fatal(err)
		}
	}
	for _, no := range []string{"A", "B", "C", "D", "E", "F", "G", "J"} {
		add(no, "USDT", payprotocol.PaymentPaid)
	}
	add("H", "USDC", payprotocol.PaymentPaid)
	add("I", "USDT", payprotocol.PaymentPending)
	refund("E", "900000", payprotocol.RefundSuccess)  // we net 1.00
	refund("J", "1000000", payprotocol.RefundSuccess) // we net 1.00
	store := &verifyStore{states: map[string]string{}}
	for _, no := range []string{"A", "B", "C", "D", "E", "F", "G", "H", "I", "J"} {
		var netted int64
		if no == "E" || no == "J" {
			netted = 100
		}
		store.items = append(store.items, toVerify(no, netted))
	}
	final := &finaltest.Answers{}
	api := payprotocol.Adapter{Client: r.client}
	pacer := pipeline.NewPacer(pipeline.Limits{MaxInFlight: 2})
	if s, err := payprotocol.Verify(ctx, store, api, pacer, final, &pipeline.Run{ID: 42}); !heldForAPerson(err, "1 Pay Protocol payments held") || s != "Pay Protocol: 9 payments verified, 1 held, 0 rejected" {
		t.Fatalf("%q, %v", s, err)
	}
	if n, p := len(final.Keys(payprotocol.Name)), len(final.Keys(payprotocol.PaymentAnswersName)); n != 1 || p != 8 {
		t.Fatalf("the verification kept %d whole answers and %d payments, want 1 (J) and 8", n, p)
	}

	// Since: at Pay Protocol, refunds the platform does not know, and
	// two payments failed; in the ledger, a late refund of F.
	refund("B", "500000", payprotocol.RefundSuccess)
	refund("C", "10000000", payprotocol.RefundSuccess) // all of it: the payment is refunded
	refund("D", "200000", payprotocol.RefundPendingApproval)
	refund("H", "1000000", payprotocol.RefundSuccess)
	for _, no := range []string{"F", "G"} {
		if err := r.fake.SetPaymentStatus(no, payprotocol.PaymentFailed); err != nil {
			t.Fatal(err)
		}
	}
	var items []pipeline.RefundedItem
	for _, it := range store.items {
		ri := pipeline.RefundedItem{OrderNo: it.OrderNo, SellerID: it.SellerID, ProviderTxnID: it.ProviderTxnID, Currency: it.Currency,
			Gross: it.Amount, Refunded: it.Refunded, State: itemPaid}
		switch it.ProviderTxnID {
		case "I":
			ri.State = pipeline.ItemHeld
		case "F":
			ri.Refunded, ri.LateRefunds, ri.LastLateRefund = 1, 1, 1
		}
		items = append(items, ri)
	}
	match := func(f pipeline.FinalAnswers) (ms []pipeline.Mismatch, payments, refunds int) {
		t.Helper()
		before := [2]int{r.fake.Calls(payprotocol.APIPaymentDetail), r.fake.Calls(payprotocol.APIRefundDetail)}
		ms, err := payprotocol.Matcher(payprotocol.MatcherConfig{Store: ppStore{items: items}, API: api, Pacer: pacer, Final: f,
			PageSize: 4})(ctx, &pipeline.Run{ID: 42})
		if err != nil {
			t.Fatal(err)
		}
		return ms, r.fake.Calls(payprotocol.APIPaymentDetail) - before[0], r.fake.Calls(payprotocol.APIRefundDetail) - before[1]
	}
	subjects := func(ms []pipeline.Mismatch) (out []string) {
		for _, m := range ms {
			out = append(out, m.Subject+" "+m.Category)
		}
		return out
	}
	kept, payments, refunds := match(final)
	// The refund alone of A, B, C, D, E, G, H; then the payment of those
	// showing one (B, C, D, E, H); F (its ledger changed) and I (held) in
	// full, neither paid; J not at all.
	if payments != 7 || refunds != 7 {
		t.Errorf("with the payments kept: %d payment and %d refund details asked, want 7 and 7", payments, refunds)
	}
	all, payments, refunds := match(pipeline.AskAll{Store: final})
	if payments != 10 || refunds != 6 {
		t.Errorf("asking all: %d payment and %d refund details asked, want 10 and 6 (the refunds of the paid A, B, D, E, H, J)", payments, refunds)
	}
	want := []string{"B amount", "C status", "D timing", "E amount", "F status", "G status", "H amount", "I timing"}
	if got := subjects(all); !reflect.DeepEqual(got, want) {
		t.Fatalf("asking all found %v, want %v:\n%+v", got, want, all)
	}
	var allButG []pipeline.Mismatch
	for _, m := range all {
		if m.Subject != "G" {
			allButG = append(allButG, m)
		}
	}
	if !reflect.DeepEqual(kept, allButG) {
		t.Fatalf("with the payments kept, found\n%+v\nasking all, apart from G\n%+v", kept, allButG)
	}
	for _, m := range kept {
		if m.Subject == "H" && !strings.HasSuffix(m.Detail, `cannot be compared: --payprotocol-decimals gives USDC on chain 1 18 decimals, Pay Protocol's currency list 6 (currency 4): correct or remove 1:USDC`) {
			t.Errorf("H: %+v", m)
		}
	}
	// A, found clean, keeps its whole answer; asking all forgot the
	// payments kept, so G is found by the default reconciliations since.
	a := items[0]
	if got, _ := final.FinalKeys(ctx, payprotocol.Name, []string{payprotocol.FinalKey(a)}); !got[payprotocol.FinalKey(a)] {
		t.Errorf("A's whole answer not kept: %v", final.Keys(payprotocol.Name))
	}
	if again, _, _ := match(final); !reflect.DeepEqual(again, all) {
		t.Fatalf("a default reconciliation after asking all found\n%+v\nwant\n%+v", again, all)
	}
}
