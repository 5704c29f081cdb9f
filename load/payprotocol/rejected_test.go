package payprotocol_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
)

// rejectedStore is ppStore with the run's rejected items (all of them,
// whatever their reason: the test gives those the ledger would return).
type rejectedStore struct {
	ppStore
	rejected []pipeline.RefundedItem
	reasons  []string // the reasons asked for
}

func (s *rejectedStore) RejectedItemsAfter(_ context.Context, runID int64, ch pipeline.Channel, reasons []string, after string, limit int) (
	[]pipeline.RefundedItem, string, error) {
	if runID != 42 || ch != payprotocol.Channel {
		return nil, "", fmt.Errorf("run %d", runID)
	}
	s.reasons = reasons
	page := pageOf(s.rejected, after, limit)
	next := ""
	if limit > 0 && len(page) == limit {
		next = page[len(page)-1].OrderNo
	}
	return page, next, nil
}

// rejectedItem is a Pay Protocol item rejected for reason.
func rejectedItem(no, txn string, gross int64, reason string) pipeline.RefundedItem {
	return pipeline.RefundedItem{OrderNo: no, SellerID: "S-1", ProviderTxnID: txn, Currency: "USD", Gross: gross,
		State: pipeline.ItemRejected, Reason: reason}
}

// TestRejectedPayProtocolOrderPaidLaterIsForAPerson: an order rejected for
// its failed payment - by a person (settle resolve --order --reject), or
// outright by an older settle - that Pay Protocol answers paid later was
// reported nowhere: the matcher read only the items that went on or are
// held, so the buyer had paid, and the seller was never paid, with nobody
// told. The matcher now asks about those orders too (and no other
// rejected one): one paid now is an unexpected row naming the order, its
// amount and the command to act, and a line on the log; one still failed
// is an expected row (asked again while its date is rechecked); one
// refunded, none. Nothing else is asked, and nothing is kept as final.
func TestRejectedPayProtocolOrderPaidLaterIsForAPerson(t *testing.T) {
	person := pipeline.RejectedByPerson + " (Pay Protocol answered payment T-1 failed at 2026-11-25T00:00:00Z): no pay, PP-77; was held: " + payprotocol.HeldFailedPayment
	store := &rejectedStore{
		ppStore: ppStore{items: []pipeline.RefundedItem{ppItem(itemPaid, 500, 0)}}, // O-1, T-1 as ppItem gives
		rejected: []pipeline.RefundedItem{
			rejectedItem("O-2", "T-2", 12345, person),
			rejectedItem("O-3", "T-3", 700, payprotocol.RejectedFailedPayment),
			rejectedItem("O-4", "T-4", 800, person),
			rejectedItem("O-5", "T-5", 900, payprotocol.RejectedFailedPayment),
		},
	}
	store.items[0].OrderNo, store.items[0].ProviderTxnID = "O-1", "T-1"
	failed := payprotocol.Order{Status: payprotocol.PaymentFailed.String(), Quote: pipeline.Money{Minor: 800, Currency: "USD"}}
	api := &ppAPI{orders: map[string]payprotocol.Order{
		"T-1": ppPaid(500, nil),
		"T-2": ppPaid(12345, nil), // paid late, after a person rejected it
		"T-3": ppPaid(700, nil),   // paid late, after an older settle rejected it
		"T-4": failed,             // still failed
		"T-5": {Status: payprotocol.PaymentRefunded.String(), Quote: pipeline.Money{Minor: 900, Currency: "USD"}},
	}}
	var logged bytes.Buffer
	final := &countingFinal{}
	d := pipeline.Date{Year: 2026, Month: 11, Day: 23}
	m := payprotocol.Matcher(payprotocol.MatcherConfig{Store: store, API: api, Final: final, Rejected: store,
		Log: slog.New(slog.NewTextHandler(&logged, nil))})
	got, err := m(context.Background(), &pipeline.Run{ID: 42, Key: pipeline.RunKey{Date: d, Shard: pipeline.Whole}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(store.reasons, payprotocol.RejectedReasons) || !slices.Contains(store.reasons, pipeline.RejectedByPerson) {
		t.Errorf("asked the ledger for the items rejected for %q", store.reasons)
	}
	slices.Sort(api.asked)
	if !slices.Equal(api.asked, []string{"T-1", "T-2", "T-3", "T-4", "T-5"}) {
		t.Errorf("asked Pay Protocol about %v", api.asked)
	}
	byTxn := map[string][]pipeline.Mismatch{}
	for _, m := range got {
		byTxn[m.Subject] = append(byTxn[m.Subject], m)
	}
	for _, c := range []struct{ txn, order, amount, who string }{
		{"T-2", "O-2", "123.45 USD", "a person rejected order O-2"},
		{"T-3", "O-3", "7.00 USD", "an older settle rejected order O-3"},
	} {
		ms := byTxn[c.txn]
		if len(ms) != 1 || ms[0].Expected || ms[0].Category != pipeline.MismatchStatus || ms[0].OursState != pipeline.ItemRejected ||
			ms[0].TheirsState != "paid" || ms[0].OrderNo != c.order || !strings.Contains(ms[0].Detail, c.who) ||
			!strings.Contains(ms[0].Detail, c.amount) || !strings.Contains(ms[0].Detail, "settle resolve --date 2026-11-23 --order "+c.order+" --reopen") {
			t.Errorf("%s paid after its order was rejected: rows %+v, want one unexpected status row naming the order, amount and command", c.txn, ms)
		}
	}
	if ms := byTxn["T-4"]; len(ms) != 1 || !ms[0].Expected || ms[0].Category != pipeline.MismatchTiming || ms[0].TheirsState != "failed" ||
		!strings.Contains(ms[0].Detail, "--recheck-days") {
		t.Errorf("T-4 still failed: rows %+v, want one expected timing row", ms)
	}
	if ms := byTxn["T-5"]; len(ms) != 0 {
		t.Errorf("T-5 refunded: rows %+v, want none", ms)
	}
	if ms := byTxn["T-1"]; len(ms) != 0 {
		t.Errorf("T-1 paid and settled: rows %+v, want none", ms)
	}
	log := logged.String()
	if n := strings.Count(log, payprotocol.PaidAfterRejection); n != 2 {
		t.Errorf("%d lines logged for the orders paid after their rejection, want 2:\n%s", n, log)
	}
	for _, want := range []string{"order=O-2", "amount=123.45", "currency=USD", "order=O-3", "amount=7.00", "--reopen", "level=WARN"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not say %q:\n%s", want, log)
		}
	}
	for _, k := range final.recorded {
		if strings.Contains(k, "T-2") || strings.Contains(k, "T-3") || strings.Contains(k, "T-4") || strings.Contains(k, "T-5") {
			t.Errorf("a rejected order's answer kept as final: %q", k)
		}
	}

	// The distribute stage's ask-ahead (WentOn) leaves them to reconcile.
	api.asked = nil
	ahead := payprotocol.Matcher(payprotocol.MatcherConfig{Store: store, API: api, Rejected: store, WentOn: true})
	if _, err := ahead(context.Background(), &pipeline.Run{ID: 42, Key: pipeline.RunKey{Date: d, Shard: pipeline.Whole}}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(api.asked, []string{"T-1"}) {
		t.Errorf("the ask-ahead asked about %v, want T-1 alone", api.asked)
	}
}

// countingFinal is a pipeline.FinalAnswers that keeps nothing and records
// what it was given.
type countingFinal struct{ recorded []string }

func (f *countingFinal) FinalKeys(context.Context, string, []string) (map[string]bool, error) {
	return map[string]bool{}, nil
}

func (f *countingFinal) RecordFinal(_ context.Context, _ string, keys []string) error {
	f.recorded = append(f.recorded, keys...)
	return nil
}
