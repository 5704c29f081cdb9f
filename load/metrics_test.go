package load

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/settlekit/settle/pipeline"
)

func sampleMetrics() RunMetrics {
	return RunMetrics{
		Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Shard{Index: 1, Count: 4},
		Duration: 3 * time.Second, Items: 990, Rejects: 10,
		Totals:   []pipeline.Totals{{Channel: "infiniapay", Currency: "USD", Orders: 990, Gross: 100000, Refunded: 5000, Commission: 4750, Seller: 90250}},
		Effects:  map[string]map[pipeline.EffectState]int{"revenue_share": {pipeline.EffectSucceeded: 12, pipeline.EffectFailed: 1}},
		ExitCode: 4, NeedsPerson: 3, FailedPayouts: 1, LastSuccess: time.Unix(1795000000, 0),
		Unsettled: 2, OldestUnsettled: pipeline.Date{Year: 2026, Month: 11, Day: 20},
		Skipped:           map[pipeline.Channel]int64{"payprotocol": 7, "wechatpay": 0},
		SkippedOpen:       map[pipeline.Channel]int64{"payprotocol": 19, "wechatpay": 0},
		SkippedOpenOldest: map[pipeline.Channel]pipeline.Date{"payprotocol": {Year: 2026, Month: 11, Day: 19}},
	}
}

// TestPushMetricsToAPushgateway plays a Pushgateway: the run's metrics must
// arrive by PUT (replacing the shard's group: a family the run has no
// sample of is not left at an earlier run's figures) under job settle and
// the shard; those of an invocation without a run, or whose health is
// unknown, by POST (added: the group keeps the last run's figures).
func TestPushMetricsToAPushgateway(t *testing.T) {
	var mu sync.Mutex
	var method, path string
	var body []byte
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		method, path, body = r.Method, r.URL.Path, b
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer gw.Close()
	if err := PushMetrics(context.Background(), gw.Client(), gw.URL, sampleMetrics()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if method != http.MethodPut || path != "/metrics/job/settle/shard/1-of-4" {
		t.Fatalf("%s %s, want PUT /metrics/job/settle/shard/1-of-4", method, path)
	}
	for _, name := range []string{"settle_run_duration_seconds", "settle_orders", "settle_amount_minor", "settle_effects", "settle_last_success_timestamp_seconds", "revenue_share", "USD"} {
		if !strings.Contains(string(body), name) {
			t.Errorf("pushed body lacks %s", name)
		}
	}
	mu.Unlock()
	for name, m := range map[string]RunMetrics{"no run": {Shard: pipeline.Shard{Index: 1, Count: 4}, ExitCode: 2, NoRun: true},
		"health unknown": func() RunMetrics { m := sampleMetrics(); m.NoHealth = true; return m }()} {
		if err := PushMetrics(context.Background(), gw.Client(), gw.URL, m); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		if method != http.MethodPost {
			t.Errorf("%s: %s, want POST (the group keeps what it lacks)", name, method)
		}
		mu.Unlock()
	}
	mu.Lock()
}

func TestWriteMetricsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "settle.prom")
	whole := sampleMetrics()
	whole.Shard = pipeline.Whole // a shard of several: TestMetricsFilesOfTwoShardsOnOneHost
	if err := WriteMetricsFile(path, whole); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	for _, want := range []string{`settle_orders{outcome="item"} 990`, `settle_amount_minor{channel="infiniapay",currency="USD",part="seller"} 90250`,
		`settle_effects{kind="revenue_share",state="failed"} 1`, "settle_last_success_timestamp_seconds 1.795e+09",
		"settle_exit_code 4", "settle_needs_person_subjects 3", "settle_failed_payouts 1", "settle_unsettled_runs 2", "settle_oldest_unsettled_business_date 2.026112e+07",
		`settle_skipped_orders{channel="payprotocol"} 7`, `settle_skipped_orders{channel="wechatpay"} 0`,
		`settle_skipped_orders_open{channel="payprotocol"} 19`, `settle_skipped_orders_open{channel="wechatpay"} 0`,
		`settle_skipped_orders_open_oldest_business_date{channel="payprotocol"} 2.0261119e+07`,
		`settle_skipped_orders_open_oldest_business_date{channel="wechatpay"} 0`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics file lacks %s:\n%s", want, b)
		}
	}
	// node exporter runs as another user: the file must be readable by all.
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Fatalf("metrics file mode %v, want 0644", st.Mode().Perm())
	}
	// Never succeeded: no timestamp rather than 1970.
	m := sampleMetrics()
	m.LastSuccess = time.Time{}
	if err := WriteMetricsFile(path, m); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); strings.Contains(string(b), "last_success") {
		t.Fatalf("a last success that never was:\n%s", b)
	}
}

