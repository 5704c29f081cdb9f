package wechatpaytest

import (
	"fmt"
	"testing"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
)

// BenchmarkBillOfOneSubMerchant makes one sub-merchant's bill on a day of
// 400,000 distributions at 2,000 sub-merchants (a million-order day's
// WeChat Pay share): what reconcile asks of each sub-merchant, under the
// server's lock. It must cost what the bill holds (200 lines), not the
// day: reconcile asks for 2,000 of them.
func BenchmarkBillOfOneSubMerchant(b *testing.B) {
	k, err := GenerateKeys()
	if err != nil {
		b.Fatal(err)
	}
	s := New(Options{Keys: k, Polls: -1})
	const subs, orders = 2000, 400000
	for i := range orders {
		sub := fmt.Sprintf("19%08d", i%subs)
		t := &txn{subMchID: sub, currency: "CNY"}
		o := s.newOrder(t, fmt.Sprintf("T%d", i), fmt.Sprintf("D-%d", i), "")
		o.lines = []line{{typ: wechatpay.TypeMerchantID, account: "1900009999", amount: 30, result: wechatpay.ResultSuccess, detailID: fmt.Sprint(i)}}
	}
	day := pipeline.DateOf(s.o.Now().In(wechatpay.Beijing))
	for b.Loop() { // the day is made once, not again for each b.N
		if n := len(s.bill("1900000007", day)); n != orders/subs {
			b.Fatalf("%d lines, want %d", n, orders/subs)
		}
	}
}
