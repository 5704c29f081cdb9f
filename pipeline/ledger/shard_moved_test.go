package ledger_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// allSellers knows every seller it is asked about.
type allSellers struct{}

func (allSellers) Sellers(_ context.Context, ids []string, fn func(pipeline.Seller) error) error {
	for _, id := range ids {
		if err := fn(pipeline.Seller{ID: id, Name: id}); err != nil {
			return err
		}
	}
	return nil
}

// A shard read again (--reextract, after the platform corrected a seller
// id) finds an order whose seller is now another shard's, whose run
// recorded its items before the correction, when the order was not its
// own: that shard never reads the date again. Before, the order went into
// the snapshot as the other shard's keys alone and was settled by no run,
// in no report, every run ending 0. It is rejected now, by the shard that
// read it, with the reason; the orders the other shard holds stay its own.
// Both ways of reading a day: one pass (ExtractTransform) and the stages
// one by one (ExtractStage, TransformStage).
func TestAnOrderMovedToAShardThatReadTheDateIsRejected(t *testing.T) {
	for i, way := range []string{"one pass", "stages"} {
		t.Run(way, func(t *testing.T) {
			l, _ := open(t)
			ctx := context.Background()
			d := pipeline.Date{Year: 2026, Month: 11, Day: 10 + i}
			at := time.Date(d.Year, time.Month(d.Month), d.Day, 12, 0, 0, 0, time.UTC)
			sellerOf := func(shard pipeline.Shard, from int) string {
				for i := from; ; i++ {
					if s := fmt.Sprintf("S%d", i); shard.Owns(s) {
						return s
					}
				}
			}
			zero, one := pipeline.Shard{Index: 0, Count: 2}, pipeline.Shard{Index: 1, Count: 2}
			a, b := sellerOf(zero, 0), sellerOf(one, 0)
			row := func(seq int64, orderNo, seller string) pipeline.SourceRow {
				return pipeline.SourceRow{Seq: seq, OrderNo: sp(orderNo), SellerID: sp(seller), Provider: sp("infiniapay"),
					Currency: sp("USD"), AmountMinor: sp("10"), RefundedMinor: sp("0"), PaidAt: &at, ConfirmedAt: &at}
			}
			classifier := func(func(string) (pipeline.Seller, bool, error)) pipeline.Classifier {
				return func(r pipeline.SourceRow) (pipeline.Split, *pipeline.Reject, error) {
					o := pipeline.Order{Seq: r.Seq, OrderNo: *r.OrderNo, SellerID: *r.SellerID, Channel: chInfinia,
						Currency: "USD", Amount: 10, PaidAt: at, ConfirmedAt: at}
					return pipeline.Split{Order: o, Rule: "r", Commission: 1, SellerShare: 9}, nil, nil
				}
			}
			read := func(shard pipeline.Shard, rows []pipeline.SourceRow) *pipeline.Run {
				t.Helper()
				run, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: d, Shard: shard}, pipeline.RunParams{TimeZone: "UTC"})
				if err != nil {
					t.Fatal(err)
				}
				src := rowsSource{rows: rows}
				window := func(pipeline.Date) pipeline.Window { return pipeline.Window{} }
				if way == "one pass" {
					s, err := pipeline.ExtractTransform(src, allSellers{}, l, window, classifier)(ctx, run)
					if err != nil || len(s) != 2 {
						t.Fatalf("pass of shard %s: %q, %v", shard, s, err)
					}
					return run
				}
				if _, err := pipeline.ExtractStage(src, allSellers{}, l, window)(ctx, run); err != nil {
					t.Fatal(err)
				}
				if _, err := pipeline.TransformStage(l, func(map[string]pipeline.Seller) pipeline.Classifier {
					return classifier(nil)
				})(ctx, run); err != nil {
					t.Fatal(err)
				}
				return run
			}
			// Shard 1 reads the day: M is shard 0's (seller a) then.
			read(one, []pipeline.SourceRow{row(1, "B1", b), row(2, "M", a), row(3, "A1", a)})
			// The platform corrects M's seller to one of shard 1; shard 0
			// reads the day (again).
			run := read(zero, []pipeline.SourceRow{row(1, "B1", b), row(2, "M", sellerOf(one, 1)), row(3, "A1", a)})

			rejects, items := outcome(t, l, run)
			if items != "A1" || !strings.HasPrefix(rejects, "2:settled by no run: its seller's shard 1/2 recorded its items without this order") ||
				strings.Contains(rejects, "|") {
				t.Fatalf("shard 0: items %q, rejects %q", items, rejects)
			}
			var settled []string
			if err := l.DB().Select(&settled, `SELECT order_no FROM items ORDER BY order_no`); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(settled, ","); got != "A1,B1" {
				t.Fatalf("items %s, want A1,B1 (M settled by no run, rejected by shard 0)", got)
			}
		})
	}
}

