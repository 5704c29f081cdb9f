package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
	"github.com/settlekit/settle/seed"
)

// TestMetricsOfARunThatNeedsAPerson: a trade detail Infinia refuses is a
// reject in settle_orders; the exit code and the subjects needing a person
// are there; the last success comes from the ledger and survives a failed
// run.
func TestMetricsOfARunThatNeedsAPerson(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "200", "--sellers", "5", "--seed", "6")
	sim := e.sim(nil, 5, nil, 1_000_000_000_00)
	var orderNo string
	if err := e.db.QueryRow(`SELECT order_no FROM orders WHERE provider = 'infiniapay'
		AND confirmed_at >= '2026-11-23 00:00+08' AND confirmed_at < '2026-11-24 00:00+08' ORDER BY order_no LIMIT 1`).Scan(&orderNo); err != nil {
		t.Fatal(err)
	}
	sim.Infinia.RefuseOrder(orderNo, "product type not allowed")

	// An earlier date of the same shard finished well.
	earlier := e.recordRun(pipeline.Date{Year: 2026, Month: 11, Day: 22}, pipeline.Whole, pipeline.RunDone, "")
	success := time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)
	if _, err := e.db.Exec(`UPDATE settle.runs SET finished_at = $2 WHERE id = $1`, earlier, success); err != nil {
		t.Fatal(err)
	}

	file := filepath.Join(t.TempDir(), "settle.prom")
	out, code := e.runInfinia(sim, "--metrics-file", file)
	if code != 4 {
		t.Fatalf("exit %d, want 4:\n%s", code, out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	refused := e.count(`SELECT count(*) FROM settle.items WHERE state = 'rejected'`) + e.count(`SELECT count(*) FROM settle.rejects`)
	if refused == 0 {
		t.Fatal("the refused order is not rejected")
	}
	for _, want := range []string{
		fmt.Sprintf(`settle_orders{outcome="rejected"} %d`, refused),
		"settle_exit_code 4",
		fmt.Sprintf("settle_last_success_timestamp_seconds %g", float64(success.Unix())),
		"settle_unsettled_runs 1", "settle_oldest_unsettled_business_date 2.0261123e+07",
	} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, b)
		}
	}
	if strings.Contains(string(b), "settle_needs_person_subjects 0\n") || !strings.Contains(string(b), "settle_needs_person_subjects ") {
		t.Errorf("no subject needing a person counted:\n%s", b)
	}
}

// TestMetricsCountTheFailedPayoutsStillOwed: settle_effects counts
// attempts, so a revenue share that failed and was paid by the date's next
// run under a new key stays counted failed there, while the run's
// reconcile says "0 failed payouts": an alert on
// settle_effects{state="failed"} fired on a date settled in full, and no
// metric said what was failed and still owed (found by the review of the
// operations side). settle_failed_payouts is its reconcile's count.
func TestMetricsCountTheFailedPayoutsStillOwed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "60", "--sellers", "3", "--seed", "6")
	sim := e.sim(nil, 3, nil, 1_000_000_000_00)
	sim.Infinia.FailSharesOf(seed.InfiniaID(1), "RISK_CONTROL")
	file := filepath.Join(t.TempDir(), "settle.prom")
	out, code := e.runInfinia(sim, "--metrics-file", file)
	if code != 4 {
		t.Fatalf("exit %d, want 4:\n%s", code, out)
	}
	failed := e.count(`SELECT count(*) FROM settle.effects WHERE kind = 'revenue_share' AND state = 'failed'`)
	if failed == 0 {
		t.Fatalf("no revenue share failed:\n%s", out)
	}
	b := readFile(t, file)
	for _, want := range []string{
		fmt.Sprintf(`settle_effects{kind="revenue_share",state="failed"} %d`, failed),
		fmt.Sprintf("settle_failed_payouts %d", failed),
	} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("first run: metrics lack %q:\n%s", want, b)
		}
	}

	sim.Infinia.FailSharesOf(seed.InfiniaID(1), "")
	out, code = e.runInfinia(sim, "--metrics-file", file)
	if code != 0 {
		t.Fatalf("re-run: exit %d, want 0:\n%s", code, out)
	}
	b = readFile(t, file)
	for _, want := range []string{
		fmt.Sprintf(`settle_effects{kind="revenue_share",state="failed"} %d`, failed),
		"settle_failed_payouts 0",
	} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("re-run, the shares paid: metrics lack %q:\n%s", want, b)
		}
	}
}

