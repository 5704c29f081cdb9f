package payprotocol_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/finaltest"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
)

// The ledger's names of the states after upload.
const itemUploaded, itemPaid = "uploaded", "paid"

func ppItem(state string, gross, refunded int64) pipeline.RefundedItem {
	return pipeline.RefundedItem{OrderNo: "O-1", SellerID: "S-1", ProviderTxnID: "T-1", Currency: "USD", Gross: gross,
		Refunded: refunded, State: state}
}

func ppPaid(quote int64, r *payprotocol.OrderRefund) payprotocol.Order {
	return payprotocol.Order{Status: payprotocol.PaymentPaid.String(), Quote: pipeline.Money{Minor: quote, Currency: "USD"}, Refund: r}
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
		it   pipeline.RefundedItem
		o    payprotocol.Order
		want []want
	}{
		{"paid, no refunds", ppItem(itemPaid, 10000, 0), ppPaid(10000, nil), nil},
		{"paid, refund agrees", ppItem(itemPaid, 10000, 2500), ppPaid(10000, &payprotocol.OrderRefund{ID: "7", Status: payprotocol.RefundSuccess.String(), Amount: 2500}), nil},
		{"held, paid now", ppItem(pipeline.ItemHeld, 10000, 0), ppPaid(10000, nil),
			[]want{{pipeline.MismatchStatus, "10000", "10000", "paid", false, "run its date again"}}},
		{"amount", ppItem(itemPaid, 10000, 0), ppPaid(9999, nil),
			[]want{{pipeline.MismatchAmount, "10000", "9999", "paid", false, "payment: Pay Protocol quotes 99.99 USD, the order is 100.00 USD"}}},
		{"currency", ppItem(pipeline.ItemRecorded, 10000, 0), payprotocol.Order{Status: payprotocol.PaymentPaid.String(), Quote: pipeline.Money{Minor: 10000, Currency: "EUR"}},
			[]want{{pipeline.MismatchCurrency, "10000", "10000", "paid", false, "100.00 EUR"}}},
		{"quote unreadable", ppItem(pipeline.ItemRecorded, 10000, 0), payprotocol.Order{Status: payprotocol.PaymentPaid.String(), QuoteProblem: "quoted in \"USDT\""},
			[]want{{pipeline.MismatchAmount, "10000", "", "paid", false, "cannot be compared: quoted in \"USDT\""}}},
		{"failed", ppItem(itemPaid, 10000, 0), payprotocol.Order{Status: payprotocol.PaymentFailed.String(), Quote: pipeline.Money{Minor: 10000, Currency: "USD"}},
			[]want{{pipeline.MismatchStatus, "10000", "10000", "failed", false, "the ledger has the item paid, Pay Protocol's payment is failed"}}},
		{"failed while held", ppItem(pipeline.ItemHeld, 10000, 0), payprotocol.Order{Status: payprotocol.PaymentFailed.String(), Quote: pipeline.Money{Minor: 10000, Currency: "USD"}},
			[]want{{pipeline.MismatchTiming, "10000", "10000", "failed", true, "the item stays held until it is paid late, or a person rejects it"}}},
		{"pending while held", ppItem(pipeline.ItemHeld, 10000, 0), payprotocol.Order{Status: payprotocol.PaymentPending.String(), Quote: pipeline.Money{Minor: 10000, Currency: "USD"}},
			[]want{{pipeline.MismatchTiming, "10000", "10000", "pending", true, "payment is still pending"}}},
		{"partially paid while held", ppItem(pipeline.ItemHeld, 10000, 0), payprotocol.Order{Status: payprotocol.PaymentPartiallyPaid.String(), Quote: pipeline.Money{Minor: 10000, Currency: "USD"}},
			[]want{{pipeline.MismatchTiming, "10000", "10000", "partially paid", true, "stays held"}}},
		{"pending while uploaded", ppItem(itemUploaded, 10000, 0), payprotocol.Order{Status: payprotocol.PaymentBlockConfirmation.String(), Quote: pipeline.Money{Minor: 10000, Currency: "USD"}},
			[]want{{pipeline.MismatchStatus, "10000", "10000", "block confirmation", false, "uploaded"}}},
		{"refunded, covered", ppItem(itemPaid, 10000, 10000), payprotocol.Order{Status: payprotocol.PaymentRefunded.String(), Quote: pipeline.Money{Minor: 10000, Currency: "USD"}}, nil},
		{"refunded, not covered", ppItem(itemPaid, 10000, 2500), payprotocol.Order{Status: payprotocol.PaymentRefunded.String(), Quote: pipeline.Money{Minor: 10000, Currency: "USD"}},
			[]want{{pipeline.MismatchStatus, "2500", "10000", "refunded", false, "refunded the whole payment, the ledger counts 25.00 USD refunded"}}},
		{"refunded, ours above", ppItem(itemPaid, 10000, 10001), payprotocol.Order{Status: payprotocol.PaymentRefunded.String(), Quote: pipeline.Money{Minor: 10000, Currency: "USD"}},
			[]want{{pipeline.MismatchAmount, "10001", "10000", "refunded", false, "counts more"}}},
		{"refunded, other amount too", ppItem(itemPaid, 10000, 10000), payprotocol.Order{Status: payprotocol.PaymentRefunded.String(), Quote: pipeline.Money{Minor: 12000, Currency: "USD"}},
			[]want{{pipeline.MismatchAmount, "10000", "12000", "refunded", false, "payment:"},
				{pipeline.MismatchStatus, "10000", "12000", "refunded", false, "refunds:"}}},
		{"refund unknown to us", ppItem(itemPaid, 10000, 0), ppPaid(10000, &payprotocol.OrderRefund{ID: "9", Status: payprotocol.RefundSuccess.String(), Amount: 400}),
			[]want{{pipeline.MismatchAmount, "0", "400", "refund success", false, "latest refund 9 succeeded for 4.00 USD, the ledger counts 0.00 USD refunded"}}},
		{"our refund unknown to them", ppItem(itemPaid, 10000, 400), ppPaid(10000, nil),
			[]want{{pipeline.MismatchAmount, "400", "0", "no refund", false, "knows no refund"}}},
		{"late refund not at Pay Protocol", late, ppPaid(10000, &payprotocol.OrderRefund{ID: "3", Status: payprotocol.RefundSuccess.String(), Amount: 2000}),
			[]want{{pipeline.MismatchAmount, "3000", "2000", "refund success", false, "(1 late refund(s) included) (Pay Protocol shows only"}}},
		{"late refund the latest at Pay Protocol", lateSeen, ppPaid(10000, &payprotocol.OrderRefund{ID: "3", Status: payprotocol.RefundSuccess.String(), Amount: 1000}),
			[]want{{pipeline.MismatchUnverifiable, "3000", "1000", "refund success", true, "earlier ones cannot be listed"}}},
		{"refund pending approval", ppItem(pipeline.ItemHeld, 10000, 2500), ppPaid(10000, &payprotocol.OrderRefund{ID: "4", Status: "pending approval", Amount: 2500}),
			[]want{{pipeline.MismatchTiming, "2500", "2500", "refund pending approval", true, "latest refund 4 is pending approval"}}},
		{"refund under review, unknown to us", ppItem(itemPaid, 10000, 0), ppPaid(10000, &payprotocol.OrderRefund{ID: "5", Status: "under review", Amount: 100}),
			[]want{{pipeline.MismatchTiming, "0", "100", "refund under review", true, "under review"}}},
		{"latest refund rejected", ppItem(itemPaid, 10000, 2500), ppPaid(10000, &payprotocol.OrderRefund{ID: "6", Status: "rejected", Amount: 2500}),
			[]want{{pipeline.MismatchAmount, "2500", "0", "refund rejected", false, "latest refund 6 is rejected"}}},
		{"latest refund failed, none of ours", ppItem(itemPaid, 10000, 0), ppPaid(10000, &payprotocol.OrderRefund{ID: "6", Status: "failed", Amount: 2500}), nil},
		{"refund unreadable", ppItem(itemPaid, 10000, 2500), ppPaid(10000, &payprotocol.OrderRefund{ID: "8", Status: payprotocol.RefundSuccess.String(), AmountProblem: "not a whole number"}),
			[]want{{pipeline.MismatchAmount, "2500", "", "refund success", false, "refund 8 cannot be compared: not a whole number"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := payprotocol.Match(c.it, c.o)
			if len(got) != len(c.want) {
				t.Fatalf("got %d rows %+v, want %d", len(got), got, len(c.want))
			}
			for i, w := range c.want {
				g := got[i]
				if g.Category != w.category || g.Ours != w.ours || g.Theirs != w.theirs || g.TheirsState != w.theirsState ||
					g.Expected != w.expected || !strings.Contains(g.Detail, w.detail) {
					t.Errorf("row %d: got %+v\nwant %+v", i, g, w)
				}
				if g.Provider != payprotocol.Name || g.Subject != c.it.ProviderTxnID || g.OrderNo != c.it.OrderNo ||
					g.SellerID != c.it.SellerID || g.Currency != "USD" || g.OursState != c.it.State {
					t.Errorf("row %d: keys %+v", i, g)
				}
			}
		})
	}
}

