package wechatpay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// wxStore is an in-memory ReconcileStore.
type wxStore struct {
	items       []pipeline.ChannelItem
	attempts    []pipeline.Attempt
	others      []pipeline.Attempt // succeeded distributions of other runs
	from, to    time.Time          // the last WeChatDistributedAfter window
	distributed error
}

// page returns at most limit (0: every one) of rows, those after `after`
// by key.
func page[T any](rows []T, key func(T) string, after string, limit int) []T {
	rows = slices.Clone(rows)
	slices.SortStableFunc(rows, func(a, b T) int { return strings.Compare(key(a), key(b)) })
	rows = slices.DeleteFunc(rows, func(r T) bool { return key(r) <= after })
	if limit > 0 && len(rows) > limit {
		rows = rows[:limit]
	}
	return rows
}

func (s *wxStore) WeChatItemsAfter(_ context.Context, _ int64, _ pipeline.Channel, after string, limit int) ([]pipeline.ChannelItem, error) {
	return page(s.items, func(it pipeline.ChannelItem) string { return it.OrderNo }, after, limit), nil
}

func (s *wxStore) WeChatItemsByTransaction(_ context.Context, _ int64, _ pipeline.Channel, txnIDs []string) ([]pipeline.ChannelItem, error) {
	return slices.DeleteFunc(page(s.items, func(it pipeline.ChannelItem) string { return it.OrderNo }, "", 0),
		func(it pipeline.ChannelItem) bool { return !slices.Contains(txnIDs, it.TransactionID) }), nil
}

// attemptPos orders attempts as the ledger pages them: by order number,
// then key.
func attemptPos(a pipeline.Attempt) string { return a.Item.OrderNo + "\x00" + a.Key }

func (s *wxStore) WeChatAttemptsAfter(_ context.Context, _ int64, _ pipeline.Channel, _ []string, afterOrder, afterKey string, limit int) ([]pipeline.Attempt, error) {
	after := ""
	if afterOrder != "" || afterKey != "" {
		after = afterOrder + "\x00" + afterKey
	}
	return page(s.attempts, attemptPos, after, limit), nil
}

func (s *wxStore) WeChatAttemptsByKey(_ context.Context, _ int64, _ pipeline.Channel, _, keys []string) ([]pipeline.Attempt, error) {
	return slices.DeleteFunc(slices.Clone(s.attempts), func(a pipeline.Attempt) bool { return !slices.Contains(keys, a.Key) }), nil
}

func (s *wxStore) WeChatDistributedAfter(_ context.Context, kind string, subs []string, from, to time.Time, _ int64, _ pipeline.Channel, after string, limit int) ([]pipeline.Attempt, error) {
	s.from, s.to = from, to
	var out []pipeline.Attempt
	for _, a := range s.others {
		if a.Kind == kind && a.State == pipeline.EffectSucceeded && a.Amount > 0 && slices.Contains(subs, a.Item.Account) &&
			a.Planned.Before(to) && !a.Recorded.Before(from) {
			out = append(out, a)
		}
	}
	return page(out, func(a pipeline.Attempt) string { return a.Key }, after, limit), s.distributed
}

// wxAPI is an in-memory Reconciler.
type wxAPI struct {
	orders      map[string]OrderStatus // out_order_no
	bills       map[string][]BillEntry // sub/day
	settlements map[string][]SettlementDetail
	err         error
	errs        map[string]error // by out_order_no
	billErrs    map[string]error // by sub/day: the bill's and the settlement details'
	settleErrs  map[string]error

	mu        sync.Mutex
	billCalls int
	queried   []string
}

func (a *wxAPI) Order(_ context.Context, sub, txn, no string) (OrderStatus, error) {
	a.mu.Lock()
	a.queried = append(a.queried, no)
	a.mu.Unlock()
	if a.err != nil {
		return OrderStatus{}, a.err
	}
	if err := a.errs[no]; err != nil {
		return OrderStatus{}, err
	}
	o, ok := a.orders[no]
	if !ok {
		return o, fmt.Errorf("%w: out_order_no %s", pipeline.ErrNotFound, no)
	}
	return o, nil
}

func (a *wxAPI) BillLines(_ context.Context, sub string, day pipeline.Date) ([]BillEntry, error) {
	a.mu.Lock()
	a.billCalls++
	a.mu.Unlock()
	if err := a.billErrs[sub+"/"+day.String()]; err != nil {
		return nil, err
	}
	return a.bills[sub+"/"+day.String()], nil
}

func (a *wxAPI) Settlements(_ context.Context, sub string, day pipeline.Date) ([]SettlementDetail, error) {
	if err := a.settleErrs[sub+"/"+day.String()]; err != nil {
		return nil, err
	}
	return a.settlements[sub+"/"+day.String()], nil
}

var (
	wxDate     = pipeline.Date{Year: 2026, Month: time.November, Day: 23}
	wxAccepted = time.Date(2026, 11, 24, 1, 0, 0, 0, Beijing)
	wxDay      = pipeline.Date{Year: 2026, Month: time.November, Day: 24}
	wxLater    = time.Date(2026, 11, 25, 12, 0, 0, 0, Beijing)
)

