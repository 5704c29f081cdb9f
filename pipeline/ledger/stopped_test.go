package ledger_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// TestLeftUndoneLeavesADateBeingRun: a date run in shards and re-run
// as a whole (settle run --date D, which holds the date's lock and runs
// its shards one after another, taking each shard's lock in turn) is being
// worked on: a shard it has not reached yet is no run stopped for good,
// and the next night named it for a person (exit 4) while the re-run was
// about to ask about its requests. Once no process holds the date, it is.
func TestLeftUndoneLeavesADateBeingRun(t *testing.T) {
	t.Parallel()
	l, url := open(t)
	ctx := context.Background()
	var later pipeline.RunKey
	for i := range 2 {
		key := pipeline.RunKey{Date: day, Shard: pipeline.Shard{Index: i, Count: 2}}
		run, _, err := l.OpenRun(ctx, key, pipeline.RunParams{TimeZone: "UTC"})
		if err != nil {
			t.Fatal(err)
		}
		e := plan(t, l, run.ID, "rs/"+key.Shard.String(), 100)
		if err := l.MarkSent(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
		later = key
	}
	stopped := func() []ledger.LeftUndone {
		t.Helper()
		s, err := l.LeftUndone(ctx, day.AddDays(-3), day.AddDays(1))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := stopped(); len(s) != 2 {
		t.Fatalf("no process on the date: %+v, want both shards", s)
	}

	// Another process re-runs the date as a whole: it holds the date's
	// lock, and the lock of the shard it runs first.
	other, err := ledger.Open(ctx, url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	releaseDate, err := other.LockDate(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	releaseShard, err := other.Lock(ctx, pipeline.RunKey{Date: day, Shard: pipeline.Shard{Index: 0, Count: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if s := stopped(); len(s) != 0 {
		t.Fatalf("a process runs the date (its first shard now, %s next): %+v named as stopped", later.Shard, s)
	}
	releaseShard()
	releaseDate()
	if s := stopped(); len(s) != 2 {
		t.Fatalf("the process gone: %+v, want both shards", s)
	}
}

// TestLeftUndoneNamesEveryRunOnlyItsDateFinishes: a nightly run settles
// its own date alone, so an earlier date's run that stopped (killed, with
// nothing sent yet, or a payout planned and never sent, its netted balance
// waiting on it) or ended failed (exit 1 past the Job's retries) is
// finished by nobody. Only the runs with requests in flight were listed
// (StoppedInFlight): the others' dates were left for good while every
// night ended 0. A run done, or ended with only a note for a person (exit
// 4, already told, held for that person), is not listed.
func TestLeftUndoneNamesEveryRunOnlyItsDateFinishes(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	finish := func(d pipeline.Date, state pipeline.RunState, lastErr string) *pipeline.Run {
		t.Helper()
		run := openRun(t, l, d)
		if state != pipeline.RunRunning {
			if err := l.FinishRun(ctx, run.ID, state, lastErr); err != nil {
				t.Fatal(err)
			}
		}
		return run
	}
	finish(day.AddDays(-9), pipeline.RunDone, "")
	finish(day.AddDays(-9), pipeline.RunDone, "") // done, run again to its end
	finish(day.AddDays(-8), pipeline.RunDone, "")
	finish(day.AddDays(-8), pipeline.RunRunning, "")                                   // done, run again and killed: stays done
	finish(day.AddDays(-7), pipeline.RunDone, "")                                      // done
	finish(day.AddDays(-6), pipeline.RunFailed, pipeline.NeedsPersonNote+"held")       // for a person
	finish(day.AddDays(-5), pipeline.RunDone, pipeline.NeedsPersonNote+"mismatch")     // for a person
	finish(day.AddDays(-4), pipeline.RunRunning, "")                                   // killed before sending
	finish(day.AddDays(-3), pipeline.RunFailed, "stage upload: still processing")      // ended 1
	planned := finish(day.AddDays(-2), pipeline.RunDone, pipeline.NeedsPersonNote+"x") // re-run killed after planning
	plan(t, l, planned.ID, "rs/planned", 100)
	sent := finish(day.AddDays(-1), pipeline.RunFailed, "stage distribute: interrupted")
	e := plan(t, l, sent.ID, "rs/sent", 100)
	if err := l.MarkSent(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	plan(t, l, sent.ID, "rs/sent-later", 100)
	finish(day, pipeline.RunRunning, "") // the night's own date: not before it

	got, err := l.LeftUndone(ctx, day.AddDays(-31), day)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		date              pipeline.Date
		stopped, failed   bool
		inFlight, planned int64
	}
	wants := []want{
		{day.AddDays(-8), true, false, 0, 0},
		{day.AddDays(-4), true, false, 0, 0},
		{day.AddDays(-3), false, true, 0, 0},
		{day.AddDays(-2), false, false, 0, 1},
		{day.AddDays(-1), false, true, 1, 1},
	}
	if len(got) != len(wants) {
		t.Fatalf("left undone: %+v, want %d runs", got, len(wants))
	}
	for i, w := range wants {
		g := got[i]
		if g.Key.Date != w.date || g.Stopped != w.stopped || g.Failed() != w.failed || g.InFlight != w.inFlight || g.Planned != w.planned {
			t.Errorf("run %d: %+v (stopped %v, failed %v), want %+v", i, g, g.Stopped, g.Failed(), w)
		}
	}
	// Those that ended with a note for a person and were not run again
	// since (the one with a payout planned among them).
	waiting, err := l.WaitingOnAPerson(ctx, day.AddDays(-31), day)
	if err != nil {
		t.Fatal(err)
	}
	var dates []pipeline.Date
	for _, k := range waiting {
		dates = append(dates, k.Date)
	}
	if want := []pipeline.Date{day.AddDays(-6), day.AddDays(-5), day.AddDays(-2)}; !slices.Equal(dates, want) {
		t.Fatalf("waiting on a person: %v, want %v", dates, want)
	}
}

// The read of the runs left undone costs what it finds, not the ledger's
// history: on two years of runs done, with their requests final, it reads
// the window's runs by their date and the open requests by their partial
// index, never a table whole.
func TestLeftUndoneReadsTheWindowAndTheOpenRequests(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	if _, err := l.DB().Exec(`
		INSERT INTO runs (business_date, shard_index, shard_count, state, stages_done, time_zone, rules_hash, config_hash, last_error)
		SELECT DATE '2025-01-01' + d, 0, 1, 'done', '{extract,transform,upload,distribute,reconcile}', 'UTC', 'r', 'c',
		       CASE WHEN d % 97 = 0 THEN 'needs a person: x' ELSE '' END
		FROM generate_series(0, 729) d;
		INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state)
		SELECT r.id, 'revenue_share', 'RS/' || r.id || '/S' || s, 1, 'k' || r.id || '-' || s, 'USD', 100,
		       CASE WHEN r.id % 200 = 0 AND s = 1 THEN 'sent' ELSE 'succeeded' END
		FROM runs r, generate_series(1, 100) s;
		ANALYZE`); err != nil {
		t.Fatal(err)
	}
	var plan []string
	if err := l.DB().Select(&plan, `EXPLAIN `+ledger.LeftUndoneQuery, "2026-11-01", "2026-12-01", "running", pipeline.NeedsPersonNote); err != nil {
		t.Fatal(err)
	}
	text := strings.Join(plan, "\n")
	if strings.Contains(text, "Seq Scan on effects") || strings.Contains(text, "Seq Scan on runs") || !strings.Contains(text, "effects_one_open") {
		t.Fatalf("the runs left undone read more than the window's runs and the open requests:\n%s", text)
	}
	t.Log(text)
}
