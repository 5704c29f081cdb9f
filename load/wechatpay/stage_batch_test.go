package wechatpay_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/heaptest"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
)

// batchStore is an in-memory ledger for the distribute stage that
// remembers the largest page of items it served and whether any effect
// was still in flight when a page was asked for.
type batchStore struct {
	mu      sync.Mutex
	items   map[string]*pipeline.Split // by order number
	state   map[string]string          // item state by order number
	effects []pipeline.Effect          // id = index+1
	latest  map[string]int             // kind/subject -> index of its latest attempt
	pages   int
	largest int
	overlap bool // a page was read while an effect of an earlier page was not final

	sub   string                 // every seller's sub-merchant
	now   func() time.Time       // the ledger's clock
	times map[int64][2]time.Time // effect id -> when it was planned, when it last changed
}

func newBatchStore(n int) *batchStore {
	s := &batchStore{items: make(map[string]*pipeline.Split, n), state: make(map[string]string, n),
		latest: make(map[string]int, n), effects: make([]pipeline.Effect, 0, n), sub: "SUB1", now: time.Now,
		times: make(map[int64][2]time.Time, n)}
	for i := range n {
		no := fmt.Sprintf("ORD-%05d", i)
		s.items[no] = &pipeline.Split{Order: pipeline.Order{OrderNo: no, SellerID: "S1", Channel: wechatpay.Channel, ProviderTxnID: "T" + no,
			Currency: "CNY", Amount: 1000}, Commission: 100, SellerShare: 900}
		s.state[no] = pipeline.ItemRecorded
	}
	return s
}

func (s *batchStore) ItemsInStateAfter(_ context.Context, _ int64, ch pipeline.Channel, state, after string, limit int) ([]pipeline.Split, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var walked []string // the channel's items after the cursor, whatever their state
	for no, it := range s.items {
		if it.Channel == ch && no > after {
			walked = append(walked, no)
		}
	}
	sort.Strings(walked)
	next := ""
	if limit > 0 && len(walked) >= limit {
		walked, next = walked[:limit], walked[limit-1]
	}
	var nos []string
	for _, no := range walked {
		if s.state[no] == state {
			nos = append(nos, no)
		}
	}
	out := make([]pipeline.Split, 0, len(nos))
	for _, no := range nos {
		out = append(out, *s.items[no])
	}
	for _, e := range s.effects {
		if e.State == pipeline.EffectPlanned {
			s.overlap = true // planned and never sent: an earlier page not driven yet
		}
	}
	s.pages++
	s.largest = max(s.largest, len(out))
	return out, next, nil
}

func (s *batchStore) AccountsAt(_ context.Context, _ int64, provider string) (map[string]string, error) {
	if provider != wechatpay.SellerAccount {
		return nil, nil
	}
	return map[string]string{"S1": s.sub}, nil
}

func (s *batchStore) LatestEffect(_ context.Context, kind, subject string) (pipeline.Effect, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.latest[kind+"/"+subject]; ok {
		return s.effects[i], true, nil
	}
	return pipeline.Effect{}, false, nil
}

func (s *batchStore) PlanEffect(_ context.Context, e pipeline.Effect) (pipeline.Effect, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.latest[e.Kind+"/"+e.Subject]; ok && s.effects[i].Attempt == e.Attempt {
		return s.effects[i], nil
	}
	e.ID, e.State, e.Planned = int64(len(s.effects)+1), pipeline.EffectPlanned, s.now()
	s.times[e.ID] = [2]time.Time{s.now(), s.now()}
	s.latest[e.Kind+"/"+e.Subject] = len(s.effects)
	s.effects = append(s.effects, e)
	return e, nil
}

func (s *batchStore) MarkSent(_ context.Context, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := &s.effects[id-1]
	e.State, e.Sends = pipeline.EffectSent, e.Sends+1
	s.times[id] = [2]time.Time{s.times[id][0], s.now()}
	return nil
}

func (s *batchStore) RecordOutcome(_ context.Context, id int64, state pipeline.EffectState, ref, lastErr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := &s.effects[id-1]
	e.State, e.ProviderRef, e.LastError = state, ref, lastErr
	s.times[id] = [2]time.Time{s.times[id][0], s.now()}
	return nil
}

func (s *batchStore) SetItemPaid(_ context.Context, _ int64, orderNo, _, _, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state[orderNo] == pipeline.ItemRecorded {
		s.state[orderNo] = pipeline.ItemPaid
	}
	return nil
}

