// Package pgserver starts a throwaway PostgreSQL cluster from the server
// binaries installed on the machine (initdb and postgres). Tests use it
// through internal/pgtest when no other server is reachable, `settle demo`
// when no database is configured, and scripts/benchday for a cluster of its
// own.
//
// The cluster is built for speed, not durability: trust authentication for
// the superuser "postgres", fsync off, a UTF8 encoding with the C locale,
// listening only on a free loopback TCP port, with its Unix socket inside the
// data directory. Never put data you want to keep in it.
//
// initdb and postgres refuse to run as root. When the calling process runs as
// root they run as the "postgres" user (or "nobody" when there is none), set
// directly as the child's credentials rather than through runuser(1): the
// server is then the caller's direct child and can be given a parent-death
// signal (Linux). If the caller dies without calling Stop (a panic, a test
// timeout, SIGKILL), the kernel sends the server SIGQUIT and it shuts down at
// once; only the data directory is left behind.
package pgserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/lib/pq" // the "postgres" database/sql driver, for the readiness check
)

const (
	startAttempts = 3                // a new port each time, in case another process took ours
	readyTimeout  = 60 * time.Second // cap on waiting for the server to accept connections
	stopTimeout   = 10 * time.Second // after SIGQUIT, before SIGKILL
)

// Server is a running throwaway PostgreSQL cluster. Its methods are safe
// for concurrent use.
type Server struct {
	dir   string // data directory, also the Unix socket directory
	owned bool   // Start created dir, so Stop removes it
	port  int
	cmd   *exec.Cmd
	log   *tail

	exited chan struct{} // closed once the server process has been waited for

	stopOnce sync.Once
	stopErr  error
}

// Start initialises a new cluster in dir and starts it, returning once it
// accepts connections.
//
// dir must be empty or not exist; an empty dir means a new temporary
// directory. When running as root, dir is handed to the unprivileged user,
// so all of its parents must be searchable by that user (t.TempDir is not:
// its top directory has mode 0700). The path of the Unix socket inside dir
// must fit in 107 bytes.
//
// The output of initdb and of the server goes to logw (nil discards it); it
// is written until Stop returns, so logw must outlive the server. The errors
// of Start end with the last lines of that output.
//
// Start returns an error wrapping ErrNotInstalled when no server binaries
// are found.
func Start(ctx context.Context, dir string, logw io.Writer) (*Server, error) {
	s, b, who, out, err := prepare(dir, logw)
	if err != nil {
		return nil, err
	}
	if err := s.initdb(ctx, b, who, out); err != nil {
		s.removeDir()
		return nil, err
	}
	return s.startRetrying(ctx, b, who, out)
}

// StartStandby makes a hot standby of primary in dir (pg_basebackup of it,
// streaming its WAL from then on) and starts it, returning once it accepts
// connections: for tests of what settle reads on a read replica. dir is as
// for Start. When it hears nothing from the primary for 1.5 s, it pings it
// (wal_receiver_timeout 3 s), so pg_stat_wal_receiver shows the primary's
// word of at most a few seconds ago even while the primary is quiet.
func StartStandby(ctx context.Context, primary *Server, dir string, logw io.Writer) (*Server, error) {
	s, b, who, out, err := prepare(dir, logw)
	if err != nil {
		return nil, err
	}
	cmd := command(ctx, filepath.Join(filepath.Dir(b.postgres), "pg_basebackup"), who, s.dir, out,
		"-D", s.dir, "-h", "127.0.0.1", "-p", strconv.Itoa(primary.port), "-U", "postgres", "-R", "-X", "stream", "--no-sync")
	if err := cmd.Run(); err != nil {
		s.removeDir()
		return nil, fmt.Errorf("pg_basebackup into %s: %w%s", s.dir, err, s.log.suffix())
	}
	// The standby pings a quiet primary after wal_receiver_timeout/2 without
	// a message (30 s by default), and the primary answers with a keepalive:
	// every 1.5 s here, so that a test sees the primary's latest word
	// (pg_stat_wal_receiver) in seconds. pg_basebackup -R wrote
	// primary_conninfo in this file; the standby reads it at its start.
	if err := appendFile(filepath.Join(s.dir, "postgresql.auto.conf"), "wal_receiver_timeout = '3s'\n"); err != nil {
		s.removeDir()
		return nil, err
	}
	return s.startRetrying(ctx, b, who, out)
}

// prepare finds the server's binaries and the user to run them as, and
// makes s's directory dir (as Start says) with its output to logw and s's
// tail: what Start and StartStandby do before their cluster is made.
func prepare(dir string, logw io.Writer) (s *Server, b binaries, who *account, out io.Writer, err error) {
	if b, err = findBinaries(os.Getenv("PATH"), installRoot); err != nil {
		return nil, b, nil, nil, err
	}
	if who, err = unprivilegedUser(); err != nil {
		return nil, b, nil, nil, err
	}
	s = &Server{log: &tail{}}
	out = io.Writer(s.log)
	if logw != nil {
		out = io.MultiWriter(logw, s.log)
	}
	if err := s.makeDir(dir, who); err != nil {
		return nil, b, nil, nil, err
	}
	return s, b, who, out, nil
}

// startRetrying starts s's cluster, again on another port while the one
// picked was taken (startAttempts in all); s's directory is removed when
// it does not start.
func (s *Server) startRetrying(ctx context.Context, b binaries, who *account, out io.Writer) (*Server, error) {
	for attempt := 1; ; attempt++ {
		err := s.start(ctx, b, who, out)
		if err == nil {
			return s, nil
		}
		if attempt == startAttempts || !errors.Is(err, errPortTaken) {
			s.removeDir()
			return nil, err
		}
	}
}

