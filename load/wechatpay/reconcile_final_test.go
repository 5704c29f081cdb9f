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

	"golang.org/x/time/rate"

	"github.com/settlekit/settle/internal/finaltest"
	"github.com/settlekit/settle/pipeline"
)

// wxFinal is the matcher's final answers, kept in memory.
type wxFinal struct{ finaltest.Answers }

// recorded returns the out_order_nos with a final answer kept.
func (f *wxFinal) recorded() []string {
	var out []string
	for _, k := range f.Keys(FinalAnswersName) {
		out = append(out, strings.SplitN(k, "|", 2)[0])
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// wxMatchWith runs a matcher of c over the store and the API at wxLater,
// and returns the findings and the out_order_nos it asked WeChat Pay about.
func wxMatchWith(t *testing.T, store *wxStore, api *wxAPI, c MatcherConfig) ([]pipeline.Mismatch, []string) {
	t.Helper()
	api.mu.Lock()
	api.queried = nil
	api.mu.Unlock()
	c.Store, c.Now = store, func() time.Time { return wxLater }
	if c.API == nil {
		c.API = api
	}
	ms, err := Matcher(c)(context.Background(), &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: wxDate, Shard: pipeline.Whole}})
	if err != nil {
		t.Fatal(err)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	return ms, slices.Sorted(slices.Values(api.queried))
}

// A second matching asks nothing of what WeChat Pay answered FINISHED in
// agreement with the ledger, and finds the same; the bill and the
// settlement details are read again. A change of the ledger's row asks
// again, that attempt only.
func TestWeChatMatcherKeepsFinalAnswers(t *testing.T) {
	store, api := wxClean()
	final := &wxFinal{}
	c := MatcherConfig{Final: final}
	ms, asked := wxMatchWith(t, store, api, c)
	if len(ms) != 0 || !slices.Equal(asked, []string{"K1", "K2"}) || !slices.Equal(final.recorded(), []string{"K1", "K2"}) {
		t.Fatalf("first matching: %v, asked %q, kept %q", wxBrief(ms), asked, final.recorded())
	}
	ms, asked = wxMatchWith(t, store, api, c)
	if len(ms) != 0 || len(asked) != 0 || api.billCalls != 2 {
		t.Fatalf("second matching: %v, asked %q, %d bill downloads (want 2: read every time)", wxBrief(ms), asked, api.billCalls)
	}
	// The days the kept answers name still find the bill's lines: WeChat
	// losing one is found without asking the orders.
	api.bills["SUB1/2026-11-24"] = api.bills["SUB1/2026-11-24"][1:]
	if ms, asked = wxMatchWith(t, store, api, c); !slices.Equal(wxBrief(ms), []string{"missing_at_provider K1 100/"}) || len(asked) != 0 {
		t.Fatalf("a bill line lost: %v, asked %q", wxBrief(ms), asked)
	}
	api.bills["SUB1/2026-11-24"] = wxCleanBill()

	// The ledger's commission of K1 changed: K1 is asked again.
	store.attempts[0].Amount = 90
	if _, asked = wxMatchWith(t, store, api, c); !slices.Equal(asked, []string{"K1"}) {
		t.Fatalf("K1's amount changed in the ledger: asked %q, want K1", asked)
	}
	// Back as it was (that answer is kept), and K2 recorded failed now.
	store.attempts[0].Amount = 100
	store.attempts[1].State = pipeline.EffectFailed
	if ms, asked = wxMatchWith(t, store, api, c); !slices.Equal(asked, []string{"K2"}) || len(ms) == 0 {
		t.Fatalf("K2's state changed in the ledger: %v, asked %q, want K2 and its findings", wxBrief(ms), asked)
	}
}

// A matching that fails (WeChat Pay down for one query, past its retries)
// still keeps the answers it got final and in agreement, so that the
// re-run asks only what was not answered.
func TestWeChatMatcherFailingKeepsWhatWasAnswered(t *testing.T) {
	store, api := wxClean()
	api.errs = map[string]error{"K2": errors.New("connection reset")}
	final := &wxFinal{}
	c := MatcherConfig{Store: store, API: api, Final: final, Now: func() time.Time { return wxLater }}
	if _, err := Matcher(c)(context.Background(), &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: wxDate, Shard: pipeline.Whole}}); err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("K2 not answered: %v, want the matching failed", err)
	}
	if kept := final.recorded(); !slices.Equal(kept, []string{"K1"}) {
		t.Fatalf("kept %q, want K1", kept)
	}
	api.errs = nil
	if ms, asked := wxMatchWith(t, store, api, MatcherConfig{Final: final}); len(ms) != 0 || !slices.Equal(asked, []string{"K2"}) {
		t.Fatalf("the re-run: %v, asked %q, want K2 alone", wxBrief(ms), asked)
	}
}

