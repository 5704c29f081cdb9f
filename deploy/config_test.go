package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
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

// TestConfigMapConfiguresEveryProvider: settle-config sets up Infinia Pay,
// Pay Protocol and WeChat Pay with everything settle requires of each;
// every key is one settle reads (no typo is silently ignored); every file
// it names under the secrets mount is a key of settle-secrets.
func TestConfigMapConfiguresEveryProvider(t *testing.T) {
	cfg := settleConfig(t)
	required := map[string][]string{
		"Infinia Pay": {"SETTLE_INFINIA_URL", "SETTLE_INFINIA_APP_ID", "SETTLE_PLATFORM_ID", "SETTLE_INFINIA_PRIVATE_KEY_FILE",
			"SETTLE_INFINIA_PUBLIC_KEY_FILE", "SETTLE_SFTP_ADDR", "SETTLE_SFTP_USER", "SETTLE_SFTP_KEY_FILE", "SETTLE_SFTP_KNOWN_HOSTS"},
		// Without the decimals a Pay Protocol refund's amount cannot be
		// read, and every order netting one is rejected (its seller is
		// never paid it): settle starts without them, the orders do not.
		"Pay Protocol": {"SETTLE_PAYPROTOCOL_URL", "SETTLE_PAYPROTOCOL_API_KEY", "SETTLE_PAYPROTOCOL_SECRET_FILE", "SETTLE_PAYPROTOCOL_DECIMALS"},
		"WeChat Pay": {"SETTLE_WECHAT_URL", "SETTLE_WECHAT_MCHID", "SETTLE_WECHAT_SERIAL", "SETTLE_WECHAT_PRIVATE_KEY_FILE",
			"SETTLE_WECHAT_PLATFORM_KEY_FILE", "SETTLE_WECHAT_RECEIVER_ACCOUNT", "SETTLE_WECHAT_RECEIVER_NAME"},
	}
	for provider, keys := range required {
		for _, k := range keys {
			if cfg[k] == "" {
				t.Errorf("settle-config lacks %s (%s)", k, provider)
			}
		}
	}
	read := envVarsOfSettle(t)
	var secretKeys map[string]string
	for _, s := range objects[corev1.Secret](t, "Secret") {
		if s.Name == "settle-secrets" {
			secretKeys = s.StringData
		}
	}
	for k, v := range cfg {
		if !read[k] {
			t.Errorf("settle-config sets %s, which settle does not read", k)
		}
		if rest, ok := strings.CutPrefix(v, "/etc/settle/secrets/"); ok {
			if _, ok := secretKeys[rest]; !ok {
				t.Errorf("%s=%s: settle-secrets has no key %q", k, v, rest)
			}
		}
	}
}

// envVarsOfSettle returns the environment variables settle's sources name
// (EnvVars of its flags, getenv calls).
func envVarsOfSettle(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("../cmd/settle/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("settle's sources: %v", err)
	}
	re := regexp.MustCompile(`"((?:SETTLE|JOB)_[A-Z0-9_]+)"`)
	out := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			out[string(m[1])] = true
		}
	}
	return out
}
