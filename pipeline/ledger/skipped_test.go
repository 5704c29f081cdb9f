package ledger_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// The orders of a channel a run left out on purpose (--skip-channel) read
// so in the summary and the status while they wait and the run's last
// channel check left the channel out; an order held is held, not left out;
// an order of it not verified yet is left out too;
// a check that no longer leaves it out (its provider configured), and a
// run read again (--reextract), say none.
func TestOrdersOfAChannelLeftOutOnPurposeReadSoUntilARunChecksItAgain(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: day, Shard: pipeline.Whole}, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(day.Year, time.Month(day.Month), day.Day, 12, 0, 0, 0, time.UTC)
	if _, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
		for i, ch := range []pipeline.Channel{chInfinia, chInfinia, chInfinia, chPayProtocol} {
			o := pipeline.Order{OrderNo: "O" + string(rune('a'+i)), SellerID: "S1", Channel: ch,
				ProviderTxnID: "T" + string(rune('a'+i)), Currency: "USD", Amount: 1100, Category: "c", PaidAt: now, ConfirmedAt: now}
			if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 100, SellerShare: 1000}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DB().ExecContext(ctx, `UPDATE items SET reason = 'held: a file refused' WHERE order_no = 'Oa'`); err != nil {
		t.Fatal(err)
	}
	check := func(when string, wantOrders, wantMinor int64) {
		t.Helper()
		var lines []pipeline.SummaryLine
		if err := l.SummaryLines(ctx, day, func(s pipeline.SummaryLine) error {
			lines = append(lines, s)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var orders, minor int64
		for _, s := range lines {
			if s.Channel != string(chInfinia) && (s.SkippedOrders != 0 || s.Skipped != 0) {
				t.Errorf("%s: %s not left out, summary says %+v", when, s.Channel, s)
			}
			if s.Channel == string(chInfinia) {
				orders, minor = s.SkippedOrders, s.Skipped
				if !s.Balanced || s.Held != 1000 || s.InProgress != 2000 {
					t.Errorf("%s: %+v, want 10.00 held and 20.00 in progress, balanced", when, s)
				}
			}
		}
		if orders != wantOrders || minor != wantMinor {
			t.Errorf("%s: summary: %d orders (%d) left out, want %d (%d)", when, orders, minor, wantOrders, wantMinor)
		}
		st, err := l.DateStatus(ctx, day)
		if err != nil {
			t.Fatal(err)
		}
		var want []ledger.Skipped
		if wantOrders > 0 {
			want = []ledger.Skipped{{Channel: string(chInfinia), Currency: "USD", Orders: wantOrders, Seller: wantMinor}}
		}
		if got := st.Runs[0].Skipped; len(got) != len(want) || (len(got) == 1 && got[0] != want[0]) {
			t.Errorf("%s: status: %+v left out, want %+v", when, got, want)
		}
		if len(st.Totals) != 1 || st.Totals[0].Skipped != wantMinor {
			t.Errorf("%s: status totals %+v, want %d left out", when, st.Totals, wantMinor)
		}
	}
	check("nothing left out", 0, 0)
	if err := l.RecordSkipped(ctx, run.ID, []pipeline.Channel{chInfinia}); err != nil {
		t.Fatal(err)
	}
	check("left out", 2, 2000)
	// An order of the channel not verified yet is left out as well.
	if _, err := l.DB().ExecContext(ctx, `UPDATE items SET state = 'unverified' WHERE order_no = 'Ob'`); err != nil {
		t.Fatal(err)
	}
	if got, err := l.SkippedOfRun(ctx, run.ID); err != nil || len(got) != 1 || got[0].Orders != 2 || got[0].Seller != 2000 {
		t.Errorf("one left out unverified: %+v (%v), want the 2 orders (2000) still", got, err)
	}
	if _, err := l.DB().ExecContext(ctx, `UPDATE items SET state = 'recorded' WHERE order_no = 'Ob'`); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordSkipped(ctx, run.ID, nil); err != nil {
		t.Fatal(err)
	}
	check("checked again, its provider configured", 0, 0)
	if err := l.RecordSkipped(ctx, run.ID, []pipeline.Channel{chInfinia}); err != nil {
		t.Fatal(err)
	}
	if err := l.Reextract(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := l.DB().GetContext(ctx, &n, `SELECT cardinality(skipped_channels) FROM runs WHERE id = $1`, run.ID); err != nil || n != 0 {
		t.Errorf("read again: %d channels still left out (%v), want none until its next channel check", n, err)
	}
}

// TestARunThatLeftNothingOutReadsNoneOfItsItemsForIt: every run's end
// (its metrics) and settle status ask which of the run's orders it left
// out on purpose, and a run leaves a channel out only by an operator's
// word: the question read every item of the run (an index walk of a
// million to find none, about 100 ms, again at each status). A run that
// left nothing out reads none; one that did reads its items.
func TestARunThatLeftNothingOutReadsNoneOfItsItemsForIt(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: day, Shard: pipeline.Whole}, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(day.Year, time.Month(day.Month), day.Day, 12, 0, 0, 0, time.UTC)
	if _, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
		for i := range 20 {
			o := pipeline.Order{OrderNo: "O" + string(rune('a'+i)), SellerID: "S1", Channel: chInfinia,
				ProviderTxnID: "T" + string(rune('a'+i)), Currency: "USD", Amount: 1100, Category: "c", PaidAt: now, ConfirmedAt: now}
			if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 100, SellerShare: 1000}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The items' scan line, and whether it ran.
	itemsScan := regexp.MustCompile(`(?m)^.*Scan.* on items i.*$`)
	plan := func() string {
		t.Helper()
		var lines []string
		if err := l.DB().Select(&lines, `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) `+ledger.SkippedOfRunQuery, run.ID); err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}
	p := plan()
	if scan := itemsScan.FindString(p); scan == "" || !strings.Contains(scan, "never executed") {
		t.Errorf("a run that left nothing out: its items are read:\n%s", p)
	}
	if err := l.RecordSkipped(ctx, run.ID, []pipeline.Channel{chInfinia}); err != nil {
		t.Fatal(err)
	}
	p = plan()
	if scan := itemsScan.FindString(p); scan == "" || strings.Contains(scan, "never executed") {
		t.Errorf("a run that left a channel out: its items are not read:\n%s", p)
	}
	got, err := l.SkippedOfRun(ctx, run.ID)
	if err != nil || len(got) != 1 || got[0].Orders != 20 || got[0].Seller != 20000 {
		t.Errorf("left out: %+v (%v), want the 20 orders, 200.00", got, err)
	}
}

// TestShardHealthCountsEveryDatesOrdersLeftOut: the orders left out on
// purpose were counted for the last run's date alone (SkippedOfRun), and
// the date counted as settled: a channel skipped one night was in no
// metric the next. ShardHealth counts the shard's every date's still left
// out (not another shard's, not those a later channel check no longer
// leaves out, not those settled since), reading the runs that left a
// channel out by their index (runs_skipped, migration 00040), not the
// shard's every run, one a date for years.
func TestShardHealthCountsEveryDatesOrdersLeftOut(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	shard := pipeline.Shard{Index: 0, Count: 2}
	var runs []*pipeline.Run
	for i, d := range []pipeline.Date{{Year: 2026, Month: 11, Day: 20}, {Year: 2026, Month: 11, Day: 21}} {
		for _, sh := range []pipeline.Shard{shard, {Index: 1, Count: 2}} {
			run, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: d, Shard: sh}, pipeline.RunParams{TimeZone: "UTC"})
			if err != nil {
				t.Fatal(err)
			}
			now := time.Date(d.Year, time.Month(d.Month), d.Day, 12, 0, 0, 0, time.UTC)
			if _, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
				for j, ch := range []pipeline.Channel{chInfinia, chInfinia, chPayProtocol} {
					no := fmt.Sprintf("O%d-%d-%d", i, sh.Index, j)
					o := pipeline.Order{OrderNo: no, SellerID: "S1", Channel: ch, ProviderTxnID: "T" + no, Currency: "USD", Amount: 1100,
						Category: "c", PaidAt: now, ConfirmedAt: now}
					if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 100, SellerShare: 1000}); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if err := l.RecordSkipped(ctx, run.ID, []pipeline.Channel{chInfinia, chPayProtocol}); err != nil {
				t.Fatal(err)
			}
			if err := l.FinishRun(ctx, run.ID, pipeline.RunDone, ""); err != nil {
				t.Fatal(err)
			}
			if sh == shard {
				runs = append(runs, run)
			}
		}
	}
	check := func(when string, want map[pipeline.Channel]int64) {
		t.Helper()
		h, err := l.ShardHealth(ctx, shard)
		if err != nil {
			t.Fatal(err)
		}
		if len(h.SkippedOpen) != len(want) || h.SkippedOpen[chInfinia] != want[chInfinia] || h.SkippedOpen[chPayProtocol] != want[chPayProtocol] {
			t.Errorf("%s: %v left out, want %v", when, h.SkippedOpen, want)
		}
		if h.Unsettled != 0 {
			t.Errorf("%s: %d dates unsettled, want none (their runs ended done)", when, h.Unsettled)
		}
	}
	check("two dates left out", map[pipeline.Channel]int64{chInfinia: 4, chPayProtocol: 2})
	// The first date run again with Pay Protocol configured: its channel
	// check leaves Infinia alone out.
	if err := l.RecordSkipped(ctx, runs[0].ID, []pipeline.Channel{chInfinia}); err != nil {
		t.Fatal(err)
	}
	check("the first date's Pay Protocol no longer left out", map[pipeline.Channel]int64{chInfinia: 4, chPayProtocol: 1})
	// An order of the second date paid, one held: neither is left out.
	if _, err := l.DB().ExecContext(ctx, `UPDATE items SET state = 'paid' WHERE order_no = 'O1-0-0'`); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DB().ExecContext(ctx, `UPDATE items SET reason = 'held: a file refused' WHERE order_no = 'O1-0-1'`); err != nil {
		t.Fatal(err)
	}
	check("one paid, one held", map[pipeline.Channel]int64{chInfinia: 2, chPayProtocol: 1})
	if err := l.RecordSkipped(ctx, runs[1].ID, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordSkipped(ctx, runs[0].ID, nil); err != nil {
		t.Fatal(err)
	}
	check("every date checked again, its providers configured", map[pipeline.Channel]int64{})

	// A ledger of years: a run a date of the shard, one of which left a
	// channel out. The count reads that run, by the index, not the others.
	if _, err := l.DB().ExecContext(ctx, `INSERT INTO runs (business_date, shard_index, shard_count, state, time_zone, rules_hash, config_hash, finished_at)
		SELECT d::date, 0, 2, 'done', 'UTC', 'r', 'c', d + interval '1 day' FROM generate_series('2016-01-01'::date, '2026-11-19'::date, interval '1 day') d`); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordSkipped(ctx, runs[0].ID, []pipeline.Channel{chInfinia}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DB().ExecContext(ctx, `ANALYZE runs`); err != nil {
		t.Fatal(err)
	}
	var lines []string
	if err := l.DB().Select(&lines, `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) `+ledger.SkippedOpenQuery, pq.Int64Array{int64(shard.Index)}, pq.Int64Array{int64(shard.Count)}); err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(lines, "\n")
	if !strings.Contains(plan, "runs_skipped") || strings.Contains(plan, "Seq Scan on runs") {
		t.Errorf("the shard's runs are read whole, not those that left a channel out by runs_skipped:\n%s", plan)
	}
	check("a ledger of years, one date left out", map[pipeline.Channel]int64{chInfinia: 2})
}
