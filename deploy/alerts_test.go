package deploy

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/yaml"

	"github.com/settlekit/settle/load"
	"github.com/settlekit/settle/pipeline"
)

// ruleFile is a Prometheus rule file.
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	} `json:"groups"`
}

// emitted is what settle writes: each metric family's label names and
// the values seen for each, from a run with every figure set.
func emitted(t *testing.T) map[string]map[string][]string {
	t.Helper()
	states := map[pipeline.EffectState]int{}
	for _, s := range []pipeline.EffectState{pipeline.EffectPlanned, pipeline.EffectSent, pipeline.EffectUnknown, pipeline.EffectSucceeded, pipeline.EffectFailed} {
		states[s] = 1
	}
	m := load.RunMetrics{
		Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Shard{Index: 1, Count: 4},
		Duration: time.Second, Items: 9, Rejects: 1,
		Totals:   []pipeline.Totals{{Channel: "infiniapay", Currency: "USD", Orders: 9, Gross: 1000, Refunded: 100, Commission: 90, Seller: 810}},
		Effects:  map[string]map[pipeline.EffectState]int{"revenue_share": states},
		ExitCode: 4, NeedsPerson: 1, LastSuccess: time.Unix(1795000000, 0),
		Unsettled: 1, OldestUnsettled: pipeline.Date{Year: 2026, Month: 11, Day: 22},
		Skipped:     map[pipeline.Channel]int64{"wechatpay": 3},
		SkippedOpen: map[pipeline.Channel]int64{"wechatpay": 5},
	}
	families := written(t, m)
	out := map[string]map[string][]string{}
	for name, mf := range families {
		labels := map[string][]string{}
		for _, metric := range mf.GetMetric() {
			for _, lp := range metric.GetLabel() {
				labels[lp.GetName()] = append(labels[lp.GetName()], lp.GetValue())
			}
		}
		if mf.GetType() != dto.MetricType_GAUGE {
			t.Errorf("%s: %v, want a gauge", name, mf.GetType())
		}
		out[name] = labels
	}
	return out
}

// written is what settle writes of m: its textfile, parsed.
func written(t *testing.T, m load.RunMetrics) map[string]*dto.MetricFamily {
	t.Helper()
	path := filepath.Join(t.TempDir(), "settle.prom")
	if err := load.WriteMetricsFile(path, m); err != nil {
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
		t.Fatal(err)
	}
	return families
}

// kubeStateMetrics are the metrics of kube-state-metrics the rules name
// (SettleJobFailed: a Job that failed without settle's word), with their
// labels; TestJobAlertsNameTheManifestsJobs checks the values.
var kubeStateMetrics = map[string]map[string][]string{
	"kube_job_failed":                       {"namespace": nil, "job_name": nil, "condition": {"true", "false", "unknown"}},
	"kube_job_status_start_time":            {"namespace": nil, "job_name": nil},
	"kube_job_spec_active_deadline_seconds": {"namespace": nil, "job_name": nil},
}

// Labels the scrape or the Pushgateway's grouping adds to every series.
var addedLabels = []string{"job", "instance", "shard"}

// Labels whose values are open (a provider's kind of effect, a channel, a
// currency): their values are not checked against the sample's.
var openLabels = []string{"kind", "channel", "currency", "namespace", "job_name"}

// selector is a metric named in an expression with its label matchers.
type selector struct {
	metric   string
	matchers map[string]string // label -> value of an = or != matcher
}

var promKeywords = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan",
	// aggregations, which may take "by (...)" before their parentheses
	"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}

