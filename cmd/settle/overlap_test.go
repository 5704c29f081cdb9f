package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// runInfiniaOn is runInfinia for the date d.
func (e *env) runInfiniaOn(sim *paysim.Sim, d string, extra ...string) (string, int) {
	e.t.Helper()
	args := e.infiniaArgs(sim)
	args[slices.Index(args, "--date")+1] = d
	args = append(args, "--skip-channel", "wechatpay", "--skip-channel", "payprotocol")
	return e.settle(append(args, extra...)...)
}

// holdRun takes the lock of date d's run (whole, or shard) as its process
// does while it runs, and returns the run, an open ledger and the release.
func (e *env) holdRun(d string, shard pipeline.Shard) (*pipeline.Run, *ledger.Ledger, func()) {
	e.t.Helper()
	ctx := context.Background()
	l, err := ledger.Open(ctx, e.url, "")
	if err != nil {
		e.t.Fatal(err)
	}
	date, _ := pipeline.ParseDate(d)
	runs, err := l.RunsOn(ctx, date)
	if err != nil {
		e.t.Fatal(err)
	}
	i := slices.IndexFunc(runs, func(r *pipeline.Run) bool { return r.Key.Shard == shard })
	if i < 0 {
		e.t.Fatalf("no run of %s shard %v", d, shard)
	}
	release, err := l.Lock(ctx, runs[i].Key)
	if err != nil {
		e.t.Fatal(err)
	}
	return runs[i], l, func() { release(); l.Close() }
}

// noFailedShares fails the test for every revenue share Infinia failed.
func noFailedShares(t *testing.T, sim *paysim.Sim) {
	t.Helper()
	for _, s := range sim.Infinia.RevenueShares() {
		if s.Status == infiniapay.StatusFailed {
			t.Errorf("Infinia failed revenue share %s of %s %d %s: %s", s.RequestNo, s.SellerID, s.Amount, s.Currency, s.FailReason)
		}
	}
}

