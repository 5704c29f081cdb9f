package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// EffectState is the state of one attempt at a side effect (DESIGN section 3).
type EffectState string

// Effect states. Planned: intent recorded, nothing sent. Sent: the request
// may have left; its outcome is not known yet (or the provider is still
// processing it). Unknown: the answer never arrived; only a status query with
// the same key may resolve it. Succeeded and Failed are final.
const (
	EffectPlanned   EffectState = "planned"
	EffectSent      EffectState = "sent"
	EffectUnknown   EffectState = "unknown"
	EffectSucceeded EffectState = "succeeded"
	EffectFailed    EffectState = "failed"
)

// Final reports whether no further change can happen to this attempt.
func (s EffectState) Final() bool { return s == EffectSucceeded || s == EffectFailed }

// Effect is one attempt at a side effect: a file upload or a money request.
// Subject names the logical thing (one payout, one file); every attempt at it
// has its own deterministic idempotency key.
type Effect struct {
	ID          int64
	RunID       int64
	Kind        string // e.g. "upload", "revenue_share", "distribution", "unfreeze"
	Subject     string // e.g. "RS/20261123/S0001/CNY"
	Attempt     int    // 1-based
	Key         string // idempotency key sent to the provider (requestNo, out_order_no)
	Currency    Currency
	Amount      int64 // minor units; 0 for a file
	State       EffectState
	ProviderRef string
	LastError   string
	Sends       int // how many times the request was sent with this key
	// Planned is when the intent was recorded (the ledger's time; zero
	// when not known). The request left no earlier, so a key planned
	// longer ago than a provider's status query remembers may be one that
	// query has forgotten (PastMemory).
	Planned time.Time
}

// OutcomeStatus is what a provider says about a request.
type OutcomeStatus int

// Outcome statuses.
const (
	OutcomePending   OutcomeStatus = iota // accepted, still processing: poll again
	OutcomeSucceeded                      // done
	OutcomeFailed                         // definitely failed (FAILED, CLOSED): this key will never succeed
	OutcomeNotFound                       // the provider does not know the key: it never arrived
)

// Outcome is a provider's answer about one key.
type Outcome struct {
	Status OutcomeStatus
	Ref    string // the provider's reference, when it gave one
	Reason string // why it failed, in the provider's words
	// NotTaken, in an answer to a send, says that this request was refused
	// before the provider took it (a refusal of the request itself, or one
	// never sent): it moved no money. Its history records the answer as
	// CauseRefused, and a run's new money movements do not count it.
	NotTaken bool
}

// ErrNotTaken, wrapped by a send's error, says that the provider did not
// take the request ("retry later" until the retries ran out, a connection
// never made): it moved no money. The effect is left unknown as after any
// send error (resolved by a query with the same key), its history records
// the send as CauseRefused, and a run's new money movements do not count
// it.
var ErrNotTaken = errors.New("request not taken by the provider: no money moved")

// ErrNoAnswer, wrapped by a sender's error (Send or Query), says that the
// provider gave no answer at all, after the client's own retries: no
// connection could be made, or none (or not all of one) came back within
// the client's timeouts - a provider down, or one that accepts
// connections and never answers. An answer that says error (a code, an
// HTTP status, "retry later") is not one: the provider answered. The
// engine, and a stage with a breaker (WithBreaker, Ask), stop once
// NotAnsweringAfter requests in a row got no answer (Engine.RunFeed). A
// send's error that wraps it leaves the effect unknown as any send error
// does. A client marks its own (it alone knows a timeout from an answer;
// NoAnswer marks one), if it does: an error that does not wrap it, of a
// client that marks none, is taken as an answer and starts the count
// again.
var ErrNoAnswer = errors.New("no answer from the provider")

// NoAnswer marks err, a sender's error, as ErrNoAnswer, its text
// unchanged.
func NoAnswer(err error) error { return noAnswerErr{err} }

type noAnswerErr struct{ error }

func (e noAnswerErr) Unwrap() error        { return e.error }
func (e noAnswerErr) Is(target error) bool { return target == ErrNoAnswer }

