package pipeline

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestPastMemoryHoldsOnlyKeysOlderThanTheProviderRemembers: a key the
// provider does not know is "never arrived" while it is younger than the
// provider's memory; older, an error naming the key and its age that
// concerns its subject alone (SubjectOnly) and wraps ErrPastMemory. No
// memory, or an effect whose planning time is not known, is never past it.
func TestPastMemoryHoldsOnlyKeysOlderThanTheProviderRemembers(t *testing.T) {
	now := time.Date(2027, 1, 10, 3, 0, 0, 0, time.UTC)
	e := Effect{Kind: "revenue_share", Subject: "RS/20261123/S1/USD", Key: "RS-1", Sends: 2, Planned: now.Add(-45*24*time.Hour - 2*time.Hour)}
	memory := 30 * 24 * time.Hour
	err := PastMemory(e, now, memory, "Infinia")
	if !errors.Is(err, ErrPastMemory) || !SubjectOnly(err) || IsNotFound(err) {
		t.Fatalf("a key 45 days old, memory 30 days: %v; want ErrPastMemory, subject only, not \"not found\"", err)
	}
	for _, want := range []string{"RS-1", "45d2h ago", "2026-11-26T01:00:00Z", "Infinia", "30d"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	e.Planned = now.Add(-memory)
	if err := PastMemory(e, now, memory, "Infinia"); err != nil {
		t.Errorf("a key exactly as old as the memory: %v, want nil", err)
	}
	e.Planned = now.Add(-400 * 24 * time.Hour)
	if err := PastMemory(e, now, 0, "Infinia"); err != nil {
		t.Errorf("no memory given: %v, want nil", err)
	}
	e.Planned = time.Time{}
	if err := PastMemory(e, now, memory, "Infinia"); err != nil {
		t.Errorf("planning time not known: %v, want nil", err)
	}
}
