package main

import "testing"

// TestFirstLineCutsAFailedRunsErrorForTheNightsLine: a run that ended
// failed with several errors joined (a trade file still processing and an
// order held) recorded them one a line; the night names its date with the
// first alone, cut at a rune's start, so that one line names one date.
func TestFirstLineCutsAFailedRunsErrorForTheNightsLine(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 200, "short"},
		{"stage upload: 2 trade files still processing\nstage distribute: held", 200, "stage upload: 2 trade files still processing..."},
		{"aaaaaaaaaé and more", 10, "aaaaaaaaa..."}, // é is bytes 9 and 10
		{"", 200, ""},
	} {
		if got := firstLine(c.in, c.n); got != c.want {
			t.Errorf("firstLine(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
