package ledger_test

import (
	"context"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

// TestRecheckFollowsAChangeOfSharding: --recheck-days reconciles again the
// runs of the days before whose findings still include a timing gap, "of
// the same shard". When the number of shards changes between nights
// (yesterday in 4 shards, tonight in 8, or yesterday whole and tonight in
// shards, or the reverse), no run of tonight is "the same shard" as
// yesterday's: yesterday's timing gaps were never reconciled again by any
// run, and what they hid was never reported. Each earlier run is rechecked
// by exactly one run of tonight: its own shard when the sharding is the
// same, else shard 0 of tonight's.
func TestRecheckFollowsAChangeOfSharding(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	p := pipeline.RunParams{TimeZone: "UTC"}
	openKey := func(d pipeline.Date, i, n int) *pipeline.Run {
		t.Helper()
		r, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: d, Shard: pipeline.Shard{Index: i, Count: n}}, p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	gap := func(r *pipeline.Run) {
		t.Helper()
		if err := l.ReplaceMismatches(ctx, r.ID, []pipeline.Mismatch{{Provider: "wechatpay", Category: "timing",
			Subject: "bill", Ours: "1", Theirs: "0", Expected: true}}); err != nil {
			t.Fatal(err)
		}
	}
	// Yesterday in 4 shards, each with a timing gap; tonight in 8.
	y := day
	var yesterday []*pipeline.Run
	for i := range 4 {
		r := openKey(y, i, 4)
		gap(r)
		yesterday = append(yesterday, r)
	}
	rechecked := map[int64]int{}
	for i := range 8 {
		r := openKey(y.AddDays(1), i, 8)
		rs, err := l.RunsToRecheck(ctx, r, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range rs {
			rechecked[e.ID]++
		}
	}
	for _, r := range yesterday {
		if rechecked[r.ID] != 1 {
			t.Errorf("run %s of yesterday rechecked by %d runs of tonight (in 8 shards), want 1", r.Key, rechecked[r.ID])
		}
	}
	// Then whole: tonight's whole run rechecks yesterday's 8 shards'
	// runs with a gap.
	var eight []*pipeline.Run
	for i := range 8 {
		r := openKey(y.AddDays(1), i, 8)
		gap(r)
		eight = append(eight, r)
	}
	whole := openKey(y.AddDays(2), 0, 1)
	rs, err := l.RunsToRecheck(ctx, whole, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != len(eight) {
		t.Errorf("the whole run rechecks %d runs of yesterday's 8 shards, want 8", len(rs))
	}
	// The same sharding: each shard its own, as before.
	for i := range 8 {
		openKey(y.AddDays(3), i, 8)
	}
	gap(whole)
	for i := range 8 {
		r := openKey(y.AddDays(3), i, 8)
		rs, err := l.RunsToRecheck(ctx, r, 1)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 1, false: 0}[i == 0]; len(rs) != want {
			t.Errorf("shard %d/8 after a whole date rechecks %d runs, want %d", i, len(rs), want)
		}
	}
}

// TestRecheckKeepsARejectedItemPaidSince: a Pay Protocol order rejected
// for its failed payment that Pay Protocol answers paid since is an
// unexpected row about a rejected item, and needs a person until one
// acts. A run whose findings held no timing gap was rechecked no more:
// the night that found it ended 4, and the next one 0 with the seller
// still unpaid. It is rechecked while its date is within the window, as
// a timing gap is, and no longer; other unexpected findings alone do not
// make a run rechecked.
func TestRecheckKeepsARejectedItemPaidSince(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	p := pipeline.RunParams{TimeZone: "UTC"}
	openKey := func(d pipeline.Date) *pipeline.Run {
		t.Helper()
		r, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: d, Shard: pipeline.Whole}, p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	paidSince, other := openKey(day), openKey(day.AddDays(1))
	if err := l.ReplaceMismatches(ctx, paidSince.ID, []pipeline.Mismatch{{Provider: "payprotocol", Category: pipeline.MismatchStatus,
		Subject: "T-1", OrderNo: "O-1", Ours: "100", Theirs: "100", OursState: pipeline.ItemRejected, TheirsState: "paid"}}); err != nil {
		t.Fatal(err)
	}
	if err := l.ReplaceMismatches(ctx, other.ID, []pipeline.Mismatch{{Provider: "payprotocol", Category: pipeline.MismatchAmount,
		Subject: "T-2", OrderNo: "O-2", Ours: "100", Theirs: "99", OursState: pipeline.ItemPaid, TheirsState: "paid"}}); err != nil {
		t.Fatal(err)
	}
	tonight := openKey(day.AddDays(2))
	rs, err := l.RunsToRecheck(ctx, tonight, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].ID != paidSince.ID {
		t.Errorf("rechecked %v, want the run with the rejected item paid since alone", rs)
	}
	if rs, err = l.RunsToRecheck(ctx, tonight, 1); err != nil || len(rs) != 0 {
		t.Errorf("beyond the window: rechecked %v, %v; want none", rs, err)
	}
}
