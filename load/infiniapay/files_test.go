package infiniapay_test

import (
	"strings"
	"testing"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
	"github.com/settlekit/settle/pipeline"
)

func TestParseErrorFile(t *testing.T) {
	rows, err := infiniapay.ParseErrorFile(strings.NewReader("\uFEFFline,order_no,reason\n2,O1,\"amount, not exact\"\n0,,duplicate requestNo\n"))
	if err != nil || len(rows) != 2 || rows[0] != (infiniapay.ErrorRow{Line: 2, OrderNo: "O1", Reason: "amount, not exact"}) || rows[1].Line != 0 {
		t.Fatalf("rows %+v, %v", rows, err)
	}
	if rows, err := infiniapay.ParseErrorFile(strings.NewReader("line,order_no,reason\n")); err != nil || len(rows) != 0 {
		t.Fatalf("header only: %+v, %v", rows, err)
	}
	for name, in := range map[string]string{
		"empty":        "",
		"other header": "row,order,why\n1,O1,x\n",
		"not a number": "line,order_no,reason\nx,O1,bad\n",
		"negative":     "line,order_no,reason\n-1,O1,bad\n",
		"two fields":   "line,order_no,reason\n1,O1\n",
		"bad quoting":  "line,order_no,reason\n1,\"O1,bad\n",
	} {
		if _, err := infiniapay.ParseErrorFile(strings.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	_, err = infiniapay.ParseErrorFile(strings.NewReader("line,order_no,reason\n1,O1,x\nbad,O2,y\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("error without its line: %v", err)
	}
}

func FuzzParseErrorFile(f *testing.F) {
	f.Add("line,order_no,reason\n2,O1,bad amount\n")
	f.Add("\uFEFFline,order_no,reason\n0,,\"a, b\"\n")
	f.Add("line,order_no,reason\n1,\"x")
	f.Fuzz(func(t *testing.T, in string) {
		rows, err := infiniapay.ParseErrorFile(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, r := range rows {
			if r.Line < 0 {
				t.Fatalf("negative line %d accepted", r.Line)
			}
		}
	})
}

func TestTradeFileName(t *testing.T) {
	r := newRig(t, infiniapaytest.Options{}, nil, func(c *infiniapay.Config) { c.PlatformID = "PLAT-1" })
	d := pipeline.Date{Year: 2026, Month: 11, Day: 23}
	if got, err := r.client.TradeFileName("S0001", "JPY", d, "TDU-20261123-0001"); err != nil || got != "TD_PLAT-1_S0001_JPY_20261123_TDU-20261123-0001.csv" {
		t.Fatalf("%q, %v", got, err)
	}
	for _, bad := range [][2]string{{"S_1", "TDU-1"}, {"S1", "TDU/1"}, {"", "TDU-1"}, {"S1", ""}} {
		if got, err := r.client.TradeFileName(bad[0], "JPY", d, bad[1]); err == nil {
			t.Errorf("%v: %q", bad, got)
		}
	}
	if _, err := r.client.TradeFileName("S1", "XXX", d, "TDU-1"); err == nil {
		t.Error("unknown currency accepted")
	}
}