// matcher is the Pay Protocol matcher asking about at most limit orders at
// once, keeping no final answers.
func matcher(store payprotocol.ReconcileStore, api payprotocol.ReconcileAPI, limit int) pipeline.Matcher {
	return payprotocol.Matcher(payprotocol.MatcherConfig{Store: store, API: api, Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: limit})})
}

// ppStore and ppAPI are in-memory doubles of the ledger and Pay Protocol.
type ppStore struct {
	items []pipeline.RefundedItem
	pages *int // counts the pages read, when not nil
}

func (s ppStore) RefundedItemsAfter(_ context.Context, runID int64, ch pipeline.Channel, after string, limit int) ([]pipeline.RefundedItem, error) {
	if runID != 42 || ch != payprotocol.Channel {
		return nil, fmt.Errorf("run %d", runID)
	}
	if s.pages != nil {
		*s.pages++
	}
	return pageOf(s.items, after, limit), nil
}

// pageOf is a keyset page of items: at most limit (0: all) of those whose
// order number comes after `after`, by order number.
func pageOf(items []pipeline.RefundedItem, after string, limit int) []pipeline.RefundedItem {
	var out []pipeline.RefundedItem
	for _, it := range items {
		if it.OrderNo > after {
			out = append(out, it)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].OrderNo < out[j].OrderNo })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

