package ledger_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// droppingProxy passes connections to the PostgreSQL server of dsn (a
// postgres:// URL with sslmode=disable) with the run-time parameters named
// in drop taken out of their startup packets, as PgBouncer does with its
// ignore_startup_parameters: the server never sees them, and the client is
// not told. It returns dsn pointed at the proxy.
func droppingProxy(t *testing.T, dsn string, drop ...string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	upstream := u.Host
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				startup, err := readStartup(c)
				if err != nil {
					return
				}
				s, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer s.Close()
				mu.Lock()
				conns = append(conns, c, s)
				mu.Unlock()
				if _, err := s.Write(withoutParams(startup, drop)); err != nil {
					return
				}
				done := make(chan struct{})
				go func() { io.Copy(s, c); s.Close(); close(done) }()
				io.Copy(c, s)
				c.Close()
				<-done
			}()
		}
	}()
	u.Host = ln.Addr().String()
	return u.String()
}

// readStartup reads a client's startup packet (length, protocol, then
// name and value pairs), whole.
func readStartup(c net.Conn) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size < 8 || size > 1<<16 {
		return nil, errors.New("not a startup packet")
	}
	b := make([]byte, size)
	copy(b, n[:])
	if _, err := io.ReadFull(c, b[4:]); err != nil {
		return nil, err
	}
	return b, nil
}

// withoutParams is startup without the parameters named in drop.
func withoutParams(startup []byte, drop []string) []byte {
	fields := bytes.Split(startup[8:], []byte{0})
	out := append([]byte(nil), startup[:8]...)
	for i := 0; i+1 < len(fields) && len(fields[i]) > 0; i += 2 {
		if slices.Contains(drop, string(fields[i])) {
			continue
		}
		out = append(append(append(append(out, fields[i]...), 0), fields[i+1]...), 0)
	}
	out = append(out, 0)
	binary.BigEndian.PutUint32(out, uint32(len(out)))
	return out
}

// TestALedgerBehindAPoolerThatDropsItsSettingsIsRefused: a connection
// pooler (PgBouncer) refuses the run-time parameters settle connects its
// ledger's sessions with unless told to ignore them, and then drops them:
// without search_path the ledger's tables were created in public, whatever
// the schema, and the sessions ran under the role's statement_timeout and
// isolation - and, in the pooler's transaction mode, the date's session
// lock was held by a server session other clients share (found by putting
// settle behind PgBouncer 1.18: runs went through, into public). Open
// refuses such a session, naming what it lacks and the pooler, exit 2.
func TestALedgerBehindAPoolerThatDropsItsSettingsIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.URL(t)
	if u, _ := url.Parse(dsn); u == nil || u.Query().Get("sslmode") != "disable" {
		t.Skip("the proxy speaks the protocol in plain text only")
	}
	// The database's own settings, as a DBA sets them for the platform's
	// sessions, differ from settle's: a dropped parameter shows.
	u, _ := url.Parse(dsn)
	admin, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	db := pq.QuoteIdentifier(strings.TrimPrefix(u.Path, "/"))
	for _, q := range []string{`ALTER DATABASE ` + db + ` SET statement_timeout = '30s'`, `ALTER DATABASE ` + db + ` SET default_transaction_isolation = 'repeatable read'`} {
		if _, err := admin.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// The proxy itself passes a session whose settings all arrive.
	l, err := ledger.Open(ctx, droppingProxy(t, dsn), "")
	if err != nil {
		t.Fatalf("through a proxy that drops nothing: %v", err)
	}
	l.Close()
	for _, drop := range [][]string{
		{"search_path", "jit", "statement_timeout", "default_transaction_isolation"},
		{"search_path"},
		{"statement_timeout"},
		{"default_transaction_isolation"},
	} {
		l, err := ledger.Open(ctx, droppingProxy(t, dsn, drop...), "")
		if err == nil {
			l.Close()
			t.Fatalf("dropping %v: the ledger opened", drop)
		}
		if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), drop[0]+" is ") || !strings.Contains(err.Error(), "pooler") {
			t.Fatalf("dropping %v: %v (kind %v), want a usage error naming %s and the pooler", drop, err, pipeline.KindOf(err), drop[0])
		}
	}
}

