package transform

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/settlekit/settle/pipeline"
)

// Rule is one row of the rules file. Amounts are minor units of Currency.
type Rule struct {
	Source        string            // file name given to ParseRules
	Line          int               // 1-based line number in the file (header is line 1)
	SellerID      string            // "" = any
	Category      string            // "" = any
	Currency      pipeline.Currency // "" = any
	RateBps       int64             // 0..10000
	FixedMinor    int64             // >= 0, minor units of Currency
	MinMinor      int64             // >= 0
	MaxMinor      int64             // 0 = no cap
	EffectiveFrom pipeline.Date
}

// ID identifies the rule by where it was read, e.g. "rules.csv:4". It is
// what a Split records as the rule that produced it.
func (r Rule) ID() string { return r.Source + ":" + strconv.Itoa(r.Line) }

// RuleError is an invalid rules file, located like a csv.ParseError. Line is
// 0 for a problem with the file as a whole (no default rule); Field is empty
// for a problem with a whole line.
type RuleError struct {
	Source string
	Line   int
	Field  string
	Msg    string
}

func (e *RuleError) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	if e.Field != "" {
		b.WriteString(": field " + e.Field)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// The columns of the rules file, in the order of DESIGN section 4.
const (
	colSeller = iota
	colCategory
	colCurrency
	colRate
	colFixed
	colMin
	colMax
	colFrom
	numCols
)

var columnNames = [numCols]string{
	"seller_id", "category", "currency", "rate_bps",
	"fixed_minor", "min_minor", "max_minor", "effective_from",
}

// maxRuleErrors bounds how many errors one ParseRules call reports, so a
// file that is not a rules file at all does not produce a wall of text.
const maxRuleErrors = 20

// ParseRules reads a rules file: CSV with the header
// seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from
// (columns in any order, each exactly once). source names the file in rule
// IDs and error messages.
//
// Every invalid line is reported (up to 20), each as a *RuleError naming the
// line and field, joined and wrapped as a pipeline.KindUsage error with the
// operation "read rules". The file as a whole must hold at least one default
// rule (seller_id, category and currency all empty) and no two rules equal in
// seller_id, category, currency and effective_from.
//
// The Rules keep the file as read (File): the rule IDs name its lines.
func ParseRules(r io.Reader, source string) (*Rules, error) {
	var raw bytes.Buffer
	rules, errs, err := parseRuleRows(io.TeeReader(r, &raw), source)
	if err != nil {
		return nil, pipeline.E(pipeline.KindFailed, "read rules", fmt.Errorf("%s: %w", source, err))
	}
	if len(errs) == 0 {
		var rs *Rules
		rs, errs = newRules(rules, source)
		if len(errs) == 0 {
			rs.source, rs.raw = source, raw.Bytes()
			return rs, nil
		}
	}
	return nil, pipeline.E(pipeline.KindUsage, "read rules", errors.Join(errs...))
}

// parseRuleRows reads the header and every row, checking each row on its
// own. It returns the valid rules, the problems of the file (*RuleError),
// and an error of the reader itself, if any.
func parseRuleRows(r io.Reader, source string) ([]Rule, []error, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // checked here, to say which line and how
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, []error{&RuleError{Source: source, Line: 1,
			Msg: "empty file, want header " + strings.Join(columnNames[:], ",")}}, nil
	}
	if err != nil {
		errs, ioErr := csvError(source, err)
		return nil, errs, ioErr
	}
	headerLine, _ := cr.FieldPos(0)
	pos, errs := parseHeader(header, source, headerLine)
	if len(errs) > 0 {
		return nil, errs, nil
	}
	var rules []Rule
	for {
		if len(errs) >= maxRuleErrors {
			errs = append(errs[:maxRuleErrors], &RuleError{Source: source,
				Msg: fmt.Sprintf("stopped after %d errors", maxRuleErrors)})
			break
		}
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			// A CSV syntax error leaves the reader's position uncertain:
			// stop here rather than guess at the rest.
			csvErrs, ioErr := csvError(source, err)
			return nil, append(errs, csvErrs...), ioErr
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != numCols {
			errs = append(errs, &RuleError{Source: source, Line: line,
				Msg: fmt.Sprintf("has %d fields, header has %d", len(rec), numCols)})
			continue
		}
		var fields [numCols]string
		for c := range fields {
			fields[c] = rec[pos[c]]
		}
		rule, rowErrs := parseRule(fields, source, line)
		errs = append(errs, rowErrs...)
		if len(rowErrs) == 0 {
			rules = append(rules, rule)
		}
	}
	return rules, errs, nil
}

// csvError sorts an error of the CSV reader: a syntax error is a problem of
// the file, at its line; anything else is the reader's own failure.
func csvError(source string, err error) ([]error, error) {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return []error{&RuleError{Source: source, Line: pe.Line, Msg: "invalid CSV: " + pe.Err.Error()}}, nil
	}
	return nil, err
}

