package load

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/settlekit/settle/load/sftptest"
	"github.com/settlekit/settle/pipeline"
)

// testUploader is the conformance suite of the uploader, run against every
// peer.
func testUploader(t *testing.T, p *peer) {
	t.Run("UploadsWholeFiles", func(t *testing.T) { testUploadsWholeFiles(t, p) })
	t.Run("ReplacesAndRestartsBrokenUploads", func(t *testing.T) { testReplacesAndRestarts(t, p) })
	t.Run("RejectsWrongChecksumOrSize", func(t *testing.T) { testRejectsMismatch(t, p) })
	t.Run("FinalNameIsAlwaysWhole", func(t *testing.T) { testFinalNameAlwaysWhole(t, p) })
	t.Run("CancelReturnsPromptly", func(t *testing.T) { testCancel(t, p) })
	t.Run("RefusesChangedHostKey", func(t *testing.T) { testChangedHostKey(t, p) })
	t.Run("TakesEitherHostKeyDuringARotation", func(t *testing.T) { testHostKeyRotation(t, p) })
	t.Run("RefusesUnknownHost", func(t *testing.T) { testUnknownHost(t, p) })
	t.Run("PinsHostKeyAlgorithms", func(t *testing.T) { testPinnedAlgorithms(t, p) })
	t.Run("RefusesUnauthorizedKey", func(t *testing.T) { testUnauthorizedKey(t, p) })
	t.Run("UploadMany", func(t *testing.T) { testUploadMany(t, p) })
}

func testUploadsWholeFiles(t *testing.T, p *peer) {
	s := p.dial(t)
	ctx := context.Background()
	files := map[string]content{
		"TD_empty.csv": {},
		"TD_one.csv":   content("x"),
		"TD_big.csv":   randomContent(3<<20+17, 1), // many write requests, some in flight together
	}
	for name, c := range files {
		if err := c.upload(ctx, s, name); err != nil {
			t.Fatal(err)
		}
	}
	for name, c := range files {
		if got := p.onDisk(t, name); !bytes.Equal(got, c) {
			t.Errorf("%s: %d bytes on disk, want %d (or different content)", name, len(got), len(c))
		}
		size, ok, err := s.Stat(ctx, name)
		if err != nil || !ok || size != int64(len(c)) {
			t.Errorf("Stat(%s) = %d, %v, %v; want %d, true", name, size, ok, err, len(c))
		}
		if p.renamed != nil {
			if got := p.renamed()["upload/"+name]; len(got) != 1 || got[0] != c.sha() {
				t.Errorf("%s when renamed into place: %v, want [%s]", name, got, c.sha())
			}
		}
	}
	p.noTempFiles(t)
	if _, ok, err := s.Stat(ctx, "TD_missing.csv"); ok || err != nil {
		t.Errorf("Stat of a missing file: %v, %v", ok, err)
	}
	for _, bad := range []string{"", "../x", "a/b", ".hidden", "..", "a\nb"} {
		if err := content("x").upload(ctx, s, bad); err == nil {
			t.Errorf("Upload(%q) accepted", bad)
		}
	}
}

func testReplacesAndRestarts(t *testing.T, p *peer) {
	s := p.dial(t)
	ctx := context.Background()
	const name = "TD_again.csv"
	first, second := randomContent(100_000, 2), randomContent(5_000, 3)
	if err := first.upload(ctx, s, name); err != nil {
		t.Fatal(err)
	}
	// A broken earlier upload left a longer temporary file: the next one
	// starts over instead of appending to it or writing over its start.
	if err := os.WriteFile(filepath.Join(p.upload, "."+name+".part"), randomContent(1<<20, 4), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := second.upload(ctx, s, name); err != nil {
		t.Fatal(err)
	}
	if got := p.onDisk(t, name); !bytes.Equal(got, second) {
		t.Fatalf("after re-upload: %d bytes, want the %d of the second upload", len(got), len(second))
	}
	p.noTempFiles(t)
}

func testRejectsMismatch(t *testing.T, p *peer) {
	s := p.dial(t)
	ctx := context.Background()
	c := randomContent(70_000, 5)
	wrong := randomContent(10, 6).sha()
	err := s.Upload(ctx, "TD_badsum.csv", int64(len(c)), wrong, c.open)
	if err == nil || !strings.Contains(err.Error(), "sha256") || !strings.Contains(err.Error(), "upload TD_badsum.csv to "+p.addr) {
		t.Fatalf("wrong sha256: %v", err)
	}
	err = s.Upload(ctx, "TD_short.csv", int64(len(c))+1, c.sha(), c.open)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("gave %d bytes, want %d", len(c), len(c)+1)) {
		t.Fatalf("short source: %v", err)
	}
	err = s.Upload(ctx, "TD_long.csv", int64(len(c))-1, c.sha(), c.open)
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("long source: %v", err)
	}
	err = s.Upload(ctx, "TD_open.csv", 1, c.sha(), func() (io.ReadCloser, error) { return nil, errors.New("disk gone") })
	if err == nil || !strings.Contains(err.Error(), "disk gone") {
		t.Fatalf("open failure: %v", err)
	}
	for _, name := range []string{"TD_badsum.csv", "TD_short.csv", "TD_long.csv", "TD_open.csv"} {
		if p.onDisk(t, name) != nil {
			t.Errorf("%s exists after a failed upload", name)
		}
	}
	p.noTempFiles(t)
	// The connection is still good.
	if err := c.upload(ctx, s, "TD_good.csv"); err != nil {
		t.Fatal(err)
	}
}