// TestMetricsCountTheChannelsLeftUnpaid: a run with no provider
// configured ends 4 for the orders of every channel left unpaid; the
// metrics counted no subject for it, so an alert on
// settle_needs_person_subjects never fired (found by a review).
func TestMetricsCountTheChannelsLeftUnpaid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(60, 0)
	file := filepath.Join(t.TempDir(), "settle.prom")
	out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, "--metrics-file", file)
	if code != 4 {
		t.Fatalf("exit %d, want 4:\n%s", code, out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "settle_needs_person_subjects 3\n") {
		t.Errorf("want the three channels left unpaid counted:\n%s", b)
	}
}

// TestMetricsFileOfAShardThatFailedBeforeTheLedgerIsTheShards: a pod of
// the sharded nightly run (--shard 1/2, or JOB_COMPLETION_INDEX and
// SETTLE_SHARDS) that fails before its options are read (a rules file it
// cannot read, exit 2) wrote the textfile with the health of the whole
// day's "shard", which a sharded ledger has no run of: settle_unsettled_runs
// 0 and no last success, although the shard had a failed date (found by a
// review). It reads its own shard's.
func TestMetricsFileOfAShardThatFailedBeforeTheLedgerIsTheShards(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.recordRun(pipeline.Date{Year: 2026, Month: 11, Day: 22}, pipeline.Shard{Index: 1, Count: 2}, pipeline.RunFailed, "stage distribute: connection refused")
	file := filepath.Join(t.TempDir(), "settle.prom")
	out, code := e.settle("run", "--date", testDate, "--shard", "1/2", "--rules", filepath.Join(t.TempDir(), "missing.csv"),
		"--out", e.reports, "--metrics-file", file, skipAll)
	if code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `settle_unsettled_runs{shard="1-of-2"} 1`+"\n") {
		t.Errorf("the textfile of shard 1/2 does not count its failed date (the whole day's health was read):\n%s", b)
	}
}

// recordRun records a run of date d and shard in the env's ledger (migrated
// first), finished in state with note as its last error, and returns its
// id.
func (e *env) recordRun(d pipeline.Date, shard pipeline.Shard, state pipeline.RunState, note string) int64 {
	e.t.Helper()
	ctx := context.Background()
	l, err := ledger.Open(ctx, e.url, "")
	if err != nil {
		e.t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Migrate(ctx); err != nil {
		e.t.Fatal(err)
	}
	run, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: d, Shard: shard}, pipeline.RunParams{TimeZone: "Asia/Shanghai"})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := l.FinishRun(ctx, run.ID, state, note); err != nil {
		e.t.Fatal(err)
	}
	return run.ID
}

// pushgateway plays a Pushgateway: it keeps the families pushed to each
// group's path, as the Pushgateway does: a PUT replaces the group's every
// family, a POST only the families it names.
type pushgateway struct {
	*httptest.Server
	mu     sync.Mutex
	groups map[string]map[string]*dto.MetricFamily
}

func newPushgateway(t *testing.T) *pushgateway {
	gw := &pushgateway{groups: map[string]map[string]*dto.MetricFamily{}}
	gw.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dec := expfmt.NewDecoder(r.Body, expfmt.ResponseFormat(r.Header))
		got := map[string]*dto.MetricFamily{}
		for {
			var mf dto.MetricFamily
			if err := dec.Decode(&mf); err == io.EOF {
				break
			} else if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			got[mf.GetName()] = &mf
		}
		gw.mu.Lock()
		if r.Method == http.MethodPost && gw.groups[r.URL.Path] != nil {
			for name, mf := range got {
				gw.groups[r.URL.Path][name] = mf
			}
		} else {
			gw.groups[r.URL.Path] = got
		}
		gw.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(gw.Close)
	return gw
}