type ppAPI struct {
	orders         map[string]payprotocol.Order
	fail           string // this order's query fails as Pay Protocol down would (transient, after retries)
	failFrom       string // so does every order's from this one on (Pay Protocol going down)
	poison         string // this order's answer cannot be used
	active, maxAct atomic.Int32
	mu             sync.Mutex
	asked          []string
}

func (a *ppAPI) Order(_ context.Context, no string) (payprotocol.Order, error) {
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
	if no == a.fail || (a.failFrom != "" && no >= a.failFrom) {
		return payprotocol.Order{}, transientErr{"connection reset"}
	}
	if no == a.poison {
		return payprotocol.Order{}, errors.New("malformed answer: settlementAmount \"1e6\"")
	}
	o, ok := a.orders[no]
	if !ok {
		return o, fmt.Errorf("%w: order %s", pipeline.ErrNotFound, no)
	}
	return o, nil
}

// OrderPaid answers as the Adapter does: the kept payment when the order
// has no refund here, Order otherwise.
func (a *ppAPI) OrderPaid(ctx context.Context, no string, paid payprotocol.Order) (payprotocol.Order, error) {
	if o, ok := a.orders[no]; no != a.fail && (a.failFrom == "" || no < a.failFrom) && no != a.poison && (!ok || o.Refund == nil) {
		a.mu.Lock()
		a.asked = append(a.asked, no)
		a.mu.Unlock()
		return paid, nil
	}
	return a.Order(ctx, no)
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
	b.OrderNo, b.ProviderTxnID = "O-2", "T-2"
	api := &ppAPI{orders: map[string]payprotocol.Order{"T-1": ppPaid(10, nil)}, poison: "T-2"}
	got, err := matcher(ppStore{items: []pipeline.RefundedItem{a, b}}, api, 2)(context.Background(), &pipeline.Run{ID: 42})
	if err != nil || len(got) != 1 || got[0].Subject != "T-2" || got[0].Category != pipeline.MismatchUnverifiable || got[0].Expected ||
		!strings.Contains(got[0].Detail, "could not be used") || !strings.Contains(got[0].Detail, "1e6") {
		t.Fatalf("got %+v, %v; want one unverifiable row for T-2 and T-1 matched", got, err)
	}
	// No answer about one order while the other is answered: a row of
	// its own too.
	api.poison, api.fail = "", "T-2"
	got, err = matcher(ppStore{items: []pipeline.RefundedItem{a, b}}, api, 2)(context.Background(), &pipeline.Run{ID: 42})
	if err != nil || len(got) != 1 || got[0].Subject != "T-2" || got[0].Category != pipeline.MismatchUnverifiable || got[0].Expected {
		t.Fatalf("got %+v, %v; want one unverifiable row for T-2", got, err)
	}
	// No answer about any order still stops the stage.
	api.fail, api.failFrom = "", "T-1"
	if _, err := matcher(ppStore{items: []pipeline.RefundedItem{a, b}}, api, 2)(context.Background(), &pipeline.Run{ID: 42}); err == nil {
		t.Fatal("Pay Protocol down did not stop the matcher")
	}
	api.failFrom = ""
	api.orders["T-2"] = payprotocol.Order{}
	usage := &ppUsageAPI{}
	if _, err := matcher(ppStore{items: []pipeline.RefundedItem{a}}, usage, 1)(context.Background(), &pipeline.Run{ID: 42}); pipeline.KindOf(err) != pipeline.KindUsage {
		t.Fatalf("refused credentials: %v (kind %v), want pipeline.KindUsage", err, pipeline.KindOf(err))
	}
}

