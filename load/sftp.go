package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/settlekit/settle/pipeline"
)

// SFTPConfig says where and how to upload by SFTP. Zero values of the
// optional fields select the documented defaults.
type SFTPConfig struct {
	Addr   string     // host:port
	User   string     // SSH user
	Signer ssh.Signer // private key for public-key authentication (see LoadSigner)
	// KnownHostsFile is required. The server's host key is verified against
	// it, and the client accepts host keys only in the algorithms of the
	// entries it has for Addr, so the server cannot negotiate a key type
	// the file has no entry for. @cert-authority lines are not used.
	KnownHostsFile   string
	Dir              string        // remote directory files go into, default "upload"
	HandshakeTimeout time.Duration // dial + SSH handshake deadline, default 15s
	// KeepAlive is the interval of keepalive@openssh.com requests, default
	// 30s. A peer that has not answered one within the next interval is
	// dead: the connection is closed and every call fails at once.
	KeepAlive time.Duration
	// OpTimeout bounds one upload or stat that makes no progress: one that
	// has had no answer for its data, nor finished, for that long is
	// stalled, and its connection is closed (an SFTPSession then dials
	// again). sshd answers keepalives while its sftp-server is stuck (a
	// hung file system), so the keepalive alone never ends such a call. A
	// slow upload that moves goes on: 32 files sharing a slow link each
	// move slowly. Default 2m.
	OpTimeout time.Duration
	// Concurrency is the number of SFTP write requests in flight per file,
	// default 64.
	Concurrency int
	// MaxPacket is the size of one SFTP write request in bytes. 0 selects
	// 261120 when the server is OpenSSH advertising limits@openssh.com
	// (its sftp-server accepts that much, and its own client uses it), and
	// otherwise 32768, which every server must accept.
	MaxPacket int
}

// The defaults of SFTPConfig.
const (
	DefaultSFTPDir          = "upload"
	DefaultHandshakeTimeout = 15 * time.Second
	DefaultKeepAlive        = 30 * time.Second
	DefaultSFTPConcurrency  = 64
	DefaultSFTPOpTimeout    = 2 * time.Minute
)

const (
	minMaxPacket     = 32 << 10       // every SFTP server accepts this
	openSSHMaxPacket = 256<<10 - 1024 // OpenSSH's max-write-length (limits@openssh.com)
)

// SFTP is one SSH connection to an SFTP server, for uploading files
// atomically. Its methods are safe for concurrent use. Once the connection
// is lost (or a context passed to a method is cancelled, which closes it),
// every method fails: dial again.
type SFTP struct {
	cfg    SFTPConfig
	conn   *ssh.Client
	client *sftp.Client
	packet int // bytes per write request

	done      chan struct{} // closed by Close
	closeOnce sync.Once
	broken    atomic.Pointer[string] // why the connection was closed, when it was not Close
	answered  atomic.Int64           // when the server last sent SFTP data (UnixNano)
}

// LoadSigner reads an unencrypted private key (OpenSSH, PKCS#1, PKCS#8 or
// SEC1 PEM) from path, as mounted from a secret.
func LoadSigner(path string) (ssh.Signer, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read SSH private key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, fmt.Errorf("SSH private key %s is protected by a passphrase: settle needs an unencrypted key file", path)
	}
	if err != nil {
		return nil, fmt.Errorf("SSH private key %s: %w", path, err)
	}
	return signer, nil
}

// DialSFTP connects to cfg.Addr, verifies its host key, authenticates,
// starts the SFTP subsystem and checks that the server can rename
// atomically (posix-rename@openssh.com) and that cfg.Dir is a directory.
// A refused host key is a *HostKeyError. It, a key the server refuses
// (authentication failed), an incomplete cfg and a known_hosts file
// missing, refused or not valid are of kind pipeline.KindUsage: retrying
// cannot help. Other errors may be transient, among them a failure of
// the file system reading known_hosts (pipeline.FileSystemFailed).
func DialSFTP(ctx context.Context, cfg SFTPConfig) (*SFTP, error) {
	cfg = cfg.withDefaults()
	s, err := dial(ctx, cfg)
	if err != nil {
		err = fmt.Errorf("sftp connect to %s as %s: %w", cfg.Addr, cfg.User, err)
		var hk *HostKeyError
		if errors.As(err, &hk) || errors.Is(err, errConfig) {
			return nil, pipeline.E(pipeline.KindUsage, "", err)
		}
		return nil, err
	}
	return s, nil
}

// errConfig marks configuration errors.
var errConfig = errors.New("configuration")

func configErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errConfig}, args...)...)
}

func (cfg SFTPConfig) withDefaults() SFTPConfig {
	if cfg.Dir == "" {
		cfg.Dir = DefaultSFTPDir
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultSFTPConcurrency
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = DefaultSFTPOpTimeout
	}
	return cfg
}

