package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
)

// TestJSONLogsOfAFailingRun runs a day with too many bad rows (exit 3) with
// JSON logs, as in a pod: every line must be JSON, durations in seconds,
// and the last line one ERROR carrying the exit code, the first subjects
// and their count.
func TestJSONLogsOfAFailingRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(100, 20)
	var out, errb bytes.Buffer
	getenv := func(k string) string {
		if k == "SETTLE_LOG_FORMAT" {
			return "json"
		}
		return ""
	}
	err := run(context.Background(), sendingPastMemory(plainTextArgs([]string{"settle", "run", "--database-url", e.url, "--date", testDate,
		"--rules", e.rules, "--out", e.reports})), getenv, &out, &errb)
	if code := exitCode(err, &errb); code != 3 {
		t.Fatalf("exit %d, want 3\n%s%s", code, out.String(), errb.String())
	}
	if errb.Len() != 0 {
		t.Fatalf("plain text on stderr next to the JSON log: %q", errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var last map[string]any
	sawTook := false
	for _, line := range lines {
		last = nil
		if err := json.Unmarshal([]byte(line), &last); err != nil {
			t.Fatalf("a log line is not JSON: %q", line)
		}
		if _, ok := last["took"]; ok {
			t.Fatalf("a duration in nanoseconds: %s", line)
		}
		if v, ok := last["took_seconds"]; ok {
			if _, isNum := v.(float64); !isNum {
				t.Fatalf("took_seconds is not a number: %s", line)
			}
			sawTook = true
		}
		if last["level"] == "ERROR" && line != lines[len(lines)-1] {
			t.Fatalf("an ERROR line before the last one: %s", line)
		}
	}
	if !sawTook {
		t.Errorf("no stage line with took_seconds:\n%s", out.String())
	}
	subjects, _ := last["subjects"].([]any)
	count, _ := last["count"].(float64)
	if last["level"] != "ERROR" || last["exit_code"] != 3.0 || last["date"] != testDate || count < 20 || len(subjects) == 0 || len(subjects) > 3 ||
		!strings.Contains(last["error"].(string), "rows rejected") {
		t.Fatalf("last line %v, want ERROR with exit_code 3, the date, the count of rejects and the first subjects", last)
	}
}

// TestTheLastLineOfAShardNamesIt: the pods of the sharded nightly run (an
// Indexed Job) all run the same date, and the last line of one that failed
// said the date alone: which shard failed was nowhere in the line a log
// search finds (found by the review of the operations side). It says the
// shard.
func TestTheLastLineOfAShardNamesIt(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	getenv := func(k string) string {
		if k == "SETTLE_LOG_FORMAT" {
			return "json"
		}
		return ""
	}
	err := run(context.Background(), plainTextArgs([]string{"settle", "run", "--database-url", "postgres://127.0.0.1:1/none?sslmode=disable",
		"--date", testDate, "--shard", "1/2", "--rules", filepath.Join(t.TempDir(), "missing.csv"), "--out", t.TempDir()}), getenv, &out, &errb)
	if code := exitCode(err, &errb); code != 2 {
		t.Fatalf("exit %d, want 2\n%s%s", code, out.String(), errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatalf("the last line is not JSON: %q", lines[len(lines)-1])
	}
	if last["msg"] != "settle failed" || last["date"] != testDate || last["shard"] != "1/2" {
		t.Errorf("last line %v, want settle failed with the date and shard 1/2", last)
	}
}

// TestJSONLogLinesInSeconds: the JSON handler writes durations in seconds
// under a _seconds key, and a failure that does not fail the run (metrics)
// is a JSON WARN line, not plain text.
func TestJSONLogLinesInSeconds(t *testing.T) {
	var out, errb bytes.Buffer
	c := &config{getenv: func(string) string { return "" }, stdout: &out, stderr: &errb, json: true,
		log: slog.New(jsonLogHandler(&out))}
	c.logger().Info("stage", "took", 1500*time.Millisecond, "left", 4375*time.Second)
	c.warn("metrics", errors.New("push refused"))
	c.note("rejected rows are listed in x", "path", "x")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || errb.Len() != 0 {
		t.Fatalf("want 3 JSON lines on stdout, nothing on stderr:\n%s\n%s", out.String(), errb.String())
	}
	var first, second map[string]any
	if json.Unmarshal([]byte(lines[0]), &first) != nil || json.Unmarshal([]byte(lines[1]), &second) != nil {
		t.Fatalf("not JSON:\n%s", out.String())
	}
	if first["took_seconds"] != 1.5 || first["left_seconds"] != 4375.0 || first["took"] != nil {
		t.Fatalf("durations: %v", first)
	}
	if second["level"] != "WARN" || second["error"] != "push refused" {
		t.Fatalf("warning: %v", second)
	}
}

// TestUnknownLogFormatIsRefused: SETTLE_LOG_FORMAT=JSON (or any word but
// json and text) was taken as text, silently: a pod's log lost its JSON
// lines, the last one with exit_code among them (found by an operator's
// review). It is configuration, exit 2, on one line naming the variable.
func TestUnknownLogFormatIsRefused(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"JSON", "xml"} {
		stdout, stderr, code := invoke(map[string]string{"SETTLE_LOG_FORMAT": f}, "version")
		if code != 2 || !strings.Contains(stderr, "SETTLE_LOG_FORMAT") || !strings.Contains(stderr, "want json or text") ||
			strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("SETTLE_LOG_FORMAT=%s: exit %d, want 2 and one line naming it:\n%s%s", f, code, stdout, stderr)
		}
	}
	for _, f := range []string{"", "json", "text"} {
		if _, stderr, code := invoke(map[string]string{"SETTLE_LOG_FORMAT": f}, "version"); code != 0 {
			t.Errorf("SETTLE_LOG_FORMAT=%q: exit %d, want 0:\n%s", f, code, stderr)
		}
	}
}

