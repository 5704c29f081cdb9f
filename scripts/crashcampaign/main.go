// Command crashcampaign is a randomized crash-and-fault campaign against
// the whole run, with the real binaries: for each seed it seeds a small
// day in a database of its own, settles it once cleanly against paysim (a
// separate process, the baseline), then again on a fresh database and a
// fresh paysim playing random faults, killing settle (SIGKILL, sometimes
// SIGTERM) at random moments of its upload, distribute and reconcile
// stages and running it again until a run ends (exit 0 or 4), then once
// more. It then checks from outside settle's reports that no money moved
// twice or was lost, and that the end state is the baseline's:
//
//   - every revenue share paysim holds is a ledger effect of the same
//     amount and outcome, at most one succeeded per subject;
//   - what WeChat Pay distributed of each transaction is what the ledger
//     records as distributed for its order, and a paid order's
//     transaction holds nothing frozen;
//   - every order of the day is an item or a reject once, and settle
//     status balances each channel and currency;
//   - the providers' end state (shares per seller, WeChat transactions,
//     Pay Protocol refunds, balances) and the items' states are the
//     baseline's, and so is the last exit code;
//   - a run that exits 0, and the re-run after the end, find nothing new
//     to send.
//
// With -old-settle BIN (a settle built from an older commit), the
// campaign's first one to three stopped runs are BIN's and the runs after
// them this tree's (stopped too while the campaign's stops last):
// an upgrade deployed while the date is half done, the newer settle
// migrating the ledger and resuming what the older left (sent, unknown,
// planned). The checks are the same; then BIN is run once more on the
// ledger this tree migrated (a rollback) and must stop, exit 2, with no
// money call to paysim. When this tree has no migration BIN lacks (the
// ledger's version after BIN's runs is the one after this tree's), that
// run is no rollback but an older release on its own schema, on a date
// already quiet: it must end (0 or 4) with no money call to paysim.
//
// Usage: go run ./scripts/crashcampaign [-seeds 3] [-orders 2000]
// [-sellers 200] [-for 30m] [-old-settle BIN]; CAMPAIGN_PG is the admin URL (default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable). It builds
// settle and paysim from this tree, uses two cores at most, and drops its
// databases at the end. Not part of make test: it takes minutes.
package main

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lib/pq"

	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/pipeline/ledger"
	"github.com/settlekit/settle/seed"
)

const date = "2026-11-20"

var (
	seeds    = flag.Int("seeds", 3, "campaigns (seeds) to run")
	first    = flag.Uint64("first-seed", 1, "first seed")
	orders   = flag.Int("orders", 2000, "orders of the day")
	sellers  = flag.Int("sellers", 200, "sellers")
	budget   = flag.Duration("for", 30*time.Minute, "stop starting campaigns after this long")
	maxRuns  = flag.Int("max-runs", 40, "runs of a campaign before it counts as never ending")
	keepLogs = flag.Bool("keep", false, "keep the work directory, and the campaigns' databases (settle_cc<pid>_camp_<seed>: drop them after)")
	old      = flag.String("old-settle", "", "an older settle binary: the campaign's stopped runs are its, the runs after them this tree's (an upgrade deployed while the date is half done)")
)

type tool struct {
	root, dir, settle, paysim, admin, old string
}

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "crashcampaign:", err)
		os.Exit(1)
	}
}