// ErrKeyTaken is what the ledger wraps when an effect is planned under an
// idempotency key another subject's effect holds already: the two keys'
// short hashes collide (48 bits of the subject's parts, so two sellers'
// or two orders' keys can be the same). Nothing is recorded. The subject
// is held for a person, never sent under the other's key (the provider
// would answer the other's request) and never the whole stage's failure:
// the other subjects go on.
var ErrKeyTaken = errors.New("its idempotency key is another subject's already (their keys collide)")

// NotTaken marks err, a send's error, as ErrNotTaken, its text unchanged.
func NotTaken(err error) error { return notTaken{err} }

type notTaken struct{ error }

func (e notTaken) Unwrap() error        { return e.error }
func (e notTaken) Is(target error) bool { return target == ErrNotTaken }

// EffectSender performs side effects for one kind. Implementations live with
// each provider client.
type EffectSender interface {
	// Send makes the request with e.Key. An error means the outcome is
	// unknown (timeout, reset, 5xx after retries): the request may or may
	// not have been applied. A definite rejection is an Outcome, not an error.
	// A refusal of the request itself, which moved nothing, sets
	// Outcome.NotTaken; an error that knows the request was not taken
	// wraps ErrNotTaken. It never answers OutcomeNotFound: ApplyEffect
	// takes that for an error of the sender's, the effect left sent.
	Send(ctx context.Context, e Effect) (Outcome, error)
	// Query asks the provider about e.Key. An error means the provider could
	// not be asked; OutcomeNotFound means it has never seen the key
	// (ApplyEffect sends it again under it, unless the provider answered
	// about it before, its reference recorded: that one is held for a
	// person, neither sent again nor failed). A sender whose provider may
	// refuse a repeat answers its provider's "not found" with
	// RefusedRepeat.NotFound: a refused repeat waiting for its first send
	// is never OutcomeNotFound.
	Query(ctx context.Context, e Effect) (Outcome, error)
}

// EffectPreparer is an EffectSender that must read what a request names
// (from the ledger) before it sends it. ApplyEffect calls Prepare before
// it records the effect as sent (EffectStore.MarkSent), and sends with the
// EffectSender Prepare returns: a read that fails there leaves the effect
// as it was, not counted as sent, for nothing left. Before, a sender that
// read the ledger inside Send (the account a payout pays, say) and failed
// left the effect counted as sent once though nothing went out, and a
// later refusal of it was taken as a refused repeat (found by a review).
type EffectPreparer interface {
	// Prepare returns the sender of e's request, e's reads done; an
	// error (ErrNotRead in its chain when the ledger could not be read)
	// means nothing was sent.
	Prepare(ctx context.Context, e Effect) (EffectSender, error)
}

// EffectStore records effects durably, intent first. The ledger's keeps
// every change of an effect in its history (EffectEvent), append-only.
type EffectStore interface {
	// PlanEffect records e (state planned) unless an attempt of the same
	// kind, subject and attempt number exists; it returns the stored row.
	PlanEffect(ctx context.Context, e Effect) (Effect, error)
	// MarkSent records that the request is about to be sent (sends+1),
	// before it is sent.
	MarkSent(ctx context.Context, id int64) error
	// RecordOutcome moves the effect to state, with the provider reference
	// and the error or reason (both may be empty).
	RecordOutcome(ctx context.Context, id int64, state EffectState, ref, lastErr string) error
}

// EffectCause says why an effect's state changed, in its history.
type EffectCause string

