package wechatpay_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
)

// A bill in the published column names, in another order, with a column we
// do not know and without a currency column (the bill is in yuan).
const reorderedBill = "description,status,business_type,exchange_rate,amount,receiver_account,receiver_type,detail_id,out_order_no,order_id,transaction_id,sponsor,initiator,create_time,remark\n" +
	"`commission,`SUCCESS,`DISTRIBUTION,`1,`30.00,`1900000100,`MERCHANT_ID,`D1,`WX1,`O1,`T1,`1900000109,`1900000100,`2025-09-03 10:00:00,`x\n" +
	"`rest,`SUCCESS,`UNFREEZE,`1,`70.00,`1900000109,`MERCHANT_ID,`D2,`WX2,`O2,`T1,`1900000109,`1900000100,`2025-09-03 10:00:01,`y\n" +
	"total_count,total_amount\n" +
	"`2,`100.00\n"

func TestParseBillFindsThePublishedColumnsByName(t *testing.T) {
	lines, err := wechatpay.DefaultBillLayout.Parse([]byte(reorderedBill))
	if err != nil || len(lines) != 2 {
		t.Fatalf("%+v, %v", lines, err)
	}
	l := lines[0]
	if l.Type != wechatpay.BillDistribution || l.Amount != 30_00 || l.Currency != "CNY" || l.OutOrderNo != "WX1" || l.Sponsor != "1900000109" ||
		l.Initiator != "1900000100" || l.ExchangeRate != "1" || l.Status != "SUCCESS" || !l.Time.Equal(time.Date(2025, 9, 3, 10, 0, 0, 0, wechatpay.Beijing)) {
		t.Fatalf("line = %+v", l)
	}
	if lines[1].Type != wechatpay.BillUnfreeze || lines[1].Amount != 70_00 {
		t.Fatalf("line 2 = %+v", lines[1])
	}
}

// The bill is not signed: its own summary is its check.
func TestParseBillChecksItsSummary(t *testing.T) {
	for name, tc := range map[string]struct{ bill, want string }{
		"count":       {strings.Replace(reorderedBill, "`2,`100.00", "`3,`100.00", 1), "summary count"},
		"total":       {strings.Replace(reorderedBill, "`2,`100.00", "`2,`100.01", 1), "summary total"},
		"cut short":   {reorderedBill[:strings.Index(reorderedBill, "total_count")], "no summary"},
		"a row lost":  {strings.Replace(reorderedBill, "`rest,`SUCCESS,`UNFREEZE,`1,`70.00,`1900000109,`MERCHANT_ID,`D2,`WX2,`O2,`T1,`1900000109,`1900000100,`2025-09-03 10:00:01,`y\n", "", 1), "summary count"},
		"no column":   {strings.Replace(reorderedBill, "out_order_no", "out_trade_no", 1), `no column "out_order_no"`},
		"a type":      {strings.Replace(reorderedBill, "`UNFREEZE", "`RETURN", 1), "business_type"},
		"after total": {reorderedBill + "`1,`2\n", "data after the summary"},
	} {
		_, err := wechatpay.DefaultBillLayout.Parse([]byte(tc.bill))
		var be *wechatpay.BillError
		if !errors.As(err, &be) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a BillError saying %q", name, err, tc.want)
		}
	}
}

// What FormatBill writes (the fake's bills) BillLayout.Parse reads back.
func TestFormatBillRoundTrip(t *testing.T) {
	in, err := wechatpay.DefaultBillLayout.Parse([]byte(reorderedBill))
	if err != nil {
		t.Fatal(err)
	}
	data, err := wechatpay.FormatBill(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := wechatpay.DefaultBillLayout.Parse(data)
	if err != nil || len(out) != len(in) || out[0] != in[0] || out[1] != in[1] {
		t.Fatalf("%+v, %v\n%s", out, err, data)
	}
	if !strings.HasPrefix(string(data), "create_time,initiator,sponsor,") || !strings.Contains(strings.SplitN(string(data), "\n", 2)[0], "exchange_rate,business_type,status,description") {
		t.Fatalf("header %q is not the published one", strings.SplitN(string(data), "\n", 2)[0])
	}
}

// TestABareQuoteInABillsFirstFieldIsABillError: a bill whose row (or
// summary) starts with a bare quote is a malformed file from the network:
// BillLayout.Parse returns a BillError; it panicked (encoding/csv leaves no field
// position for a record whose first field failed), and the process with
// it (found by a review).
func TestABareQuoteInABillsFirstFieldIsABillError(t *testing.T) {
	for name, bill := range map[string]string{
		"data row": strings.Replace(reorderedBill, "`commission,", "`com\"mission,", 1),
		"summary":  strings.Replace(reorderedBill, "`2,`100.00", "`2\",`100.00", 1),
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("Parse panicked on a malformed bill: %v", p)
				}
			}()
			_, err := wechatpay.DefaultBillLayout.Parse([]byte(bill))
			var be *wechatpay.BillError
			if !errors.As(err, &be) {
				t.Fatalf("%v, want a BillError", err)
			}
		})
	}
}

