package ledger_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// TestShardHealthFollowsAChangeOfSharding: the metrics an alert watches
// for a date left unsettled (settle_unsettled_runs, the oldest of their
// dates) and for orders left out on purpose (settle_skipped_orders_open)
// were read of the reporting shard's exact sharding alone. After
// SETTLE_SHARDS changed (4 to 8, or the whole CronJob to the sharded one)
// and the old sharding's Pushgateway groups were deleted, as the README
// says to, a date of the old sharding that ended needing a person - left
// to that ticket alone, not paged every night - was counted by no shard:
// the ticket resolved with the date still unsettled. Shard 0 of each
// sharding now counts the runs of every other sharding too, as the
// nightly run's missed-nights check names them (speaksFor); the other
// shards count their own, and the last success stays the shard's own.
// ShardsHealth, for a metrics file summing the groups of an invocation of
// several shardings, counts each run once.
func TestShardHealthFollowsAChangeOfSharding(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	d1, d2, d3 := day, day.AddDays(1), day.AddDays(2)
	four := func(i int) pipeline.Shard { return pipeline.Shard{Index: i, Count: 4} }
	eight := func(i int) pipeline.Shard { return pipeline.Shard{Index: i, Count: 8} }
	finish := func(d pipeline.Date, sh pipeline.Shard, note string, skipped bool) {
		t.Helper()
		run, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: d, Shard: sh}, pipeline.RunParams{TimeZone: "UTC"})
		if err != nil {
			t.Fatal(err)
		}
		if skipped {
			now := time.Date(d.Year, time.Month(d.Month), d.Day, 12, 0, 0, 0, time.UTC)
			if _, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
				no := fmt.Sprintf("O-%s-%s", d, sh)
				o := pipeline.Order{OrderNo: no, SellerID: "S1", Channel: chPayProtocol, ProviderTxnID: "T" + no, Currency: "USD", Amount: 1100,
					Category: "c", PaidAt: now, ConfirmedAt: now}
				return w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 100, SellerShare: 1000})
			}); err != nil {
				t.Fatal(err)
			}
			if err := l.RecordSkipped(ctx, run.ID, []pipeline.Channel{chPayProtocol}); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.FinishRun(ctx, run.ID, pipeline.RunDone, note); err != nil {
			t.Fatal(err)
		}
	}
	// d1 in 4 shards: 2/4 ended needing a person, 1/4 left Pay Protocol out.
	for i := range 4 {
		note := ""
		if i == 2 {
			note = pipeline.NeedsPersonNote + "a revenue share held"
		}
		finish(d1, four(i), note, i == 1)
	}
	// d2 run whole by hand, needing a person; d3 in 8 shards, all well.
	finish(d2, pipeline.Whole, pipeline.NeedsPersonNote+"a trade file refused", false)
	for i := range 8 {
		finish(d3, eight(i), "", false)
	}

	for _, c := range []struct {
		shard     pipeline.Shard
		unsettled int
		oldest    pipeline.Date
		skipped   int64
	}{
		{eight(0), 2, d1, 1},              // the old sharding's 2/4 and 1/4, the whole d2
		{eight(1), 0, pipeline.Date{}, 0}, // its own alone
		{four(0), 1, d2, 0},               // the whole d2 (2/4 is its sharding's own)
		{four(2), 1, d1, 0},
		{four(1), 0, pipeline.Date{}, 1},
		{pipeline.Whole, 2, d1, 1}, // d2 its own, 2/4 and 1/4 another sharding's
	} {
		h, err := l.ShardHealth(ctx, c.shard)
		if err != nil {
			t.Fatal(err)
		}
		if h.Unsettled != c.unsettled || h.OldestUnsettled != c.oldest || h.SkippedOpen[chPayProtocol] != c.skipped {
			t.Errorf("shard %s: %d unsettled from %v, %d left out; want %d from %v, %d left out",
				c.shard, h.Unsettled, h.OldestUnsettled, h.SkippedOpen[chPayProtocol], c.unsettled, c.oldest, c.skipped)
		}
		if c.shard.Count == 8 && h.LastSuccess.IsZero() {
			t.Errorf("shard %s: no last success, want its own d3 run's", c.shard)
		}
		if (c.shard == pipeline.Whole || c.shard == four(2)) && !h.LastSuccess.IsZero() {
			t.Errorf("shard %s: last success %v, want none: its one run needs a person (another sharding's success is not its)", c.shard, h.LastSuccess)
		}
	}
	// A whole re-run of d1 (its 4 shards) that ended beyond them: the
	// groups 0/4 to 3/4 and the invocation's 0/1, summed in one file.
	h, err := l.ShardsHealth(ctx, []pipeline.Shard{four(0), four(1), four(2), four(3), pipeline.Whole})
	if err != nil {
		t.Fatal(err)
	}
	if h.Unsettled != 2 || h.OldestUnsettled != d1 || h.SkippedOpen[chPayProtocol] != 1 {
		t.Errorf("shards 0/4 to 3/4 and whole together: %d unsettled from %v, %d left out; want 2 from %s, 1 (each run once)",
			h.Unsettled, h.OldestUnsettled, h.SkippedOpen[chPayProtocol], d1)
	}
}
