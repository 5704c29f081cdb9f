// Command benchday is the day benchmark (make bench-day): it seeds a day
// of BENCH_ORDERS orders, starts paysim as a separate process with its
// timing model (latency, processing delays, rate limits) and the day's
// providers' side (--platform-db), settles the day end to end with the
// settle binary, re-runs it, and prints per stage and per provider: wall
// time, requests, achieved rate against the provider's limit, the 429s
// paysim gave, the RSA signing ceiling measured in the same run, the peak
// RSS of each process, and the day's physical bound with the run's ratio
// to it. It fails when paysim answered any request 429 (the job must never
// trip the limits) or a run failed, after printing.
//
// It drives the real binaries (built into a temporary directory) the way
// an operator would, so it measures whatever dispatch the job has. It reads
// the job's JSON log lines (each stage logs took_seconds) and paysim's
// request counters (GET /paysim/requests, sampled every half second).
//
// The database is a throwaway PostgreSQL cluster of its own (as settle
// demo starts), so that the CPU time of its processes - sampled with
// paysim's counters from /proc: the postmaster's own and what its ended
// children used (cutime, cstime) plus its live children's - is the day's
// alone: it prints the database's CPU time per stage and per 1,000
// orders, the ledger's cost of the day.
//
// Environment: BENCH_ORDERS (default 100000), BENCH_SELLERS (default
// orders/50, at least 1000, at most orders), BENCH_SUB_MERCHANTS (the
// WeChat Pay sub-merchants the sellers share; default sellers/10, at least
// 1), BENCH_DATE (2026-11-23), BENCH_PG (a server to use instead of a
// cluster of its own, e.g.
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable; the
// benchmark creates and drops the database settle_benchday on it; the
// database's CPU time is then not measured, unless BENCH_PG_PID names its
// postmaster's process id on this machine: a server started with
// pg_stat_statements, say, to see what each statement costs),
// BENCH_PAYSIM_ARGS (extra paysim flags, e.g. "--upload-delay 2s"; the
// default is --timing internet), BENCH_SETTLE_ARGS (extra flags of settle
// run; without --provider-rate the job sends to Infinia and Pay Protocol at
// their limit in paysim), BENCH_KEEP=1 keeps the work directory and the
// database (on BENCH_PG; a cluster of its own goes with the benchmark).
package main

import (
	"bufio"
	"context"
	"crypto/rsa"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "github.com/lib/pq"

	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/internal/pgserver"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchday:", err)
		os.Exit(1)
	}
}

type bench struct {
	root, dir, settle, paysim string
	dbURL, date               string
	orders, sellers, subs     int
	pgPID                     int // the postmaster whose CPU is measured; 0: not measured
	paysimArgs, settleArgs    []string
	env                       []string // the job's environment (paysim's exports, database, ...)
	requestsURL, stateURL     string
	samples                   []sample
	mu                        sync.Mutex
}

// sample is paysim's counters at an instant.
type sample struct {
	at       time.Time
	total    map[string]int
	tooMany  map[string]int
	requests paysim.Requests
	dbCPU    time.Duration // the measured server's CPU time so far; 0: not measured
}

// runResult is one settle run.
type runResult struct {
	wall     time.Duration
	exit     int
	maxRSS   int64 // KiB
	cpu      time.Duration
	stages   []stageTime
	from, to time.Time
	label    string
	// attention holds the run's NEEDS A PERSON lines (exit 4).
	attention []string
}

type stageTime struct {
	name       string
	took       float64
	start, end time.Time
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
		if err == nil {
			return n
		}
		fmt.Fprintf(os.Stderr, "benchday: %s=%q is not a number; using %d\n", name, v, def)
	}
	return def
}

