package extract

import (
	"math/big"
	"strings"
	"testing"
)

// decimalValue is s as a number when s is a decimal number (an optional
// sign, digits, optionally a point and digits, at least one digit), by
// math/big.
func decimalValue(s string) (*big.Rat, bool) {
	t, neg := s, false
	if t != "" && (t[0] == '-' || t[0] == '+') {
		neg, t = t[0] == '-', t[1:]
	}
	whole, frac, _ := strings.Cut(t, ".")
	if whole+frac == "" {
		return nil, false
	}
	for _, c := range []byte(whole + frac) {
		if c < '0' || c > '9' {
			return nil, false
		}
	}
	n, _ := new(big.Int).SetString("0"+whole+frac, 10)
	r := new(big.Rat).SetFrac(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil))
	if neg {
		r.Neg(r)
	}
	return r, true
}

// FuzzCanonicalAmount: two spellings of an amount have one canonical form
// exactly when they are the same number (math/big) or the same text; an
// amount column compared (sameColumn) is the same when its text is, or
// when it is the same number and not a reject mended.
func FuzzCanonicalAmount(f *testing.F) {
	for _, p := range [][2]string{{"100", "100.00"}, {"-0", "0"}, {"+5", "5"}, {"0100", "100"}, {".5", "0.50"}, {"5.", "5"},
		{".", "0"}, {"-", "+"}, {"1e3", "1000"}, {"", "0"}, {"-0.0", "+.0"}, {"12a", "12a"}, {"٣", "3"}, {"-.", "0"}} {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ra, oka := decimalValue(a)
		rb, okb := decimalValue(b)
		same := a == b || (oka && okb && ra.Cmp(rb) == 0)
		if got := canonicalAmount(a) == canonicalAmount(b); got != same {
			t.Fatalf("canonicalAmount(%q) = %q, canonicalAmount(%q) = %q; same number %v", a, canonicalAmount(a), b, canonicalAmount(b), same)
		}
		if oka {
			if !strings.HasPrefix(canonicalAmount(a), "#") {
				t.Fatalf("number %q canonical %q", a, canonicalAmount(a))
			}
			if back, _ := decimalValue(strings.TrimPrefix(canonicalAmount(a), "#")); back == nil || back.Cmp(ra) != 0 {
				t.Fatalf("canonicalAmount(%q) = %q, another number", a, canonicalAmount(a))
			}
		}
		want := a == b || (same && (integerText(a) || !integerText(b)))
		if got := sameColumn(amountColumn, &a, &b); got != want {
			t.Fatalf("sameColumn(%q, %q) = %v", a, b, got)
		}
	})
}
