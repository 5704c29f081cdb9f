package ledger_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// A run reads, with the day's sellers, those of its shard with a balance
// carried from an earlier date still open, and records them with its
// snapshot (pipeline.CarriedSellers): a seller of no order that day was
// paid its balance to the account last recorded for it, whatever the
// platform had corrected since. Not a balance of a later date, nor one
// netted already, nor another shard's seller; one of the run's own date
// is (a clawback an earlier date's run dated by its refund, say). Both
// ways of reading a day.
func TestARunRecordsItsSellersWithACarriedBalance(t *testing.T) {
	for i, way := range []string{"one pass", "stages"} {
		t.Run(way, func(t *testing.T) {
			l, _ := open(t)
			ctx := context.Background()
			d := pipeline.Date{Year: 2026, Month: 11, Day: 10 + i}
			at := time.Date(d.Year, time.Month(d.Month), d.Day, 12, 0, 0, 0, time.UTC)
			zero := pipeline.Shard{Index: 0, Count: 2}
			var mine, theirs []string // sellers of shard 0, of shard 1
			for n := 0; len(mine) < 5 || len(theirs) < 1; n++ {
				if s := fmt.Sprintf("S%d", n); zero.Owns(s) {
					mine = append(mine, s)
				} else {
					theirs = append(theirs, s)
				}
			}
			earlier, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: d.AddDays(-3), Shard: pipeline.Whole}, pipeline.RunParams{TimeZone: "UTC"})
			if err != nil {
				t.Fatal(err)
			}
			carry := func(seller string, date pipeline.Date, netted string) {
				l.DB().MustExec(`INSERT INTO adjustments (seller_id, currency, kind, amount_minor, reason, business_date, run_id, netted_into, netted_date)
					VALUES ($1, 'USD', 'held', 100, 'below the minimum payout', $2, $3, $4, CASE WHEN $4 <> '' THEN $2::date END)`, seller, date.String(), earlier.ID, netted)
			}
			carry(mine[0], d.AddDays(-3), "")         // a seller of the day's too
			carry(mine[1], d.AddDays(-3), "")         // read
			carry(mine[2], d.AddDays(1), "")          // a later date's: not
			carry(mine[3], d.AddDays(-3), "RS/X/Y/Z") // netted: not
			carry(theirs[0], d.AddDays(-3), "")       // another shard's: not
			carry(mine[4], d, "")                     // the run's own date's: read
			run, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: d, Shard: zero}, pipeline.RunParams{TimeZone: "UTC"})
			if err != nil {
				t.Fatal(err)
			}
			rows := rowsSource{rows: []pipeline.SourceRow{{Seq: 1, OrderNo: sp("A1"), SellerID: sp(mine[0]), Provider: sp("infiniapay"),
				Currency: sp("USD"), AmountMinor: sp("10"), RefundedMinor: sp("0"), PaidAt: &at, ConfirmedAt: &at}}}
			classifier := func(func(string) (pipeline.Seller, bool, error)) pipeline.Classifier {
				return func(r pipeline.SourceRow) (pipeline.Split, *pipeline.Reject, error) {
					o := pipeline.Order{Seq: r.Seq, OrderNo: *r.OrderNo, SellerID: *r.SellerID, Channel: chInfinia,
						Currency: "USD", Amount: 10, PaidAt: at, ConfirmedAt: at}
					return pipeline.Split{Order: o, Rule: "r", Commission: 1, SellerShare: 9}, nil, nil
				}
			}
			window := func(pipeline.Date) pipeline.Window { return pipeline.Window{} }
			if way == "one pass" {
				if s, err := pipeline.ExtractTransform(rows, allSellers{}, l, window, classifier)(ctx, run); err != nil || len(s) != 2 {
					t.Fatalf("pass: %q, %v", s, err)
				}
			} else if _, err := pipeline.ExtractStage(rows, allSellers{}, l, window)(ctx, run); err != nil {
				t.Fatal(err)
			}
			got, err := l.RunSellers(ctx, run.ID)
			if err != nil {
				t.Fatal(err)
			}
			if want := slices.Sorted(slices.Values([]string{mine[0], mine[1], mine[4]})); !slices.Equal(slices.Sorted(maps.Keys(got)), want) {
				t.Errorf("sellers recorded %v, want %v (the day's and the one with a balance carried)", slices.Sorted(maps.Keys(got)), want)
			}
			// The one with only a carried balance is marked so (migration
			// 00035): its record says nothing of its account.
			var only []string
			if err := l.DB().Select(&only, `SELECT seller_id FROM run_sellers WHERE run_id = $1 AND carried_only`, run.ID); err != nil {
				t.Fatal(err)
			}
			if want := slices.Sorted(slices.Values([]string{mine[1], mine[4]})); !slices.Equal(slices.Sorted(slices.Values(only)), want) {
				t.Errorf("sellers recorded with only a carried balance: %v, want %v", only, want)
			}
		})
	}
}

