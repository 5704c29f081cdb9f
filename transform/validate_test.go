package transform

import (
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
)

func sp(s string) *string { return &s }

// The channels of the tests, as the provider packages declare them (cmd
// passes theirs): Infinia Pay's orders may lack a transaction id; WeChat
// Pay's and Pay Protocol's settle per transaction; Pay Protocol's are paid
// through the seller's Infinia account.
const (
	chInfinia     pipeline.Channel = "infiniapay"
	chWeChat      pipeline.Channel = "wechatpay"
	chPayProtocol pipeline.Channel = "payprotocol"
)

var testChannels = pipeline.Channels{
	{Channel: chInfinia, Account: "infiniapay", AccountName: "Infinia Pay seller id"},
	{Channel: chWeChat, Account: "wechatpay", AccountName: "WeChat Pay sub_mchid", TxnRequired: true},
	{Channel: chPayProtocol, Account: "infiniapay", AccountName: "Infinia Pay seller id", TxnRequired: true, Unverified: true},
}

func tp(t time.Time) *time.Time { return &t }

// shanghai is a fixed +08:00 zone standing in for Asia/Shanghai, so that the
// test does not depend on the machine's tz database.
var shanghai = time.FixedZone("CST", 8*3600)

func validRow() pipeline.SourceRow {
	return pipeline.SourceRow{
		Seq:           7,
		OrderNo:       sp("O1001"),
		SellerID:      sp("s1"),
		Provider:      sp("wechatpay"),
		ProviderTxnID: sp("4200001234"),
		Currency:      sp("CNY"),
		AmountMinor:   sp("10000"),
		RefundedMinor: sp("2500"),
		Category:      sp("books"),
		PaidAt:        tp(time.Date(2024, 2, 20, 10, 0, 0, 0, shanghai)),
		ConfirmedAt:   tp(time.Date(2024, 3, 1, 9, 30, 0, 0, shanghai)),
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	w := pipeline.WindowOf(pipeline.Date{Year: 2024, Month: 3, Day: 1}, shanghai)
	row := validRow()
	o, rej := Validate(row, w, testChannels)
	if rej != nil {
		t.Fatalf("valid row rejected: %s", rej.Reason)
	}
	want := pipeline.Order{OrderNo: "O1001", SellerID: "s1", Channel: chWeChat,
		ProviderTxnID: "4200001234", Currency: "CNY", Amount: 10000, Refunded: 2500, Category: "books",
		PaidAt: *row.PaidAt, ConfirmedAt: *row.ConfirmedAt}
	if o != want {
		t.Errorf("order %+v, want %+v", o, want)
	}

	accepted := []struct {
		name   string
		change func(*pipeline.SourceRow)
		check  func(pipeline.Order) bool
	}{
		{"NULL refunded is 0", func(r *pipeline.SourceRow) { r.RefundedMinor = nil }, func(o pipeline.Order) bool { return o.Refunded == 0 }},
		{"NULL category is empty", func(r *pipeline.SourceRow) { r.Category = nil }, func(o pipeline.Order) bool { return o.Category == "" }},
		{"full refund", func(r *pipeline.SourceRow) { r.RefundedMinor = sp("10000") }, func(o pipeline.Order) bool { return o.Refunded == 10000 }},
		{"infiniapay without txn id", func(r *pipeline.SourceRow) { r.Provider, r.ProviderTxnID = sp("infiniapay"), nil },
			func(o pipeline.Order) bool { return o.Channel == chInfinia && o.ProviderTxnID == "" }},
		{"infiniapay with empty txn id", func(r *pipeline.SourceRow) { r.Provider, r.ProviderTxnID = sp("infiniapay"), sp("") },
			func(o pipeline.Order) bool { return o.ProviderTxnID == "" }},
		{"payprotocol", func(r *pipeline.SourceRow) { r.Provider = sp("payprotocol") },
			func(o pipeline.Order) bool { return o.Channel == chPayProtocol }},
		{"confirmed at window start", func(r *pipeline.SourceRow) {
			r.ConfirmedAt = tp(time.Date(2024, 3, 1, 0, 0, 0, 0, shanghai))
		}, func(o pipeline.Order) bool { return true }},
		{"confirmed in another zone", func(r *pipeline.SourceRow) {
			r.ConfirmedAt = tp(time.Date(2024, 3, 1, 15, 59, 59, 0, time.UTC)) // 23:59:59 +08:00
		}, func(o pipeline.Order) bool { return true }},
		{"paid when confirmed", func(r *pipeline.SourceRow) { r.PaidAt = r.ConfirmedAt }, func(o pipeline.Order) bool { return true }},
		{"max amount", func(r *pipeline.SourceRow) { r.AmountMinor, r.RefundedMinor = sp("1000000000000"), nil },
			func(o pipeline.Order) bool { return o.Amount == MaxAmountMinor }},
		{"identifiers of the most bytes, and not ASCII", func(r *pipeline.SourceRow) {
			r.OrderNo, r.SellerID, r.ProviderTxnID = sp(strings.Repeat("O", 128)), sp(strings.Repeat("商", 42)+"AB"), sp(strings.Repeat("9", 128))
		}, func(o pipeline.Order) bool {
			return len(o.OrderNo) == 128 && len(o.SellerID) == 128 && len(o.ProviderTxnID) == 128
		}},
		{"JPY", func(r *pipeline.SourceRow) { r.Currency = sp("JPY") }, func(o pipeline.Order) bool { return o.Currency == "JPY" }},
	}
	for _, tt := range accepted {
		r := validRow()
		tt.change(&r)
		o, rej := Validate(r, w, testChannels)
		if rej != nil {
			t.Errorf("%s: rejected: %s", tt.name, rej.Reason)
		} else if !tt.check(o) {
			t.Errorf("%s: order %+v", tt.name, o)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	t.Parallel()
	w := pipeline.WindowOf(pipeline.Date{Year: 2024, Month: 3, Day: 1}, shanghai)
	tests := []struct {
		change func(*pipeline.SourceRow)
		reason string
	}{
		{func(r *pipeline.SourceRow) { r.OrderNo = nil }, "order_no is NULL"},
		{func(r *pipeline.SourceRow) { r.OrderNo = sp("") }, "order_no is empty"},
		{func(r *pipeline.SourceRow) { r.OrderNo = sp(" O1001") }, `order_no has leading or trailing space: " O1001"`},
		{func(r *pipeline.SourceRow) { r.SellerID = nil }, "seller_id is NULL"},
		{func(r *pipeline.SourceRow) { r.SellerID = sp("") }, "seller_id is empty"},
		{func(r *pipeline.SourceRow) { r.SellerID = sp("S/1") }, `seller_id "S/1" contains '/'`},
		{func(r *pipeline.SourceRow) { r.Provider = nil }, "provider is NULL"},
		{func(r *pipeline.SourceRow) { r.Provider = sp("") }, "provider is empty"},
		{func(r *pipeline.SourceRow) { r.Provider = sp("alipay") }, `unknown provider "alipay"`},
		{func(r *pipeline.SourceRow) { r.Provider = sp("WeChatPay") }, `unknown provider "WeChatPay"`},
		{func(r *pipeline.SourceRow) { r.Provider = sp("wechatpay ") }, `provider has leading or trailing space: "wechatpay "`},
		{func(r *pipeline.SourceRow) { r.ProviderTxnID = nil }, "provider_txn_id is NULL (required for wechatpay)"},
		{func(r *pipeline.SourceRow) { r.ProviderTxnID = sp("") }, "provider_txn_id is empty (required for wechatpay)"},
		{func(r *pipeline.SourceRow) { r.Provider, r.ProviderTxnID = sp("payprotocol"), nil }, "provider_txn_id is NULL (required for payprotocol)"},
		{func(r *pipeline.SourceRow) { r.ProviderTxnID = sp("42 ") }, `provider_txn_id has leading or trailing space: "42 "`},
		{func(r *pipeline.SourceRow) { r.Currency = nil }, "currency is NULL"},
		{func(r *pipeline.SourceRow) { r.Currency = sp("") }, "currency is empty"},
		{func(r *pipeline.SourceRow) { r.Currency = sp("cny") }, `unknown currency "cny"`},
		{func(r *pipeline.SourceRow) { r.Currency = sp("XXX") }, `unknown currency "XXX"`},
		{func(r *pipeline.SourceRow) { r.Currency = sp("CNY ") }, `currency has leading or trailing space: "CNY "`},
		{func(r *pipeline.SourceRow) { r.AmountMinor = nil }, "amount_minor is NULL"},
		{func(r *pipeline.SourceRow) { r.AmountMinor = sp("") }, "amount_minor is empty"},
		{func(r *pipeline.SourceRow) { r.AmountMinor = sp("100.00") }, `amount_minor is not an integer: "100.00"`},
		{func(r *pipeline.SourceRow) { r.AmountMinor = sp(" 100") }, `amount_minor is not an integer: " 100"`},
		{func(r *pipeline.SourceRow) { r.AmountMinor = sp("1e3") }, `amount_minor is not an integer: "1e3"`},
		{func(r *pipeline.SourceRow) { r.AmountMinor = sp("+100") }, `amount_minor is not written as an integer: "+100"`},
		{func(r *pipeline.SourceRow) { r.AmountMinor = sp("0100") }, `amount_minor is not written as an integer: "0100"`},
		{func(r *pipeline.SourceRow) { r.RefundedMinor = sp("-0") }, `refunded_minor is not written as an integer: "-0"`},
		{func(r *pipeline.SourceRow) { r.AmountMinor = sp("9223372036854775808") }, `amount_minor overflows int64: "9223372036854775808"`},
		{func(r *pipeline.SourceRow) { r.AmountMinor = sp("-9223372036854775809") }, `amount_minor overflows int64: "-9223372036854775809"`},
		{func(r *pipeline.SourceRow) { r.AmountMinor = sp("1000000000001") }, "amount_minor 1000000000001 is more than an order may carry (1000000000000)"},
		{func(r *pipeline.SourceRow) { r.AmountMinor = sp("9223372036854775807") }, "amount_minor 9223372036854775807 is more than an order may carry (1000000000000)"},
		{func(r *pipeline.SourceRow) { r.OrderNo = sp(strings.Repeat("O", 129)) }, "order_no is 129 bytes long, more than an identifier may have (128)"},
		{func(r *pipeline.SourceRow) { r.OrderNo = sp(strings.Repeat("0123456789abcdef", 400)) }, "order_no is 6400 bytes long, more than an identifier may have (128)"},
		{func(r *pipeline.SourceRow) { r.OrderNo = sp("O\x01") }, `order_no contains the control character U+0001: "O\x01"`},
		{func(r *pipeline.SourceRow) { r.OrderNo = sp("O\t1") }, `order_no contains the control character U+0009: "O\t1"`},
		{func(r *pipeline.SourceRow) { r.OrderNo = sp("BAD-\xff\xfe") }, "order_no is not valid UTF-8 (U+FFFD marks what was not): \"BAD-\ufffd\""},
		{func(r *pipeline.SourceRow) { r.OrderNo = sp("BAD-\ufffd") }, "order_no is not valid UTF-8 (U+FFFD marks what was not): \"BAD-\ufffd\""},
		{func(r *pipeline.SourceRow) { r.SellerID = sp("s\n1") }, `seller_id contains the control character U+000A: "s\n1"`},
		{func(r *pipeline.SourceRow) { r.SellerID = sp(strings.Repeat("s", 129)) }, "seller_id is 129 bytes long, more than an identifier may have (128)"},
		{func(r *pipeline.SourceRow) { r.ProviderTxnID = sp("4\u00852") }, `provider_txn_id contains the control character U+0085: "4\u00852"`},
		{func(r *pipeline.SourceRow) { r.ProviderTxnID = sp(strings.Repeat("4", 129)) }, "provider_txn_id is 129 bytes long, more than an identifier may have (128)"},
		{func(r *pipeline.SourceRow) { r.Category = sp("b\xc3ooks") }, "category is not valid UTF-8 (U+FFFD marks what was not): \"b\ufffdooks\""},
		{func(r *pipeline.SourceRow) { r.AmountMinor = sp("0") }, "amount_minor must be positive, got 0"},
		{func(r *pipeline.SourceRow) { r.AmountMinor = sp("-5") }, "amount_minor must be positive, got -5"},
		{func(r *pipeline.SourceRow) { r.RefundedMinor = sp("") }, "refunded_minor is empty"},
		{func(r *pipeline.SourceRow) { r.RefundedMinor = sp("x") }, `refunded_minor is not an integer: "x"`},
		{func(r *pipeline.SourceRow) { r.RefundedMinor = sp("-1") }, "refunded_minor must not be negative, got -1"},
		{func(r *pipeline.SourceRow) { r.RefundedMinor = sp("99999999999999999999") }, `refunded_minor overflows int64: "99999999999999999999"`},
		{func(r *pipeline.SourceRow) { r.RefundedMinor = sp("10001") }, "refunded_minor 10001 exceeds amount_minor 10000"},
		{func(r *pipeline.SourceRow) { r.PaidAt = nil }, "paid_at is NULL"},
		{func(r *pipeline.SourceRow) { r.ConfirmedAt = nil }, "confirmed_at is NULL"},
		{func(r *pipeline.SourceRow) { r.ConfirmedAt = tp(time.Date(2024, 3, 2, 0, 0, 0, 0, shanghai)) },
			"confirmed_at 2024-03-02T00:00:00+08:00 is outside the window [2024-03-01T00:00:00+08:00, 2024-03-02T00:00:00+08:00)"},
		{func(r *pipeline.SourceRow) { r.ConfirmedAt = tp(time.Date(2024, 2, 29, 15, 59, 59, 0, time.UTC)) },
			"confirmed_at 2024-02-29T23:59:59+08:00 is outside the window [2024-03-01T00:00:00+08:00, 2024-03-02T00:00:00+08:00)"},
		{func(r *pipeline.SourceRow) { r.PaidAt = tp(time.Date(2024, 3, 1, 9, 30, 1, 0, shanghai)) },
			"paid_at 2024-03-01T09:30:01+08:00 is after confirmed_at 2024-03-01T09:30:00+08:00"},
	}
	for _, tt := range tests {
		r := validRow()
		tt.change(&r)
		o, rej := Validate(r, w, testChannels)
		if rej == nil {
			t.Errorf("accepted %+v, want reject %q", o, tt.reason)
			continue
		}
		if rej.Reason != tt.reason {
			t.Errorf("reason %q, want %q", rej.Reason, tt.reason)
		}
		if o != (pipeline.Order{}) {
			t.Errorf("%q: order not zero: %+v", tt.reason, o)
		}
		want := pipeline.Reject{Seq: 7, OrderNo: pipeline.RejectText(deref(r.OrderNo)), SellerID: pipeline.RejectText(deref(r.SellerID)),
			Provider: deref(r.Provider), Currency: deref(r.Currency), Amount: deref(r.AmountMinor),
			Refunded: deref(r.RefundedMinor), Reason: tt.reason}
		if *rej != want {
			t.Errorf("reject %+v, want %+v", *rej, want)
		}
	}
}
