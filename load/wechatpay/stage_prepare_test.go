package wechatpay_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
)

// countingAPI is batchAPI counting its requests, with one transaction
// whose remaining amount disagrees with its order, and refused
// credentials when asked.
type countingAPI struct {
	batchAPI
	disagrees string // a transaction id WeChat Pay holds 1 fen less of
	refuse    bool

	mu                     sync.Mutex
	remaining, sends, asks int
	keys                   []string // of the requests sent
}

func (a *countingAPI) Remaining(_ context.Context, _, txn string) (pipeline.Money, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.remaining++
	if a.refuse {
		return pipeline.Money{}, pipeline.E(pipeline.KindUsage, "WeChat Pay", errors.New("SIGN_ERROR: the signature was refused"))
	}
	if txn == a.disagrees {
		return pipeline.Money{Minor: 999, Currency: "CNY"}, nil
	}
	return pipeline.Money{Minor: 1000, Currency: "CNY"}, nil
}

func (a *countingAPI) Send(ctx context.Context, e pipeline.Effect, o wechatpay.Txn) (pipeline.Outcome, wechatpay.OrderStatus, error) {
	a.mu.Lock()
	a.sends++
	a.keys = append(a.keys, e.Key)
	a.mu.Unlock()
	return a.batchAPI.Send(ctx, e, o)
}

func (a *countingAPI) sentKeys() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.keys)
}

func (a *countingAPI) Query(ctx context.Context, e pipeline.Effect, o wechatpay.Txn) (pipeline.Outcome, wechatpay.OrderStatus, error) {
	a.mu.Lock()
	a.asks++
	a.mu.Unlock()
	if o.TransactionID == a.disagrees {
		// Never sent: WeChat Pay does not know its out_order_no.
		return pipeline.Outcome{Status: pipeline.OutcomeNotFound}, wechatpay.OrderStatus{}, nil
	}
	return a.batchAPI.Query(ctx, e, o)
}

func (a *countingAPI) counts() (remaining, sends, asks int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.remaining, a.sends, a.asks
}

// TestPrepareStagePlansAndSendsNothing: WeChat's part of the upload stage
// checks every recorded transaction and records its request's intent,
// sending none; one whose amount disagrees is left as it was. The
// distribute stage then sends the planned requests without checking them
// again, and checks and holds the one left.
func TestPrepareStagePlansAndSendsNothing(t *testing.T) {
	store := newBatchStore(25)
	api := &countingAPI{disagrees: "TORD-00007"}
	c := wechatpay.StageConfig{Store: store, API: api, Batch: 10, Poll: time.Millisecond}
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}}}

	summary, err := wechatpay.PrepareStage(c)(context.Background(), run)
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	if !strings.Contains(summary, "24 transactions checked") || !strings.Contains(summary, "1 left to distribute's checks") {
		t.Errorf("summary %q, want 24 planned and 1 left", summary)
	}
	remaining, sends, asks := api.counts()
	if remaining != 25 || sends != 0 || asks != 0 {
		t.Fatalf("prepare asked %d remaining amounts, sent %d requests, queried %d: want 25 checks and nothing sent", remaining, sends, asks)
	}
	planned := 0
	for _, e := range store.effects {
		if e.State != pipeline.EffectPlanned || e.Sends != 0 || e.Attempt != 1 {
			t.Errorf("effect %s: %s, %d sends, attempt %d; want planned attempt 1, never sent", e.Key, e.State, e.Sends, e.Attempt)
		}
		if strings.HasSuffix(e.Subject, "ORD-00007") {
			t.Errorf("the transaction whose amount disagrees was planned: %+v", e)
		}
		planned++
	}
	if planned != 24 || store.count(pipeline.ItemRecorded) != 25 {
		t.Fatalf("%d effects planned, %d items still recorded; want 24 and 25", planned, store.count(pipeline.ItemRecorded))
	}
	// Again (a re-run's upload stage): nothing is asked or planned twice.
	if summary, err = wechatpay.PrepareStage(c)(context.Background(), run); err != nil || !strings.Contains(summary, "24 planned or sent before") {
		t.Fatalf("prepare again: %q, %v", summary, err)
	}
	if r, _, _ := api.counts(); r != 26 {
		t.Errorf("prepare again asked %d remaining amounts, want only the one left", r-25)
	}

	summary, err = wechatpay.DistributeStage(c)(context.Background(), run)
	if pipeline.KindOf(err) != pipeline.KindNeedsPerson || !strings.Contains(err.Error(), "ORD-00007") {
		t.Fatalf("distribute: %v, want the disagreeing transaction held for a person", err)
	}
	remaining, sends, _ = api.counts()
	if remaining != 27 || sends != 24 {
		t.Errorf("distribute asked %d remaining amounts and sent %d requests; want 1 (the one left) and 24", remaining-26, sends)
	}
	if paid := store.count(pipeline.ItemPaid); paid != 24 || !strings.Contains(summary, "24 transactions settled (24 sent now), 1 held") {
		t.Errorf("%d paid, summary %q", paid, summary)
	}
}

