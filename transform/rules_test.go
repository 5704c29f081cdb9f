package transform

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

const header = "seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from\n"

// mustParse parses a rules file named rules.csv or fails the test.
func mustParse(t testing.TB, text string) *Rules {
	t.Helper()
	rs, err := ParseRules(strings.NewReader(text), "rules.csv")
	if err != nil {
		t.Fatalf("ParseRules: %v", err)
	}
	return rs
}

func date(t testing.TB, s string) pipeline.Date {
	t.Helper()
	d, err := pipeline.ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestParseRules(t *testing.T) {
	t.Parallel()
	// Columns in another order, a byte order mark, quoted fields, a blank
	// line (skipped, but counted in line numbers), "" and "0" for zero.
	rs := mustParse(t, "\uFEFFeffective_from,rate_bps,seller_id,category,currency,fixed_minor,min_minor,max_minor\n"+
		"2024-01-01,500,,,,,,\n"+
		"\n"+
		`2024-02-01,250,"s,1",books,JPY,10,0,100`+"\n")
	if rs.Len() != 2 {
		t.Fatalf("Len = %d, want 2", rs.Len())
	}
	got, err := rs.Select(pipeline.Order{SellerID: "s,1", Category: "books", Currency: "JPY"}, date(t, "2024-03-01"))
	if err != nil {
		t.Fatal(err)
	}
	want := Rule{Source: "rules.csv", Line: 4, SellerID: "s,1", Category: "books", Currency: "JPY",
		RateBps: 250, FixedMinor: 10, MaxMinor: 100, EffectiveFrom: date(t, "2024-02-01")}
	if got != want {
		t.Errorf("rule = %+v, want %+v", got, want)
	}
	if got.ID() != "rules.csv:4" {
		t.Errorf("ID = %q", got.ID())
	}
}

func TestParseRulesErrors(t *testing.T) {
	t.Parallel()
	def := ",,,500,,,,2024-01-01\n" // line 2 when it follows the header
	tests := []struct {
		name string
		text string
		want []string // each must appear in the error, in this order
	}{
		{"empty file", "", []string{"rules.csv:1: empty file, want header seller_id,"}},
		{"header only", header, []string{"rules.csv: no rules after the header"}},
		{"unknown column", strings.Replace(header, "rate_bps", "rate", 1) + def,
			[]string{`rules.csv:1: field rate: unknown column "rate"`, "rules.csv:1: field rate_bps: missing column"}},
		{"missing column", strings.Replace(header, ",max_minor", "", 1) + ",,,500,,,2024-01-01\n",
			[]string{"rules.csv:1: field max_minor: missing column"}},
		{"column twice", strings.TrimSuffix(header, "\n") + ",rate_bps\n",
			[]string{"rules.csv:1: field rate_bps: column appears twice (columns 4 and 9)"}},
		{"padded column name", strings.Replace(header, ",rate_bps", ", rate_bps", 1) + def,
			[]string{`rules.csv:1: field  rate_bps: unknown column " rate_bps"`}},
		{"field count", header + def + ",,,500,,,\n", []string{"rules.csv:3: has 7 fields, header has 8"}},
		{"rate decimal", header + def + "s1,,,12.5,,,,2024-01-01\n",
			[]string{`rules.csv:3: field rate_bps: must be an integer from 0 to 10000, got "12.5"`}},
		{"rate too high", header + def + "s1,,,10001,,,,2024-01-01\n",
			[]string{`rules.csv:3: field rate_bps: must be an integer from 0 to 10000, got "10001"`}},
		{"rate negative", header + def + "s1,,,-1,,,,2024-01-01\n",
			[]string{`rules.csv:3: field rate_bps: must be an integer from 0 to 10000, got "-1"`}},
		{"rate plus sign", header + def + "s1,,,+5,,,,2024-01-01\n",
			[]string{`rules.csv:3: field rate_bps: must be an integer from 0 to 10000, got "+5"`}},
		{"rate padded", header + def + "s1,,, 5,,,,2024-01-01\n",
			[]string{`rules.csv:3: field rate_bps: must be an integer from 0 to 10000, got " 5"`}},
		{"fixed decimal", header + def + "s1,,CNY,100,1.50,,,2024-01-01\n",
			[]string{`rules.csv:3: field fixed_minor: must be a non-negative integer of minor units, got "1.50"`}},
		{"fixed negative", header + def + "s1,,CNY,100,-1,,,2024-01-01\n",
			[]string{`rules.csv:3: field fixed_minor: must be a non-negative integer of minor units, got "-1"`}},
		{"min overflows", header + def + "s1,,CNY,100,,9223372036854775808,,2024-01-01\n",
			[]string{`rules.csv:3: field min_minor: overflows int64 minor units, got "9223372036854775808"`}},
		{"fixed above any order", header + def + "s1,,CNY,100,9223372036854775000,,,2024-01-01\n",
			[]string{`rules.csv:3: field fixed_minor: 9223372036854775000 is above the largest amount an order may carry (1000000000000 minor units)`}},
		{"min above any order", header + def + "s1,,CNY,100,,1000000000001,,2024-01-01\n",
			[]string{`rules.csv:3: field min_minor: 1000000000001 is above the largest amount`}},
		{"max not a number", header + def + "s1,,CNY,100,,,ten,2024-01-01\n",
			[]string{`rules.csv:3: field max_minor: must be a non-negative integer of minor units, got "ten"`}},
		{"fixed without currency", header + def + "s1,,,100,5,,,2024-01-01\n",
			[]string{"rules.csv:3: field currency: must be set when fixed_minor, min_minor or max_minor is non-zero"}},
		{"min without currency", header + ",,,500,,1,,2024-01-01\n",
			[]string{"rules.csv:2: field currency: must be set when"}},
		{"max without currency", header + def + "s1,,,100,,,100,2024-01-01\n",
			[]string{"rules.csv:3: field currency: must be set when"}},
		{"unknown currency", header + def + "s1,,usd,100,,,,2024-01-01\n",
			[]string{`rules.csv:3: field currency: unknown currency "usd"`}},
		{"min over max", header + def + "s1,,CNY,100,,500,100,2024-01-01\n",
			[]string{"rules.csv:3: field min_minor: min_minor 500 exceeds max_minor 100"}},
		{"date missing", header + def + "s1,,,100,,,,\n",
			[]string{"rules.csv:3: field effective_from: is required (YYYY-MM-DD)"}},
		{"date invalid", header + def + "s1,,,100,,,,2024-02-30\n",
			[]string{`rules.csv:3: field effective_from: must be a valid date YYYY-MM-DD, got "2024-02-30": day out of range`}},
		{"month invalid", header + def + "s1,,,100,,,,2024-13-01\n",
			[]string{`rules.csv:3: field effective_from: must be a valid date YYYY-MM-DD, got "2024-13-01": month out of range`}},
		{"date format", header + def + "s1,,,100,,,,2024/01/01\n",
			[]string{`rules.csv:3: field effective_from: must be a valid date YYYY-MM-DD, got "2024/01/01"`}},
		{"seller padded", header + def + "s1 ,,,100,,,,2024-01-01\n",
			[]string{`rules.csv:3: field seller_id: has leading or trailing space: "s1 "`}},
		{"category padded", header + def + ",\tbooks,,100,,,,2024-01-01\n",
			[]string{`rules.csv:3: field category: has leading or trailing space: "\tbooks"`}},
		{"duplicate", header + def + "s1,,,100,,,,2024-01-01\n" + "s2,,,100,,,,2024-01-01\n" + "s1,,,200,,,,2024-01-01\n",
			[]string{"rules.csv:5: field effective_from: duplicates line 3 (same seller_id, category, currency and effective_from)"}},
		{"duplicate default", header + def + ",,,0,0,0,0,2024-01-01\n",
			[]string{"rules.csv:3: field effective_from: duplicates line 2"}},
		{"no default", header + "s1,,,100,,,,2024-01-01\n,,CNY,100,,,,2024-01-01\n",
			[]string{"rules.csv: no default rule (a row with seller_id, category and currency all empty)"}},
		{"bare quote", header + def + "s\"1,,,100,,,,2024-01-01\n",
			[]string{`rules.csv:3: invalid CSV: bare " in non-quoted-field`}},
		{"every bad line reported", header + def + "s1,,,x,,,,2024-01-01\n" + "s2,,,100,,,,2024-13-01\n",
			[]string{"rules.csv:3: field rate_bps:", "rules.csv:4: field effective_from:"}},
		{"every bad field reported", header + def + "s1,,,x,y,,,\n",
			[]string{"rules.csv:3: field rate_bps:", "rules.csv:3: field fixed_minor:", "rules.csv:3: field effective_from:"}},
		{"line numbers count multi-line fields", header + def + "\"s\n1\",,,100,,,,2024-01-01\ns2,,,x,,,,2024-01-01\n",
			[]string{"rules.csv:5: field rate_bps:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rs, err := ParseRules(strings.NewReader(tt.text), "rules.csv")
			if err == nil {
				t.Fatalf("ParseRules = %d rules, want error", rs.Len())
			}
			var re *RuleError
			if !errors.As(err, &re) {
				t.Errorf("error %T %v is not a *RuleError", err, err)
			}
			if k := pipeline.KindOf(err); k != pipeline.KindUsage {
				t.Errorf("kind %v, want KindUsage", k)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "read rules: ") {
				t.Errorf("error %q does not say what was being done", msg)
			}
			rest := msg
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error %q\ndoes not contain (after the previous) %q", msg, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestParseRulesTooManyErrors(t *testing.T) {
	t.Parallel()
	text := header + strings.Repeat("s1,,,x,,,,2024-01-01\n", 1000)
	_, err := ParseRules(strings.NewReader(text), "rules.csv")
	if err == nil {
		t.Fatal("want error")
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != maxRuleErrors+1 {
		t.Errorf("%d lines of error, want %d", n, maxRuleErrors+1)
	}
	if !strings.HasSuffix(err.Error(), "rules.csv: stopped after 20 errors") {
		t.Errorf("error does not end with the stop: %q", err.Error()[len(err.Error())-80:])
	}
}

func TestRulesHash(t *testing.T) {
	t.Parallel()
	a := mustParse(t, header+",,,500,,,,2024-01-01\ns1,,CNY,200,10,,,2024-01-01\n")
	// Same content: rows swapped, explicit zeros, another file name.
	b, err := ParseRules(strings.NewReader(header+"s1,,CNY,200,10,0,0,2024-01-01\n,,,500,0,,,2024-01-01\n"), "other.csv")
	if err != nil {
		t.Fatal(err)
	}
	if a.Hash() != b.Hash() {
		t.Errorf("same rules, different hashes %s %s", a.Hash(), b.Hash())
	}
	if len(a.Hash()) != 64 {
		t.Errorf("hash %q is not hex sha256", a.Hash())
	}
	for _, other := range []string{
		",,,501,,,,2024-01-01\ns1,,CNY,200,10,,,2024-01-01\n",                       // rate
		",,,500,,,,2024-01-02\ns1,,CNY,200,10,,,2024-01-01\n",                       // date
		",,,500,,,,2024-01-01\ns1,,CNY,200,11,,,2024-01-01\n",                       // fixed
		",,,500,,,,2024-01-01\ns1,,CNY,200,10,1,,2024-01-01\n",                      // min
		",,,500,,,,2024-01-01\ns1,,CNY,200,10,,20,2024-01-01\n",                     // max
		",,,500,,,,2024-01-01\ns1,,USD,200,10,,,2024-01-01\n",                       // currency
		",,,500,,,,2024-01-01\n,s1,CNY,200,10,,,2024-01-01\n",                       // seller vs category
		",,,500,,,,2024-01-01\ns1,,CNY,200,10,,,2024-01-01\ns1,,,1,,,,2024-01-01\n", // one more
	} {
		if c := mustParse(t, header+other); c.Hash() == a.Hash() {
			t.Errorf("different rules %q, same hash", other)
		}
	}
}

func TestCheckDate(t *testing.T) {
	t.Parallel()
	rs := mustParse(t, header+",,,500,,,,2024-03-01\n,,,400,,,,2024-06-01\ns1,,,100,,,,2020-01-01\n")
	for _, d := range []string{"2024-03-01", "2024-05-31", "2024-06-01", "2099-12-31"} {
		if err := rs.CheckDate(date(t, d)); err != nil {
			t.Errorf("CheckDate(%s): %v", d, err)
		}
	}
	// A seller's rule does not cover other sellers: only a default does.
	err := rs.CheckDate(date(t, "2024-02-29"))
	if err == nil || pipeline.KindOf(err) != pipeline.KindUsage {
		t.Fatalf("CheckDate(2024-02-29) = %v, want a KindUsage error", err)
	}
	want := "no default rule (seller_id, category and currency all empty) effective on 2024-02-29: the earliest, rules.csv:2, is effective from 2024-03-01"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}

func TestParseRulesLineNumbers(t *testing.T) {
	t.Parallel()
	// Blank lines before the header and between rows, CRLF line ends: lines
	// are those of the file as an editor shows it.
	text := strings.ReplaceAll("\n\n"+header+"\n,,,500,,,,2024-01-01\n\ns1,,,x,,,,2024-01-01\n", "\n", "\r\n")
	_, err := ParseRules(strings.NewReader(text), "rules.csv")
	if err == nil || !strings.Contains(err.Error(), "rules.csv:7: field rate_bps:") {
		t.Errorf("error %v, want it at line 7", err)
	}
	_, err = ParseRules(strings.NewReader("\n\nseller_id\n"), "rules.csv")
	if err == nil || !strings.Contains(err.Error(), "rules.csv:3: field category: missing column") {
		t.Errorf("error %v, want the header at line 3", err)
	}
	rs := mustParse(t, strings.ReplaceAll("\n"+header+"\n,,,500,,,,2024-01-01\n", "\n", "\r\n"))
	if r := rs.rules[0]; r.Line != 4 {
		t.Errorf("rule at line %d, want 4", r.Line)
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestParseRulesReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("disk on fire")
	r := io.MultiReader(strings.NewReader(header+",,,500,,,,2024-01-01\n"), failingReader{boom})
	_, err := ParseRules(r, "rules.csv")
	if !errors.Is(err, boom) || pipeline.KindOf(err) != pipeline.KindFailed {
		t.Errorf("error %v (kind %v), want the reader's error as KindFailed", err, pipeline.KindOf(err))
	}
	if err != nil && err.Error() != "read rules: rules.csv: disk on fire" {
		t.Errorf("error %q", err)
	}
}

// A max_minor above what any order may carry is no cap in effect, not a
// mistake: it is taken as written, and the commission is the rate's.
func TestParseRulesMaxAboveAnyOrder(t *testing.T) {
	t.Parallel()
	rs := mustParse(t, header+",,,500,,,,2024-01-01\n"+"s1,,CNY,100,,,9223372036854775807,2024-01-01\n")
	o := pipeline.Order{OrderNo: "o1", SellerID: "s1", Currency: "CNY", Amount: 10000}
	s, err := SplitOrder(o, rs, date(t, "2024-01-02"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Rule != "rules.csv:3" || s.Commission != 100 {
		t.Errorf("rule %s, commission %d; want rules.csv:3, 100", s.Rule, s.Commission)
	}
}