// TestADateLockOnASessionThatHoldsItAlreadyIsRefused: an advisory lock is
// re-entrant, and a pooler in transaction mode (PgBouncer) gives the
// server session of an idle client to the next: a second run of a date
// given the session the first run took the date's lock on was granted it
// too, and both paid. The lock is refused on a session that holds it
// already (exit 2, naming the pooler). The pool here has one connection,
// whose session holds the date's lock when Lock is given it, as the
// pooler would give it.
func TestADateLockOnASessionThatHoldsItAlreadyIsRefused(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	l.DB().SetMaxOpenConns(1)
	c, err := l.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecContext(ctx, `SELECT pg_advisory_lock(hashtextextended($1, 0))`, "settle/settle/date/"+day.String()); err != nil {
		t.Fatal(err)
	}
	c.Close()
	for _, key := range []pipeline.RunKey{{Date: day, Shard: pipeline.Whole}, {Date: day, Shard: pipeline.Shard{Index: 1, Count: 2}}} {
		release, err := l.Lock(ctx, key)
		if err == nil {
			release()
			t.Fatalf("run %s was given the date's lock its session holds for another", key)
		}
		if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "holds the lock already") || !strings.Contains(err.Error(), "pooler") {
			t.Fatalf("run %s: %v (kind %v), want a usage error naming the pooler", key, err, pipeline.KindOf(err))
		}
	}
	if _, err := l.LockDate(ctx, day); pipeline.KindOf(err) != pipeline.KindUsage {
		t.Fatalf("LockDate: %v, want a usage error naming the pooler", err)
	}
	// The refusals let go of nothing of the other client's.
	var held int
	if err := l.DB().QueryRowContext(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()`).Scan(&held); err != nil || held != 1 {
		t.Fatalf("the shared session holds %d advisory locks (%v), want the other client's 1", held, err)
	}
}

// TestTheLockIsCheckedFromManySendsAtOnce: the run's sends each ask the
// lock's session whether it is still the one that took the lock
// (CheckLocks), many at once. Its question reads a row back, and a second
// statement on the session while the first's row is read broke the
// protocol ("there is already a query being processed on this
// connection"): every demo run lost its lock at its first sends.
func TestTheLockIsCheckedFromManySendsAtOnce(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	release, err := l.Lock(ctx, pipeline.RunKey{Date: day, Shard: pipeline.Whole})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if err := l.CheckLocks(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatalf("a lock held throughout read as lost: %v", err)
	}
}

// TestALedgerTransactionOutlivesTheRolesIdleTimeout: a DBA's
// idle_in_transaction_session_timeout on settle's role or database (set
// for the platform's web sessions) ended a ledger session whose
// transaction waited on settle's own work between two statements - a
// demo run under 100 ms lost its session in its distribute stage, "driver:
// bad connection", exit 1 on every run. The ledger's sessions lift it, as
// they lift statement_timeout. Here a View waits between two reads.
func TestALedgerTransactionOutlivesTheRolesIdleTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.URL(t)
	u, _ := url.Parse(dsn)
	admin, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, `ALTER DATABASE `+pq.QuoteIdentifier(strings.TrimPrefix(u.Path, "/"))+` SET idle_in_transaction_session_timeout = '50ms'`); err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(ctx, dsn, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	err = l.View(ctx, func(r ledger.Reader) error {
		if err := r.SummaryLines(ctx, day, func(pipeline.SummaryLine) error { return nil }); err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond)
		return r.SummaryLines(ctx, day, func(pipeline.SummaryLine) error { return nil })
	})
	if err != nil {
		t.Fatalf("a view waiting 300 ms between its reads, under a 50 ms idle-in-transaction timeout: %v", err)
	}
}

// TestALockOnASessionHoldingAnotherClientsLockIsRefused: behind a
// pooler in transaction mode with one server session (PgBouncer with
// track_extra_parameters passes settle's settings on, and its process
// never differs), a run of one date took its lock on the session a run of
// another date held its own on, and the first run's end let go of both
// (pg_advisory_unlock_all): the second date's run went on without its
// lock while a second run of that date took it. A session holding any
// advisory lock is refused its first (exit 2, naming the pooler), letting
// go of nothing; a lock refused as held by another session lets go of
// what it took alone. The pool here has one connection, whose session
// holds another client's lock, as the pooler would give it.
func TestALockOnASessionHoldingAnotherClientsLockIsRefused(t *testing.T) {
	t.Parallel()
	l, dsn := open(t)
	ctx := context.Background()
	l.DB().SetMaxOpenConns(1)
	heldHere := func() []string {
		t.Helper()
		var held []string
		if err := l.DB().SelectContext(ctx, &held, `SELECT objid::text || '/' || mode FROM pg_locks
			WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() ORDER BY 1`); err != nil {
			t.Fatal(err)
		}
		return held
	}
	c, err := l.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecContext(ctx, `SELECT pg_advisory_lock(hashtextextended('settle/settle/date/2026-11-24', 0))`); err != nil {
		t.Fatal(err)
	}
	c.Close()
	for _, key := range []pipeline.RunKey{{Date: day, Shard: pipeline.Whole}, {Date: day, Shard: pipeline.Shard{Index: 1, Count: 2}}} {
		release, err := l.Lock(ctx, key)
		if err == nil {
			release()
			t.Fatalf("run %s was given its lock on a session holding another date's", key)
		}
		if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "pooler") {
			t.Fatalf("run %s: %v (kind %v), want a usage error naming the pooler", key, err, pipeline.KindOf(err))
		}
		if held := heldHere(); len(held) != 1 || !strings.HasSuffix(held[0], "/ExclusiveLock") {
			t.Fatalf("run %s refused: its session holds %v, want the other client's lock alone", key, held)
		}
	}
	// The session free, a shard's lock held by another session: the
	// date's lock, taken first, is let go of, and nothing else.
	c, err = l.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecContext(ctx, `SELECT pg_advisory_unlock_all()`); err != nil {
		t.Fatal(err)
	}
	c.Close()
	other, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.SetMaxOpenConns(1)
	if _, err := other.ExecContext(ctx, `SELECT pg_advisory_lock(hashtextextended($1, 0))`, "settle/settle/date/"+day.String()+"/shard/1/2"); err != nil {
		t.Fatal(err)
	}
	key := pipeline.RunKey{Date: day, Shard: pipeline.Shard{Index: 1, Count: 2}}
	if release, err := l.Lock(ctx, key); err == nil {
		release()
		t.Fatalf("run %s was given a lock another session holds", key)
	} else if pipeline.KindOf(err) != pipeline.KindLocked {
		t.Fatalf("run %s: %v (kind %v), want locked", key, err, pipeline.KindOf(err))
	}
	if held := heldHere(); len(held) != 0 {
		t.Fatalf("run %s refused: its session holds %v, want nothing", key, held)
	}
}
