package transform

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

func TestCommission(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rule Rule
		base int64
		want int64
	}{
		// Percentages: base * rate_bps / 10000, rounded half to even.
		{"5% of 100.00 CNY", Rule{RateBps: 500}, 10000, 500},                    // 10000*500/10000 = 500
		{"3% of 12.34", Rule{RateBps: 300}, 1234, 37},                           // 37.02 -> 37
		{"2.5% of 0.99", Rule{RateBps: 250}, 99, 2},                             // 2.475 -> 2
		{"tie 2.5 rounds to even 2", Rule{RateBps: 100}, 250, 2},                // 250*100/10000 = 2.5 -> 2
		{"tie 3.5 rounds to even 4", Rule{RateBps: 100}, 350, 4},                // 3.5 -> 4
		{"tie 1.5 rounds to even 2", Rule{RateBps: 100}, 150, 2},                // 1.5 -> 2
		{"tie 0.5 rounds to even 0", Rule{RateBps: 100}, 50, 0},                 // 0.5 -> 0
		{"just over a tie rounds up", Rule{RateBps: 100}, 251, 3},               // 2.51 -> 3
		{"zero rate", Rule{RateBps: 0}, 10000, 0},                               // 0
		{"full rate takes the base", Rule{RateBps: 10000}, 777, 777},            // 777
		{"1 bps of 1.00", Rule{RateBps: 1}, 100, 0},                             // 0.01 -> 0
		{"1 bps of 50.00 is a tie", Rule{RateBps: 1}, 5000, 0},                  // 0.5 -> 0
		{"1 bps of 150.00 is a tie", Rule{RateBps: 1}, 15000, 2},                // 1.5 -> 2
		{"JPY zero decimals 3.5% of 1999 yen", Rule{RateBps: 350}, 1999, 70},    // 69.965 -> 70
		{"KWD 3 decimals 2.5% of 12.345", Rule{RateBps: 250}, 12345, 309},       // 308.625 -> 309
		{"KWD tie 0.5% of 0.100", Rule{RateBps: 50}, 100, 0},                    // 0.5 -> 0 (fils)
		{"KWD tie 0.5% of 0.300", Rule{RateBps: 50}, 300, 2},                    // 1.5 -> 2 (fils)
		{"JPY tie 5% of 10 yen", Rule{RateBps: 500}, 10, 0},                     // 0.5 -> 0
		{"JPY tie 5% of 30 yen", Rule{RateBps: 500}, 30, 2},                     // 1.5 -> 2
		{"JPY tie 5% of 50 yen", Rule{RateBps: 500}, 50, 2},                     // 2.5 -> 2
		{"fixed added to rate", Rule{RateBps: 300, FixedMinor: 30}, 10000, 330}, // 300 + 30
		{"fixed only", Rule{FixedMinor: 99}, 10000, 99},                         // 0 + 99
		{"fixed after rounding", Rule{RateBps: 100, FixedMinor: 1}, 250, 3},     // 2.5 -> 2, + 1 = 3
		// Minimum and maximum.
		{"minimum raises", Rule{RateBps: 100, MinMinor: 50}, 1000, 50},        // 10 < 50 -> 50
		{"minimum not reached", Rule{RateBps: 100, MinMinor: 50}, 10000, 100}, // 100 >= 50
		{"maximum caps", Rule{RateBps: 1000, MaxMinor: 2000}, 100000, 2000},   // 10000 > 2000 -> 2000
		{"maximum not reached", Rule{RateBps: 1000, MaxMinor: 2000}, 15000, 1500},
		{"max 0 is no cap", Rule{RateBps: 1000, MaxMinor: 0}, 1000000, 100000}, // 10%
		{"min equals max", Rule{RateBps: 1000, MinMinor: 70, MaxMinor: 70}, 100000, 70},
		{"fixed capped by max", Rule{RateBps: 100, FixedMinor: 500, MaxMinor: 300}, 1000, 300}, // 10+500 -> 300
		// Clamped to [0, base].
		{"minimum above base gives base", Rule{RateBps: 100, MinMinor: 50}, 30, 30},     // 50 > 30 -> 30
		{"fixed above base gives base", Rule{FixedMinor: 100}, 60, 60},                  // 100 > 60 -> 60
		{"base 0 with minimum", Rule{RateBps: 500, FixedMinor: 10, MinMinor: 20}, 0, 0}, // fully refunded
		{"huge fixed no overflow", Rule{FixedMinor: math.MaxInt64 - 5}, 10, 10},         // 0 + huge -> base
		// Large bases do not wrap: computed in 128 bits.
		{"max base full rate", Rule{RateBps: 10000}, math.MaxInt64, math.MaxInt64},
		// 9223372036854775807 * 9999 / 10000 = 9222449699651090329.4193 -> ...329
		{"max base 99.99%", Rule{RateBps: 9999}, math.MaxInt64, 9222449699651090329},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Commission(tt.rule, tt.base)
			if err != nil {
				t.Fatalf("Commission(%+v, %d): %v", tt.rule, tt.base, err)
			}
			if got != tt.want {
				t.Errorf("Commission(%+v, %d) = %d, want %d", tt.rule, tt.base, got, tt.want)
			}
		})
	}
}

func TestCommissionErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		rule     Rule
		base     int64
		kind     pipeline.Kind
		overflow bool
	}{
		// 9223372036854775807 * 100 / 10000 = 92233720368547758 (rounded), + MaxInt64 overflows.
		{"rate plus fixed overflows", Rule{RateBps: 100, FixedMinor: math.MaxInt64}, math.MaxInt64, pipeline.KindInput, true},
		// 10000 * 100 / 10000 = 100, + MaxInt64 overflows even though the base is small.
		{"small base huge fixed", Rule{RateBps: 100, FixedMinor: math.MaxInt64}, 10000, pipeline.KindInput, true},
		{"negative base", Rule{RateBps: 100}, -1, pipeline.KindInput, false},
		{"rate over 10000", Rule{RateBps: 10001}, 100, pipeline.KindUsage, false},
		{"negative rate", Rule{RateBps: -1}, 100, pipeline.KindUsage, false},
		{"negative fixed", Rule{FixedMinor: -1}, 100, pipeline.KindUsage, false},
		{"negative min", Rule{MinMinor: -1}, 100, pipeline.KindUsage, false},
		{"negative max", Rule{MaxMinor: -1}, 100, pipeline.KindUsage, false},
		{"min over max", Rule{MinMinor: 10, MaxMinor: 5}, 100, pipeline.KindUsage, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Commission(tt.rule, tt.base)
			if err == nil {
				t.Fatalf("Commission(%+v, %d) = %d, want error", tt.rule, tt.base, got)
			}
			if k := pipeline.KindOf(err); k != tt.kind {
				t.Errorf("kind %v, want %v (%v)", k, tt.kind, err)
			}
			if errors.Is(err, pipeline.ErrOverflow) != tt.overflow {
				t.Errorf("errors.Is(%v, ErrOverflow) = %v, want %v", err, !tt.overflow, tt.overflow)
			}
		})
	}
}

func TestSplitOrder(t *testing.T) {
	t.Parallel()
	rs := mustParse(t, `seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from
,,,500,,,,2024-01-01
,,CNY,500,,100,,2024-01-01
,,JPY,350,,,,2024-01-01
,,KWD,250,,,,2024-01-01
s9,,USD,1000,,,2000,2024-01-01
`)
	d := date(t, "2024-03-01")
	tests := []struct {
		name                   string
		cur                    pipeline.Currency
		seller                 string
		amount, refunded       int64
		rule                   string
		commission, sellerPart int64
	}{
		// base 10000, 5% = 500, min 100 does not bite; share 9500.
		{"no refund", "CNY", "s1", 10000, 0, "rules.csv:3", 500, 9500},
		// base 10000-2500 = 7500, 5% = 375; share 7125.
		{"partial refund", "CNY", "s1", 10000, 2500, "rules.csv:3", 375, 7125},
		// base 10000-9000 = 1000, 5% = 50 < min 100 -> 100; share 900.
		{"partial refund hits minimum", "CNY", "s1", 10000, 9000, "rules.csv:3", 100, 900},
		// base 10000-9950 = 50, 5% = 2.5 -> 2 < min 100 -> 100 > base -> 50; share 0.
		{"minimum clamped to base", "CNY", "s1", 10000, 9950, "rules.csv:3", 50, 0},
		// base 0: commission 0 and share 0 even though the minimum is 100.
		{"full refund", "CNY", "s1", 5000, 5000, "rules.csv:3", 0, 0},
		// JPY: base 1999 yen, 3.5% = 69.965 -> 70; share 1929.
		{"JPY", "JPY", "s1", 1999, 0, "rules.csv:4", 70, 1929},
		// JPY: base 2000-1000 = 1000 yen, 3.5% = 35; share 965.
		{"JPY partial refund", "JPY", "s1", 2000, 1000, "rules.csv:4", 35, 965},
		// KWD: base 12.345 KWD, 2.5% = 308.625 fils -> 309; share 12036.
		{"KWD", "KWD", "s1", 12345, 0, "rules.csv:5", 309, 12036},
		// USD falls to the default: base 250 at 5% = 12.5 -> 12 (even); share 238.
		{"default tie", "USD", "s1", 250, 0, "rules.csv:2", 12, 238},
		// s9 USD: base 100000, 10% = 10000 > max 2000 -> 2000; share 98000.
		{"seller maximum", "USD", "s9", 100000, 0, "rules.csv:6", 2000, 98000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := pipeline.Order{OrderNo: "O1", SellerID: tt.seller, Currency: tt.cur,
				Amount: tt.amount, Refunded: tt.refunded}
			s, err := SplitOrder(o, rs, d)
			if err != nil {
				t.Fatal(err)
			}
			if s.Rule != tt.rule || s.Commission != tt.commission || s.SellerShare != tt.sellerPart {
				t.Errorf("got rule %s commission %d share %d, want %s %d %d",
					s.Rule, s.Commission, s.SellerShare, tt.rule, tt.commission, tt.sellerPart)
			}
			if s.Order != o || !s.Balanced() {
				t.Errorf("split %+v does not carry the order or does not balance", s)
			}
		})
	}
}

