package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/seed"
	settlesql "github.com/settlekit/settle/sql"
)

// held is what the process holds at one moment: its goroutines, its open
// file descriptors (the simulator's side of each connection among them:
// it runs in the process), and the sessions of the test's database but
// the one asking (the ledger's and the platform's pools: one database in
// these tests).
type held struct {
	goroutines, fds, sessions int
}

func (h held) String() string {
	return fmt.Sprintf("%d goroutines, %d fds, %d database sessions", h.goroutines, h.fds, h.sessions)
}

// holding reads what the process holds now. e.db must keep one
// connection at most (SetMaxOpenConns(1)): the one asking.
func (e *env) holding() held {
	e.t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		e.t.Skipf("no /proc/self/fd: %v", err)
	}
	var n int
	if err := e.db.Get(&n, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
		e.t.Fatal(err)
	}
	return held{runtime.NumGoroutine(), len(fds), n}
}

// stageSampler is a run's output that reads what the process holds as each
// stage's line is written (the stage's end), and hands every line to
// onLine.
type stageSampler struct {
	e      *env
	onLine func(line string)
	mu     sync.Mutex
	out    bytes.Buffer
	at     []string // "stage: held"
}

var stageEnd = regexp.MustCompile(`stage=(\w+) .*took=`)

func (s *stageSampler) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.out.Write(p)
	for _, line := range strings.Split(string(p), "\n") {
		if m := stageEnd.FindStringSubmatch(line); m != nil {
			s.at = append(s.at, fmt.Sprintf("%s: %v", m[1], s.e.holding()))
		}
		if s.onLine != nil && line != "" {
			s.onLine(line)
		}
	}
	return len(p), nil
}

// resourceDay seeds a day of orders and starts the simulator with its
// providers' side of it, its faults from in (rules added later play from
// then on).
func (e *env) resourceDay(orders, sellers int, in *fault.Injector) *paysim.Sim {
	e.t.Helper()
	e.mustSettle("seed", "--date", testDate, "--orders", fmt.Sprint(orders), "--sellers", fmt.Sprint(sellers), "--bad-rows", "0", "--seed", "3")
	sim, err := paysim.Start(paysim.Options{Dir: e.t.TempDir(), ShareKeys: true, KeyBits: testKeyBits, Faults: in})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { sim.Close() })
	for i := 1; i <= sellers; i++ {
		sim.Infinia.SetBinding(seed.InfiniaID(i), "ACTIVE")
	}
	for _, cur := range paysim.Currencies {
		sim.Infinia.SetBalance(cur, paysim.DefaultBalance)
	}
	sh, _ := time.LoadLocation("Asia/Shanghai")
	d, _ := pipeline.ParseDate(testDate)
	if _, err := sim.SeedDay(context.Background(), e.db, settlesql.SourceQuery, pipeline.WindowOf(d, sh)); err != nil {
		e.t.Fatal(err)
	}
	return sim
}

// runSampled runs the date against sim in-process with ctx, as the
// CronJob's process would, reading what the process holds at each
// stage's end.
func (e *env) runSampled(ctx context.Context, sim *paysim.Sim, onLine func(string)) (*stageSampler, int) {
	e.t.Helper()
	s := &stageSampler{e: e, onLine: onLine}
	args := append([]string{"settle", "run", "--database-url", e.url, "--date", testDate, "--rules", e.rules, "--out", e.reports,
		"--work-dir", filepath.Join(e.reports, "work"), "--provider-wait", "5s", "--provider-poll", "20ms", "--provider-rate", "0"}, sim.Config.Args()...)
	err := run(ctx, sendingPastMemory(plainTextArgs(args)), func(string) string { return "" }, s, s)
	return s, exitCode(err, s)
}