// last is the value of the gauge name (no labels) last pushed to path,
// and whether it was pushed.
func (gw *pushgateway) last(path, name string) (float64, bool) {
	gw.mu.Lock()
	defer gw.mu.Unlock()
	mf, ok := gw.groups[path][name]
	if !ok || len(mf.GetMetric()) != 1 {
		return 0, false
	}
	return mf.GetMetric()[0].GetGauge().GetValue(), true
}

func (gw *pushgateway) forget() {
	gw.mu.Lock()
	defer gw.mu.Unlock()
	clear(gw.groups)
}

// TestThePushgatewayHearsHowTheInvocationEnded: the Pushgateway (the
// deployment's metrics) got a run's metrics only. A nightly run that
// settled its date (exit 0 pushed) and then found a night missed ended 4
// with the Job failed, while its group still said 0; an invocation that
// failed before it opened a run (a rules file it cannot read, exit 2)
// pushed nothing, leaving the last night's 0. An alert on
// settle_exit_code fired for neither (found by a review). The shard's
// group now gets the invocation's exit code, with the shard's health, and
// keeps the last run's other figures.
func TestThePushgatewayHearsHowTheInvocationEnded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", "2026-11-23", "--orders", "10", "--sellers", "2")
	gw := newPushgateway(t)
	const group = "/metrics/job/settle/shard/0-of-1"
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC) // yesterday: 2026-11-25
	at := e.runAtClock(&now)
	if out, code := at("--date", "2026-11-23", "--metrics-pushgateway", gw.URL); code != 0 {
		t.Fatalf("run of 2026-11-23: exit %d:\n%s", code, out)
	}
	if v, ok := gw.last(group, "settle_exit_code"); !ok || v != 0 {
		t.Fatalf("after a good run the group says exit %v (pushed: %v), want 0: %v", v, ok, gw.groups)
	}
	gw.forget()
	out, code := at("--metrics-pushgateway", gw.URL)
	if code != 4 || !strings.Contains(out, "2026-11-24 before 2026-11-25 never run") {
		t.Fatalf("night with 2026-11-24 never run: exit %d, want 4:\n%s", code, out)
	}
	if v, ok := gw.last(group, "settle_exit_code"); v != 4 {
		t.Errorf("the night ended 4 (a night missed), its group says exit %v (pushed: %v)", v, ok)
	}
	if _, ok := gw.last(group, "settle_unsettled_runs"); !ok {
		t.Errorf("the invocation's push lacks the shard's health")
	}

	gw.forget()
	out, code = at("--date", "2026-11-23", "--rules", filepath.Join(t.TempDir(), "missing.csv"), "--metrics-pushgateway", gw.URL)
	if code != 2 {
		t.Fatalf("rules file missing: exit %d, want 2:\n%s", code, out)
	}
	if v, ok := gw.last(group, "settle_exit_code"); v != 2 {
		t.Errorf("the invocation failed before its run (exit 2), its group says exit %v (pushed: %v)", v, ok)
	}
	if v, ok := gw.last(group, "settle_run_business_date"); v != 20261123 {
		t.Errorf("the failed invocation's date: %v (pushed: %v), want 20261123", v, ok)
	}
	if _, ok := gw.last(group, "settle_unsettled_runs"); !ok {
		t.Errorf("the failed invocation's push lacks the shard's health")
	}
	if _, ok := gw.last(group, "settle_orders"); ok {
		t.Errorf("a push without a run replaces the last run's orders")
	}
}