// Causes of a change in an effect's history.
const (
	CausePlanned   EffectCause = "planned"    // the intent was recorded
	CauseSent      EffectCause = "sent"       // the request is being sent (the first time)
	CauseResent    EffectCause = "sent again" // sent again with the same key: the provider did not know it
	CauseSendError EffectCause = "send error" // the answer never arrived: outcome unknown
	CauseAnswer    EffectCause = "answer"     // the provider's answer to the send
	CauseRefused   EffectCause = "refused"    // the provider did not take the send (Outcome.NotTaken, ErrNotTaken): no money moved
	CauseQuery     EffectCause = "query"      // a status query with the same key
	CauseGivenUp   EffectCause = "given up"   // a person gave it up: its provider lost it, and it went again under a new key
	// CauseResolved: a person recorded the outcome the provider's own
	// records (its statements) show, its key past the memory of the
	// provider's status query (ErrPastMemory): succeeded, or failed and
	// paid again under a new key.
	CauseResolved EffectCause = "resolved by a person"
)

// EffectEvent is one change in an effect's history, as the ledger recorded
// it in the same transaction as the change.
type EffectEvent struct {
	At          time.Time
	From, To    EffectState // From is empty for the intent
	Cause       EffectCause
	Sends       int    // the attempt's sends after the change
	ProviderRef string // as it stood after the change
	Detail      string // the provider's words, or the error
}

// EffectCauseRecorder is an EffectStore that keeps why each outcome was
// recorded in the effect's history; ApplyEffect tells it when it can.
type EffectCauseRecorder interface {
	RecordOutcomeCause(ctx context.Context, id int64, state EffectState, ref, lastErr string, cause EffectCause) error
}

// recordOutcome records an outcome with its cause when the store keeps
// causes.
func recordOutcome(ctx context.Context, store EffectStore, id int64, state EffectState, ref, lastErr string, cause EffectCause) error {
	if r, ok := store.(EffectCauseRecorder); ok {
		return r.RecordOutcomeCause(ctx, id, state, ref, lastErr, cause)
	}
	return store.RecordOutcome(ctx, id, state, ref, lastErr)
}

// InFlightGrace is how long a request already sent may take to finish after
// the run was told to stop (SIGTERM).
const InFlightGrace = 15 * time.Second

// StopTimeout is how long settle takes at most to stop once told to
// (SIGTERM, SIGINT): its default for SETTLE_STOP_TIMEOUT. A stop takes
// InFlightGrace for the requests in flight, then the records of their
// answers and of the run (5 s at most) and the metrics' push (10 s at
// most); past StopTimeout, with a database, provider or SFTP server that
// answers nothing, settle ends anyway (exit 1), as a kill would, with its
// last log line. The manifests' terminationGracePeriodSeconds leave it
// room (deploy's tests check it).
const StopTimeout = 45 * time.Second

