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

// TestAStatusShortensALongEffectHistory: an effect sent again and again
// (a provider answering "retry later" for the whole wait) shows its first
// and last events, the others counted, not one line each.
func TestAStatusShortensALongEffectHistory(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	e := ledger.EffectReport{Kind: "revenue_share", Subject: "RS/20261123/S00001/CNY", Attempt: 1, Key: "RS-1", State: "unknown", Sends: 12}
	e.History = append(e.History, ledger.StatusEvent{At: at, To: "planned", Cause: "planned"})
	for i := range 12 {
		e.History = append(e.History,
			ledger.StatusEvent{At: at.Add(time.Duration(2*i+1) * time.Second), To: "sent", Cause: "sent"},
			ledger.StatusEvent{At: at.Add(time.Duration(2*i+2) * time.Second), To: "unknown", Cause: "send error", Detail: "SYS-008 service unavailable"})
	}
	var b bytes.Buffer
	printEffects(&b, ledger.EffectsStatus{Counts: map[string]map[string]int{"revenue_share": {"unknown": 1}}, WorthALook: 1,
		Listed: []ledger.EffectReport{e}})
	out := b.String()
	if !strings.Contains(out, "    ... 18 more events (settle status -o json lists them all)\n") ||
		!strings.Contains(out, "2026-11-24 03:00:00.000Z  planned") || !strings.Contains(out, "2026-11-24 03:00:24.000Z  unknown   send error: SYS-008") ||
		strings.Count(out, "\n    2026-") != 7 {
		t.Fatalf("status:\n%s", out)
	}
}

// TestAStatusSaysWhyABalanceIsCarried: the carried balances name, beside
// each balance, since when it is carried and the last reason, so that
// "why was this seller not paid?" is answered by status.
func TestAStatusSaysWhyABalanceIsCarried(t *testing.T) {
	t.Parallel()
	s := &ledger.DateStatus{Date: "2026-11-24", Carried: []ledger.CarriedBalance{{SellerID: "S00003", Currency: "USD", Entries: 2, Amount: 330651,
		Since: "2026-11-23", LastDate: "2026-11-24", LastReason: "Infinia does not know seller INF00000003"}}}
	var b bytes.Buffer
	printStatus(&b, s)
	out := b.String()
	if !strings.Contains(out, "3306.51 USD  2026-11-23  2026-11-24: Infinia does not know seller INF00000003\n") {
		t.Fatalf("status:\n%s", out)
	}
}
