package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline/ledger"
)

// TestControlSafe: control characters but newline and tab come out as
// visible escapes, a C1 control split across two writes too; other text,
// multi-byte runes starting with 0xC2 included, is unchanged.
func TestControlSafe(t *testing.T) {
	var b bytes.Buffer
	w := controlSafe(&b)
	for _, s := range []string{"reason: \x1b[31mred\x1b[0m\tok\n", "bell\a del\x7f csi \u009b2J ", "\xc2", "\x9b end, ", "\xc2", "\xa9 copyright, ¢ cent\n"} {
		if n, err := w.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	want := `reason: \x1b[31mred\x1b[0m` + "\tok\n" + `bell\x07 del\x7f csi \u009b2J \u009b end, ` + "© copyright, ¢ cent\n"
	if got := b.String(); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

// TestStatusEscapesControlCharacters: a reason holding an escape sequence
// (a provider's words, say) is printed by settle status as text, not sent
// to the terminal as a sequence.
func TestStatusEscapesControlCharacters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", "2026-11-21", "--orders", "20", "--sellers", "2", "--bad-rows", "2")
	e.mustSettle("run", "--date", "2026-11-21", "--rules", e.rules, "--out", e.reports, "--until", "transform", "--max-reject-ratio", "1")
	e.db.MustExec(`UPDATE settle.rejects SET reason = E'refused \x1b[2J by the provider'`)
	out := e.mustSettle("status", "--date", "2026-11-21")
	if strings.Contains(out, "\x1b") || !strings.Contains(out, `refused \x1b[2J by the provider`) {
		t.Fatalf("status:\n%q", out)
	}
}

// TestRejectListsEscapeControlCharacters: the run's lists of rejects (the
// platform's and the providers' words) escape control characters too.
func TestRejectListsEscapeControlCharacters(t *testing.T) {
	var b bytes.Buffer
	reasons := []ledger.RejectReason{{Reason: "refused \x1b[2J", Count: 1, Sample: "O\x07"}}
	printRejects(&b, reasons, 10)
	printProviderRejects(&b, reasons, 10)
	if out := b.String(); strings.Contains(out, "\x1b") || strings.Count(out, `refused \x1b[2J (e.g. O\x07)`) != 2 {
		t.Fatalf("%q", out)
	}
}
