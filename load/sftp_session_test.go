package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"
	"golang.org/x/sync/errgroup"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/sftptest"
	"github.com/settlekit/settle/pipeline"
)

// countingSession is a session on p whose dials are counted.
func countingSession(p *peer) (*SFTPSession, *atomic.Int32) {
	var dials atomic.Int32
	s := NewSFTPSession(p.config())
	s.Dial = func(ctx context.Context, cfg SFTPConfig) (*SFTP, error) {
		dials.Add(1)
		return DialSFTP(ctx, cfg)
	}
	return s, &dials
}

// Issue 13: a connection dropped during the upload-status check (the Stat
// of a file under its final name) reconnects instead of failing.
func TestSessionReconnectsWhenStatDropsTheConnection(t *testing.T) {
	// Stat calls: 1 and 2 the other connection's directory check and its
	// upload's check of the temporary file, 3 the session's directory
	// check at connect, 4 the status check: dropped.
	faults := fault.New(1, fault.Rule{Endpoint: sftptest.StatEndpoint, Kind: fault.Reset, Calls: []int{4}})
	p := startSFTPTest(t, faults)
	c := randomContent(5000, 1)
	if err := c.upload(context.Background(), p.dial(t), "TD_1.csv"); err != nil {
		t.Fatal(err)
	}
	s, dials := countingSession(p)
	defer s.Close()
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	size, ok, err := s.Stat(context.Background(), "TD_1.csv")
	if err != nil || !ok || size != int64(len(c)) {
		t.Fatalf("stat after a dropped connection: %d %v %v", size, ok, err)
	}
	if faults.Played(fault.Reset) != 1 || dials.Load() != 2 {
		t.Fatalf("%d resets played, %d dials; want 1 and a reconnect", faults.Played(fault.Reset), dials.Load())
	}
}

// A connection dropped between files (at the next file's open) or in the
// middle of a file: the upload is made again on a new connection, whole.
func TestSessionReconnectsBetweenAndWithinFiles(t *testing.T) {
	faults := fault.New(1,
		fault.Rule{Endpoint: sftptest.Endpoint, Kind: fault.Reset, Calls: []int{2}},
		fault.Rule{Endpoint: sftptest.Endpoint, Kind: fault.Disconnect, Calls: []int{4}, Bytes: 1000})
	p := startSFTPTest(t, faults)
	s, dials := countingSession(p)
	defer s.Close()
	files := map[string]content{"TD_a.csv": randomContent(3000, 2), "TD_b.csv": randomContent(3000, 3), "TD_c.csv": randomContent(200_000, 4)}
	for _, name := range []string{"TD_a.csv", "TD_b.csv", "TD_c.csv"} {
		c := files[name]
		if err := s.Upload(context.Background(), name, int64(len(c)), c.sha(), c.open); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for name, c := range files {
		if !bytes.Equal(p.onDisk(t, name), c) {
			t.Errorf("%s is not whole", name)
		}
	}
	if faults.Played(fault.Reset) != 1 || faults.Played(fault.Disconnect) != 1 || dials.Load() != 3 {
		t.Fatalf("resets %d, disconnects %d, dials %d", faults.Played(fault.Reset), faults.Played(fault.Disconnect), dials.Load())
	}
	p.noTempFiles(t)
}

// An error that is not a lost connection is not retried; a connection
// that keeps dropping gives up after Attempts.
func TestSessionRetriesOnlyLostConnections(t *testing.T) {
	faults := fault.New(1, fault.Rule{Endpoint: sftptest.StatEndpoint, Kind: fault.Reset, Calls: []int{2, 4, 6}})
	p := startSFTPTest(t, faults)
	s, dials := countingSession(p)
	defer s.Close()
	c := randomContent(100, 5)
	err := s.Upload(context.Background(), "TD_x.csv", int64(len(c)), strings.Repeat("0", 64), c.open)
	if err == nil || !strings.Contains(err.Error(), "sha256") || dials.Load() != 1 {
		t.Fatalf("a wrong digest: %v after %d dials", err, dials.Load())
	}
	// Stat calls: 1 the directory check at connect (the refused upload
	// stats nothing); then ours (2, 4, 6) are dropped, each followed by a
	// reconnect's directory check (3, 5).
	_, _, err = s.Stat(context.Background(), "TD_x.csv")
	if err == nil || !strings.Contains(err.Error(), "3 connections lost") || dials.Load() != 3 {
		t.Fatalf("a connection that keeps dropping: %v after %d dials", err, dials.Load())
	}
}

// Issue 13: an SFTP key the server refuses is a configuration error (exit
// 2), one line naming the server, user and what was refused, never retried.
func TestSessionAuthenticationRefusedIsUsage(t *testing.T) {
	p := startSFTPTest(t, nil)
	other, _ := newClientKey(t)
	cfg := p.config()
	cfg.Signer = other
	s := NewSFTPSession(cfg)
	var dials atomic.Int32
	s.Dial = func(ctx context.Context, cfg SFTPConfig) (*SFTP, error) { dials.Add(1); return DialSFTP(ctx, cfg) }
	err := s.Connect(context.Background())
	if pipeline.KindOf(err) != pipeline.KindUsage || dials.Load() != 1 {
		t.Fatalf("refused key: kind %v after %d dials: %v", pipeline.KindOf(err), dials.Load(), err)
	}
	if msg := err.Error(); !strings.Contains(msg, p.addr) || !strings.Contains(msg, "refused our key") || strings.Contains(msg, "\n") {
		t.Fatalf("message: %q", msg)
	}
}

// Issue 12: many files at a time over one SFTP connection. A provider's
// upload stage calls Upload for many files at once; the session must not
// serialise them: every upload here waits, once started, until `overlap`
// uploads have started, which only happens if that many are in flight at
// once on the session's one connection (a session that served them one at
// a time would never get past the first, and the test would fail at its
// deadline). Every file ends whole, over one connection.
func TestSessionUploadsManyFilesAtOnceOverOneConnection(t *testing.T) {
	const files, parallel, overlap = 64, 32, 16
	p := startSFTPTest(t, nil)
	s, dials := countingSession(p)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		mu               sync.Mutex
		started, current int
		peak             int
		together         = make(chan struct{})
	)
	contents := make([]content, files)
	errs := make([]error, files)
	var g errgroup.Group
	g.SetLimit(parallel)
	for i := range files {
		contents[i] = randomContent(2000+i*300, uint64(i+10)) // some over one packet, most under
		name := fmt.Sprintf("TD_%02d.csv", i)
		g.Go(func() error {
			open := func() (io.ReadCloser, error) {
				mu.Lock()
				started++
				current++
				peak = max(peak, current)
				if started == overlap {
					close(together)
				}
				mu.Unlock()
				select {
				case <-together:
				case <-ctx.Done():
					return nil, fmt.Errorf("only %d uploads started at once: %w", started, ctx.Err())
				}
				return contents[i].open()
			}
			errs[i] = s.Upload(ctx, name, int64(len(contents[i])), contents[i].sha(), open)
			mu.Lock()
			current--
			mu.Unlock()
			return nil
		})
	}
	g.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for i, c := range contents {
		if !bytes.Equal(p.onDisk(t, fmt.Sprintf("TD_%02d.csv", i)), c) {
			t.Errorf("file %d is not whole", i)
		}
	}
	if dials.Load() != 1 || peak < overlap {
		t.Fatalf("%d connections, at most %d uploads in flight at once; want 1 connection and at least %d", dials.Load(), peak, overlap)
	}
	p.noTempFiles(t)
}

