package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// TestRunStateNeverContradictsItsStages drives the Runner over the real
// ledger: a stage's error is no longer the run's last word once a later
// invocation gets past it; a run with every stage done is never "failed",
// even when a re-run's reconcile needs a person.
func TestRunStateNeverContradictsItsStages(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	key := pipeline.RunKey{Date: day, Shard: pipeline.Whole}
	var uploadErr, reconcileErr error
	ok := func(context.Context, *pipeline.Run) (string, error) { return "ok", nil }
	r := &pipeline.Runner{Store: l, Repeat: map[pipeline.Stage]bool{pipeline.StageReconcile: true}, Stages: map[pipeline.Stage]pipeline.StageFunc{
		pipeline.StageExtract: ok, pipeline.StageTransform: ok, pipeline.StageDistribute: ok,
		pipeline.StageUpload:    func(context.Context, *pipeline.Run) (string, error) { return "", uploadErr },
		pipeline.StageReconcile: func(context.Context, *pipeline.Run) (string, error) { return "", reconcileErr },
	}}
	state := func(when, wantState, wantErr string) {
		t.Helper()
		run, err := l.GetRun(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if string(run.State) != wantState || !strings.HasPrefix(run.LastError, wantErr) || (wantErr == "") != (run.LastError == "") {
			t.Errorf("%s: state %s, last error %q; want %s, %q", when, run.State, run.LastError, wantState, wantErr)
		}
	}

	uploadErr = errors.New("sftp: connection refused")
	if _, err := r.Execute(ctx, key, pipeline.RunParams{TimeZone: "UTC"}, pipeline.StageReconcile); err == nil {
		t.Fatal("the upload stage's error was not returned")
	}
	state("upload failed", "failed", "stage upload: sftp: connection refused")

	// The next invocation gets past upload but stops before the end: the
	// upload error is gone.
	uploadErr = nil
	if _, err := r.Execute(ctx, key, pipeline.RunParams{TimeZone: "UTC"}, pipeline.StageDistribute); err != nil {
		t.Fatal(err)
	}
	state("stopped after distribute", "running", "")

	if _, err := r.Execute(ctx, key, pipeline.RunParams{TimeZone: "UTC"}, pipeline.StageReconcile); err != nil {
		t.Fatal(err)
	}
	state("finished", "done", "")

	// A re-run whose reconcile needs a person: every stage is done, so the
	// run stays done, with a note of what needs a person.
	reconcileErr = pipeline.E(pipeline.KindNeedsPerson, "", errors.New("1 unexpected mismatch"))
	if _, err := r.Execute(ctx, key, pipeline.RunParams{TimeZone: "UTC"}, pipeline.StageReconcile); pipeline.KindOf(err) != pipeline.KindNeedsPerson {
		t.Fatalf("re-run: %v, want needs a person", err)
	}
	state("re-run needs a person", "done", "needs a person: stage reconcile: 1 unexpected mismatch")
	if s, err := l.DateStatus(ctx, day); err != nil || s.Runs[0].LastError != "" || s.Runs[0].NeedsPerson != "stage reconcile: 1 unexpected mismatch" {
		t.Errorf("status of a done run that needs a person: %+v %v", s.Runs, err)
	}

	reconcileErr = nil
	if _, err := r.Execute(ctx, key, pipeline.RunParams{TimeZone: "UTC"}, pipeline.StageReconcile); err != nil {
		t.Fatal(err)
	}
	state("re-run clean", "done", "")

	// A stage done by an attempt that then died keeps no error of its own.
	key2 := pipeline.RunKey{Date: day.AddDays(1), Shard: pipeline.Whole}
	run, _, err := l.OpenRun(ctx, key2, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.FinishRun(ctx, run.ID, pipeline.RunFailed, "stage upload: timeout"); err != nil {
		t.Fatal(err)
	}
	if err := l.CompleteStage(ctx, run.ID, pipeline.StageTransform); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.GetRun(ctx, key2); got.LastError == "" {
		t.Error("completing transform cleared upload's error")
	}
	if err := l.CompleteStage(ctx, run.ID, pipeline.StageUpload); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.GetRun(ctx, key2); got.LastError != "" {
		t.Errorf("upload done, its error still recorded: %q", got.LastError)
	}

	// status says whether a process holds the run now: a run recorded as
	// running whose lock nobody holds was stopped.
	if s, err := l.DateStatus(ctx, key2.Date); err != nil || s.Runs[0].Active {
		t.Errorf("nobody holds the run, status says active: %+v %v", s.Runs, err)
	}
	release, err := l.Lock(ctx, key2)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := l.DateStatus(ctx, key2.Date); err != nil || !s.Runs[0].Active {
		t.Errorf("the run's lock is held, status says not active: %+v %v", s.Runs, err)
	}
	release()
	if s, err := l.DateStatus(ctx, key2.Date); err != nil || s.Runs[0].Active {
		t.Errorf("released, status still says active: %+v %v", s.Runs, err)
	}
}

func TestReextractDropsWhatWasNotSentAndRefusesOnceSomethingWas(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	ch := shareChannels
	count := func(q string, args ...any) int64 {
		t.Helper()
		var n int64
		if err := l.DB().GetContext(ctx, &n, q, args...); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Day 1 carries 2 x 10.00; day 2 plans a payout netting it, unsent.
	r1 := uploadedItems(t, l, day, "A", 2, 1000)
	if _, _, err := l.CarryItems(ctx, r1, "S1", "USD", ch, "RS/x", "binding PENDING"); err != nil {
		t.Fatal(err)
	}
	r2 := uploadedItems(t, l, day.AddDays(1), "B", 1, 500)
	if _, err := l.PlanPayout(ctx, r2, "S1", ch, payout(r2, 2500, 1)); err != nil {
		t.Fatal(err)
	}
	if b := openBalance(t, l); b != 0 {
		t.Fatalf("netted: %d still open", b)
	}
	// Nothing of day 2 was sent: read again, its planned payout is gone and
	// day 1's balance is open again for the next payout.
	if err := l.Reextract(ctx, r2.ID); err != nil {
		t.Fatal(err)
	}
	if n := count(`SELECT count(*) FROM items WHERE run_id = $1`, r2.ID) + count(`SELECT count(*) FROM effects WHERE run_id = $1`, r2.ID); n != 0 {
		t.Fatalf("%d items and effects of day 2 left", n)
	}
	if b := openBalance(t, l); b != 2000 {
		t.Fatalf("after reading day 2 again, %d open, want day 1's 2000", b)
	}
	if n := count(`SELECT cardinality(stages_done) FROM runs WHERE id = $1`, r2.ID); n != 0 {
		t.Fatalf("%d stages still done", n)
	}
	// Day 1's balance was netted into nothing sent: day 1 can be read again
	// too, and its carried balance goes with its items.
	if err := l.Reextract(ctx, r1.ID); err != nil {
		t.Fatal(err)
	}
	if b := openBalance(t, l); b != 0 {
		t.Fatalf("after reading day 1 again, %d open, want 0", b)
	}

	// Day 3 carries; day 4's payout netting it is sent: neither can be read
	// again, and each refusal names what went out.
	r3 := uploadedItems(t, l, day.AddDays(2), "C", 1, 1000)
	if _, _, err := l.CarryItems(ctx, r3, "S1", "USD", ch, "RS/y", "below the minimum"); err != nil {
		t.Fatal(err)
	}
	r4 := uploadedItems(t, l, day.AddDays(3), "D", 1, 700)
	e, err := l.PlanPayout(ctx, r4, "S1", ch, payout(r4, 1700, 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.MarkSent(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	// Day 5's order had a late refund clawed back already.
	r5 := uploadedItems(t, l, day.AddDays(4), "E", 1, 100)
	addLateRefund(t, l, r5.ID, "R9", "Ea", 50, "clawed")
	for _, tc := range []struct {
		run  *pipeline.Run
		want string
	}{
		{r4, "1 side effects sent (revenue_share " + e.Subject + " sent)"},
		{r3, "1 carried balances netted into a payout (S1 USD into " + e.Subject + ")"},
		{r5, "1 late refunds worked out on its orders (R9 of Ea clawed)"},
	} {
		items := count(`SELECT count(*) FROM items WHERE run_id = $1`, tc.run.ID)
		err := l.Reextract(ctx, tc.run.ID)
		if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run %d: %v, want a refusal naming %q", tc.run.ID, err, tc.want)
		}
		if n := count(`SELECT count(*) FROM items WHERE run_id = $1`, tc.run.ID); n != items || n == 0 {
			t.Errorf("run %d: a refused reextract changed its items (%d, was %d)", tc.run.ID, n, items)
		}
	}
}

// Two re-extracts of dates whose runs share sellers, each run's trade
// files recorded in the other's order, both queued behind the sellers'
// totals (share_totals, which removing a file moves): each takes those
// rows in one order, so PostgreSQL never has to break a deadlock between
// them. Before, each took them in its files' order, and the schedule
// below ended with one of them refused: "deadlock detected".
func TestConcurrentReextractsSharingSellersDoNotDeadlock(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	db := l.DB()
	r1, r2 := openRun(t, l, day), openRun(t, l, day.AddDays(1))
	for _, f := range []struct {
		run    *pipeline.Run
		seller string
	}{{r1, "S1"}, {r1, "S2"}, {r2, "S2"}, {r2, "S1"}} {
		if _, err := db.ExecContext(ctx, `INSERT INTO trade_files (run_id, business_date, seller_id, currency, request_no, name, sha256, rows, bytes, seller_minor, status)
			VALUES ($1, $2, $3, 'USD', $4, $4, 'x', 1, 1, 100, 'BUILT')`, f.run.ID, f.run.Key.Date.String(), f.seller, fmt.Sprintf("TF%d%s", f.run.ID, f.seller)); err != nil {
			t.Fatal(err)
		}
	}
	// hold locks a seller's totals in a transaction of its own until
	// the returned function commits it.
	hold := func(seller string) (pid int, release func()) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback() }) // a test stopped early lets the re-extracts go
		if err := tx.QueryRowContext(ctx, `SELECT pg_backend_pid() FROM share_totals WHERE seller_id = $1 FOR UPDATE`, seller).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		return pid, func() {
			if err := tx.Commit(); err != nil {
				t.Error(err)
			}
		}
	}
	errs := make(chan error, 2)
	pid1, release1 := hold("S1")
	pid2, release2 := hold("S2")
	// until waits for the two re-extracts to wait on locks, neither of
	// them on a backend in not (one that let go of its lock).
	until := func(what string, not ...int) {
		t.Helper()
		for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
			var n int
			if err := db.GetContext(ctx, &n, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid NOT IN ($1, $2)
				  AND cardinality(pg_blocking_pids(pid)) > 0 AND NOT (pg_blocking_pids(pid) && coalesce($3::int[], '{}'))`, pid1, pid2, pq.Array(not)); err != nil {
				t.Fatal(err)
			}
			if n == 2 {
				return
			}
			if time.Since(start) > time.Minute {
				var seen []string
				_ = db.SelectContext(ctx, &seen, `SELECT pid || ' ' || coalesce(wait_event_type, '-') || ' blocked by ' || pg_blocking_pids(pid)::text || ': ' || left(query, 60)
					FROM pg_stat_activity WHERE datname = current_database()`)
				t.Log(strings.Join(seen, "\n"))
				t.Fatalf("%s: %d re-extracts waiting after a minute", what, n)
			}
		}
	}
	for _, r := range []*pipeline.Run{r1, r2} {
		go func() { errs <- l.Reextract(ctx, r.ID) }()
	}
	until("queued behind both sellers")
	// One of them gets S1 and goes on to S2; without one order the first
	// run then holds S1 and waits for S2, the second the other way round.
	release1()
	until("S1 let go", pid1)
	release2()
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("re-extract: %v", err)
		}
	}
	var files, n int64
	if err := db.QueryRowContext(ctx, `SELECT sum(files), count(*) FROM share_totals`).Scan(&files, &n); err != nil || files != 0 || n != 2 {
		t.Errorf("totals after both re-extracts: %d files in %d rows (%v), want 0 in 2", files, n, err)
	}
}

// TestADateIsSettledInOneSharding: a run of a date in another number of
// shards than its runs is refused (a usage error, nothing opened), a run
// already recorded is resumed, and runs of different shardings opening at
// the same moment cannot both get in.
func TestADateIsSettledInOneSharding(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	p := pipeline.RunParams{TimeZone: "UTC"}
	key := func(d pipeline.Date, shard string) pipeline.RunKey {
		sh, err := pipeline.ParseShard(shard)
		if err != nil {
			t.Fatal(err)
		}
		return pipeline.RunKey{Date: d, Shard: sh}
	}
	mustOpen := func(k pipeline.RunKey) {
		t.Helper()
		if _, _, err := l.OpenRun(ctx, k, p); err != nil {
			t.Fatalf("open %s: %v", k, err)
		}
	}
	refused := func(k pipeline.RunKey, want string) {
		t.Helper()
		_, _, err := l.OpenRun(ctx, k, p)
		if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(fmt.Sprint(err), want) {
			t.Fatalf("open %s: %v, want a usage error saying %q", k, err, want)
		}
		if run, err := l.GetRun(ctx, k); err != nil || run != nil {
			t.Fatalf("open %s was refused but recorded %v (%v)", k, run, err)
		}
	}
	mustOpen(key(day, "0/2"))
	refused(key(day, "0/1"), "was run in 2 shards")
	refused(key(day, "2/3"), "run it in those 2 shards (--shard I/2")
	mustOpen(key(day, "1/2"))
	mustOpen(key(day, "0/2")) // resumed

	next := day.AddDays(1)
	mustOpen(key(next, "0/1"))
	refused(key(next, "3/4"), "was run whole (run ")
	mustOpen(key(next, "0/1"))

	// Eight runs of a new date, in four shardings, open at once: the date
	// ends up in one sharding. Twenty dates, so that a missing lock shows.
	for n := range 20 {
		d := day.AddDays(2 + n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := i%4 + 1
				<-start
				_, _, err := l.OpenRun(ctx, key(d, fmt.Sprintf("%d/%d", i%c, c)), p)
				if err != nil && pipeline.KindOf(err) != pipeline.KindUsage {
					t.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
		runs, err := l.RunsOn(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		var shards []string
		for _, r := range runs {
			shards = append(shards, r.Key.Shard.String())
		}
		if len(runs) == 0 || runs[0].Key.Shard.Count != runs[len(runs)-1].Key.Shard.Count {
			t.Fatalf("%s: runs in several shardings: %v", d, shards)
		}
	}
}

// TestSendsCountTheRunsOwn: shards of a date running side by side each
// count the requests they sent, not the other's.
func TestSendsCountTheRunsOwn(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	for i, sends := range []int{2, 3} {
		key := pipeline.RunKey{Date: day, Shard: pipeline.Shard{Index: i, Count: 2}}
		run, _, err := l.OpenRun(ctx, key, pipeline.RunParams{TimeZone: "UTC"})
		if err != nil {
			t.Fatal(err)
		}
		for n := range sends {
			subject := fmt.Sprintf("RS/%d/%d", i, n)
			e, err := l.PlanEffect(ctx, pipeline.Effect{RunID: run.ID, Kind: "revenue_share", Subject: subject, Attempt: 1,
				Key: "k-" + subject, Currency: "CNY", Amount: 100})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.MarkSent(ctx, e.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, want := range []int64{2, 3} {
		got, err := l.Sends(ctx, pipeline.RunKey{Date: day, Shard: pipeline.Shard{Index: i, Count: 2}}, []string{"revenue_share"})
		if err != nil || got.Effects != want || got.Requests != want {
			t.Fatalf("shard %d/2: %+v, %v; want %d sent", i, got, err, want)
		}
	}
}

// TestLastSuccessIsARunWithNothingForAPerson: a run done whose re-run's
// reconcile found something for a person (done, with a note) is not a
// success: the metric an alert watches does not move for it.
func TestLastSuccessIsARunWithNothingForAPerson(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	finish := func(d pipeline.Date, note string) {
		t.Helper()
		run, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: d, Shard: pipeline.Whole}, pipeline.RunParams{TimeZone: "UTC"})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.FinishRun(ctx, run.ID, pipeline.RunDone, note); err != nil {
			t.Fatal(err)
		}
	}
	finish(day, "")
	h, err := l.ShardHealth(ctx, pipeline.Whole)
	if err != nil || h.LastSuccess.IsZero() || h.Unsettled != 0 || !h.OldestUnsettled.IsZero() {
		t.Fatalf("after a clean run: %+v, %v", h, err)
	}
	first := h.LastSuccess
	finish(day.AddDays(1), pipeline.NeedsPersonNote+"mismatch with Infinia Pay")
	if h, err := l.ShardHealth(ctx, pipeline.Whole); err != nil || !h.LastSuccess.Equal(first) {
		t.Fatalf("after a run done needing a person: last success %v (%v), want %v", h.LastSuccess, err, first)
	}
}

// TestAnOlderDatesReRunLeavesANewerFailureCounted: the shard's last
// success moves with any date's clean run, so a re-run of an older date
// made it look healthy while the newest date had failed; the unsettled
// runs, and the oldest of their dates, still say so. (Which shard counts
// another shard's runs: TestShardHealthFollowsAChangeOfSharding.)
func TestAnOlderDatesReRunLeavesANewerFailureCounted(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	finish := func(d pipeline.Date, sh pipeline.Shard, state pipeline.RunState, note string) {
		t.Helper()
		run, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: d, Shard: sh}, pipeline.RunParams{TimeZone: "UTC"})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.FinishRun(ctx, run.ID, state, note); err != nil {
			t.Fatal(err)
		}
	}
	older, newer := day, day.AddDays(3)
	finish(older, pipeline.Whole, pipeline.RunFailed, "stage upload: connection refused")
	finish(newer, pipeline.Whole, pipeline.RunFailed, "stage distribute: connection refused")
	h, err := l.ShardHealth(ctx, pipeline.Whole)
	if err != nil || h.Unsettled != 2 || h.OldestUnsettled != older || !h.LastSuccess.IsZero() {
		t.Fatalf("two failed dates: %+v (%v), want 2 unsettled from %s and no success", h, err, older)
	}
	finish(older, pipeline.Whole, pipeline.RunDone, "")
	h, err = l.ShardHealth(ctx, pipeline.Whole)
	if err != nil || h.Unsettled != 1 || h.OldestUnsettled != newer || h.LastSuccess.IsZero() {
		t.Fatalf("the older date re-run well: %+v (%v), want the newer date still unsettled", h, err)
	}
}

// TestFailedPayoutsAreTheRunsOwn: a shard's reconcile names its own failed
// payouts, not another shard's of the same date.
func TestFailedPayoutsAreTheRunsOwn(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	keys := []pipeline.RunKey{{Date: day, Shard: pipeline.Shard{Index: 0, Count: 2}}, {Date: day, Shard: pipeline.Shard{Index: 1, Count: 2}}}
	run, _, err := l.OpenRun(ctx, keys[0], pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.OpenRun(ctx, keys[1], pipeline.RunParams{TimeZone: "UTC"}); err != nil {
		t.Fatal(err)
	}
	failEffect(t, l, run.ID, "distribution", "WX/x", 1)
	for i, want := range []int64{1, 0} {
		if n, err := l.FailedPayouts(ctx, keys[i]); err != nil || n != want {
			t.Fatalf("shard %s: %d failed payouts (%v), want %d", keys[i].Shard, n, err, want)
		}
	}
}

// TestAResolvedPayoutIsNoLongerFailed: a failed WeChat payout a person
// resolved is not counted, until a later attempt of it fails; a revenue
// share is never resolved by hand (its balance stays carried).
func TestAResolvedPayoutIsNoLongerFailed(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	key := pipeline.RunKey{Date: day, Shard: pipeline.Whole}
	run, _, err := l.OpenRun(ctx, key, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	fail := func(kind, subject string, attempt int) { failEffect(t, l, run.ID, kind, subject, attempt) }
	failed := func(want int64) {
		t.Helper()
		if n, err := l.FailedPayouts(ctx, key); err != nil || n != want {
			t.Fatalf("%d failed payouts (%v), want %d", n, err, want)
		}
	}
	fail("distribution", "WX/1", 1)
	fail("revenue_share", "RS/1", 1)
	fail("revenue_share", "RS/2", 1)
	finishEffect(t, l, run.ID, "revenue_share", "RS/2", 2, pipeline.EffectSucceeded)
	failed(1) // the revenue shares carried nothing: not counted
	for _, tc := range []struct {
		d             pipeline.Date
		subject, want string
	}{
		{day, "RS/1", "is a revenue share"},
		// Paid by its second attempt: nothing stays carried, nothing to resolve.
		{day, "RS/2", "(k-RS/2-2) is succeeded, not failed: nothing to resolve"},
		{day.AddDays(1), "WX/1", "no payout of"},
		// No item paid by its release: settle may still pay it.
		{day, "WX/1", "its provider did not release its order to the seller"},
	} {
		if _, _, err := l.Resolve(ctx, tc.d, tc.subject, "1", "paid by hand"); pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("resolve %s of %s: %v, want a usage error saying %q", tc.subject, tc.d, err, tc.want)
		}
	}
	// Resolved (settle resolve, of a distribution released to the seller:
	// cmd/settle's TestAClosedDistributionIsReleasedToTheSeller), the
	// attempt is not counted; a later attempt that fails is.
	l.DB().MustExec(`INSERT INTO resolutions (kind, subject, idem_key, note) VALUES ('distribution', 'WX/1', 'k-WX/1-1', 'recovered')`)
	failed(0)
	fail("distribution", "WX/1", 2)
	failed(1)
}

// TestAHeldItemSettledOutside: only an item a stage holds is settled by
// hand, never while a request of it is in flight; it becomes paid with the
// proof and the note, and its failed request is resolved (no longer a
// failed payout of the date).
func TestAHeldItemSettledOutside(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	key := pipeline.RunKey{Date: day, Shard: pipeline.Whole}
	run, _, err := l.OpenRun(ctx, key, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	writeDay(t, l, run, "H", 2, 1, false)
	if err := l.SetItemState(ctx, run.ID, "H0000", pipeline.ItemRecorded, pipeline.ItemRecorded, pipeline.HeldPrefix+"refused"); err != nil {
		t.Fatal(err)
	}
	settle := func(orderNo string, ch pipeline.Channel, note string) (ledger.HeldItem, *ledger.Resolution, error) {
		return l.SettleOutside(ctx, day, ch, orderNo, "X/"+orderNo, "nothing held", note, nil)
	}
	refused := func(orderNo string, ch pipeline.Channel, note, want string) {
		t.Helper()
		if _, _, err := settle(orderNo, ch, note); pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), want) {
			t.Fatalf("settle %s outside: %v, want a usage error saying %q", orderNo, err, want)
		}
	}
	refused("H0000", chInfinia, " ", "say how")
	refused("H9999", chInfinia, "by hand", "no item of")
	refused("H0000", chPayProtocol, "by hand", "not "+string(chPayProtocol))
	refused("H0001", chInfinia, "by hand", "not held")
	// A request of it in flight: a re-run finds out what became of it.
	e, err := l.PlanEffect(ctx, pipeline.Effect{RunID: run.ID, Kind: "distribution", Subject: "X/H0000", Attempt: 1, Key: "k-X/H0000-1", Currency: "USD", Amount: 100})
	if err != nil {
		t.Fatal(err)
	}
	refused("H0000", chInfinia, "by hand", "is planned")
	if err := l.MarkSent(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordOutcome(ctx, e.ID, pipeline.EffectFailed, "", "CLOSED"); err != nil {
		t.Fatal(err)
	}
	if n, err := l.FailedPayouts(ctx, key); err != nil || n != 1 {
		t.Fatalf("%d failed payouts (%v), want 1", n, err)
	}
	it, res, err := settle("H0000", chInfinia, "unfrozen by hand, OPS-1")
	if err != nil || res == nil || res.Key != "k-X/H0000-1" || res.Note != "unfrozen by hand, OPS-1" {
		t.Fatalf("settled outside: %+v, %v", res, err)
	}
	want := pipeline.SettledOutside + " (nothing held): unfrozen by hand, OPS-1; was held: refused"
	if it.State != pipeline.ItemPaid || it.Reason != want {
		t.Fatalf("item %s %q, want paid %q", it.State, it.Reason, want)
	}
	if got, err := l.Item(ctx, day, "H0000"); err != nil || got.State != pipeline.ItemPaid || got.Reason != want {
		t.Fatalf("the ledger's item: %+v, %v", got, err)
	}
	if n, err := l.FailedPayouts(ctx, key); err != nil || n != 0 {
		t.Fatalf("%d failed payouts (%v) once settled outside, want 0", n, err)
	}
	refused("H0000", chInfinia, "again", "not held")
	// Its request succeeded, the item held for what it did not do (a
	// release to the seller WeChat Pay closed): settled, nothing resolved.
	finishEffect(t, l, run.ID, "distribution", "X/H0001", 1, pipeline.EffectSucceeded)
	if err := l.SetItemState(ctx, run.ID, "H0001", pipeline.ItemRecorded, pipeline.ItemRecorded, pipeline.HeldPrefix+"rest closed"); err != nil {
		t.Fatal(err)
	}
	if it, res, err := settle("H0001", chInfinia, "released by hand"); err != nil || res != nil || it.State != pipeline.ItemPaid {
		t.Fatalf("settled outside after a request that succeeded: %+v, %+v, %v", it, res, err)
	}
}

// TestAHeldItemRejectedByAPerson: only an item held for the reason given
// (a Pay Protocol payment failed) is rejected by hand; it becomes
// rejected with the proof and the note, no longer an item to verify, its
// resolution listed with the date's; said again, nothing changes.
func TestAHeldItemRejectedByAPerson(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: day, Shard: pipeline.Whole}, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	writeDay(t, l, run, "F", 3, 1, true)
	const failed = "held: Pay Protocol payment is failed"
	for no, reason := range map[string]string{"F0000": failed + ": verified again", "F0001": "held: Pay Protocol payment is pending"} {
		if err := l.SetItemState(ctx, run.ID, no, pipeline.ItemUnverified, pipeline.ItemHeld, reason); err != nil {
			t.Fatal(err)
		}
	}
	reject := func(orderNo string, ch pipeline.Channel, note string) (ledger.HeldItem, bool, error) {
		return l.RejectHeld(ctx, day, ch, orderNo, failed, "still failed", note)
	}
	refused := func(orderNo string, ch pipeline.Channel, note, want string) {
		t.Helper()
		if _, _, err := reject(orderNo, ch, note); pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), want) {
			t.Fatalf("reject %s: %v, want a usage error saying %q", orderNo, err, want)
		}
	}
	refused("F0000", chPayProtocol, " ", "say why")
	refused("F9999", chPayProtocol, "never paid", "no item of")
	refused("F0000", chInfinia, "never paid", "not "+string(chInfinia))
	refused("F0001", chPayProtocol, "never paid", "not held for")
	refused("F0002", chPayProtocol, "never paid", "unverified")
	it, before, err := reject("F0000", chPayProtocol, "buyer never paid, OPS-2")
	want := pipeline.RejectedByPerson + " (still failed): buyer never paid, OPS-2; was " + failed + ": verified again"
	if err != nil || before || it.State != pipeline.ItemRejected || it.Reason != want || it.TransactionID != "TF0000" {
		t.Fatalf("rejected: %+v, %v, %v; want rejected %q", it, before, err, want)
	}
	if got, err := l.Item(ctx, day, "F0000"); err != nil || got.State != pipeline.ItemRejected || got.Reason != want {
		t.Fatalf("the ledger's item: %+v, %v", got, err)
	}
	items, err := l.ItemsToVerify(ctx, run.ID, chPayProtocol, "held: Pay Protocol")
	if err != nil || len(items) != 2 || items[0].OrderNo != "F0001" || items[1].OrderNo != "F0002" {
		t.Fatalf("to verify after the rejection: %+v, %v; want F0001 and F0002", items, err)
	}
	rs, err := l.Resolutions(ctx, day)
	if err != nil || len(rs) != 1 || rs[0].Kind != ledger.KindRejectedHeld || rs[0].Subject != "TF0000" || rs[0].Key != "F0000" || rs[0].Note != "buyer never paid, OPS-2" {
		t.Fatalf("resolutions: %+v, %v", rs, err)
	}
	// Again, with another note: said, nothing changes.
	if it, before, err := reject("F0000", chPayProtocol, "again"); err != nil || !before || it.Reason != want {
		t.Fatalf("rejected again: %+v, %v, %v", it, before, err)
	}
	if rs, err := l.Resolutions(ctx, day); err != nil || len(rs) != 1 || rs[0].Note != "buyer never paid, OPS-2" {
		t.Fatalf("resolutions after a second rejection: %+v, %v", rs, err)
	}
}

// failEffect records an attempt of a payout of the run, keyed
// k-<subject>-<attempt>, sent and failed.
func failEffect(t *testing.T, l *ledger.Ledger, runID int64, kind, subject string, attempt int) {
	t.Helper()
	finishEffect(t, l, runID, kind, subject, attempt, pipeline.EffectFailed)
}

// finishEffect records an attempt of a payout of the run, keyed
// k-<subject>-<attempt>, sent and final in state.
func finishEffect(t *testing.T, l *ledger.Ledger, runID int64, kind, subject string, attempt int, state pipeline.EffectState) {
	t.Helper()
	ctx := context.Background()
	e, err := l.PlanEffect(ctx, pipeline.Effect{RunID: runID, Kind: kind, Subject: subject, Attempt: attempt,
		Key: fmt.Sprintf("k-%s-%d", subject, attempt), Currency: "CNY", Amount: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.MarkSent(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	lastErr := ""
	if state == pipeline.EffectFailed {
		lastErr = "CLOSED"
	}
	if err := l.RecordOutcome(ctx, e.ID, state, "", lastErr); err != nil {
		t.Fatal(err)
	}
}

// TestALostLockStopsTheSends: the session holding a run's lock ends while
// the run works (the server terminated it, a failover): its lock went with
// it, and a second run of the date can take it. The first run then sent
// on beside the second (found by a review); now nothing more is marked
// sent. A server that ends idle sessions does not end the lock's.
func TestALostLockStopsTheSends(t *testing.T) {
	t.Parallel()
	l, url := open(t)
	ctx := context.Background()
	key := pipeline.RunKey{Date: day, Shard: pipeline.Whole}
	lockHolders := func() []int {
		var pids []int
		if err := l.DB().Select(&pids, `SELECT DISTINCT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
			t.Fatal(err)
		}
		return pids
	}
	// Idle sessions of the database end after a second: the lock's is not
	// one of them.
	var db string
	if err := l.DB().Get(&db, `SELECT current_database()`); err != nil {
		t.Fatal(err)
	}
	l.DB().MustExec(`ALTER DATABASE ` + pq.QuoteIdentifier(db) + ` SET idle_session_timeout = '1s'`)
	locked, err := ledger.Open(ctx, url, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { locked.Close() })
	release, err := locked.Lock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	run, _, err := locked.OpenRun(ctx, key, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	plan := func(n int) pipeline.Effect {
		e, err := locked.PlanEffect(ctx, pipeline.Effect{RunID: run.ID, Kind: "revenue_share", Subject: fmt.Sprintf("RS/%d", n), Attempt: 1,
			Key: fmt.Sprintf("k-%d", n), Currency: "USD", Amount: 100})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	time.Sleep(1500 * time.Millisecond)
	if err := locked.MarkSent(ctx, plan(1).ID); err != nil {
		t.Fatalf("after an idle second: %v", err)
	}
	if n := len(lockHolders()); n != 1 {
		t.Fatalf("%d sessions hold advisory locks after an idle second, want the run's", n)
	}
	// The lock's session is terminated: the run sends nothing more.
	l.DB().MustExec(`SELECT pg_terminate_backend($1)`, lockHolders()[0])
	for range 50 {
		if len(lockHolders()) == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	e := plan(2)
	for range 2 {
		// pipeline.ErrLockLost: the engine stops at it (one line, not one
		// per request left).
		if err := locked.MarkSent(ctx, e.ID); !errors.Is(err, pipeline.ErrLockLost) || !strings.Contains(err.Error(), "lock of run "+key.String()+" was lost") {
			t.Fatalf("sent after the lock's session ended: %v", err)
		}
	}
	var sends int
	if err := l.DB().Get(&sends, `SELECT sends FROM effects WHERE id = $1`, e.ID); err != nil || sends != 0 {
		t.Fatalf("the effect was marked sent %d times (%v)", sends, err)
	}
}

// scriptedSender answers each send with the next of its answers (an
// outcome, or an error), and every query "not found".
type scriptedSender struct {
	answers []func() (pipeline.Outcome, error)
}

func (s *scriptedSender) Send(context.Context, pipeline.Effect) (pipeline.Outcome, error) {
	a := s.answers[0]
	s.answers = s.answers[1:]
	return a()
}

func (s *scriptedSender) Query(context.Context, pipeline.Effect) (pipeline.Outcome, error) {
	return pipeline.Outcome{Status: pipeline.OutcomeNotFound}, nil
}

// TestSendsCountsNoRefusalAsAMovement: a request the provider refused
// (a refusal of the request itself, or "retry later" to the end) moved no
// money, yet counted as a new money movement: a night of "retry later"
// printed "34 new money movements" where none was made. A movement is an
// effect taken, or whose outcome is unknown; the refusals are counted
// apart, and a resend after a refusal is no resend after an unknown
// outcome.
func TestSendsCountsNoRefusalAsAMovement(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	key := pipeline.RunKey{Date: day, Shard: pipeline.Whole}
	run, _, err := l.OpenRun(ctx, key, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	retryLater := func() (pipeline.Outcome, error) {
		return pipeline.Outcome{}, pipeline.NotTaken(errors.New("SYS-008 service unavailable, retry later"))
	}
	refused := func() (pipeline.Outcome, error) {
		return pipeline.Outcome{Status: pipeline.OutcomeFailed, Reason: "SYS-006 amount out of range", NotTaken: true}, nil
	}
	taken := func() (pipeline.Outcome, error) {
		return pipeline.Outcome{Status: pipeline.OutcomeSucceeded, Ref: "R"}, nil
	}
	lost := func() (pipeline.Outcome, error) { return pipeline.Outcome{}, errors.New("timeout awaiting response") }
	for _, c := range []struct {
		subject string
		answers []func() (pipeline.Outcome, error)
	}{
		{"RS/refused", []func() (pipeline.Outcome, error){refused}},                          // not a movement
		{"RS/retry-later", []func() (pipeline.Outcome, error){retryLater}},                   // not a movement
		{"RS/retry-later-then-taken", []func() (pipeline.Outcome, error){retryLater, taken}}, // one, not sent again after an unknown outcome
		{"RS/lost-then-taken", []func() (pipeline.Outcome, error){lost, taken}},              // one, sent again after an unknown outcome
		{"RS/taken", []func() (pipeline.Outcome, error){taken}},                              // one
	} {
		e, err := l.PlanEffect(ctx, pipeline.Effect{RunID: run.ID, Kind: "revenue_share", Subject: c.subject, Attempt: 1,
			Key: "k-" + c.subject, Currency: "CNY", Amount: 100})
		if err != nil {
			t.Fatal(err)
		}
		s := &scriptedSender{answers: c.answers}
		for len(s.answers) > 0 {
			if e, err = pipeline.ApplyEffect(ctx, l, s, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := l.Sends(ctx, key, []string{"revenue_share"})
	if err != nil {
		t.Fatal(err)
	}
	if want := (ledger.Sent{Requests: 7, Effects: 3, Refused: 3}); got != want || got.Resent() != 1 {
		t.Fatalf("sent %+v (resent %d), want %+v (resent 1)", got, got.Resent(), want)
	}
}

// TestARunThatLostItsLockDoesNotRecordItsEnd: a run whose lock's session
// ended recorded its end (failed, the lost lock its error) over the state
// of the run of the date that took the lock meanwhile: settle status then
// said failed of a run working. Its end is not recorded.
func TestARunThatLostItsLockDoesNotRecordItsEnd(t *testing.T) {
	t.Parallel()
	l, url := open(t)
	ctx := context.Background()
	key := pipeline.RunKey{Date: day, Shard: pipeline.Whole}
	first, err := ledger.Open(ctx, url, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Close() })
	release, err := first.Lock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	run, _, err := first.OpenRun(ctx, key, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	l.DB().MustExec(`SELECT pg_terminate_backend(pid, 5000) FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	var second func() error
	for i := 0; ; i++ {
		if second, err = l.Lock(ctx, key); err == nil {
			break
		}
		if i == 50 {
			t.Fatalf("the second run never got the lock: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer second()
	if _, _, err := l.OpenRun(ctx, key, pipeline.RunParams{TimeZone: "UTC"}); err != nil {
		t.Fatal(err)
	}
	if err := first.FinishRun(ctx, run.ID, pipeline.RunFailed, "stage distribute: the lock was lost"); !errors.Is(err, pipeline.ErrLockLost) {
		t.Fatalf("the first run recorded its end after its lock was lost: %v", err)
	}
	var state string
	if err := l.DB().Get(&state, `SELECT state FROM runs WHERE id = $1`, run.ID); err != nil || state != string(pipeline.RunRunning) {
		t.Fatalf("the run is %q (%v), want running: the second run's state", state, err)
	}
}

// TestARunThatLostItsLockStopsAtTheNextStage: the session holding a run's
// lock ends while a stage that sends nothing works (the server terminated
// it, a failover). The run went on through the next stages' work,
// noticing only at its first send or at its end - and a run --until a
// stage before the sends ended 0. The runner asks the lock's session
// before each stage it runs: the run stops before the next stage, ended 1
// (ErrLockLost) naming it, and records no end (a second run may hold the
// date).
func TestARunThatLostItsLockStopsAtTheNextStage(t *testing.T) {
	t.Parallel()
	l, url := open(t)
	ctx := context.Background()
	key := pipeline.RunKey{Date: day, Shard: pipeline.Whole}
	first, err := ledger.Open(ctx, url, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Close() })
	var transformed bool
	r := &pipeline.Runner{Store: first, Stages: map[pipeline.Stage]pipeline.StageFunc{
		pipeline.StageExtract: func(ctx context.Context, run *pipeline.Run) (string, error) {
			// The lock's session is terminated while the stage works.
			if _, err := l.DB().Exec(`SELECT pg_terminate_backend(pid, 5000) FROM pg_locks WHERE locktype = 'advisory' AND granted
				AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
				return "", err
			}
			return "read", nil
		},
		pipeline.StageTransform: func(ctx context.Context, run *pipeline.Run) (string, error) {
			transformed = true
			return "split", nil
		},
	}}
	res, err := r.Execute(ctx, key, pipeline.RunParams{TimeZone: "UTC"}, pipeline.StageTransform)
	if !errors.Is(err, pipeline.ErrLockLost) || !strings.Contains(err.Error(), "before stage transform") {
		t.Fatalf("err %v, want the lost lock before stage transform", err)
	}
	if transformed {
		t.Fatal("stage transform ran after the run's lock was lost")
	}
	if !errors.Is(err, pipeline.ErrEndNotRecorded) {
		t.Fatalf("err %v does not say the run's end is not recorded", err)
	}
	var state string
	if err := l.DB().Get(&state, `SELECT state FROM runs WHERE id = $1`, res.Run.ID); err != nil || state != string(pipeline.RunRunning) {
		t.Fatalf("the run is %q (%v), want running: its end is not recorded once its lock was lost", state, err)
	}
}

// TestAHeldItemWhoseRequestWasForgottenSettledOutside: an item held
// because its request's outcome is unknown and its provider no longer
// knows it (past the memory of its status query) that a person settled by
// hand is settled outside, its request recorded failed by the person (not
// applied: the provider would have held nothing to settle by hand), and
// resolved. The only way out before was to record the request paid (settle
// resolve --paid), which credited it with what the person moved by hand.
// Without the caller's proof that the provider forgot that very request,
// it is refused as any request in flight.
func TestAHeldItemWhoseRequestWasForgottenSettledOutside(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	key := pipeline.RunKey{Date: day, Shard: pipeline.Whole}
	run, _, err := l.OpenRun(ctx, key, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	writeDay(t, l, run, "F", 1, 1, false)
	if err := l.SetItemState(ctx, run.ID, "F0000", pipeline.ItemRecorded, pipeline.ItemRecorded, pipeline.HeldPrefix+"forgotten"); err != nil {
		t.Fatal(err)
	}
	e, err := l.PlanEffect(ctx, pipeline.Effect{RunID: run.ID, Kind: "distribution", Subject: "X/F0000", Attempt: 1, Key: "k-X/F0000-1", Currency: "CNY", Amount: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.MarkSent(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	settle := func(f *ledger.Forgotten) (ledger.HeldItem, *ledger.Resolution, error) {
		return l.SettleOutside(ctx, day, chInfinia, "F0000", "X/F0000", "nothing held", "unfrozen by hand, OPS-9", f)
	}
	for _, f := range []*ledger.Forgotten{nil, {Key: "k-X/F0000-2", Proof: "not known"}, {Key: e.Key, Proof: " "}} {
		if _, _, err := settle(f); pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "is sent") {
			t.Fatalf("settled outside, forgotten %+v: %v, want it refused as in flight", f, err)
		}
	}
	it, res, err := settle(&ledger.Forgotten{Key: e.Key, Proof: "its status query did not know k-X/F0000-1"})
	if err != nil || res == nil || res.Key != e.Key || it.State != pipeline.ItemPaid {
		t.Fatalf("settled outside: %+v, %+v, %v; want the item paid, its request resolved", it, res, err)
	}
	got, ok, err := l.LatestEffect(ctx, "distribution", "X/F0000")
	if err != nil || !ok || got.State != pipeline.EffectFailed || !strings.Contains(got.LastError, "not applied") ||
		!strings.Contains(got.LastError, "did not know k-X/F0000-1") || !strings.Contains(got.LastError, "OPS-9") {
		t.Fatalf("its request: %+v, %v; want it failed, not applied, with the proof and the note", got, err)
	}
	if n, err := l.FailedPayouts(ctx, key); err != nil || n != 0 {
		t.Fatalf("%d failed payouts (%v) once settled outside, want 0", n, err)
	}
}