func run() error {
	t := &tool{admin: os.Getenv("CAMPAIGN_PG")}
	if t.admin == "" {
		t.admin = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return err
	}
	t.root = filepath.Dir(strings.TrimSpace(string(out)))
	if t.dir, err = os.MkdirTemp("", "crashcampaign-"); err != nil {
		return err
	}
	if !*keepLogs {
		defer os.RemoveAll(t.dir)
	}
	fmt.Println("# work directory", t.dir)
	t.settle, t.paysim = filepath.Join(t.dir, "settle"), filepath.Join(t.dir, "paysim")
	if *old != "" {
		if t.old, err = filepath.Abs(*old); err != nil {
			return err
		}
	}
	for bin, pkg := range map[string]string{t.settle: "./cmd/settle", t.paysim: "./cmd/paysim"} {
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		cmd.Dir, cmd.Stderr = t.root, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build %s: %w", pkg, err)
		}
	}
	start := time.Now()
	var failures []string
	kills, terms, runs := 0, 0, 0
	for s := *first; s < *first+uint64(*seeds) && time.Since(start) < *budget; s++ {
		c, err := t.campaign(s)
		kills, terms, runs = kills+c.kills, terms+c.terms, runs+c.runs
		if err != nil {
			failures = append(failures, fmt.Sprintf("seed %d: %v", s, err))
			fmt.Printf("FAIL seed %d: %v\n", s, err)
			continue
		}
		fmt.Printf("ok seed %d: %d runs, %d SIGKILLs, %d SIGTERMs, faults %q, end exit %d\n", s, c.runs, c.kills, c.terms, c.faults, c.exit)
	}
	fmt.Printf("# %d runs, %d SIGKILLs, %d SIGTERMs in %s\n", runs, kills, terms, time.Since(start).Round(time.Second))
	if len(failures) > 0 {
		return errors.New(strings.Join(failures, "\n"))
	}
	return nil
}

// world is one database and one paysim.
type world struct {
	t        *tool
	name     string
	dbURL    string
	env      []string
	stateURL string
	ps       *exec.Cmd
	dir      string
	// oldVersion is the ledger's migration after the older settle's
	// runs (the newest it knows): 0 before one has run.
	oldVersion int64
}

