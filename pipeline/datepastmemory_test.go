package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestDatePastMemoryCountsFromTheDatesEnd: a date's requests may first
// have gone out once it ended, so its age is counted from its end in the
// run's zone (the earliest end anywhere when the zone is not known): past
// the memory, an error about the date's subjects alone (SubjectOnly,
// ErrPastMemory) naming the date, its age, the memory and the way out;
// within it, or with no memory, nil.
func TestDatePastMemoryCountsFromTheDatesEnd(t *testing.T) {
	d := Date{Year: 2026, Month: 10, Day: 23}
	memory := 30 * 24 * time.Hour
	end := time.Date(2026, 10, 23, 16, 0, 0, 0, time.UTC) // 2026-10-24 00:00 in Asia/Shanghai
	if err := DatePastMemory(d, "Asia/Shanghai", end.Add(memory), memory, "Infinia", "revenue shares"); err != nil {
		t.Errorf("the date ended exactly the memory ago: %v, want nil", err)
	}
	err := DatePastMemory(d, "Asia/Shanghai", end.Add(memory+time.Hour), memory, "Infinia", "revenue shares")
	if !errors.Is(err, ErrPastMemory) || !SubjectOnly(err) {
		t.Fatalf("an hour past the memory: %v, want ErrPastMemory about the subjects alone", err)
	}
	for _, want := range []string{"no new revenue shares of 2026-10-23 sent", "30d1h ago", "remember (30d)", "Infinia's own records", "settle run --date 2026-10-23 --send-past-memory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if err := DatePastMemory(d, "Asia/Shanghai", end.Add(400*24*time.Hour), 0, "Infinia", "revenue shares"); err != nil {
		t.Errorf("no memory given: %v, want nil", err)
	}
	// The zone not known: the date ends at its earliest (UTC+14), so it
	// is past the memory sooner, never later.
	earliest := time.Date(2026, 10, 23, 10, 0, 0, 0, time.UTC)
	if err := DatePastMemory(d, "", earliest.Add(memory+time.Minute), memory, "Infinia", "revenue shares"); err == nil {
		t.Error("zone not known, a minute past the memory from the date's earliest end: nil, want held")
	}
}

// TestHoldFirstSendsSendsNothingNew: an effect never sent is neither sent
// nor marked sent - left planned, with the held error about its subject
// alone; one sent before that its provider never got is sent again under
// its key, as without the hold.
func TestHoldFirstSendsSendsNothingNew(t *testing.T) {
	held := DatePastMemory(Date{Year: 2026, Month: 10, Day: 23}, "UTC", time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC), 30*24*time.Hour, "Infinia", "revenue shares")
	s := newMemEffects()
	e := plan(t, s, 1)[0]
	p := newSlowProvider(0, 0)
	got, err := ApplyEffect(context.Background(), s, HoldFirstSends(p, held), e)
	if !errors.Is(err, ErrPastMemory) || !SubjectOnly(err) || !strings.Contains(err.Error(), e.Key) || p.sends != 0 ||
		got.State != EffectPlanned || s.effects[e.ID].State != EffectPlanned || s.effects[e.ID].Sends != 0 {
		t.Fatalf("a planned effect of a date past the memory: %+v (stored %+v), %v, %d sends; want it planned, not sent, held naming its key",
			got, s.effects[e.ID], err, p.sends)
	}
	if err := s.MarkSent(context.Background(), e.ID); err != nil {
		t.Fatal(err)
	}
	e = s.effects[e.ID]
	got, err = ApplyEffect(context.Background(), s, HoldFirstSends(scripted{query: Outcome{Status: OutcomeNotFound}, send: Outcome{Status: OutcomeSucceeded, Ref: "P1"}}, held), e)
	if err != nil || got.State != EffectSucceeded || got.Sends != 2 {
		t.Fatalf("an effect sent before, never arrived: %+v, %v; want it sent again under its key", got, err)
	}
	if HoldFirstSends(p, nil) != EffectSender(p) {
		t.Error("nothing to hold: want the sender itself")
	}
}

// TestThePastMemoryExplanationIsSaidOnce: DatePastMemory's error names
// the hold short, its explanation apart (WhyOf); Problems that explain it
// keep it once and out of their message, and NotesOf gives it once for a
// run's error joining two stages that both explain it.
func TestThePastMemoryExplanationIsSaidOnce(t *testing.T) {
	d := Date{Year: 2026, Month: 10, Day: 23}
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	past := DatePastMemory(d, "UTC", now, 30*24*time.Hour, "Infinia", "revenue shares")
	why := WhyOf(past)
	if why == "" || strings.Contains(past.Error(), why) || !strings.Contains(why, "cannot tell from a key never sent") || !strings.Contains(why, "if they show some, do not") {
		t.Fatalf("error %q, explanation %q: want the explanation apart from the error", past, why)
	}
	if WhyOf(errors.New("other")) != "" || WhyOf(nil) != "" {
		t.Error("an error with no explanation has one")
	}
	stage := func() error {
		var p Problems
		p.Add("seller S1 USD: binding FROZEN")
		p.Lead("2 sellers' revenue shares held: "+past.Error(), 2)
		p.Explain(past)
		p.Explain(past)
		p.Explain(errors.New("other"))
		if len(p.Notes) != 1 {
			t.Fatalf("notes %q, want the explanation once", p.Notes)
		}
		return p.NeedsPerson()
	}
	run := E(KindNeedsPerson, "run", errors.Join(fmt.Errorf("stage upload: %w", stage()), fmt.Errorf("stage distribute: %w", stage())))
	if strings.Contains(run.Error(), why) {
		t.Errorf("the run's error says the explanation: %s", run)
	}
	if notes := NotesOf(run); len(notes) != 1 || notes[0] != why {
		t.Errorf("NotesOf: %q, want the explanation once", notes)
	}
}
