package deploy

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/settlekit/settle/load"
	"github.com/settlekit/settle/pipeline"
)

// objects decodes (strictly) the manifests' objects of kind.
func objects[T any](t *testing.T, kind string) map[string]*T {
	t.Helper()
	out := map[string]*T{}
	for file, docs := range documents(t) {
		for i, doc := range docs {
			var tm typeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil || tm.Kind != kind {
				continue
			}
			v := new(T)
			decodeStrict(t, file, doc, v)
			out[fmt.Sprintf("%s#%d", file, i)] = v
		}
	}
	return out
}

func settleConfig(t *testing.T) map[string]string {
	t.Helper()
	for _, cm := range objects[corev1.ConfigMap](t, "ConfigMap") {
		if cm.Name == "settle-config" {
			return cm.Data
		}
	}
	t.Fatal("no settle-config ConfigMap")
	return nil
}

// pods returns the pod template of the CronJob and of every Job.
func pods(t *testing.T) map[string]*corev1.PodSpec {
	t.Helper()
	out := map[string]*corev1.PodSpec{}
	for name, cj := range objects[batchv1.CronJob](t, "CronJob") {
		out[name] = &cj.Spec.JobTemplate.Spec.Template.Spec
	}
	for name, j := range objects[batchv1.Job](t, "Job") {
		out[name] = &j.Spec.Template.Spec
	}
	return out
}

// TestReportsOutliveThePod: wherever SETTLE_REPORTS_DIR points, every pod
// has a PersistentVolumeClaim of the manifests mounted, not an emptyDir that
// vanishes with the pod.
func TestReportsOutliveThePod(t *testing.T) {
	dir := settleConfig(t)["SETTLE_REPORTS_DIR"]
	if dir == "" {
		t.Fatal("settle-config has no SETTLE_REPORTS_DIR")
	}
	claims := map[string]bool{}
	for _, pvc := range objects[corev1.PersistentVolumeClaim](t, "PersistentVolumeClaim") {
		claims[pvc.Name] = true
	}
	for name, pod := range pods(t) {
		volumes := map[string]corev1.Volume{}
		for _, v := range pod.Volumes {
			volumes[v.Name] = v
		}
		for _, c := range pod.Containers {
			// The mount holding dir is the one with the longest path that contains it.
			var best corev1.VolumeMount
			for _, m := range c.VolumeMounts {
				p := filepath.Clean(m.MountPath)
				if (dir == p || strings.HasPrefix(dir, p+"/")) && len(p) > len(best.MountPath) {
					best = m
				}
			}
			v := volumes[best.Name]
			switch {
			case best.Name == "":
				t.Errorf("%s: nothing is mounted at %s: the reports go to the container's own filesystem", name, dir)
			case best.ReadOnly:
				t.Errorf("%s: %s is mounted read-only", name, dir)
			case v.PersistentVolumeClaim == nil || !claims[v.PersistentVolumeClaim.ClaimName]:
				t.Errorf("%s: %s is on volume %q, not on a PersistentVolumeClaim of the manifests", name, dir, best.Name)
			}
		}
	}
}

// TestTheReportsVolumeIsPruned: the reports' claim has a fixed size, and
// every run adds a date's reports to it; full, the night's reports fail
// after its money moved (exit 1, every retry the same). settle-config
// sets SETTLE_REPORTS_KEEP_DAYS, a number of days of at least one, so that
// each run removes the reports written before them.
func TestTheReportsVolumeIsPruned(t *testing.T) {
	v := settleConfig(t)["SETTLE_REPORTS_KEEP_DAYS"]
	if n, err := strconv.Atoi(v); err != nil || n < 1 {
		t.Errorf("settle-config: SETTLE_REPORTS_KEEP_DAYS %q: want a number of days, 1 or more: the reports' claim fills up otherwise", v)
	}
}

