package wechatpay_test

import (
	"context"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/finaltest"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
)

// batchStore is the matcher's ledger too (ReconcileStore): no other run
// distributed at its sub-merchant.

func (s *batchStore) channelItem(no string) pipeline.ChannelItem {
	it := s.items[no]
	return pipeline.ChannelItem{OrderNo: no, SellerID: it.SellerID, Account: s.sub, TransactionID: it.ProviderTxnID,
		Currency: it.Currency, SellerShare: it.SellerShare, State: s.state[no]}
}

func (s *batchStore) channelItems() []pipeline.ChannelItem {
	var out []pipeline.ChannelItem
	for no := range s.items {
		out = append(out, s.channelItem(no))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].OrderNo < out[j].OrderNo })
	return out
}

// attempts returns the effects that may have been sent, by order number
// and key.
func (s *batchStore) attempts() []pipeline.Attempt {
	var out []pipeline.Attempt
	for _, e := range s.effects {
		if e.State != pipeline.EffectPlanned {
			t := s.times[e.ID]
			e.Planned = t[0]
			out = append(out, pipeline.Attempt{Effect: e, Item: s.channelItem(e.Subject[len("WX/20261123/"):]), Recorded: t[1]})
		}
	}
	slices.SortFunc(out, func(a, b pipeline.Attempt) int {
		return strings.Compare(a.Item.OrderNo+"\x00"+a.Key, b.Item.OrderNo+"\x00"+b.Key)
	})
	return out
}

func (s *batchStore) WeChatItemsAfter(_ context.Context, _ int64, _ pipeline.Channel, after string, limit int) ([]pipeline.ChannelItem, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.DeleteFunc(s.channelItems(), func(it pipeline.ChannelItem) bool { return it.OrderNo <= after })
	return out[:min(len(out), max(limit, 0)+len(out)*btoi(limit <= 0))], nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *batchStore) WeChatItemsByTransaction(_ context.Context, _ int64, _ pipeline.Channel, txnIDs []string) ([]pipeline.ChannelItem, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.DeleteFunc(s.channelItems(), func(it pipeline.ChannelItem) bool { return !slices.Contains(txnIDs, it.TransactionID) }), nil
}

func (s *batchStore) WeChatAttemptsAfter(_ context.Context, _ int64, _ pipeline.Channel, _ []string, afterOrder, afterKey string, limit int) ([]pipeline.Attempt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.DeleteFunc(s.attempts(), func(a pipeline.Attempt) bool {
		return a.Item.OrderNo < afterOrder || a.Item.OrderNo == afterOrder && a.Key <= afterKey
	})
	return out[:min(len(out), max(limit, 0)+len(out)*btoi(limit <= 0))], nil
}

func (s *batchStore) WeChatAttemptsByKey(_ context.Context, _ int64, _ pipeline.Channel, _, keys []string) ([]pipeline.Attempt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.DeleteFunc(s.attempts(), func(a pipeline.Attempt) bool { return !slices.Contains(keys, a.Key) }), nil
}

func (s *batchStore) WeChatDistributedAfter(context.Context, string, []string, time.Time, time.Time, int64, pipeline.Channel, string, int) ([]pipeline.Attempt, error) {
	return nil, nil
}

// finalDay is a day of n WeChat transactions (every fourth with no
// commission: an unfreeze) at the fake, settled by the distribute stage
// on the fake's clock, whose answers the matcher keeps in final.
type finalDay struct {
	r     *rig
	store *batchStore
	api   *wechatpay.Adapter
	final *finaltest.Answers
	run   *pipeline.Run
}

func newFinalDay(t *testing.T, n int) *finalDay {
	r := newRig(t, wechatpaytest.Options{ReviewPolls: -1, ProviderQPS: -1, SubMerchantQPS: -1}, nil, nil)
	store := newBatchStore(n)
	store.sub, store.now = subMchID, r.clock.Now
	for no, it := range store.items {
		if no[len(no)-1]%4 == 0 {
			it.Commission, it.SellerShare = 0, it.Amount
		}
		r.fake.AddTransaction(subMchID, it.ProviderTxnID, it.Currency, it.Amount)
	}
	return &finalDay{r: r, store: store, api: newAdapter(t, r.cfg), final: &finaltest.Answers{},
		run: &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}}
}

