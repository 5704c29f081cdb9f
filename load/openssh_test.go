//go:build unix

package load

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Where Debian's openssh-server and openssh-client put the programs
// (scripts/test-deps.sh installs them).
const (
	sshdPath   = "/usr/sbin/sshd"
	sftpServer = "/usr/lib/openssh/sftp-server"
	sftpPath   = "/usr/bin/sftp"
)

// requireOpenSSH skips tb when the OpenSSH programs are missing, loudly,
// and fails it under CI=true.
func requireOpenSSH(tb testing.TB, programs ...string) {
	tb.Helper()
	for _, p := range programs {
		if _, err := os.Stat(p); err != nil {
			msg := fmt.Sprintf("OpenSSH interop: %s is missing (run `bash scripts/test-deps.sh` as root, or apt-get install openssh-server openssh-client)", p)
			if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
				tb.Fatal(msg + "; CI=true: a skip is a failure")
			}
			fmt.Fprintf(os.Stderr, "\n*** %s: SKIPPED %s\n\n", tb.Name(), msg)
			tb.Skip("SKIPPED: " + msg)
		}
	}
}

// syncBuffer collects sshd's log for failure messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startSSHD runs OpenSSH's sshd on a free loopback port as a peer for the
// current user, serving SFTP (internal-sftp) with a temporary directory as
// its start directory; it is killed when tb ends.
func startSSHD(tb testing.TB) *peer {
	tb.Helper()
	return startSSHDWith(tb, "openssh", "internal-sftp")
}

// startSSHDWith is startSSHD serving SFTP with the subsystem command (its
// -d option added): internal-sftp, or an external sftp-server, a process
// of its own per connection.
func startSSHDWith(tb testing.TB, name, subsystem string) *peer {
	tb.Helper()
	requireOpenSSH(tb, sshdPath)
	if subsystem != "internal-sftp" {
		if _, err := os.Stat(subsystem); err != nil {
			if os.Getenv("CI") == "true" {
				tb.Fatalf("no %s", subsystem)
			}
			tb.Skipf("no %s", subsystem)
		}
	}
	u, err := user.Current()
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	root := filepath.Join(dir, "root")
	p := &peer{name: name, user: u.Username, upload: filepath.Join(root, "upload")}
	if err := os.MkdirAll(p.upload, 0o755); err != nil {
		tb.Fatal(err)
	}
	p.key, p.keyPEM = newClientKey(tb)
	writeFile(tb, filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(p.key.PublicKey()))
	hostKey, hostPEM := newClientKey(tb)
	writeFile(tb, filepath.Join(dir, "host_ed25519"), hostPEM)
	if os.Geteuid() == 0 {
		// sshd running as root wants its privilege separation directory.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			tb.Fatalf("sshd as root needs /run/sshd: %v", err)
		}
	}
	// A free port, found by listening: another process may take it before
	// sshd does, so try a few.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			tb.Fatal(err)
		}
		p.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		config := strings.Join([]string{
			"ListenAddress " + p.addr,
			"HostKey " + filepath.Join(dir, "host_ed25519"),
			"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
			"AuthenticationMethods publickey",
			"PubkeyAuthentication yes",
			"PasswordAuthentication no",
			"KbdInteractiveAuthentication no",
			"PermitRootLogin prohibit-password",
			"StrictModes no",
			"UsePAM no",
			"PidFile none",
			"LogLevel VERBOSE",
			"Subsystem sftp " + subsystem + " -d " + root,
		}, "\n") + "\n"
		cfgFile := filepath.Join(dir, "sshd_config")
		writeFile(tb, cfgFile, []byte(config))
		if p.pid, lastErr = runSSHD(tb, cfgFile, p.addr); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		tb.Fatal(lastErr)
	}
	p.knownHosts = filepath.Join(dir, "known_hosts")
	writeFile(tb, p.knownHosts, []byte(knownhosts.Line([]string{p.addr}, hostKey.PublicKey())+"\n"))
	return p
}

// runSSHD starts sshd with config and waits until it greets on addr. It
// returns sshd's process id.
func runSSHD(tb testing.TB, config, addr string) (int, error) {
	tb.Helper()
	log := &syncBuffer{}
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", config)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group: the per-connection children die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start sshd: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			return 0, fmt.Errorf("sshd exited at start: %s\n%s", cmd.ProcessState, log)
		default:
		}
		if greets(addr) {
			break
		}
		if time.Now().After(deadline) {
			stop()
			return 0, fmt.Errorf("sshd did not answer on %s within 10s:\n%s", addr, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Cleanup(func() {
		stop()
		if tb.Failed() {
			tb.Logf("sshd log:\n%s", log)
		}
	})
	return cmd.Process.Pid, nil
}

// greets reports whether an SSH server answers on addr with its banner.
func greets(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "SSH-2.0-")
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func writeFile(tb testing.TB, name string, b []byte) {
	tb.Helper()
	if err := os.WriteFile(name, b, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// TestUploaderAgainstOpenSSH runs the uploader's conformance suite against
// a real sshd: the peer that tells whether sftptest and the uploader agree
// with OpenSSH.
func TestUploaderAgainstOpenSSH(t *testing.T) {
	p := startSSHD(t)
	testUploader(t, p)
	t.Run("UsesLargeWritesWithOpenSSH", func(t *testing.T) {
		s := p.dial(t)
		if s.packet != openSSHMaxPacket {
			t.Fatalf("write size %d with OpenSSH, want %d", s.packet, openSSHMaxPacket)
		}
	})
}

// TestSFTPTestBehavesLikeOpenSSH checks the renaming rules sftptest copies
// from OpenSSH against OpenSSH itself.
func TestSFTPTestBehavesLikeOpenSSH(t *testing.T) {
	for _, p := range []*peer{startSSHD(t), startSFTPTest(t, nil)} {
		t.Run(p.name, func(t *testing.T) {
			s := p.dial(t)
			c := s.client
			for name, data := range map[string]string{"a": "new", "b": "old"} {
				writeFile(t, filepath.Join(p.upload, name), []byte(data))
			}
			if err := c.Rename("upload/a", "upload/b"); err == nil {
				t.Fatal("rename onto an existing file succeeded")
			}
			if err := c.PosixRename("upload/a", "upload/b"); err != nil {
				t.Fatal(err)
			}
			if got := p.onDisk(t, "b"); string(got) != "new" {
				t.Fatalf("after posix-rename: %q", got)
			}
		})
	}
}
