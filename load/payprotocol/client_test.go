package payprotocol_test

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
	"github.com/settlekit/settle/pipeline"
)

// TestEveryAPIRoundTrip follows one order through all six APIs against the
// fake: created, paid, verified, refunded in part after two approvals,
// callbacks sent again.
func TestEveryAPIRoundTrip(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, payprotocoltest.Options{}, nil)
	c := r.client

	order := payprotocol.PaymentOrder{ChainID: 1, Description: "order T-1", OutTradeNo: "T-1", IsLegalTender: true,
		QuoteCurrency: "USD", QuoteAmount: 1234, NotifyURL: r.receiver.url, RedirectionURL: "https://shop.example/done"}
	created, err := c.CreatePaymentOrder(ctx, order)
	if err != nil || created.OutPaymentNo == "" || !strings.HasPrefix(created.PaymentURL, "/pay/") || created.UserWalletAddress == "" || created.SaltHash == "" {
		t.Fatalf("CreatePaymentOrder = %+v, %v", created, err)
	}
	// The same order again is the same answer (assumed); other fields are refused, once.
	if again, err := c.CreatePaymentOrder(ctx, order); err != nil || again != created {
		t.Fatalf("repeated CreatePaymentOrder = %+v, %v", again, err)
	}
	changed := order
	changed.QuoteAmount = 999
	_, err = c.CreatePaymentOrder(ctx, changed)
	var pe *payprotocol.Error
	if !errors.As(err, &pe) || pe.Code != payprotocol.CodeBadRequest || pe.Transient() || errors.Is(err, payprotocol.ErrUnknownOutcome) || pe.OutTradeNo != "T-1" {
		t.Fatalf("changed order: %v", err)
	}
	if n := r.fake.Calls(payprotocol.APICreatePaymentOrder); n != 3 {
		t.Fatalf("%d create calls, want 3", n)
	}

	p, err := c.PaymentDetail(ctx, "T-1", "")
	if err != nil || p.Status != payprotocol.PaymentPending || p.OutPaymentNo != created.OutPaymentNo || p.SettlementCurrency != "USDT" ||
		p.ExpectedAmount != "12340000" || p.SettlementAmount != "0" {
		t.Fatalf("PaymentDetail (pending) = %+v, %v", p, err)
	}
	if err := r.fake.SetPaymentStatus("T-1", payprotocol.PaymentPaid); err != nil {
		t.Fatal(err)
	}
	p, err = c.PaymentDetail(ctx, "T-1", created.OutPaymentNo)
	if err != nil || p.Status != payprotocol.PaymentPaid || p.SettlementAmount != "12340000" || p.TxHash == "" || p.ChainID != 1 {
		t.Fatalf("PaymentDetail (paid) = %+v, %v", p, err)
	}
	// Verification as the batch job does it: the quote is the order, the
	// settled amount covers it exactly.
	if q, err := p.Quote(); err != nil || q != (pipeline.Money{Minor: 1234, Currency: "USD"}) {
		t.Fatalf("Quote = %v, %v", q, err)
	}
	if paid, err := payprotocol.ToMinor(p.SettlementAmount, 6, "USD"); err != nil || paid != 1234 {
		t.Fatalf("paid = %d, %v", paid, err)
	}
	if _, err := c.PaymentDetail(ctx, "T-NEVER", ""); !errors.Is(err, payprotocol.ErrNotFound) {
		t.Fatalf("unknown order: %v, want ErrNotFound", err)
	}
	if _, err := c.PaymentDetail(ctx, "T-1", "PP-OTHER"); !errors.Is(err, payprotocol.ErrNotFound) {
		t.Fatalf("other payment: %v, want ErrNotFound", err)
	}

	// A partial refund of 2.00 USD: pending approval, under review, success.
	id, err := c.CreateRefundOrder(ctx, payprotocol.RefundOrder{OutTradeNo: "T-1", OutPaymentNo: created.OutPaymentNo,
		Amount: 200, Currency: "USD", NotifyURL: r.receiver.url, TransferAddress: "TBuyer"})
	if err != nil || id == "" {
		t.Fatalf("CreateRefundOrder = %q, %v", id, err)
	}
	for i, want := range []payprotocol.RefundStatus{payprotocol.RefundPendingApproval, payprotocol.RefundPendingApproval,
		payprotocol.RefundUnderReview, payprotocol.RefundUnderReview, payprotocol.RefundSuccess, payprotocol.RefundSuccess} {
		outTradeNo := "T-1"
		if i%2 == 1 {
			outTradeNo = "" // by refundId alone
		}
		rf, err := c.RefundDetail(ctx, outTradeNo, id)
		if err != nil || rf.Status != want || rf.RefundID != id || rf.OutTradeNo != "T-1" || rf.Amount.String() != "2000000" || rf.Address != "TBuyer" {
			t.Fatalf("RefundDetail #%d = %+v, %v; want %s", i+1, rf, err, want)
		}
	}
	// By order number only: the latest refund.
	if rf, err := c.RefundDetail(ctx, "T-1", ""); err != nil || rf.RefundID != id || rf.TxHash == "" {
		t.Fatalf("RefundDetail by order = %+v, %v", rf, err)
	}
	if _, err := c.RefundDetail(ctx, "T-NEVER", ""); !errors.Is(err, payprotocol.ErrNotFound) {
		t.Fatalf("no refund: %v", err)
	}
	// Too much is refused, definitely.
	if _, err := c.CreateRefundOrder(ctx, payprotocol.RefundOrder{OutTradeNo: "T-1", Amount: 1100, Currency: "USD"}); err == nil || errors.Is(err, payprotocol.ErrUnknownOutcome) {
		t.Fatalf("refund beyond the payment: %v", err)
	}

	// A second refund of the rest, rejected by the approver.
	id2, err := c.CreateRefundOrder(ctx, payprotocol.RefundOrder{OutTradeNo: "T-1"})
	if err != nil || id2 == id {
		t.Fatalf("second refund = %q, %v", id2, err)
	}
	if err := r.fake.RejectRefund(id2); err != nil {
		t.Fatal(err)
	}
	if rf, err := c.RefundDetail(ctx, "", id2); err != nil || rf.Status != payprotocol.RefundRejected || rf.Amount.String() != "10340000" {
		t.Fatalf("rejected refund = %+v, %v", rf, err)
	}

	// Callbacks: the payment (paid) and two refunds; then sent again on request.
	waitCallbacks(t, r.fake)
	if err := c.NotifyPayment(ctx, "T-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.NotifyRefund(ctx, "T-1", id); err != nil {
		t.Fatal(err)
	}
	if err := c.NotifyPayment(ctx, "T-NEVER"); !errors.Is(err, payprotocol.ErrNotFound) {
		t.Fatalf("notify unknown: %v", err)
	}
	waitCallbacks(t, r.fake)
	got := r.receiver.callbacks()
	keys := map[string]bool{}
	for _, cb := range got {
		keys[cb.Key()] = true
	}
	if len(got) != 3 || len(keys) != 3 {
		t.Fatalf("delivered %d callbacks (%v), want 3 distinct: the re-sent ones are duplicates", len(got), keys)
	}
	var paid payprotocol.Callback
	for _, cb := range got {
		if cb.Kind == payprotocol.CallbackPayment {
			paid = cb
		}
	}
	if paid.Payment.OutTradeNo != "T-1" || paid.Payment.Status != payprotocol.PaymentPaid || paid.Payment.SettlementAmount != "12340000" || paid.Payment.SettlementCurrency != "USDT" {
		t.Fatalf("payment callback = %+v", paid.Payment)
	}
	if n := len(r.fake.Deliveries()); n != 5 {
		t.Fatalf("%d deliveries, want 5 (3 events, 2 sent again)", n)
	}
}

