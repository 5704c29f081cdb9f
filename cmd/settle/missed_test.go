package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestANightlyRunNamesTheNightsMissed: a nightly run settles yesterday
// only, so a night the schedule missed (the CronJob controller down past
// its starting deadline, say) left a date never settled, and the next
// night's success hid it. The nightly run (no --date) now ends needing a
// person, naming the dates of the month before it that have no run, with
// the backfill that settles them; a run of a given date does not look.
func TestANightlyRunNamesTheNightsMissed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", "2026-11-21", "--orders", "10", "--sellers", "2")
	now := func() time.Time { return time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC) } // yesterday: 2026-11-25
	at := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		full := append([]string{"settle", "run", "--database-url", e.url, "--tz", "UTC", "--rules", e.rules, "--out", e.reports,
			"--until", "transform"}, args...)
		err := runAt(context.Background(), now, full, func(string) string { return "" }, &out, &errb)
		code := exitCode(err, &errb)
		return out.String() + errb.String(), code
	}
	// A new ledger: nothing before the night to compare with.
	if out, code := at(); code != 0 || strings.Contains(out, "never run") {
		t.Fatalf("first night: exit %d, want 0:\n%s", code, out)
	}
	for _, d := range []string{"2026-11-20", "2026-11-21", "2026-11-23"} {
		if out, code := at("--date", d); code != 0 {
			t.Fatalf("run of %s: exit %d:\n%s", d, code, out)
		}
	}
	want := "2 dates from 2026-11-22 to 2026-11-24 before 2026-11-25 never run (a night the schedule missed?): settle run --from 2026-11-22 --to 2026-11-24"
	if out, code := at(); code != 4 || !strings.Contains(out, want) || !strings.Contains(out, "date 2026-11-24 has no run") {
		t.Fatalf("night with 2026-11-22 and 2026-11-24 never run: exit %d, want 4 with %q:\n%s", code, want, out)
	}
	if out, code := at("--date", "2026-11-25"); code != 0 {
		t.Fatalf("the same date given: exit %d, want 0 (a date given is not the nightly run):\n%s", code, out)
	}
	if out, code := at("--from", "2026-11-22", "--to", "2026-11-24"); code != 0 {
		t.Fatalf("backfill: exit %d:\n%s", code, out)
	}
	if out, code := at(); code != 0 {
		t.Fatalf("night after the backfill: exit %d, want 0:\n%s", code, out)
	}
}