// Answers that disagree with the ledger, or are not final, are not kept:
// they are asked again.
func TestWeChatMatcherKeepsNoOpenOrDisagreeingAnswer(t *testing.T) {
	for name, tamper := range map[string]func(s *wxStore, a *wxAPI){
		"another commission at WeChat": func(s *wxStore, a *wxAPI) { a.orders["K1"].Lines[0].Amount = 90 },
		"still PROCESSING": func(s *wxStore, a *wxAPI) {
			a.orders["K1"] = OrderStatus{State: StateProcessing, AcceptedAt: wxAccepted, Lines: []OrderLine{{Platform: true, Result: ResultPending, Amount: 100}}}
		},
		"unknown in the ledger": func(s *wxStore, a *wxAPI) { s.attempts[0].State = pipeline.EffectUnknown },
		"unknown to WeChat":     func(s *wxStore, a *wxAPI) { delete(a.orders, "K1") },
	} {
		store, api := wxClean()
		tamper(store, api)
		final := &wxFinal{}
		wxMatchWith(t, store, api, MatcherConfig{Final: final})
		if kept := final.recorded(); !slices.Equal(kept, []string{"K2"}) {
			t.Errorf("%s: kept %q, want K2 only", name, kept)
		}
		if _, asked := wxMatchWith(t, store, api, MatcherConfig{Final: final}); !slices.Equal(asked, []string{"K1"}) {
			t.Errorf("%s: asked %q again, want K1", name, asked)
		}
	}
}

// A distribution of another run at the same sub-merchant and day counts
// in the day's settlement: its accepted time is asked, unless its own
// run's matching kept its final answer, whose day is taken.
func TestWeChatMatcherKeptAnswersOfOtherRuns(t *testing.T) {
	store, api := wxClean()
	i0 := pipeline.ChannelItem{OrderNo: "O0", SellerID: "S1", Account: "SUB1", TransactionID: "T0", Currency: "CNY", SellerShare: 450}
	k0 := pipeline.Attempt{Effect: pipeline.Effect{Kind: KindDistribution, Key: "K0", Currency: "CNY", Amount: 50, State: pipeline.EffectSucceeded, Planned: wxAccepted},
		Item: i0, Recorded: wxAccepted.Add(time.Second)}
	store.others = []pipeline.Attempt{k0}
	api.orders["K0"] = OrderStatus{State: StateFinished, AcceptedAt: wxAccepted, Lines: []OrderLine{{Platform: true, Result: ResultSuccess, Amount: 50}}}
	api.settlements["SUB1/2026-11-24"][0].Amount = 150
	final := &wxFinal{}
	if ms, asked := wxMatchWith(t, store, api, MatcherConfig{Final: final}); len(ms) != 0 || !slices.Equal(asked, []string{"K0", "K1", "K2"}) {
		t.Fatalf("first: %v, asked %q", wxBrief(ms), asked)
	}
	if kept := final.recorded(); !slices.Equal(kept, []string{"K1", "K2"}) {
		t.Fatalf("kept %q: another run's answer is its own run's to keep", kept)
	}
	if err := final.RecordFinal(context.Background(), FinalAnswersName, []string{finalKey(k0, "2026-11-24")}); err != nil {
		t.Fatal(err)
	}
	if ms, asked := wxMatchWith(t, store, api, MatcherConfig{Final: final}); len(ms) != 0 || len(asked) != 0 {
		t.Fatalf("all kept: %v, asked %q", wxBrief(ms), asked)
	}
}

// wxCleanBill is wxClean's bill of 2026-11-24.
func wxCleanBill() []BillEntry {
	_, api := wxClean()
	return api.bills["SUB1/2026-11-24"]
}

// wxCounter is a Limiter that counts the waits.
type wxCounter struct {
	mu sync.Mutex
	n  int
}

func (c *wxCounter) Wait(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return nil
}