// TestPrepareStageStopsOnRefusedCredentials: refused credentials concern
// every transaction: the stage stops with that error (exit 2) and plans
// nothing.
func TestPrepareStageStopsOnRefusedCredentials(t *testing.T) {
	store := newBatchStore(25)
	api := &countingAPI{refuse: true}
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}}}
	_, err := wechatpay.PrepareStage(wechatpay.StageConfig{Store: store, API: api, Batch: 10})(context.Background(), run)
	if pipeline.KindOf(err) != pipeline.KindUsage {
		t.Fatalf("prepare: %v, want the refusal as a usage error", err)
	}
	if len(store.effects) != 0 {
		t.Errorf("%d effects planned on refused credentials", len(store.effects))
	}
	if r, _, _ := api.counts(); r > 10 {
		t.Errorf("%d checks after the first refusal, want the stage stopped within its batch", r)
	}
}

// TestPrepareStageStoppedLeavesTheRestToDistribute: stopped half way (the
// uploads were done), the checks return what they did with the context's
// error; the distribute stage checks what they did not, and every
// transaction is paid once.
func TestPrepareStageStoppedLeavesTheRestToDistribute(t *testing.T) {
	store := newBatchStore(25)
	ctx, stop := context.WithCancel(context.Background())
	api := &stoppingAPI{countingAPI: &countingAPI{}, after: 10, stop: stop}
	c := wechatpay.StageConfig{Store: store, API: api, Batch: 10, Poll: time.Millisecond,
		Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: 1})}
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}}}
	summary, err := wechatpay.PrepareStage(c)(ctx, run)
	if !errors.Is(err, context.Canceled) || !strings.Contains(summary, "stopped with the uploads") {
		t.Fatalf("prepare: %q, %v; want what it did and the cancellation", summary, err)
	}
	planned := len(store.effects)
	if planned == 0 || planned >= 25 {
		t.Fatalf("%d requests planned before the stop, want some and not all", planned)
	}
	if _, sends, _ := api.counts(); sends != 0 {
		t.Fatalf("%d requests sent by the checks", sends)
	}
	checked, _, _ := api.counts()
	summary, err = wechatpay.DistributeStage(c)(context.Background(), run)
	if err != nil || !strings.Contains(summary, "25 transactions settled (25 sent now)") {
		t.Fatalf("distribute: %q, %v", summary, err)
	}
	remaining, sends, _ := api.counts()
	if sends != 25 || remaining-checked > 25-planned {
		t.Errorf("distribute sent %d and checked %d; want 25 sent and only the %d not planned checked", sends, remaining-checked, 25-planned)
	}
}

// stoppingAPI is countingAPI that stops the checks (cancels their
// context) at its after-th remaining amount.
type stoppingAPI struct {
	*countingAPI
	after int
	stop  context.CancelFunc
}

func (a *stoppingAPI) Remaining(ctx context.Context, sub, txn string) (pipeline.Money, error) {
	left, err := a.countingAPI.Remaining(ctx, sub, txn)
	if r, _, _ := a.counts(); r == a.after {
		a.stop()
	}
	return left, err
}

// keyTakenStore is batchStore whose ledger refuses the requests planned
// under the out_order_nos in taken: other transactions' already.
type keyTakenStore struct {
	*batchStore
	taken map[string]bool
}

func (s *keyTakenStore) PlanEffect(ctx context.Context, e pipeline.Effect) (pipeline.Effect, error) {
	if s.taken[e.Key] {
		return e, fmt.Errorf("plan %s %s: key %s is already %s WX/OTHER's (attempt 1): %w", e.Kind, e.Subject, e.Key, e.Kind, pipeline.ErrKeyTaken)
	}
	return s.batchStore.PlanEffect(ctx, e)
}

// TestATransactionWhoseKeyIsAnotherOnesIsPlannedUnderItsTakenKey: two
// order numbers whose out_order_nos' 48-bit hashes collide (W21137798 and
// W31708758 on one date: found in a minute, and about one date in 500 at
// a million WeChat orders a day) had the ledger refuse the second's
// request, and that error stopped the upload stage, on every run of the
// date: no order of the date, of any channel, was paid (found by a review
// with hostile data). Its request is planned under its out_order_no taken
// instead, and settled; one whose both are taken is held for a person,
// the others settled.
func TestATransactionWhoseKeyIsAnotherOnesIsPlannedUnderItsTakenKey(t *testing.T) {
	d := pipeline.Date{Year: 2026, Month: 11, Day: 23}
	store := &keyTakenStore{batchStore: newBatchStore(5), taken: map[string]bool{
		wechatpay.OutOrderNo(d, "ORD-00003", 1):      true,
		wechatpay.OutOrderNo(d, "ORD-00004", 1):      true,
		wechatpay.OutOrderNoTaken(d, "ORD-00004", 1): true,
	}}
	api := &countingAPI{}
	c := wechatpay.StageConfig{Store: store, API: api, Batch: 10, Poll: time.Millisecond}
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: d}}
	if _, err := wechatpay.PrepareStage(c)(context.Background(), run); err != nil {
		t.Fatalf("prepare: %v; want the transactions whose keys are taken left to distribute", err)
	}
	summary, err := wechatpay.DistributeStage(c)(context.Background(), run)
	if pipeline.KindOf(err) != pipeline.KindNeedsPerson || !strings.Contains(err.Error(), "ORD-00004") || !strings.Contains(err.Error(), "WX/OTHER") ||
		strings.Contains(err.Error(), "ORD-00003") {
		t.Fatalf("distribute: %v; want ORD-00004 alone held for a person, naming the request holding its key", err)
	}
	if paid := store.count(pipeline.ItemPaid); paid != 4 || !strings.Contains(summary, "1 held") {
		t.Errorf("%d paid, summary %q; want the 4 others paid and 1 held", paid, summary)
	}
	want := wechatpay.OutOrderNoTaken(d, "ORD-00003", 1)
	if !slices.ContainsFunc(api.sentKeys(), func(k string) bool { return k == want }) {
		t.Errorf("sent %v, want ORD-00003's request under its out_order_no taken %s", api.sentKeys(), want)
	}
}