// TestLargeAmountsStayExact: 12.5 ETH in wei is beyond int64, and stays
// exact.
func TestLargeAmountsStayExact(t *testing.T) {
	r := newRig(t, payprotocoltest.Options{}, nil)
	if _, err := r.fake.AddPayment("T-ETH", "ETH", 18, "12500000000000000001", payprotocol.PaymentPaid); err != nil {
		t.Fatal(err)
	}
	p, err := r.client.PaymentDetail(context.Background(), "T-ETH", "")
	want, _ := new(big.Int).SetString("12500000000000000001", 10)
	if err != nil || p.ExpectedAmount != want.String() || p.SettlementAmount != want.String() || p.SettlementCurrency != "ETH" {
		t.Fatalf("PaymentDetail = %+v, %v", p, err)
	}
	// One wei more than 12.50: not a whole number of cents, never rounded.
	if _, err := payprotocol.ToMinor(p.ExpectedAmount, 18, "USD"); err == nil {
		t.Fatal("ToMinor rounded")
	}
	// A crypto quote: not Money.
	if _, err := p.Quote(); err == nil {
		t.Fatal("a crypto quote became Money")
	}
}

func TestCryptoQuotedOrder(t *testing.T) {
	r := newRig(t, payprotocoltest.Options{}, nil)
	ctx := context.Background()
	_, err := r.client.CreatePaymentOrder(ctx, payprotocol.PaymentOrder{ChainID: 3, Description: "d", OutTradeNo: "T-C",
		QuoteCurrency: "USDT", QuoteAmount: 12_340_000, QuoteDecimals: 6, NotifyURL: r.receiver.url})
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.client.PaymentDetail(ctx, "T-C", "")
	if err != nil || p.QuoteAmount != "12.34" || p.QuoteCurrency != "USDT" || p.IsLegalTender || p.ExpectedAmount != "12340000" {
		t.Fatalf("PaymentDetail = %+v, %v", p, err)
	}
}

