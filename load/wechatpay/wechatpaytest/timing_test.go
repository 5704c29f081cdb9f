package wechatpaytest_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
)

// TestOrderDelay: with the timing model a distribution and an unfreeze
// stay PROCESSING until OrderDelay has passed on the fake's clock, however
// often they are queried; then FINISHED. The fake counts every call.
func TestOrderDelay(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	now := time.Date(2025, 9, 3, 10, 0, 0, 0, wechatpay.Beijing)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	fake, _, c := start(t, wechatpaytest.Options{Polls: -1, Now: clock, OrderDelay: 10 * time.Second}, "")
	fake.SetReceiver(sub, wechatpay.TypeMerchantID, "1900009999", wechatpay.ReceiverEffective)
	fake.AddTransaction(sub, "T1", "CNY", 100)
	fake.AddTransaction(sub, "T2", "CNY", 50)
	o, err := c.Distribute(ctx, wechatpay.Distribution{SubMchID: sub, TransactionID: "T1", OutOrderNo: "D-1", UnfreezeUnsplit: true,
		Receivers: []wechatpay.Share{{Type: wechatpay.TypeMerchantID, Account: "1900009999", Currency: "CNY", Amount: 30, Description: "commission"}}})
	if err != nil || o.State != wechatpay.StateProcessing {
		t.Fatalf("distribution accepted: %+v %v, want PROCESSING", o, err)
	}
	u, err := c.Unfreeze(ctx, wechatpay.Unfreeze{SubMchID: sub, TransactionID: "T2", OutOrderNo: "U-1", Description: "unfreeze"})
	if err != nil || u.State != wechatpay.StateProcessing {
		t.Fatalf("unfreeze accepted: %+v %v, want PROCESSING", u, err)
	}
	for i := 0; i < 3; i++ {
		if o, err := c.QueryOrder(ctx, sub, "T1", "D-1"); err != nil || o.State != wechatpay.StateProcessing {
			t.Fatalf("query %d at once: %+v %v, want PROCESSING", i+1, o, err)
		}
	}
	advance(9 * time.Second)
	if o, err := c.QueryOrder(ctx, sub, "T1", "D-1"); err != nil || o.State != wechatpay.StateProcessing {
		t.Fatalf("after 9 s: %+v %v, want PROCESSING", o, err)
	}
	advance(time.Second)
	for _, q := range [][2]string{{"T1", "D-1"}, {"T2", "U-1"}} {
		if o, err := c.QueryOrder(ctx, sub, q[0], q[1]); err != nil || o.State != wechatpay.StateFinished {
			t.Fatalf("%s after 10 s: %+v %v, want FINISHED", q[1], o, err)
		}
	}
	calls := fake.CallCounts()
	if calls[wechatpay.APIOrders] != 1 || calls[wechatpay.APIUnfreeze] != 1 || calls[wechatpay.APIQueryOrder] != 6 {
		t.Fatalf("calls %v, want 1 orders, 1 unfreeze, 6 queries", calls)
	}
}