func (t *tool) newWorld(name string, seed uint64, faults string) (*world, error) {
	w := &world{t: t, name: name, dir: filepath.Join(t.dir, name)}
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return nil, err
	}
	w.dbURL = strings.Replace(t.admin, "/postgres?", "/"+name+"?", 1)
	if err := adminExec(t.admin, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`, `CREATE DATABASE `+name); err != nil {
		return nil, err
	}
	w.env = append(os.Environ(), "SETTLE_DATABASE_URL="+w.dbURL, "SETTLE_LOG_FORMAT=json",
		"SETTLE_WORK_DIR="+filepath.Join(w.dir, "work"), "SETTLE_OUT="+filepath.Join(w.dir, "reports"))
	if out, err := w.command(t.settle, "seed", "--date", date, "--orders", fmt.Sprint(*orders), "--sellers", fmt.Sprint(*sellers),
		"--seed", fmt.Sprint(seed)).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("settle seed: %v\n%s", err, out)
	}
	args := []string{"--dir", filepath.Join(w.dir, "paysim-data"), "--http-addr", "127.0.0.1:0", "--sftp-addr", "127.0.0.1:0",
		"--platform-db", w.dbURL, "--date", date, "--bind-sellers", fmt.Sprint(*sellers), "--polls", "1",
		"--wechat-qps", "-1", "--wechat-sub-merchant-qps", "-1", "--seed", fmt.Sprint(seed)}
	if faults != "" {
		args = append(args, "--faults", faults)
	}
	cmd := w.command(t.paysim, args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w.ps = cmd
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if _, u, ok := strings.Cut(line, "curl -s "); ok {
			w.stateURL = u
		}
		if kv, ok := strings.CutPrefix(line, "export "); ok {
			k, v, _ := strings.Cut(kv, "=")
			if strings.HasPrefix(v, "'") {
				v = strings.ReplaceAll(strings.Trim(v, "'"), `'\''`, "'")
			}
			w.env = append(w.env, k+"="+v)
			if k == "SETTLE_WECHAT_RECEIVER_NAME" {
				break
			}
		}
	}
	go io.Copy(io.Discard, stdout)
	if w.stateURL == "" {
		w.close()
		return nil, errors.New("paysim printed no configuration")
	}
	return w, nil
}

func (w *world) close() {
	if w.ps != nil && w.ps.Process != nil {
		w.ps.Process.Signal(syscall.SIGTERM)
		w.ps.Wait()
	}
	adminExec(w.t.admin, `DROP DATABASE IF EXISTS `+w.name+` WITH (FORCE)`)
}

func (w *world) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env, cmd.Dir = w.env, w.dir
	return cmd
}

func adminExec(admin string, stmts ...string) error {
	db, err := sql.Open("postgres", admin)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// plan is when to stop a run: at delay after its log first names stage,
// or, with an endpoint, once paysim has had after more calls of it than
// when the run started (the calls that move money: trade files,
// revenue shares, distributions, unfreezes).
type plan struct {
	sig      syscall.Signal // 0: let it run
	stage    string
	delay    time.Duration
	provider string // paysim's name of the provider of endpoint
	endpoint string
	after    int
}

// moneyCalls are the endpoints of paysim that move money, with its
// provider's name.
var moneyCalls = [][2]string{{"sftp", "files"}, {"infinia", "revenue-sharing/request"}, {"wechat", "orders"}, {"wechat", "orders/unfreeze"}}

// moneyCallCounts returns paysim's counts of the moneyCalls, in order.
func (w *world) moneyCallCounts() (string, error) {
	var out []string
	for _, m := range moneyCalls {
		n, err := w.calls(m[0], m[1])
		if err != nil {
			return "", err
		}
		out = append(out, fmt.Sprintf("%s %d", m[1], n))
	}
	return strings.Join(out, ", "), nil
}

// calls returns paysim's count of calls of an endpoint.
func (w *world) calls(provider, endpoint string) (int, error) {
	resp, err := http.Get(strings.TrimSuffix(w.stateURL, "state") + "requests")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r paysim.Requests
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	return r[provider].ByEndpoint[endpoint], nil
}

type result struct {
	exit        int
	signalled   bool   // the plan's signal was sent
	stageAtSig  string // the stage of the last log line before it
	newMoves    int    // the done line's new_money_movements (-1: none)
	log         string
	lastMessage string
}

// stages are where a timed stop starts counting: a stage logs its first
// line when it is done (or after seconds, its progress), so a stop after
// "transform" falls in upload, one after "distribute" in reconcile.
var stages = []string{"transform", "upload", "distribute"}

// settleRun runs settle run once under p.
func (w *world) settleRun(n int, p plan) (result, error) {
	return w.settleRunWith(w.t.settle, n, p)
}

// settleRunWith runs the settle binary bin once under p.
func (w *world) settleRunWith(bin string, n int, p plan) (result, error) {
	logPath := filepath.Join(w.dir, fmt.Sprintf("run%02d.log", n))
	f, err := os.Create(logPath)
	if err != nil {
		return result{}, err
	}
	defer f.Close()
	args := []string{"run", "--date", date, "--rules", filepath.Join(w.t.root, "cmd", "settle", "demo_rules.csv"),
		"--provider-rate", "0", "--provider-poll", "200ms", "--wechat-qps", "0", "--wechat-sub-merchant-qps", "0", "--lock-wait", "2m"}
	if bin == w.t.settle {
		// The campaign's date is fixed, and soon past the providers'
		// memory; its ledger and simulator are its own. An -old-settle
		// binary may be older than the flag (and the hold).
		args = append(args, "--send-past-memory")
	}
	cmd := w.command(bin, args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	res := result{log: logPath, newMoves: -1}
	var signalled atomic.Bool
	stop := func() {
		// After Wait, Signal fails: a run that ended first is not counted.
		if cmd.Process.Signal(p.sig) == nil {
			signalled.Store(true)
		}
	}
	exited := make(chan struct{})
	defer close(exited)
	if p.sig != 0 && p.endpoint != "" {
		base, err := w.calls(p.provider, p.endpoint)
		if err != nil {
			return res, err
		}
		go func() {
			for {
				select {
				case <-exited:
					return
				case <-time.After(20 * time.Millisecond):
				}
				if n, err := w.calls(p.provider, p.endpoint); err == nil && n >= base+p.after {
					stop()
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		var fired bool
		for sc.Scan() {
			line := sc.Bytes()
			f.Write(append(line, '\n'))
			var m struct {
				Msg      string `json:"msg"`
				Stage    string `json:"stage"`
				NewMoves *int   `json:"new_money_movements"`
			}
			if json.Unmarshal(line, &m) != nil {
				continue
			}
			res.lastMessage = m.Msg
			if m.Msg == "done" && m.NewMoves != nil {
				res.newMoves = *m.NewMoves
			}
			if m.Stage != "" && m.Stage != "summary" {
				res.stageAtSig = m.Stage
			}
			if p.sig != 0 && p.endpoint == "" && !fired && m.Stage == p.stage {
				fired = true
				time.AfterFunc(p.delay, stop)
			}
		}
	}()
	err = cmd.Wait()
	pw.Close()
	<-done
	res.exit = cmd.ProcessState.ExitCode() // -1 when killed by a signal
	res.signalled = signalled.Load()
	if err != nil && res.exit == 0 {
		return res, err
	}
	return res, nil
}

type campaignResult struct {
	runs, kills, terms, exit int
	faults                   string
}

// faultMenu are the paysim faults a campaign draws from.
var faultMenu = []string{
	"",
	"revenue-sharing/request:lost~0.05",
	"revenue-sharing/request:held~0.03,delay=3s;orders:held~0.02,delay=3s",
	"*:5xx~0.02",
	"orders:lost~0.05;orders/unfreeze:lost~0.1",
	"*:reset~0.02;upload:disconnect~0.05,bytes=512",
	"trade-details/query:stuck~0.1,polls=3;revenue-sharing/query:5xx~0.05;orders/query:reset~0.05",
	"revenue-sharing/request:5xx~0.05;revenue-sharing/request:held~0.02,delay=2s;orders:5xx~0.03;orders/unfreeze:held~0.05,delay=2s",
}

// snapshot is the end state of a world, to compare.
type snapshot struct {
	state   paysim.State
	items   map[string]string // order -> state/seller_minor/commission/refunded (paid and carried alike)
	owed    map[string]int64  // seller and currency -> paid at Infinia + carried in the ledger
	carried map[string]int64  // currency -> carried in the ledger
	exit    int
	reports []string // invariant violations
}

func (t *tool) campaign(seed uint64) (c campaignResult, err error) {
	rng := rand.New(rand.NewPCG(seed, 0xc4a5))
	// Baseline: a clean settle of the same day.
	base, err := t.newWorld(fmt.Sprintf("settle_cc%d_base_%d", os.Getpid(), seed), seed, "")
	if err != nil {
		return c, err
	}
	var bs snapshot
	func() {
		defer base.close()
		exit, err2 := base.untilEnd(nil, &c)
		if err2 != nil {
			err = fmt.Errorf("baseline: %w", err2)
			return
		}
		bs, err = base.snapshot(exit)
	}()
	if err != nil {
		return c, err
	}
	if len(bs.reports) > 0 {
		return c, fmt.Errorf("baseline breaks the invariants:\n  %s", strings.Join(bs.reports, "\n  "))
	}
	c.faults = faultMenu[rng.IntN(len(faultMenu))]
	camp, err := t.newWorld(fmt.Sprintf("settle_cc%d_camp_%d", os.Getpid(), seed), seed, c.faults)
	if err != nil {
		return c, err
	}
	if !*keepLogs {
		defer camp.close()
	} else {
		defer func() { camp.ps.Process.Signal(syscall.SIGTERM); camp.ps.Wait() }()
	}
	c.runs, c.kills, c.terms = 0, 0, 0
	exit, err := camp.untilEnd(rng, &c)
	if err != nil {
		return c, err
	}
	c.exit = exit
	cs, err := camp.snapshot(exit)
	if err != nil {
		return c, err
	}
	reports := cs.reports
	if t.old != "" {
		// A rollback: the older settle on the ledger this tree migrated
		// must stop before it moves anything (exit 2).
		before, err := camp.moneyCallCounts()
		if err != nil {
			return c, err
		}
		version, err := camp.ledgerVersion()
		if err != nil {
			return c, err
		}
		r, err := camp.settleRunWith(t.old, 200, plan{})
		if err != nil {
			return c, err
		}
		after, err := camp.moneyCallCounts()
		if err != nil {
			return c, err
		}
		fmt.Printf("  %s rollback run (old, migration %d, ledger at %d): exit %d, new movements %d: %s\n",
			camp.name, camp.oldVersion, version, r.exit, r.newMoves, r.lastMessage)
		if bad := rollbackReport(camp.oldVersion, version, r.exit, before, after); bad != "" {
			reports = append(reports, fmt.Sprintf("%s (%s)", bad, r.log))
		}
	}
	reports = append(reports, diff(bs, cs)...)
	if len(reports) > 0 {
		return c, fmt.Errorf("logs in %s:\n  %s", camp.dir, strings.Join(reports, "\n  "))
	}
	return c, nil
}

// rollbackReport judges the older settle's run on the ledger this tree
// left: oldVersion is the newest migration the older knows (the ledger's
// after its runs), version the ledger's before this run, exit its exit
// code, before and after paysim's money calls around it. A ledger
// migrated past what the older knows must stop it, exit 2; one it knows
// (no migration between the two) is its own schema, on a date already
// quiet: it ends, 0 or 4. Either moves nothing. It returns "" when the
// run did so, else what it did.
func rollbackReport(oldVersion, version int64, exit int, before, after string) string {
	var bad string
	switch {
	case oldVersion <= 0:
		bad = "the older settle's migration was never read"
	case version > oldVersion && exit != 2:
		bad = fmt.Sprintf("the older settle (migration %d) on the ledger migrated to %d exited %d, not 2", oldVersion, version, exit)
	case version <= oldVersion && exit != 0 && exit != 4:
		bad = fmt.Sprintf("the older settle (migration %d) on a ledger of its own schema (%d), the date quiet, exited %d, not 0 or 4", oldVersion, version, exit)
	}
	if before != after {
		bad = strings.TrimPrefix(bad+"; ", "; ") + fmt.Sprintf("the older settle's run called paysim's money endpoints: %v then %v", before, after)
	}
	return bad
}

// ledgerVersion returns the ledger's newest applied migration (goose's
// table, in SETTLE_SCHEMA or settle's default schema): 0 when there is
// none yet (a run that stopped before it migrated).
func (w *world) ledgerVersion() (int64, error) {
	schema := os.Getenv("SETTLE_SCHEMA")
	if schema == "" {
		schema = ledger.DefaultSchema
	}
	db, err := sql.Open("postgres", w.dbURL)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	table := pq.QuoteIdentifier(schema) + ".goose_db_version"
	var exists bool
	if err := db.QueryRow(`SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v sql.NullInt64
	if err := db.QueryRow(`SELECT max(version_id) FROM ` + table).Scan(&v); err != nil {
		return 0, fmt.Errorf("the ledger's version: %w", err)
	}
	return v.Int64, nil
}

