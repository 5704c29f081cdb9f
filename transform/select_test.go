package transform

import (
	"fmt"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

// selectRules has one rule of each shape; the line numbers are in the
// comments of TestSelect.
const selectRules = header +
	",,,500,,,,2024-01-01\n" + // 2: default 5%
	",,,400,,,,2024-06-01\n" + // 3: default 4% from June
	",books,,300,,,,2024-01-01\n" + // 4: category books
	",,JPY,450,,,,2024-01-01\n" + // 5: currency JPY
	"s1,,,200,,,,2024-01-01\n" + // 6: seller s1
	"s1,books,,100,,,,2024-01-01\n" + // 7: seller s1, category books
	"s1,,CNY,250,,,,2024-01-01\n" + // 8: seller s1, currency CNY
	",books,CNY,350,10,,,2024-01-01\n" + // 9: category books, currency CNY
	"s2,,,150,,,,2024-07-01\n" + // 10: seller s2, not effective before July
	"s1,books,,50,,,,2024-05-01\n" + // 11: seller s1, books, from May
	"s1,books,CNY,25,,,,2024-08-01\n" // 12: seller s1, books, CNY from August

func TestSelect(t *testing.T) {
	t.Parallel()
	rs := mustParse(t, selectRules)
	tests := []struct {
		seller, category string
		currency         pipeline.Currency
		date             string
		want             int // line
	}{
		{"s9", "toys", "USD", "2024-03-01", 2},  // only the default matches
		{"s9", "toys", "USD", "2024-05-31", 2},  // the June default is not yet effective
		{"s9", "toys", "USD", "2024-06-01", 3},  // effective on its own date
		{"s9", "toys", "USD", "2030-01-01", 3},  // the latest default
		{"s9", "books", "USD", "2024-03-01", 4}, // category beats default
		{"s9", "books", "JPY", "2024-03-01", 4}, // category beats currency
		{"s9", "toys", "JPY", "2024-03-01", 5},  // currency beats default
		{"s9", "books", "CNY", "2024-03-01", 9}, // category+currency beats category
		{"s1", "toys", "USD", "2024-03-01", 6},  // seller beats default
		{"s1", "books", "JPY", "2024-03-01", 7}, // seller+category beats seller, category, currency
		{"s1", "books", "CNY", "2024-03-01", 7}, // seller+category beats seller+currency and category+currency
		{"s1", "books", "CNY", "2024-05-01", 11},
		{"s1", "books", "CNY", "2024-07-31", 11},
		{"s1", "books", "CNY", "2024-08-01", 12}, // the most specific of all, once effective
		{"s1", "toys", "CNY", "2024-03-01", 8},   // seller+currency beats seller
		{"s1", "toys", "JPY", "2024-03-01", 6},   // seller beats currency
		{"s1", "", "USD", "2024-03-01", 6},       // an order without category
		{"s2", "toys", "USD", "2024-06-30", 3},   // s2's rule not yet effective
		{"s2", "toys", "USD", "2024-07-01", 10},
		{"s2", "books", "CNY", "2024-07-01", 10}, // seller beats category+currency
		{"", "books", "USD", "2024-03-01", 4},    // no seller: nothing seller-specific
	}
	for _, tt := range tests {
		o := pipeline.Order{SellerID: tt.seller, Category: tt.category, Currency: tt.currency}
		r, err := rs.Select(o, date(t, tt.date))
		if err != nil {
			t.Errorf("Select(%s/%s/%s, %s): %v", tt.seller, tt.category, tt.currency, tt.date, err)
			continue
		}
		if r.Line != tt.want {
			t.Errorf("Select(%s/%s/%s, %s) = line %d, want %d", tt.seller, tt.category, tt.currency, tt.date, r.Line, tt.want)
		}
		if naive := naiveSelect(rs.rules, o, date(t, tt.date)); naive != r {
			t.Errorf("naive selection %+v differs from %+v", naive, r)
		}
	}
	_, err := rs.Select(pipeline.Order{OrderNo: "O7", SellerID: "s1", Currency: "CNY"}, date(t, "2023-12-31"))
	if err == nil || pipeline.KindOf(err) != pipeline.KindUsage ||
		!strings.Contains(err.Error(), "no default rule effective on 2023-12-31") {
		t.Errorf("Select before every rule = %v, want a KindUsage error naming the date", err)
	}
}

// naiveSelect is the definition of Select, scanning every rule; the zero
// Rule when none matches.
func naiveSelect(rules []Rule, o pipeline.Order, d pipeline.Date) Rule {
	var best Rule
	found := false
	rank := func(r Rule) [3]bool { return [3]bool{r.SellerID != "", r.Category != "", r.Currency != ""} }
	better := func(a, b Rule) bool { // a more specific than b, or as specific and later
		ra, rb := rank(a), rank(b)
		for i := range ra {
			if ra[i] != rb[i] {
				return ra[i]
			}
		}
		return compareDates(a.EffectiveFrom, b.EffectiveFrom) > 0
	}
	for _, r := range rules {
		if (r.SellerID == "" || r.SellerID == o.SellerID) &&
			(r.Category == "" || r.Category == o.Category) &&
			(r.Currency == "" || r.Currency == o.Currency) &&
			compareDates(r.EffectiveFrom, d) <= 0 &&
			(!found || better(r, best)) {
			best, found = r, true
		}
	}
	return best
}

// benchRules builds n rules (a quarter each per seller, per seller and
// category, per category and currency, and dated defaults) and orders that
// hit all kinds, most of them sellers without their own rule.
func benchRules(tb testing.TB, n int) (*Rules, []pipeline.Order) {
	tb.Helper()
	currencies := []pipeline.Currency{"CNY", "USD", "JPY", "KWD"}
	var b strings.Builder
	b.WriteString(header)
	for i := range n {
		j := i / 4
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "seller%d,,,%d,,,,2024-01-01\n", i, i%10000)
		case 1:
			fmt.Fprintf(&b, "seller%d,cat%d,,%d,,,,2024-0%d-01\n", i-1, i%50, i%10000, 1+i%9)
		case 2:
			// (j%50, j%4, j%28) repeat only every 700 values of j.
			fmt.Fprintf(&b, ",cat%d,%s,%d,%d,,,2024-01-%02d\n", j%50, currencies[j%4], i%10000, i%100, 1+j%28)
		case 3:
			fmt.Fprintf(&b, ",,,%d,,,,%d-01-01\n", i%10000, 1000+i)
		}
	}
	rs := mustParse(tb, b.String())
	orders := make([]pipeline.Order, 4096)
	for i := range orders {
		orders[i] = pipeline.Order{
			OrderNo:  fmt.Sprintf("O%d", i),
			SellerID: fmt.Sprintf("seller%d", (i*7)%(4*n)), // a quarter have rules
			Category: fmt.Sprintf("cat%d", i%60),           // most categories have rules
			Currency: currencies[i%len(currencies)],
			Amount:   int64(1000 + i),
		}
	}
	return rs, orders
}

func TestSelectMatchesNaive(t *testing.T) {
	t.Parallel()
	rs, orders := benchRules(t, 400)
	for _, ds := range []string{"1003-01-01", "1200-01-01", "2024-01-15", "2024-06-15", "2030-01-01"} {
		d := date(t, ds)
		for _, o := range orders {
			got, err := rs.Select(o, d)
			if err != nil {
				t.Fatal(err)
			}
			if want := naiveSelect(rs.rules, o, d); got != want {
				t.Fatalf("Select(%+v, %s) = %s, naive %s", o, d, got.ID(), want.ID())
			}
		}
	}
}

func BenchmarkSelect(b *testing.B) {
	rs, orders := benchRules(b, 2000)
	d := pipeline.Date{Year: 2024, Month: 6, Day: 15}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := rs.Select(orders[i%len(orders)], d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSelectNaive is the scan the index of Rules saves, for comparison.
func BenchmarkSelectNaive(b *testing.B) {
	rs, orders := benchRules(b, 2000)
	d := pipeline.Date{Year: 2024, Month: 6, Day: 15}
	for i := 0; b.Loop(); i++ {
		naiveSelect(rs.rules, orders[i%len(orders)], d)
	}
}
