package wechatpay_test

import (
	"testing"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
)

// TestOutOrderNoIsStableAndShaped: the out_order_no is a function of the
// date, the order and the attempt, the same as every earlier version made
// (a re-run after an upgrade asks about what was sent), and a valid
// out_order_no whatever the order number.
func TestOutOrderNoIsStableAndShaped(t *testing.T) {
	d := pipeline.Date{Year: 2026, Month: 11, Day: 23}
	for _, c := range []struct {
		order   string
		attempt int
		want    string
	}{
		{"ORD-1", 1, "WX20261123BAB4FC878DD9-1"},
		{"weird order/no", 12, "WX202611230DC7992D0B81-12"},
	} {
		if got := wechatpay.OutOrderNo(d, c.order, c.attempt); got != c.want || !wechatpay.ValidOutOrderNo(got) {
			t.Errorf("OutOrderNo(%s, %q, %d) = %q, want %q", d, c.order, c.attempt, got, c.want)
		}
	}
	if a := wechatpay.OutOrderNo(d, "ORD-1", 1); a == wechatpay.OutOrderNo(d, "ORD-1", 2) || a == wechatpay.OutOrderNo(d, "ORD-2", 1) ||
		a == wechatpay.OutOrderNo(d.AddDays(1), "ORD-1", 1) {
		t.Fatal("out_order_no not a function of date, order and attempt")
	}
	if s := wechatpay.Subject(d, "ORD-1"); s != "WX/20261123/ORD-1" {
		t.Fatalf("subject %q: the ledger's reconcile queries join effects to items by WX/<YYYYMMDD>/<order_no>", s)
	}
}