// TestMetricsFileParsesAsPrometheusText reads the file back with the
// Prometheus text parser (as node exporter does): every family is a gauge
// with help, and the names are those documented in the README.
func TestMetricsFileParsesAsPrometheusText(t *testing.T) {
	path := filepath.Join(t.TempDir(), "settle.prom")
	if err := WriteMetricsFile(path, sampleMetrics()); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("not the Prometheus text format: %v", err)
	}
	for _, name := range []string{"settle_run_duration_seconds", "settle_run_business_date", "settle_orders", "settle_amount_minor",
		"settle_effects", "settle_exit_code", "settle_needs_person_subjects", "settle_last_success_timestamp_seconds",
		"settle_unsettled_runs", "settle_oldest_unsettled_business_date", "settle_skipped_orders", "settle_failed_payouts"} {
		mf, ok := families[name]
		if !ok {
			t.Errorf("no %s", name)
			continue
		}
		if mf.GetType() != dto.MetricType_GAUGE || mf.GetHelp() == "" {
			t.Errorf("%s: type %v, help %q", name, mf.GetType(), mf.GetHelp())
		}
	}
}

// TestMetricsFilesOfTwoShardsOnOneHost: two shards of a date run on one
// machine (--shard 0/2 and 1/2, each with its own --metrics-file in node
// exporter's directory) wrote the same series, unlabelled: node exporter
// refuses a series collected twice ("was collected before with the same
// name and label values"), so one shard's metrics were lost, and an alert
// could not say which shard it was about (found by the review of the
// operations side). A shard of several is labelled shard="I-of-N", as the
// Pushgateway's group labels it; a whole date's series keep no label, as
// before.
func TestMetricsFilesOfTwoShardsOnOneHost(t *testing.T) {
	dir := t.TempDir()
	seen := map[string]string{} // series -> file
	for i := range 2 {
		m := sampleMetrics()
		m.Shard = pipeline.Shard{Index: i, Count: 2}
		path := filepath.Join(dir, fmt.Sprintf("settle-%d.prom", i))
		if err := WriteMetricsFile(path, m); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for name, mf := range families {
			for _, metric := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range metric.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if want := fmt.Sprintf("%d-of-2", i); labels["shard"] != want {
					t.Errorf("%s of shard %d/2: shard label %q, want %q", name, i, labels["shard"], want)
				}
				series := fmt.Sprint(name, labels)
				if other, ok := seen[series]; ok {
					t.Errorf("%s is in both %s and %s: node exporter takes it once", series, other, path)
				}
				seen[series] = path
			}
		}
	}
	m := sampleMetrics()
	m.Shard = pipeline.Whole
	path := filepath.Join(dir, "settle.prom")
	if err := WriteMetricsFile(path, m); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), "settle_exit_code 4\n") || strings.Contains(string(b), "shard=") {
		t.Errorf("a whole date's series changed:\n%s", b)
	}
	// The dates of one shard's backfill, summed into its one file, are
	// still that shard's.
	a, b := sampleMetrics(), sampleMetrics()
	if c := Combine([]RunMetrics{a, b}, 4); c.Shard != a.Shard {
		t.Errorf("two runs of shard %s combined: shard %s", a.Shard, c.Shard)
	}
}

// TestEveryMetricIsInTheREADME: every family settle writes is named in the
// README, which the on-call reads to write alerts.
func TestEveryMetricIsInTheREADME(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	families, err := sampleMetrics().registry(nil).Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if !strings.Contains(string(readme), "`"+mf.GetName()+"`") {
			t.Errorf("the README does not name %s", mf.GetName())
		}
	}
}