// TestThePushgatewayForgetsTheFiguresOfAnEarlierRun: a run's metrics were
// added to its shard's group by POST, which replaces only the families it
// pushes, and a family with no sample is not pushed at all: a run of a
// date with no orders (a shard's quiet night, a holiday) left the group
// showing the amounts (and effects) of the date run before it, under the
// new date's settle_run_business_date (found by the review of the
// operations side). A run's metrics, which are all of its figures,
// replace the group's (PUT).
func TestThePushgatewayForgetsTheFiguresOfAnEarlierRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", "2026-11-23", "--orders", "10", "--sellers", "2")
	gw := newPushgateway(t)
	const group = "/metrics/job/settle/shard/0-of-1"
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	at := e.runAtClock(&now)
	if out, code := at("--date", "2026-11-23", "--metrics-pushgateway", gw.URL); code != 0 {
		t.Fatalf("run of 2026-11-23: exit %d:\n%s", code, out)
	}
	if !gw.has(group, "settle_amount_minor") {
		t.Fatalf("the run of 2026-11-23 pushed no amounts: %v", gw.groups)
	}
	if out, code := at("--date", "2026-11-24", "--metrics-pushgateway", gw.URL); code != 0 {
		t.Fatalf("run of 2026-11-24 (no orders): exit %d:\n%s", code, out)
	}
	if v, _ := gw.last(group, "settle_run_business_date"); v != 20261124 {
		t.Fatalf("the group's date: %v, want 20261124", v)
	}
	if gw.has(group, "settle_amount_minor") {
		t.Errorf("the group of the run of 2026-11-24, which had no orders, still shows the amounts of 2026-11-23")
	}
	if v, ok := gw.last(group, "settle_exit_code"); !ok || v != 0 {
		t.Errorf("the group's exit code: %v (pushed: %v), want 0", v, ok)
	}
	if _, ok := gw.last(group, "settle_unsettled_runs"); !ok {
		t.Errorf("the group lacks the shard's health")
	}
}

// has reports whether the group at path holds the family name.
func (gw *pushgateway) has(path, name string) bool {
	gw.mu.Lock()
	defer gw.mu.Unlock()
	_, ok := gw.groups[path][name]
	return ok
}

// TestADryRunReportsNoMetrics: a dry run that failed (a rules file it
// cannot read, exit 2) wrote its exit code to the metrics file, and with
// the Pushgateway reached by the invocation's exit code, to the shard's
// group: an operator's dry run in a pod of the deployment (whose ConfigMap
// names the Pushgateway) replaced the night's exit code and paged as a
// configuration refused. A dry run settles nothing and reports no metrics.
func TestADryRunReportsNoMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	gw := newPushgateway(t)
	file := filepath.Join(t.TempDir(), "settle.prom")
	out, code := e.settle("run", "--date", testDate, "--dry-run", "--rules", filepath.Join(t.TempDir(), "missing.csv"),
		"--out", e.reports, "--metrics-file", file, "--metrics-pushgateway", gw.URL, skipAll)
	if code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, out)
	}
	if _, err := os.Stat(file); err == nil {
		t.Errorf("a dry run wrote the metrics file")
	}
	gw.mu.Lock()
	defer gw.mu.Unlock()
	if len(gw.groups) != 0 {
		t.Errorf("a dry run pushed metrics: %v", gw.groups)
	}
}

