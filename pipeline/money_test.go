package pipeline

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestFormatMinor(t *testing.T) {
	for _, tc := range []struct {
		minor int64
		cur   Currency
		want  string
	}{
		{0, "USD", "0.00"},
		{5, "USD", "0.05"},
		{-5, "USD", "-0.05"},
		{12345, "USD", "123.45"},
		{1200, "JPY", "1200"},
		{1, "KWD", "0.001"},
		{-123456, "KWD", "-123.456"},
		{math.MinInt64, "USD", "-92233720368547758.08"},
		{42, "XXX", "42"},
	} {
		if got := FormatMinor(tc.minor, tc.cur); got != tc.want {
			t.Errorf("FormatMinor(%d, %s) = %q, want %q", tc.minor, tc.cur, got, tc.want)
		}
	}
}

func TestCurrencyExponents(t *testing.T) {
	for cur, want := range map[Currency]int{"JPY": 0, "USD": 2, "CNY": 2, "KWD": 3, "KRW": 0} {
		if got, ok := cur.Exponent(); !ok || got != want {
			t.Errorf("%s exponent %d %v, want %d", cur, got, ok, want)
		}
	}
	for _, bad := range []string{"", "usd", "XXX", "US", "USDT"} {
		if _, err := ParseCurrency(bad); err == nil {
			t.Errorf("ParseCurrency(%q) accepted", bad)
		}
	}
}

func TestAddOverflow(t *testing.T) {
	if _, err := Add(math.MaxInt64, 1); !errors.Is(err, ErrOverflow) {
		t.Error("MaxInt64+1 did not overflow")
	}
	if _, err := Add(math.MinInt64, -1); !errors.Is(err, ErrOverflow) {
		t.Error("MinInt64-1 did not overflow")
	}
	if v, err := Add(math.MaxInt64-1, 1); err != nil || v != math.MaxInt64 {
		t.Errorf("MaxInt64-1+1 = %d, %v", v, err)
	}
}

func TestMulDivHalfEven(t *testing.T) {
	for _, tc := range []struct{ x, num, den, want int64 }{
		{250, 100, 10000, 2},                         // 2.5 -> 2 (even)
		{350, 100, 10000, 4},                         // 3.5 -> 4 (even)
		{251, 100, 10000, 3},                         // 2.51 -> 3
		{249, 100, 10000, 2},                         // 2.49 -> 2
		{-0, 500, 10000, 0},                          // zero
		{10001, 1, 2, 5000},                          // 5000.5 -> 5000
		{10003, 1, 2, 5002},                          // 5001.5 -> 5002
		{math.MaxInt64, 10000, 10000, math.MaxInt64}, // 128-bit product, no wrap
	} {
		got, err := MulDivHalfEven(tc.x, tc.num, tc.den)
		if err != nil || got != tc.want {
			t.Errorf("MulDivHalfEven(%d, %d, %d) = %d, %v; want %d", tc.x, tc.num, tc.den, got, err, tc.want)
		}
	}
	if _, err := MulDivHalfEven(math.MaxInt64, 3, 2); !errors.Is(err, ErrOverflow) {
		t.Errorf("result above MaxInt64 not reported: %v", err)
	}
	if _, err := MulDivHalfEven(-1, 1, 1); err == nil {
		t.Error("negative operand accepted")
	}
}

// TestEveryCurrencyHasItsISO4217Exponent pins the exponent of every
// currency settle knows: one wrong digit there moves every amount of the
// currency by a factor of 100 or 1000, in the trade files and the
// payouts alike. A currency added to the table must be added here too.
func TestEveryCurrencyHasItsISO4217Exponent(t *testing.T) {
	iso := map[Currency]int{
		"AED": 2, "AUD": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2, "CLP": 0,
		"CNY": 2, "CZK": 2, "DKK": 2, "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2,
		"IDR": 2, "ILS": 2, "INR": 2, "ISK": 0, "JOD": 3, "JPY": 0, "KRW": 0,
		"KWD": 3, "MOP": 2, "MXN": 2, "MYR": 2, "NOK": 2, "NZD": 2, "OMR": 3,
		"PHP": 2, "PLN": 2, "QAR": 2, "RUB": 2, "SAR": 2, "SEK": 2, "SGD": 2,
		"THB": 2, "TND": 3, "TRY": 2, "TWD": 2, "UGX": 0, "USD": 2, "VND": 0,
		"XAF": 0, "XOF": 0, "ZAR": 2,
	}
	for cur, want := range iso {
		if got, ok := cur.Exponent(); !ok || got != want {
			t.Errorf("%s exponent %d (known %v), ISO 4217 says %d", cur, got, ok, want)
		}
	}
	for cur := range currencyExponents {
		if _, ok := iso[cur]; !ok {
			t.Errorf("%s is known to settle but its exponent is pinned by no test", cur)
		}
	}
}

