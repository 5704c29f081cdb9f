package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestARunRemovesReportsPastTheirKeep: the reports volume grew with every
// date, forever, until a full volume failed the night's reports after its
// money moved. With --reports-keep-days N a run removes, at its end, the
// report files of the dates all written more than N days ago - never its
// own date's, nor another file there - and says so in one line; without
// it, or in a dry run, nothing is removed; a negative N is refused.
func TestARunRemovesReportsPastTheirKeep(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", "2026-11-21", "--orders", "10", "--sellers", "2")
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC) // yesterday: 2026-11-25
	at := e.runAtClock(&now)
	old, recent := now.AddDate(0, 0, -40), now.AddDate(0, 0, -5)
	set := func(date string, when time.Time, extra ...string) {
		dir := filepath.Join(e.reports, date)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range append([]string{"orders.csv", "payouts.csv", "sellers.csv", "summary.csv", "mismatches.csv", "manifest.csv"}, extra...) {
			p := filepath.Join(dir, f)
			if err := os.WriteFile(p, []byte("x\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, when, when); err != nil {
				t.Fatal(err)
			}
		}
	}
	set("2026-10-01", old)
	set("2026-10-02", old, "auditor-notes.txt")
	set("2026-11-20", recent)
	set("2026-11-25", old) // the run's own date: kept whatever its age
	exists := func(p string) bool {
		_, err := os.Stat(filepath.Join(e.reports, p))
		return !errors.Is(err, fs.ErrNotExist)
	}
	if out, code := e.runAtClockStopped(&now)("--reports-keep-days", "-1"); code != 2 || !strings.Contains(out, "--reports-keep-days") {
		t.Fatalf("a negative keep: exit %d, want 2 naming the flag:\n%s", code, out)
	}
	for _, args := range [][]string{{}, {"--reports-keep-days", "30", "--dry-run", skipAll}} {
		if out, code := at(args...); code != 0 || !exists("2026-10-01/orders.csv") {
			t.Fatalf("%v: exit %d, the old reports removed (%v), want them kept:\n%s", args, code, !exists("2026-10-01/orders.csv"), out)
		}
	}
	out, code := at("--reports-keep-days", "30")
	want := "removed the reports of 2 dates from 2026-10-01 to 2026-10-02, all written before 2026-10-27T03:00:00Z (--reports-keep-days 30"
	if code != 0 || !strings.Contains(out, want) {
		t.Fatalf("exit %d, want 0 with %q:\n%s", code, want, out)
	}
	for p, kept := range map[string]bool{
		"2026-10-01": false, "2026-10-02/orders.csv": false, "2026-10-02/manifest.csv": false, "2026-10-02/auditor-notes.txt": true,
		"2026-11-20/orders.csv": true, "2026-11-25/orders.csv": true,
	} {
		if exists(p) != kept {
			t.Errorf("%s: there %v, want %v:\n%s", p, exists(p), kept, out)
		}
	}
}