// ApplyEffect drives one attempt through the intent-first protocol and
// returns it in its new state:
//
//   - planned: marked sent, then sent;
//   - sent or unknown: queried with the same key; an answer the provider knows
//     is adopted; "not found" means it never arrived, so it is sent again
//     with the same key (safe: same key), unless ctx says not to
//     (withoutResend), or the provider answered about it before (a
//     reference is recorded): it contradicts itself, and the effect is
//     left as it was with an error about it alone (ErrRefused), for a
//     person, never sent again nor failed;
//   - a sender that reads before it sends (EffectPreparer) is asked to
//     before the effect is marked sent: its error leaves the effect as it
//     was, not sent, and is returned;
//   - an error while sending leaves it unknown, to be resolved by query
//     (returned too when the sender could not read the ledger: ErrNotRead,
//     or when it is a configuration error, KindUsage: credentials the
//     provider refused, which stop an Engine's sends);
//   - a send or an answer the store could not record is an error with
//     ErrNotRecorded in its chain: the send was not made, or the answer
//     is left for a query by the next run;
//   - final states are returned as they are;
//   - inside an Engine, each request's end is told to its breaker (the
//     stage's, WithBreaker, or the engine's own: an answer, or none,
//     ErrNoAnswer), and a question in flight when the provider is taken
//     as not answering is cut: the effect is returned as it was, as if
//     never asked (NotAnsweringAfter); an Ask the sender makes within
//     its request is a part of it, not told again.
//
// It sends at most once per call and never invents a new key: a failed
// attempt is retried by the caller planning attempt+1 (see NextAttempt).
// Called inside Pacer.EachAsNeeded (the Engine), the query and the send
// each take their tokens (Pace) just before they are made.
func ApplyEffect(ctx context.Context, store EffectStore, sender EffectSender, e Effect) (Effect, error) {
	if e.State.Final() {
		return e, nil
	}
	if e.State == EffectSent || e.State == EffectUnknown {
		if err := Pace(ctx); err != nil {
			return e, err // stopping: not asked
		}
		if silenced(ctx) {
			unobserved(ctx)
			return e, errCut // the provider is not answering: not asked
		}
		qctx, cut := asking(ctx)
		out, err := sender.Query(inRequest(qctx), e)
		if cut(err) {
			// Cut: the engine's provider stopped answering. As if never
			// asked: the effect is as it was.
			unobserved(ctx)
			return e, errCut
		}
		heard(ctx, err)
		if err != nil {
			unobserved(ctx) // an Engine.Error may keep it from the pacer: no latency
			return e, queryError{fmt.Errorf("query %s %s: %w", e.Kind, e.Key, err)}
		}
		if out.Status != OutcomeNotFound {
			return record(ctx, store, e, out, CauseQuery)
		}
		if e.ProviderRef != "" {
			// The provider answered about this key before (its reference
			// is recorded) and its status query does not know it now: it
			// contradicts itself. Sent again as one that never arrived, a
			// provider that lost it took it as new and paid it twice (or
			// refused the repeat, and the payout was failed and paid again
			// under a new key while the first could still complete).
			// Neither sent again nor failed: this request's alone, for a
			// person; the next run asks again.
			return e, forgotAnswered{fmt.Sprintf("%s %s key %s: the provider answered it before (its reference %s) and its status query does not know it now; "+
				"neither sent again nor failed: a re-run asks again, and a person checks it in the provider's own records", e.Kind, e.Subject, e.Key, e.ProviderRef)}
		}
		if noResend(ctx) {
			return e, nil // never arrived; sent again by a later run
		}
	}
	if err := ctx.Err(); err != nil {
		return e, err // do not start a new request once cancelled
	}
	if p, ok := sender.(EffectPreparer); ok {
		prepared, err := p.Prepare(ctx, e)
		if err != nil {
			// No request made (no latency); not sent, not marked.
			unobserved(ctx)
			return e, fmt.Errorf("prepare %s %s: %w", e.Kind, e.Key, err)
		}
		sender = prepared
	}
	if err := Pace(ctx); err != nil {
		return e, err // stopping: not sent
	}
	if silenced(ctx) {
		unobserved(ctx)
		return e, errSilenced // the provider is not answering: not sent
	}
	if err := store.MarkSent(ctx, e.ID); err != nil {
		return e, notRecorded{err} // not sent: nothing leaves unrecorded
	}
	e.State, e.Sends = EffectSent, e.Sends+1
	// A request that has started is let finish (within InFlightGrace) even
	// when the run is being stopped: its answer is worth more than a prompt
	// exit, which would leave the outcome unknown. The grace starts when
	// the run is told to stop, not with the send: a send that simply takes
	// long (a large trade file over SFTP) is bounded by its client's own
	// timeouts and keepalives. Before, every send was cut at 15 s, and a
	// file that took longer could never be uploaded (found by a review).
	sendCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopGrace := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(InFlightGrace, cancel)
		context.AfterFunc(sendCtx, func() { t.Stop() })
	})
	defer stopGrace()
	out, err := sender.Send(inRequest(sendCtx), e)
	heard(ctx, err)
	if err != nil {
		unobserved(ctx) // not this call's error: no latency either
		// The request may have been applied: unknown until a query says.
		msg, cause := err.Error(), CauseSendError
		if errors.Is(err, ErrNotTaken) {
			cause = CauseRefused // not taken: still asked about by its key, but moved nothing
		}
		if rerr := recordOutcome(context.WithoutCancel(ctx), store, e.ID, EffectUnknown, "", msg, cause); rerr != nil {
			return e, errors.Join(err, notRecorded{rerr})
		}
		e.State, e.LastError = EffectUnknown, msg
		if errors.Is(err, ErrNotRead) {
			// The sender could not read the ledger (what the request
			// names): the run's failure, not the request's. Unknown, it is
			// asked about by the next run.
			return e, err
		}
		if KindOf(err) == KindUsage {
			// The provider refused our credentials (a key rotated at the
			// provider under the run): every request of the run would be
			// refused alike. Returned, it stops the engine's sends (a
			// configuration error stops all); kept as any send error, the
			// engine sent each request left, every one refused, and
			// asked about them after. Recorded as it is (unknown, or
			// refused when the sender knows it was not taken): asked
			// about by its key, never failed for it.
			return e, err
		}
		return e, nil
	}
	cause := CauseAnswer
	if out.NotTaken {
		cause = CauseRefused
	}
	return record(ctx, store, e, out, cause)
}

