package pipeline

import (
	"strings"
	"testing"
)

// FuzzParseDate checks --date and the rules' effective_from: a date that
// parses is written back (String) exactly as given, and names a day of
// the calendar; anything else is an error quoting what was given.
func FuzzParseDate(f *testing.F) {
	for _, s := range []string{"2026-11-23", "2024-02-29", "2023-02-29", "2026-13-01", "2026-1-01", "+2026-11-23", " 2026-11-23",
		"2026-11-23 ", "٢٠٢٦-11-23", "20261123", "0000-01-01", "9999-12-31", "2026-11-23T00:00:00Z", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDate(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "date ") {
				t.Fatalf("ParseDate(%q): %v does not quote the date", s, err)
			}
			return
		}
		if d.String() != s || d.AddDays(1).AddDays(-1) != d {
			t.Fatalf("ParseDate(%q) = %s", s, d)
		}
		if again, err := ParseDate(d.Compact()[:4] + "-" + d.Compact()[4:6] + "-" + d.Compact()[6:]); err != nil || again != d {
			t.Fatalf("ParseDate(%q) = %s, its compact form reads as %s, %v", s, d, again, err)
		}
	})
}
