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

// TestAStatusGivesASendAgainNoEarlierError: each event of an effect's
// history holds the effect's last error as it then stood, so the send
// again of a request whose first answer was lost carries the first send's
// error. Printed beside it, "sent again, 2 sends: ... EOF" read as the
// second send lost too - "did we pay it twice?" - when it was answered.
// The error is printed on the event that got it alone, in the effects
// worth a look and in a subject's history.
func TestAStatusGivesASendAgainNoEarlierError(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	const lost = "infiniapay revenue-sharing/request RS-1: outcome unknown, resolve by status query: EOF"
	e := ledger.EffectReport{Kind: "revenue_share", Subject: "RS/20261123/S00001/CNY", Attempt: 1, Key: "RS-1", Currency: "CNY", Amount: 100,
		State: "failed", Path: "planned>sent>unknown>sent>failed", Sends: 2, History: []ledger.StatusEvent{
			{At: at, To: "planned", Cause: "planned"},
			{At: at.Add(time.Second), To: "sent", Cause: "sent", Sends: 1},
			{At: at.Add(2 * time.Second), To: "unknown", Cause: "send error", Sends: 1, Detail: lost},
			{At: at.Add(3 * time.Second), To: "sent", Cause: "sent again", Sends: 2, Detail: lost},
			{At: at.Add(4 * time.Second), To: "sent", Cause: "answer", Sends: 2},
			{At: at.Add(5 * time.Second), To: "failed", Cause: "query", Sends: 2, Detail: "account closed"},
		}}
	var b bytes.Buffer
	printEffects(&b, ledger.EffectsStatus{Counts: map[string]map[string]int{"revenue_share": {"failed": 1}}, WorthALook: 1,
		Listed: []ledger.EffectReport{e}})
	printSubject(&b, &ledger.SubjectHistory{Date: "2026-11-23", Subject: e.Subject, Attempts: []ledger.EffectReport{e}})
	out := b.String()
	if strings.Count(out, lost) != 2 || !strings.Contains(out, "  sent      sent again\n") || !strings.Contains(out, "  sent      sent again, 2 sends\n") ||
		!strings.Contains(out, "send error: "+lost) || !strings.Contains(out, "query, 2 sends: account closed") {
		t.Fatalf("status:\n%s", out)
	}
}

// TestAnUploadsHistorySaysWhatInfiniaMadeOfItsFile: beside an upload
// "succeeded" (the file arrived), its history names the file with
// Infinia's status and the reason of a refusal, and says so when Infinia
// gave none yet (a file it never knew).
func TestAnUploadsHistorySaysWhatInfiniaMadeOfItsFile(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	up := ledger.EffectReport{Kind: "upload", Subject: "TD/20261123/S00001/EUR", Attempt: 1, Key: "TDU-1", Currency: "EUR", Amount: 100,
		State: "succeeded", Path: "planned>sent>succeeded", Sends: 1, History: []ledger.StatusEvent{}}
	var b bytes.Buffer
	printSubject(&b, &ledger.SubjectHistory{Date: "2026-11-23", Subject: up.Subject, Attempts: []ledger.EffectReport{up}, Files: []ledger.SubjectFile{
		{Name: "TD_1.csv", RequestNo: "TDU-1", Rows: 1, Status: "FAILED", Reason: "1 rows refused, first O1: product type not allowed", UpdatedAt: at},
		{Name: "TD_2.csv", RequestNo: "TDU-2", Rows: 3, Status: fileBuilt, UpdatedAt: at},
	}})
	out := b.String()
	for _, want := range []string{
		"trade file TD_1.csv (requestNo TDU-1, 1 rows): Infinia's status FAILED: 1 rows refused, first O1: product type not allowed (recorded 2026-11-24T03:00:00Z)\n",
		"trade file TD_2.csv (requestNo TDU-2, 3 rows): no status from Infinia recorded (every run of the date asks) (recorded 2026-11-24T03:00:00Z)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in:\n%s", want, out)
		}
	}
}

// TestAStatusSaysAStageDoneEarlierFailedInTheLatestAttempt: reconcile runs
// on every invocation; done by a run's first attempt, then failing in the
// next (a provider not answering its questions, no reports written), it
// was shown "reconcile done" above "last error: stage reconcile: ...".
func TestAStatusSaysAStageDoneEarlierFailedInTheLatestAttempt(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	s := &ledger.DateStatus{Date: "2026-11-25", Runs: []ledger.RunStatus{{Shard: "0/1", State: "failed", Attempts: 2, StartedAt: at,
		Stages:    []ledger.StageStatus{{Stage: "upload", Done: true}, {Stage: "distribute"}, {Stage: "reconcile", Done: true}},
		LastError: "stage reconcile: reconcile: revenue share RS-1: SYS-008 service unavailable, retry later"}}}
	var b bytes.Buffer
	printStatus(&b, s)
	if out := b.String(); !strings.Contains(out, "  stages: upload done, distribute pending, reconcile done by an earlier attempt, failed in the latest (last error below)\n") {
		t.Fatalf("status:\n%s", out)
	}
	// Recorded running again (a third attempt, working or stopped), the
	// error is an earlier attempt's, said so beside it, and the stage done.
	s.Runs[0].State, s.Runs[0].Attempts = "running", 3
	b.Reset()
	printStatus(&b, s)
	if out := b.String(); !strings.Contains(out, "  stages: upload done, distribute pending, reconcile done\n") {
		t.Fatalf("status of the run working again:\n%s", out)
	}
}

