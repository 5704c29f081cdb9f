package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// memAdjust is an in-memory AdjustStore.
type memAdjust struct {
	pending  []PendingLateRefund
	resolved map[string]string // refund -> state
	reasons  map[string]string
	adjs     []Adjustment
	pages    int             // pages read
	taken    map[string]bool // refunds another run resolves first
}

func (m *memAdjust) RecordLateRefunds(context.Context, *Run, []LateRefund) (int, error) {
	return 0, nil
}
func (m *memAdjust) LateRefundsRecordedOtherwise(context.Context, []LateRefund) ([]LateRefund, error) {
	return nil, nil
}
func (m *memAdjust) RenumberedSince(context.Context, *Run, []LateRefund) error     { return nil }
func (m *memAdjust) NoLongerRead(context.Context, *Run, []string) error            { return nil }
func (m *memAdjust) MovedOrderRefunds(context.Context, *Run) ([]LateRefund, error) { return nil, nil }
func (m *memAdjust) PendingLateRefunds(_ context.Context, after string, orders int) ([]PendingLateRefund, error) {
	all := slices.Clone(m.pending)
	slices.SortStableFunc(all, func(a, b PendingLateRefund) int { return strings.Compare(a.OrderNo, b.OrderNo) })
	var page []PendingLateRefund
	for _, p := range all {
		if p.OrderNo <= after || m.resolved[p.RefundNo] != "" {
			continue
		}
		if len(page) > 0 && page[len(page)-1].OrderNo != p.OrderNo {
			if orders--; orders == 0 {
				break
			}
		}
		page = append(page, p)
	}
	m.pages++
	return page, nil
}
func (m *memAdjust) ResolveLateRefund(_ context.Context, _ *Run, no, state, reason string, adj *Adjustment, _ int64) error {
	if m.taken[no] {
		return fmt.Errorf("resolve late refund %s: %w", no, ErrAlreadyResolved)
	}
	m.resolved[no], m.reasons[no] = state, reason
	if adj != nil {
		m.adjs = append(m.adjs, *adj)
	}
	return nil
}

// tenPercent splits like a 10% rule with a 1.00 minimum commission.
func tenPercent(_ context.Context, o Order, _ Date, _ int64) (Split, error) {
	base := o.Amount - o.Refunded
	c := min(base, max(100, base/10))
	return Split{Order: o, Rule: "r:1", Commission: c, SellerShare: base - c}, nil
}

func settled(orderNo string, ch Channel, state string, gross, refunded int64) *SettledItem {
	o := Order{OrderNo: orderNo, SellerID: "S1", Channel: ch, Currency: "USD", Amount: gross, Refunded: refunded}
	s, _ := tenPercent(context.Background(), o, Date{}, 0)
	return &SettledItem{Split: s, State: state}
}

// Channels of the tests: two clawed back, one whose late refunds are
// ignored (its provider refunds from the seller's own funds).
const (
	cardCh   Channel = "card"
	cryptoCh Channel = "crypto"
	walletCh Channel = "wallet"
)

var testChannels = Channels{{Channel: cardCh}, {Channel: cryptoCh, Unverified: true},
	{Channel: walletCh, LateRefundIgnored: "paid through the wallet: the refund comes out of the seller's own funds there"}}

