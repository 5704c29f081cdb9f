package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Mismatch categories: what disagrees between the ledger and a provider.
const (
	MismatchAmount            = "amount"              // both sides know it, with other amounts
	MismatchCurrency          = "currency"            // both sides know it, in other currencies
	MismatchStatus            = "status"              // both sides know it, in states that disagree
	MismatchMissingAtProvider = "missing_at_provider" // in the ledger, unknown to the provider
	MismatchMissingInLedger   = "missing_in_ledger"   // at the provider, unknown to the ledger
	MismatchTiming            = "timing"              // a known gap that closes by itself (expected)
	MismatchBadData           = "bad_data"            // platform data that cannot be right (a late refund above the order)
	MismatchUnverifiable      = "unverifiable"        // the provider shows too little to compare (expected: a person may check)
	// MismatchLateOrder: an order the platform gives otherwise now than
	// its date read it (written into the window since, changed in a
	// column that decides money, or settled and gone), as the latest look
	// at the date's window found it (the ledger's late_orders).
	MismatchLateOrder = "late_order"
)

// Providers, as named in mismatches.
const (
	ProviderPlatform = "platform"
)

// Mismatch is one row of mismatches.csv: one thing the ledger and a
// provider (or the platform) see differently, with both sides. Amounts are
// minor units as text, empty where a side has none. Expected marks a known
// timing gap (funds not settled yet, a status still PROCESSING): it is
// reported but needs no person.
type Mismatch struct {
	Provider    string `csv:"provider"`
	Category    string `csv:"category"`
	Subject     string `csv:"subject"` // the key both sides know it by: requestNo, out_order_no, order number, ...
	OrderNo     string `csv:"order_no"`
	SellerID    string `csv:"seller_id"`
	Currency    string `csv:"currency"`
	Ours        string `csv:"ours_minor"`
	Theirs      string `csv:"theirs_minor"`
	OursState   string `csv:"ours_state"`
	TheirsState string `csv:"theirs_state"`
	Expected    bool   `csv:"expected"`
	Detail      string `csv:"detail"`
}

// Minor formats an amount for a Mismatch side.
func Minor(v int64) string { return strconv.FormatInt(v, 10) }

// SortMismatches puts mismatches in report order: provider, subject,
// category, then the rest, so the same findings give the same bytes.
func SortMismatches(ms []Mismatch) {
	slices.SortStableFunc(ms, func(a, b Mismatch) int {
		return cmp.Or(cmp.Compare(a.Provider, b.Provider), cmp.Compare(a.Subject, b.Subject),
			cmp.Compare(a.Category, b.Category), cmp.Compare(a.OrderNo, b.OrderNo), cmp.Compare(a.Detail, b.Detail))
	})
}

// MatchPage is how many items, effects or lines a provider's matcher
// reads and asks about at a time by default. The providers' matchers each
// hold a page side by side as reconcile begins: at 10,000 that was the
// peak of a 1,000,000-order day's memory (123.1 MiB); at 5,000 reconcile
// stays below distribute's peak (104.3 MiB) and took no longer (PERFORMANCE.md,
// "The million again, on smaller reconcile pages"). A page costs one
// read and one look at the final answers.
const MatchPage = 5000

// Matcher compares one provider's view of a run with the ledger's and
// returns every disagreement.
type Matcher func(ctx context.Context, run *Run) ([]Mismatch, error)

// FinalAnswers keeps which of a provider's answers a matcher found final
// and in agreement with the ledger (or a stage that asked the matcher's
// question before it, under the matcher's key, once the ledger had
// committed what the stage decided), so that a later reconciliation of the
// same date does not ask again what can no longer change (a re-run that
// sends nothing then costs a fraction of the first run). A key names what
// was asked together with what the ledger said then (an effect's key and
// its amount and state, a payment and our refunded total): when the ledger
// changes, the key does too, and the provider is asked again. Aggregate
// checks (a day's bill, a settlement) are not kept: they are asked again.
type FinalAnswers interface {
	// FinalKeys returns which of keys matcher recorded as final.
	FinalKeys(ctx context.Context, matcher string, keys []string) (map[string]bool, error)
	// RecordFinal records keys as final for matcher.
	RecordFinal(ctx context.Context, matcher string, keys []string) error
}