// TestAStatusOfAStoppedRunSaysItsNoteIsAnEarlierAttempts: a run killed in
// its second attempt is recorded running, with the note its first attempt
// ended with: shown as "stopped ... needs a person: X", X read as what
// the killed attempt found. The note says it is an earlier attempt's.
func TestAStatusOfAStoppedRunSaysItsNoteIsAnEarlierAttempts(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	s := &ledger.DateStatus{Date: "2026-11-23", Runs: []ledger.RunStatus{
		{Shard: "0/2", State: "running", Attempts: 2, StartedAt: at, NeedsPerson: "stage upload: trade file F refused"},
		{Shard: "1/2", State: "running", Active: true, Attempts: 3, StartedAt: at, LastError: "stage distribute: connection refused"},
		{Shard: "2/3", State: "failed", Attempts: 1, StartedAt: at, LastError: "stage upload: connection refused"},
	}}
	var b bytes.Buffer
	printStatus(&b, s)
	out := b.String()
	for _, want := range []string{"  needs a person: as an earlier attempt ended: stage upload: trade file F refused\n",
		"  last error: as an earlier attempt ended: stage distribute: connection refused\n", "  last error: stage upload: connection refused\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in:\n%s", want, out)
		}
	}
}

// TestASubjectsHistoryPrintsWhatTheReconciliationFound: the reconciliation's
// last finding about a subject's key is printed with both sides.
func TestASubjectsHistoryPrintsWhatTheReconciliationFound(t *testing.T) {
	t.Parallel()
	ours := int64(134799)
	e := ledger.EffectReport{Kind: "revenue_share", Subject: "RS/20261125/S00005/USD", Attempt: 1, Key: "RS-1", Currency: "USD", Amount: ours,
		State: "sent", Path: "planned>sent", Sends: 1, History: []ledger.StatusEvent{}}
	var b bytes.Buffer
	printSubject(&b, &ledger.SubjectHistory{Date: "2026-11-25", Subject: e.Subject, Attempts: []ledger.EffectReport{e}, Mismatches: []ledger.SubjectMismatch{
		{Provider: "infiniapay", Category: "status", Key: "RS-1", Currency: "USD", Ours: &ours, OursState: "sent", TheirsState: "not found", Detail: "ask Infinia"}}})
	if out := b.String(); !strings.Contains(out, "what the reconciliation last found of it (mismatches.csv): 1\n"+
		"  infiniapay status RS-1, unexpected: ours 1347.99 USD (sent), theirs no amount (not found): ask Infinia\n") {
		t.Fatalf("history:\n%s", out)
	}
}

// TestAStatusSaysWhatMovedForTheDate: status gives, per currency, the
// amounts of the date's succeeded revenue shares (what left the platform's
// Infinia account, carried entries netted included) and distributions
// (commission collected at WeChat Pay): a finance check of a provider's
// account against a date found no such figure but by summing payouts.csv.
func TestAStatusSaysWhatMovedForTheDate(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	printEffects(&b, ledger.EffectsStatus{Counts: map[string]map[string]int{"revenue_share": {"succeeded": 3}, "distribution": {"succeeded": 1}, "upload": {"succeeded": 2}},
		Succeeded: map[string]map[string]int64{"revenue_share": {"USD": 6813830, "CNY": 1131}, "distribution": {"CNY": 245703}, "upload": {"USD": 5}}})
	out := b.String()
	for _, want := range []string{
		"  revenue shares succeeded (what left the platform's Infinia account for the date: its orders and the carried entries netted): 11.31 CNY, 68138.30 USD\n",
		"  distributions succeeded (the commission WeChat Pay moved to the platform): 2457.03 CNY\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "0.05 USD") {
		t.Errorf("an upload's amount, which moves nothing, among the money moved:\n%s", out)
	}
}

// TestACloseHistorySaysWhatItClosedAndWho: the history of a close's key
// (settle sellers close: no attempt) says the orders whose carried share
// it closed, not that it paid or carried them, the entries it netted and
// its own, and who closed the balance, when and why.
func TestACloseHistorySaysWhatItClosedAndWho(t *testing.T) {
	key := "CLOSE/S00003/USD/7"
	at := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	printSubject(&b, &ledger.SubjectHistory{Date: "2026-11-23", Subject: key,
		Runs:  []ledger.SubjectRun{{ID: 4, Shard: "0/1", StartedAt: at, TimeZone: "UTC"}},
		Items: []ledger.SubjectItem{{OrderNo: "O9", SellerID: "S00003", Channel: "infiniapay", Currency: "USD", Seller: 900, State: "carried"}},
		Adjustments: []ledger.SubjectAdjustment{{ID: 7, Kind: "held", Amount: 900, Currency: "USD", Date: "2026-11-22", NettedInto: key},
			{ID: 9, Kind: "close", Amount: -900, Currency: "USD", Date: "2026-11-23", NettedInto: key, Subject: key,
				Reason: "balance of 9.00 USD closed by finance@example.com (settled outside settle, or forgiven): FIN-1"}},
		Resolved: []ledger.Resolution{{Kind: ledger.KindBalanceClosed, Subject: "S00003/USD", Key: key, Note: "FIN-1", ResolvedAt: at, Actor: "finance@example.com"}}})
	out := b.String()
	for _, want := range []string{
		"orders whose carried share it closed: 1\n  O9 seller S00003",
		"entry 9 close -9.00 USD of 2026-11-23, netted into " + key + ": balance of 9.00 USD closed by finance@example.com",
		"resolved by a person: balance_closed S00003/USD (" + key + ") at 2026-11-24T09:00:00Z by finance@example.com: FIN-1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in\n%s", want, out)
		}
	}
}
