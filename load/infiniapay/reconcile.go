package infiniapay

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// Reconciler is what Infinia matching needs of Infinia Pay.
type Reconciler interface {
	// RevenueShareStatus returns Infinia's state of a request; ErrNotFound
	// when Infinia does not know it.
	RevenueShareStatus(ctx context.Context, requestNo string) (RevenueShareResult, error)
	AvailableShare(ctx context.Context, requestNo, infiniaID string, cur pipeline.Currency) (int64, error)
}

// ReconcileStore is what Infinia matching needs of the ledger.
type ReconcileStore interface {
	// EffectsOfKindAfter returns up to n of the run's effects of kind
	// whose subject begins with prefix, after (afterSubject, afterAttempt)
	// in subject and attempt order.
	EffectsOfKindAfter(ctx context.Context, runID int64, kind, prefix, afterSubject string, afterAttempt, n int) ([]pipeline.Effect, error)
	// EachExpectedShare streams the expected available shares of the
	// sellers with a trade file or a revenue share in the run.
	EachExpectedShare(ctx context.Context, runID int64, fn func(pipeline.ExpectedShare) error) error
	// AccountOf returns the seller's Infinia id a revenue share of the run
	// pays (Store.AccountOf).
	AccountOf(ctx context.Context, runID int64, provider, sellerID string) (string, error)
}

// MatcherConfig configures the matching of Infinia's word with the
// ledger's.
type MatcherConfig struct {
	Store ReconcileStore
	API   Reconciler
	// Pacer keeps the queries under Infinia's limits: the stages' Pacer,
	// so that the limit is shared and never exceeded; nil: no limit.
	Pacer *pipeline.Pacer
	// Final keeps the revenue shares found final (SUCCESS or FAILED at
	// Infinia) and in agreement with the ledger, so that a later
	// reconciliation does not ask about them again, and the sellers'
	// available shares found as the ledger expects them, not asked again
	// while the ledger records nothing that could move them (see
	// availableKey); nil: everything is asked every time.
	Final pipeline.FinalAnswers
	// Memory is how long Infinia's status query is taken to remember a
	// requestNo (RevenueShareSender.Memory; 0: DefaultMemory), on the
	// clock Now (default time.Now): a revenue share the ledger recorded
	// succeeded, planned longer ago, that Infinia no longer knows is
	// reported unverifiable (expected), not missing at Infinia - a
	// person reading "missing" might pay it again.
	Memory time.Duration
	Now    func() time.Time
}

// FinalName names the matcher's revenue-share answers in
// pipeline.FinalAnswers.
const FinalName = Name + "/revenue_share"

// AvailableName names the matcher's available-share answers in
// pipeline.FinalAnswers.
const AvailableName = Name + "/available_share"

// availableKey is what a seller's available share was found as expected
// for: the seller, its Infinia id and the currency, what the ledger
// expected (accepted, paid, in flight), and the ledger's latest activity
// of the seller in the currency over all dates (ExpectedShare.Activity).
// Whatever the ledger records that could move the share at Infinia - a
// trade file or a revenue share, new, changed or removed, on any date -
// changes the key, and Infinia is asked again. The figures alone are not
// a key: after a full payout the expected share is 0 every day. Infinia's
// side could still change by itself: --reconcile-all asks every seller
// again.
func availableKey(x pipeline.ExpectedShare) string {
	return fmt.Sprintf("%s|%s|%s|%d|%d|%d|%s", x.SellerID, x.ProviderSellerID, x.Currency, x.Uploaded, x.Paid, x.InFlight, x.Activity)
}

// finalKey is what a revenue share's answer was found final for: the
// request and what the ledger said of it then (state, currency, amount).
// A change in the ledger changes the key, and Infinia is asked again.
func finalKey(e pipeline.Effect) string {
	return fmt.Sprintf("%s|%s|%s|%d", e.Key, e.State, e.Currency, e.Amount)
}

