package deploy

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/settlekit/settle/pipeline"
)

// documents returns every YAML document of the manifests, by file: k8s/
// and its folders (sharded/, manual/).
func documents(t *testing.T) map[string][][]byte {
	t.Helper()
	var files []string
	err := filepath.WalkDir("k8s", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".yaml") {
			files = append(files, path)
		}
		return err
	})
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	out := map[string][][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range bytes.Split(b, []byte("\n---\n")) {
			if len(bytes.TrimSpace(doc)) > 0 {
				out[f] = append(out[f], doc)
			}
		}
	}
	return out
}

type typeMeta struct {
	Kind string `json:"kind"`
}

// decodeStrict fails on any field the API type does not have: a typo in a
// manifest is a test failure, not a silently ignored setting.
func decodeStrict(t *testing.T, name string, doc []byte, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(doc, into); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func TestManifestsDecodeStrictlyAndKeepThePolicies(t *testing.T) {
	seen := map[string]int{}
	for file, docs := range documents(t) {
		for _, doc := range docs {
			var tm typeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			seen[tm.Kind]++
			switch tm.Kind {
			case "CronJob":
				var cj batchv1.CronJob
				decodeStrict(t, file, doc, &cj)
				checkCronJob(t, file, &cj)
			case "Job":
				var j batchv1.Job
				decodeStrict(t, file, doc, &j)
				checkJob(t, file, &j.Spec)
				// A manual Job is created again for the next date or
				// range: under a fixed name the second kubectl create -f
				// failed (AlreadyExists) until the first Job, and its
				// pods' logs, were deleted.
				if j.Name != "" || j.GenerateName == "" {
					t.Errorf("%s: name %q, generateName %q: want generateName alone, a new Job at each kubectl create -f", file, j.Name, j.GenerateName)
				}
			case "ConfigMap":
				var cm corev1.ConfigMap
				decodeStrict(t, file, doc, &cm)
			case "Secret":
				var s corev1.Secret
				decodeStrict(t, file, doc, &s)
			case "PersistentVolumeClaim":
				var pvc corev1.PersistentVolumeClaim
				decodeStrict(t, file, doc, &pvc)
			default:
				t.Errorf("%s: unexpected kind %q", file, tm.Kind)
			}
		}
	}
	if seen["CronJob"] != 2 || seen["Job"] != 2 || seen["PersistentVolumeClaim"] != 1 {
		t.Fatalf("kinds %v: want the nightly CronJobs (whole-day and sharded), the re-run and backfill Jobs, and the reports' claim", seen)
	}
}

// TestApplyingTheFolderStartsOnlyTheNightlyRun: "kubectl apply -f
// deploy/k8s/" (not recursive) must create the one nightly CronJob and no
// Job: the re-run and backfill Jobs start the moment they are created, and
// the sharded CronJob is the whole-day one's alternative (a date is settled
// in one sharding). They live in manual/ and sharded/.
func TestApplyingTheFolderStartsOnlyTheNightlyRun(t *testing.T) {
	kinds := map[string]int{}
	for file, docs := range documents(t) {
		if filepath.Dir(file) != "k8s" {
			continue
		}
		for _, doc := range docs {
			var tm typeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			kinds[tm.Kind]++
		}
	}
	if kinds["CronJob"] != 1 || kinds["Job"] != 0 {
		t.Errorf("deploy/k8s/ itself holds %v: want one CronJob and no Job (those go in manual/ or sharded/)", kinds)
	}
}

// TestEveryPodOfANightSettlesOneDate: a nightly run settles yesterday in
// SETTLE_TZ, computed when each pod starts. A night's pods - a retry, or a
// shard of the Indexed Job started late - start between the schedule and
// the schedule plus startingDeadlineSeconds plus activeDeadlineSeconds;
// all of that must fall on the same day in SETTLE_TZ, the CronJob's time
// zone, or the pods of one Job settle two dates (shards split over them, a
// retry after midnight settling the next date while the first stays half
// done).
func TestEveryPodOfANightSettlesOneDate(t *testing.T) {
	maps := map[string]map[string]string{}
	for _, cm := range objects[corev1.ConfigMap](t, "ConfigMap") {
		maps[cm.Name] = cm.Data
	}
	for name, cj := range objects[batchv1.CronJob](t, "CronJob") {
		s := cj.Spec
		// The zone and the dates each container gets, from its env or the
		// ConfigMaps of its envFrom (a SETTLE_DATE there settled one date
		// every night).
		tz := ""
		for _, c := range s.JobTemplate.Spec.Template.Spec.Containers {
			env := containerEnv(t, name, c, maps)
			for _, k := range []string{"SETTLE_DATE", "SETTLE_FROM", "SETTLE_TO"} {
				if _, ok := env[k]; ok {
					t.Errorf("%s: %s is set: a nightly run settles yesterday", name, k)
				}
			}
			if i := slices.Index(c.Args, "--tz"); i >= 0 && i+1 < len(c.Args) {
				env["SETTLE_TZ"] = c.Args[i+1]
			}
			if z, ok := env["SETTLE_TZ"]; !ok || z == "" || tz != "" && z != tz {
				t.Errorf("%s: container %s: SETTLE_TZ %q: want the zone set, the same in every container", name, c.Name, z)
			}
			tz = env["SETTLE_TZ"]
		}
		if s.TimeZone == nil || *s.TimeZone != tz {
			t.Errorf("%s: timeZone %q, want SETTLE_TZ %q: yesterday is taken in SETTLE_TZ", name, zoneOf(s.TimeZone), tz)
		}
		f := strings.Fields(s.Schedule)
		hour, herr := strconv.Atoi(f[min(1, len(f)-1)])
		minute, merr := strconv.Atoi(f[0])
		if len(f) != 5 || herr != nil || merr != nil || !slices.Equal(f[2:], []string{"*", "*", "*"}) {
			t.Errorf("%s: schedule %q: want a daily \"M H * * *\"", name, s.Schedule)
			continue
		}
		for _, c := range s.JobTemplate.Spec.Template.Spec.Containers {
			if slices.Contains(c.Args, "--date") || slices.Contains(c.Args, "--from") {
				t.Errorf("%s: a nightly run settles yesterday: no --date, --from or SETTLE_DATE", name)
			}
		}
		if s.StartingDeadlineSeconds == nil || s.JobTemplate.Spec.ActiveDeadlineSeconds == nil {
			continue // checkCronJob and checkJob say so
		}
		span := time.Duration(*s.StartingDeadlineSeconds+*s.JobTemplate.Spec.ActiveDeadlineSeconds) * time.Second
		if err := nightEndsBeforeMidnight(tz, hour, minute, span); err != nil {
			t.Errorf("%s: schedule %q: %v", name, s.Schedule, err)
		}
	}
}

// nightEndsBeforeMidnight checks that a night started at hour:minute in
// zone tz and lasting span (startingDeadlineSeconds plus
// activeDeadlineSeconds) ends before the next midnight there on every day
// of two years: counted in seconds from a 24-hour midnight, a night that
// crosses a daylight-saving change (a 23-hour day) ran an hour past it,
// and its last pods settled the next date. It also checks that every day
// has hour:minute: the CronJob controller (robfig/cron) skips a schedule
// the clocks jump over (02:30 in America/New_York on the spring-forward
// day) rather than run it late, so that night's date was never settled -
// and no run of it recorded, so no metric counted it unsettled.
func nightEndsBeforeMidnight(tz string, hour, minute int, span time.Duration) error {
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return err
	}
	for d := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() < 2027; d = d.AddDate(0, 0, 1) {
		start := time.Date(d.Year(), d.Month(), d.Day(), hour, minute, 0, 0, loc)
		if start.Day() != d.Day() || start.Hour() != hour || start.Minute() != minute {
			return fmt.Errorf("%02d:%02d does not exist on %s in %s (the clocks jump over it): the CronJob skips that night, and the date before it is never settled (nor counted unsettled, as no run of it is recorded); schedule the night at a time every day has",
				hour, minute, d.Format(time.DateOnly), tz)
		}
		next := time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc)
		if last := start.Add(span); !last.Before(next) {
			return fmt.Errorf("the night of %s in %s starts at %s and may start a pod as late as %s (schedule + startingDeadlineSeconds + activeDeadlineSeconds): past midnight it settles the next date",
				d.Format(time.DateOnly), tz, start.Format("15:04 MST"), last.In(loc).Format("2006-01-02 15:04 MST"))
		}
	}
	return nil
}

