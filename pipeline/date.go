package pipeline

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Date is a business date (a calendar day, no time zone of its own).
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// ParseDate parses YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	var pe *time.ParseError
	if errors.As(err, &pe) && strings.HasSuffix(pe.Message, " out of range") {
		// In the form, not in the calendar: "2026-13-01" is "month out
		// of range", "2026-02-30" "day out of range".
		return Date{}, fmt.Errorf("date %q: %s", s, strings.TrimPrefix(pe.Message, ": "))
	}
	if err != nil {
		return Date{}, fmt.Errorf("date %q: want YYYY-MM-DD", s)
	}
	return DateOf(t), nil
}

// DateOf returns the calendar date of t in t's location.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{y, m, d}
}

// String formats d as YYYY-MM-DD.
func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day) }

// Compact formats d as YYYYMMDD, for file names and keys.
func (d Date) Compact() string { return fmt.Sprintf("%04d%02d%02d", d.Year, d.Month, d.Day) }

// AddDays returns the date n days after d.
func (d Date) AddDays(n int) Date {
	return DateOf(time.Date(d.Year, d.Month, d.Day+n, 0, 0, 0, 0, time.UTC))
}

// Before reports whether d is earlier than o.
func (d Date) Before(o Date) bool { return d.Time(time.UTC).Before(o.Time(time.UTC)) }

// IsZero reports whether d is the zero Date.
func (d Date) IsZero() bool { return d == Date{} }

// Time returns where d begins in loc: the first instant whose date in loc
// is d. That is midnight; where a daylight-saving change skips midnight
// (America/Santiago, America/Havana in spring) the instant the clocks jump
// to, as PostgreSQL dates 'D 00:00'; and where midnight happens twice
// (clocks set back from 01:00 to 00:00: Atlantic/Azores and America/Havana
// every autumn, Asia/Amman and Asia/Gaza until 2021) its first
// occurrence, before the clocks go back, so that the hour from it, which
// reads d, is d's. time.Date leaves both resolutions unspecified: it gave
// 23:00 of the day before for a skipped midnight, and for a repeated one
// the first occurrence west of UTC but the second east of it (Amman),
// which put that hour in the day before's window and made the nightly
// run's yesterday name today. PostgreSQL reads a repeated 'D 00:00' as its
// second occurrence (while it dates the hour before it d, as here). Either
// way consecutive dates' windows meet (WindowOf).
func (d Date) Time(loc *time.Location) time.Time {
	t := time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, loc)
	if y, m, day := t.Date(); y != d.Year || m != d.Month || day != d.Day {
		_, jump := t.ZoneBounds()
		return jump
	}
	// A repeated midnight: the clocks went back less than the set-back
	// before t, so the same wall clock was read that much earlier.
	start, _ := t.ZoneBounds()
	if start.IsZero() {
		return t
	}
	_, before := start.Add(-time.Nanosecond).Zone()
	_, after := t.Zone()
	if back := time.Duration(before-after) * time.Second; back > 0 && t.Sub(start) < back {
		if first := t.Add(-back); DateOf(first.In(loc)) == d {
			return first
		}
	}
	return t
}

// Window is the half-open interval [Start, End) of confirmation times that
// belong to a business date.
type Window struct {
	Start time.Time // inclusive
	End   time.Time // exclusive
}

// WindowOf returns [D 00:00, D+1 00:00) in loc, each bound Date.Time of
// its day, so that the window of D ends where that of D+1 begins: an
// instant is in exactly one date's window. Across a daylight-saving change
// the window is 23 or 25 hours long (23.5 or 24.5 in Australia/Lord_Howe),
// as the calendar day is.
func WindowOf(d Date, loc *time.Location) Window {
	return Window{Start: d.Time(loc), End: d.AddDays(1).Time(loc)}
}

// Contains reports whether t falls in the window.
func (w Window) Contains(t time.Time) bool {
	return !t.Before(w.Start) && t.Before(w.End)
}