// TestMetricsCountTheSkippedOrdersOfEarlierDates: orders a run left out on
// purpose (--skip-channel) were counted only in settle_skipped_orders, the
// last run's date's, and their date counted as settled
// (settle_unsettled_runs): a channel skipped one night and forgotten was in
// no metric the next night (found by a review). settle_skipped_orders_open
// counts the shard's every date's still left out, from the ledger, until a
// run of their date with the channel's provider configured leaves it out
// no longer.
func TestMetricsCountTheSkippedOrdersOfEarlierDates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(60, 0)
	const next = "2026-11-24" // a few of the seeded orders are the next day's
	channels := []string{"infiniapay", "payprotocol", "wechatpay"}
	leftOn := func(d string) map[string]int64 {
		t.Helper()
		out := map[string]int64{}
		for _, ch := range channels {
			out[ch] = e.count(`SELECT count(*) FROM settle.items WHERE business_date = $1 AND channel = $2 AND state IN ('recorded', 'unverified')`, d, ch)
		}
		return out
	}
	file := filepath.Join(t.TempDir(), "settle.prom")
	check := func(when, family string, want map[string]int64) {
		t.Helper()
		prom := string(readFile(t, file))
		for _, ch := range channels {
			if line := fmt.Sprintf("%s{channel=%q} %d\n", family, ch, want[ch]); !strings.Contains(prom, line) {
				t.Errorf("%s: metrics lack %q:\n%s", when, line, prom)
			}
		}
	}
	if out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, "--metrics-file", file, skipAll); code != 0 {
		t.Fatalf("exit %d, want 0:\n%s", code, out)
	}
	first := leftOn(testDate)
	if first["infiniapay"] == 0 || first["wechatpay"] == 0 || first["payprotocol"] == 0 {
		t.Fatalf("orders left out %v, want every channel's", first)
	}
	check("the night that left them out", "settle_skipped_orders", first)
	check("the night that left them out", "settle_skipped_orders_open", first)
	// Which date to run again first: the oldest of each channel's.
	oldest := func(when string, want map[string]string) {
		t.Helper()
		prom := string(readFile(t, file))
		for _, ch := range channels {
			var v float64 // "": none
			if d, err := pipeline.ParseDate(want[ch]); err == nil {
				v = float64(d.Year*10000 + int(d.Month)*100 + d.Day)
			}
			line := fmt.Sprintf("settle_skipped_orders_open_oldest_business_date{channel=%q} %g\n", ch, v)
			if !strings.Contains(prom, line) {
				t.Errorf("%s: metrics lack %q:\n%s", when, line, prom)
			}
		}
	}
	firstDates := map[string]string{"infiniapay": testDate, "payprotocol": testDate, "wechatpay": testDate}
	oldest("the night that left them out", firstDates)

	// The next night, the channels skipped again: the earlier date is
	// settled for settle_unsettled_runs, and settle_skipped_orders is the
	// next date's alone; its orders left out are still counted.
	if out, code := e.settle("run", "--date", next, "--rules", e.rules, "--out", e.reports, "--metrics-file", file, skipAll); code != 0 {
		t.Fatalf("%s: exit %d, want 0:\n%s", next, code, out)
	}
	second := leftOn(next)
	both := map[string]int64{}
	for _, ch := range channels {
		both[ch] = first[ch] + second[ch]
	}
	check("the next night", "settle_skipped_orders", second)
	check("the next night", "settle_skipped_orders_open", both)
	oldest("the next night", firstDates)
	if prom := string(readFile(t, file)); !strings.Contains(prom, "settle_unsettled_runs 0\n") {
		t.Errorf("the next night: want no date unsettled (the one that left orders out ended 0):\n%s", prom)
	}

	// A run of the first date with Pay Protocol configured records the
	// channels it leaves out without it (RecordSkipped, as channelCheck
	// does): its orders are no longer left out on purpose.
	if _, err := e.db.Exec(`UPDATE settle.runs SET skipped_channels = '{infiniapay,wechatpay}' WHERE business_date = $1`, testDate); err != nil {
		t.Fatal(err)
	}
	if out, code := e.settle("run", "--date", next, "--rules", e.rules, "--out", e.reports, "--metrics-file", file, skipAll); code != 0 {
		t.Fatalf("%s again: exit %d, want 0:\n%s", next, code, out)
	}
	both["payprotocol"] = second["payprotocol"]
	check("once the first date's Pay Protocol orders were no longer left out", "settle_skipped_orders_open", both)
	firstDates["payprotocol"] = "" // none left out the next night: 0
	if second["payprotocol"] > 0 {
		firstDates["payprotocol"] = next
	}
	oldest("once the first date's Pay Protocol orders were no longer left out", firstDates)
}

