package infiniapay_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/finaltest"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/pipeline"
)

// TestAReconcileAgainstAHungInfiniaStopsAsking: Infinia stopped
// (SIGSTOP) before the reconcile stage accepts connections and never
// answers. The matcher asks it the status of each revenue share of the
// run, then each seller's available share, with no breaker: each
// question took its client's 5 attempts, whatever the ones before had
// found (20 sellers: 100 requests; at real figures, 5 attempts of 10 s
// for each revenue share and seller of the day, a few at a time), and
// the stage ended with a line a question. Now the third question in a
// row that gets no answer stops the matching: nothing more is asked, no
// finding is recorded from what was not asked (not a mismatch, not
// reconciled; the reports are written from the ledger as it is, saying
// their findings are the last reconciliation's), and the stage ends
// resumable (exit 1) in one line naming Infinia as not answering. The re-run once Infinia
// answers reconciles everything: no finding, every answer kept.
func TestAReconcileAgainstAHungInfiniaStopsAsking(t *testing.T) {
	const n, inFlight = 20, 3
	for _, hang := range []string{infiniapay.APIRevenueShareStatus, infiniapay.APIAvailableShare} {
		t.Run(hang, func(t *testing.T) {
			h := newHungInfinia(t, hang)
			var cands []pipeline.PayoutCandidate
			rl := &reconcileLedger{accounts: map[string]string{}}
			for i := range n {
				seller, account := fmt.Sprintf("S%02d", i), fmt.Sprintf("I%02d", i)
				cands = append(cands, pipeline.PayoutCandidate{SellerID: seller, Currency: "USD", Payable: 100_00, Items: 1, Account: account})
				h.fake.SetBinding(account, infiniapay.StatusActive)
				h.fake.SetAvailable(account, "USD", 1_000_00)
				rl.accounts[seller] = account
				rl.expected = append(rl.expected, pipeline.ExpectedShare{SellerID: seller, ProviderSellerID: account, Currency: "USD",
					Uploaded: 1_000_00, Paid: 100_00, Activity: "1"})
			}
			h.fake.SetBalance("USD", n*100_00)
			ledger := infiniapay.NewMemLedger(cands)
			run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 12, Day: 1}, Shard: pipeline.Whole}}
			answering := h.answering(t)
			distribute := infiniapay.DistributeStage(infiniapay.StageConfig{Store: ledger, API: infiniapay.StageAPIOf(answering),
				Payouts: infiniapay.StageSenderOf(answering, ledger), Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: inFlight}),
				FirstPoll: 10 * time.Millisecond, Poll: 10 * time.Millisecond, Wait: 10 * time.Second})
			if _, err := distribute(context.Background(), run); err != nil {
				t.Fatalf("distribute: %v", err)
			}
			rl.effects = ledger.Effects()
			if len(rl.effects) != n {
				t.Fatalf("%d revenue shares, want %d", len(rl.effects), n)
			}

			findings, final := &finaltest.Findings{}, &finaltest.Answers{}
			var wrote atomic.Int32
			stageOf := func(client *infiniapay.Client) pipeline.StageFunc {
				match := infiniapay.NewMatcher(infiniapay.MatcherConfig{Store: rl, API: infiniapay.ReconcilerOf(client),
					Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: inFlight}), Final: final})
				return pipeline.ReconcileStage(findings, []pipeline.Matcher{match}, func(context.Context, *pipeline.Run) (string, error) {
					wrote.Add(1)
					return "reports written", nil
				}, 0)
			}

			h.hung.Store(true)
			began := time.Now()
			_, err := stageOf(h.client)(context.Background(), run)
			took := time.Since(began)
			h.hung.Store(false)
			t.Logf("took %s, %d requests made: %.600v", took, h.made.Load(), err)
			if limit := int64((inFlight + pipeline.NotAnsweringAfter) * clientAttempts); h.made.Load() > limit {
				t.Errorf("%d requests to a hung Infinia, want at most %d", h.made.Load(), limit)
			}
			if !errors.Is(err, pipeline.ErrStillProcessing) || pipeline.KindOf(err) != pipeline.KindFailed || !strings.Contains(err.Error(), "Infinia is not answering") ||
				strings.Contains(err.Error(), "\n") {
				t.Errorf("%v: want the resumable end in one line, naming Infinia as not answering", err)
			}
			if findings.Replaced() > 0 || wrote.Load() != 1 || !strings.Contains(err.Error(), "without this reconciliation: mismatches.csv holds the last one's findings") {
				t.Errorf("findings recorded %d times (%+v), reports written %d times (%v); want none from questions not asked, the reports written once from the ledger, saying so",
					findings.Replaced(), findings.Found(), wrote.Load(), err)
			}

			// The re-run, Infinia answering: everything reconciled.
			if _, err := stageOf(answering)(context.Background(), run); err != nil {
				t.Fatalf("re-run: %v", err)
			}
			if findings.Replaced() != 1 || len(findings.Found()) > 0 || wrote.Load() != 2 {
				t.Errorf("findings recorded %d times (%+v), reports written %d times in all; want none found, recorded once and written again",
					findings.Replaced(), findings.Found(), wrote.Load())
			}
			if shares, avail := len(final.Keys(infiniapay.FinalName)), len(final.Keys(infiniapay.AvailableName)); shares != n || avail != n {
				t.Errorf("%d revenue shares, %d available shares kept final; want %d each", shares, avail, n)
			}
		})
	}
}
