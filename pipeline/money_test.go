package pipeline

import (
	"errors"
	"math"
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

func TestAddSubOverflow(t *testing.T) {
	if _, err := Add(math.MaxInt64, 1); !errors.Is(err, ErrOverflow) {
		t.Error("MaxInt64+1 did not overflow")
	}
	if _, err := Add(math.MinInt64, -1); !errors.Is(err, ErrOverflow) {
		t.Error("MinInt64-1 did not overflow")
	}
	if _, err := Sub(0, math.MinInt64); !errors.Is(err, ErrOverflow) {
		t.Error("0-MinInt64 did not overflow")
	}
	if v, err := Sub(-1, math.MinInt64); err != nil || v != math.MaxInt64 {
		t.Errorf("-1-MinInt64 = %d, %v", v, err)
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
