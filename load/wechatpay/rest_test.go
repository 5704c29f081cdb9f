package wechatpay_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
)

// reviewRig is a rig whose fake's answers pass through edit (then signed
// again with the platform key at the rig's clock), and a distribute
// stage over the real Adapter and Client with an in-memory ledger of n
// items (amount 1000, commission 100, share 900) at sub-merchant subMchID,
// each transaction frozen at the fake and the platform's receiver
// EFFECTIVE.
func reviewRig(t *testing.T, o wechatpaytest.Options, edit func(body []byte) []byte, n int) (*rig, *reasonStore, pipeline.StageFunc, *wechatpay.Adapter) {
	t.Helper()
	var r *rig
	at := func() time.Time { return r.clock.Now() }
	keys := testKeys(t)
	r = newRig(t, o, rewrite(func(h http.Header, body []byte) []byte {
		if h.Get(wechatpay.HeaderSignature) == "" {
			return body // a bill file: unsigned
		}
		body = edit(body)
		ts := strconv.FormatInt(at().Unix(), 10)
		sig, _ := wechatpay.Sign(keys.PlatformPrivate, wechatpay.ResponseMessage(ts, h.Get(wechatpay.HeaderNonce), body))
		h.Set(wechatpay.HeaderTimestamp, ts)
		h.Set(wechatpay.HeaderSignature, sig)
		return body
	}), nil)
	store := &reasonStore{batchStore: newBatchStore(n), reasons: map[string]string{}}
	store.sub, store.now = subMchID, r.clock.Now
	for _, it := range store.items {
		r.fake.AddTransaction(subMchID, it.ProviderTxnID, "CNY", it.Amount)
	}
	r.fake.SetReceiver(subMchID, wechatpay.TypeMerchantID, "1900009999", wechatpay.ReceiverEffective)
	api := wechatpay.NewAdapter(r.client, wechatpay.NewReceiver{Type: wechatpay.TypeMerchantID, Account: "1900009999",
		Name: "Platform Ltd", RelationType: wechatpay.RelationDistributor})
	stage := wechatpay.DistributeStage(wechatpay.StageConfig{Store: store, API: api, Poll: time.Millisecond, Wait: 5 * time.Second})
	return r, store, stage, api
}

// editJSON decodes an answer, lets f change it, and encodes it again
// (answers that are not JSON objects pass as they are).
func editJSON(f func(m map[string]any)) func([]byte) []byte {
	return func(b []byte) []byte {
		var m map[string]any
		if json.Unmarshal(b, &m) != nil {
			return b
		}
		f(m)
		out, _ := json.Marshal(m)
		return out
	}
}

// TestARestReleaseWeChatClosedIsNotPaid: WeChat Pay FINISHES a
// distribution (sent with unfreeze_unsplit) with the platform's line
// SUCCESS but the line releasing the rest to the seller (解冻给分账方)
// CLOSED, or still PENDING: the seller's share is not released. The item
// was paid and the stage ended well (found by a review); it is held, on
// the run that sends it and on a re-run (exit 4 on both).
func TestARestReleaseWeChatClosedIsNotPaid(t *testing.T) {
	for _, tc := range []struct{ result, want string }{
		{wechatpay.ResultClosed, "is CLOSED (ACCOUNT_ABNORMAL): it is still frozen at WeChat Pay"},
		{wechatpay.ResultPending, "is still PENDING at WeChat Pay: a re-run asks again"},
	} {
		t.Run(tc.result, func(t *testing.T) {
			edit := editJSON(func(m map[string]any) {
				if lines, ok := m["receivers"].([]any); ok {
					for _, l := range lines {
						if l := l.(map[string]any); l["description"] == wechatpaytest.RestDescription {
							l["result"], l["fail_reason"] = tc.result, "ACCOUNT_ABNORMAL"
						}
					}
				}
			})
			_, store, stage, _ := reviewRig(t, wechatpaytest.Options{Polls: -1}, edit, 1)
			run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}
			// The run that sends it, then a re-run that finds it succeeded.
			for i := range 2 {
				summary, err := stage(context.Background(), run)
				if paid := store.count(pipeline.ItemPaid); paid != 0 || !strings.Contains(store.reasonOf(), "the release of the seller's share 9.00 CNY "+tc.want) {
					t.Fatalf("run %d: %d paid, held %q; summary %q, err %v", i+1, paid, store.reasonOf(), summary, err)
				}
				if pipeline.KindOf(err) != pipeline.KindNeedsPerson {
					t.Fatalf("run %d: err %v (kind %d), want the run to end needing a person (exit 4)", i+1, err, pipeline.KindOf(err))
				}
			}
		})
	}
}

