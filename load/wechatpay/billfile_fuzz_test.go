package wechatpay_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
)

// FuzzParseBill checks the reading of a bill, a file from the network that
// nobody signs: a bill that does not parse is a BillError; one that does
// has lines of a known type and currency, and FormatBill writes them as a
// bill that reads back the same (to the second WeChat Pay's bills write).
func FuzzParseBill(f *testing.F) {
	f.Add(reorderedBill)
	f.Add(strings.Replace(reorderedBill, "`30.00", "`-30.00", 1))
	f.Add(strings.Replace(reorderedBill, "`30.00", "`+30.00", 1))
	f.Add(strings.Replace(reorderedBill, "`30.00", "`30.001", 1))
	f.Add(strings.Replace(reorderedBill, "`2,`100.00", "`+2,`100.00", 1))
	f.Add(strings.Replace(reorderedBill, "2025-09-03 10:00:00", "2025-09-03T10:00:00.5+08:00", 1))
	f.Fuzz(func(t *testing.T, bill string) {
		lines, err := wechatpay.DefaultBillLayout.Parse([]byte(bill))
		if err != nil {
			var be *wechatpay.BillError
			if !errors.As(err, &be) {
				t.Fatalf("Parse: %v is not a BillError", err)
			}
			return
		}
		for i, l := range lines {
			if !l.Currency.Valid() || (l.Type != wechatpay.BillDistribution && l.Type != wechatpay.BillUnfreeze) {
				t.Fatalf("line %d: %+v", i+1, l)
			}
		}
		data, err := wechatpay.FormatBill(lines)
		if err != nil {
			t.Fatalf("FormatBill of what Parse read: %v", err)
		}
		again, err := wechatpay.DefaultBillLayout.Parse(data)
		if err != nil || len(again) != len(lines) {
			t.Fatalf("the bill written back does not read: %d lines, %v\n%s", len(again), err, data)
		}
		for i := range lines {
			a, b := lines[i], again[i]
			if !a.Time.Truncate(1e9).Equal(b.Time) {
				t.Fatalf("line %d: time %v read back as %v", i+1, a.Time, b.Time)
			}
			a.Time, b.Time = time.Time{}, time.Time{}
			if a != b {
				t.Fatalf("line %d: %+v read back as %+v", i+1, lines[i], again[i])
			}
		}
	})
}
