package main

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
)

// signalled is a context cancelled as signal.NotifyContext cancels it on
// SIGTERM: its cause is context.Canceled, and says which signal.
type signalled string

func (s signalled) Error() string        { return string(s) }
func (s signalled) Is(target error) bool { return target == context.Canceled }

// TestAnErrorTheStopCausedSaysInterrupted: a run stopped by SIGTERM ended
// with whatever its stop caused on the way - a ledger statement it
// cancelled, "pq: canceling statement due to user request" - and the last
// line's hint said a retry may get past a failure, not that the run was
// interrupted. The error of a stopped command now names the signal and
// says interrupted (exit 1); a configuration error stays one, and an
// error of a command not stopped is left as it is.
func TestAnErrorTheStopCausedSaysInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(signalled("terminated signal received"))
	cancelled := &pq.Error{Code: "57014", Message: "canceling statement due to user request"}
	failed := errors.New("stage upload: mark effect 21 sent: " + cancelled.Error())
	if got := interrupted(context.Background(), failed); got != failed {
		t.Errorf("not stopped: %v, want the error as it is", got)
	}
	err := interrupted(ctx, failed)
	if codeOf(err) != 1 || !strings.HasPrefix(failureHint(err), "interrupted") || !strings.Contains(err.Error(), "terminated signal received") {
		t.Errorf("stopped: %v, exit %d, hint %q; want exit 1, the signal named, the hint saying interrupted", err, codeOf(err), failureHint(err))
	}
	usage := pipeline.Errorf(pipeline.KindUsage, "--rules", "no such file")
	if err := interrupted(ctx, usage); codeOf(err) != 2 || err.Error() != usage.Error() {
		t.Errorf("a usage error of a stopped command: %v, exit %d; want it as it is, exit 2", err, codeOf(err))
	}
}

// TestAStopThatHangsEndsAfterTheTimeout: work that does not end once told
// to stop (a statement on a connection the database no longer answers) is
// left after the stop timeout, with an error saying so (exit 1,
// interrupted); work that ends in time gives its own error, and work
// never told to stop is waited for.
func TestAStopThatHangsEndsAfterTheTimeout(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	defer close(hang)
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(50*time.Millisecond, func() { cancel(signalled("terminated signal received")) })
	start := time.Now()
	err := runStopping(ctx, 200*time.Millisecond, func() error { <-hang; return nil })
	if took := time.Since(start); took > 5*time.Second || codeOf(err) != 1 || !strings.HasPrefix(failureHint(err), "interrupted") || !strings.Contains(err.Error(), "still stopping 200ms later") {
		t.Errorf("a stop that hangs: %v after %s, exit %d; want it left after 200ms, exit 1, interrupted", err, took, codeOf(err))
	}
	// The work did not end: what it had not recorded (the run's end) is
	// not, and the hint does not say "state is recorded".
	if h := failureHint(err); h != hintStopTimedOut {
		t.Errorf("a stop that hangs: hint %q, want %q", h, hintStopTimedOut)
	}
	own := errors.New("its own")
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := runStopping(ctx2, time.Minute, func() error { time.Sleep(20 * time.Millisecond); return own }); err != own {
		t.Errorf("a stop in time: %v, want the work's own error", err)
	}
	if err := runStopping(context.Background(), time.Millisecond, func() error { time.Sleep(50 * time.Millisecond); return own }); err != own {
		t.Errorf("never told to stop: %v, want the work waited for", err)
	}
	for v, ok := range map[string]bool{"": true, "3s": true, "0": false, "-1s": false, "45": false} {
		_, err := stopTimeoutOf(func(string) string { return v })
		if (err == nil) != ok || err != nil && codeOf(err) != 2 {
			t.Errorf("%s=%q: %v", stopTimeoutEnv, v, err)
		}
	}
}

// TestASecondSignalStopsAtOnce: a second signal (an operator's second
// Ctrl-C) was dropped, silently, and the stop went on waiting for its
// work (up to SETTLE_STOP_TIMEOUT). It ends the stop at once, exit 1,
// saying so, with a hint that what was not recorded is not.
func TestASecondSignalStopsAtOnce(t *testing.T) {
	t.Parallel()
	ctx, stop := notifyStop(context.Background(), syscall.SIGUSR1)
	defer stop()
	hang := make(chan struct{})
	defer close(hang)
	go func() {
		syscall.Kill(os.Getpid(), syscall.SIGUSR1)
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond)
		syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	}()
	start := time.Now()
	err := runStopping(ctx, 15*time.Second, func() error { <-hang; return nil })
	if took := time.Since(start); took > 10*time.Second || codeOf(err) != 1 || failureHint(err) != hintSecondSignal ||
		!strings.HasPrefix(err.Error(), "second signal (user defined signal 1)") || !strings.Contains(err.Error(), "(user defined signal 1 signal received)") {
		t.Errorf("a second signal: %v after %s, exit %d, hint %q; want it ended at once, exit 1, saying so", err, took, codeOf(err), failureHint(err))
	}
	if !errors.Is(context.Cause(ctx), context.Canceled) {
		t.Errorf("the first signal's cause %v is not context.Canceled", context.Cause(ctx))
	}
}
