package paysim

import (
	"context"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/wechatpay"
)

// TestARefundedWeChatOrderIsCappedOnItsAmount: an order of 1.50 CNY with
// 1.08 refunded is seeded as a transaction of 1.50 holding 0.42, and
// WeChat's ratio cap (30%) is on the order amount, as the job checks it
// (load/wechatpay's check): a commission of 0.40, within 30% of 1.50 but
// not of the 0.42 net, is distributed and the rest released. Before, the
// simulator seeded a transaction of 0.42 and refused it PARAM_ERROR on
// every run, the order never settled (found by a seed of the WeChat fault
// matrix that its test does not use). The cap still binds: 0.46 of an
// order of 1.50 holding 0.50 is refused.
func TestARefundedWeChatOrderIsCappedOnItsAmount(t *testing.T) {
	s, err := Start(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const sub = "1900000109"
	s.WeChat.SetReceiver(sub, wechatpay.TypeMerchantID, s.Config.WeChatReceiverAccount, wechatpay.ReceiverEffective)
	s.addWeChat(sub, "T1", "CNY", 150, 108)
	s.addWeChat(sub, "T2", "CNY", 150, 100)
	cfg := s.WeChat.ClientConfig(s.Config.WeChatURL)
	c, err := wechatpay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	distribute := func(txn string, amount int64) error {
		_, err := c.Distribute(context.Background(), wechatpay.Distribution{SubMchID: sub, TransactionID: txn, OutOrderNo: "D-" + txn, UnfreezeUnsplit: true,
			Receivers: []wechatpay.Share{{Type: wechatpay.TypeMerchantID, Account: s.Config.WeChatReceiverAccount, Currency: "CNY", Amount: amount, Description: "commission"}}})
		return err
	}
	if got := s.WeChat.Frozen("T1"); got != 42 {
		t.Fatalf("the refunded transaction holds %d, want the order's net 42", got)
	}
	if err := distribute("T1", 40); err != nil {
		t.Fatalf("a commission of 40 of an order of 150 (net 42): %v; want it distributed", err)
	}
	if d, u, f := s.WeChat.Distributed("T1"), s.WeChat.Unfrozen("T1"), s.WeChat.Frozen("T1"); d != 40 || u != 2 || f != 0 {
		t.Fatalf("distributed %d, unfrozen %d, frozen %d; want 40, 2, 0", d, u, f)
	}
	if err := distribute("T2", 46); err == nil || !strings.Contains(err.Error(), "PARAM_ERROR") {
		t.Fatalf("46 of an order of 150: %v; want PARAM_ERROR above the cap", err)
	}
	if d := s.WeChat.Distributed("T2"); d != 0 {
		t.Fatalf("%d distributed above the cap", d)
	}
}