func TestClawBacksDecideEachLateRefund(t *testing.T) {
	d, _ := ParseDate("2026-11-21")
	run := &Run{ID: 1, Key: RunKey{Date: d, Shard: Whole}}
	late := func(no, order string, amount int64, it *SettledItem) PendingLateRefund {
		return PendingLateRefund{LateRefund: LateRefund{RefundNo: no, OrderNo: order, SellerID: "S1", Amount: amount}, Item: it}
	}
	store := &memAdjust{resolved: map[string]string{}, reasons: map[string]string{},
		pending: []PendingLateRefund{
			late("R1", "A", 2000, settled("A", cardCh, "paid", 10000, 0)),      // 90.00 -> 72.00: 18.00 back, 2.00 commission
			late("R2", "A", 8000, settled("A", cardCh, "paid", 10000, 0)),      // then the rest: 72.00 back, commission 8.00 -> 0
			late("R3", "B", 500, settled("B", walletCh, "paid", 10000, 0)),     // its channel ignores them
			late("R4", "C", 500, settled("C", cardCh, "rejected", 10000, 0)),   // rejected order: ignored
			late("R5", "D", 500, settled("D", cryptoCh, "uploaded", 10000, 0)), // not paid yet: waits
			late("R6", "E", 500, nil), // not settled: waits
			late("R7", "F", 9500, settled("F", cardCh, "carried", 10000, 1000)), // above what is left
			late("R8", "G", 100, settled("G", cryptoCh, "carried", 1000, 0)),    // the 1.00 minimum commission stays: the seller gives back all 1.00
		}}
	summary, problems, err := ClawBacks(context.Background(), store, tenPercent, testChannels, run)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"R1": LateRefundClawed, "R2": LateRefundClawed, "R3": LateRefundIgnored, "R4": LateRefundIgnored,
		"R7": LateRefundRejected, "R8": LateRefundClawed}
	for no, state := range want {
		if store.resolved[no] != state {
			t.Errorf("%s: %q (%s), want %s", no, store.resolved[no], store.reasons[no], state)
		}
	}
	if spec, _ := testChannels.Spec(walletCh); store.reasons["R3"] != spec.LateRefundIgnored {
		t.Errorf("R3 ignored with %q, want its channel's reason", store.reasons["R3"])
	}
	if len(store.resolved) != len(want) {
		t.Errorf("resolved %v; R5 and R6 must wait", store.resolved)
	}
	if problems.Count() != 1 || !strings.Contains(problems.List[0], "R7") || !strings.Contains(problems.List[0], "above the order's") {
		t.Errorf("problems %q", problems.List)
	}
	if !strings.Contains(summary, "3 clawed back, 2 ignored, 2 waiting") {
		t.Errorf("summary %q", summary)
	}
	type back struct{ seller, commission, refund int64 }
	got := map[string]back{}
	for _, a := range store.adjs {
		if a.Kind != AdjustClawback || a.RefundMinor != a.CommissionBack-a.Amount {
			t.Errorf("%+v does not conserve the refund", a)
		}
		got[a.RefundNo] = back{-a.Amount, a.CommissionBack, a.RefundMinor}
	}
	wantBack := map[string]back{"R1": {1800, 200, 2000}, "R2": {7200, 800, 8000}, "R8": {100, 0, 100}}
	for no, w := range wantBack {
		if got[no] != w {
			t.Errorf("%s: gave back %+v, want %+v", no, got[no], w)
		}
	}
}

func TestClawBackFallsBackWhenTheRulesChanged(t *testing.T) {
	// The order settled at 5% (seller 95.00); the rules now say 10%: split
	// again, the seller would give back 95.00 - 63.00 = 32.00 of a 30.00
	// refund. The seller's share goes first instead, the sums hold, and a
	// person is told the rules of the order's date changed.
	it := &SettledItem{Split: Split{Order: Order{OrderNo: "A", SellerID: "S1", Channel: cardCh, Currency: "USD", Amount: 10000},
		Rule: "rules.csv:2", Commission: 500, SellerShare: 9500}, State: "paid"}
	adj, note, err := clawback(context.Background(), it, LateRefund{RefundNo: "R", Amount: 3000}, tenPercent)
	if err != nil || !strings.Contains(note, "otherwise than it settled") {
		t.Fatal(note, err)
	}
	if adj.Amount != -3000 || adj.CommissionBack != 0 || !strings.Contains(adj.Reason, "seller's share first") {
		t.Errorf("%+v", adj)
	}
}