// TestEveryAmountFormatsAndParsesBackInEveryCurrency: FormatMinor and
// ParseMinor are inverses for amounts of every length around the
// currency's exponent (an amount of exactly as many digits as the
// exponent, 12 cents, is "0.12", never ".12").
func TestEveryAmountFormatsAndParsesBackInEveryCurrency(t *testing.T) {
	for cur, exp := range currencyExponents {
		for _, minor := range []int64{0, 1, 9, 10, 12, 99, 100, 123, 999, 1000, 1234, 10000, 123456789, math.MaxInt64, math.MinInt64 + 1, math.MinInt64} {
			for _, v := range []int64{minor, -minor} {
				s := FormatMinor(v, cur)
				if exp > 0 {
					whole, frac, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
					if whole == "" || len(frac) != exp {
						t.Errorf("FormatMinor(%d, %s) = %q: want digits, a point and %d decimals", v, cur, s, exp)
					}
				}
				if back, err := ParseMinor(s, cur); err != nil || back != v {
					t.Errorf("ParseMinor(FormatMinor(%d, %s) = %q) = %d, %v", v, cur, s, back, err)
				}
			}
		}
	}
	for _, tc := range []struct {
		minor int64
		cur   Currency
		want  string
	}{{12, "USD", "0.12"}, {-12, "USD", "-0.12"}, {123, "KWD", "0.123"}, {-100, "TND", "-0.100"}, {7, "JPY", "7"}} {
		if got := FormatMinor(tc.minor, tc.cur); got != tc.want {
			t.Errorf("FormatMinor(%d, %s) = %q, want %q", tc.minor, tc.cur, got, tc.want)
		}
	}
}

// TestMulDivOverflowIsAnErrorNeverAWrapOrAPanic: a product whose high
// word reaches the divisor, and a quotient between MaxInt64 and 2^64, are
// ErrOverflow for both roundings.
func TestMulDivOverflowIsAnErrorNeverAWrapOrAPanic(t *testing.T) {
	for _, f := range []struct {
		name string
		fn   func(x, num, den int64) (int64, error)
	}{{"MulDivHalfEven", MulDivHalfEven}, {"MulDivFloor", MulDivFloor}} {
		for _, tc := range []struct{ x, num, den int64 }{
			{1 << 62, 4, 1},           // 2^64: high word 1 = den
			{1 << 62, 8, 2},           // 2^65: high word 2 = den
			{math.MaxInt64, 2, 1},     // 2^64 - 2: fits 64 bits, not int64
			{math.MaxInt64, 10000, 5}, // quotient 2000 * MaxInt64
		} {
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Errorf("%s(%d, %d, %d) panicked: %v", f.name, tc.x, tc.num, tc.den, p)
					}
				}()
				if got, err := f.fn(tc.x, tc.num, tc.den); !errors.Is(err, ErrOverflow) {
					t.Errorf("%s(%d, %d, %d) = %d, %v; want ErrOverflow", f.name, tc.x, tc.num, tc.den, got, err)
				}
			}()
		}
		if got, err := f.fn(math.MaxInt64, 2, 2); err != nil || got != math.MaxInt64 {
			t.Errorf("%s(MaxInt64, 2, 2) = %d, %v", f.name, got, err)
		}
	}
	if got, err := MulDivFloor(2999, 3000, 10000); err != nil || got != 899 {
		t.Errorf("MulDivFloor(2999, 3000, 10000) = %d, %v; want 899 (899.7 floored)", got, err)
	}
}
