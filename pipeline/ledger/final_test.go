package ledger_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

var _ pipeline.FinalAnswersForgetting = (*ledger.Ledger)(nil)

// TestFinalAnswersAreKeptPerMatcher records final answers of two matchers
// (with a key twice in one call, and again from several callers at once)
// and reads back only what each recorded: a key of another matcher, or a
// key with another ledger part, is not final.
func TestFinalAnswersAreKeptPerMatcher(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	if got, err := l.FinalKeys(ctx, "m1", nil); err != nil || len(got) != 0 {
		t.Fatalf("no keys: %v %v", got, err)
	}
	if err := l.RecordFinal(ctx, "m1", nil); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordFinal(ctx, "m1", []string{"DIST/1|100|succeeded", "DIST/2|200|succeeded", "DIST/1|100|succeeded"}); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordFinal(ctx, "m2", []string{"PAY/9|0"}); err != nil {
		t.Fatal(err)
	}
	// The same keys again, from several matchers' goroutines at once.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys := []string{"DIST/2|200|succeeded", fmt.Sprintf("DIST/%d|1|succeeded", 10+i)}
			errs[i] = l.RecordFinal(ctx, "m1", keys)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.FinalKeys(ctx, "m1", []string{"DIST/1|100|succeeded", "DIST/2|200|succeeded", "DIST/2|250|succeeded",
		"PAY/9|0", "DIST/13|1|succeeded", "unknown"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"DIST/13|1|succeeded", "DIST/1|100|succeeded", "DIST/2|200|succeeded"}
	if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, want) {
		t.Fatalf("m1 final keys %v, want %v", keys, want)
	}
	got, err = l.FinalKeys(ctx, "m2", []string{"PAY/9|0", "PAY/9|50", "DIST/1|100|succeeded"})
	if err != nil {
		t.Fatal(err)
	}
	if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, []string{"PAY/9|0"}) {
		t.Fatalf("m2 final keys %v", keys)
	}
	var n int
	if err := l.DB().QueryRowContext(ctx, `SELECT count(*) FROM reconciled_final`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2+1+8 {
		t.Fatalf("%d rows, want 11 (each key once)", n)
	}
}

// TestAskAllForgetsWhatItAsks: asking everything again (--reconcile-all)
// finds nothing kept, forgets the keys it was asked about (another
// matcher's stay), and keeps what is recorded again: a key whose answer no
// longer agrees is asked by later reconciliations too.
func TestAskAllForgetsWhatItAsks(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	for _, m := range []string{"m1", "m2"} {
		if err := l.RecordFinal(ctx, m, []string{"A", "B"}); err != nil {
			t.Fatal(err)
		}
	}
	all := pipeline.AskAll{Store: l}
	if got, err := all.FinalKeys(ctx, "m1", []string{"A", "B"}); err != nil || len(got) != 0 {
		t.Fatalf("asking all: %v %v, want none kept", got, err)
	}
	if err := all.RecordFinal(ctx, "m1", []string{"A"}); err != nil { // B disagrees now
		t.Fatal(err)
	}
	got, err := l.FinalKeys(ctx, "m1", []string{"A", "B"})
	if err != nil || !got["A"] || got["B"] {
		t.Errorf("m1 after asking all: %v %v, want A kept and B asked again", got, err)
	}
	if got, err := l.FinalKeys(ctx, "m2", []string{"A", "B"}); err != nil || len(got) != 2 {
		t.Errorf("m2: %v %v, want both still kept", got, err)
	}
}

// PruneFinal deletes the answers recorded longer ago than it keeps them,
// of every matcher, more than a statement's batch of them, and nothing
// younger; what it pruned is no longer final (it is asked again).
func TestPruneFinalDropsOnlyOldAnswers(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	// 12,000 answers 40 days old over two matchers, 5 of 30 days, 5 new.
	if _, err := l.DB().Exec(`INSERT INTO reconciled_final (matcher, key, recorded_at)
		SELECT 'm' || (g % 2), 'old' || g, now() - interval '40 days' FROM generate_series(1, 12000) g
		UNION ALL SELECT 'm1', 'month' || g, now() - interval '30 days' FROM generate_series(1, 5) g`); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordFinal(ctx, "m1", []string{"new1", "new2", "new3", "new4", "new5"}); err != nil {
		t.Fatal(err)
	}
	n, err := l.PruneFinal(ctx, 35*24*time.Hour)
	if err != nil || n != 12000 {
		t.Fatalf("pruned %d (%v), want 12000", n, err)
	}
	var left int
	if err := l.DB().Get(&left, `SELECT count(*) FROM reconciled_final`); err != nil || left != 10 {
		t.Fatalf("%d answers left (%v), want the 10 younger than 35 days", left, err)
	}
	got, err := l.FinalKeys(ctx, "m1", []string{"old1", "old3", "month1", "new1"})
	if err != nil || len(got) != 2 || !got["month1"] || !got["new1"] {
		t.Fatalf("final after pruning: %v (%v), want month1 and new1", got, err)
	}
	if n, err := l.PruneFinal(ctx, 35*24*time.Hour); err != nil || n != 0 {
		t.Fatalf("pruned again: %d (%v), want 0", n, err)
	}
}
