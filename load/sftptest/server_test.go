package sftptest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/settlekit/settle/internal/fault"
)

// fixture is a running server and what a client needs to reach it.
type fixture struct {
	srv        *Server
	root       string
	key        ssh.Signer
	knownHosts string
	mu         sync.Mutex
	renamed    []string
}

func start(t testing.TB, cfg Config) *fixture {
	t.Helper()
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{root: t.TempDir(), key: key}
	if err := os.Mkdir(filepath.Join(fx.root, "upload"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg.Root = fx.root
	cfg.AuthorizedKeys = append(cfg.AuthorizedKeys, key.PublicKey())
	cfg.OnRename = func(p string) {
		fx.mu.Lock()
		defer fx.mu.Unlock()
		fx.renamed = append(fx.renamed, p)
	}
	if fx.srv, err = Start(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fx.srv.Close() })
	fx.knownHosts = filepath.Join(t.TempDir(), "known_hosts")
	if err := fx.srv.WriteKnownHosts(fx.knownHosts); err != nil {
		t.Fatal(err)
	}
	return fx
}

// dial connects as user with key, verifying the host key from known_hosts.
func (fx *fixture) dial(t testing.TB, user string, key ssh.Signer, opts ...sftp.ClientOption) (*sftp.Client, error) {
	t.Helper()
	hostKeys, err := knownhosts.New(fx.knownHosts)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := ssh.Dial("tcp", fx.srv.Addr(), &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(key)}, HostKeyCallback: hostKeys, Timeout: 5 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	c, err := sftp.NewClient(conn, opts...)
	if err != nil {
		conn.Close()
		return nil, err
	}
	t.Cleanup(func() { c.Close(); conn.Close() })
	return c, nil
}

func (fx *fixture) client(t testing.TB, opts ...sftp.ClientOption) *sftp.Client {
	t.Helper()
	c, err := fx.dial(t, "settle", fx.key, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func put(t testing.TB, c *sftp.Client, name string, data []byte) {
	t.Helper()
	f, err := c.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", name, err)
	}
}

func (fx *fixture) read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fx.root, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRenameFailsOntoAFileWhilePosixRenameReplacesIt(t *testing.T) {
	fx := start(t, Config{})
	c := fx.client(t)
	put(t, c, "upload/a", []byte("new"))
	put(t, c, "/upload/b", []byte("old"))

	if err := c.Rename("upload/a", "upload/b"); err == nil {
		t.Fatal("SSH_FXP_RENAME onto an existing file succeeded; OpenSSH refuses it")
	}
	if got := fx.read(t, "upload/b"); string(got) != "old" {
		t.Fatalf("the failed rename changed the target: %q", got)
	}
	if got := fx.read(t, "upload/a"); string(got) != "new" {
		t.Fatalf("the failed rename lost the source: %q", got)
	}
	if len(fx.renamed) != 0 {
		t.Fatalf("OnRename called for a failed rename: %v", fx.renamed)
	}

	if err := c.PosixRename("upload/a", "upload/b"); err != nil {
		t.Fatalf("posix-rename onto an existing file: %v", err)
	}
	if got := fx.read(t, "upload/b"); string(got) != "new" {
		t.Fatalf("posix-rename did not replace the target: %q", got)
	}
	if _, err := c.Stat("upload/a"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("source still there after posix-rename: %v", err)
	}

	// A plain rename onto a free name works, for files and directories.
	if err := c.Rename("/upload/b", "/upload/c"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mkdir("d1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mkdir("d2"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename("d1", "d2"); err == nil {
		t.Fatal("rename of a directory onto an existing one succeeded")
	}
	if err := c.Rename("d1", "d3"); err != nil {
		t.Fatal(err)
	}
	want := []string{"upload/b", "upload/c", "d3"}
	if !slices.Equal(fx.renamed, want) {
		t.Fatalf("OnRename got %v, want %v", fx.renamed, want)
	}
}

func TestPathsStayInsideRoot(t *testing.T) {
	fx := start(t, Config{})
	c := fx.client(t)
	put(t, c, "../../escape", []byte("x"))
	if got := fx.read(t, "escape"); string(got) != "x" {
		t.Fatalf("../../escape is not Root/escape: %q", got)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(fx.root), "escape")); err == nil {
		t.Fatal("a file was written outside Root")
	}
	// A symbolic link made on disk, pointing out, is not followed out.
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(fx.root, "out")); err != nil {
		t.Fatal(err)
	}
	if f, err := c.Open("out/secret"); err == nil {
		f.Close()
		t.Fatal("read a file outside Root through a symbolic link")
	}
	if _, err := c.Create("out/new"); err == nil {
		t.Fatal("created a file outside Root through a symbolic link")
	}
	if err := c.Symlink("/etc", "etc"); err == nil {
		t.Fatal("symlink is supported")
	}
}

func TestConcurrentWritesAtOffsets(t *testing.T) {
	fx := start(t, Config{})
	c := fx.client(t, sftp.UseConcurrentWrites(true), sftp.MaxConcurrentRequestsPerFile(64))
	data := make([]byte, 8<<20+123)
	rand.Read(data)
	f, err := c.Create("upload/big")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadFromWithConcurrency(bytes.NewReader(data), 64); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fx.read(t, "upload/big"), data) {
		t.Fatal("content differs after concurrent writes")
	}

	// Several goroutines writing disjoint ranges of one handle, out of order.
	f, err = c.OpenFile("upload/pieces", os.O_RDWR|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	const piece = 100_000
	var wg sync.WaitGroup
	for i := 15; i >= 0; i-- {
		wg.Go(func() {
			if _, err := f.WriteAt(data[i*piece:(i+1)*piece], int64(i*piece)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	back := make([]byte, 16*piece)
	if _, err := f.ReadAt(back, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	f.Close()
	if !bytes.Equal(back, data[:16*piece]) || !bytes.Equal(fx.read(t, "upload/pieces"), data[:16*piece]) {
		t.Fatal("content differs after WriteAt from several goroutines")
	}
}

func TestFileAndDirectoryRequests(t *testing.T) {
	fx := start(t, Config{})
	c := fx.client(t)
	if err := c.MkdirAll("upload/x/y"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"c", "a", "b"} {
		put(t, c, "upload/x/"+n, []byte(n+n))
	}
	infos, err := c.ReadDir("upload/x")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, fi := range infos {
		names = append(names, fi.Name())
	}
	if strings.Join(names, " ") != "a b c y" {
		t.Fatalf("ReadDir: %v", names)
	}
	fi, err := c.Stat("upload/x/a")
	if err != nil || fi.Size() != 2 || fi.IsDir() {
		t.Fatalf("Stat: %v %v", fi, err)
	}
	if fi, err := c.Lstat("upload/x/y"); err != nil || !fi.IsDir() {
		t.Fatalf("Lstat: %v %v", fi, err)
	}
	if _, err := c.Stat("upload/x/none"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Stat of a missing file: %v, want not exist", err)
	}

	// Setstat: truncate, chmod, times.
	if err := c.Truncate("upload/x/a", 1); err != nil {
		t.Fatal(err)
	}
	if err := c.Chmod("upload/x/a", 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	if err := c.Chtimes("upload/x/a", mtime, mtime); err != nil {
		t.Fatal(err)
	}
	disk, err := os.Stat(filepath.Join(fx.root, "upload/x/a"))
	if err != nil || disk.Size() != 1 || disk.Mode().Perm() != 0o600 || !disk.ModTime().Equal(mtime) {
		t.Fatalf("after setstat: %v %v", disk, err)
	}

	// Read back.
	f, err := c.Open("upload/x/b")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	f.Close()
	if err != nil || string(b) != "bb" {
		t.Fatalf("read %q %v", b, err)
	}

	// Append goes to the end whatever the offset.
	f, err = c.OpenFile("upload/x/b", os.O_WRONLY|os.O_APPEND)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("+")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := fx.read(t, "upload/x/b"); string(got) != "bb+" {
		t.Fatalf("append: %q", got)
	}

	// Remove refuses directories; RemoveDirectory refuses files.
	if err := c.Remove("upload/x/y"); err != nil {
		t.Fatalf("Remove of an empty directory (pkg/sftp falls back to rmdir): %v", err)
	}
	if err := c.RemoveDirectory("upload/x/c"); err == nil {
		t.Fatal("RemoveDirectory removed a file")
	}
	if err := c.Remove("upload/x/c"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(fx.root, "upload/x/c")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("Remove left the file")
	}
	// Hard links (hardlink@openssh.com).
	if err := c.Link("upload/x/b", "upload/x/b2"); err != nil {
		t.Fatal(err)
	}
	if got := fx.read(t, "upload/x/b2"); string(got) != "bb+" {
		t.Fatalf("link: %q", got)
	}
}

func TestOnlyTheAuthorizedKeyAndUserGetIn(t *testing.T) {
	fx := start(t, Config{User: "infinia"})
	if _, err := fx.dial(t, "infinia", fx.key); err != nil {
		t.Fatalf("authorized key refused: %v", err)
	}
	other, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fx.dial(t, "infinia", other); err == nil {
		t.Fatal("an unknown key got in")
	}
	if _, err := fx.dial(t, "settle", fx.key); err == nil {
		t.Fatal("another user got in")
	}
}

func TestDisconnectFaultDropsTheConnectionMidFile(t *testing.T) {
	rules, err := fault.ParseRules("upload:disconnect@1,bytes=100000")
	if err != nil {
		t.Fatal(err)
	}
	faults := fault.New(1, rules...)
	fx := start(t, Config{Faults: faults})
	c := fx.client(t, sftp.UseConcurrentWrites(true))
	data := make([]byte, 1<<20)
	rand.Read(data)
	f, err := c.Create("upload/f")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.ReadFrom(bytes.NewReader(data))
	f.Close()
	if err == nil {
		t.Fatal("the write of 1 MiB went through a disconnect after 100000 bytes")
	}
	if faults.Played(fault.Disconnect) != 1 || faults.Calls(Endpoint) != 1 {
		t.Fatalf("played %d disconnects in %d calls", faults.Played(fault.Disconnect), faults.Calls(Endpoint))
	}
	if _, err := c.Stat("upload"); err == nil {
		t.Fatal("the connection survived the disconnect")
	}
	// The next upload (a new connection) goes through.
	c = fx.client(t)
	put(t, c, "upload/f", data)
	if !bytes.Equal(fx.read(t, "upload/f"), data) {
		t.Fatal("content differs")
	}
}

func TestResetAndLatencyFaults(t *testing.T) {
	faults := fault.New(1, fault.Rule{Endpoint: Endpoint, Kind: fault.Reset, Calls: []int{1}},
		fault.Rule{Endpoint: Endpoint, Kind: fault.Latency, Calls: []int{2}, Delay: 100 * time.Millisecond})
	fx := start(t, Config{Faults: faults})
	if _, err := fx.client(t).Create("upload/r"); err == nil {
		t.Fatal("open went through a reset")
	}
	if _, err := os.Stat(filepath.Join(fx.root, "upload/r")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a reset open created the file")
	}
	begin := time.Now()
	put(t, fx.client(t), "upload/r", []byte("r"))
	if d := time.Since(begin); d < 100*time.Millisecond {
		t.Fatalf("latency fault: the open took %s", d)
	}
}

func TestCloseDropsConnections(t *testing.T) {
	fx := start(t, Config{})
	c := fx.client(t)
	// A connection that never finishes its handshake does not hold Close.
	raw, err := net.Dial("tcp", fx.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	done := make(chan error, 1)
	go func() { done <- fx.srv.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs with open connections")
	}
	if _, err := c.Stat("upload"); err == nil {
		t.Fatal("the client is still served after Close")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var d net.Dialer
	if conn, err := d.DialContext(ctx, "tcp", fx.srv.Addr()); err == nil {
		conn.Close()
		t.Fatal("still listening after Close")
	}
}

func TestWriteKnownHosts(t *testing.T) {
	fx := start(t, Config{})
	b, err := os.ReadFile(fx.knownHosts)
	if err != nil {
		t.Fatal(err)
	}
	_, hosts, key, _, _, err := ssh.ParseKnownHosts(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(key.Marshal(), fx.srv.HostKey().Marshal()) || len(hosts) != 1 || hosts[0] != knownhosts.Normalize(fx.srv.Addr()) {
		t.Fatalf("known_hosts: %s", b)
	}
}
