package payprotocol

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/settlekit/settle/pipeline"
)

// Pay Protocol writes amounts two ways (PROVIDERS.md): request amounts are
// decimal strings in major units ("12.34"); amounts in answers and
// callbacks are integer strings scaled by 10^decimals of the crypto
// currency ("12340000" for 12.34 USDT with 6 decimals, 10^18 per ETH). The
// functions here move between those and int64 minor units exactly, or fail:
// none of them ever rounds.

// MaxDecimals bounds the decimals of a crypto currency we accept (ETH has
// 18); more is taken for a malformed answer.
const MaxDecimals = 36

// maxDigits bounds the length of an amount we read.
const maxDigits = 80

// ToMinor converts an amount scaled by 10^decimals (an integer string of
// ASCII digits, as in Pay Protocol's answers) to minor units of cur. It is
// exact or an error: an amount that is not a whole number of cur's minor
// units ("1234500" with 6 decimals in USD is 1.2345, 123 cents and 0.45 of a
// cent), a negative, signed or malformed amount, an unknown currency and a
// result outside int64 are all refused. The value is taken one to one:
// which crypto amount stands for how much of cur is the caller's business.
func ToMinor(scaled string, decimals int, cur pipeline.Currency) (int64, error) {
	exp, err := exponent(cur)
	if err != nil {
		return 0, scaledError(scaled, decimals, cur, err.Error())
	}
	v, err := parseScaled(scaled, decimals)
	if err != nil {
		return 0, scaledError(scaled, decimals, cur, err.Error())
	}
	if decimals >= exp {
		var rem big.Int
		v.QuoRem(v, pow10(decimals-exp), &rem)
		if rem.Sign() != 0 {
			return 0, scaledError(scaled, decimals, cur, "not a whole number of minor units")
		}
	} else {
		v.Mul(v, pow10(exp-decimals))
	}
	if !v.IsInt64() {
		return 0, fmt.Errorf("%w: %w", scaledError(scaled, decimals, cur, "out of range"), pipeline.ErrOverflow)
	}
	return v.Int64(), nil
}

// FromMinor is the inverse of ToMinor: minor units of cur (>= 0) as an
// integer string scaled by 10^decimals. It fails when the amount cannot be
// written with that many decimals (123 USD cents with 0 decimals).
func FromMinor(minor int64, decimals int, cur pipeline.Currency) (string, error) {
	exp, err := exponent(cur)
	if err != nil {
		return "", minorError(minor, cur, err.Error())
	}
	if decimals < 0 || decimals > MaxDecimals {
		return "", minorError(minor, cur, fmt.Sprintf("decimals %d outside 0..%d", decimals, MaxDecimals))
	}
	if minor < 0 {
		return "", minorError(minor, cur, "negative")
	}
	v := big.NewInt(minor)
	if decimals >= exp {
		v.Mul(v, pow10(decimals-exp))
	} else {
		var rem big.Int
		v.QuoRem(v, pow10(exp-decimals), &rem)
		if rem.Sign() != 0 {
			return "", minorError(minor, cur, fmt.Sprintf("not a whole number of units of 10^-%d", decimals))
		}
	}
	return v.String(), nil
}

// FormatDecimal renders minor units of cur as the decimal string Pay
// Protocol wants in requests ("12.30" for 1230 USD cents). Unlike
// pipeline.FormatMinor it refuses an unknown currency rather than printing
// the bare integer, which would be read as major units.
func FormatDecimal(minor int64, cur pipeline.Currency) (string, error) {
	if _, err := exponent(cur); err != nil {
		return "", minorError(minor, cur, err.Error())
	}
	return pipeline.FormatMinor(minor, cur), nil
}

// ScaledFromDecimal converts a non-negative decimal string ("12.34") to
// the integer string scaled by 10^decimals ("12340000" for 6), exactly:
// fraction digits beyond decimals are accepted only when they are zeros.
func ScaledFromDecimal(dec string, decimals int) (string, error) {
	if decimals < 0 || decimals > MaxDecimals {
		return "", fmt.Errorf("amount %s: decimals %d outside 0..%d", strconv.Quote(clip(dec)), decimals, MaxDecimals)
	}
	whole, frac, dot := strings.Cut(dec, ".")
	if !digits(whole) || (dot && !digits(frac)) || len(dec) > maxDigits {
		return "", fmt.Errorf("amount %s: want digits, optionally a point and more digits", strconv.Quote(clip(dec)))
	}
	if len(frac) > decimals {
		if strings.Trim(frac[decimals:], "0") != "" {
			return "", fmt.Errorf("amount %s: more than %d decimals", strconv.Quote(dec), decimals)
		}
		frac = frac[:decimals]
	}
	v, _ := new(big.Int).SetString(whole+frac+strings.Repeat("0", decimals-len(frac)), 10)
	return v.String(), nil
}