// NewMatcher returns the matcher comparing the run's revenue shares with
// Infinia's revenue-sharing status (status, amount, currency; a request
// Infinia does not know), and each seller's available revenue share with
// what the ledger expects of it. Its queries run side by side under
// c.Pacer.
//
// An Infinia that does not answer at all stops the matching: its
// questions share one breaker (pipeline.WithBreaker; c.API's go through
// pipeline.Ask), and once pipeline.NotAnsweringAfter in a row got no
// answer nothing more is asked. No finding is returned for what was not
// asked - neither a mismatch nor an agreement: the matcher's error is the
// provider not answering (pipeline.NotAnswering: exit 1, resumable), the
// reconcile stage records no finding and writes no report, and the next
// run asks again all that was not answered (what was answered final and
// in agreement is kept, KeepFinal). Before, each question took its
// client's retries, one after another, whatever the ones before had
// found: 5 attempts of 10 s for each revenue share and seller of the day.
func NewMatcher(c MatcherConfig) pipeline.Matcher {
	if c.Pacer == nil {
		c.Pacer = pipeline.NewPacer(pipeline.Limits{})
	}
	return func(ctx context.Context, run *pipeline.Run) ([]pipeline.Mismatch, error) {
		ctx = pipeline.WithBreaker(ctx) // the matching's questions to Infinia
		ms, err := match(ctx, &c, run)
		if stopped := pipeline.StoppedNotAnswering(ctx, "Infinia", err); stopped != nil {
			return nil, stopped
		}
		return ms, err
	}
}

func match(ctx context.Context, c *MatcherConfig, run *pipeline.Run) ([]pipeline.Mismatch, error) {
	shares, err := matchShares(ctx, c, run)
	if err != nil {
		return nil, err
	}
	available, err := matchAvailable(ctx, c, run)
	if err != nil {
		return nil, err
	}
	return append(shares, available...), nil
}

// matchShares asks Infinia about every revenue share of the run that was
// sent and is not known final and clean, and records those now found so,
// askPage revenue shares at a time (read in keyset pages of the date's
// revenue shares).
func matchShares(ctx context.Context, c *MatcherConfig, run *pipeline.Run) ([]pipeline.Mismatch, error) {
	var out []pipeline.Mismatch
	prefix := revenueSharePrefix(run.Key.Date)
	for after := (pipeline.Effect{}); ; {
		page, err := c.Store.EffectsOfKindAfter(ctx, run.ID, KindRevenueShare, prefix, after.Subject, after.Attempt, askPage)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			return out, nil
		}
		after = page[len(page)-1]
		ask := page[:0]
		for _, e := range page {
			if e.State != pipeline.EffectPlanned { // a planned request was never sent: nothing to compare
				ask = append(ask, e)
			}
		}
		found, err := askNotKept(ctx, c, FinalName, ask, finalKey, func(ctx context.Context, e pipeline.Effect) ([]pipeline.Mismatch, bool, error) {
			return matchShare(ctx, c, e)
		})
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
}

