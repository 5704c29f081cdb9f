package pipeline

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Currency is an ISO 4217 alphabetic code, upper case ("CNY", "JPY").
type Currency string

// currencyExponents maps the currencies settle accepts to their minor-unit
// exponent: every currency ISO 4217 lists as in use (its list one, as of
// 2025), so that a marketplace trading in any of them settles, not only in
// the few the first marketplace used. Left out, and rejected as unknown: the
// codes that are no money a buyer pays in (funds and units of account such
// as CLF, UYI, UYW, XDR; precious metals; XTS and XXX) and the withdrawn ones
// (ANG, HRK, SLL, ZWL, ...). A currency missing here is rejected as unknown:
// we would rather hold an order than guess its decimals.
var currencyExponents = map[Currency]int{
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

// Exponent reports the number of decimal digits of the currency's minor
// unit (JPY 0, USD 2, KWD 3) and whether the currency is known.
func (c Currency) Exponent() (int, bool) {
	e, ok := currencyExponents[c]
	return e, ok
}

// Valid reports whether c is a currency settle knows.
func (c Currency) Valid() bool {
	_, ok := currencyExponents[c]
	return ok
}

// ParseCurrency returns the known currency named by s (exactly three upper
// case letters), or an error saying why not.
func ParseCurrency(s string) (Currency, error) {
	c := Currency(s)
	if !c.Valid() {
		return "", fmt.Errorf("unknown currency %q", s)
	}
	return c, nil
}

// Money is an amount in integer minor units of a currency. No float ever
// touches it.
type Money struct {
	Minor    int64
	Currency Currency
}

// String formats m with its currency's decimals, e.g. "12.34 USD", "1200 JPY".
func (m Money) String() string {
	return FormatMinor(m.Minor, m.Currency) + " " + string(m.Currency)
}

// FormatMinor renders a minor-unit amount as a decimal string with the
// currency's exponent ("-0.05" for -5 USD cents). Unknown currencies print the
// bare integer.
func FormatMinor(minor int64, c Currency) string {
	exp, ok := c.Exponent()
	if !ok || exp == 0 {
		return strconv.FormatInt(minor, 10)
	}
	neg := minor < 0
	u := uint64(minor)
	if neg {
		u = -u
	}
	digits := strconv.FormatUint(u, 10)
	if len(digits) <= exp {
		digits = strings.Repeat("0", exp-len(digits)+1) + digits
	}
	s := digits[:len(digits)-exp] + "." + digits[len(digits)-exp:]
	if neg {
		s = "-" + s
	}
	return s
}

// ErrOverflow is returned when an amount computation would leave int64.
var ErrOverflow = fmt.Errorf("amount overflows int64 minor units")

// Add returns a+b, or ErrOverflow.
func Add(a, b int64) (int64, error) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, ErrOverflow
	}
	return s, nil
}

// MulDivHalfEven returns round_half_even(x * num / den) for x >= 0, num >= 0
// and den > 0, computed in 128 bits so the product cannot wrap; ErrOverflow
// when the result does not fit int64.
func MulDivHalfEven(x, num, den int64) (int64, error) {
	q, r, err := mulDiv("MulDivHalfEven", x, num, den)
	if err != nil {
		return 0, err
	}
	// Round half to even: compare 2r with den.
	twice := 2 * r // r < den <= MaxInt64, so 2r fits in uint64
	if twice > uint64(den) || (twice == uint64(den) && q%2 == 1) {
		q++
	}
	if q > math.MaxInt64 {
		return 0, ErrOverflow
	}
	return int64(q), nil
}

// MulDivFloor returns floor(x * num / den) for x >= 0, num >= 0 and
// den > 0, as MulDivHalfEven computes it: the most a cap of num/den of x
// allows in whole minor units.
func MulDivFloor(x, num, den int64) (int64, error) {
	q, _, err := mulDiv("MulDivFloor", x, num, den)
	if err != nil {
		return 0, err
	}
	if q > math.MaxInt64 {
		return 0, ErrOverflow
	}
	return int64(q), nil
}

// mulDiv is x * num / den in 128 bits: quotient and remainder.
func mulDiv(name string, x, num, den int64) (q, r uint64, err error) {
	if x < 0 || num < 0 || den <= 0 {
		return 0, 0, fmt.Errorf("%s(%d, %d, %d): operands out of range", name, x, num, den)
	}
	hi, lo := bits.Mul64(uint64(x), uint64(num))
	if hi >= uint64(den) {
		return 0, 0, ErrOverflow
	}
	q, r = bits.Div64(hi, lo, uint64(den))
	return q, r, nil
}
