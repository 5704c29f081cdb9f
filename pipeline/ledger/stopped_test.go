package ledger_test

import (
	"context"
	"testing"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// TestStoppedInFlightLeavesADateBeingRun: a date run in shards and re-run
// as a whole (settle run --date D, which holds the date's lock and runs
// its shards one after another, taking each shard's lock in turn) is being
// worked on: a shard it has not reached yet is no run stopped for good,
// and the next night named it for a person (exit 4) while the re-run was
// about to ask about its requests. Once no process holds the date, it is.
func TestStoppedInFlightLeavesADateBeingRun(t *testing.T) {
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
	stopped := func() []ledger.StoppedInFlight {
		t.Helper()
		s, err := l.StoppedInFlight(ctx, day.AddDays(-3), day.AddDays(1))
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
