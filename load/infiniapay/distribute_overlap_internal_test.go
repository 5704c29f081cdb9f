package infiniapay

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

// payingStore is planStore beside another run paying now (another date's,
// or another shard of the day): what it keeps to check and has sent
// without Infinia's answer, by currency and seller.
type payingStore struct {
	*planStore
	other    *pipeline.Run
	kept     map[pipeline.Currency]map[string]int64 // by seller
	recorded map[string]int64                       // by subject
	carried  map[string]int64                       // the sellers' open carried balances now
	mu       sync.Mutex                             // asked is appended to by the pacer's calls at once
	asked    []string                               // what was asked, in order
}

// ask records what was asked.
func (s *payingStore) ask(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, what)
}

func (s *payingStore) PayingRuns(context.Context, int64, string) ([]*pipeline.Run, error) {
	s.ask("paying runs")
	return []*pipeline.Run{s.other}, nil
}

func (s *payingStore) OutstandingInCurrency(_ context.Context, _ *pipeline.Run, ids []int64, _ string, cur pipeline.Currency) (int64, error) {
	s.ask("outstanding " + string(cur))
	if !slices.Equal(ids, []int64{s.other.ID}) {
		return 0, nil
	}
	var sum int64
	for _, v := range s.kept[cur] {
		sum += v
	}
	for subject, v := range s.recorded {
		if strings.HasSuffix(subject, "/"+string(cur)) {
			sum += v
		}
	}
	return sum, nil
}

func (s *payingStore) OutstandingOf(_ context.Context, _ *pipeline.Run, ids []int64, _ string, cur pipeline.Currency, sellers, subjects []string) (map[string]int64, map[string]int64, map[string]int64, error) {
	s.ask("outstanding of sellers " + string(cur))
	kept, recorded := map[string]int64{}, map[string]int64{}
	if !slices.Equal(ids, []int64{s.other.ID}) {
		return kept, recorded, s.carried, nil
	}
	for _, seller := range sellers {
		if v, ok := s.kept[cur][seller]; ok {
			kept[seller] = v
		}
	}
	for _, subject := range subjects {
		if v, ok := s.recorded[subject]; ok {
			recorded[subject] = v
		}
	}
	return kept, recorded, s.carried, nil
}

// askingAPI is shareAPI recording, in the store's order of questions,
// when Infinia was asked the balance and an available share.
type askingAPI struct {
	*shareAPI
	s *payingStore
}

func (a *askingAPI) Balance(ctx context.Context, no string, cur pipeline.Currency) (int64, error) {
	a.s.ask("balance " + string(cur))
	return a.shareAPI.Balance(ctx, no, cur)
}

func (a *askingAPI) AvailableShare(ctx context.Context, no, id string, cur pipeline.Currency) (int64, error) {
	a.s.ask("available " + id + " " + string(cur))
	return a.shareAPI.AvailableShare(ctx, no, id, cur)
}

