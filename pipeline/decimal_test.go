package pipeline

import (
	"errors"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestParseMinor(t *testing.T) {
	for _, tc := range []struct {
		in   string
		cur  Currency
		want int64
	}{
		{"12.30", "USD", 1230},
		{"12.3", "USD", 1230},
		{"12", "USD", 1200},
		{"0.05", "USD", 5},
		{"-0.05", "USD", -5},
		{"-0", "USD", 0},
		{"007.50", "USD", 750},
		{"1200", "JPY", 1200},
		{"-1200", "JPY", -1200},
		{"0.001", "KWD", 1},
		{"-123.456", "KWD", -123456},
		{"92233720368547758.07", "USD", math.MaxInt64},
		{"-92233720368547758.08", "USD", math.MinInt64},
		{"9223372036854775807", "JPY", math.MaxInt64},
		{"-9223372036854775808", "JPY", math.MinInt64},
		{"9223372036854775.807", "KWD", math.MaxInt64},
	} {
		got, err := ParseMinor(tc.in, tc.cur)
		if err != nil || got != tc.want {
			t.Errorf("ParseMinor(%q, %s) = %d, %v; want %d", tc.in, tc.cur, got, err, tc.want)
		}
	}
}

func TestParseMinorRejects(t *testing.T) {
	for _, tc := range []struct {
		in  string
		cur Currency
	}{
		{"", "USD"}, {"-", "USD"}, {".5", "USD"}, {"5.", "USD"}, {"-.5", "USD"},
		{"+5", "USD"}, {" 5", "USD"}, {"5 ", "USD"}, {"1e3", "USD"}, {"1E3", "USD"},
		{"1,000.00", "USD"}, {"1_000", "USD"}, {"--5", "USD"}, {"5-", "USD"}, {"0x10", "USD"},
		{"1.234", "USD"}, {"1.000", "USD"}, {"100.0", "JPY"}, {"100.", "JPY"}, {"0.0001", "KWD"},
		{"1.2.3", "USD"}, {"١٢", "USD"}, {"NaN", "USD"}, {"Inf", "USD"},
		// The bytes either side of the ASCII digits are no digits.
		{"1:", "USD"}, {"1/", "USD"}, {"1.:", "USD"},
		{"12.30", "XXX"}, {"12.30", ""}, {"12.30", "usd"},
		{"92233720368547758.08", "USD"}, {"-92233720368547758.09", "USD"},
		{"9223372036854775808", "JPY"}, {"99999999999999999999999", "JPY"},
	} {
		if got, err := ParseMinor(tc.in, tc.cur); err == nil {
			t.Errorf("ParseMinor(%q, %q) = %d, want an error", tc.in, tc.cur, got)
		}
	}
	if _, err := ParseMinor("92233720368547758.08", "USD"); !errors.Is(err, ErrOverflow) {
		t.Errorf("overflow error %v does not wrap ErrOverflow", err)
	}
}

// knownCurrencies lists every currency settle knows, sorted, so fuzz inputs
// pick one by index deterministically.
func knownCurrencies() []Currency {
	var cs []Currency
	for c := range currencyExponents {
		cs = append(cs, c)
	}
	slices.Sort(cs)
	return cs
}

// FuzzParseMinor checks that FormatMinor then ParseMinor round-trips every
// int64 in every known currency, that ParseMinor never panics and only
// accepts what FormatMinor maps back to the same amount, and that it agrees
// with math/big (oracleMinor) on what it accepts and on its value.
func FuzzParseMinor(f *testing.F) {
	cs := knownCurrencies()
	f.Add(int64(0), uint8(0), "0")
	f.Add(int64(-5), uint8(1), "-0.05")
	f.Add(int64(math.MinInt64), uint8(2), "12.30")
	f.Add(int64(math.MaxInt64), uint8(3), "0.001")
	f.Add(int64(1230), uint8(4), "1e3")
	f.Add(int64(7), uint8(5), "-92233720368547758.08")
	for _, s := range []string{"+5", " 5", "5 ", "٣", "0x10", "1e400", "NaN", "Inf", "-0", "0005", "5.", ".5", "1.000",
		"-92233720368547758.09", "92233720368547758.08", "00000000000000000000000000000000000000001.00"} {
		f.Add(int64(1), uint8(0), s)
	}
	f.Fuzz(func(t *testing.T, minor int64, ci uint8, s string) {
		for _, c := range []Currency{cs[int(ci)%len(cs)], "USD", "JPY", "KWD"} {
			text := FormatMinor(minor, c)
			got, err := ParseMinor(text, c)
			if err != nil || got != minor {
				t.Fatalf("ParseMinor(FormatMinor(%d, %s) = %q) = %d, %v", minor, c, text, got, err)
			}
			v, err := ParseMinor(s, c)
			if want, ok := oracleMinor(s, c); ok != (err == nil) || (ok && v != want) {
				t.Fatalf("ParseMinor(%q, %s) = %d, %v; math/big says %d, %v", s, c, v, err, want, ok)
			}
			if err != nil {
				continue
			}
			if back, err := ParseMinor(FormatMinor(v, c), c); err != nil || back != v {
				t.Fatalf("ParseMinor(%q, %s) = %d does not survive a round trip: %d, %v", s, c, v, back, err)
			}
		}
	})
}

// decimalForm is the form ParseMinor reads, decimals aside.
var decimalForm = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// oracleMinor is ParseMinor's contract computed with math/big: s, an
// optional "-", ASCII digits and optionally a point and at most c's
// exponent of digits, is that many minor units of c when the value fits
// int64; ok is false for anything else.
func oracleMinor(s string, c Currency) (int64, bool) {
	exp, known := c.Exponent()
	if !known || !decimalForm.MatchString(s) {
		return 0, false
	}
	if _, frac, dot := strings.Cut(s, "."); dot && len(frac) > exp {
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
