package ledger_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// Two shards of a day write, at the same time, items whose order numbers a
// row of the other shard shares (its keys in each one's snapshot,
// migration 00020), in opposite orders: each shard's COPY may wait on a
// key the other has not committed, and PostgreSQL may end the two waits
// as a deadlock. Both finish, neither settles a shared order, and every
// other order is settled by its own shard.
func TestShardsSharingKeysWriteSideBySide(t *testing.T) {
	l, _ := open(t)
	ctx := context.Background()
	at := time.Date(day.Year, time.Month(day.Month), day.Day, 12, 0, 0, 0, time.UTC)
	sellerOf := func(shard pipeline.Shard) string {
		for i := 0; ; i++ {
			if s := fmt.Sprintf("S%d", i); shard.Owns(s) {
				return s
			}
		}
	}
	const pad = 1000 // rows of a COPY between the shared ones: more than lib/pq buffers
	type shardDay struct {
		run     *pipeline.Run
		seller  string
		own     []pipeline.SourceRow // in the order written: a shared key, pad rows, the other, pad rows
		shared  []pipeline.SourceRow // its rows naming X and Y
		others  []pipeline.SourceRow // the other shard's rows naming X and Y
		summary string
		err     error
	}
	shards := make([]*shardDay, 2)
	seq := int64(0)
	row := func(orderNo, seller string) pipeline.SourceRow {
		seq++
		return pipeline.SourceRow{Seq: seq, OrderNo: sp(orderNo), SellerID: sp(seller), Provider: sp("infiniapay"),
			Currency: sp("USD"), AmountMinor: sp("10"), RefundedMinor: sp("0"), PaidAt: &at, ConfirmedAt: &at}
	}
	for i := range shards {
		key := pipeline.RunKey{Date: day, Shard: pipeline.Shard{Index: i, Count: 2}}
		run, _, err := l.OpenRun(ctx, key, pipeline.RunParams{TimeZone: "UTC"})
		if err != nil {
			t.Fatal(err)
		}
		d := &shardDay{run: run, seller: sellerOf(key.Shard)}
		first, second := "X", "Y"
		if i == 1 {
			first, second = second, first
		}
		d.shared = append(d.shared, row(first, d.seller))
		d.own = append(d.own, d.shared[0])
		for k := 0; k < 2*pad; k++ {
			if k == pad {
				d.shared = append(d.shared, row(second, d.seller))
				d.own = append(d.own, d.shared[1])
			}
			d.own = append(d.own, row(fmt.Sprintf("P%d-%04d", i, k), d.seller))
		}
		shards[i] = d
	}
	for i, d := range shards {
		other := shards[1-i]
		for _, r := range other.shared {
			keys, _ := r.OtherShardKeys()
			d.others = append(d.others, keys)
		}
		if _, err := l.WriteSnapshot(ctx, d.run.ID, func(add func(pipeline.SourceRow) error, addSeller func(pipeline.Seller) error) error {
			for _, r := range append(append([]pipeline.SourceRow{}, d.own...), d.others...) {
				if err := add(r); err != nil {
					return err
				}
			}
			return addSeller(pipeline.Seller{ID: d.seller, Name: d.seller})
		}); err != nil {
			t.Fatal(err)
		}
	}

	// Each shard writes its first shared key and a buffer's worth of rows,
	// waits for the other to have done the same, then its second.
	var firstHalf sync.WaitGroup
	firstHalf.Add(2)
	var wg sync.WaitGroup
	for _, d := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			calls := 0
			d.summary, d.err = pipeline.TransformStage(l, func(map[string]pipeline.Seller) pipeline.Classifier {
				calls++
				once := calls == 1
				n := 0
				return func(r pipeline.SourceRow) (pipeline.Split, *pipeline.Reject, error) {
					if n++; once && n == pad+2 { // the second shared key
						firstHalf.Done()
						firstHalf.Wait()
						time.Sleep(200 * time.Millisecond) // the other's first half reaches its backend
					}
					o := pipeline.Order{Seq: r.Seq, OrderNo: *r.OrderNo, SellerID: d.seller, Channel: chInfinia,
						Currency: "USD", Amount: 10, PaidAt: at, ConfirmedAt: at}
					return pipeline.Split{Order: o, Rule: "r", Commission: 1, SellerShare: 9}, nil, nil
				}
			})(ctx, d.run)
		}()
	}
	wg.Wait()
	for i, d := range shards {
		if d.err != nil {
			t.Fatalf("shard %d: %v", i, d.err)
		}
		rejects, _ := outcome(t, l, d.run)
		want := fmt.Sprintf("%d:duplicate order_no: 2 rows share it|%d:duplicate order_no: 2 rows share it", d.shared[0].Seq, d.shared[1].Seq)
		if rejects != want || d.summary != fmt.Sprintf("%d items recorded, 2 rejected", 2*pad) {
			t.Errorf("shard %d: rejects %q, want %q (%s)", i, rejects, want, d.summary)
		}
	}
	var shared int
	if err := l.DB().Get(&shared, `SELECT count(*) FROM items WHERE order_no IN ('X', 'Y')`); err != nil || shared != 0 {
		t.Fatalf("%d items of the shared orders (%v)", shared, err)
	}
}
