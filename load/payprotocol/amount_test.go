package payprotocol_test

import (
	"errors"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
)

func TestToMinor(t *testing.T) {
	for _, tc := range []struct {
		scaled   string
		decimals int
		cur      pipeline.Currency
		want     int64
		err      string
	}{
		{"1230000", 6, "USD", 123, ""},
		{"12340000", 6, "USD", 1234, ""},
		{"0", 6, "USD", 0, ""},
		{"000123", 0, "JPY", 123, ""},
		{"1234500", 6, "USD", 0, "not a whole number"}, // 1.2345 USD: 123 cents and 0.45 of a cent
		{"1", 18, "USD", 0, "not a whole number"},
		{"10000000000000000", 18, "USD", 1, ""}, // 0.01 ETH-scaled to cents
		{"12500000000000000000", 18, "USD", 1250, ""},
		{"1500", 3, "KWD", 1500, ""},
		{"15", 0, "KWD", 15000, ""},
		{"15", 1, "USD", 150, ""},
		{"9223372036854775807", 2, "USD", math.MaxInt64, ""},
		{"9223372036854775808", 2, "USD", 0, "out of range"},
		{"92233720368547758070", 2, "USD", 0, "out of range"},
		{"1", 0, "XYZ", 0, "unknown currency"},
		{"-1", 0, "USD", 0, "ASCII digits"},
		{"+1", 0, "USD", 0, "ASCII digits"},
		{"1.5", 1, "USD", 0, "ASCII digits"},
		{"1e6", 0, "USD", 0, "ASCII digits"},
		{"", 0, "USD", 0, "ASCII digits"},
		{" 1", 0, "USD", 0, "ASCII digits"},
		{"1", -1, "USD", 0, "decimals -1"},
		{"1", 37, "USD", 0, "decimals 37"},
	} {
		got, err := payprotocol.ToMinor(tc.scaled, tc.decimals, tc.cur)
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("ToMinor(%q, %d, %s) = %d, %v; want %d", tc.scaled, tc.decimals, tc.cur, got, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ToMinor(%q, %d, %s) = %d, %v; want an error saying %q", tc.scaled, tc.decimals, tc.cur, got, err, tc.err)
		}
	}
	if _, err := payprotocol.ToMinor("9223372036854775808", 2, "USD"); !errors.Is(err, pipeline.ErrOverflow) {
		t.Errorf("overflow: %v, want pipeline.ErrOverflow", err)
	}
}

func TestFromMinor(t *testing.T) {
	for _, tc := range []struct {
		minor    int64
		decimals int
		cur      pipeline.Currency
		want     string
		bad      bool
	}{
		{1234, 6, "USD", "12340000", false},
		{1250, 18, "USD", "12500000000000000000", false},
		{0, 6, "USD", "0", false},
		{1500, 0, "KWD", "", true}, // 1.5 KWD in whole units
		{2000, 0, "KWD", "2", false},
		{123, 1, "USD", "", true},
		{120, 1, "USD", "12", false},
		{5, 0, "JPY", "5", false},
		{-1, 6, "USD", "", true},
		{1, 6, "XYZ", "", true},
		{1, 40, "USD", "", true},
	} {
		got, err := payprotocol.FromMinor(tc.minor, tc.decimals, tc.cur)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("FromMinor(%d, %d, %s) = %q, %v; want %q (error %v)", tc.minor, tc.decimals, tc.cur, got, err, tc.want, tc.bad)
		}
	}
}

