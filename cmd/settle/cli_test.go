package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/pipeline"
)

// invoke runs the command line in-process with the environment env (and no
// database unless the arguments name one).
func invoke(env map[string]string, args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	err := run(context.Background(), append([]string{"settle"}, args...), func(k string) string { return env[k] }, &out, &errb)
	code = exitCode(err, &errb)
	return out.String(), errb.String(), code
}

// TestCLIManners is not parallel: it sets the process environment (the
// parallel tests wait until it is restored).
func TestCLIManners(t *testing.T) {
	cases := []struct {
		name     string
		env      map[string]string
		args     []string
		code     int
		want     []string // in stdout or stderr
		dontWant []string
	}{
		{name: "version", args: []string{"version"}, code: 0, want: []string{"settle ", "revision ", "go1."}},
		{name: "unknown command", args: []string{"sttle"}, code: 2, want: []string{`unknown command "sttle"`}},
		{name: "unknown help topic", args: []string{"help", "sttle"}, code: 2, want: []string{"No help topic for 'sttle'"}},
		{name: "unknown subcommand", args: []string{"sellers", "unbind"}, code: 2, want: []string{"No help topic for 'unbind'"}},
		{name: "a date without --date", args: []string{"run", "2026-11-23"}, code: 2, want: []string{`run takes no arguments, got "2026-11-23"`, "--date"}},
		// A word before the flags it hid: "-o json" was an argument, and
		// status printed text (an operator's review).
		{name: "a stray word before flags", args: []string{"status", "--date", "2026-11-23", "today", "-o", "json"}, code: 2,
			want: []string{`status takes no arguments, got "today"`}},
		{name: "a stray word of a subcommand", args: []string{"sellers", "sync", "now"}, code: 2,
			want: []string{`sellers sync takes no arguments, got "now"`}},
		{name: "a stray word after migrate", args: []string{"migrate", "up"}, code: 2,
			want: []string{`migrate takes no arguments, got "up"`}},
		{name: "a command of the ledger alone lists no platform database", args: []string{"status", "--help"}, code: 0,
			want: []string{"--database-url"}, dontWant: []string{"--source-database-url"}},
		{name: "exit codes in --help", args: []string{"--help"}, code: 0,
			want: []string{"EXIT CODES", "3   input", "4   finished", "75  another run", "version"}},
		{name: "exit codes and groups in run --help", args: []string{"run", "--help"}, code: 0,
			want: []string{"EXIT CODES", "Infinia Pay\n", "WeChat Pay\n", "Pay Protocol\n", "Database\n", "Dates\n",
				"$SETTLE_FROM", "$SETTLE_TO", "$SETTLE_DRY_RUN", "$SETTLE_OUT", "$SETTLE_SKIP_CHANNEL", "$SETTLE_SOURCE_STANDBY_OF_PRIMARY"},
			dontWant: []string{"SETTLE_REEXTRACT"}},
		{name: "unknown flag named with two dashes", args: []string{"run", "--rule", "x"}, code: 2,
			want: []string{"flag provided but not defined: --rule"}, dontWant: []string{" -rule"}},
		{name: "flag without its value", args: []string{"run", "--until"}, code: 2,
			want: []string{"flag needs an argument: --until"}},
		{name: "flag with a bad value", args: []string{"seed", "--orders", "many"}, code: 2,
			want: []string{"for flag --orders"}},
		{name: "unknown channel to skip", args: []string{"run", "--date", "2026-11-23", "--rules", "x.csv", "--skip-channel", "alipay"},
			code: 2, want: []string{"--skip-channel", `"alipay"`}},
		{name: "a channel to skip from the environment", env: map[string]string{"SETTLE_SKIP_CHANNEL": "wechatpay,alipay"},
			args: []string{"run", "--date", "2026-11-23"}, code: 2, want: []string{"--skip-channel", `"alipay"`}},
		{name: "SETTLE_SHARDS without JOB_COMPLETION_INDEX", env: map[string]string{"SETTLE_SHARDS": "4"},
			args: []string{"run", "--date", "2026-11-23", "--rules", "x.csv"}, code: 2, want: []string{"SETTLE_SHARDS=4 is set without JOB_COMPLETION_INDEX"}},
		{name: "JOB_COMPLETION_INDEX without SETTLE_SHARDS", env: map[string]string{"JOB_COMPLETION_INDEX": "2"},
			args: []string{"run", "--date", "2026-11-23", "--rules", "x.csv"}, code: 2, want: []string{"JOB_COMPLETION_INDEX=2 is set without SETTLE_SHARDS"}},
		{name: "SETTLE_SHARDS that is no number", env: map[string]string{"JOB_COMPLETION_INDEX": "2", "SETTLE_SHARDS": "x"},
			args: []string{"run", "--date", "2026-11-23", "--rules", "x.csv"}, code: 2, want: []string{"JOB_COMPLETION_INDEX/SETTLE_SHARDS", `"2/x"`}},
		{name: "--from and --to from the environment", env: map[string]string{"SETTLE_FROM": "2026-11-23", "SETTLE_TO": "2026-11-21"},
			args: []string{"run"}, code: 2, want: []string{"2026-11-23 is after 2026-11-21"}},
		{name: "--dry-run from the environment", env: map[string]string{"SETTLE_DRY_RUN": "true"},
			args: []string{"run", "--date", "2026-11-23", "--reextract"}, code: 2, want: []string{"--reextract", "--dry-run"}},
	}
	for _, tc := range cases {
		// urfave/cli reads flags' variables from the process environment.
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		stdout, stderr, code := invoke(tc.env, tc.args...)
		for k := range tc.env {
			os.Unsetenv(k)
		}
		all := stdout + stderr
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d:\n%s", tc.name, code, tc.code, all)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(all, w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.name, w, all)
			}
		}
		for _, w := range tc.dontWant {
			if strings.Contains(all, w) {
				t.Errorf("%s: output has %q:\n%s", tc.name, w, all)
			}
		}
		if code == 2 && strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%s: a usage error takes one line on stderr, got:\n%s", tc.name, stderr)
		}
	}
}

