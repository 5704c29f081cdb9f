package main

import (
	"strings"
	"testing"
)

// A minimum payout refused says why: "JPY=10.5" was refused as "want a
// non-negative amount in JPY", of an amount that is non-negative; its
// fault is a decimal that JPY has not (found by an adversarial data
// review).
func TestMinPayoutRefusedSaysWhy(t *testing.T) {
	for in, want := range map[string]string{
		"JPY=10.5":   "more than 0 decimals",
		"KWD=0.0005": "more than 3 decimals",
		"USD=1e3":    "want digits",
		"USD=-1":     "want a non-negative amount in USD",
	} {
		_, err := parseMinPayout(in)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--min-payout") {
			t.Errorf("%s: %v, want an error of --min-payout saying %q", in, err, want)
		}
	}
	got, err := parseMinPayout("USD=10.00,JPY=1000,KWD=0.005")
	if err != nil || got["USD"] != 1000 || got["JPY"] != 1000 || got["KWD"] != 5 {
		t.Errorf("%v %v", got, err)
	}
}