// KeepFinal records keys as final for matcher in f (nil: none kept): the
// answers a page of a matching found final and in agreement, err being how
// the page's questions ended. Each key stands alone, so the answers got
// before a failure are kept too (the run stopping, the provider down past
// its retries): a re-run asks only what was not answered, where it used to
// ask the failed page whole (10,000 orders, 8 minutes at 20 questions a
// second). After a failure the record is made on a context that outlives
// the run's cancellation by a few seconds, and err is returned whatever
// the record did; else the record's error.
func KeepFinal(ctx context.Context, f FinalAnswers, matcher string, keys []string, err error) error {
	if f == nil || len(keys) == 0 {
		return err
	}
	if err == nil {
		return f.RecordFinal(ctx, matcher, keys)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keepFinalGrace)
	defer cancel()
	_ = f.RecordFinal(rctx, matcher, keys) // best effort: the matching failed anyway
	return err
}

// keepFinalGrace is how long KeepFinal may take to record the answers of a
// failed page.
const keepFinalGrace = 5 * time.Second

// FinalAnswersForgetting is FinalAnswers that can also forget keys.
type FinalAnswersForgetting interface {
	FinalAnswers
	// ForgetFinal forgets keys of matcher.
	ForgetFinal(ctx context.Context, matcher string, keys []string) error
}

// AskAll is FinalAnswers for a reconciliation that asks every order again
// (settle run --reconcile-all), for when a provider's word on what it had
// made final is in doubt: it answers nothing from what was kept and
// forgets each key it is asked about, and the matchers record again those
// still final and in agreement. So a provider that changed its word is
// asked again by the later reconciliations too, until it agrees.
type AskAll struct{ Store FinalAnswersForgetting }

// FinalKeys forgets keys and returns none: everything is asked.
func (a AskAll) FinalKeys(ctx context.Context, matcher string, keys []string) (map[string]bool, error) {
	if err := a.Store.ForgetFinal(ctx, matcher, keys); err != nil {
		return nil, err
	}
	return map[string]bool{}, nil
}

// RecordFinal records keys as final for matcher.
func (a AskAll) RecordFinal(ctx context.Context, matcher string, keys []string) error {
	return a.Store.RecordFinal(ctx, matcher, keys)
}

// MismatchStore keeps a run's findings.
type MismatchStore interface {
	// ReplaceMismatches replaces the run's mismatches with ms.
	ReplaceMismatches(ctx context.Context, runID int64, ms []Mismatch) error
	// FailedPayouts counts the money requests of the run of key whose
	// latest attempt failed.
	FailedPayouts(ctx context.Context, key RunKey) (int64, error)
	// RunsToRecheck returns the runs of the same shard dated in the days
	// before run's date whose findings still include timing gaps, or a
	// finding about an item the ledger rejected (its provider proving the
	// rejection wrong), oldest first.
	RunsToRecheck(ctx context.Context, run *Run, days int) ([]*Run, error)
	// Unbalanced describes every line of the date's sellers and summary
	// reports whose conservation check fails (a cent appeared or
	// vanished), as the run of key judges them: its shard's sellers.
	Unbalanced(ctx context.Context, key RunKey) ([]string, error)
	// Lock takes a run's lock (see RunStore): an earlier date is
	// reconciled again only while no run of it is under way.
	Lock(ctx context.Context, key RunKey) (release func() error, err error)
}

