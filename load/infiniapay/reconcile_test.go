package infiniapay_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/finaltest"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/pipeline"
)

// reconcileLedger is an in-memory ReconcileStore.
type reconcileLedger struct {
	effects  []pipeline.Effect
	expected []pipeline.ExpectedShare
	accounts map[string]string // seller -> Infinia id ("" when absent: not compared)

	accountErr   error        // AccountOf's error (the ledger cannot be read), counted
	accountReads atomic.Int32 // AccountOf's calls that failed
}

func (l *reconcileLedger) EffectsOfKindAfter(_ context.Context, _ int64, kind, prefix, afterSubject string, afterAttempt, n int) ([]pipeline.Effect, error) {
	var out []pipeline.Effect
	effects := slices.SortedFunc(slices.Values(l.effects), func(a, b pipeline.Effect) int {
		return cmp.Or(strings.Compare(a.Subject, b.Subject), cmp.Compare(a.Attempt, b.Attempt))
	})
	for _, e := range effects {
		after := e.Subject > afterSubject || e.Subject == afterSubject && e.Attempt > afterAttempt
		if e.Kind == kind && strings.HasPrefix(e.Subject, prefix) && after && len(out) < n {
			out = append(out, e)
		}
	}
	return out, nil
}

func (l *reconcileLedger) AccountOf(_ context.Context, _ int64, _, sellerID string) (string, error) {
	if l.accountErr != nil {
		l.accountReads.Add(1)
		return "", l.accountErr
	}
	return l.accounts[sellerID], nil
}

func (l *reconcileLedger) EachExpectedShare(_ context.Context, _ int64, fn func(pipeline.ExpectedShare) error) error {
	for _, x := range l.expected {
		if err := fn(x); err != nil {
			return err
		}
	}
	return nil
}

// reconcileAPI is Infinia as the matcher sees it: it counts the questions
// by request, and the questions in flight at once. The first `together`
// questions wait until that many are in flight, so a matcher that asked
// one at a time would never get past the first.
type reconcileAPI struct {
	shares    map[string]infiniapay.RevenueShareResult
	available map[string]int64 // by Infinia seller id and currency

	mu                   sync.Mutex
	asked                map[string]int
	inFlight, peak, seen int
	together             int
	all                  chan struct{}
}

func newReconcileAPI(together int) *reconcileAPI {
	return &reconcileAPI{shares: map[string]infiniapay.RevenueShareResult{}, available: map[string]int64{},
		asked: map[string]int{}, together: together, all: make(chan struct{})}
}

func (a *reconcileAPI) enter(ctx context.Context, key string) error {
	a.mu.Lock()
	a.asked[key]++
	a.inFlight++
	a.peak = max(a.peak, a.inFlight)
	a.seen++
	first := a.seen <= a.together
	if a.seen == a.together {
		close(a.all)
	}
	a.mu.Unlock()
	if !first {
		return nil
	}
	select {
	case <-a.all:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("questions never overlapped: %w", ctx.Err())
	}
}

func (a *reconcileAPI) leave() {
	a.mu.Lock()
	a.inFlight--
	a.mu.Unlock()
}

func (a *reconcileAPI) RevenueShareStatus(ctx context.Context, requestNo string) (infiniapay.RevenueShareResult, error) {
	if err := a.enter(ctx, requestNo); err != nil {
		return infiniapay.RevenueShareResult{}, err
	}
	defer a.leave()
	r, ok := a.shares[requestNo]
	if !ok {
		return r, fmt.Errorf("%s: %w", requestNo, pipeline.ErrNotFound)
	}
	return r, nil
}

func (a *reconcileAPI) AvailableShare(ctx context.Context, _ string, infiniaID string, cur pipeline.Currency) (int64, error) {
	key := "available/" + infiniaID + "/" + string(cur)
	if err := a.enter(ctx, key); err != nil {
		return 0, err
	}
	defer a.leave()
	return a.available[infiniaID+"/"+string(cur)], nil
}

