package pipeline

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The ledger's names of the states after upload.
const itemUploaded, itemPaid = "uploaded", "paid"

func ppItem(state string, gross, refunded int64) PayProtocolItem {
	return PayProtocolItem{OrderNo: "O-1", SellerID: "S-1", OutTradeNo: "T-1", Currency: "USD", Gross: gross,
		Refunded: refunded, State: state}
}

func ppPaid(quote int64, r *PayProtocolRefund) PayProtocolOrder {
	return PayProtocolOrder{Status: PaymentPaid, Quote: Money{quote, "USD"}, Refund: r}
}

// want is the part of a Mismatch a case checks.
type want struct {
	category    string
	ours        string
	theirs      string
	theirsState string
	expected    bool
	detail      string // a substring
}

func TestMatchPayProtocol(t *testing.T) {
	late := ppItem(itemPaid, 10000, 3000)
	late.LateRefunds, late.LastLateRefund = 1, 1000
	lateSeen := late
	cases := []struct {
		name string
		it   PayProtocolItem
		o    PayProtocolOrder
		want []want
	}{
		{"paid, no refunds", ppItem(itemPaid, 10000, 0), ppPaid(10000, nil), nil},
		{"paid, refund agrees", ppItem(itemPaid, 10000, 2500), ppPaid(10000, &PayProtocolRefund{ID: "7", Status: RefundSuccess, Amount: 2500}), nil},
		{"held, paid now", ppItem(ItemHeld, 10000, 0), ppPaid(10000, nil),
			[]want{{MismatchStatus, "10000", "10000", "paid", false, "run its date again"}}},
		{"amount", ppItem(itemPaid, 10000, 0), ppPaid(9999, nil),
			[]want{{MismatchAmount, "10000", "9999", "paid", false, "payment: Pay Protocol quotes 99.99 USD, the order is 100.00 USD"}}},
		{"currency", ppItem(ItemRecorded, 10000, 0), PayProtocolOrder{Status: PaymentPaid, Quote: Money{10000, "EUR"}},
			[]want{{MismatchCurrency, "10000", "10000", "paid", false, "100.00 EUR"}}},
		{"quote unreadable", ppItem(ItemRecorded, 10000, 0), PayProtocolOrder{Status: PaymentPaid, QuoteProblem: "quoted in \"USDT\""},
			[]want{{MismatchAmount, "10000", "", "paid", false, "cannot be compared: quoted in \"USDT\""}}},
		{"failed", ppItem(itemPaid, 10000, 0), PayProtocolOrder{Status: PaymentFailed, Quote: Money{10000, "USD"}},
			[]want{{MismatchStatus, "10000", "10000", "failed", false, "the ledger has the item paid, Pay Protocol's payment is failed"}}},
		{"failed while held", ppItem(ItemHeld, 10000, 0), PayProtocolOrder{Status: PaymentFailed, Quote: Money{10000, "USD"}},
			[]want{{MismatchStatus, "10000", "10000", "failed", false, "is failed"}}},
		{"pending while held", ppItem(ItemHeld, 10000, 0), PayProtocolOrder{Status: PaymentPending, Quote: Money{10000, "USD"}},
			[]want{{MismatchTiming, "10000", "10000", "pending", true, "payment is still pending"}}},
		{"partially paid while held", ppItem(ItemHeld, 10000, 0), PayProtocolOrder{Status: PaymentPartiallyPaid, Quote: Money{10000, "USD"}},
			[]want{{MismatchTiming, "10000", "10000", "partially paid", true, "stays held"}}},
		{"pending while uploaded", ppItem(itemUploaded, 10000, 0), PayProtocolOrder{Status: PaymentBlockConfirmation, Quote: Money{10000, "USD"}},
			[]want{{MismatchStatus, "10000", "10000", "block confirmation", false, "uploaded"}}},
		{"refunded, covered", ppItem(itemPaid, 10000, 10000), PayProtocolOrder{Status: PaymentRefunded, Quote: Money{10000, "USD"}}, nil},
		{"refunded, not covered", ppItem(itemPaid, 10000, 2500), PayProtocolOrder{Status: PaymentRefunded, Quote: Money{10000, "USD"}},
			[]want{{MismatchStatus, "2500", "10000", "refunded", false, "refunded the whole payment, the ledger counts 25.00 USD refunded"}}},
		{"refunded, ours above", ppItem(itemPaid, 10000, 10001), PayProtocolOrder{Status: PaymentRefunded, Quote: Money{10000, "USD"}},
			[]want{{MismatchAmount, "10001", "10000", "refunded", false, "counts more"}}},
		{"refunded, other amount too", ppItem(itemPaid, 10000, 10000), PayProtocolOrder{Status: PaymentRefunded, Quote: Money{12000, "USD"}},
			[]want{{MismatchAmount, "10000", "12000", "refunded", false, "payment:"},
				{MismatchStatus, "10000", "12000", "refunded", false, "refunds:"}}},
		{"refund unknown to us", ppItem(itemPaid, 10000, 0), ppPaid(10000, &PayProtocolRefund{ID: "9", Status: RefundSuccess, Amount: 400}),
			[]want{{MismatchAmount, "0", "400", "refund success", false, "latest refund 9 succeeded for 4.00 USD, the ledger counts 0.00 USD refunded"}}},
		{"our refund unknown to them", ppItem(itemPaid, 10000, 400), ppPaid(10000, nil),
			[]want{{MismatchAmount, "400", "0", "no refund", false, "knows no refund"}}},
		{"late refund not at Pay Protocol", late, ppPaid(10000, &PayProtocolRefund{ID: "3", Status: RefundSuccess, Amount: 2000}),
			[]want{{MismatchAmount, "3000", "2000", "refund success", false, "(1 late refund(s) included) (Pay Protocol shows only"}}},
		{"late refund the latest at Pay Protocol", lateSeen, ppPaid(10000, &PayProtocolRefund{ID: "3", Status: RefundSuccess, Amount: 1000}),
			[]want{{MismatchUnverifiable, "3000", "1000", "refund success", true, "earlier ones cannot be listed"}}},
		{"refund pending approval", ppItem(ItemHeld, 10000, 2500), ppPaid(10000, &PayProtocolRefund{ID: "4", Status: "pending approval", Amount: 2500}),
			[]want{{MismatchTiming, "2500", "2500", "refund pending approval", true, "latest refund 4 is pending approval"}}},
		{"refund under review, unknown to us", ppItem(itemPaid, 10000, 0), ppPaid(10000, &PayProtocolRefund{ID: "5", Status: "under review", Amount: 100}),
			[]want{{MismatchTiming, "0", "100", "refund under review", true, "under review"}}},
		{"latest refund rejected", ppItem(itemPaid, 10000, 2500), ppPaid(10000, &PayProtocolRefund{ID: "6", Status: "rejected", Amount: 2500}),
			[]want{{MismatchAmount, "2500", "0", "refund rejected", false, "latest refund 6 is rejected"}}},
		{"latest refund failed, none of ours", ppItem(itemPaid, 10000, 0), ppPaid(10000, &PayProtocolRefund{ID: "6", Status: "failed", Amount: 2500}), nil},
		{"refund unreadable", ppItem(itemPaid, 10000, 2500), ppPaid(10000, &PayProtocolRefund{ID: "8", Status: RefundSuccess, AmountProblem: "not a whole number"}),
			[]want{{MismatchAmount, "2500", "", "refund success", false, "refund 8 cannot be compared: not a whole number"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := MatchPayProtocol(c.it, c.o)
			if len(got) != len(c.want) {
				t.Fatalf("got %d rows %+v, want %d", len(got), got, len(c.want))
			}
			for i, w := range c.want {
				g := got[i]
				if g.Category != w.category || g.Ours != w.ours || g.Theirs != w.theirs || g.TheirsState != w.theirsState ||
					g.Expected != w.expected || !strings.Contains(g.Detail, w.detail) {
					t.Errorf("row %d: got %+v\nwant %+v", i, g, w)
				}
				if g.Provider != ProviderPayProtocol || g.Subject != c.it.OutTradeNo || g.OrderNo != c.it.OrderNo ||
					g.SellerID != c.it.SellerID || g.Currency != "USD" || g.OursState != c.it.State {
					t.Errorf("row %d: keys %+v", i, g)
				}
			}
		})
	}
}

// ppStore and ppAPI are in-memory doubles of the ledger and Pay Protocol.
type ppStore struct{ items []PayProtocolItem }

func (s ppStore) PayProtocolItemsToReconcile(_ context.Context, runID int64) ([]PayProtocolItem, error) {
	if runID != 42 {
		return nil, fmt.Errorf("run %d", runID)
	}
	return s.items, nil
}

type ppAPI struct {
	orders         map[string]PayProtocolOrder
	fail           string // this order's query fails as Pay Protocol down would (transient, after retries)
	poison         string // this order's answer cannot be used
	active, maxAct atomic.Int32
	mu             sync.Mutex
	asked          []string
}

func (a *ppAPI) Order(_ context.Context, no string) (PayProtocolOrder, error) {
	n := a.active.Add(1)
	defer a.active.Add(-1)
	for {
		m := a.maxAct.Load()
		if n <= m || a.maxAct.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(time.Millisecond)
	a.mu.Lock()
	a.asked = append(a.asked, no)
	a.mu.Unlock()
	if no == a.fail {
		return PayProtocolOrder{}, transientErr{"connection reset"}
	}
	if no == a.poison {
		return PayProtocolOrder{}, errors.New("malformed answer: settlementAmount \"1e6\"")
	}
	o, ok := a.orders[no]
	if !ok {
		return o, fmt.Errorf("%w: order %s", ErrNotFound, no)
	}
	return o, nil
}

// transientErr is a failure that says the provider is down, not that
// one order is wrong.
type transientErr struct{ s string }

func (e transientErr) Error() string   { return e.s }
func (e transientErr) Transient() bool { return true }

// TestPayProtocolMatcherGoesOnPastOneUnreadableAnswer: one answer that
// cannot be used is a row against its order; the others are matched.
func TestPayProtocolMatcherGoesOnPastOneUnreadableAnswer(t *testing.T) {
	a, b := ppItem(itemPaid, 10, 0), ppItem(itemPaid, 10, 0)
	b.OrderNo, b.OutTradeNo = "O-2", "T-2"
	api := &ppAPI{orders: map[string]PayProtocolOrder{"T-1": ppPaid(10, nil)}, poison: "T-2"}
	got, err := PayProtocolMatcher(ppStore{[]PayProtocolItem{a, b}}, api, 2)(context.Background(), &Run{ID: 42})
	if err != nil || len(got) != 1 || got[0].Subject != "T-2" || got[0].Category != MismatchUnverifiable || got[0].Expected ||
		!strings.Contains(got[0].Detail, "could not be used") || !strings.Contains(got[0].Detail, "1e6") {
		t.Fatalf("got %+v, %v; want one unverifiable row for T-2 and T-1 matched", got, err)
	}
	// A refusal of everyone still stops the stage.
	api.poison, api.fail = "", "T-2"
	if _, err := PayProtocolMatcher(ppStore{[]PayProtocolItem{a, b}}, api, 2)(context.Background(), &Run{ID: 42}); err == nil {
		t.Fatal("Pay Protocol down did not stop the matcher")
	}
	api.fail = ""
	api.orders["T-2"] = PayProtocolOrder{}
	usage := &ppUsageAPI{}
	if _, err := PayProtocolMatcher(ppStore{[]PayProtocolItem{a}}, usage, 1)(context.Background(), &Run{ID: 42}); KindOf(err) != KindUsage {
		t.Fatalf("refused credentials: %v (kind %v), want KindUsage", err, KindOf(err))
	}
}

type ppUsageAPI struct{}

func (ppUsageAPI) Order(context.Context, string) (PayProtocolOrder, error) {
	return PayProtocolOrder{}, Errorf(KindUsage, "Pay Protocol", "refused our credentials")
}

func TestPayProtocolMatcher(t *testing.T) {
	var items []PayProtocolItem
	orders := map[string]PayProtocolOrder{}
	for i := range 40 {
		no := fmt.Sprintf("T-%02d", 39-i) // not in subject order: the matcher sorts
		it := PayProtocolItem{OrderNo: "O" + no, SellerID: "S", OutTradeNo: no, Currency: "USD", Gross: 1000, State: itemPaid}
		items = append(items, it)
		orders[no] = ppPaid(1000, nil)
	}
	orders["T-05"] = ppPaid(999, nil)
	orders["T-30"] = PayProtocolOrder{Status: PaymentFailed, Quote: Money{1000, "USD"}}
	delete(orders, "T-17")
	api := &ppAPI{orders: orders}
	m := PayProtocolMatcher(ppStore{items}, api, 3)
	got, err := m(context.Background(), &Run{ID: 42})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, g := range got {
		keys = append(keys, g.Subject+" "+g.Category)
	}
	if w := []string{"T-05 amount", "T-17 missing_at_provider", "T-30 status"}; !reflect.DeepEqual(keys, w) {
		t.Fatalf("got %v, want %v", keys, w)
	}
	if g := got[1]; g.Ours != "1000" || g.Theirs != "" || g.TheirsState != "not found" || g.OrderNo != "OT-17" || g.Expected {
		t.Fatalf("missing row %+v", g)
	}
	if n := api.maxAct.Load(); n > 3 || n < 2 {
		t.Fatalf("%d queries at once, want at most 3 (and some concurrency)", n)
	}
	if len(api.asked) != 40 {
		t.Fatalf("asked %d orders, want 40", len(api.asked))
	}
	again, err := PayProtocolMatcher(ppStore{items}, &ppAPI{orders: orders}, 8)(context.Background(), &Run{ID: 42})
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Fatalf("a second match differs: %v\n%+v\n%+v", err, again, got)
	}
}

func TestPayProtocolMatcherFailsWhenPayProtocolCannotBeAsked(t *testing.T) {
	items := []PayProtocolItem{ppItem(itemPaid, 10, 0)}
	api := &ppAPI{orders: map[string]PayProtocolOrder{}, fail: "T-1"}
	got, err := PayProtocolMatcher(ppStore{items}, api, 2)(context.Background(), &Run{ID: 42})
	if err == nil || !strings.Contains(err.Error(), "O-1") || got != nil {
		t.Fatalf("got %v, %v; want an error naming the order and no findings", got, err)
	}
	if _, err := PayProtocolMatcher(ppStore{items}, api, 2)(context.Background(), &Run{ID: 7}); err == nil {
		t.Fatal("a store error was swallowed")
	}
}

func TestAHeldPaymentPaidNowIsLateOnlyFromALaterRun(t *testing.T) {
	it := PayProtocolItem{OrderNo: "O1", SellerID: "S", OutTradeNo: "T1", Currency: "USD", Gross: 1000, State: ItemHeld}
	m := PayProtocolMatcher(ppStore{[]PayProtocolItem{it}}, &ppAPI{orders: map[string]PayProtocolOrder{"T1": ppPaid(1000, nil)}}, 1)
	own, err := m(context.Background(), &Run{ID: 42})
	if err != nil || len(own) != 1 || !own[0].Expected || own[0].Category != MismatchTiming {
		t.Fatalf("in its own run: %+v %v; want one timing row", own, err)
	}
	later, err := m(context.WithValue(context.Background(), recheckKey{}, true), &Run{ID: 42})
	if err != nil || len(later) != 1 || later[0].Expected || later[0].Category != MismatchStatus {
		t.Fatalf("from a later run: %+v %v; want one unexpected status row", later, err)
	}
}
