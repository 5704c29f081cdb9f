package transform

import (
	"github.com/settlekit/settle/pipeline"
)

// selectIndex returns the index in rs.rules of the rule that sets the
// commission of order o on business date d (a valid date, as from
// pipeline.ParseDate).
//
// A rule matches when each of its seller_id, category and currency is empty
// or equal to the order's, and its effective_from is on or before d. Of the
// matching rules, one naming the seller beats one that does not; then one
// naming the category; then one naming the currency. Among equally specific
// rules the latest effective_from wins (there is only one: ParseRules
// rejects duplicates).
//
// When no rule matches (no default rule is effective on d; see CheckDate) the
// error is of kind pipeline.KindUsage.
//
// It looks the order up under each key it could match, from the most
// specific to the least; at most eight map lookups, fewer when the order's
// seller or category is named by no rule at all.
func (rs *Rules) selectIndex(o pipeline.Order, d pipeline.Date) (int, error) {
	sellers := [2]string{o.SellerID, ""}
	nSellers := 2
	if o.SellerID == "" || !rs.sellers[o.SellerID] {
		sellers[0], nSellers = "", 1
	}
	categories := [2]string{o.Category, ""}
	nCategories := 2
	if o.Category == "" || !rs.categories[o.Category] {
		categories[0], nCategories = "", 1
	}
	currencies := [2]pipeline.Currency{o.Currency, ""}
	nCurrencies := 2
	if o.Currency == "" {
		nCurrencies = 1
		currencies[0] = ""
	}
	for _, s := range sellers[:nSellers] {
		for _, c := range categories[:nCategories] {
			for _, cur := range currencies[:nCurrencies] {
				sp, ok := rs.index[ruleKey{s, c, cur}]
				if !ok {
					continue
				}
				if i := rs.latest(sp, d); i >= 0 {
					return i, nil
				}
			}
		}
	}
	return -1, pipeline.Errorf(pipeline.KindUsage, "select rule",
		"no rule for order %q (seller %q, category %q, currency %q): no default rule effective on %s",
		o.OrderNo, o.SellerID, o.Category, o.Currency, d)
}

// latest returns the index of the rule of sp with the latest effective_from
// on or before d, or -1 when every rule of sp starts after d.
func (rs *Rules) latest(sp span, d pipeline.Date) int {
	// Binary search for the first rule effective after d; rules of a span
	// are sorted by effective_from. Spans are usually one or two rules long.
	lo, hi := sp.lo, sp.hi
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if compareDates(rs.rules[mid].EffectiveFrom, d) <= 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == sp.lo {
		return -1
	}
	return lo - 1
}