// parseHeader maps each column to its position in the file's records.
func parseHeader(header []string, source string, line int) (pos [numCols]int, errs []error) {
	seen := make(map[string]int, len(header))
	for i, name := range header {
		if i == 0 {
			// A spreadsheet's UTF-8 byte order mark is an encoding
			// artifact, not part of the column name.
			name = strings.TrimPrefix(name, "\uFEFF")
		}
		c := columnIndex(name)
		switch {
		case c < 0:
			errs = append(errs, &RuleError{Source: source, Line: line, Field: name,
				Msg: fmt.Sprintf("unknown column %q, want %s", name, strings.Join(columnNames[:], ","))})
		case seen[name] > 0:
			errs = append(errs, &RuleError{Source: source, Line: line, Field: name,
				Msg: fmt.Sprintf("column appears twice (columns %d and %d)", seen[name], i+1)})
		default:
			pos[c] = i
		}
		seen[name] = i + 1
	}
	for _, name := range columnNames {
		if seen[name] == 0 {
			errs = append(errs, &RuleError{Source: source, Line: line, Field: name,
				Msg: "missing column"})
		}
	}
	return pos, errs
}

func columnIndex(name string) int {
	for c, n := range columnNames {
		if n == name {
			return c
		}
	}
	return -1
}

// parseRule checks one row on its own; fields are in column order.
func parseRule(f [numCols]string, source string, line int) (Rule, []error) {
	r := Rule{Source: source, Line: line}
	var errs []error
	fail := func(col int, format string, args ...any) {
		errs = append(errs, &RuleError{Source: source, Line: line,
			Field: columnNames[col], Msg: fmt.Sprintf(format, args...)})
	}
	for _, c := range []int{colSeller, colCategory} {
		if s := f[c]; s != strings.TrimSpace(s) {
			// A padded name would silently never match an order.
			fail(c, "has leading or trailing space: %q", s)
		}
	}
	r.SellerID, r.Category = f[colSeller], f[colCategory]
	if s := f[colCurrency]; s != "" {
		c, err := pipeline.ParseCurrency(s)
		if err != nil {
			fail(colCurrency, "unknown currency %q", s)
		}
		r.Currency = c
	}
	var ok [numCols]bool
	r.RateBps, ok[colRate] = parseAmount(f[colRate])
	if !ok[colRate] || r.RateBps > 10000 {
		fail(colRate, "must be an integer from 0 to 10000, got %q", f[colRate])
	}
	for _, c := range []int{colFixed, colMin, colMax} {
		v, good := parseAmount(f[c])
		switch {
		case good:
		case isDigits(f[c]):
			fail(c, "overflows int64 minor units, got %q", f[c])
		default:
			fail(c, "must be a non-negative integer of minor units, got %q", f[c])
		}
		if good && c != colMax && v > MaxAmountMinor {
			// No order could carry it (a typo, or an amount in major
			// units): refused here (exit 2), not as every order of the
			// rule rejected for a commission that overflows (exit 3).
			fail(c, "%d is above the largest amount an order may carry (%d minor units)", v, int64(MaxAmountMinor))
		}
		ok[c] = good
		switch c {
		case colFixed:
			r.FixedMinor = v
		case colMin:
			r.MinMinor = v
		case colMax:
			r.MaxMinor = v
		}
	}
	if (r.FixedMinor != 0 || r.MinMinor != 0 || r.MaxMinor != 0) && f[colCurrency] == "" {
		fail(colCurrency, "must be set when fixed_minor, min_minor or max_minor is non-zero (they are minor units of a currency)")
	}
	if ok[colMin] && ok[colMax] && r.MaxMinor > 0 && r.MinMinor > r.MaxMinor {
		fail(colMin, "min_minor %d exceeds max_minor %d", r.MinMinor, r.MaxMinor)
	}
	if f[colFrom] == "" {
		fail(colFrom, "is required (YYYY-MM-DD)")
	} else if d, err := pipeline.ParseDate(f[colFrom]); err != nil {
		// A date in the form but not in the calendar says which part is
		// wrong ("2024-02-30": day out of range), else one would look for
		// what is wrong with its form.
		why := ""
		if _, after, ok := strings.Cut(err.Error(), ": "); ok && strings.HasSuffix(after, "out of range") {
			why = ": " + after
		}
		fail(colFrom, "must be a valid date YYYY-MM-DD, got %q%s", f[colFrom], why)
	} else {
		r.EffectiveFrom = d
	}
	return r, errs
}

// parseAmount parses a non-negative decimal integer made of ASCII digits
// only (no sign, no spaces, no decimals) that fits int64; "" is 0.
func parseAmount(s string) (int64, bool) {
	if s == "" {
		return 0, true
	}
	if !isDigits(s) {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// isDigits reports whether s is one or more ASCII digits.
func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
