package pipeline

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestWindowIsHalfOpenAndFollowsTheCalendarDay(t *testing.T) {
	sh, _ := time.LoadLocation("Asia/Shanghai")
	d, err := ParseDate("2026-11-23")
	if err != nil {
		t.Fatal(err)
	}
	w := WindowOf(d, sh)
	if got := w.Start.UTC().Format(time.RFC3339); got != "2026-11-22T16:00:00Z" {
		t.Fatalf("start %s", got)
	}
	if !w.Contains(w.Start) || w.Contains(w.End) || !w.Contains(w.End.Add(-time.Nanosecond)) || w.Contains(w.Start.Add(-time.Nanosecond)) {
		t.Fatal("window is not [start, end)")
	}
	// Across a daylight-saving change the day has 23 or 25 hours.
	ny, _ := time.LoadLocation("America/New_York")
	if h := WindowOf(Date{2026, 3, 8}, ny).End.Sub(WindowOf(Date{2026, 3, 8}, ny).Start); h != 23*time.Hour {
		t.Fatalf("spring-forward day lasts %s", h)
	}
	if h := WindowOf(Date{2026, 11, 1}, ny).End.Sub(WindowOf(Date{2026, 11, 1}, ny).Start); h != 25*time.Hour {
		t.Fatalf("fall-back day lasts %s", h)
	}
}

// Where a daylight-saving change skips midnight the day begins at the
// jump (as PostgreSQL dates a local time), not at 23:00 of the day before
// (time.Date's unspecified choice): an order confirmed at 23:30 on the
// eve belongs to the eve. And in every zone, every day of a year, the
// windows tile the time line and each begins on its own date.
func TestWindowBeginsWhereItsDayBegins(t *testing.T) {
	santiago, err := time.LoadLocation("America/Santiago")
	if err != nil {
		t.Fatal(err)
	}
	eve, jump := WindowOf(Date{2026, 9, 5}, santiago), WindowOf(Date{2026, 9, 6}, santiago)
	if got := jump.Start.Format(time.RFC3339); got != "2026-09-06T01:00:00-03:00" {
		t.Fatalf("2026-09-06 in Santiago starts at %s, want 01:00 -03 (midnight does not exist)", got)
	}
	if eve.End != jump.Start || eve.End.Sub(eve.Start) != 24*time.Hour || jump.End.Sub(jump.Start) != 23*time.Hour {
		t.Fatalf("eve %v, jump day %v", eve, jump)
	}
	late := time.Date(2026, 9, 5, 23, 30, 0, 0, santiago)
	if late.In(santiago).Day() != 5 || !eve.Contains(late) || jump.Contains(late) {
		t.Fatalf("23:30 on the eve (%s) is not in the eve's window", late)
	}
	for _, name := range []string{"America/Santiago", "America/Havana", "America/Asuncion", "Africa/Cairo",
		"America/New_York", "Europe/London", "Australia/Lord_Howe", "Pacific/Apia", "Asia/Shanghai", "UTC",
		"Asia/Amman", "Asia/Gaza", "Atlantic/Azores"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, year := range []int{2011, 2019, 2026} {
			for d := (Date{year, 1, 1}); d.Year == year; d = d.AddDays(1) {
				w, next := WindowOf(d, loc), WindowOf(d.AddDays(1), loc)
				if w.End != next.Start || w.End.Before(w.Start) {
					t.Fatalf("%s %s: %v and the next day's %v do not tile", name, d, w, next)
				}
				if y, m, day := w.Start.Add(-time.Nanosecond).In(loc).Date(); !(Date{y, m, day}).Before(d) {
					t.Fatalf("%s %s: the instant before its start is on %d-%d-%d", name, d, y, m, day)
				}
				y, m, day := w.Start.In(loc).Date()
				if skipped := w.End.Equal(w.Start); !skipped && (Date{y, m, day}) != d {
					t.Fatalf("%s %s starts on %d-%d-%d", name, d, y, m, day)
				}
			}
		}
	}
	// Where midnight happens twice (the clocks go back from 01:00 to
	// 00:00) the day begins at its first occurrence, east of UTC as west:
	// the hour after it reads the day. time.Date gave Amman's second.
	for _, c := range []struct {
		zone string
		d    Date
		want string
	}{
		{"Asia/Amman", Date{2019, 10, 25}, "2019-10-24T21:00:00Z"},
		{"Atlantic/Azores", Date{2026, 10, 25}, "2026-10-25T00:00:00Z"},
		{"America/Havana", Date{2026, 11, 1}, "2026-11-01T04:00:00Z"},
	} {
		loc, err := time.LoadLocation(c.zone)
		if err != nil {
			t.Fatal(err)
		}
		w := WindowOf(c.d, loc)
		if got := w.Start.UTC().Format(time.RFC3339); got != c.want {
			t.Errorf("%s in %s starts at %s, want %s (the first of its two midnights)", c.d, c.zone, got, c.want)
		}
		if h := w.End.Sub(w.Start); h != 25*time.Hour {
			t.Errorf("%s in %s lasts %s, want 25h", c.d, c.zone, h)
		}
	}
	// A date the zone skipped altogether (Samoa crossed the date line
	// after 2011-12-29) has an empty window: nothing was confirmed on it.
	apia, err := time.LoadLocation("Pacific/Apia")
	if err != nil {
		t.Fatal(err)
	}
	if w := WindowOf(Date{2011, 12, 30}, apia); !w.End.Equal(w.Start) {
		t.Fatalf("Apia's 2011-12-30 lasts %s", w.End.Sub(w.Start))
	}
}

