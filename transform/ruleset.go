package transform

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/settlekit/settle/pipeline"
)

// Rules is a validated rules file, indexed so that choosing the rule of an
// order costs a few map lookups however many rules there are. It is
// immutable and safe for concurrent use.
type Rules struct {
	// rules in canonical order: seller, category, currency, then
	// effective_from ascending. The rules of one (seller, category,
	// currency) are therefore contiguous and sorted by date.
	rules      []Rule
	ids        []string // ids[i] == rules[i].ID(), computed once
	index      map[ruleKey]span
	sellers    map[string]bool // sellers named by at least one rule
	categories map[string]bool // categories named by at least one rule
	hash       string
	source     string // the file's name, as ParseRules was given it
	raw        []byte // the file as ParseRules read it
}

// File returns the name and the bytes of the file the rules were read
// from (ParseRules); empty for rules built otherwise.
func (rs *Rules) File() (name string, body []byte) { return rs.source, rs.raw }

// ruleKey is what a rule matches on, "" meaning any.
type ruleKey struct {
	seller, category string
	currency         pipeline.Currency
}

// span is rules[lo:hi], the rules of one key.
type span struct{ lo, hi int }

func keyOf(r Rule) ruleKey { return ruleKey{r.SellerID, r.Category, r.Currency} }

// compareDates orders dates chronologically (for valid dates, as produced by
// pipeline.ParseDate and pipeline.DateOf) without building a time.Time.
func compareDates(a, b pipeline.Date) int {
	if c := cmp.Compare(a.Year, b.Year); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Month, b.Month); c != 0 {
		return c
	}
	return cmp.Compare(a.Day, b.Day)
}

// compareRules is the canonical order of rules; equal means duplicate.
func compareRules(a, b Rule) int {
	if c := strings.Compare(a.SellerID, b.SellerID); c != 0 {
		return c
	}
	if c := strings.Compare(a.Category, b.Category); c != 0 {
		return c
	}
	if c := strings.Compare(string(a.Currency), string(b.Currency)); c != 0 {
		return c
	}
	return compareDates(a.EffectiveFrom, b.EffectiveFrom)
}

// newRules checks the rules as a whole (no duplicates, a default rule) and
// indexes them. Each rule must already be valid on its own.
func newRules(rules []Rule, source string) (*Rules, []error) {
	if len(rules) == 0 {
		return nil, []error{&RuleError{Source: source, Msg: "no rules after the header"}}
	}
	rules = slices.Clone(rules)
	slices.SortStableFunc(rules, compareRules)
	var errs []error
	for i := 1; i < len(rules); i++ {
		a, b := rules[i-1], rules[i]
		if compareRules(a, b) == 0 {
			first, second := min(a.Line, b.Line), max(a.Line, b.Line)
			errs = append(errs, &RuleError{Source: source, Line: second, Field: "effective_from",
				Msg: fmt.Sprintf("duplicates line %d (same seller_id, category, currency and effective_from)", first)})
		}
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b error) int {
			return cmp.Compare(a.(*RuleError).Line, b.(*RuleError).Line)
		})
		return nil, errs
	}
	rs := &Rules{
		rules:      rules,
		ids:        make([]string, len(rules)),
		index:      make(map[ruleKey]span),
		sellers:    make(map[string]bool),
		categories: make(map[string]bool),
	}
	for i, r := range rules {
		rs.ids[i] = r.ID()
		k := keyOf(r)
		s, ok := rs.index[k]
		if !ok {
			s.lo = i
		}
		s.hi = i + 1
		rs.index[k] = s
		if r.SellerID != "" {
			rs.sellers[r.SellerID] = true
		}
		if r.Category != "" {
			rs.categories[r.Category] = true
		}
	}
	if _, ok := rs.index[ruleKey{}]; !ok {
		return nil, []error{&RuleError{Source: source,
			Msg: "no default rule (a row with seller_id, category and currency all empty)"}}
	}
	rs.hash = hashRules(rules)
	return rs, nil
}

// hashRules renders the rules in canonical order, one per line with every
// string quoted (so no two rule sets render alike), and hashes that. Where
// each rule was read (Source, Line) is not part of it: reordering the file
// or renaming it keeps the hash.
func hashRules(rules []Rule) string {
	h := sha256.New()
	var b []byte
	b = append(b, "settle rules v1\n"...)
	for _, r := range rules {
		b = strconv.AppendQuote(b, r.SellerID)
		b = append(b, ',')
		b = strconv.AppendQuote(b, r.Category)
		b = append(b, ',')
		b = strconv.AppendQuote(b, string(r.Currency))
		for _, v := range []int64{r.RateBps, r.FixedMinor, r.MinMinor, r.MaxMinor} {
			b = append(b, ',')
			b = strconv.AppendInt(b, v, 10)
		}
		b = append(b, ',')
		b = append(b, r.EffectiveFrom.String()...)
		b = append(b, '\n')
		h.Write(b)
		b = b[:0]
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Hash is the hex SHA-256 of a canonical rendering of the rules' content,
// sorted by seller_id, category, currency and effective_from. Two files with
// the same rules in another row order, another file name or another
// spelling of zero ("" and "0") have the same hash. A run records it to say
// which rules produced it.
func (rs *Rules) Hash() string { return rs.hash }

// CheckDate returns a pipeline.KindUsage error when no default rule (seller_id,
// category and currency all empty) is effective on d, that is when some order
// of d could find no rule. A run calls it before settling anything.
func (rs *Rules) CheckDate(d pipeline.Date) error {
	s := rs.index[ruleKey{}]
	first := rs.rules[s.lo]
	if compareDates(first.EffectiveFrom, d) > 0 {
		return pipeline.Errorf(pipeline.KindUsage, "check rules",
			"no default rule (seller_id, category and currency all empty) effective on %s: the earliest, %s, is effective from %s",
			d, first.ID(), first.EffectiveFrom)
	}
	return nil
}