// TestARunLeavesNothingOpen: a run of a day against every provider - to
// its end, its providers dropping every connection for a second after the
// upload stage, or told to stop (SIGTERM) there - leaves nothing running or open in the
// process once it returns: no goroutine, no file descriptor, no session
// of the ledger's or the platform's pools; and no file in the work
// directory (every trade file was accepted, README "For loaders") nor a
// temporary one under the reports. The CronJob's process exits after
// its run, but the tests run settle in-process, hundreds of runs in one
// binary: before, each run left its providers' HTTP clients' idle
// connections open (2 fds and 3 goroutines each, in a test, whose
// simulator is in the process), 45 after a day of 60 orders and 146
// after one of 600, until the transports' 90 s idle timeout or the
// simulator's close.
func TestARunLeavesNothingOpen(t *testing.T) {
	for _, c := range []struct {
		name  string
		codes []int // the exits it may end with
		// at is called with the cancel of the run's context and the
		// simulator's faults when the upload stage's line is written.
		at func(cancel context.CancelCauseFunc, in *fault.Injector)
	}{
		{"to its end", []int{4}, nil}, // 4: Pay Protocol payments the seed left pending
		{"providers down for a second after upload", []int{1, 4}, func(_ context.CancelCauseFunc, in *fault.Injector) {
			// Every connection dropped unanswered: the questions of that
			// second are asked again by the clients' retries on new
			// connections; 3 sends in a row unanswered (never sent again
			// blindly) end the stage, exit 1, when the second fell on
			// the sends.
			in.Add(fault.Rule{Endpoint: "*", Kind: fault.Reset, Prob: 1})
			time.AfterFunc(time.Second, in.Clear)
		}},
		{"SIGTERM after upload", []int{1}, func(cancel context.CancelCauseFunc, _ *fault.Injector) {
			cancel(signalCause("terminated signal received"))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.db.SetMaxOpenConns(1)
			in := fault.New(1)
			sim := e.resourceDay(60, 12, in)
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			var once sync.Once
			onLine := func(line string) {
				if c.at != nil && strings.Contains(line, "stage=upload ") && strings.Contains(line, "took=") {
					once.Do(func() { c.at(cancel, in) })
				}
			}
			ignore := goleak.IgnoreCurrent() // the simulator's, the test's pools
			before := e.holding()
			s, code := e.runSampled(ctx, sim, onLine)
			t.Logf("before the run: %v; at the stages' ends: %s", before, strings.Join(s.at, "; "))
			if !slices.Contains(c.codes, code) {
				t.Fatalf("exit %d, want one of %v:\n%s", code, c.codes, s.out.String())
			}
			if c.at != nil && strings.HasPrefix(c.name, "providers down") && in.Played(fault.Reset) == 0 {
				t.Fatal("no connection was dropped: the test proves nothing")
			}
			goleak.VerifyNone(t, ignore)
			after := e.holding()
			for deadline := time.Now().Add(5 * time.Second); (after.fds > before.fds || after.sessions > before.sessions) && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
				after = e.holding()
			}
			t.Logf("after: %v", after)
			if after.fds > before.fds || after.sessions > before.sessions {
				t.Errorf("before the run: %v; after it returned: %v; open now:\n%s", before, after, openFDs())
			}
			// Every trade file was accepted by the upload stage's end: none
			// stays in the work directory, and no temporary file (a trade
			// file's, a report's) anywhere under the reports.
			work := filepath.Join(e.reports, "work", testDate)
			if _, err := os.Stat(work); err != nil {
				t.Errorf("no work directory of the date: %v", err)
			}
			left, err := filepath.Glob(filepath.Join(work, "*"))
			if err != nil || len(left) > 0 {
				t.Errorf("left in the work directory: %v %v", left, err)
			}
			hidden, _ := filepath.Glob(filepath.Join(work, ".*"))
			if len(hidden) > 0 {
				t.Errorf("temporary files left in the work directory: %v", hidden)
			}
			filepath.WalkDir(e.reports, func(p string, d os.DirEntry, err error) error {
				if err == nil && strings.HasPrefix(d.Name(), ".") {
					t.Errorf("temporary file left: %s", p)
				}
				return err
			})
		})
	}
}

// openFDs lists the process's open file descriptors.
func openFDs() string {
	fds, _ := os.ReadDir("/proc/self/fd")
	var b strings.Builder
	for _, f := range fds {
		l, _ := os.Readlink(filepath.Join("/proc/self/fd", f.Name()))
		fmt.Fprintf(&b, "%s -> %s\n", f.Name(), l)
	}
	return b.String()
}
