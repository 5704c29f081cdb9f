package infiniapay

import (
	"context"
	"testing"

	"github.com/settlekit/settle/internal/finaltest"
	"github.com/settlekit/settle/pipeline"
)

// Issue 12: the distribute stage records as the matcher's final answer
// only a revenue share whose answer, seen in this process, is final and
// agrees with the ledger in everything the matcher compares; anything
// else is left for the matcher to ask.
func TestRecordAdoptedOnlyWhatAgrees(t *testing.T) {
	ctx := context.Background()
	d := pipeline.Date{Year: 2026, Month: 11, Day: 23}
	share := func(n string, state pipeline.EffectState) pipeline.Effect {
		return pipeline.Effect{RunID: 1, Kind: KindRevenueShare, Attempt: 1, Subject: RevenueShareSubject(d, n, "USD"),
			Key: RevenueShareRequestNo(d, n, "USD", 1), Currency: "USD", Amount: 12600, State: state}
	}
	paid := RevenueShareResult{Status: StatusSuccess, Currency: "USD", Amount: 12600}
	cases := []struct {
		name   string
		e      pipeline.Effect
		theirs *RevenueShareResult // nil: no answer seen in this process
		forget bool                // the latest word was no answer (not found)
		want   bool
	}{
		{"paid as the ledger says", share("S1", pipeline.EffectSucceeded), &paid, false, true},
		{"failed at Infinia as in the ledger", share("S2", pipeline.EffectFailed),
			&RevenueShareResult{Status: StatusFailed, FailReason: "no"}, false, true},
		{"paid, no amount echoed", share("S3", pipeline.EffectSucceeded), &RevenueShareResult{Status: StatusSuccess}, false, true},
		{"another amount", share("S4", pipeline.EffectSucceeded), &RevenueShareResult{Status: StatusSuccess, Currency: "USD", Amount: 12000}, false, false},
		{"another currency", share("S5", pipeline.EffectSucceeded), &RevenueShareResult{Status: StatusSuccess, Currency: "EUR", Amount: 12600}, false, false},
		{"still processing", share("S6", pipeline.EffectSucceeded), &RevenueShareResult{Status: StatusProcessing}, false, false},
		{"paid at Infinia, failed in the ledger", share("S7", pipeline.EffectFailed), &paid, false, false},
		{"refused before Infinia recorded it", share("S8", pipeline.EffectFailed), &paid, true, false},
		{"found final in the ledger, not asked", share("S9", pipeline.EffectSucceeded), nil, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			final := &finaltest.Answers{}
			answers := &ShareAnswers{}
			if c.theirs != nil {
				answers.put(c.e.Key, *c.theirs)
			}
			if c.forget {
				answers.forget(c.e.Key)
			}
			if err := recordAdopted(ctx, final, answers, c.e); err != nil {
				t.Fatal(err)
			}
			got, err := final.FinalKeys(ctx, FinalName, []string{finalKey(c.e)})
			if err != nil {
				t.Fatal(err)
			}
			if got[finalKey(c.e)] != c.want || final.Len() != len(got) {
				t.Fatalf("recorded %v (%d keys), want %v", got, final.Len(), c.want)
			}
			// The answer is taken: the same effect adopted again without a
			// new answer records nothing more.
			if _, ok := answers.take(c.e.Key); ok {
				t.Fatal("the answer is still kept after the stage took it")
			}
		})
	}
	// No FinalAnswers: nothing recorded, nothing fails.
	if err := recordAdopted(ctx, nil, &ShareAnswers{}, share("S1", pipeline.EffectSucceeded)); err != nil {
		t.Fatal(err)
	}
}