func envStr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run() error {
	b := &bench{orders: envInt("BENCH_ORDERS", 100_000), date: envStr("BENCH_DATE", "2026-11-23")}
	b.sellers = envInt("BENCH_SELLERS", min(max(1000, b.orders/50), b.orders))
	b.subs = envInt("BENCH_SUB_MERCHANTS", max(1, b.sellers/10))
	b.paysimArgs = strings.Fields(envStr("BENCH_PAYSIM_ARGS", ""))
	b.settleArgs = strings.Fields(os.Getenv("BENCH_SETTLE_ARGS"))
	if b.orders < 1 || b.sellers < 1 || b.subs < 1 {
		return errors.New("BENCH_ORDERS, BENCH_SELLERS and BENCH_SUB_MERCHANTS must be positive")
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		return fmt.Errorf("run from the repository (go env GOMOD: %v)", err)
	}
	b.root = filepath.Dir(strings.TrimSpace(string(out)))
	if b.dir, err = os.MkdirTemp("", "settle-benchday-"); err != nil {
		return err
	}
	keep := os.Getenv("BENCH_KEEP") == "1"
	if !keep {
		defer os.RemoveAll(b.dir)
	}
	fmt.Printf("# day benchmark: %d orders over %d sellers at %d WeChat Pay sub-merchants on %s; work dir %s\n", b.orders, b.sellers, b.subs, b.date, b.dir)

	b.settle, b.paysim = filepath.Join(b.dir, "settle"), filepath.Join(b.dir, "paysim")
	for bin, pkg := range map[string]string{b.settle: "./cmd/settle", b.paysim: "./cmd/paysim"} {
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		cmd.Dir, cmd.Stderr = b.root, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s: %w", pkg, err)
		}
	}
	admin := os.Getenv("BENCH_PG")
	own := admin == ""
	if !own && os.Getenv("BENCH_PG_PID") != "" {
		pid, err := strconv.Atoi(os.Getenv("BENCH_PG_PID"))
		if err != nil {
			return fmt.Errorf("BENCH_PG_PID: %w", err)
		}
		if _, err := clusterCPU(pid); err != nil {
			return fmt.Errorf("BENCH_PG_PID %d: %w", pid, err)
		}
		b.pgPID = pid
		fmt.Printf("# PostgreSQL: the server of BENCH_PG (postmaster %d), its CPU time measured from /proc\n", pid)
	}
	if own {
		srv, err := pgserver.Start(context.Background(), "", nil)
		if err != nil {
			return fmt.Errorf("start a PostgreSQL cluster (or set BENCH_PG): %w", err)
		}
		defer srv.Stop()
		admin, b.pgPID = srv.URL("postgres"), srv.PID()
		fmt.Printf("# PostgreSQL: a cluster of its own (postmaster %d), its CPU time measured from /proc\n", b.pgPID)
	}
	if err := b.createDB(admin); err != nil {
		return err
	}
	if !keep && !own {
		defer dropDB(admin)
	}
	b.env = append(os.Environ(), "SETTLE_DATABASE_URL="+b.dbURL, "SETTLE_LOG_FORMAT=json",
		"SETTLE_WORK_DIR="+filepath.Join(b.dir, "work"), "SETTLE_OUT="+filepath.Join(b.dir, "reports"))
	t0 := time.Now()
	if out, err := b.command(b.settle, "seed", "--date", b.date, "--orders", strconv.Itoa(b.orders), "--sellers", strconv.Itoa(b.sellers),
		"--sub-merchants", strconv.Itoa(b.subs)).CombinedOutput(); err != nil {
		return fmt.Errorf("settle seed: %v\n%s", err, out)
	}
	fmt.Printf("# seeded in %s\n", time.Since(t0).Round(time.Millisecond))

	ps, err := b.startPaysim()
	if err != nil {
		return err
	}
	stopped := false
	stop := func() (int64, error) {
		if stopped {
			return 0, nil
		}
		stopped = true
		ps.Process.Signal(syscall.SIGTERM)
		err := ps.Wait()
		return maxRSS(ps.ProcessState), err
	}
	defer stop()

	if err := b.providerRate(); err != nil {
		return err
	}
	ceilInf, ceilWx, err := b.signingCeilings()
	if err != nil {
		return err
	}
	fmt.Printf("# RSA signing ceiling on this machine (%d cores): Infinia %.0f/s, WeChat Pay %.0f/s\n", runtime.NumCPU(), ceilInf, ceilWx)

	sampling := make(chan struct{})
	samplerDone := make(chan struct{})
	go b.sampler(sampling, samplerDone)
	first, err := b.settleRun("first run")
	if err != nil {
		return err
	}
	second, err := b.settleRun("re-run")
	if err != nil {
		return err
	}
	close(sampling)
	<-samplerDone
	st, err := b.state()
	if err != nil {
		return err
	}
	psRSS, _ := stop()
	if n := b.report(first, second, st, ceilInf, ceilWx, psRSS); n > 0 {
		return fmt.Errorf("the job tripped the providers' rate limits: %d answers 429", n)
	}
	return exitsOK(first, second, b.dir)
}

// exitsOK accepts the two runs' exits: 0, or 4 (needs a person) when the
// run said what for, which the report prints. A day of random orders may
// hold a few (a commission over WeChat Pay's cap on a tiny order): the job
// is right to hold them, and the timings stand. Any other exit fails the
// benchmark.
func exitsOK(first, second runResult, dir string) error {
	for _, r := range []runResult{first, second} {
		if r.exit != 0 && (r.exit != pipeline.KindNeedsPerson.ExitCode() || len(r.attention) == 0) {
			return fmt.Errorf("settle run exited %d, then %d (logs in %s with BENCH_KEEP=1)", first.exit, second.exit, dir)
		}
	}
	for _, r := range []runResult{first, second} {
		for _, a := range r.attention {
			fmt.Printf("# %s ended needing a person (exit 4): %s\n", r.label, oneLine(a, 600))
		}
	}
	return nil
}

