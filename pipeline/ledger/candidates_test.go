package ledger_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// TestPayoutCandidatesMergeItemsAndCarries: what a run may pay streams by
// seller and currency, merging the run's uploaded items with every open
// carried balance up to its date, each with the seller's account (the
// run's, else the last recorded); the payouts kept to check are summed by
// currency and read back by pages. AccountOf reads one seller's account.
func TestPayoutCandidatesMergeItemsAndCarries(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	older := openRun(t, l, pipeline.Date{Year: 2026, Month: 2, Day: 1})
	run := openRun(t, l, day)
	later := openRun(t, l, pipeline.Date{Year: 2026, Month: 12, Day: 1})
	if _, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
		for i, s := range []struct {
			seller string
			cur    pipeline.Currency
			share  int64
		}{{"S1", "USD", 9}, {"S1", "USD", 9}, {"S1", "EUR", 5}, {"S2", "USD", 7}, {"S3", "USD", 4}, {"S4", "USD", 3}} {
			no := fmt.Sprintf("O%03d", i)
			o := pipeline.Order{Seq: int64(i + 1), OrderNo: no, SellerID: s.seller, Channel: chInfinia,
				ProviderTxnID: "T" + no, Currency: s.cur, Amount: s.share + 1, PaidAt: at, ConfirmedAt: at}
			if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 1, SellerShare: s.share}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		// Uploaded, but for S4's item, which is in a trade file still; S3's
		// item is covered by a payout already.
		`UPDATE items SET state = 'uploaded' WHERE run_id = ` + fmt.Sprint(run.ID) + ` AND seller_id <> 'S4'`,
		`UPDATE items SET payout_key = 'RS-S3' WHERE seller_id = 'S3'`,
		fmt.Sprintf(`INSERT INTO run_sellers (run_id, seller_id, infinia_seller_id) VALUES
			(%[1]d, 'S1', 'I-S1'), (%[1]d, 'S2', ''), (%[1]d, 'S3', 'I-S3'), (%[2]d, 'C9', 'I-C9-old'), (%[2]d, 'S2', 'I-S2-old')`, run.ID, older.ID),
		// Carried: S1 in USD owes 5 back and had 2 held; C9 (not in the run)
		// is owed 40; S2's carry was netted; later's entry is after the
		// run's date.
		fmt.Sprintf(`INSERT INTO adjustments (seller_id, currency, kind, amount_minor, refund_minor, commission_back, business_date, run_id, netted_into, netted_date) VALUES
			('S1', 'USD', 'clawback', -5, 6, 1, '2026-02-01', %[1]d, '', NULL),
			('S1', 'USD', 'held', 2, 0, 0, '2026-02-01', %[1]d, '', NULL),
			('C9', 'EUR', 'held', 40, 0, 0, '2026-02-01', %[1]d, '', NULL),
			('S2', 'USD', 'held', 3, 0, 0, '2026-02-01', %[1]d, 'RS/x', '2026-02-02'),
			('C8', 'USD', 'held', 8, 0, 0, '2026-12-01', %[2]d, '', NULL)`, older.ID, later.ID),
		// S2 owes 2 back by a late refund the run read: dated the run's own
		// date, netted by its payout.
		fmt.Sprintf(`INSERT INTO adjustments (seller_id, currency, kind, amount_minor, refund_no, refund_minor, commission_back, business_date, run_id, netted_into, netted_date) VALUES
			('S2', 'USD', 'clawback', -2, 'LR-S2', 3, 1, '%s', %d, '', NULL)`, day, run.ID),
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
		{SellerID: "C9", Currency: "EUR", Carried: 40, Account: "I-C9-old"},
		{SellerID: "S1", Currency: "EUR", Payable: 5, Items: 1, Account: "I-S1"},
		{SellerID: "S1", Currency: "USD", Payable: 18, Items: 2, Carried: -3, Account: "I-S1"},
		{SellerID: "S2", Currency: "USD", Payable: 7, Items: 1, Carried: -2, Account: ""}, // the run's date's carry: the run's account, though empty
		{SellerID: "S3", Currency: "USD", Account: "I-S3"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("candidates\n got %+v\nwant %+v", got, want)
	}
	// One seller's account with the run (S2's empty one too), else its
	// latest (C9, paid only its carried balance): as the candidates have it.
	for seller, want := range map[string]string{"S1": "I-S1", "S2": "", "C9": "I-C9-old", "S9": ""} {
		if got, err := l.AccountOf(ctx, run.ID, "infiniapay", seller); err != nil || got != want {
			t.Fatalf("account of %s: %q, %v; want %q", seller, got, err, want)
		}
	}
	if got, err := l.AccountOf(ctx, older.ID, "infiniapay", "C9"); err != nil || got != "I-C9-old" {
		t.Fatalf("account of C9 with its run: %q, %v", got, err)
	}
	if err := l.EachPayoutCandidate(ctx, run, shareChannels, "nowhere", func(pipeline.PayoutCandidate) error { return nil }); err == nil {
		t.Fatal("candidates with accounts at an unknown provider: no error")
	}

	// Kept to check: summed by currency, read back by seller in pages,
	// replaced when kept again, forgotten by run and kind.
	keep := func(kind string, ps ...pipeline.PayoutCandidate) {
		t.Helper()
		if err := l.AddPayoutCandidates(ctx, run.ID, kind, ps); err != nil {
			t.Fatal(err)
		}
	}
	keep("revenue_share", got[0], got[1], got[2])
	keep("revenue_share", pipeline.PayoutCandidate{SellerID: "S0", Currency: "USD", Payable: 1 << 40, Items: 1, Account: "I-S0"})
	keep("revenue_share", pipeline.PayoutCandidate{SellerID: "S1", Currency: "EUR", Payable: 6, Items: 2, Account: "I-S1"}) // again
	keep("other", got[3])
	totals, err := l.PayoutCandidateTotals(ctx, run.ID, "revenue_share")
	if err != nil {
		t.Fatal(err)
	}
	if want := []pipeline.Money{{Minor: 46, Currency: "EUR"}, {Minor: 1<<40 + 15, Currency: "USD"}}; !reflect.DeepEqual(totals, want) {
		t.Fatalf("totals %v, want %v", totals, want)
	}
	var sellers []string
	after := ""
	for {
		page, err := l.PayoutCandidatesAfter(ctx, run.ID, "revenue_share", "EUR", after, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) != 1 {
			t.Fatalf("page of %d, want 1", len(page))
		}
		sellers = append(sellers, page[0].SellerID)
		after = page[0].SellerID
		if page[0].SellerID == "S1" && page[0] != (pipeline.PayoutCandidate{SellerID: "S1", Currency: "EUR", Payable: 6, Items: 2, Account: "I-S1"}) {
			t.Fatalf("S1 EUR kept as %+v, want it as kept last", page[0])
		}
	}
	if !reflect.DeepEqual(sellers, []string{"C9", "S1"}) {
		t.Fatalf("EUR payouts read back %v, want C9 S1", sellers)
	}
	// Sums beyond int64 are an error, not a wrapped number.
	keep("revenue_share", pipeline.PayoutCandidate{SellerID: "S9", Currency: "USD", Payable: 1<<63 - 1, Account: "I-S9"})
	if _, err := l.PayoutCandidateTotals(ctx, run.ID, "revenue_share"); err == nil {
		t.Fatal("a currency's total beyond int64: no error")
	}
	if err := l.ClearPayoutCandidates(ctx, run.ID, "revenue_share"); err != nil {
		t.Fatal(err)
	}
	if totals, err := l.PayoutCandidateTotals(ctx, run.ID, "revenue_share"); err != nil || len(totals) != 0 {
		t.Fatalf("after clearing: %v, %v", totals, err)
	}
	if totals, err := l.PayoutCandidateTotals(ctx, run.ID, "other"); err != nil || len(totals) != 1 {
		t.Fatalf("another kind's payouts after clearing revenue shares: %v, %v; want them kept", totals, err)
	}
}

