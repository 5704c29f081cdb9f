package ledger_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// TestEachPayoutCandidateCountsOnlyItsChannelsAndTakesTheLatestAccount:
// a run's candidates count the items of the channels the revenue shares
// pay, not a WeChat item of the same seller (mutant: the channels dropped
// survived, asking to pay A's WeChat share by Infinia too); they come by
// seller, then currency (mutant: by currency first survived: the
// distribute stage's pages keep a seller's currencies together); a
// seller paid only its carried balance is paid to its latest account that
// is not empty (mutants: not skipping an empty one, or taking the oldest,
// each survived: C was carried again for want of an account, or paid to
// an account it no longer has).
func TestEachPayoutCandidateCountsOnlyItsChannelsAndTakesTheLatestAccount(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	first := openRun(t, l, day.AddDays(-2))
	second := openRun(t, l, day.AddDays(-1))
	run := openRun(t, l, day)
	third := openRun(t, l, day.AddDays(1))
	at := time.Date(day.Year, time.Month(day.Month), day.Day, 12, 0, 0, 0, time.UTC)
	writeShares(t, l, run, at, []share{{"OA1", "A", chInfinia, "USD", 10}, {"OA2", "A", chWeChat, "USD", 20}, {"OB1", "B", chInfinia, "EUR", 5}})
	for _, q := range []string{
		`UPDATE items SET state = 'uploaded'`,
		fmt.Sprintf(`INSERT INTO adjustments (seller_id, currency, kind, amount_minor, business_date, run_id) VALUES ('C', 'USD', 'held', 7, '%s', %d)`,
			second.Key.Date, second.ID),
		fmt.Sprintf(`INSERT INTO run_sellers (run_id, seller_id, infinia_seller_id) VALUES
			(%[1]d, 'A', 'I-A'), (%[1]d, 'B', 'I-B'), (%[2]d, 'C', 'I-C-old'), (%[3]d, 'C', 'I-C-new'), (%[4]d, 'C', '')`,
			run.ID, first.ID, second.ID, third.ID),
	} {
		if _, err := l.DB().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	var got []pipeline.PayoutCandidate
	if err := l.EachPayoutCandidate(ctx, run, shareChannels, "infiniapay", func(p pipeline.PayoutCandidate) error {
		got = append(got, p)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []pipeline.PayoutCandidate{
		{SellerID: "A", Currency: "USD", Payable: 10, Items: 1, Account: "I-A"},
		{SellerID: "B", Currency: "EUR", Payable: 5, Items: 1, Account: "I-B"},
		{SellerID: "C", Currency: "USD", Carried: 7, Account: "I-C-new"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("candidates\n got %+v\nwant %+v", got, want)
	}
}

// TestPayoutCandidatesAreKeptByRunAndKind: the payouts kept to check are
// the run's and the kind's: another run's (another shard's of the date,
// running at the same time) and another kind's are neither summed, read
// back nor cleared with them (mutants: the run dropped from the totals,
// the pages or the clearing, and the kind from the pages, each survived).
// Pages move on past their last seller (mutant: seller_id >= hung the
// first test's reader for ever), and a payout kept again replaces every
// figure, its carried balance and account too (mutants: either kept as
// first kept survived).
func TestPayoutCandidatesAreKeptByRunAndKind(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run, other := openRun(t, l, day), openRun(t, l, day.AddDays(1))
	keep := func(runID int64, kind string, ps ...pipeline.PayoutCandidate) {
		t.Helper()
		if err := l.AddPayoutCandidates(ctx, runID, kind, ps); err != nil {
			t.Fatal(err)
		}
	}
	s1 := pipeline.PayoutCandidate{SellerID: "S1", Currency: "EUR", Payable: 10, Items: 1, Carried: 1, Account: "I-S1"}
	s2 := pipeline.PayoutCandidate{SellerID: "S2", Currency: "EUR", Payable: 20, Items: 2, Carried: -2, Account: "I-S2"}
	keep(run.ID, kindRevenueShare, s1, s2)
	keep(run.ID, "other", pipeline.PayoutCandidate{SellerID: "S0", Currency: "EUR", Payable: 100, Items: 1, Account: "I-S0"})
	keep(other.ID, kindRevenueShare, pipeline.PayoutCandidate{SellerID: "S1", Currency: "EUR", Payable: 1000, Items: 1, Account: "I-S1"},
		pipeline.PayoutCandidate{SellerID: "S3", Currency: "EUR", Payable: 2000, Items: 1, Account: "I-S3"})
	s1.Carried, s1.Account = 4, "I-S1-new"
	keep(run.ID, kindRevenueShare, s1)

	if totals, err := l.PayoutCandidateTotals(ctx, run.ID, kindRevenueShare); err != nil ||
		!reflect.DeepEqual(totals, []pipeline.Money{{Minor: 10 + 4 + 20 - 2, Currency: "EUR"}}) {
		t.Fatalf("the run's totals: %v, %v; want 32 EUR", totals, err)
	}
	var got []pipeline.PayoutCandidate
	for after := ""; len(got) <= 3; {
		page, err := l.PayoutCandidatesAfter(ctx, run.ID, kindRevenueShare, "EUR", after, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		after = page[len(page)-1].SellerID
	}
	if want := []pipeline.PayoutCandidate{s1, s2}; !reflect.DeepEqual(got, want) {
		t.Fatalf("the run's payouts read back by pages of one\n got %+v\nwant %+v", got, want)
	}
	if err := l.ClearPayoutCandidates(ctx, run.ID, kindRevenueShare); err != nil {
		t.Fatal(err)
	}
	if totals, err := l.PayoutCandidateTotals(ctx, other.ID, kindRevenueShare); err != nil ||
		!reflect.DeepEqual(totals, []pipeline.Money{{Minor: 3000, Currency: "EUR"}}) {
		t.Fatalf("the other run's totals once the run's are cleared: %v, %v; want 3000 EUR", totals, err)
	}
}

// TestPayingRunsAreTheOthersWorkingNow: the runs whose planning races a
// run's (ledger.PayingRuns) are the other runs a process holds the lock
// of, that keep payouts to check or recorded some the provider has not
// taken yet - not a run that stopped and left them (its lock let go: its
// date's next run deals with them), nor the run itself. What they may
// still take counts what they keep and what they planned or sent without
// the provider's reference, not what the provider took (answered with its
// reference: in its balances already), failed, nor another currency's; and
// a carried balance the run's own payout nets too, once: an earlier date's
// kept payout adds its items alone, a later date's the entries the run's
// own does not reach (a nightly run beside a backfill held every seller
// with a carried balance, counted in both: found by trying it). A payout
// planned is counted once, as planned, no longer as kept too (a shard
// beside another that had planned its payouts, the balance covering both,
// held its own for the double count: found by trying it).
func TestPayingRunsAreTheOthersWorkingNow(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	const kind = "revenue_share"
	run, other, later, stopped := openRun(t, l, day), openRun(t, l, day.AddDays(-1)), openRun(t, l, day.AddDays(1)), openRun(t, l, day.AddDays(-2))
	subject := func(r *pipeline.Run, seller, cur string) string {
		return fmt.Sprintf("RS/%s/%s/%s", r.Key.Date.Compact(), seller, cur)
	}
	keep := func(r *pipeline.Run, ps ...pipeline.PayoutCandidate) {
		t.Helper()
		if err := l.AddPayoutCandidates(ctx, r.ID, kind, ps); err != nil {
			t.Fatal(err)
		}
	}
	// A carries 5 up to the day before, 3 more on the day after.
	keep(run, pipeline.PayoutCandidate{SellerID: "A", Currency: "USD", Payable: 50, Items: 1, Carried: 5, Account: "I-A"})
	keep(later, pipeline.PayoutCandidate{SellerID: "A", Currency: "USD", Payable: 10, Items: 1, Carried: 8, Account: "I-A"})
	// H carries 20 up to the day, and a clawback of 50 on the day after:
	// the day after's payout of H takes nothing, never less than nothing
	// (it would leave room for 50 more of the others').
	keep(run, pipeline.PayoutCandidate{SellerID: "H", Currency: "USD", Payable: 10, Items: 1, Carried: 20, Account: "I-H"})
	keep(later, pipeline.PayoutCandidate{SellerID: "H", Currency: "USD", Carried: -30, Account: "I-H"})
	for _, r := range []*pipeline.Run{other, stopped} {
		keep(r, pipeline.PayoutCandidate{SellerID: "A", Currency: "USD", Payable: 100, Items: 1, Carried: 5, Account: "I-A"},
			pipeline.PayoutCandidate{SellerID: "G", Currency: "USD", Carried: 60, Account: "I-G"})
	}
	for _, r := range []*pipeline.Run{run, other, stopped} {
		for i, e := range []struct {
			seller, cur, state, ref string
			amount                  int64
		}{
			{"A", "USD", "planned", "", 40},
			{"B", "USD", "sent", "", 30},
			{"C", "USD", "unknown", "", 20},
			{"D", "USD", "sent", "IRS1", 1000}, // taken: in Infinia's balances already
			{"E", "USD", "failed", "", 1000},   // moved nothing
			{"F", "EUR", "planned", "", 1000},  // another currency
		} {
			if _, err := l.DB().Exec(`INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state, provider_ref)
				VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8)`, r.ID, kind, subject(r, e.seller, e.cur), fmt.Sprintf("K-%d-%d", r.ID, i), e.cur, e.amount, e.state, e.ref); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, r := range []*pipeline.Run{run, other, later} { // stopped's process is gone
		release, err := l.Lock(ctx, r.Key)
		if err != nil {
			t.Fatal(err)
		}
		defer release()
	}
	paying, err := l.PayingRuns(ctx, run.ID, kind)
	if err != nil {
		t.Fatal(err)
	}
	if len(paying) != 2 || paying[0].ID != other.ID || paying[1].ID != later.ID {
		t.Fatalf("paying runs %v, want the other runs %d and %d", paying, other.ID, later.ID)
	}
	ids := []int64{other.ID, later.ID}
	// Kept: A's items of the day before (its 5 carried are the run's
	// too), G's 60, A's items and 3 carried of the day after; recorded:
	// A's, B's and C's of the day before.
	const want = 100 + 60 + 10 + 3 + 40 + 30 + 20
	if n, err := l.OutstandingInCurrency(ctx, run, ids, kind, "USD"); err != nil || n != want {
		t.Fatalf("outstanding in USD %d, %v; want %d", n, err, want)
	}
	var subjects []string
	for _, s := range []string{"A", "B", "C", "D", "E", "G"} {
		for _, r := range []*pipeline.Run{run, other, later, stopped} {
			subjects = append(subjects, subject(r, s, "USD"))
		}
	}
	kept, recorded, carried, err := l.OutstandingOf(ctx, run, ids, kind, "USD", []string{"A", "B", "G"}, subjects)
	if err != nil {
		t.Fatal(err)
	}
	if len(carried) != 0 {
		t.Errorf("carried %v, want none: no entry in the ledger", carried)
	}
	if want := map[string]int64{"A": 100 + 10 + 3, "G": 60}; !reflect.DeepEqual(kept, want) {
		t.Errorf("kept %v, want %v", kept, want)
	}
	if want := map[string]int64{subject(other, "A", "USD"): 40, subject(other, "B", "USD"): 30, subject(other, "C", "USD"): 20}; !reflect.DeepEqual(recorded, want) {
		t.Errorf("recorded %v, want %v", recorded, want)
	}
	// The day before plans G's payout, of G's carried balance: counted
	// once, as planned.
	if _, err := l.DB().Exec(`INSERT INTO adjustments (seller_id, currency, kind, amount_minor, business_date, run_id) VALUES ('G', 'USD', 'held', 60, $1, $2)`,
		other.Key.Date.String(), other.ID); err != nil {
		t.Fatal(err)
	}
	// The sellers' open carried balances up to the run's date, as
	// PlanPayout sums them: G's 60 until the day before's payout nets it.
	carriedNow := func() map[string]int64 {
		t.Helper()
		_, _, carried, err := l.OutstandingOf(ctx, run, ids, kind, "USD", []string{"A", "G"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return carried
	}
	if got, want := carriedNow(), map[string]int64{"G": 60}; !reflect.DeepEqual(got, want) {
		t.Errorf("carried %v, want %v", got, want)
	}
	if _, err := l.PlanPayout(ctx, other, "G", shareChannels, pipeline.Effect{RunID: other.ID, Kind: kind, Subject: subject(other, "G", "USD"), Attempt: 1,
		Key: "K-G", Currency: "USD", Amount: 60}); err != nil {
		t.Fatal(err)
	}
	if got := carriedNow(); len(got) != 0 {
		t.Errorf("carried %v once netted, want none", got)
	}
	if n, err := l.OutstandingInCurrency(ctx, run, ids, kind, "USD"); err != nil || n != want {
		t.Fatalf("outstanding in USD once G's payout is planned: %d, %v; want %d", n, err, want)
	}
}

// TestAHeldPayoutIsNoLongerOneKeptToCheck: a run that holds (carries) a
// payout it kept to check will not send it; another run paying now counted
// it until the run's planning ended, and a currency one shard held whole
// (its balance short of both shards' needs) held the other shard's too,
// which the balance covered alone (found by a review).
func TestAHeldPayoutIsNoLongerOneKeptToCheck(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	const kind = "revenue_share"
	run, other := openRun(t, l, day), openRun(t, l, day.AddDays(-1))
	if err := l.AddPayoutCandidates(ctx, other.ID, kind, []pipeline.PayoutCandidate{
		{SellerID: "H", Currency: "USD", Payable: 70, Items: 1, Account: "I-H"},
		{SellerID: "K", Currency: "USD", Payable: 30, Items: 1, Account: "I-K"},
		{SellerID: "H", Currency: "EUR", Payable: 9, Items: 1, Account: "I-H"},
	}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*pipeline.Run{run, other} {
		release, err := l.Lock(ctx, r.Key)
		if err != nil {
			t.Fatal(err)
		}
		defer release()
	}
	outstanding := func(cur pipeline.Currency) int64 {
		t.Helper()
		n, err := l.OutstandingInCurrency(ctx, run, []int64{other.ID}, kind, cur)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := outstanding("USD"); got != 100 {
		t.Fatalf("outstanding in USD %d, want 100", got)
	}
	// The other run holds H's USD payout (its balance or H's share short).
	if _, _, err := l.CarryItems(ctx, other, "H", "USD", shareChannels, "RS/H/USD", "held"); err != nil {
		t.Fatal(err)
	}
	if got := outstanding("USD"); got != 30 {
		t.Errorf("outstanding in USD %d once H's payout is held, want K's 30 alone", got)
	}
	if got := outstanding("EUR"); got != 9 {
		t.Errorf("outstanding in EUR %d, want H's 9: only its USD payout was held", got)
	}
}
