package payprotocol_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
	"github.com/settlekit/settle/pipeline"
)

// verifyStore is an in-memory ledger for the verification (and the
// reconciliation, for NewProvider).
type verifyStore struct {
	mu     sync.Mutex
	items  []pipeline.VerifyItem
	states map[string]string // order number -> state + ": " + reason
	asked  string            // the channel and hold prefix ItemsToVerify was asked for
}

func (s *verifyStore) ItemsToVerify(_ context.Context, runID int64, ch pipeline.Channel, heldPrefix string) ([]pipeline.VerifyItem, error) {
	if runID != 42 {
		return nil, fmt.Errorf("run %d", runID)
	}
	s.asked = string(ch) + " " + heldPrefix
	return s.items, nil
}

func (s *verifyStore) SetItemState(_ context.Context, runID int64, orderNo, from, to, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range s.items {
		if it.OrderNo == orderNo && it.State != from {
			return fmt.Errorf("order %s is %s, not %s", orderNo, it.State, from)
		}
	}
	s.states[orderNo] = to + ": " + reason
	return nil
}

func (s *verifyStore) RefundedItems(_ context.Context, runID int64, ch pipeline.Channel) ([]pipeline.RefundedItem, error) {
	if runID != 42 || ch != payprotocol.Channel {
		return nil, fmt.Errorf("run %d, channel %s", runID, ch)
	}
	var out []pipeline.RefundedItem
	for _, it := range s.items {
		out = append(out, pipeline.RefundedItem{OrderNo: it.OrderNo, SellerID: it.SellerID, ProviderTxnID: it.ProviderTxnID,
			Currency: it.Currency, Gross: it.Amount, Refunded: it.Refunded, State: strings.SplitN(s.states[it.OrderNo], ":", 2)[0]})
	}
	return out, nil
}

// verifyAPI is an in-memory Pay Protocol for the verification.
type verifyAPI struct {
	payments       map[string]string // outTradeNo -> status
	quotes         map[string]int64  // outTradeNo -> quote in USD cents (default 1000)
	refunds        map[string]string // outTradeNo -> latest refund's status
	fail           map[string]error
	active, maxAct atomic.Int32
	asked          atomic.Int32
}

func (a *verifyAPI) Payment(_ context.Context, no string) (string, pipeline.Money, error) {
	n := a.active.Add(1)
	defer a.active.Add(-1)
	for m := a.maxAct.Load(); n > m && !a.maxAct.CompareAndSwap(m, n); m = a.maxAct.Load() {
	}
	a.asked.Add(1)
	time.Sleep(time.Millisecond)
	if err := a.fail[no]; err != nil {
		return "", pipeline.Money{}, err
	}
	st, ok := a.payments[no]
	if !ok {
		return "", pipeline.Money{}, fmt.Errorf("%w: %s", pipeline.ErrNotFound, no)
	}
	q, ok := a.quotes[no]
	if !ok {
		q = 1000
	}
	return st, pipeline.Money{Minor: q, Currency: "USD"}, nil
}

func (a *verifyAPI) LatestRefund(_ context.Context, no string) (string, error) {
	if r, ok := a.refunds[no]; ok {
		return r, nil
	}
	return payprotocol.RefundNone, nil
}

func toVerify(no string, refunded int64) pipeline.VerifyItem {
	return pipeline.VerifyItem{State: pipeline.ItemUnverified, Split: pipeline.Split{Order: pipeline.Order{OrderNo: "O" + no, SellerID: "S",
		Channel: payprotocol.Channel, ProviderTxnID: no, Currency: "USD", Amount: 1000, Refunded: refunded}}}
}