// distribute runs the stage, keeping the answers it adopts in final
// (nil: none kept).
func (d *finalDay) distribute(t *testing.T, final pipeline.FinalAnswers) {
	t.Helper()
	stage := wechatpay.DistributeStage(wechatpay.StageConfig{Store: d.store, API: d.api, Final: final, Poll: time.Millisecond})
	if _, err := stage(context.Background(), d.run); err != nil {
		t.Fatalf("distribute: %v", err)
	}
}

// reconcile runs the matcher two days later (the bills are out) with
// final, and returns its findings and how many orders it asked WeChat Pay
// about.
func (d *finalDay) reconcile(t *testing.T, final pipeline.FinalAnswers) ([]pipeline.Mismatch, int) {
	t.Helper()
	before := d.r.fake.Calls(wechatpay.APIQueryOrder)
	m := wechatpay.Matcher(wechatpay.MatcherConfig{Store: d.store, API: d.api, Final: final,
		Now: func() time.Time { return d.r.clock.Now().Add(48 * time.Hour) }})
	ms, err := m(context.Background(), d.run)
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	pipeline.SortMismatches(ms)
	return ms, d.r.fake.Calls(wechatpay.APIQueryOrder) - before
}

// unexpected returns the findings that need a person.
func unexpected(ms []pipeline.Mismatch) []pipeline.Mismatch {
	return slices.DeleteFunc(slices.Clone(ms), func(m pipeline.Mismatch) bool { return m.Expected })
}

// The first run's reconciliation asks WeChat Pay nothing the distribute
// stage just adopted FINISHED in agreement: the stage kept it under the
// matcher's key, with the day WeChat accepted it, which the bill check
// finds (nothing missing). What it did not adopt - here what an earlier
// run (an earlier version, keeping nothing) settled - is asked.
func TestWeChatFirstReconcileAsksOnlyWhatDistributeDidNotAdopt(t *testing.T) {
	const earlier, n = 5, 16
	d := newFinalDay(t, n)
	// An earlier run settled the first five, keeping nothing.
	later := map[string]*pipeline.Split{}
	for no, it := range d.store.items {
		if no >= "ORD-00005" {
			later[no] = it
			delete(d.store.items, no)
		}
	}
	d.distribute(t, nil)
	for no, it := range later {
		d.store.items[no] = it
	}
	d.distribute(t, d.final)
	if paid := d.store.count(pipeline.ItemPaid); paid != n {
		t.Fatalf("%d transactions paid, want %d", paid, n)
	}
	kept := d.final.Keys(wechatpay.FinalAnswersName)
	if len(kept) != n-earlier {
		t.Fatalf("the stage kept %d answers, want the %d it adopted: %q", len(kept), n-earlier, kept)
	}
	ms, asked := d.reconcile(t, d.final)
	if asked != earlier {
		t.Errorf("the first reconciliation asked %d orders, want the %d the stage did not adopt", asked, earlier)
	}
	if u := unexpected(ms); len(u) != 0 {
		t.Errorf("unexpected findings: %+v", u)
	}
	// The run's re-run asks nothing; --reconcile-all asks everything.
	if _, asked := d.reconcile(t, d.final); asked != 0 {
		t.Errorf("the re-run asked %d orders, want none", asked)
	}
	if _, asked := d.reconcile(t, pipeline.AskAll{Store: d.final}); asked != n {
		t.Errorf("--reconcile-all asked %d orders, want every one of the %d", asked, n)
	}
}

// What the stage kept is what the matcher keeps: a matcher asking
// everything (--reconcile-all) records the same keys.
func TestWeChatStageKeepsTheMatchersKeys(t *testing.T) {
	d := newFinalDay(t, 8)
	d.distribute(t, d.final)
	byStage := d.final.Keys(wechatpay.FinalAnswersName)
	byMatcher := &finaltest.Answers{}
	if ms, asked := d.reconcile(t, byMatcher); asked != 8 || len(unexpected(ms)) != 0 {
		t.Fatalf("asked %d, findings %+v", asked, ms)
	}
	if got := byMatcher.Keys(wechatpay.FinalAnswersName); len(byStage) != 8 || !slices.Equal(got, byStage) {
		t.Fatalf("the stage kept\n%q\nthe matcher\n%q", byStage, got)
	}
}