// TestPlanningCountsWhatAnotherRunPayingNowMayTake: two runs whose
// planning overlaps (the shards of an Indexed Job, a backfill beside the
// nightly run) each checked the platform balance and a seller's available
// share at Infinia against its own need alone: both passed, both sent, and
// Infinia failed what came second (found by a review, with two settle
// processes against paysim: "insufficient balance", "amount above the
// seller's available revenue share"). Planning counts what the other runs
// paying now keep to check or sent without Infinia's answer, read before
// Infinia is asked: a currency whose balance does not cover both is held
// whole (nothing sent in it, for a person, as the balance alone would), a
// seller whose available share does not is carried, and the rest is
// planned as before.
func TestPlanningCountsWhatAnotherRunPayingNowMayTake(t *testing.T) {
	day := pipeline.Date{Year: 2026, Month: 12, Day: 2}
	before := pipeline.Date{Year: 2026, Month: 11, Day: 20} // a backfill's date
	ps := &planStore{carried: map[string]string{}, planned: map[string]int64{}, cands: []pipeline.PayoutCandidate{
		{SellerID: "SHARED", Currency: "USD", Payable: 600, Items: 1, Account: "I1"},
		{SellerID: "SENT", Currency: "USD", Payable: 600, Items: 1, Account: "I2"},
		{SellerID: "ALONE", Currency: "USD", Payable: 600, Items: 1, Account: "I3"},
		{SellerID: "ALONE", Currency: "EUR", Payable: 500, Items: 1, Account: "I3"},
		{SellerID: "SHARED", Currency: "EUR", Payable: 500, Items: 1, Account: "I1"},
		{SellerID: "STALE", Currency: "USD", Payable: 500, Carried: 100, Items: 1, Account: "I4"},
	}}
	s := &payingStore{planStore: ps, other: &pipeline.Run{ID: 7, Key: pipeline.RunKey{Date: before, Shard: pipeline.Whole}},
		// The other run keeps SHARED's USD payout to check, and sent
		// SENT's without an answer yet; in EUR it keeps 900 of another
		// seller's.
		kept: map[pipeline.Currency]map[string]int64{"USD": {"SHARED": 500}, "EUR": {"OTHER": 900}},
		recorded: map[string]int64{
			RevenueShareSubject(before, "SENT", "USD"):  500,
			RevenueShareSubject(before, "OTHER", "JPY"): 1 << 30, // another currency: not counted
			// The other run's payout netted the 100 STALE's kept payout
			// nets too: that one is stale (the ledger refuses to plan it,
			// not this fake), not held for the other run.
			RevenueShareSubject(before, "STALE", "USD"): 600,
		},
		carried: map[string]int64{}}
	// Each USD seller's share covers this run's 600 alone, not beside the
	// other run's 500; USD's balance covers both runs' needs, EUR's only
	// this run's 1000.
	api := &askingAPI{shareAPI: &shareAPI{planAPI: &planAPI{bindings: map[string]int{}, balance: map[pipeline.Currency]int64{"USD": 1 << 40, "EUR": 1500}},
		available: map[string]int64{"I1": 1000, "I2": 1000, "I3": 1000, "I4": 1000}}, s: s}
	c := StageConfig{Store: s, API: api}
	c.defaults()
	d := &distribution{c: &c, run: &pipeline.Run{ID: 8, Key: pipeline.RunKey{Date: day, Shard: pipeline.Whole}}}
	if err := d.plan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"ALONE USD": 600, "STALE USD": 600}; !maps.Equal(ps.planned, want) {
		t.Errorf("planned %v, want %v", ps.planned, want)
	}
	for k, why := range map[string]string{
		"SHARED USD": "Infinia shows 10.00 USD available, we owe 6.00 USD, and settle's other runs paying now (2026-11-20) may still take 5.00 USD of it",
		"SENT USD":   "Infinia shows 10.00 USD available, we owe 6.00 USD, and settle's other runs paying now (2026-11-20) may still take 5.00 USD of it",
		"ALONE EUR":  "platform balance 15.00 EUR, short of the 10.00 EUR this run's EUR payouts need and the 9.00 EUR settle's other runs paying now (2026-11-20) may still take: nothing sent in EUR",
		"SHARED EUR": "platform balance 15.00 EUR, short of",
	} {
		if !strings.Contains(ps.carried[k], why) {
			t.Errorf("%s carried %q, want %q", k, ps.carried[k], why)
		}
	}
	if p := d.problems.NeedsPerson(); p == nil {
		t.Error("no problem for a person, want the held payouts")
	}
	// What the other run may take is read before Infinia is asked: a
	// payout of its Infinia takes in between is counted twice at worst,
	// never missed.
	for _, pair := range [][2]string{{"outstanding USD", "balance USD"}, {"outstanding of sellers USD", "available I1 USD"}, {"outstanding EUR", "balance EUR"}} {
		i, j := slices.Index(s.asked, pair[0]), slices.Index(s.asked, pair[1])
		if i < 0 || j < 0 || i > j {
			t.Errorf("%q asked at %d, %q at %d: want the first before the second\n%q", pair[0], i, pair[1], j, s.asked)
		}
	}
}
