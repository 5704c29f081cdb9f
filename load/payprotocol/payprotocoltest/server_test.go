package payprotocoltest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
)

const key, secret = "K1", "S1-secret"

// start runs a fake behind prefix (through mount) and returns it with a
// client of it.
func start(t *testing.T, o payprotocoltest.Options, mount func(http.Handler) http.Handler) (*payprotocoltest.Server, *payprotocol.Client, string) {
	t.Helper()
	o.APIKey, o.APISecret = key, secret
	fake := payprotocoltest.New(o)
	t.Cleanup(fake.Close)
	mux := http.NewServeMux()
	var h http.Handler = fake
	if mount != nil {
		h = mount(fake)
	}
	mux.Handle("/api/mer/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	cfg := fake.ClientConfig(srv.URL + "/api/mer")
	cfg.RetryBase, cfg.RetryMax = time.Millisecond, time.Millisecond
	c, err := payprotocol.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return fake, c, srv.URL
}

// TestSignedPathSurvivesStripPrefix: the fake checks the signature over the
// request line's path, so it may be mounted behind http.StripPrefix.
func TestSignedPathSurvivesStripPrefix(t *testing.T) {
	fake, c, _ := start(t, payprotocoltest.Options{}, func(h http.Handler) http.Handler { return http.StripPrefix("/api/mer", h) })
	if _, err := fake.AddPayment("T-1", "USDT", 6, "1000000", payprotocol.PaymentPaid); err != nil {
		t.Fatal(err)
	}
	if p, err := c.PaymentDetail(context.Background(), "T-1", ""); err != nil || p.Status != payprotocol.PaymentPaid {
		t.Fatalf("%+v, %v", p, err)
	}
}

// post sends a signed JSON body to api and returns the answer's code and msg.
func post(t *testing.T, base, api string, body any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", base+"/api/mer/"+api, bytes.NewReader(b))
	payprotocol.SignRequest(req, key, secret, time.Now(), b)
	resp, err := payprotocol.NewHTTPClient(5 * time.Second).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("answer %q: %v", raw, err)
	}
	return a.Code, a.Msg
}

func TestCreatePaymentOrderValidates(t *testing.T) {
	_, _, base := start(t, payprotocoltest.Options{}, nil)
	good := func() map[string]any {
		return map[string]any{"chainId": 1, "description": "d", "outTradeNo": "T-1", "isLegalTender": 1,
			"quoteCurrencySymbol": "USD", "quoteAmount": "12.34", "notifyUrl": "https://shop.example/cb"}
	}
	for name, mod := range map[string]func(map[string]any){
		"chainId as string":  func(m map[string]any) { m["chainId"] = "1" },
		"no chainId":         func(m map[string]any) { delete(m, "chainId") },
		"isLegalTender 2":    func(m map[string]any) { m["isLegalTender"] = 2 },
		"unknown fiat":       func(m map[string]any) { m["quoteCurrencySymbol"] = "XYZ" },
		"three decimals USD": func(m map[string]any) { m["quoteAmount"] = "12.345" },
		"negative":           func(m map[string]any) { m["quoteAmount"] = "-12.34" },
		"zero":               func(m map[string]any) { m["quoteAmount"] = "0.00" },
		"amount as number":   func(m map[string]any) { m["quoteAmount"] = 12.34 },
		"no notifyUrl":       func(m map[string]any) { delete(m, "notifyUrl") },
		"crypto beyond coin": func(m map[string]any) {
			m["isLegalTender"], m["quoteCurrencySymbol"], m["quoteAmount"] = 0, "USDT", "0.0000001"
		},
		"no outTradeNo":       func(m map[string]any) { m["outTradeNo"] = "" },
		"missing description": func(m map[string]any) { delete(m, "description") },
	} {
		m := good()
		mod(m)
		if code, msg := post(t, base, payprotocol.APICreatePaymentOrder, m); code != payprotocol.CodeBadRequest {
			t.Errorf("%s: code %d %q, want 400", name, code, msg)
		}
	}
	if code, msg := post(t, base, payprotocol.APICreatePaymentOrder, good()); code != payprotocol.CodeSuccess {
		t.Fatalf("good order: %d %q", code, msg)
	}
}

