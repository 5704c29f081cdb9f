package transform

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenOrders are settled against testdata/rules.csv, whose rules are (by
// line): 2 default 5%; 3 default 4.5% from 2024-03-01; 4 CNY 5% min 1.00;
// 5 JPY 3.5% min 50; 6 KWD 2.5% max 5.000; 7 books 3%; 8 electronics USD 2%
// + 0.30 max 15.00; 9 seller s100 1%; 10 s100 books 0%; 11 s200 CNY 8% +
// 0.50 min 2.00 from 2024-02-01; 12 s300 6% from 2024-04-01; 13 USD 10% from
// 2024-03-20. The business date is 2024-03-15 unless the order says.
//
// testdata/splits.golden was checked line by line against these comments
// (and O29, the largest amount, in exact arithmetic: 9223372036854775807 *
// 500 / 10000 = 461168601842738790.35 -> 461168601842738790); review the
// diff the same way after go test -update.
var goldenOrders = []struct {
	no, seller, category string
	currency             pipeline.Currency
	amount, refunded     int64
	date                 string
}{
	{"O01", "s1", "toys", "CNY", 10000, 0, ""},    // CNY 5% = 500
	{"O02", "s1", "toys", "CNY", 1000, 0, ""},     // 50 < min 100 -> 100
	{"O03", "s1", "toys", "CNY", 80, 0, ""},       // min 100 > base -> 80, share 0
	{"O04", "s1", "toys", "CNY", 10000, 4000, ""}, // base 6000 -> 300
	{"O05", "s1", "toys", "CNY", 10000, 10000, ""},
	{"O06", "s1", "toys", "USD", 250, 0, ""}, // USD 10% not yet; default 4.5%: 11.25 -> 11
	{"O07", "s1", "toys", "USD", 10000, 0, ""},
	{"O08", "s1", "toys", "EUR", 3333, 0, ""}, // 149.985 -> 150
	{"O09", "s1", "toys", "JPY", 1999, 0, ""}, // 69.965 -> 70
	{"O10", "s1", "toys", "JPY", 1000, 0, ""}, // 35 < min 50 -> 50
	{"O11", "s1", "toys", "JPY", 30, 0, ""},   // min 50 > base -> 30
	{"O12", "s1", "toys", "KWD", 12345, 0, ""},
	{"O13", "s1", "toys", "KWD", 500000, 0, ""}, // 12500 > max 5000
	{"O14", "s1", "books", "USD", 10000, 0, ""},
	{"O15", "s1", "books", "CNY", 10000, 0, ""}, // category beats currency
	{"O16", "s1", "books", "CNY", 50, 0, ""},    // 1.5 -> 2
	{"O17", "s1", "electronics", "USD", 10000, 0, ""},
	{"O18", "s1", "electronics", "USD", 100000, 0, ""}, // 2030 > max 1500
	{"O19", "s1", "electronics", "EUR", 10000, 0, ""},
	{"O20", "s100", "toys", "CNY", 10000, 0, ""}, // seller beats currency
	{"O21", "s100", "books", "CNY", 10000, 0, ""},
	{"O22", "s100", "toys", "JPY", 250, 0, ""}, // 2.5 -> 2
	{"O23", "s100", "toys", "JPY", 350, 0, ""}, // 3.5 -> 4
	{"O24", "s200", "toys", "CNY", 10000, 0, ""},
	{"O25", "s200", "toys", "CNY", 1000, 0, ""},
	{"O26", "s200", "toys", "CNY", 1000, 900, ""},
	{"O27", "s200", "toys", "USD", 10000, 0, ""},
	{"O28", "s300", "toys", "CNY", 10000, 0, ""}, // s300 not yet effective
	{"O29", "s1", "toys", "CNY", math.MaxInt64, 0, ""},
	{"O30", "s1", "books", "KWD", 1, 0, ""},
	{"O31", "s1", "toys", "USD", 1, 0, ""},
	{"O32", "s1", "toys", "CNY", 10000, 0, "2023-12-31"}, // before every rule
	{"O33", "s300", "toys", "CNY", 10000, 0, "2024-04-01"},
	{"O34", "s1", "toys", "USD", 10000, 2500, "2024-03-20"},
}

func TestGoldenSplits(t *testing.T) {
	t.Parallel()
	f, err := os.Open(filepath.Join("testdata", "rules.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rs, err := ParseRules(f, "rules.csv")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "rules %d sha256 %s\n", rs.Len(), rs.Hash())
	for _, g := range goldenOrders {
		d := date(t, "2024-03-15")
		if g.date != "" {
			d = date(t, g.date)
		}
		o := pipeline.Order{OrderNo: g.no, SellerID: g.seller, Category: g.category,
			Currency: g.currency, Amount: g.amount, Refunded: g.refunded}
		s, err := SplitOrder(o, rs, d)
		if err != nil {
			fmt.Fprintf(&b, "%s %s error: %v\n", g.no, d, err)
			continue
		}
		money := func(v int64) string { return pipeline.FormatMinor(v, s.Currency) }
		fmt.Fprintf(&b, "%s %s %s/%s %s amount=%s refunded=%s rule=%s commission=%s share=%s\n",
			s.OrderNo, d, s.SellerID, s.Category, s.Currency, money(s.Amount), money(s.Refunded),
			s.Rule, money(s.Commission), money(s.SellerShare))
	}
	golden(t, "splits.golden", b.Bytes())
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (go test -update rewrites it; review the diff):\n--- got\n%s", path, got)
	}
}