// An order number longer than a reject keeps whole (MaxRejectText
// characters: transform rejects it for its length) that its own shard's
// run rejected is held by that run: a shard reading the date after it
// does not take it for an order settled by no run. Before, the reject kept
// the number clipped, the later shard found no reject of it and rejected
// it a second time, "settled by no run ... a person settles it": twice in
// orders.csv and in the source rows rejected, the second time for a person
// to settle an order that was bad data (found by a trial of odd ids).
func TestALongOrderNumberRejectedByItsShardIsNotRejectedAgain(t *testing.T) {
	for i, way := range []string{"one pass", "stages"} {
		t.Run(way, func(t *testing.T) {
			l, _ := open(t)
			ctx := context.Background()
			d := pipeline.Date{Year: 2026, Month: 11, Day: 20 + i}
			at := time.Date(d.Year, time.Month(d.Month), d.Day, 12, 0, 0, 0, time.UTC)
			sellerOf := func(shard pipeline.Shard) string {
				for i := 0; ; i++ {
					if s := fmt.Sprintf("S%d", i); shard.Owns(s) {
						return s
					}
				}
			}
			zero, one := pipeline.Shard{Index: 0, Count: 2}, pipeline.Shard{Index: 1, Count: 2}
			a, b := sellerOf(zero), sellerOf(one)
			long := strings.Repeat("L", pipeline.MaxRejectText+1)
			row := func(seq int64, orderNo, seller string) pipeline.SourceRow {
				return pipeline.SourceRow{Seq: seq, OrderNo: sp(orderNo), SellerID: sp(seller), Provider: sp("infiniapay"),
					Currency: sp("USD"), AmountMinor: sp("10"), RefundedMinor: sp("0"), PaidAt: &at, ConfirmedAt: &at}
			}
			rows := []pipeline.SourceRow{row(1, "A1", a), row(2, long, b), row(3, "B1", b)}
			// As transform: an order number over 128 bytes is rejected.
			classify := func(r pipeline.SourceRow) (pipeline.Split, *pipeline.Reject, error) {
				if len(*r.OrderNo) > 128 {
					rej := pipeline.RejectOf(r, "order_no is too long")
					return pipeline.Split{}, &rej, nil
				}
				o := pipeline.Order{Seq: r.Seq, OrderNo: *r.OrderNo, SellerID: *r.SellerID, Channel: chInfinia,
					Currency: "USD", Amount: 10, PaidAt: at, ConfirmedAt: at}
				return pipeline.Split{Order: o, Rule: "r", Commission: 1, SellerShare: 9}, nil, nil
			}
			read := func(shard pipeline.Shard) *pipeline.Run {
				t.Helper()
				run, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: d, Shard: shard}, pipeline.RunParams{TimeZone: "UTC"})
				if err != nil {
					t.Fatal(err)
				}
				src := rowsSource{rows: rows}
				window := func(pipeline.Date) pipeline.Window { return pipeline.Window{} }
				if way == "one pass" {
					if _, err := pipeline.ExtractTransform(src, allSellers{}, l, window,
						func(func(string) (pipeline.Seller, bool, error)) pipeline.Classifier { return classify })(ctx, run); err != nil {
						t.Fatalf("pass of shard %s: %v", shard, err)
					}
					return run
				}
				if _, err := pipeline.ExtractStage(src, allSellers{}, l, window)(ctx, run); err != nil {
					t.Fatal(err)
				}
				if _, err := pipeline.TransformStage(l, func(map[string]pipeline.Seller) pipeline.Classifier {
					return classify
				})(ctx, run); err != nil {
					t.Fatal(err)
				}
				return run
			}
			first := read(one)
			if rejects, items := outcome(t, l, first); rejects != "2:order_no is too long" || items != "B1" {
				t.Fatalf("shard 1: items %q, rejects %q", items, rejects)
			}
			run := read(zero)
			if rejects, items := outcome(t, l, run); rejects != "" || items != "A1" {
				t.Fatalf("shard 0: items %q, rejects %q (want none: shard 1 rejected the long order number)", items, rejects)
			}
		})
	}
}
