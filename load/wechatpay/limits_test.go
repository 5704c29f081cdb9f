package wechatpay_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
)

// TestATransactionIDLongerThanWeChatTakesIsHeldBeforeAnyRequest: WeChat
// Pay publishes transaction_id as string[1,32] (Request
// funds-distribution). The client let ids of up to 64 characters through:
// a platform row with a 33-character id was asked about and sent to
// WeChat Pay, which refuses it (PARAM_ERROR). It is held for a person
// with the reason before any request, while the run's other order is
// paid.
func TestATransactionIDLongerThanWeChatTakesIsHeldBeforeAnyRequest(t *testing.T) {
	r, store, stage, _ := reviewRig(t, wechatpaytest.Options{Polls: -1}, func(b []byte) []byte { return b }, 2)
	long, other := store.items["ORD-00000"], store.items["ORD-00001"]
	long.ProviderTxnID = strings.Repeat("4", wechatpay.MaxTransactionID+1)
	r.fake.AddTransaction(subMchID, long.ProviderTxnID, "CNY", long.Amount)
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}
	_, err := stage(context.Background(), run)
	// One question (its remaining amount) and one distribution, both
	// about the other order.
	if asked, sent := r.fake.Calls(wechatpay.APIAmounts), r.fake.Calls(wechatpay.APIOrders)+r.fake.Calls(wechatpay.APIUnfreeze); asked != 1 || sent != 1 {
		t.Fatalf("%d remaining amounts asked, %d requests sent: want 1 and 1, none about the transaction of %d characters",
			asked, sent, len(long.ProviderTxnID))
	}
	if reason := store.reasons["ORD-00000"]; store.state["ORD-00000"] == pipeline.ItemPaid || !strings.Contains(reason, "want 1 to 32 characters") {
		t.Fatalf("order ORD-00000: %s, reason %q (err %v): want it held naming WeChat's limit", store.state["ORD-00000"], reason, err)
	}
	if store.state["ORD-00001"] != pipeline.ItemPaid || r.fake.Distributed(other.ProviderTxnID) != other.Commission {
		t.Fatalf("order ORD-00001: %s, %d distributed: want paid its commission %d (err %v)",
			store.state["ORD-00001"], r.fake.Distributed(other.ProviderTxnID), other.Commission, err)
	}
}

// TestSettlementPagesUpToWhatWeChatPublishes: WeChat Pay publishes the
// limit of a settlement details page as "up to 30 records". The fake
// assumed 10 and refused more; the client took any page size and would
// have asked WeChat for pages it refuses.
func TestSettlementPagesUpToWhatWeChatPublishes(t *testing.T) {
	r := newRig(t, wechatpaytest.Options{}, nil, func(c *wechatpay.Config) { c.SettlementPageSize = wechatpay.MaxSettlementLimit })
	q := wechatpay.SettlementQuery{SubMchID: subMchID, State: wechatpay.SettleStateUnsettled}
	if _, err := r.client.SettlementPage(context.Background(), q, 0, wechatpay.MaxSettlementLimit); err != nil {
		t.Fatalf("a page of %d: %v", wechatpay.MaxSettlementLimit, err)
	}
	cfg := r.cfg
	cfg.SettlementPageSize = wechatpay.MaxSettlementLimit + 1
	if _, err := wechatpay.New(cfg); err == nil {
		t.Fatalf("a settlement page size of %d was taken: WeChat Pay returns at most %d", cfg.SettlementPageSize, wechatpay.MaxSettlementLimit)
	}
}

// TestATransactionPaidOver180DaysAgoIsHeldNamingWeChatsRelease: WeChat
// Pay publishes that it releases a transaction's frozen funds to the
// seller 180 days after payment. The fake kept them frozen for ever (a
// distribution of an order paid a year ago went out and was paid in
// tests), and the hold said only that WeChat held less than the order.
// The transaction is held for a person naming the release, nothing is
// sent for it, and the run's other order is paid.
func TestATransactionPaidOver180DaysAgoIsHeldNamingWeChatsRelease(t *testing.T) {
	r, store, _, api := reviewRig(t, wechatpaytest.Options{Polls: -1}, func(b []byte) []byte { return b }, 2)
	stage := wechatpay.DistributeStage(wechatpay.StageConfig{Store: store, API: api, Now: r.clock.Now, Poll: time.Millisecond, Wait: 5 * time.Second})
	old, recent := store.items["ORD-00000"], store.items["ORD-00001"]
	old.PaidAt = r.clock.Now().Add(-wechatpay.FreezeWindow - time.Hour)
	recent.PaidAt = r.clock.Now().Add(-wechatpay.FreezeWindow + 24*time.Hour)
	r.fake.SetPaidAt(old.ProviderTxnID, old.PaidAt)
	r.fake.SetPaidAt(recent.ProviderTxnID, recent.PaidAt)
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}
	_, err := stage(context.Background(), run)
	if sent := r.fake.Calls(wechatpay.APIOrders) + r.fake.Calls(wechatpay.APIUnfreeze); sent != 1 || r.fake.Requests(old.ProviderTxnID) != 0 {
		t.Fatalf("%d requests sent, %d about the transaction paid 180 days ago: want 1, none about it", sent, r.fake.Requests(old.ProviderTxnID))
	}
	if reason := store.reasons["ORD-00000"]; store.state["ORD-00000"] == pipeline.ItemPaid || !strings.Contains(reason, "180 days after payment") {
		t.Fatalf("order ORD-00000: %s, reason %q (err %v): want it held naming WeChat's release after 180 days", store.state["ORD-00000"], reason, err)
	}
	if pipeline.KindOf(err) != pipeline.KindNeedsPerson {
		t.Fatalf("err %v: want the run to need a person", err)
	}
	if store.state["ORD-00001"] != pipeline.ItemPaid || r.fake.Distributed(recent.ProviderTxnID) != recent.Commission {
		t.Fatalf("order ORD-00001 (paid 179 days ago): %s, %d distributed: want paid its commission %d",
			store.state["ORD-00001"], r.fake.Distributed(recent.ProviderTxnID), recent.Commission)
	}
}

