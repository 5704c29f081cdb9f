package main

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// TestShardsShareTheProvidersLimits: with --shard I/N (or an Indexed Job's
// SETTLE_SHARDS) each shard takes 1/N of each provider's limit, so the N
// pods together never exceed it.
func TestShardsShareTheProvidersLimits(t *testing.T) {
	for _, tc := range []struct {
		shard, shards string
		want          int
	}{{"", "", 1}, {"1/4", "", 4}, {"", "3", 3}, {"0/2", "5", 2}} {
		set := flag.NewFlagSet("run", flag.ContinueOnError)
		set.String(flagShard, tc.shard, "")
		env := map[string]string{}
		if tc.shards != "" {
			env["JOB_COMPLETION_INDEX"], env["SETTLE_SHARDS"] = "1", tc.shards
		}
		cfg := &config{getenv: func(k string) string { return env[k] }}
		if got := cfg.shardCount(cli.NewContext(cli.NewApp(), set, nil)); got != tc.want {
			t.Errorf("--shard %q, SETTLE_SHARDS %q: %d shards, want %d", tc.shard, tc.shards, got, tc.want)
		}
	}
	// The engine's pacer keeps to the rate it is given: 20 requests at
	// 100/s take about 0.2 s.
	p := pacer(100, 0, 0)
	began := time.Now()
	if err := p.Each(context.Background(), 20, nil, func(context.Context, int) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < 150*time.Millisecond || took > time.Second {
		t.Fatalf("20 at 100/s took %s", took)
	}
}