func dial(ctx context.Context, cfg SFTPConfig) (*SFTP, error) {
	switch {
	case cfg.Addr == "":
		return nil, configErr("no address")
	case cfg.User == "":
		return nil, configErr("no user")
	case cfg.Signer == nil:
		return nil, configErr("no private key")
	}
	hosts, err := loadHostKeys(cfg.KnownHostsFile)
	if pipeline.FileSystemFailed(err) {
		return nil, err // a retry may read it (pipeline.FileError)
	}
	if err != nil {
		return nil, configErr("%w", err)
	}
	dctx, cancel := context.WithTimeout(ctx, cfg.HandshakeTimeout)
	defer cancel()
	var d net.Dialer
	tcp, err := d.DialContext(dctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, unanswered(ctx, timedOut(ctx, dctx, cfg, err)) // no connection made
	}
	// The known entries are looked up with the address actually reached,
	// as the host key check will be.
	want, err := hosts.known(cfg.Addr, tcp.RemoteAddr())
	if err != nil {
		tcp.Close()
		return nil, err
	}
	// The deadline covers the handshake and the start of the SFTP session;
	// the keepalive takes over after.
	stop := context.AfterFunc(dctx, func() { tcp.Close() })
	deadline, _ := dctx.Deadline()
	_ = tcp.SetDeadline(deadline)
	s, err := connect(tcp, cfg, hosts, want)
	stopped := stop()
	if err != nil {
		tcp.Close()
		var hk *HostKeyError
		if errors.As(err, &hk) {
			return nil, hk // without the "ssh: handshake failed" around it
		}
		if !stopped || dctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, unanswered(ctx, timedOut(ctx, dctx, cfg, err))
		}
		if authRefused(err) {
			return nil, configErr("the server refused our key %s for user %s: %w", ssh.FingerprintSHA256(cfg.Signer.PublicKey()), cfg.User, err)
		}
		if connGone(err) {
			return nil, unanswered(ctx, err) // closed or reset before the session started
		}
		return nil, hostKeyNegotiation(err, cfg.Addr, hosts.file, want)
	}
	if !stopped {
		s.conn.Close()
		return nil, unanswered(ctx, timedOut(ctx, dctx, cfg, dctx.Err()))
	}
	_ = tcp.SetDeadline(time.Time{})
	go s.keepAlive()
	return s, nil
}

// errUnanswered marks the error of a dial that made no connection, or
// one that did not answer the handshake and the start of the SFTP
// session within HandshakeTimeout (or closed it first): the server gave
// no answer. SFTPSession tells by it, and by a lost connection, whether
// a call got no answer at all (pipeline.ErrNoAnswer). It is not
// pipeline.ErrNoAnswer itself: the session's error joins those of its
// connections, and only its last one says whether the call got an
// answer.
var errUnanswered = errors.New("no answer from the SFTP server")

// noReply is an error marked errUnanswered, its text unchanged.
type noReply struct{ error }

func (e noReply) Unwrap() error        { return e.error }
func (e noReply) Is(target error) bool { return target == errUnanswered }

// unanswered marks err (a dial's) errUnanswered, unless ctx is done: the
// run stopping is not the server's silence.
func unanswered(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	return noReply{err}
}

// connGone reports whether err says the connection went away: closed by
// the server or reset (a server gone, or restarted), or closed here.
func connGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// authRefused reports whether the handshake failed because the server
// refused every authentication we offered. golang.org/x/crypto/ssh has no
// error type for it, only this message (client_auth.go).
func authRefused(err error) bool {
	return err != nil && strings.Contains(err.Error(), "ssh: unable to authenticate")
}

// timedOut explains err, which happened once dctx (ctx with the handshake
// timeout) was done.
func timedOut(ctx, dctx context.Context, cfg SFTPConfig, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case dctx.Err() != nil, errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("not connected within the handshake timeout of %s: %w", cfg.HandshakeTimeout, err)
	}
	return err
}

