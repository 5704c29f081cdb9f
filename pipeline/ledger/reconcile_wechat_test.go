package ledger_test

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// The WeChat Pay stage's effect kinds and out_order_no (load/wechatpay,
// which the ledger's tests do not import): the queries take the kinds.
const (
	wxDistribution = "distribution"
	wxUnfreeze     = "unfreeze"
)

func wxKey(d pipeline.Date, orderNo string, attempt int) string {
	return fmt.Sprintf("WX%s%s-%d", d.Compact(), orderNo, attempt)
}

// wxRun records a run of d with one item per order number (wechatpay
// unless it starts with "I"), every seller at sub-merchant "SUB-<seller>".
func wxRun(t *testing.T, l *ledger.Ledger, d pipeline.Date, orders map[string]string) *pipeline.Run {
	t.Helper()
	ctx := context.Background()
	run, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: d, Shard: pipeline.Whole}, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	sellers := map[string]bool{}
	for _, s := range orders {
		sellers[s] = true
	}
	if _, err := l.WriteSnapshot(ctx, run.ID, func(_ func(pipeline.SourceRow) error, addSeller func(pipeline.Seller) error) error {
		for s := range sellers {
			if err := addSeller(pipeline.Seller{ID: s, Accounts: map[string]string{"wechatpay": "SUB-" + s}}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	at := d.Time(time.UTC)
	if _, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
		for _, no := range slices.Sorted(maps.Keys(orders)) {
			ch := chWeChat
			if no[0] == 'I' {
				ch = chInfinia
			}
			o := pipeline.Order{OrderNo: no, SellerID: orders[no], Channel: ch, ProviderTxnID: "T" + no, Currency: "CNY",
				Amount: 1000, Refunded: 100, Category: "c", PaidAt: at, ConfirmedAt: at}
			if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 90, SellerShare: 810}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return run
}

// wxEffect records an attempt of the WeChat stage at an order, driven to
// state.
func wxEffect(t *testing.T, l *ledger.Ledger, run *pipeline.Run, kind, orderNo string, attempt int, amount int64, state pipeline.EffectState) pipeline.Effect {
	t.Helper()
	ctx := context.Background()
	e, err := l.PlanEffect(ctx, pipeline.Effect{RunID: run.ID, Kind: kind, Subject: fmt.Sprintf("WX/%s/%s", run.Key.Date.Compact(), orderNo),
		Attempt: attempt, Key: wxKey(run.Key.Date, orderNo, attempt), Currency: "CNY", Amount: amount})
	if err != nil {
		t.Fatal(err)
	}
	if state == pipeline.EffectPlanned {
		return e
	}
	if err := l.MarkSent(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	if state != pipeline.EffectSent {
		if err := l.RecordOutcome(ctx, e.ID, state, "REF", ""); err != nil {
			t.Fatal(err)
		}
	}
	e.State = state
	return e
}

func wxKeys(as []pipeline.Attempt) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Key)
	}
	return out
}

func TestWeChatReconcileQueries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := open(t)
	d0 := pipeline.Date{Year: 2026, Month: 11, Day: 22}
	old := wxRun(t, l, d0, map[string]string{"W0": "S1", "W9": "S9"})
	run := wxRun(t, l, day, map[string]string{"W1": "S1", "W2": "S1", "W3": "S2", "W4": "S1", "I1": "S1"})

	k := func(d pipeline.Date, no string, attempt int) string { return wxKey(d, no, attempt) }
	before := time.Now().Add(-time.Second)
	wxEffect(t, l, old, wxDistribution, "W0", 1, 90, pipeline.EffectSucceeded)
	wxEffect(t, l, old, wxDistribution, "W9", 1, 90, pipeline.EffectSucceeded) // another sub-merchant
	wxEffect(t, l, run, wxDistribution, "W1", 1, 90, pipeline.EffectFailed)
	wxEffect(t, l, run, wxDistribution, "W1", 2, 90, pipeline.EffectSucceeded)
	wxEffect(t, l, run, wxUnfreeze, "W2", 1, 0, pipeline.EffectSucceeded)
	wxEffect(t, l, run, wxDistribution, "W3", 1, 90, pipeline.EffectUnknown)
	wxEffect(t, l, run, wxDistribution, "W4", 1, 90, pipeline.EffectPlanned) // never sent
	after := time.Now().Add(time.Second)

	kinds := []string{wxDistribution, wxUnfreeze}
	var items []pipeline.ChannelItem
	for after := ""; ; {
		page, err := l.WeChatItemsAfter(ctx, run.ID, chWeChat, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, page...)
		if len(page) < 3 {
			break
		}
		after = page[len(page)-1].OrderNo
	}
	want := []pipeline.ChannelItem{
		{OrderNo: "W1", SellerID: "S1", Account: "SUB-S1", TransactionID: "TW1", Currency: "CNY", SellerShare: 810, State: pipeline.ItemRecorded},
		{OrderNo: "W2", SellerID: "S1", Account: "SUB-S1", TransactionID: "TW2", Currency: "CNY", SellerShare: 810, State: pipeline.ItemRecorded},
		{OrderNo: "W3", SellerID: "S2", Account: "SUB-S2", TransactionID: "TW3", Currency: "CNY", SellerShare: 810, State: pipeline.ItemRecorded},
		{OrderNo: "W4", SellerID: "S1", Account: "SUB-S1", TransactionID: "TW4", Currency: "CNY", SellerShare: 810, State: pipeline.ItemRecorded},
	}
	if !slices.Equal(items, want) {
		t.Fatalf("items in pages of 3:\n%+v\nwant\n%+v", items, want)
	}
	if all, err := l.WeChatItemsAfter(ctx, run.ID, chWeChat, "", 0); err != nil || !slices.Equal(all, want) {
		t.Fatalf("items at once: %+v, %v", all, err)
	}
	if got, err := l.WeChatItemsByTransaction(ctx, run.ID, chWeChat, []string{"TW3", "TW1", "TW0", "TI1"}); err != nil ||
		!slices.Equal(got, []pipeline.ChannelItem{want[0], want[2]}) {
		t.Fatalf("items by transaction: %+v, %v (not another run's, nor another channel's)", got, err)
	}

	// Pages of one attempt: W1 has two, the cursor is (order, key).
	var attempts []pipeline.Attempt
	for afterOrder, afterKey := "", ""; ; {
		page, err := l.WeChatAttemptsAfter(ctx, run.ID, chWeChat, kinds, afterOrder, afterKey, 1)
		if err != nil {
			t.Fatal(err)
		}
		attempts = append(attempts, page...)
		if len(page) < 1 {
			break
		}
		afterOrder, afterKey = page[0].Item.OrderNo, page[0].Key
	}
	wantKeys := []string{k(day, "W1", 1), k(day, "W1", 2), k(day, "W2", 1), k(day, "W3", 1)}
	if got := wxKeys(attempts); !slices.Equal(got, wantKeys) {
		t.Fatalf("attempts %q, want %q", got, wantKeys)
	}
	for _, a := range attempts {
		if a.Item != items[slices.IndexFunc(items, func(it pipeline.ChannelItem) bool { return it.OrderNo == a.Item.OrderNo })] ||
			a.Planned.Before(before) || a.Recorded.Before(a.Planned) || a.Recorded.After(after) || a.RunID != run.ID {
			t.Fatalf("attempt %+v", a)
		}
		if a.Key == k(day, "W3", 1) && (a.State != pipeline.EffectUnknown || a.Amount != 90 || a.Kind != wxDistribution) {
			t.Fatalf("attempt %+v", a)
		}
	}
	byKey, err := l.WeChatAttemptsByKey(ctx, run.ID, chWeChat, kinds, []string{k(day, "W3", 1), k(day, "W4", 1), k(d0, "W0", 1), k(day, "W1", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if got := wxKeys(byKey); !slices.Equal(got, []string{k(day, "W1", 1), k(day, "W3", 1)}) { // not planned, nor another run's
		t.Fatalf("attempts by key %q", got)
	}

	got, err := l.WeChatDistributedAfter(ctx, wxDistribution, []string{"SUB-S1", "SUB-S2"}, before, after, 0, chWeChat, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys = []string{k(d0, "W0", 1), k(day, "W1", 2)} // of no run left out: not failed, unknown, planned, unfreezes, nor SUB-S9
	slices.Sort(wantKeys)
	if !slices.Equal(wxKeys(got), wantKeys) {
		t.Fatalf("distributed %q, want %q", wxKeys(got), wantKeys)
	}
	if got[0].Item.Account != "SUB-S1" || got[0].Amount != 90 || got[0].State != pipeline.EffectSucceeded {
		t.Fatalf("distributed %+v", got[0])
	}
	// The run's own are left out; a page after the first key holds the rest.
	if got, err := l.WeChatDistributedAfter(ctx, wxDistribution, []string{"SUB-S1", "SUB-S2"}, before, after, run.ID, chWeChat, "", 1); err != nil ||
		!slices.Equal(wxKeys(got), []string{k(d0, "W0", 1)}) {
		t.Fatalf("distributed but the run's own: %q, %v", wxKeys(got), err)
	}
	if got, err := l.WeChatDistributedAfter(ctx, wxDistribution, []string{"SUB-S1", "SUB-S2"}, before, after, 0, chWeChat, wantKeys[0], 1); err != nil ||
		!slices.Equal(wxKeys(got), wantKeys[1:]) {
		t.Fatalf("distributed after %s: %q, %v", wantKeys[0], wxKeys(got), err)
	}
	for name, w := range map[string][2]time.Time{"window before": {before.Add(-time.Hour), before}, "window after": {after, after.Add(time.Hour)}} {
		if got, err := l.WeChatDistributedAfter(ctx, wxDistribution, []string{"SUB-S1", "SUB-S2"}, w[0], w[1], 0, chWeChat, "", 0); err != nil || len(got) != 0 {
			t.Fatalf("%s: %q, %v", name, wxKeys(got), err)
		}
	}
}

// The other runs' distributions at a run's sub-merchants
// (WeChatDistributedAfter) cost what the other runs hold in the window,
// not the run's own: each of its succeeded distributions, which a night's
// reconciliation reads anyway by WeChatAttemptsAfter, is left out by its
// effect's run before its item and seller are looked up. Before, every one
// was looked up and then dropped: on a day of 60,000 orders (24,000 WeChat
// distributions) the query took 1.9 s to return nothing, on every
// reconciliation and re-run (0.18 s after; see PERFORMANCE.md).
func TestWeChatDistributedAfterSkipsTheRunsOwnBeforeLookingThemUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := open(t)
	d0 := pipeline.Date{Year: 2026, Month: 11, Day: 22}
	const own = 40
	orders := map[string]string{}
	for i := range own {
		orders[fmt.Sprintf("W%03d", i)] = fmt.Sprintf("S%d", i%4)
	}
	old := wxRun(t, l, d0, map[string]string{"V1": "S1", "V2": "S2"})
	run := wxRun(t, l, day, orders)
	before := time.Now().Add(-time.Second)
	wxEffect(t, l, old, wxDistribution, "V1", 1, 90, pipeline.EffectSucceeded)
	wxEffect(t, l, old, wxDistribution, "V2", 1, 90, pipeline.EffectSucceeded)
	for no := range orders {
		wxEffect(t, l, run, wxDistribution, no, 1, 90, pipeline.EffectSucceeded)
	}
	after := time.Now().Add(time.Second)
	if _, err := l.DB().ExecContext(ctx, `ANALYZE effects; ANALYZE items; ANALYZE run_sellers`); err != nil {
		t.Fatal(err)
	}
	subs := []string{"SUB-S0", "SUB-S1", "SUB-S2", "SUB-S3"}
	got, err := l.WeChatDistributedAfter(ctx, wxDistribution, subs, before, after, run.ID, chWeChat, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{wxKey(d0, "V1", 1), wxKey(d0, "V2", 1)}; !slices.Equal(wxKeys(got), want) {
		t.Fatalf("distributed by other runs: %q, want %q", wxKeys(got), want)
	}
	var plan []string
	if err := l.DB().SelectContext(ctx, &plan, `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) `+ledger.DateQueries["WeChatDistributedAfter"],
		wxDistribution, before, after, pq.Array(subs), run.ID, string(chWeChat), "", 100); err != nil {
		t.Fatal(err)
	}
	loops := regexp.MustCompile(`loops=(\d+)`)
	looked := 0
	for _, line := range plan {
		if !strings.Contains(line, " on items ") {
			continue
		}
		m := loops.FindStringSubmatch(line)
		if m == nil {
			continue // never executed
		}
		n, _ := strconv.Atoi(m[1])
		looked = max(looked, n)
	}
	if looked > 2 {
		t.Fatalf("the items of %d distributions looked up to find the 2 of other runs (the run's own %d among them):\n%s",
			looked, own, strings.Join(plan, "\n"))
	}
}
