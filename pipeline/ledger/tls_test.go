package ledger_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// TestCheckTLSRefusesPlainTextToAnotherMachine: a URL of sslmode disable,
// allow or prefer to another machine may carry the password and the
// ledger in plain text; to this machine (the tests', the demo's) it is
// taken, and so is any mode that insists on TLS.
func TestCheckTLSRefusesPlainTextToAnotherMachine(t *testing.T) {
	for _, dsn := range []string{
		"postgres://u:S3cret@db.internal:5432/db?sslmode=disable",
		"postgres://u@10.0.0.5/db?sslmode=prefer",
		"postgres://u@db.internal/db?sslmode=allow",
		"host=db.internal user=u password=S3cret sslmode=disable",
		"postgres://u@127.0.0.1,db.internal/db?sslmode=disable", // the second host is another machine
		"host=db.internal hostaddr=10.0.0.5 sslmode=disable",
		"postgres://u@0.0.0.0/db?sslmode=disable",
	} {
		err := ledger.CheckTLS(dsn, false)
		if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "sslmode=") || strings.Contains(err.Error(), "S3cret") {
			t.Errorf("%s: got %v, want a usage error naming the sslmode, without the password", dsn, err)
		}
	}
	for _, dsn := range []string{
		"postgres://u@127.0.0.1:5432/db?sslmode=disable",
		"postgres://u@localhost/db?sslmode=prefer",
		"postgres://u@[::1]:5432/db?sslmode=disable",
		"host=/var/run/postgresql user=u sslmode=disable",
		"host=db.internal hostaddr=127.0.0.1 sslmode=disable",
		"postgres://u@db.internal/db?sslmode=verify-full",
		"postgres://u@db.internal/db?sslmode=verify-ca",
		"postgres://u@db.internal/db?sslmode=require",
	} {
		if err := ledger.CheckTLS(dsn, false); err != nil {
			t.Errorf("%s: %v", dsn, err)
		}
	}
}

// TestUnverifiedServerIsRequireToAnotherMachine: sslmode=require to
// another machine encrypts without checking the server (the run warns of
// it, found by a security review); to this machine, or verifying, it does
// not count.
func TestUnverifiedServerIsRequireToAnotherMachine(t *testing.T) {
	for dsn, want := range map[string]string{
		"postgres://u:S3cret@db.internal:5432/db?sslmode=require": "db.internal",
		"host=db.internal hostaddr=10.0.0.5 sslmode=require":      "10.0.0.5",
		"postgres://u@127.0.0.1,db.internal/db?sslmode=require":   "db.internal",
		"postgres://u@127.0.0.1:5432/db?sslmode=require":          "",
		"host=/var/run/postgresql sslmode=require":                "",
		"postgres://u@db.internal/db?sslmode=verify-full":         "",
		"postgres://u@db.internal/db?sslmode=verify-ca":           "",
		"postgres://u@db.internal/db?sslmode=disable":             "",
	} {
		if got := ledger.UnverifiedServer(dsn); got != want {
			t.Errorf("%s: %q, want %q", dsn, got, want)
		}
	}
}

// TestCheckTLSRefusesARootCertWithoutACertificate: the deployment's
// Secret mounts the database server's CA as a file (replace-me until it is
// filled); lib/pq failed every connection on it, exit 1, retried to the
// Job's deadline. With verify-ca or verify-full it is refused (exit 2),
// naming the file; a file with a certificate, or "system", is taken.
func TestCheckTLSRefusesARootCertWithoutACertificate(t *testing.T) {
	dir := t.TempDir()
	placeholder := filepath.Join(dir, "database-ca.pem")
	if err := os.WriteFile(placeholder, []byte("replace-me"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "db CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"verify-full", "verify-ca"} {
		for _, bad := range []string{placeholder, filepath.Join(dir, "missing.pem")} {
			err := ledger.CheckTLS("postgres://u@db.internal/db?sslmode="+mode+"&sslrootcert="+bad, true)
			if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "sslrootcert") {
				t.Errorf("%s, sslrootcert %s: got %v, want a usage error naming sslrootcert", mode, bad, err)
			}
		}
		good := []string{ca}
		if mode == "verify-full" {
			good = append(good, "system") // lib/pq takes it with verify-full alone
		}
		for _, good := range good {
			if err := ledger.CheckTLS("postgres://u@db.internal/db?sslmode="+mode+"&sslrootcert="+good, false); err != nil {
				t.Errorf("%s, sslrootcert %s: %v", mode, good, err)
			}
		}
	}
}
