package ledger_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// slowProxy forwards TCP connections to a server, holding each chunk
// the client sends for delay (set while the test runs) before it goes on.
type slowProxy struct {
	ln    net.Listener
	delay atomic.Int64 // nanoseconds
}

func newSlowProxy(t *testing.T, server string) *slowProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", server)
			if err != nil {
				c.Close()
				continue
			}
			go func() { _, _ = io.Copy(c, s); c.Close() }()
			go func() {
				defer s.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						time.Sleep(time.Duration(p.delay.Load()))
						if _, werr := s.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

// TestAStopDuringTheLockCheckKeepsTheLock: the check of the run's lock
// (before each stage, before every send) asks the lock's own session. A
// run told to stop (SIGTERM) while that question was in flight had it
// cancelled, and lib/pq closes a connection whose statement a context
// cancelled: the lock's session ended, the date's lock with it, while the
// stopping run still had requests in flight (a second run could take the
// date), and the run's end was refused as a lost lock. The question is
// now asked on a context of its own: the stop is met by what follows it,
// and the lock holds.
func TestAStopDuringTheLockCheckKeepsTheLock(t *testing.T) {
	t.Parallel()
	l, raw := open(t)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	p := newSlowProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	ctx := context.Background()
	locked, err := ledger.Open(ctx, u.String(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { locked.Close() })
	key := pipeline.RunKey{Date: day, Shard: pipeline.Whole}
	release, err := locked.Lock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if err := locked.CheckLocks(ctx); err != nil {
		t.Fatalf("the lock just taken: %v", err)
	}
	// Told to stop while the question is on its way.
	p.delay.Store(int64(400 * time.Millisecond))
	stopping, cancel := context.WithCancel(ctx) // as SIGTERM's: no deadline
	time.AfterFunc(100*time.Millisecond, cancel)
	_ = locked.CheckLocks(stopping)
	cancel()
	p.delay.Store(0)
	time.Sleep(200 * time.Millisecond) // whatever lib/pq does after it, done
	if err := locked.CheckLocks(ctx); err != nil {
		t.Fatalf("after a stop met the lock check: %v; want the lock held", err)
	}
	var held int
	if err := l.DB().Get(&held, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
		t.Fatal(err)
	}
	if held == 0 {
		t.Fatal("the run's advisory locks are gone after a stop met the lock check")
	}
}

// TestManySendsAtOnceKeepTheLock: every send checks the run's lock on its
// session (MarkSent), the run's sends up to a few hundred at once, and the
// questions are asked one after the other on the one session. Each
// question's timeout ran while it waited for the others: on a busy server
// (here a session 400 ms away, 40 sends at once: 16 s of questions in a
// row against a 10 s timeout) the last timed out unasked, which closed the
// session and lost the lock (a night of 10,000 orders, on a machine at a
// load of 30, failed so twice in a row). A check that waited now takes the
// answer of a question begun after it came.
func TestManySendsAtOnceKeepTheLock(t *testing.T) {
	t.Parallel()
	_, raw := open(t)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	p := newSlowProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	ctx := context.Background()
	locked, err := ledger.Open(ctx, u.String(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { locked.Close() })
	release, err := locked.Lock(ctx, pipeline.RunKey{Date: day, Shard: pipeline.Whole})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	p.delay.Store(int64(400 * time.Millisecond))
	const sends = 40
	errs := make(chan error, sends)
	for range sends {
		go func() { errs <- locked.CheckLocks(ctx) }()
	}
	for range sends {
		if err := <-errs; err != nil {
			t.Fatalf("a check among %d at once: %v; want the lock held", sends, err)
		}
	}
	p.delay.Store(0)
	if err := locked.CheckLocks(ctx); err != nil {
		t.Fatalf("after %d checks at once: %v; want the lock held", sends, err)
	}
}