// parseExpr lexes a PromQL expression far enough to find its selectors
// and the label names of its by/without/on/ignoring lists. A name followed
// by '(' is a function; durations in [] and strings are skipped.
func parseExpr(expr string) (sels []selector, grouping []string, err error) {
	r := []rune(expr)
	i := 0
	skipSpace := func() {
		for i < len(r) && unicode.IsSpace(r[i]) {
			i++
		}
	}
	ident := func() string {
		start := i
		for i < len(r) && (r[i] == '_' || r[i] == ':' || unicode.IsLetter(r[i]) || unicode.IsDigit(r[i]) && i > start) {
			i++
		}
		return string(r[start:i])
	}
	str := func() (string, error) {
		q := r[i]
		i++
		var b strings.Builder
		for i < len(r) && r[i] != q {
			if r[i] == '\\' {
				i++
			}
			if i < len(r) {
				b.WriteRune(r[i])
			}
			i++
		}
		if i >= len(r) {
			return "", strconv.ErrSyntax
		}
		i++
		return b.String(), nil
	}
	matchers := func(s *selector) error {
		i++ // {
		for {
			skipSpace()
			if i < len(r) && r[i] == '}' {
				i++
				return nil
			}
			name := ident()
			skipSpace()
			op := ""
			for i < len(r) && strings.ContainsRune("=!~", r[i]) {
				op += string(r[i])
				i++
			}
			skipSpace()
			if name == "" || op == "" || i >= len(r) || r[i] != '"' && r[i] != '\'' {
				return strconv.ErrSyntax
			}
			v, err := str()
			if err != nil {
				return err
			}
			if op == "=" || op == "!=" {
				s.matchers[name] = v
			} else {
				s.matchers[name] = "" // a regular expression: name only
			}
			skipSpace()
			if i < len(r) && r[i] == ',' {
				i++
			}
		}
	}
	for i < len(r) {
		c := r[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '"' || c == '\'':
			if _, err := str(); err != nil {
				return nil, nil, err
			}
		case c == '[':
			for i < len(r) && r[i] != ']' {
				i++
			}
			i++
		case unicode.IsDigit(c) || c == '.':
			for i < len(r) && (unicode.IsDigit(r[i]) || unicode.IsLetter(r[i]) || r[i] == '.') {
				i++
			}
		case c == '_' || c == ':' || unicode.IsLetter(c):
			name := ident()
			skipSpace()
			next := rune(0)
			if i < len(r) {
				next = r[i]
			}
			switch {
			case slices.Contains([]string{"by", "without", "on", "ignoring", "group_left", "group_right"}, name) && next == '(':
				end := strings.IndexRune(string(r[i:]), ')')
				if end < 0 {
					return nil, nil, strconv.ErrSyntax
				}
				for _, l := range strings.Split(string(r[i+1:i+end]), ",") {
					if l = strings.TrimSpace(l); l != "" {
						grouping = append(grouping, l)
					}
				}
				i += end + 1
			case next == '(' || slices.Contains(promKeywords, strings.ToLower(name)):
			default:
				s := selector{metric: name, matchers: map[string]string{}}
				if next == '{' {
					if err := matchers(&s); err != nil {
						return nil, nil, err
					}
				}
				sels = append(sels, s)
			}
		case c == '{':
			return nil, nil, strconv.ErrSyntax // a selector without a name
		default:
			i++
		}
	}
	return sels, grouping, nil
}

func TestParseExprFindsSelectors(t *testing.T) {
	sels, grouping, err := parseExpr(`sum by (shard) (rate(settle_orders{outcome="rejected", job=~"s.*"}[5m] offset 1h)) > 0 and on(shard) time() - settle_x > 28 * 3600`)
	if err != nil {
		t.Fatal(err)
	}
	if len(sels) != 2 || sels[0].metric != "settle_orders" || sels[0].matchers["outcome"] != "rejected" || sels[1].metric != "settle_x" {
		t.Fatalf("selectors %+v", sels)
	}
	if !slices.Equal(grouping, []string{"shard", "shard"}) {
		t.Fatalf("grouping %v", grouping)
	}
}

// rule is one alerting rule of a rule file.
type rule = struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	File        string            `json:"-"` // the rule file it is in
}

// alertRules is every rule of deploy/prometheus's rule files.
func alertRules(t *testing.T) []rule {
	t.Helper()
	files, err := filepath.Glob("prometheus/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no alert rules in deploy/prometheus: %v", err)
	}
	var out []rule
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var rf ruleFile
		if err := yaml.UnmarshalStrict(b, &rf); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				r.File = file
				out = append(out, r)
			}
		}
	}
	return out
}

