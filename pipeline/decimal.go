package pipeline

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseMinor converts a decimal string in major units of c ("12.30" USD,
// "1200" JPY, "-0.05" USD, "0.001" KWD) to integer minor units, exactly, or
// fails. It is the inverse of FormatMinor.
//
// Accepted: an optional "-", one or more ASCII digits, and optionally "."
// followed by one to Exponent() digits ("12.3" USD is 1230; leading zeros
// are allowed, "-0" is 0). Rejected: an unknown currency; "+", spaces,
// exponents ("1e3"), "", ".5", "5.", a lone "-"; a value outside int64; and
// any digit beyond the currency's exponent, even a zero ("1.000" USD,
// "100.0" JPY): a provider that writes more decimals than ISO 4217 gives the
// currency has a different idea of its minor unit, and we would rather stop
// than guess by what factor.
func ParseMinor(s string, c Currency) (int64, error) {
	exp, ok := c.Exponent()
	if !ok {
		return 0, amountError(s, c, "unknown currency")
	}
	body, neg := strings.CutPrefix(s, "-")
	whole, frac, dot := strings.Cut(body, ".")
	switch {
	case !allDigits(whole):
		return 0, amountError(s, c, "want digits before any decimal point")
	case dot && !allDigits(frac):
		return 0, amountError(s, c, "want digits after the decimal point")
	case len(frac) > exp:
		return 0, amountError(s, c, fmt.Sprintf("more than %d decimals", exp))
	}
	limit := uint64(math.MaxInt64)
	if neg {
		limit++ // -9223372036854775808 is representable
	}
	var u uint64
	digits := whole + frac + strings.Repeat("0", exp-len(frac))
	for i := 0; i < len(digits); i++ {
		d := uint64(digits[i] - '0')
		if u > (limit-d)/10 {
			return 0, fmt.Errorf("%w: %w", amountError(s, c, "out of range"), ErrOverflow)
		}
		u = u*10 + d
	}
	if neg {
		return int64(-u), nil // two's complement: -(1<<63) wraps to MinInt64
	}
	return int64(u), nil
}

// allDigits reports whether s is non-empty and only ASCII digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// amountError says which amount was refused and why; a pathological input
// is cut so the message stays readable.
func amountError(s string, c Currency, why string) error {
	const max = 40
	if len(s) > max {
		s = s[:max] + "..."
	}
	return fmt.Errorf("amount %s in %s: %s", strconv.Quote(s), c, why)
}
