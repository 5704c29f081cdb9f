package ledger_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// BenchmarkHistoryReads times, on a ledger of many dates built apart
// (scripts/historyledger/gen.sql: two years of nights, PERFORMANCE.md "A
// ledger of two years"), every read that is not bounded by one run or
// date, and a night's per-date reads of its last date and of an old one.
// It reads SETTLE_HISTORY_DATABASE_URL (the scratch database; its schema
// "settle") and writes nothing but the lock it takes and lets go; without
// it, it is skipped.
//
//	SETTLE_HISTORY_DATABASE_URL='postgres://postgres@127.0.0.1:5432/rh_hist?sslmode=disable' \
//	  go test ./pipeline/ledger -run '^$' -bench HistoryReads -benchtime 5x
func BenchmarkHistoryReads(b *testing.B) {
	url := os.Getenv("SETTLE_HISTORY_DATABASE_URL")
	if url == "" {
		b.Skip("SETTLE_HISTORY_DATABASE_URL is not set: no ledger of many dates to read")
	}
	ctx := context.Background()
	l, err := ledger.Open(ctx, url, "settle")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var last, first string
	if err := l.DB().QueryRow(`SELECT max(business_date)::text, min(business_date)::text FROM runs`).Scan(&last, &first); err != nil {
		b.Fatal(err)
	}
	tonight, _ := pipeline.ParseDate(last)
	start, _ := pipeline.ParseDate(first)
	old := start.AddDays(150)
	var count int
	if err := l.DB().QueryRow(`SELECT max(shard_count) FROM runs WHERE business_date = $1`, last).Scan(&count); err != nil {
		b.Fatal(err)
	}
	key := pipeline.RunKey{Date: tonight, Shard: pipeline.Shard{Index: 0, Count: count}}
	run, err := l.GetRun(ctx, key)
	if err != nil || run == nil {
		b.Fatalf("run %v: %v", key, err)
	}
	var seller, oldID, newID string
	if err := l.DB().QueryRow(`SELECT seller_id FROM run_sellers WHERE infinia_seller_id <> '' AND seller_id NOT IN
		(SELECT seller_id FROM run_sellers WHERE run_id = $1) LIMIT 1`, run.ID).Scan(&seller); err != nil {
		b.Fatal(err)
	}
	// The Infinia id a seller had at first, and the one it has now.
	if err := l.DB().QueryRow(`SELECT o.infinia_seller_id, n.infinia_seller_id FROM run_sellers o JOIN run_sellers n USING (seller_id)
		WHERE o.infinia_seller_id <> n.infinia_seller_id AND o.infinia_seller_id <> '' AND n.infinia_seller_id <> '' LIMIT 1`).Scan(&oldID, &newID); err != nil {
		b.Fatal(err)
	}
	var refunds []pipeline.LateRefund
	rows, err := l.DB().Query(`SELECT refund_no, order_no, seller_id, amount_minor FROM late_refunds WHERE business_date = $1`, last)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var r pipeline.LateRefund
		if err := rows.Scan(&r.RefundNo, &r.OrderNo, &r.SellerID, &r.Amount); err != nil {
			b.Fatal(err)
		}
		refunds = append(refunds, r)
	}
	rows.Close()
	infinia := []pipeline.Channel{"infiniapay", "payprotocol"}
	discard := func(any) error { return nil }
	reads := []struct {
		name string
		fn   func() error
	}{
		{"DatesRun", func() error { _, err := l.DatesRun(ctx, tonight.AddDays(-31), tonight); return err }},
		{"LeftUndone", func() error { _, err := l.LeftUndone(ctx, tonight.AddDays(-31), tonight); return err }},
		{"WaitingOnAPerson", func() error { _, err := l.WaitingOnAPerson(ctx, tonight.AddDays(-31), tonight); return err }},
		{"OtherShardSellers", func() error { _, err := l.OtherShardSellers(ctx, key); return err }},
		{"KnownSellers", func() error { _, err := l.KnownSellers(ctx); return err }},
		{"SellerOfInfiniaID/now", func() error { _, _, err := l.SellerOfInfiniaID(ctx, newID); return err }},
		{"SellerOfInfiniaID/before", func() error { _, _, err := l.SellerOfInfiniaID(ctx, oldID); return err }},
		{"SellerOfInfiniaID/unknown", func() error { _, _, err := l.SellerOfInfiniaID(ctx, "NOBODY"); return err }},
		{"AccountOf/not-in-run", func() error { _, err := l.AccountOf(ctx, run.ID, "infiniapay", seller); return err }},
		{"OpenCarries/all", func() error { _, err := l.OpenCarries(ctx, pipeline.Date{}); return err }},
		{"EachPayoutCandidate", func() error {
			return l.EachPayoutCandidate(ctx, run, infinia, "infiniapay", func(pipeline.PayoutCandidate) error { return nil })
		}},
		{"BlockedByLateRefunds", func() error { _, err := l.BlockedByLateRefunds(ctx, infinia); return err }},
		{"PendingLateRefunds", func() error { _, err := l.PendingLateRefunds(ctx, "", 1000); return err }},
		{"LateRefundsRecordedOtherwise", func() error { _, err := l.LateRefundsRecordedOtherwise(ctx, refunds); return err }},
		{"ShardHealth", func() error { _, err := l.ShardHealth(ctx, key.Shard); return err }},
		{"RunsToRecheck", func() error { _, err := l.RunsToRecheck(ctx, run, 7); return err }},
		{"FailedPayouts", func() error { _, err := l.FailedPayouts(ctx, key); return err }},
		{"Unbalanced", func() error { _, err := l.Unbalanced(ctx, key); return err }},
		{"EachExpectedShare", func() error {
			return l.EachExpectedShare(ctx, run.ID, func(pipeline.ExpectedShare) error { return nil })
		}},
		{"EffectsOfKindAfter/first-page", func() error {
			_, err := l.EffectsOfKindAfter(ctx, run.ID, "revenue_share", "RS/"+tonight.Compact()+"/", "", 0, 500)
			return err
		}},
		{"Sends", func() error { _, err := l.Sends(ctx, key, []string{"revenue_share", "distribution"}); return err }},
		{"Bindings", func() error { _, err := l.Bindings(ctx); return err }},
		{"CheckMigrated", func() error { return l.CheckMigrated(ctx) }},
		{"Lock", func() error {
			release, err := l.Lock(ctx, pipeline.RunKey{Date: tonight.AddDays(1), Shard: key.Shard})
			if err != nil {
				return err
			}
			return release()
		}},
	}
	for _, d := range []struct {
		name string
		date pipeline.Date
	}{{"tonight", tonight}, {"old", old}} {
		reads = append(reads,
			struct {
				name string
				fn   func() error
			}{"DateStatus/" + d.name, func() error { _, err := l.DateStatus(ctx, d.date); return err }},
			struct {
				name string
				fn   func() error
			}{"SellerLines/" + d.name, func() error {
				return l.SellerLines(ctx, d.date, func(s pipeline.SellerLine) error { return discard(s) })
			}},
			struct {
				name string
				fn   func() error
			}{"SummaryLines/" + d.name, func() error {
				return l.SummaryLines(ctx, d.date, func(s pipeline.SummaryLine) error { return discard(s) })
			}},
			struct {
				name string
				fn   func() error
			}{"OrderLines/" + d.name, func() error {
				return l.OrderLines(ctx, d.date, func(s pipeline.OrderLine) error { return discard(s) })
			}},
			struct {
				name string
				fn   func() error
			}{"PayoutLines/" + d.name, func() error {
				return l.PayoutLines(ctx, d.date, func(s pipeline.PayoutLine) error { return discard(s) })
			}},
			struct {
				name string
				fn   func() error
			}{"MismatchLines/" + d.name, func() error {
				return l.MismatchLines(ctx, d.date, func(s pipeline.Mismatch) error { return discard(s) })
			}},
		)
	}
	for _, r := range reads {
		b.Run(r.name, func(b *testing.B) {
			if err := r.fn(); err != nil { // warm
				b.Fatal(fmt.Errorf("%s: %w", r.name, err))
			}
			b.ResetTimer()
			for b.Loop() {
				if err := r.fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
