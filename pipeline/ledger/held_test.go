package ledger_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// HeldOfRun, which the reject gate counts, groups the run's items of one
// channel held with a reason that starts with the prefix: not another
// channel's, not an item in another state with such a reason, not a held
// item with another reason, not one held once that moved on. It reads
// them from the notes of the items that became held (migration 00034).
func TestHeldOfRunCountsOnlyTheChannelsItemsHeldSo(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: day, Shard: pipeline.Whole}, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(day.Year, time.Month(day.Month), day.Day, 12, 0, 0, 0, time.UTC)
	items := []struct {
		no     string
		ch     pipeline.Channel
		state  string
		reason string
	}{
		{"O1", chPayProtocol, "held", "failed: expired"},
		{"O2", chPayProtocol, "held", "failed: expired"},
		{"O3", chPayProtocol, "held", "failed: declined"},
		{"O4", chPayProtocol, "held", "held: a file refused"}, // another reason
		{"O5", chPayProtocol, "recorded", "failed: expired"},  // not held
		{"O6", chInfinia, "held", "failed: expired"},          // another channel
		{"O7", chPayProtocol, "held", "failed: expired"},      // paid since, below
	}
	if _, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
		for _, it := range items {
			o := pipeline.Order{OrderNo: it.no, SellerID: "S1", Channel: it.ch, ProviderTxnID: "T" + it.no,
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
		if _, err := l.DB().ExecContext(ctx, `UPDATE items SET state = $2, reason = $3 WHERE run_id = $1 AND order_no = $4`,
			run.ID, it.state, it.reason, it.no); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.DB().ExecContext(ctx, `UPDATE items SET state = 'paid', reason = '' WHERE run_id = $1 AND order_no = 'O7'`, run.ID); err != nil {
		t.Fatal(err)
	}
	got, err := l.HeldOfRun(ctx, run.ID, chPayProtocol, "failed:")
	if err != nil {
		t.Fatal(err)
	}
	want := []ledger.RejectReason{{Reason: "failed: expired", Count: 2, Sample: "O1"}, {Reason: "failed: declined", Count: 1, Sample: "O3"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("held %+v, want %+v", got, want)
	}
}
