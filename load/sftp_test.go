package load

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/sftptest"
)

// peer is an SFTP server the uploader is tested against: the in-process
// sftptest server or OpenSSH's sshd.
type peer struct {
	name       string
	addr       string
	user       string
	key        ssh.Signer // authorized client key
	keyPEM     []byte     // the same, in OpenSSH PEM form (for the sftp command)
	knownHosts string     // known_hosts file with the server's key
	upload     string     // directory on disk that is the remote "upload"
	// renamed, when the peer can tell, returns the sha256 of each file as
	// it was when renamed onto its final name (path relative to the root).
	renamed func() map[string][]string
	pid     int // sshd's process id, 0 for the in-process server
}

func (p *peer) config() SFTPConfig {
	return SFTPConfig{Addr: p.addr, User: p.user, Signer: p.key, KnownHostsFile: p.knownHosts, HandshakeTimeout: 10 * time.Second}
}

func (p *peer) dial(t testing.TB) *SFTP {
	t.Helper()
	s, err := DialSFTP(context.Background(), p.config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newClientKey generates an ed25519 client key, as a signer and as PEM.
func newClientKey(t testing.TB) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return signer, pem.EncodeToMemory(block)
}

// startSFTPTest starts the in-process server as a peer.
func startSFTPTest(t testing.TB, faults *fault.Injector) *peer {
	t.Helper()
	root := t.TempDir()
	p := &peer{name: "sftptest", user: "settle", upload: filepath.Join(root, "upload")}
	if err := os.Mkdir(p.upload, 0o755); err != nil {
		t.Fatal(err)
	}
	p.key, p.keyPEM = newClientKey(t)
	var mu sync.Mutex
	renamed := map[string][]string{}
	srv, err := sftptest.Start(sftptest.Config{
		Root: root, AuthorizedKeys: []ssh.PublicKey{p.key.PublicKey()}, Faults: faults,
		OnRename: func(path string) {
			b, err := os.ReadFile(filepath.Join(root, path))
			sum := fmt.Sprintf("%x", sha256.Sum256(b))
			if err != nil {
				sum = err.Error()
			}
			mu.Lock()
			defer mu.Unlock()
			renamed[path] = append(renamed[path], sum)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	p.addr = srv.Addr()
	p.knownHosts = filepath.Join(t.TempDir(), "known_hosts")
	if err := srv.WriteKnownHosts(p.knownHosts); err != nil {
		t.Fatal(err)
	}
	p.renamed = func() map[string][]string {
		mu.Lock()
		defer mu.Unlock()
		out := map[string][]string{}
		for k, v := range renamed {
			out[k] = append([]string(nil), v...)
		}
		return out
	}
	return p
}

// content is a file to upload.
type content []byte

func randomContent(n int, seed uint64) content {
	b := make([]byte, n)
	r := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
	_, _ = r.Read(b)
	return b
}

func (c content) sha() string {
	s := sha256.Sum256(c)
	return hex.EncodeToString(s[:])
}

func (c content) open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(c)), nil }

func (c content) upload(ctx context.Context, s *SFTP, name string) error {
	return s.Upload(ctx, name, int64(len(c)), c.sha(), c.open)
}

// onDisk reads a file of the remote upload directory, nil when it is missing.
func (p *peer) onDisk(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.upload, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// noTempFiles fails t when a temporary upload file is left.
func (p *peer) noTempFiles(t testing.TB) {
	t.Helper()
	entries, err := os.ReadDir(p.upload)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

func TestUploaderAgainstSFTPTest(t *testing.T) {
	testUploader(t, startSFTPTest(t, nil))
}

// A disconnect in the middle of a file leaves nothing under the final name;
// the retried upload (on a new connection) puts exactly the file there.
func TestDisconnectMidFileThenRetry(t *testing.T) {
	faults := fault.New(1, fault.Rule{Endpoint: sftptest.Endpoint, Kind: fault.Disconnect, Calls: []int{1}, Bytes: 300_000})
	p := startSFTPTest(t, faults)
	c := randomContent(2<<20, 10)
	err := c.upload(context.Background(), p.dial(t), "TD_cut.csv")
	if err == nil {
		t.Fatal("upload went through a disconnect")
	}
	if !strings.Contains(err.Error(), "upload TD_cut.csv to "+p.addr) {
		t.Errorf("error does not say what and where: %v", err)
	}
	if faults.Played(fault.Disconnect) != 1 {
		t.Fatal("no disconnect played")
	}
	if p.onDisk(t, "TD_cut.csv") != nil {
		t.Fatal("a broken upload is under its final name")
	}
	part := p.onDisk(t, ".TD_cut.csv.part")
	if len(part) == 0 || bytes.Equal(part, c) {
		t.Fatalf("the temporary file has %d bytes: the disconnect did not happen mid-file", len(part))
	}
	if err := c.upload(context.Background(), p.dial(t), "TD_cut.csv"); err != nil {
		t.Fatal(err)
	}
	if got := p.onDisk(t, "TD_cut.csv"); !bytes.Equal(got, c) {
		t.Fatalf("after the retry: %d bytes, want %d", len(got), len(c))
	}
	p.noTempFiles(t)
}

// freezer forwards TCP connections to a server until frozen; then it
// stops forwarding, like a peer that died without closing anything.
type freezer struct {
	ln     net.Listener
	frozen chan struct{}
	done   chan struct{} // the test is over: let go
	once   sync.Once
}

func newFreezer(t testing.TB, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, frozen: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(func() { f.freeze(); close(f.done); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go f.pipe(c, s)
			go f.pipe(s, c)
		}
	}()
	return f
}

func (f *freezer) freeze() { f.once.Do(func() { close(f.frozen) }) }

func (f *freezer) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-f.frozen:
			<-f.done // hold the connection open, silent
			return
		default:
		}
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func TestKeepAliveClosesADeadConnection(t *testing.T) {
	p := startSFTPTest(t, nil)
	fr := newFreezer(t, p.addr)
	cfg := p.config()
	cfg.Addr = fr.ln.Addr().String()
	cfg.KnownHostsFile = knownHostsWith(t, cfg.Addr, mustHostKey(t, p))
	cfg.KeepAlive = 100 * time.Millisecond
	s, err := DialSFTP(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Alive: keepalives are answered for a while.
	time.Sleep(350 * time.Millisecond)
	if _, _, err := s.Stat(context.Background(), "x"); err != nil {
		t.Fatalf("before the freeze: %v", err)
	}
	fr.freeze()
	begin := time.Now()
	_, _, err = s.Stat(context.Background(), "x")
	if err == nil || !strings.Contains(err.Error(), "keepalive") {
		t.Fatalf("Stat on a dead connection: %v", err)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Fatalf("the dead connection was noticed after %s", d)
	}
}

func mustHostKey(t testing.TB, p *peer) ssh.PublicKey {
	t.Helper()
	b, err := os.ReadFile(p.knownHosts)
	if err != nil {
		t.Fatal(err)
	}
	_, _, key, _, _, err := ssh.ParseKnownHosts(b)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestHandshakeTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := make(chan net.Conn, 10)
	defer func() {
		ln.Close()
		for len(held) > 0 {
			(<-held).Close()
		}
	}()
	go func() {
		for {
			c, err := ln.Accept() // and say nothing
			if err != nil {
				return
			}
			held <- c
		}
	}()
	key, _ := newClientKey(t)
	cfg := SFTPConfig{Addr: ln.Addr().String(), User: "settle", Signer: key,
		KnownHostsFile: knownHostsWith(t, ln.Addr().String(), otherKey(t)), HandshakeTimeout: 200 * time.Millisecond}
	begin := time.Now()
	_, err = DialSFTP(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "handshake timeout of 200ms") {
		t.Fatalf("silent server: %v", err)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Fatalf("gave up after %s", d)
	}
}

func TestLoadSigner(t *testing.T) {
	dir := t.TempDir()
	signer, pemBytes := newClientKey(t)
	file := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(file, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSigner(file)
	if err != nil || !bytes.Equal(got.PublicKey().Marshal(), signer.PublicKey().Marshal()) {
		t.Fatalf("LoadSigner: %v", err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSigner(file); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("encrypted key: %v", err)
	}
	if err := os.WriteFile(file, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSigner(file); err == nil || !strings.Contains(err.Error(), file) || strings.Contains(err.Error(), "garbage") {
		t.Fatalf("bad key: %v", err)
	}
	if _, err := LoadSigner(filepath.Join(dir, "none")); err == nil {
		t.Fatal("missing key file accepted")
	}
}

func TestHostKeyAlgorithms(t *testing.T) {
	ed, rs := otherKey(t), func() ssh.PublicKey {
		k, _ := rsa.GenerateKey(rand.Reader, 1024)
		p, _ := ssh.NewPublicKey(&k.PublicKey)
		return p
	}()
	got := hostKeyAlgorithms([]knownhosts.KnownKey{{Key: rs}, {Key: ed}, {Key: ed}})
	want := []string{ssh.KeyAlgoED25519, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got %v, want %v", got, want)
	}
}
