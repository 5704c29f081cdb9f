package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// stopTimeoutEnv names how long settle takes at most to stop once told to
// (SIGTERM, SIGINT); default pipeline.StopTimeout.
const stopTimeoutEnv = "SETTLE_STOP_TIMEOUT"

// stopTimeoutOf reads stopTimeoutEnv: a positive duration ("45s").
func stopTimeoutOf(getenv func(string) string) (time.Duration, error) {
	v := getenv(stopTimeoutEnv)
	if v == "" {
		return pipeline.StopTimeout, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, pipeline.Errorf(pipeline.KindUsage, stopTimeoutEnv, "%q: want a positive duration (45s; unset: %s), shorter than the pod's terminationGracePeriodSeconds", v, pipeline.StopTimeout)
	}
	return d, nil
}

// runStopping runs work and returns its error, or, when work has not
// ended timeout after ctx was done (the process told to stop), an error
// saying so: the caller logs it as the last line and exits 1 without
// waiting for work. Everything settle does is bounded once told to stop
// (a request in flight by pipeline.InFlightGrace, the records and the
// metrics' push by their timeouts), but a database that answers nothing
// on an open connection is not: lib/pq asks it to cancel over a second
// connection and waits for the first one's answer, and a statement on a
// connection whose peer is gone without a word (a partition, a frozen
// server) waits for TCP to give up, minutes later. Kubernetes kills the
// pod at its terminationGracePeriodSeconds: it ended with no last line
// (exit 137, no hint, no date). Ending here is what that kill does, one
// line earlier: every side effect was recorded before it was sent, and
// what was not answered is asked about by its key on the next run.
//
// A second signal (an operator's second Ctrl-C; ctx's later signals,
// notifyStop) ends it the same way at once, without waiting for the work
// told to stop: what it had recorded stands, as after a kill.
func runStopping(ctx context.Context, timeout time.Duration, work func() error) error {
	done := make(chan error, 1)
	go func() { done <- work() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	stopped := time.Now()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return stopCut{fmt.Errorf("told to stop (%w), and still stopping %s later (%s): a database, provider or SFTP server answers nothing; ending with that work unfinished, as a kill would: what was sent and not answered is asked about by its key on the next run",
			context.Cause(ctx), timeout, stopTimeoutEnv), errStopTimedOut}
	case s := <-laterSignals(ctx):
		return stopCut{fmt.Errorf("second signal (%s), %s after the first (%w): stopping now, not waiting for the work told to stop; state as recorded at %s (settle status shows it): what was sent and not answered is asked about by its key on the next run",
			s, time.Since(stopped).Round(time.Millisecond), context.Cause(ctx), time.Now().UTC().Format(time.RFC3339)), errSecondSignal}
	}
}

// errStopTimedOut is in the chain of runStopping's error when the work
// did not end in time: what it had not recorded by then is not, a run's
// end among it (failureHint does not say "state is recorded").
var errStopTimedOut = errors.New("ended before its work did")

// errSecondSignal is in the chain of runStopping's error when a second
// signal ended it before its work: as errStopTimedOut, what the work had
// not recorded by then is not.
var errSecondSignal = errors.New("ended at a second signal, before its work did")

// stopCut is runStopping's error when it ended before its work: err says
// why, and the chain holds why's sentinel (errStopTimedOut,
// errSecondSignal).
type stopCut struct{ err, why error }

func (e stopCut) Error() string   { return e.err.Error() }
func (e stopCut) Unwrap() []error { return []error{e.err, e.why} }

// cutShort reports whether err is runStopping's of a stop that ended
// before its work did: the work's own end (its metrics among it) never
// came.
func cutShort(err error) bool {
	return errors.Is(err, errStopTimedOut) || errors.Is(err, errSecondSignal)
}

// signalCause is the cause of the context a signal stopped ("terminated
// signal received"): context.Canceled, as signal.NotifyContext's.
type signalCause string

func (s signalCause) Error() string        { return string(s) }
func (s signalCause) Is(target error) bool { return target == context.Canceled }

// laterSignalsKey carries, in a command's context, the signals that came
// after the one that stopped it (notifyStop).
type laterSignalsKey struct{}

// withLaterSignals is ctx carrying later for runStopping.
func withLaterSignals(ctx context.Context, later <-chan os.Signal) context.Context {
	return context.WithValue(ctx, laterSignalsKey{}, later)
}

// laterSignals is the channel of ctx's later signals; nil (never ready)
// when it has none.
func laterSignals(ctx context.Context) <-chan os.Signal {
	c, _ := ctx.Value(laterSignalsKey{}).(<-chan os.Signal)
	return c
}

// notifyStop is signal.NotifyContext(parent, sigs...), whose context the
// first of sigs cancels (its cause "terminated signal received"), but
// for what comes after: signal.NotifyContext drops every later signal
// (an operator's second Ctrl-C did nothing, silently), while here each is
// handed to runStopping (laterSignals), which ends at once. stop lets
// the signals go, as NotifyContext's.
func notifyStop(parent context.Context, sigs ...os.Signal) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	later := make(chan os.Signal, 1)
	quit := make(chan struct{})
	signal.Notify(ch, sigs...)
	go func() {
		select {
		case s := <-ch:
			cancel(signalCause(s.String() + " signal received"))
		case <-quit:
			return
		}
		for {
			select {
			case s := <-ch:
				select {
				case later <- s:
				default: // one already waits: the same word
				}
			case <-quit:
				return
			}
		}
	}()
	var once sync.Once
	return withLaterSignals(ctx, later), func() {
		once.Do(func() {
			signal.Stop(ch)
			close(quit)
			cancel(context.Canceled)
		})
	}
}

// interrupted is err, the error of a command ctx stopped, saying so
// (context.Cause: "terminated signal received", which is
// context.Canceled): the last line's hint then says the run was
// interrupted and that running it again resumes it, where the error was
// one the stop caused on its way (a statement it cancelled, "pq:
// canceling statement due to user request", read as a failure of the
// ledger's). A configuration error stays one (exit 2), and so does an
// error that already says it (codeOf).
func interrupted(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil || errors.Is(err, context.Canceled) || pipeline.KindOf(err) != pipeline.KindFailed {
		return err
	}
	return fmt.Errorf("%w (%w)", err, context.Cause(ctx))
}

// cutMetricsBound bounds the metrics' report of a stop cut short
// (reportCut): past SETTLE_STOP_TIMEOUT (45 s) the pod has 15 s of its
// grace left, and an operator's second Ctrl-C wants an end now.
const cutMetricsBound = 5 * time.Second

// setOnCut sets what reports the metrics of a stop cut short.
func (c *config) setOnCut(f func(ctx context.Context, err error)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onCut = f
}

// reportCut reports the metrics of a command whose stop ended before its
// work did (cutShort: past SETTLE_STOP_TIMEOUT, or at a second signal),
// with its error, within cutMetricsBound: the work, which reports them as
// it ends, never got there, and the Pushgateway kept the night before's
// exit code (an alert on settle_exit_code never saw the stopped run). The
// ledger is not asked (it may be what does not answer): only the exit
// code and the date, as of a run that failed before it opened.
func (c *config) reportCut(err error) {
	c.mu.Lock()
	f := c.onCut
	c.mu.Unlock()
	if f == nil || !cutShort(err) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cutMetricsBound)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ctx, err)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		c.warn("metrics", fmt.Errorf("not reported within %s of the stop: %w", cutMetricsBound, ctx.Err()))
	}
}