// TestAFailureOfOneCauseIsOneLine: the ledger's database gone mid-stage
// failed each of the stage's workers with the same error, and the run's
// last line repeated it once per worker; it says it once, with the count,
// in the JSON log as on a terminal, with what to do.
func TestAFailureOfOneCauseIsOneLine(t *testing.T) {
	t.Parallel()
	dial := errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	err := fmt.Errorf("stage distribute: %w", errors.Join(errors.New("driver: bad connection"), dial, dial, dial, dial))
	want := "stage distribute: driver: bad connection\ndial tcp 127.0.0.1:5432: connect: connection refused (4 times)"
	// And says whether running again is safe: money may have moved.
	hint := "state is recorded; running the same command again is safe: a request whose answer was not recorded is asked about by its key before anything is sent again"
	var text bytes.Buffer
	if code := exitCode(err, &text); code != 1 || text.String() != "settle: "+want+"\nsettle: "+hint+"\n" {
		t.Fatalf("exit %d, %q; want 1, %q and the hint", code, text.String(), want)
	}
	var out bytes.Buffer
	c := &config{json: true, log: slog.New(jsonLogHandler(&out))}
	_ = c.logFailure(err)
	var last map[string]any
	if jerr := json.Unmarshal(out.Bytes(), &last); jerr != nil || last["error"] != want || last["hint"] != hint {
		t.Fatalf("JSON line %s (%v); want the error %q and the hint", out.String(), jerr, want)
	}
}

