package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
	"github.com/settlekit/settle/seed"
)

// TestAnOrdersStatusSaysWhatHappenedToIt: "what happened to order O?"
// in one command (settle status --order), where a support engineer
// grepped orders.csv, then ran status --subject with its payout key. Over
// the adjustments scenario's first two days (its day 1 with a row of an
// unknown currency added): an order paid by its seller's Infinia revenue
// share, then refunded late and clawed back; an order carried (its seller
// not bound), then paid by a share of the next date; a rejected row; an
// order of no row of the date, and one of another date; a mismatch of
// the order, as the reconciliation recorded it.
func TestAnOrdersStatusSaysWhatHappenedToIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenario()
	if _, err := e.db.Exec(`INSERT INTO orders (order_no, seller_id, provider, provider_txn_id, currency, amount_minor, category, paid_at, confirmed_at)
		VALUES ('OZ', 'S00001', 'infiniapay', 'TZ', 'ZZZ', 700, 'toys', '2026-11-19 09:00Z', '2026-11-20 14:00Z')`); err != nil {
		t.Fatal(err)
	}
	day1, day2 := scenarioDays[0], scenarioDays[1]
	d1, err := pipeline.ParseDate(day1)
	if err != nil {
		t.Fatal(err)
	}
	status := func(day, order string) ledger.OrderHistory {
		t.Helper()
		var h ledger.OrderHistory
		if err := json.Unmarshal([]byte(e.mustSettle("status", "--date", day, "--order", order, "-o", "json")), &h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	if out, code := e.runDay(sim, day1, "--max-reject-ratio", "0.5"); code != 0 {
		t.Fatalf("%s: exit %d\n%s", day1, code, out)
	}

	// Carried: S2 is not bound on day 1, its share of O3 (180.00) is
	// carried in an entry, and no payout has it.
	o3 := status(day1, "O3")
	if len(o3.Items) != 1 || o3.Items[0].State != "carried" || o3.Items[0].Seller != 18000 || len(o3.Payouts) != 0 ||
		len(o3.Carried) != 1 || o3.Carried[0].Amount != 18000 || o3.Carried[0].NettedInto != "" || o3.Carried[0].Reason == "" {
		t.Errorf("status --order O3 on day 1: %+v\nwant its item carried in an open entry of 180.00, no payout", o3)
	}
	if text := e.mustSettle("status", "--date", day1, "--order", "O3"); !strings.Contains(text, "seller 180.00 USD; rule rules.csv:") ||
		!strings.Contains(text, "; carried (carried: ") || !strings.Contains(text, "carried (not paid by "+infiniapay.RevenueShareSubject(d1, "S00002", "USD")+") in entry ") || !strings.Contains(text, "held 180.00 USD of "+day1+", open: ") {
		t.Errorf("status --order O3 on day 1 as text: want its item carried, the entry open:\n%s", text)
	}

	// The row of an unknown currency: rejected, no item.
	oz := status(day1, "OZ")
	if len(oz.Items) != 0 || len(oz.Rows) != 1 || oz.Rows[0].Reject == nil || !strings.Contains(oz.Rows[0].Reject.Reason, "unknown currency") ||
		oz.Rows[0].Source == nil || *oz.Rows[0].Source.Currency != "ZZZ" || *oz.Rows[0].Source.Amount != "700" {
		t.Errorf("status --order OZ: %+v\nwant its one row as read, rejected for its currency, no item", oz)
	}
	if text := e.mustSettle("status", "--date", day1, "--order", "OZ"); !strings.Contains(text, "currency ZZZ, amount 700,") ||
		!strings.Contains(text, "; rejected: ") || strings.Contains(text, "item of run") {
		t.Errorf("status --order OZ as text: want its row and why it was rejected:\n%s", text)
	}

	sim.Infinia.SetBinding(seed.InfiniaID(2), "ACTIVE") // S2 binds on day two
	if out, code := e.runDay(sim, day2); code != 0 {
		t.Fatalf("%s: exit %d\n%s", day2, code, out)
	}
	d2, err := pipeline.ParseDate(day2)
	if err != nil {
		t.Fatal(err)
	}

	// Paid: O1 by S1's revenue share of day 1 (90.00 of its 126.00), its
	// trade file taken by Infinia; refunded in full on day 2 (R1), its
	// 90.00 clawed back from S1.
	o1 := status(day1, "O1")
	subject := infiniapay.RevenueShareSubject(d1, "S00001", "USD")
	if len(o1.Items) != 1 || o1.Items[0].State != "paid" || o1.Items[0].Rule == "" || o1.Items[0].Source == nil || o1.Items[0].ProviderTxnID != "T1" {
		t.Fatalf("status --order O1: %+v\nwant its item paid, with its rule and source row", o1)
	}
	it := o1.Items[0]
	if len(o1.Rows) != 1 || o1.Rows[0].Reject != nil || o1.Rows[0].Source == nil || *o1.Rows[0].Source.Amount != "10000" || o1.Rows[0].RunID != it.RunID {
		t.Errorf("status --order O1: rows %+v, want the one row its run read, settled as its item", o1.Rows)
	}
	if len(o1.Payouts) != 1 || o1.Payouts[0].Subject != subject || o1.Payouts[0].Key != it.PayoutKey || o1.Payouts[0].State != "succeeded" ||
		o1.Payouts[0].Amount != 12600 || o1.Payouts[0].ProviderRef == "" || o1.Payouts[0].ProviderRef != it.ProviderRef || o1.Payouts[0].Date != day1 {
		t.Errorf("status --order O1: payouts %+v\nwant %s, its key %s, succeeded, 126.00 with Infinia's reference", o1.Payouts, subject, it.PayoutKey)
	}
	if len(o1.Files) != 1 || it.TradeFile == "" || o1.Files[0].RequestNo != it.TradeFile || o1.Files[0].Status != infiniapay.StatusSuccess {
		t.Errorf("status --order O1: trade files %+v, want the one that listed it (%q), SUCCESS", o1.Files, it.TradeFile)
	}
	if len(o1.LateRefunds) != 1 || o1.LateRefunds[0].RefundNo != "R1" || o1.LateRefunds[0].State != "clawed" || o1.LateRefunds[0].Date != day2 ||
		len(o1.Clawbacks) != 1 || o1.Clawbacks[0].RefundNo != "R1" || o1.Clawbacks[0].Amount != -9000 || o1.Clawbacks[0].Date != day2 {
		t.Errorf("status --order O1: late refunds %+v, clawbacks %+v\nwant R1 read on %s, clawed: -90.00", o1.LateRefunds, o1.Clawbacks, day2)
	}
	// What a reconciliation found of it (one written here: the scenario's
	// providers agree with the ledger).
	if _, err := e.db.Exec(`INSERT INTO settle.mismatches (run_id, seq, provider, category, subject, order_no, seller_id, currency, ours_minor, theirs_minor, ours_state, theirs_state, expected, detail)
		VALUES ($1, 100000, 'infiniapay', 'amount', 'T1', 'O1', 'S00001', 'USD', 9000, 8000, 'paid', 'paid', false, 'disputed')`, it.RunID); err != nil {
		t.Fatal(err)
	}
	text := e.mustSettle("status", "--date", day1, "--order", "O1")
	for _, want := range []string{
		"what the reconciliation last found of it (mismatches.csv): 1\n  infiniapay amount T1, unexpected: ours 90.00 USD (paid), theirs 80.00 USD (paid): disputed\n",
		"order O1 of " + day1 + "\n",
		"read row ", "transaction T1, currency USD, amount 10000,", "; settled as its item\n",
		"seller S00001 infiniapay, transaction T1: gross 100.00 USD, refunded 0.00 USD, commission 10.00 USD, seller 90.00 USD; rule rules.csv:",
		"payout: revenue_share " + subject + " attempt 1, key " + it.PayoutKey + ", of " + day1 + ": 126.00 USD, succeeded, ",
		", provider reference " + it.ProviderRef,
		"trade file ", "(requestNo " + it.TradeFile + ", ", "Infinia's status SUCCESS",
		"late refunds: 1\n  R1 of 100.00 USD, read on " + day2 + ": clawed",
		"clawbacks: 1\n  entry ", " clawback -90.00 USD of " + day2 + ", order O1, refund R1, ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("status --order O1 as text does not say %q:\n%s", want, text)
		}
	}

	// O3, carried on day 1, paid by S2's share of day 2, its entry netted
	// into it.
	o3 = status(day1, "O3")
	paidBy := infiniapay.RevenueShareSubject(d2, "S00002", "USD")
	if len(o3.Items) != 1 || o3.Items[0].State != "paid" || len(o3.Payouts) != 1 || o3.Payouts[0].Subject != paidBy || o3.Payouts[0].Date != day2 ||
		o3.Payouts[0].State != "succeeded" || len(o3.Carried) != 1 || o3.Carried[0].NettedInto != paidBy {
		t.Errorf("status --order O3 after day 2: %+v\nwant it paid by %s, of %s, its entry netted into it", o3, paidBy, day2)
	}

	// Of no row of the date: refused as --subject refuses a subject of no
	// side effect, naming the date that settled it when there is one.
	if out, code := e.settle("status", "--date", day1, "--order", "NOPE"); code != 2 ||
		!strings.Contains(out, "NOPE: no row of "+day1+"'s runs has this order: is it of another date?") {
		t.Errorf("status --order of no order: exit %d, want 2\n%s", code, out)
	}
	if out, code := e.settle("status", "--date", day1, "--order", "O5"); code != 2 ||
		!strings.Contains(out, "settle status --date "+day2+" --order O5") {
		t.Errorf("status --order of an order of another date: exit %d, want 2 naming it\n%s", code, out)
	}
	if out, code := e.settle("status", "--date", day1, "--order", "O1", "--subject", subject); code != 2 || !strings.Contains(out, "not more") {
		t.Errorf("status --order with --subject: exit %d, want 2\n%s", code, out)
	}
}
