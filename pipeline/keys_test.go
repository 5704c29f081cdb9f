package pipeline

import (
	"strings"
	"testing"
)

// ShortHash is part of every provider's idempotency keys: a change to how
// it joins, cuts or spells the digest would give a re-run new keys, and
// the provider would pay again what the first run sent. Pinned here.
func TestShortHashIsPinned(t *testing.T) {
	for _, tc := range []struct {
		parts []string
		want  string
	}{
		{[]string{"2024-03-01", "ORD-1", "1"}, "A20394FB491F"},
		// The parts are kept apart: ("ab", "") is not ("a", "b").
		{[]string{"ab", ""}, "969CAAEB3626"},
		{[]string{"a", "b"}, "59B271AE1BBC"},
	} {
		if got := ShortHash(tc.parts...); got != tc.want {
			t.Errorf("ShortHash(%q) = %s, want %s", tc.parts, got, tc.want)
		}
	}
}

// A query's requestNo names its kind and differs on every call, so that a
// provider replaying answers by requestNo never replays a stale one.
func TestQueryRequestNoIsFreshEachTime(t *testing.T) {
	a, b := QueryRequestNo("BAL"), QueryRequestNo("BAL")
	if !strings.HasPrefix(a, "BAL-") || !strings.HasPrefix(b, "BAL-") {
		t.Errorf("QueryRequestNo(BAL) = %s, %s; want the prefix BAL-", a, b)
	}
	if a == b {
		t.Errorf("QueryRequestNo gave %s twice", a)
	}
}

// A hold that waits passes by itself; one for a person ends the run
// needing a person (exit 4).
func TestHoldsSayWhetherTheyNeedAPerson(t *testing.T) {
	if h := Waits("too recent"); h.NeedsPerson || h.Reason != "too recent" {
		t.Errorf("Waits = %+v, want a hold that passes by itself", h)
	}
	if h := NeedsAPerson("refused"); !h.NeedsPerson || h.Reason != "refused" {
		t.Errorf("NeedsAPerson = %+v, want a hold for a person", h)
	}
}
