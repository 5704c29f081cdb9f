package load

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// writeSet writes a whole set of date d's reports (every writer, and the
// manifest) and dates its files at.
func writeSet(t *testing.T, r Reports, d pipeline.Date, at time.Time) {
	t.Helper()
	var set []Written
	add := func(w Written, err error) {
		if err != nil {
			t.Fatal(err)
		}
		set = append(set, w)
	}
	add(r.WriteOrders(context.Background(), d, func(fn func(pipeline.OrderLine) error) error { return fn(pipeline.OrderLine{OrderNo: "O1"}) }))
	add(r.WritePayouts(d, func(func(pipeline.PayoutLine) error) error { return nil }))
	add(r.WriteSellers(d, func(func(pipeline.SellerLine) error) error { return nil }))
	add(r.WriteSummary(d, func(func(pipeline.SummaryLine) error) error { return nil }))
	add(r.WriteMismatches(d, func(func(pipeline.Mismatch) error) error { return nil }))
	add(r.WriteManifest(d, set...))
	entries, err := os.ReadDir(r.DateDir(d))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Chtimes(filepath.Join(r.DateDir(d), e.Name()), at, at); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPruneRemovesOnlySettlesOldReports: the reports volume grew with
// every date, forever. Prune removes a date's set (every file the
// writers write, and a temporary file a crash left) once all of it was
// written before the cutoff; never a date it is told to keep (the run's
// own), one with a file written since (a re-run, a person's settle
// report), a file that is not settle's (the directory stays with it), nor
// anything in a directory whose name is not a date.
func TestPruneRemovesOnlySettlesOldReports(t *testing.T) {
	root := t.TempDir()
	r := Reports{Dir: root}
	now := time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC)
	cutoff := now.AddDate(0, 0, -30)
	old, recent := cutoff.Add(-time.Hour), cutoff.Add(time.Hour)
	date := func(day int) pipeline.Date { return pipeline.Date{Year: 2026, Month: 10, Day: day} }
	writeSet(t, r, date(1), old)                                                                           // pruned
	writeSet(t, r, date(2), old)                                                                           // pruned, a crash's temporary file with it
	writeSet(t, r, date(3), old)                                                                           // pruned, the operator's file and the directory left
	writeSet(t, r, date(4), old)                                                                           // kept: the run's own
	writeSet(t, r, date(5), old)                                                                           // kept: a report written again since
	writeSet(t, r, date(6), recent)                                                                        // kept: recent
	if err := os.WriteFile(filepath.Join(r.DateDir(date(2)), ".orders.csv.123"), nil, 0o644); err != nil { // a crash's
		t.Fatal(err)
	}
	_ = os.Chtimes(filepath.Join(r.DateDir(date(2)), ".orders.csv.123"), old, old)
	notes := filepath.Join(r.DateDir(date(3)), "notes.txt")
	if err := os.WriteFile(notes, []byte("the auditor's"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(filepath.Join(r.DateDir(date(5)), "summary.csv"), recent, recent)
	for _, p := range []string{"work/2026-10-01/TD_1.csv", "2026-10-07-old/orders.csv", "orders.csv"} {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		_ = os.Chtimes(p, old, old)
	}
	var locked []pipeline.Date
	held := false
	lock := func(d pipeline.Date) (func(), error) {
		locked = append(locked, d)
		held = true
		return func() { held = false }, nil
	}
	pruned, err := r.Prune(cutoff, func(d pipeline.Date) bool { return d == date(4) }, lock)
	if err != nil {
		t.Fatal(err)
	}
	if want := []pipeline.Date{date(1), date(2), date(3)}; !slices.Equal(pruned, want) || !slices.Equal(locked, want) || held {
		t.Errorf("pruned %v under the locks of %v (held after: %v), want %v each under its own", pruned, locked, held, want)
	}
	gone := func(p string) bool {
		_, err := os.Stat(p)
		return errors.Is(err, fs.ErrNotExist)
	}
	for _, d := range []int{1, 2} {
		if !gone(r.DateDir(date(d))) {
			t.Errorf("%s: still there", r.DateDir(date(d)))
		}
	}
	if entries, err := os.ReadDir(r.DateDir(date(3))); err != nil || len(entries) != 1 || entries[0].Name() != "notes.txt" {
		t.Errorf("%s: %v (%v), want the operator's notes.txt alone", r.DateDir(date(3)), entries, err)
	}
	for _, d := range []int{4, 5, 6} {
		checkManifest(t, r.DateDir(date(d)), "orders.csv", "payouts.csv", "sellers.csv", "summary.csv", "mismatches.csv")
	}
	for _, p := range []string{"work/2026-10-01/TD_1.csv", "2026-10-07-old/orders.csv", "orders.csv"} {
		if gone(filepath.Join(root, p)) {
			t.Errorf("%s, not a date's reports, was removed", p)
		}
	}
	// A date whose files were written again while it waited for the lock
	// is kept.
	writeSet(t, r, date(7), old)
	pruned, err = r.Prune(cutoff, func(pipeline.Date) bool { return false }, func(d pipeline.Date) (func(), error) {
		writeSet(t, r, d, recent) // a person's settle report, done as the lock is taken
		return func() {}, nil
	})
	if err != nil || len(pruned) != 0 {
		t.Errorf("a set written again under the lock: pruned %v (%v), want none", pruned, err)
	}
	// A lock that cannot be taken (the ledger's database gone) ends the
	// pruning at once: nothing removed, one error, not one per date.
	writeSet(t, r, date(8), old)
	calls := 0
	pruned, err = r.Prune(now, func(pipeline.Date) bool { return false }, func(pipeline.Date) (func(), error) {
		calls++
		return nil, errors.New("connection refused")
	})
	if err == nil || len(pruned) != 0 || calls != 1 {
		t.Errorf("the lock refused: pruned %v after %d lock calls (%v), want none after one, and its error", pruned, calls, err)
	}
	// No reports directory yet: nothing to do.
	if pruned, err := (Reports{Dir: filepath.Join(root, "none")}).Prune(cutoff, func(pipeline.Date) bool { return false }, lock); err != nil || len(pruned) != 0 {
		t.Errorf("no directory: %v, %v", pruned, err)
	}
}

// TestPruneRemovesAnOldEmptyDateDirectory: settle run's start-up check
// makes its date's reports directory, and a run that stopped before its
// reports left it empty: with no report file in it, Prune never removed
// it, and the reports volume filled with empty directories. An empty
// date's directory last changed before the cutoff is removed now; not a
// recent one, nor the run's own, nor one with anything in it (an empty
// directory of the operator's), nor a directory whose name is not a date,
// nor a symbolic link named as a date (nor what it points to).
func TestPruneRemovesAnOldEmptyDateDirectory(t *testing.T) {
	root := t.TempDir()
	r := Reports{Dir: root}
	now := time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC)
	cutoff := now.AddDate(0, 0, -30)
	old, recent := cutoff.Add(-time.Hour), cutoff.Add(time.Hour)
	date := func(day int) pipeline.Date { return pipeline.Date{Year: 2026, Month: 10, Day: day} }
	outside := filepath.Join(t.TempDir(), "elsewhere")
	dirs := []struct {
		path string
		at   time.Time
	}{
		{r.DateDir(date(1)), old},                          // removed
		{r.DateDir(date(2)), recent},                       // kept: recent
		{r.DateDir(date(3)), old},                          // kept: the run's own
		{filepath.Join(r.DateDir(date(4)), "drafts"), old}, // kept: not empty
		{filepath.Join(root, "2026-10-05-old"), old},       // kept: not a date
		{outside, old},                                     // kept: outside, linked as 2026-10-06
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d.path, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, r.DateDir(date(6))); err != nil {
		t.Fatal(err)
	}
	for _, d := range append(dirs, struct {
		path string
		at   time.Time
	}{r.DateDir(date(4)), old}) {
		if err := os.Chtimes(d.path, d.at, d.at); err != nil {
			t.Fatal(err)
		}
	}
	var locked []pipeline.Date
	pruned, err := r.Prune(cutoff, func(d pipeline.Date) bool { return d == date(3) }, func(d pipeline.Date) (func(), error) {
		locked = append(locked, d)
		return func() {}, nil
	})
	if want := []pipeline.Date{date(1)}; err != nil || !slices.Equal(pruned, want) || !slices.Equal(locked, want) {
		t.Errorf("pruned %v under the locks of %v (%v), want %v under its own", pruned, locked, err, want)
	}
	if _, err := os.Lstat(r.DateDir(date(1))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s, old and empty: still there (%v)", r.DateDir(date(1)), err)
	}
	for _, p := range []string{r.DateDir(date(2)), r.DateDir(date(3)), filepath.Join(r.DateDir(date(4)), "drafts"),
		filepath.Join(root, "2026-10-05-old"), r.DateDir(date(6)), outside} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: %v, want it kept", p, err)
		}
	}
}
