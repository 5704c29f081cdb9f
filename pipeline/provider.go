package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Provider is one payment provider plugged into a run: what it adds to the
// upload, distribute and reconcile stages. Each provider's package builds
// its own from its client and configuration; cmd lists the configured ones
// and Plug turns them into the runner's stages. The core knows no provider
// by name: a further provider is one package, its line in that list and a
// few more of cmd's (README, "Adding a provider"; internal/exampleprovider
// is one, in a test).
type Provider struct {
	// Name names the provider in summaries, logs and mismatches.
	Name string
	// Settles are the channels (the source's provider column) whose orders
	// this provider settles: an order of a channel no provider of the run
	// settles is work left undone.
	Settles []Channel
	// Pays are the effect kinds by which it moves money (a run's summary
	// counts their effects sent as new money movements, but those the
	// provider refused every send of: Outcome.NotTaken, ErrNotTaken);
	// none for a provider that only verifies.
	Pays []string
	// Preflight makes one cheap authenticated call (and any login the
	// provider needs) so that refused credentials stop the run before
	// anything is sent; nil: none. Any other failure (no answer, an
	// error the provider answered after the client's retries) concerns
	// this provider alone: Plug leaves its work to the next run and the
	// others go on.
	Preflight func(ctx context.Context) error
	// Upload is its part of the upload stage. The parts of all providers
	// run one after the other, in the order the providers are given: one
	// that verifies payments goes before one that files them. nil: none.
	Upload StageFunc
	// Prepare is its part of the upload stage that depends on no other
	// provider's: it runs beside the Upload parts (all of them, in their
	// order) and sends no money. It may ask its provider and record
	// intents that its Distribute chain sends after the reject gate (a
	// provider whose checks need no trade file makes them here). It is
	// stopped once the Upload parts are done (Beside), and must leave
	// what it did not do to its Distribute chain: it never holds the
	// stage open. nil: none.
	Prepare StageFunc
	// Distribute is its chain of the distribute stage. The chains of all
	// providers run side by side: none waits on another's. nil: none.
	Distribute StageFunc
	// Matchers compare the provider's word with the ledger's in the
	// reconcile stage.
	Matchers []Matcher
	// Watchers ask, from a run's own reconciliation, about what earlier
	// runs left that the provider may still prove wrong (see Watcher);
	// none: nothing is watched.
	Watchers []Watcher
	// Close releases what it holds (a connection); nil: nothing.
	Close func() error
}

// Plugged is what the providers of a run add to its stages.
type Plugged struct {
	// Preflight runs every provider's pre-flight in order. The first that
	// is refused as configuration (KindUsage: credentials, a host key) or
	// ends with ctx stops it with its error; one that fails otherwise (the
	// provider not answering, say) stops that provider alone: its upload,
	// prepare and distribute parts do nothing in the run and end with the
	// failure as work left for the next run (ErrStillProcessing: exit 1),
	// and the other providers' parts go on. Before, the first failure
	// stopped the whole run: one provider down at the start held back
	// every other provider's work of the date. Each call decides anew (a run of
	// the next date asks again). nil when none has one.
	Preflight func(ctx context.Context) error
	// Upload runs the providers' upload parts in order (Combine), and
	// beside them their Prepare parts until the upload parts are done
	// (Beside; with no upload part, to their end); nil when none has
	// either.
	Upload StageFunc
	// Distribute runs first, then the providers' chains side by side
	// (Concurrent).
	Distribute StageFunc
	// Matchers are every provider's, in order.
	Matchers []Matcher
	// Watchers are every provider's, in order.
	Watchers []Watcher
	// Settles reports the channels some provider settles.
	Settles map[Channel]bool
	// Pays are every provider's money effect kinds, in order.
	Pays []string
}

