package ledger_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// TestAShardsReconcileJudgesOnlyItsOwnSellers: a shard's reconcile stage
// judged the conservation of the whole date's sellers.csv and summary.csv,
// so a shard whose own work was clean ended 4 while another shard of the
// Indexed Job was between recording a revenue share succeeded (the
// engine's RecordOutcome) and applying it to its items (PayoutSucceeded, a
// later transaction): for that instant the other shard's seller shows the
// share both paid and unsettled (found by a review). FailIndex then failed
// a healthy index, its message naming a seller it does not own. The other
// shard itself still sees it.
func TestAShardsReconcileJudgesOnlyItsOwnSellers(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	d := day
	s0, s1 := pipeline.Shard{Index: 0, Count: 2}, pipeline.Shard{Index: 1, Count: 2}
	// seller S1 belongs to exactly one shard: "other" is that one.
	mine, other := s0, s1
	if s0.Owns("S1") {
		mine, other = s1, s0
	}
	runOther, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: d, Shard: other}, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	runMine, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: d, Shard: mine}, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(d.Year, time.Month(d.Month), d.Day, 12, 0, 0, 0, time.UTC)
	if _, err := l.WriteItems(ctx, runOther, func(w pipeline.ItemWriter) error {
		o := pipeline.Order{OrderNo: "OA", SellerID: "S1", Channel: chInfinia, ProviderTxnID: "TOA", Currency: "USD",
			Amount: 1100, Category: "c", PaidAt: now, ConfirmedAt: now}
		return w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 100, SellerShare: 1000})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.SetItemsState(ctx, runOther.ID, "S1", "USD", shareChannels, "recorded", "uploaded", "", "", ""); err != nil {
		t.Fatal(err)
	}
	// The other shard's distribute: its revenue share answered SUCCESS
	// and recorded so; PayoutSucceeded (the items) not applied yet.
	e, err := l.PlanPayout(ctx, runOther, "S1", shareChannels, payout(runOther, 1000, 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.RecordOutcome(ctx, e.ID, pipeline.EffectSucceeded, "REF1", ""); err != nil {
		t.Fatal(err)
	}

	// Meanwhile my shard (no orders of its own) reconciles.
	stage := pipeline.ReconcileStage(l, nil, func(context.Context, *pipeline.Run) (string, error) { return "", nil }, 0)
	_, err = stage(ctx, runMine)
	if err != nil {
		t.Errorf("shard %v has nothing wrong of its own, yet its reconcile needs a person: %v", mine, err)
		if strings.Contains(err.Error(), "S1") {
			t.Logf("(S1 is shard %v's seller)", other)
		}
	}
	// The other shard judges its own seller.
	lines, err := l.Unbalanced(ctx, runOther.Key)
	if err != nil || len(lines) != 1 || !strings.Contains(lines[0], "sellers.csv S1 USD") {
		t.Fatalf("shard %v's own view: %q (%v), want S1's line", other, lines, err)
	}
}

// TestAFailedBalanceOnlyRevenueShareIsCounted: FailedPayouts counted a
// failed revenue share only while a held entry carrying its own items was
// open. One that paid only a carried balance (no orders of the seller that
// day) carries no items when it fails: PayoutFailed opens the netted
// entries again, which keep their old subjects, so the failure was never
// counted - payouts.csv said failed, the money was still owed, and the
// date's reconciliation said 0 failed payouts (found by a review). Once a
// later revenue share pays the balance, it is no longer counted.
func TestAFailedBalanceOnlyRevenueShareIsCounted(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	d1, d2 := day, day.AddDays(1)
	ch := shareChannels
	r1 := uploadedItems(t, l, d1, "A", 2, 1000)
	if amount, _, err := l.CarryItems(ctx, r1, "S1", "USD", ch, shareSubject(d1, "S1", "USD"), "binding PENDING"); err != nil || amount != 2000 {
		t.Fatalf("carry: %d %v", amount, err)
	}
	// Day 2: no orders of S1; its revenue share pays the balance alone, and fails.
	r2 := openRun(t, l, d2)
	e, err := l.PlanPayout(ctx, r2, "S1", ch, payout(r2, 2000, 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.RecordOutcome(ctx, e.ID, pipeline.EffectFailed, "", "FAILED: account frozen"); err != nil {
		t.Fatal(err)
	}
	e.State = pipeline.EffectFailed
	if err := l.PayoutFailed(ctx, r2, "S1", "USD", ch, e, "revenue share failed"); err != nil {
		t.Fatal(err)
	}
	if open := openBalance(t, l); open != 2000 {
		t.Fatalf("open balance %d, want 2000 (still owed)", open)
	}
	n, err := l.FailedPayouts(ctx, r2.Key)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("FailedPayouts of %s = %d, want 1: its revenue share failed and the 2000 it was to pay is still owed", d2, n)
	}
	// Day 3 pays the balance: day 2's failure is settled.
	r3 := openRun(t, l, d2.AddDays(1))
	e3, err := l.PlanPayout(ctx, r3, "S1", ch, payout(r3, 2000, 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.RecordOutcome(ctx, e3.ID, pipeline.EffectSucceeded, "REF3", ""); err != nil {
		t.Fatal(err)
	}
	if n, err := l.FailedPayouts(ctx, r2.Key); err != nil || n != 0 {
		t.Errorf("after day 3 paid the balance: FailedPayouts of %s = %d (%v), want 0", d2, n, err)
	}
}

// TestReportWritersOfADateGoOneAfterAnother: the shards of an Indexed Job
// write the same report files; a writer whose read began before another
// shard's last payouts could rename its files over that shard's newer ones
// (found by a review). The date's report lock makes them wait for each
// other; another date's writer does not wait.
func TestReportWritersOfADateGoOneAfterAnother(t *testing.T) {
	t.Parallel()
	l, url := open(t)
	other, err := ledger.Open(context.Background(), url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	release, err := l.LockReports(context.Background(), day)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if r, err := other.LockReports(ctx, day); err == nil {
		r()
		t.Fatal("a second writer of the date's reports went on beside the first")
	}
	r, err := other.LockReports(context.Background(), day.AddDays(1))
	if err != nil {
		t.Fatalf("another date's writer: %v", err)
	}
	r()
	release()
	r, err = other.LockReports(context.Background(), day)
	if err != nil {
		t.Fatalf("after the first writer: %v", err)
	}
	r()
}

// TestEveryShardJudgesTheSummary: a first fix judged the date's
// summary.csv only while no other run of the date was running; the shards
// of an Indexed Job reconcile at once, each running until its reconcile
// ends, so none judged it, and a summary line that does not balance (an
// item in a state the summary's classes do not account for, while its
// seller line, whose "unsettled" is a catch-all, balances) ended no run 4
// (found by a review). The summary is one statement over the items'
// states, which no shard's work in flight unbalances: every shard judges
// it.
func TestEveryShardJudgesTheSummary(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	s0, s1 := pipeline.Shard{Index: 0, Count: 2}, pipeline.Shard{Index: 1, Count: 2}
	mine := s0
	if !s0.Owns("S1") {
		mine = s1
	}
	var runs []*pipeline.Run
	for _, sh := range []pipeline.Shard{s0, s1} {
		r, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: day, Shard: sh}, pipeline.RunParams{TimeZone: "UTC"})
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	owner := runs[0]
	if mine == s1 {
		owner = runs[1]
	}
	now := time.Date(day.Year, time.Month(day.Month), day.Day, 12, 0, 0, 0, time.UTC)
	if _, err := l.WriteItems(ctx, owner, func(w pipeline.ItemWriter) error {
		o := pipeline.Order{OrderNo: "OA", SellerID: "S1", Channel: chInfinia, ProviderTxnID: "TOA", Currency: "USD",
			Amount: 1100, Category: "c", PaidAt: now, ConfirmedAt: now}
		return w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 100, SellerShare: 1000})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DB().Exec(`UPDATE items SET state = 'verified' WHERE order_no = 'OA'`); err != nil {
		t.Fatal(err)
	}
	// Both shards reconcile while the other is still running.
	reported := 0
	for _, r := range runs {
		lines, err := l.Unbalanced(ctx, r.Key)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range lines {
			if strings.HasPrefix(line, "summary.csv") {
				reported++
			}
		}
	}
	if reported != 2 {
		t.Errorf("two shards reconciling at once: %d judged the unbalanced summary.csv, want both", reported)
	}
}