// TestACommissionOverTheCapByRoundingIsHeldBeforeSending: WeChat caps
// what a transaction sends out at order amount x ratio (floor(25 x 30%) =
// 7 fen). The stage's own cap check rounded half-even (7.5 -> 8), so a
// commission of 8 passed it: the distribution was sent and refused, and
// every re-run sent another under a new out_order_no (found by a review).
func TestACommissionOverTheCapByRoundingIsHeldBeforeSending(t *testing.T) {
	r, store, stage, _ := reviewRig(t, wechatpaytest.Options{Polls: -1}, func(b []byte) []byte { return b }, 1)
	it := store.items["ORD-00000"]
	it.Amount, it.Commission, it.SellerShare = 25, 8, 17
	r.fake.AddTransaction(subMchID, it.ProviderTxnID, "CNY", 25)
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}
	for range 3 {
		summary, err := stage(context.Background(), run)
		if pipeline.KindOf(err) != pipeline.KindNeedsPerson {
			t.Fatalf("summary %q, err %v", summary, err)
		}
	}
	if sent := r.fake.Calls(wechatpay.APIOrders); sent != 0 || !strings.Contains(store.reasonOf(), "above WeChat's cap") {
		t.Fatalf("a commission of 8 on an order of 25 (WeChat's cap at 30%%: 7) was sent %d times (one new out_order_no a run), held as %q; want it held before sending, above the cap",
			sent, store.reasonOf())
	}
}

// reasonStore is a batchStore that keeps the reasons items were held or
// paid with.
type reasonStore struct {
	*batchStore
	rmu     sync.Mutex
	reasons map[string]string
}

func (s *reasonStore) SetItemState(ctx context.Context, runID int64, orderNo, from, to, reason string) error {
	s.rmu.Lock()
	s.reasons[orderNo] = reason
	s.rmu.Unlock()
	return s.batchStore.SetItemState(ctx, runID, orderNo, from, to, reason)
}

func (s *reasonStore) SetItemPaid(ctx context.Context, runID int64, orderNo, key, ref, reason string) error {
	s.rmu.Lock()
	s.reasons[orderNo] = "paid: " + reason
	s.rmu.Unlock()
	return s.batchStore.SetItemPaid(ctx, runID, orderNo, key, ref, reason)
}

// reasonOf is the reason of the (only) item ORD-00000.
func (s *reasonStore) reasonOf() string {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return s.reasons["ORD-00000"]
}

// TestCheckSubMchID: a seller's sub_mchid WeChat Pay cannot take holds
// its orders at transform (it held each of them at every distribute): at
// most 32 characters (sub_mchid string[1,32]), not a receiver account's 64.
func TestCheckSubMchID(t *testing.T) {
	for id, ok := range map[string]bool{"1900000109": true, "sub_A-1": true, "": false, "19000.1": false,
		strings.Repeat("1", 32): true, strings.Repeat("1", 33): false, strings.Repeat("1", 64): false, "(unusable: 8000 bytes)": false} {
		if err := wechatpay.CheckSubMchID(id); (err == nil) != ok {
			t.Errorf("CheckSubMchID(%q) = %v, want ok %v", id, err, ok)
		}
	}
}