// TestANightIsMeasuredInItsZonesHours: a night over a daylight-saving
// change is an hour shorter; 24 hours counted from midnight let it through.
func TestANightIsMeasuredInItsZonesHours(t *testing.T) {
	// 01:30 + 22h is 23:30 by the clock on most days, and 00:30 the next
	// day on 2025-03-09 in New York (02:00 skipped).
	if err := nightEndsBeforeMidnight("America/New_York", 1, 30, 22*time.Hour); err == nil {
		t.Error("a night of 22 hours from 01:30 in America/New_York passed: on the spring-forward day it ends after midnight")
	}
	if err := nightEndsBeforeMidnight("Asia/Shanghai", 2, 30, 5*time.Hour); err != nil {
		t.Error(err)
	}
}

// TestANightTheClocksSkipIsRefused: Kubernetes' CronJob controller
// (robfig/cron) does not run a schedule that falls in a daylight-saving
// gap that day, nor later: with SETTLE_TZ and timeZone America/New_York
// and the schedule 02:30, the night of the spring-forward day never
// started, and the date before it was never settled by the nightly run,
// silently (a date with no run is in no metric). The zone's other hours,
// and Lord Howe's half-hour gap's other half, pass.
func TestANightTheClocksSkipIsRefused(t *testing.T) {
	for _, c := range []struct {
		tz           string
		hour, minute int
		skipped      bool
	}{
		{"America/New_York", 2, 30, true}, {"Europe/Berlin", 2, 30, true}, {"Australia/Lord_Howe", 2, 15, true},
		{"America/New_York", 3, 30, false}, {"America/New_York", 1, 30, false}, {"Australia/Lord_Howe", 2, 45, false},
	} {
		err := nightEndsBeforeMidnight(c.tz, c.hour, c.minute, 4*time.Hour)
		if got := err != nil && strings.Contains(err.Error(), "does not exist"); got != c.skipped {
			t.Errorf("%02d:%02d in %s: got %v, want refused %v", c.hour, c.minute, c.tz, err, c.skipped)
		}
	}
}

