package ledger_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// TestDateStatusShowsHistoryTotalsAndOnlyItsLateRefunds: the status of a
// date lists the payout whose answer was lost with its history, the
// totals of paid, carried and held, and only the late refunds read on
// that date; its JSON form carries the same figures.
func TestDateStatusShowsHistoryTotalsAndOnlyItsLateRefunds(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	d1, d2 := day, day.AddDays(1)
	ch := shareChannels

	r1 := uploadedItems(t, l, d1, "P", 2, 300)
	e, err := l.PlanPayout(ctx, r1, "S1", ch, payout(r1, 600, 1))
	if err != nil {
		t.Fatal(err)
	}
	p := newProvider()
	p.loseAnswer = 1
	e = settleOne(t, l, p, e)
	if err := l.PayoutSucceeded(ctx, r1, "S1", "USD", ch, e); err != nil {
		t.Fatal(err)
	}
	uploadedItems(t, l, d1, "A", 1, 1000)
	if _, _, err := l.CarryItems(ctx, r1, "S1", "USD", ch, "RS/x", "binding PENDING"); err != nil {
		t.Fatal(err)
	}
	r2 := uploadedItems(t, l, d2, "B", 1, 500)
	at := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	if _, err := l.RecordLateRefunds(ctx, r1, []pipeline.LateRefund{{RefundNo: "RF1", OrderNo: "OLD1", SellerID: "S1", Amount: 5, CreatedAt: at, State: "pending"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.RecordLateRefunds(ctx, r2, []pipeline.LateRefund{{RefundNo: "RF2", OrderNo: "OLD2", SellerID: "S1", Amount: 5, CreatedAt: at, State: "pending"}}); err != nil {
		t.Fatal(err)
	}

	s, err := l.DateStatus(ctx, d1)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Runs) != 1 || s.Runs[0].Shard != "0/1" || len(s.Runs[0].Totals) != 1 || s.Runs[0].Totals[0].Seller != 1600 {
		t.Errorf("runs: %+v", s.Runs)
	}
	if len(s.Totals) != 1 || s.Totals[0] != (ledger.StatusTotal{Currency: "USD", Seller: 1600, Paid: 600, Carried: 1000}) {
		t.Errorf("totals: %+v", s.Totals)
	}
	es := s.Effects
	if es.Counts["revenue_share"]["succeeded"] != 1 || es.Sends != 1 || es.ThroughUnknown != 1 || es.WorthALook != 1 || len(es.Listed) != 1 {
		t.Fatalf("effects: %+v", es)
	}
	// The money that moved: the succeeded revenue share's amount, what a
	// finance check of the provider's account compares (a date's
	// summary.csv paid counts its own orders, not the entries netted).
	if len(es.Succeeded) != 1 || len(es.Succeeded["revenue_share"]) != 1 || es.Succeeded["revenue_share"]["USD"] != 600 {
		t.Errorf("succeeded amounts: %+v, want revenue_share 600 USD", es.Succeeded)
	}
	got := es.Listed[0]
	if got.Path != "planned>sent>unknown>succeeded" || len(got.History) != 4 || got.History[2].Cause != string(pipeline.CauseSendError) ||
		got.History[2].Detail != "timeout awaiting response" || got.History[3].Cause != string(pipeline.CauseQuery) {
		t.Errorf("the payout whose answer was lost: %+v", got)
	}
	if s.LateRefunds.ByState["pending"] != 1 || len(s.LateRefunds.Waiting) != 1 || s.LateRefunds.Waiting[0].RefundNo != "RF1" {
		t.Errorf("late refunds of %s: %+v, want only RF1", d1, s.LateRefunds)
	}
	if len(s.Carried) != 1 || s.Carried[0].Amount != 1000 {
		t.Errorf("carried balances: %+v", s.Carried)
	}

	// The JSON document: stable names, the same figures.
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Date   string `json:"date"`
		Totals []struct {
			Currency string `json:"currency"`
			Paid     int64  `json:"paid_minor"`
			Carried  int64  `json:"carried_minor"`
			Held     int64  `json:"held_minor"`
		} `json:"totals"`
		Effects struct {
			ThroughUnknown int `json:"through_unknown"`
			Listed         []struct {
				Path    string `json:"path"`
				History []struct {
					Cause  string `json:"cause"`
					Detail string `json:"detail"`
				} `json:"history"`
			} `json:"listed"`
		} `json:"effects"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Date != d1.String() || len(doc.Totals) != 1 || doc.Totals[0].Paid != 600 || doc.Totals[0].Carried != 1000 ||
		doc.Effects.ThroughUnknown != 1 || doc.Effects.Listed[0].History[2].Detail != "timeout awaiting response" {
		t.Errorf("JSON: %s", b)
	}
	if !strings.Contains(string(b), `"late_refunds":{"by_state":{"pending":1}`) {
		t.Errorf("JSON late refunds: %s", b)
	}
}

// TestDateStatusReadsOneSnapshot: a payout another process records while
// the status of its date is read is in all of the status's sections or
// in none. Each read on a snapshot of its own, the payout recorded between
// the summary and the side effects showed as a succeeded revenue share
// while the summary said nothing of the date was paid.
func TestDateStatusReadsOneSnapshot(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	ch := shareChannels
	r1 := uploadedItems(t, l, day, "P", 2, 300)
	var wrote bool
	l.SetStatusHook(func(section string) {
		if section != "summary" || wrote {
			return
		}
		wrote = true
		// Another process pays the seller, committed, between two reads.
		e, err := l.PlanPayout(ctx, r1, "S1", ch, payout(r1, 600, 1))
		if err != nil {
			t.Fatal(err)
		}
		e = settleOne(t, l, newProvider(), e)
		if err := l.PayoutSucceeded(ctx, r1, "S1", "USD", ch, e); err != nil {
			t.Fatal(err)
		}
	})
	paid := func(s *ledger.DateStatus) (summary int64, effects int) {
		for _, tot := range s.Totals {
			summary += tot.Paid
		}
		return summary, s.Effects.Counts["revenue_share"]["succeeded"]
	}
	s, err := l.DateStatus(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	if !wrote {
		t.Fatal("the hook did not run: no payout was recorded between the reads")
	}
	if sum, n := paid(s); sum != 0 || n != 0 {
		t.Fatalf("status read while the payout was recorded: paid %d in the summary, %d succeeded revenue shares in the side effects; want neither (the snapshot before it)", sum, n)
	}
	s, err = l.DateStatus(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	if sum, n := paid(s); sum != 600 || n != 1 {
		t.Fatalf("status read after: paid %d in the summary, %d succeeded revenue shares; want 600 and 1", sum, n)
	}
}

// TestDateStatusSaysWhyABalanceIsCarried: a seller's open carried balance
// is listed with the date of its oldest open entry and the newest entry's
// date and reason - why the seller was not paid, and which date's
// orders.csv holds its orders. Before, status gave the seller, the
// currency and the amount alone: the reason was in the ledger and in the
// orders.csv of a date status did not name (found by a support
// walkthrough: "seller S was not paid for D, why?").
func TestDateStatusSaysWhyABalanceIsCarried(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	d1, d2 := day, day.AddDays(1)
	ch := shareChannels
	r1 := uploadedItems(t, l, d1, "A", 1, 1000)
	if _, _, err := l.CarryItems(ctx, r1, "S1", "USD", ch, "RS/a", "binding PENDING"); err != nil {
		t.Fatal(err)
	}
	r2 := uploadedItems(t, l, d2, "B", 1, 300)
	if _, _, err := l.CarryItems(ctx, r2, "S1", "USD", ch, "RS/b", "net 3.00 USD is below the minimum payout of 10.00 USD"); err != nil {
		t.Fatal(err)
	}
	s, err := l.DateStatus(ctx, d1)
	if err != nil {
		t.Fatal(err)
	}
	want := ledger.CarriedBalance{SellerID: "S1", Currency: "USD", Entries: 2, Amount: 1300, Since: d1.String(), LastDate: d2.String(),
		LastReason: "net 3.00 USD is below the minimum payout of 10.00 USD"}
	if len(s.Carried) != 1 || s.Carried[0] != want {
		t.Errorf("carried balances: %+v, want %+v", s.Carried, want)
	}
}