// matchAvailable compares each seller's available share at Infinia with
// what the ledger expects of it, for the sellers and currencies whose
// agreement is not kept (AvailableName, availableKey), and keeps those
// found in agreement.
func matchAvailable(ctx context.Context, c *MatcherConfig, run *pipeline.Run) ([]pipeline.Mismatch, error) {
	ask := func(ctx context.Context, x pipeline.ExpectedShare) ([]pipeline.Mismatch, bool, error) {
		m, err := matchAvailableShare(ctx, c.API, x)
		if err != nil || m != nil {
			return mismatches(m), false, err
		}
		// In agreement. A revenue share not final yet can still move
		// the share at Infinia without the ledger's figures moving: kept
		// only once nothing is in flight.
		return nil, x.InFlight == 0, nil
	}
	// The expected shares stream in and are asked about a page at a time:
	// the matcher holds a page, not the run's sellers.
	var out []pipeline.Mismatch
	page := make([]pipeline.ExpectedShare, 0, askPage)
	askAll := func() error {
		found, err := askPageNotKept(ctx, c, AvailableName, page, availableKey, ask)
		out = append(out, found...)
		page = page[:0]
		return err
	}
	err := c.Store.EachExpectedShare(ctx, run.ID, func(x pipeline.ExpectedShare) error {
		if x.ProviderSellerID == "" {
			return nil
		}
		page = append(page, x)
		if len(page) < cap(page) {
			return nil
		}
		return askAll()
	})
	if err == nil && len(page) > 0 {
		err = askAll()
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func mismatches(m *pipeline.Mismatch) []pipeline.Mismatch {
	if m == nil {
		return nil
	}
	return []pipeline.Mismatch{*m}
}

// askNotKept asks, side by side under c.Pacer, about each of items whose
// key is not kept in c.Final under name (all of them when c.Final is
// nil), and keeps there those ask found clean, askPage items at a time.
// It returns the mismatches found.
func askNotKept[T any](ctx context.Context, c *MatcherConfig, name string, items []T, key func(T) string,
	ask func(context.Context, T) ([]pipeline.Mismatch, bool, error)) ([]pipeline.Mismatch, error) {
	var out []pipeline.Mismatch
	for page := range slices.Chunk(items, askPage) {
		found, err := askPageNotKept(ctx, c, name, page, key, ask)
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	return out, nil
}

// askPage is how many items askNotKept asks about at a time: what it
// holds beside the items is a page's keys and answers.
const askPage = pipeline.MatchPage

func askPageNotKept[T any](ctx context.Context, c *MatcherConfig, name string, items []T, key func(T) string,
	ask func(context.Context, T) ([]pipeline.Mismatch, bool, error)) ([]pipeline.Mismatch, error) {
	if c.Final != nil && len(items) > 0 {
		keys := make([]string, len(items))
		for i, x := range items {
			keys[i] = key(x)
		}
		done, err := c.Final.FinalKeys(ctx, name, keys)
		if err != nil {
			return nil, fmt.Errorf("final answers: %w", err)
		}
		var left []T
		for i, x := range items {
			if !done[keys[i]] {
				left = append(left, x)
			}
		}
		items = left
	}
	found := make([][]pipeline.Mismatch, len(items))
	clean := make([]bool, len(items))
	asked := c.Pacer.Each(ctx, len(items), nil, func(ctx context.Context, i int) error {
		var err error
		found[i], clean[i], err = ask(ctx, items[i])
		return err
	})
	var out []pipeline.Mismatch
	var final []string
	for i, ms := range found {
		out = append(out, ms...)
		if clean[i] {
			final = append(final, key(items[i]))
		}
	}
	// What was answered before a failure is kept too (KeepFinal).
	if err := pipeline.KeepFinal(ctx, c.Final, name, final, asked); err != nil {
		if asked != nil {
			return nil, err
		}
		return nil, fmt.Errorf("final answers: %w", err)
	}
	return out, nil
}

// matchAvailableShare asks Infinia about one seller's available share in
// one currency; nil when it is what the ledger expects.
func matchAvailableShare(ctx context.Context, api Reconciler, x pipeline.ExpectedShare) (*pipeline.Mismatch, error) {
	avail, err := api.AvailableShare(ctx, pipeline.QueryRequestNo("RSA"), x.ProviderSellerID, x.Currency)
	want := x.Uploaded - x.Paid
	subject := "available/" + x.SellerID + "/" + string(x.Currency)
	if pipeline.SubjectOnly(err) {
		// One seller Infinia does not know or will not report on: a
		// finding about that seller, the others are matched.
		category, state := pipeline.MismatchStatus, "refused"
		if pipeline.IsNotFound(err) {
			category, state = pipeline.MismatchMissingAtProvider, "not found"
		}
		return &pipeline.Mismatch{Provider: Name, Category: category, Subject: subject,
			SellerID: x.SellerID, Currency: string(x.Currency), Ours: pipeline.Minor(want), OursState: "uploaded-paid", TheirsState: state,
			Detail: fmt.Sprintf("available share of Infinia seller %s: %v", x.ProviderSellerID, err)}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("available share of %s: %w", x.SellerID, err)
	}
	if avail == want {
		return nil, nil
	}
	m := &pipeline.Mismatch{Provider: Name, Category: pipeline.MismatchAmount, Subject: subject,
		SellerID: x.SellerID, Currency: string(x.Currency), Ours: pipeline.Minor(want), Theirs: pipeline.Minor(avail),
		OursState: "uploaded-paid", TheirsState: "available",
		Detail: fmt.Sprintf("trade files accepted %s, revenue shares paid %s", pipeline.Money{Minor: x.Uploaded, Currency: x.Currency}, pipeline.Money{Minor: x.Paid, Currency: x.Currency})}
	if x.InFlight > 0 {
		m.Category, m.Expected = pipeline.MismatchTiming, true
		m.Detail += fmt.Sprintf("; %s in revenue shares not final yet", pipeline.Money{Minor: x.InFlight, Currency: x.Currency})
	}
	return m, nil
}

// matchShare asks Infinia about one revenue share and compares its answer
// with the ledger's; clean reports an answer that is final at Infinia
// (SUCCESS or FAILED) and agrees with the ledger in everything.
func matchShare(ctx context.Context, c *MatcherConfig, e pipeline.Effect) (ms []pipeline.Mismatch, clean bool, err error) {
	theirs, err := c.API.RevenueShareStatus(ctx, e.Key)
	account := ""
	if err == nil && theirs.SellerID != "" { // the seller e pays, looked up only when Infinia echoes one
		if account, err = c.Store.AccountOf(ctx, e.RunID, SellerAccount, subjectSeller(e.Subject)); err != nil {
			// The ledger's failure, not the share's: the matching stops at it.
			return nil, false, pipeline.NotRead(fmt.Errorf("the Infinia seller id of %s: %w", subjectSeller(e.Subject), err))
		}
	}
	ms, clean, err = compareShare(e, account, theirs, err)
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	return forgottenShare(ms, e, now(), cmp.Or(c.Memory, DefaultMemory)), clean, err
}

// forgottenShare turns the finding that Infinia does not know e, a
// revenue share the ledger recorded succeeded and planned longer than
// memory before now, into an expected unverifiable one: its status query
// may simply no longer remember it. Of one whose outcome the ledger does
// not know, it says that it is held for a person, not resolved by the
// next run's query. Reported missing at Infinia, it
// needed a person (exit 4) who might pay it again; it was paid, by the
// ledger's word (its reference), and only Infinia's statements can say
// otherwise.
func forgottenShare(ms []pipeline.Mismatch, e pipeline.Effect, now time.Time, memory time.Duration) []pipeline.Mismatch {
	if e.State == pipeline.EffectFailed || e.State == pipeline.EffectPlanned {
		return ms
	}
	past := pipeline.PastMemory(e, now, memory, "Infinia")
	if past == nil && pipeline.ResolvedPaid(e) {
		// Recorded paid by a person from Infinia's statements, Infinia's
		// status query not knowing it (it had answered it, and forgot it
		// within its memory): its not knowing it says nothing new. As a
		// missing payment it needed a person on every run again.
		for i, m := range ms {
			if m.Category == pipeline.MismatchMissingAtProvider {
				ms[i].Category, ms[i].Expected = pipeline.MismatchUnverifiable, true
				ms[i].Detail = fmt.Sprintf("recorded paid by a person from Infinia's statements (Infinia reference %s) and not known to Infinia's status query: not a missing payment, do not pay it again; Infinia's statements of the platform account show it",
					e.ProviderRef)
			}
		}
		return ms
	}
	if past == nil {
		return ms
	}
	for i, m := range ms {
		if m.TheirsState == "not found" && !e.State.Final() {
			// Not "the next run resolves it by query": the stage holds it
			// for a person (RevenueShareSender.Query).
			ms[i].Detail = fmt.Sprintf("our outcome is not known, and Infinia's status query no longer knows it, planned %s ago, past the %s it is taken to remember: it may have been paid and forgotten; held for a person, never sent again nor failed (settle resolve --subject %s --paid or --not-paid, from Infinia's statements)",
				pipeline.RoundDays(now.Sub(e.Planned)), pipeline.RoundDays(memory), e.Subject)
		}
		if m.Category == pipeline.MismatchMissingAtProvider && e.State == pipeline.EffectSucceeded {
			ms[i].Category, ms[i].Expected = pipeline.MismatchUnverifiable, true
			ms[i].Detail = fmt.Sprintf("recorded succeeded (Infinia reference %s) and no longer known to Infinia's status query, planned %s ago, past the %s it is taken to remember: not a missing payment, do not pay it again; Infinia's statements of the platform account show it",
				e.ProviderRef, pipeline.RoundDays(now.Sub(e.Planned)), pipeline.RoundDays(memory))
		}
	}
	return ms
}

// compareShare compares Infinia's answer about one revenue share (theirs,
// or the error of the status query) with the ledger's effect e: the
// mismatches, and clean when the answer is final at Infinia (SUCCESS or
// FAILED) and agrees with the ledger in everything (state, currency,
// amount, and the seller when Infinia echoes it: account is the Infinia
// id e pays, "" when not known). The distribute stage checks with it the
// answer it adopts.
func compareShare(e pipeline.Effect, account string, theirs RevenueShareResult, err error) (ms []pipeline.Mismatch, clean bool, _ error) {
	seller := subjectSeller(e.Subject)
	m := pipeline.Mismatch{Provider: Name, Subject: e.Key, SellerID: seller, Currency: string(e.Currency),
		Ours: pipeline.Minor(e.Amount), OursState: string(e.State)}
	switch {
	case pipeline.IsNotFound(err):
		if e.State == pipeline.EffectFailed {
			return nil, false, nil // refused before Infinia recorded it: agrees
		}
		m.Category, m.TheirsState = pipeline.MismatchMissingAtProvider, "not found"
		switch {
		case !e.State.Final() && e.ProviderRef != "":
			// Infinia answered it before: not a request that never
			// arrived, and not sent again (pipeline.ApplyEffect).
			m.Category, m.Detail = pipeline.MismatchStatus, fmt.Sprintf("Infinia answered it before (reference %s) and its status query does not know it now: neither sent again nor failed; ask Infinia", e.ProviderRef)
		case !e.State.Final():
			m.Category, m.Expected, m.Detail = pipeline.MismatchTiming, true, "our outcome is not known yet; the next run resolves it by query"
		}
		return []pipeline.Mismatch{m}, false, nil
	case pipeline.SubjectOnly(err):
		m.Category, m.TheirsState, m.Detail = pipeline.MismatchStatus, "refused", "Infinia refused the status query: "+err.Error()
		return []pipeline.Mismatch{m}, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("revenue share %s: %w", e.Key, err)
	}
	m.TheirsState = theirs.Status
	amount, reported, amountErr := theirs.reported(e.Currency)
	if reported && amountErr == nil {
		m.Theirs = pipeline.Minor(amount)
	}
	var out []pipeline.Mismatch
	add := func(category, detail string, expected bool) {
		x := m
		x.Category, x.Detail, x.Expected = category, detail, expected
		out = append(out, x)
	}
	switch {
	case theirs.Status == StatusProcessing && e.State == pipeline.EffectSucceeded:
		// Went back: the ledger took a SUCCESS, and paid the items on it.
		add(pipeline.MismatchStatus, "we recorded it paid on Infinia's SUCCESS; Infinia now says PROCESSING: its status went back, ask Infinia whether it paid", false)
	case theirs.Status == StatusProcessing && e.State == pipeline.EffectFailed:
		// Went back: the ledger took a failure, carried the balance and
		// may have paid it again under a new requestNo.
		add(pipeline.MismatchStatus, "we recorded it failed and carried its amount; Infinia now says PROCESSING: if it pays it, the seller is paid twice", false)
	case theirs.Status == StatusProcessing || !e.State.Final():
		add(pipeline.MismatchTiming, "not final yet", true)
	case e.State == pipeline.EffectSucceeded && theirs.Status != StatusSuccess:
		add(pipeline.MismatchStatus, "we recorded it paid: "+theirs.FailReason, false)
	case e.State == pipeline.EffectFailed && theirs.Status == StatusSuccess:
		add(pipeline.MismatchStatus, "Infinia paid it, we recorded it failed and carried its amount: it could be paid twice", false)
	}
	if theirs.SellerID != "" && account != "" && theirs.SellerID != account {
		add(pipeline.MismatchStatus, fmt.Sprintf("Infinia reports it for seller %s, we sent it to %s", theirs.SellerID, account), false)
	}
	if theirs.Status == StatusSuccess && reported {
		switch {
		case theirs.Currency != "" && theirs.Currency != e.Currency:
			add(pipeline.MismatchCurrency, fmt.Sprintf("Infinia reports %s", theirs.Currency), false)
		case amountErr != nil:
			add(pipeline.MismatchAmount, fmt.Sprintf("Infinia reports an amount without a currency, not one in %s: %v", e.Currency, amountErr), false)
		case amount != e.Amount:
			add(pipeline.MismatchAmount, fmt.Sprintf("Infinia reports %s paid, we sent %s", pipeline.Money{Minor: amount, Currency: e.Currency}, pipeline.Money{Minor: e.Amount, Currency: e.Currency}), false)
		}
	}
	final := theirs.Status == StatusSuccess || theirs.Status == StatusFailed
	return out, final && e.State.Final() && len(out) == 0, nil
}