// restoredAPI is countingAPI for a ledger restored from a backup taken
// before transaction held's request was sent: WeChat Pay settled it since
// (it holds 1 fen less than the order) and knows its request under the
// out_order_nos in knows alone.
type restoredAPI struct {
	*countingAPI
	held  string
	knows map[string]bool
}

func (a *restoredAPI) Remaining(ctx context.Context, sub, txn string) (pipeline.Money, error) {
	if txn == a.held {
		return pipeline.Money{Minor: 999, Currency: "CNY"}, nil
	}
	return a.countingAPI.Remaining(ctx, sub, txn)
}

func (a *restoredAPI) Query(ctx context.Context, e pipeline.Effect, o wechatpay.Txn) (pipeline.Outcome, wechatpay.OrderStatus, error) {
	if o.TransactionID == a.held && !a.knows[e.Key] {
		return pipeline.Outcome{Status: pipeline.OutcomeNotFound}, wechatpay.OrderStatus{}, nil
	}
	return a.countingAPI.Query(ctx, e, o)
}

// TestARestoredTransactionWhoseKeyIsAnotherOnesStopsNoStage: a ledger
// restored from a backup holds no request of a transaction WeChat Pay
// settled since (sentBefore), and its out_order_no is another
// transaction's in the ledger (their hashes collide). Planning it again
// under that out_order_no was refused (pipeline.ErrKeyTaken), and the
// error stopped the stage for every transaction of the date. WeChat Pay
// knowing its request under its out_order_no taken, it is planned under
// that one, the same request; knowing it under the first alone, it is
// held for a person, nothing sent: a request under another out_order_no
// would be a second one for a transaction WeChat Pay settled. The other
// transactions are paid either way.
func TestARestoredTransactionWhoseKeyIsAnotherOnesStopsNoStage(t *testing.T) {
	d := pipeline.Date{Year: 2026, Month: 11, Day: 23}
	first, taken := wechatpay.OutOrderNo(d, "ORD-00003", 1), wechatpay.OutOrderNoTaken(d, "ORD-00003", 1)
	for _, c := range []struct {
		name  string
		knows []string
		held  bool
	}{
		{"known under its first out_order_no", []string{first}, true},
		{"known under its out_order_no taken", []string{first, taken}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := &keyTakenStore{batchStore: newBatchStore(5), taken: map[string]bool{first: true}}
			api := &restoredAPI{countingAPI: &countingAPI{}, held: "TORD-00003", knows: map[string]bool{}}
			for _, k := range c.knows {
				api.knows[k] = true
			}
			cfg := wechatpay.StageConfig{Store: store, API: api, Batch: 10, Poll: time.Millisecond}
			run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: d}}
			summary, err := wechatpay.DistributeStage(cfg)(context.Background(), run)
			sentHeld := slices.ContainsFunc(api.sentKeys(), func(k string) bool { return k == first || k == taken })
			if c.held {
				if pipeline.KindOf(err) != pipeline.KindNeedsPerson || !strings.Contains(err.Error(), "ORD-00003") || !strings.Contains(err.Error(), "WX/OTHER") {
					t.Fatalf("distribute: %q, %v; want ORD-00003 alone held for a person, naming the request holding its key", summary, err)
				}
				if paid := store.count(pipeline.ItemPaid); paid != 4 || !strings.Contains(summary, "1 held") {
					t.Errorf("%d paid, summary %q; want the 4 others paid and 1 held", paid, summary)
				}
				if sentHeld {
					t.Errorf("sent %v: a request of the held transaction went out", api.sentKeys())
				}
				return
			}
			if err != nil {
				t.Fatalf("distribute: %q, %v; want every transaction settled", summary, err)
			}
			if paid := store.count(pipeline.ItemPaid); paid != 5 {
				t.Errorf("%d paid, summary %q; want all 5", paid, summary)
			}
			for _, e := range store.effects {
				if e.Subject == wechatpay.Subject(d, "ORD-00003") && e.Key != taken {
					t.Errorf("ORD-00003's request planned under %s, want its out_order_no taken %s, the one WeChat Pay knows", e.Key, taken)
				}
			}
		})
	}
}
