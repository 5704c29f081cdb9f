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

// TestCurrenciesOfOtherMarketplaces: a marketplace that trades in a currency
// the first one never used (Egyptian pounds, Iraqi dinars at three decimals,
// Paraguayan guaranies at none, CFP francs) settles in it; a code that is no
// money a buyer pays in (a unit of account, a metal, the test and no-currency
// codes) or one ISO 4217 withdrew stays unknown, its orders rejected.
func TestCurrenciesOfOtherMarketplaces(t *testing.T) {
	for cur, want := range map[Currency]int{"EGP": 2, "NGN": 2, "PKR": 2, "COP": 2, "RON": 2, "KES": 2,
		"IQD": 3, "LYD": 3, "PYG": 0, "RWF": 0, "XPF": 0, "GNF": 0} {
		if got, ok := cur.Exponent(); !ok || got != want {
			t.Errorf("%s exponent %d (known %v), want %d", cur, got, ok, want)
		}
	}
	for _, bad := range []string{"CLF", "UYI", "UYW", "XDR", "XAU", "XTS", "XXX", "ANG", "HRK", "SLL", "ZWL", "CNH"} {
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
		"AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "AOA": 2, "ARS": 2, "AUD": 2,
		"AWG": 2, "AZN": 2, "BAM": 2, "BBD": 2, "BDT": 2, "BGN": 2, "BHD": 3,
		"BIF": 0, "BMD": 2, "BND": 2, "BOB": 2, "BRL": 2, "BSD": 2, "BTN": 2,
		"BWP": 2, "BYN": 2, "BZD": 2, "CAD": 2, "CDF": 2, "CHF": 2, "CLP": 0,
		"CNY": 2, "COP": 2, "CRC": 2, "CUP": 2, "CVE": 2, "CZK": 2, "DJF": 0,
		"DKK": 2, "DOP": 2, "DZD": 2, "EGP": 2, "ERN": 2, "ETB": 2, "EUR": 2,
		"FJD": 2, "FKP": 2, "GBP": 2, "GEL": 2, "GHS": 2, "GIP": 2, "GMD": 2,
		"GNF": 0, "GTQ": 2, "GYD": 2, "HKD": 2, "HNL": 2, "HTG": 2, "HUF": 2,
		"IDR": 2, "ILS": 2, "INR": 2, "IQD": 3, "IRR": 2, "ISK": 0, "JMD": 2,
		"JOD": 3, "JPY": 0, "KES": 2, "KGS": 2, "KHR": 2, "KMF": 0, "KPW": 2,
		"KRW": 0, "KWD": 3, "KYD": 2, "KZT": 2, "LAK": 2, "LBP": 2, "LKR": 2,
		"LRD": 2, "LSL": 2, "LYD": 3, "MAD": 2, "MDL": 2, "MGA": 2, "MKD": 2,
		"MMK": 2, "MNT": 2, "MOP": 2, "MRU": 2, "MUR": 2, "MVR": 2, "MWK": 2,
		"MXN": 2, "MYR": 2, "MZN": 2, "NAD": 2, "NGN": 2, "NIO": 2, "NOK": 2,
		"NPR": 2, "NZD": 2, "OMR": 3, "PAB": 2, "PEN": 2, "PGK": 2, "PHP": 2,
		"PKR": 2, "PLN": 2, "PYG": 0, "QAR": 2, "RON": 2, "RSD": 2, "RUB": 2,
		"RWF": 0, "SAR": 2, "SBD": 2, "SCR": 2, "SDG": 2, "SEK": 2, "SGD": 2,
		"SHP": 2, "SLE": 2, "SOS": 2, "SRD": 2, "SSP": 2, "STN": 2, "SVC": 2,
		"SYP": 2, "SZL": 2, "THB": 2, "TJS": 2, "TMT": 2, "TND": 3, "TOP": 2,
		"TRY": 2, "TTD": 2, "TWD": 2, "TZS": 2, "UAH": 2, "UGX": 0, "USD": 2,
		"UYU": 2, "UZS": 2, "VED": 2, "VES": 2, "VND": 0, "VUV": 0, "WST": 2,
		"XAF": 0, "XCD": 2, "XCG": 2, "XOF": 0, "XPF": 0, "YER": 2, "ZAR": 2,
		"ZMW": 2, "ZWG": 2,
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

// TestMulDivRefusesOperandsOutOfRange: a negative amount or rate, or a
// zero denominator, is an error of its own, never a result: -1 times 0 is
// no 0 to pay, and a zero denominator no panic.
func TestMulDivRefusesOperandsOutOfRange(t *testing.T) {
	for _, f := range []struct {
		name string
		fn   func(x, num, den int64) (int64, error)
	}{{"MulDivHalfEven", MulDivHalfEven}, {"MulDivFloor", MulDivFloor}} {
		for _, tc := range []struct{ x, num, den int64 }{{-1, 0, 1}, {-5, 1, 1}, {0, -1, 1}, {1, 1, 0}, {1, 1, -1}} {
			got, err := f.fn(tc.x, tc.num, tc.den)
			if err == nil || errors.Is(err, ErrOverflow) || !strings.Contains(err.Error(), "operands out of range") {
				t.Errorf("%s(%d, %d, %d) = %d, %v; want operands out of range", f.name, tc.x, tc.num, tc.den, got, err)
			}
		}
	}
}

// TestSplitBalanced: a split balances only when its parts add up to the
// order's amount exactly, none negative, and no sum leaves int64. The
// ledger records no split that does not.
func TestSplitBalanced(t *testing.T) {
	split := func(amount, refunded, commission, share int64) Split {
		return Split{Order: Order{OrderNo: "A", Amount: amount, Refunded: refunded}, Commission: commission, SellerShare: share}
	}
	for _, tc := range []struct {
		s    Split
		want bool
	}{
		{split(10000, 1000, 900, 8100), true},
		{split(10000, 10000, 0, 0), true},
		{split(10000, 1000, 900, 8101), false},                 // a cent too many
		{split(10000, 1000, 900, 8099), false},                 // a cent lost
		{split(10000, 0, -100, 10100), false},                  // commission given to the seller
		{split(10000, 0, 10100, -100), false},                  // a share the seller owes
		{split(math.MinInt64, math.MaxInt64, 1, 0), false},     // refunded + commission wraps
		{split(math.MinInt64, 1, math.MaxInt64, 0), false},     // refunded + commission wraps
		{split(math.MinInt64+1, math.MaxInt64-1, 1, 1), false}, // ... + share wraps
	} {
		if got := tc.s.Balanced(); got != tc.want {
			t.Errorf("amount %d = refunded %d + commission %d + share %d: balanced %v, want %v",
				tc.s.Amount, tc.s.Refunded, tc.s.Commission, tc.s.SellerShare, got, tc.want)
		}
	}
}
