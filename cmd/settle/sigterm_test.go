package main

import (
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
	settlesql "github.com/settlekit/settle/sql"
)

// These tests stop the real binary as Kubernetes does (SIGTERM, SIGKILL
// after terminationGracePeriodSeconds: 60 s in the manifests, 30 s by
// default) at points where a wait could be one the stop does not end: a
// provider holding its answer, an SFTP server and the ledger's database
// answering nothing, the platform's source query, the date's lock. Each
// must end well within the grace, with its last line saying it was
// interrupted (exit 1, which the Job retries), and its re-run must pay
// each seller once.

// stopBound is what a test allows a stop that should take a second or
// two: far over it, and well under Kubernetes' default 30 s.
const stopBound = 20 * time.Second

// stopped is how a process ended after its signal.
type stopped struct {
	code int
	took time.Duration // from the first signal to its exit
	out  string
}

// lastLine is the process's last output line.
func (s stopped) lastLine() string {
	lines := strings.Split(strings.TrimSpace(s.out), "\n")
	return lines[len(lines)-1]
}

// signalWhen starts cmd, waits for ready (given its output so far), then sends it sigs, one every
// 200 ms (a second SIGTERM, say), and waits for its end; a process still
// running 40 s after the first is killed (code -1).
func (e *env) signalWhen(cmd *exec.Cmd, ready func(out string) bool, sigs ...os.Signal) stopped {
	e.t.Helper()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !ready(out.String()) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			e.t.Fatalf("never got to the point to stop it at:\n%s", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		for i, s := range sigs {
			if i > 0 {
				time.Sleep(200 * time.Millisecond)
			}
			cmd.Process.Signal(s)
		}
	}()
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return stopped{exitStatus(err), time.Since(start), out.String()}
	case <-time.After(40 * time.Second):
		cmd.Process.Kill()
		<-done
		return stopped{-1, time.Since(start), out.String()}
	}
}

// checkInterrupted checks that s ended within bound, exit 1, its last line
// the JSON failure line saying it was interrupted and to run it again.
func (e *env) checkInterrupted(s stopped, bound time.Duration) {
	e.t.Helper()
	e.checkStopped(s, bound, "interrupted; state is recorded, run again to resume")
}

// checkStopped checks that s ended 1 within bound, its last line's hint
// being hint.
func (e *env) checkStopped(s stopped, bound time.Duration, hint string) {
	e.t.Helper()
	last := s.lastLine()
	if s.code != 1 || s.took > bound || !strings.Contains(last, `"exit_code":1`) || !strings.Contains(last, `"hint":"`+hint+`"`) {
		e.t.Fatalf("stopped: exit %d after %s (want 1 within %s), last line:\n%s\noutput:\n%s", s.code, s.took.Round(time.Millisecond), bound, last, s.out)
	}
	e.t.Logf("stopped in %s: %s", s.took.Round(time.Millisecond), last)
}

// syncBuffer is a bytes.Buffer the process's output and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}

// freezer forwards TCP connections to a server until it freezes (Freeze,
// or by itself once freezeAfter bytes went to the server on one
// connection): then nothing more goes either way and nothing new is
// answered, every connection kept open - a server, or the network to it,
// that hangs without a word. Close drops every connection.
type freezer struct {
	ln          net.Listener
	target      string
	freezeAfter int64
	frozen      chan struct{}
	once        sync.Once
	mu          sync.Mutex
	conns       []net.Conn
}

func newFreezer(t *testing.T, target string, freezeAfter int64) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target, freezeAfter: freezeAfter, frozen: make(chan struct{})}
	go f.serve()
	t.Cleanup(f.Close)
	return f
}

func (f *freezer) Addr() string { return f.ln.Addr().String() }

func (f *freezer) Freeze() { f.once.Do(func() { close(f.frozen) }) }

func (f *freezer) Frozen() bool {
	select {
	case <-f.frozen:
		return true
	default:
		return false
	}
}

func (f *freezer) Close() {
	f.ln.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
}

func (f *freezer) keep(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conns = append(f.conns, c)
}

func (f *freezer) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.keep(c)
		if f.Frozen() {
			continue // accepted, never answered
		}
		go func() {
			s, err := net.Dial("tcp", f.target)
			if err != nil {
				c.Close()
				return
			}
			f.keep(s)
			var sent atomic.Int64
			go f.pipe(s, c, &sent)
			f.pipe(c, s, nil)
		}()
	}
}

