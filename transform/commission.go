package transform

import (
	"fmt"
	"strings"

	"github.com/settlekit/settle/pipeline"
)

// Commission returns the platform's commission under rule r on base minor
// units (the order's amount less its refunds, >= 0):
//
//	round_half_even(base * r.RateBps / 10000) + r.FixedMinor,
//	raised to r.MinMinor, lowered to r.MaxMinor when that is > 0,
//	then kept within [0, base].
//
// The result is never negative and never more than base, so the seller's
// share, base - commission, is never negative either. A sum that would leave
// int64 is an error wrapping pipeline.ErrOverflow (kind pipeline.KindInput),
// never a wrapped-around amount; a rule no rules file could hold (rate over
// 10000, negative amounts, min over max) is an error of kind
// pipeline.KindUsage.
func Commission(r Rule, base int64) (int64, error) {
	if err := checkRule(r); err != nil {
		return 0, pipeline.E(pipeline.KindUsage, "commission", err)
	}
	if base < 0 {
		return 0, pipeline.Errorf(pipeline.KindInput, "commission",
			"base %d is negative (rule %s)", base, r.ID())
	}
	c, err := pipeline.MulDivHalfEven(base, r.RateBps, 10000)
	if err == nil {
		c, err = pipeline.Add(c, r.FixedMinor)
	}
	if err != nil {
		return 0, pipeline.E(pipeline.KindInput, "commission",
			fmt.Errorf("base %d, rule %s: %w", base, r.ID(), err))
	}
	c = max(c, r.MinMinor)
	if r.MaxMinor > 0 {
		c = min(c, r.MaxMinor)
	}
	return min(max(c, 0), base), nil
}

// checkRule checks what ParseRules guarantees, for rules built by hand.
func checkRule(r Rule) error {
	switch {
	case r.RateBps < 0 || r.RateBps > 10000:
		return fmt.Errorf("rule %s: rate_bps %d is not in 0..10000", r.ID(), r.RateBps)
	case r.FixedMinor < 0 || r.MinMinor < 0 || r.MaxMinor < 0:
		return fmt.Errorf("rule %s: negative fixed_minor, min_minor or max_minor", r.ID())
	case r.MaxMinor > 0 && r.MinMinor > r.MaxMinor:
		return fmt.Errorf("rule %s: min_minor %d exceeds max_minor %d", r.ID(), r.MinMinor, r.MaxMinor)
	}
	return nil
}

// SplitOrder computes the split of order o on business date d: the rule rs
// selects for it, the commission on base = Amount - Refunded, and the
// seller's share, base - commission. A fully refunded order (base 0) has
// commission 0 and share 0.
//
// The returned split always satisfies Balanced (Amount = Refunded +
// Commission + SellerShare, none negative); an order that would not is an
// error, as is an order whose amounts a validated Order cannot have
// (Amount <= 0, Refunded < 0 or > Amount). Errors carry the order number.
func SplitOrder(o pipeline.Order, rs *Rules, d pipeline.Date) (pipeline.Split, error) {
	if o.Amount <= 0 || o.Refunded < 0 || o.Refunded > o.Amount {
		return pipeline.Split{}, pipeline.Errorf(pipeline.KindInput, "split order "+o.OrderNo,
			"amount %d, refunded %d: want 0 <= refunded <= amount, amount > 0", o.Amount, o.Refunded)
	}
	base := o.Amount - o.Refunded // cannot overflow: 0 <= Refunded <= Amount
	if err := rs.paddedName(o); err != nil {
		return pipeline.Split{}, err
	}
	i, err := rs.selectIndex(o, d)
	if err != nil {
		return pipeline.Split{}, err
	}
	c, err := Commission(rs.rules[i], base)
	if err != nil {
		return pipeline.Split{}, fmt.Errorf("split order %s: %w", o.OrderNo, err)
	}
	s := pipeline.Split{Order: o, Rule: rs.ids[i], Commission: c, SellerShare: base - c}
	if !s.Balanced() {
		// Unreachable while Commission keeps within [0, base]; checked
		// because a split that does not balance must never be paid.
		return pipeline.Split{}, pipeline.Errorf(pipeline.KindFailed, "split order "+o.OrderNo,
			"unbalanced split: amount %d != refunded %d + commission %d + share %d",
			o.Amount, o.Refunded, c, s.SellerShare)
	}
	return s, nil
}

// paddedName refuses (KindInput: the row's reject) an order whose seller_id
// or category has leading or trailing space where a rule names it without:
// a char(n) column pads its values, the rules file refuses a padded name,
// and the padded value matched no rule of its seller or category, so the
// order took a less specific rule's rate without a word (found trying
// settle against a platform schema of its own). A padded value that no
// rule names trimmed splits as it always did: a platform's ids are taken
// as it spells them, the same in every run, its sellers' carried balances
// among them (rejecting every padded id stranded those once the query was
// trimmed, found by a review).
func (rs *Rules) paddedName(o pipeline.Order) error {
	for _, f := range []struct {
		col, v string
		named  map[string]bool
	}{{"seller_id", o.SellerID, rs.sellers}, {"category", o.Category, rs.categories}} {
		if t := strings.TrimSpace(f.v); t != f.v && f.named[t] {
			return pipeline.Errorf(pipeline.KindInput, "split order "+o.OrderNo,
				"%s %q has leading or trailing space, and a rule names %q: return it trimmed (rtrim(col), or col::text of a char(n) column)", f.col, f.v, t)
		}
	}
	return nil
}