// forgotAnswered is ApplyEffect's error about a request the provider
// answered before (with its reference) that its status query does not
// know now: about that request alone (ErrRefused), held for a person.
type forgotAnswered struct{ msg string }

func (e forgotAnswered) Error() string { return e.msg }
func (e forgotAnswered) Unwrap() error { return ErrRefused }

// queryError is ApplyEffect's error when its status query got no answer
// it could use (the provider could not be asked: EffectSender.Query): the
// effect is as it was, and the engine tells it from a send's or the
// ledger's errors (unansweredQuery). Its text is the query's error.
type queryError struct{ error }

func (e queryError) Unwrap() error { return e.error }

type noResendKey struct{}

// withoutResend marks ctx: from after on, ApplyEffect leaves an effect a
// query finds never arrived as it is (sent or unknown) rather than send
// it again. The engine asks so for the end of its wait: what was sent
// before is still asked about once, and nothing goes out again (a request
// that keeps failing would otherwise be sent, asked about and sent again
// for ever), also from a wave of questions begun before the wait was over.
func withoutResend(ctx context.Context, after time.Time) context.Context {
	return context.WithValue(ctx, noResendKey{}, after)
}

func noResend(ctx context.Context) bool {
	after, ok := ctx.Value(noResendKey{}).(time.Time)
	return ok && !time.Now().Before(after)
}

func record(ctx context.Context, store EffectStore, e Effect, out Outcome, cause EffectCause) (Effect, error) {
	state := EffectSent
	switch out.Status {
	case OutcomeSucceeded:
		state = EffectSucceeded
	case OutcomeFailed:
		state = EffectFailed
	case OutcomeNotFound:
		return e, fmt.Errorf("%s %s: provider answered not found to a send", e.Kind, e.Key)
	}
	if err := recordOutcome(context.WithoutCancel(ctx), store, e.ID, state, out.Ref, out.Reason, cause); err != nil {
		return e, notRecorded{err} // left sent: the next run asks
	}
	e.State, e.LastError = state, out.Reason
	if out.Ref != "" {
		// As the store keeps it (RecordOutcome): an answer without a
		// reference leaves the one recorded. Dropped here, a request the
		// provider had answered was taken, by the Engine's next question
		// in the same run, as one never answered, and sent again when
		// its status query did not know it (only the next run, reading
		// the reference back, held it).
		e.ProviderRef = out.Ref
	}
	return e, nil
}

// NextAttempt returns the planned next attempt after a failed one, with the
// key made by keyFor (not recorded yet: no ID, no Planned), or an error if
// prev can still succeed or max attempts have been made.
func NextAttempt(prev Effect, max int, keyFor func(attempt int) string) (Effect, error) {
	if prev.State != EffectFailed {
		return Effect{}, fmt.Errorf("%s %s: attempt %d is %s, not failed: no new attempt while it can still succeed", prev.Kind, prev.Subject, prev.Attempt, prev.State)
	}
	if prev.Attempt >= max {
		return Effect{}, fmt.Errorf("%s %s: %d attempts failed, last: %s", prev.Kind, prev.Subject, prev.Attempt, prev.LastError)
	}
	next := prev
	next.ID, next.Attempt, next.Key = 0, prev.Attempt+1, keyFor(prev.Attempt+1)
	next.State, next.ProviderRef, next.LastError, next.Sends = EffectPlanned, "", "", 0
	// Not recorded yet: its planning time is the ledger's, once it is.
	// Kept, prev's would age the new key from the old one's intent
	// (PastMemory).
	next.Planned = time.Time{}
	return next, nil
}

