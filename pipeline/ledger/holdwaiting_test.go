package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// HoldWaiting gives a hold as their reason to the run's items of one
// seller and currency that wait in the state asked - recorded in no
// trade file, or uploaded and covered by no payout - leaving their state,
// and an item said otherwise already its reason; the summary counts them
// held, not in progress. ReleaseWaiting takes that hold back alone.
func TestHoldWaitingHoldsOnlyTheItemsWaitingInTheState(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: day, Shard: pipeline.Whole}, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(day.Year, time.Month(day.Month), day.Day, 12, 0, 0, 0, time.UTC)
	const hold = pipeline.HeldPrefix + "past memory"
	items := []struct {
		no, seller, state, ref, key, reason string
		held                                bool // after both holds
	}{
		{"O1", "S1", "recorded", "", "", "", true},
		{"O2", "S1", "recorded", "F1", "", "", false},                 // in a trade file
		{"O3", "S1", "uploaded", "F0", "", "", true},                  // covered by no payout
		{"O4", "S1", "uploaded", "F0", "K1", "", false},               // covered by a payout
		{"O5", "S1", "recorded", "", "", "held: another hold", false}, // said otherwise already
		{"O6", "S2", "recorded", "", "", "", false},                   // another seller
		{"O7", "S1", "paid", "F0", "K0", "", false},
	}
	if _, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
		for _, it := range items {
			o := pipeline.Order{OrderNo: it.no, SellerID: it.seller, Channel: chInfinia, ProviderTxnID: "T" + it.no,
				Currency: "USD", Amount: 1100, Category: "c", PaidAt: now, ConfirmedAt: now}
			if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 100, SellerShare: 1000}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if _, err := l.DB().ExecContext(ctx, `UPDATE items SET state = $2, provider_ref = $3, payout_key = $4, reason = $5 WHERE run_id = $1 AND order_no = $6`,
			run.ID, it.state, it.ref, it.key, it.reason, it.no); err != nil {
			t.Fatal(err)
		}
	}
	chs := []pipeline.Channel{chInfinia}
	for _, state := range []string{pipeline.ItemRecorded, pipeline.ItemUploaded} {
		for range 2 { // again: nothing more
			if _, err := l.HoldWaiting(ctx, run.ID, "S1", "USD", chs, state, hold); err != nil {
				t.Fatal(err)
			}
		}
	}
	reasons := func() map[string]string {
		out := map[string]string{}
		rows, err := l.DB().QueryContext(ctx, `SELECT order_no, state, reason FROM items WHERE run_id = $1`, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var no, state, reason string
			if err := rows.Scan(&no, &state, &reason); err != nil {
				t.Fatal(err)
			}
			out[no] = state + " " + reason
		}
		return out
	}
	got := reasons()
	for _, it := range items {
		want := it.state + " " + it.reason
		if it.held {
			want = it.state + " " + hold
		}
		if got[it.no] != want {
			t.Errorf("%s: %q, want %q", it.no, got[it.no], want)
		}
	}
	var held, progress int64
	if err := l.SummaryLines(ctx, day, func(x pipeline.SummaryLine) error {
		held, progress = held+x.Held, progress+x.InProgress
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if held != 3000 || progress != 3000 { // O1, O3, O5 held; O2, O4, O6 in progress
		t.Errorf("summary: %d held, %d in progress; want 3000, 3000", held, progress)
	}
	for _, state := range []string{pipeline.ItemRecorded, pipeline.ItemUploaded} {
		if _, err := l.ReleaseWaiting(ctx, run.ID, chs, state, hold); err != nil {
			t.Fatal(err)
		}
	}
	got = reasons()
	for _, it := range items {
		if want := it.state + " " + it.reason; got[it.no] != want {
			t.Errorf("released, %s: %q, want %q", it.no, got[it.no], want)
		}
	}
}