// wxClean is a run with one distribution (O1: commission 100, the rest 900
// unfrozen with it) and one unfreeze (O2: 500), both succeeded, accepted on
// wxDay and settled: nothing disagrees.
func wxClean() (*wxStore, *wxAPI) {
	i1 := pipeline.ChannelItem{OrderNo: "O1", SellerID: "S1", Account: "SUB1", TransactionID: "T1", Currency: "CNY", SellerShare: 900}
	i2 := pipeline.ChannelItem{OrderNo: "O2", SellerID: "S1", Account: "SUB1", TransactionID: "T2", Currency: "CNY", SellerShare: 500}
	rec := wxAccepted.Add(time.Second)
	store := &wxStore{items: []pipeline.ChannelItem{i1, i2}, attempts: []pipeline.Attempt{
		{Effect: pipeline.Effect{Kind: KindDistribution, Key: "K1", Currency: "CNY", Amount: 100, State: pipeline.EffectSucceeded, Planned: wxAccepted}, Item: i1, Recorded: rec},
		{Effect: pipeline.Effect{Kind: KindUnfreeze, Key: "K2", Currency: "CNY", Amount: 0, State: pipeline.EffectSucceeded, Planned: wxAccepted}, Item: i2, Recorded: rec},
	}}
	api := &wxAPI{
		orders: map[string]OrderStatus{
			"K1": {State: StateFinished, AcceptedAt: wxAccepted, Lines: []OrderLine{{Platform: true, Result: ResultSuccess, Amount: 100}}},
			"K2": {State: StateFinished, AcceptedAt: wxAccepted, Lines: []OrderLine{{Rest: true, Result: ResultSuccess, Amount: 500}}},
		},
		bills: map[string][]BillEntry{"SUB1/2026-11-24": {
			{Time: wxAccepted, TransactionID: "T1", OutOrderNo: "K1", Type: BillDistribution, Platform: true, Currency: "CNY", Amount: 100},
			{Time: wxAccepted, TransactionID: "T1", OutOrderNo: "K1", Type: BillUnfreeze, Currency: "CNY", Amount: 900},
			{Time: wxAccepted, TransactionID: "T2", OutOrderNo: "K2", Type: BillUnfreeze, Currency: "CNY", Amount: 500},
			{Time: wxAccepted, TransactionID: "T9", OutOrderNo: "OTHER", Type: BillDistribution, Currency: "CNY", Amount: 7}, // not this run's
		}},
		settlements: map[string][]SettlementDetail{"SUB1/2026-11-24": {{BatchNo: "SB1", State: SettleStateSettled, Currency: "CNY", Amount: 100}}},
	}
	return store, api
}

func wxMatch(t *testing.T, store *wxStore, api *wxAPI, now time.Time) []pipeline.Mismatch {
	t.Helper()
	ms, err := Matcher(MatcherConfig{Store: store, API: api, Now: func() time.Time { return now }})(context.Background(), &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: wxDate, Shard: pipeline.Whole}})
	if err != nil {
		t.Fatal(err)
	}
	pipeline.SortMismatches(ms)
	for _, m := range ms {
		if m.Provider != Name {
			t.Errorf("provider %q", m.Provider)
		}
	}
	return ms
}