// TestBadRulesFileListsEveryProblem: a rules file with several problems
// showed only its first, as a terminal's line and as the JSON log's
// error ("(2 more lines not shown)"): the operator fixed it one run at a
// time. Every problem is listed, each with its line and field, at most
// the parser's 20 and a line saying it stopped.
func TestBadRulesFileListsEveryProblem(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := dir + "/rules.csv"
	body := "seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from\n" +
		",,,abc,0,0,0,2026-01-01\n" +
		",,,500,x,0,0,2026-01-01\n" +
		"S1,,,99999,0,0,0,2026-01-01\n"
	if err := os.WriteFile(bad, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"run", "--date", "2026-11-23", "--rules", bad, "--database-url", "postgres://127.0.0.1:1/none?sslmode=disable"}
	want := []string{`rules.csv:2: field rate_bps: must be an integer from 0 to 10000, got "abc"`,
		`rules.csv:3: field fixed_minor:`, `rules.csv:4: field rate_bps:`}

	_, stderr, code := invoke(map[string]string{"SETTLE_LOG_FORMAT": "text"}, args...)
	if code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("text: stderr lacks %q:\n%s", w, stderr)
		}
	}

	stdout, _, code := invoke(map[string]string{"SETTLE_LOG_FORMAT": "json"}, args...)
	var last struct {
		Error    string   `json:"error"`
		Problems []string `json:"problems"`
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || code != 2 {
		t.Fatalf("exit %d, last line %q: %v", code, lines[len(lines)-1], err)
	}
	if len(last.Problems) != 3 || !strings.Contains(last.Error, want[0]) {
		t.Fatalf("JSON: error %q, problems %q; want the first in error and all 3 in problems", last.Error, last.Problems)
	}
	for i, w := range want {
		if !strings.Contains(last.Problems[i], w) {
			t.Errorf("JSON problem %d %q, want %q", i, last.Problems[i], w)
		}
	}

	// A file of nothing but bad lines: the parser's 20, and where it stopped.
	body = "seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from\n" +
		strings.Repeat(",,,abc,0,0,0,2026-01-01\n", 40)
	if err := os.WriteFile(bad, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, _ = invoke(map[string]string{"SETTLE_LOG_FORMAT": "text"}, args...)
	if n := strings.Count(stderr, "field rate_bps"); n != 20 || !strings.Contains(stderr, "stopped after 20 errors") {
		t.Fatalf("%d problems listed, want 20 and where it stopped:\n%s", n, stderr)
	}
}

// endlessStore is a run's ledger that records its stages and not its end:
// FinishRun fails with finishErr (the database gone as the run ended, or
// the lock lost, which the ledger refuses the record for).
type endlessStore struct{ finishErr error }

func (endlessStore) Lock(context.Context, pipeline.RunKey) (func() error, error) {
	return func() error { return nil }, nil
}

func (endlessStore) OpenRun(_ context.Context, key pipeline.RunKey, _ pipeline.RunParams) (*pipeline.Run, bool, error) {
	return &pipeline.Run{ID: 7, Key: key, State: pipeline.RunRunning}, true, nil
}

func (endlessStore) CompleteStage(context.Context, int64, pipeline.Stage) error { return nil }

func (s endlessStore) FinishRun(context.Context, int64, pipeline.RunState, string) error {
	return s.finishErr
}

// TestTheLastLineOfARunWhoseEndIsNotRecorded: a run whose lock was lost,
// or whose ledger could not record how it ended, ended with the hint
// "state is recorded; running the same command again is safe": the
// ledger had the run stopped (or done from before), and a second run of
// the date may have held its lock. The last line says what is recorded
// and what to do, in the JSON log as on a terminal; a failure whose end
// was recorded keeps the hint it had.
func TestTheLastLineOfARunWhoseEndIsNotRecorded(t *testing.T) {
	t.Parallel()
	lost := fmt.Errorf("the lock of run 2026-11-23 was lost (its database session ended: driver: bad connection): nothing more is sent; run the date again: %w",
		pipeline.ErrLockLost)
	down := errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	for _, tc := range []struct {
		name             string
		stage, finishErr error
		hint             string
	}{
		{"lock lost", fmt.Errorf("revenue_share RS-1: %w", lost), lost, hintLockLost},
		{"end not recorded", fmt.Errorf("read the day: %w", down), down, hintEndNotRecorded},
		{"end recorded", fmt.Errorf("read the day: %w", down), nil, failureHint(errors.New("any exit 1"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := &pipeline.Runner{Store: endlessStore{tc.finishErr}, Stages: map[pipeline.Stage]pipeline.StageFunc{
				pipeline.StageExtract: func(context.Context, *pipeline.Run) (string, error) { return "", tc.stage },
			}}
			_, err := r.Execute(context.Background(), pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole},
				pipeline.RunParams{}, pipeline.StageReconcile)
			var text bytes.Buffer
			if code := exitCode(err, &text); code != 1 || !strings.HasSuffix(text.String(), "settle: "+tc.hint+"\n") {
				t.Fatalf("exit %d, %q; want 1 and the hint %q", code, text.String(), tc.hint)
			}
			var out bytes.Buffer
			c := &config{json: true, log: slog.New(jsonLogHandler(&out))}
			_ = c.logFailure(err)
			var last map[string]any
			if jerr := json.Unmarshal(out.Bytes(), &last); jerr != nil || last["hint"] != tc.hint || last["exit_code"] != float64(1) {
				t.Fatalf("JSON line %s (%v); want exit 1 and the hint %q", out.String(), jerr, tc.hint)
			}
			if tc.finishErr != nil && strings.Contains(tc.hint, "state is recorded") {
				t.Fatalf("the hint of a run whose end is not recorded says it is: %q", tc.hint)
			}
		})
	}
}

// TestEveryFailingLineHasAHint: the last JSON line of a failure, which may
// be all the on-call reads of a pod's log, says what to do whatever the
// exit code: those of exit 2, 3, 4 and 75 carried exit_code and the error
// alone (found by an SRE's review). A particular hint (a privilege refused,
// exit 2) still wins over the exit code's.
func TestEveryFailingLineHasAHint(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		code int
		want string // a word of the hint
	}{
		{pipeline.E(pipeline.KindFailed, "stage upload", errors.New("connection reset")), 1, "running the same command again is safe"},
		{pipeline.E(pipeline.KindUsage, "--rules", errors.New("no such file")), 2, "fix what the error names"},
		{pipeline.E(pipeline.KindInput, "transform", errors.New("40 of 100 rows rejected")), 3, "--reextract"},
		{pipeline.E(pipeline.KindNeedsPerson, "reconcile", errors.New("2 mismatches")), 4, "run the date again"},
		{pipeline.E(pipeline.KindLocked, "run 2026-11-23", pipeline.ErrLocked), 75, "once it has ended"},
		{fmt.Errorf("stage upload: %w", &pq.Error{Code: "42501", Message: "permission denied for table items"}), 2, hintPrivilege},
	} {
		var out bytes.Buffer
		c := &config{json: true, log: slog.New(jsonLogHandler(&out))}
		_ = c.logFailure(tc.err)
		var last map[string]any
		if err := json.Unmarshal(out.Bytes(), &last); err != nil {
			t.Fatalf("%v: not one JSON line: %q", tc.err, out.String())
		}
		hint, _ := last["hint"].(string)
		if last["exit_code"] != float64(tc.code) || !strings.Contains(hint, tc.want) {
			t.Errorf("%v: exit_code %v, hint %q; want %d and a hint saying %q", tc.err, last["exit_code"], hint, tc.code, tc.want)
		}
	}
}

