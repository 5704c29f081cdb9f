package pipeline

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestANewAttemptIsPlannedOnlyAfterADefiniteFailure: an attempt planned,
// sent, unknown or succeeded can still move money, so no new key is made
// for it (two keys for one payout could both succeed); a failed one gets
// the next attempt with a new key, up to max attempts in all.
func TestANewAttemptIsPlannedOnlyAfterADefiniteFailure(t *testing.T) {
	key := func(a int) string { return fmt.Sprintf("RS-20261123-ABC-%d", a) }
	prev := Effect{ID: 7, Kind: "revenue_share", Subject: "RS/20261123/S1/USD", Attempt: 1, Key: key(1),
		Currency: "USD", Amount: 1234, ProviderRef: "P1", LastError: "FAILED: frozen", Sends: 2,
		Planned: time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)} // the old intent's time is not the new one's
	for _, s := range []EffectState{EffectPlanned, EffectSent, EffectUnknown, EffectSucceeded} {
		prev.State = s
		if next, err := NextAttempt(prev, 3, key); err == nil {
			t.Errorf("attempt 1 %s: new attempt %+v planned", s, next)
		}
	}
	prev.State = EffectFailed
	next, err := NextAttempt(prev, 3, key)
	if err != nil {
		t.Fatal(err)
	}
	want := Effect{Kind: "revenue_share", Subject: "RS/20261123/S1/USD", Attempt: 2, Key: key(2),
		Currency: "USD", Amount: 1234, State: EffectPlanned}
	if next != want {
		t.Errorf("next attempt %+v, want %+v", next, want)
	}
	prev.Attempt, prev.Key = 2, key(2)
	if _, err := NextAttempt(prev, 3, key); err != nil {
		t.Errorf("attempt 2 of 3 failed: %v", err)
	}
	prev.Attempt, prev.Key = 3, key(3)
	if next, err := NextAttempt(prev, 3, key); err == nil {
		t.Errorf("attempt 3 of 3 failed: attempt %d planned", next.Attempt)
	}
}

// TestAFinalEffectIsNeitherSentNorAsked: a failed attempt is over (a new
// one goes under a new key, NextAttempt), a succeeded one paid: applying
// either again sends nothing, asks nothing and records nothing.
func TestAFinalEffectIsNeitherSentNorAsked(t *testing.T) {
	for _, state := range []EffectState{EffectFailed, EffectSucceeded} {
		s := newMemEffects()
		e := plan(t, s, 1)[0]
		if err := s.MarkSent(context.Background(), e.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordOutcome(context.Background(), e.ID, state, "P1", ""); err != nil {
			t.Fatal(err)
		}
		e = s.effects[e.ID]
		p := newSlowProvider(0, 0)
		got, err := ApplyEffect(context.Background(), s, p, e)
		if err != nil || got != e || p.sends != 0 || len(p.queryAt) != 0 || len(s.causes[e.ID]) != 3 || s.effects[e.ID] != e {
			t.Errorf("%s effect applied again: %+v, %v; %d sends, %d queries, history %v; want it untouched",
				state, got, err, p.sends, len(p.queryAt), s.causes[e.ID])
		}
	}
}

// scripted answers every send and query as told.
type scripted struct {
	send, query Outcome
	sendErr     error
}

func (p scripted) Send(context.Context, Effect) (Outcome, error) { return p.send, p.sendErr }
func (p scripted) Query(context.Context, Effect) (Outcome, error) {
	return p.query, nil
}

// TestApplyEffectRecordsWhatTheProviderAnswered: a definite failure is
// failed (its next attempt may go under a new key), a pending answer
// stays sent, an error leaves the outcome unknown; a request the provider
// did not take (Outcome.NotTaken, ErrNotTaken) is recorded as refused,
// which the ledger does not count as money moved.
func TestApplyEffectRecordsWhatTheProviderAnswered(t *testing.T) {
	for _, tc := range []struct {
		name      string
		asked     bool // the effect was sent before: asked first
		p         scripted
		want      EffectState
		wantCause EffectCause
	}{
		{"failed", false, scripted{send: Outcome{Status: OutcomeFailed, Reason: "FAILED"}}, EffectFailed, CauseAnswer},
		{"succeeded", false, scripted{send: Outcome{Status: OutcomeSucceeded, Ref: "P1"}}, EffectSucceeded, CauseAnswer},
		{"pending", false, scripted{send: Outcome{Status: OutcomePending}}, EffectSent, CauseAnswer},
		{"not taken", false, scripted{send: Outcome{Status: OutcomeFailed, Reason: "bad request", NotTaken: true}}, EffectFailed, CauseRefused},
		{"not taken error", false, scripted{sendErr: NotTaken(errors.New("HTTP 400"))}, EffectUnknown, CauseRefused},
		{"send error", false, scripted{sendErr: errors.New("connection reset")}, EffectUnknown, CauseSendError},
		{"query failed", true, scripted{query: Outcome{Status: OutcomeFailed, Reason: "CLOSED"}}, EffectFailed, CauseQuery},
	} {
		s := newMemEffects()
		e := plan(t, s, 1)[0]
		if tc.asked {
			if err := s.MarkSent(context.Background(), e.ID); err != nil {
				t.Fatal(err)
			}
			e = s.effects[e.ID]
		}
		got, err := ApplyEffect(context.Background(), s, tc.p, e)
		c := s.causes[e.ID]
		if err != nil || got.State != tc.want || s.effects[e.ID].State != tc.want || c[len(c)-1] != tc.wantCause {
			t.Errorf("%s: %s (stored %s), %v, history %v; want %s by %q", tc.name, got.State, s.effects[e.ID].State, err, c, tc.want, tc.wantCause)
		}
	}
}