type ppUsageAPI struct{}

func (ppUsageAPI) Order(context.Context, string) (payprotocol.Order, error) {
	return payprotocol.Order{}, pipeline.Errorf(pipeline.KindUsage, "Pay Protocol", "refused our credentials")
}

func (u ppUsageAPI) OrderPaid(ctx context.Context, no string, _ payprotocol.Order) (payprotocol.Order, error) {
	return u.Order(ctx, no)
}

func TestPayProtocolMatcher(t *testing.T) {
	var items []pipeline.RefundedItem
	orders := map[string]payprotocol.Order{}
	for i := range 40 {
		no := fmt.Sprintf("T-%02d", 39-i) // not in subject order: the matcher sorts
		it := pipeline.RefundedItem{OrderNo: "O" + no, SellerID: "S", ProviderTxnID: no, Currency: "USD", Gross: 1000, State: itemPaid}
		items = append(items, it)
		orders[no] = ppPaid(1000, nil)
	}
	orders["T-05"] = ppPaid(999, nil)
	orders["T-30"] = payprotocol.Order{Status: payprotocol.PaymentFailed.String(), Quote: pipeline.Money{Minor: 1000, Currency: "USD"}}
	delete(orders, "T-17")
	api := &ppAPI{orders: orders}
	m := matcher(ppStore{items: items}, api, 3)
	got, err := m(context.Background(), &pipeline.Run{ID: 42})
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
	api = &ppAPI{orders: orders}
	again, err := matcher(ppStore{items: items}, api, 8)(context.Background(), &pipeline.Run{ID: 42})
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Fatalf("a second match differs: %v\n%+v\n%+v", err, again, got)
	}
	if len(api.asked) != 40 {
		t.Fatalf("without final answers kept, a second match asked %d orders, want 40", len(api.asked))
	}
	// Pages of 3 (the last one short) or of 8 (the last one empty): the
	// same findings, every order asked once.
	for _, size := range []int{3, 8} {
		api, pages := &ppAPI{orders: orders}, 0
		paged, err := payprotocol.Matcher(payprotocol.MatcherConfig{Store: ppStore{items, &pages}, API: api,
			Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: 3}), PageSize: size})(context.Background(), &pipeline.Run{ID: 42})
		if err != nil || !reflect.DeepEqual(paged, got) {
			t.Fatalf("pages of %d: %v\n%+v\nwant\n%+v", size, err, paged, got)
		}
		sort.Strings(api.asked)
		if len(api.asked) != 40 || len(slices.Compact(api.asked)) != 40 || pages != 40/size+1 {
			t.Fatalf("pages of %d: asked %d orders (%d once), %d pages read; want 40 and %d pages", size, len(api.asked),
				len(slices.Compact(api.asked)), pages, 40/size+1)
		}
	}
}

