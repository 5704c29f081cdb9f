package ledger_test

import (
	"context"
	"fmt"
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

// TestRejectedToWatch: the watch of rejected orders reads, of the runs
// dated in its window before the run's date, the rejected items of the
// channel rejected for one of the reasons, in pages: those of the run's
// shard and, for shard 0, those of a date run in another sharding (each
// earlier run watched by one shard of a night, as RunsToRecheck shares
// them), but the runs it is told to skip; none of the run's own date or
// of one before the window.
func TestRejectedToWatch(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	const person, older = pipeline.RejectedByPerson, "Pay Protocol payment is failed"
	reasons := []string{person, older}
	tonight := pipeline.Date{Year: 2027, Month: 1, Day: 10}
	runs := map[string]*pipeline.Run{}
	open := func(name string, d pipeline.Date, sh pipeline.Shard, items map[string]string) {
		t.Helper()
		run, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: d, Shard: sh}, pipeline.RunParams{TimeZone: "UTC"})
		if err != nil {
			t.Fatal(err)
		}
		runs[name] = run
		at := d.Time(time.UTC).Add(time.Hour)
		if _, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
			for no := range items {
				ch := chPayProtocol
				if strings.HasPrefix(no, "I") {
					ch = chInfinia
				}
				if err := w.Split(pipeline.Split{Order: pipeline.Order{OrderNo: no, SellerID: "S1", Channel: ch, ProviderTxnID: "T" + no,
					Currency: "USD", Amount: 1000, Category: "c", PaidAt: at, ConfirmedAt: at}, Rule: "r", SellerShare: 1000, Unverified: ch == chPayProtocol}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for no, reason := range items {
			from := ledger.ItemUnverified
			if strings.HasPrefix(no, "I") {
				from = ledger.ItemRecorded
			}
			if reason != "" {
				if err := l.SetItemState(ctx, run.ID, no, from, ledger.ItemRejected, reason); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	half0, half1 := pipeline.Shard{Index: 0, Count: 2}, pipeline.Shard{Index: 1, Count: 2}
	open("a0", tonight.AddDays(-40), half0, map[string]string{"A1": person, "A2": older, "A3": "Pay Protocol payment is refunded", "A4": "", "I1": person})
	open("a1", tonight.AddDays(-40), half1, map[string]string{"B1": person})
	open("whole", tonight.AddDays(-30), pipeline.Whole, map[string]string{"C1": older})
	open("edge", tonight.AddDays(-90), half1, map[string]string{"D1": person})
	open("before", tonight.AddDays(-91), half1, map[string]string{"D0": person})
	open("skipped", tonight.AddDays(-1), half0, map[string]string{"E1": person})
	open("own", tonight, half0, map[string]string{"F1": person})
	t0, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: tonight, Shard: half0}, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	t1, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: tonight, Shard: half1}, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	walk := func(run *pipeline.Run, skip []int64, limit int) []string {
		t.Helper()
		var got []string
		for after := ""; ; {
			items, err := l.RejectedToWatch(ctx, run, tonight.AddDays(-90), skip, chPayProtocol, reasons, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range items {
				got = append(got, it.OrderNo+" "+it.Date.String()+" "+it.ProviderTxnID+" "+it.State)
			}
			if len(items) < limit || limit == 0 {
				return got
			}
			after = items[len(items)-1].OrderNo
		}
	}
	want0 := []string{"A1 2026-12-01 TA1 rejected", "A2 2026-12-01 TA2 rejected", "C1 2026-12-11 TC1 rejected"}
	if got := walk(t0, []int64{t0.ID, runs["skipped"].ID}, 2); strings.Join(got, "|") != strings.Join(want0, "|") {
		t.Errorf("shard 0/2 watches %q, want %q", got, want0)
	}
	want1 := []string{"B1 2026-12-01 TB1 rejected", "D1 2026-10-12 TD1 rejected"}
	if got := walk(t1, nil, 0); strings.Join(got, "|") != strings.Join(want1, "|") {
		t.Errorf("shard 1/2 watches %q, want %q", got, want1)
	}
	if got := walk(t0, nil, 0); len(got) != 4 || !strings.HasPrefix(got[3], "E1 ") {
		t.Errorf("shard 0/2, nothing skipped, watches %q, want E1 too", got)
	}
	if items, err := l.RejectedToWatch(ctx, t0, tonight, nil, chPayProtocol, reasons, "", 0); err != nil || len(items) != 0 {
		t.Errorf("a window of no day: %v, %v", items, err)
	}
}

// TestRejectedToWatchReadsNoDaysItems: the watch's page costs what the
// window rejected, not what it settled: on a ledger of 20 days of 3,000
// items each, a few rejected, its plan reads the runs by their date, the
// notes of their rejected items and each item by its key, never the
// items table whole (EXPLAIN ANALYZE: no sequential scan of items, nor a
// bitmap of a run's items).
func TestRejectedToWatchReadsNoDaysItems(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	tonight := pipeline.Date{Year: 2027, Month: 1, Day: 10}
	const days, perDay = 20, 3000
	for k := 1; k <= days; k++ {
		d := tonight.AddDays(-k)
		run := openRun(t, l, d)
		at := d.Time(time.UTC).Add(time.Hour)
		if _, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
			for i := range perDay {
				no := fmt.Sprintf("O%02d-%05d", k, i)
				if err := w.Split(pipeline.Split{Order: pipeline.Order{Seq: int64(i + 1), OrderNo: no, SellerID: fmt.Sprintf("S%03d", i%300),
					Channel: chPayProtocol, ProviderTxnID: "T" + no, Currency: "USD", Amount: 1000, Category: "c", PaidAt: at, ConfirmedAt: at},
					Rule: "r", SellerShare: 1000, Unverified: true}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < perDay; i += 500 {
			if err := l.SetItemState(ctx, run.ID, fmt.Sprintf("O%02d-%05d", k, i), ledger.ItemUnverified, ledger.ItemRejected, pipeline.RejectedByPerson+" (p): n"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := l.DB().Exec(`ANALYZE`); err != nil {
		t.Fatal(err)
	}
	var plan []string
	if err := l.DB().Select(&plan, `EXPLAIN (ANALYZE, COSTS OFF) `+ledger.RejectedToWatchQuery, 0, 1, tonight.AddDays(-90).String(), tonight.String(),
		"{}", "", string(chPayProtocol), "{"+pipeline.RejectedByPerson+"}", 5000); err != nil {
		t.Fatal(err)
	}
	p := strings.Join(plan, "\n")
	if strings.Contains(p, "Seq Scan on items ") || strings.Contains(p, "Bitmap Heap Scan on items ") || strings.Contains(p, "Parallel Seq Scan on items ") {
		t.Errorf("the watch reads the days' items:\n%s", p)
	}
	if !strings.Contains(p, "rows=120 ") {
		t.Errorf("the watch's page is not the 120 rejected items:\n%s", p)
	}
}

// TestAnOrderRejectedWithItsSellerIsNotReopened: a Pay Protocol order a
// person rejected with its seller (settle resolve --seller --reject: the
// seller will never have an account) starts with a person's rejection,
// one of the reasons ReopenRejected takes; reopened, it would be held
// again, to be paid to a seller with no account. It is refused here too,
// not only by the command.
func TestAnOrderRejectedWithItsSellerIsNotReopened(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	at := time.Date(2026, 11, 23, 1, 0, 0, 0, time.UTC)
	_, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
		return w.Split(pipeline.Split{Order: pipeline.Order{OrderNo: "O1", SellerID: "S1", Channel: chPayProtocol, ProviderTxnID: "TO1",
			Currency: "USD", Amount: 1000, Category: "c", PaidAt: at, ConfirmedAt: at}, Rule: "r", SellerShare: 1000,
			SellerHold: "seller S1 has no Infinia Pay seller id"})
	})
	if err != nil {
		t.Fatal(err)
	}
	reason := pipeline.RejectedSellerHold + " at T: no id): left; was " + pipeline.SellerHoldPrefix + "seller S1 has no Infinia Pay seller id"
	if err := l.SetItemState(ctx, run.ID, "O1", ledger.ItemHeld, ledger.ItemRejected, reason); err != nil {
		t.Fatal(err)
	}
	reasons := []string{pipeline.RejectedByPerson, "Pay Protocol payment is failed"}
	if _, _, err := l.ReopenRejected(ctx, day, chPayProtocol, "O1", reasons, "held: reopened", "paid at T", "checked"); pipeline.KindOf(err) != pipeline.KindUsage {
		t.Fatalf("reopen an order rejected with its seller: %v, want refused", err)
	}
}