// Plug composes providers into the stages of a run. first runs before the
// distribute chains (a check that every channel has its provider, say);
// nil: none.
func Plug(first StageFunc, providers ...Provider) Plugged {
	var (
		p       = Plugged{Settles: map[Channel]bool{}}
		checks  []func(context.Context) error
		uploads []StageFunc
		beside  []StageFunc
		chains  []StageFunc
	)
	for _, pr := range providers {
		for _, ch := range pr.Settles {
			p.Settles[ch] = true
		}
		p.Pays = append(p.Pays, pr.Pays...)
		if pr.Preflight != nil {
			g := &preflightGate{provider: pr.Name}
			check := pr.Preflight
			checks = append(checks, func(ctx context.Context) error { return g.check(ctx, check) })
			pr.Upload, pr.Prepare, pr.Distribute = g.gate(pr.Upload), g.gate(pr.Prepare), g.gate(pr.Distribute)
		}
		if pr.Upload != nil {
			uploads = append(uploads, pr.Upload)
		}
		if pr.Prepare != nil {
			beside = append(beside, pr.Prepare)
		}
		if pr.Distribute != nil {
			chains = append(chains, pr.Distribute)
		}
		p.Matchers = append(p.Matchers, pr.Matchers...)
		p.Watchers = append(p.Watchers, pr.Watchers...)
	}
	if len(checks) > 0 {
		p.Preflight = func(ctx context.Context) error {
			for _, check := range checks {
				if err := check(ctx); err != nil {
					return err
				}
			}
			return nil
		}
	}
	switch {
	case len(uploads) > 0:
		p.Upload = Beside(Combine(uploads...), beside...)
	case len(beside) > 0:
		p.Upload = Concurrent(beside...)
	}
	switch {
	case first != nil && len(chains) > 0:
		p.Distribute = Combine(first, Concurrent(chains...))
	case first != nil:
		p.Distribute = first
	case len(chains) > 0:
		p.Distribute = Concurrent(chains...)
	}
	return p
}

// CloseAll closes every provider that holds something, and returns the
// errors joined.
func CloseAll(providers []Provider) error {
	var errs []error
	for _, pr := range providers {
		if pr.Close != nil {
			errs = append(errs, pr.Close())
		}
	}
	return errors.Join(errs...)
}

// preflightGate holds how a provider's last pre-flight ended, for its
// parts of the stages (Plugged.Preflight).
type preflightGate struct {
	provider string
	mu       sync.Mutex
	failed   error // the last pre-flight's failure, as its parts end; nil: passed
}

// check runs the provider's pre-flight: a refusal of configuration, or
// one ended with ctx, is returned (it stops the run); any other failure is
// kept for the provider's parts, and nil returned.
func (g *preflightGate) check(ctx context.Context, preflight func(context.Context) error) error {
	err := preflight(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failed = nil
	if err == nil || KindOf(err) == KindUsage || ctx.Err() != nil {
		return err
	}
	lead := g.provider + "'s pre-flight failed"
	if errors.Is(err, ErrNoAnswer) {
		lead = g.provider + " is not answering (its pre-flight got no answer)"
	}
	g.failed = notRun{fmt.Errorf("%s, so none of its work was done in this run and the other providers' went on; run the date again once it answers: %w", lead, err)}
	return nil
}

// gate returns fn, unless the provider's last pre-flight failed: then a
// part that does nothing and ends with the failure. nil stays nil.
func (g *preflightGate) gate(fn StageFunc) StageFunc {
	if fn == nil {
		return nil
	}
	return func(ctx context.Context, run *Run) (string, error) {
		g.mu.Lock()
		failed := g.failed
		g.mu.Unlock()
		if failed != nil {
			return "nothing done: " + g.provider + "'s pre-flight failed", failed
		}
		return fn(ctx, run)
	}
}

// notRun is the end of a provider's part not run: work left for the next
// run (ErrStillProcessing, whose words it does not add: nothing is
// processing), of kind failed (exit 1).
type notRun struct{ error }

func (e notRun) Unwrap() error        { return e.error }
func (e notRun) Is(target error) bool { return target == ErrStillProcessing }