// TestAlertRulesNameWhatSettleWrites: every metric, label and label value
// an alert rule names is one settle writes (an alert on a misspelt name
// never fires, and nobody notices), every rule has a severity and a
// summary, and every exit code the README documents other than 0 and 75
// (never reported) has a rule on settle_exit_code, as have a night with no success and a date left
// unsettled.
func TestAlertRulesNameWhatSettleWrites(t *testing.T) {
	families := emitted(t)
	for name, labels := range kubeStateMetrics {
		families[name] = labels
	}
	used := map[string]bool{}
	exitCodes := map[string]bool{}
	exitRule := regexp.MustCompile(`settle_exit_code\s*==\s*(\d+)`)
	for _, rule := range alertRules(t) {
		where := rule.File + ": " + rule.Alert
		if rule.Alert == "" || rule.Expr == "" || rule.Labels["severity"] == "" || rule.Annotations["summary"] == "" {
			t.Errorf("%s: a rule needs alert, expr, a severity label and a summary: %+v", where, rule)
		}
		if rule.For != "" {
			if _, err := model.ParseDuration(rule.For); err != nil {
				t.Errorf("%s: for %q: %v", where, rule.For, err)
			}
		}
		for _, m := range exitRule.FindAllStringSubmatch(rule.Expr, -1) {
			exitCodes[m[1]] = true
		}
		sels, grouping, err := parseExpr(rule.Expr)
		if err != nil {
			t.Errorf("%s: expr %q: %v", where, rule.Expr, err)
			continue
		}
		var known []string
		for _, s := range sels {
			labels, ok := families[s.metric]
			if !ok {
				t.Errorf("%s: settle writes no metric %s", where, s.metric)
				continue
			}
			used[s.metric] = true
			for name, value := range s.matchers {
				values, ok := labels[name]
				switch {
				case !ok && !slices.Contains(addedLabels, name):
					t.Errorf("%s: %s has no label %s", where, s.metric, name)
				case ok && value != "" && !slices.Contains(openLabels, name) && !slices.Contains(values, value):
					t.Errorf("%s: %s{%s} is never %q (written: %v)", where, s.metric, name, value, values)
				}
			}
			for name := range labels {
				known = append(known, name)
			}
		}
		for _, name := range grouping {
			if !slices.Contains(known, name) && !slices.Contains(addedLabels, name) {
				t.Errorf("%s: groups by %s, a label none of its metrics has", where, name)
			}
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, codes, _ := strings.Cut(string(readme), "\n## Exit codes\n")
	codes, _, _ = strings.Cut(codes, "\n## ")
	documented := regexp.MustCompile(`(?m)^\| (\d+) \|`).FindAllStringSubmatch(codes, -1)
	if len(documented) < 5 {
		t.Fatalf("the README's exit codes not found: %v", documented)
	}
	for _, m := range documented {
		if m[1] != "0" && m[1] != "75" && !exitCodes[m[1]] {
			t.Errorf("exit %s (README) has no alert rule on settle_exit_code", m[1])
		}
	}
	if exitCodes["75"] {
		// An invocation locked out of its date did nothing and reports
		// nothing of it (the holder reports its run): a rule on it never fires.
		t.Errorf("a rule on settle_exit_code == 75, which settle never reports")
	}
	for _, name := range []string{"settle_exit_code", "settle_last_success_timestamp_seconds", "settle_unsettled_runs"} {
		if !used[name] {
			t.Errorf("no alert rule on %s", name)
		}
	}
}

// TestNoSuccessAlertWaitsOutTheLatestNight: the alert on the age of
// settle_last_success_timestamp_seconds must not page while the nights
// succeed. One night's run may finish a minute after its schedule, and the
// next one's as late as its schedule plus startingDeadlineSeconds (the
// Job created late) plus activeDeadlineSeconds (its retries): a day (25
// hours in a zone's autumn change) plus both deadlines apart. 28 hours
// paged for a night that was only late (24 + 1 + 4 = 29 hours of
// Asia/Shanghai's). Some slack is left for the push, the scrape and the
// rule's evaluation.
func TestNoSuccessAlertWaitsOutTheLatestNight(t *testing.T) {
	const slack = 15 * time.Minute
	var need time.Duration
	var which string
	for name, cj := range objects[batchv1.CronJob](t, "CronJob") {
		s := cj.Spec
		f := strings.Fields(s.Schedule)
		if len(f) != 5 || s.TimeZone == nil || s.StartingDeadlineSeconds == nil || s.JobTemplate.Spec.ActiveDeadlineSeconds == nil {
			t.Fatalf("%s: schedule %q, timeZone or deadlines unset (TestEveryPodOfANightSettlesOneDate says why)", name, s.Schedule)
		}
		hour, herr := strconv.Atoi(f[1])
		minute, merr := strconv.Atoi(f[0])
		if herr != nil || merr != nil {
			t.Fatalf("%s: schedule %q: want a daily \"M H * * *\"", name, s.Schedule)
		}
		day, err := longestDay(*s.TimeZone, hour, minute)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		gap := day + time.Duration(*s.StartingDeadlineSeconds+*s.JobTemplate.Spec.ActiveDeadlineSeconds)*time.Second
		if gap > need {
			need, which = gap, name
		}
	}
	if need == 0 {
		t.Fatal("no CronJob in the manifests")
	}
	threshold := regexp.MustCompile(`^\s*time\(\)\s*-\s*settle_last_success_timestamp_seconds\s*>\s*(\d+)(?:\s*\*\s*(\d+))?\s*$`)
	found := 0
	for _, rule := range alertRules(t) {
		if !strings.Contains(rule.Expr, "settle_last_success_timestamp_seconds") {
			continue
		}
		found++
		m := threshold.FindStringSubmatch(rule.Expr)
		if m == nil {
			t.Errorf("%s: expr %q: want time() - settle_last_success_timestamp_seconds > N [* M]", rule.Alert, rule.Expr)
			continue
		}
		secs, _ := strconv.ParseInt(m[1], 10, 64)
		if m[2] != "" {
			mul, _ := strconv.ParseInt(m[2], 10, 64)
			secs *= mul
		}
		if got := time.Duration(secs) * time.Second; got < need+slack {
			t.Errorf("%s: pages after %s without a success; %s's nights may succeed %s apart (a day, startingDeadlineSeconds, activeDeadlineSeconds): want %s or more",
				rule.Alert, got, which, need, need+slack)
		}
	}
	if found == 0 {
		t.Error("no alert rule on the age of settle_last_success_timestamp_seconds")
	}
}

// longestDay is the longest time between two consecutive runs of a
// schedule at hour:minute every day in zone tz, over two years: 24 hours,
// or 25 across a change back from daylight-saving time.
func longestDay(tz string, hour, minute int) (time.Duration, error) {
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return 0, err
	}
	var longest time.Duration
	prev := time.Date(2025, 1, 1, hour, minute, 0, 0, loc)
	for d := prev.AddDate(0, 0, 1); d.Year() < 2027; d = d.AddDate(0, 0, 1) {
		at := time.Date(d.Year(), d.Month(), d.Day(), hour, minute, 0, 0, loc)
		longest = max(longest, at.Sub(prev))
		prev = at
	}
	return longest, nil
}

func TestLongestDay(t *testing.T) {
	for tz, want := range map[string]time.Duration{"Asia/Shanghai": 24 * time.Hour, "Europe/Berlin": 25 * time.Hour, "UTC": 24 * time.Hour} {
		if got, err := longestDay(tz, 3, 30); err != nil || got != want {
			t.Errorf("%s: %s (%v), want %s", tz, got, err, want)
		}
	}
}

// TestJobAlertsNameTheManifestsJobs: a rule on kube-state-metrics' Jobs
// selects the manifests' namespace, and its job_name pattern (anchored,
// as Prometheus does) matches every Job the manifests create - a CronJob's
// (its name, a dash and the schedule's minute) and the manual ones - and
// no other: a rule on a namespace or name settle's Jobs do not have never
// fires.
func TestJobAlertsNameTheManifestsJobs(t *testing.T) {
	var names []string
	namespaces := map[string]bool{}
	for _, cj := range objects[batchv1.CronJob](t, "CronJob") {
		names = append(names, cj.Name+"-29412345")
		namespaces[cj.Namespace] = true
	}
	for _, j := range objects[batchv1.Job](t, "Job") {
		name := j.Name
		if name == "" {
			name = j.GenerateName + "x7k2q"
		}
		names = append(names, name)
		namespaces[j.Namespace] = true
	}
	if len(namespaces) != 1 {
		t.Fatalf("the manifests' Jobs are in namespaces %v, want one", namespaces)
	}
	pattern := regexp.MustCompile(`job_name\s*=~\s*"([^"]*)"`)
	namespace := regexp.MustCompile(`namespace\s*=\s*"([^"]*)"`)
	found := 0
	for _, rule := range alertRules(t) {
		if !strings.Contains(rule.Expr, "kube_job_") {
			continue
		}
		found++
		ns := namespace.FindStringSubmatch(rule.Expr)
		if ns == nil || !namespaces[ns[1]] {
			t.Errorf("%s: %q: want namespace=%q, the manifests'", rule.Alert, rule.Expr, slices.Collect(maps.Keys(namespaces))[0])
		}
		m := pattern.FindStringSubmatch(rule.Expr)
		if m == nil {
			t.Errorf("%s: %q: want job_name=~\"...\" selecting settle's Jobs", rule.Alert, rule.Expr)
			continue
		}
		re, err := regexp.Compile("^(?:" + m[1] + ")$")
		if err != nil {
			t.Fatalf("%s: job_name=~%q: %v", rule.Alert, m[1], err)
		}
		for _, n := range names {
			if !re.MatchString(n) {
				t.Errorf("%s: job_name=~%q does not match the Job %s", rule.Alert, m[1], n)
			}
		}
		if re.MatchString("pushgateway-7f9c") || re.MatchString("payroll-29412345") {
			t.Errorf("%s: job_name=~%q matches Jobs other than settle's", rule.Alert, m[1])
		}
	}
	if found == 0 {
		t.Error("no alert rule on a failed Job of settle (kube_job_failed): a pod that pushed no metrics, a crash, pages nobody for 30 hours")
	}
}

// TestAJobFailedAtItsDeadlinePages: a rule on kube_job_failed selects a
// failed Job only for a while after it started (kube-state-metrics shows a
// failed Job as long as the Job is kept: failedJobsHistoryLimit of a
// CronJob's, and the manual Jobs until someone deletes them). A Job fails
// at its activeDeadlineSeconds after it started at the latest
// (DeadlineExceeded: a pod never scheduled or never pulled, a backfill
// longer than its deadline), so that window must outlast every Job's
// deadline, with time to page. It was 86400 s from the start, the manual
// Jobs' deadline: a re-run or backfill Job failed by its deadline had
// started 86400 s before, and SettleJobFailed never fired for it.
func TestAJobFailedAtItsDeadlinePages(t *testing.T) {
	const toPage = time.Hour
	deadlines := map[string]int64{}
	for name, cj := range objects[batchv1.CronJob](t, "CronJob") {
		if d := cj.Spec.JobTemplate.Spec.ActiveDeadlineSeconds; d != nil {
			deadlines[name] = *d
		}
	}
	for name, j := range objects[batchv1.Job](t, "Job") {
		if d := j.Spec.ActiveDeadlineSeconds; d != nil {
			deadlines[name] = *d
		}
	}
	if len(deadlines) == 0 {
		t.Fatal("no Job with activeDeadlineSeconds in the manifests")
	}
	// time() - kube_job_status_start_time < N [* M], or
	// < kube_job_spec_active_deadline_seconds + N [* M]: the window is N
	// seconds after the Job started, or after its deadline.
	gate := regexp.MustCompile(`time\(\)\s*-\s*kube_job_status_start_time\s*<\s*(kube_job_spec_active_deadline_seconds\s*\+\s*)?(\d+)(?:\s*\*\s*(\d+))?`)
	found := 0
	for _, rule := range alertRules(t) {
		if !strings.Contains(rule.Expr, "kube_job_failed") {
			continue
		}
		found++
		if !strings.Contains(rule.Expr, "kube_job_status_start_time") {
			continue // no window: it fires while the Job is kept
		}
		m := gate.FindStringSubmatch(rule.Expr)
		if m == nil {
			t.Errorf("%s: expr %q: want time() - kube_job_status_start_time < [kube_job_spec_active_deadline_seconds +] N", rule.Alert, rule.Expr)
			continue
		}
		n, _ := strconv.ParseInt(m[2], 10, 64)
		if m[3] != "" {
			mul, _ := strconv.ParseInt(m[3], 10, 64)
			n *= mul
		}
		for name, d := range deadlines {
			window := n
			if m[1] != "" {
				window += d
			}
			if latest := time.Duration(d) * time.Second; time.Duration(window)*time.Second < latest+toPage {
				t.Errorf("%s: selects a failed Job for %s after it started; %s's Job may fail %s after it started (activeDeadlineSeconds): want %s or more",
					rule.Alert, time.Duration(window)*time.Second, name, latest, latest+toPage)
			}
		}
	}
	if found == 0 {
		t.Error("no alert rule on kube_job_failed")
	}
}

// TestLeftOutOnPurposeAlertFiresOnlyForOrdersLeftOut: the rule on
// settle_skipped_orders_open, evaluated on what settle writes, fires for a
// channel whose orders an earlier night left out on purpose and nothing
// paid since, and not on a normal night (every channel 0, as settle writes
// them: none left out); and only after a day, so that a night that skips a
// channel and a run of the date the next day that pays it page nobody.
// Orders left out on purpose were in no alert: the run ends 0, its date
// settled for settle_unsettled_runs, and settle_skipped_orders is the last
// run's date's alone (found by a review).
func TestLeftOutOnPurposeAlertFiresOnlyForOrdersLeftOut(t *testing.T) {
	form := regexp.MustCompile(`^\s*settle_skipped_orders_open\s*(>|>=)\s*(\d+)\s*$`)
	night := func(open map[pipeline.Channel]int64) load.RunMetrics {
		return load.RunMetrics{Date: pipeline.Date{Year: 2026, Month: 11, Day: 24}, Shard: pipeline.Shard{Index: 1, Count: 4},
			Duration: time.Second, Items: 9, ExitCode: 0, LastSuccess: time.Unix(1795000000, 0),
			Skipped:     map[pipeline.Channel]int64{"infiniapay": 0, "payprotocol": 0, "wechatpay": 0},
			SkippedOpen: open}
	}
	// firing evaluates the rule's comparison on the textfile's samples of
	// the metric: the channels it fires for.
	firing := func(op string, threshold float64, m load.RunMetrics) []string {
		var out []string
		for _, metric := range written(t, m)["settle_skipped_orders_open"].GetMetric() {
			v := metric.GetGauge().GetValue()
			if op == ">" && v > threshold || op == ">=" && v >= threshold {
				for _, lp := range metric.GetLabel() {
					if lp.GetName() == "channel" {
						out = append(out, lp.GetValue())
					}
				}
			}
		}
		slices.Sort(out)
		return out
	}
	found := 0
	for _, rule := range alertRules(t) {
		if !strings.Contains(rule.Expr, "settle_skipped_orders_open") {
			continue
		}
		found++
		m := form.FindStringSubmatch(rule.Expr)
		if m == nil {
			t.Errorf("%s: expr %q: want settle_skipped_orders_open > N", rule.Alert, rule.Expr)
			continue
		}
		threshold, _ := strconv.ParseFloat(m[2], 64)
		normal := night(map[pipeline.Channel]int64{"infiniapay": 0, "payprotocol": 0, "wechatpay": 0})
		if got := firing(m[1], threshold, normal); len(got) != 0 {
			t.Errorf("%s: fires on a normal night, for %v", rule.Alert, got)
		}
		if len(written(t, normal)["settle_skipped_orders_open"].GetMetric()) != 3 {
			t.Errorf("a normal night writes no settle_skipped_orders_open of 0 for each channel: an alert's series goes, not to 0")
		}
		forgotten := night(map[pipeline.Channel]int64{"infiniapay": 0, "payprotocol": 0, "wechatpay": 12})
		if got := firing(m[1], threshold, forgotten); !slices.Equal(got, []string{"wechatpay"}) {
			t.Errorf("%s: fires for %v the night after wechatpay's orders were left out, want [wechatpay]", rule.Alert, got)
		}
		d, err := model.ParseDuration(rule.For)
		if err != nil || time.Duration(d) < 24*time.Hour || time.Duration(d) > 30*time.Hour {
			t.Errorf("%s: for %q (%v): want a day or more (a skip paid the next day is no ticket), and no more than a night's 30h", rule.Alert, rule.For, err)
		}
		if rule.Labels["severity"] == "page" {
			t.Errorf("%s: pages; orders left out by an operator's word are a ticket", rule.Alert)
		}
	}
	if found == 0 {
		t.Error("no alert rule on settle_skipped_orders_open: orders left out on purpose and forgotten alert nobody")
	}
}