// asked returns how many times each request was asked about since the
// last call, and forgets.
func (a *reconcileAPI) askedSince() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.asked
	a.asked = map[string]int{}
	return out
}

// shareDay is the date of the ledger's revenue shares.
var shareDay = pipeline.Date{Year: 2026, Month: 11, Day: 23}

// ledgerShare is a revenue share of the ledger with Infinia's answer about it.
func ledgerShare(l *reconcileLedger, api *reconcileAPI, n int, state pipeline.EffectState, amount int64, theirs infiniapay.RevenueShareResult) string {
	d := shareDay
	seller := fmt.Sprintf("S%d", n)
	key := infiniapay.RevenueShareRequestNo(d, seller, "USD", 1)
	l.effects = append(l.effects, pipeline.Effect{ID: int64(n), RunID: 1, Kind: infiniapay.KindRevenueShare, Attempt: 1,
		Subject: infiniapay.RevenueShareSubject(d, seller, "USD"), Key: key, Currency: "USD", Amount: amount, State: state})
	if theirs.Status != "" {
		api.shares[key] = theirs
	}
	return key
}

// Issue 12: the matcher asks Infinia side by side under the provider's
// Pacer (its limit holds), and a revenue share found final and in
// agreement with the ledger is not asked about again by a later
// reconciliation of the date - unless the ledger's row changed; nor is a
// seller's available share found as expected, unless the ledger's figures
// or its activity for the seller changed.
func TestMatcherPacedAndKeepsFinalAnswers(t *testing.T) {
	const limit = 3
	l := &reconcileLedger{}
	api := newReconcileAPI(limit)
	paid := func(v int64) infiniapay.RevenueShareResult {
		return infiniapay.RevenueShareResult{Status: infiniapay.StatusSuccess, Currency: "USD", Amount: v}
	}
	var clean []string
	for i := 1; i <= 5; i++ {
		clean = append(clean, ledgerShare(l, api, i, pipeline.EffectSucceeded, 1000*int64(i), paid(1000*int64(i))))
	}
	clean = append(clean, ledgerShare(l, api, 6, pipeline.EffectFailed, 600, infiniapay.RevenueShareResult{Status: infiniapay.StatusFailed, FailReason: "no"}))
	processing := ledgerShare(l, api, 7, pipeline.EffectSent, 700, infiniapay.RevenueShareResult{Status: infiniapay.StatusProcessing})
	wrong := ledgerShare(l, api, 8, pipeline.EffectSucceeded, 800, paid(799))
	missing := ledgerShare(l, api, 9, pipeline.EffectSucceeded, 900, infiniapay.RevenueShareResult{})
	planned := ledgerShare(l, api, 10, pipeline.EffectPlanned, 1000, infiniapay.RevenueShareResult{})
	l.expected = []pipeline.ExpectedShare{
		{SellerID: "S1", ProviderSellerID: "INF1", Currency: "USD", Uploaded: 5000, Paid: 1000, Activity: "a1"},
		{SellerID: "S2", ProviderSellerID: "INF2", Currency: "USD", Uploaded: 2000, Paid: 2000, Activity: "a1"},
		{SellerID: "S3", ProviderSellerID: "INF3", Currency: "USD", Uploaded: 3000, Paid: 0, InFlight: 3000, Activity: "a1"},
	}
	// S3's payout is in flight and already taken from its share: as
	// expected, but not kept (the ledger's figures do not move when
	// Infinia accepts it).
	api.available["INF1/USD"], api.available["INF2/USD"], api.available["INF3/USD"] = 4000, 0, 3000
	pacer := pipeline.NewPacer(pipeline.Limits{MaxInFlight: limit})
	final := &finaltest.Answers{}
	match := infiniapay.NewMatcher(infiniapay.MatcherConfig{Store: l, API: api, Pacer: pacer, Final: final})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: shareDay}}

	findings := func() map[string]string {
		t.Helper()
		ms, err := match(ctx, run)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, m := range ms {
			out[m.Subject] += m.Category + " "
		}
		return out
	}
	want := map[string]string{processing: "timing ", wrong: "amount ", missing: "missing_at_provider "}
	first := findings()
	if fmt.Sprint(first) != fmt.Sprint(want) {
		t.Fatalf("first matching: %v, want %v", first, want)
	}
	asked := api.askedSince()
	for _, k := range append(clean, processing, wrong, missing, "available/INF1/USD", "available/INF2/USD", "available/INF3/USD") {
		if asked[k] != 1 {
			t.Errorf("first matching asked about %s %d times, want 1", k, asked[k])
		}
	}
	if asked[planned] != 0 {
		t.Error("a planned revenue share, never sent, was asked about")
	}
	if api.peak > limit || pacer.PeakInFlight() > limit {
		t.Fatalf("%d questions in flight at once (pacer: %d), limit %d", api.peak, pacer.PeakInFlight(), limit)
	}

	// The second matching asks only what was not final and clean.
	if again := findings(); fmt.Sprint(again) != fmt.Sprint(want) {
		t.Fatalf("second matching: %v, want %v", again, want)
	}
	asked = api.askedSince()
	for _, k := range append(clean, "available/INF1/USD", "available/INF2/USD") {
		if asked[k] != 0 {
			t.Errorf("second matching asked again about %s, final and clean", k)
		}
	}
	for _, k := range []string{processing, wrong, missing, "available/INF3/USD"} {
		if asked[k] != 1 {
			t.Errorf("second matching asked about %s %d times, want 1", k, asked[k])
		}
	}

	// A seller whose share the ledger could see moved - a new file or
	// payout, on any date, even with the same figures - is asked again
	// and found; the other is not asked.
	l.expected[0].Activity = "a2"
	api.available["INF1/USD"] = 3999
	if again := findings(); again["available/S1/USD"] != "amount " {
		t.Errorf("after activity of S1: %v, want its available share's amount mismatch", again)
	}
	if asked = api.askedSince(); asked["available/INF1/USD"] != 1 || asked["available/INF2/USD"] != 0 {
		t.Errorf("after activity of S1: asked %v", asked)
	}
	api.available["INF1/USD"] = 4000

	// A row the ledger changed since is asked about again, and found.
	l.effects[0].Amount = 1001
	again := findings()
	if again[clean[0]] != "amount " {
		t.Errorf("the changed row: %q, want an amount mismatch", again[clean[0]])
	}
	if asked = api.askedSince(); asked[clean[0]] != 1 || asked[clean[1]] != 0 {
		t.Errorf("after a change in the ledger: asked %v", asked)
	}
	if api.peak > limit || pacer.PeakInFlight() > limit {
		t.Fatalf("%d questions in flight at once (pacer: %d), limit %d", api.peak, pacer.PeakInFlight(), limit)
	}

	// Without FinalAnswers every revenue share is asked about every time.
	l.effects[0].Amount = 1000
	every := infiniapay.NewMatcher(infiniapay.MatcherConfig{Store: l, API: api, Pacer: pacer})
	for range 2 {
		if _, err := every(ctx, run); err != nil {
			t.Fatal(err)
		}
	}
	if asked = api.askedSince(); asked[clean[1]] != 2 || asked[processing] != 2 {
		t.Errorf("without final answers: asked %v", asked)
	}
}