// Watcher asks a provider, from a run's own reconciliation (never a
// recheck), about what earlier runs left that the provider may still
// prove wrong and that no reconciliation of those runs asks about any
// more once their dates are past --recheck-days (a rejected order paid
// late, say), and returns what needs a person about it: those rows join
// the run's own findings (its reports, its exit). reconciled names the
// runs this reconcile stage reconciles (the run itself and the earlier
// runs it rechecks): their matchers ask about their own subjects, so a
// watcher asks nothing of theirs, and nothing is asked twice in one
// stage.
type Watcher func(ctx context.Context, run *Run, reconciled []int64) ([]Mismatch, error)

// ReconcileStage is ReconcileStageWatching with no watcher.
func ReconcileStage(store MismatchStore, matchers []Matcher, write func(ctx context.Context, run *Run) (string, error), recheck int) StageFunc {
	return ReconcileStageWatching(store, matchers, nil, write, recheck)
}

// ReconcileStageWatching asks every matcher for its findings (side by
// side: see matchAll), records them (so the reports, rewritten by write,
// show them), and reports a run that needs a person: one with unexpected
// mismatches or failed payouts. A matcher that cannot reach its provider
// fails the stage (exit 1: a re-run reconciles again); findings are never
// guessed.
//
// Timing gaps close by themselves - a provider's bill of a day is out once
// its day is over, funds settle, a payout leaves PROCESSING - so the
// stage also reconciles again the runs of the recheck days before this
// one whose findings still include one, and rewrites their reports: the
// nightly run of one date closes the gaps of the dates before it.
//
// The watchers run beside the run's own matchers, told which runs the
// stage reconciles (the run and those it rechecks, found first), and
// their findings join the run's (its reports, its exit). When they are
// all that needs a person, the stage's error says they concern earlier
// dates alone (ErrOfEarlierDates): the run's own work is reconciled, and
// the runner does not record the run as waiting on a person for them.
//
// A configuration error (a provider refusing our credentials: exit 2)
// while an earlier date is reconciled again stops the stage with what
// the run's own reconciliation, and the dates reconciled again before,
// found for a person in its problems (WithProblems): recorded and in the
// reports, they are said in the stage's NEEDS A PERSON line too.
func ReconcileStageWatching(store MismatchStore, matchers []Matcher, watchers []Watcher, write func(ctx context.Context, run *Run) (string, error), recheck int) StageFunc {
	return func(ctx context.Context, run *Run) (string, error) {
		problems := &Problems{} // the first few listed, all counted: a bad day's findings are in the reports
		// The runs to recheck first (their findings, not the run's, say
		// which), so that the watchers leave them to their matchers.
		earlier, err := store.RunsToRecheck(ctx, run, recheck)
		if err != nil {
			return "", fmt.Errorf("reconcile: %w", err)
		}
		own := matchers
		var (
			mu      sync.Mutex
			watched = map[Mismatch]int{} // the watchers' findings, by value
		)
		if len(watchers) > 0 {
			reconciled := []int64{run.ID}
			for _, r := range earlier {
				reconciled = append(reconciled, r.ID)
			}
			own = slices.Clone(matchers)
			for _, w := range watchers {
				own = append(own, func(ctx context.Context, run *Run) ([]Mismatch, error) {
					ms, err := w(ctx, run, reconciled)
					mu.Lock()
					for _, m := range ms {
						watched[m]++
					}
					mu.Unlock()
					return ms, err
				})
			}
		}
		elsewhere := &Problems{} // the watchers' alone: of earlier dates
		summary, err := reconcileWatched(ctx, store, own, write, run, problems, "", watched, elsewhere)
		if err != nil {
			return "", err
		}
		for _, r := range earlier {
			release, err := store.Lock(ctx, r.Key)
			if errors.Is(err, ErrLocked) {
				summary += fmt.Sprintf("; %s not reconciled again: another settle process holds it (a run of it, or settle report)", r.Key.Date)
				continue
			}
			if err != nil {
				return "", err
			}
			s, err := reconcile(context.WithValue(ctx, recheckKey{}, true), store, matchers, write, r, problems, r.Key.Date.String()+": ")
			release()
			if err != nil {
				err = fmt.Errorf("reconcile %s again: %w", r.Key, err)
				if KindOf(err) == KindUsage {
					// A provider refused our credentials while an earlier
					// date was reconciled again: the stop keeps what
					// needs a person of the run's own reconciliation and
					// of the dates done before (recorded, in their
					// mismatches.csv), said in the stage's NEEDS A PERSON
					// line (WithProblems). Dropped, the night's log said
					// none of the run's own findings.
					return summary + fmt.Sprintf("; %s again: stopped", r.Key.Date), WithProblems(err, problems.NeedsPerson())
				}
				return "", err
			}
			summary += fmt.Sprintf("; %s again: %s", r.Key.Date, s)
		}
		if problems.Count() == elsewhere.Count() && elsewhere.Count() > 0 {
			// Only what the watchers found of earlier dates: the run's
			// own work is reconciled (ErrOfEarlierDates).
			return summary, OfEarlierDates(elsewhere.NeedsPerson())
		}
		return summary, problems.NeedsPerson()
	}
}