func checkCronJob(t *testing.T, file string, cj *batchv1.CronJob) {
	t.Helper()
	s := cj.Spec
	if s.TimeZone == nil || *s.TimeZone == "" {
		t.Errorf("%s: timeZone must be set", file)
	}
	if s.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("%s: concurrencyPolicy %q, want Forbid", file, s.ConcurrencyPolicy)
	}
	if s.StartingDeadlineSeconds == nil || *s.StartingDeadlineSeconds <= 0 {
		t.Errorf("%s: startingDeadlineSeconds must be set", file)
	}
	checkJob(t, file, &s.JobTemplate.Spec)
}

func checkJob(t *testing.T, file string, s *batchv1.JobSpec) {
	t.Helper()
	indexed := s.CompletionMode != nil && *s.CompletionMode == batchv1.IndexedCompletion
	switch {
	case indexed:
		if s.BackoffLimitPerIndex == nil || *s.BackoffLimitPerIndex > 3 || s.Completions == nil || s.Parallelism == nil || *s.Completions != *s.Parallelism {
			t.Errorf("%s: an indexed job wants a small backoffLimitPerIndex and one pod per shard", file)
		}
		if !hasEnv(s.Template.Spec.Containers, "SETTLE_SHARDS", func(v string) bool { return v == strconv.Itoa(int(*s.Completions)) }) {
			t.Errorf("%s: SETTLE_SHARDS must equal completions", file)
		}
	case s.BackoffLimit == nil || *s.BackoffLimit > 3:
		t.Errorf("%s: backoffLimit must be small (at most 3)", file)
	}
	if s.ActiveDeadlineSeconds == nil || *s.ActiveDeadlineSeconds <= 0 {
		t.Errorf("%s: activeDeadlineSeconds must be set", file)
	}
	if s.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("%s: restartPolicy %q, want Never", file, s.Template.Spec.RestartPolicy)
	}
	checkFailurePolicy(t, file, s.PodFailurePolicy, indexed)
	if indexed && s.MaxFailedIndexes != nil && *s.MaxFailedIndexes < *s.Completions {
		t.Errorf("%s: maxFailedIndexes %d: a shard's failure would stop the shards still paying", file, *s.MaxFailedIndexes)
	}
	checkPod(t, file, &s.Template.Spec)
}