// TestALockedOutRunLeavesTheMetricsAlone: an invocation that ended 75
// (another process held its date: nothing done, nothing new known) added
// its exit code to the shard's group and wrote it to the textfile, over an
// earlier run's 4: the page on settle_exit_code == 4 cleared while the
// work still waited for a person (found by a review). A backfill whose
// first date ended 4 and whose next was locked reported 75 for both. The
// process holding the date reports its own run; the locked-out invocation
// reports its runs alone, or nothing.
func TestALockedOutRunLeavesTheMetricsAlone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(60, 0)
	gw := newPushgateway(t)
	const group = "/metrics/job/settle/shard/0-of-1"
	file := filepath.Join(t.TempDir(), "settle.prom")
	runWith := func(args ...string) (string, int) {
		return e.settle(append([]string{"run", "--rules", e.rules, "--out", e.reports, "--metrics-file", file, "--metrics-pushgateway", gw.URL}, args...)...)
	}
	check := func(when string) {
		t.Helper()
		if v, ok := gw.last(group, "settle_exit_code"); !ok || v != 4 {
			t.Errorf("%s: the group says exit %v (pushed: %v), want the 4 that still needs a person", when, v, ok)
		}
		if prom := string(readFile(t, file)); !strings.Contains(prom, "settle_exit_code 4\n") {
			t.Errorf("%s: the textfile lost the 4 that still needs a person:\n%s", when, prom)
		}
	}
	// No provider configured: the channels' orders are left for a person.
	if out, code := runWith("--date", testDate); code != 4 {
		t.Fatalf("exit %d, want 4:\n%s", code, out)
	}
	check("the run that needs a person")

	ctx := context.Background()
	l, err := ledger.Open(ctx, e.url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d, _ := pipeline.ParseDate(testDate)
	release, err := l.LockDate(ctx, d) // another process's run of the date
	if err != nil {
		t.Fatal(err)
	}
	if out, code := runWith("--date", testDate); code != 75 {
		t.Fatalf("beside a run of the date: exit %d, want 75:\n%s", code, out)
	}
	check("a run locked out of the date")

	// Told to stop while it waits for the lock: exit 1, nothing done.
	ctx2, stop := context.WithCancel(ctx)
	defer stop()
	w := &signalWriter{want: "waiting for it", seen: make(chan struct{})}
	done := make(chan int, 1)
	var errb bytes.Buffer // read once done
	go func() {
		err := run(ctx2, sendingPastMemory(plainTextArgs([]string{"settle", "run", "--database-url", e.url, "--date", testDate,
			"--rules", e.rules, "--out", e.reports, "--metrics-file", file, "--metrics-pushgateway", gw.URL, "--lock-wait", "10m"})),
			func(string) string { return "" }, w, &errb)
		done <- exitCode(err, &errb)
	}()
	select {
	case <-w.seen:
	case code := <-done:
		t.Fatalf("exit %d without waiting for the date's lock:\n%s", code, w)
	case <-time.After(3 * time.Minute):
		t.Fatalf("no word of waiting for the date's lock:\n%s", w)
	}
	stop()
	if code := <-done; code != 1 || !strings.Contains(errb.String(), "stopped while waiting for the date's lock") {
		t.Fatalf("stopped while waiting for the lock: exit %d, want 1:\n%s%s", code, w, &errb)
	}
	check("a run stopped while it waited for the date's lock")
	if err := release(); err != nil {
		t.Fatal(err)
	}

	next := pipeline.Date{Year: 2026, Month: 11, Day: 24}
	if release, err = l.LockDate(ctx, next); err != nil {
		t.Fatal(err)
	}
	defer release()
	out, code := runWith("--from", testDate, "--to", next.String())
	if code != 75 || !strings.Contains(out, "backfill stopped at "+next.String()) {
		t.Fatalf("backfill whose second date is held: exit %d, want 75:\n%s", code, out)
	}
	check("a backfill whose first date needs a person and whose second was locked")
}