// untilEnd runs settle (with random kills when rng is set) until a run
// ends 0 or 4 that it did not signal, then once more; it returns the last
// exit code.
func (w *world) untilEnd(rng *rand.Rand, c *campaignResult) (int, error) {
	var ended bool
	prevExit, quiet := -1, 0
	// Runs are stopped at a random moment of a random stage, or after a
	// random number of money movements, until three in a row end before
	// their stop or the campaign's budget of stops is spent; the others
	// run to their end.
	killing, budget, signals, misses := rng != nil, 0, 0, 0
	if killing {
		budget = 4 + rng.IntN(12)
	}
	// With an older settle: its runs are the first one to three stopped
	// (the upgrade deployed between a run and its retry), this tree's
	// the rest, stopped too while the budget lasts.
	oldLeft := 0
	if killing && w.t.old != "" {
		oldLeft = 1 + rng.IntN(3)
	}
	for n := 1; n <= *maxRuns; n++ {
		p := plan{}
		if killing {
			p = plan{sig: syscall.SIGKILL, stage: stages[rng.IntN(len(stages))], delay: time.Duration(rng.Int64N(int64(3 * time.Second)))}
			if rng.Float64() < 0.7 {
				// Within the money movements: after the k-th of a kind
				// (the day has some hundreds of each but unfreezes): a
				// few dozen at most, so that several runs share them.
				m := moneyCalls[rng.IntN(len(moneyCalls))]
				p.provider, p.endpoint, p.after = m[0], m[1], 1+rng.IntN(60)
				if m[1] == "orders/unfreeze" {
					p.after = 1 + rng.IntN(8)
				}
			}
			if rng.Float64() < 0.2 {
				p.sig = syscall.SIGTERM
			}
		}
		bin, which := w.t.settle, ""
		if killing && oldLeft > 0 {
			bin, which = w.t.old, " (old)"
		}
		r, err := w.settleRunWith(bin, n, p)
		if err != nil {
			return 0, err
		}
		c.runs++
		if bin == w.t.old {
			v, err := w.ledgerVersion()
			if err != nil {
				return 0, err
			}
			w.oldVersion = max(w.oldVersion, v)
		}
		if r.signalled {
			if p.sig == syscall.SIGKILL {
				c.kills++
			} else {
				c.terms++
			}
		}
		what := "clean"
		switch {
		case r.signalled && p.endpoint != "":
			what = fmt.Sprintf("%v after %d calls of %s (log at %s)", p.sig, p.after, p.endpoint, r.stageAtSig)
		case r.signalled:
			what = fmt.Sprintf("%v in %s after %s", p.sig, r.stageAtSig, p.delay.Round(time.Millisecond))
		}
		fmt.Printf("  %s run %d%s: %s, exit %d, new movements %d\n", w.name, n, which, what, r.exit, r.newMoves)
		if r.signalled && p.sig == syscall.SIGTERM && r.exit == 0 {
			// A SIGTERM'd run that says all is well: the next must find nothing to do.
			r2, err := w.settleRun(100+n, plan{})
			if err != nil {
				return 0, err
			}
			c.runs++
			if r2.newMoves > 0 {
				return 0, fmt.Errorf("run %d, stopped by SIGTERM, exited 0, yet the next run sent %d new money movements (%s)", n, r2.newMoves, r2.log)
			}
		}
		if ended {
			// Orders held for a refund pending at Pay Protocol are paid
			// by a later run (the fake moves a refund on at each query):
			// re-run until two runs in a row find nothing new (a refund
			// is final at its third query), in the baseline too.
			if r.newMoves == 0 {
				if quiet++; quiet == 2 {
					return r.exit, nil
				}
				prevExit = r.exit
				continue
			}
			quiet = 0
			if r.exit == 0 && prevExit == 0 {
				return 0, fmt.Errorf("run %d exited 0 and the next sent %d new money movements (%s)", n-1, r.newMoves, r.log)
			}
			prevExit = r.exit
			continue
		}
		if bin == w.t.old {
			// Stopped, or ended before its stop (the older settle
			// finished the date): the upgrade comes after at most three.
			if oldLeft--; !r.signalled {
				oldLeft = 0
			}
		}
		if r.signalled {
			if signals++; signals >= budget {
				killing = false
			}
			misses = 0
			continue
		}
		if killing {
			// Its stop never came: the run ended first.
			if misses++; misses < 3 && (r.exit == 0 || r.exit == 1 || r.exit == 4) {
				continue
			}
		}
		killing = false
		if !r.signalled && (r.exit == 0 || r.exit == 4) {
			ended, prevExit = true, r.exit
			continue
		}
		if !r.signalled && r.exit != 1 && r.exit != 0 && r.exit != 4 {
			return 0, fmt.Errorf("run %d exited %d unsignalled (%s: %s)", n, r.exit, r.log, r.lastMessage)
		}
	}
	return 0, fmt.Errorf("no run ended (0 or 4) in %d runs", *maxRuns)
}