// BenchmarkSessionUploads uploads 2 KiB files over one session, 4 and 32
// at a time, to the in-process server through a link with a 20 ms round
// trip (latencyProxy): each file takes several round trips (open, write,
// close, stat, rename), so the files a second grow with the uploads in
// flight on the one connection.
func BenchmarkSessionUploads(b *testing.B) {
	for _, parallel := range []int{4, 32} {
		b.Run(fmt.Sprint(parallel), func(b *testing.B) {
			p := startSFTPTest(b, nil)
			cfg := p.config()
			cfg.Addr = latencyProxy(b, p.addr, 10*time.Millisecond)
			cfg.KnownHostsFile = knownHostsFor(b, p.knownHosts, cfg.Addr)
			s := NewSFTPSession(cfg)
			var dials atomic.Int32
			s.Dial = func(ctx context.Context, cfg SFTPConfig) (*SFTP, error) { dials.Add(1); return DialSFTP(ctx, cfg) }
			defer s.Close()
			if err := s.Connect(context.Background()); err != nil {
				b.Fatal(err)
			}
			c := randomContent(2048, 1)
			var g errgroup.Group
			g.SetLimit(parallel)
			b.ResetTimer()
			for i := range b.N {
				g.Go(func() error {
					return s.Upload(context.Background(), fmt.Sprintf("TD_%d.csv", i), int64(len(c)), c.sha(), c.open)
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
			if dials.Load() != 1 {
				b.Fatalf("%d connections", dials.Load())
			}
		})
	}
}

// latencyProxy forwards TCP connections to addr, delivering every chunk
// oneWay after it was read, in order: a link with a round trip of twice
// oneWay that still carries many requests at once. It returns its address.
func latencyProxy(tb testing.TB, addr string, oneWay time.Duration) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			go delayCopy(s, c, oneWay)
			go delayCopy(c, s, oneWay)
		}
	}()
	return ln.Addr().String()
}

func delayCopy(dst, src net.Conn, d time.Duration) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	ch := make(chan chunk, 1024)
	go func() {
		defer close(ch)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				ch <- chunk{b[:n], time.Now().Add(d)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	for range ch {
	}
}

// knownHostsFor writes a known_hosts file naming the host key of file's
// first line for addr.
func knownHostsFor(tb testing.TB, file, addr string) string {
	tb.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	fields := strings.Fields(string(b))
	path := filepath.Join(tb.TempDir(), "known_hosts")
	line := knownhosts.Normalize(addr) + " " + strings.Join(fields[1:3], " ") + "\n"
	if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}