// wxBrief is a mismatch as "category subject ours/theirs expected".
func wxBrief(ms []pipeline.Mismatch) []string {
	var out []string
	for _, m := range ms {
		s := fmt.Sprintf("%s %s %s/%s", m.Category, m.Subject, m.Ours, m.Theirs)
		if m.Expected {
			s += " expected"
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func TestWeChatMatcherCleanRunHasNoMismatch(t *testing.T) {
	store, api := wxClean()
	if ms := wxMatch(t, store, api, wxLater); len(ms) != 0 {
		t.Fatalf("clean run: %v", wxBrief(ms))
	}
	if api.billCalls != 1 {
		t.Fatalf("%d bill downloads, want 1 (one sub-merchant, one day)", api.billCalls)
	}
	if from, to := store.from, store.to; !from.Equal(wxDay.Time(Beijing).Add(-clockMargin)) || !to.Equal(wxDay.AddDays(1).Time(Beijing).Add(clockMargin)) {
		t.Fatalf("ledger asked for distributions in [%s, %s)", from, to)
	}
}

func TestWeChatMatcherFindings(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(s *wxStore, a *wxAPI)
		want   []string
	}{
		{"distribution lost at WeChat", func(s *wxStore, a *wxAPI) {
			delete(a.orders, "K1")
			a.bills["SUB1/2026-11-24"] = a.bills["SUB1/2026-11-24"][2:]
			a.settlements["SUB1/2026-11-24"] = nil
		}, []string{"missing_at_provider K1 100/", "missing_at_provider settlement/SUB1/2026-11-24/CNY 100/"}},
		{"unfreeze lost at WeChat", func(s *wxStore, a *wxAPI) {
			delete(a.orders, "K2")
			a.bills["SUB1/2026-11-24"] = a.bills["SUB1/2026-11-24"][:2]
		}, []string{"missing_at_provider K2 500/"}},
		{"WeChat reports another commission", func(s *wxStore, a *wxAPI) {
			a.orders["K1"].Lines[0].Amount = 90
			a.bills["SUB1/2026-11-24"][0].Amount = 90
		}, []string{"amount K1 100/90", "amount K1 100/90"}},
		{"WeChat reports another unfreeze", func(s *wxStore, a *wxAPI) {
			a.orders["K2"].Lines[0].Amount = 499
		}, []string{"amount K2 500/499"}},
		{"bill line in another currency", func(s *wxStore, a *wxAPI) {
			a.bills["SUB1/2026-11-24"][0].Currency = "USD"
		}, []string{"currency K1 100/100"}},
		{"succeeded with us, CLOSED at WeChat", func(s *wxStore, a *wxAPI) {
			a.orders["K1"] = OrderStatus{State: StateFinished, AcceptedAt: wxAccepted, Lines: []OrderLine{{Platform: true, Result: ResultClosed, FailReason: "NO_RELATION", Amount: 100}}}
			a.bills["SUB1/2026-11-24"] = a.bills["SUB1/2026-11-24"][2:]
			a.settlements["SUB1/2026-11-24"] = nil
		}, []string{"missing_at_provider K1 100/", "missing_at_provider settlement/SUB1/2026-11-24/CNY 100/", "status K1 100/100"}},
		{"failed with us, SUCCESS at WeChat", func(s *wxStore, a *wxAPI) {
			s.attempts[0].State = pipeline.EffectFailed
		}, []string{"amount settlement/SUB1/2026-11-24/CNY 0/100", "missing_in_ledger K1 100/100", "status K1 100/100"}}, // the rest (900) went to the seller either way
		{"failed with us, unknown to WeChat: agreed", func(s *wxStore, a *wxAPI) {
			s.attempts[0].State = pipeline.EffectFailed
			delete(a.orders, "K1")
			a.bills["SUB1/2026-11-24"] = a.bills["SUB1/2026-11-24"][2:]
			a.settlements["SUB1/2026-11-24"] = nil
		}, nil},
		{"unknown with us, never arrived", func(s *wxStore, a *wxAPI) {
			s.attempts[1].State = pipeline.EffectUnknown
			delete(a.orders, "K2")
			a.bills["SUB1/2026-11-24"] = a.bills["SUB1/2026-11-24"][:2]
		}, []string{"status K2 500/"}},
		{"still processing", func(s *wxStore, a *wxAPI) {
			s.attempts[0].State = pipeline.EffectSent
			a.orders["K1"] = OrderStatus{State: StateProcessing, AcceptedAt: wxAccepted, Lines: []OrderLine{{Platform: true, Result: ResultPending, Amount: 100}}}
			a.bills["SUB1/2026-11-24"] = a.bills["SUB1/2026-11-24"][2:]
			a.settlements["SUB1/2026-11-24"][0].State = SettleStateUnsettled
		}, []string{"timing K1 100/100 expected", "timing settlement/SUB1/2026-11-24/CNY 0/100 expected"}},
		{"receiver pending in a finished order the ledger recorded succeeded: went back", func(s *wxStore, a *wxAPI) {
			a.orders["K1"].Lines[0].Result = ResultPending
		}, []string{"status K1 100/100"}},
		{"no platform line in WeChat's order", func(s *wxStore, a *wxAPI) {
			a.orders["K1"] = OrderStatus{State: StateFinished, AcceptedAt: wxAccepted, Lines: []OrderLine{{Rest: true, Result: ResultSuccess, Amount: 100}}}
		}, []string{"missing_at_provider K1 100/"}},
		{"someone moved our transaction's money", func(s *wxStore, a *wxAPI) {
			a.bills["SUB1/2026-11-24"] = append(a.bills["SUB1/2026-11-24"],
				BillEntry{TransactionID: "T2", OutOrderNo: "ROGUE", Type: BillDistribution, Currency: "CNY", Amount: 50})
		}, []string{"missing_in_ledger ROGUE /50"}},
		{"a line to another receiver under our key", func(s *wxStore, a *wxAPI) {
			a.bills["SUB1/2026-11-24"] = append(a.bills["SUB1/2026-11-24"],
				BillEntry{TransactionID: "T1", OutOrderNo: "K1", Type: BillDistribution, Currency: "CNY", Amount: 5})
		}, []string{"missing_in_ledger K1 100/5"}},
		{"a second platform line under our key", func(s *wxStore, a *wxAPI) {
			a.bills["SUB1/2026-11-24"] = append(a.bills["SUB1/2026-11-24"], a.bills["SUB1/2026-11-24"][0])
		}, []string{"missing_in_ledger K1 100/100"}},
		{"bill without our distribution", func(s *wxStore, a *wxAPI) {
			a.bills["SUB1/2026-11-24"] = a.bills["SUB1/2026-11-24"][1:]
		}, []string{"missing_at_provider K1 100/"}},
		{"funds still UNSETTLE", func(s *wxStore, a *wxAPI) {
			a.settlements["SUB1/2026-11-24"][0].State = SettleStateUnsettled
		}, []string{"timing settlement/SUB1/2026-11-24/CNY 100/100 expected"}},
		{"UNSETTLE with less than we distributed", func(s *wxStore, a *wxAPI) {
			a.settlements["SUB1/2026-11-24"][0] = SettlementDetail{BatchNo: "SB1", State: SettleStateUnsettled, Currency: "CNY", Amount: 60}
		}, []string{"amount settlement/SUB1/2026-11-24/CNY 100/60"}},
		{"SETTLED with another amount", func(s *wxStore, a *wxAPI) {
			a.settlements["SUB1/2026-11-24"][0].Amount = 101
		}, []string{"amount settlement/SUB1/2026-11-24/CNY 100/101"}},
		{"settled in two batches and a currency we never sent", func(s *wxStore, a *wxAPI) {
			a.settlements["SUB1/2026-11-24"] = []SettlementDetail{{BatchNo: "SB1", State: SettleStateSettled, Currency: "CNY", Amount: 60},
				{BatchNo: "SB2", State: SettleStateSettled, Currency: "CNY", Amount: 40}, {BatchNo: "SB3", State: SettleStateSettled, Currency: "USD", Amount: 3}}
		}, []string{"amount settlement/SUB1/2026-11-24/USD 0/3"}},
		{"another date's run distributed the same day", func(s *wxStore, a *wxAPI) {
			i := pipeline.ChannelItem{OrderNo: "OLD", SellerID: "S1", Account: "SUB1", TransactionID: "T0", Currency: "CNY"}
			s.others = append(s.others, pipeline.Attempt{Effect: pipeline.Effect{Kind: KindDistribution, Key: "K0", Currency: "CNY", Amount: 30, State: pipeline.EffectSucceeded, Planned: wxAccepted.Add(-time.Hour)},
				Item: i, Recorded: wxAccepted.Add(time.Hour)})
			a.orders["K0"] = OrderStatus{State: StateFinished, AcceptedAt: wxAccepted.Add(-time.Minute), Lines: []OrderLine{{Platform: true, Result: ResultSuccess, Amount: 30}}}
			a.settlements["SUB1/2026-11-24"][0].Amount = 130
		}, nil},
		{"another date's run distributed the day before", func(s *wxStore, a *wxAPI) {
			i := pipeline.ChannelItem{OrderNo: "OLD", SellerID: "S1", Account: "SUB1", TransactionID: "T0", Currency: "CNY"}
			s.others = append(s.others, pipeline.Attempt{Effect: pipeline.Effect{Kind: KindDistribution, Key: "K0", Currency: "CNY", Amount: 30, State: pipeline.EffectSucceeded, Planned: wxAccepted.Add(-2 * time.Hour)},
				Item: i, Recorded: wxAccepted})
			a.orders["K0"] = OrderStatus{State: StateFinished, AcceptedAt: wxDay.Time(Beijing).Add(-time.Second), Lines: []OrderLine{{Platform: true, Result: ResultSuccess, Amount: 30}}}
		}, nil},
		{"another date's distribution lost at WeChat counts on the ledger's day", func(s *wxStore, a *wxAPI) {
			i := pipeline.ChannelItem{OrderNo: "OLD", SellerID: "S1", Account: "SUB1", TransactionID: "T0", Currency: "CNY"}
			s.others = append(s.others, pipeline.Attempt{Effect: pipeline.Effect{Kind: KindDistribution, Key: "K0", Currency: "CNY", Amount: 30, State: pipeline.EffectSucceeded, Planned: wxAccepted},
				Item: i, Recorded: wxAccepted})
		}, []string{"amount settlement/SUB1/2026-11-24/CNY 130/100"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store, api := wxClean()
			tc.tamper(store, api)
			if got := wxBrief(wxMatch(t, store, api, wxLater)); !slices.Equal(got, tc.want) {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestWeChatMatcherRows(t *testing.T) {
	store, api := wxClean()
	delete(api.orders, "K1")
	ms := wxMatch(t, store, api, wxLater)
	want := pipeline.Mismatch{Provider: Name, Category: pipeline.MismatchMissingAtProvider, Subject: "K1", OrderNo: "O1", SellerID: "S1",
		Currency: "CNY", Ours: "100", OursState: "succeeded", TheirsState: "NOT_FOUND",
		Detail: "WeChat Pay does not know the distribution of transaction T1"}
	if len(ms) == 0 || ms[0] != want {
		t.Fatalf("got %+v\nwant %+v", ms, want)
	}
}

func TestWeChatMatcherBillNotOutYet(t *testing.T) {
	store, api := wxClean()
	api.settlements["SUB1/2026-11-24"][0].State = SettleStateUnsettled
	api.bills = nil // asking for it would find nothing, and be an error at WeChat
	got := wxMatch(t, store, api, wxAccepted.Add(22*time.Hour+59*time.Minute))
	want := []string{"timing bill/SUB1/2026-11-24 / expected", "timing settlement/SUB1/2026-11-24/CNY 100/100 expected"}
	if b := wxBrief(got); !slices.Equal(b, want) || api.billCalls != 0 {
		t.Fatalf("the day is not over in Beijing: %q (%d bill downloads), want %q", b, api.billCalls, want)
	}
	for _, m := range got {
		if m.SellerID != "S1" || strings.Contains(m.Detail, "23:59") {
			t.Fatalf("row %+v", m)
		}
	}
	// The day is over in Beijing, but WeChat Pay publishes its bills from
	// the next morning: asked at 02:30 (the nightly run's hour in
	// Asia/Shanghai, rechecking yesterday's run), there is none yet.
	for _, at := range []time.Time{wxDay.AddDays(1).Time(Beijing), wxDay.AddDays(1).Time(Beijing).Add(BillOut - time.Nanosecond)} {
		if b := wxBrief(wxMatch(t, store, api, at)); !slices.Equal(b, want) || api.billCalls != 0 {
			t.Fatalf("at %s: %q (%d bill downloads), want %q", at, b, api.billCalls, want)
		}
	}
	// From 10:00 the next day in Beijing: the bill is out.
	api.bills = map[string][]BillEntry{}
	got = wxMatch(t, store, api, time.Date(2026, 11, 25, 10, 0, 0, 0, Beijing))
	if api.billCalls != 1 || !slices.Contains(wxBrief(got), "missing_at_provider K1 100/") {
		t.Fatalf("at 10:00 the next day: %q (%d bill downloads)", wxBrief(got), api.billCalls)
	}
}

func TestWeChatMatcherSameFindingsSameRows(t *testing.T) {
	run := func() []pipeline.Mismatch {
		store, api := wxClean()
		api.orders["K1"].Lines[0].Amount = 1
		delete(api.orders, "K2")
		api.settlements["SUB1/2026-11-24"][0].State = SettleStateUnsettled
		api.bills["SUB1/2026-11-24"] = append(api.bills["SUB1/2026-11-24"],
			BillEntry{TransactionID: "T2", OutOrderNo: "ROGUE", Type: BillDistribution, Currency: "CNY", Amount: 50})
		return wxMatch(t, store, api, wxLater)
	}
	first := run()
	if len(first) < 3 {
		t.Fatalf("want several findings, got %q", wxBrief(first))
	}
	for range 5 {
		if again := run(); !slices.Equal(again, first) {
			t.Fatalf("another run found\n%+v\nthen\n%+v", first, again)
		}
	}
}

func TestWeChatMatcherAsksEachOrderOnce(t *testing.T) {
	store, api := wxClean()
	// One of our own also listed by the ledger's window query: not asked twice.
	wxMatch(t, store, api, wxLater)
	slices.Sort(api.queried)
	if !slices.Equal(api.queried, []string{"K1", "K2"}) {
		t.Fatalf("queried %q", api.queried)
	}
}

func TestWeChatMatcherErrors(t *testing.T) {
	store, api := wxClean()
	api.err = errors.New("connection reset")
	_, err := Matcher(MatcherConfig{Store: store, API: api, Now: func() time.Time { return wxLater }})(context.Background(), &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: wxDate}})
	if err == nil || !strings.Contains(err.Error(), "connection reset") || !strings.Contains(err.Error(), "K1") {
		t.Fatalf("WeChat unreachable: %v", err)
	}
	store, api = wxClean()
	store.distributed = errors.New("ledger down")
	if _, err := Matcher(MatcherConfig{Store: store, API: api, Now: func() time.Time { return wxLater }})(context.Background(), &pipeline.Run{ID: 1}); err == nil {
		t.Fatal("the ledger's error was lost")
	}
}

func TestWeChatMatcherNoItems(t *testing.T) {
	ms := wxMatch(t, &wxStore{}, &wxAPI{}, wxLater)
	if len(ms) != 0 {
		t.Fatalf("%v", wxBrief(ms))
	}
}

// wxRefused is an adapter's error for a question WeChat Pay refused.
type wxRefused struct{}

func (wxRefused) Error() string { return "HTTP 400 INVALID_REQUEST refused" }
func (wxRefused) Refused() bool { return true }

// One transaction WeChat Pay refused (held by the distribute stage), and
// one attempt whose query WeChat Pay refuses: each is a row of its own and
// everything else is compared as usual.
func TestWeChatMatcherReportsRefusalsAndGoesOn(t *testing.T) {
	store, api := wxClean()
	store.items = append(store.items, pipeline.ChannelItem{OrderNo: "O3", SellerID: "S1", Account: "SUB1", TransactionID: "T3", Currency: "CNY",
		State: pipeline.ItemRecorded, Reason: "held: " + refusal + "remaining amount of T3: HTTP 400 INVALID_REQUEST"})
	api.errs = map[string]error{"K2": fmt.Errorf("query: %w", wxRefused{})}
	ms := wxMatch(t, store, api, wxLater)
	got := wxBrief(ms)
	want := []string{"status K2 500/", "status transaction/T3 /"}
	if !slices.Equal(got, want) {
		t.Fatalf("mismatches %q, want %q", got, want)
	}
	for _, m := range ms {
		if m.TheirsState != "REFUSED" || !strings.Contains(m.Detail, "INVALID_REQUEST") || m.Expected {
			t.Fatalf("row %+v", m)
		}
	}
}

// wxUnreadable is an adapter's error for an answer that cannot be read.
type wxUnreadable struct{}

func (wxUnreadable) Error() string    { return "settlement details: invalid JSON" }
func (wxUnreadable) Unreadable() bool { return true }

// A sub-merchant's bill WeChat Pay refuses, and another's settlement
// details it answers unreadably, are a row each; every other check of
// both, and of the others, is made as usual. Before, either stopped the
// WeChat matcher, and with it every report of the run.
func TestWeChatMatcherBillOrSettlementOfOneSubMerchantStopsOnlyItself(t *testing.T) {
	day := func() (*wxStore, *wxAPI) {
		store, api := wxClean()
		i3 := pipeline.ChannelItem{OrderNo: "O3", SellerID: "S2", Account: "SUB2", TransactionID: "T3", Currency: "CNY", SellerShare: 800}
		store.items = append(store.items, i3)
		store.attempts = append(store.attempts, pipeline.Attempt{Effect: pipeline.Effect{Kind: KindDistribution, Key: "K3", Currency: "CNY", Amount: 200,
			State: pipeline.EffectSucceeded, Planned: wxAccepted}, Item: i3, Recorded: wxAccepted.Add(time.Second)})
		api.orders["K3"] = OrderStatus{State: StateFinished, AcceptedAt: wxAccepted, Lines: []OrderLine{{Platform: true, Result: ResultSuccess, Amount: 200}}}
		// SUB2's bill lacks K3: one finding either way.
		api.bills["SUB2/2026-11-24"] = []BillEntry{{Time: wxAccepted, TransactionID: "T3", OutOrderNo: "K3", Type: BillUnfreeze, Currency: "CNY", Amount: 800}}
		api.settlements["SUB2/2026-11-24"] = []SettlementDetail{{BatchNo: "SB2", State: SettleStateSettled, Currency: "CNY", Amount: 200}}
		return store, api
	}
	store, api := day()
	alone := wxBrief(wxMatch(t, store, api, wxLater))
	if len(alone) != 1 {
		t.Fatalf("the day without refusals: %q, want its one finding", alone)
	}
	store, api = day()
	api.billErrs = map[string]error{"SUB1/2026-11-24": fmt.Errorf("bill: %w", wxRefused{})}
	api.settleErrs = map[string]error{"SUB2/2026-11-24": fmt.Errorf("settlements: %w", wxUnreadable{})}
	ms := wxMatch(t, store, api, wxLater)
	want := append([]string{"status bill/SUB1/2026-11-24 /", "status settlement/SUB2/2026-11-24 /"}, alone...)
	slices.Sort(want)
	if got := wxBrief(ms); !slices.Equal(got, want) {
		t.Fatalf("mismatches %q, want %q", got, want)
	}
	for _, m := range ms {
		if strings.HasPrefix(m.Subject, "bill/") || strings.HasPrefix(m.Subject, "settlement/") {
			if m.TheirsState != "REFUSED" || m.Expected || !strings.Contains(m.Detail, "WeChat Pay: ") {
				t.Errorf("row %+v", m)
			}
		}
	}
	if api.billCalls != 2 {
		t.Errorf("%d bills asked, want both sub-merchants'", api.billCalls)
	}
	// A transient failure is still the stage's, to be run again.
	store, api = day()
	api.billErrs = map[string]error{"SUB2/2026-11-24": errors.New("connection reset")}
	if _, err := Matcher(MatcherConfig{Store: store, API: api, Now: func() time.Time { return wxLater }})(context.Background(),
		&pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: wxDate, Shard: pipeline.Whole}}); err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("a bill that did not come: %v", err)
	}
}

// wxPagedDay is a run of n transactions over three sub-merchants - every
// third an unfreeze, the rest distributions - their order numbers in
// another order than their keys, accepted on wxDay and settled, with
// WeChat Pay's bills and settlement details to match, and then tampered
// with: an order WeChat Pay lost, a bill line with another amount, a
// line on our transaction nobody asked for, an order accepted the day
// before (its line in the wrong bill), a query WeChat Pay refuses, a
// distribution CLOSED at WeChat, a bill missing a line, and another run's
// distribution on the same day.
func wxPagedDay(n int) (*wxStore, *wxAPI) {
	store := &wxStore{}
	api := &wxAPI{orders: map[string]OrderStatus{}, bills: map[string][]BillEntry{}, settlements: map[string][]SettlementDetail{},
		errs: map[string]error{}}
	settled := map[string]int64{}
	for i := range n {
		sub := fmt.Sprintf("SUB%d", i%3)
		it := pipeline.ChannelItem{OrderNo: fmt.Sprintf("O%03d", (i*7)%n), SellerID: fmt.Sprintf("S%d", i%3), Account: sub,
			TransactionID: fmt.Sprintf("T%03d", i), Currency: "CNY", SellerShare: 900}
		key := fmt.Sprintf("K%03d", i)
		e := pipeline.Effect{Kind: KindDistribution, Key: key, Currency: "CNY", Amount: 100, State: pipeline.EffectSucceeded}
		line := OrderLine{Platform: true, Result: ResultSuccess, Amount: 100}
		bill := []BillEntry{{Time: wxAccepted, TransactionID: it.TransactionID, OutOrderNo: key, Type: BillDistribution, Platform: true, Currency: "CNY", Amount: 100},
			{Time: wxAccepted, TransactionID: it.TransactionID, OutOrderNo: key, Type: BillUnfreeze, Currency: "CNY", Amount: 900}}
		if i%3 == 0 {
			e.Kind, e.Amount = KindUnfreeze, 0
			line = OrderLine{Rest: true, Result: ResultSuccess, Amount: 900}
			bill = bill[1:]
		} else {
			settled[sub] += 100
		}
		store.items = append(store.items, it)
		e.Planned = wxAccepted
		store.attempts = append(store.attempts, pipeline.Attempt{Effect: e, Item: it, Recorded: wxAccepted.Add(time.Second)})
		api.orders[key] = OrderStatus{State: StateFinished, AcceptedAt: wxAccepted, Lines: []OrderLine{line}}
		api.bills[sub+"/2026-11-24"] = append(api.bills[sub+"/2026-11-24"], bill...)
	}
	for sub, v := range settled {
		api.settlements[sub+"/2026-11-24"] = []SettlementDetail{{BatchNo: "SB-" + sub, State: SettleStateSettled, Currency: "CNY", Amount: v}}
	}
	drop := func(sub, key string, typ string) {
		api.bills[sub] = slices.DeleteFunc(api.bills[sub], func(l BillEntry) bool { return l.OutOrderNo == key && (typ == "" || l.Type == typ) })
	}
	// K005 (SUB2) lost at WeChat.
	delete(api.orders, "K005")
	drop("SUB2/2026-11-24", "K005", "")
	// K010 (SUB1): the bill's line moves 90.
	for i, l := range api.bills["SUB1/2026-11-24"] {
		if l.OutOrderNo == "K010" && l.Type == BillDistribution {
			api.bills["SUB1/2026-11-24"][i].Amount = 90
		}
	}
	// A line on T013 (SUB1) nobody asked for.
	api.bills["SUB1/2026-11-24"] = append(api.bills["SUB1/2026-11-24"],
		BillEntry{TransactionID: "T013", OutOrderNo: "ROGUE", Type: BillDistribution, Currency: "CNY", Amount: 50})
	// K017 (SUB2) accepted the day before, its line in the bill of wxDay.
	api.orders["K017"] = OrderStatus{State: StateFinished, AcceptedAt: wxDay.Time(Beijing).Add(-time.Minute),
		Lines: []OrderLine{{Platform: true, Result: ResultSuccess, Amount: 100}}}
	// WeChat Pay refuses to answer about K020 (SUB2).
	api.errs["K020"] = fmt.Errorf("query: %w", wxRefused{})
	// K025 (SUB1) CLOSED at WeChat.
	api.orders["K025"] = OrderStatus{State: StateFinished, AcceptedAt: wxAccepted, Lines: []OrderLine{{Platform: true, Result: ResultClosed, FailReason: "NO_RELATION", Amount: 100}}}
	// K031 (SUB1): the bill has no distribution line.
	drop("SUB1/2026-11-24", "K031", BillDistribution)
	// Another run's distribution at SUB0 on the same day.
	old := pipeline.ChannelItem{OrderNo: "OLD", SellerID: "S0", Account: "SUB0", TransactionID: "T900", Currency: "CNY"}
	store.others = append(store.others, pipeline.Attempt{Effect: pipeline.Effect{Kind: KindDistribution, Key: "K900", Currency: "CNY", Amount: 30,
		State: pipeline.EffectSucceeded, Planned: wxAccepted}, Item: old, Recorded: wxAccepted.Add(time.Second)})
	api.orders["K900"] = OrderStatus{State: StateFinished, AcceptedAt: wxAccepted, Lines: []OrderLine{{Platform: true, Result: ResultSuccess, Amount: 30}}}
	return store, api
}

// pagedStore is a ReconcileStore that remembers the most rows one of its
// reads returned.
type pagedStore struct {
	*wxStore
	mu      sync.Mutex
	largest int
}

func (s *pagedStore) note(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.largest = max(s.largest, n)
}

func (s *pagedStore) WeChatItemsAfter(ctx context.Context, runID int64, ch pipeline.Channel, after string, limit int) ([]pipeline.ChannelItem, error) {
	out, err := s.wxStore.WeChatItemsAfter(ctx, runID, ch, after, limit)
	s.note(len(out))
	return out, err
}

func (s *pagedStore) WeChatAttemptsAfter(ctx context.Context, runID int64, ch pipeline.Channel, kinds []string, afterOrder, afterKey string, limit int) ([]pipeline.Attempt, error) {
	out, err := s.wxStore.WeChatAttemptsAfter(ctx, runID, ch, kinds, afterOrder, afterKey, limit)
	s.note(len(out))
	return out, err
}

func (s *pagedStore) WeChatAttemptsByKey(ctx context.Context, runID int64, ch pipeline.Channel, kinds, keys []string) ([]pipeline.Attempt, error) {
	out, err := s.wxStore.WeChatAttemptsByKey(ctx, runID, ch, kinds, keys)
	s.note(len(out))
	return out, err
}

// The matcher reads and matches the run a page at a time: with pages of
// 1, 2, 3, 7 and 16 rows it finds, over a day of 48 transactions crossing
// many pages, exactly what it finds reading the day as one page - every
// tamper - and it never reads more than a page at once.
func TestWeChatMatcherPagesFindTheSame(t *testing.T) {
	const n = 48
	match := func(size int) ([]pipeline.Mismatch, int, []string) {
		store, api := wxPagedDay(n)
		ps := &pagedStore{wxStore: store}
		final := &wxFinal{}
		ms, err := Matcher(MatcherConfig{Store: ps, API: api, Final: final, Page: size, Now: func() time.Time { return wxLater }})(
			context.Background(), &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: wxDate, Shard: pipeline.Whole}})
		if err != nil {
			t.Fatal(err)
		}
		pipeline.SortMismatches(ms)
		return ms, ps.largest, final.Keys(FinalAnswersName)
	}
	whole, largest, kept := match(n * 4)
	if largest != n {
		t.Fatalf("one page: read %d rows at most, want the %d attempts at once", largest, n)
	}
	want := []string{
		"amount K010 100/90",
		"amount settlement/SUB2/2026-11-24/CNY 1500/1600", // the ledger's K005 on the day it recorded it, K017 on the day before
		"missing_at_provider K005 100/",
		"missing_at_provider K017 100/", // not in the bill of the day before
		"missing_at_provider K031 100/",
		"missing_at_provider settlement/SUB0/2026-11-24/CNY 30/", // K900 of another run counts: SUB0 has no distribution of its own
		"missing_at_provider settlement/SUB2/2026-11-23/CNY 100/",
		"missing_in_ledger ROGUE /50",
		"status K020 100/",
		"status K025 100/100",
	}
	if got := wxBrief(whole); !slices.Equal(got, want) {
		t.Fatalf("one page:\n got %q\nwant %q", got, want)
	}
	for _, size := range []int{1, 2, 3, 7, 16} {
		ms, largest, keys := match(size)
		if !slices.Equal(ms, whole) {
			t.Errorf("pages of %d:\n%+v\none page:\n%+v", size, ms, whole)
		}
		if largest > size {
			t.Errorf("pages of %d: read %d rows at once", size, largest)
		}
		if !slices.Equal(keys, kept) {
			t.Errorf("pages of %d kept %d final answers, one page %d", size, len(keys), len(kept))
		}
	}
}

