package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// signalWriter keeps what is written and closes seen once it holds want.
type signalWriter struct {
	want string
	seen chan struct{}

	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := strings.Contains(w.buf.String(), w.want)
	w.buf.Write(p)
	if !had && strings.Contains(w.buf.String(), w.want) {
		close(w.seen)
	}
	return len(p), nil
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitingForTheLock runs settle with args (and getenv) in the background,
// returning once it says it waits for its date's lock, with what it wrote
// and its exit code to come.
func waitingForTheLock(t *testing.T, args []string, getenv func(string) string) (*signalWriter, <-chan int) {
	t.Helper()
	w := &signalWriter{want: "waiting for it", seen: make(chan struct{})}
	done := make(chan int, 1)
	go func() {
		var errb bytes.Buffer
		err := run(context.Background(), sendingPastMemory(plainTextArgs(args)), getenv, w, &errb)
		done <- exitCode(err, &errb)
	}()
	select {
	case <-w.seen:
	case code := <-done:
		t.Fatalf("%s: exit %d without waiting for the date's lock:\n%s", args[1], code, w)
	case <-time.After(3 * time.Minute):
		t.Fatalf("%s: no word of waiting for the date's lock:\n%s", args[1], w)
	}
	return w, done
}

// TestARunWaitsForItsDateWithLockWait: a nightly run that found a
// person's run of its date working exited 75 at once, and the Job's three
// quick retries failed it (an alert, with nothing wrong). With --lock-wait
// it tries again until the other run ends, then goes on; without it, or
// past it, it still exits 75, having done nothing.
func TestARunWaitsForItsDateWithLockWait(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(200, 0)
	e.mustSettle("migrate")
	ctx := context.Background()
	l, err := ledger.Open(ctx, e.url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d, _ := pipeline.ParseDate(testDate)
	release, err := l.LockDate(ctx, d) // another process's run of the date
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"run", "--date", testDate, "--rules", e.rules, "--out", e.reports, "--until", "transform"}
	for _, extra := range [][]string{nil, {"--lock-wait", "1s"}} {
		out, code := e.settle(append(args, extra...)...)
		if code != 75 || e.count(`SELECT count(*) FROM settle.runs`) != 0 {
			t.Fatalf("%v beside a run of the date: exit %d, %d runs; want 75 and nothing done\n%s", extra, code, e.count(`SELECT count(*) FROM settle.runs`), out)
		}
		// Past the wait, the end says it waited (it read as if it had not).
		if waited := strings.Contains(out, "waited --lock-wait 1s for it"); waited != (extra != nil) {
			t.Errorf("%v: says it waited: %v, want %v\n%s", extra, waited, extra != nil, out)
		}
		// It names the holder: its machine (a pod), process and what it
		// locks, and its server session (it said "another settle process
		// (a run of the date, or a resolve)" alone: a CronJob's retry
		// beside its first pod, a person's run and a later date's
		// reconciliation of the date read the same).
		host, _ := os.Hostname()
		if want := fmt.Sprintf(`(held by "settle@%s pid %d: run %s", server process `, host, os.Getpid(), testDate); !strings.Contains(out, want) {
			t.Errorf("%v: the refusal does not name the holder %s\n%s", extra, want, out)
		}
	}
	w, done := waitingForTheLock(t, append([]string{"settle", "run", "--database-url", e.url}, append(args[1:], "--lock-wait", "10m")...),
		func(k string) string { // JSON, as in a pod
			if k == "SETTLE_LOG_FORMAT" {
				return "json"
			}
			return ""
		})
	// A duration is in seconds under a _seconds key (README), not "10m0s".
	if out := w.String(); !strings.Contains(out, `"lock_wait_seconds":600`) {
		t.Errorf("the waiting line does not give --lock-wait as lock_wait_seconds:\n%s", out)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != 0 || !strings.Contains(w.String(), "the other run ended") || e.count(`SELECT count(*) FROM settle.items`) == 0 {
		t.Fatalf("once the other run ended: exit %d, %d items; want 0 and the day read\n%s", code, e.count(`SELECT count(*) FROM settle.items`), w)
	}
}