// testFinalNameAlwaysWhole watches the final name while versions of a file
// are uploaded: whenever it exists, it is one of them, whole.
func testFinalNameAlwaysWhole(t *testing.T, p *peer) {
	s := p.dial(t)
	const name = "TD_watched.csv"
	versions := []content{randomContent(4<<20, 7), randomContent(4<<20+1, 8), randomContent(2<<20, 9)}
	whole := map[string]bool{}
	for _, v := range versions {
		whole[v.sha()] = true
	}
	stop := make(chan struct{})
	var seen, partial atomic.Int32
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(filepath.Join(p.upload, name))
			if err != nil {
				continue
			}
			seen.Add(1)
			if !whole[content(b).sha()] {
				partial.Add(1)
			}
		}
	})
	for _, v := range versions {
		if err := v.upload(context.Background(), s, name); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if partial.Load() > 0 {
		t.Fatalf("the final name showed a partial file %d times (of %d reads)", partial.Load(), seen.Load())
	}
	if !bytes.Equal(p.onDisk(t, name), versions[len(versions)-1]) {
		t.Fatal("the last version is not in place")
	}
}

// endless is a source that never ends: only a cancellation stops its upload.
type endless struct{ read atomic.Int64 }

func (e *endless) Read(b []byte) (int, error) {
	e.read.Add(int64(len(b)))
	return len(b), nil
}

func (e *endless) Close() error { return nil }

func testCancel(t *testing.T, p *peer) {
	s := p.dial(t)
	ctx, cancel := context.WithCancel(context.Background())
	src := &endless{}
	go func() {
		for src.read.Load() < 1<<20 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	begin := time.Now()
	err := s.Upload(ctx, "TD_cancelled.csv", 1<<40, randomContent(1, 0).sha(), func() (io.ReadCloser, error) { return src, nil })
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("Upload returned %s after the start (cancelled after 1 MiB)", d)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Upload after cancel: %v, want context.Canceled", err)
	}
	if p.onDisk(t, "TD_cancelled.csv") != nil {
		t.Fatal("a cancelled upload is under its final name")
	}
	// The connection is closed; later calls say why.
	_, _, err = s.Stat(context.Background(), "TD_cancelled.csv")
	if err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("Stat after a cancelled upload: %v", err)
	}
	// The broken upload's temporary file stays (the next upload truncates it).
	os.Remove(filepath.Join(p.upload, ".TD_cancelled.csv.part"))
	// An already cancelled context sends nothing.
	if err := content("x").upload(ctx, p.dial(t), "TD_never.csv"); !errors.Is(err, context.Canceled) || p.onDisk(t, "TD_never.csv") != nil {
		t.Fatalf("upload with a cancelled context: %v", err)
	}
}

