package wechatpay_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/heaptest"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
)

// benchDay is a settled day of n WeChat transactions over 100
// sub-merchants, every third an unfreeze, all accepted on one Beijing day
// and settled: its ledger (ReconcileStore) and WeChat Pay (Reconciler),
// each row made when it is read, as a database's or a server's answer
// is, so that what is live is what the matcher holds.
type benchDay struct{ n int }

var (
	benchAccepted = time.Date(2026, 11, 24, 1, 0, 0, 0, wechatpay.Beijing)
	benchLater    = time.Date(2026, 11, 26, 1, 0, 0, 0, wechatpay.Beijing)
)

const benchSubs = 100

func (d benchDay) item(i int) pipeline.ChannelItem {
	return pipeline.ChannelItem{OrderNo: fmt.Sprintf("ORD-%07d", i), SellerID: fmt.Sprintf("S%03d", i%benchSubs),
		Account: fmt.Sprintf("SUB%03d", i%benchSubs), TransactionID: fmt.Sprintf("T%07d", i), Currency: "CNY", SellerShare: 900,
		State: pipeline.ItemPaid}
}

func (d benchDay) attempt(i int) pipeline.Attempt {
	it := d.item(i)
	key := fmt.Sprintf("WX20261123%07d-1", i)
	e := pipeline.Effect{ID: int64(i + 1), RunID: 1, Kind: wechatpay.KindDistribution, Subject: "WX/20261123/" + it.OrderNo, Attempt: 1,
		Key: key, Currency: "CNY", Amount: 100, State: pipeline.EffectSucceeded, ProviderRef: "R" + key, Sends: 1}
	if i%3 == 0 {
		e.Kind, e.Amount = wechatpay.KindUnfreeze, 0
	}
	e.Planned = benchAccepted
	return pipeline.Attempt{Effect: e, Item: it, Recorded: benchAccepted.Add(time.Second)}
}

// index returns the transaction a number names (the digits after
// prefix), or -1.
func (d benchDay) index(s, prefix string) int {
	if len(s) < len(prefix)+7 || s[:len(prefix)] != prefix {
		return -1
	}
	var i int
	if _, err := fmt.Sscanf(s[len(prefix):len(prefix)+7], "%07d", &i); err != nil || i >= d.n {
		return -1
	}
	return i
}

// from returns the first transaction whose order number comes after
// orderNo (transactions are in order number order).
func (d benchDay) from(orderNo string) int {
	if orderNo == "" {
		return 0
	}
	return d.index(orderNo, "ORD-") + 1
}

func benchRows[T any](d benchDay, from, limit int, row func(int) T) []T {
	to := d.n
	if limit > 0 {
		to = min(to, from+limit)
	}
	var out []T
	for i := from; i < to; i++ {
		out = append(out, row(i))
	}
	return out
}

func (d benchDay) WeChatItemsAfter(_ context.Context, _ int64, _ pipeline.Channel, after string, limit int) ([]pipeline.ChannelItem, error) {
	return benchRows(d, d.from(after), limit, d.item), nil
}

func (d benchDay) WeChatItemsByTransaction(_ context.Context, _ int64, _ pipeline.Channel, txnIDs []string) ([]pipeline.ChannelItem, error) {
	var out []pipeline.ChannelItem
	for _, t := range txnIDs {
		if i := d.index(t, "T"); i >= 0 {
			out = append(out, d.item(i))
		}
	}
	return out, nil
}

// WeChatAttemptsAfter: one attempt per transaction.
func (d benchDay) WeChatAttemptsAfter(_ context.Context, _ int64, _ pipeline.Channel, _ []string, afterOrder, _ string, limit int) ([]pipeline.Attempt, error) {
	return benchRows(d, d.from(afterOrder), limit, d.attempt), nil
}

