package infiniapay

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

// heldStore is planStore with a late refund that cannot be right of one
// seller's orders, and a revenue share of the date already paid to
// another.
type heldStore struct {
	*planStore
	blocked map[pipeline.SellerCurrency]string
	paid    map[string]pipeline.Effect // by subject
}

func (s *heldStore) BlockedByLateRefunds(context.Context, []pipeline.Channel) (map[pipeline.SellerCurrency]string, error) {
	return s.blocked, nil
}

func (s *heldStore) LatestEffect(_ context.Context, _, subject string) (pipeline.Effect, bool, error) {
	e, ok := s.paid[subject]
	return e, ok, nil
}

// TestASellerIsCarriedOnBadDataAndItemsAfterItsRevenueShare: a seller one
// of whose late refunds cannot be right is carried, never paid (what it
// owes back is unknown), and needs a person; items of a seller uploaded
// after the date's revenue share was paid are carried to its next one,
// never left uploaded with no payout to pay them. It guards the blocked
// check and the carry of late items in distribute's planning (a mutation
// test found both untested in this package).
func TestASellerIsCarriedOnBadDataAndItemsAfterItsRevenueShare(t *testing.T) {
	day := pipeline.Date{Year: 2026, Month: 12, Day: 1}
	ps := &planStore{carried: map[string]string{}, planned: map[string]int64{}, cands: []pipeline.PayoutCandidate{
		{SellerID: "BLOCKED", Currency: "USD", Payable: 1000, Items: 1, Account: "I1"},
		{SellerID: "LATE", Currency: "USD", Payable: 300, Items: 1, Account: "I2"},
		{SellerID: "PLAIN", Currency: "USD", Payable: 1000, Items: 1, Account: "I3"},
	}}
	subject := RevenueShareSubject(day, "LATE", "USD")
	s := &heldStore{planStore: ps,
		blocked: map[pipeline.SellerCurrency]string{{SellerID: "BLOCKED", Currency: "USD"}: "R-BAD"},
		paid: map[string]pipeline.Effect{subject: {ID: 9, Kind: KindRevenueShare, Subject: subject, Attempt: 1,
			Key: RevenueShareRequestNo(day, "LATE", "USD", 1), Currency: "USD", Amount: 700, State: pipeline.EffectSucceeded}}}
	api := &shareAPI{planAPI: &planAPI{bindings: map[string]int{}, balance: map[pipeline.Currency]int64{"USD": 1 << 40}},
		available: map[string]int64{"I1": 1 << 40, "I2": 1 << 40, "I3": 1 << 40}}
	c := StageConfig{Store: s, API: api}
	c.defaults()
	d := &distribution{c: &c, run: &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: day, Shard: pipeline.Whole}}}
	if err := d.plan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"PLAIN USD": 1000}; !maps.Equal(ps.planned, want) {
		t.Errorf("planned %v, want %v", ps.planned, want)
	}
	for k, why := range map[string]string{"BLOCKED USD": "late refund R-BAD", "LATE USD": "uploaded after revenue share"} {
		if !strings.Contains(ps.carried[k], why) {
			t.Errorf("%s carried %q, want it carried as %q", k, ps.carried[k], why)
		}
	}
	if p := d.problems.NeedsPerson(); p == nil || !strings.Contains(p.Error(), "R-BAD") {
		t.Errorf("problems %v, want the blocked seller for a person", p)
	}
}

// failedStore is planStore whose run has a revenue share that failed
// (LatestFailed), recording when its failure is applied again and when
// the candidates are read.
type failedStore struct {
	*planStore
	failed pipeline.Effect
	events []string
}

func (s *failedStore) LatestFailed(context.Context, int64, string) ([]pipeline.Effect, error) {
	return []pipeline.Effect{s.failed}, nil
}

func (s *failedStore) PayoutFailed(_ context.Context, _ *pipeline.Run, seller string, cur pipeline.Currency, _ []pipeline.Channel, e pipeline.Effect, reason string) error {
	s.events = append(s.events, "failed "+seller+" "+string(cur)+" "+e.Key+": "+reason)
	return nil
}