// What the adapter cannot use of a bill or settlement detail it read is
// about that sub-merchant alone, as an unreadable signed answer is; a
// transient failure or a refused credential is not.
func TestAdapterUnusableAnswersConcernTheirSubMerchant(t *testing.T) {
	if !subjectError(fmt.Errorf("reconcile: %w", unusable{errors.New("bill of 2026-11-24 at SUB1: no header")})) {
		t.Error("an unparseable bill stops every sub-merchant's matching")
	}
	if subjectError(errors.New("connection reset")) || subjectError(pipeline.E(pipeline.KindUsage, "", unusable{errors.New("x")})) {
		t.Error("a transient or configuration error taken for one sub-merchant's")
	}
}

// TestWeChatMatcherOldDistributionForgottenIsUnverifiable: a date
// reconciled again months later asks WeChat Pay about distributions it
// applied then; an order query that no longer remembers them answered
// not found, reported missing at WeChat Pay for a person (exit 4), who
// might distribute again. Past the memory, a succeeded one is
// unverifiable (expected), naming its order and age; an open one is
// no longer said to be sent again.
func TestWeChatMatcherOldDistributionForgottenIsUnverifiable(t *testing.T) {
	store, api := wxClean()
	delete(api.orders, "K1")
	store.attempts[0].ProviderRef = "3000000000000000000001"
	ms := wxMatch(t, store, api, wxAccepted.Add(60*24*time.Hour))
	var k1 []pipeline.Mismatch
	for _, m := range ms {
		if m.Subject == "K1" {
			k1 = append(k1, m)
		}
	}
	if len(k1) != 1 || k1[0].Category != pipeline.MismatchUnverifiable || !k1[0].Expected ||
		!strings.Contains(k1[0].Detail, "do not distribute it again") || !strings.Contains(k1[0].Detail, "3000000000000000000001") || !strings.Contains(k1[0].Detail, "60d ago") {
		t.Fatalf("a distribution applied 60 days ago, forgotten: %+v; want one unverifiable row, expected, naming its order and age", k1)
	}
	store.attempts[0].State = pipeline.EffectUnknown
	found := 0
	for _, m := range wxMatch(t, store, api, wxAccepted.Add(60*24*time.Hour)) {
		if m.Subject != "K1" || m.TheirsState != "NOT_FOUND" {
			continue
		}
		found++
		if strings.Contains(m.Detail, "sends it again") || !strings.Contains(m.Detail, "never sent again") {
			t.Fatalf("an unknown distribution planned 60 days ago, forgotten: %+v; want it held, never sent again", m)
		}
	}
	if found != 1 {
		t.Fatalf("%d rows about the unknown distribution WeChat Pay does not know, want 1", found)
	}
}

