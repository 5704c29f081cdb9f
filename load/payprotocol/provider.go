package payprotocol

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// Name names Pay Protocol in summaries, logs and mismatches.
const Name = "payprotocol"

// Store is what the Pay Protocol provider needs of the ledger.
type Store interface {
	VerifyStore
	ReconcileStore
	RunOrders
}

// ProviderConfig is what the Pay Protocol provider of a run is built from.
type ProviderConfig struct {
	Client *Client
	Store  Store
	// Pacer keeps to Pay Protocol's limits; the verification and the
	// reconciliation share it, so together they never exceed them. nil:
	// no limit.
	Pacer *pipeline.Pacer
	// Final keeps the reconciliation's answers that can no longer change
	// (MatcherConfig.Final), found by the matcher or already by the
	// verification (Verify); nil: every order is asked every time.
	Final pipeline.FinalAnswers
	// Rejected, when set, has the reconciliation ask about the run's
	// orders rejected for a failed payment too (MatcherConfig.Rejected);
	// Log gets a line for each one paid since (MatcherConfig.Log).
	Rejected RejectedStore
	Log      *slog.Logger
	// Watch, with WatchDays above 0, has the run's own reconciliation
	// ask too about the orders rejected for a failed payment of the
	// WatchDays before its date whose runs it does not reconcile
	// (Watcher): one paid since is a row for a person, reported with the
	// run (settle run --rejected-watch-days, on a nightly run).
	Watch     WatchStore
	WatchDays int
	// RefundLookback is how long before the start of the run's date the
	// refunds the verification and the reconciliation list may have been
	// created (RefundListing.Lookback); 0: DefaultRefundLookback.
	RefundLookback time.Duration
}

// NewProvider returns Pay Protocol as a provider of a run. It settles the
// payprotocol channel's orders by verifying their payments (its upload
// part, which must run before the part of the provider that files them);
// its pre-flight is one authenticated call; its matcher compares the
// ledger's payments and refunds with Pay Protocol's; the verification and
// the matcher each read Pay Protocol's refund list once (RefundListing,
// from c.RefundLookback before the run's date), so that every successful
// refund of an order counts, not its latest alone; and its watcher (with
// c.Watch and c.WatchDays) asks about the rejected orders of earlier
// dates that may have been paid late. When answers are
// kept (c.Final, but not pipeline.AskAll), its chain of the distribute
// stage asks ahead what the matcher will ask (askAhead).
func NewProvider(c ProviderConfig) pipeline.Provider {
	api := Adapter{Client: c.Client}
	if c.Pacer == nil {
		c.Pacer = pipeline.NewPacer(pipeline.Limits{})
	}
	_, all := c.Final.(pipeline.AskAll)
	var held *heldAnswers  // what the verification was told of the payments it held, for the run's reconcile
	var read *paymentsRead // the payments it read of orders with refunds listed, likewise
	if !all {
		held, read = &heldAnswers{}, &paymentsRead{}
	}
	listing := &RefundListing{API: api, Store: c.Store, Lookback: c.RefundLookback}
	verifying := &RefundListing{API: api, Store: c.Store, Lookback: c.RefundLookback, UpToTheDate: true}
	match := Matcher(MatcherConfig{Store: c.Store, API: api, Pacer: c.Pacer, Final: c.Final, held: held, read: read, Up: c.Client.Preflight,
		Rejected: c.Rejected, Log: c.Log, Listing: listing})
	p := pipeline.Provider{
		Name:    Name,
		Settles: []pipeline.Channel{Channel},
		Preflight: func(ctx context.Context) error {
			// Not answering now is no configuration error: the run goes
			// on, and the verification leaves Pay Protocol's payments for
			// the next run (notAnswering) while the other orders go on.
			if err := c.Client.Preflight(ctx); err != nil && !errors.Is(notAnswering(ctx, err), pipeline.ErrStillProcessing) {
				return err
			}
			return nil
		},
		Upload: func(ctx context.Context, run *pipeline.Run) (string, error) {
			s, err := verify(ctx, c.Store, api, c.Pacer, c.Final, held, c.Client.Preflight, verifying, read, run)
			return s, notAnswering(ctx, err)
		},
		Matchers: []pipeline.Matcher{match},
		Close:    func() error { c.Client.CloseIdleConnections(); return nil },
	}
	if c.Watch != nil && c.WatchDays > 0 {
		p.Watchers = []pipeline.Watcher{Watcher(MatcherConfig{API: api, Pacer: c.Pacer, Up: c.Client.Preflight, Log: c.Log}, c.Watch, c.WatchDays)}
	}
	if c.Final != nil && !all {
		p.Distribute = askAhead(Matcher(MatcherConfig{Store: c.Store, API: api, Pacer: c.Pacer, Final: c.Final, WentOn: true, Up: c.Client.Preflight}), askAheadTries, askAheadPause)
	}
	return p
}