// reconcile matches run, records and reports its findings, and adds to
// problems (each line starting with prefix) what needs a person.
func reconcile(ctx context.Context, store MismatchStore, matchers []Matcher, write func(ctx context.Context, run *Run) (string, error), run *Run, problems *Problems, prefix string) (string, error) {
	return reconcileWatched(ctx, store, matchers, write, run, problems, prefix, nil, nil)
}

// reconcileWatched is reconcile, the unexpected findings of watched (the
// watchers', by value and count) added to elsewhere too.
func reconcileWatched(ctx context.Context, store MismatchStore, matchers []Matcher, write func(ctx context.Context, run *Run) (string, error), run *Run,
	problems *Problems, prefix string, watched map[Mismatch]int, elsewhere *Problems) (string, error) {
	all, err := matchAll(ctx, matchers, run)
	if err != nil {
		err = fmt.Errorf("reconcile: %w", err)
		if ctx.Err() != nil || errors.Is(err, ErrLockLost) || errors.Is(err, ErrNotRecorded) || errors.Is(err, ErrNotRead) {
			return "", err
		}
		// The reports are written all the same, from the ledger as it
		// is: those of an earlier attempt (one with no provider
		// configured, say) said nothing was paid, and stayed so, a whole
		// set, after this attempt's payouts went out, until a run
		// reconciled again (found by a support walkthrough). The
		// findings are the last reconciliation's, kept.
		wrote, werr := write(ctx, run)
		if werr != nil {
			return "", errors.Join(err, werr)
		}
		return "", fmt.Errorf("%w (%s from the ledger as it is, without this reconciliation: mismatches.csv holds the last one's findings)", err, wrote)
	}
	if err := store.ReplaceMismatches(ctx, run.ID, all); err != nil {
		return "", fmt.Errorf("reconcile: %w", err)
	}
	wrote, err := write(ctx, run)
	if err != nil {
		return "", err
	}
	var unexpected, expected int
	for _, m := range all {
		if m.Expected {
			expected++
			continue
		}
		unexpected++
		line := fmt.Sprintf("%s%s %s %s: ours %s, theirs %s%s", prefix, m.Provider, m.Category, m.Subject,
			m.side(m.Ours, m.OursState), m.side(m.Theirs, m.TheirsState), detail(m.Detail))
		problems.Add(line)
		if watched[m] > 0 {
			watched[m]--
			elsewhere.Add(line)
		}
	}
	failed, err := store.FailedPayouts(ctx, run.Key)
	if err != nil {
		return "", fmt.Errorf("reconcile: %w", err)
	}
	if failed > 0 {
		problems.Add(fmt.Sprintf("%s%d payout(s) of %s failed (see payouts.csv)", prefix, failed, run.Key))
	}
	unbalanced, err := store.Unbalanced(ctx, run.Key)
	if err != nil {
		return "", fmt.Errorf("reconcile: %w", err)
	}
	for _, u := range unbalanced {
		problems.Add(prefix + u)
	}
	summary := fmt.Sprintf("%d unexpected mismatches, %d expected (timing), %d failed payouts; %s", unexpected, expected, failed, wrote)
	return summary, nil
}

