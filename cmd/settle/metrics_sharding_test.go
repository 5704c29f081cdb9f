package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/load"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// TestMetricsFileOfSeveralShardingsCountsEachRunOnce: shard 0 of a
// sharding counts the unsettled runs of every other sharding too
// (ShardHealth), so that a date of an old sharding stays in a metric once
// SETTLE_SHARDS changed. A metrics file summing the groups of one
// invocation of several shardings (here a date's shards 0/2 and 1/2 and a
// whole date: a backfill across the change) counted such a run twice: the
// two dates needing a person read 4.
func TestMetricsFileOfSeveralShardingsCountsEachRunOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d1, d2 := pipeline.Date{Year: 2026, Month: 11, Day: 22}, pipeline.Date{Year: 2026, Month: 11, Day: 23}
	zero, one := pipeline.Shard{Index: 0, Count: 2}, pipeline.Shard{Index: 1, Count: 2}
	e.recordRun(d1, zero, pipeline.RunDone, "")
	e.recordRun(d1, one, pipeline.RunDone, pipeline.NeedsPersonNote+"a revenue share held")
	e.recordRun(d2, pipeline.Whole, pipeline.RunDone, pipeline.NeedsPersonNote+"a trade file refused")
	ctx := context.Background()
	l, err := ledger.Open(ctx, e.url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sink := &metricsSink{}
	for _, m := range []load.RunMetrics{{Date: d1, Shard: zero}, {Date: d1, Shard: one, ExitCode: 4}, {Date: d2, Shard: pipeline.Whole, ExitCode: 4}} {
		m.Duration = time.Second
		sink.add(m)
	}
	sink.at(d2, pipeline.Whole, true)
	file := filepath.Join(t.TempDir(), "settle.prom")
	var stderr strings.Builder
	cfg := &config{getenv: func(string) string { return "" }, stdout: &strings.Builder{}, stderr: &stderr}
	sink.flush(ctx, cfg, l, "", file, pipeline.E(pipeline.KindNeedsPerson, "run", errors.New("two dates need a person")))
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (%s)", err, &stderr)
	}
	for _, want := range []string{"settle_unsettled_runs 2\n", "settle_oldest_unsettled_business_date 2.0261122e+07\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("want %q: two dates need a person, each counted once:\n%s", want, b)
		}
	}
}
