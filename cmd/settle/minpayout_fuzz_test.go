package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

// FuzzParseMinPayout checks --min-payout: a value taken holds, for each
// currency given, the exact non-negative minor units of the amount
// written (pipeline.ParseMinor), and written back with the currencies'
// decimals reads the same; one refused is a usage error naming the flag.
func FuzzParseMinPayout(f *testing.F) {
	for _, s := range []string{"USD=10.00,JPY=1000", "", " USD = 10 , ", "USD=10,USD=20", "JPY=10.5", "USD=-1", "USD=-0", "usd=1",
		"USD=+1", "USD=1e3", "KWD=0.001,,", "USD", "=5", "USD=92233720368547758.07", "USD=92233720368547758.08"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseMinPayout(s)
		if err != nil {
			if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "--"+flagMinPayout) {
				t.Fatalf("parseMinPayout(%q): %v is not a usage error naming the flag", s, err)
			}
			return
		}
		var parts []string
		for _, part := range strings.Split(s, ",") {
			k, v, _ := strings.Cut(part, "=")
			cur := pipeline.Currency(strings.TrimSpace(k))
			if strings.TrimSpace(part) == "" {
				continue
			}
			want, err := pipeline.ParseMinor(strings.TrimSpace(v), cur)
			if err != nil || want < 0 || m[cur] != want {
				t.Fatalf("parseMinPayout(%q)[%s] = %d; ParseMinor says %d, %v", s, cur, m[cur], want, err)
			}
			parts = append(parts, string(cur)+"="+pipeline.FormatMinor(want, cur))
		}
		if len(parts) != len(m) {
			t.Fatalf("parseMinPayout(%q) = %v from %d parts", s, m, len(parts))
		}
		slices.Reverse(parts)
		back, err := parseMinPayout(strings.Join(parts, ","))
		if err != nil || len(back) != len(m) {
			t.Fatalf("%v written %q reads back %v, %v", m, strings.Join(parts, ","), back, err)
		}
		for c, v := range m {
			if back[c] != v {
				t.Fatalf("%v written %q reads back %v", m, strings.Join(parts, ","), back)
			}
		}
	})
}
