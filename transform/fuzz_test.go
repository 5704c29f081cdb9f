package transform

import (
	"encoding/csv"
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

func FuzzParseRules(f *testing.F) {
	f.Add(selectRules)
	f.Add(header + ",,,500,,,,2024-01-01\n")
	f.Add(header + ",,,500,,,,2024-01-01\ns1,,CNY,10000,9223372036854775807,5,10,2024-02-29\n")
	f.Add("\uFEFFeffective_from,rate_bps,seller_id,category,currency,fixed_minor,min_minor,max_minor\n2024-01-01,1,,,,,,\n")
	f.Add(header + `"",,"",0,0,0,0,0001-01-01` + "\n" + `"a""b",c,JPY,1,,,,9999-12-31` + "\n")
	f.Add(header + ",,,500,,,,2024-01-01\n,,,500,,,,2024-01-01\n")
	f.Add(header + "s\"1,,,100,,,,2024-01-01\n")
	f.Add(strings.ReplaceAll(header+",,,500,,,,2024-01-01\ns1,books,,1,,,,2024-01-01\n", "\n", "\r\n"))
	f.Add("\n\n" + header + "\n,,,500,,,,2024-01-01\n\n")
	f.Add("")
	f.Add(header)
	f.Fuzz(func(t *testing.T, text string) {
		rs, err := ParseRules(strings.NewReader(text), "f.csv")
		if err != nil {
			var re *RuleError
			if !errors.As(err, &re) || pipeline.KindOf(err) != pipeline.KindUsage {
				t.Fatalf("error %v is not a KindUsage *RuleError", err)
			}
			return
		}
		if rs.Len() == 0 || len(rs.Hash()) != 64 {
			t.Fatalf("parsed %d rules, hash %q", rs.Len(), rs.Hash())
		}
		// Round trip: the rules written back parse to the same rules.
		again, err := ParseRules(strings.NewReader(renderRules(rs.rules)), "g.csv")
		if err != nil {
			t.Fatalf("rendered rules do not parse: %v\n%s", err, renderRules(rs.rules))
		}
		if again.Hash() != rs.Hash() || again.Len() != rs.Len() {
			t.Fatalf("round trip changed the rules")
		}
		for i, r := range rs.rules {
			a := again.rules[i]
			a.Source, a.Line = r.Source, r.Line
			if a != r {
				t.Fatalf("round trip changed %+v into %+v", r, again.rules[i])
			}
		}
		for _, r := range rs.rules[:min(len(rs.rules), 50)] {
			checkSelectOn(t, rs, r)
		}
	})
}

// checkSelectOn selects for an order that r matches, on the date r starts.
func checkSelectOn(t *testing.T, rs *Rules, r Rule) {
	o := pipeline.Order{OrderNo: "F1", SellerID: r.SellerID, Category: r.Category,
		Currency: r.Currency, Amount: 12345, Refunded: 45}
	if o.Currency == "" {
		o.Currency = "CNY"
	}
	if o.SellerID == "" {
		o.SellerID = "fuzz-seller"
	}
	d := r.EffectiveFrom
	got, err := rs.Select(o, d)
	if err != nil {
		t.Fatalf("Select for an order rule %s matches: %v", r.ID(), err)
	}
	if want := naiveSelect(rs.rules, o, d); got != want {
		t.Fatalf("Select = %s, naive %s", got.ID(), want.ID())
	}
	if (rs.CheckDate(d) == nil) != (naiveSelect(rs.rules, pipeline.Order{}, d) != Rule{}) {
		t.Fatalf("CheckDate(%s) = %v disagrees with the rules", d, rs.CheckDate(d))
	}
	s, err := SplitOrder(o, rs, d)
	if err != nil {
		if errors.Is(err, pipeline.ErrOverflow) {
			return
		}
		t.Fatalf("SplitOrder: %v", err)
	}
	if !s.Balanced() || s.Commission > o.Amount-o.Refunded || s.Rule != got.ID() {
		t.Fatalf("split %+v", s)
	}
}

// renderRules writes rules as a rules file.
func renderRules(rules []Rule) string {
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.Write(columnNames[:])
	for _, r := range rules {
		w.Write([]string{r.SellerID, r.Category, string(r.Currency),
			strconv.FormatInt(r.RateBps, 10), strconv.FormatInt(r.FixedMinor, 10),
			strconv.FormatInt(r.MinMinor, 10), strconv.FormatInt(r.MaxMinor, 10),
			r.EffectiveFrom.String()})
	}
	w.Flush()
	return b.String()
}

func FuzzCommission(f *testing.F) {
	f.Add(int64(250), int64(0), int64(100), int64(0), int64(0), int64(0))
	f.Add(int64(350), int64(0), int64(100), int64(0), int64(0), int64(0))
	f.Add(int64(10000), int64(9950), int64(500), int64(0), int64(100), int64(0))
	f.Add(int64(100000), int64(0), int64(1000), int64(30), int64(0), int64(2000))
	f.Add(int64(math.MaxInt64), int64(0), int64(9999), int64(0), int64(0), int64(0))
	f.Add(int64(math.MaxInt64), int64(1), int64(10000), int64(math.MaxInt64), int64(0), int64(0))
	f.Add(int64(5000), int64(5000), int64(500), int64(10), int64(20), int64(0))
	f.Add(int64(-1), int64(0), int64(10001), int64(-1), int64(3), int64(2))
	f.Fuzz(func(t *testing.T, amount, refunded, rate, fixed, minC, maxC int64) {
		r := Rule{Source: "f.csv", Line: 2, Currency: "CNY", RateBps: rate,
			FixedMinor: fixed, MinMinor: minC, MaxMinor: maxC, EffectiveFrom: pipeline.Date{Year: 2024, Month: 1, Day: 1}}
		ruleOK := checkRule(r) == nil
		base := amount - refunded
		orderOK := amount > 0 && refunded >= 0 && refunded <= amount

		if orderOK {
			want, overflow := refCommission(r, base)
			got, err := Commission(r, base)
			switch {
			case !ruleOK:
				if pipeline.KindOf(err) != pipeline.KindUsage {
					t.Fatalf("invalid rule %+v: %v", r, err)
				}
			case overflow:
				if !errors.Is(err, pipeline.ErrOverflow) {
					t.Fatalf("Commission(%+v, %d) = %d, %v; want overflow", r, base, got, err)
				}
			case err != nil || got != want:
				t.Fatalf("Commission(%+v, %d) = %d, %v; want %d", r, base, got, err, want)
			case got < 0 || got > base:
				t.Fatalf("commission %d outside [0, %d]", got, base)
			}
		}
		if !ruleOK {
			return
		}
		def := Rule{Source: "f.csv", Line: 3, EffectiveFrom: r.EffectiveFrom}
		rs, errs := newRules([]Rule{r, def}, "f.csv")
		if errs != nil {
			t.Fatal(errs)
		}
		o := pipeline.Order{OrderNo: "F1", SellerID: "s", Currency: "CNY", Amount: amount, Refunded: refunded}
		s, err := SplitOrder(o, rs, pipeline.Date{Year: 2024, Month: 6, Day: 1})
		switch {
		case !orderOK:
			if err == nil {
				t.Fatalf("SplitOrder accepted amount %d refunded %d", amount, refunded)
			}
		case err != nil:
			if !errors.Is(err, pipeline.ErrOverflow) {
				t.Fatalf("SplitOrder: %v", err)
			}
		case !s.Balanced() || s.Commission < 0 || s.Commission > base || s.Rule != "f.csv:2":
			t.Fatalf("split %+v", s)
		}
	})
}

// refCommission is Commission in big integers, reporting overflow of the
// rate-plus-fixed sum.
func refCommission(r Rule, base int64) (int64, bool) {
	num := new(big.Int).Mul(big.NewInt(base), big.NewInt(r.RateBps))
	q, rem := new(big.Int).QuoRem(num, big.NewInt(10000), new(big.Int))
	twice := new(big.Int).Mul(rem, big.NewInt(2))
	if c := twice.Cmp(big.NewInt(10000)); c > 0 || (c == 0 && q.Bit(0) == 1) {
		q.Add(q, big.NewInt(1))
	}
	q.Add(q, big.NewInt(r.FixedMinor))
	if !q.IsInt64() {
		return 0, true
	}
	c := max(q.Int64(), r.MinMinor)
	if r.MaxMinor > 0 {
		c = min(c, r.MaxMinor)
	}
	return min(max(c, 0), base), false
}

// FuzzCommissionStepsWithTheBase: one more minor unit of base raises the
// commission by 0 or 1, so neither the commission nor the seller's share
// ever falls as the base grows. A late refund's clawback relies on it
// (pipeline's clawback): split again with a larger refund, the order gives
// back from both parts, never to either.
func FuzzCommissionStepsWithTheBase(f *testing.F) {
	f.Add(int64(25), int64(5000), int64(0), int64(0), int64(0))
	f.Add(int64(99), int64(10000), int64(3), int64(50), int64(60))
	f.Add(int64(MaxAmountMinor-1), int64(9999), int64(MaxAmountMinor), int64(0), int64(0))
	f.Add(int64(0), int64(1), int64(0), int64(1), int64(1))
	f.Add(int64(99), int64(100), int64(3), int64(0), int64(0))
	f.Fuzz(func(t *testing.T, base, rate, fixed, minC, maxC int64) {
		r := Rule{Source: "f.csv", Line: 2, Currency: "USD", RateBps: rate, FixedMinor: fixed, MinMinor: minC, MaxMinor: maxC}
		if checkRule(r) != nil || base < 0 || base >= MaxAmountMinor || fixed > MaxAmountMinor || minC > MaxAmountMinor {
			t.Skip()
		}
		c0, err0 := Commission(r, base)
		c1, err1 := Commission(r, base+1)
		if err0 != nil || err1 != nil {
			t.Fatal(err0, err1)
		}
		if d := c1 - c0; d != 0 && d != 1 {
			t.Fatalf("rule %+v: commission %d on %d, %d on %d", r, c0, base, c1, base+1)
		}
	})
}

// FuzzSourceAmount checks the integer columns of the platform's rows
// (amount_minor, refunded_minor) against math/big: a value is taken only
// when written as PostgreSQL writes an integer (no "+", no leading zeros,
// no "-0", no space, ASCII digits) and within int64, and is then exactly
// that integer; anything else is an error naming the column.
func FuzzSourceAmount(f *testing.F) {
	for _, s := range []string{"100", "0", "-5", "+5", "-0", "0100", " 5", "5 ", "٣", "0x10", "1e3", "1e400", "NaN", "Inf",
		"9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809", "", "100.00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := amount("amount_minor", &s)
		want, ok := new(big.Int).SetString(s, 10)
		ok = ok && want.IsInt64() && want.String() == s
		switch {
		case ok && (err != nil || v != want.Int64()):
			t.Fatalf("amount(%q) = %d, %v; want %v", s, v, err, want)
		case !ok && err == nil:
			t.Fatalf("amount(%q) = %d, want an error", s, v)
		case !ok && !strings.HasPrefix(err.Error(), "amount_minor "):
			t.Fatalf("amount(%q): %v does not name the column", s, err)
		}
	})
}
