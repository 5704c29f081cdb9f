package pipeline

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// mismatchStore keeps the findings of one run, in memory.
type mismatchStore struct{ found []Mismatch }

func (s *mismatchStore) ReplaceMismatches(_ context.Context, _ int64, ms []Mismatch) error {
	s.found = ms
	return nil
}
func (s *mismatchStore) FailedPayouts(context.Context, RunKey) (int64, error)     { return 0, nil }
func (s *mismatchStore) RunsToRecheck(context.Context, *Run, int) ([]*Run, error) { return nil, nil }
func (s *mismatchStore) Unbalanced(context.Context, RunKey) ([]string, error)     { return nil, nil }
func (s *mismatchStore) Lock(context.Context, RunKey) (release func() error, err error) {
	return nil, nil
}

// sideBySide is far above any scheduling delay: a matcher waiting this
// long for the other one to start means they ran one after the other.
const sideBySide = 10 * time.Second

// TestMatchersRunSideBySide: each matcher waits until the other has
// started (so run one after the other, the first fails after sideBySide
// instead of hanging); the findings are still those of the matchers in
// their order, sorted: the second matcher finishes first, and its row,
// equal to the first's in every sorting field, still comes second.
func TestMatchersRunSideBySide(t *testing.T) {
	started := []chan struct{}{make(chan struct{}), make(chan struct{})}
	finished := make(chan struct{})
	row := func(ours string) Mismatch {
		return Mismatch{Provider: "p", Category: MismatchAmount, Subject: "s", OrderNo: "o", Ours: ours, Detail: "d"}
	}
	matcher := func(me int, then func() error, ms ...Mismatch) Matcher {
		return func(ctx context.Context, _ *Run) ([]Mismatch, error) {
			close(started[me])
			select {
			case <-started[1-me]:
			case <-time.After(sideBySide):
				return nil, errors.New("the other matcher did not start: the matchers ran one after the other")
			}
			return ms, then()
		}
	}
	first := matcher(0, func() error {
		select {
		case <-finished:
			return nil
		case <-time.After(sideBySide):
			return errors.New("the second matcher did not finish")
		}
	}, row("1"), Mismatch{Provider: "a", Subject: "z"})
	second := matcher(1, func() error { close(finished); return nil }, row("2"))
	store := &mismatchStore{}
	write := func(context.Context, *Run) (string, error) { return "written", nil }
	_, err := ReconcileStage(store, []Matcher{first, second}, write, 0)(context.Background(), &Run{ID: 1})
	if KindOf(err) != KindNeedsPerson {
		t.Fatalf("%v (kind %v), want the findings needing a person", err, KindOf(err))
	}
	want := []Mismatch{{Provider: "a", Subject: "z"}, row("1"), row("2")}
	if !reflect.DeepEqual(store.found, want) {
		t.Fatalf("findings\n%+v\nwant\n%+v", store.found, want)
	}
}

// TestAMatcherErrorCancelsTheOthers: the first matcher's error is the
// stage's, and the other matcher's context is cancelled (it would
// otherwise wait sideBySide and fail with another error); the reports
// are written all the same, the last findings kept.
func TestAMatcherErrorCancelsTheOthers(t *testing.T) {
	started := make(chan struct{})
	cancelled := make(chan error, 1)
	failing := func(ctx context.Context, _ *Run) ([]Mismatch, error) {
		select {
		case <-started:
		case <-time.After(sideBySide):
		}
		return nil, errors.New("provider X unreachable")
	}
	waiting := func(ctx context.Context, _ *Run) ([]Mismatch, error) {
		close(started)
		select {
		case <-ctx.Done():
			cancelled <- ctx.Err()
			return nil, ctx.Err()
		case <-time.After(sideBySide):
			cancelled <- nil
			return nil, errors.New("not cancelled")
		}
	}
	store := &mismatchStore{found: []Mismatch{{Subject: "kept"}}}
	writes := 0
	write := func(context.Context, *Run) (string, error) { writes++; return "wrote the reports", nil }
	_, err := ReconcileStage(store, []Matcher{waiting, failing}, write, 0)(context.Background(), &Run{ID: 1})
	if err == nil || !strings.Contains(err.Error(), "provider X unreachable") || strings.Contains(err.Error(), "cancel") {
		t.Fatalf("%v, want the failing matcher's error alone", err)
	}
	// The reports are written all the same, from the ledger as the run's
	// payouts left it (an earlier attempt's said nothing was paid), with
	// the findings kept.
	if writes != 1 || !strings.Contains(err.Error(), "wrote the reports from the ledger as it is, without this reconciliation: mismatches.csv holds the last one's findings") {
		t.Fatalf("%d reports written: %v", writes, err)
	}
	if c := <-cancelled; !errors.Is(c, context.Canceled) {
		t.Fatalf("the other matcher's context: %v, want cancelled", c)
	}
	if len(store.found) != 1 || store.found[0].Subject != "kept" {
		t.Fatalf("a failed reconciliation replaced the findings: %+v", store.found)
	}
}