func TestPayProtocolMatcherFailsWhenPayProtocolCannotBeAsked(t *testing.T) {
	items := []pipeline.RefundedItem{ppItem(itemPaid, 10, 0)}
	api := &ppAPI{orders: map[string]payprotocol.Order{}, fail: "T-1"}
	got, err := matcher(ppStore{items: items}, api, 2)(context.Background(), &pipeline.Run{ID: 42})
	if err == nil || !strings.Contains(err.Error(), "O-1") || got != nil {
		t.Fatalf("got %v, %v; want an error naming the order and no findings", got, err)
	}
	if _, err := matcher(ppStore{items: items}, api, 2)(context.Background(), &pipeline.Run{ID: 7}); err == nil {
		t.Fatal("a store error was swallowed")
	}
}

func TestAHeldPaymentPaidNowIsLateOnlyFromALaterRun(t *testing.T) {
	it := pipeline.RefundedItem{OrderNo: "O1", SellerID: "S", ProviderTxnID: "T1", Currency: "USD", Gross: 1000, State: pipeline.ItemHeld}
	m := matcher(ppStore{items: []pipeline.RefundedItem{it}}, &ppAPI{orders: map[string]payprotocol.Order{"T1": ppPaid(1000, nil)}}, 1)
	own, err := m(context.Background(), &pipeline.Run{ID: 42})
	if err != nil || len(own) != 1 || !own[0].Expected || own[0].Category != pipeline.MismatchTiming {
		t.Fatalf("in its own run: %+v %v; want one timing row", own, err)
	}
	// From a later date's run, which reconciles run 42 again.
	store := &recheckStore{earlier: &pipeline.Run{ID: 42}, found: map[int64][]pipeline.Mismatch{}}
	write := func(context.Context, *pipeline.Run) (string, error) { return "", nil }
	_, err = pipeline.ReconcileStage(store, []pipeline.Matcher{skipRun(43, m)}, write, 7)(context.Background(), &pipeline.Run{ID: 43})
	later := store.found[42]
	if pipeline.KindOf(err) != pipeline.KindNeedsPerson || len(later) != 1 || later[0].Expected || later[0].Category != pipeline.MismatchStatus {
		t.Fatalf("from a later run: %+v %v; want one unexpected status row", later, err)
	}
}

// skipRun is m, finding nothing about run id.
func skipRun(id int64, m pipeline.Matcher) pipeline.Matcher {
	return func(ctx context.Context, run *pipeline.Run) ([]pipeline.Mismatch, error) {
		if run.ID == id {
			return nil, nil
		}
		return m(ctx, run)
	}
}

