package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// NotAnsweringAfter is how many requests in a row to a stage's provider
// (an engine's questions and sends, and the stage's own requests made
// through Ask: its checks, its questions before and after the engine, in
// the order they end) that got no answer (ErrNoAnswer, after the client's
// own retries) take the provider as not answering: the stage makes no
// request more (WithBreaker). Any answer, one that says error included,
// starts the count again, so a provider that answers anything never
// stops it; and each request counted has been through its client's
// retries already (a question up to 5 attempts), so a flaky connection
// seldom leaves one without an answer, let alone three in a row. A
// provider that hangs stops it as the first requests in flight end: they
// hang alike and end about together, however many are in flight, so
// the stage is held about one request's retries (the questions in flight
// are cut then; a send in flight ends by its client's timeout). Three,
// not one: one request lost to a connection reset stops no run.
const NotAnsweringAfter = 3

// breaker counts the requests in a row a stage's provider did not
// answer, and opens (open is done) at NotAnsweringAfter of them: the
// stage then makes no request more (WithBreaker).
type breaker struct {
	open context.Context // done once the provider is taken as not answering
	trip context.CancelFunc

	mu      sync.Mutex
	silent  int    // requests in a row that got no answer
	last    string // the last one's error
	lastErr error  // the same, as it was
}

func newBreaker() *breaker {
	open, trip := context.WithCancel(context.Background())
	return &breaker{open: open, trip: trip}
}

func (b *breaker) isOpen() bool { return b.open.Err() != nil }

// lastError is the error of the last request that got no answer.
func (b *breaker) lastError() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

type breakerKey struct{}

// breakerOf is the breaker of ctx (WithBreaker), nil when none.
func breakerOf(ctx context.Context) *breaker {
	b, _ := ctx.Value(breakerKey{}).(*breaker)
	return b
}

// WithBreaker returns ctx with a breaker of its own for a stage's
// requests to its provider: the engine run with it (Engine.RunFeed) uses
// it rather than one of its own, and the stage's requests made outside
// the engine through Ask count with the engine's. Once NotAnsweringAfter
// of them in a row got no answer (ErrNoAnswer) the provider is taken as
// not answering for the rest of the stage: Ask makes no request more and
// cuts those in flight (ErrNotAnswering), a Pacer's Each or EachAsNeeded
// starts no call more once one returns ErrNotAnswering, and the engine
// stops (EngineResult.NotAnswering). The stage leaves everything as the
// ledger holds it - nothing made final without an answer, nothing sent
// again blindly - and ends with NotAnswering or the engine's
// EngineResult.StillProcessing (exit 1, resumable). Before, each
// request made outside the engine (a check before a send, a question
// before the engine or after it) went through its client's retries
// whatever the ones before it had found, one after another: a stage
// that checks each of thousands of transactions held the run for hours
// against a provider that accepts connections and never answers.
func WithBreaker(ctx context.Context) context.Context {
	return context.WithValue(ctx, breakerKey{}, newBreaker())
}

// ErrNotAnswering is in the chain of Ask's error once the provider of
// its context's breaker (WithBreaker) is taken as not answering: the
// request was not made, or was cut in flight (a question cut is as if
// never asked), or was the last of NotAnsweringAfter in a row that got
// no answer. The caller leaves what the request was about as the ledger
// holds it - never held, failed or made final for it - and returns it;
// the stage ends with NotAnswering. It concerns every request to the
// provider, not the one that met it: a Pacer's Each starts no call more
// once one returns it, and returns it once.
var ErrNotAnswering = errors.New("the provider is not answering")

// errNotAsked is Ask's error when its request was not made, or was cut,
// because the provider is not answering.
var errNotAsked = fmt.Errorf("not asked: %w", ErrNotAnswering)

// notAnswering is Ask's error when its request was the one that took the
// provider as not answering: its own error, which is ErrNotAnswering too.
type notAnswering struct{ error }