// pipe copies src to dst until frozen; sent counts what goes to the
// server (nil: the other way).
func (f *freezer) pipe(dst, src net.Conn, sent *atomic.Int64) {
	buf := make([]byte, 4096)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if sent != nil && f.freezeAfter > 0 && sent.Add(int64(n)) > f.freezeAfter {
				f.Freeze()
			}
			if f.Frozen() {
				return // nothing more goes through; both ends stay open
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err == io.EOF {
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
			}
			return
		}
	}
}

// TestSIGTERMWhileInfiniaHoldsAnAnswer: a revenue share sent, applied by
// Infinia and its answer 2 s away when the run is told to stop. No new
// request goes out, the one on the wire gets its answer recorded (within
// pipeline.InFlightGrace), not left unknown; the run ends 1 saying it was
// interrupted, its metrics say so, its lock is let go (the re-run at once
// is not refused 75), and the re-run pays the rest, each seller once.
func TestSIGTERMWhileInfiniaHoldsAnAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	t.Parallel()
	e := newEnv(t)
	e.seed(90, 0)
	const balance = 1_000_000_000_00
	faults := fault.New(1, fault.Rule{Endpoint: "revenue-sharing/request", Kind: fault.Held, Calls: []int{3}, Delay: 2 * time.Second})
	sim := e.sim(faults, 30, nil, balance)
	metrics := filepath.Join(e.reports, "settle.prom")
	args := append([]string{"run", "--date", testDate, "--work-dir", filepath.Join(e.reports, "work"), "--provider-poll", "20ms", "--provider-wait", "1m",
		"--metrics-file", metrics}, sim.Config.Args()...)
	s := e.signalWhen(e.command(args...), func(string) bool {
		if faults.Played(fault.Held) == 0 {
			return false
		}
		time.Sleep(300 * time.Millisecond) // applied, its answer held
		return true
	}, syscall.SIGTERM)
	e.checkInterrupted(s, stopBound)
	if s.took < time.Second {
		t.Errorf("stopped in %s: the held answer (2 s) was not waited for", s.took)
	}
	// Every request sent has its answer recorded (accepted, processing
	// say: state sent, or final), none is unknown.
	sent := e.count(`SELECT count(*) FROM settle.effects WHERE kind = 'revenue_share' AND sends > 0`)
	if n := e.count(`SELECT count(*) FROM settle.effects f WHERE kind = 'revenue_share' AND sends > 0 AND (state = 'unknown' OR NOT EXISTS (
			SELECT 1 FROM settle.effect_events v WHERE v.effect_id = f.id AND v.cause IN ('answer', 'refused', 'query')))`); n != 0 || sent < 3 {
		t.Errorf("%d of the %d revenue shares sent have no answer recorded: a request on the wire when the run stopped was not let answer", n, sent)
	}
	if b, err := os.ReadFile(metrics); err != nil || !strings.Contains(string(b), "\nsettle_exit_code 1\n") {
		t.Errorf("metrics after the stop (%v): want settle_exit_code 1:\n%s", err, b)
	}
	shares := faults.Calls("revenue-sharing/request")
	again := e.command(args...)
	again.Env = append(again.Env, unpaced...) // the rest, at once
	var out2 syncBuffer
	again.Stdout, again.Stderr = &out2, &out2
	if code := exitStatus(again.Run()); code != 0 {
		t.Fatalf("re-run exit %d (75: the stopped run kept its lock):\n%s", code, out2.String())
	}
	if shares >= len(sim.Infinia.RevenueShares()) {
		t.Errorf("the stopped run sent all %d revenue shares: it went on after the stop", shares)
	}
	e.checkPaidOnce(sim, balance)
}