func (b *bench) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env, cmd.Dir = b.env, b.dir
	return cmd
}

// createDB makes a fresh database settle_benchday on the server of admin
// (a URL of its database postgres).
func (b *bench) createDB(admin string) error {
	b.dbURL = strings.Replace(admin, "/postgres?", "/settle_benchday?", 1)
	if b.dbURL == admin {
		return errors.New("BENCH_PG must be a URL of the database postgres with its options, like postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	}
	db, err := sql.Open("postgres", admin)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec(`DROP DATABASE IF EXISTS settle_benchday WITH (FORCE)`); err != nil {
		return fmt.Errorf("drop settle_benchday: %w", err)
	}
	if _, err := db.Exec(`CREATE DATABASE settle_benchday`); err != nil {
		return fmt.Errorf("create settle_benchday: %w", err)
	}
	return nil
}

// dropDB drops settle_benchday.
func dropDB(admin string) {
	db, err := sql.Open("postgres", admin)
	if err != nil {
		return
	}
	defer db.Close()
	db.Exec(`DROP DATABASE IF EXISTS settle_benchday WITH (FORCE)`)
}

// startPaysim starts paysim with the timing model and the day's
// providers' side and reads the job's configuration from its output.
func (b *bench) startPaysim() (*exec.Cmd, error) {
	args := []string{"--dir", filepath.Join(b.dir, "paysim-data"), "--http-addr", "127.0.0.1:0", "--sftp-addr", "127.0.0.1:0",
		"--platform-db", b.dbURL, "--date", b.date, "--bind-sellers", strconv.Itoa(b.sellers), "--timing", "internet"}
	args = append(args, b.paysimArgs...)
	cmd := b.command(b.paysim, args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# ") {
			fmt.Println("# paysim: " + strings.TrimPrefix(line, "# "))
		}
		if _, u, ok := strings.Cut(line, "curl -s "); ok {
			b.stateURL = u
			b.requestsURL = strings.TrimSuffix(u, "state") + "requests"
		}
		if kv, ok := strings.CutPrefix(line, "export "); ok {
			k, v, _ := strings.Cut(kv, "=")
			if strings.HasPrefix(v, "'") {
				v = strings.ReplaceAll(strings.Trim(v, "'"), `'\''`, "'")
			}
			b.env = append(b.env, k+"="+v)
			if k == "SETTLE_WECHAT_RECEIVER_NAME" {
				break
			}
		}
	}
	if b.requestsURL == "" {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, errors.New("paysim printed no configuration")
	}
	go io.Copy(io.Discard, stdout)
	fmt.Printf("# paysim up with the day's payments in %s\n", time.Since(t0).Round(time.Millisecond))
	return cmd, nil
}

// providerRate has the job send to Infinia and Pay Protocol at their
// limit in paysim (the lower of the two; 1000/s when both are unlimited),
// unless BENCH_SETTLE_ARGS or SETTLE_PROVIDER_RATE sets --provider-rate:
// the job's default (20/s) is below the providers' in the timing model.
func (b *bench) providerRate() error {
	if os.Getenv("SETTLE_PROVIDER_RATE") != "" || strings.Contains(strings.Join(b.settleArgs, " "), "provider-rate") {
		return nil
	}
	resp, err := http.Get(b.requestsURL)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r paysim.Requests
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return fmt.Errorf("paysim's requests: %w", err)
	}
	q := 0.0
	for _, p := range []string{"infinia", "payprotocol"} {
		if l := r[p].LimitQPS; l > 0 && (q == 0 || l < q) {
			q = l
		}
	}
	if q == 0 {
		q = 1000
	}
	b.env = append(b.env, "SETTLE_PROVIDER_RATE="+strconv.FormatFloat(q, 'f', -1, 64))
	fmt.Printf("# the job sends to Infinia and Pay Protocol at %g/s (--provider-rate: their limit in paysim)\n", q)
	return nil
}

