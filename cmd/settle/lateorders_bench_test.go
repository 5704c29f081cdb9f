package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/internal/scenario"
)

// BenchmarkLateOrdersLook measures the look for orders of a date already
// read that the platform gives otherwise now (lateOrders): the bench-day
// scenario's day is read (`settle run --until transform`), one order is
// written into its window after, and the date is run again, rounds times,
// each run comparing its own date (read before): the time its line says
// the comparison took, and the run's peak RSS (the run does nothing else
// but check its recorded stages). Settings (environment):
//
//	BENCH_ORDERS      orders of the day (default: the scenario's, 200000)
//	BENCH_SELLERS     sellers (default: the scenario's, 2000)
//	BENCH_ROUNDS      runs of the date again (default 3)
//	BENCH_SETTLE_BIN  settle binaries to measure, separated by the path
//	                  list separator (":"), each run again rounds times on
//	                  the same day, in turn (the first reads the day); default
//	                  this package built
//
// `go test ./cmd/settle -run '^$' -bench LateOrdersLook -benchtime 1x -v`.
func BenchmarkLateOrdersLook(b *testing.B) {
	sc := scenario.Load(b, "bench-day")
	day := *sc.Seed
	day.Orders, day.Sellers = benchEnvInt(b, "BENCH_ORDERS", day.Orders), benchEnvInt(b, "BENCH_SELLERS", day.Sellers)
	rounds := benchEnvInt(b, "BENCH_ROUNDS", 3)
	url := pgtest.URL(b)
	bins := filepath.SplitList(os.Getenv("BENCH_SETTLE_BIN"))
	if len(bins) == 0 {
		bin := filepath.Join(b.TempDir(), "settle")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			b.Fatalf("build settle: %v\n%s", err, out)
		}
		bins = []string{bin}
	}
	env := append(append(os.Environ(), dbEnv(url)...), "SETTLE_RULES="+sc.Rules(), "SETTLE_TZ="+day.TZ, "SETTLE_OUT="+b.TempDir())
	if _, err := benchMeasure(env, bins[0], append([]string{"seed"}, day.Args()...)...); err != nil {
		b.Fatal(err)
	}
	run := func(bin string) (benchProc, string, error) {
		cmd := exec.Command(bin, "run", "--date", day.Date, "--until", "transform")
		cmd.Env = env
		start := time.Now()
		out, err := cmd.CombinedOutput()
		p := benchProc{wall: time.Since(start)}
		if err != nil && cmd.ProcessState.ExitCode() != 4 {
			return p, string(out), fmt.Errorf("settle run: %v\n%s", err, out)
		}
		if u, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			p.rssKiB = u.Maxrss // KiB on Linux
		}
		return p, string(out), nil
	}
	first, _, err := run(bins[0])
	if err != nil {
		b.Fatal(err)
	}
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO orders (order_no, seller_id, provider, provider_txn_id, currency, amount_minor, category, buyer_country, paid_at, confirmed_at)
		SELECT 'BENCH-LATE', seller_id, provider, provider_txn_id, currency, amount_minor, category, buyer_country, paid_at, confirmed_at
		FROM orders WHERE confirmed_at >= $1::date::timestamp AT TIME ZONE $2 AND confirmed_at < ($1::date + 1)::timestamp AT TIME ZONE $2 LIMIT 1`, day.Date, day.TZ); err != nil {
		b.Fatal(err)
	}
	compared := regexp.MustCompile(`compared in ([0-9.]+m?s)\)`)
	looks := make([][]float64, len(bins))
	runs := make([][]benchProc, len(bins))
	b.ResetTimer()
	for r := range rounds {
		for i, bin := range bins {
			p, out, err := run(bin)
			if err != nil {
				b.Fatal(err)
			}
			m := compared.FindStringSubmatch(out)
			if m == nil {
				b.Fatalf("round %d, %s: no line of the comparison:\n%s", r+1, bin, out)
			}
			d, err := time.ParseDuration(m[1])
			if err != nil {
				b.Fatal(err)
			}
			looks[i], runs[i] = append(looks[i], d.Seconds()), append(runs[i], p)
			b.Logf("round %d, %s (load average %s): the look %.3fs, the run %.2fs, peak RSS %.1f MiB", r+1, bin, benchLoad(), d.Seconds(), p.wall.Seconds(), p.mib())
		}
	}
	b.StopTimer()
	for i, bin := range bins {
		b.Logf("%s, %d orders: first read %.1fs; the look %s s (median %.3f s), the run again %s s, peak RSS %s MiB",
			bin, day.Orders, first.wall.Seconds(), fmt.Sprintf("%.3f-%.3f", slices.Min(looks[i]), slices.Max(looks[i])), benchMedian(looks[i]),
			benchSpan(runs[i], benchProc.seconds), benchSpan(runs[i], benchProc.mib))
	}
	b.ReportMetric(benchMedian(looks[len(bins)-1]), "look-s")
	b.ReportMetric(slices.Max(benchMiBs(runs[len(bins)-1])), "peak-MiB")
}
