package ledger_test

import (
	"context"
	"testing"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// Issue 12: EachExpectedShare marks the seller's activity (its trade files
// and revenue shares in the currency, over all dates): the mark changes
// with every one recorded or changed, even when the expected figures do
// not (a payout planned; a later date's file Infinia failed), and only
// then - another seller's file leaves it as it is.
func TestExpectedSharesMarkTheSellersActivity(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := uploadedItems(t, l, day, "A", 2, 500)
	share := func(r *pipeline.Run) pipeline.ExpectedShare {
		t.Helper()
		var xs []pipeline.ExpectedShare
		if err := l.EachExpectedShare(ctx, r.ID, func(x pipeline.ExpectedShare) error {
			xs = append(xs, x)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for _, x := range xs {
			if x.SellerID == "S1" && x.Currency == "USD" {
				return x
			}
		}
		t.Fatalf("no expected share of S1 in %+v", xs)
		return pipeline.ExpectedShare{}
	}
	file := func(r *pipeline.Run, seller string, minor int64) pipeline.TradeFile {
		t.Helper()
		req := tradeKey(r.Key.Date, seller, "USD", 1)
		f, err := l.RecordTradeFile(ctx, pipeline.TradeFile{RunID: r.ID, Date: r.Key.Date, SellerID: seller, Currency: "USD", Attempt: 1,
			RequestNo: req, Name: "TD_" + req + ".csv", SHA256: "x", SellerMinor: minor}, shareChannels)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	seen := map[string]string{}
	step := func(what string, uploaded, paid, inFlight int64) {
		t.Helper()
		x := share(run)
		if x.Uploaded != uploaded || x.Paid != paid || x.InFlight != inFlight {
			t.Fatalf("%s: %+v, want uploaded %d, paid %d, in flight %d", what, x, uploaded, paid, inFlight)
		}
		if x.Activity == "" || seen[x.Activity] != "" {
			t.Fatalf("%s: activity %q, as after %q", what, x.Activity, seen[x.Activity])
		}
		seen[x.Activity] = what
		if again := share(run); again.Activity != x.Activity {
			t.Fatalf("%s: activity %q then %q with nothing recorded", what, x.Activity, again.Activity)
		}
	}

	f := file(run, "S1", 1000)
	step("file built", 0, 0, 0)
	f.Status = "SUCCESS"
	if err := l.FinishTradeFile(ctx, f, nil, ledger.ItemUploaded, ""); err != nil {
		t.Fatal(err)
	}
	step("file accepted", 1000, 0, 0)
	e, err := l.PlanPayout(ctx, run, "S1", shareChannels, payout(run, 1000, 1))
	if err != nil {
		t.Fatal(err)
	}
	step("payout planned", 1000, 0, 0)
	if err := l.MarkSent(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	step("payout sent", 1000, 0, 1000)
	e.ProviderRef = "R"
	if err := l.RecordOutcome(ctx, e.ID, pipeline.EffectSucceeded, "R", ""); err != nil {
		t.Fatal(err)
	}
	if err := l.PayoutSucceeded(ctx, run, "S1", "USD", shareChannels, e); err != nil {
		t.Fatal(err)
	}
	step("payout succeeded", 1000, 1000, 0)

	// Another seller's file, on the next date: S1's mark stays.
	next := uploadedItems(t, l, day.AddDays(1), "B", 1, 300)
	file(next, "S2", 300)
	if x := share(run); seen[x.Activity] != "payout succeeded" {
		t.Fatalf("another seller's file changed S1's activity: %+v", x)
	}
	// S1's file of the next date, failed at Infinia: the figures stay, the
	// mark moves (for the next date's run too).
	g := file(next, "S1", 300)
	step("next date's file built", 1000, 1000, 0)
	g.Status = "FAILED"
	if err := l.FinishTradeFile(ctx, g, nil, "held", "refused"); err != nil {
		t.Fatal(err)
	}
	step("next date's file failed", 1000, 1000, 0)
	if x := share(next); x.Activity != share(run).Activity {
		t.Fatalf("the next date's run sees another activity of S1: %q, %q", x.Activity, share(run).Activity)
	}
}