// signingCeilings measures RSA-SHA256 signatures a second with our
// Infinia key and our WeChat Pay key, on every core for a second each.
func (b *bench) signingCeilings() (float64, float64, error) {
	keys := filepath.Join(b.dir, "paysim-data", "keys")
	inf, err := infiniapay.LoadPrivateKey(filepath.Join(keys, "platform_private.pem"))
	if err != nil {
		return 0, 0, err
	}
	var wxKeyFile string
	for _, kv := range b.env {
		if v, ok := strings.CutPrefix(kv, "SETTLE_WECHAT_PRIVATE_KEY_FILE="); ok {
			wxKeyFile = v
		}
	}
	wx, err := wechatpay.LoadPrivateKey(wxKeyFile)
	if err != nil {
		return 0, 0, err
	}
	msg := strings.Repeat("x", 300)
	infRate := ceiling(inf, func(k *rsa.PrivateKey) error { _, err := infiniapay.Sign(k, msg); return err })
	wxRate := ceiling(wx, func(k *rsa.PrivateKey) error {
		_, err := wechatpay.Sign(k, wechatpay.RequestMessage("POST", "/v3/global/profit-sharing/orders", time.Now().Unix(), "n", []byte(msg)))
		return err
	})
	return infRate, wxRate, nil
}

func ceiling(k *rsa.PrivateKey, sign func(*rsa.PrivateKey) error) float64 {
	var n atomic.Int64
	deadline := time.Now().Add(time.Second)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < runtime.NumCPU(); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if sign(k) == nil {
					n.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}

// sampler reads paysim's counters every half second until stop closes.
func (b *bench) sampler(stop, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		b.takeSample()
		select {
		case <-stop:
			b.takeSample()
			return
		case <-tick.C:
		}
	}
}

func (b *bench) takeSample() {
	resp, err := http.Get(b.requestsURL)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	var r paysim.Requests
	if json.NewDecoder(resp.Body).Decode(&r) != nil {
		return
	}
	s := sample{at: time.Now(), total: map[string]int{}, tooMany: map[string]int{}, requests: r}
	if b.pgPID != 0 {
		s.dbCPU, _ = clusterCPU(b.pgPID)
	}
	for p, pr := range r {
		s.total[p], s.tooMany[p] = pr.Total, pr.TooMany
	}
	b.mu.Lock()
	b.samples = append(b.samples, s)
	b.mu.Unlock()
}

// countAt interpolates provider p's request count at t.
func (b *bench) countAt(p string, t time.Time, tooMany bool) float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	get := func(s sample) float64 {
		if tooMany {
			return float64(s.tooMany[p])
		}
		return float64(s.total[p])
	}
	if len(b.samples) == 0 {
		return 0
	}
	if !t.After(b.samples[0].at) {
		return get(b.samples[0])
	}
	for i := 1; i < len(b.samples); i++ {
		if !t.After(b.samples[i].at) {
			a, c := b.samples[i-1], b.samples[i]
			f := t.Sub(a.at).Seconds() / c.at.Sub(a.at).Seconds()
			return get(a) + f*(get(c)-get(a))
		}
	}
	return get(b.samples[len(b.samples)-1])
}

