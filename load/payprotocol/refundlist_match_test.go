package payprotocol_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/internal/finaltest"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
	"github.com/settlekit/settle/pipeline"
)

// listStore is ppStore that also says which listed orders are the run's
// (payprotocol.RunOrders).
type listStore struct{ ppStore }

func (s listStore) ProviderTxnsOfRun(_ context.Context, runID int64, ch pipeline.Channel, txns []string) (map[string]bool, error) {
	if runID != 42 || ch != payprotocol.Channel {
		return nil, fmt.Errorf("run %d, channel %s", runID, ch)
	}
	out := map[string]bool{}
	for _, it := range s.items {
		if slices.Contains(txns, it.ProviderTxnID) {
			out[it.ProviderTxnID] = true
		}
	}
	return out, nil
}

// listRig is a fake with paid 10.00 USD orders settled in USDT (6
// decimals, chain 1), and a client that reads them.
func listRig(t *testing.T, orders ...string) *rig {
	t.Helper()
	r := newRig(t, payprotocoltest.Options{Polls: 50}, func(c *payprotocol.Config) {
		var err error
		if c.Decimals, err = payprotocol.ParseDecimals("1:USDT=6"); err != nil {
			t.Fatal(err)
		}
	})
	for _, no := range orders {
		if _, err := r.fake.AddPayment(no, "USDT", 6, "10000000", payprotocol.PaymentPaid); err != nil {
			t.Fatal(err)
		}
		if err := r.fake.SetQuote(no, "USD", "10.00", true); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func (r *rig) refund(t *testing.T, no, amount string) string {
	t.Helper()
	id, err := r.fake.AddRefund(no, amount, payprotocol.RefundSuccess)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestMatcherAddsUpEveryListedRefund: Pay Protocol's refund detail shows
// an order's latest refund alone. An order the platform nets one refund
// of 1.00 for, refunded twice at Pay Protocol (1.00 and 1.00), agreed
// with the latest: the seller was paid on 9.00 while the platform holds
// 8.00, and nothing said so. Read once per matching, the refund list
// adds up every successful refund of each order: that one is an
// unexpected amount row naming both refunds, whether the order was asked
// about or kept as final by an earlier answer (whose payment is then
// asked again, to read the refunds). An order whose late refunds the
// listed ones make up agrees (it was a row: the latest alone was less);
// one with a refund the platform does not count is a row; one whose
// listed refund is the latest alone is matched as before; another run's
// refunds, and refunds that did not succeed, are not counted.
func TestMatcherAddsUpEveryListedRefund(t *testing.T) {
	ctx := context.Background()
	r := listRig(t, "DUP", "LATE", "CONSOLE", "ONE", "OTHER", "PENDING")
	dup1, dup2 := r.refund(t, "DUP", "1000000"), r.refund(t, "DUP", "1000000")
	r.refund(t, "LATE", "500000")
	r.refund(t, "LATE", "500000")
	console := r.refund(t, "CONSOLE", "300000")
	r.refund(t, "ONE", "1000000")
	r.refund(t, "OTHER", "1000000") // not the run's order
	r.refund(t, "PENDING", "1000000")
	if _, err := r.fake.AddRefund("PENDING", "1000000", payprotocol.RefundPendingApproval); err != nil {
		t.Fatal(err)
	}
	item := func(no string, refunded int64, late int) pipeline.RefundedItem {
		it := pipeline.RefundedItem{OrderNo: "O" + no, SellerID: "S", ProviderTxnID: no, Currency: "USD", Gross: 1000, Refunded: refunded, State: itemPaid}
		if late > 0 {
			it.LateRefunds, it.LastLateRefund = late, 50
		}
		return it
	}
	store := listStore{ppStore{items: []pipeline.RefundedItem{item("DUP", 100, 0), item("LATE", 100, 1), item("CONSOLE", 0, 0),
		item("ONE", 100, 0), item("PENDING", 100, 0)}}}
	api := payprotocol.Adapter{Client: r.client}
	listing := &payprotocol.RefundListing{API: api, Store: store}
	run := &pipeline.Run{ID: 42, Key: pipeline.RunKey{Date: pipeline.DateOf(time.Now().UTC())}, TimeZone: "UTC"}
	match := func(l *payprotocol.RefundListing, final pipeline.FinalAnswers) []pipeline.Mismatch {
		t.Helper()
		ms, err := payprotocol.Matcher(payprotocol.MatcherConfig{Store: store, API: api, Final: final, Listing: l, PageSize: 2})(ctx, run)
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}
	rows := func(ms []pipeline.Mismatch) map[string]pipeline.Mismatch {
		out := map[string]pipeline.Mismatch{}
		for _, m := range ms {
			if _, dup := out[m.Subject]; dup {
				t.Errorf("two rows about %s: %+v", m.Subject, ms)
			}
			out[m.Subject] = m
		}
		return out
	}
	// Without the list (as before): DUP agrees with its latest refund.
	before := rows(match(nil, nil))
	if _, found := before["DUP"]; found {
		t.Fatalf("without the list, DUP was found: %+v", before["DUP"])
	}
	calls := r.fake.Calls(payprotocol.APIRefundList)
	got := rows(match(listing, nil))
	if n := r.fake.Calls(payprotocol.APIRefundList) - calls; n != 1 {
		t.Errorf("the list was read %d times for one matching of 3 pages, want once", n)
	}
	m, found := got["DUP"]
	if !found || m.Category != pipeline.MismatchAmount || m.Expected || m.Ours != "100" || m.Theirs != "200" || m.OrderNo != "ODUP" ||
		!strings.Contains(m.Detail, dup1) || !strings.Contains(m.Detail, dup2) || !strings.Contains(m.Detail, "more than the ledger counts") {
		t.Errorf("DUP: %+v, want an unexpected amount row, 100 against 200, naming refunds %s and %s", m, dup1, dup2)
	}
	if m, found := got["LATE"]; found {
		t.Errorf("LATE, refunded 0.50 twice, the ledger counting 0.50 netted and 0.50 late: %+v", m)
	}
	if _, found := before["LATE"]; !found {
		t.Error("without the list, LATE was not a row: the list changed nothing there")
	}
	if m := got["CONSOLE"]; m.Category != pipeline.MismatchAmount || m.Expected || m.Theirs != "30" || !strings.Contains(m.Detail, console) {
		t.Errorf("CONSOLE: %+v, want an unexpected row naming refund %s", m, console)
	}
	if m, found := got["ONE"]; found {
		t.Errorf("ONE: %+v", m)
	}
	if m := got["PENDING"]; !m.Expected || m.Category != pipeline.MismatchTiming {
		t.Errorf("PENDING, its latest refund awaiting approval and the earlier one as the ledger counts: %+v, want its timing row alone", m)
	}
	if _, found := got["OTHER"]; found {
		t.Error("another run's order was matched")
	}

	// Kept as final (the verification found DUP's latest refund in
	// agreement): not asked about, as before, but the list still shows
	// its two refunds, and DUP's payment alone is asked to read them.
	final := &finaltest.Answers{}
	for _, it := range store.items {
		if err := final.RecordFinal(ctx, payprotocol.Name, []string{payprotocol.FinalKey(it)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(rows(match(nil, final))) != 0 {
		t.Fatal("kept as final, the orders were asked about without the list")
	}
	payments, refunds := r.fake.Calls(payprotocol.APIPaymentDetail), r.fake.Calls(payprotocol.APIRefundDetail)
	kept := rows(match(listing, final))
	if m := kept["DUP"]; m.Theirs != "200" || m.Ours != "100" || m.Expected {
		t.Errorf("DUP kept as final: %+v, want its row", m)
	}
	if _, found := kept["CONSOLE"]; !found {
		t.Error("CONSOLE kept as final: its refund since not found")
	}
	// The payments of the orders the list shows more of than their kept
	// answer agreed with (DUP and LATE, two successful refunds; CONSOLE,
	// one where the ledger counts none), no latest refund. Not ONE's nor
	// PENDING's, whose one successful refund the ledger counts: asked at
	// every reconciliation and re-check of the date, the payments of the
	// day's refunded orders were the listing's largest cost.
	if p, rf := r.fake.Calls(payprotocol.APIPaymentDetail)-payments, r.fake.Calls(payprotocol.APIRefundDetail)-refunds; p != 3 || rf != 0 {
		t.Errorf("kept as final: %d payment and %d refund details asked, want 3 and 0", p, rf)
	}
}

// TestMatcherRowWhenTheListCannotBeRead: a refund list that cannot be read
// is an unexpected row of its own (the orders matched with their latest
// refund alone), never silence; an entry of it that cannot be read is a
// row about its order.
func TestMatcherRowWhenTheListCannotBeRead(t *testing.T) {
	ctx := context.Background()
	r := listRig(t, "A", "B")
	id := r.refund(t, "A", "500000") // an earlier refund: the detail answers the latest
	r.refund(t, "A", "500000")
	if err := r.fake.PoisonRefund(id, "refundStatus", 9); err != nil {
		t.Fatal(err)
	}
	store := listStore{ppStore{items: []pipeline.RefundedItem{
		{OrderNo: "OA", ProviderTxnID: "A", Currency: "USD", Gross: 1000, Refunded: 100, State: itemPaid},
		{OrderNo: "OB", ProviderTxnID: "B", Currency: "USD", Gross: 1000, State: itemPaid}}}}
	api := payprotocol.Adapter{Client: r.client}
	matcher := payprotocol.Matcher(payprotocol.MatcherConfig{Store: store, API: api, Listing: &payprotocol.RefundListing{API: api, Store: store}})
	ms, err := matcher(ctx, &pipeline.Run{ID: 42})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Subject != "A" || ms[0].Expected || !strings.Contains(ms[0].Detail, "refund list has an entry of the order that cannot be read") {
		t.Fatalf("an unreadable entry of A: %+v", ms)
	}
	r.faults.Add(fault.Rule{Endpoint: payprotocol.APIRefundList, Kind: fault.ServerError, Prob: 1})
	ms, err = matcher(ctx, &pipeline.Run{ID: 42})
	if err != nil {
		t.Fatal(err)
	}
	var list []pipeline.Mismatch
	for _, m := range ms {
		if m.Subject == payprotocol.APIRefundList {
			list = append(list, m)
		}
	}
	if len(list) != 1 || list[0].Expected || list[0].Category != pipeline.MismatchUnverifiable || !strings.Contains(list[0].Detail, "refund list could not be read") {
		t.Fatalf("the list failing: %+v, want one unexpected row about it", ms)
	}
}

// TestVerificationHoldsAnOrderRefundedBeyondWhatItNets: the verification
// asks an order's latest refund alone, and took an order netting 1.00
// refunded twice at Pay Protocol (1.00 and 1.00) for verified: its seller
// was paid on 9.00 while the platform holds 8.00. With the refund list,
// read once for the stage, it holds such an order, naming the refunds,
// and so one netting none with a refund made on Pay Protocol's console;
// one whose late refunds make up the difference, or whose listed refunds
// add up to what it nets, is verified.
func TestVerificationHoldsAnOrderRefundedBeyondWhatItNets(t *testing.T) {
	ctx := context.Background()
	r := listRig(t, "DUP", "CONSOLE", "COVERED", "SPLIT", "ONE", "NONE")
	dup1, dup2 := r.refund(t, "DUP", "1000000"), r.refund(t, "DUP", "1000000")
	console := r.refund(t, "CONSOLE", "300000")
	r.refund(t, "COVERED", "300000")
	r.refund(t, "SPLIT", "500000")
	r.refund(t, "SPLIT", "500000")
	r.refund(t, "ONE", "1000000")
	items := func() []pipeline.VerifyItem {
		covered := toVerify("COVERED", 0)
		covered.LateRefunded = 30
		return []pipeline.VerifyItem{toVerify("DUP", 100), toVerify("CONSOLE", 0), covered, toVerify("SPLIT", 100),
			toVerify("ONE", 100), toVerify("NONE", 0)}
	}
	// Without the list (as before): all six verified.
	old := &verifyStore{states: map[string]string{}, items: items()}
	if s, err := payprotocol.Verify(ctx, old, payprotocol.Adapter{Client: r.client}, nil, nil, &pipeline.Run{ID: 42}); err != nil ||
		s != "Pay Protocol: 6 payments verified, 0 held, 0 rejected" {
		t.Fatalf("without the list: %q, %v", s, err)
	}
	store := &verifyStore{states: map[string]string{}, items: items()}
	p := payprotocol.NewProvider(payprotocol.ProviderConfig{Client: r.client, Store: store})
	calls := r.fake.Calls(payprotocol.APIRefundList)
	s, err := p.Upload(ctx, &pipeline.Run{ID: 42, Key: pipeline.RunKey{Date: pipeline.DateOf(time.Now().UTC())}, TimeZone: "UTC"})
	if !heldForAPerson(err, "2 Pay Protocol payments held") || s != "Pay Protocol: 4 payments verified, 2 held, 0 rejected" {
		t.Fatalf("%q, %v", s, err)
	}
	if n := r.fake.Calls(payprotocol.APIRefundList) - calls; n != 1 {
		t.Errorf("the list read %d times, want once", n)
	}
	want := map[string][]string{
		"ODUP":     {"held: held: Pay Protocol refunds " + dup1 + ", " + dup2 + " returned 2.00 USD, more than the 1.00 USD the order nets: "},
		"OCONSOLE": {"held: held: Pay Protocol refund " + console + " returned 0.30 USD, more than the 0.00 USD the order nets: "},
		"OCOVERED": {"recorded: "}, "OSPLIT": {"recorded: "}, "OONE": {"recorded: "}, "ONONE": {"recorded: "},
	}
	for no, w := range want {
		if got := store.states[no]; !strings.HasPrefix(got, w[0]) {
			t.Errorf("%s: %q, want %q...", no, got, w[0])
		}
	}
	// Nothing to verify, nothing listed.
	calls = r.fake.Calls(payprotocol.APIRefundList)
	store.items = nil
	if _, err := p.Upload(ctx, &pipeline.Run{ID: 42}); err != nil || r.fake.Calls(payprotocol.APIRefundList) != calls {
		t.Errorf("no payment to verify: %v, the list read %d times", err, r.fake.Calls(payprotocol.APIRefundList)-calls)
	}
	// A list that cannot be read leaves the payments for the next run.
	store = &verifyStore{states: map[string]string{}, items: items()}
	r.faults.Add(fault.Rule{Endpoint: payprotocol.APIRefundList, Kind: fault.ServerError, Prob: 1})
	if _, err := payprotocol.NewProvider(payprotocol.ProviderConfig{Client: r.client, Store: store}).Upload(ctx, &pipeline.Run{ID: 42}); !errors.Is(err, pipeline.ErrStillProcessing) || len(store.states) != 0 {
		t.Fatalf("the list failing: %v, %v; want every payment left unverified for the next run", err, store.states)
	}
}
