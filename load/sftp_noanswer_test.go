package load

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/sftptest"
	"github.com/settlekit/settle/pipeline"
)

// silentListener accepts TCP connections and never answers on them, as a
// stopped (SIGSTOP) server whose kernel still accepts: the SSH handshake
// gets no answer. accepted counts the connections.
func silentListener(t *testing.T) (addr string, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int32)
	held := make(chan net.Conn, 256)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			held <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-held:
				c.Close()
			default:
				return
			}
		}
	})
	return ln.Addr().String(), accepted
}

// TestASessionThatGetsNoAnswerSaysSo: an upload, stat or connect whose
// every connection got no answer - none made, none that answered the
// handshake in time, or each lost before its answer (a stalled transfer,
// closed for making no progress) - is pipeline.ErrNoAnswer, as the
// providers' HTTP clients mark a call that got none: the upload stage's
// breaker counts it, and a hung SFTP server stops the stage after 3 in a
// row. Before, no SFTP error was marked, and each upload to a hung
// server was a failure like any other, the next file sent after it. An
// error the server answered (here a file it cannot rename into place) is
// not one.
func TestASessionThatGetsNoAnswerSaysSo(t *testing.T) {
	t.Parallel()
	c := randomContent(5000, 21)
	upload := func(s *SFTPSession, name string) error {
		return s.Upload(context.Background(), name, int64(len(c)), c.sha(), c.open)
	}

	t.Run("stalled transfer", func(t *testing.T) {
		t.Parallel()
		// Each file's open answered 2 s late: no answer within OpTimeout.
		faults := fault.New(1, fault.Rule{Endpoint: sftptest.Endpoint, Kind: fault.Latency, Prob: 1, Delay: 2 * time.Second})
		p := startSFTPTest(t, faults)
		cfg := p.config()
		cfg.OpTimeout = 200 * time.Millisecond
		s := NewSFTPSession(cfg)
		defer s.Close()
		err := upload(s, "TD_stalled.csv")
		if !errors.Is(err, pipeline.ErrNoAnswer) || errors.Is(err, pipeline.ErrDeliveryUnknown) {
			t.Errorf("%v: want no answer (nothing asked to be renamed)", err)
		}
		if n := faults.Calls(sftptest.Endpoint); n != 3 {
			t.Errorf("%d opens, want one on each of 3 connections", n)
		}
	})

	t.Run("handshake never answered", func(t *testing.T) {
		t.Parallel()
		p := startSFTPTest(t, nil)
		cfg := p.config()
		cfg.Addr, _ = silentListener(t)
		cfg.HandshakeTimeout = 200 * time.Millisecond
		cfg.KnownHostsFile = knownHostsWith(t, cfg.Addr, mustHostKey(t, p))
		s := NewSFTPSession(cfg)
		defer s.Close()
		if err := s.Connect(context.Background()); !errors.Is(err, pipeline.ErrNoAnswer) {
			t.Errorf("connect: %v, want no answer", err)
		}
		if err := upload(s, "TD_silent.csv"); !errors.Is(err, pipeline.ErrNoAnswer) {
			t.Errorf("upload: %v, want no answer", err)
		}
		if _, _, err := s.Stat(context.Background(), "TD_silent.csv"); !errors.Is(err, pipeline.ErrNoAnswer) {
			t.Errorf("stat: %v, want no answer", err)
		}
	})

	t.Run("no server", func(t *testing.T) {
		t.Parallel()
		p := startSFTPTest(t, nil)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there: connection refused
		cfg := p.config()
		cfg.Addr, cfg.KnownHostsFile = addr, knownHostsWith(t, addr, mustHostKey(t, p))
		s := NewSFTPSession(cfg)
		defer s.Close()
		if err := upload(s, "TD_gone.csv"); !errors.Is(err, pipeline.ErrNoAnswer) {
			t.Errorf("upload: %v, want no answer", err)
		}
	})

	t.Run("answered", func(t *testing.T) {
		t.Parallel()
		p := startSFTPTest(t, nil)
		// A directory under the final name, not empty: the rename into
		// place is refused.
		if err := os.MkdirAll(filepath.Join(p.upload, "TD_dir.csv", "x"), 0o755); err != nil {
			t.Fatal(err)
		}
		s := NewSFTPSession(p.config())
		defer s.Close()
		err := upload(s, "TD_dir.csv")
		if err == nil || errors.Is(err, pipeline.ErrNoAnswer) {
			t.Errorf("%v: want the server's refusal, not no answer", err)
		}
	})
}

// TestCallsWaitingForAConnectionThatGetsNoAnswerShareItsFailure: the
// calls of a session wait for its one connection; when the server
// answers no handshake, each used to dial in turn once the one before
// had timed out, 3 times each: 32 uploads in flight against a hung
// server took 96 handshake timeouts (24 minutes at 15 s) to fail, the
// stage's breaker tripping only as the first 3 had used their 3 turns.
// A dial that got no answer is now the failure of the calls that waited
// for it too: each round of redials is one handshake timeout, whatever
// the number of calls.
func TestCallsWaitingForAConnectionThatGetsNoAnswerShareItsFailure(t *testing.T) {
	t.Parallel()
	const calls, timeout = 16, 200 * time.Millisecond
	p := startSFTPTest(t, nil)
	cfg := p.config()
	addr, accepted := silentListener(t)
	cfg.Addr, cfg.HandshakeTimeout = addr, timeout
	cfg.KnownHostsFile = knownHostsWith(t, cfg.Addr, mustHostKey(t, p))
	s := NewSFTPSession(cfg)
	defer s.Close()
	var wg sync.WaitGroup
	errs := make([]error, calls)
	began := time.Now()
	for i := range calls {
		wg.Go(func() { errs[i] = s.Connect(context.Background()) })
	}
	wg.Wait()
	took := time.Since(began)
	for i, err := range errs {
		if !errors.Is(err, pipeline.ErrNoAnswer) {
			t.Errorf("call %d: %v, want no answer", i, err)
		}
	}
	t.Logf("%d calls failed in %s, %d connections dialled", calls, took, accepted.Load())
	if n := accepted.Load(); n > 2*sessionAttempts {
		t.Errorf("%d connections dialled for %d calls waiting for one, want a round of redials to be about one dial (at most %d)", n, calls, 2*sessionAttempts)
	}
}

// sessionAttempts is SFTPSession.Attempts' default.
const sessionAttempts = 3