func (c *wxCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// wxBusy is a Reconciler whose answers take a while, and which counts
// the requests in flight.
type wxBusy struct {
	*wxAPI
	mu             sync.Mutex
	inFlight, peak int
}

func (b *wxBusy) enter() func() {
	b.mu.Lock()
	b.inFlight++
	b.peak = max(b.peak, b.inFlight)
	b.mu.Unlock()
	time.Sleep(2 * time.Millisecond)
	return func() {
		b.mu.Lock()
		b.inFlight--
		b.mu.Unlock()
	}
}

func (b *wxBusy) Order(ctx context.Context, sub, txn, no string) (OrderStatus, error) {
	defer b.enter()()
	return b.wxAPI.Order(ctx, sub, txn, no)
}

func (b *wxBusy) BillLines(ctx context.Context, sub string, day pipeline.Date) ([]BillEntry, error) {
	defer b.enter()()
	return b.wxAPI.BillLines(ctx, sub, day)
}

// wxMany is a run of n distributions over three sub-merchants, each
// accepted on wxDay.
func wxMany(n int) (*wxStore, *wxAPI) { return wxManyOver(n, 3) }

// wxManyOver is wxMany over subs sub-merchants, SUB0 to SUB<subs-1>.
func wxManyOver(n, subs int) (*wxStore, *wxAPI) {
	store, api := &wxStore{}, &wxAPI{orders: map[string]OrderStatus{}}
	for i := range n {
		it := pipeline.ChannelItem{OrderNo: fmt.Sprintf("O%d", i), SellerID: fmt.Sprintf("S%d", i%subs), Account: fmt.Sprintf("SUB%d", i%subs),
			TransactionID: fmt.Sprintf("T%d", i), Currency: "CNY", SellerShare: 900}
		key := fmt.Sprintf("K%02d", i)
		store.items = append(store.items, it)
		store.attempts = append(store.attempts, pipeline.Attempt{Effect: pipeline.Effect{Kind: KindDistribution, Key: key, Currency: "CNY",
			Amount: 100, State: pipeline.EffectSucceeded, Planned: wxAccepted}, Item: it, Recorded: wxAccepted.Add(time.Second)})
		api.orders[key] = OrderStatus{State: StateFinished, AcceptedAt: wxAccepted, Lines: []OrderLine{{Platform: true, Result: ResultSuccess, Amount: 100}}}
	}
	return store, api
}

// The matcher's queries start under the pacer: one wait on the provider's
// bucket and one on the sub-merchant's for each order asked and each
// sub-merchant's day of bills, never more in flight than the pacer
// allows.
func TestWeChatMatcherKeepsToThePacer(t *testing.T) {
	store, api := wxMany(24)
	busy := &wxBusy{wxAPI: api}
	provider := &wxCounter{}
	var mu sync.Mutex
	lanes := map[string]*wxCounter{}
	pacer := pipeline.NewPacer(pipeline.Limits{Limit: provider, MaxInFlight: 3, Lane: func(lane string) pipeline.Limiter {
		mu.Lock()
		defer mu.Unlock()
		lanes[lane] = &wxCounter{}
		return lanes[lane]
	}})
	_, asked := wxMatchWith(t, store, api, MatcherConfig{API: busy, Pacer: pacer})
	if len(asked) != 24 {
		t.Fatalf("asked %d orders, want 24", len(asked))
	}
	const pairs = 3 // three sub-merchants, one day
	if n := provider.count(); n != len(asked)+pairs {
		t.Fatalf("%d waits on WeChat Pay's bucket for %d queries and %d bill days", n, len(asked), pairs)
	}
	for sub, c := range lanes {
		if n := c.count(); n != 24/3+1 {
			t.Fatalf("%d waits on %s's bucket, want %d", n, sub, 24/3+1)
		}
	}
	if len(lanes) != 3 || busy.peak > 3 || busy.peak < 2 {
		t.Fatalf("%d lanes; %d requests at once (the pacer allows 3)", len(lanes), busy.peak)
	}
}

// With a rate, the matcher takes the time that rate allows, and no less.
func TestWeChatMatcherKeepsToTheRate(t *testing.T) {
	store, api := wxMany(12)
	pacer := pipeline.NewPacer(pipeline.Limits{Limit: rate.NewLimiter(100, 1), Rate: 100})
	start := time.Now()
	wxMatchWith(t, store, api, MatcherConfig{Pacer: pacer})
	// 12 queries and 3 bill days at 100/s, the first at once.
	if took := time.Since(start); took < 130*time.Millisecond {
		t.Fatalf("15 requests at 100/s in %v", took)
	}
}

// wxStalled is a Reconciler whose bill of one sub-merchant waits until
// released; it counts the bills asked and those read at once.
type wxStalled struct {
	*wxAPI
	stalled       string
	release       chan struct{}
	mu            sync.Mutex
	asked         int
	reading, peak int
}

func (s *wxStalled) BillLines(ctx context.Context, sub string, day pipeline.Date) ([]BillEntry, error) {
	s.mu.Lock()
	s.asked++
	s.reading++
	s.peak = max(s.peak, s.reading)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.reading--
		s.mu.Unlock()
	}()
	if sub == s.stalled {
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.wxAPI.BillLines(ctx, sub, day)
}

func (s *wxStalled) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked
}

// One sub-merchant's bill slow to come holds back no other's: the matcher
// reads billsAtOnce of them at most at once, the next begun as one ends.
// In groups of billsAtOnce, each group waited for its slowest (a day of
// thousands of sub-merchants went at a few a second).
func TestWeChatMatcherReadsOtherBillsWhileOneIsSlow(t *testing.T) {
	const subs = 3 * billsAtOnce
	store, api := wxManyOver(subs, subs)
	stalled := &wxStalled{wxAPI: api, stalled: "SUB0", release: make(chan struct{})}
	match := Matcher(MatcherConfig{Store: store, API: stalled, Now: func() time.Time { return wxLater },
		Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: 64})})
	done := make(chan error, 1)
	go func() {
		_, err := match(context.Background(), &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: wxDate, Shard: pipeline.Whole}})
		done <- err
	}()
	for deadline := time.Now().Add(30 * time.Second); stalled.count() < subs && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	asked := stalled.count()
	close(stalled.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if asked != subs || stalled.peak > billsAtOnce {
		t.Fatalf("%d of %d bills asked while one was slow (want all); %d read at once (at most %d)", asked, subs, stalled.peak, billsAtOnce)
	}
}