// recheckStore is a ledger whose one earlier run is reconciled again.
type recheckStore struct {
	earlier *pipeline.Run
	found   map[int64][]pipeline.Mismatch
}

func (s *recheckStore) ReplaceMismatches(_ context.Context, runID int64, ms []pipeline.Mismatch) error {
	s.found[runID] = ms
	return nil
}
func (s *recheckStore) FailedPayouts(context.Context, pipeline.RunKey) (int64, error) { return 0, nil }
func (s *recheckStore) RunsToRecheck(context.Context, *pipeline.Run, int) ([]*pipeline.Run, error) {
	return []*pipeline.Run{s.earlier}, nil
}
func (s *recheckStore) Unbalanced(context.Context, pipeline.RunKey) ([]string, error) {
	return nil, nil
}
func (s *recheckStore) Lock(context.Context, pipeline.RunKey) (func() error, error) {
	return func() error { return nil }, nil
}

// paidOrders returns n items paid, T-00, T-01, ..., and Pay Protocol's
// answers about them, each paid in agreement.
func paidOrders(n int) ([]pipeline.RefundedItem, map[string]payprotocol.Order) {
	var items []pipeline.RefundedItem
	orders := map[string]payprotocol.Order{}
	for i := range n {
		no := fmt.Sprintf("T-%02d", i)
		items = append(items, pipeline.RefundedItem{OrderNo: "O" + no, SellerID: "S", ProviderTxnID: no, Currency: "USD", Gross: 1000, State: itemPaid})
		orders[no] = ppPaid(1000, nil)
	}
	return items, orders
}