// TestStageLogLinesNeedingAPersonCarryTheirSubjects: a stage's NEEDS A
// PERSON line named its subjects in its message alone; only the run's last
// line ("settle failed") had them as fields, so a log search for a seller
// or an order held by a stage had to match text (found by a review). The
// stage's line carries the first subjects and their count as fields, and
// its message as it was (people grep it). Here a seller with no Infinia
// Pay seller id: its orders held, the run ends 4.
func TestStageLogLinesNeedingAPersonCarryTheirSubjects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "120", "--sellers", "6", "--seed", "5")
	var held string
	if err := e.db.Get(&held, `SELECT s.seller_id FROM sellers s JOIN orders o ON o.seller_id = s.seller_id AND o.provider = 'infiniapay'
		GROUP BY 1 ORDER BY count(*), 1 LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	e.db.MustExec(`UPDATE sellers SET infinia_seller_id = NULL WHERE seller_id = $1`, held)
	sim := e.sim(nil, 6, nil, 1_000_000_000_00)
	args := e.infiniaArgs(sim)
	full := append([]string{"settle", args[0], "--database-url", e.url}, args[1:]...)
	full = append(full, "--skip-channel", "wechatpay", "--skip-channel", "payprotocol")
	var out, errb bytes.Buffer
	getenv := func(k string) string {
		if k == logFormatEnv {
			return "json"
		}
		return ""
	}
	err := run(context.Background(), plainTextArgs(full), getenv, &out, &errb)
	if code := exitCode(err, &errb); code != 4 {
		t.Fatalf("exit %d, want 4 (a seller's orders held)\n%s%s", code, out.String(), errb.String())
	}
	var stage map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("a log line is not JSON: %q", line)
		}
		if msg, _ := l["msg"].(string); strings.HasPrefix(msg, "NEEDS A PERSON") && strings.Contains(msg, "seller "+held) {
			stage = l
		}
	}
	if stage == nil {
		t.Fatalf("no stage line NEEDS A PERSON naming seller %s:\n%s", held, out.String())
	}
	subjects, _ := stage["subjects"].([]any)
	count, _ := stage["count"].(float64)
	if stage["level"] != "WARN" || stage["stage"] == nil || count < 1 || len(subjects) == 0 || len(subjects) > 3 || len(subjects) > int(count) {
		t.Fatalf("stage line %v: want WARN with its stage, the first subjects (3 at most) and their count", stage)
	}
	named := false
	for _, s := range subjects {
		str, _ := s.(string)
		if !strings.Contains(stage["msg"].(string), str) {
			t.Errorf("subject %q is not in the line's message %q", str, stage["msg"])
		}
		named = named || strings.Contains(str, held)
	}
	if !named {
		t.Errorf("subjects %v do not name the held seller %s", subjects, held)
	}
}