func TestDecimalHelpers(t *testing.T) {
	if s, err := payprotocol.FormatDecimal(1230, "USD"); err != nil || s != "12.30" {
		t.Errorf("FormatDecimal = %q, %v", s, err)
	}
	if s, err := payprotocol.FormatDecimal(1500, "KWD"); err != nil || s != "1.500" {
		t.Errorf("FormatDecimal KWD = %q, %v", s, err)
	}
	if _, err := payprotocol.FormatDecimal(1230, "USDT"); err == nil {
		t.Error("FormatDecimal of an unknown currency printed something")
	}
	for _, tc := range []struct {
		dec      string
		decimals int
		scaled   string
		bad      bool
	}{
		{"12.34", 6, "12340000", false},
		{"12.3400000", 6, "12340000", false}, // trailing zeros are exact
		{"0.000001", 6, "1", false},
		{"0.0000001", 6, "", true},
		{"12", 0, "12", false},
		{"007.5", 1, "75", false},
		{"1.5", 0, "", true},
		{"-1", 6, "", true},
		{"1.", 6, "", true},
		{".1", 6, "", true},
	} {
		got, err := payprotocol.ScaledFromDecimal(tc.dec, tc.decimals)
		if (err != nil) != tc.bad || got != tc.scaled {
			t.Errorf("ScaledFromDecimal(%q, %d) = %q, %v; want %q", tc.dec, tc.decimals, got, err, tc.scaled)
		}
	}
	for _, tc := range []struct {
		scaled   string
		decimals int
		dec      string
	}{
		{"12340000", 6, "12.34"}, {"1", 6, "0.000001"}, {"0", 6, "0"}, {"12000000", 6, "12"}, {"12", 0, "12"},
		{"12500000000000000000", 18, "12.5"},
		{"123456", 6, "0.123456"}, {"500000", 6, "0.5"}, // as many digits as decimals: a whole part of 0
	} {
		if got, err := payprotocol.DecimalFromScaled(tc.scaled, tc.decimals); err != nil || got != tc.dec {
			t.Errorf("DecimalFromScaled(%q, %d) = %q, %v; want %q", tc.scaled, tc.decimals, got, err, tc.dec)
		}
	}
}

// plainDecimal is what a decimal amount looks like, written independently
// of pipeline.ParseMinor.
var plainDecimal = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// FuzzDecimalRoundTrip: a decimal string that is accepted becomes minor
// units equal to its exact value (big.Rat is the oracle), formats back to
// a string of the same value that parses to the same units; a string is
// refused exactly when it is not a plain decimal with at most the
// currency's decimals within int64.
func FuzzDecimalRoundTrip(f *testing.F) {
	for _, s := range []string{"12.34", "0.05", "-0.05", "1200", "1.000", "12.345", "007.50", "-0", "1e3", ".5", "5.",
		"+1", "", "-", "9223372036854775807", "92233720368547758.07", "-92233720368547758.08", "92233720368547758.08", "0.001"} {
		for _, c := range []string{"USD", "JPY", "KWD"} {
			f.Add(s, c)
		}
	}
	f.Fuzz(func(t *testing.T, s, c string) {
		cur := pipeline.Currency(c)
		exp, known := cur.Exponent()
		minor, err := pipeline.ParseMinor(s, cur)

		// The oracle.
		exact, ok := new(big.Rat), false
		if known && plainDecimal.MatchString(s) {
			_, frac, _ := strings.Cut(s, ".")
			if _, parsed := exact.SetString(s); parsed && len(frac) <= exp {
				exact.Mul(exact, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(exp)), nil)))
				ok = exact.IsInt() && exact.Num().IsInt64()
			}
		}
		if !ok {
			if err == nil {
				t.Fatalf("ParseMinor(%q, %s) = %d, want an error", s, c, minor)
			}
			return
		}
		if err != nil {
			t.Fatalf("ParseMinor(%q, %s): %v, want %s", s, c, err, exact.Num())
		}
		if minor != exact.Num().Int64() {
			t.Fatalf("ParseMinor(%q, %s) = %d, exact value %s minor units", s, c, minor, exact.Num())
		}
		out, err := payprotocol.FormatDecimal(minor, cur)
		if err != nil {
			t.Fatal(err)
		}
		back, err := pipeline.ParseMinor(out, cur)
		if err != nil || back != minor {
			t.Fatalf("%q -> %d -> %q -> %d, %v", s, minor, out, back, err)
		}
		if r, ok := new(big.Rat).SetString(out); !ok || r.Cmp(new(big.Rat).SetFrac(exact.Num(), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(exp)), nil))) != 0 {
			t.Fatalf("FormatDecimal(%d) = %q, not the value of %q", minor, out, s)
		}
	})
}