// TestClawBackDoesNotPriceAnOrderAnewUnderAChangedRule: a rule of the
// order's date changed since it settled (10% then, 11% now), and the new
// split fits. Split again, half the order refunded, the seller gave back
// 45.50 and the platform 4.50: 0.50 of commission charged on the 50.00 the
// buyer kept, under a rule the order never settled with, and said to be
// "split again". The rules changed under the order: the seller's share
// goes first, as when they lost its date, and a person is told.
func TestClawBackDoesNotPriceAnOrderAnewUnderAChangedRule(t *testing.T) {
	rate := func(bps int64) Resplit {
		return func(_ context.Context, o Order, _ Date, _ int64) (Split, error) {
			base := o.Amount - o.Refunded
			c, err := MulDivHalfEven(base, bps, 10000)
			return Split{Order: o, Rule: fmt.Sprintf("rules.csv:%d", bps), Commission: c, SellerShare: base - c}, err
		}
	}
	o := Order{OrderNo: "A", SellerID: "S1", Channel: cardCh, Currency: "USD", Amount: 10000}
	s, _ := rate(1000)(context.Background(), o, Date{}, 0)
	it := &SettledItem{Split: s, State: "paid"}
	r := LateRefund{RefundNo: "R", Amount: 5000}

	adj, note, err := clawback(context.Background(), it, r, rate(1000)) // the rules it settled with
	if err != nil || note != "" || adj.Amount != -4500 || adj.CommissionBack != 500 || !strings.Contains(adj.Reason, "split again") {
		t.Fatalf("same rules: %+v %q %v; want 45.00 from the seller, 5.00 of commission, split again", adj, note, err)
	}
	adj, note, err = clawback(context.Background(), it, r, rate(1100))
	if err != nil {
		t.Fatal(err)
	}
	if adj.Amount != -5000 || adj.CommissionBack != 0 || !strings.Contains(adj.Reason, "seller's share first") ||
		!strings.Contains(adj.Reason, "10.00 USD under rules.csv:1000") {
		t.Errorf("changed rule: seller back %d, commission back %d (%s); want the seller's share first, naming the split it settled with",
			-adj.Amount, adj.CommissionBack, adj.Reason)
	}
	if !strings.Contains(note, "late refund R of order A") || !strings.Contains(note, "11.00 USD under rules.csv:1100") {
		t.Errorf("note %q: want the refund, the order and the rules' split for a person", note)
	}
}

