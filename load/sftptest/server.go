// Package sftptest is an in-process SFTP server for tests and the provider
// simulator, like net/http/httptest for HTTP. It speaks the real protocol
// (SSH from golang.org/x/crypto/ssh, SFTP from github.com/pkg/sftp's
// RequestServer) over a real directory, and behaves like OpenSSH's
// sftp-server where settle depends on it: a plain rename onto an existing
// file fails, posix-rename@openssh.com replaces it, writes at offsets may
// arrive concurrently and out of order.
//
// Faults come from the shared injector (internal/fault) at the endpoint
// "upload", one call per file opened for writing: fault.Disconnect drops
// the connection after Fault.Bytes bytes were written to the file,
// fault.Reset drops it at the open, fault.Latency delays the open; and at
// the endpoint "stat", one call per Stat or Lstat request (the client's
// check of its directory at connect counts): fault.Reset, Disconnect or
// Lost drop the connection before the answer, fault.Latency delays it.
package sftptest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/settlekit/settle/internal/fault"
)

// Endpoint is the fault-injection endpoint of file uploads.
const Endpoint = "upload"

// StatEndpoint is the fault-injection endpoint of Stat and Lstat requests.
const StatEndpoint = "stat"

// Config configures a Server.
type Config struct {
	// Root is the directory served. Clients' paths are relative to it:
	// "/upload/x" and "upload/x" both name Root/upload/x, and no path
	// (nor symbolic link) leads out of it.
	Root           string
	HostKey        ssh.Signer      // nil: a new ed25519 key
	AuthorizedKeys []ssh.PublicKey // the only way in: public-key authentication
	User           string          // the only user, default "settle"
	Faults         *fault.Injector // faults played at Endpoint; nil: none
	// OnRename is called after a successful rename or posix-rename, with
	// the new path relative to Root in slash form (e.g. "upload/TD_1.csv").
	// It runs before the client gets its answer.
	OnRename func(path string)
	Addr     string // address to listen on, default "127.0.0.1:0"
}

// Server is a running SFTP server.
type Server struct {
	cfg     Config
	root    *os.Root
	ln      net.Listener
	hostKey ssh.Signer
	ssh     *ssh.ServerConfig

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Start starts a server on cfg.Addr (default 127.0.0.1, a free port).
func Start(cfg Config) (*Server, error) {
	if cfg.User == "" {
		cfg.User = "settle"
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Root == "" {
		return nil, errors.New("sftptest: no root directory")
	}
	root, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("sftptest: %w", err)
	}
	s := &Server{cfg: cfg, root: root, hostKey: cfg.HostKey, conns: map[net.Conn]struct{}{}}
	if s.hostKey == nil {
		if s.hostKey, err = NewKey(); err != nil {
			root.Close()
			return nil, fmt.Errorf("sftptest: host key: %w", err)
		}
	}
	s.ssh = &ssh.ServerConfig{PublicKeyCallback: s.authorize, ServerVersion: "SSH-2.0-settle_sftptest"}
	s.ssh.AddHostKey(s.hostKey)
	if s.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		root.Close()
		return nil, fmt.Errorf("sftptest: %w", err)
	}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// NewKey generates an ed25519 key, for host and client keys in tests.
func NewKey() (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// HostKey is the server's public host key.
func (s *Server) HostKey() ssh.PublicKey { return s.hostKey.PublicKey() }

// WriteKnownHosts writes a known_hosts file at path holding the host key
// for Addr.
func (s *Server) WriteKnownHosts(path string) error {
	line := knownhosts.Line([]string{s.Addr()}, s.HostKey())
	return os.WriteFile(path, []byte(line+"\n"), 0o600)
}

// Close stops listening, drops every connection and waits for their
// goroutines to end.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.root.Close()
	return err
}

func (s *Server) authorize(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	if meta.User() != s.cfg.User {
		return nil, fmt.Errorf("sftptest: unknown user %q", meta.User())
	}
	for _, k := range s.cfg.AuthorizedKeys {
		if bytes.Equal(k.Marshal(), key.Marshal()) {
			return &ssh.Permissions{}, nil
		}
	}
	return nil, fmt.Errorf("sftptest: key %s not authorized", ssh.FingerprintSHA256(key))
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.handle(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// handle serves one SSH connection: session channels with the sftp
// subsystem, nothing else.
func (s *Server) handle(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	_, chans, reqs, err := ssh.NewServerConn(c, s.ssh)
	if err != nil {
		return
	}
	_ = c.SetDeadline(time.Time{})
	// Global requests (keepalive@openssh.com) are answered with a failure,
	// as OpenSSH does: an answer all the same.
	go ssh.DiscardRequests(reqs)
	var sessions sync.WaitGroup
	defer sessions.Wait()
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only session channels")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			continue
		}
		sessions.Add(1)
		go func() {
			defer sessions.Done()
			s.session(c, ch, chReqs)
		}()
	}
}

// session waits for the sftp subsystem request and serves SFTP on ch.
func (s *Server) session(c net.Conn, ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	subsystem := make(chan bool, 1)
	go func() {
		started := false
		for req := range reqs {
			var sub struct{ Name string }
			ok := !started && req.Type == "subsystem" && ssh.Unmarshal(req.Payload, &sub) == nil && sub.Name == "sftp"
			_ = req.Reply(ok, nil)
			if ok {
				started = true
				subsystem <- true
			}
		}
		if !started {
			subsystem <- false // the channel or the connection closed first
		}
	}()
	if !<-subsystem {
		return
	}
	h := &handler{root: s.root, faults: s.cfg.Faults, onRename: s.cfg.OnRename, drop: func() { c.Close() }}
	rs := sftp.NewRequestServer(ch, sftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h})
	_ = rs.Serve()
}