// URL is the connection URL of database dbname on s, as the superuser
// "postgres" over TCP.
func (s *Server) URL(dbname string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, url.PathEscape(dbname))
}

// PID is the process id of the server (the postmaster): its backends are
// its children, and what the ended ones used is in its cutime and cstime.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Stop shuts the server down without waiting for clients (an immediate
// shutdown, as `pg_ctl stop -m immediate`), waits for it to exit, and
// removes its directory if Start created it. Calling Stop again returns the
// first call's result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

func (s *Server) stop() error {
	var errs []error
	if !s.waitExit(0) {
		if err := quit(s.cmd.Process); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, fmt.Errorf("stop postgres: %w", err))
		}
		if !s.waitExit(stopTimeout) {
			errs = append(errs, fmt.Errorf("stop postgres: still running %v after SIGQUIT, killed", stopTimeout))
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	}
	if s.owned {
		if err := os.RemoveAll(s.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", s.dir, err))
		}
	}
	return errors.Join(errs...)
}

// waitExit reports whether the server process exits within d.
func (s *Server) waitExit(d time.Duration) bool {
	if d == 0 {
		select {
		case <-s.exited:
			return true
		default:
			return false
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-s.exited:
		return true
	case <-timer.C:
		return false
	}
}

func (s *Server) makeDir(dir string, who *account) error {
	switch {
	case dir == "":
		d, err := os.MkdirTemp("", "settle-pg-")
		if err != nil {
			return fmt.Errorf("create data directory: %w", err)
		}
		s.dir, s.owned = d, true
	default:
		d, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("data directory %s: %w", dir, err)
		}
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			s.owned = true
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create data directory: %w", err)
		}
		s.dir = d
	}
	if who != nil {
		if err := os.Chown(s.dir, who.uid, who.gid); err != nil {
			s.removeDir()
			return fmt.Errorf("give data directory %s to %s: %w", s.dir, who.name, err)
		}
	}
	return nil
}

func (s *Server) removeDir() {
	if s.owned {
		_ = os.RemoveAll(s.dir)
	}
}

func (s *Server) initdb(ctx context.Context, b binaries, who *account, out io.Writer) error {
	cmd := command(ctx, b.initdb, who, s.dir, out,
		"-D", s.dir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--no-locale")
	if err := cmd.Run(); err != nil {
		hint := ""
		if who != nil {
			hint = fmt.Sprintf(" (initdb runs as %s: every parent of %s must be searchable by it)", who.name, s.dir)
		}
		return fmt.Errorf("initdb %s: %w%s%s", s.dir, err, hint, s.log.suffix())
	}
	return nil
}

// errPortTaken marks a start that failed because the port was taken between
// choosing it and the server binding it.
var errPortTaken = errors.New("port taken")

// start starts the server on a free port and waits until it accepts
// connections.
func (s *Server) start(ctx context.Context, b binaries, who *account, out io.Writer) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	s.port = port
	s.log.reset()
	s.cmd = command(context.Background(), b.postgres, who, s.dir, out,
		"-D", s.dir,
		"-p", strconv.Itoa(port),
		"-k", s.dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
	)
	s.cmd.WaitDelay = stopTimeout
	s.exited = make(chan struct{})
	if err := s.launch(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	if err := s.waitReady(ctx); err != nil {
		if !s.waitExit(0) {
			_ = quit(s.cmd.Process)
			if !s.waitExit(stopTimeout) {
				_ = s.cmd.Process.Kill()
				<-s.exited
			}
		}
		return err
	}
	return nil
}

// launch starts s.cmd from a goroutine locked to its OS thread until the
// server exits: Linux sends the parent-death signal when the thread that
// forked the child ends, and the Go runtime may otherwise end idle threads.
func (s *Server) launch() error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the server
		if err := s.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	return <-started
}

// waitReady polls the server until a connection succeeds, the server exits,
// ctx is done or readyTimeout passes.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	db, err := sql.Open("postgres", s.URL("postgres")+"&connect_timeout=2")
	if err != nil {
		return fmt.Errorf("wait for postgres: %w", err)
	}
	defer db.Close()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ping(ctx, db)
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			if s.log.contains("already in use") {
				return fmt.Errorf("postgres on port %d: %w%s", s.port, errPortTaken, s.log.suffix())
			}
			return fmt.Errorf("postgres exited before accepting connections (%v)%s", s.cmd.ProcessState, s.log.suffix())
		case <-ctx.Done():
			return fmt.Errorf("wait for postgres on port %d: %w (last error: %v)%s", s.port, ctx.Err(), err, s.log.suffix())
		case <-tick.C:
		}
	}
}

func ping(ctx context.Context, db *sql.DB) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// command builds a command running as who (nil: as the caller) in dir, with
// its output going to out.
func command(ctx context.Context, bin string, who *account, dir string, out io.Writer, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	// The C locale keeps messages in English (start looks for one) and
	// avoids warnings about locales the machine lacks.
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = procAttr(who)
	return cmd
}

// tail keeps the last bytes written to it, to end error messages with.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const tailSize = 4 << 10

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailSize {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailSize:]...)
	}
	return len(p), nil
}

func (t *tail) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = t.buf[:0]
}

func (t *tail) contains(s string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Contains(string(t.buf), s)
}

// suffix is the kept output formatted to end an error message.
func (t *tail) suffix() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.buf))
	if s == "" {
		return ""
	}
	return "\n--- postgres output (last lines) ---\n" + s
}

// appendFile appends text to the file at path, which exists.
func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
