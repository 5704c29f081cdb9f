package ledger_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// BenchmarkDayLedger measures the ledger's part of the upload and
// distribute stages - every trade file's items read, the file recorded and
// finished, every revenue share planned and marked paid - per order, for
// days of different sizes, the sellers growing with the day (so do the
// files and payouts), each day in a fresh database with an earlier day
// already in it. When every per-file and per-payout query costs what it
// returns, the cost per order is the same at every size; when a query
// walks the whole run, it grows with the day. Settings: BENCH_DAY_ORDERS
// (default "20000,200000"), BENCH_DAY_ORDERS_PER_SELLER (default 50, half
// in USD and half in EUR).
func BenchmarkDayLedger(b *testing.B) {
	sizes := []int{20000, 200000}
	if v := os.Getenv("BENCH_DAY_ORDERS"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				b.Fatalf("BENCH_DAY_ORDERS=%q: want positive integers, comma separated", v)
			}
			sizes = append(sizes, n)
		}
	}
	perSeller := 50
	if v := os.Getenv("BENCH_DAY_ORDERS_PER_SELLER"); v != "" {
		var err error
		if perSeller, err = strconv.Atoi(v); err != nil || perSeller <= 0 {
			b.Fatalf("BENCH_DAY_ORDERS_PER_SELLER=%q: want a positive integer", v)
		}
	}
	type result struct {
		orders           int
		files            int
		upload, dist     time.Duration
		perOrderUpload   float64 // µs
		perOrderDistribu float64
	}
	var results []result
	for range b.N {
		results = results[:0]
		for _, n := range sizes {
			r := dayLedger(b, n, max(1, n/perSeller))
			results = append(results, result{orders: n, files: r.files, upload: r.upload, dist: r.dist,
				perOrderUpload: float64(r.upload.Microseconds()) / float64(n), perOrderDistribu: float64(r.dist.Microseconds()) / float64(n)})
		}
	}
	for _, r := range results {
		b.Logf("%d orders, %d trade files and revenue shares: upload %.2fs (%.1f µs/order), distribute %.2fs (%.1f µs/order)",
			r.orders, r.files, r.upload.Seconds(), r.perOrderUpload, r.dist.Seconds(), r.perOrderDistribu)
	}
	first, last := results[0], results[len(results)-1]
	b.Logf("per order, %d orders against %d: upload %.2fx, distribute %.2fx", last.orders, first.orders,
		last.perOrderUpload/first.perOrderUpload, last.perOrderDistribu/first.perOrderDistribu)
	b.ReportMetric(last.perOrderUpload/first.perOrderUpload, "upload-growth")
	b.ReportMetric(last.perOrderDistribu/first.perOrderDistribu, "distribute-growth")
}

type dayCost struct {
	files        int
	upload, dist time.Duration
}

// dayLedger records a day of n orders of sellers sellers (after an earlier
// day of the same size), then times the upload and distribute stages' ledger
// calls for it.
func dayLedger(b *testing.B, n, sellers int) dayCost {
	b.Helper()
	ctx := context.Background()
	l, err := ledger.Open(ctx, pgtest.URL(b), "")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	var run *pipeline.Run
	for i, d := range []pipeline.Date{{Year: 2026, Month: 3, Day: 1}, {Year: 2026, Month: 3, Day: 2}} {
		run = benchItems(b, l, d, fmt.Sprintf("D%d-", i), n, sellers)
	}
	channels := shareChannels
	var c dayCost

	start := time.Now()
	payables, err := l.Payables(ctx, run.ID, ledger.ItemRecorded, channels)
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range payables {
		req := tradeKey(run.Key.Date, p.SellerID, p.Currency, 1)
		var items int
		var owed int64
		if err := l.ItemsForTrade(ctx, run.ID, p.SellerID, p.Currency, channels, "", func(s pipeline.Split) error {
			items++
			owed += s.SellerShare
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		f := pipeline.TradeFile{RunID: run.ID, Date: run.Key.Date, SellerID: p.SellerID, Currency: p.Currency, Attempt: 1,
			RequestNo: req, Name: "TD_" + req + ".csv", SHA256: "x", Rows: items, SellerMinor: owed, Items: items}
		stored, err := l.RecordTradeFile(ctx, f, channels)
		if err != nil {
			b.Fatal(err)
		}
		stored.Status = "SUCCESS"
		if err := l.FinishTradeFile(ctx, stored, nil, ledger.ItemUploaded, ""); err != nil {
			b.Fatal(err)
		}
		c.files++
	}
	c.upload = time.Since(start)

	start = time.Now()
	payables, err = l.Payables(ctx, run.ID, ledger.ItemUploaded, channels)
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range payables {
		e := pipeline.Effect{RunID: run.ID, Kind: kindRevenueShare, Subject: shareSubject(run.Key.Date, p.SellerID, p.Currency),
			Attempt: 1, Key: shareKey(run.Key.Date, p.SellerID, p.Currency, 1), Currency: p.Currency, Amount: p.Amount}
		stored, err := l.PlanPayout(ctx, run, p.SellerID, channels, e)
		if err != nil {
			b.Fatal(err)
		}
		stored.ProviderRef = "R"
		if err := l.PayoutSucceeded(ctx, run, p.SellerID, p.Currency, channels, stored); err != nil {
			b.Fatal(err)
		}
	}
	c.dist = time.Since(start)
	var paid int
	if err := l.DB().Get(&paid, `SELECT count(*) FROM items WHERE run_id = $1 AND state = 'paid'`, run.ID); err != nil || paid != n {
		b.Fatalf("%d of %d items paid (%v)", paid, n, err)
	}
	return c
}

// benchItems records a run of date d with n infiniapay items of sellers
// sellers in USD and EUR.
func benchItems(b *testing.B, l *ledger.Ledger, d pipeline.Date, prefix string, n, sellers int) *pipeline.Run {
	b.Helper()
	ctx := context.Background()
	run, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: d, Shard: pipeline.Whole}, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(d.Year, time.Month(d.Month), d.Day, 12, 0, 0, 0, time.UTC)
	if _, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
		for i := range n {
			cur := pipeline.Currency("USD")
			if i%2 == 1 {
				cur = "EUR"
			}
			o := pipeline.Order{Seq: int64(i + 1), OrderNo: fmt.Sprintf("%s%08d", prefix, i), SellerID: fmt.Sprintf("S%05d", (i/2)%sellers),
				Channel: chInfinia, Currency: cur, Amount: 1000, Category: "c", PaidAt: at, ConfirmedAt: at}
			if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 100, SellerShare: 900}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	return run
}
