package pipeline_test

import (
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// TestARefusedRepeatWaitsKnownAfterItsFirstRefusal: a request sent again
// under its key after an unknown outcome, refused, whose key the
// provider's query does not know, is pending with the time of the
// refusal marked in its reason; asked again (not found) or refused again,
// it stays pending with that reason unchanged - the first refusal's time
// kept, never sent a third time - until KnownAfter has passed since the
// mark, failed then. A query that does not know an unmarked key is "not
// found", as before: it never arrived, and goes again under its key.
func TestARefusedRepeatWaitsKnownAfterItsFirstRefusal(t *testing.T) {
	now := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	r := pipeline.RefusedRepeat{Provider: "the provider", Key: "key", KnownAfter: 6 * time.Hour,
		Now: func() time.Time { return now }}
	e := pipeline.Effect{Kind: "payout", Key: "K-1", Sends: 2, State: pipeline.EffectUnknown, LastError: "connection reset by peer"}
	if out := r.NotFound(e); out.Status != pipeline.OutcomeNotFound {
		t.Fatalf("not found, not marked: %+v; want not found (sent again under its key)", out)
	}
	out := r.Refused(e, "the provider refused K-1 (DUPLICATE) and does not know it")
	want := "the provider refused K-1 (DUPLICATE) and does not know it: the first send may yet show (refused sent again, key unknown since 2026-11-24T03:00:00Z)"
	if out.Status != pipeline.OutcomePending || out.Reason != want {
		t.Fatalf("refused: %+v; want pending, reason %q", out, want)
	}
	e.State, e.LastError = pipeline.EffectSent, out.Reason

	now = now.Add(6 * time.Hour)
	for name, out := range map[string]pipeline.Outcome{"asked": r.NotFound(e), "refused again": r.Refused(e, "refused again")} {
		if out.Status != pipeline.OutcomePending || out.Reason != e.LastError {
			t.Fatalf("%s at KnownAfter: %+v; want pending, the reason (and its first refusal's time) kept", name, out)
		}
	}
	now = now.Add(time.Second)
	wantFailed := e.LastError + "; the provider still does not know it 6h0m0s later: the first send never arrived"
	for name, out := range map[string]pipeline.Outcome{"asked": r.NotFound(e), "refused again": r.Refused(e, "refused again")} {
		if out.Status != pipeline.OutcomeFailed || out.Reason != wantFailed {
			t.Fatalf("%s after KnownAfter: %+v; want failed, %q", name, out, wantFailed)
		}
	}

	r.KnownAfter = 0 // pipeline.DefaultKnownAfter
	now = time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC).Add(pipeline.DefaultKnownAfter)
	if out := r.NotFound(e); out.Status != pipeline.OutcomePending {
		t.Fatalf("no KnownAfter, at the default's end: %+v; want pending", out)
	}
	now = now.Add(time.Minute)
	if out := r.NotFound(e); out.Status != pipeline.OutcomeFailed {
		t.Fatalf("no KnownAfter, past the default: %+v; want failed", out)
	}
}

// TestARefusedRepeatsMarkIsItsLastReadableOne: a mark whose time cannot be
// read still keeps the effect from a third send (marked again, the time
// now); a mark quoted earlier in the reason (in a provider's words) does
// not count over the one written at its end.
func TestARefusedRepeatsMarkIsItsLastReadableOne(t *testing.T) {
	now := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	r := pipeline.RefusedRepeat{Provider: "the provider", Key: "key", KnownAfter: time.Hour, Now: func() time.Time { return now }}
	e := pipeline.Effect{Key: "K-1", Sends: 2, State: pipeline.EffectSent,
		LastError: "refused (refused sent again, key unknown since yesterday)"}
	out := r.NotFound(e)
	if out.Status != pipeline.OutcomePending || out.Reason != e.LastError+" (refused sent again, key unknown since 2026-11-24T03:00:00Z)" {
		t.Fatalf("a mark of no readable time: %+v; want pending, marked again now", out)
	}
	e.LastError = out.Reason
	now = now.Add(time.Hour + time.Second)
	if out := r.NotFound(e); out.Status != pipeline.OutcomeFailed || !strings.HasSuffix(out.Reason, "still does not know it 1h0m0s later: the first send never arrived") {
		t.Fatalf("an hour after it was marked again: %+v; want failed", out)
	}

	quoted := "refused (DUP: K-1 (refused sent again, key unknown since 2026-11-20T00:00:00Z)) and does not know it"
	e.LastError = r.Refused(pipeline.Effect{Key: "K-1", Sends: 2}, quoted).Reason
	if out := r.NotFound(e); out.Status != pipeline.OutcomePending || out.Reason != e.LastError {
		t.Fatalf("a mark quoted before its own: %+v; want pending from its own mark, not failed from the quoted one", out)
	}
}

