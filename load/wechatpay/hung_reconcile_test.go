package wechatpay_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/finaltest"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
)

// TestAReconcileAgainstAHungWeChatPayStopsAsking: WeChat Pay stopped
// (SIGSTOP) before the reconcile stage accepts connections and never
// answers. The matcher asks it the order of each distribution and
// unfreeze of the run, with no breaker (its questions did not even go
// through pipeline.Ask): each took its client's 5 attempts, whatever the
// ones before had found (30 transactions: 150 requests; at real figures,
// 5 attempts of 10 s for each request of the day, a few at a time), and
// the stage ended with a line a question. Now the third question in a
// row that gets no answer stops the matching: nothing more is asked, no
// finding is recorded from what was not asked (not a mismatch, not
// reconciled; the reports are written from the ledger as it is, saying
// their findings are the last reconciliation's), and the stage ends
// resumable (exit 1) in one line naming WeChat Pay as not answering. The re-run once WeChat
// Pay answers reconciles everything: nothing that needs a person, every
// answer kept.
func TestAReconcileAgainstAHungWeChatPayStopsAsking(t *testing.T) {
	const n, inFlight = 30, 3
	h := newHungWeChat(t, n)
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}
	answering := h.answering(t)
	distribute := wechatpay.DistributeStage(wechatpay.StageConfig{Store: h.store, API: answering, Poll: time.Millisecond, Wait: 10 * time.Second})
	if _, err := distribute(context.Background(), run); err != nil || h.store.count(pipeline.ItemPaid) != n {
		t.Fatalf("distribute: %v, %d paid of %d", err, h.store.count(pipeline.ItemPaid), n)
	}

	findings, final := &finaltest.Findings{}, &finaltest.Answers{}
	var wrote atomic.Int32
	stageOf := func(api *wechatpay.Adapter) pipeline.StageFunc {
		match := wechatpay.Matcher(wechatpay.MatcherConfig{Store: h.store, API: api, Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: inFlight}),
			Final: final, Now: func() time.Time { return h.r.clock.Now().Add(48 * time.Hour) }}) // the bills out
		return pipeline.ReconcileStage(findings, []pipeline.Matcher{match}, func(context.Context, *pipeline.Run) (string, error) {
			wrote.Add(1)
			return "reports written", nil
		}, 0)
	}

	h.hung.Store(true)
	began := time.Now()
	_, err := stageOf(h.api)(context.Background(), run)
	took := time.Since(began)
	h.hung.Store(false)
	t.Logf("took %s, %d requests made: %.600v", took, h.made.Load(), err)
	if limit := int64((inFlight + pipeline.NotAnsweringAfter) * clientAttempts); h.made.Load() > limit {
		t.Errorf("%d requests to a hung WeChat Pay, want at most %d", h.made.Load(), limit)
	}
	if !errors.Is(err, pipeline.ErrStillProcessing) || pipeline.KindOf(err) != pipeline.KindFailed || !strings.Contains(err.Error(), "WeChat Pay is not answering") ||
		strings.Contains(err.Error(), "\n") {
		t.Errorf("%v: want the resumable end in one line, naming WeChat Pay as not answering", err)
	}
	if findings.Replaced() > 0 || wrote.Load() != 1 || len(final.Keys(wechatpay.FinalAnswersName)) > 0 ||
		!strings.Contains(err.Error(), "without this reconciliation: mismatches.csv holds the last one's findings") {
		t.Errorf("findings recorded %d times (%+v), reports written %d times, %d answers kept (%v); want none from questions not asked, the reports written once from the ledger, saying so",
			findings.Replaced(), findings.Found(), wrote.Load(), len(final.Keys(wechatpay.FinalAnswersName)), err)
	}

	// The re-run, WeChat Pay answering: everything reconciled.
	if _, err := stageOf(answering)(context.Background(), run); err != nil {
		t.Fatalf("re-run: %v", err)
	}
	if u := unexpected(findings.Found()); findings.Replaced() != 1 || len(u) > 0 || wrote.Load() != 2 {
		t.Errorf("findings recorded %d times (unexpected: %+v), reports written %d times in all; want nothing unexpected, recorded once and written again",
			findings.Replaced(), u, wrote.Load())
	}
	if kept := len(final.Keys(wechatpay.FinalAnswersName)); kept != n {
		t.Errorf("%d answers kept final, want %d", kept, n)
	}
}

// TestWeChatsBillsAndSettlementsCountWithTheBreaker: the matcher's
// other questions - a sub-merchant's bill of a day (its download link,
// then the file) and its settlement details - count with its orders'
// towards WeChat Pay not answering: once 3 in a row got no answer none
// is asked more. They went straight to the client, each through its
// retries however many before had got no answer.
func TestWeChatsBillsAndSettlementsCountWithTheBreaker(t *testing.T) {
	h := newHungWeChat(t, 1)
	day := pipeline.Date{Year: 2026, Month: 11, Day: 23}
	ctx := pipeline.WithBreaker(context.Background())
	h.hung.Store(true)
	asks := []func() error{
		func() error { _, err := h.api.BillLines(ctx, subMchID, day); return err },
		func() error { _, err := h.api.Settlements(ctx, subMchID, day); return err },
		func() error { _, err := h.api.BillLines(ctx, subMchID, day); return err },
	}
	for i, ask := range asks {
		if err := ask(); !errors.Is(err, pipeline.ErrNoAnswer) {
			t.Fatalf("question %d: %v, want no answer", i+1, err)
		}
	}
	made := h.made.Load()
	for i, ask := range asks {
		if err := ask(); !errors.Is(err, pipeline.ErrNotAnswering) {
			t.Errorf("question %d once WeChat Pay is taken as not answering: %v, want it not asked", i+1, err)
		}
	}
	if h.made.Load() != made {
		t.Errorf("%d requests made once WeChat Pay is taken as not answering, want none", h.made.Load()-made)
	}
	if err := pipeline.NotAnswering(ctx, "WeChat Pay"); err == nil {
		t.Errorf("WeChat Pay not taken as not answering")
	}
}