// reportBytesPerOrder is what a day's reports take on the claim, an order
// with its share of the rest: settle demo --orders 20000 --sellers 400 (50
// orders a seller, a million orders' 20,000 sellers' ratio) wrote 4,846,861
// bytes, 242 an order - orders.csv 144 (each line with its payout's key and
// the provider's reference), payouts.csv 82 (a WeChat distribution a
// WeChat order), mismatches.csv 11, sellers.csv 6. The golden day's
// orders.csv, of no payouts, gave the 100 the claim was sized by.
const reportBytesPerOrder = 250

// TestTheReportsClaimHoldsItsDays: settle-config says the claim holds
// SETTLE_REPORTS_KEEP_DAYS days of reports of a million orders a day;
// full, every night's run fails (the reports' directory cannot be
// written). 10Gi held some 42 days of them, not 90.
func TestTheReportsClaimHoldsItsDays(t *testing.T) {
	const ordersADay = 1_000_000
	cfg := settleConfig(t)
	days, err := strconv.Atoi(cfg["SETTLE_REPORTS_KEEP_DAYS"])
	if err != nil {
		t.Fatalf("SETTLE_REPORTS_KEEP_DAYS: %v", err)
	}
	need := int64(days) * ordersADay * reportBytesPerOrder
	claims := objects[corev1.PersistentVolumeClaim](t, "PersistentVolumeClaim")
	if len(claims) == 0 {
		t.Fatal("no PersistentVolumeClaim in the manifests")
	}
	for name, pvc := range claims {
		size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
		if size.Value() < need {
			t.Errorf("%s: %s holds %d days of %d orders a day at %d bytes an order (%d bytes), not the %d days settle-config keeps (%d bytes)",
				name, &size, size.Value()/(ordersADay*reportBytesPerOrder), ordersADay, reportBytesPerOrder, size.Value(), days, need)
		}
	}
}

// TestConfigMapConfiguresEveryProvider: settle-config sets up Infinia Pay,
// Pay Protocol and WeChat Pay with everything settle requires of each
// (TestEveryPodSetsWhatRunReads checks that settle reads every key, and
// that every file it names is mounted).
func TestConfigMapConfiguresEveryProvider(t *testing.T) {
	cfg := settleConfig(t)
	required := map[string][]string{
		"Infinia Pay": {"SETTLE_INFINIA_URL", "SETTLE_INFINIA_APP_ID", "SETTLE_PLATFORM_ID", "SETTLE_INFINIA_PRIVATE_KEY_FILE",
			"SETTLE_INFINIA_PUBLIC_KEY_FILE", "SETTLE_SFTP_ADDR", "SETTLE_SFTP_USER", "SETTLE_SFTP_KEY_FILE", "SETTLE_SFTP_KNOWN_HOSTS"},
		// Without the decimals a Pay Protocol refund's amount cannot be
		// read, and every order netting one is rejected (its seller is
		// never paid it): settle starts without them, the orders do not.
		// Likewise WeChat Pay's fee (SETTLE_WECHAT_MAX_FEE_BPS): without
		// it every WeChat transaction of which WeChat holds the order's
		// amount less its fee, as published, is held.
		"Pay Protocol": {"SETTLE_PAYPROTOCOL_URL", "SETTLE_PAYPROTOCOL_API_KEY", "SETTLE_PAYPROTOCOL_SECRET_FILE", "SETTLE_PAYPROTOCOL_DECIMALS"},
		"WeChat Pay": {"SETTLE_WECHAT_URL", "SETTLE_WECHAT_MCHID", "SETTLE_WECHAT_SERIAL", "SETTLE_WECHAT_PRIVATE_KEY_FILE",
			"SETTLE_WECHAT_PLATFORM_KEY_FILE", "SETTLE_WECHAT_RECEIVER_ACCOUNT", "SETTLE_WECHAT_RECEIVER_NAME", "SETTLE_WECHAT_MAX_FEE_BPS"},
	}
	for provider, keys := range required {
		for _, k := range keys {
			if cfg[k] == "" {
				t.Errorf("settle-config lacks %s (%s)", k, provider)
			}
		}
	}
}

