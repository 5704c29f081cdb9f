package load

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/settlekit/settle/pipeline"
)

// TestKnownHostsItsFileSystemFailed: a known_hosts file that could not be
// read was configuration (exit 2, the Job failed for good) whatever
// failed: an I/O error of its volume among them, which a retry may get
// past (KindFailed, exit 1). One missing, or a directory in its place,
// stays configuration. Each error names known_hosts and the file.
func TestKnownHostsItsFileSystemFailed(t *testing.T) {
	t.Parallel()
	// /proc/self/mem read from address 0, which no process maps, fails
	// with EIO as a volume's I/O error does.
	const eio = "/proc/self/mem"
	if _, err := os.ReadFile(eio); !errors.Is(err, syscall.EIO) {
		t.Skipf("reading %s: %v, want EIO", eio, err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for file, want := range map[string]pipeline.Kind{eio: pipeline.KindFailed, filepath.Join(dir, "none"): pipeline.KindUsage, dir: pipeline.KindUsage} {
		// Nobody listens there: the file is read before the server is dialled.
		_, err := DialSFTP(context.Background(), SFTPConfig{Addr: "127.0.0.1:1", User: "settle", Signer: signer, KnownHostsFile: file})
		if err == nil || pipeline.KindOf(err) != want || !strings.Contains(err.Error(), "known_hosts") || !strings.Contains(err.Error(), file) {
			t.Errorf("known_hosts %s: %v (kind %v), want kind %v naming known_hosts and the file", file, err, pipeline.KindOf(err), want)
		}
		if err != nil && strings.Contains(err.Error(), "a retry may read it") != (want == pipeline.KindFailed) {
			t.Errorf("known_hosts %s: %v: saying a retry may read it is wrong", file, err)
		}
	}
}
