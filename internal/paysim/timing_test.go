package paysim

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
)

// TestTimingReachesTheFakes: Options.Timing in process sets the fakes'
// delays on its clock and their limits, and Requests counts what they
// were asked.
func TestTimingReachesTheFakes(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 24, 2, 0, 0, 0, wechatpay.Beijing)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := Start(Options{Dir: t.TempDir(), Polls: -1, Timing: Timing{DistributionDelay: 10 * time.Second, InfiniaQPS: 7, Now: clock}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const sub = "1900000001"
	s.WeChat.SetReceiver(sub, wechatpay.TypeMerchantID, s.Config.WeChatReceiverAccount, wechatpay.ReceiverEffective)
	s.WeChat.AddTransaction(sub, "T1", "CNY", 100)
	cfg := s.WeChat.ClientConfig(s.Config.WeChatURL)
	cfg.Now = clock
	c, err := wechatpay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Unfreeze(ctx, wechatpay.Unfreeze{SubMchID: sub, TransactionID: "T1", OutOrderNo: "U-1", Description: "unfreeze"}); err != nil {
		t.Fatal(err)
	}
	if o, err := c.QueryOrder(ctx, sub, "T1", "U-1"); err != nil || o.State != wechatpay.StateProcessing {
		t.Fatalf("at once: %+v %v, want PROCESSING", o, err)
	}
	mu.Lock()
	now = now.Add(10 * time.Second)
	mu.Unlock()
	if o, err := c.QueryOrder(ctx, sub, "T1", "U-1"); err != nil || o.State != wechatpay.StateFinished {
		t.Fatalf("after 10 s: %+v %v, want FINISHED", o, err)
	}
	r := s.Requests()
	if r["wechat"].Total != 3 || r["wechat"].ByEndpoint[wechatpay.APIQueryOrder] != 2 || r["wechat"].LimitQPS != 300 ||
		r["wechat"].ProcessingSeconds["distribution"] != 10 || r["infinia"].LimitQPS != 7 || r["wechat"].TooMany != 0 {
		t.Fatalf("requests %+v", r)
	}
}