// runReads returns the environment variables "settle run" reads: the
// EnvVars of the flags in the run command's Flags (followed into the
// functions called there: databaseFlags, infiniaFlags, ...), and the
// variables settle reads with getenv (GOMEMLIMIT, SETTLE_SHARDS, ...). A
// variable of another command (sellers webhook's SETTLE_WEBHOOK_LISTEN)
// set in a run's pod is set for nothing.
func runReads(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("../cmd/settle/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("settle's sources: %v", err)
	}
	fset := token.NewFileSet()
	funcs := map[string]*ast.FuncDecl{}
	consts := map[string]string{}
	var parsed []*ast.File
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, file)
		for _, d := range file.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					funcs[d.Name.Name] = d
				}
			case *ast.GenDecl:
				for _, sp := range d.Specs {
					if vs, ok := sp.(*ast.ValueSpec); ok && d.Tok == token.CONST {
						for i, n := range vs.Names {
							if i < len(vs.Values) {
								if v, ok := stringLit(vs.Values[i]); ok {
									consts[n.Name] = v
								}
							}
						}
					}
				}
			}
		}
	}
	out := map[string]bool{}
	seen := map[string]bool{}
	// flagsOf collects the EnvVars under n, and those of the package's
	// functions it calls.
	var flagsOf func(n ast.Node)
	flagsOf = func(n ast.Node) {
		ast.Inspect(n, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.KeyValueExpr:
				if k, ok := n.Key.(*ast.Ident); ok && k.Name == "EnvVars" {
					ast.Inspect(n.Value, func(n ast.Node) bool {
						if v, ok := stringLit(n); ok {
							out[v] = true
						}
						return true
					})
				}
			case *ast.CallExpr:
				if id, ok := n.Fun.(*ast.Ident); ok && funcs[id.Name] != nil && !seen[id.Name] {
					seen[id.Name] = true
					flagsOf(funcs[id.Name].Body)
				}
			}
			return true
		})
	}
	found := false
	for _, file := range parsed {
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			var name string
			var flags ast.Expr
			for _, e := range lit.Elts {
				if kv, ok := e.(*ast.KeyValueExpr); ok {
					if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Name" {
						name, _ = stringLit(kv.Value)
					} else if ok && k.Name == "Flags" {
						flags = kv.Value
					}
				}
			}
			if name == "run" && flags != nil {
				found = true
				flagsOf(flags)
			}
			return true
		})
		// getenv("X"), cfg.getenv(X), os.Getenv(X): read by every command.
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 1 {
				return true
			}
			var fn string
			switch f := call.Fun.(type) {
			case *ast.Ident:
				fn = f.Name
			case *ast.SelectorExpr:
				fn = f.Sel.Name
			}
			if fn != "getenv" && fn != "Getenv" && fn != "LookupEnv" {
				return true
			}
			if v, ok := stringLit(call.Args[0]); ok {
				out[v] = true
			} else if id, ok := call.Args[0].(*ast.Ident); ok && consts[id.Name] != "" {
				out[consts[id.Name]] = true
			}
			return true
		})
	}
	if !found || !out["SETTLE_RULES"] || !out["GOMEMLIMIT"] || !out["SETTLE_SHARDS"] {
		t.Fatalf("settle's sources: the run command's flags or settle's getenv calls were not found (%d variables)", len(out))
	}
	return out
}

func stringLit(n ast.Node) (string, bool) {
	b, ok := n.(*ast.BasicLit)
	if !ok || b.Kind != token.STRING {
		return "", false
	}
	v, err := strconv.Unquote(b.Value)
	return v, err == nil
}

