package ledger_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// BenchmarkRepriceOfADate measures settle reprice on the ledger: a date of
// BENCH_REPRICE_ORDERS orders (default 20,000) of BENCH_REPRICE_SELLERS
// sellers (default 1,000; each in USD and EUR), paid, priced again under
// rules that change every order's share (20% and 30% in turn, so that each
// reprice records an entry per order).
func BenchmarkRepriceOfADate(b *testing.B) {
	n, sellers := 20000, 1000
	for _, s := range []struct {
		env string
		v   *int
	}{{"BENCH_REPRICE_ORDERS", &n}, {"BENCH_REPRICE_SELLERS", &sellers}} {
		if v := os.Getenv(s.env); v != "" {
			var err error
			if *s.v, err = strconv.Atoi(v); err != nil || *s.v <= 0 {
				b.Fatalf("%s=%q: want a positive integer", s.env, v)
			}
		}
	}
	ctx := context.Background()
	l, err := ledger.Open(ctx, pgtest.URL(b), "")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	d := pipeline.Date{Year: 2026, Month: 3, Day: 1}
	benchItems(b, l, d, "R-", n, sellers)
	if _, err := l.DB().Exec(`UPDATE items SET state = 'paid'; ANALYZE items`); err != nil {
		b.Fatal(err)
	}
	rates := []int64{20, 30} // settled at 10%
	var took time.Duration
	b.ResetTimer()
	for i := range b.N {
		rate := rates[i%2]
		rules := pipeline.RulesFile{Name: "fixed.csv", Body: []byte("seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from\n,,," +
			strconv.FormatInt(rate*100, 10) + ",,,,2020-01-01\n"), Hash: "h" + strconv.FormatInt(rate, 10)}
		start := time.Now()
		res, err := pipeline.Reprice(ctx, l, d, rules, repriceChannels, func(o pipeline.Order, _ pipeline.Date) (pipeline.Split, error) {
			base := o.Amount - o.Refunded
			return pipeline.Split{Order: o, Rule: "fixed.csv:2", Commission: base * rate / 100, SellerShare: base - base*rate/100}, nil
		}, false)
		took += time.Since(start)
		if err != nil || res.ID == 0 || len(res.Repricing.Adjust) != n {
			b.Fatalf("reprice at %d%%: %d entries, %v; want %d", rate, len(res.Repricing.Adjust), err, n)
		}
	}
	b.Logf("%d orders of %d sellers: %.2fs a reprice", n, sellers, took.Seconds()/float64(b.N))
}
