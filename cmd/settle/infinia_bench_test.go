package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/heaptest"
	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
	"github.com/settlekit/settle/transform"
)

// acceptingInfinia takes every trade file (SFTP) and accepts it at the
// first status question, at once: the upload stage's own work alone.
type acceptingInfinia struct{ infiniapay.API }

func (acceptingInfinia) UploadStatus(context.Context, pipeline.TradeFile) (string, string, error) {
	return infiniapay.StatusSuccess, "", nil
}

func (acceptingInfinia) Connect(context.Context) error { return nil }

func (acceptingInfinia) Upload(_ context.Context, _ string, _ int64, _ string, open func() (io.ReadCloser, error)) error {
	r, err := open()
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.Copy(io.Discard, r)
	return err
}

func (acceptingInfinia) Stat(context.Context, string) (int64, bool, error) { return 0, false, nil }

func (acceptingInfinia) FinishUpload(context.Context, string, int64, string) (bool, error) {
	return false, nil
}

// BenchmarkInfiniaUploadPeakHeap measures the most live heap while
// Infinia's upload stage builds, uploads and confirms the trade files of a
// day of n sellers (one file each), on a real ledger, with an Infinia that
// accepts every file at once:
//
//	go test ./cmd/settle -run '^$' -bench InfiniaUploadPeakHeap -benchtime 1x
//
// BENCH_UPLOAD_SELLERS sets the days (default 2000,10000).
func BenchmarkInfiniaUploadPeakHeap(b *testing.B) {
	for _, n := range benchEnvInts(b, "BENCH_UPLOAD_SELLERS", []int{2000, 10000}) {
		b.Run(fmt.Sprintf("sellers=%d", n), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				l, run, c := benchInfiniaDay(b, n, []pipeline.Currency{"USD"})
				stage := infiniapay.UploadStage(c)
				b.StartTimer()
				var summary string
				peak, err := heaptest.PeakLive(func() (err error) {
					summary, err = stage(context.Background(), run)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(peak, "peak-heap-MiB")
				b.Log(summary)
				l.Close()
			}
		})
	}
}

// payingInfinia is acceptingInfinia that also binds every seller, has the
// balance and every seller's share available, and pays every revenue
// share at once.
type payingInfinia struct{ acceptingInfinia }

func (payingInfinia) BindingStatus(context.Context, string, string) (string, error) {
	return infiniapay.StatusActive, nil
}

func (payingInfinia) Balance(context.Context, string, pipeline.Currency) (int64, error) {
	return 1 << 50, nil
}

func (payingInfinia) AvailableShare(context.Context, string, string, pipeline.Currency) (int64, error) {
	return 1 << 50, nil
}

func (payingInfinia) Send(_ context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	return pipeline.Outcome{Status: pipeline.OutcomeSucceeded, Ref: "R" + e.Key}, nil
}

func (p payingInfinia) Query(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	return p.Send(ctx, e)
}

// BenchmarkInfiniaDistributePeakHeap measures the most live heap while
// Infinia's distribute stage plans and pays the revenue shares of a day of
// n sellers in three currencies (uploaded first, not measured), on a real
// ledger, with an Infinia that pays every one at once:
//
//	go test ./cmd/settle -run '^$' -bench InfiniaDistributePeakHeap -benchtime 1x
//
// BENCH_DISTRIBUTE_SELLERS sets the days (default 2000,10000).
func BenchmarkInfiniaDistributePeakHeap(b *testing.B) {
	for _, n := range benchEnvInts(b, "BENCH_DISTRIBUTE_SELLERS", []int{2000, 10000}) {
		b.Run(fmt.Sprintf("sellers=%d", n), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				ctx := context.Background()
				l, run, c := benchInfiniaDay(b, n, []pipeline.Currency{"EUR", "JPY", "USD"})
				api := payingInfinia{}
				c.API, c.Payouts = api, api
				if _, err := infiniapay.UploadStage(c)(ctx, run); err != nil {
					b.Fatal(err)
				}
				stage := infiniapay.DistributeStage(c)
				runtime.GC()
				b.StartTimer()
				var summary string
				peak, err := heaptest.PeakLive(func() (err error) {
					summary, err = stage(ctx, run)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(peak, "peak-heap-MiB")
				b.Log(summary)
				l.Close()
			}
		})
	}
}

// benchInfiniaDay records a day of n sellers with two items in each
// currency (uploaded in one trade file per seller and currency) on a new
// ledger, and the Infinia stages' configuration for it, with an Infinia
// that accepts every trade file at once.
func benchInfiniaDay(b *testing.B, n int, currencies []pipeline.Currency) (*ledger.Ledger, *pipeline.Run, infiniapay.StageConfig) {
	b.Helper()
	ctx := context.Background()
	l, err := ledger.Open(ctx, pgtest.URL(b), "")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := l.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	ledger.ReleaseParseBuffers() // not to count them as live in a stage
	date := pipeline.Date{Year: 2026, Month: 11, Day: 23}
	run, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: date, Shard: pipeline.Whole}, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		b.Fatal(err)
	}
	seller := func(i int) string { return fmt.Sprintf("S%06d", i) }
	if _, err := l.WriteSnapshot(ctx, run.ID, func(_ func(pipeline.SourceRow) error, addSeller func(pipeline.Seller) error) error {
		for i := range n {
			if err := addSeller(pipeline.Seller{ID: seller(i), Accounts: map[string]string{infiniapay.SellerAccount: "INF" + seller(i)}}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	if _, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
		for i := range 2 * n * len(currencies) {
			no := fmt.Sprintf("O%08d", i)
			o := pipeline.Order{Seq: int64(i + 1), OrderNo: no, SellerID: seller(i % n), Channel: infiniapay.Channel,
				ProviderTxnID: "T" + no, Currency: currencies[i/n%len(currencies)], Amount: 1000, Category: "c", PaidAt: at, ConfirmedAt: at}
			if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 100, SellerShare: 900}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	// The trade files are written as settle run writes them: by an Infinia
	// client's layout (which sends nothing here).
	k, err := infiniapaytest.GenerateKeys()
	if err != nil {
		b.Fatal(err)
	}
	client, err := infiniapay.New(infiniapay.Config{BaseURL: "http://127.0.0.1/", AppID: "A", OurKey: k.PlatformPrivate,
		InfiniaKey: k.InfiniaPublic, HTTP: infiniapay.NewHTTPClient(0)})
	if err != nil {
		b.Fatal(err)
	}
	api := acceptingInfinia{}
	return l, run, infiniapay.StageConfig{Store: l, API: api, SFTP: api, Channels: []pipeline.Channel{infiniapay.Channel},
		PlatformID: "P1", WorkDir: b.TempDir(), Rows: transform.TradeRows, Pacer: pipeline.NewPacer(pipeline.Limits{}),
		WriteFile: client.WriteTradeFile}
}