func (s *failedStore) EachPayoutCandidate(ctx context.Context, run *pipeline.Run, chs []pipeline.Channel, shard string, fn func(pipeline.PayoutCandidate) error) error {
	s.events = append(s.events, "candidates")
	return s.planStore.EachPayoutCandidate(ctx, run, chs, shard, fn)
}

// TestAFailedRevenueShareIsUndoneBeforePlanning: the process may die
// between recording a revenue share failed and applying its failure
// (re-opening the balance it netted, carrying its items). Every distribute
// applies it again first, before it reads the candidates, so that the
// balance is paid by the next payout rather than left netted into a dead
// one and the items stuck. (A mutation test found nothing calling for it.)
func TestAFailedRevenueShareIsUndoneBeforePlanning(t *testing.T) {
	day := pipeline.Date{Year: 2026, Month: 12, Day: 1}
	subject := RevenueShareSubject(day, "S1", "USD")
	key := RevenueShareRequestNo(day, "S1", "USD", 1)
	s := &failedStore{planStore: &planStore{carried: map[string]string{}, planned: map[string]int64{}},
		failed: pipeline.Effect{ID: 7, Kind: KindRevenueShare, Subject: subject, Attempt: 1, Key: key, Currency: "USD", Amount: 500,
			State: pipeline.EffectFailed, LastError: "FAILED: account closed"}}
	c := StageConfig{Store: s, API: &planAPI{bindings: map[string]int{}, balance: map[pipeline.Currency]int64{}}}
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: day, Shard: pipeline.Whole}}
	if _, err := DistributeStage(c)(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	want := []string{"failed S1 USD " + key + ": revenue share " + key + " failed: FAILED: account closed", "candidates"}
	if !slices.Equal(s.events, want) {
		t.Fatalf("events %q, want %q", s.events, want)
	}
}

// knownShares is a revenue-share sender that only answers status
// queries: the outcome of the requestNos Infinia holds, not found for the
// others.
type knownShares map[string]pipeline.OutcomeStatus

func (k knownShares) Send(context.Context, pipeline.Effect) (pipeline.Outcome, error) {
	panic("knownShares sends nothing")
}

func (k knownShares) Query(_ context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	if st, ok := k[e.Key]; ok {
		return pipeline.Outcome{Status: st}, nil
	}
	return pipeline.Outcome{Status: pipeline.OutcomeNotFound}, nil
}