// TestKnownSellersGivesEachSellersLatestInfiniaID: a seller the platform
// gave another Infinia id since an earlier run is known by the id of its
// latest run (the one its payouts go to), not by whichever of its runs'
// rows came first (settle sellers sync asked Infinia about the old id and
// recorded its status under it); a recorded binding still comes first.
func TestKnownSellersGivesEachSellersLatestInfiniaID(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	var runs []*pipeline.Run
	for d := 1; d <= 4; d++ {
		runs = append(runs, openRun(t, l, pipeline.Date{Year: 2026, Month: 3, Day: d}))
	}
	// Written oldest first, as the runs record them.
	if _, err := l.DB().Exec(fmt.Sprintf(`INSERT INTO run_sellers (run_id, seller_id, infinia_seller_id) VALUES
		(%[1]d, 'S1', 'I-S1-old'), (%[2]d, 'S1', 'I-S1-mid'), (%[3]d, 'S1', 'I-S1-new'), (%[3]d, 'S2', ''), (%[1]d, 'S2', 'I-S2'),
		(%[1]d, 'S3', 'I-S3-run'), (%[4]d, 'S1', '')`, runs[0].ID, runs[1].ID, runs[2].ID, runs[3].ID)); err != nil {
		t.Fatal(err)
	}
	if err := l.SetBinding(ctx, pipeline.Binding{SellerID: "S3", ProviderSellerID: "I-S3-bound", Status: "ACTIVE", Source: "bind"}); err != nil {
		t.Fatal(err)
	}
	got, err := l.KnownSellers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []pipeline.Binding{{SellerID: "S1", ProviderSellerID: "I-S1-new"}, {SellerID: "S2", ProviderSellerID: "I-S2"},
		{SellerID: "S3", ProviderSellerID: "I-S3-bound", Status: "ACTIVE"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("known sellers\n got %+v\nwant %+v", got, want)
	}
}

// TestSellerOfInfiniaIDIsItsLatestSellers: an Infinia id the platform
// moved from one seller to another (a corrected sellers row) is the
// second's, as its latest run gave it; a binding's seller comes first.
func TestSellerOfInfiniaIDIsItsLatestSellers(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	first := openRun(t, l, pipeline.Date{Year: 2026, Month: 3, Day: 1})
	second := openRun(t, l, pipeline.Date{Year: 2026, Month: 3, Day: 2})
	if _, err := l.DB().Exec(fmt.Sprintf(`INSERT INTO run_sellers (run_id, seller_id, infinia_seller_id) VALUES
		(%[1]d, 'A', 'I-X'), (%[2]d, 'A', 'I-Y'), (%[2]d, 'B', 'I-X')`, first.ID, second.ID)); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"I-X": "B", "I-Y": "A", "I-Z": ""} {
		if got, ok, err := l.SellerOfInfiniaID(ctx, id); err != nil || got != want || ok != (want != "") {
			t.Fatalf("seller of %s: %q, %v, %v; want %q", id, got, ok, err, want)
		}
	}
	if err := l.SetBinding(ctx, pipeline.Binding{SellerID: "A", ProviderSellerID: "I-X", Status: "ACTIVE", Source: "bind"}); err != nil {
		t.Fatal(err)
	}
	if got, _, err := l.SellerOfInfiniaID(ctx, "I-X"); err != nil || got != "A" {
		t.Fatalf("seller of I-X bound to A: %q, %v", got, err)
	}
}

