package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline/ledger"
)

// TestAStatusSaysARunNeedsAPerson: a run that ended needing a person
// (exit 4) is recorded failed, with its note; status printed "failed",
// which an operator read as nothing paid, or a retry helping (found by an
// operator's walkthrough). It says "needs a person"; a run that failed
// says "failed".
func TestAStatusSaysARunNeedsAPerson(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	s := &ledger.DateStatus{Date: "2026-11-23", Runs: []ledger.RunStatus{
		{Shard: "0/2", State: "failed", Attempts: 1, StartedAt: at, NeedsPerson: "stage distribute: seller S1 unknown to Infinia"},
		{Shard: "1/2", State: "failed", Attempts: 1, StartedAt: at, LastError: "stage upload: connection refused"},
	}}
	var b bytes.Buffer
	printStatus(&b, s)
	out := b.String()
	if !strings.Contains(out, "shard 0/2: needs a person") || !strings.Contains(out, "shard 1/2: failed,") {
		t.Fatalf("status:\n%s", out)
	}
}