// TestARevenueShareInfiniaHoldsAlreadyIsPlannedThoughShort: a ledger
// restored from a backup plans again the revenue shares Infinia paid
// since, under the same requestNos, while the platform balance and the
// sellers' available shares went to them. Those Infinia paid or is paying
// are planned
// (sent again under their requestNo, they move nothing and are recorded
// as Infinia answers); those it does not know, or failed (nothing moved:
// short indeed, and an answer about a requestNo never sent must not lift
// the check), are still carried as short.
// Before, every one was carried, and Infinia's payments known to no one
// but Infinia.
func TestARevenueShareInfiniaHoldsAlreadyIsPlannedThoughShort(t *testing.T) {
	day := pipeline.Date{Year: 2026, Month: 12, Day: 1}
	ps := &planStore{carried: map[string]string{}, planned: map[string]int64{}, cands: []pipeline.PayoutCandidate{
		{SellerID: "PAID", Currency: "USD", Payable: 1000, Items: 1, Account: "I1"},
		{SellerID: "SHORT", Currency: "USD", Payable: 1000, Items: 1, Account: "I2"},
		{SellerID: "YEN", Currency: "JPY", Payable: 700, Items: 1, Account: "I3"},
		{SellerID: "FAILED", Currency: "USD", Payable: 400, Items: 1, Account: "I4"},
		{SellerID: "PAYING", Currency: "USD", Payable: 300, Items: 1, Account: "I5"},
	}}
	// The JPY balance is short of the share Infinia paid already.
	api := &shareAPI{planAPI: &planAPI{bindings: map[string]int{}, balance: map[pipeline.Currency]int64{"USD": 1 << 40, "JPY": 100}},
		available: map[string]int64{"I1": 0, "I2": 999, "I3": 0, "I4": 0, "I5": 0}}
	c := StageConfig{Store: ps, API: api, Payouts: knownShares{
		RevenueShareRequestNo(day, "PAID", "USD", 1):   pipeline.OutcomeSucceeded,
		RevenueShareRequestNo(day, "YEN", "JPY", 1):    pipeline.OutcomeSucceeded,
		RevenueShareRequestNo(day, "FAILED", "USD", 1): pipeline.OutcomeFailed,
		// Infinia is paying it still: the money is gone to it as well.
		RevenueShareRequestNo(day, "PAYING", "USD", 1): pipeline.OutcomePending,
	}}
	c.defaults()
	d := &distribution{c: &c, run: &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: day, Shard: pipeline.Whole}}}
	if err := d.plan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"PAID USD": 1000, "YEN JPY": 700, "PAYING USD": 300}; !maps.Equal(ps.planned, want) {
		t.Errorf("planned %v, want %v", ps.planned, want)
	}
	if len(ps.carried) != 2 || !strings.Contains(ps.carried["SHORT USD"], "available") ||
		!strings.Contains(ps.carried["FAILED USD"], "available") || !strings.Contains(ps.carried["FAILED USD"], "Infinia failed requestNo") {
		t.Errorf("carried %v, want SHORT and FAILED, as short", ps.carried)
	}
}

// unreadAccounts is a ledger whose seller accounts cannot be read.
type unreadAccounts struct{ reads atomic.Int32 }

func (u *unreadAccounts) AccountOf(context.Context, int64, string, string) (string, error) {
	u.reads.Add(1)
	return "", errors.New(`pq: database "settle" is not currently accepting connections`)
}

// accountFirst is Infinia's status query as RevenueShareSender makes it
// when Infinia's answer names the seller: the seller's Infinia id read
// from the ledger (sellerIDs), then the answer (none here: never reached).
type accountFirst struct {
	seller func(context.Context, pipeline.Effect) (string, error)
}

func (a accountFirst) Send(context.Context, pipeline.Effect) (pipeline.Outcome, error) {
	panic("accountFirst sends nothing")
}

func (a accountFirst) Query(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	if _, err := a.seller(ctx, e); err != nil {
		return pipeline.Outcome{}, err
	}
	return pipeline.Outcome{Status: pipeline.OutcomeNotFound}, nil
}

// TestAShortShareIsNotHeldWhenTheLedgerCannotBeRead: a share short at
// Infinia is asked about under its next requestNo (atInfinia), a query
// that reads the ledger for the seller's Infinia id. A ledger that could
// not be read carried every short payout for a person with the ledger's
// words as its reason, one problem a payout; it is the run's failure:
// planning stops at the first, told once, and holds no one for it.
func TestAShortShareIsNotHeldWhenTheLedgerCannotBeRead(t *testing.T) {
	day := pipeline.Date{Year: 2026, Month: 12, Day: 1}
	ps := &planStore{carried: map[string]string{}, planned: map[string]int64{}}
	available := map[string]int64{}
	for i := range 40 {
		ps.cands = append(ps.cands, pipeline.PayoutCandidate{SellerID: fmt.Sprintf("S%02d", i), Currency: "USD", Payable: 1000, Items: 1,
			Account: fmt.Sprintf("I%02d", i)})
		available[fmt.Sprintf("I%02d", i)] = 10 // short
	}
	api := &shareAPI{planAPI: &planAPI{bindings: map[string]int{}, balance: map[pipeline.Currency]int64{"USD": 1 << 40}}, available: available}
	ledger := &unreadAccounts{}
	c := StageConfig{Store: ps, API: api, Payouts: classified{accountFirst{sellerIDs(ledger)}}, Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: 4})}
	c.defaults()
	d := &distribution{c: &c, run: &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: day, Shard: pipeline.Whole}}}
	err := d.plan(context.Background())
	if !errors.Is(err, pipeline.ErrNotRead) {
		t.Fatalf("err %v, want the ledger's failure to read", err)
	}
	if n := strings.Count(err.Error(), "not currently accepting"); n != 1 {
		t.Fatalf("the ledger's failure told %d times, want once:\n%.600s", n, err)
	}
	if len(ps.carried) != 0 || len(ps.planned) != 0 {
		t.Errorf("carried %v, planned %v: want nothing held or planned on a ledger that cannot be read", ps.carried, ps.planned)
	}
	if n := ledger.reads.Load(); n > 8 {
		t.Errorf("%d payouts read the ledger after it failed, want planning stopped", n)
	}
}

