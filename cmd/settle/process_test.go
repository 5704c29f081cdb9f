package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
)

// These tests run the real binary as separate processes: two runs racing for
// one date, and a run killed with SIGKILL midway.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/settle once per test process.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "settle-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "settle")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("build settle: %v", buildErr)
	}
	return binPath
}

func (e *env) command(args ...string) *exec.Cmd {
	if !e.pastMemory && len(args) > 0 && args[0] == "run" {
		args = append(slices.Clip(args), "--"+flagSendPastMemory) // as env.raw gives it
	}
	cmd := exec.Command(binary(e.t), args...)
	cmd.Env = append(append(os.Environ(), dbEnv(e.url)...), "SETTLE_RULES="+e.rules, "SETTLE_OUT="+e.reports,
		"SETTLE_SKIP_CHANNEL=wechatpay,payprotocol") // the simulated day has neither WeChat transactions nor Pay Protocol payments
	return cmd
}

// unpaced is the environment of a process's run whose test does not
// depend on how fast requests go to Infinia and Pay Protocol:
// --provider-rate 0, as infiniaArgs gives the in-process runs. At the
// default of 20 a second, a run of a 300-order day against the
// simulator waited about 10 s on its token bucket alone (its uploads'
// statuses, revenue shares and their queries, reconcile's questions).
// A test whose run must still be sending when it is stopped or killed
// keeps the default.
var unpaced = []string{"SETTLE_PROVIDER_RATE=0"}