func (e notAnswering) Unwrap() error        { return e.error }
func (e notAnswering) Is(target error) bool { return target == ErrNotAnswering }

type requestKey struct{}

// inRequest marks ctx as that of a request whose end is told to the
// breaker already (ApplyEffect's, Ask's): an Ask within it (an adapter's
// method the sender calls) is a part of that request, not one more.
func inRequest(ctx context.Context) context.Context {
	return context.WithValue(ctx, requestKey{}, struct{}{})
}

// Ask makes one request to the provider outside the engine (ask, given a
// context cut once the provider is taken as not answering) and tells the
// breaker of ctx (WithBreaker) how it ended, as the engine tells it of
// its own: an answer (nil, or an error that says what the provider
// answered) starts the count again, an error wrapping ErrNoAnswer counts
// one more request in a row that got none. Once the provider is taken as
// not answering (NotAnsweringAfter), it makes the request no more: its
// error wraps ErrNotAnswering, also when the request was cut in flight or
// was the one that took the provider so. Without a breaker in ctx, or
// within a request told already (an engine's send or question), it is
// ask(ctx).
//
// It is for the requests a cut leaves as they were: questions, and
// requests the provider takes as the same when made again (adding a
// receiver it has). A send of an effect goes through ApplyEffect.
func Ask[T any](ctx context.Context, ask func(context.Context) (T, error)) (T, error) {
	b := breakerOf(ctx)
	if b == nil || ctx.Value(requestKey{}) != nil {
		return ask(ctx)
	}
	var zero T
	if b.isOpen() {
		return zero, errNotAsked
	}
	qctx, cut := asking(ctx)
	v, err := ask(inRequest(qctx))
	if cut(err) {
		return zero, errNotAsked
	}
	heard(ctx, err)
	if errors.Is(err, ErrNoAnswer) && b.isOpen() {
		return v, notAnswering{err}
	}
	return v, err
}

// heard tells the breaker of ctx (WithBreaker, or an engine's own: see
// ApplyEffect and Ask) how a request to the provider ended, err being
// its error: an answer (nil, or an error that says what the provider
// answered) starts the count again; an error wrapping ErrNoAnswer counts
// one more request in a row that got none. An error once ctx is done
// (the run stopping) or of the ledger (ErrNotRead) says nothing of the
// provider.
func heard(ctx context.Context, err error) {
	b := breakerOf(ctx)
	if b == nil || ctx.Err() != nil || errors.Is(err, ErrNotRead) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.isOpen() {
		return
	}
	if !errors.Is(err, ErrNoAnswer) {
		b.silent = 0
		return
	}
	b.silent++
	b.last, b.lastErr = err.Error(), err
	if b.silent >= NotAnsweringAfter {
		b.trip()
	}
}

// errCut is ApplyEffect's error when its question was cut, or never
// asked, because the engine's provider stopped answering (asking): the
// effect is as it was, as if never asked. errSilenced, when its request
// was not sent so: the effect is as it was, planned or asked about and
// found never arrived. Both are errPaceStopped to the engine.
var (
	errCut      = fmt.Errorf("not asked: the provider is not answering: %w", errPaceStopped)
	errSilenced = fmt.Errorf("not sent: the provider is not answering: %w", errPaceStopped)
)

// silenced reports whether the breaker of ctx is open: the provider is
// not answering, and no request starts (ApplyEffect checks it after
// Pace, for the calls given their turn as the engine stopped).
func silenced(ctx context.Context) bool {
	b := breakerOf(ctx)
	return b != nil && b.isOpen()
}

// asking returns the context of a question to the provider, cut once the
// breaker of ctx opens (a question changes nothing: cut, it is as if it
// were never asked), and the function that reports, once the question's
// error is known, whether it was cut so (and releases the context).
func asking(ctx context.Context) (context.Context, func(err error) bool) {
	b := breakerOf(ctx)
	if b == nil {
		return ctx, func(error) bool { return false }
	}
	qctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(b.open, cancel)
	return qctx, func(err error) bool {
		cut := err != nil && qctx.Err() != nil && ctx.Err() == nil
		stop()
		cancel()
		return cut
	}
}

