package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/internal/scenario"
	"github.com/settlekit/settle/pipeline"
	settlesql "github.com/settlekit/settle/sql"
)

// BenchmarkDataPath measures `settle run --until transform` of one day
// against the psql anchor on the same rows, side by side in one process:
// the anchor is `psql \copy (source query) TO file` then `\copy table FROM
// file` (a plain table shaped like the query), settle is the built binary
// on a fresh ledger schema each round. The two alternate, the one going
// first changing every round, because the machine is shared. Then a re-run
// of each round's finished day. The day, its seed and rules are the bench-day
// scenario (testdata/bench-day). Settings (environment):
//
//	BENCH_ORDERS   orders of the day (default: the scenario's, 200000)
//	BENCH_SELLERS  sellers (default: the scenario's, 2000)
//	BENCH_ROUNDS   rounds of anchor + settle (default 3)
//
// Run it with `make bench` (all benchmarks) or
// `go test ./cmd/settle -run '^$' -bench DataPath -benchtime 1x -v`.
func BenchmarkDataPath(b *testing.B) {
	sc := scenario.Load(b, "bench-day")
	day := *sc.Seed
	orders, sellers, rounds := benchEnvInt(b, "BENCH_ORDERS", day.Orders), benchEnvInt(b, "BENCH_SELLERS", day.Sellers), benchEnvInt(b, "BENCH_ROUNDS", 3)
	day.Orders, day.Sellers = orders, sellers
	psql, err := exec.LookPath("psql")
	if err != nil {
		b.Fatalf("the anchor needs psql (apt-get install postgresql-client): %v", err)
	}
	url := pgtest.URL(b)
	dir := b.TempDir()
	bin := filepath.Join(dir, "settle")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build settle: %v\n%s", err, out)
	}
	date := day.Date
	env := append(append(os.Environ(), dbEnv(url)...), "SETTLE_RULES="+sc.Rules(), "SETTLE_TZ="+day.TZ)
	if _, err := benchMeasure(env, bin, append([]string{"seed"}, day.Args()...)...); err != nil {
		b.Fatal(err)
	}
	query := benchAnchorQuery(b, date, day.TZ)
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`ANALYZE orders; ANALYZE refunds; CREATE TABLE bench_anchor AS ` + query + ` WITH NO DATA`); err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(dir, "rows.tsv")
	anchor := func() (benchProc, error) {
		if _, err := db.Exec(`TRUNCATE bench_anchor`); err != nil {
			return benchProc{}, err
		}
		out, err := benchMeasure(nil, psql, url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", `\copy (`+query+`) TO '`+file+`'`)
		if err != nil {
			return benchProc{}, err
		}
		in, err := benchMeasure(nil, psql, url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", `\copy bench_anchor FROM '`+file+`'`)
		return benchProc{wall: out.wall + in.wall, rssKiB: max(out.rssKiB, in.rssKiB), cpu: out.cpu + in.cpu}, err
	}
	settle := func(schema string) (benchProc, error) {
		return benchMeasure(append(env, "SETTLE_SCHEMA="+schema), bin, "run", "--date", date, "--until", "transform")
	}
	var anchors, settles []benchProc
	b.ResetTimer()
	for r := range rounds {
		schema := fmt.Sprintf("bench_%d", r)
		steps := []func() error{
			func() error { a, err := anchor(); anchors = append(anchors, a); return err },
			func() error { s, err := settle(schema); settles = append(settles, s); return err },
		}
		if r%2 == 1 {
			slices.Reverse(steps)
		}
		for _, step := range steps {
			if err := step(); err != nil {
				b.Fatal(err)
			}
		}
		b.Logf("round %d (load average %s): anchor %.2fs, settle %.2fs (%.2fx), settle peak RSS %.1f MiB, CPU of settle %.2fs and of psql %.2fs", r+1, benchLoad(),
			anchors[r].wall.Seconds(), settles[r].wall.Seconds(), settles[r].wall.Seconds()/anchors[r].wall.Seconds(), settles[r].mib(),
			settles[r].cpu.Seconds(), anchors[r].cpu.Seconds())
	}
	// Every round's finished day run again: nothing to do but check.
	reruns := make([]benchProc, rounds)
	for r := range rounds {
		if reruns[r], err = settle(fmt.Sprintf("bench_%d", r)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	var n int64
	if err := db.Get(&n, fmt.Sprintf(`SELECT count(*) FROM bench_%d.items`, rounds-1)); err != nil || n == 0 {
		b.Fatalf("settle recorded %d items (%v)", n, err)
	}
	ratios := make([]float64, rounds)
	for i := range ratios {
		ratios[i] = settles[i].wall.Seconds() / anchors[i].wall.Seconds()
	}
	rerun := benchMedian(benchSeconds(reruns))
	b.Logf("%d orders, %d rounds: anchor %s s, settle --until transform %s s, ratio %s (median %.2fx); settle peak RSS %s MiB, CPU %s s (psql %s s); re-run of the finished day %s s (median %.2f s, %.1f%% of the median run)",
		orders, rounds, benchSpan(anchors, benchProc.seconds), benchSpan(settles, benchProc.seconds), benchSpanF(ratios), benchMedian(ratios),
		benchSpan(settles, benchProc.mib), benchSpan(settles, benchProc.cpuSeconds), benchSpan(anchors, benchProc.cpuSeconds),
		benchSpan(reruns, benchProc.seconds), rerun, 100*rerun/benchMedian(benchSeconds(settles)))
	b.ReportMetric(benchMedian(benchSeconds(anchors)), "anchor-s")
	b.ReportMetric(benchMedian(benchSeconds(settles)), "settle-s")
	b.ReportMetric(benchMedian(ratios), "ratio")
	b.ReportMetric(slices.Max(benchMiBs(settles)), "peak-MiB")
	b.ReportMetric(rerun, "rerun-s")
}

// benchAnchorQuery is the default source query with the window of date in
// the time zone tz written in, as psql's \copy takes no parameters.
func benchAnchorQuery(b *testing.B, date, tz string) string {
	d, err := pipeline.ParseDate(date)
	if err != nil {
		b.Fatal(err)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		b.Fatal(err)
	}
	w := pipeline.WindowOf(d, loc)
	var lines []string
	for _, l := range strings.Split(settlesql.SourceQuery, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			lines = append(lines, l)
		}
	}
	q := strings.Join(lines, " ")
	q = strings.ReplaceAll(q, "$1", "'"+w.Start.Format(time.RFC3339)+"'::timestamptz")
	q = strings.ReplaceAll(q, "$2", "'"+w.End.Format(time.RFC3339)+"'::timestamptz")
	return strings.TrimRight(strings.TrimSpace(q), ";")
}

// benchProc is one measured process: wall time and peak resident memory.
type benchProc struct {
	wall   time.Duration
	rssKiB int64
	cpu    time.Duration // user + system of the process (not of its database backends)
}

func (r benchProc) seconds() float64 { return r.wall.Seconds() }
func (r benchProc) mib() float64     { return float64(r.rssKiB) / 1024 }

func (r benchProc) cpuSeconds() float64 { return r.cpu.Seconds() }

// benchMeasure runs a command (env nil: this process's) and returns its wall
// time and peak RSS.
func benchMeasure(env []string, name string, args ...string) (benchProc, error) {
	cmd := exec.CommandContext(context.Background(), name, args...)
	cmd.Env = env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		return benchProc{}, fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args[:min(len(args), 2)], " "), err, out)
	}
	var rss int64
	if u, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = u.Maxrss // KiB on Linux
	}
	return benchProc{wall: wall, rssKiB: rss, cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}, nil
}

// benchLoad is the machine's load average over the last minute, as the
// kernel reports it ("?" where it does not).
func benchLoad() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

func benchEnvInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func benchSeconds(rs []benchProc) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = r.seconds()
	}
	return out
}

func benchMiBs(rs []benchProc) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = r.mib()
	}
	return out
}

func benchMedian(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func benchSpan(rs []benchProc, f func(benchProc) float64) string {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = f(r)
	}
	return fmt.Sprintf("%.2f-%.2f", slices.Min(xs), slices.Max(xs))
}

func benchSpanF(xs []float64) string {
	return fmt.Sprintf("%.2f-%.2fx", slices.Min(xs), slices.Max(xs))
}

// benchEnvInts reads a comma-separated list of positive integers from the
// environment variable name (def when it is not set).
func benchEnvInts(b *testing.B, name string, def []int) []int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("%s=%q: want positive integers, comma-separated", name, v)
		}
		out = append(out, n)
	}
	return out
}