func exitStatus(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestTwoRunsStartedTogetherOneProceedsOneExits75(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 100k orders")
	}
	t.Parallel()
	e := newEnv(t)
	if err := seedByProcess(binary(t), e.url, 100000, 0); err != nil {
		t.Fatal(err)
	}
	e.mustSettle("migrate")
	var outs [2]bytes.Buffer
	cmds := [2]*exec.Cmd{}
	for i := range cmds {
		cmds[i] = e.command("run", "--date", testDate, "--until", "transform")
		cmds[i].Stdout, cmds[i].Stderr = &outs[i], &outs[i]
	}
	for _, c := range cmds {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	codes := []int{exitStatus(cmds[0].Wait()), exitStatus(cmds[1].Wait())}
	sort.Ints(codes)
	if codes[0] != 0 || codes[1] != 75 {
		t.Fatalf("exit codes %v, want [0 75]\nfirst:\n%s\nsecond:\n%s", codes, &outs[0], &outs[1])
	}
	e.checkEveryOrderOnce()
}

func TestKilledMidwayAndRunAgainCompletes(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 150k orders")
	}
	t.Parallel()
	for _, tc := range []struct {
		name  string
		copyQ string // the COPY in flight when the process is killed
	}{
		{"during extract", "COPY source_rows%"},
		{"during the pass of extract and transform", "COPY items%"},
		{"during transform", "COPY item_stage%"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSeededEnv(t, 150000, 40)
			cmd := e.command("run", "--date", testDate, "--until", "transform")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(2 * time.Minute)
			for {
				if n := e.count(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE $1`, tc.copyQ); n > 0 {
					break
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatalf("never saw %s in flight:\n%s", tc.copyQ, &out)
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond) // well into the COPY
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			if n := e.count(`SELECT count(*) FROM settle.items`); n != 0 {
				t.Fatalf("%d items visible from a killed transform: the stage must be atomic", n)
			}
			// The dead process's backend goes when PostgreSQL notices; until
			// then the lock may still be held (exit 75): try again.
			var code int
			var again bytes.Buffer
			for i := 0; i < 50; i++ {
				again.Reset()
				rerun := e.command("run", "--date", testDate, "--until", "transform")
				rerun.Stdout, rerun.Stderr = &again, &again
				if code = exitStatus(rerun.Run()); code != 75 {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if code != 0 {
				t.Fatalf("re-run exit %d:\n%s", code, &again)
			}
			e.checkEveryOrderOnce()
			if n := e.count(`SELECT attempts FROM settle.runs`); n < 2 {
				t.Fatalf("attempts %d, want the resumed run counted", n)
			}
		})
	}
}

func TestSIGTERMDuringDistributionStopsPromptlyAndResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	t.Parallel()
	e := newEnv(t)
	e.seed(300, 0)
	const balance = 1_000_000_000_00
	// Every revenue share takes a while to answer: the run is surely in
	// the middle of distributing when it is told to stop.
	sim := e.sim(fault.New(1, fault.Rule{Endpoint: "revenue-sharing/request", Kind: fault.Latency, Prob: 1, Delay: 300 * time.Millisecond}), 30, nil, balance)
	args := append([]string{"run", "--date", testDate, "--work-dir", filepath.Join(e.reports, "work"), "--provider-poll", "20ms", "--provider-wait", "1m"}, sim.Config.Args()...)
	cmd := e.command(args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for e.count(`SELECT count(*) FROM pg_tables WHERE schemaname = 'settle' AND tablename = 'effects'`) == 0 ||
		e.count(`SELECT count(*) FROM settle.effects WHERE kind = 'revenue_share' AND sends > 0`) < 2 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("never started distributing:\n%s", &out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopped := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	code := exitStatus(cmd.Wait())
	if took := time.Since(stopped); took > 20*time.Second {
		t.Fatalf("took %s to stop", took)
	}
	if code != 1 || !strings.Contains(out.String(), "interrupted") {
		t.Fatalf("exit %d, want 1 (resumable):\n%s", code, &out)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE kind = 'revenue_share' AND state = 'succeeded'`); n == int64(len(sim.Infinia.RevenueShares())) && n > 50 {
		t.Fatalf("the stop did not stop anything (%d shares)", n)
	}
	again := e.command(args...)
	again.Env = append(again.Env, unpaced...) // the rest, at once
	var out2 bytes.Buffer
	again.Stdout, again.Stderr = &out2, &out2
	if code := exitStatus(again.Run()); code != 0 {
		t.Fatalf("re-run exit %d:\n%s", code, &out2)
	}
	e.checkPaidOnce(sim, balance)
}

// TestNoSecretInOutputOrReports runs a whole day as a pod would (JSON logs
// on stdout), with a failure on the way, and searches everything it wrote -
// output, reports, trade files - for key material and the database password.
func TestNoSecretInOutputOrReports(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	t.Parallel()
	e := newEnv(t)
	e.seed(300, 8)
	sim := e.sim(fault.New(2, fault.Rule{Endpoint: "revenue-sharing/request", Kind: fault.Lost, Calls: []int{1}}), 30, map[int]bool{3: true}, 1_000_000_000_00)
	const password = "hunter2-settle-db-password"
	url := strings.Replace(e.url, "postgres@", "postgres:"+password+"@", 1)
	work := filepath.Join(e.reports, "work")
	var all bytes.Buffer
	for i := 0; i < 2; i++ {
		cmd := e.command(append([]string{"run", "--date", testDate, "--work-dir", work, "--provider-poll", "20ms", "--provider-wait", "20s"}, sim.Config.Args()...)...)
		cmd.Env = append(append(cmd.Env, dbEnv(url)...), unpaced...)
		cmd.Stdout, cmd.Stderr = &all, &all
		cmd.Run()
	}
	if !strings.Contains(all.String(), `"run_id"`) || !strings.Contains(all.String(), `"stage":"distribute"`) {
		t.Fatalf("expected JSON log lines with run_id and stage:\n%s", all.String())
	}
	var secrets []string
	for _, f := range []string{sim.Config.OurKeyFile, sim.Config.SFTPKeyFile, filepath.Join(filepath.Dir(sim.Config.OurKeyFile), "infinia_private.pem")} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if len(line) >= 40 && !strings.HasPrefix(line, "-----") {
				secrets = append(secrets, line[:40])
			}
		}
	}
	secrets = append(secrets, password)
	haystacks := map[string]string{"output": all.String()}
	// settle status shows what the runs recorded (last errors, the
	// providers' words), in text and in JSON.
	for _, format := range []string{"text", "json"} {
		cmd := e.command("status", "--date", testDate, "-o", format)
		cmd.Env = append(cmd.Env, dbEnv(url)...)
		out, err := cmd.CombinedOutput()
		if err != nil || len(out) == 0 {
			t.Fatalf("status -o %s: %v\n%s", format, err, out)
		}
		haystacks["status -o "+format] = string(out)
	}
	filepath.Walk(e.reports, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			b, _ := os.ReadFile(path)
			haystacks[path] = string(b)
		}
		return nil
	})
	if len(haystacks) < 3 {
		t.Fatalf("too little was written to search: %v", len(haystacks))
	}
	for where, text := range haystacks {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s contains secret material %q...", where, s[:10])
			}
		}
	}
}
