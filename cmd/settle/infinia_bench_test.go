package main

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/heaptest"
	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/load"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
	"github.com/settlekit/settle/transform"
)

// acceptingInfinia takes every trade file (SFTP) and accepts it at the
// first status question, at once: the upload stage's own work alone.
type acceptingInfinia struct{ infiniapay.API }

func (acceptingInfinia) UploadStatus(context.Context, string) (string, string, error) {
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
				ctx := context.Background()
				l, err := ledger.Open(ctx, pgtest.URL(b), "")
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				if _, err := l.Migrate(ctx); err != nil {
					b.Fatal(err)
				}
				ledger.ReleaseParseBuffers() // not to count them as live before the stage
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
					for i := range 2 * n {
						no := fmt.Sprintf("O%08d", i)
						o := pipeline.Order{Seq: int64(i + 1), OrderNo: no, SellerID: seller(i % n), Channel: infiniapay.Channel,
							ProviderTxnID: "T" + no, Currency: "USD", Amount: 1000, Category: "c", PaidAt: at, ConfirmedAt: at}
						if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 100, SellerShare: 900}); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
				api := acceptingInfinia{}
				stage := infiniapay.UploadStage(infiniapay.StageConfig{Store: l, API: api, SFTP: api, Channels: []pipeline.Channel{infiniapay.Channel},
					PlatformID: "P1", WorkDir: b.TempDir(), Rows: transform.TradeRows, Pacer: pipeline.NewPacer(pipeline.Limits{}),
					WriteFile: func(dir, name string, rows func(func(pipeline.TradeRow) error) error) (string, string, int64, int, error) {
						w, err := load.WriteTradeFile(dir, name, rows)
						return w.Path, w.SHA256, w.Bytes, w.Rows, err
					}})
				b.StartTimer()
				var summary string
				peak, err := heaptest.PeakLive(func() error {
					summary, err = stage(ctx, run)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(peak, "peak-heap-MiB")
				b.Log(summary)
			}
		})
	}
}