func TestReadLateRefundRejectsBadRows(t *testing.T) {
	s := func(v string) *string { return &v }
	now := time.Now()
	cases := []struct {
		row  LateRefundRow
		want string
	}{
		{LateRefundRow{RefundNo: s("R"), OrderNo: s("O"), SellerID: s("S"), AmountMinor: s("150"), CreatedAt: &now}, ""},
		{LateRefundRow{Seq: 4, OrderNo: s("O"), AmountMinor: s("150"), CreatedAt: &now}, "refund_no is NULL"},
		{LateRefundRow{RefundNo: s("R"), AmountMinor: s("150"), CreatedAt: &now}, "order_no is NULL"},
		{LateRefundRow{RefundNo: s("R"), OrderNo: s("O"), AmountMinor: s("150")}, "created_at is NULL"},
		{LateRefundRow{RefundNo: s("R"), OrderNo: s("O"), CreatedAt: &now}, "amount_minor is NULL"},
		{LateRefundRow{RefundNo: s("R"), OrderNo: s("O"), AmountMinor: s("1.5"), CreatedAt: &now}, "not an integer"},
		{LateRefundRow{RefundNo: s("R"), OrderNo: s("O"), AmountMinor: s("99999999999999999999"), CreatedAt: &now}, "overflows"},
		{LateRefundRow{RefundNo: s("R"), OrderNo: s("O"), AmountMinor: s("0"), CreatedAt: &now}, "must be positive"},
		{LateRefundRow{RefundNo: s("R"), OrderNo: s("O"), AmountMinor: s("+150"), CreatedAt: &now}, `not written as an integer: "+150"`},
		{LateRefundRow{RefundNo: s("R"), OrderNo: s("O"), AmountMinor: s("0150"), CreatedAt: &now}, `not written as an integer: "0150"`},
		// Corrupt keys: kept short (no index would take a huge one).
		{LateRefundRow{RefundNo: s(strings.Repeat("R", 3000)), OrderNo: s("O"), AmountMinor: s("150"), CreatedAt: &now}, "refund_no is 3000 bytes long"},
		{LateRefundRow{RefundNo: s("R"), OrderNo: s("O\n1"), AmountMinor: s("150"), CreatedAt: &now}, "order_no contains the control character U+000A"},
		{LateRefundRow{RefundNo: s("R"), OrderNo: s("O"), SellerID: s(strings.Repeat("S", 200)), AmountMinor: s("150"), CreatedAt: &now}, "seller_id is 200 bytes long"},
		// A number of settle's own making, given by the platform.
		{LateRefundRow{RefundNo: s(MovedRefundNo("O", Date{Year: 2026, Month: 11, Day: 23})), OrderNo: s("O"), AmountMinor: s("150"), CreatedAt: &now}, "begins as settle's own refund numbers do"},
	}
	for _, c := range cases {
		r := ReadLateRefund(c.row, 9)
		switch {
		case c.want == "" && (r.State != LateRefundPending || r.Amount != 150):
			t.Errorf("%+v: %+v", c.row, r)
		case c.want != "" && (r.State != LateRefundRejected || !strings.Contains(r.Reason, c.want) || r.Amount != 0 || r.RefundNo == ""):
			t.Errorf("%+v: %+v, want rejected with %q", c.row, r, c.want)
		case len(r.RefundNo) > 3*MaxRejectText || len(r.OrderNo) > 3*MaxRejectText || len(r.SellerID) > 3*MaxRejectText:
			t.Errorf("%+v: a key kept whole: %+v", c.row, r)
		}
	}
}

// A late refund of an order whose date the rules no longer split (a rules
// file without that date's rules) is clawed back the way a split that no
// longer fits is - the seller's share first - and named for a person, who
// should give the rules file that date again; the others are worked out
// as usual. Before, it stopped the distribute stage for every seller.
func TestClawBacksWithoutTheRulesOfTheOrdersDate(t *testing.T) {
	d, _ := ParseDate("2026-11-21")
	run := &Run{ID: 1, Key: RunKey{Date: d, Shard: Whole}}
	old, _ := ParseDate("2025-01-02")
	stale := settled("OLD", cardCh, "paid", 10000, 0) // seller 90.00, commission 10.00
	stale.Date = old
	store := &memAdjust{resolved: map[string]string{}, reasons: map[string]string{},
		pending: []PendingLateRefund{
			{LateRefund: LateRefund{RefundNo: "R1", OrderNo: "A", SellerID: "S1", Amount: 2000}, Item: settled("A", cardCh, "paid", 10000, 0)},
			{LateRefund: LateRefund{RefundNo: "R2", OrderNo: "OLD", SellerID: "S1", Amount: 500}, Item: stale},
		}}
	resplit := func(_ context.Context, o Order, on Date, _ int64) (Split, error) {
		if on == old {
			return Split{}, E(KindUsage, "rules", fmt.Errorf("no rule applies on %s", on))
		}
		return tenPercent(context.Background(), o, on, 0)
	}
	summary, problems, err := ClawBacks(context.Background(), store, resplit, testChannels, run)
	if err != nil {
		t.Fatal(err)
	}
	if store.resolved["R1"] != LateRefundClawed || store.resolved["R2"] != LateRefundClawed {
		t.Errorf("resolved %v: want both clawed back", store.resolved)
	}
	for _, a := range store.adjs {
		if a.RefundNo == "R2" && (a.Amount != -500 || a.CommissionBack != 0 || !strings.Contains(a.Reason, "seller's share first (the rules split no order of 2025-01-02")) {
			t.Errorf("R2: %+v", a)
		}
	}
	if problems.Count() != 1 || !strings.Contains(problems.List[0], "R2") || !strings.Contains(problems.List[0], "no rule applies on 2025-01-02") {
		t.Errorf("problems %q", problems.List)
	}
	if !strings.Contains(summary, "2 clawed back, 0 ignored, 0 waiting") {
		t.Errorf("summary %q", summary)
	}
}

