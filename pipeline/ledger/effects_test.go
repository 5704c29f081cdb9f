package ledger_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// provider is a stand-in for a payment provider that applies each key at
// most once, like the real ones, and can lose answers. It is not a database:
// the effects themselves are recorded in real PostgreSQL.
type provider struct {
	applied    map[string]int64 // key -> amount applied
	sends      int
	loseAnswer int // lose the answer of the next n sends (applied anyway)
	dropSend   int // drop the next n sends before they arrive
	failKey    map[string]bool
	pending    map[string]int // polls before the key reports its outcome
	queryErr   error
}

func newProvider() *provider {
	return &provider{applied: map[string]int64{}, failKey: map[string]bool{}, pending: map[string]int{}}
}

func (p *provider) Send(_ context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	p.sends++
	if p.dropSend > 0 {
		p.dropSend--
		return pipeline.Outcome{}, errors.New("connection reset")
	}
	if _, ok := p.applied[e.Key]; !ok {
		p.applied[e.Key] = e.Amount
	}
	if p.loseAnswer > 0 {
		p.loseAnswer--
		return pipeline.Outcome{}, errors.New("timeout awaiting response")
	}
	return p.outcome(e.Key), nil
}

func (p *provider) Query(_ context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	if p.queryErr != nil {
		return pipeline.Outcome{}, p.queryErr
	}
	if _, ok := p.applied[e.Key]; !ok {
		return pipeline.Outcome{Status: pipeline.OutcomeNotFound}, nil
	}
	return p.outcome(e.Key), nil
}

func (p *provider) outcome(key string) pipeline.Outcome {
	if p.pending[key] > 0 {
		p.pending[key]--
		return pipeline.Outcome{Status: pipeline.OutcomePending, Ref: "REF-" + key}
	}
	if p.failKey[key] {
		return pipeline.Outcome{Status: pipeline.OutcomeFailed, Ref: "REF-" + key, Reason: "ACCOUNT_ABNORMAL"}
	}
	return pipeline.Outcome{Status: pipeline.OutcomeSucceeded, Ref: "REF-" + key}
}

func (p *provider) total() (n int, sum int64) {
	for _, a := range p.applied {
		n++
		sum += a
	}
	return
}

func keyFor(subject string) func(int) string {
	return func(attempt int) string { return fmt.Sprintf("%s-%d", strings.ReplaceAll(subject, "/", ""), attempt) }
}

