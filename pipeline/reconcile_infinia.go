package pipeline

import (
	"context"
	"fmt"
)

// InfiniaShare is Infinia's view of one revenue-sharing request.
type InfiniaShare struct {
	Status     string   // PROCESSING, SUCCESS or FAILED
	Currency   Currency // "" when Infinia does not echo the amount
	Amount     int64
	FailReason string
}

// InfiniaReconciler is what Infinia matching needs of Infinia Pay.
type InfiniaReconciler interface {
	// RevenueShareStatus returns Infinia's state of a request; ErrNotFound
	// when Infinia does not know it.
	RevenueShareStatus(ctx context.Context, requestNo string) (InfiniaShare, error)
	AvailableShare(ctx context.Context, requestNo, infiniaID string, cur Currency) (int64, error)
}

// ExpectedShare is what the ledger expects Infinia to show as a seller's
// available revenue share in a currency: every accepted trade file's
// seller amount less every successful revenue share, over all dates.
type ExpectedShare struct {
	SellerID  string
	InfiniaID string
	Currency  Currency
	Uploaded  int64 // seller amounts of SUCCESS trade files
	Paid      int64 // successful revenue shares
	InFlight  int64 // revenue shares not final yet
}

// InfiniaReconcileStore is what Infinia matching needs of the ledger.
type InfiniaReconcileStore interface {
	EffectsOfKind(ctx context.Context, runID int64, kind string) ([]Effect, error)
	// ExpectedShares returns the expected available shares of the sellers
	// with a trade file or a revenue share in the run.
	ExpectedShares(ctx context.Context, runID int64) ([]ExpectedShare, error)
}

// InfiniaMatcher compares the run's revenue shares with Infinia's
// revenue-sharing status (status, amount, currency; a request Infinia does
// not know), and each seller's available revenue share with what the
// ledger expects of it.
func InfiniaMatcher(store InfiniaReconcileStore, api InfiniaReconciler) Matcher {
	return func(ctx context.Context, run *Run) ([]Mismatch, error) {
		effects, err := store.EffectsOfKind(ctx, run.ID, KindRevenueShare)
		if err != nil {
			return nil, err
		}
		var out []Mismatch
		for _, e := range effects {
			if e.Kind != KindRevenueShare || e.State == EffectPlanned {
				continue // a planned request was never sent: nothing to compare
			}
			m, err := matchShare(ctx, api, e)
			if err != nil {
				return nil, err
			}
			out = append(out, m...)
		}
		expected, err := store.ExpectedShares(ctx, run.ID)
		if err != nil {
			return nil, err
		}
		for _, x := range expected {
			if x.InfiniaID == "" {
				continue
			}
			avail, err := api.AvailableShare(ctx, QueryRequestNo("RSA"), x.InfiniaID, x.Currency)
			want := x.Uploaded - x.Paid
			if SubjectOnly(err) {
				// One seller Infinia does not know or will not report on:
				// a finding about that seller, the others are matched.
				category, state := MismatchStatus, "refused"
				if IsNotFound(err) {
					category, state = MismatchMissingAtProvider, "not found"
				}
				out = append(out, Mismatch{Provider: ProviderInfinia, Category: category, Subject: "available/" + x.SellerID + "/" + string(x.Currency),
					SellerID: x.SellerID, Currency: string(x.Currency), Ours: Minor(want), OursState: "uploaded-paid", TheirsState: state,
					Detail: fmt.Sprintf("available share of Infinia seller %s: %v", x.InfiniaID, err)})
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("available share of %s: %w", x.SellerID, err)
			}
			if avail == want {
				continue
			}
			m := Mismatch{Provider: ProviderInfinia, Category: MismatchAmount, Subject: "available/" + x.SellerID + "/" + string(x.Currency),
				SellerID: x.SellerID, Currency: string(x.Currency), Ours: Minor(want), Theirs: Minor(avail),
				OursState: "uploaded-paid", TheirsState: "available",
				Detail: fmt.Sprintf("trade files accepted %s, revenue shares paid %s", Money{x.Uploaded, x.Currency}, Money{x.Paid, x.Currency})}
			if x.InFlight > 0 {
				m.Category, m.Expected = MismatchTiming, true
				m.Detail += fmt.Sprintf("; %s in revenue shares not final yet", Money{x.InFlight, x.Currency})
			}
			out = append(out, m)
		}
		return out, nil
	}
}

func matchShare(ctx context.Context, api InfiniaReconciler, e Effect) ([]Mismatch, error) {
	seller := subjectSeller(e.Subject)
	m := Mismatch{Provider: ProviderInfinia, Subject: e.Key, SellerID: seller, Currency: string(e.Currency),
		Ours: Minor(e.Amount), OursState: string(e.State)}
	theirs, err := api.RevenueShareStatus(ctx, e.Key)
	switch {
	case IsNotFound(err):
		if e.State == EffectFailed {
			return nil, nil // refused before Infinia recorded it: agrees
		}
		m.Category, m.TheirsState = MismatchMissingAtProvider, "not found"
		if !e.State.Final() {
			m.Category, m.Expected, m.Detail = MismatchTiming, true, "our outcome is not known yet; the next run resolves it by query"
		}
		return []Mismatch{m}, nil
	case SubjectOnly(err):
		m.Category, m.TheirsState, m.Detail = MismatchStatus, "refused", "Infinia refused the status query: "+err.Error()
		return []Mismatch{m}, nil
	case err != nil:
		return nil, fmt.Errorf("revenue share %s: %w", e.Key, err)
	}
	m.TheirsState = theirs.Status
	if theirs.Currency != "" {
		m.Theirs = Minor(theirs.Amount)
	}
	var out []Mismatch
	add := func(category, detail string, expected bool) {
		x := m
		x.Category, x.Detail, x.Expected = category, detail, expected
		out = append(out, x)
	}
	switch {
	case theirs.Status == "PROCESSING" || !e.State.Final():
		add(MismatchTiming, "not final yet", true)
	case e.State == EffectSucceeded && theirs.Status != UploadSuccess:
		add(MismatchStatus, "we recorded it paid: "+theirs.FailReason, false)
	case e.State == EffectFailed && theirs.Status == UploadSuccess:
		add(MismatchStatus, "Infinia paid it, we recorded it failed and carried its amount: it could be paid twice", false)
	}
	if theirs.Status == UploadSuccess && theirs.Currency != "" {
		if theirs.Currency != e.Currency {
			add(MismatchCurrency, fmt.Sprintf("Infinia reports %s", theirs.Currency), false)
		} else if theirs.Amount != e.Amount {
			add(MismatchAmount, fmt.Sprintf("Infinia reports %s paid, we sent %s", Money{theirs.Amount, theirs.Currency}, Money{e.Amount, e.Currency}), false)
		}
	}
	return out, nil
}