// maxExponent bounds the exponent decimalNumber reads: no price needs
// more, and 10^n stays small.
const maxExponent = 64

// decimalNumber reads a non-negative decimal number written as digits,
// optionally a point and more digits, and optionally an exponent ("e" or
// "E", a sign, digits): "313.5", "313.500000", "3.135E+2", "1e3". It
// returns the digits as an integer m and the scale k, the number being
// m x 10^-k, exactly. A sign, a point without digits on both sides, an
// exponent beyond maxExponent and anything else are errors.
func decimalNumber(s string) (m *big.Int, scale int, err error) {
	bad := func(why string) (*big.Int, int, error) {
		return nil, 0, fmt.Errorf("amount %s: %s", strconv.Quote(clip(s)), why)
	}
	if len(s) > maxDigits {
		return bad(fmt.Sprintf("longer than %d characters", maxDigits))
	}
	num, e, hasExp := strings.Cut(strings.ReplaceAll(s, "E", "e"), "e")
	whole, frac, dot := strings.Cut(num, ".")
	if !digits(whole) || (dot && !digits(frac)) {
		return bad("want digits, optionally a point and more digits, optionally an exponent")
	}
	shift := 0
	if hasExp {
		sign := 1
		switch {
		case strings.HasPrefix(e, "+"):
			e = e[1:]
		case strings.HasPrefix(e, "-"):
			e, sign = e[1:], -1
		}
		n, err := strconv.Atoi(e)
		if !digits(e) || err != nil || n > maxExponent {
			return bad(fmt.Sprintf("want an exponent of at most %d", maxExponent))
		}
		shift = sign * n
	}
	m, _ = new(big.Int).SetString(whole+frac, 10)
	scale = len(frac) - shift
	if scale < 0 {
		m.Mul(m, pow10(-scale))
		scale = 0
	}
	return m, scale, nil
}

// DecimalFromScaled is the inverse of ScaledFromDecimal: an integer string
// scaled by 10^decimals as a decimal string without trailing zeros
// ("12340000" with 6 decimals is "12.34"; "0" is "0").
func DecimalFromScaled(scaled string, decimals int) (string, error) {
	v, err := parseScaled(scaled, decimals)
	if err != nil {
		return "", fmt.Errorf("amount %s: %v", strconv.Quote(clip(scaled)), err)
	}
	s := v.String()
	if decimals == 0 {
		return s, nil
	}
	if len(s) <= decimals {
		s = strings.Repeat("0", decimals-len(s)+1) + s
	}
	whole, frac := s[:len(s)-decimals], strings.TrimRight(s[len(s)-decimals:], "0")
	if frac == "" {
		return whole, nil
	}
	return whole + "." + frac, nil
}

// parseScaled reads a non-negative integer written as ASCII digits, and
// checks decimals.
func parseScaled(s string, decimals int) (*big.Int, error) {
	if decimals < 0 || decimals > MaxDecimals {
		return nil, fmt.Errorf("decimals %d outside 0..%d", decimals, MaxDecimals)
	}
	if !digits(s) || len(s) > maxDigits {
		return nil, fmt.Errorf("want an integer of at most %d ASCII digits", maxDigits)
	}
	v, _ := new(big.Int).SetString(s, 10)
	return v, nil
}

func exponent(cur pipeline.Currency) (int, error) {
	exp, ok := cur.Exponent()
	if !ok {
		return 0, fmt.Errorf("unknown currency %q", clip(string(cur)))
	}
	return exp, nil
}

// digits reports whether s is non-empty and only ASCII digits.
func digits(s string) bool {
	return s != "" && strings.TrimLeft(s, "0123456789") == ""
}

func pow10(n int) *big.Int {
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
}

func scaledError(s string, decimals int, cur pipeline.Currency, why string) error {
	return fmt.Errorf("amount %s scaled by 10^%d to %s: %s", strconv.Quote(clip(s)), decimals, clip(string(cur)), why)
}

func minorError(minor int64, cur pipeline.Currency, why string) error {
	return fmt.Errorf("amount %d minor units of %s: %s", minor, clip(string(cur)), why)
}
