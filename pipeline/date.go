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

// Time returns where d begins in loc, as PostgreSQL dates 'D 00:00':
// midnight, or, where a daylight-saving change skips midnight
// (America/Santiago, America/Havana), the instant the clocks jump to.
// time.Date leaves a missing midnight's resolution unspecified (it gives
// 23:00 of the day before), which would date that hour wrong. A midnight
// that happens twice (clocks set back from 01:00 to 00:00: Asia/Gaza and
// Asia/Amman until 2021, no zone since) is its second occurrence, as
// PostgreSQL reads 'D 00:00' there: the first hour from 00:00, before
// the clocks go back, is the last of the day before. Either way
// consecutive dates' windows meet (WindowOf).
func (d Date) Time(loc *time.Location) time.Time {
	t := time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, loc)
	if y, m, day := t.Date(); y != d.Year || m != d.Month || day != d.Day {
		_, jump := t.ZoneBounds()
		return jump
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