// TestARunBesideABackfillOfTheSellerHoldsWhatBothCannotBePaid: a backfill
// of an earlier date planned a seller's revenue share and is sending it
// while the nightly run plans the same seller's: the seller's available
// share at Infinia covers each alone, not both. The nightly checked its
// own net alone, sent, and Infinia failed the backfill's share (found by
// a review, two settle processes against paysim). It counts what the
// backfill recorded and Infinia has not taken yet: the seller's payout is
// carried for a person, and the backfill's goes through.
func TestARunBesideABackfillOfTheSellerHoldsWhatBothCannotBePaid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const before = "2026-11-22"
	for _, d := range []string{before, testDate} {
		e.mustSettle("seed", "--date", d, "--orders", "60", "--sellers", "3", "--seed", "3")
	}
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 3, nil, balance)
	for _, d := range []string{before, testDate} {
		if out, code := e.runInfiniaOn(sim, d, "--until", "upload"); code != 0 {
			t.Fatalf("%s until upload: exit %d\n%s", d, code, out)
		}
	}
	// A seller and currency with items of both dates.
	var pick struct {
		Seller  string `db:"seller_id"`
		Account string `db:"infinia_seller_id"`
		Cur     string `db:"currency"`
		Before  int64  `db:"before"`
		Night   int64  `db:"night"`
	}
	if err := e.db.Get(&pick, `SELECT i.seller_id, s.infinia_seller_id, i.currency,
			sum(i.seller_minor) FILTER (WHERE i.business_date = $1) AS before,
			sum(i.seller_minor) FILTER (WHERE i.business_date = $2) AS night
		FROM settle.items i JOIN settle.run_sellers s ON s.run_id = i.run_id AND s.seller_id = i.seller_id
		WHERE i.state = 'uploaded' AND i.channel = 'infiniapay' GROUP BY 1, 2, 3
		HAVING count(DISTINCT i.business_date) = 2 ORDER BY 1, 3 LIMIT 1`, before, testDate); err != nil {
		t.Fatal(err)
	}
	sim.Infinia.SetAvailable(pick.Account, pipeline.Currency(pick.Cur), max(pick.Before, pick.Night))

	// The backfill holds its date and has planned the seller's share, as
	// its planning does, when the nightly run plans.
	run, l, release := e.holdRun(before, pipeline.Whole)
	cur := pipeline.Currency(pick.Cur)
	if _, err := l.PlanPayout(context.Background(), run, pick.Seller, []pipeline.Channel{infiniapay.Channel, payprotocol.Channel}, pipeline.Effect{
		RunID: run.ID, Kind: infiniapay.KindRevenueShare, Subject: infiniapay.RevenueShareSubject(run.Key.Date, pick.Seller, cur), Attempt: 1,
		Key: infiniapay.RevenueShareRequestNo(run.Key.Date, pick.Seller, cur, 1), Currency: cur, Amount: pick.Before}); err != nil {
		release()
		t.Fatal(err)
	}
	out, code := e.runInfiniaOn(sim, testDate)
	release()
	if want := "settle's other runs paying now (" + before + ") may still take"; code != 4 || !strings.Contains(out, want) {
		t.Errorf("the nightly beside the backfill: exit %d, want 4 naming the backfill (%q)\n%s", code, want, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE business_date = $1 AND seller_id = $2 AND currency = $3 AND state = 'carried'`, testDate, pick.Seller, pick.Cur); n == 0 {
		t.Errorf("the nightly's items of %s %s were not carried", pick.Seller, pick.Cur)
	}
	// The backfill sends what it planned: Infinia takes it. (Its
	// reconciliation finds the seller's available share short of what
	// the ledger expects, the trade files' less the shares paid: the
	// share was set so, to be short of both dates.)
	if out, code := e.runInfiniaOn(sim, before); code != 0 && !strings.Contains(out, "infiniapay amount available/"+pick.Seller+"/"+pick.Cur) {
		t.Errorf("the backfill: exit %d\n%s", code, out)
	}
	noFailedShares(t, sim)
	if got := sim.Infinia.Paid(pick.Account, cur); got != pick.Before {
		t.Errorf("%s %s paid %d, want the backfill's %d", pick.Seller, pick.Cur, got, pick.Before)
	}
}

// TestAShardBesideAnotherHoldsACurrencyTheBalanceCannotPayForBoth: the
// shards of an Indexed Job plan at once, and the platform balance in a
// currency covers each shard's payouts, not both. Each checked its own
// need alone, both sent, and Infinia failed what came second ("insufficient
// balance": found by a review, two shards against paysim). A shard counts
// what the other keeps to check: nothing is sent in the currency, for a
// person, as a day run whole does when its balance is short, and the
// other shard, checking next, pays its own. (Without the count, shard 1
// here took the balance shard 0 was about to check against.)
func TestAShardBesideAnotherHoldsACurrencyTheBalanceCannotPayForBoth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "80", "--sellers", "6", "--seed", "3")
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 6, nil, balance)
	for _, s := range []string{"0/2", "1/2"} {
		if out, code := e.runInfinia(sim, "--shard", s, "--until", "upload"); code != 0 {
			t.Fatalf("shard %s until upload: exit %d\n%s", s, code, out)
		}
	}
	var need []struct {
		Shard int    `db:"shard_index"`
		Cur   string `db:"currency"`
		Sum   int64  `db:"sum"`
	}
	if err := e.db.Select(&need, `SELECT r.shard_index, i.currency, sum(i.seller_minor) AS sum FROM settle.items i JOIN settle.runs r ON r.id = i.run_id
		WHERE i.state = 'uploaded' AND i.channel = 'infiniapay' AND i.currency = 'USD' GROUP BY 1, 2 ORDER BY 1`); err != nil {
		t.Fatal(err)
	}
	if len(need) != 2 {
		t.Fatalf("USD needs by shard %v, want both shards'", need)
	}
	usd := max(need[0].Sum, need[1].Sum)
	sim.Infinia.SetBalance("USD", usd)

	// Shard 0 holds its lock and keeps its USD payouts to check, as its
	// planning does, when shard 1 plans.
	run, l, release := e.holdRun(testDate, pipeline.Shard{Index: 0, Count: 2})
	ctx := context.Background()
	var kept []pipeline.PayoutCandidate
	err := l.EachPayoutCandidate(ctx, run, []pipeline.Channel{infiniapay.Channel, payprotocol.Channel}, infiniapay.Name, func(p pipeline.PayoutCandidate) error {
		if p.Currency == "USD" && run.Key.Shard.Owns(p.SellerID) && p.Items > 0 {
			kept = append(kept, p)
		}
		return nil
	})
	if err == nil {
		err = l.AddPayoutCandidates(ctx, run.ID, infiniapay.KindRevenueShare, kept)
	}
	if err != nil {
		release()
		t.Fatal(err)
	}
	out, code := e.runInfinia(sim, "--shard", "1/2")
	if err := l.ClearPayoutCandidates(ctx, run.ID, infiniapay.KindRevenueShare); err != nil {
		t.Error(err)
	}
	release()
	if want := "settle's other runs paying now (" + testDate + " shard 0/2) may still take: nothing sent in USD"; code != 4 || !strings.Contains(out, want) {
		t.Errorf("shard 1 beside shard 0: exit %d, want 4 naming shard 0 (%q)\n%s", code, want, out)
	}
	// Shard 0 pays its USD: the balance covers it.
	if out, code := e.runInfinia(sim, "--shard", "0/2"); code != 0 {
		t.Errorf("shard 0: exit %d\n%s", code, out)
	}
	noFailedShares(t, sim)
	if got := usd - sim.Infinia.Balance("USD"); got != need[0].Sum {
		t.Errorf("USD balance fell by %d, want shard 0's %d alone", got, need[0].Sum)
	}
}

// TestSettleReportWaitsForTheRunOfItsDate: settle report of a date a
// process works on read the ledger between that run's transactions - a
// revenue share recorded succeeded before its items are marked paid - and
// wrote sellers.csv lines that do not balance, exit 4, "the ledger holds
// money they do not account for" (found by a review: 5 of 454 reports
// written while a run of 3,000 orders distributed, against paysim). It
// writes nothing while the date's lock is held, naming the holder, exit
// 75; with --lock-wait it waits for the run to end, then writes them.
func TestSettleReportWaitsForTheRunOfItsDate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(40, 0)
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--until", "transform", "--out", e.reports)
	out := t.TempDir()
	ctx := context.Background()
	l, err := ledger.Open(ctx, e.url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d, _ := pipeline.ParseDate(testDate)
	release, err := l.LockDate(ctx, d) // a run of the date, in another process
	if err != nil {
		t.Fatal(err)
	}
	got, code := e.settle("report", "--date", testDate, "--out", out)
	if code != 75 || !strings.Contains(got, "(held by \"settle@") || !strings.Contains(got, "nothing written") {
		t.Errorf("settle report beside a run of its date: exit %d, want 75 naming the holder and that nothing was written\n%s", code, got)
	}
	if _, err := os.Stat(filepath.Join(out, testDate, "manifest.csv")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("settle report beside a run of its date wrote its reports (%v)", err)
	}
	// With --lock-wait it waits for the run, then writes them.
	w, done := waitingForTheLock(t, []string{"settle", "report", "--database-url", e.url, "--date", testDate, "--out", out, "--lock-wait", "10m"},
		func(string) string { return "" })
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != 0 {
		t.Fatalf("settle report --lock-wait once the run ended: exit %d\n%s", code, w)
	}
	if _, err := os.Stat(filepath.Join(out, testDate, "manifest.csv")); err != nil {
		t.Errorf("settle report --lock-wait once the run ended wrote no reports: %v\n%s", err, w)
	}
}

// TestSettleReportThatWaitedReadsTheRunsOfItsDateAfterTheWait: settle
// report --lock-wait read the date's runs before it waited for the lock,
// and named a shard run while it waited "not started: its sellers are not
// settled, nor in these reports", though they were in them.
func TestSettleReportThatWaitedReadsTheRunsOfItsDateAfterTheWait(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(40, 0)
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--shard", "0/2", "--until", "transform", "--out", e.reports)
	ctx := context.Background()
	l, err := ledger.Open(ctx, e.url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d, _ := pipeline.ParseDate(testDate)
	release, err := l.LockDate(ctx, d) // the date's other shard, about to begin
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	w, done := waitingForTheLock(t, []string{"settle", "report", "--database-url", e.url, "--date", testDate, "--out", out, "--lock-wait", "10m"},
		func(string) string { return "" })
	run, err := l.GetRun(ctx, pipeline.RunKey{Date: d, Shard: pipeline.Shard{Index: 0, Count: 2}})
	if err != nil || run == nil {
		t.Fatalf("shard 0/2's run: %v", err)
	}
	if _, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: d, Shard: pipeline.Shard{Index: 1, Count: 2}}, pipeline.RunParams{TimeZone: run.TimeZone, RulesHash: run.RulesHash, ConfigHash: run.ConfigHash}); err != nil {
		t.Fatal(err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	code := <-done
	if strings.Contains(w.String(), "not started") {
		t.Errorf("settle report --lock-wait (exit %d) names a shard that began while it waited not started:\n%s", code, w)
	}
}