// TestATransactionThatWaitsNearWeChatsReleaseSaysWhen: a transaction
// that waits on WeChat Pay (not distributable yet) read the same on its
// first day and on its last, while WeChat Pay releases its funds to the
// seller, the commission with them, 180 days after payment. Within
// ReleaseWarning of that day, its reason names the day.
func TestATransactionThatWaitsNearWeChatsReleaseSaysWhen(t *testing.T) {
	r, store, _, api := reviewRig(t, wechatpaytest.Options{Polls: -1, ReadyAfter: -1}, func(b []byte) []byte { return b }, 2)
	stage := wechatpay.DistributeStage(wechatpay.StageConfig{Store: store, API: api, Now: r.clock.Now, Poll: time.Millisecond, Wait: 5 * time.Second})
	old, recent := store.items["ORD-00000"], store.items["ORD-00001"]
	// Paid at 04:00 in Beijing: 20:00 UTC the day before. WeChat Pay's
	// day is Beijing's (the reason said the UTC date, a day early).
	old.PaidAt = r.clock.Now().Add(-wechatpay.FreezeWindow + 10*24*time.Hour - 6*time.Hour)
	recent.PaidAt = r.clock.Now().Add(-10 * 24 * time.Hour)
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}
	_, err := stage(context.Background(), run)
	day := old.PaidAt.Add(wechatpay.FreezeWindow).In(wechatpay.Beijing).Format(time.DateOnly) + " (Beijing time)"
	if reason := store.reasons["ORD-00000"]; !strings.Contains(reason, "not distributable yet") || !strings.Contains(reason, "seller, the commission with them, on "+day) {
		t.Fatalf("order ORD-00000 (released in 10 days): reason %q (err %v): want it to wait naming %s", reason, err, day)
	}
	if reason := store.reasons["ORD-00001"]; !strings.Contains(reason, "not distributable yet") || strings.Contains(reason, "releases") {
		t.Fatalf("order ORD-00001 (released in 170 days): reason %q: want it to wait, no day named", reason)
	}
}

// TestTheRemainingAmountOfATransactionNotDistributableYetIsRefused:
// WeChat Pay publishes that the remaining amount query errs while a
// transaction's funds cannot be distributed yet (the first minutes after
// payment). The fake answered the amount, and refused only the
// distribution after it.
func TestTheRemainingAmountOfATransactionNotDistributableYetIsRefused(t *testing.T) {
	r := newRig(t, wechatpaytest.Options{ReadyAfter: -1}, nil, nil)
	r.fake.AddTransaction(subMchID, "4200000000000000000000000001", "CNY", 1000)
	_, err := r.client.RemainingAmount(context.Background(), subMchID, "4200000000000000000000000001")
	var we *wechatpay.Error
	if !errors.As(err, &we) || !we.NotReady() {
		t.Fatalf("err %v: want WeChat's not-ready refusal", err)
	}
}

// TestAnOldTransactionWeChatStillHoldsInAnotherCurrencyIsNotCalledReleased:
// the hold naming WeChat Pay's release to the seller is for a transaction
// of which WeChat holds less than the order. One paid over 180 days ago
// that WeChat still holds whole, in another currency than the order's, was
// said released ("cannot be collected through it any more: collect it by
// hand") while WeChat held it all: the hold names the currency
// contradiction (bad data), as for a transaction paid since.
func TestAnOldTransactionWeChatStillHoldsInAnotherCurrencyIsNotCalledReleased(t *testing.T) {
	r, store, _, api := reviewRig(t, wechatpaytest.Options{Polls: -1}, func(b []byte) []byte { return b }, 1)
	stage := wechatpay.DistributeStage(wechatpay.StageConfig{Store: store, API: api, Now: r.clock.Now, Currencies: []pipeline.Currency{"CNY", "JPY"},
		Poll: time.Millisecond, Wait: 5 * time.Second})
	it := store.items["ORD-00000"]
	it.Currency, it.Amount, it.Commission, it.SellerShare = "JPY", 1000, 0, 1000
	it.PaidAt = r.clock.Now().Add(-wechatpay.FreezeWindow - time.Hour)
	r.fake.AddTransaction(subMchID, it.ProviderTxnID, "CNY", 1000) // still frozen at WeChat: paid now to the fake
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}
	_, err := stage(context.Background(), run)
	if sent := r.fake.Calls(wechatpay.APIUnfreeze) + r.fake.Calls(wechatpay.APIOrders); sent != 0 || pipeline.KindOf(err) != pipeline.KindNeedsPerson {
		t.Fatalf("%d requests sent (err %v): want none, held for a person", sent, err)
	}
	if reason := store.reasonOf(); strings.Contains(reason, "180 days after payment") || !strings.Contains(reason, "find out why") {
		t.Fatalf("reason %q: want the currency contradiction, not WeChat's release to the seller", reason)
	}
}
