package wechatpay

import (
	"encoding/json"
	"math"
	"math/big"
	"slices"
	"strconv"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

// FuzzReadOrder checks the reading of WeChat Pay's answer about a
// distribution or an unfreeze (the request's answer and the query's): what
// is accepted is about the out_order_no and transaction asked, in a known
// state, and each receiver line has a known result and an amount that is
// not negative (minor units WeChat Pay moved, or is moving).
func FuzzReadOrder(f *testing.F) {
	for _, s := range []string{
		`{"sub_mchid":"1900000109","transaction_id":"T1","out_order_no":"K1","order_id":"O1","state":"FINISHED","receivers":[{"type":"MERCHANT_ID","account":"1900000100","amount":30,"result":"SUCCESS","create_time":"2025-09-03T10:00:00+08:00","finish_time":"1970-01-01T08:00:00+08:00"}]}`,
		`{"state":"PROCESSING","receivers":[{"amount":-30,"result":"PENDING"}]}`,
		`{"state":"FINISHED","receivers":[{"amount":1e2,"result":"SUCCESS"}]}`,
		`{"state":"FINISHED","receivers":[{"amount":9223372036854775808,"result":"SUCCESS"}]}`,
		`{"state":"FINISHED","out_order_no":"K2"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var w wireOrder
		if json.Unmarshal(b, &w) != nil {
			return
		}
		o, err := readOrder(w, "K1", "T1")
		if err != nil {
			return
		}
		if o.OutOrderNo != "K1" || o.TransactionID != "T1" || !slices.Contains(orderStates, o.State) {
			t.Fatalf("readOrder(%s) = %+v", b, o)
		}
		for i, r := range o.Receivers {
			if !slices.Contains(results, r.Result) || r.Amount < 0 || r.SettlementAmount < 0 {
				t.Fatalf("readOrder(%s): receiver %d %+v", b, i+1, r)
			}
		}
	})
}

// FuzzOutcome checks that a distribution is taken as ours only when the
// lines other than the seller's rest add up, exactly (math/big), to the
// effect's amount: lines that wrap int64 when added are not the request
// we sent.
func FuzzOutcome(f *testing.F) {
	f.Add(int64(300), int64(300), int64(0), int64(0), true)
	f.Add(int64(300), int64(math.MaxInt64), int64(math.MaxInt64), int64(302), true)
	f.Fuzz(func(t *testing.T, amount, a, b, c int64, finished bool) {
		const sub = "1900000109"
		e := pipeline.Effect{ID: 1, Kind: KindDistribution, Key: "K1", Currency: "CNY", Amount: amount}
		o := Order{SubMchID: sub, TransactionID: "T1", OutOrderNo: "K1", State: StateProcessing}
		if finished {
			o.State = StateFinished
		}
		if a < 0 || b < 0 || c < 0 {
			return // readOrder refuses a negative line (FuzzReadOrder)
		}
		sum := new(big.Int)
		for i, v := range []int64{a, b, c} {
			o.Receivers = append(o.Receivers, ShareResult{Type: TypeMerchantID, Account: "190000000" + strconv.Itoa(i), Amount: v, Result: ResultSuccess})
			sum.Add(sum, big.NewInt(v))
		}
		o.Receivers = append(o.Receivers, ShareResult{Type: TypeMerchantID, Account: sub, Amount: 700, Result: ResultSuccess})
		out, err := outcome(e, sub, o)
		if err == nil && sum.Cmp(big.NewInt(amount)) != 0 {
			t.Fatalf("lines %d, %d, %d (%v) taken for an effect of %d: %+v", a, b, c, sum, amount, out)
		}
	})
}