// connect runs the SSH handshake on tcp and starts the SFTP session.
func connect(tcp net.Conn, cfg SFTPConfig, hosts *hostKeys, want []knownhosts.KnownKey) (*SFTP, error) {
	conn, err := handshake(tcp, cfg, hosts, want)
	if err != nil {
		return nil, err
	}
	s := &SFTP{cfg: cfg, conn: conn, done: make(chan struct{})}
	if err := s.start(); err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

// handshake runs the SSH handshake on tcp, accepting only a host key that
// known_hosts lists for the address, in the algorithms of its entries.
func handshake(tcp net.Conn, cfg SFTPConfig, hosts *hostKeys, want []knownhosts.KnownKey) (*ssh.Client, error) {
	config := &ssh.ClientConfig{
		User:              cfg.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(cfg.Signer)},
		HostKeyCallback:   hosts.check,
		HostKeyAlgorithms: hostKeyAlgorithms(want),
	}
	c, chans, reqs, err := ssh.NewClientConn(tcp, cfg.Addr, config)
	if err != nil {
		return nil, err
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// start opens the SFTP session and checks what Upload relies on.
func (s *SFTP) start() error {
	s.packet = s.cfg.MaxPacket
	if s.packet <= 0 {
		s.packet = minMaxPacket
		if strings.HasPrefix(string(s.conn.ServerVersion()), "SSH-2.0-OpenSSH_") {
			s.packet = openSSHMaxPacket
		}
	}
	client, err := s.newClient()
	if err != nil {
		return err
	}
	if _, ok := client.HasExtension("limits@openssh.com"); s.cfg.MaxPacket <= 0 && s.packet > minMaxPacket && !ok {
		// Not OpenSSH's sftp-server after all: use the size every server takes.
		client.Close()
		s.packet = minMaxPacket
		if client, err = s.newClient(); err != nil {
			return err
		}
	}
	s.client = client
	// The server's configuration, not a passing failure (exit 2, never
	// dialled again): no atomic rename, no upload directory.
	if _, ok := client.HasExtension("posix-rename@openssh.com"); !ok {
		return configErr("the server does not support posix-rename@openssh.com: uploads cannot be made atomic")
	}
	fi, err := client.Stat(s.cfg.Dir)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
		return configErr("remote directory %s: %w", s.cfg.Dir, err)
	}
	if err != nil {
		return fmt.Errorf("remote directory %s: %w", s.cfg.Dir, err)
	}
	if !fi.IsDir() {
		return configErr("remote directory %s: not a directory", s.cfg.Dir)
	}
	return nil
}

// newClient starts the SFTP subsystem on a session of its own, as
// sftp.NewClient does, reading the server's answers through a reader that
// notes when they come (answered: what a call's watch goes by).
func (s *SFTP) newClient() (*sftp.Client, error) {
	fail := func(err error) (*sftp.Client, error) { return nil, fmt.Errorf("start SFTP subsystem: %w", err) }
	sess, err := s.conn.NewSession()
	if err != nil {
		return fail(err)
	}
	pw, err := sess.StdinPipe()
	if err != nil {
		sess.Close()
		return fail(err)
	}
	pr, err := sess.StdoutPipe()
	if err != nil {
		sess.Close()
		return fail(err)
	}
	perr, err := sess.StderrPipe()
	if err != nil {
		sess.Close()
		return fail(err)
	}
	// Drained, as sftp.NewClient does: unread, it would fill the channel's
	// window and stall the connection.
	go func() { _, _ = io.Copy(io.Discard, perr) }()
	if err := sess.RequestSubsystem("sftp"); err != nil {
		sess.Close()
		return fail(err)
	}
	c, err := sftp.NewClientPipe(answers{pr, &s.answered}, pw,
		sftp.UseConcurrentWrites(true),
		sftp.MaxConcurrentRequestsPerFile(s.cfg.Concurrency),
		sftp.MaxPacketUnchecked(s.packet))
	if err != nil {
		sess.Close()
		return fail(err)
	}
	return c, nil
}

// answers is the SFTP server's side of the session, noting when it sends.
type answers struct {
	r  io.Reader
	at *atomic.Int64
}

func (a answers) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.at.Store(time.Now().UnixNano())
	}
	return n, err
}

// keepAlive sends keepalive@openssh.com requests and closes the connection
// when one is not answered (even with a failure, as OpenSSH answers) within
// the next interval and nothing else came from the server meanwhile: on a
// slow link the keepalive waits behind the uploads' data while the server
// answers their writes (a live server; found by a review).
func (s *SFTP) keepAlive() {
	every := s.cfg.KeepAlive
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-tick.C:
		}
		answer := make(chan error, 1)
		go func() {
			_, _, err := s.conn.SendRequest("keepalive@openssh.com", true, nil)
			answer <- err
		}()
		if !s.awaitKeepAlive(answer, every) {
			return
		}
	}
}

// awaitKeepAlive waits for a keepalive's answer, interval after interval
// while the server sends SFTP answers; false when the connection is done
// or was aborted.
func (s *SFTP) awaitKeepAlive(answer <-chan error, every time.Duration) bool {
	for {
		since := time.Now().UnixNano()
		timeout := time.NewTimer(every)
		select {
		case <-s.done:
			timeout.Stop()
			return false
		case err := <-answer:
			timeout.Stop()
			if err != nil {
				s.abort(fmt.Sprintf("keepalive failed: %v", err))
				return false
			}
			return true
		case <-timeout.C:
			if s.answered.Load() < since {
				s.abort(fmt.Sprintf("the server did not answer a keepalive within %s", every))
				return false
			}
		}
	}
}

// abort closes the connection, recording why for the errors that follow.
func (s *SFTP) abort(why string) {
	s.broken.CompareAndSwap(nil, &why)
	s.conn.Close()
}

// Close closes the connection. Uploads in progress fail.
func (s *SFTP) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.done)
		s.client.Close()
		if err = s.conn.Close(); errors.Is(err, net.ErrClosed) {
			err = nil
		}
	})
	return err
}