// checkFailurePolicy: exit 2, 3 and 4 fail the Job (a retry cannot help),
// exit 1 is retried (counted), and so are 75 (the date's lock, after
// --lock-wait) and a kill (137: the grace period or the memory limit over;
// 143), disruptions are ignored whatever the exit. In an indexed Job exit 3
// and 4 fail their index alone (FailJob would terminate the other shards
// mid-run: found by a review), exit 2 the Job. Judged by what Kubernetes
// does with each exit (policyAction: the first rule that matches), not by
// the rules' lists: a rule before them, or one with NotIn, passed before.
func checkFailurePolicy(t *testing.T, file string, p *batchv1.PodFailurePolicy, indexed bool) {
	t.Helper()
	if p == nil {
		t.Errorf("%s: podFailurePolicy missing", file)
		return
	}
	needsPerson := batchv1.PodFailurePolicyActionFailJob
	if indexed {
		needsPerson = batchv1.PodFailurePolicyActionFailIndex
	}
	want := map[int32]batchv1.PodFailurePolicyAction{
		1: batchv1.PodFailurePolicyActionCount, 2: batchv1.PodFailurePolicyActionFailJob, 3: needsPerson, 4: needsPerson,
		75: batchv1.PodFailurePolicyActionCount, 137: batchv1.PodFailurePolicyActionCount, 143: batchv1.PodFailurePolicyActionCount,
	}
	for code, w := range want {
		if got := policyAction(p, code, false); got != w {
			t.Errorf("%s: a pod that exits %d: %s, want %s", file, code, got, w)
		}
		if got := policyAction(p, code, true); got != batchv1.PodFailurePolicyActionIgnore && code != 2 && code != 3 && code != 4 {
			t.Errorf("%s: a pod disrupted (DisruptionTarget) that exits %d: %s, want Ignore", file, code, got)
		}
	}
}

// policyAction is what the Job controller does with a pod of container
// "settle" that failed with code (disrupted: the pod has the
// DisruptionTarget condition): the action of the first rule that matches,
// Count when none does (kubernetes.io, "Pod failure policy").
func policyAction(p *batchv1.PodFailurePolicy, code int32, disrupted bool) batchv1.PodFailurePolicyAction {
	for _, r := range p.Rules {
		if e := r.OnExitCodes; e != nil {
			if e.ContainerName != nil && *e.ContainerName != "settle" {
				continue
			}
			in := slices.Contains(e.Values, code)
			if e.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && in || e.Operator == batchv1.PodFailurePolicyOnExitCodesOpNotIn && !in {
				return r.Action
			}
		}
		for _, c := range r.OnPodConditions {
			if disrupted && c.Type == corev1.DisruptionTarget && (c.Status == "" || c.Status == corev1.ConditionTrue) {
				return r.Action
			}
		}
	}
	return batchv1.PodFailurePolicyActionCount
}