func (d benchDay) WeChatAttemptsByKey(_ context.Context, _ int64, _ pipeline.Channel, _, keys []string) ([]pipeline.Attempt, error) {
	var out []pipeline.Attempt
	for _, k := range keys {
		if i := d.index(k, "WX20261123"); i >= 0 {
			out = append(out, d.attempt(i))
		}
	}
	return out, nil
}

// WeChatDistributedAfter: no other run distributed at these
// sub-merchants.
func (d benchDay) WeChatDistributedAfter(context.Context, string, []string, time.Time, time.Time, int64, pipeline.Channel, string, int) ([]pipeline.Attempt, error) {
	return nil, nil
}

func (d benchDay) Order(_ context.Context, _, _, key string) (wechatpay.OrderStatus, error) {
	a := d.attempt(d.index(key, "WX20261123"))
	line := wechatpay.OrderLine{Platform: true, Result: wechatpay.ResultSuccess, Amount: 100}
	if a.Kind == wechatpay.KindUnfreeze {
		line = wechatpay.OrderLine{Rest: true, Result: wechatpay.ResultSuccess, Amount: 900}
	}
	return wechatpay.OrderStatus{State: wechatpay.StateFinished, AcceptedAt: benchAccepted, Lines: []wechatpay.OrderLine{line}}, nil
}

func (d benchDay) BillLines(_ context.Context, sub string, _ pipeline.Date) ([]wechatpay.BillEntry, error) {
	var s int
	fmt.Sscanf(sub, "SUB%03d", &s)
	var out []wechatpay.BillEntry
	for i := s; i < d.n; i += benchSubs {
		a := d.attempt(i)
		if a.Kind == wechatpay.KindDistribution {
			out = append(out, wechatpay.BillEntry{Time: benchAccepted, TransactionID: a.Item.TransactionID, OutOrderNo: a.Key,
				Type: wechatpay.BillDistribution, Platform: true, Currency: "CNY", Amount: 100})
		}
		out = append(out, wechatpay.BillEntry{Time: benchAccepted, TransactionID: a.Item.TransactionID, OutOrderNo: a.Key,
			Type: wechatpay.BillUnfreeze, Currency: "CNY", Amount: 900})
	}
	return out, nil
}

func (d benchDay) Settlements(_ context.Context, sub string, _ pipeline.Date) ([]wechatpay.SettlementDetail, error) {
	var s int
	fmt.Sscanf(sub, "SUB%03d", &s)
	var sum int64
	for i := s; i < d.n; i += benchSubs {
		if i%3 != 0 {
			sum += 100
		}
	}
	return []wechatpay.SettlementDetail{{BatchNo: "B" + sub, State: wechatpay.SettleStateSettled, Currency: "CNY", Amount: sum}}, nil
}

// BenchmarkMatcherPeakHeap measures the most live heap (as the GC
// measures it) above the ledger and WeChat Pay (here in memory, built
// before) while the matcher reconciles a settled day of n transactions
// (asking every order: no final answer kept), read in pages of 5,000
// (the default) or as one page:
//
//	go test ./load/wechatpay/ -run '^$' -bench MatcherPeakHeap -benchtime 1x
func BenchmarkMatcherPeakHeap(b *testing.B) {
	for _, n := range []int{10_000, 40_000, 100_000} {
		for _, page := range []int{0, n} {
			b.Run(fmt.Sprintf("txns=%d/page=%d", n, max(page, wechatpay.DefaultPage)), func(b *testing.B) {
				day := benchDay{n}
				run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}
				m := wechatpay.Matcher(wechatpay.MatcherConfig{Store: day, API: day, Page: page, Now: func() time.Time { return benchLater }})
				for range b.N {
					peak, err := heaptest.PeakLive(func() error {
						ms, err := m(context.Background(), run)
						if err == nil && len(ms) != 0 {
							err = fmt.Errorf("a clean day: %d mismatches, the first %+v", len(ms), ms[0])
						}
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(peak, "peak-heap-MiB")
				}
			})
		}
	}
}