// TestClawBacksReadPagesOfWholeOrders: the pending late refunds are read
// a page of orders at a time, each order's refunds in one page (as
// memAdjust gives them; the ledger's query is held to it by
// TestPendingLateRefundsPagesHoldWholeOrders), the second refund of an
// order worked out from the first's clawback, and every page is resolved.
func TestClawBacksReadPagesOfWholeOrders(t *testing.T) {
	d, _ := ParseDate("2026-11-21")
	run := &Run{ID: 1, Key: RunKey{Date: d, Shard: Whole}}
	const orders = 2*lateRefundOrdersPage + 500
	store := &memAdjust{resolved: map[string]string{}, reasons: map[string]string{}}
	for i := range orders {
		no := fmt.Sprintf("O%05d", i)
		it := settled(no, cardCh, "paid", 1500, 0)
		amounts := []int64{400, 300}
		if i%100 == 7 {
			amounts = append(amounts, 2000) // above the 8.00 left: rejected, for a person
		}
		for j, amount := range amounts {
			store.pending = append(store.pending, PendingLateRefund{LateRefund: LateRefund{
				RefundNo: fmt.Sprintf("R%05d-%d", i, j), OrderNo: no, SellerID: "S1", Amount: amount}, Item: it})
		}
	}
	summary, problems, err := ClawBacks(context.Background(), store, tenPercent, testChannels, run)
	if err != nil {
		t.Fatal(err)
	}
	// The 25 refunds above their order are counted, the first few named.
	if problems.Count() != orders/100 || len(problems.List) != ProblemsListed || !strings.HasPrefix(problems.List[0], "late refund R00007-2 of order O00007:") {
		t.Errorf("%d problems, %d listed, first %q; want %d, %d listed, R00007-2 first", problems.Count(), len(problems.List), problems.List, orders/100, ProblemsListed)
	}
	if want := fmt.Sprintf("%d clawed back, 0 ignored, 0 waiting", 2*orders); !strings.Contains(summary, want) {
		t.Errorf("summary %q, want %q", summary, want)
	}
	if store.pages != 4 {
		t.Errorf("%d pages read, want 3 and the empty one", store.pages)
	}
	// 15.00 with 1.50 commission; refunded 4.00 then 7.00 in all, the
	// commission 1.10 then the 1.00 minimum: the seller gives back 3.60
	// then 2.90 (2.70 were the second worked out without the first).
	back := map[string]int64{}
	for _, a := range store.adjs {
		back[a.OrderNo] -= a.Amount
	}
	for i := range orders {
		if no := fmt.Sprintf("O%05d", i); back[no] != 650 {
			t.Fatalf("order %s: the seller gave back %d, want 650", no, back[no])
		}
	}
}