func TestAddPaymentChecks(t *testing.T) {
	fake, _, _ := start(t, payprotocoltest.Options{}, nil)
	if _, err := fake.AddPayment("T-1", "USDT", 6, "1.5", payprotocol.PaymentPaid); err == nil {
		t.Error("a decimal scaled amount was accepted")
	}
	if _, err := fake.AddPayment("T-1", "USDT", 6, "100", 9); err == nil {
		t.Error("an unknown status was accepted")
	}
	if _, err := fake.AddPayment("T-1", "USDT", 6, "100", payprotocol.PaymentPending); err != nil {
		t.Fatal(err)
	}
	if _, err := fake.AddPayment("T-1", "USDT", 6, "100", payprotocol.PaymentPending); err == nil {
		t.Error("a second order T-1 was accepted")
	}
	if err := fake.SetPaymentStatus("T-NONE", payprotocol.PaymentPaid); err == nil {
		t.Error("status of an unknown order set")
	}
	if err := fake.RejectRefund("404"); err == nil {
		t.Error("unknown refund rejected")
	}
}

// TestRefundRules: only a paid order is refunded, never beyond what was
// settled; with negative Polls a refund succeeds at once, and a final one
// cannot be rejected.
func TestRefundRules(t *testing.T) {
	ctx := context.Background()
	fake, c, _ := start(t, payprotocoltest.Options{Polls: -1}, nil)
	fake.AddPayment("T-P", "USDT", 6, "5000000", payprotocol.PaymentPending)
	if _, err := c.CreateRefundOrder(ctx, payprotocol.RefundOrder{OutTradeNo: "T-P"}); err == nil {
		t.Fatal("a pending order was refunded")
	}
	fake.AddPayment("T-1", "USDT", 6, "5000000", payprotocol.PaymentPaid)
	id, err := c.CreateRefundOrder(ctx, payprotocol.RefundOrder{OutTradeNo: "T-1", Amount: 300, Currency: "USD"})
	if err != nil {
		t.Fatal(err)
	}
	if rf, err := c.RefundDetail(ctx, "T-1", id); err != nil || rf.Status != payprotocol.RefundSuccess {
		t.Fatalf("%+v, %v", rf, err)
	}
	if err := fake.RejectRefund(id); err == nil {
		t.Fatal("a successful refund was rejected")
	}
	if _, err := c.CreateRefundOrder(ctx, payprotocol.RefundOrder{OutTradeNo: "T-1", Amount: 201, Currency: "USD"}); err == nil {
		t.Fatal("refunded beyond the payment")
	}
	if _, err := c.CreateRefundOrder(ctx, payprotocol.RefundOrder{OutTradeNo: "T-1", Amount: 200, Currency: "USD"}); err != nil {
		t.Fatal(err)
	}
	if p, _ := fake.Payment("T-1"); p.Status != payprotocol.PaymentRefunded {
		t.Fatalf("after refunding all: %s", p.Status)
	}
	if rs := fake.Refunds(); len(rs) != 2 || rs[0].Amount.String() != "3000000" || rs[1].Amount.String() != "2000000" {
		t.Fatalf("refunds %+v", rs)
	}
	if _, err := c.RefundDetail(ctx, "T-OTHER", id); !errors.Is(err, payprotocol.ErrNotFound) {
		t.Fatalf("refund of another order: %v", err)
	}
}

// TestCloseStopsCallbacks: Close ends a schedule in the middle.
func TestCloseStopsCallbacks(t *testing.T) {
	var hits atomic.Int32
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer sink.Close()
	fake, _, _ := start(t, payprotocoltest.Options{NotifyURL: sink.URL}, nil) // real schedule: 15 s to the second try
	fake.AddPayment("T-1", "USDT", 6, "100", payprotocol.PaymentPending)
	fake.SetPaymentStatus("T-1", payprotocol.PaymentPaid)
	deadline := time.Now().Add(5 * time.Second)
	for len(fake.Deliveries()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	begin := time.Now()
	fake.Close()
	if d := time.Since(begin); d > time.Second || hits.Load() != 1 || len(fake.Deliveries()) != 1 {
		t.Fatalf("Close took %v; %d hits", d, hits.Load())
	}
	// Closed: no new callbacks start.
	fake.SetPaymentStatus("T-1", payprotocol.PaymentRefunded)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := fake.WaitCallbacks(ctx); err != nil || hits.Load() != 1 {
		t.Fatalf("after Close: %v, %d hits", err, hits.Load())
	}
}

func TestWrongMethodAndPath(t *testing.T) {
	_, _, base := start(t, payprotocoltest.Options{}, nil)
	hc := payprotocol.NewHTTPClient(5 * time.Second)
	for _, tc := range []struct {
		method, path string
		code         int
	}{{"POST", "/api/mer/payment/detail", 405}, {"GET", "/api/mer/payment/createPaymentOrder", 405}, {"GET", "/api/mer/nothing", 404}} {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.code)
		}
	}
}