// byEndpoint lists the requests each provider's endpoints answered in
// [from, to], most first: the samples just before from and just after to.
func (b *bench) byEndpoint(from, to time.Time) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.samples) == 0 {
		return "-"
	}
	a, c := b.samples[0], b.samples[len(b.samples)-1]
	for _, s := range b.samples {
		if !s.at.After(from) {
			a = s
		}
	}
	for i := len(b.samples) - 1; i >= 0; i-- {
		if !b.samples[i].at.Before(to) {
			c = b.samples[i]
		}
	}
	type count struct {
		what string
		n    int
	}
	var cs []count
	for p, pr := range c.requests {
		for ep, n := range pr.ByEndpoint {
			if d := n - a.requests[p].ByEndpoint[ep]; d > 0 {
				cs = append(cs, count{p + " " + ep, d})
			}
		}
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].n > cs[j].n || cs[i].n == cs[j].n && cs[i].what < cs[j].what })
	var out []string
	for _, x := range cs {
		out = append(out, fmt.Sprintf("%s %d", x.what, x.n))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// dbCPUAt interpolates the own cluster's CPU time at t between the
// samples that measured it: a sample whose reading of /proc failed (0)
// is skipped, not taken for a cluster that used nothing.
func (b *bench) dbCPUAt(t time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	var prev *sample
	for i := range b.samples {
		c := &b.samples[i]
		if c.dbCPU == 0 {
			continue
		}
		if !t.After(c.at) {
			if prev == nil {
				return c.dbCPU
			}
			f := t.Sub(prev.at).Seconds() / c.at.Sub(prev.at).Seconds()
			return prev.dbCPU + time.Duration(f*float64(c.dbCPU-prev.dbCPU))
		}
		prev = c
	}
	if prev == nil {
		return 0
	}
	return prev.dbCPU
}

// clockTicks is USER_HZ, the unit of the times in /proc/<pid>/stat (100
// on every Linux the benchmark runs on).
const clockTicks = 100

// clusterCPU is the CPU time the PostgreSQL cluster of postmaster pid has
// used: the postmaster's own, what its ended children used (cutime and
// cstime: the postmaster waits for every backend), and what its live
// children (backends, checkpointer, autovacuum, ...) have used so far.
// A child reaped while its siblings are read would be in neither part (a
// run's connections all end at once at its end: a reading then missed
// hundreds of seconds), so the postmaster is read again after them and
// the reading is taken again until no child was reaped in between.
func clusterCPU(pid int) (time.Duration, error) {
	for try := 0; ; try++ {
		_, own, ended, err := procStat(pid)
		if err != nil {
			return 0, err
		}
		total := own + ended
		entries, err := os.ReadDir("/proc")
		if err != nil {
			return 0, err
		}
		for _, e := range entries {
			child, err := strconv.Atoi(e.Name())
			if err != nil || child == pid {
				continue
			}
			ppid, used, _, err := procStat(child)
			if err == nil && ppid == pid {
				total += used
			}
		}
		_, _, after, err := procStat(pid)
		if err != nil {
			return 0, err
		}
		if after == ended || try == 9 {
			return time.Duration(total) * time.Second / clockTicks, nil
		}
	}
}

// procStat reads a process's parent, its CPU ticks (utime + stime) and
// those of its ended children it waited for (cutime + cstime).
func procStat(pid int) (ppid int, used, ended int64, err error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, err
	}
	// pid (comm) state ppid ... : comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: no comm", pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 15 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	// f[0] is field 3 (state): ppid is field 4, utime..cstime 14..17.
	var v [4]int64
	for k := range v {
		if v[k], err = strconv.ParseInt(f[11+k], 10, 64); err != nil {
			return 0, 0, 0, err
		}
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, v[0] + v[1], v[2] + v[3], err
}

// active is the time provider p was sending in [from, to]: the sample
// intervals in which its count grew.
func (b *bench) active(p string, from, to time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	var d time.Duration
	for i := 1; i < len(b.samples); i++ {
		a, c := b.samples[i-1], b.samples[i]
		if a.at.Before(from) || c.at.After(to.Add(time.Second)) {
			continue
		}
		if c.total[p] > a.total[p] {
			d += c.at.Sub(a.at)
		}
	}
	return d
}

// settleRun runs settle run and reads its stage lines.
func (b *bench) settleRun(label string) (runResult, error) {
	// --send-past-memory: the day is the benchmark's own, on a new ledger
	// and simulator, and BENCH_DATE is fixed, soon past the providers'
	// memory (which would hold every request of it).
	args := append([]string{"run", "--date", b.date, "--rules", filepath.Join(b.root, "cmd", "settle", "demo_rules.csv"), "--send-past-memory"}, b.settleArgs...)
	cmd := b.command(b.settle, args...)
	logFile := filepath.Join(b.dir, strings.ReplaceAll(label, " ", "-")+".log")
	f, err := os.Create(logFile)
	if err != nil {
		return runResult{}, err
	}
	defer f.Close()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	res := runResult{label: label}
	var lines []string
	var failed string // the stage a failed run names
	parsed := make(chan struct{})
	go func() {
		defer close(parsed)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(f, line)
			lines = append(lines, line)
			if len(lines) > 30 {
				lines = lines[1:]
			}
			var l struct {
				Time  time.Time `json:"time"`
				Msg   string    `json:"msg"`
				Stage string    `json:"stage"`
				Took  *float64  `json:"took_seconds"`
			}
			if json.Unmarshal([]byte(line), &l) != nil {
				continue
			}
			if l.Took != nil && l.Stage != "" {
				took := time.Duration(*l.Took * float64(time.Second))
				res.stages = append(res.stages, stageTime{name: l.Stage, took: *l.Took, start: l.Time.Add(-took), end: l.Time})
			}
			if m := failedStage.FindStringSubmatch(line); m != nil && l.Msg == "settle failed" {
				failed = m[1]
			}
			if strings.HasPrefix(l.Msg, "NEEDS A PERSON") {
				res.attention = append(res.attention, l.Msg)
			}
		}
	}()
	fmt.Printf("# %s: settle %s\n", label, strings.Join(args, " "))
	res.from = time.Now()
	if err := cmd.Start(); err != nil {
		return res, err
	}
	werr := cmd.Wait()
	res.to = time.Now()
	pw.Close()
	<-parsed
	res.stages = withFailed(res.stages, failed)
	res.wall = res.to.Sub(res.from)
	res.maxRSS = maxRSS(cmd.ProcessState)
	res.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	var ee *exec.ExitError
	switch {
	case errors.As(werr, &ee):
		res.exit = ee.ExitCode()
		fmt.Printf("# %s exited %d (log %s); its last lines:\n", label, res.exit, logFile)
		for _, l := range lines[max(0, len(lines)-8):] {
			fmt.Println("#   " + oneLine(l, 300))
		}
	case werr != nil:
		return res, werr
	}
	fmt.Printf("# %s took %s\n", label, res.wall.Round(time.Millisecond))
	return res, nil
}