// manyFindings is a mismatchStore whose date has a failed payout and an
// unbalanced report line, and one earlier run to reconcile again.
type manyFindings struct {
	mismatchStore
	earlier *Run
}

func (s *manyFindings) FailedPayouts(context.Context, RunKey) (int64, error) { return 1, nil }
func (s *manyFindings) Unbalanced(context.Context, RunKey) ([]string, error) {
	return []string{"sellers.csv line 2 does not balance"}, nil
}
func (s *manyFindings) RunsToRecheck(context.Context, *Run, int) ([]*Run, error) {
	return []*Run{s.earlier}, nil
}
func (s *manyFindings) Lock(context.Context, RunKey) (func() error, error) {
	return func() error { return nil }, nil
}

// TestReconcileCountsEveryProblemAndListsTheFirst: a day of 25,000
// unexpected findings, reconciled with an earlier date that has as many,
// needs a person for all of them (and each date's failed payout and
// unbalanced line), but the error lists the first few alone, with the
// count of the rest: it does not hold a line per finding.
func TestReconcileCountsEveryProblemAndListsTheFirst(t *testing.T) {
	const n = 25_000
	var ms []Mismatch
	for i := range n {
		ms = append(ms, Mismatch{Provider: "p", Category: MismatchAmount, Subject: fmt.Sprintf("s%05d", i), Ours: "1", Theirs: "2"})
	}
	matcher := func(context.Context, *Run) ([]Mismatch, error) { return ms, nil }
	earlier, err := ParseDate("2026-11-22")
	if err != nil {
		t.Fatal(err)
	}
	store := &manyFindings{earlier: &Run{ID: 1, Key: RunKey{Date: earlier}}}
	write := func(context.Context, *Run) (string, error) { return "written", nil }
	_, err = ReconcileStage(store, []Matcher{matcher}, write, 1)(context.Background(), &Run{ID: 2})
	var p *Problems
	if KindOf(err) != KindNeedsPerson || !errors.As(err, &p) {
		t.Fatalf("%v, want the findings needing a person", err)
	}
	if want := 2 * (n + 2); p.Count() != want || len(p.List) != ProblemsListed || p.List[0] != "p amount s00000: ours 1 minor units, theirs 2 minor units" {
		t.Fatalf("%d problems, %d listed, first %q; want %d, %d listed, s00000 first", p.Count(), len(p.List), p.List[0], want, ProblemsListed)
	}
	if first, count := ProblemsOf(err, 3); count != 2*(n+2) || len(first) != 3 {
		t.Errorf("ProblemsOf: %d, %q", count, first)
	}
	if !strings.HasSuffix(err.Error(), fmt.Sprintf("; ... %d more (see the reports)", 2*(n+2)-ProblemsListed)) {
		t.Errorf("message ends %q", err.Error()[max(0, len(err.Error())-80):])
	}
	if len(store.found) != n {
		t.Errorf("%d findings recorded, want %d", len(store.found), n)
	}
}

// ctxFinal records keys only on a context not canceled, as a ledger would.
type ctxFinal struct{ kept []string }

func (f *ctxFinal) FinalKeys(context.Context, string, []string) (map[string]bool, error) {
	return nil, nil
}
func (f *ctxFinal) RecordFinal(ctx context.Context, _ string, keys []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.kept = append(f.kept, keys...)
	return nil
}

// KeepFinal records a failed page's answers even once the run is stopping
// (its context canceled), and returns the page's error; a page that did
// not fail returns the record's error.
func TestKeepFinalAfterAFailure(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := &ctxFinal{}
	if err := KeepFinal(ctx, f, "m", []string{"a", "b"}, context.Canceled); !errors.Is(err, context.Canceled) || !reflect.DeepEqual(f.kept, []string{"a", "b"}) {
		t.Fatalf("%v, kept %q; want the page's error and both kept", err, f.kept)
	}
	if err := KeepFinal(ctx, f, "m", []string{"c"}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("%v, want the record's error", err)
	}
	if err := KeepFinal(ctx, nil, "m", []string{"c"}, nil); err != nil {
		t.Fatalf("no answers kept: %v", err)
	}
}