// refusingBalance is shareAPI whose balance query Infinia refuses in one
// currency (an error about that currency alone).
type refusingBalance struct {
	*shareAPI
	refused pipeline.Currency
}

func (a *refusingBalance) Balance(ctx context.Context, id string, cur pipeline.Currency) (int64, error) {
	if cur == a.refused {
		return 0, fmt.Errorf("balance in %s: SYS-005 currency not supported: %w", cur, pipeline.ErrRefused)
	}
	return a.shareAPI.Balance(ctx, id, cur)
}

// TestABalanceRefusedInOneCurrencyHoldsBackOnlyThatCurrency: Infinia
// refusing the platform balance query in one currency carries that
// currency's payouts, for a person; the other currencies' payouts are
// planned. Returned as the stage's error, it held back every seller in
// every currency.
func TestABalanceRefusedInOneCurrencyHoldsBackOnlyThatCurrency(t *testing.T) {
	day := pipeline.Date{Year: 2026, Month: 12, Day: 1}
	ps := &planStore{carried: map[string]string{}, planned: map[string]int64{}, cands: []pipeline.PayoutCandidate{
		{SellerID: "A", Currency: "JPY", Payable: 1000, Items: 1, Account: "I1"},
		{SellerID: "A", Currency: "USD", Payable: 500, Items: 1, Account: "I1"},
		{SellerID: "B", Currency: "USD", Payable: 700, Items: 1, Account: "I2"},
	}}
	s := &heldStore{planStore: ps, blocked: map[pipeline.SellerCurrency]string{}, paid: map[string]pipeline.Effect{}}
	api := &refusingBalance{refused: "JPY", shareAPI: &shareAPI{
		planAPI:   &planAPI{bindings: map[string]int{}, balance: map[pipeline.Currency]int64{"USD": 1 << 40, "JPY": 1 << 40}},
		available: map[string]int64{"I1": 1 << 40, "I2": 1 << 40}}}
	c := StageConfig{Store: s, API: api}
	c.defaults()
	d := &distribution{c: &c, run: &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: day, Shard: pipeline.Whole}}}
	if err := d.plan(context.Background()); err != nil {
		t.Fatalf("plan: %v; want the refused currency held, the others planned", err)
	}
	if want := map[string]int64{"A USD": 500, "B USD": 700}; !maps.Equal(ps.planned, want) {
		t.Errorf("planned %v, want %v", ps.planned, want)
	}
	if !strings.Contains(ps.carried["A JPY"], "refused the balance query in JPY") {
		t.Errorf("A JPY carried %q, want it carried as the balance refused", ps.carried["A JPY"])
	}
	if p := d.problems.NeedsPerson(); p == nil || !strings.Contains(p.Error(), "balance query in JPY") {
		t.Errorf("problems %v, want the refused currency for a person", p)
	}
}

// keyTakenStore is planStore whose ledger refuses the payouts planned
// under the requestNos in taken: other sellers' already. It records the
// key of each payout planned, by seller and currency.
type keyTakenStore struct {
	*planStore
	taken map[string]bool
	keys  map[string]string
}