// TestEveryPodSetsWhatRunReads: in every pod, each variable its container
// gets (env, and the keys of the ConfigMaps of its envFrom) is one "settle
// run" reads, by its flags or getenv; the run's required configuration
// (the rules, a database) is set; and every file or directory a variable
// names is under one of the container's mounts, a file of a ConfigMap or
// Secret being one of its keys. The ConfigMap alone was checked, against
// every string of settle's sources: a variable of another command, or one
// set in a pod's own env, passed.
func TestEveryPodSetsWhatRunReads(t *testing.T) {
	reads := runReads(t)
	maps := map[string]map[string]string{}
	for _, cm := range objects[corev1.ConfigMap](t, "ConfigMap") {
		maps[cm.Name] = cm.Data
	}
	secrets := map[string]map[string]string{}
	for _, s := range objects[corev1.Secret](t, "Secret") {
		secrets[s.Name] = s.StringData
	}
	for name, pod := range pods(t) {
		volumes := map[string]corev1.Volume{}
		for _, v := range pod.Volumes {
			volumes[v.Name] = v
		}
		for _, c := range pod.Containers {
			if len(c.Args) == 0 || c.Args[0] != "run" {
				t.Errorf("%s: container %s runs %q, want settle run", name, c.Name, c.Args)
				continue
			}
			env := containerEnv(t, name, c, maps)
			for k := range env {
				if !reads[k] {
					t.Errorf("%s: %s is set, and settle run does not read it", name, k)
				}
			}
			if env["SETTLE_RULES"] == "" || env["SETTLE_DATABASE_URL"] == "" && env["SETTLE_DATABASE_URL_FILE"] == "" {
				t.Errorf("%s: settle run needs SETTLE_RULES and SETTLE_DATABASE_URL(_FILE)", name)
			}
			for k, v := range env {
				if !strings.HasPrefix(v, "/") {
					continue
				}
				if err := onMount(c, volumes, maps, secrets, v); err != nil {
					t.Errorf("%s: %s=%s %v", name, k, v, err)
				}
			}
		}
	}
}

// onMount checks that the file or directory at path is on one of c's
// mounts, a file of a ConfigMap or Secret being one of its keys.
func onMount(c corev1.Container, volumes map[string]corev1.Volume, maps, secrets map[string]map[string]string, path string) error {
	var best corev1.VolumeMount
	for _, m := range c.VolumeMounts {
		p := filepath.Clean(m.MountPath)
		if (path == p || strings.HasPrefix(path, p+"/")) && len(p) > len(best.MountPath) {
			best = m
		}
	}
	if best.Name == "" {
		return fmt.Errorf("is on no mount: the image has no such file, and its root is read-only")
	}
	key := strings.TrimPrefix(path, filepath.Clean(best.MountPath)+"/")
	vol := volumes[best.Name]
	switch {
	case vol.ConfigMap != nil:
		if _, ok := maps[vol.ConfigMap.Name][key]; !ok {
			return fmt.Errorf("ConfigMap %s has no key %q", vol.ConfigMap.Name, key)
		}
	case vol.Secret != nil:
		if _, ok := secrets[vol.Secret.SecretName][key]; !ok {
			return fmt.Errorf("Secret %s has no key %q", vol.Secret.SecretName, key)
		}
	}
	return nil
}