func TestLocalChecksSendNothing(t *testing.T) {
	r := newRig(t, payprotocoltest.Options{}, nil)
	ctx := context.Background()
	c := r.client
	bad := map[string]func() error{
		"detail without order": func() error { _, err := c.PaymentDetail(ctx, "", "P"); return err },
		"refund detail empty":  func() error { _, err := c.RefundDetail(ctx, "", ""); return err },
		"zero quote": func() error {
			_, err := c.CreatePaymentOrder(ctx, payprotocol.PaymentOrder{ChainID: 1, Description: "d", OutTradeNo: "T", IsLegalTender: true, QuoteCurrency: "USD", NotifyURL: "https://x"})
			return err
		},
		"unknown fiat": func() error {
			_, err := c.CreatePaymentOrder(ctx, payprotocol.PaymentOrder{ChainID: 1, Description: "d", OutTradeNo: "T", IsLegalTender: true, QuoteCurrency: "XYZ", QuoteAmount: 1, NotifyURL: "https://x"})
			return err
		},
		"lower case symbol": func() error {
			_, err := c.CreatePaymentOrder(ctx, payprotocol.PaymentOrder{ChainID: 1, Description: "d", OutTradeNo: "T", QuoteCurrency: "usdt", QuoteAmount: 1, NotifyURL: "https://x"})
			return err
		},
		"no notify url": func() error {
			_, err := c.CreatePaymentOrder(ctx, payprotocol.PaymentOrder{ChainID: 1, Description: "d", OutTradeNo: "T", IsLegalTender: true, QuoteCurrency: "USD", QuoteAmount: 1})
			return err
		},
		"negative refund": func() error {
			_, err := c.CreateRefundOrder(ctx, payprotocol.RefundOrder{OutTradeNo: "T", Amount: -1, Currency: "USD"})
			return err
		},
		"refund in unknown currency": func() error {
			_, err := c.CreateRefundOrder(ctx, payprotocol.RefundOrder{OutTradeNo: "T", Amount: 1, Currency: "USDT"})
			return err
		},
	}
	for name, call := range bad {
		var pe *payprotocol.Error
		if err := call(); !errors.As(err, &pe) || pe.Transient() {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, api := range []string{payprotocol.APIPaymentDetail, payprotocol.APIRefundDetail, payprotocol.APICreatePaymentOrder, payprotocol.APICreateRefundOrder} {
		if n := r.fake.Calls(api); n != 0 {
			t.Errorf("%s: %d calls", api, n)
		}
	}
}

func TestNewChecksConfig(t *testing.T) {
	hc := payprotocol.NewHTTPClient(time.Second)
	for name, cfg := range map[string]payprotocol.Config{
		"no URL":                 {APIKey: "k", APISecret: "s", HTTP: hc},
		"ftp URL":                {BaseURL: "ftp://x/api/mer", APIKey: "k", APISecret: "s", HTTP: hc},
		"query in URL":           {BaseURL: "https://x/api/mer?a=b", APIKey: "k", APISecret: "s", HTTP: hc},
		"no key":                 {BaseURL: "https://x/api/mer", APISecret: "s", HTTP: hc},
		"no secret":              {BaseURL: "https://x/api/mer", APIKey: "k", HTTP: hc},
		"no client":              {BaseURL: "https://x/api/mer", APIKey: "k", APISecret: "s"},
		"bad decimals":           {BaseURL: "https://x/api/mer", APIKey: "k", APISecret: "s", HTTP: hc, Decimals: map[string]int{"1:USDT": -1}},
		"decimals without chain": {BaseURL: "https://x/api/mer", APIKey: "k", APISecret: "s", HTTP: hc, Decimals: map[string]int{"USDT": 6}},
		// Pay Protocol's answers are not signed: read over plain http,
		// anyone on the way could say an unpaid order was paid.
		"plain http off this machine": {BaseURL: "http://api.payprotocol.network/api/mer", APIKey: "k", APISecret: "s", HTTP: hc},
	} {
		if _, err := payprotocol.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, local := range []string{"http://127.0.0.1:8700/api/mer", "http://localhost:8700/api/mer", "http://[::1]:8700/api/mer"} {
		if _, err := payprotocol.New(payprotocol.Config{BaseURL: local, APIKey: "k", APISecret: "s", HTTP: hc}); err != nil {
			t.Errorf("%s (the simulator): %v", local, err)
		}
	}
}

// TestNewNeverShowsAURLPassword: a base URL refused (plain http off this
// machine, one that does not parse) is named in the error, which goes to
// the logs, without the password a URL may carry.
func TestNewNeverShowsAURLPassword(t *testing.T) {
	hc := payprotocol.NewHTTPClient(time.Second)
	for _, u := range []string{"http://user:S3cretPw@api.payprotocol.network/api/mer", "https://user:S3cretPw@api payprotocol.network/api/mer", "ftp://user:S3cretPw@x/api/mer"} {
		_, err := payprotocol.New(payprotocol.Config{BaseURL: u, APIKey: "k", APISecret: "s", HTTP: hc})
		if err == nil || strings.Contains(err.Error(), "S3cretPw") {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// TestAnswersAreChecked: answers that are not what the API says are
// errors, never guesses.
func TestAnswersAreChecked(t *testing.T) {
	answer := ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(answer))
	}))
	defer srv.Close()
	newClient := func(dec map[string]int) *payprotocol.Client {
		c, err := payprotocol.New(payprotocol.Config{BaseURL: srv.URL + "/api/mer", APIKey: testKey, APISecret: testSecret,
			HTTP: payprotocol.NewHTTPClient(5 * time.Second), MaxRetries: -1, Decimals: dec})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := newClient(nil)
	ctx := context.Background()
	const base = `"outTradeNo":"T-1","outPaymentNo":"P-1","isLegalTender":1,"quoteCurrencySymbol":"USD","quoteAmount":"12.34","settlementCurrencySymbol":"USDT"`
	for name, a := range map[string]string{
		"not JSON":           `<html>`,
		"no code":            `{"msg":"ok"}`,
		"no data":            `{"code":200,"msg":"success"}`,
		"other order":        `{"code":200,"data":{"outTradeNo":"T-2","paymentStatus":0,"isLegalTender":1,"quoteCurrencySymbol":"USD","quoteAmount":"1"}}`,
		"unknown status":     `{"code":200,"data":{` + base + `,"paymentStatus":9,"decimals":6,"expectedAmount":"1"}}`,
		"no status":          `{"code":200,"data":{` + base + `,"decimals":6,"expectedAmount":"1"}}`,
		"float amount":       `{"code":200,"data":{` + base + `,"paymentStatus":0,"decimals":6,"expectedAmount":"1.5"}}`,
		"exponent amount":    `{"code":200,"data":{` + base + `,"paymentStatus":0,"decimals":6,"expectedAmount":1e6}}`,
		"negative amount":    `{"code":200,"data":{` + base + `,"paymentStatus":0,"decimals":6,"expectedAmount":"-1"}}`,
		"paid without quote": `{"code":200,"data":{"outTradeNo":"T-1","isLegalTender":1,"paymentStatus":0,"expectedAmount":"1"}}`,
		"no isLegalTender":   `{"code":200,"data":{"outTradeNo":"T-1","quoteCurrencySymbol":"USD","quoteAmount":"1","paymentStatus":0}}`,
		"paid, no order":     `{"code":200,"data":{"isLegalTender":1,"quoteCurrencySymbol":"USD","quoteAmount":"1","paymentStatus":0}}`,
		"string status word": `{"code":200,"data":{` + base + `,"paymentStatus":"PAID","decimals":6,"expectedAmount":"1"}}`,
	} {
		answer = a
		_, err := c.PaymentDetail(ctx, "T-1", "")
		if !errors.Is(err, payprotocol.ErrAnswer) {
			t.Errorf("%s: %v, want ErrAnswer", name, err)
		}
	}
	// Numbers where strings are documented, and strings where numbers are, are read exactly.
	answer = `{"code":"200","data":{` + base + `,"paymentStatus":"0","decimals":6,"expectedAmount":12340000,"settlementAmount":"12340000"}}`
	if p, err := c.PaymentDetail(ctx, "T-1", ""); err != nil || p.ExpectedAmount != "12340000" {
		t.Fatalf("numbers as strings: %+v, %v", p, err)
	}
	// The status is read first: a payment in progress is taken whatever
	// else is missing or malformed (it is held anyway).
	for _, st := range []int{1, 2, 3} {
		answer = fmt.Sprintf(`{"code":200,"data":{"paymentStatus":%d,"expectedAmount":"x"}}`, st)
		if p, err := c.PaymentDetail(ctx, "T-1", ""); err != nil || int(p.Status) != st || !p.Status.InProgress() {
			t.Errorf("status %d with nothing else: %+v, %v", st, p, err)
		}
	}
	// Decimals come from configuration, per chain and symbol; none is
	// never guessed.
	dc := newClient(map[string]int{"1:USDT": 6, "3:USDT": 18})
	if d, ok := dc.Decimals(3, "USDT"); !ok || d != 18 {
		t.Errorf("Decimals(3, USDT) = %d, %v", d, ok)
	}
	if _, ok := dc.Decimals(2, "USDT"); ok {
		t.Error("Decimals(2, USDT) guessed")
	}
	// A refund id written as a number.
	answer = `{"code":200,"data":{"refundId":82,"outTradeNo":"T-1","refundStatus":0,"refundAmount":"90000000","refundFee":"0"}}`
	if rf, err := c.RefundDetail(ctx, "T-1", "82"); err != nil || rf.RefundID != "82" || rf.Status != payprotocol.RefundSuccess {
		t.Fatalf("RefundDetail = %+v, %v", rf, err)
	}
	// A create call whose answer cannot be read may have been applied.
	answer = `{"code":200,"data":{"outPaymentNo":""}}`
	_, err := c.CreatePaymentOrder(ctx, payprotocol.PaymentOrder{ChainID: 1, Description: "d", OutTradeNo: "T-1", IsLegalTender: true, QuoteCurrency: "USD", QuoteAmount: 1, NotifyURL: "https://x"})
	if !errors.Is(err, payprotocol.ErrUnknownOutcome) {
		t.Fatalf("unreadable create answer: %v, want ErrUnknownOutcome", err)
	}
}
