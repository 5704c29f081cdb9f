package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// TestYesterdayIsTheDayThatJustEnded: the nightly run settles the day
// that ended at the last midnight in --tz. Where a calendar day was
// skipped (Pacific/Apia crossed the date line: 2011-12-29 was followed by
// 2011-12-31), "today's date minus one" names the skipped day, whose window
// is empty, and the day that did end (2011-12-29) was never settled by a
// nightly run.
func TestYesterdayIsTheDayThatJustEnded(t *testing.T) {
	apia, err := time.LoadLocation("Pacific/Apia")
	if err != nil {
		t.Skip(err)
	}
	sh, _ := time.LoadLocation("Asia/Shanghai")
	ny, _ := time.LoadLocation("America/New_York")
	amman, _ := time.LoadLocation("Asia/Amman")
	azores, _ := time.LoadLocation("Atlantic/Azores")
	havana, _ := time.LoadLocation("America/Havana")
	for _, c := range []struct {
		now  time.Time
		loc  *time.Location
		want string
	}{
		{time.Date(2011, 12, 31, 2, 30, 0, 0, apia), apia, "2011-12-29"},
		{time.Date(2011, 12, 29, 2, 30, 0, 0, apia), apia, "2011-12-28"},
		{time.Date(2012, 1, 1, 2, 30, 0, 0, apia), apia, "2011-12-31"},
		{time.Date(2026, 3, 2, 2, 30, 0, 0, sh), sh, "2026-03-01"},
		{time.Date(2024, 3, 11, 0, 0, 0, 0, ny), ny, "2024-03-10"},
		{time.Date(2024, 11, 4, 0, 30, 0, 0, ny), ny, "2024-11-03"},
		// Midnight happens twice (the clocks go back from 01:00 to 00:00):
		// the night after it settles the day before, east of UTC as west.
		{time.Date(2019, 10, 25, 2, 30, 0, 0, amman), amman, "2019-10-24"},
		{time.Date(2026, 10, 25, 2, 30, 0, 0, azores), azores, "2026-10-24"},
		{time.Date(2026, 11, 1, 2, 30, 0, 0, havana), havana, "2026-10-31"},
	} {
		got := yesterday(c.now, c.loc)
		if got.String() != c.want {
			t.Errorf("yesterday at %s: %s, want %s", c.now, got, c.want)
		}
		// The date settled is over and is not empty: its window ends at
		// or before today's start.
		if w := pipeline.WindowOf(got, c.loc); w.End.After(c.now) || !w.End.After(w.Start) {
			t.Errorf("yesterday at %s: %s, window %v", c.now, got, w)
		}
	}
}

// TestADayIsSettledFromTenMinutesAfterItsEnd: a run 5 minutes after
// midnight (by hand, or a pod whose clock runs ahead) read the day that
// had just ended while the orders confirmed in its last moments were
// still being committed, and recorded it as read: those orders were never
// settled. A day is settled from dayOverMargin after its end on; the
// check is made before anything is touched (the database's clock is
// checked again as the day is read: extract.Source).
func TestADayIsSettledFromTenMinutesAfterItsEnd(t *testing.T) {
	sh, _ := time.LoadLocation("Asia/Shanghai")
	for _, c := range []struct {
		now     time.Time
		args    []string
		refused bool
	}{
		{time.Date(2026, 11, 24, 0, 5, 0, 0, sh), nil, true},
		{time.Date(2026, 11, 24, 0, 5, 0, 0, sh), []string{"--date", "2026-11-23"}, true},
		{time.Date(2026, 11, 24, 0, 9, 59, 0, sh), []string{"--from", "2026-11-22", "--to", "2026-11-23"}, true},
		{time.Date(2026, 11, 24, 0, 10, 0, 0, sh), []string{"--date", "2026-11-23"}, false},
		{time.Date(2026, 11, 24, 2, 30, 0, 0, sh), nil, false},
	} {
		var out, errb bytes.Buffer
		args := append([]string{"settle", "run", "--tz", "Asia/Shanghai", "--rules", "/nonexistent/rules.csv"}, c.args...)
		err := runAt(context.Background(), func() time.Time { return c.now }, args, func(string) string { return "" }, &out, &errb)
		refused := err != nil && strings.Contains(err.Error(), "2026-11-23 is not over yet") &&
			strings.Contains(err.Error(), "this machine's clock reads "+c.now.Format(time.RFC3339))
		if refused != c.refused || pipeline.KindOf(err) != pipeline.KindUsage {
			t.Errorf("run %v at %s: %v (refused %v, want %v)", c.args, c.now, err, refused, c.refused)
		}
	}
}

// TestAMachineWhoseClockIsOffTheLedgersIsRefused: the stages judge the
// times the ledger records (its database's clock) by this machine's: a
// pod an hour or a day ahead took every trade file Infinia had not yet
// picked up as lost, and every refused repeat as failed, early. A run on
// a machine more than ledgerSkew off the ledger database's clock is
// refused (exit 2) before it opens its run, naming clock skew.
func TestAMachineWhoseClockIsOffTheLedgersIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, off := range []time.Duration{time.Hour, -10 * time.Minute} {
		var out, errb bytes.Buffer
		ctx := context.WithValue(context.Background(), wallClockKey{}, func() time.Time { return time.Now().Add(off) })
		err := run(ctx, sendingPastMemory(plainTextArgs([]string{"settle", "run", "--database-url", e.url, "--date", testDate, "--rules", e.rules, "--until", "transform", skipAll})),
			func(string) string { return "" }, &out, &errb)
		if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(fmt.Sprint(err), "clock skew: this machine's clock reads") {
			t.Fatalf("a machine %s off the ledger's clock: %v, want exit 2 naming clock skew", off, err)
		}
	}
	if n := e.count(`SELECT count(*) FROM settle.runs`); n != 0 {
		t.Fatalf("%d runs opened, want none", n)
	}
}