func TestDates(t *testing.T) {
	// Each refused with what is wrong: a date in the form but not in the
	// calendar says which part ("want YYYY-MM-DD" of 2026-13-01 left the
	// operator looking at a date in that form: an operator's review).
	for bad, why := range map[string]string{"2026-13-01": "month out of range", "2026-02-30": "day out of range",
		"20261123": "want YYYY-MM-DD", "": "want YYYY-MM-DD", "2026-1-1": "want YYYY-MM-DD", "2026-11-23x": "want YYYY-MM-DD"} {
		if _, err := ParseDate(bad); err == nil || !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
			t.Errorf("ParseDate(%q): %v, want an error naming it and saying %q", bad, err, why)
		}
	}
	d := Date{2026, 12, 31}
	if got := d.AddDays(1).String(); got != "2027-01-01" {
		t.Errorf("AddDays: %s", got)
	}
	if d.Compact() != "20261231" || !d.Before(d.AddDays(1)) || d.AddDays(1).Before(d) {
		t.Error("Compact/Before")
	}
}

func TestShards(t *testing.T) {
	for _, bad := range []string{"", "1", "4/4", "-1/4", "0/0", "a/b", "1/2/3"} {
		if _, err := ParseShard(bad); err == nil {
			t.Errorf("ParseShard(%q) accepted", bad)
		}
	}
	// Every seller belongs to exactly one shard, and the shards are used.
	const n = 4
	per := make([]int, n)
	for i := 0; i < 10000; i++ {
		seller := "S" + time.Duration(i).String()
		owners := 0
		for j := 0; j < n; j++ {
			if (Shard{j, n}).Owns(seller) {
				owners++
				per[j]++
			}
		}
		if owners != 1 {
			t.Fatalf("seller %s owned by %d shards", seller, owners)
		}
	}
	for j, c := range per {
		if c < 2000 || c > 3000 {
			t.Errorf("shard %d holds %d of 10000 sellers: badly balanced", j, c)
		}
	}
	if !(Shard{0, 4}).Owns("") || (Shard{1, 4}).Owns("") {
		t.Error("rows without a seller must go to shard 0 only")
	}
}
