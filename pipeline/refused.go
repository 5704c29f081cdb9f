package pipeline

import (
	"fmt"
	"strings"
	"time"
)

// DefaultKnownAfter is RefusedRepeat.KnownAfter's default.
const DefaultKnownAfter = 24 * time.Hour

// RefusedRepeat is the rule for a refused repeat: a request sent again
// under its key after an earlier send whose outcome was unknown
// (Effect.Sends > 1), refused by the provider, whose key the provider's
// status query does not know. The refusal may be of the repeat alone
// ("duplicate key", or funds the first send already moved) while the
// query does not know the first send yet. Failed at once, the payout
// would go again under a new key while the first could still pay it. So
// the effect waits (pending, asked about by its key, never sent a third
// time), and is failed - free for a new attempt - only once the provider
// has not known the key for KnownAfter since the refusal was first seen:
// by then the first send never arrived. A provider that has other
// refusals proving nothing (an undocumented answer code) judges them by
// the same rule.
//
// The time of the first refusal is kept in the effect's recorded reason
// (Effect.LastError, from Outcome.Reason), as the mark
//
//	" (refused sent again, <Key> unknown since <RFC 3339 time>)"
//
// at its end. What the refusal is, and how to ask the status query, are
// the provider's; it calls Refused when a send was refused so, and
// NotFound when its status query does not know a key.
type RefusedRepeat struct {
	// Provider names the provider in reasons ("<Provider> still does not
	// know it ... later").
	Provider string
	// Key names the idempotency key in the mark (the provider's own name
	// for it); the mark is read whatever key it names.
	Key string
	// KnownAfter is how long the provider may take to know a request it
	// got; 0 or less is DefaultKnownAfter.
	KnownAfter time.Duration
	// Now is the clock; nil is time.Now. Providers pass their client's.
	Now func() time.Time
}

// Refused is the outcome of e, refused by the provider (sent again after
// an unknown outcome, or refused in a way that does not prove it was not
// taken), whose key the provider's status query does not know. The first
// time (no mark in e.LastError) it is pending, its reason why (the
// provider's sentence saying what was refused and that the provider does
// not know the key), then ": the first send may yet show" and the mark of
// the time now. Once marked, it is pending, its reason e.LastError
// unchanged (the first refusal's time kept), until KnownAfter has passed
// since the mark; failed then, the reason saying so.
func (r RefusedRepeat) Refused(e Effect, why string) Outcome {
	now := r.now()
	since, ok := refusedSince(e.LastError)
	if !ok {
		return Outcome{Status: OutcomePending, Reason: why + ": the first send may yet show" + r.mark(now)}
	}
	return r.judge(e, now, since)
}

// NotFound is the outcome of a status query that does not know e.Key:
// OutcomeNotFound (it never arrived: ApplyEffect sends it again under
// the same key), unless e.LastError carries the mark of a refused repeat
// (Refused). Such an effect is never sent again: it is pending until the
// provider has not known its key for KnownAfter since the mark, failed
// then. A mark whose time cannot be read is marked again, the time now:
// it waits KnownAfter from here rather than be sent a third time.
//
// An effect the provider answered before (e.ProviderRef recorded) is
// OutcomeNotFound, marked or not: ApplyEffect holds it for a person,
// neither sent again nor failed. The provider had it, so its not knowing
// the key says nothing of whether the first send arrived; failed after
// KnownAfter, its payout went again under a new key while the first could
// still complete. (Marked so by an older settle, which sent such a
// request again when the provider no longer knew it.)
func (r RefusedRepeat) NotFound(e Effect) Outcome {
	if !strings.Contains(e.LastError, refusedMark) || e.ProviderRef != "" {
		return Outcome{Status: OutcomeNotFound}
	}
	now := r.now()
	since, ok := refusedSince(e.LastError)
	if !ok {
		return Outcome{Status: OutcomePending, Reason: e.LastError + r.mark(now)}
	}
	return r.judge(e, now, since)
}

// judge is the outcome of e, marked as refused since since, at now.
func (r RefusedRepeat) judge(e Effect, now, since time.Time) Outcome {
	after := r.KnownAfter
	if after <= 0 {
		after = DefaultKnownAfter
	}
	if now.Sub(since) <= after {
		return Outcome{Status: OutcomePending, Reason: e.LastError}
	}
	return Outcome{Status: OutcomeFailed, Reason: fmt.Sprintf("%s; %s still does not know it %s later: the first send never arrived",
		e.LastError, r.Provider, age(now.Sub(since)))}
}

// refusedMark opens the mark of a refused repeat in a reason; " unknown
// since " and the time follow the key's name, up to ")". The providers
// that judged refused repeats themselves before the rule moved here wrote
// it so, each with its key's name, and ledgers carry it: it is read and
// written unchanged.
const refusedMark = " (refused sent again, "

// refusedSinceWord follows the key's name in the mark, before the time.
const refusedSinceWord = " unknown since "

func (r RefusedRepeat) mark(now time.Time) string {
	return refusedMark + r.Key + refusedSinceWord + now.UTC().Format(time.RFC3339) + ")"
}

func (r RefusedRepeat) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

// refusedSince returns the time of the first refusal a refused repeat's
// mark gives in lastError (an Effect.LastError), whatever key the mark
// names; false when it carries none that can be read. Of several marks
// (a provider's words that quoted one), the last readable one counts:
// the mark is written at the end of the reason.
func refusedSince(lastError string) (time.Time, bool) {
	for rest := lastError; ; {
		i := strings.LastIndex(rest, refusedMark)
		if i < 0 {
			return time.Time{}, false
		}
		inner, _, _ := strings.Cut(rest[i+len(refusedMark):], ")")
		if _, stamp, ok := strings.Cut(inner, refusedSinceWord); ok {
			if t, err := time.Parse(time.RFC3339, stamp); err == nil {
				return t, true
			}
		}
		rest = rest[:i]
	}
}

// age is a duration for a message: to the minute from an hour on, to the
// second below (a short KnownAfter would say "0s").
func age(d time.Duration) time.Duration {
	if d >= time.Hour {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}