// TestALateRefundAnotherRunResolvedIsNoError: two dates' runs at the same
// time read the same pending late refund; the second to resolve it found
// it no longer pending, and its distribute stage stopped, exit 1 (found by
// a review). Nothing is recorded or counted for it, and the run goes on.
func TestALateRefundAnotherRunResolvedIsNoError(t *testing.T) {
	d, _ := ParseDate("2026-11-21")
	run := &Run{ID: 1, Key: RunKey{Date: d, Shard: Whole}}
	late := func(no, order string, it *SettledItem) PendingLateRefund {
		return PendingLateRefund{LateRefund: LateRefund{RefundNo: no, OrderNo: order, SellerID: "S1", Amount: 500}, Item: it}
	}
	store := &memAdjust{resolved: map[string]string{}, reasons: map[string]string{}, taken: map[string]bool{"R1": true, "R2": true},
		pending: []PendingLateRefund{
			late("R1", "A", settled("A", cardCh, "paid", 10000, 0)),   // a clawback
			late("R2", "B", settled("B", walletCh, "paid", 10000, 0)), // ignored
			late("R3", "C", settled("C", cardCh, "paid", 10000, 0)),
		}}
	summary, _, err := ClawBacks(context.Background(), store, tenPercent, testChannels, run)
	if err != nil {
		t.Fatalf("%v; want the refunds another run resolved left to it", err)
	}
	if !strings.Contains(summary, "1 clawed back, 0 ignored") {
		t.Errorf("summary %q: want R3 alone counted", summary)
	}
	if len(store.adjs) != 1 || store.adjs[0].RefundNo != "R3" || store.resolved["R3"] != LateRefundClawed {
		t.Fatalf("adjustments %+v, resolved %v: want R3's alone", store.adjs, store.resolved)
	}
}

// TestClawBackFromTheSellersShareFirstTakesOnlyWhatIsLeftOfIt: when the
// split is not worked out again (here the rules changed), the seller gives
// back at most what earlier late refunds left of its share, and the
// commission the rest; never the seller's original share a second time.
func TestClawBackFromTheSellersShareFirstTakesOnlyWhatIsLeftOfIt(t *testing.T) {
	// Settled at 5% (seller 95.00, commission 5.00); an earlier late refund
	// took 90.00 back from the seller: 5.00 of its share is left. The rules
	// file no longer has the order's date.
	it := &SettledItem{Split: Split{Order: Order{OrderNo: "A", SellerID: "S1", Channel: cardCh, Currency: "USD", Amount: 10000},
		Commission: 500, SellerShare: 9500}, State: "paid", LateRefunded: 9000, LateSellerBack: 9000}
	noRules := func(context.Context, Order, Date, int64) (Split, error) {
		return Split{}, E(KindUsage, "rules", fmt.Errorf("no rule applies"))
	}
	adj, note, err := clawback(context.Background(), it, LateRefund{RefundNo: "R2", Amount: 800}, noRules)
	if err != nil || note == "" {
		t.Fatal(note, err)
	}
	if adj.Amount != -500 || adj.CommissionBack != 300 || adj.RefundMinor != 800 {
		t.Errorf("seller back %d, commission back %d of a refund of %d; want 500 and 300 of 800 (%s)",
			-adj.Amount, adj.CommissionBack, adj.RefundMinor, adj.Reason)
	}
}

// TestAPayoutNetsTheCarriedBalanceWithItsSign: a clawback carried
// (negative) lowers what is sent, a payout held (positive) raises it.
func TestAPayoutNetsTheCarriedBalanceWithItsSign(t *testing.T) {
	for _, tc := range []struct{ payable, carried, want int64 }{{1000, -300, 700}, {1000, 250, 1250}, {0, -5, -5}, {100, 0, 100}} {
		p := PayoutCandidate{SellerID: "S1", Currency: "USD", Payable: tc.payable, Items: 1, Carried: tc.carried}
		if got, err := p.Net(); err != nil || got != tc.want {
			t.Errorf("payable %d, carried %d: net %d, %v; want %d", tc.payable, tc.carried, got, err, tc.want)
		}
	}
}