// TestAFailedPaymentPaidLate: a payment failed (status 4) and paid late,
// on chain, answers as Pay Protocol would: failed, nothing settled and no
// transfer; then paid, its whole amount settled with a transfer hash.
func TestAFailedPaymentPaidLate(t *testing.T) {
	fake, c, _ := start(t, payprotocoltest.Options{}, nil)
	ctx := context.Background()
	if _, err := fake.AddPayment("T-1", "USDT", 6, "2500000", payprotocol.PaymentFailed); err != nil {
		t.Fatal(err)
	}
	p, err := c.PaymentDetail(ctx, "T-1", "")
	if err != nil || p.Status != payprotocol.PaymentFailed || p.SettlementAmount != "0" || p.TxHash != "" {
		t.Fatalf("failed: %+v, %v", p, err)
	}
	if err := fake.SetPaymentStatus("T-1", payprotocol.PaymentPaid); err != nil {
		t.Fatal(err)
	}
	p, err = c.PaymentDetail(ctx, "T-1", "")
	if err != nil || p.Status != payprotocol.PaymentPaid || p.SettlementAmount != "2500000" || p.ExpectedAmount != "2500000" || p.TxHash == "" {
		t.Fatalf("paid late: %+v, %v", p, err)
	}
}

// TestCurrencyList: the fake serves the merchant's currencies as published
// (GET /conf/list/currency?chainId=): its coin on every chain it lists, and
// each currency a payment is made in; a refund names its payment's
// currency by currencyId, or another one after SetRefundCurrency.
func TestCurrencyList(t *testing.T) {
	ctx := context.Background()
	fake, c, _ := start(t, payprotocoltest.Options{Polls: -1}, nil)
	if _, err := fake.AddPayment("T-ETH", "ETH", 18, "1000000000000000000", payprotocol.PaymentPaid); err != nil {
		t.Fatal(err)
	}
	eth, ok := fake.CurrencyID(1, "ETH")
	if !ok {
		t.Fatal("ETH not opened by its payment")
	}
	list, err := c.CurrencyList(ctx, 1)
	if err != nil || len(list) != 2 || list[0].ID != 1 || list[0].Symbol != "USDT" || list[0].Decimals != 6 ||
		list[1].ID != eth || list[1].Symbol != "ETH" || list[1].Decimals != 18 {
		t.Fatalf("chain 1: %+v, %v", list, err)
	}
	if list, err := c.CurrencyList(ctx, 2); err != nil || len(list) != 1 || list[0].Symbol != "USDT" || list[0].ChainID != 2 {
		t.Fatalf("chain 2: %+v, %v", list, err)
	}
	id, err := fake.AddRefund("T-ETH", "1000", payprotocol.RefundSuccess)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.RefundDetail(ctx, "T-ETH", id); err != nil || r.CurrencyID != eth || r.ChainID != 1 {
		t.Fatalf("refund %+v, %v: want currency %d on chain 1", r, err, eth)
	}
	if err := fake.SetRefundCurrency(id, 1); err != nil {
		t.Fatal(err)
	}
	if r, err := c.RefundDetail(ctx, "T-ETH", id); err != nil || r.CurrencyID != 1 {
		t.Fatalf("refund %+v, %v: want currency 1 once set", r, err)
	}
	if fake.Calls(payprotocol.APICurrencyList) != 2 {
		t.Errorf("currency list calls: %d", fake.Calls(payprotocol.APICurrencyList))
	}
}

// TestAPaymentInAnOpenCurrencyKeepsItsDecimals: a currency open on a chain
// has one number of decimals; a payment added in it with others was taken,
// and the fake's currency list then said otherwise of the payment's
// amounts than the payment itself. It is refused now.
func TestAPaymentInAnOpenCurrencyKeepsItsDecimals(t *testing.T) {
	fake, _, _ := start(t, payprotocoltest.Options{Polls: -1}, nil)
	if _, err := fake.AddPayment("T-18", "USDT", 18, "1000000000000000000", payprotocol.PaymentPaid); err == nil || !strings.Contains(err.Error(), "USDT is open on chain 1 with 6 decimals") {
		t.Errorf("USDT of 18 decimals where it has 6: %v", err)
	}
	if _, err := fake.AddPayment("T-6", "USDT", 6, "1000000", payprotocol.PaymentPaid); err != nil {
		t.Errorf("USDT of its 6 decimals: %v", err)
	}
}
