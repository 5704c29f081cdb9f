package ledger_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// TestLocksGetPastASessionTheServerEndedWhileIdle: a date's lock and its
// reports' lock are taken on a connection of their own, which
// database/sql hands out from its idle ones as it is: one whose session
// the server ended while it sat idle (idle_session_timeout, a restart)
// failed the lock, "connection reset by peer", exit 1 - the reports' lock
// at the end of a run whose work was done (found by a review). A broken
// idle connection is now let go of, and the lock taken on another.
func TestLocksGetPastASessionTheServerEndedWhileIdle(t *testing.T) {
	t.Parallel()
	l, url := open(t)
	ctx := context.Background()
	pgtest.EndSessions(t, url)
	release, err := l.LockDate(ctx, day)
	if err != nil {
		t.Fatalf("the date's lock after the idle session ended: %v", err)
	}
	defer release()
	if err := l.CheckLocks(ctx); err != nil {
		t.Fatalf("the date's lock: %v", err)
	}
	pgtest.EndSessions(t, url) // the lock's too: lost, said so
	if err := l.CheckLocks(ctx); err == nil {
		t.Fatal("the date's lock's session ended, and CheckLocks says it holds")
	}
	unlock, err := l.LockReports(ctx, day)
	if err != nil {
		t.Fatalf("the reports' lock after the idle session ended: %v", err)
	}
	unlock()
}

// TestThePoolLetsGoOfIdleConnectionsBeforeTheServerDoes: a server that
// ends sessions idle past its idle_session_timeout (a DBA's setting, here
// the database's) ended the pool's idle connections while a stage waited
// on a provider; lib/pq mostly finds such a connection broken and
// database/sql takes another, but a reset that comes before the server's
// goodbye is read fails the statement, "connection reset by peer", exit 1
// (found by a review: under load a 2,000-order day took three runs). The
// pool now closes its idle connections at a third of the server's timeout,
// before the server ends them: closed by the pool, counted in its stats.
func TestThePoolLetsGoOfIdleConnectionsBeforeTheServerDoes(t *testing.T) {
	t.Parallel()
	url := pgtest.URLFrom(t, pgtest.Template(t, "migrated ledger", migrated))
	admin, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(`DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET idle_session_timeout = ''6s''', current_database()); END $$`); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := ledger.Open(ctx, url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var wg sync.WaitGroup
	for range 4 { // several connections in the pool, each left idle after
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.GetRun(ctx, pipeline.RunKey{Date: day}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// The pool closes a connection idle for 2s (a third of 6s); its
	// cleaner sweeps at that interval: by 5s every idle one is closed, the
	// server's 6s not reached.
	for deadline := time.Now().Add(5 * time.Second); l.DB().Stats().MaxIdleTimeClosed == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no idle connection closed by the pool within 5s, the server ending them at 6s: %+v", l.DB().Stats())
		}
	}
	if _, err := l.GetRun(ctx, pipeline.RunKey{Date: day}); err != nil {
		t.Fatal(err)
	}
}