// ErrPastMemory is wrapped by a sender's error when its provider's status
// query does not know a key planned longer ago than that query is taken
// to remember (PastMemory). Within the memory, "not found" means the
// request never arrived: it is sent again under its key, or failed once
// the provider has not known it for a while, and its balance goes out
// under a new key - unless the provider answered about it before (its
// reference recorded), which ApplyEffect holds for a person, neither sent
// again nor failed. Past it, "not found" says nothing: a provider that
// forgot a request it paid may take the same key as a new request, and a
// new key pays for certain. The effect is left as it is (sent or
// unknown), neither sent again nor failed, and its subject is held for a
// person (SubjectOnly), who checks it with the provider's own records.
var ErrPastMemory = errors.New("not known to the provider's status query, which does not remember that long")

// PastMemory returns an error wrapping ErrPastMemory when e was planned
// longer than memory before now, and nil otherwise (also when memory is
// 0, no limit, or when e's planning time is not known). provider names
// the provider and the query in the error, which gives e's key and age:
// call it when the provider's status query does not know e.Key.
func PastMemory(e Effect, now time.Time, memory time.Duration, provider string) error {
	if memory <= 0 || e.Planned.IsZero() {
		return nil
	}
	age := now.Sub(e.Planned)
	if age <= memory {
		return nil
	}
	return &pastMemory{fmt.Sprintf("%s %s key %s, planned %s (%s ago) and last sent %d time(s), is not known to %s, "+
		"whose status query is taken to remember %s: it may have been paid and forgotten, so it is neither sent again "+
		"nor failed; a person checks it in %s's own records (its statements)",
		e.Kind, e.Subject, e.Key, e.Planned.UTC().Format(time.RFC3339), RoundDays(age), e.Sends, provider, RoundDays(memory), provider)}
}

type pastMemory struct{ msg string }

func (e *pastMemory) Error() string { return e.msg + ": " + ErrPastMemory.Error() }
func (e *pastMemory) Unwrap() error { return ErrPastMemory }

// DatePastMemory returns an error wrapping ErrPastMemory when a request
// of date d that was never sent - a key planned now, or one the ledger
// holds planned and never sent - would go out longer than memory after d
// ended (in zone, the run's time zone; unknown: the earliest d ends
// anywhere) as of now, and nil otherwise (also when memory is 0, no
// limit). Every request's key is a function of its date, its subject and
// its attempt, never of a run: a run the ledger does not hold (it was
// restored from a backup, or lost rows) may have sent the same key, and
// the provider's status query may have forgotten it since. Sent again, a
// provider that forgot it may take it as new and pay it twice, and
// nothing settle can ask tells a key never sent from a forgotten one (the
// age check of a key settle sent, PastMemory, counts from its intent,
// which is new here). Its caller sends no new request of d (what is in
// flight is still asked about): a person checks the date in the
// provider's own records first. provider names the provider and what the
// requests (its "revenue shares", say).
//
// The error says what is held, the date's age against the memory and the
// command, short, as every subject it holds is named; WhyOf gives the
// explanation (why, what a person checks, what not to do), which a stage
// leaves to the run's end to say once (Problems.Explain): said in each
// subject, it came three times in a run's output, four in JSON logs.
func DatePastMemory(d Date, zone string, now time.Time, memory time.Duration, provider, what string) error {
	if memory <= 0 {
		return nil
	}
	end := WindowOf(d, time.UTC).End.Add(-14 * time.Hour) // the earliest a date ends (UTC+14)
	if loc, err := time.LoadLocation(zone); zone != "" && err == nil {
		end = WindowOf(d, loc).End
	}
	age := now.Sub(end)
	if age <= memory {
		return nil
	}
	return &datePastMemory{
		msg: fmt.Sprintf("no new %s of %s sent: the date ended %s ago, longer than %s's status query is taken to remember (%s); "+
			"held until a person checks the date in %s's own records, then settle run --date %s --send-past-memory if they show none of these requests",
			what, d, RoundDays(age), provider, RoundDays(memory), provider, d),
		why: fmt.Sprintf("A date past %s's memory: a request's key is a function of its date, so a run this ledger does not hold (restored from a backup, or rows lost) may have sent it, "+
			"and %s may have forgotten it and pay it again, which settle cannot tell from a key never sent. A person checks the date in %s's own records (its statements): "+
			"if they show none of the date's requests, a run of the date with --send-past-memory (command line only) sends them; if they show some, do not: "+
			"record them by hand (README, \"The ledger restored from a backup\")",
			provider, provider, provider),
	}
}