func (s *batchStore) SetItemState(_ context.Context, _ int64, orderNo, from, to, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state[orderNo] == from {
		s.state[orderNo] = to
	}
	return nil
}

func (s *batchStore) count(state string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, st := range s.state {
		if st == state {
			n++
		}
	}
	return n
}

// batchAPI is a WeChat Pay that accepts every request: finished at once,
// or (pending) processing for ever.
type batchAPI struct{ pending bool }

func (batchAPI) EnsureReceiver(context.Context, string) (string, error) {
	return wechatpay.ReceiverEffective, nil
}

func (batchAPI) Remaining(context.Context, string, string) (pipeline.Money, error) {
	return pipeline.Money{Minor: 1000, Currency: "CNY"}, nil
}

func (a batchAPI) Send(_ context.Context, e pipeline.Effect, _ wechatpay.Txn) (pipeline.Outcome, wechatpay.OrderStatus, error) {
	out, o := a.answer(e)
	return out, o, nil
}

func (a batchAPI) Query(_ context.Context, e pipeline.Effect, _ wechatpay.Txn) (pipeline.Outcome, wechatpay.OrderStatus, error) {
	out, o := a.answer(e)
	return out, o, nil
}

// answer is the outcome of e and WeChat Pay's order: finished, the
// commission to the platform and the rest (each item's 900) to the seller.
func (a batchAPI) answer(e pipeline.Effect) (pipeline.Outcome, wechatpay.OrderStatus) {
	if a.pending {
		return pipeline.Outcome{Status: pipeline.OutcomePending}, wechatpay.OrderStatus{State: wechatpay.StateProcessing}
	}
	return pipeline.Outcome{Status: pipeline.OutcomeSucceeded, Ref: "R"}, wechatpay.OrderStatus{State: wechatpay.StateFinished, Lines: []wechatpay.OrderLine{
		{Platform: true, Result: wechatpay.ResultSuccess, Amount: e.Amount}, {Rest: true, Result: wechatpay.ResultSuccess, Amount: 900}}}
}

// TestDistributeStageHoldsOneBatchNotTheDay: the stage reads the day's
// recorded items a batch at a time, and sends each batch's requests
// before it reads the next, so it holds a batch (and the engine's window
// of requests waiting on WeChat Pay) whatever the day (DESIGN 2,
// streaming). It fails if the stage reads the whole day at once again.
func TestDistributeStageHoldsOneBatchNotTheDay(t *testing.T) {
	store := newBatchStore(25)
	stage := wechatpay.DistributeStage(wechatpay.StageConfig{Store: store, API: batchAPI{}, Batch: 10, Poll: time.Millisecond})
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}}}
	summary, err := stage(context.Background(), run)
	if err != nil {
		t.Fatalf("stage: %v", err)
	}
	if store.largest > 10 {
		t.Errorf("the stage read %d items at once, want at most its batch of 10: it holds the day, not a batch", store.largest)
	}
	if store.pages < 3 {
		t.Errorf("%d pages read, want 3 (25 items by 10)", store.pages)
	}
	if store.overlap {
		t.Error("a batch was read while the one before it was planned but not sent")
	}
	if paid := store.count(pipeline.ItemPaid); paid != 25 || !strings.Contains(summary, "25 transactions settled") {
		t.Errorf("%d items paid, summary %q; want every one of the 25 over the batches", paid, summary)
	}
}

// pagesAtQueryAPI answers a send PROCESSING and a query SUCCESS, and
// notes how many pages of items the store had served when WeChat Pay was
// first asked about a request.
type pagesAtQueryAPI struct {
	batchAPI
	store *batchStore
	once  sync.Once
	pages int
}

func (a *pagesAtQueryAPI) Send(context.Context, pipeline.Effect, wechatpay.Txn) (pipeline.Outcome, wechatpay.OrderStatus, error) {
	return pipeline.Outcome{Status: pipeline.OutcomePending}, wechatpay.OrderStatus{}, nil
}

func (a *pagesAtQueryAPI) Query(_ context.Context, e pipeline.Effect, _ wechatpay.Txn) (pipeline.Outcome, wechatpay.OrderStatus, error) {
	a.once.Do(func() {
		a.store.mu.Lock()
		a.pages = a.store.pages
		a.store.mu.Unlock()
	})
	out, o := a.batchAPI.answer(e)
	return out, o, nil
}

