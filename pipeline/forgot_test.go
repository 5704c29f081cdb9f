package pipeline

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
)

// forgetful is a provider whose status query does not know any key, and
// which counts its sends.
type forgetful struct{ sends atomic.Int32 }

func (f *forgetful) Send(context.Context, Effect) (Outcome, error) {
	f.sends.Add(1)
	return Outcome{Status: OutcomePending, Ref: "R2"}, nil
}

func (f *forgetful) Query(context.Context, Effect) (Outcome, error) {
	return Outcome{Status: OutcomeNotFound}, nil
}

// TestAKeyTheProviderAnsweredIsNotSentAgainWhenItForgetsIt: a request the
// provider answered (PROCESSING, with its reference) that its status
// query then does not know contradicts the provider's own word: it has
// the request, or had it. It was sent again under its key, as one that
// never arrived - and a provider that lost it takes it as new and pays it
// a second time (or refuses the repeat, and after KnownAfter the payout
// was failed and paid again under a new key while the first could still
// complete). It is neither sent again nor failed: an error about that
// request alone (ErrRefused: held for a person), naming the reference.
// A request never answered (no reference) is sent again as before.
func TestAKeyTheProviderAnsweredIsNotSentAgainWhenItForgetsIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newMemEffects()
	e := plan(t, s, 1)[0]
	e.State, e.Sends, e.ProviderRef = EffectSent, 1, "R1"
	s.effects[e.ID] = e
	p := &forgetful{}
	got, err := ApplyEffect(ctx, s, p, e)
	if p.sends.Load() != 0 || !SubjectOnly(err) || !strings.Contains(err.Error(), "R1") {
		t.Fatalf("answered before (R1), not found now: %d sends, %v; want none, an error about it alone naming R1", p.sends.Load(), err)
	}
	if got.State != EffectSent || s.effects[e.ID].State != EffectSent {
		t.Fatalf("state %s (stored %s), want sent as it was", got.State, s.effects[e.ID].State)
	}
	if errors.Is(err, ErrNotFound) {
		t.Fatalf("%v: not found, which tells a caller it never arrived", err)
	}
	// Never answered: it never arrived, sent again under its key.
	e.ProviderRef, e.State = "", EffectUnknown
	s.effects[e.ID] = e
	if got, err := ApplyEffect(ctx, s, p, e); err != nil || p.sends.Load() != 1 || got.Sends != 2 {
		t.Fatalf("never answered, not found: %+v, %v, %d sends; want sent again once", got, err, p.sends.Load())
	}
}

// answersWithoutRef is a provider that answers a send PROCESSING with
// its reference, then a status query PROCESSING without one, then does
// not know the key; it counts its sends.
type answersWithoutRef struct {
	sends   atomic.Int32
	queries atomic.Int32
}

func (p *answersWithoutRef) Send(context.Context, Effect) (Outcome, error) {
	p.sends.Add(1)
	return Outcome{Status: OutcomePending, Ref: "R1"}, nil
}

func (p *answersWithoutRef) Query(context.Context, Effect) (Outcome, error) {
	if p.queries.Add(1) == 1 {
		return Outcome{Status: OutcomePending}, nil // no reference this time
	}
	return Outcome{Status: OutcomeNotFound}, nil
}

// TestAnAnswerWithoutAReferenceKeepsTheOneRecorded: the ledger keeps an
// effect's reference when a later answer gives none (RecordOutcome), but
// the effect ApplyEffect returned - the one an Engine keeps asking about
// in the same run - dropped it. A status query that then did not know
// the key found no reference, and the request the provider had answered
// was sent again within the run (held only by the next run, which reads
// the reference back from the ledger).
func TestAnAnswerWithoutAReferenceKeepsTheOneRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newMemEffects()
	e := plan(t, s, 1)[0]
	p := &answersWithoutRef{}
	var err error
	if e, err = ApplyEffect(ctx, s, p, e); err != nil || e.ProviderRef != "R1" {
		t.Fatalf("sent: %+v, %v; want pending with R1", e, err)
	}
	if e, err = ApplyEffect(ctx, s, p, e); err != nil || e.State != EffectSent {
		t.Fatalf("asked: %+v, %v; want pending", e, err)
	}
	if e.ProviderRef != "R1" {
		t.Fatalf("asked, answered without a reference: reference %q, want R1 kept (as the ledger keeps it)", e.ProviderRef)
	}
	_, err = ApplyEffect(ctx, s, p, e)
	if p.sends.Load() != 1 || !SubjectOnly(err) || !strings.Contains(err.Error(), "R1") {
		t.Fatalf("not found after an answer with R1: %d sends, %v; want it not sent again, held naming R1", p.sends.Load(), err)
	}
}