// TestTheDatabaseIsReachedOverVerifiedTLS: every database URL of the
// manifests' Secrets connects with sslmode=verify-full against a CA file
// (sslrootcert) that every pod has mounted, a key of its Secret or
// ConfigMap. settle refuses a plain-text mode to another machine
// (ledger.CheckTLS); require and verify-ca, which it takes, do not check
// that the server is the one named, and without sslrootcert lib/pq
// trusts the image's public roots, not the database's own CA.
func TestTheDatabaseIsReachedOverVerifiedTLS(t *testing.T) {
	maps := map[string]map[string]string{}
	for _, cm := range objects[corev1.ConfigMap](t, "ConfigMap") {
		maps[cm.Name] = cm.Data
	}
	secrets := map[string]map[string]string{}
	for _, s := range objects[corev1.Secret](t, "Secret") {
		secrets[s.Name] = s.StringData
	}
	urls := 0
	for name, data := range secrets {
		for key, v := range data {
			if !strings.HasPrefix(v, "postgres://") && !strings.HasPrefix(v, "postgresql://") {
				continue
			}
			urls++
			cfg, err := pq.NewConfig(v)
			if err != nil {
				t.Fatalf("%s/%s: %v", name, key, err)
			}
			if cfg.SSLMode != pq.SSLModeVerifyFull || !filepath.IsAbs(cfg.SSLRootCert) {
				t.Errorf("%s/%s: sslmode %q, sslrootcert %q: want verify-full against the database's CA file", name, key, cfg.SSLMode, cfg.SSLRootCert)
				continue
			}
			for pname, pod := range pods(t) {
				volumes := map[string]corev1.Volume{}
				for _, vol := range pod.Volumes {
					volumes[vol.Name] = vol
				}
				for _, c := range pod.Containers {
					if err := onMount(c, volumes, maps, secrets, cfg.SSLRootCert); err != nil {
						t.Errorf("%s: sslrootcert %s of %s/%s %v", pname, cfg.SSLRootCert, name, key, err)
					}
				}
			}
		}
	}
	if urls == 0 {
		t.Fatal("no database URL in the manifests' Secrets")
	}
}

// containerEnv is c's environment as the kubelet makes it: the keys of
// its envFrom ConfigMaps, then its env, which wins.
func containerEnv(t *testing.T, pod string, c corev1.Container, maps map[string]map[string]string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil || from.Prefix != "" {
			t.Errorf("%s: envFrom %+v: want a ConfigMap of the manifests, without prefix", pod, from)
			continue
		}
		data, ok := maps[from.ConfigMapRef.Name]
		if !ok {
			t.Errorf("%s: envFrom ConfigMap %s is not in the manifests", pod, from.ConfigMapRef.Name)
		}
		for k, v := range data {
			env[k] = v
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

// TestADeadPodsLocksAreLetGo: a run holds its date's locks in a PostgreSQL
// session, idle for the whole run. When its node vanishes (a VM gone, no
// FIN sent) the server keeps that session, locks and all, until TCP
// keepalive finds it dead: by default the kernel's 2 hours and 11
// minutes, while the Job's next pod waits SETTLE_LOCK_WAIT for the lock,
// ends 75, and so on to the deadline. The database URLs of settle-secrets
// set the server's keepalives for the session (run-time parameters),
// finding a dead peer well within the lock wait.
func TestADeadPodsLocksAreLetGo(t *testing.T) {
	wait, err := time.ParseDuration(settleConfig(t)["SETTLE_LOCK_WAIT"])
	if err != nil {
		t.Fatalf("SETTLE_LOCK_WAIT: %v", err)
	}
	urls := 0
	for _, s := range objects[corev1.Secret](t, "Secret") {
		for key, v := range s.StringData {
			if !strings.HasPrefix(v, "postgres://") && !strings.HasPrefix(v, "postgresql://") {
				continue
			}
			urls++
			u, err := url.Parse(v)
			if err != nil {
				t.Fatalf("%s/%s: %v", s.Name, key, err)
			}
			q := u.Query()
			num := func(k string) time.Duration {
				n, err := strconv.Atoi(q.Get(k))
				if err != nil || n <= 0 {
					t.Errorf("%s/%s: %s=%q: want a positive number (the server's default is the kernel's)", s.Name, key, k, q.Get(k))
				}
				return time.Duration(n)
			}
			dead := (num("tcp_keepalives_idle") + num("tcp_keepalives_interval")*num("tcp_keepalives_count")) * time.Second
			if dead > wait/4 {
				t.Errorf("%s/%s: a dead peer is found after %s: want a quarter of SETTLE_LOCK_WAIT (%s) at most", s.Name, key, dead, wait)
			}
		}
	}
	if urls == 0 {
		t.Fatal("no database URL in the manifests' Secrets")
	}
}

// TestEveryPodsFilesAreItsGroups: settle writes under its volumes alone
// (cmd/settle's TestARunWritesOnlyInItsDirectories), so every container's
// root filesystem is read-only; and the reports are its group's to read
// (0640, load.ReportFileMode): every pod runs in one group, which its
// volumes' files take (fsGroup), and which a loader's pod joins.
func TestEveryPodsFilesAreItsGroups(t *testing.T) {
	for name, pod := range pods(t) {
		sc := pod.SecurityContext
		if sc == nil || sc.RunAsGroup == nil || sc.FSGroup == nil || *sc.FSGroup != *sc.RunAsGroup {
			t.Errorf("%s: want runAsGroup and fsGroup set, and the same group", name)
		}
		// With fsGroup alone the kubelet walks every file of the reports'
		// claim at each pod's start (a chown and chmod of each: months of
		// dates, on a network file system), every night and every retry.
		// settle writes its files in its own group, so the root's group
		// and mode are what they would be set to: OnRootMismatch skips
		// the walk then.
		if sc != nil && (sc.FSGroupChangePolicy == nil || *sc.FSGroupChangePolicy != corev1.FSGroupChangeOnRootMismatch) {
			t.Errorf("%s: want fsGroupChangePolicy OnRootMismatch: the kubelet re-labels every report at each pod's start otherwise", name)
		}
		for _, c := range pod.Containers {
			if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
				t.Errorf("%s: container %s: want readOnlyRootFilesystem", name, c.Name)
			}
			// The restricted Pod Security Standard, which a settlement
			// namespace should enforce, admits no pod without these.
			if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation ||
				c.SecurityContext.Capabilities == nil || !slices.Contains(c.SecurityContext.Capabilities.Drop, "ALL") || len(c.SecurityContext.Capabilities.Add) > 0 ||
				c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
				t.Errorf("%s: container %s: want allowPrivilegeEscalation false, every capability dropped and none added, not privileged", name, c.Name)
			}
		}
	}
	if load.ReportFileMode&0o007 != 0 || load.ReportFileMode&0o040 == 0 {
		t.Errorf("the reports' mode %v: want them readable by their group, and no other user", load.ReportFileMode)
	}
}