// checkPod: non-root, keys and rules mounted as files from a Secret and a
// ConfigMap, no secret in the environment.
func checkPod(t *testing.T, file string, pod *corev1.PodSpec) {
	t.Helper()
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Errorf("%s: the pod must run as non-root", file)
	}
	if pod.SecurityContext == nil || pod.SecurityContext.SeccompProfile == nil || pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: the pod must run under the runtime's default seccomp profile", file)
	}
	// On SIGTERM (a drain, the deadline) settle lets the requests in
	// flight answer for pipeline.InFlightGrace, records their outcomes and
	// the run's (5 s at most), then pushes its metrics (10 s at most):
	// killed before, an answer that came is recorded unknown, and asked
	// again by the next run. Whatever hangs (a database that answers
	// nothing), it ends by pipeline.StopTimeout (SETTLE_STOP_TIMEOUT's
	// default) with its last log line; the kill comes after it.
	// Kubernetes' default grace is 30 s.
	if need := pipeline.InFlightGrace + 5*time.Second + 10*time.Second; pipeline.StopTimeout < need {
		t.Errorf("pipeline.StopTimeout %s cuts a stop short of the %s it takes", pipeline.StopTimeout, need)
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < pipeline.StopTimeout+10*time.Second {
		t.Errorf("%s: terminationGracePeriodSeconds must leave settle %s (pipeline.StopTimeout) after SIGTERM, with 10 s to spare", file, pipeline.StopTimeout)
	}
	// settle never calls the Kubernetes API: a token in the pod is a
	// credential for whoever takes it over.
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken must be false", file)
	}
	// The trade files being built sit on an emptyDir of the node's disk:
	// bounded, so that a runaway (or a day far beyond the measured 85
	// bytes a row) fills the pod's allowance and not the node's disk,
	// and the pod's ephemeral-storage limit holds the volume and the
	// container's logs (the kubelet evicts a pod whose emptyDirs and
	// containers together pass the sum of its containers' limits).
	var limit resource.Quantity
	for _, c := range pod.Containers {
		if q, ok := c.Resources.Limits[corev1.ResourceEphemeralStorage]; ok {
			limit.Add(q)
		} else {
			t.Errorf("%s: container %s has no ephemeral-storage limit", file, c.Name)
		}
		if _, ok := c.Resources.Requests[corev1.ResourceEphemeralStorage]; !ok {
			t.Errorf("%s: container %s has no ephemeral-storage request", file, c.Name)
		}
	}
	for _, v := range pod.Volumes {
		if v.EmptyDir == nil {
			continue
		}
		if v.EmptyDir.SizeLimit == nil {
			t.Errorf("%s: emptyDir %s has no sizeLimit", file, v.Name)
			continue
		}
		room := limit.DeepCopy()
		room.Sub(*v.EmptyDir.SizeLimit)
		if room.Cmp(resource.MustParse("256Mi")) < 0 {
			t.Errorf("%s: emptyDir %s of %s leaves the containers' logs under 256Mi of the pod's %s of ephemeral storage", file, v.Name, v.EmptyDir.SizeLimit, &limit)
		}
	}
	var secretVol, rulesVol bool
	for _, v := range pod.Volumes {
		secretVol = secretVol || v.Secret != nil
		rulesVol = rulesVol || v.ConfigMap != nil && v.ConfigMap.Name == "settle-rules"
	}
	if !secretVol || !rulesVol {
		t.Errorf("%s: keys must come from a Secret volume and the rules from the settle-rules ConfigMap", file)
	}
	for _, c := range pod.Containers {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				t.Errorf("%s: secret %s in the environment; mount it as a file", file, e.Name)
			}
			if strings.Contains(strings.ToLower(e.Name), "key") && !strings.HasSuffix(e.Name, "_FILE") {
				t.Errorf("%s: %s looks like key material in the environment", file, e.Name)
			}
		}
	}
}

func hasEnv(cs []corev1.Container, name string, ok func(string) bool) bool {
	for _, c := range cs {
		for _, e := range c.Env {
			if e.Name == name && ok(e.Value) {
				return true
			}
		}
	}
	return false
}

// TestTheImageRunsAsTheManifestsUser: the image's USER is numeric and the
// user every pod runs as. With a name (distroless's "nonroot:nonroot") the
// kubelet cannot verify runAsNonRoot: a pod without runAsUser - a
// platform's own manifest, or these with runAsUser left out - fails to
// start ("image has non-numeric user (nonroot), cannot verify user is
// non-root").
func TestTheImageRunsAsTheManifestsUser(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var user string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && strings.EqualFold(f[0], "USER") {
			user = f[1] // the last one is the final stage's
		}
	}
	uid, gid, _ := strings.Cut(user, ":")
	u, uerr := strconv.ParseInt(uid, 10, 64)
	_, gerr := strconv.ParseInt(gid, 10, 64)
	if uerr != nil || gid != "" && gerr != nil || u == 0 {
		t.Fatalf("Dockerfile: USER %q: want a numeric non-root uid[:gid]", user)
	}
	for name, pod := range pods(t) {
		if sc := pod.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != u {
			t.Errorf("%s: runAsUser is not the image's user %d", name, u)
		}
	}
}

func zoneOf(z *string) string {
	if z == nil {
		return "(unset)"
	}
	return *z
}