// notAnswering makes err, when it says Pay Protocol did not answer (a
// transient failure after the client's retries: down, overloaded), work
// left for the next run (pipeline.ErrStillProcessing): the payments not
// verified yet stay unverified, and the other providers' work goes on -
// the trade files of the orders that need no verification, WeChat Pay's
// distributions, the revenue shares - instead of every seller of the date
// waiting on Pay Protocol (found by a review). The run still ends 1; a
// payment verified by a later run goes out in a further trade file of
// its date and is paid by its seller's next revenue share.
func notAnswering(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil || pipeline.KindOf(err) != pipeline.KindFailed || errors.Is(err, pipeline.ErrStillProcessing) || !transient(err) {
		return err
	}
	return fmt.Errorf("%w: Pay Protocol did not answer, so its payments not verified yet wait for the next run of this date (the other orders went on): %w",
		pipeline.ErrStillProcessing, err)
}

// askAhead is Pay Protocol's chain of the distribute stage. Pay Protocol
// pays nothing there, and its part of the day is done once the upload
// stage has verified the payments; so while the other providers
// distribute, it asks ahead, with its own matcher, what the reconcile
// stage would ask it of the orders the verification let on (each one's
// latest refund; the held ones, which this run's verification has just
// asked, are left to reconcile), on its own pacer, which nothing else
// uses then. The answers
// found final and in agreement are kept as the matcher keeps them (their
// key holds what the ledger says of the order, so a change in the ledger
// before reconcile asks again), and the reconcile stage asks only the
// rest: its Pay Protocol questions no longer follow the distribute stage
// but overlap it. The findings are dropped - reconcile makes them again
// from the ledger as it is then - and so is an error: nothing is decided
// here, and what could not be asked ahead is asked by reconcile, which
// fails the run if Pay Protocol cannot answer.
//
// A pass that fails (one question timing out past its retries: a
// million-order day's stopped 8,000 questions in, leaving 125,000 to
// reconcile) is tried again after pause, up to tries
// passes in all; the answers kept by the passes before are not asked
// again (pipeline.KeepFinal). Refused credentials are not tried again.
func askAhead(match pipeline.Matcher, tries int, pause time.Duration) pipeline.StageFunc {
	return func(ctx context.Context, run *pipeline.Run) (string, error) {
		for try := 1; ; try++ {
			_, err := match(ctx, run)
			switch {
			case err == nil:
				return "Pay Protocol: reconciled ahead", nil
			case ctx.Err() != nil:
				return "", ctx.Err()
			case try >= tries || pipeline.KindOf(err) == pipeline.KindUsage:
				passes := "1 pass"
				if try > 1 {
					passes = fmt.Sprintf("%d passes", try)
				}
				return fmt.Sprintf("Pay Protocol: not reconciled ahead (%s; %s); reconcile asks", passes, pipeline.OneLine(err.Error())), nil
			}
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return "", ctx.Err()
			}
		}
	}
}

// askAheadTries and askAheadPause are askAhead's passes at most and the
// pause after a pass that failed.
const (
	askAheadTries = 3
	askAheadPause = 30 * time.Second
)