// TestMatcherStopsWhenTheLedgerCannotBeRead: asking Infinia about a
// revenue share whose answer names a seller reads the ledger for the
// seller's Infinia id. A ledger that could not be read failed each share
// alone, one error line a share (and a share asked for each). It is the
// reconciliation's failure: it stops at the first, told once.
func TestMatcherStopsWhenTheLedgerCannotBeRead(t *testing.T) {
	t.Parallel()
	l := &reconcileLedger{accountErr: errors.New(`pq: database "settle" is not currently accepting connections`)}
	api := newReconcileAPI(0)
	for i := 1; i <= 100; i++ {
		ledgerShare(l, api, i, pipeline.EffectSucceeded, 100, infiniapay.RevenueShareResult{Status: infiniapay.StatusSuccess,
			SellerID: fmt.Sprintf("INF%d", i), Currency: "USD", Amount: 100})
	}
	match := infiniapay.NewMatcher(infiniapay.MatcherConfig{Store: l, API: api, Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: 4}),
		Final: &finaltest.Answers{}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := match(ctx, &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: shareDay}})
	if !errors.Is(err, pipeline.ErrNotRead) {
		t.Fatalf("err %v, want the ledger's failure to read", err)
	}
	if n := strings.Count(err.Error(), "not currently accepting"); n != 1 {
		t.Fatalf("the ledger's failure told %d times, want once:\n%.600s", n, err)
	}
	if n := l.accountReads.Load(); n > 8 {
		t.Fatalf("%d shares read the ledger after it failed, want the matching stopped", n)
	}
}

