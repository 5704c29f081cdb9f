package load

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/sftptest"
	"github.com/settlekit/settle/pipeline"
)

// silentListener accepts TCP connections and never answers on them, as a
// stopped (SIGSTOP) server whose kernel still accepts: the SSH handshake
// gets no answer.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
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
	return ln.Addr().String()
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
		cfg.Addr, cfg.HandshakeTimeout = silentListener(t), 200*time.Millisecond
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