// TestAMismatchLineGivesAmountsInTheirCurrency: the line of an unexpected
// mismatch in the run's log gives each side's amount as money, with its
// decimals and currency, and its state; it read "ours 200234
// uploaded-paid, theirs  not found" (200234 what? 2,002.34 EUR).
func TestAMismatchLineGivesAmountsInTheirCurrency(t *testing.T) {
	ms := []Mismatch{
		{Provider: "infiniapay", Category: MismatchMissingAtProvider, Subject: "available/S00006/EUR", Currency: "EUR",
			Ours: "200234", OursState: "uploaded-paid", TheirsState: "not found"},
		{Provider: "wechatpay", Category: MismatchCurrency, Subject: "T1", Currency: "CNY", Ours: "100", Theirs: "14"},
	}
	matcher := func(context.Context, *Run) ([]Mismatch, error) { return ms, nil }
	write := func(context.Context, *Run) (string, error) { return "written", nil }
	earlier, err := ParseDate("2026-11-22")
	if err != nil {
		t.Fatal(err)
	}
	store := &manyFindings{earlier: &Run{ID: 1, Key: RunKey{Date: earlier}}}
	_, err = ReconcileStage(store, []Matcher{matcher}, write, 1)(context.Background(), &Run{ID: 2})
	var p *Problems
	if !errors.As(err, &p) || len(p.List) < 2 {
		t.Fatalf("%v: want the findings needing a person", err)
	}
	for i, want := range []string{
		"infiniapay missing_at_provider available/S00006/EUR: ours 2002.34 EUR (uploaded-paid), theirs no amount (not found)",
		"wechatpay currency T1: ours 100 minor units, theirs 14 minor units",
	} {
		if p.List[i] != want {
			t.Errorf("line %d: %q, want %q", i, p.List[i], want)
		}
	}
}

// byRun is a mismatchStore keeping each run's findings, with one earlier
// run to reconcile again.
type byRun struct {
	manyFindings
	found map[int64][]Mismatch
}

func (s *byRun) ReplaceMismatches(_ context.Context, id int64, ms []Mismatch) error {
	s.found[id] = ms
	return nil
}
func (s *byRun) FailedPayouts(context.Context, RunKey) (int64, error) { return 0, nil }
func (s *byRun) Unbalanced(context.Context, RunKey) ([]string, error) { return nil, nil }

// TestWatchersRunWithTheRunsOwnReconciliation: a watcher runs once per
// stage, with the run's own reconciliation (not with the rechecks of
// earlier runs), told the runs the stage reconciles (the run and those it
// rechecks, so it asks nothing of theirs); its findings are the run's
// own: recorded with them, and a person is needed for one unexpected.
func TestWatchersRunWithTheRunsOwnReconciliation(t *testing.T) {
	earlier, err := ParseDate("2026-11-22")
	if err != nil {
		t.Fatal(err)
	}
	store := &byRun{manyFindings: manyFindings{earlier: &Run{ID: 7, Key: RunKey{Date: earlier}}}, found: map[int64][]Mismatch{}}
	var calls [][]int64
	watch := func(_ context.Context, run *Run, reconciled []int64) ([]Mismatch, error) {
		calls = append(calls, append([]int64{run.ID}, reconciled...))
		return []Mismatch{{Provider: "p", Category: MismatchStatus, Subject: "old", Detail: "order of 2026-10-01"}}, nil
	}
	matcher := func(_ context.Context, run *Run) ([]Mismatch, error) {
		return []Mismatch{{Provider: "p", Category: MismatchTiming, Subject: fmt.Sprint("own ", run.ID), Expected: true}}, nil
	}
	write := func(context.Context, *Run) (string, error) { return "written", nil }
	_, err = ReconcileStageWatching(store, []Matcher{matcher}, []Watcher{watch}, write, 1)(context.Background(), &Run{ID: 8})
	if KindOf(err) != KindNeedsPerson || !strings.Contains(err.Error(), "p status old") || strings.Contains(err.Error(), "2026-11-22: p status old") {
		t.Fatalf("%v, want the run to need a person for the watched row", err)
	}
	if !reflect.DeepEqual(calls, [][]int64{{8, 8, 7}}) {
		t.Errorf("the watcher was called %v, want once for run 8, told runs 8 and 7", calls)
	}
	if got := store.found[8]; len(got) != 2 || got[0].Subject != "old" || got[1].Subject != "own 8" {
		t.Errorf("run 8's findings %+v, want the watched row and its own", got)
	}
	if got := store.found[7]; len(got) != 1 || got[0].Subject != "own 7" {
		t.Errorf("run 7's findings %+v, want its own alone", got)
	}
}