// TestMatcherReportsAnOldPaidShareInfiniaForgotAsUnverifiable: a re-run's
// reconciliation of a date months old (with --reconcile-all, or one never
// reconciled clean) asked Infinia about revenue shares it paid then; an
// Infinia whose status query no longer remembers them answered not found,
// reported missing at Infinia for a person (exit 4), who might pay them
// again. A succeeded share planned longer ago than Infinia's memory is
// reported unverifiable (expected), saying not to pay it again; a recent
// one, or one the ledger does not say succeeded, is still missing.
func TestMatcherReportsAnOldPaidShareInfiniaForgotAsUnverifiable(t *testing.T) {
	l := &reconcileLedger{}
	api := newReconcileAPI(1)
	now := time.Date(2027, 3, 1, 3, 0, 0, 0, time.UTC)
	old := ledgerShare(l, api, 1, pipeline.EffectSucceeded, 900, infiniapay.RevenueShareResult{})
	recent := ledgerShare(l, api, 2, pipeline.EffectSucceeded, 800, infiniapay.RevenueShareResult{})
	unknown := ledgerShare(l, api, 3, pipeline.EffectUnknown, 700, infiniapay.RevenueShareResult{})
	l.effects[0].Planned, l.effects[0].ProviderRef = now.Add(-90*24*time.Hour), "IRS0000000001"
	l.effects[1].Planned = now.Add(-10 * 24 * time.Hour)
	l.effects[2].Planned = now.Add(-90 * 24 * time.Hour)
	match := infiniapay.NewMatcher(infiniapay.MatcherConfig{Store: l, API: api, Now: func() time.Time { return now }})
	ms, err := match(context.Background(), &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: shareDay}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]pipeline.Mismatch{}
	for _, m := range ms {
		got[m.Subject] = m
	}
	if m := got[old]; m.Category != pipeline.MismatchUnverifiable || !m.Expected || !strings.Contains(m.Detail, "do not pay it again") || !strings.Contains(m.Detail, "IRS0000000001") || !strings.Contains(m.Detail, "90d ago") {
		t.Errorf("a share paid 90 days ago, forgotten: %+v; want unverifiable, expected, naming its reference and age", m)
	}
	if m := got[recent]; m.Category != pipeline.MismatchMissingAtProvider || m.Expected {
		t.Errorf("a share paid 10 days ago, not known: %+v; want missing at Infinia", m)
	}
	if m := got[unknown]; m.Category == pipeline.MismatchUnverifiable || !strings.Contains(m.Detail, "held for a person, never sent again") || !strings.Contains(m.Detail, "90d ago") {
		t.Errorf("a share whose outcome the ledger does not know: %+v; not unverifiable, said held for a person (not resolved by the next run's query)", m)
	}
}