type datePastMemory struct{ msg, why string }

func (e *datePastMemory) Error() string { return e.msg }
func (e *datePastMemory) Unwrap() error { return ErrPastMemory }
func (e *datePastMemory) Why() string   { return e.why }

// WhyOf is the explanation of the first error in err's tree that has one
// (DatePastMemory's), "" when none has.
func WhyOf(err error) string {
	var w interface{ Why() string }
	if errors.As(err, &w) {
		return w.Why()
	}
	return ""
}

// HoldFirstSends returns s, but for an effect never sent (Effect.Sends
// 0), which it does not send: its Prepare returns held (an error wrapping
// ErrPastMemory, DatePastMemory's), which leaves the effect planned, not
// marked sent, its subject held for a person (SubjectOnly). An effect sent
// before is sent again under its key as s would. A nil held returns s.
// It is the send's side of DatePastMemory: an intent the ledger holds
// planned and never sent (a backup taken between the intent and its send)
// is a new request to the provider as much as one planned now.
func HoldFirstSends(s EffectSender, held error) EffectSender {
	if held == nil {
		return s
	}
	return firstSendsHeld{s, held}
}

type firstSendsHeld struct {
	EffectSender
	held error
}

// Prepare returns held for an effect never sent, else s's sender of it
// (its own Prepare's, when it has one).
func (h firstSendsHeld) Prepare(ctx context.Context, e Effect) (EffectSender, error) {
	if e.Sends == 0 {
		return nil, fmt.Errorf("%s %s key %s: %w", e.Kind, e.Subject, e.Key, h.held)
	}
	if p, ok := h.EffectSender.(EffectPreparer); ok {
		return p.Prepare(ctx, e)
	}
	return h.EffectSender, nil
}

// RoundDays writes d in days and hours ("45d2h"), to the hour, or as
// time.Duration does under a day.
func RoundDays(d time.Duration) string {
	d = d.Round(time.Hour)
	if d < 24*time.Hour {
		return d.String()
	}
	days, hours := d/(24*time.Hour), (d%(24*time.Hour))/time.Hour
	if hours == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd%dh", days, hours)
}

// ResolvedDetail is the reason recorded with a request a person resolved
// from the provider's own records (CauseResolved): paid or not, the proof
// the provider's status query gave, and the person's note.
func ResolvedDetail(paid bool, proof, note string) string {
	how := "not paid"
	if paid {
		how = "paid"
	}
	return how + resolvedBy + proof + "): " + note
}

// resolvedBy follows "paid" or "not paid" in ResolvedDetail.
const resolvedBy = " by a person from the provider's records ("

// ResolvedPaid reports whether e succeeded because a person recorded it
// paid from the provider's own records (ResolvedDetail), not on the
// provider's answer: its status query did not know it then, and a
// reconciliation that finds it still not known is told nothing new.
func ResolvedPaid(e Effect) bool {
	return e.State == EffectSucceeded && strings.HasPrefix(e.LastError, "paid"+resolvedBy)
}