// NotAnswering returns nil while the provider of ctx's breaker
// (WithBreaker) answers; once it is taken as not answering, the error of
// a stage that stopped so: provider named as not answering, with the
// last request's error, and a re-run to resolve once it answers
// (ErrStillProcessing: exit 1, resumable; everything is as the ledger
// holds it). A stage whose engine stopped so has its
// EngineResult.StillProcessing say it, with what the engine left.
func NotAnswering(ctx context.Context, provider string) error {
	b := breakerOf(ctx)
	if b == nil || !b.isOpen() {
		return nil
	}
	return &stillProcessing{notAnsweringLead(provider, b.lastError()) + "; re-run to resolve once " + provider + " answers"}
}

// StoppedNotAnswering returns the end of a stage whose work (planning,
// asking, matching) ended with err once its provider was taken as not
// answering (NotAnswering): the provider named once, with err's parts
// that say more than its silence (OtherThanNoAnswer) and more, each
// joined, of kind failed (exit 1: resumable, before what needs a person
// among more). nil while the provider answers, and when err is a usage
// error or the run is stopping (ctx done): err says it, returned as it
// is by the caller.
func StoppedNotAnswering(ctx context.Context, provider string, err error, more ...error) error {
	stopped := NotAnswering(ctx, provider)
	if stopped == nil || KindOf(err) == KindUsage || ctx.Err() != nil {
		return nil
	}
	parts := append([]error{stopped, OtherThanNoAnswer(err)}, more...)
	if errors.Join(parts[1:]...) == nil {
		return stopped
	}
	return E(KindFailed, "", errors.Join(parts...))
}

// NotAnsweringCause returns, once the provider of ctx's breaker
// (WithBreaker) is taken as not answering, the error of the request that
// took it so (the last of NotAnsweringAfter in a row that got no answer:
// the "last" NotAnswering and EngineResult.NotAnswering name); nil while
// it answers. A stage whose requests go to more than one of its
// provider's servers (an API and a file server, say) tells by it which
// one stopped answering.
func NotAnsweringCause(ctx context.Context) error {
	b := breakerOf(ctx)
	if b == nil || !b.isOpen() {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastErr
}

// notAnsweringLead begins the error of a stage whose provider is not
// answering, last being the last request's error (on one line: a
// request's error may join several, an SFTP session's those of its
// connections, and the stage's end is one line).
func notAnsweringLead(provider, last string) string {
	return fmt.Sprintf("%s is not answering: %d requests in a row got no answer (last: %s), so nothing more was sent or asked",
		provider, NotAnsweringAfter, OneLine(last))
}

// OtherThanNoAnswer returns errs joined but for those that say only that
// the provider did not answer (ErrNoAnswer, ErrNotAnswering), which a
// stage's NotAnswering (or its engine's StillProcessing) says once: the
// requests that found it so, and those it refused. The errors that are
// only others joined (errors.Join's) are looked into one by one. nil when
// none is left.
func OtherThanNoAnswer(errs ...error) error {
	var kept []error
	for _, err := range errs {
		if err = otherThanNoAnswer(err); err != nil {
			kept = append(kept, err)
		}
	}
	return errors.Join(kept...)
}

func otherThanNoAnswer(err error) error {
	if err == nil {
		return nil
	}
	if m, ok := err.(interface{ Unwrap() []error }); ok {
		parts := m.Unwrap()
		if j := errors.Join(parts...); j != nil && j.Error() == err.Error() {
			// Only its parts, joined: each kept or not.
			var kept []error
			for _, p := range parts {
				if p = otherThanNoAnswer(p); p != nil {
					kept = append(kept, p)
				}
			}
			return errors.Join(kept...)
		}
	}
	if errors.Is(err, ErrNoAnswer) || errors.Is(err, ErrNotAnswering) {
		return nil
	}
	return err
}