// TestABillAddsNoUnlikeCurrencies: BillLayout.Parse read each amount in the
// exponent of the row's currency column and added the rows' minor units
// whatever their currency, then compared them with the summary: 100 JPY
// (100 minor units) and 1.00 USD (100) "added up" to a 2.00 summary (found
// by a review). The total check now adds the amount column as the decimal
// numbers it holds (101.00 here), the file's own check.
func TestABillAddsNoUnlikeCurrencies(t *testing.T) {
	mixed := "create_time,transaction_id,out_order_no,receiver_type,receiver_account,amount,currency,business_type\n" +
		"`2025-09-03 10:00:00,`T1,`WX1,`MERCHANT_ID,`1900000100,`100,`JPY,`DISTRIBUTION\n" +
		"`2025-09-03 10:00:00,`T2,`WX2,`MERCHANT_ID,`1900000100,`1.00,`USD,`DISTRIBUTION\n" +
		"total_count,total_amount\n" +
		"`2,`2.00\n"
	lines, err := wechatpay.DefaultBillLayout.Parse([]byte(mixed))
	if err == nil {
		t.Fatalf("bill of 100 JPY and 1.00 USD accepted against a summary total of 2.00 yuan: %+v", lines)
	}
}

// TestABillInOtherHeadersIsReadWithALayoutFile: the bill's column names,
// business types and summary row are partly assumed; a bill with other
// headers (Chinese ones) made every bill of every sub-merchant unusable
// until a release, as no configuration took a layout (found by a review).
// A layout file names them; a field it leaves out keeps the default, and
// an unknown key or an empty required name is refused.
func TestABillInOtherHeadersIsReadWithALayoutFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	l, err := wechatpay.LoadBillLayout(write("zh.json", `{"Time": "分账发起时间", "TransactionID": "微信订单号", "OutOrderNo": "商户分账单号",
		"ReceiverType": "分账接收方类型", "Account": "分账接收方", "Amount": "金额", "Currency": "币种",
		"BusinessType": "业务类型", "Distribution": "分账", "Unfreeze": "解冻给分账方", "Summary": "总条数"}`))
	if err != nil {
		t.Fatal(err)
	}
	bill := "分账发起时间,微信订单号,商户分账单号,分账接收方类型,分账接收方,金额,币种,业务类型\n" +
		"`2025-09-03 10:00:00,`T1,`WX1,`MERCHANT_ID,`1900000100,`30.00,`CNY,`分账\n" +
		"总条数,总金额\n`1,`30.00\n"
	if _, err := wechatpay.DefaultBillLayout.Parse([]byte(bill)); err == nil {
		t.Fatal("the default layout read the Chinese headers")
	}
	lines, err := l.Parse([]byte(bill))
	if err != nil || len(lines) != 1 || lines[0].Type != wechatpay.BillDistribution || lines[0].Amount != 30_00 || lines[0].OutOrderNo != "WX1" {
		t.Fatalf("%+v, %v", lines, err)
	}
	for name, body := range map[string]string{"unknown.json": `{"Amonut": "x"}`, "empty.json": `{"Amount": " "}`} {
		if _, err := wechatpay.LoadBillLayout(write(name, body)); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

// TestFormatBillTotalsAmountsAsWritten: the fake's bills (FormatBill) sum
// the amount column as the decimals it holds, as BillLayout.Parse checks them. A
// bill with a JPY line (0 decimals) or a KWD one (3) had its total written
// as the lines' minor units read as yuan cents (1 JPY + 1.000 KWD written
// "10.01"), so the simulator's bill of any sub-merchant with such an order
// did not parse and the run reported it unreadable.
func TestFormatBillTotalsAmountsAsWritten(t *testing.T) {
	at := time.Date(2025, 9, 3, 10, 0, 0, 0, wechatpay.Beijing)
	for name, lines := range map[string][]wechatpay.BillLine{
		"JPY": {{Time: at, TransactionID: "T1", OutOrderNo: "WX1", Type: wechatpay.BillDistribution, ReceiverType: "MERCHANT_ID", Account: "1900000100", Currency: "JPY", Amount: 150}},
		"KWD and CNY": {
			{Time: at, TransactionID: "T1", OutOrderNo: "WX1", Type: wechatpay.BillDistribution, ReceiverType: "MERCHANT_ID", Account: "1900000100", Currency: "KWD", Amount: 1500},
			{Time: at, TransactionID: "T2", OutOrderNo: "WX2", Type: wechatpay.BillUnfreeze, ReceiverType: "MERCHANT_ID", Account: "1900000109", Currency: "CNY", Amount: 1234},
		},
	} {
		data, err := wechatpay.FormatBill(lines)
		if err != nil {
			t.Fatal(err)
		}
		out, err := wechatpay.DefaultBillLayout.Parse(data)
		if err != nil || len(out) != len(lines) {
			t.Errorf("%s: %v\n%s", name, err, data)
			continue
		}
		for i := range out {
			if out[i].Amount != lines[i].Amount || out[i].Currency != lines[i].Currency {
				t.Errorf("%s: line %d reads %d %s, wrote %d %s", name, i, out[i].Amount, out[i].Currency, lines[i].Amount, lines[i].Currency)
			}
		}
	}
}

// WeChat Pay's published bill header ("API Download Address for Bill",
// pay.weixin.qq.com/wiki/doc/api/wxpay/ch/profitsharing/chapter3_9.shtml
// and api_external/ch/apis/chapter4_1_9.shtml, which spells detail_id
// "detaill_id") has no receiver type column: such a bill is read, its lines
// without a receiver type. Requiring receiver_type refused every real bill.
func TestABillInThePublishedHeaderIsRead(t *testing.T) {
	for _, detail := range []string{"detail_id", "detaill_id"} {
		bill := "create_time,initiator,sponsor,sub_mchid,transaction_id,order_id,out_order_no," + detail + ",receiver_account,amount,currency," +
			"settlement_amount,settlement_currency,exchange_rate,business_type,status,description\n" +
			"`2025-09-03 10:00:00,`1900000100,`1900000109,`1900000109,`T1,`O1,`WX1,`D1,`1900009999,`30.00,`CNY,`30.00,`CNY,`1,`DISTRIBUTION,`SUCCESS,`commission\n" +
			"`2025-09-03 10:00:01,`1900000100,`1900000109,`1900000109,`T1,`O1,`WX1,`D2,`1900000109,`70.00,`CNY,`70.00,`CNY,`1,`UNFREEZE,`SUCCESS,`rest\n" +
			"total_count,total_amount\n" +
			"`2,`100.00\n"
		lines, err := wechatpay.DefaultBillLayout.Parse([]byte(bill))
		if err != nil || len(lines) != 2 {
			t.Fatalf("%s: %+v, %v", detail, lines, err)
		}
		if l := lines[0]; l.Type != wechatpay.BillDistribution || l.Account != "1900009999" || l.Amount != 30_00 || l.ReceiverType != "" || l.OutOrderNo != "WX1" {
			t.Fatalf("%s: line = %+v", detail, l)
		}
		if l := lines[1]; l.Type != wechatpay.BillUnfreeze || l.Account != "1900000109" || l.Amount != 70_00 {
			t.Fatalf("%s: line 2 = %+v", detail, l)
		}
	}
}

// A layout file may leave the receiver type out, as the published bill does.
func TestABillLayoutMayNameNoReceiverType(t *testing.T) {
	path := filepath.Join(t.TempDir(), "layout.json")
	if err := os.WriteFile(path, []byte(`{"ReceiverType": ""}`), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := wechatpay.LoadBillLayout(path)
	if err != nil || l.ReceiverType != "" {
		t.Fatalf("%+v, %v", l, err)
	}
	if _, err := l.Parse([]byte(reorderedBill)); err != nil {
		t.Fatal(err)
	}
}