// FuzzScaledRoundTrip: an amount scaled by 10^decimals converts to minor
// units exactly when its value is a whole number of minor units within
// int64 (big.Rat is the oracle), and converts back to the same value.
func FuzzScaledRoundTrip(f *testing.F) {
	for _, tc := range []struct {
		s string
		d int
	}{{"1234500", 6}, {"1230000", 6}, {"12500000000000000000", 18}, {"1", 18}, {"0", 0}, {"15", 0},
		{"9223372036854775807", 2}, {"922337203685477580800", 4}, {"00010", 1}, {"-1", 0}, {"1e3", 0}} {
		for _, c := range []string{"USD", "JPY", "KWD"} {
			f.Add(tc.s, tc.d, c)
		}
	}
	f.Fuzz(func(t *testing.T, s string, decimals int, c string) {
		cur := pipeline.Currency(c)
		exp, known := cur.Exponent()
		minor, err := payprotocol.ToMinor(s, decimals, cur)

		ok := false
		want := new(big.Rat)
		if known && decimals >= 0 && decimals <= payprotocol.MaxDecimals && len(s) <= 80 && regexp.MustCompile(`^[0-9]+$`).MatchString(s) {
			v, _ := new(big.Int).SetString(s, 10)
			want.SetFrac(v, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(decimals)), nil))
			want.Mul(want, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(exp)), nil)))
			ok = want.IsInt() && want.Num().IsInt64()
		}
		if !ok {
			if err == nil {
				t.Fatalf("ToMinor(%q, %d, %s) = %d, want an error", s, decimals, c, minor)
			}
			return
		}
		if err != nil || minor != want.Num().Int64() {
			t.Fatalf("ToMinor(%q, %d, %s) = %d, %v; exact %s", s, decimals, c, minor, err, want.Num())
		}
		back, err := payprotocol.FromMinor(minor, decimals, cur)
		if err != nil {
			t.Fatalf("FromMinor(%d, %d, %s): %v", minor, decimals, c, err)
		}
		orig, _ := new(big.Int).SetString(s, 10)
		if back != orig.String() {
			t.Fatalf("%q -> %d -> %q: value changed", s, minor, back)
		}
		// And through the decimal form.
		dec, err := payprotocol.DecimalFromScaled(s, decimals)
		if err != nil {
			t.Fatal(err)
		}
		again, err := payprotocol.ScaledFromDecimal(dec, decimals)
		if err != nil || again != orig.String() {
			t.Fatalf("%q -> %q -> %q, %v", s, dec, again, err)
		}
	})
}

// quoteNumber is the shape QuoteMinor reads: digits, optionally a point
// and digits, optionally an exponent (its size is checked apart).
var quoteNumber = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// FuzzQuoteMinor: a quote amount QuoteMinor reads is in minor units its
// exact value (big.Rat is the oracle); one is refused exactly when it is
// not a plain decimal number (an exponent allowed, at most 64, and at most
// 80 characters) whose value is a whole number of the currency's minor
// units within int64.
func FuzzQuoteMinor(f *testing.F) {
	for _, s := range []string{"313.5", "313.500000", "3.135E+2", "1E+3", "1e-2", "1e-3", "31350e-2", "-1", "1e65", "1e64", ".5", "5.",
		"1e", "1e+", "9.223372036854775807E+16", "9.223372036854775808E+16", "0E+99"} {
		for _, c := range []string{"USD", "JPY", "KWD"} {
			f.Add(s, c)
		}
	}
	f.Fuzz(func(t *testing.T, s, c string) {
		cur := pipeline.Currency(c)
		exp, known := cur.Exponent()
		minor, err := payprotocol.QuoteMinor(s, cur)
		exact, ok := new(big.Rat), false
		if known && len(s) <= 80 && quoteNumber.MatchString(s) {
			n, nerr := 0, error(nil)
			if _, e, hasExp := strings.Cut(strings.ToLower(s), "e"); hasExp {
				n, nerr = strconv.Atoi(strings.TrimLeft(e, "+-"))
			}
			if _, parsed := exact.SetString(s); parsed && nerr == nil && n <= 64 {
				exact.Mul(exact, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(exp)), nil)))
				ok = exact.IsInt() && exact.Num().IsInt64()
			}
		}
		if !ok {
			if err == nil {
				t.Fatalf("QuoteMinor(%q, %s) = %d, want an error", s, c, minor)
			}
			return
		}
		if err != nil || minor != exact.Num().Int64() {
			t.Fatalf("QuoteMinor(%q, %s) = %d, %v; exact value %s minor units", s, c, minor, err, exact.Num())
		}
	})
}