// A settle from before migration 00035 recorded the sellers it read for
// only a carried balance as the newer one does, unmarked, and 00035 left
// those records carried_only false; 00036 marks them, and no record of a
// seller the run's rows named: by the run's items and rejects once its
// transform is done, by its source rows before (a run stopped after its
// extract stage has no item yet).
func TestMigration00036MarksAnOlderSettlesCarriedOnlyRecords(t *testing.T) {
	for i, way := range []string{"transformed", "extracted only"} {
		t.Run(way, func(t *testing.T) {
			l := openAt(t, 35)
			ctx := context.Background()
			d := pipeline.Date{Year: 2026, Month: 11, Day: 10 + i}
			at := time.Date(d.Year, time.Month(d.Month), d.Day, 12, 0, 0, 0, time.UTC)
			earlier, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: d.AddDays(-3), Shard: pipeline.Whole}, pipeline.RunParams{TimeZone: "UTC"})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"SD", "SC"} { // a seller of the day's with a balance carried, one of none
				l.DB().MustExec(`INSERT INTO adjustments (seller_id, currency, kind, amount_minor, reason, business_date, run_id)
					VALUES ($1, 'USD', 'held', 100, 'below the minimum payout', $2, $3)`, s, d.AddDays(-3).String(), earlier.ID)
			}
			run, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: d, Shard: pipeline.Whole}, pipeline.RunParams{TimeZone: "UTC"})
			if err != nil {
				t.Fatal(err)
			}
			rows := rowsSource{rows: []pipeline.SourceRow{{Seq: 1, OrderNo: sp("A1"), SellerID: sp("SD"), Provider: sp("infiniapay"),
				Currency: sp("USD"), AmountMinor: sp("10"), RefundedMinor: sp("0"), PaidAt: &at, ConfirmedAt: &at}}}
			window := func(pipeline.Date) pipeline.Window { return pipeline.Window{} }
			if way == "transformed" {
				classifier := func(func(string) (pipeline.Seller, bool, error)) pipeline.Classifier {
					return func(r pipeline.SourceRow) (pipeline.Split, *pipeline.Reject, error) {
						o := pipeline.Order{Seq: r.Seq, OrderNo: *r.OrderNo, SellerID: *r.SellerID, Channel: chInfinia,
							Currency: "USD", Amount: 10, PaidAt: at, ConfirmedAt: at}
						return pipeline.Split{Order: o, Rule: "r", Commission: 1, SellerShare: 9}, nil, nil
					}
				}
				if _, err := pipeline.ExtractTransform(rows, allSellers{}, l, window, classifier)(ctx, run); err != nil {
					t.Fatal(err)
				}
				l.DB().MustExec(`UPDATE runs SET stages_done = '{extract,transform}' WHERE id = $1`, run.ID)
			} else {
				if _, err := pipeline.ExtractStage(rows, allSellers{}, l, window)(ctx, run); err != nil {
					t.Fatal(err)
				}
				l.DB().MustExec(`UPDATE runs SET stages_done = '{extract}' WHERE id = $1`, run.ID)
			}
			// What the older settle left: the same records, unmarked.
			l.DB().MustExec(`UPDATE run_sellers SET carried_only = false`)
			if _, err := l.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			var only []string
			if err := l.DB().Select(&only, `SELECT seller_id FROM run_sellers WHERE run_id = $1 AND carried_only ORDER BY 1`, run.ID); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(only, []string{"SC"}) {
				t.Errorf("records marked carried-only by the migration: %v, want [SC]", only)
			}
		})
	}
}