// TestTheBuildContextLeavesOutWhatGitDoes: docker build -f deploy/Dockerfile
// . sends the checkout; COPY . . put the reports of local runs (sellers and
// their amounts), a local PostgreSQL's data directory and paysim's keys in
// a layer of the build stage (in a registry's build cache, too). Every
// .gitignore entry must be in .dockerignore, written for the context's
// root (a pattern at any depth as **/).
func TestTheBuildContextLeavesOutWhatGitDoes(t *testing.T) {
	lines := func(name string) []string {
		b, err := os.ReadFile(filepath.Join("..", name))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				out = append(out, l)
			}
		}
		return out
	}
	ignored := lines(".dockerignore")
	for _, g := range lines(".gitignore") {
		want := strings.TrimPrefix(g, "/")
		if !strings.HasPrefix(g, "/") && !strings.Contains(strings.TrimSuffix(g, "/"), "/") {
			want = "**/" + g // .gitignore matches a bare name at any depth
		}
		if !slices.Contains(ignored, want) {
			t.Errorf(".gitignore leaves out %s, the image's build context does not: want %q in .dockerignore", g, want)
		}
	}
	if slices.Contains(ignored, ".git") || slices.Contains(ignored, ".git/") {
		t.Error(".dockerignore leaves out .git: settle version loses its revision")
	}
}

// TestALocalRunsFilesAreLeftOut: a run from the repository's root (the
// README's "Settle a day against paysim") writes its reports under
// reports/ and its trade files - sellers' Infinia ids and amounts - under
// work/, --work-dir's default; work/ was in neither .gitignore nor
// .dockerignore, so git showed it untracked and docker build put it in
// the build context (found by the operator's README walk-through).
func TestALocalRunsFilesAreLeftOut(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", ".gitignore"))
	if err != nil {
		t.Fatal(err)
	}
	entries := strings.Fields(string(b))
	for _, dir := range []string{"/reports/", "/work/"} {
		if !slices.Contains(entries, dir) {
			t.Errorf(".gitignore does not leave out %s, which a local run writes (and so neither does .dockerignore)", dir)
		}
	}
}

// TestEveryPodRunsOneBuildPinnedByDigest: a tag (registry/settle:v1,
// :latest) is a name a push can move: a retry of the night, a shard
// started late or a re-run the next morning could run another build than
// the night's first pod, and what ran could not be told afterwards. Every
// container names its image by digest (name[:tag]@sha256:<64 hex>), or
// the placeholder @sha256:replace-me for the operator to fill (the
// kubelet refuses it: InvalidImageName, no pod runs), and every manifest
// names the same one, so that the manual Jobs run the nightly's build.
func TestEveryPodRunsOneBuildPinnedByDigest(t *testing.T) {
	images := map[string][]string{}
	for name, pod := range pods(t) {
		for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
			if err := pinned(c.Image); err != nil {
				t.Errorf("%s: container %s: %v", name, c.Name, err)
			}
			images[c.Image] = append(images[c.Image], name)
		}
	}
	if len(images) != 1 {
		t.Errorf("the manifests name %d images, want one build for every pod: %v", len(images), images)
	}
}

// pinned returns an error unless image names its digest.
func pinned(image string) error {
	name, digest, ok := strings.Cut(image, "@")
	hex := strings.TrimPrefix(digest, "sha256:")
	switch {
	case !ok || name == "" || !strings.HasPrefix(digest, "sha256:"):
		return fmt.Errorf("image %q: want it pinned by digest, NAME@sha256:DIGEST (a tag alone can be moved by a push)", image)
	case hex == "replace-me":
		return nil
	case len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "":
		return fmt.Errorf("image %q: the digest is not 64 lower-case hex digits", image)
	}
	return nil
}

func TestPinnedImages(t *testing.T) {
	for image, ok := range map[string]bool{
		"registry.example/settle@sha256:" + strings.Repeat("ab", 32):   true,
		"registry.example/settle:v1@sha256:" + strings.Repeat("0", 64): true,
		"registry.example/settle:v1@sha256:replace-me":                 true,
		"registry.example/settle:v1":                                   false,
		"registry.example/settle:latest":                               false,
		"registry.example/settle":                                      false,
		"registry.example/settle@sha256:abc":                           false,
		"registry.example/settle@sha256:" + strings.Repeat("AB", 32):   false,
		"registry.example/settle@sha512:" + strings.Repeat("ab", 64):   false,
		"@sha256:" + strings.Repeat("ab", 32):                          false,
	} {
		if err := pinned(image); (err == nil) != ok {
			t.Errorf("%s: %v, want pinned %v", image, err, ok)
		}
	}
}
