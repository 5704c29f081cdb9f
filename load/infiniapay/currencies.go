package infiniapay

import (
	"fmt"
	"sort"
	"strings"

	"github.com/settlekit/settle/pipeline"
)

// Currencies maps the platform's currency codes to the codes Infinia uses
// for them, where they differ: every example of Infinia's documentation
// settles yuan as CNH (offshore yuan, 2 decimals), and Infinia refuses CNY
// (SYS-002). The mapping is applied to every request, trade-file name and
// row, and read back on every answer and error file; the ledger and the
// reports keep the platform's code. A currency not in the map is sent as
// it is. Amounts keep the platform currency's decimals.
type Currencies map[pipeline.Currency]string

// DefaultCurrencies is CNY -> CNH.
func DefaultCurrencies() Currencies { return Currencies{"CNY": "CNH"} }

// ParseCurrencies reads a mapping written "CNY=CNH,XXX=YYY" (spaces
// allowed); "" or "none" is no mapping. The platform side must be a
// currency settle knows, Infinia's side three upper-case letters, and no
// two platform codes may share an Infinia code (or take one another
// platform code is sent as), nor take a code settle knows with other
// decimals than its own.
func ParseCurrencies(s string) (Currencies, error) {
	m := Currencies{}
	pairs, err := mappingPairs(s, "currency mapping", "PLATFORM=INFINIA, e.g. CNY=CNH")
	if err != nil {
		return nil, err
	}
	for _, p := range pairs {
		pair, from, to := p.text, p.from, p.to
		cur, err := pipeline.ParseCurrency(from)
		if err != nil {
			return nil, fmt.Errorf("currency mapping %q: %w", pair, err)
		}
		if !isCode(to) {
			return nil, fmt.Errorf("currency mapping %q: Infinia's code %q is not three upper-case letters", pair, to)
		}
		if _, dup := m[cur]; dup {
			return nil, fmt.Errorf("currency mapping: %s mapped twice", cur)
		}
		m[cur] = to
	}
	return m, m.check()
}

// mappingPair is one FROM=TO of a mapping written "A=B,C=D", as written
// and trimmed.
type mappingPair struct{ text, from, to string }

// mappingPairs reads a mapping written "A=B,C=D" (spaces allowed; "" or
// "none": no pair) into its pairs, in order; a pair without "=" or with
// nothing before it is an error naming what and the form wanted.
func mappingPairs(s, what, want string) ([]mappingPair, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return nil, nil
	}
	var out []mappingPair
	for _, pair := range strings.Split(s, ",") {
		from, to, ok := strings.Cut(strings.TrimSpace(pair), "=")
		from, to = strings.TrimSpace(from), strings.TrimSpace(to)
		if !ok || from == "" {
			return nil, fmt.Errorf("%s %q: want %s", what, pair, want)
		}
		out = append(out, mappingPair{pair, from, to})
	}
	return out, nil
}

func isCode(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, r := range s {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

// check refuses a mapping that cannot be read back unambiguously, or
// that sends a currency as a known one of other decimals.
func (m Currencies) check() error {
	seen := map[string]pipeline.Currency{}
	for _, cur := range m.sorted() {
		code := m[cur]
		if other, dup := seen[code]; dup {
			return fmt.Errorf("currency mapping: %s and %s both map to %s", other, cur, code)
		}
		seen[code] = cur
		// Amounts go out in cur's decimals: Infinia reading them as a
		// currency of other decimals would move the money by a power
		// of ten (12.34 USD read as 12.34 yen).
		if exp, known := pipeline.Currency(code).Exponent(); known {
			if own, _ := cur.Exponent(); own != exp {
				return fmt.Errorf("currency mapping: %s (%d decimals) maps to %s (%d decimals): amounts are sent with %s's decimals", cur, own, code, exp, cur)
			}
		}
		if _, mapped := m[pipeline.Currency(code)]; code != string(cur) && pipeline.Currency(code).Valid() && !mapped {
			return fmt.Errorf("currency mapping: %s maps to %s, which is also a platform currency sent as itself", cur, code)
		}
	}
	return nil
}

func (m Currencies) sorted() []pipeline.Currency {
	out := make([]pipeline.Currency, 0, len(m))
	for c := range m {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Out returns Infinia's code for the platform's currency cur.
func (m Currencies) Out(cur pipeline.Currency) string {
	if code, ok := m[cur]; ok {
		return code
	}
	return string(cur)
}

// In returns the platform's currency for a code Infinia sent. A code the
// platform sends under another name (CNY, when CNY goes out as CNH) is an
// error: Infinia cannot have meant it.
func (m Currencies) In(code string) (pipeline.Currency, error) {
	for cur, c := range m {
		if c == code {
			return cur, nil
		}
	}
	cur, err := pipeline.ParseCurrency(code)
	if err != nil {
		return "", err
	}
	if to, mapped := m[cur]; mapped && to != code {
		return "", fmt.Errorf("currency %q: we send it to Infinia as %s", code, to)
	}
	return cur, nil
}

// String writes the mapping as ParseCurrencies reads it.
func (m Currencies) String() string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, cur := range m.sorted() {
		parts = append(parts, string(cur)+"="+m[cur])
	}
	return strings.Join(parts, ",")
}