// TestAnUnfreezeWhoseOrderShowsNoReleaseIsNotPaid: an order with no
// commission is settled by a plain unfreeze. WeChat Pay answers it
// FINISHED with no line releasing the seller's share (the published schema
// makes receivers optional), and still holds the whole transaction. The
// item was paid on the order's state alone, while a distribution's was
// held on the same answer (found by a review): the unfreeze's release is
// judged as a distribution's rest is. WeChat Pay holding nothing any more
// says it was released.
func TestAnUnfreezeWhoseOrderShowsNoReleaseIsNotPaid(t *testing.T) {
	for _, tc := range []struct {
		name  string
		holds bool // WeChat Pay still holds the transaction after the unfreeze
		paid  bool
	}{{"WeChat Pay still holds it", true, false}, {"WeChat Pay holds nothing", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			var amount int64
			edit := editJSON(func(m map[string]any) {
				if _, ok := m["out_order_no"]; ok {
					delete(m, "receivers") // the order: FINISHED, no line
				}
				if _, ok := m["unsplit_amount"]; ok && tc.holds {
					m["unsplit_amount"] = amount
				}
			})
			_, store, stage, _ := reviewRig(t, wechatpaytest.Options{Polls: -1}, edit, 1)
			it := store.items["ORD-00000"]
			it.Commission, it.SellerShare = 0, it.Amount
			amount = it.Amount
			run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}
			for i := range 2 { // the run that sends it, then a re-run that finds it succeeded
				summary, err := stage(context.Background(), run)
				paid := store.count(pipeline.ItemPaid) == 1
				if paid != tc.paid {
					t.Fatalf("run %d: paid %v (reason %q; summary %q, err %v), want %v", i+1, paid, store.reasonOf(), summary, err, tc.paid)
				}
				if !tc.paid && (pipeline.KindOf(err) != pipeline.KindNeedsPerson || !strings.Contains(store.reasonOf(), "WeChat Pay still holds")) {
					t.Fatalf("run %d: err %v, reason %q: want it held for a person, naming what WeChat Pay still holds", i+1, err, store.reasonOf())
				}
				if tc.paid {
					break
				}
			}
		})
	}
}

// TestAReceiverWhoseReviewFailedIsForAPerson: the platform's receiver at
// a sub-merchant is neither INIT (under review) nor EFFECTIVE: WeChat
// Pay's review did not approve it, and it never becomes EFFECTIVE by
// itself. Its transactions waited, "run the date again once WeChat Pay is
// ready", with nothing saying a person must add it again. They are held
// for a person naming what to do; the run adds nothing itself.
func TestAReceiverWhoseReviewFailedIsForAPerson(t *testing.T) {
	r, store, stage, _ := reviewRig(t, wechatpaytest.Options{Polls: -1}, func(b []byte) []byte { return b }, 1)
	r.fake.SetReceiver(subMchID, wechatpay.TypeMerchantID, "1900009999", "FAILED")
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}
	summary, err := stage(context.Background(), run)
	if sent := r.fake.Calls(wechatpay.APIOrders) + r.fake.Calls(wechatpay.APIAddReceiver); sent != 0 || store.count(pipeline.ItemPaid) != 0 {
		t.Fatalf("%d requests sent, %d paid (summary %q, err %v): want nothing sent", sent, store.count(pipeline.ItemPaid), summary, err)
	}
	if pipeline.KindOf(err) != pipeline.KindNeedsPerson || !strings.Contains(store.reasonOf(), "review did not approve it") ||
		!strings.Contains(store.reasonOf(), "settle receivers add "+subMchID) || strings.Contains(err.Error(), "once WeChat Pay is ready") {
		t.Fatalf("err %v, reason %q: want it held for a person, naming settle receivers add", err, store.reasonOf())
	}
}

// TestAReceiverAnswerWithoutAStateCannotBeUsed: a receiver's answer that
// names no state is an answer that cannot be used, that sub-merchant's
// transactions held with it, not a review that failed (ReviewFailed of
// "" held them for a person as "not approved", and settle receivers add
// would have added the receiver again).
func TestAReceiverAnswerWithoutAStateCannotBeUsed(t *testing.T) {
	r, store, stage, _ := reviewRig(t, wechatpaytest.Options{Polls: -1}, func(b []byte) []byte { return b }, 1)
	r.fake.SetReceiver(subMchID, wechatpay.TypeMerchantID, "1900009999", "")
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}
	summary, err := stage(context.Background(), run)
	if sent := r.fake.Calls(wechatpay.APIOrders) + r.fake.Calls(wechatpay.APIAddReceiver); sent != 0 || store.count(pipeline.ItemPaid) != 0 {
		t.Fatalf("%d requests sent, %d paid (summary %q, err %v): want nothing sent", sent, store.count(pipeline.ItemPaid), summary, err)
	}
	if err == nil || strings.Contains(store.reasonOf(), "review did not approve it") || !strings.Contains(store.reasonOf()+err.Error(), "no state") {
		t.Fatalf("err %v, reason %q: want the answer taken as unusable (no state), not a failed review", err, store.reasonOf())
	}
}