// TestVerify: each payment's verdict is recorded with its reason (paid in
// our amount, and any refund we net successful: recorded; in progress:
// held, to be verified again; anything else: rejected; an answer about one
// order that cannot be used holds that order alone), at most the pacer's
// limit at a time; what concerns every order stops the verification.
func TestVerify(t *testing.T) {
	paid, pending, failed := payprotocol.PaymentPaid.String(), payprotocol.PaymentPending.String(), payprotocol.PaymentFailed.String()
	store := &verifyStore{states: map[string]string{}, items: []pipeline.VerifyItem{toVerify("T1", 0), toVerify("T2", 0),
		toVerify("T3", 0), toVerify("T4", 0), toVerify("T5", 100), toVerify("T6", 100), toVerify("T7", 100), toVerify("T8", 0), toVerify("T9", 0)}}
	held := store.items[2]
	held.State, held.Reason = pipeline.ItemHeld, payprotocol.VerifyHoldPrefix+" payment is pending"
	store.items[2] = held
	api := &verifyAPI{
		payments: map[string]string{"T1": paid, "T2": paid, "T3": pending, "T5": paid, "T6": paid, "T7": paid, "T8": paid, "T9": failed},
		quotes:   map[string]int64{"T2": 999},
		refunds:  map[string]string{"T6": payprotocol.RefundPendingApproval.String(), "T7": payprotocol.RefundSuccess.String()},
		fail:     map[string]error{"T8": errors.New("malformed answer:\n settlementAmount \"1e6\"")},
	}
	pacer := pipeline.NewPacer(pipeline.Limits{MaxInFlight: 2})
	summary, err := payprotocol.Verify(context.Background(), store, api, pacer, &pipeline.Run{ID: 42})
	if err != nil || summary != "Pay Protocol: 2 payments verified, 3 held, 4 rejected" {
		t.Fatalf("%q, %v", summary, err)
	}
	if store.asked != "payprotocol "+payprotocol.VerifyHoldPrefix {
		t.Errorf("asked the ledger for %q", store.asked)
	}
	want := map[string]string{
		"OT1": "recorded: ",
		"OT2": "rejected: Pay Protocol says 9.99 USD was paid, the order says 10.00 USD",
		"OT3": "held: held: Pay Protocol payment is pending",
		"OT4": "rejected: Pay Protocol does not know payment T4",
		"OT5": "rejected: the order shows a refund Pay Protocol does not know",
		"OT6": "held: held: Pay Protocol refund is pending approval",
		"OT7": "recorded: ",
		"OT8": `held: held: Pay Protocol answer about T8 could not be used: malformed answer: settlementAmount "1e6"`,
		"OT9": "rejected: Pay Protocol payment is failed",
	}
	for no, w := range want {
		if g := store.states[no]; g != w {
			t.Errorf("%s: %q, want %q", no, g, w)
		}
	}
	if n := api.maxAct.Load(); n > 2 || n < 1 {
		t.Errorf("%d questions at once, want at most 2", n)
	}

	// Pay Protocol down past its retries, or refusing our credentials:
	// the verification stops, naming the order or the refusal.
	for _, stop := range []error{transientErr{"connection reset"}, pipeline.Errorf(pipeline.KindUsage, "Pay Protocol", "refused our credentials")} {
		store.states = map[string]string{}
		api := &verifyAPI{payments: map[string]string{}, fail: map[string]error{"T1": stop}}
		_, err := payprotocol.Verify(context.Background(), store, api, pacer, &pipeline.Run{ID: 42})
		if err == nil || !strings.Contains(err.Error(), stop.Error()) || len(store.states) != 0 || api.asked.Load() != 1 {
			t.Errorf("%v: %v, %d states recorded, %d asked; want the error after the first question alone", stop, err, len(store.states), api.asked.Load())
		}
		if pipeline.KindOf(stop) == pipeline.KindUsage && pipeline.KindOf(err) != pipeline.KindUsage {
			t.Errorf("refused credentials: kind %v", pipeline.KindOf(err))
		}
	}
}

// TestNewProvider: Pay Protocol as a run's provider settles the
// payprotocol channel; its pre-flight, verification and matcher go to Pay
// Protocol over the client, the last two on the one pacer given.
func TestNewProvider(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, payprotocoltest.Options{Polls: -1}, nil)
	if _, err := r.fake.AddPayment("T1", "USDT", 6, "10000000", payprotocol.PaymentPaid); err != nil {
		t.Fatal(err)
	}
	if err := r.fake.SetQuote("T1", "USD", "10.00", true); err != nil {
		t.Fatal(err)
	}
	store := &verifyStore{states: map[string]string{}, items: []pipeline.VerifyItem{toVerify("T1", 0), toVerify("T2", 0)}}
	pacer := pipeline.NewPacer(pipeline.Limits{MaxInFlight: 1})
	p := payprotocol.NewProvider(payprotocol.ProviderConfig{Client: r.client, Store: store, Pacer: pacer})
	if p.Name != payprotocol.Name || len(p.Settles) != 1 || p.Settles[0] != payprotocol.Channel || p.Distribute != nil || len(p.Matchers) != 1 {
		t.Fatalf("provider %+v", p)
	}
	if err := p.Preflight(ctx); err != nil {
		t.Fatal(err)
	}
	before := r.fake.Calls(payprotocol.APIPaymentDetail)
	s, err := p.Upload(ctx, &pipeline.Run{ID: 42})
	if err != nil || s != "Pay Protocol: 1 payments verified, 0 held, 1 rejected" || store.states["OT1"] != "recorded: " {
		t.Fatalf("%q, %v, %v", s, err, store.states)
	}
	store.items = store.items[:1] // the rejected one is not reconciled
	ms, err := p.Matchers[0](ctx, &pipeline.Run{ID: 42})
	if err != nil || len(ms) != 0 {
		t.Fatalf("%+v, %v", ms, err)
	}
	if n := r.fake.Calls(payprotocol.APIPaymentDetail) - before; n != 3 {
		t.Errorf("%d payment detail queries, want 3 (2 verified, 1 reconciled)", n)
	}
	if pacer.PeakInFlight() != 1 {
		t.Errorf("the pacer given saw %d in flight, want 1", pacer.PeakInFlight())
	}
}
