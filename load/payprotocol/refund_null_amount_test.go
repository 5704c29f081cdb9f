package payprotocol_test

import (
	"context"
	"testing"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
)

// TestARefundWithoutAnAmountIsNotReadAsZero: a refund awaiting approval
// whose refundAmount is null (the schema allows it: Refund.Amount says
// "nil when null and not yet successful") says nothing of its amount. It
// was read as 0, so mismatches.csv showed Pay Protocol's side of the
// refund as 0.00 - an amount Pay Protocol never gave.
func TestARefundWithoutAnAmountIsNotReadAsZero(t *testing.T) {
	g := &goldenServer{answers: map[string][]byte{
		"payment/detail": testdata(t, "payment_detail_fiat_paid.json"),
		"refund/detail": []byte(`{"code":200,"msg":"success","data":{"refundId":83,"chainId":1,"currencyId":1,"outTradeNo":"WC-4242",
			"outPaymentNo":"202401181646089688773","refundStatus":1,"refundAmount":null,"refundFee":null}}`),
	}}
	c := goldenClient(t, g, map[string]int{"1:USDT": 6})
	r, err := c.RefundDetail(context.Background(), "WC-4242", "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Amount != nil {
		t.Errorf("refundAmount null read as %v, want nil", r.Amount)
	}
	o, err := payprotocol.Adapter{Client: c}.Order(context.Background(), "WC-4242")
	if err != nil || o.Refund == nil {
		t.Fatalf("%+v %v", o, err)
	}
	if o.Refund.AmountProblem == "" {
		t.Errorf("refund %+v: want its amount reported unknown", *o.Refund)
	}
	it := pipeline.RefundedItem{OrderNo: "O", ProviderTxnID: "WC-4242", Currency: "USD", Gross: 31350, Refunded: 1000, State: pipeline.ItemHeld}
	ms := payprotocol.Match(it, o)
	if len(ms) != 1 || ms[0].Theirs != "" {
		t.Errorf("%+v: want one row with Pay Protocol's side empty", ms)
	}
}