// knownHostsWith writes a known_hosts file with key for p's address.
func knownHostsWith(t testing.TB, addr string, keys ...ssh.PublicKey) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "known_hosts")
	var b strings.Builder
	b.WriteString("# other hosts first\n")
	b.WriteString(knownhosts.Line([]string{"example.com"}, keys[0]) + "\n")
	for _, k := range keys {
		b.WriteString(knownhosts.Line([]string{addr}, k) + "\n")
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func otherKey(t testing.TB) ssh.PublicKey {
	t.Helper()
	s, err := sftptest.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return s.PublicKey()
}

func testChangedHostKey(t *testing.T, p *peer) {
	cfg := p.config()
	cfg.KnownHostsFile = knownHostsWith(t, p.addr, otherKey(t))
	s, err := DialSFTP(context.Background(), cfg)
	if err == nil {
		s.Close()
		t.Fatal("connected to a server whose host key changed")
	}
	var hk *HostKeyError
	if !errors.As(err, &hk) || hk.Unknown || hk.Got == nil {
		t.Fatalf("want a HostKeyError for a changed key, got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{
		fmt.Sprintf("host key of %s does not match known_hosts %s (line 3)", p.addr, cfg.KnownHostsFile),
		"nothing was uploaded",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
	if pipeline.KindOf(err) != pipeline.KindUsage {
		t.Errorf("kind %v, want usage (a person must act)", pipeline.KindOf(err))
	}
}

// testHostKeyRotation: the SFTP server's host key is changed by listing
// the old and the new one in known_hosts while it changes (as OpenSSH
// itself takes them; README, "Rotating keys and certificates"): the
// uploader connects and uploads with either one listed beside the key the
// server has, in either order and whatever the other's algorithm, while a
// changed key alone stays refused.
func testHostKeyRotation(t *testing.T, p *peer) {
	current := mustHostKey(t, p)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	oldRSA, err := ssh.NewPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	other := otherKey(t)
	for i, keys := range [][]ssh.PublicKey{{other, current}, {current, other}, {oldRSA, current}, {current, oldRSA}} {
		cfg := p.config()
		cfg.KnownHostsFile = knownHostsWith(t, p.addr, keys...)
		s, err := DialSFTP(context.Background(), cfg)
		if err != nil {
			t.Fatalf("known_hosts listing the server's key and another (%s, %s): %v", keys[0].Type(), keys[1].Type(), err)
		}
		name := fmt.Sprintf("TD_rotation_%d.csv", i)
		c := content("rotated " + name)
		err = c.upload(context.Background(), s, name)
		s.Close()
		if err != nil || !bytes.Equal(p.onDisk(t, name), c) {
			t.Fatalf("upload with both host keys listed: %v", err)
		}
	}
	cfg := p.config()
	cfg.KnownHostsFile = knownHostsWith(t, p.addr, other)
	var hk *HostKeyError
	if s, err := DialSFTP(context.Background(), cfg); !errors.As(err, &hk) || hk.Unknown {
		if s != nil {
			s.Close()
		}
		t.Fatalf("a changed key alone: %v, want a HostKeyError", err)
	}
}

func testUnknownHost(t *testing.T, p *peer) {
	cfg := p.config()
	cfg.KnownHostsFile = knownHostsWith(t, "127.0.0.1:1", otherKey(t))
	_, err := DialSFTP(context.Background(), cfg)
	var hk *HostKeyError
	if !errors.As(err, &hk) || !hk.Unknown {
		t.Fatalf("want a HostKeyError for an unknown host, got %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "host "+p.addr+" is unknown") || !strings.Contains(msg, "nothing was uploaded") {
		t.Errorf("message: %s", msg)
	}
	for _, file := range []string{"", filepath.Join(t.TempDir(), "none")} {
		cfg.KnownHostsFile = file
		_, err := DialSFTP(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "known_hosts") || pipeline.KindOf(err) != pipeline.KindUsage {
			t.Errorf("known_hosts file %q: %v (kind %v)", file, err, pipeline.KindOf(err))
		}
	}
}

// testPinnedAlgorithms: known_hosts has only an RSA key for the server,
// which has an ed25519 key: the client must not accept the ed25519 key
// (nor fall back to it): the negotiation fails, as a changed key.
func testPinnedAlgorithms(t *testing.T, p *peer) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg := p.config()
	cfg.KnownHostsFile = knownHostsWith(t, p.addr, pub)
	_, err = DialSFTP(context.Background(), cfg)
	var hk *HostKeyError
	if !errors.As(err, &hk) || hk.Unknown || len(hk.Offered) == 0 {
		t.Fatalf("want a HostKeyError naming the offered algorithms, got %v", err)
	}
	if !strings.Contains(err.Error(), "does not match known_hosts") || !strings.Contains(err.Error(), "ssh-ed25519") {
		t.Errorf("message: %v", err)
	}
}

func testUnauthorizedKey(t *testing.T, p *peer) {
	cfg := p.config()
	cfg.Signer, _ = newClientKey(t)
	_, err := DialSFTP(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") || !strings.Contains(err.Error(), p.addr) {
		t.Fatalf("unauthorized key: %v", err)
	}
	// A configuration error (exit 2): retrying cannot help.
	if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "refused our key") {
		t.Fatalf("unauthorized key: kind %v: %v", pipeline.KindOf(err), err)
	}
}

func testUploadMany(t *testing.T, p *peer) {
	s := p.dial(t)
	var files []UploadFile
	want := map[string]content{}
	for i := range 300 {
		c := randomContent(2048+i, uint64(100+i))
		name := fmt.Sprintf("TD_many_%03d.csv", i)
		want[name] = c
		sum := c.sha()
		if i == 150 {
			sum = content("not it").sha()
		}
		files = append(files, UploadFile{Name: name, Size: int64(len(c)), SHA256: sum, Open: c.open})
	}
	err := s.UploadMany(context.Background(), files, 32)
	if err == nil || !strings.Contains(err.Error(), "TD_many_150.csv") || strings.Count(err.Error(), "upload ") != 1 {
		t.Fatalf("UploadMany with one bad file: %v", err)
	}
	for name, c := range want {
		got := p.onDisk(t, name)
		if name == "TD_many_150.csv" {
			if got != nil {
				t.Errorf("%s uploaded with a wrong checksum", name)
			}
			continue
		}
		if !bytes.Equal(got, c) {
			t.Errorf("%s: wrong content", name)
		}
	}
	p.noTempFiles(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.UploadMany(ctx, files[:3], 2); !errors.Is(err, context.Canceled) {
		t.Fatalf("UploadMany with a cancelled context: %v", err)
	}
}