// TestCombineShardsOfADate: the textfile of a date whose shards one
// process ran one after another sums them, and its last success is the
// oldest shard's, none while a shard never finished.
func TestCombineShardsOfADate(t *testing.T) {
	a, b := sampleMetrics(), sampleMetrics()
	b.Shard = pipeline.Shard{Index: 2, Count: 4}
	b.Totals = append(b.Totals, pipeline.Totals{Channel: "wechatpay", Currency: "CNY", Orders: 1, Gross: 100, Seller: 100})
	b.Effects = map[string]map[pipeline.EffectState]int{"revenue_share": {pipeline.EffectSucceeded: 1}, "distribution": {pipeline.EffectUnknown: 2}}
	b.ExitCode, b.NeedsPerson, b.FailedPayouts, b.LastSuccess = 0, 0, 2, a.LastSuccess.Add(-time.Hour)
	b.Unsettled, b.OldestUnsettled = 1, pipeline.Date{Year: 2026, Month: 11, Day: 18}
	b.SkippedOpenOldest = map[pipeline.Channel]pipeline.Date{"payprotocol": {Year: 2026, Month: 11, Day: 21}, "wechatpay": {Year: 2026, Month: 11, Day: 22}}
	c := Combine([]RunMetrics{a, b}, 4)
	want := RunMetrics{Date: a.Date, Shard: pipeline.Whole, Duration: 6 * time.Second, Items: 1980, Rejects: 20,
		Totals: []pipeline.Totals{{Channel: "infiniapay", Currency: "USD", Orders: 1980, Gross: 200000, Refunded: 10000, Commission: 9500, Seller: 180500},
			{Channel: "wechatpay", Currency: "CNY", Orders: 1, Gross: 100, Seller: 100}},
		Effects:  map[string]map[pipeline.EffectState]int{"revenue_share": {pipeline.EffectSucceeded: 13, pipeline.EffectFailed: 1}, "distribution": {pipeline.EffectUnknown: 2}},
		ExitCode: 4, NeedsPerson: 3, FailedPayouts: 3, LastSuccess: b.LastSuccess, Unsettled: 3, OldestUnsettled: b.OldestUnsettled,
		Skipped: map[pipeline.Channel]int64{"payprotocol": 14, "wechatpay": 0}, SkippedOpen: map[pipeline.Channel]int64{"payprotocol": 38, "wechatpay": 0},
		SkippedOpenOldest: map[pipeline.Channel]pipeline.Date{"payprotocol": {Year: 2026, Month: 11, Day: 19}, "wechatpay": {Year: 2026, Month: 11, Day: 22}}}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("combined\n%+v\nwant\n%+v", c, want)
	}
	b.LastSuccess = time.Time{}
	if c := Combine([]RunMetrics{a, b}, 0); !c.LastSuccess.IsZero() {
		t.Fatalf("last success %v while a shard never finished", c.LastSuccess)
	}
	if c := Combine([]RunMetrics{b, a}, 0); !c.LastSuccess.IsZero() {
		t.Fatalf("last success %v while the first shard never finished", c.LastSuccess)
	}
}

// TestPushMetricsKeepsTheCredentialsOutOfErrors: a Pushgateway behind
// basic auth is given as http://user:password@host. The credentials go as
// basic auth; a failed push, which is logged, quoted the URL with them
// (found by a review).
func TestPushMetricsKeepsTheCredentialsOutOfErrors(t *testing.T) {
	const secret = "PushS3cret"
	var mu sync.Mutex
	var user, pass string
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		user, pass, _ = r.BasicAuth()
		mu.Unlock()
		http.Error(w, "nope", http.StatusInternalServerError)
	}))
	defer gw.Close()
	err := PushMetrics(context.Background(), gw.Client(), strings.Replace(gw.URL, "http://", "http://metrics:"+secret+"@", 1), sampleMetrics())
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("error %v: want the push's failure without the password", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if user != "metrics" || pass != secret {
		t.Fatalf("basic auth %q/%q, want metrics and the password", user, pass)
	}
	if err := PushMetrics(context.Background(), gw.Client(), "http://metrics:"+secret+"@host:bad/", sampleMetrics()); err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("a URL that does not parse: %v", err)
	}
}

// TestMetricsOfAnInvocationWithoutARun: an invocation that opened no run
// (it failed before one) reports its exit code and date, and the shard's
// health only when it was read: "0 unsettled runs" from a ledger that was
// never asked said all was well. Nothing of a run is reported, so a
// Pushgateway keeps the last run's figures.
func TestMetricsOfAnInvocationWithoutARun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "settle.prom")
	m := RunMetrics{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, ExitCode: 2, NoRun: true, NoHealth: true}
	if err := WriteMetricsFile(path, m); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	for _, want := range []string{"settle_exit_code 2\n", "settle_run_business_date 2.0261123e+07\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("lacks %q:\n%s", want, b)
		}
	}
	for _, not := range []string{"settle_unsettled_runs", "settle_oldest_unsettled", "settle_skipped_orders", "settle_orders", "settle_run_duration", "settle_needs_person", "settle_failed_payouts"} {
		if strings.Contains(string(b), not) {
			t.Errorf("an invocation without a run or health reports %s:\n%s", not, b)
		}
	}
	m.NoHealth, m.Unsettled, m.OldestUnsettled = false, 1, pipeline.Date{Year: 2026, Month: 11, Day: 22}
	m.SkippedOpen = map[pipeline.Channel]int64{"wechatpay": 5}
	if err := WriteMetricsFile(path, m); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	if !strings.Contains(string(b), "settle_unsettled_runs 1\n") || !strings.Contains(string(b), `settle_skipped_orders_open{channel="wechatpay"} 5`+"\n") ||
		strings.Contains(string(b), "settle_orders") || strings.Contains(string(b), "settle_skipped_orders{") {
		t.Errorf("with the shard's health read, want it and no run's figures:\n%s", b)
	}
	if c := Combine([]RunMetrics{sampleMetrics(), m}, 4); c.NoRun || c.NoHealth {
		t.Errorf("a run and a health read combined: NoRun %v, NoHealth %v", c.NoRun, c.NoHealth)
	}
	m.NoHealth = true
	if c := Combine([]RunMetrics{sampleMetrics(), m}, 4); !c.NoHealth {
		t.Errorf("a shard's health unknown combined into a known one")
	}
}