// withFailed adds the stage a failed run names, which logs no time of its
// own (the run goes on to the next stages when it needs a person): it ran
// in the longest gap between the stages that did.
func withFailed(stages []stageTime, failed string) []stageTime {
	if failed == "" {
		return stages
	}
	gap, at := time.Duration(0), -1
	for i := 1; i < len(stages); i++ {
		if stages[i-1].name == failed {
			return stages
		}
		if d := stages[i].start.Sub(stages[i-1].end); d > gap {
			gap, at = d, i
		}
	}
	if at < 0 {
		return stages
	}
	s := stageTime{name: failed + " (failed)", took: gap.Seconds(), start: stages[at-1].end, end: stages[at].start}
	return append(stages[:at], append([]stageTime{s}, stages[at:]...)...)
}

// failedStage finds the stage in the error of a run that failed.
var failedStage = regexp.MustCompile(`"error":"run [^:"]*: stage ([a-z]+):`)

func oneLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func maxRSS(ps *os.ProcessState) int64 {
	if ps == nil {
		return 0
	}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss
	}
	return 0
}

func (b *bench) state() (paysim.State, error) {
	var st paysim.State
	resp, err := http.Get(b.stateURL)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

var providers = []string{"payprotocol", "infinia", "sftp", "wechat"}

var providerNames = map[string]string{"payprotocol": "Pay Protocol", "infinia": "Infinia API", "sftp": "Infinia SFTP (files)", "wechat": "WeChat Pay"}

// limitOf is the provider's limit and the rate the job can reach at most:
// min(limit, signing ceiling); 0 is unlimited.
func limitOf(r paysim.ProviderRequests, p string, subs int, ceilInf, ceilWx float64) (limit, reach float64) {
	limit = r.LimitQPS
	if p == "wechat" && r.SubMerchantLimitQPS > 0 && subs > 0 {
		limit = math.Min(limit, r.SubMerchantLimitQPS*float64(subs))
	}
	reach = limit
	ceil := map[string]float64{"infinia": ceilInf, "wechat": ceilWx}[p]
	if ceil > 0 && (reach == 0 || ceil < reach) {
		reach = ceil
	}
	return limit, reach
}

func rate(s string, r float64) string {
	if r <= 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%.0f/s%s", r, s)
}

// report prints the tables and returns the 429s paysim gave.
func (b *bench) report(first, second runResult, st paysim.State, ceilInf, ceilWx float64, psRSS int64) int {
	last := b.samples[len(b.samples)-1].requests
	// The day's work, from what paysim holds.
	payments := len(st.PayProtocol.Payments)
	// The orders with a refund at Pay Protocol: the day's refunds netted
	// (paysim refunds a paid order by what the day nets of it), whose
	// latest refund the verification asks.
	refunded := map[string]bool{}
	for _, r := range st.PayProtocol.Refunds {
		refunded[r.OutTradeNo] = true
	}
	files := len(st.Infinia.Files)
	shares := len(st.Infinia.RevenueShares)
	wxReqs, subs := 0, map[string]bool{}
	for _, t := range st.WeChat.Transactions {
		wxReqs += t.Requests
		if t.Requests > 0 {
			subs[t.SubMchID] = true
		}
	}
	fmt.Printf("\nday: %d orders, %d sellers; at the providers: %d Pay Protocol payments, %d trade files, %d revenue shares, %d WeChat transactions (%d distribution/unfreeze requests at %d sub-merchants)\n",
		b.orders, b.sellers, payments, files, shares, len(st.WeChat.Transactions), wxReqs, len(subs))
	inf := last["infinia"]
	fmt.Printf("timing: latency %.0f ms; upload status %gs, revenue share %gs, distribution %gs\n",
		inf.LatencySeconds*1000, inf.ProcessingSeconds["upload"], inf.ProcessingSeconds["revenue_share"], last["wechat"].ProcessingSeconds["distribution"])

	for _, r := range []struct {
		label string
		res   runResult
	}{{"first run", first}, {"re-run", second}} {
		fmt.Printf("\n%s: %s wall, %s CPU, settle peak RSS %.1f MiB, exit %d\n", r.label, r.res.wall.Round(time.Millisecond),
			r.res.cpu.Round(time.Millisecond), float64(r.res.maxRSS)/1024, r.res.exit)
		fmt.Println("| stage | wall | Pay Protocol | Infinia API | SFTP files | WeChat Pay | 429s | DB CPU | DB CPU-ms per 1,000 orders |")
		fmt.Println("|---|---|---|---|---|---|---|---|---|")
		for _, s := range r.res.stages {
			row := fmt.Sprintf("| %s | %.1f s |", s.name, s.took)
			t429 := 0.0
			for _, p := range providers {
				n := b.countAt(p, s.end, false) - b.countAt(p, s.start, false)
				t429 += b.countAt(p, s.end, true) - b.countAt(p, s.start, true)
				if s.took > 0 && n >= 0.5 {
					row += fmt.Sprintf(" %.0f (%.1f/s) |", n, n/s.took)
				} else {
					row += " - |"
				}
			}
			db := "- | -"
			if b.pgPID != 0 {
				cpu := b.dbCPUAt(s.end) - b.dbCPUAt(s.start)
				db = fmt.Sprintf("%.2f s | %.0f", cpu.Seconds(), float64(cpu.Milliseconds())*1000/float64(b.orders))
			}
			fmt.Printf("%s %.0f | %s |\n", row, t429, db)
		}
		if b.pgPID != 0 {
			cpu := b.dbCPUAt(r.res.to) - b.dbCPUAt(r.res.from)
			fmt.Printf("database CPU over the whole %s: %.2f s (%.0f ms per 1,000 orders)\n", r.label, cpu.Seconds(),
				float64(cpu.Milliseconds())*1000/float64(b.orders))
		}
	}

	type sending struct {
		name            string
		achieved, reach float64
	}
	var sends []sending
	fmt.Printf("\nre-run requests by endpoint (what it asked): %s\n", b.byEndpoint(second.from, second.to))
	fmt.Println("\nper provider, first run:")
	fmt.Println("| provider | requests | sending time | achieved rate | limit | reachable (min of limit, signing) | achieved / reachable | 429s |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, p := range providers {
		n := b.countAt(p, first.to, false) - b.countAt(p, first.from, false)
		n429 := b.countAt(p, first.to, true) - b.countAt(p, first.from, true)
		act := b.active(p, first.from, first.to)
		limit, reach := limitOf(last[p], p, len(subs), ceilInf, ceilWx)
		achieved := 0.0
		if act > 0 {
			achieved = n / act.Seconds()
		}
		share := "-"
		if reach > 0 && achieved > 0 {
			share = fmt.Sprintf("%.0f%%", 100*achieved/reach)
			sends = append(sends, sending{providerNames[p], achieved, reach})
		}
		fmt.Printf("| %s | %.0f | %.1f s | %.1f/s | %s | %s | %s | %.0f |\n", providerNames[p], n, act.Seconds(), achieved,
			rate("", limit), rate("", reach), share, n429)
	}
	total429 := 0
	for _, p := range providers {
		total429 += last[p].TooMany
	}

	// The physical bound: the longest chain of dependent work, each link
	// at its provider's reachable rate plus its processing delay.
	reach := func(p string) float64 { _, r := limitOf(last[p], p, len(subs), ceilInf, ceilWx); return r }
	w := dayWork{payments: payments, nettedRefunds: len(refunded), files: files, shares: shares, wxRequests: wxReqs}
	d := delays{latency: inf.LatencySeconds, upload: inf.ProcessingSeconds["upload"], share: inf.ProcessingSeconds["revenue_share"],
		distribution: last["wechat"].ProcessingSeconds["distribution"]}
	bound, infChain, wxChain := physicalBound(w, rates{payProtocol: reach("payprotocol"), infinia: reach("infinia"), wechat: reach("wechat")}, d)
	var parts []string
	infTotal := 0.0
	for _, l := range infChain {
		infTotal += l.secs
		parts = append(parts, fmt.Sprintf("%s %.1f s", l.what, l.secs))
	}
	fmt.Printf("\nphysical bound %.1f s = max(Infinia chain %.1f s: %s; WeChat chain %.1f s: %d requests, %gs, %d queries)\n",
		bound, infTotal, strings.Join(parts, " -> "), wxChain, wxReqs, d.distribution, wxReqs)
	ratio := "-"
	if bound > 0 {
		ratio = fmt.Sprintf("%.2fx", first.wall.Seconds()/bound)
	}
	fmt.Println("\n| orders | first run | physical bound | ratio | re-run | re-run / first | settle peak RSS | paysim peak RSS | 429s (whole benchmark) |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	fmt.Printf("| %d | %.1f s | %.1f s | %s | %.1f s | %.1f%% | %.1f MiB | %.1f MiB | %d |\n", b.orders, first.wall.Seconds(), bound, ratio,
		second.wall.Seconds(), 100*second.wall.Seconds()/first.wall.Seconds(), float64(max(first.maxRSS, second.maxRSS))/1024,
		float64(psRSS)/1024, total429)
	// The targets next to what was measured.
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "not met"
	}
	fmt.Println("\ntargets (issue 12):")
	fmt.Println("| target | measured | |")
	fmt.Println("|---|---|---|")
	if bound > 0 {
		r := first.wall.Seconds() / bound
		fmt.Printf("| first run within 1.5x of the physical bound (%.1f s) | %.2fx | %s |\n", bound, r, met(r <= 1.5))
	}
	for _, x := range sends {
		fmt.Printf("| %s sending at >= 85%% of %.0f/s (%.0f/s) | %.1f/s (%.0f%%) | %s |\n", x.name, x.reach, 0.85*x.reach,
			x.achieved, 100*x.achieved/x.reach, met(x.achieved >= 0.85*x.reach))
	}
	rr := 100 * second.wall.Seconds() / first.wall.Seconds()
	fmt.Printf("| re-run under 5%% of the first run | %.1f%% (%.1f s) | %s |\n", rr, second.wall.Seconds(), met(rr < 5))
	rss := float64(max(first.maxRSS, second.maxRSS)) / 1024
	fmt.Printf("| settle peak RSS under 200 MiB (and flat: compare 100,000 with 1,000,000 orders) | %.1f MiB | %s |\n", rss, met(rss < 200))
	fmt.Printf("| no 429 | %d | %s |\n", total429, met(total429 == 0))
	if b.pgPID != 0 {
		fmt.Println("| the ledger's cost per order flat (issue 14: 1,000,000 orders within 20% of 100,000 per order) | DB CPU-ms per 1,000 orders above, per stage: compare two sizes | |")
	}
	if total429 > 0 {
		fmt.Printf("\nthe job tripped the providers' limits: %d answers 429 (by provider: ", total429)
		var ps []string
		for _, p := range providers {
			ps = append(ps, fmt.Sprintf("%s %d", p, last[p].TooMany))
		}
		sort.Strings(ps)
		fmt.Println(strings.Join(ps, ", ") + ")")
	}
	return total429
}

