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