func TestSkipChannelParsing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   []string
		want string
		err  bool
	}{
		{nil, "", false},
		{[]string{"wechatpay"}, "wechatpay", false},
		{[]string{"infiniapay, payprotocol", "wechatpay"}, "infiniapay payprotocol wechatpay", false},
		{[]string{"alipay"}, "", true},
	} {
		got, err := parseSkipChannels(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("%v: err %v", tc.in, err)
			continue
		}
		if err != nil {
			if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "--skip-channel") ||
				!strings.Contains(err.Error(), "want infiniapay, payprotocol or wechatpay") {
				t.Errorf("%v: %v, want a usage error naming --skip-channel", tc.in, err)
			}
			continue
		}
		var names []string
		for _, spec := range channelSpecs() {
			if got[spec.Channel] {
				names = append(names, string(spec.Channel))
			}
		}
		if strings.Join(names, " ") != tc.want {
			t.Errorf("%v: %v, want %s", tc.in, names, tc.want)
		}
	}
}

func TestVersionLine(t *testing.T) {
	t.Parallel()
	info := func(version string, settings ...string) *debug.BuildInfo {
		b := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/settlekit/settle", Version: version}}
		for i := 0; i+1 < len(settings); i += 2 {
			b.Settings = append(b.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return b
	}
	for _, tc := range []struct {
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		{info("v1.4.0", "vcs.revision", "0123abcd", "vcs.time", "2026-11-30T10:00:00Z"), true, "settle v1.4.0 revision 0123abcd (2026-11-30T10:00:00Z) go1.26.8"},
		{info("(devel)", "vcs.revision", "0123abcd", "vcs.modified", "true"), true, "settle (devel) revision 0123abcd+modified go1.26.8"},
		{info(""), true, "settle (devel) revision unknown go1.26.8"},
		{nil, false, "settle (no build information)"},
	} {
		if got := versionLine(tc.info, tc.ok); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestUsageErrorIsOneLine(t *testing.T) {
	t.Parallel()
	var lines []error
	for i := 0; i < 500; i++ {
		lines = append(lines, fmt.Errorf("trade file %d: Infinia refused our signature", i))
	}
	err := pipeline.E(pipeline.KindUsage, "Infinia Pay", errors.Join(lines...))
	var stderr bytes.Buffer
	if code := exitCode(fmt.Errorf("stage upload: %w", err), &stderr); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	got := stderr.String()
	if strings.Count(got, "\n") != 1 || len(got) > 1100 || !strings.Contains(got, "trade file 0: Infinia refused our signature") ||
		!strings.Contains(got, "499 more lines") {
		t.Fatalf("want one short line naming the first and counting the rest, got %d bytes:\n%s", len(got), got)
	}
}

func TestBackfillGoesOnPastDatesNeedingAPerson(t *testing.T) {
	t.Parallel()
	dates := []pipeline.Date{{Year: 2026, Month: 11, Day: 21}, {Year: 2026, Month: 11, Day: 22}, {Year: 2026, Month: 11, Day: 23}, {Year: 2026, Month: 11, Day: 24}}
	kinds := map[string]pipeline.Kind{"ok": -1, "1": pipeline.KindFailed, "2": pipeline.KindUsage, "3": pipeline.KindInput,
		"4": pipeline.KindNeedsPerson, "75": pipeline.KindLocked}
	for _, tc := range []struct {
		outcomes string // per date
		ran      int    // dates attempted
		code     int
		want     []string
	}{
		{"ok ok ok ok", 4, 0, nil},
		{"ok 4 ok 4", 4, 4, []string{"2 of 4 dates need a person: 2026-11-22, 2026-11-24"}},
		{"4 4 4 4", 4, 4, []string{"4 of 4 dates"}},
		{"ok 4 1 ok", 3, 1, []string{"backfill stopped at 2026-11-23", "2026-11-22 need a person"}},
		{"2 ok ok ok", 1, 2, []string{"backfill stopped at 2026-11-21"}},
		{"ok ok 3 ok", 3, 3, []string{"backfill stopped at 2026-11-23"}},
		{"ok 75 ok ok", 2, 75, []string{"backfill stopped at 2026-11-22"}},
	} {
		outcomes := strings.Fields(tc.outcomes)
		ran := 0
		err := backfill(dates, func(d pipeline.Date) error {
			k := kinds[outcomes[ran]]
			ran++
			if k < 0 {
				return nil
			}
			return pipeline.Errorf(k, "run "+d.String(), "outcome %d", k.ExitCode())
		})
		var stderr bytes.Buffer
		code := exitCode(err, &stderr)
		if ran != tc.ran || code != tc.code {
			t.Errorf("%s: ran %d dates, exit %d; want %d, %d (%v)", tc.outcomes, ran, code, tc.ran, tc.code, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%s: %q lacks %q", tc.outcomes, stderr.String(), w)
			}
		}
	}
}

func TestDemoSelfCheckTellsSentAgainFromNewlyDue(t *testing.T) {
	t.Parallel()
	rs := func(key, subject, state string, sends int64) demoEffect {
		return demoEffect{Key: key, Kind: infiniapay.KindRevenueShare, Subject: subject, State: state, Sends: sends}
	}
	before := []demoEffect{rs("k1", "S1/USD", "succeeded", 1), rs("k2", "S2/USD", "unknown", 1), rs("k3", "S3/USD", "planned", 0)}
	for _, tc := range []struct {
		name  string
		after []demoEffect
		again int
		due   int
	}{
		{"nothing new", before, 0, 0},
		{"a payment confirmed in between is paid: newly due",
			append(append([]demoEffect(nil), before...), rs("k4", "S4/USD", "succeeded", 1)), 0, 1},
		{"a planned request never sent goes out: newly due",
			[]demoEffect{before[0], before[1], rs("k3", "S3/USD", "succeeded", 1)}, 0, 1},
		{"an unknown outcome resent: sent again",
			[]demoEffect{before[0], rs("k2", "S2/USD", "succeeded", 2), before[2]}, 1, 0},
		{"a paid subject paid again under a new key: sent again",
			append(append([]demoEffect(nil), before...), rs("k5", "S1/USD", "succeeded", 1)), 1, 0},
	} {
		again, due := sentAgain(before, tc.after)
		if len(again) != tc.again || due != tc.due {
			t.Errorf("%s: again %v, due %d; want %d again, %d due", tc.name, again, due, tc.again, tc.due)
		}
	}
}