// TestWatchedFindingsAloneAreOfEarlierDates: a run whose reconciliation
// needs a person only for a watcher's findings (an order of an earlier
// date paid late) says so (ErrOfEarlierDates), so that the runner does not
// record the run as waiting on a person for them; one of its own beside
// them is the run's.
func TestWatchedFindingsAloneAreOfEarlierDates(t *testing.T) {
	earlier, err := ParseDate("2026-11-22")
	if err != nil {
		t.Fatal(err)
	}
	watch := func(context.Context, *Run, []int64) ([]Mismatch, error) {
		return []Mismatch{{Provider: "p", Category: MismatchStatus, Subject: "old", Detail: "order of 2026-10-01, watched"}}, nil
	}
	write := func(context.Context, *Run) (string, error) { return "written", nil }
	for _, own := range []bool{false, true} {
		matcher := func(_ context.Context, run *Run) ([]Mismatch, error) {
			return []Mismatch{{Provider: "p", Category: MismatchAmount, Subject: fmt.Sprint("own ", run.ID), Expected: !own}}, nil
		}
		store := &byRun{manyFindings: manyFindings{earlier: &Run{ID: 7, Key: RunKey{Date: earlier}}}, found: map[int64][]Mismatch{}}
		_, err := ReconcileStageWatching(store, []Matcher{matcher}, []Watcher{watch}, write, 1)(context.Background(), &Run{ID: 8})
		if KindOf(err) != KindNeedsPerson || !strings.Contains(err.Error(), "p status old") {
			t.Fatalf("own finding %v: %v, want a person needed for the watched row", own, err)
		}
		if got := onlyOfEarlierDates(err); got == own {
			t.Errorf("own finding %v: of earlier dates alone %v, want %v:\n%v", own, got, !own, err)
		}
		if own && !strings.Contains(err.Error(), "p amount own 8") {
			t.Errorf("the run's own finding is not told: %v", err)
		}
	}
	// Joined with a stage's own (Combine), it is the run's.
	mixed := E(KindNeedsPerson, "", errors.Join(OfEarlierDates(E(KindNeedsPerson, "", errors.New("watched"))), E(KindNeedsPerson, "", errors.New("own"))))
	if onlyOfEarlierDates(mixed) {
		t.Errorf("%v: taken for earlier dates alone", mixed)
	}
}

// TestARefusalRecheckingAnEarlierDateKeepsTheRunsFindings: the run's own
// reconciliation finds a mismatch (recorded, in its mismatches.csv); the
// provider then refuses our credentials while the earlier date is
// reconciled again. The stage stops with the refusal alone (exit 2, one
// line), and the run's findings are in its problems (StopProblems: the
// runner's NEEDS A PERSON line), with the summary of the run's own
// reconciliation. Before, the stop dropped them: the night's log said
// none of them.
func TestARefusalRecheckingAnEarlierDateKeepsTheRunsFindings(t *testing.T) {
	refused := Errorf(KindUsage, "Provider X", "refused our credentials: check --x-key")
	matcher := func(_ context.Context, run *Run) ([]Mismatch, error) {
		if run.ID == 1 { // the earlier date's
			return nil, refused
		}
		return []Mismatch{{Provider: "p", Category: MismatchAmount, Subject: "s1", Ours: "1", Theirs: "2"}}, nil
	}
	earlier, err := ParseDate("2026-11-22")
	if err != nil {
		t.Fatal(err)
	}
	store := &manyFindings{earlier: &Run{ID: 1, Key: RunKey{Date: earlier}}}
	write := func(context.Context, *Run) (string, error) { return "written", nil }
	summary, err := ReconcileStage(store, []Matcher{matcher}, write, 1)(context.Background(), &Run{ID: 2})
	if KindOf(err) != KindUsage || !errors.Is(err, refused) || strings.Contains(err.Error(), "s1") {
		t.Fatalf("%v, want the refusal alone (exit 2)", err)
	}
	problems := StopProblems(err)
	if problems == nil || !strings.Contains(problems.Error(), "p amount s1: ours 1 minor units, theirs 2 minor units") ||
		!strings.Contains(problems.Error(), "1 payout(s) of") {
		t.Fatalf("the stop's problems: %v, want the run's own findings", problems)
	}
	if _, n := ProblemsOf(problems, 0); n != 3 {
		t.Errorf("%d problems, want the run's 3 (a mismatch, a failed payout, an unbalanced line)", n)
	}
	if !strings.Contains(summary, "1 unexpected mismatches") || !strings.Contains(summary, "2026-11-22 again: stopped") {
		t.Errorf("summary %q, want the run's own reconciliation's and the date it stopped at", summary)
	}
}