// TestSIGTERMThenSIGINTStopsAtOnce: told to stop while Infinia holds the
// answer to a revenue share it applied (10 s away), the run waits for it
// (pipeline.InFlightGrace); a second signal (an operator's second
// Ctrl-C) was dropped, silently, and the operator waited with it. It
// ends the run at once, exit 1, its last line saying so, with its
// metrics; the request it left sent and unanswered is asked about by its
// key on the re-run, which pays each seller once.
func TestSIGTERMThenSIGINTStopsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	t.Parallel()
	e := newEnv(t)
	e.seed(90, 0)
	const balance = 1_000_000_000_00
	const held = 10 * time.Second
	faults := fault.New(1, fault.Rule{Endpoint: "revenue-sharing/request", Kind: fault.Held, Calls: []int{3}, Delay: held})
	sim := e.sim(faults, 30, nil, balance)
	metrics := filepath.Join(e.reports, "settle.prom")
	args := append([]string{"run", "--date", testDate, "--work-dir", filepath.Join(e.reports, "work"), "--provider-poll", "20ms", "--provider-wait", "1m",
		"--metrics-file", metrics}, sim.Config.Args()...)
	s := e.signalWhen(e.command(args...), func(string) bool {
		if faults.Played(fault.Held) == 0 {
			return false
		}
		time.Sleep(300 * time.Millisecond) // applied, its answer held
		return true
	}, syscall.SIGTERM, os.Interrupt)
	e.checkStopped(s, held/2, hintSecondSignal)
	if !strings.Contains(s.lastLine(), `"error":"second signal (interrupt)`) {
		t.Errorf("the last line does not say a second signal ended the run:\n%s", s.lastLine())
	}
	if b, err := os.ReadFile(metrics); err != nil || !strings.Contains(string(b), "\nsettle_exit_code 1\n") {
		t.Errorf("metrics after the second signal (%v): want settle_exit_code 1:\n%s", err, b)
	}
	// The held request was left sent, its answer not recorded.
	if n := e.count(`SELECT count(*) FROM settle.effects f WHERE kind = 'revenue_share' AND sends > 0 AND NOT EXISTS (
			SELECT 1 FROM settle.effect_events v WHERE v.effect_id = f.id AND v.cause IN ('answer', 'refused', 'query'))`); n == 0 {
		t.Errorf("no revenue share left sent and unanswered: the run did not end before the held answer")
	}
	again, code := e.untilNot75(unpaced, args...)
	if code != 0 {
		t.Fatalf("re-run exit %d:\n%s", code, again)
	}
	e.checkPaidOnce(sim, balance)
}

// TestSIGTERMWithTheLedgerNotAnswering: the ledger's database answers
// nothing mid-distribution (a partition, a frozen server: the connections
// stay open). Stopping waited on it for ever - lib/pq cancels a statement
// by asking the server on a second connection, and waits for the answer
// on the first - and Kubernetes killed the pod: no last line. Past
// SETTLE_STOP_TIMEOUT (2 s here, 45 s by default) settle ends with its
// last line, exit 1, and its exit code pushed to the Pushgateway (it was
// not: its push comes at the end of the work it left); the re-run, the
// database back, pays each seller once.
func TestSIGTERMWithTheLedgerNotAnswering(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	t.Parallel()
	e := newEnv(t)
	e.seed(90, 0)
	const balance = 1_000_000_000_00
	sim := e.sim(fault.New(1, fault.Rule{Endpoint: "revenue-sharing/request", Kind: fault.Latency, Prob: 1, Delay: 100 * time.Millisecond}), 30, nil, balance)
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	db := newFreezer(t, u.Host, 0)
	u.Host = db.Addr()
	gw := newPushgateway(t)
	args := append([]string{"run", "--date", testDate, "--work-dir", filepath.Join(e.reports, "work"), "--provider-poll", "20ms", "--provider-wait", "1m",
		"--metrics-pushgateway", gw.URL}, sim.Config.Args()...)
	cmd := e.command(args...)
	cmd.Env = append(append(cmd.Env, dbEnv(u.String())...), stopTimeoutEnv+"=2s")
	s := e.signalWhen(cmd, func(string) bool {
		if e.count(`SELECT count(*) FROM pg_tables WHERE schemaname = 'settle' AND tablename = 'effects'`) == 0 ||
			e.count(`SELECT count(*) FROM settle.effects WHERE kind = 'revenue_share' AND sends > 0`) < 3 {
			return false
		}
		db.Freeze()
		time.Sleep(100 * time.Millisecond) // statements in flight, unanswered
		return true
	}, syscall.SIGTERM)
	e.checkStopped(s, stopBound, hintStopTimedOut)
	if !strings.Contains(s.lastLine(), "still stopping 2s later") {
		t.Errorf("the last line does not say the stop timed out:\n%s", s.lastLine())
	}
	// Its metrics were not pushed: the Pushgateway kept the night
	// before's exit code, and the alert never saw the stopped run.
	if v, ok := gw.last("/metrics/job/settle/shard/0-of-1", "settle_exit_code"); !ok || v != 1 {
		t.Errorf("the stop cut short pushed exit code %v (pushed: %v), want 1", v, ok)
	}
	db.Close() // the dead process's connections end: its locks with them
	again, code := e.untilNot75(unpaced, args...)
	if code != 0 {
		t.Fatalf("re-run exit %d:\n%s", code, again)
	}
	e.checkPaidOnce(sim, balance)
}

