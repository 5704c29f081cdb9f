package ledger_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// TestRejectedItemsAndReopen: RejectedItemsAfter returns the run's
// rejected items of the channel whose reason starts with one of those
// given (a person's rejection, an older settle's of a failed payment), in
// pages, and no other; ReopenRejected holds one again, with the proof and
// note and a resolution, said again changes nothing, and refuses an item
// rejected for another reason or not rejected.
func TestRejectedItemsAndReopen(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	at := time.Date(2026, 11, 23, 1, 0, 0, 0, time.UTC)
	pp := chPayProtocol
	_, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
		for _, no := range []string{"O1", "O2", "O3", "O4", "O5"} {
			s := pipeline.Split{Order: pipeline.Order{OrderNo: no, SellerID: "S1", Channel: pp, ProviderTxnID: "T" + no,
				Currency: "USD", Amount: 1000, Category: "c", PaidAt: at, ConfirmedAt: at}, Rule: "r", SellerShare: 1000, Unverified: true}
			if err := w.Split(s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	const person, older = pipeline.RejectedByPerson, "Pay Protocol payment is failed"
	for no, reason := range map[string]string{"O1": person + " (proof): note; was held: x", "O2": "Pay Protocol payment is refunded",
		"O4": older, "O5": older} {
		if err := l.SetItemState(ctx, run.ID, no, ledger.ItemUnverified, ledger.ItemRejected, reason); err != nil {
			t.Fatal(err)
		}
	}
	reasons := []string{person, older}
	var got []string
	for after := ""; ; {
		items, next, err := l.RejectedItemsAfter(ctx, run.ID, pp, reasons, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			got = append(got, it.OrderNo+" "+it.State+" "+it.ProviderTxnID+" "+it.Reason)
		}
		if next == "" {
			break
		}
		after = next
	}
	want := []string{"O1 rejected TO1 " + person + " (proof): note; was held: x", "O4 rejected TO4 " + older, "O5 rejected TO5 " + older}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("rejected items %q, want %q", got, want)
	}
	if items, _, err := l.RejectedItemsAfter(ctx, run.ID, chInfinia, reasons, "", 0); err != nil || len(items) != 0 {
		t.Errorf("another channel: %v, %v", items, err)
	}

	const held = "held: reopened"
	it, before, err := l.ReopenRejected(ctx, day, pp, "O4", reasons, held, "paid at T", "checked, PP-1")
	if err != nil || before || it.State != ledger.ItemHeld || it.Reason != held+" (paid at T): checked, PP-1; was "+older {
		t.Fatalf("reopen O4: %+v, %v, %v", it, before, err)
	}
	if it, before, err := l.ReopenRejected(ctx, day, pp, "O4", reasons, held, "again", "again"); err != nil || !before || !strings.Contains(it.Reason, "PP-1") {
		t.Errorf("reopen O4 again: %+v, %v, %v", it, before, err)
	}
	// An item held again keeps its note: the walk checks each against its
	// item.
	if items, _, err := l.RejectedItemsAfter(ctx, run.ID, pp, reasons, "", 0); err != nil || len(items) != 2 || items[0].OrderNo != "O1" || items[1].OrderNo != "O5" {
		t.Errorf("rejected items after O4 reopened: %+v, %v; want O1 and O5", items, err)
	}
	rs, err := l.Resolutions(ctx, day)
	if err != nil || len(rs) != 1 || rs[0].Kind != ledger.KindReopened || rs[0].Subject != "TO4" || rs[0].Key != "O4" || rs[0].Note != "checked, PP-1" {
		t.Errorf("resolutions %+v, %v", rs, err)
	}
	for _, no := range []string{"O2", "O3"} {
		if _, _, err := l.ReopenRejected(ctx, day, pp, no, reasons, held, "p", "n"); pipeline.KindOf(err) != pipeline.KindUsage {
			t.Errorf("reopen %s: %v, want refused", no, err)
		}
	}
	if _, _, err := l.ReopenRejected(ctx, day, pp, "O5", reasons, held, "p", " "); pipeline.KindOf(err) != pipeline.KindUsage {
		t.Errorf("reopen without a note: %v, want refused", err)
	}
	items, _, err := l.RejectedItemsAfter(ctx, run.ID, pp, reasons, "", 0)
	if err != nil || len(items) != 2 {
		t.Errorf("after O4 reopened: %v, %v; want O1 and O5", items, err)
	}
}
