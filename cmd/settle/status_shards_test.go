package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestStatusNamesTheShardsNotStarted: an Indexed Job of 4 whose pod 3
// never opened its run (it failed before the ledger, or was never
// scheduled) left the date with three runs, all done. settle status showed
// those three runs done and a date summary that balances, without a word
// of the fourth shard's sellers, whose orders are in none of its figures:
// the date read as settled while a quarter of it was not. It names the
// shard not started, in text and JSON.
func TestStatusNamesTheShardsNotStarted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(200, 8)
	for i := range 3 {
		e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--until", "transform", "--max-reject-ratio", "1", "--shard", fmt.Sprintf("%d/4", i))
	}
	out := e.mustSettle("status", "--date", testDate)
	if !strings.Contains(out, "shard 3/4: not started") {
		t.Fatalf("status does not say shard 3/4 never started:\n%s", out)
	}
	var doc struct {
		NotStarted []string `json:"not_started"`
	}
	js := e.mustSettle("status", "--date", testDate, "-o", "json")
	if err := json.Unmarshal([]byte(js[strings.Index(js, "{"):]), &doc); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	if len(doc.NotStarted) != 1 || doc.NotStarted[0] != "3/4" {
		t.Fatalf("status -o json: not_started %v, want [3/4]", doc.NotStarted)
	}
	// settle report, whose files balance without the shard, says so too.
	if out := e.mustSettle("report", "--date", testDate, "--out", e.reports); !strings.Contains(out, "shard 3/4: not started") {
		t.Fatalf("report does not say shard 3/4 never started:\n%s", out)
	}
	// Once it ran, nothing is named.
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--until", "transform", "--max-reject-ratio", "1", "--shard", "3/4")
	if out := e.mustSettle("status", "--date", testDate); strings.Contains(out, "not started") {
		t.Fatalf("status after every shard ran:\n%s", out)
	}
	if out := e.mustSettle("report", "--date", testDate, "--out", e.reports); strings.Contains(out, "not started") {
		t.Fatalf("report after every shard ran:\n%s", out)
	}
}