// A distribution WeChat Pay later reports with another amount is not
// asked by a reconciliation trusting what the stage kept (the bill shows
// it); --reconcile-all asks its order again and finds it.
func TestWeChatTamperAfterTheStageKeptIt(t *testing.T) {
	d := newFinalDay(t, 8)
	d.distribute(t, d.final)
	key := wechatpay.OutOrderNo(d.run.Key.Date, "ORD-00001", 1)
	d.r.fake.SetReportedAmount(key, 1)
	ms, asked := d.reconcile(t, d.final)
	if asked != 0 || !slices.ContainsFunc(ms, func(m pipeline.Mismatch) bool {
		return m.Subject == key && m.Category == pipeline.MismatchAmount && strings.Contains(m.TheirsState, "bill")
	}) {
		t.Fatalf("kept: asked %d, findings %+v; want none asked and the bill's line", asked, unexpected(ms))
	}
	ms, asked = d.reconcile(t, pipeline.AskAll{Store: d.final})
	if asked != 8 || !slices.ContainsFunc(ms, func(m pipeline.Mismatch) bool {
		return m.Subject == key && m.Category == pipeline.MismatchAmount && m.TheirsState == wechatpay.StateFinished+"/"+wechatpay.ResultSuccess && m.Theirs == "1"
	}) {
		t.Fatalf("--reconcile-all: asked %d, findings %+v; want the order's line moving 1", asked, unexpected(ms))
	}
}

// TestWeChatReconcileTakesAnUnfreezeNetOfTheFee: WeChat Pay holds a
// transaction's amount less its fee (published; the fake's FeeBps), so
// the unfreeze of an order with no commission releases the seller's share
// less the fee. With the fee within MaxFeeBps every order is paid, the
// stage keeps every answer, and reconciliation - the orders asked again
// and the bills - finds nothing: it reported each such unfreeze as an
// amount mismatch ("WeChat Pay's unfreeze line moves another amount").
// A distribution's platform line is still the commission exactly.
func TestWeChatReconcileTakesAnUnfreezeNetOfTheFee(t *testing.T) {
	const n, fee = 8, 100
	r := newRig(t, wechatpaytest.Options{ReviewPolls: -1, ProviderQPS: -1, SubMerchantQPS: -1, FeeBps: fee}, nil, nil)
	store := newBatchStore(n)
	store.sub, store.now = subMchID, r.clock.Now
	unfreezes := 0
	for no, it := range store.items {
		if no[len(no)-1]%4 == 0 {
			it.Commission, it.SellerShare = 0, it.Amount
			unfreezes++
		}
		r.fake.AddTransaction(subMchID, it.ProviderTxnID, it.Currency, it.Amount)
	}
	d := &finalDay{r: r, store: store, api: newAdapter(t, r.cfg), final: &finaltest.Answers{},
		run: &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}}
	stage := wechatpay.DistributeStage(wechatpay.StageConfig{Store: d.store, API: d.api, Final: d.final, Poll: time.Millisecond, MaxFeeBps: fee})
	if _, err := stage(context.Background(), d.run); err != nil || d.store.count(pipeline.ItemPaid) != n || unfreezes == 0 {
		t.Fatalf("distribute: %v, %d paid of %d (%d unfreezes)", err, d.store.count(pipeline.ItemPaid), n, unfreezes)
	}
	if kept := d.final.Keys(wechatpay.FinalAnswersName); len(kept) != n {
		t.Errorf("the stage kept %d answers, want all %d", len(kept), n)
	}
	m := wechatpay.Matcher(wechatpay.MatcherConfig{Store: d.store, API: d.api, Final: pipeline.AskAll{Store: d.final}, MaxFeeBps: fee,
		Now: func() time.Time { return d.r.clock.Now().Add(48 * time.Hour) }})
	ms, err := m(context.Background(), d.run)
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if u := unexpected(ms); len(u) != 0 {
		t.Errorf("unexpected findings: %+v", u)
	}
}