// dayWork is what a day asks of the providers at least: nettedRefunds
// counts the Pay Protocol orders with a refund netted, whose latest refund
// the verification asks after the payment.
type dayWork struct{ payments, nettedRefunds, files, shares, wxRequests int }

// rates are the reachable request rates (min of limit and signing
// ceiling); 0: unlimited.
type rates struct{ payProtocol, infinia, wechat float64 }

// delays are the timing model's, in seconds.
type delays struct{ latency, upload, share, distribution float64 }

type link struct {
	what string
	secs float64
}

// physicalBound is the day's physical bound: the longest chain of work
// that must happen in order, each link at its provider's reachable rate
// plus its processing delay and a latency. The Infinia chain is Pay
// Protocol verification (a query a payment, and one more of each refund
// netted) -> trade files -> upload
// status (the delay, then a query a file) -> revenue shares (a request
// each, the delay, a query each); WeChat's distributions (a request each,
// the delay, a query each) need no trade file and overlap it.
func physicalBound(w dayWork, r rates, d delays) (bound float64, infinia []link, wechat float64) {
	at := func(n int, rate float64) float64 {
		switch {
		case n == 0:
			return 0
		case rate <= 0:
			return d.latency
		}
		return float64(n)/rate + d.latency
	}
	infinia = []link{
		{fmt.Sprintf("Pay Protocol verification (%d queries)", w.payments+w.nettedRefunds), at(w.payments+w.nettedRefunds, r.payProtocol)},
		{fmt.Sprintf("trade files (%d by SFTP)", w.files), at(w.files, 0)},
		{fmt.Sprintf("upload status (%gs, then %d queries)", d.upload, w.files), d.upload + at(w.files, r.infinia)},
		{fmt.Sprintf("revenue shares (%d requests, %gs, %d queries)", w.shares, d.share, w.shares),
			at(w.shares, r.infinia) + d.share + at(w.shares, r.infinia)},
	}
	if w.files == 0 {
		infinia[2].secs = 0
	}
	if w.shares == 0 {
		infinia[3].secs = 0
	}
	total := 0.0
	for _, l := range infinia {
		total += l.secs
	}
	if w.wxRequests > 0 {
		wechat = at(w.wxRequests, r.wechat) + d.distribution + at(w.wxRequests, r.wechat)
	}
	return math.Max(total, wechat), infinia, wechat
}