func (w *world) snapshot(exit int) (snapshot, error) {
	s := snapshot{exit: exit, items: map[string]string{}, owed: map[string]int64{}, carried: map[string]int64{}}
	resp, err := http.Get(w.stateURL)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&s.state); err != nil {
		return s, fmt.Errorf("paysim state: %w", err)
	}
	db, err := sql.Open("postgres", w.dbURL)
	if err != nil {
		return s, err
	}
	defer db.Close()
	bad := func(format string, a ...any) { s.reports = append(s.reports, fmt.Sprintf(format, a...)) }

	// Revenue shares: each a ledger effect of the same amount and
	// outcome; at most one succeeded per subject.
	type eff struct {
		subject, state string
		amount         int64
	}
	effects := map[string]eff{}
	rows, err := db.Query(`SELECT idem_key, subject, state, amount_minor FROM settle.effects WHERE kind = 'revenue_share'`)
	if err != nil {
		return s, err
	}
	for rows.Next() {
		var k string
		var e eff
		if err := rows.Scan(&k, &e.subject, &e.state, &e.amount); err != nil {
			return s, err
		}
		effects[k] = e
	}
	rows.Close()
	paidPerSubject := map[string]int{}
	seen := map[string]bool{}
	for _, r := range s.state.Infinia.RevenueShares {
		if seen[r.RequestNo] {
			bad("Infinia holds requestNo %s twice", r.RequestNo)
		}
		seen[r.RequestNo] = true
		e, ok := effects[r.RequestNo]
		if !ok {
			bad("Infinia revenue share %s (%s %d %s, %s) is no effect of the ledger", r.RequestNo, r.SellerID, r.AmountMinor, r.Currency, r.Status)
			continue
		}
		if e.amount != r.AmountMinor {
			bad("revenue share %s: Infinia moved %d, the ledger says %d", r.RequestNo, r.AmountMinor, e.amount)
		}
		want := map[string]string{"SUCCESS": "succeeded", "FAILED": "failed"}[r.Status]
		if want == "" {
			bad("revenue share %s still %s at Infinia at the end", r.RequestNo, r.Status)
		} else if e.state != want {
			bad("revenue share %s: Infinia %s, ledger %s", r.RequestNo, r.Status, e.state)
		}
		if r.Status == "SUCCESS" {
			paidPerSubject[e.subject]++
		}
	}
	for subj, n := range paidPerSubject {
		if n > 1 {
			bad("%s paid %d times at Infinia", subj, n)
		}
	}
	for k, e := range effects {
		if e.state == "succeeded" && !seen[k] {
			bad("ledger revenue share %s (%s) succeeded, Infinia never took it", k, e.subject)
		}
	}

	// WeChat: distributed per transaction as the ledger's distributions of
	// its order; a paid order's transaction holds nothing frozen.
	type wx struct {
		order, state string
		dist         int64
	}
	byTxn := map[string]*wx{}
	rows, err = db.Query(`SELECT i.provider_txn_id, i.order_no, i.state,
		coalesce((SELECT sum(amount_minor) FROM settle.effects e WHERE e.kind = 'distribution' AND e.state = 'succeeded'
		AND e.subject = 'WX/' || to_char(i.business_date, 'YYYYMMDD') || '/' || i.order_no), 0)
		FROM settle.items i WHERE i.channel = 'wechatpay'`)
	if err != nil {
		return s, err
	}
	for rows.Next() {
		var txn string
		x := &wx{}
		if err := rows.Scan(&txn, &x.order, &x.state, &x.dist); err != nil {
			return s, err
		}
		byTxn[txn] = x
	}
	rows.Close()
	for _, tx := range s.state.WeChat.Transactions {
		x, ok := byTxn[tx.TransactionID]
		if !ok {
			if tx.DistributedMinor != 0 || tx.UnfrozenMinor != 0 {
				bad("WeChat transaction %s of no item moved %d/%d", tx.TransactionID, tx.DistributedMinor, tx.UnfrozenMinor)
			}
			continue
		}
		if tx.DistributedMinor != x.dist {
			bad("WeChat transaction %s (order %s, %s): distributed %d, the ledger's distributions %d", tx.TransactionID, x.order, x.state, tx.DistributedMinor, x.dist)
		}
		if x.state == "paid" && tx.FrozenMinor != 0 {
			bad("WeChat transaction %s (order %s) paid in the ledger, %d still frozen", tx.TransactionID, x.order, tx.FrozenMinor)
		}
	}

	// Every order once: items and rejects against the platform's orders
	// of the day (Asia/Shanghai, settle's default zone).
	var src, items, rejects, both int
	if err := db.QueryRow(`SELECT (SELECT count(*) FROM public.orders WHERE confirmed_at >= '`+date+` 00:00+08' AND confirmed_at < '`+date+` 00:00+08'::timestamptz + interval '1 day'),
		(SELECT count(*) FROM settle.items), (SELECT count(DISTINCT order_no) FROM settle.rejects),
		(SELECT count(*) FROM settle.items i WHERE EXISTS (SELECT 1 FROM settle.rejects r WHERE r.order_no = i.order_no))`).Scan(&src, &items, &rejects, &both); err != nil {
		return s, fmt.Errorf("count orders: %w", err)
	}
	if items+rejects-both != src || src != *orders {
		bad("orders: %d source rows (%d seeded), %d items, %d rejects, %d both", src, *orders, items, rejects, both)
	}
	// Paid or carried to a later payout: which depends on when a held
	// order was freed (before its seller's payout of the date or after).
	rows, err = db.Query(`SELECT order_no, CASE WHEN state = 'carried' THEN 'paid' ELSE state END || '/' || seller_minor
		|| '/' || commission_minor || '/' || refunded_minor FROM settle.items`)
	if err != nil {
		return s, err
	}
	for rows.Next() {
		var o, v string
		if err := rows.Scan(&o, &v); err != nil {
			return s, err
		}
		s.items[o] = v
	}
	rows.Close()

	sellerOf := map[string]string{}
	for i := 1; i <= *sellers; i++ {
		sellerOf[seed.InfiniaID(i)] = seed.SellerID(i)
	}
	for _, r := range s.state.Infinia.RevenueShares {
		if r.Status == "SUCCESS" {
			s.owed[sellerOf[r.SellerID]+" "+string(r.Currency)] += r.AmountMinor
		}
	}
	rows, err = db.Query(`SELECT i.seller_id, i.currency, sum(i.seller_minor) FROM settle.items i WHERE i.state = 'carried' GROUP BY 1, 2`)
	if err != nil {
		return s, err
	}
	for rows.Next() {
		var seller, cur string
		var v int64
		if err := rows.Scan(&seller, &cur, &v); err != nil {
			return s, err
		}
		s.owed[seller+" "+cur] += v
		s.carried[cur] += v
	}
	rows.Close()

	// settle status: every channel and currency balanced.
	out, err := w.command(w.t.settle, "status", "--date", date, "-o", "json").Output()
	if err != nil {
		return s, fmt.Errorf("settle status: %w", err)
	}
	var st struct {
		Summary []struct {
			Channel, Currency string
			InProgress        int64 `json:"in_progress_minor"`
			Balanced          bool
		}
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return s, fmt.Errorf("settle status: %w", err)
	}
	for _, r := range st.Summary {
		if !r.Balanced {
			bad("settle status: %s %s not balanced", r.Channel, r.Currency)
		}
		if exit == 0 && r.InProgress != 0 {
			bad("settle status: exit 0 with %s %s %d in progress", r.Channel, r.Currency, r.InProgress)
		}
	}
	return s, nil
}