// TestDistributeStageReadsTheNextBatchWhileOneWaits: the batches' requests
// wait on WeChat Pay's processing together: every batch is read and sent
// before the first request is asked about, so a day of many batches
// waits about one processing delay, not one a batch. Every transaction
// is settled once.
func TestDistributeStageReadsTheNextBatchWhileOneWaits(t *testing.T) {
	store := newBatchStore(30)
	api := &pagesAtQueryAPI{store: store}
	stage := wechatpay.DistributeStage(wechatpay.StageConfig{Store: store, API: api, Batch: 10,
		FirstPoll: 50 * time.Millisecond, Poll: 10 * time.Millisecond})
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}}}
	if _, err := stage(context.Background(), run); err != nil {
		t.Fatalf("stage: %v", err)
	}
	if api.pages < 3 {
		t.Errorf("WeChat Pay was first asked after %d pages of 3: a batch waited on its processing before the next was read", api.pages)
	}
	if paid := store.count(pipeline.ItemPaid); paid != 30 || len(store.effects) != 30 {
		t.Errorf("%d items paid by %d requests, want 30 by 30", paid, len(store.effects))
	}
}

// TestDistributeStageWaitBoundsEveryBatchTogether: --provider-wait bounds
// the stage's whole wait, not each batch's: with requests processing for
// ever, three batches end after about one Wait (each request asked about
// at least once), and every request is reported left processing.
func TestDistributeStageWaitBoundsEveryBatchTogether(t *testing.T) {
	store := newBatchStore(30)
	const wait = 600 * time.Millisecond
	stage := wechatpay.DistributeStage(wechatpay.StageConfig{Store: store, API: batchAPI{pending: true}, Batch: 10,
		Wait: wait, FirstPoll: 10 * time.Millisecond, Poll: 20 * time.Millisecond})
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}}}
	began := time.Now()
	_, err := stage(context.Background(), run)
	took := time.Since(began)
	if !errors.Is(err, pipeline.ErrStillProcessing) || !strings.Contains(err.Error(), "30 WeChat transactions still processing") {
		t.Fatalf("err = %v, want the 30 transactions of the 3 batches left processing", err)
	}
	if took >= 2*wait {
		t.Errorf("the stage waited %s for three batches, want about one wait of %s: the wait bounds the batches together", took, wait)
	}
	if store.pages < 3 {
		t.Errorf("%d pages read, want 3", store.pages)
	}
}

// BenchmarkDistributeStagePeakHeap measures the most live heap (as the
// GC measures it) above the ledger (here in memory, its effects grown by
// the requests' keys) while the stage settles a day of n items,
// read whole (the batch as large as the day: how the stage worked
// before it read batches) or 10,000 at a time:
//
//	go test ./load/wechatpay/ -run '^$' -bench DistributeStagePeakHeap -benchtime 1x
func BenchmarkDistributeStagePeakHeap(b *testing.B) {
	for _, n := range []int{10_000, 40_000} {
		for _, batch := range []int{n, wechatpay.DefaultBatch} {
			b.Run(fmt.Sprintf("items=%d/batch=%d", n, batch), func(b *testing.B) {
				for range b.N {
					store := newBatchStore(n)
					stage := wechatpay.DistributeStage(wechatpay.StageConfig{Store: store, API: batchAPI{}, Batch: batch, Poll: time.Millisecond})
					run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}}}
					peak, err := heaptest.PeakLive(func() error {
						_, err := stage(context.Background(), run)
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(peak, "peak-heap-MiB")
				}
			})
		}
	}
}

// refusedAPI: WeChat Pay holds the order's amount when the stage checks it,
// then refuses the distribution outright (NOT_ENOUGH: the buyer was
// refunded in full meanwhile, which WeChat takes from the unsplit funds),
// and holds nothing more. Nothing was ever released to the seller.
type refusedAPI struct {
	batchAPI
	sent atomic.Bool
}

func (a *refusedAPI) Remaining(context.Context, string, string) (pipeline.Money, error) {
	if a.sent.Load() {
		return pipeline.Money{Currency: "CNY"}, nil
	}
	return pipeline.Money{Minor: 1000, Currency: "CNY"}, nil
}

func (a *refusedAPI) Send(context.Context, pipeline.Effect, wechatpay.Txn) (pipeline.Outcome, wechatpay.OrderStatus, error) {
	a.sent.Store(true)
	// What DistributionSender.SendOrder returns for a definite refusal
	// confirmed by a NOT_FOUND query.
	return pipeline.Outcome{Status: pipeline.OutcomeFailed, Reason: "NOT_ENOUGH the amount exceeds what is left to distribute"}, wechatpay.OrderStatus{}, nil
}