func (s *keyTakenStore) PlanPayout(ctx context.Context, run *pipeline.Run, seller string, chs []pipeline.Channel, e pipeline.Effect) (pipeline.Effect, error) {
	if s.taken[e.Key] {
		return e, fmt.Errorf("plan %s %s: key %s is already %s OTHER's (attempt 1): %w", e.Kind, e.Subject, e.Key, e.Kind, pipeline.ErrKeyTaken)
	}
	s.mu.Lock()
	s.keys[seller+" "+string(e.Currency)] = e.Key
	s.mu.Unlock()
	return s.planStore.PlanPayout(ctx, run, seller, chs, e)
}

// TestARevenueShareWhoseKeyIsAnotherSellersIsPlannedUnderItsTakenKey: two
// seller ids whose requestNos' 48-bit hashes collide (C08131670 and
// C35223824 in USD: found in a minute) had the ledger refuse the second's
// payout, and that error stopped the whole distribute stage, on every run
// of the date: no seller of the date was paid (found by a review with
// hostile data). The second is planned under its requestNo "taken"
// instead, and paid; one whose both requestNos are taken is carried for a
// person, the others planned.
func TestARevenueShareWhoseKeyIsAnotherSellersIsPlannedUnderItsTakenKey(t *testing.T) {
	day := pipeline.Date{Year: 2026, Month: 12, Day: 1}
	ps := &planStore{carried: map[string]string{}, planned: map[string]int64{}, cands: []pipeline.PayoutCandidate{
		{SellerID: "A", Currency: "USD", Payable: 1000, Items: 1, Account: "I1"},
		{SellerID: "B", Currency: "USD", Payable: 500, Items: 1, Account: "I2"},
		{SellerID: "C", Currency: "EUR", Payable: 700, Items: 1, Account: "I3"},
		{SellerID: "D", Currency: "USD", Payable: 300, Items: 1, Account: "I4"},
	}}
	s := &keyTakenStore{planStore: ps, keys: map[string]string{}, taken: map[string]bool{
		RevenueShareRequestNo(day, "B", "USD", 1):      true,
		RevenueShareRequestNo(day, "D", "USD", 1):      true,
		RevenueShareRequestNoTaken(day, "D", "USD", 1): true,
	}}
	c := StageConfig{Store: s, API: &planAPI{bindings: map[string]int{}, balance: map[pipeline.Currency]int64{"USD": 1 << 40, "EUR": 1 << 40}}}
	c.defaults()
	d := &distribution{c: &c, run: &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: day, Shard: pipeline.Whole}}}
	if err := d.plan(context.Background()); err != nil {
		t.Fatalf("planning stopped: %v; want the seller whose keys are taken carried, the others planned", err)
	}
	if want := map[string]int64{"A USD": 1000, "B USD": 500, "C EUR": 700}; !maps.Equal(ps.planned, want) {
		t.Errorf("planned %v, want %v", ps.planned, want)
	}
	if got, want := s.keys["B USD"], RevenueShareRequestNoTaken(day, "B", "USD", 1); got != want || got == RevenueShareRequestNo(day, "B", "USD", 1) {
		t.Errorf("B USD planned under %s, want its requestNo taken %s", got, want)
	}
	if got, want := s.keys["A USD"], RevenueShareRequestNo(day, "A", "USD", 1); got != want {
		t.Errorf("A USD planned under %s, want its requestNo %s", got, want)
	}
	key := RevenueShareRequestNoTaken(day, "D", "USD", 1)
	if why := ps.carried["D USD"]; !strings.Contains(why, key) || !strings.Contains(why, "OTHER") {
		t.Errorf("D USD carried %q, want it carried naming its key %s and the subject holding it", why, key)
	}
	if p := d.problems.NeedsPerson(); p == nil || !strings.Contains(p.Error(), "seller D USD") || strings.Contains(p.Error(), "seller B") {
		t.Errorf("problems %v, want seller D alone for a person", p)
	}
}