// diff compares the campaign's end with the baseline's.
func diff(b, c snapshot) []string {
	var out []string
	if b.exit != c.exit {
		out = append(out, fmt.Sprintf("the campaign ended with exit %d, the baseline %d", c.exit, b.exit))
	}
	out = append(out, diffMaps("Infinia paid + carried (seller currency)", b.owed, c.owed)...)
	txns := func(s snapshot) map[string]string {
		m := map[string]string{}
		for _, t := range s.state.WeChat.Transactions {
			m[t.TransactionID] = fmt.Sprintf("frozen %d distributed %d unfrozen %d", t.FrozenMinor, t.DistributedMinor, t.UnfrozenMinor)
		}
		return m
	}
	out = append(out, diffMaps("WeChat transaction", txns(b), txns(c))...)
	refunds := func(s snapshot) map[string]string {
		m := map[string]string{}
		for _, r := range s.state.PayProtocol.Refunds {
			m[r.OutTradeNo] += r.Status + " " + r.Amount + ";"
		}
		return m
	}
	out = append(out, diffMaps("Pay Protocol refunds of", refunds(b), refunds(c))...)
	// The platform's balance less what it still owes (carried): a held
	// order freed before its seller's payout of the date is paid with it,
	// after it is carried, both right.
	bal := func(s snapshot) map[string]int64 {
		m := map[string]int64{}
		for k, v := range s.state.Infinia.Balances {
			m[string(k)] = v
		}
		for k, v := range s.carried {
			m[k] -= v
		}
		return m
	}
	out = append(out, diffMaps("Infinia balance less carried", bal(b), bal(c))...)
	out = append(out, diffMaps("item", b.items, c.items)...)
	return out
}

func diffMaps[V comparable](what string, b, c map[string]V) []string {
	var out []string
	keys := map[string]bool{}
	for k := range b {
		keys[k] = true
	}
	for k := range c {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		bv, bok := b[k]
		cv, cok := c[k]
		if bok != cok || bv != cv {
			out = append(out, fmt.Sprintf("%s %s: baseline %v (%v), campaign %v (%v)", what, k, bv, bok, cv, cok))
		}
	}
	if len(out) > 20 {
		out = append(slices.Clip(out[:20]), fmt.Sprintf("... %d more differences of %s", len(out)-20, what))
	}
	return out
}