// TestSIGTERMDuringAnSFTPUploadThatStalls: the SFTP server stops
// answering mid-upload. The upload in flight gets pipeline.InFlightGrace
// (15 s) to answer, then its connection is closed and its outcome left
// unknown; the run ends 1 within the grace, and the re-run finds out what
// became of the file before it uploads anything, and pays each seller
// once.
func TestSIGTERMDuringAnSFTPUploadThatStalls(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	t.Parallel()
	e := newEnv(t)
	e.seed(90, 0)
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 30, nil, balance)
	direct, known := sim.Config.SFTPAddr, sim.Config.KnownHostsFile
	stall := newFreezer(t, direct, 12000) // past the handshake, a few files in
	stallKnown := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(stallKnown, []byte(knownhosts.Line([]string{stall.Addr()}, sim.SFTP.HostKey())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sim.Config.SFTPAddr, sim.Config.KnownHostsFile = stall.Addr(), stallKnown
	flags := []string{"run", "--date", testDate, "--work-dir", filepath.Join(e.reports, "work"), "--provider-poll", "20ms", "--provider-wait", "1m"}
	s := e.signalWhen(e.command(append(flags, sim.Config.Args()...)...), func(string) bool {
		if !stall.Frozen() {
			return false
		}
		time.Sleep(100 * time.Millisecond)
		return true
	}, syscall.SIGTERM)
	e.checkInterrupted(s, pipeline.InFlightGrace+10*time.Second)
	stall.Close()
	sim.Config.SFTPAddr, sim.Config.KnownHostsFile = direct, known
	again, code := e.untilNot75(unpaced, append(flags, sim.Config.Args()...)...)
	if code != 0 {
		t.Fatalf("re-run exit %d:\n%s", code, again)
	}
	e.checkPaidOnce(sim, balance)
	e.checkFilesWhole(sim)
}

// TestSIGINTDuringTheSourceQuery: the run stopped while the platform's
// database answers its source query. The query's cancel ("pq: canceling
// statement due to user request") was read as the database refusing the
// operator's query: exit 2, and podFailurePolicy failed the Job for good.
// It is the interruption: exit 1, and the re-run reads the day.
func TestSIGINTDuringTheSourceQuery(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	t.Parallel()
	e := newEnv(t)
	e.seed(200, 0)
	e.mustSettle("migrate")
	// The built-in query, slow while the table slow_source exists.
	query := filepath.Join(t.TempDir(), "source.sql")
	slow := "SELECT q.* FROM (" + strings.TrimRight(strings.TrimSpace(settlesql.SourceQuery), ";") + ") q,\n" +
		"(SELECT pg_sleep(CASE WHEN to_regclass('public.slow_source') IS NULL THEN 0 ELSE 30 END)) s\n"
	if err := os.WriteFile(query, []byte(slow), 0o600); err != nil {
		t.Fatal(err)
	}
	e.db.MustExec(`CREATE TABLE public.slow_source ()`)
	args := []string{"run", "--date", testDate, "--until", "transform", "--source-query", query}
	s := e.signalWhen(e.command(args...), func(string) bool {
		return e.count(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()`) > 0
	}, os.Interrupt)
	e.checkInterrupted(s, stopBound)
	e.db.MustExec(`DROP TABLE public.slow_source`)
	again, code := e.untilNot75(nil, args...)
	if code != 0 {
		t.Fatalf("re-run exit %d:\n%s", code, again)
	}
	e.checkEveryOrderOnce()
}

// TestSIGTERMWhileWaitingForTheDatesLock: a run waiting (--lock-wait) for
// another process's run of its date ends at once when told to stop,
// having done nothing, interrupted (exit 1) as a stop is in every stage:
// it ended 75, "locked", unlike every other stop.
func TestSIGTERMWhileWaitingForTheDatesLock(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	t.Parallel()
	e := newEnv(t)
	e.seed(50, 0)
	e.mustSettle("migrate")
	l, err := ledger.Open(t.Context(), e.url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d, _ := pipeline.ParseDate(testDate)
	release, err := l.LockDate(t.Context(), d) // another process's run of the date
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	cmd := e.command("run", "--date", testDate, "--until", "transform", "--lock-wait", "10m")
	s := e.signalWhen(cmd, func(out string) bool { return strings.Contains(out, "waiting for it") }, syscall.SIGTERM)
	e.checkInterrupted(s, stopBound)
	if !strings.Contains(s.lastLine(), "stopped while waiting for the date's lock") {
		t.Errorf("the last line does not say it stopped waiting for the lock:\n%s", s.lastLine())
	}
	if n := e.count(`SELECT count(*) FROM settle.runs`); n != 0 {
		t.Fatalf("%d runs opened by a run that never had the date's lock", n)
	}
}