// TestPayProtocolMatcherAsksOnlyWhatCanStillChange: an order whose payment
// is paid (or refunded whole) and agrees with the ledger is not asked
// about again by a later matching, until the ledger says something else
// of it (a late refund); every other order is asked every time, and the
// findings stay the same. The queries keep to the pacer's limit.
func TestPayProtocolMatcherAsksOnlyWhatCanStillChange(t *testing.T) {
	items, orders := paidOrders(30)
	orders["T-05"] = ppPaid(999, nil) // amount
	items[7].Refunded = 200           // a refund still awaiting approval
	orders["T-07"] = ppPaid(1000, &payprotocol.OrderRefund{ID: "7", Status: payprotocol.RefundPendingApproval.String(), Amount: 200})
	orders["T-09"] = payprotocol.Order{Status: payprotocol.PaymentFailed.String(), Quote: pipeline.Money{Minor: 1000, Currency: "USD"}}
	items[11].Refunded = 1000 // refunded whole: agrees, and final
	orders["T-11"] = payprotocol.Order{Status: payprotocol.PaymentRefunded.String(), Quote: pipeline.Money{Minor: 1000, Currency: "USD"}}
	items[13].Refunded, items[13].LateRefunds, items[13].LastLateRefund = 300, 1, 300 // agrees
	orders["T-13"] = ppPaid(1000, &payprotocol.OrderRefund{ID: "13", Status: payprotocol.RefundSuccess.String(), Amount: 300})
	items[15].State = pipeline.ItemHeld // still pending: a timing gap
	orders["T-15"] = payprotocol.Order{Status: payprotocol.PaymentPending.String(), Quote: pipeline.Money{Minor: 1000, Currency: "USD"}}

	final := &finaltest.Answers{}
	pacer := pipeline.NewPacer(pipeline.Limits{MaxInFlight: 2})
	match := func(items []pipeline.RefundedItem) ([]pipeline.Mismatch, []string) {
		t.Helper()
		api := &ppAPI{orders: orders}
		// Pages of 7: the final answers are read and kept page by page.
		got, err := payprotocol.Matcher(payprotocol.MatcherConfig{Store: ppStore{items: items}, API: api, Pacer: pacer, Final: final,
			PageSize: 7})(context.Background(), &pipeline.Run{ID: 42})
		if err != nil {
			t.Fatal(err)
		}
		if n := api.maxAct.Load(); n > 2 {
			t.Fatalf("%d queries at once, want at most 2", n)
		}
		sort.Strings(api.asked)
		return got, api.asked
	}
	first, asked := match(items)
	if len(asked) != 30 || final.Len() != 26 {
		t.Fatalf("first matching asked %d orders and kept %d final, want 30 and 26", len(asked), final.Len())
	}
	var keys []string
	for _, g := range first {
		keys = append(keys, g.Subject+" "+g.Category)
	}
	if w := []string{"T-05 amount", "T-07 timing", "T-09 status", "T-15 timing"}; !reflect.DeepEqual(keys, w) {
		t.Fatalf("got %v, want %v", keys, w)
	}
	again, asked := match(items)
	if w := []string{"T-05", "T-07", "T-09", "T-15"}; !reflect.DeepEqual(asked, w) || !reflect.DeepEqual(again, first) {
		t.Fatalf("second matching asked %v (want %v) and found %+v", asked, w, again)
	}
	// A late refund of T-20 since: the ledger says something else of it,
	// and it is asked about again (Pay Protocol agrees: final again).
	items[20].Refunded, items[20].LateRefunds, items[20].LastLateRefund = 100, 1, 100
	orders["T-20"] = ppPaid(1000, &payprotocol.OrderRefund{ID: "20", Status: payprotocol.RefundSuccess.String(), Amount: 100})
	third, asked := match(items)
	if w := []string{"T-05", "T-07", "T-09", "T-15", "T-20"}; !reflect.DeepEqual(asked, w) || !reflect.DeepEqual(third, first) {
		t.Fatalf("after a late refund asked %v (want %v) and found %+v", asked, w, third)
	}
	if _, asked := match(items); len(asked) != 4 {
		t.Fatalf("asked %v, want the 4 orders that can still change", asked)
	}
	if p := pacer.PeakInFlight(); p > 2 || p < 1 {
		t.Fatalf("peak in flight %d, want 1..2", p)
	}
	// A matching that fails keeps what was answered before the failure,
	// in its page too (one page of all): T-21, asked before T-25, T-27
	// and T-29, which fail as Pay Protocol down would (3 in a row); a
	// re-run asks only the rest.
	before := final.Len()
	for _, i := range []int{21, 25, 27, 29} {
		no := fmt.Sprintf("T-%02d", i)
		items[i].Refunded = 50
		orders[no] = ppPaid(1000, &payprotocol.OrderRefund{ID: no, Status: payprotocol.RefundSuccess.String(), Amount: 50})
	}
	// One in flight: T-25 starts once T-21 is answered.
	failing := payprotocol.MatcherConfig{Store: ppStore{items: items}, API: &ppAPI{orders: orders, failFrom: "T-25"},
		Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: 1}), Final: final}
	if _, err := payprotocol.Matcher(failing)(context.Background(), &pipeline.Run{ID: 42}); err == nil || !strings.Contains(err.Error(), "OT-29") {
		t.Fatalf("Pay Protocol down: %v, want the matcher stopped at OT-29", err)
	}
	if got, _ := final.FinalKeys(context.Background(), payprotocol.Name, []string{payprotocol.FinalKey(items[21])}); final.Len() != before+1 || !got[payprotocol.FinalKey(items[21])] {
		t.Fatalf("a failed matching kept %d final answers, want 1 (T-21's)", final.Len()-before)
	}
	if _, asked := match(items); !reflect.DeepEqual(asked, []string{"T-05", "T-07", "T-09", "T-15", "T-25", "T-27", "T-29"}) {
		t.Fatalf("after the failure asked %v, want the 4 that can still change and T-25, T-27, T-29", asked)
	}
}