// TestARefusedDistributionIsNotReleased: only an order WeChat Pay
// FINISHED with the platform's line CLOSED and the rest released to the
// seller makes the item paid; a refused distribution (nothing left, as a
// full refund leaves it) is held for a person.
func TestARefusedDistributionIsNotReleased(t *testing.T) {
	store := newBatchStore(1)
	stage := wechatpay.DistributeStage(wechatpay.StageConfig{Store: store, API: &refusedAPI{}, Poll: time.Millisecond})
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}}}
	summary, err := stage(context.Background(), run)
	if pipeline.KindOf(err) != pipeline.KindNeedsPerson || !strings.Contains(summary, "1 held") {
		t.Fatalf("summary %q, err %v; want the item held for a person", summary, err)
	}
	if n := store.count(pipeline.ItemPaid); n != 0 {
		t.Fatalf("a distribution WeChat refused (nothing released to the seller) marked the item paid: %d paid", n)
	}
}

// netAPI is a WeChat Pay that holds each transaction's amount (1000) less
// its acquiring fee of 1% (held), as WeChat Pay publishes it holds it
// (查询订单剩余可退款金额, chapter4_1_12: an order of 100 CNY at 1% leaves
// 99 to distribute): its distribution collects the commission (100) and
// releases the rest (held - 100) to the seller, after which it holds
// nothing.
type netAPI struct {
	batchAPI
	held int64
	sent atomic.Bool
}

func (a *netAPI) Remaining(context.Context, string, string) (pipeline.Money, error) {
	if a.sent.Load() {
		return pipeline.Money{Currency: "CNY"}, nil
	}
	return pipeline.Money{Minor: a.held, Currency: "CNY"}, nil
}

// Query answers what Send answered once it was sent, and that WeChat Pay
// knows no such order before.
func (a *netAPI) Query(_ context.Context, e pipeline.Effect, _ wechatpay.Txn) (pipeline.Outcome, wechatpay.OrderStatus, error) {
	if !a.sent.Load() {
		return pipeline.Outcome{Status: pipeline.OutcomeNotFound}, wechatpay.OrderStatus{}, nil
	}
	return a.answer(e)
}

func (a *netAPI) Send(_ context.Context, e pipeline.Effect, _ wechatpay.Txn) (pipeline.Outcome, wechatpay.OrderStatus, error) {
	a.sent.Store(true)
	return a.answer(e)
}

func (a *netAPI) answer(e pipeline.Effect) (pipeline.Outcome, wechatpay.OrderStatus, error) {
	return pipeline.Outcome{Status: pipeline.OutcomeSucceeded, Ref: "R"}, wechatpay.OrderStatus{State: wechatpay.StateFinished, Lines: []wechatpay.OrderLine{
		{Platform: true, Result: wechatpay.ResultSuccess, Amount: e.Amount}, {Rest: true, Result: wechatpay.ResultSuccess, Amount: a.held - e.Amount}}}, nil
}

// TestWhatWeChatHoldsIsNetOfItsFee: WeChat Pay holds a transaction's
// amount less its fee (990 of an order of 1000 at 1%): within
// MaxFeeBps the transaction is distributed and the item paid; it was held
// for a person ("WeChat holds 9.90 CNY ..., the order says 10.00 CNY"),
// which would have held every WeChat transaction. Less than the fee
// allows (a refund the platform does not show) is still held.
func TestWhatWeChatHoldsIsNetOfItsFee(t *testing.T) {
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}}}
	for _, tc := range []struct {
		name    string
		held    int64
		feeBps  int64
		paid    bool
		because string
	}{
		{"net of 1%", 990, 100, true, ""},
		{"gross", 1000, 100, true, ""},
		{"more than the fee allows", 989, 100, false, "WeChat holds 9.89 CNY"},
		{"no fee configured", 990, 0, false, "WeChat holds 9.90 CNY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newBatchStore(1)
			api := &netAPI{held: tc.held}
			stage := wechatpay.DistributeStage(wechatpay.StageConfig{Store: store, API: api, MaxFeeBps: tc.feeBps, Poll: time.Millisecond})
			summary, err := stage(context.Background(), run)
			if tc.paid {
				if err != nil || store.count(pipeline.ItemPaid) != 1 {
					t.Fatalf("summary %q, err %v, %d paid; want the item paid", summary, err, store.count(pipeline.ItemPaid))
				}
				return
			}
			if pipeline.KindOf(err) != pipeline.KindNeedsPerson || !strings.Contains(err.Error()+summary, tc.because) || api.sent.Load() {
				t.Fatalf("summary %q, err %v, sent %v; want it held for a person, nothing sent, naming %q", summary, err, api.sent.Load(), tc.because)
			}
		})
	}
}