// TestWeChatMatcherDoesNotAskABillOlderThanWeChatKeeps: WeChat Pay
// publishes that its funds-distribution bills can be downloaded for 90
// days. A date reconciled again later (re-run by hand to close its gaps,
// --reconcile-all) asked for bills WeChat Pay no longer gives, and took
// the refusal for a finding that needs a person. The bill is not asked:
// one row says it cannot be had (unverifiable, expected); the settlement
// details are compared as before.
func TestWeChatMatcherDoesNotAskABillOlderThanWeChatKeeps(t *testing.T) {
	store, api := wxClean()
	kept := wxDay.AddDays(BillDays).Time(Beijing)
	if b := wxBrief(wxMatch(t, store, api, kept.Add(-time.Nanosecond))); len(b) != 0 || api.billCalls != 1 {
		t.Fatalf("the last day WeChat Pay keeps the bill: %q (%d bill downloads), want it asked, nothing found", b, api.billCalls)
	}
	api.bills = nil
	api.billErrs = map[string]error{"SUB1/2026-11-24": errors.New("bill_date: only the last 90 days")}
	got := wxMatch(t, store, api, kept)
	want := []string{"unverifiable bill/SUB1/2026-11-24 / expected"}
	if b := wxBrief(got); !slices.Equal(b, want) || api.billCalls != 1 {
		t.Fatalf("%d days later: %q (%d bill downloads), want %q and the bill not asked", BillDays, b, api.billCalls, want)
	}
	if got[0].SellerID != "S1" || !strings.Contains(got[0].Detail, "90 days") {
		t.Fatalf("row %+v", got[0])
	}
}