// TestAClawbackNeverGivesBackMoreCommissionThanIsLeft: an item whose
// recorded late refunds do not add up with what was given back (its
// seller's share and its commission both given back in full, yet refunds
// recorded below the order's amount) leaves room for a refund under the
// order's amount and nothing of either share to take it from. The
// refund is refused as bad data: worked out seller's share first, all of
// it would have been given back from a commission already given back.
func TestAClawbackNeverGivesBackMoreCommissionThanIsLeft(t *testing.T) {
	it := &SettledItem{Split: Split{Order: Order{OrderNo: "A", SellerID: "S1", Channel: cardCh, Currency: "USD", Amount: 10000},
		Commission: 500, SellerShare: 9500}, State: "paid", LateRefunded: 500, LateSellerBack: 9500, LateCommissionBack: 500}
	noRules := func(context.Context, Order, Date, int64) (Split, error) {
		return Split{}, E(KindUsage, "rules", fmt.Errorf("no rule applies"))
	}
	adj, _, err := clawback(context.Background(), it, LateRefund{RefundNo: "R2", Amount: 300}, noRules)
	var bad *badRefund
	if !errors.As(err, &bad) {
		t.Fatalf("clawback %+v, %v; want the refund refused: nothing is left of the order", adj, err)
	}
}

// TestAClawbackIsDatedByTheLaterOfItsRefundAndTheRun: a refund read on an
// earlier date and clawed back by a later date's run is that run's (its
// reports, written after, show it); one read on a later date and clawed
// back by an earlier date's run (a re-run) keeps its own date, whose
// reports are not written yet. A refund of another seller's order under
// the same number is rejected for a person, nothing taken back.
func TestAClawbackIsDatedByTheLaterOfItsRefundAndTheRun(t *testing.T) {
	d, _ := ParseDate("2026-11-21")
	before, _ := ParseDate("2026-11-20")
	after, _ := ParseDate("2026-11-22")
	orderDate, _ := ParseDate("2026-11-10")
	run := &Run{ID: 1, Key: RunKey{Date: d, Shard: Whole}}
	late := func(no, order, seller string, on Date) PendingLateRefund {
		it := settled(order, cardCh, "paid", 10000, 0)
		it.Date = orderDate
		return PendingLateRefund{LateRefund: LateRefund{Date: on, RefundNo: no, OrderNo: order, SellerID: seller, Amount: 500}, Item: it}
	}
	store := &memAdjust{resolved: map[string]string{}, reasons: map[string]string{},
		pending: []PendingLateRefund{late("R1", "A", "S1", before), late("R2", "B", "S1", after), late("R3", "C", "S2", d)}}
	_, problems, err := ClawBacks(context.Background(), store, tenPercent, testChannels, run)
	if err != nil {
		t.Fatal(err)
	}
	dates := map[string]Date{}
	for _, a := range store.adjs {
		dates[a.RefundNo] = a.Date
	}
	if len(store.adjs) != 2 || dates["R1"] != d || dates["R2"] != after {
		t.Errorf("clawbacks dated %v, want R1 on %s (the run's) and R2 on %s (its own), none for R3", dates, d, after)
	}
	if store.resolved["R3"] != LateRefundRejected || problems.Count() != 1 {
		t.Errorf("R3 %q, problems %q: want R3 rejected for a person", store.resolved["R3"], problems.List)
	}
}

// TestClawBackStopsWhenItsRulesCannotBeRead: rules that could not be read
// (the ledger's kept file of the order's date: ErrNotRead) are no rule lost:
// the clawback is not made seller's share first, the error is returned.
func TestClawBackStopsWhenItsRulesCannotBeRead(t *testing.T) {
	gone := errors.New("connection reset")
	unread := func(context.Context, Order, Date, int64) (Split, error) { return Split{}, NotRead(gone) }
	adj, note, err := clawback(context.Background(), settled("A", cardCh, "paid", 10000, 0), LateRefund{RefundNo: "R", Amount: 3000}, unread)
	if !errors.Is(err, gone) || !errors.Is(err, ErrNotRead) || adj != nil || note != "" {
		t.Fatalf("clawback under unread rules: %+v, %q, %v; want the read's error, nothing taken back", adj, note, err)
	}
}

