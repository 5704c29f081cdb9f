package main

import (
	"testing"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// TestFirstLineCutsAFailedRunsErrorForTheNightsLine: a run that ended
// failed with several errors joined (a trade file still processing and an
// order held) recorded them one a line; the night names its date with the
// first alone, cut at a rune's start, so that one line names one date.
func TestFirstLineCutsAFailedRunsErrorForTheNightsLine(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 200, "short"},
		{"stage upload: 2 trade files still processing\nstage distribute: held", 200, "stage upload: 2 trade files still processing..."},
		{"aaaaaaaaaé and more", 10, "aaaaaaaaa..."}, // é is bytes 9 and 10
		{"", 200, ""},
	} {
		if got := firstLine(c.in, c.n); got != c.want {
			t.Errorf("firstLine(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

// TestLeftUndoneLineSaysWhereTheRunStopped: a run killed after its last
// stage and before its end was recorded was said to have stopped "before
// any stage"; a run done, run again and killed, is said so; a shard is
// named with the --shard that finishes it.
func TestLeftUndoneLineSaysWhereTheRunStopped(t *testing.T) {
	d := pipeline.Date{Year: 2026, Month: 11, Day: 22}
	for _, c := range []struct {
		u    ledger.LeftUndone
		want string
	}{
		{ledger.LeftUndone{Key: pipeline.RunKey{Date: d, Shard: pipeline.Whole}, State: pipeline.RunRunning, StagesDone: pipeline.Stages, Stopped: true},
			"date 2026-11-22: its run stopped after its last stage, before its end was recorded and was not run again (killed, or run with --until): settle run --date 2026-11-22 finishes it"},
		{ledger.LeftUndone{Key: pipeline.RunKey{Date: d, Shard: pipeline.Shard{Index: 1, Count: 4}}, State: pipeline.RunRunning,
			StagesDone: []pipeline.Stage{pipeline.StageExtract, pipeline.StageTransform, pipeline.StageUpload}, Planned: 3, Stopped: true},
			"date 2026-11-22: shard 1/4 stopped before its distribute stage with 3 requests planned and never sent and was not run again (killed, or run with --until): settle run --date 2026-11-22 --shard 1/4 finishes it"},
		{ledger.LeftUndone{Key: pipeline.RunKey{Date: d, Shard: pipeline.Whole}, State: pipeline.RunDone, StagesDone: pipeline.Stages, Stopped: true},
			"date 2026-11-22: its run, done, was run again and stopped before its end (killed, or run with --until), and was not run again: settle run --date 2026-11-22 finishes it"},
	} {
		if got := leftUndoneLine(c.u); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
}