// TestTheGraceOutlastsEachPodsStopTimeout: the grace after SIGTERM
// (terminationGracePeriodSeconds) leaves settle its SETTLE_STOP_TIMEOUT as
// each container gets it (its env, its ConfigMaps), with 10 s to spare
// (the metrics of a stop cut short, 5 s); checkPod judged the default
// alone, and a SETTLE_STOP_TIMEOUT set in settle-config past the grace
// passed: the kubelet's kill then came first, with no last line.
func TestTheGraceOutlastsEachPodsStopTimeout(t *testing.T) {
	maps := map[string]map[string]string{}
	for _, cm := range objects[corev1.ConfigMap](t, "ConfigMap") {
		maps[cm.Name] = cm.Data
	}
	for name, pod := range pods(t) {
		for _, c := range pod.Containers {
			stop := pipeline.StopTimeout
			if v, ok := containerEnv(t, name, c, maps)["SETTLE_STOP_TIMEOUT"]; ok {
				d, err := time.ParseDuration(v)
				if err != nil || d <= 0 {
					t.Errorf("%s: SETTLE_STOP_TIMEOUT %q: want a positive duration", name, v)
					continue
				}
				stop = d
			}
			if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < stop+10*time.Second {
				t.Errorf("%s: terminationGracePeriodSeconds %v: want SETTLE_STOP_TIMEOUT (%s) and 10 s more", name, zeroIfNil(g), stop)
			}
		}
	}
}

func zeroIfNil(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}