func newRun(t *testing.T, l *ledger.Ledger) int64 {
	t.Helper()
	run, _, err := l.OpenRun(context.Background(), pipeline.RunKey{Date: day, Shard: pipeline.Whole}, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	return run.ID
}

func plan(t *testing.T, l *ledger.Ledger, runID int64, subject string, amount int64) pipeline.Effect {
	t.Helper()
	e, err := l.PlanEffect(context.Background(), pipeline.Effect{RunID: runID, Kind: "revenue_share", Subject: subject,
		Attempt: 1, Key: keyFor(subject)(1), Currency: "CNY", Amount: amount})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// settleOne drives an effect to a final state the way a stage does: apply,
// and apply again (a poll, or the next run) until final or out of tries.
func settleOne(t *testing.T, l *ledger.Ledger, p *provider, e pipeline.Effect) pipeline.Effect {
	t.Helper()
	for i := 0; i < 10 && !e.State.Final(); i++ {
		var err error
		e, err = pipeline.ApplyEffect(context.Background(), l, p, e)
		if err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func TestEffectProtocolNeverPaysTwice(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		setup     func(p *provider, key string)
		wantSends int
	}{
		{"clean", func(p *provider, key string) {}, 1},
		{"answer lost after apply: resolved by query, not resent", func(p *provider, key string) { p.loseAnswer = 1 }, 1},
		{"request never arrived: query says not found, resent with the same key", func(p *provider, key string) { p.dropSend = 1 }, 2},
		{"pending for three polls", func(p *provider, key string) { p.pending[key] = 3 }, 1},
		{"answer lost twice and pending", func(p *provider, key string) { p.loseAnswer = 2; p.pending[key] = 2 }, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, _ := open(t)
			runID := newRun(t, l)
			p := newProvider()
			e := plan(t, l, runID, "RS/20261123/S1/CNY", 12345)
			tc.setup(p, e.Key)
			e = settleOne(t, l, p, e)
			if e.State != pipeline.EffectSucceeded || e.ProviderRef != "REF-"+e.Key {
				t.Fatalf("final %+v, want succeeded with the provider's reference", e)
			}
			if n, sum := p.total(); n != 1 || sum != 12345 {
				t.Fatalf("provider applied %d requests for %d, want 1 for 12345", n, sum)
			}
			if p.sends != tc.wantSends {
				t.Fatalf("sent %d times, want %d", p.sends, tc.wantSends)
			}
			// The ledger agrees, and a re-run changes nothing.
			stored, ok, err := l.LatestEffect(context.Background(), "revenue_share", "RS/20261123/S1/CNY")
			if err != nil || !ok || stored.State != pipeline.EffectSucceeded || stored.Sends != tc.wantSends {
				t.Fatalf("stored %+v ok=%v err=%v", stored, ok, err)
			}
			replanned := plan(t, l, runID, "RS/20261123/S1/CNY", 12345)
			if _, err := pipeline.ApplyEffect(context.Background(), l, p, replanned); err != nil || p.sends != tc.wantSends {
				t.Fatalf("re-run sent again (sends %d) or failed: %v", p.sends, err)
			}
		})
	}
}

func TestEffectUnknownStaysUnknownWhileProviderCannotBeAsked(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	p := newProvider()
	p.loseAnswer = 1
	e := plan(t, l, newRun(t, l), "RS/20261123/S2/CNY", 500)
	e, err := pipeline.ApplyEffect(context.Background(), l, p, e)
	if err != nil || e.State != pipeline.EffectUnknown {
		t.Fatalf("after a lost answer: %+v, %v; want unknown", e, err)
	}
	p.queryErr = errors.New("503 from status API")
	if _, err := pipeline.ApplyEffect(context.Background(), l, p, e); err == nil {
		t.Fatal("query failed but ApplyEffect reported success")
	}
	if p.sends != 1 {
		t.Fatalf("sent %d times while the outcome was unknown; a blind resend is forbidden", p.sends)
	}
	stored, _, _ := l.LatestEffect(context.Background(), "revenue_share", "RS/20261123/S2/CNY")
	if stored.State != pipeline.EffectUnknown {
		t.Fatalf("stored state %s, want unknown", stored.State)
	}
}

func TestEffectFailureNeedsANewAttemptWithANewKey(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	runID := newRun(t, l)
	p := newProvider()
	subject := "DIST/20261123/4200001"
	e := plan(t, l, runID, subject, 700)
	p.failKey[e.Key] = true
	e = settleOne(t, l, p, e)
	if e.State != pipeline.EffectFailed || e.LastError != "ACCOUNT_ABNORMAL" {
		t.Fatalf("got %+v, want failed with the provider's reason", e)
	}
	// A failed attempt is never re-sent under its own key.
	if again, _ := pipeline.ApplyEffect(ctx, l, p, e); again.State != pipeline.EffectFailed || p.sends != 1 {
		t.Fatalf("failed attempt was re-sent: %+v sends=%d", again, p.sends)
	}
	other := settleOne(t, l, p, plan(t, l, runID, "DIST/20261123/4200002", 300))
	// What a stage undoes again after a crash: the subjects whose latest
	// attempt failed, and those alone.
	if failed, err := l.LatestFailed(ctx, runID, "revenue_share"); err != nil || len(failed) != 1 || failed[0].ID != e.ID {
		t.Fatalf("latest failed: %+v, %v; want the failed attempt alone", failed, err)
	}
	next, err := pipeline.NextAttempt(e, 3, keyFor(subject))
	if err != nil {
		t.Fatal(err)
	}
	if next.Key == e.Key || next.Attempt != 2 {
		t.Fatalf("next attempt %+v must have a new key", next)
	}
	next, err = l.PlanEffect(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	next = settleOne(t, l, p, next)
	if next.State != pipeline.EffectSucceeded {
		t.Fatalf("second attempt %+v", next)
	}
	if _, err := pipeline.NextAttempt(next, 3, keyFor(subject)); err == nil {
		t.Fatal("NextAttempt after a success must refuse")
	}
	if failed, err := l.LatestFailed(ctx, runID, "revenue_share"); err != nil || len(failed) != 0 {
		t.Fatalf("latest failed after a success: %+v, %v", failed, err)
	}
	got, err := l.EffectsByID(ctx, []int64{next.ID, other.ID, e.ID})
	if err != nil || len(got) != 3 || got[0].ID != e.ID || got[1] != other || got[2] != next {
		t.Fatalf("effects by id: %+v, %v", got, err)
	}
	if _, err := l.EffectsByID(ctx, []int64{e.ID, 1 << 40}); err == nil {
		t.Fatal("an id with no effect must be an error")
	}
}

func TestLedgerRefusesTwoOpenAttemptsAndTwoSuccesses(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	runID := newRun(t, l)
	subject := "RS/20261123/S3/CNY"
	first := plan(t, l, runID, subject, 100)
	// Attempt 2 while attempt 1 can still succeed: the database says no.
	_, err := l.PlanEffect(ctx, pipeline.Effect{RunID: runID, Kind: "revenue_share", Subject: subject, Attempt: 2,
		Key: keyFor(subject)(2), Currency: "CNY", Amount: 100})
	if err == nil {
		t.Fatal("planned a second attempt while the first was open")
	}
	// Same attempt planned with another amount: refused, not silently changed.
	if _, err := l.PlanEffect(ctx, pipeline.Effect{RunID: runID, Kind: "revenue_share", Subject: subject, Attempt: 1,
		Key: first.Key, Currency: "CNY", Amount: 101}); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("re-plan with another amount: %v", err)
	}
	if err := l.RecordOutcome(ctx, first.ID, pipeline.EffectSucceeded, "R1", ""); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordOutcome(ctx, first.ID, pipeline.EffectFailed, "", "late failure"); err == nil {
		t.Fatal("a final state was changed")
	}
	if err := l.MarkSent(ctx, first.ID); err == nil {
		t.Fatal("a succeeded effect was marked sent again")
	}
}

// TestAFailedEffectStaysFailed: failed is final as succeeded is. Once an
// attempt failed, its balance may go out under the next attempt's key:
// the failed one marked sent again (and so sent) or recorded succeeded
// by a late answer would pay the balance twice, or count it paid twice.
func TestAFailedEffectStaysFailed(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	runID := newRun(t, l)
	subject := "RS/20261123/S4/CNY"
	e := plan(t, l, runID, subject, 100)
	if err := l.RecordOutcome(ctx, e.ID, pipeline.EffectFailed, "", "refused"); err != nil {
		t.Fatal(err)
	}
	if err := l.MarkSent(ctx, e.ID); err == nil {
		t.Error("a failed effect was marked sent again")
	}
	for _, state := range []pipeline.EffectState{pipeline.EffectSucceeded, pipeline.EffectUnknown, pipeline.EffectSent} {
		if err := l.RecordOutcome(ctx, e.ID, state, "R1", "late answer"); err == nil {
			t.Errorf("a failed effect was recorded %s", state)
		}
	}
	if got, _, _ := l.LatestEffect(ctx, "revenue_share", subject); got.State != pipeline.EffectFailed || got.Sends != 0 {
		t.Fatalf("effect %s, sent %d times; want failed, never sent", got.State, got.Sends)
	}
}

// TestEffectHistoryKeepsAnUnknownOutcome: a payout whose answer was lost
// and later resolved by query keeps, append-only, every change with its
// cause and the provider's words, and payouts.csv shows the path.
func TestEffectHistoryKeepsAnUnknownOutcome(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, url := open(t)
	runID := newRun(t, l)
	p := newProvider()
	e := plan(t, l, runID, "RS/20261123/S1/CNY", 12345)
	p.loseAnswer = 1
	p.pending[e.Key] = 1
	e = settleOne(t, l, p, e)
	if e.State != pipeline.EffectSucceeded || e.LastError != "" {
		t.Fatalf("final %+v", e)
	}
	// A second effect sent again after "not found": two sends, one event each.
	f := plan(t, l, runID, "RS/20261123/S2/CNY", 500)
	p.dropSend = 1
	f = settleOne(t, l, p, f)

	hist, err := l.EffectHistory(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	type step struct {
		from, to pipeline.EffectState
		cause    pipeline.EffectCause
		detail   string
	}
	var got []step
	for _, ev := range hist {
		got = append(got, step{ev.From, ev.To, ev.Cause, ev.Detail})
		if ev.At.IsZero() {
			t.Errorf("event without a time: %+v", ev)
		}
	}
	want := []step{
		{"", "planned", pipeline.CausePlanned, ""},
		{"planned", "sent", pipeline.CauseSent, ""},
		{"sent", "unknown", pipeline.CauseSendError, "timeout awaiting response"},
		{"unknown", "sent", pipeline.CauseQuery, ""}, // still processing, with the provider's reference
		{"sent", "succeeded", pipeline.CauseQuery, ""},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("history of a lost answer:\n got %v\nwant %v", got, want)
	}
	if hist[3].ProviderRef != "REF-"+e.Key {
		t.Errorf("the query's reference is not kept: %+v", hist[3])
	}

	paths := map[string]pipeline.PayoutLine{}
	if err := l.PayoutLines(ctx, day, func(pl pipeline.PayoutLine) error { paths[pl.Subject] = pl; return nil }); err != nil {
		t.Fatal(err)
	}
	if pl := paths[e.Subject]; pl.Path != "planned>sent>unknown>sent>succeeded" || pl.Sends != 1 {
		t.Errorf("payouts.csv row of the lost answer: path %q sends %d", pl.Path, pl.Sends)
	}
	if pl := paths[f.Subject]; pl.Path != "planned>sent>unknown>sent>succeeded" || pl.Sends != 2 {
		t.Errorf("payouts.csv row of a resend: path %q sends %d", pl.Path, pl.Sends)
	}
	fh, err := l.EffectHistory(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	var causes []pipeline.EffectCause
	for _, ev := range fh {
		causes = append(causes, ev.Cause)
	}
	if fmt.Sprint(causes) != fmt.Sprint([]pipeline.EffectCause{pipeline.CausePlanned, pipeline.CauseSent, pipeline.CauseSendError,
		pipeline.CauseResent, pipeline.CauseAnswer}) {
		t.Errorf("history of a resend: %v", causes)
	}

	// Append-only: the database itself refuses to change or remove an event.
	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{`UPDATE settle.effect_events SET detail = 'x'`, `DELETE FROM settle.effect_events`, `TRUNCATE settle.effect_events`} {
		if _, err := db.Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want refused as append-only", q, err)
		}
	}
}

// TestEffectChangedOutsideTheProtocolIsStillInItsHistory: an update of an
// effect made directly in the database still leaves an event, and the
// ledger's own changes leave exactly one each.
func TestEffectChangedOutsideTheProtocolIsStillInItsHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := open(t)
	runID := newRun(t, l)
	e := plan(t, l, runID, "RS/20261123/S9/CNY", 100)
	if _, err := l.DB().ExecContext(ctx, `UPDATE effects SET state = 'failed', last_error = 'closed by hand' WHERE id = $1`, e.ID); err != nil {
		t.Fatal(err)
	}
	hist, err := l.EffectHistory(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[1].From != "planned" || hist[1].To != "failed" || hist[1].Cause != "changed outside the effect protocol" ||
		hist[1].Detail != "closed by hand" {
		t.Errorf("history: %+v", hist)
	}
}

// TestResolvePastMemoryRecordsOnlyTheAttemptItsCallerChecked: settle
// resolve asks the provider about a subject's latest attempt, then
// records what a person found. An attempt other than the one asked about
// (another planned since), or a record with no answer of the provider as
// proof, is refused, nothing recorded: the provider's word about one
// request is not another's. So is the contrary of what was resolved before.
func TestResolvePastMemoryRecordsOnlyTheAttemptItsCallerChecked(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	runID := newRun(t, l)
	subject := "RS/20261123/S9/CNY"
	e := plan(t, l, runID, subject, 900)
	if err := l.MarkSent(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordOutcome(ctx, e.ID, pipeline.EffectUnknown, "", "timeout"); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := l.ResolvePastMemory(ctx, day, subject, keyFor(subject)(2), false, "not known to the query", "n"); pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), e.Key) {
		t.Fatalf("resolve with another attempt's key: %v; want a usage error naming the latest attempt %s", err, e.Key)
	}
	if _, _, _, err := l.ResolvePastMemory(ctx, day, subject, e.Key, false, "", "n"); err == nil {
		t.Fatal("resolve with no proof: recorded")
	}
	if got, _, _ := l.LatestEffect(ctx, "revenue_share", subject); got.State != pipeline.EffectUnknown {
		t.Fatalf("after refused resolves: %s, want unknown", got.State)
	}
	got, r, before, err := l.ResolvePastMemory(ctx, day, subject, e.Key, false, "not known to the query", "statement checked")
	if err != nil || got.State != pipeline.EffectFailed || r.Kind != ledger.KindPastMemoryNotPaid || before {
		t.Fatalf("resolve --not-paid of the checked attempt: %+v %+v %v %v", got, r, before, err)
	}
	// Asked again, the same word is what was recorded before; the
	// contrary word is refused, nothing recorded: a person's change of
	// mind (paid after not paid) would have been answered as recorded
	// while the ledger kept not paid, and the next attempt paid again.
	if _, r, before, err := l.ResolvePastMemory(ctx, day, subject, e.Key, false, "not known to the query", "again"); err != nil || !before || r.Note != "statement checked" {
		t.Fatalf("resolve --not-paid again: %+v %v %v; want the earlier resolution", r, before, err)
	}
	if _, _, _, err := l.ResolvePastMemory(ctx, day, subject, e.Key, true, "not known to the query", "changed my mind"); pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "resolved before as not paid") {
		t.Fatalf("resolve --paid after --not-paid: %v; want a usage error naming the earlier resolution", err)
	}
	if got, _, _ := l.LatestEffect(ctx, "revenue_share", subject); got.State != pipeline.EffectFailed {
		t.Fatalf("after the contrary resolve: %s, want failed as resolved", got.State)
	}
}