// matchAll runs the matchers side by side - each asks its own provider,
// on its own provider's pacer, so reconciling takes as long as the
// slowest rather than their sum - and returns their findings in report
// order. The first error cancels the others and is returned alone. The
// findings are concatenated in matcher order before sorting, so the same
// findings give the same bytes whichever matcher finished first.
func matchAll(ctx context.Context, matchers []Matcher, run *Run) ([]Mismatch, error) {
	found := make([][]Mismatch, len(matchers))
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for i, m := range matchers {
		wg.Go(func() {
			ms, err := m(gctx, run)
			found[i] = ms
			if err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	n := 0
	for _, ms := range found {
		n += len(ms)
	}
	all := make([]Mismatch, 0, n) // once, at its size; each matcher's findings let go as copied
	for i, ms := range found {
		all = append(all, ms...)
		found[i] = nil
	}
	SortMismatches(all)
	return all, nil
}

type recheckKey struct{}

// Rechecking reports whether a matcher is reconciling an earlier run
// again from a later date's run (rather than its own run): what its own
// run would have settled by now needs a person.
func Rechecking(ctx context.Context) bool {
	v, _ := ctx.Value(recheckKey{}).(bool)
	return v
}

// side is one side of m as a person reads it in the log: the amount with
// its currency's decimals and code ("2002.34 EUR"), then the state. An
// amount of a currency settle does not know, or of a currency mismatch
// (each side in its own), is given in minor units, saying so; a side
// with no amount says "no amount". The report (mismatches.csv) keeps
// minor units.
func (m Mismatch) side(amount, state string) string {
	s := "no amount"
	if amount != "" {
		s = amount + " minor units"
		cur := Currency(m.Currency)
		if v, err := strconv.ParseInt(amount, 10, 64); err == nil && cur.Valid() && m.Category != MismatchCurrency {
			s = Money{Minor: v, Currency: cur}.String()
		}
	}
	if state != "" {
		s += " (" + state + ")"
	}
	return s
}

func detail(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// LateRefundFindings is what the platform matcher needs of the ledger.
type LateRefundFindings interface {
	// RejectedLateRefunds returns the late refunds read by the runs of
	// date d that cannot be right (bad data, above what is left of the
	// order).
	RejectedLateRefunds(ctx context.Context, d Date) ([]LateRefund, error)
}

// PlatformMatcher reports the platform's late refunds that cannot be
// right: the buyer may have been refunded, and the seller keeps the share
// until a person decides. Each is a bad_data row (never expected), so the
// run exits 4 until the platform's row is corrected and the date runs
// again (a rejected late refund is replaced when read again).
func PlatformMatcher(store LateRefundFindings) Matcher {
	return func(ctx context.Context, run *Run) ([]Mismatch, error) {
		rs, err := store.RejectedLateRefunds(ctx, run.Key.Date)
		if err != nil {
			return nil, err
		}
		var out []Mismatch
		for _, r := range rs {
			if !run.Key.Shard.Owns(r.SellerID) {
				continue
			}
			m := Mismatch{Provider: ProviderPlatform, Category: MismatchBadData, Subject: r.RefundNo, OrderNo: r.OrderNo,
				SellerID: r.SellerID, OursState: "late refund " + r.State, Detail: r.Reason}
			if r.Amount > 0 {
				m.Ours = Minor(r.Amount)
			}
			out = append(out, m)
		}
		return out, nil
	}
}
