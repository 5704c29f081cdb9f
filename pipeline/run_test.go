package pipeline

import (
	"fmt"
	"strings"
	"testing"
)

func TestADateIsRunInItsSharding(t *testing.T) {
	d := Date{Year: 2026, Month: 11, Day: 23}
	runs := func(shards ...string) []*Run {
		var rs []*Run
		for i, s := range shards {
			sh, err := ParseShard(s)
			if err != nil {
				t.Fatal(err)
			}
			rs = append(rs, &Run{ID: int64(i + 1), Key: RunKey{Date: d, Shard: sh}})
		}
		return rs
	}
	keys := func(ks []RunKey) string {
		var s []string
		for _, k := range ks {
			s = append(s, k.Shard.String())
		}
		return strings.Join(s, " ")
	}
	whole := RunKey{Date: d, Shard: Whole}
	for _, tc := range []struct {
		runs []*Run
		key  RunKey
		want string
	}{
		{nil, whole, "0/1"},
		{runs("0/1"), whole, "0/1"},
		// Asked whole, a date run in shards runs them all, those never
		// started too.
		{runs("1/3"), whole, "0/3 1/3 2/3"},
		{runs("0/2", "1/2"), whole, "0/2 1/2"},
		// A shard asked for is run as asked (the store refuses it if the
		// date is in another sharding).
		{runs("0/2"), RunKey{Date: d, Shard: Shard{Index: 1, Count: 4}}, "1/4"},
		// Two shardings (a ledger from before the rule): each run is
		// resumed, none opened.
		{runs("0/1", "0/2"), whole, "0/1 0/2"},
		{runs("0/2", "1/2", "1/3"), whole, "0/2 1/2 1/3"},
	} {
		if got := keys(ShardsToRun(tc.runs, tc.key)); got != tc.want {
			t.Errorf("runs %v, asked %s: ran %s, want %s", keys(keysOf(tc.runs)), tc.key.Shard, got, tc.want)
		}
	}

	for _, tc := range []struct {
		runs []*Run
		key  string
		want string // "" for no refusal
	}{
		{nil, "0/1", ""},
		{runs("0/1"), "0/1", ""},
		{runs("0/2"), "1/2", ""},
		{runs("0/2", "0/3"), "0/3", ""}, // recorded: resumed whatever else there is
		{runs("0/2"), "0/1", "2026-11-23 was run in 2 shards (runs 1), and a date is settled in one sharding"},
		{runs("0/2", "1/2"), "0/1", "run it in those 2 shards (--shard I/2, or SETTLE_SHARDS=2 in the Indexed Job)"},
		{runs("0/2", "1/2"), "0/3", "or without --shard, which runs them one after another"},
		{runs("0/1"), "1/4", "was run whole (run 1), and a date"},
		{runs("0/1"), "1/4", "run it without --shard, SETTLE_SHARDS and JOB_COMPLETION_INDEX"},
		{runs("0/1", "0/2", "1/2"), "0/3", "was run whole (run 1) and in 2 shards (runs 2, 3)"},
		// Every refusal names a way that runs: without --shard a date in two
		// shardings resumes each run.
		{runs("0/1", "0/2", "1/2"), "0/3", "run it without --shard, SETTLE_SHARDS and JOB_COMPLETION_INDEX, which resumes each of its runs"},
		{runs("0/2", "1/2", "0/4"), "1/4", "was run in 2 shards (runs 1, 2), and a date"},
		{runs("0/2", "1/2", "0/4"), "1/4", "which resumes each of its runs"},
		{runs("0/2", "1/2", "0/4"), "0/1", "which resumes each of its runs"},
	} {
		sh, _ := ParseShard(tc.key)
		err := OtherSharding(tc.runs, RunKey{Date: d, Shard: sh})
		if got := fmt.Sprint(err); (tc.want == "") != (err == nil) || !strings.Contains(got, tc.want) {
			t.Errorf("runs %v, opening %s: %v, want %q", keys(keysOf(tc.runs)), tc.key, err, tc.want)
		}
	}
}

func keysOf(runs []*Run) []RunKey {
	var ks []RunKey
	for _, r := range runs {
		ks = append(ks, r.Key)
	}
	return ks
}
