package httpcall

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClipCutsBetweenCharacters(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"short", "short"},
		{strings.Repeat("a", 200), strings.Repeat("a", 200)},
		{strings.Repeat("a", 201), strings.Repeat("a", 200) + "..."},
		// 3-byte characters: 66 of them fit in 200 bytes (198).
		{strings.Repeat("订", 80), strings.Repeat("订", 66) + "..."},
		{"a\xff\xfeb", "a\uFFFDb"},
		// NUL: valid UTF-8, refused by PostgreSQL's text all the same.
		{"no\x00pe", "no\uFFFDpe"},
	} {
		got := Clip(tc.in)
		if got != tc.want || !utf8.ValidString(got) || strings.ContainsRune(got, 0) {
			t.Errorf("Clip(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