// TestAClawbackAfterOthersWorkedOutOtherwiseTakesTheSellersShareFirst:
// the rules are the order's, but what earlier late refunds took back does
// not match what splitting again gives now: one taken seller's share first
// while the rules of its date were lost (restored since), or an item whose
// recorded clawbacks are not what a split gives. Splitting again then asks
// of the seller less than nothing, or of the commission less than nothing,
// or more than the refund in all; the refund is taken seller's share
// first, never money given to the seller or taken from the platform's
// commission the other way.
func TestAClawbackAfterOthersWorkedOutOtherwiseTakesTheSellersShareFirst(t *testing.T) {
	for _, tc := range []struct {
		name                                     string
		lateRefunded, lateSeller, lateCommission int64
		refund, wantSeller, wantCommission       int64
	}{
		// 30.00 taken from the seller alone: 60.00 of its 90.00 share is
		// left; split again at 68.00 the seller keeps 61.20, above that.
		{"earlier one seller's share first", 3000, 3000, 0, 200, 200, 0},
		// 10.00 taken from the commission alone: none of it is left, and
		// split again at 80.00 the commission is 8.00.
		{"earlier one commission first", 1000, 0, 1000, 1000, 1000, 0},
		// 10.00 refunded and only 5.00 given back: split again, 15.00
		// would come back for a 10.00 refund.
		{"earlier ones not adding up", 1000, 500, 0, 1000, 1000, 0},
	} {
		it := settled("A", cardCh, "paid", 10000, 0) // commission 10.00, seller 90.00
		it.LateRefunded, it.LateSellerBack, it.LateCommissionBack = tc.lateRefunded, tc.lateSeller, tc.lateCommission
		adj, _, err := clawback(context.Background(), it, LateRefund{RefundNo: "R2", Amount: tc.refund}, tenPercent)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if -adj.Amount != tc.wantSeller || adj.CommissionBack != tc.wantCommission || adj.RefundMinor != tc.refund ||
			!strings.Contains(adj.Reason, "seller's share first") {
			t.Errorf("%s: seller back %d, commission back %d of a refund of %d (%s); want %d and %d, seller's share first",
				tc.name, -adj.Amount, adj.CommissionBack, adj.RefundMinor, adj.Reason, tc.wantSeller, tc.wantCommission)
		}
	}
}

// TestALateRefundReadOnTheDateItsOrderSettledIsNetted: a late refund read
// on a date while its order had no item, the order settled since on that
// same date (the platform moved it there, and the date ran again): that
// date's source row counts the refund, as a later date's does. Clawing it
// back too takes it from the seller twice. One read on a date after its
// order's settlement is clawed back.
func TestALateRefundReadOnTheDateItsOrderSettledIsNetted(t *testing.T) {
	d, _ := ParseDate("2026-11-21")
	before, _ := ParseDate("2026-11-20")
	after, _ := ParseDate("2026-11-22")
	run := &Run{ID: 1, Key: RunKey{Date: after, Shard: Whole}}
	late := func(no, order string, settledOn Date) PendingLateRefund {
		it := settled(order, cardCh, "paid", 10000, 0)
		it.Date = settledOn
		return PendingLateRefund{LateRefund: LateRefund{Date: d, RefundNo: no, OrderNo: order, SellerID: "S1", Amount: 500}, Item: it}
	}
	store := &memAdjust{resolved: map[string]string{}, reasons: map[string]string{},
		pending: []PendingLateRefund{late("SAME", "A", d), late("LATER", "B", after), late("EARLIER", "C", before)}}
	if _, _, err := ClawBacks(context.Background(), store, tenPercent, testChannels, run); err != nil {
		t.Fatal(err)
	}
	for no, want := range map[string]string{"SAME": LateRefundIgnored, "LATER": LateRefundIgnored, "EARLIER": LateRefundClawed} {
		if store.resolved[no] != want {
			t.Errorf("%s: %q (%s), want %s", no, store.resolved[no], store.reasons[no], want)
		}
	}
	if len(store.adjs) != 1 || store.adjs[0].RefundNo != "EARLIER" {
		t.Errorf("clawbacks %+v, want only EARLIER's", store.adjs)
	}
}