// TestRefusedRepeatsMarkedByEarlierVersionsAreRead: ledgers written
// before the rule moved into pipeline carry the marks the providers'
// packages wrote, in these words (copied from what they wrote). Such a
// refused repeat keeps its first refusal's time: pending (never sent a
// third time) until KnownAfter since then, failed after. A reader that
// forgot these marks would answer "not found" (sent a third time), or
// restart the wait, and fail this test.
func TestRefusedRepeatsMarkedByEarlierVersionsAreRead(t *testing.T) {
	since := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	old := map[string]string{
		"Infinia, refused repeat":    "Infinia refused requestNo RS-20261123-S1-USD-1 sent again after an unknown outcome (SYS-005 duplicate requestNo) and does not know it: the first send may yet show (refused sent again, requestNo unknown since 2026-11-24T03:00:00Z)",
		"Infinia, unpublished code":  "Infinia refused requestNo RS-20261123-S1-USD-1 answered with a code Infinia does not publish (SYS-009 request timed out) and does not know it: the first send may yet show (refused sent again, requestNo unknown since 2026-11-24T03:00:00Z)",
		"Infinia, too large":         "revenue share to seller S1 (Infinia id LLLL) not sent, too large for Infinia: request too large; requestNo RS-20261123-S1-USD-1 was sent before with an unknown outcome and Infinia does not know it: the first send may yet show (refused sent again, requestNo unknown since 2026-11-24T03:00:00Z)",
		"WeChat Pay, refused repeat": "WeChat Pay refused out_order_no WXD20261123T1A1 sent again after an unknown outcome (NOT_ENOUGH 分账金额不足) and does not know it: the first send may yet show (refused sent again, out_order_no unknown since 2026-11-24T03:00:00Z)",
	}
	for name, lastError := range old {
		for _, key := range []string{"requestNo", "out_order_no"} {
			now := since
			r := pipeline.RefusedRepeat{Provider: "the provider", Key: key, Now: func() time.Time { return now }}
			e := pipeline.Effect{Key: "K", Sends: 2, State: pipeline.EffectSent, LastError: lastError}
			now = since.Add(pipeline.DefaultKnownAfter - time.Minute)
			for how, out := range map[string]pipeline.Outcome{"asked": r.NotFound(e), "refused again": r.Refused(e, "refused again")} {
				if out.Status != pipeline.OutcomePending || out.Reason != lastError {
					t.Errorf("%s (rule of %s), %s within KnownAfter: %+v; want pending, its first refusal's time kept", name, key, how, out)
				}
			}
			now = since.Add(pipeline.DefaultKnownAfter + time.Minute)
			if out := r.NotFound(e); out.Status != pipeline.OutcomeFailed || !strings.HasPrefix(out.Reason, lastError+"; the provider still does not know it 24h1m0s later") {
				t.Errorf("%s (rule of %s), asked after KnownAfter: %+v; want failed", name, key, out)
			}
		}
	}
}

// TestARefusedRepeatTheProviderAnsweredBeforeIsNeverFailed: a request
// the provider answered with its reference, whose status query then did
// not know it, was sent again under its key by an older settle (before
// ApplyEffect held such a request), and the repeat was refused: its
// reason carries the mark of a refused repeat. The rule of a refused
// repeat failed it once KnownAfter had passed - its balance paid again
// under a new key while the first, which the provider had answered, could
// still complete. NotFound answers "not found" for it, which ApplyEffect
// holds for a person (the reference recorded), never pending for ever
// nor failed.
func TestARefusedRepeatTheProviderAnsweredBeforeIsNeverFailed(t *testing.T) {
	now := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	r := pipeline.RefusedRepeat{Provider: "the provider", Key: "key", KnownAfter: 6 * time.Hour,
		Now: func() time.Time { return now }}
	e := pipeline.Effect{Kind: "payout", Key: "K-1", Sends: 2, State: pipeline.EffectSent, ProviderRef: "R1",
		LastError: "the provider refused K-1 (DUPLICATE) and does not know it: the first send may yet show (refused sent again, key unknown since 2026-11-23T03:00:00Z)"}
	if out := r.NotFound(e); out.Status != pipeline.OutcomeNotFound {
		t.Fatalf("answered before (R1), refused when sent again, not known a day later: %+v; want not found (held by ApplyEffect), not failed", out)
	}
	e.ProviderRef = ""
	if out := r.NotFound(e); out.Status != pipeline.OutcomeFailed {
		t.Fatalf("never answered, refused when sent again, not known a day later: %+v; want failed, as before", out)
	}
}

// TestARefusedRepeatsUnreadableLastMarkLeavesAnEarlierReadableOne: of
// several marks, the last readable one counts, not the last one: a
// reason that ends in a mark whose time cannot be read (in a provider's
// words) keeps the time of the readable mark before it, and its wait is
// not started again.
func TestARefusedRepeatsUnreadableLastMarkLeavesAnEarlierReadableOne(t *testing.T) {
	since := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	now := since.Add(time.Hour - time.Second)
	r := pipeline.RefusedRepeat{Provider: "the provider", Key: "key", KnownAfter: time.Hour, Now: func() time.Time { return now }}
	e := pipeline.Effect{Key: "K-1", Sends: 2, State: pipeline.EffectSent,
		LastError: "refused (refused sent again, key unknown since 2026-11-24T03:00:00Z); then (refused sent again, key unknown since later)"}
	if out := r.NotFound(e); out.Status != pipeline.OutcomePending || out.Reason != e.LastError {
		t.Fatalf("within KnownAfter of the readable mark: %+v; want pending, not marked again", out)
	}
	now = since.Add(time.Hour + time.Second)
	if out := r.NotFound(e); out.Status != pipeline.OutcomeFailed {
		t.Fatalf("past KnownAfter of the readable mark: %+v; want failed", out)
	}
}