// TestPayoutCandidatesPayOwnItemsAtAnAccountHeldBefore: an earlier date
// that held a seller's orders for its account (unusable then) voids that
// account for a carried balance alone, but not for a run that pays the
// seller's own orders there: the run's verification of them stands (the
// balance goes with them). A mutant that voided it for both survived
// every test (session 50's mutation testing, P06).
func TestPayoutCandidatesPayOwnItemsAtAnAccountHeldBefore(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	older := openRun(t, l, pipeline.Date{Year: 2026, Month: 2, Day: 1})
	run := openRun(t, l, day)
	write := func(r *pipeline.Run, sellers ...string) {
		t.Helper()
		if _, err := l.WriteItems(ctx, r, func(w pipeline.ItemWriter) error {
			for _, s := range sellers {
				no := fmt.Sprintf("O-%d-%s", r.ID, s)
				o := pipeline.Order{Seq: 1, OrderNo: no, SellerID: s, Channel: chInfinia,
					ProviderTxnID: "T" + no, Currency: "USD", Amount: 11, PaidAt: at, ConfirmedAt: at}
				if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 1, SellerShare: 10}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	write(older, "S5", "S6")
	write(run, "S5")
	for _, q := range []string{
		fmt.Sprintf(`UPDATE items SET state = 'held', reason = '%sseller S held: account unusable' WHERE run_id = %d`, pipeline.SellerHoldPrefix, older.ID),
		fmt.Sprintf(`UPDATE items SET state = 'uploaded' WHERE run_id = %d`, run.ID),
		fmt.Sprintf(`INSERT INTO run_sellers (run_id, seller_id, infinia_seller_id) VALUES
			(%[1]d, 'S5', 'I-S5'), (%[1]d, 'S6', 'I-S6'), (%[2]d, 'S5', 'I-S5'), (%[2]d, 'S6', 'I-S6')`, older.ID, run.ID),
		fmt.Sprintf(`INSERT INTO adjustments (seller_id, currency, kind, amount_minor, refund_minor, commission_back, business_date, run_id, netted_into, netted_date) VALUES
			('S5', 'USD', 'held', 4, 0, 0, '2026-02-01', %[1]d, '', NULL),
			('S6', 'USD', 'held', 4, 0, 0, '2026-02-01', %[1]d, '', NULL)`, older.ID),
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
		{SellerID: "S5", Currency: "USD", Payable: 10, Items: 1, Carried: 4, Account: "I-S5"}, // its own items verified there now
		{SellerID: "S6", Currency: "USD", Carried: 4, Account: ""},                            // a balance alone: the earlier verdict stands
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("candidates\n got %+v\nwant %+v", got, want)
	}
}

// TestPayoutCandidatesHoldALeftSellersBalanceAtAnotherSellersAccount: a
// seller with only a carried balance whom the platform no longer gives
// (it left: the run recorded no row of it) is paid to the account last
// recorded for it - but not where the run's date records that account
// for another seller, the seller the platform gives it to now (an Infinia
// id is one seller's). Its balance went there, into the other seller's
// account, as the last record's date had no other seller of it.
func TestPayoutCandidatesHoldALeftSellersBalanceAtAnotherSellersAccount(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	older := openRun(t, l, pipeline.Date{Year: 2026, Month: 2, Day: 1})
	run := openRun(t, l, day)
	for _, q := range []string{
		// L1 left with I-X, now T1's; L2 left with I-Y, no one's since.
		fmt.Sprintf(`INSERT INTO run_sellers (run_id, seller_id, infinia_seller_id) VALUES
			(%[1]d, 'L1', 'I-X'), (%[1]d, 'L2', 'I-Y'), (%[2]d, 'T1', 'I-X')`, older.ID, run.ID),
		fmt.Sprintf(`INSERT INTO adjustments (seller_id, currency, kind, amount_minor, refund_minor, commission_back, business_date, run_id, netted_into, netted_date) VALUES
			('L1', 'USD', 'held', 40, 0, 0, '2026-02-01', %[1]d, '', NULL),
			('L2', 'USD', 'held', 40, 0, 0, '2026-02-01', %[1]d, '', NULL)`, older.ID),
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
		{SellerID: "L1", Currency: "USD", Carried: 40, Account: ""},    // T1's account on the run's date: for a person
		{SellerID: "L2", Currency: "USD", Carried: 40, Account: "I-Y"}, // its last account, no one else's: paid there
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("candidates\n got %+v\nwant %+v", got, want)
	}
}
