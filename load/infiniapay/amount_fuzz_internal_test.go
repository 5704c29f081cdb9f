package infiniapay

import (
	"math/big"
	"regexp"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

// decimalForm is what an amount in Infinia's answers may look like: an
// optional "-", ASCII digits, and optionally a point and more digits.
var decimalForm = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// FuzzParseAmount checks parseAmount, which reads every amount of
// Infinia's answers (balances, available shares, revenue shares), against
// math/big: it accepts exactly the decimals of decimalForm whose value is
// a whole number of the currency's minor units that fits int64 (zeros
// beyond the currency's decimals are the same amount, yen "1000.00"), and
// returns that number exactly; anything else is an error naming the
// amount, never a rounded, truncated or wrapped value.
func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"12.30", "1000.00", "1000.01", "0.001", "-0", "-0.00", "+5", " 5", "5 ", "٣", "0x10", "1e3",
		"1e400", "NaN", "Inf", "5.", ".5", "", "-", "0005", "92233720368547758.07", "92233720368547758.08",
		"-92233720368547758.08", "-92233720368547758.09", "9223372036854775807.000", strings.Repeat("9", 400)} {
		for c := range uint8(4) {
			f.Add(s, c)
		}
	}
	cs := []pipeline.Currency{"USD", "JPY", "KWD", "CNY", "XXX"}
	f.Fuzz(func(t *testing.T, s string, ci uint8) {
		cur := cs[int(ci)%len(cs)]
		got, err := parseAmount(s, cur)
		want, ok := oracleMinor(s, cur)
		switch {
		case ok && (err != nil || got != want):
			t.Fatalf("parseAmount(%q, %s) = %d, %v; want %d", s, cur, got, err, want)
		case !ok && err == nil:
			t.Fatalf("parseAmount(%q, %s) = %d, want an error", s, cur, got)
		case !ok && !strings.Contains(err.Error(), "amount"):
			t.Fatalf("parseAmount(%q, %s): %v does not name the amount", s, cur, err)
		}
	})
}

// oracleMinor is the value of s in minor units of cur, by math/big, and
// whether it is a well-formed whole number of minor units within int64.
func oracleMinor(s string, cur pipeline.Currency) (int64, bool) {
	exp, known := cur.Exponent()
	if !known || !decimalForm.MatchString(s) {
		return 0, false
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, false
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(exp)), nil)))
	if !r.IsInt() || !r.Num().IsInt64() {
		return 0, false
	}
	return r.Num().Int64(), true
}
