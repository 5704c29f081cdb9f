package load

import (
	"encoding/csv"
	"strings"
	"testing"
)

// FuzzSafeCells writes a report row of any cells: read back as CSV, each
// cell is the one written, or it made text for a spreadsheet (a leading
// "'") that a loader undoes by the README's rule (one leading "'" dropped
// from a cell whose leading "'"s are followed by a formula character);
// no cell read back begins, after its "'"s, with a formula character
// unless it is a number or begins with a "'".
func FuzzSafeCells(f *testing.F) {
	for _, row := range [][3]string{{"O1", "S1", "12.30"}, {"=1+1", "-5", "'=2+2"}, {"S1;=cmd|' /C calc'!A0", "a\tb", "@x"},
		{"-", "\r=1", "''-"}, {"", " =1", `say "hi"`}, {"-9.00", "+5", "\t=1"}} {
		f.Add(row[0], row[1], row[2])
	}
	unescape := func(s string) string {
		rest := strings.TrimLeft(s, "'")
		if rest != s && rest != "" && strings.ContainsRune("=+-@\t\r", rune(rest[0])) {
			return s[1:]
		}
		return s
	}
	f.Fuzz(func(t *testing.T, a, b, c string) {
		// A CSV cell cannot carry "\r\n": encoding/csv reads it back as
		// "\n", whatever formulaSafe did (a cell "\r\n=1", made text as
		// "'\r\n=1", reads back "'\n=1", which the loader's rule leaves
		// as it is; left alone, see the report).
		row := []string{a, b, c}
		for i := range row {
			for strings.Contains(row[i], "\r\n") {
				row[i] = strings.ReplaceAll(row[i], "\r\n", "\n")
			}
		}
		var out strings.Builder
		cw := csv.NewWriter(&out)
		w := safeCells{cw, &out}
		if err := w.Write(append([]string(nil), row...)); err != nil {
			t.Fatal(err)
		}
		cw.Flush()
		r := csv.NewReader(strings.NewReader(out.String()))
		got, err := r.Read()
		if err != nil {
			t.Fatalf("row %q written %q does not read back: %v", row, out.String(), err)
		}
		if len(got) != len(row) {
			t.Fatalf("row %q written %q reads back as %q", row, out.String(), got)
		}
		for i, cell := range got {
			if want := row[i]; unescape(cell) != want {
				t.Fatalf("cell %q written %q reads back as %q, %q to a loader", row[i], out.String(), cell, unescape(cell))
			}
			rest := strings.TrimLeft(cell, "'")
			if rest != "" && strings.ContainsRune("=+-@\t\r", rune(rest[0])) && !strings.HasPrefix(cell, "'") && !isNumber(cell) {
				t.Fatalf("cell %q reads back as the formula %q", row[i], cell)
			}
		}
	})
}
