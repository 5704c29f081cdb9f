package ledger_test

import (
	"context"
	"database/sql"
	"testing"
	"time"
)

// endIdleSessions ends, from a session of its own, every other session of
// the database at url (a server's idle_session_timeout, a restart, a
// failover) and waits until they are gone: the connections a pool keeps
// idle are broken, and the pool does not know it yet.
func endIdleSessions(t *testing.T, url string) {
	t.Helper()
	admin, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	admin.SetMaxOpenConns(1)
	const others = `FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`
	var n int
	if err := admin.QueryRow(`SELECT count(pg_terminate_backend(pid)) ` + others).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no idle session to end: the test would prove nothing")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := admin.QueryRow(`SELECT count(*) ` + others).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions still there", n)
		}
	}
}

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
	endIdleSessions(t, url)
	release, err := l.LockDate(ctx, day)
	if err != nil {
		t.Fatalf("the date's lock after the idle session ended: %v", err)
	}
	defer release()
	if err := l.CheckLocks(ctx); err != nil {
		t.Fatalf("the date's lock: %v", err)
	}
	endIdleSessions(t, url) // the lock's too: lost, said so
	if err := l.CheckLocks(ctx); err == nil {
		t.Fatal("the date's lock's session ended, and CheckLocks says it holds")
	}
	unlock, err := l.LockReports(ctx, day)
	if err != nil {
		t.Fatalf("the reports' lock after the idle session ended: %v", err)
	}
	unlock()
}