func TestSplitOrderErrors(t *testing.T) {
	t.Parallel()
	rs := mustParse(t, `seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from
,,,500,,,,2024-01-01
`)
	d := date(t, "2024-03-01")
	// A rules file refuses a fixed fee no order could carry; the split
	// still guards its sums against one built otherwise.
	overflowing, errs := newRules([]Rule{{RateBps: 500, EffectiveFrom: date(t, "2024-01-01")},
		{Currency: "USD", RateBps: 100, FixedMinor: math.MaxInt64, EffectiveFrom: date(t, "2024-01-01")}}, "test")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	tests := []struct {
		name string
		o    pipeline.Order
		d    pipeline.Date
		kind pipeline.Kind
	}{
		{"zero amount", pipeline.Order{OrderNo: "O1", Currency: "CNY", Amount: 0}, d, pipeline.KindInput},
		{"negative refund", pipeline.Order{OrderNo: "O1", Currency: "CNY", Amount: 10, Refunded: -1}, d, pipeline.KindInput},
		{"refund over amount", pipeline.Order{OrderNo: "O1", Currency: "CNY", Amount: 10, Refunded: 11}, d, pipeline.KindInput},
		{"no rule yet", pipeline.Order{OrderNo: "O1", Currency: "CNY", Amount: 10}, date(t, "2023-12-31"), pipeline.KindUsage},
		// 10000 * 1% = 100, + MaxInt64 overflows.
		{"overflow", pipeline.Order{OrderNo: "O1", Currency: "USD", Amount: 10000}, d, pipeline.KindInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rules := rs
			if tt.name == "overflow" {
				rules = overflowing
			}
			s, err := SplitOrder(tt.o, rules, tt.d)
			if err == nil {
				t.Fatalf("SplitOrder = %+v, want error", s)
			}
			if k := pipeline.KindOf(err); k != tt.kind {
				t.Errorf("kind %v, want %v (%v)", k, tt.kind, err)
			}
		})
	}
}

func BenchmarkSplitOrder(b *testing.B) {
	rs, orders := benchRules(b, 2000)
	d := pipeline.Date{Year: 2024, Month: 6, Day: 15}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := SplitOrder(orders[i%len(orders)], rs, d); err != nil {
			b.Fatal(err)
		}
	}
}

// A seller_id or category padded by a char(n) column, where a rule names
// it trimmed, is the row's reject: it matched no rule of its own and took
// the default rate without a word. A padded value no rule names trimmed
// splits as before (the platform's ids as it spells them).
func TestSplitOrderRefusesAPaddedNameARuleNames(t *testing.T) {
	t.Parallel()
	rs := mustParse(t, `seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from
,,,800,,,,2024-01-01
s1,,,200,,,,2024-01-01
,books,,0,,,,2024-01-01
`)
	d := date(t, "2024-03-01")
	for _, tc := range []struct {
		seller, category, refused string
	}{
		{"s1      ", "", `seller_id "s1      " has leading or trailing space, and a rule names "s1"`},
		{" s1", "", `seller_id " s1" has leading or trailing space, and a rule names "s1"`},
		{"s2", "books   ", `category "books   " has leading or trailing space, and a rule names "books"`},
		{"s2      ", "toys   ", ""}, // no rule names s2 or toys: the default, as always
		{"s1", "books", ""},
	} {
		o := pipeline.Order{OrderNo: "O1", SellerID: tc.seller, Category: tc.category, Currency: "USD", Amount: 10000}
		s, err := SplitOrder(o, rs, d)
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("%q/%q: %v", tc.seller, tc.category, err)
		case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused) || pipeline.KindOf(err) != pipeline.KindInput):
			t.Errorf("%q/%q: split %+v, %v (kind %v), want a reject with %q", tc.seller, tc.category, s, err, pipeline.KindOf(err), tc.refused)
		}
	}
}
