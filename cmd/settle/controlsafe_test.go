package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/settlekit/settle/internal/paysim"
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
	want := `reason: \x1b[31mred\x1b[0m` + "\tok\n" + `bell\x07 del\u007f csi \u009b2J \u009b end, ` + "© copyright, ¢ cent\n"
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

// TestReceiversEscapeControlCharacters: settle receivers prints WeChat
// Pay's words (a receiver's review state and fail reason, free text) as
// text, as settle status does, not as sequences to the operator's
// terminal. Every command's text on stdout goes through controlSafe.
func TestReceiversEscapeControlCharacters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim, err := paysim.Start(paysim.Options{Dir: t.TempDir(), ShareKeys: true, KeyBits: testKeyBits})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	c := sim.Config
	sim.WeChat.SetReceiver("1900000042", "MERCHANT_ID", c.WeChatReceiverAccount, "REJECTED\x1b]0;owned\x07\x1b[2J")
	out, code := e.raw("settle", "receivers", "status", "--wechat-url", c.WeChatURL, "--wechat-mchid", c.WeChatMchID, "--wechat-serial", c.WeChatSerial,
		"--wechat-private-key-file", c.WeChatKeyFile, "--wechat-platform-key-file", c.WeChatPlatformKeyFile,
		"--wechat-platform-serial", c.WeChatPlatformSerial, "--wechat-receiver-account", c.WeChatReceiverAccount,
		"--wechat-receiver-name", c.WeChatReceiverName, "1900000042")
	if code != 0 || strings.ContainsAny(out, "\x1b\x07") || !strings.Contains(out, `REJECTED\x1b]0;owned\x07\x1b[2J`) {
		t.Fatalf("exit %d: %q", code, out)
	}
}

// TestStatusJSONStaysJSONWithControlCharacters: settle status -o json
// goes through controlSafe too, whose escapes are JSON's: a reason with
// DEL and a C1 control reads back as it was.
func TestStatusJSONStaysJSONWithControlCharacters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", "2026-11-21", "--orders", "20", "--sellers", "2", "--bad-rows", "2")
	e.mustSettle("run", "--date", "2026-11-21", "--rules", e.rules, "--out", e.reports, "--until", "transform", "--max-reject-ratio", "1")
	const reason = "refused \x7f \u009b2J \x1b[2J by the provider"
	e.db.MustExec(`UPDATE settle.rejects SET reason = $1`, reason)
	var out bytes.Buffer
	if err := run(context.Background(), plainTextArgs([]string{"settle", "status", "--database-url", e.url, "--date", "2026-11-21", "-o", "json"}),
		func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsAny(out.Bytes(), "\x7f\x1b") || bytes.Contains(out.Bytes(), []byte("\u009b")) {
		t.Fatalf("raw control characters in %q", out.String())
	}
	var v any
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatalf("not JSON: %v\n%q", err, out.String())
	}
	if !strings.Contains(fmt.Sprint(v), reason) {
		t.Fatalf("the reason does not read back: %v", v)
	}
}

// TestLogLinesEscapeControlCharacters: JSON escapes C0 controls but not
// DEL nor C1; a provider's words in a log line (a pod's log read on a
// terminal) come out escaped too, the line the same JSON.
func TestLogLinesEscapeControlCharacters(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var out bytes.Buffer
		cfg := &config{getenv: func(k string) string {
			if k == logFormatEnv {
				return format
			}
			return ""
		}, stdout: &out, stderr: io.Discard}
		const reason = "refused \x7f \u009b2J \x1b[2J"
		cfg.logger().Warn("rejected by the provider", "reason", reason)
		if bytes.ContainsAny(out.Bytes(), "\x7f\x1b") || bytes.Contains(out.Bytes(), []byte("\u009b")) {
			t.Fatalf("%s: raw control characters in %q", format, out.String())
		}
		if format != "json" {
			continue
		}
		var line struct{ Reason string }
		if err := json.Unmarshal(out.Bytes(), &line); err != nil || line.Reason != reason {
			t.Fatalf("%q: %+v, %v", out.String(), line, err)
		}
	}
}

// TestTheErrorACommandEndsWithEscapesControlCharacters: the error a
// command ends with, printed on stderr (on a terminal, where the logs are
// text), carries the providers' words; an escape sequence in them reached
// the terminal as one, as stdout's did before it was escaped (found by
// the review of the security fixes' docs).
func TestTheErrorACommandEndsWithEscapesControlCharacters(t *testing.T) {
	var stderr bytes.Buffer
	if code := exitCode(fmt.Errorf("revenue share RS-1: Infinia said \x1b]0;pwned\x07 \u009b31m"), &stderr); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if s := stderr.String(); strings.ContainsAny(s, "\x1b\x07\u009b") || !strings.Contains(s, `\x1b]0;pwned\x07`) {
		t.Errorf("stderr %q: want its control characters escaped", s)
	}
}

// TestTheLiveProgressLineRedrawsOnATerminal: on a terminal, the live
// progress line redraws itself with a carriage return and ESC [K; escaped
// with the rest of stderr, every run on a terminal printed
// "\x0d\x1b[Kupload: 2 of 7, ..." as text, one frame after another on
// one line (found by the operator's review of the README). The rest of
// stderr stays escaped.
func TestTheLiveProgressLineRedrawsOnATerminal(t *testing.T) {
	tty, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0) // a character device, as a terminal is
	if err != nil {
		t.Skip(err)
	}
	defer tty.Close()
	var stderr bytes.Buffer
	cfg := &config{getenv: func(string) string { return "" }, stdout: tty, stderr: &stderr}
	cfg.logger()
	cfg.escapeOutput()
	if cfg.live == nil {
		t.Fatal("no live progress line on a terminal")
	}
	fmt.Fprint(cfg.live, "\r\033[Kupload: 2 of 7")
	fmt.Fprint(cfg.stderr, "|Infinia said \x1b]0;pwned\x07")
	if got, want := stderr.String(), "\r\033[Kupload: 2 of 7|Infinia said \\x1b]0;pwned\\x07"; got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
}

// TestRejectListsKeepAReasonToALine: an order number rejected for a
// newline or a tab in it is the example of its reason quoted, as the
// reason quotes it: printed as it is, it broke the list's line in two, the
// second passing for a line of settle's own (found by a trial of odd ids).
func TestRejectListsKeepAReasonToALine(t *testing.T) {
	var b bytes.Buffer
	printRejects(&b, []ledger.RejectReason{
		{Reason: `order_no contains the control character U+000A: "o\n  stages: done"`, Count: 1, Sample: "o\n  stages: done"},
		{Reason: `order_no contains the control character U+0009: "o\tx"`, Count: 1, Sample: "o\tx"},
		{Reason: "unknown currency", Count: 1, Sample: "O 1"},
	}, 10)
	out := b.String()
	if strings.Count(out, "\n") != 4 || strings.Contains(out, "\t") ||
		!strings.Contains(out, `(e.g. "o\n  stages: done")`) || !strings.Contains(out, `(e.g. "o\tx")`) || !strings.Contains(out, "(e.g. O 1)") {
		t.Fatalf("%q", out)
	}
}
