package payprotocol_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
	"github.com/settlekit/settle/pipeline"
)

// Golden data from outside this repository (testdata/README.md says where
// each file comes from and how it was made).

// vector is one X-PAY-SIGN computed by the signature() function of Pay
// Protocol's official WooCommerce plugin.
type vector struct {
	Name        string `json:"name"`
	Secret      string `json:"secret"`
	Timestamp   string `json:"timestamp"`
	Method      string `json:"method"`
	RequestPath string `json:"requestPath"`
	Body        string `json:"body"`
	Sign        string `json:"sign"`
}

func testdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pluginVectors(t *testing.T) map[string]vector {
	t.Helper()
	var vs []vector
	if err := json.Unmarshal(testdata(t, "xpaysign_vectors.json"), &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 10 {
		t.Fatalf("%d vectors", len(vs))
	}
	m := map[string]vector{}
	for _, v := range vs {
		m[v.Name] = v
	}
	return m
}

// TestSignMatchesPluginVectors: Sign gives, and VerifyRequest accepts,
// exactly what Pay Protocol's own plugin computes.
func TestSignMatchesPluginVectors(t *testing.T) {
	for _, v := range pluginVectors(t) {
		if got := payprotocol.Sign(v.Secret, v.Timestamp, v.Method, v.RequestPath, []byte(v.Body)); got != v.Sign {
			t.Errorf("%s: Sign = %s, the plugin's signature() = %s", v.Name, got, v.Sign)
		}
		var body io.Reader
		if v.Body != "" {
			body = strings.NewReader(v.Body)
		}
		r := httptest.NewRequest(strings.ToUpper(v.Method), v.RequestPath, body)
		r.Header.Set(payprotocol.HeaderKey, "k")
		r.Header.Set(payprotocol.HeaderTimestamp, v.Timestamp)
		r.Header.Set(payprotocol.HeaderSign, v.Sign)
		sec, _ := strconv.ParseInt(v.Timestamp, 10, 64)
		if err := payprotocol.VerifyRequest(r, []byte(v.Body), "k", v.Secret, time.Unix(sec, 0), 0); err != nil {
			t.Errorf("%s: VerifyRequest refuses the plugin's signature: %v", v.Name, err)
		}
		r.Header.Set(payprotocol.HeaderSign, payprotocol.Sign(v.Secret+"x", v.Timestamp, v.Method, v.RequestPath, []byte(v.Body)))
		if err := payprotocol.VerifyRequest(r, []byte(v.Body), "k", v.Secret, time.Unix(sec, 0), 0); !errors.Is(err, payprotocol.ErrUnauthorized) {
			t.Errorf("%s: another secret's signature accepted: %v", v.Name, err)
		}
	}
}

// goldenServer answers each API path with a fixed body and records what
// the client sent.
type goldenServer struct {
	mu      sync.Mutex
	answers map[string][]byte // by path suffix ("payment/detail")
	seen    []seenRequest
}

type seenRequest struct {
	method, uri, body, sign string
}

func (g *goldenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seen = append(g.seen, seenRequest{r.Method, r.RequestURI, string(body), r.Header.Get(payprotocol.HeaderSign)})
	for suffix, a := range g.answers {
		if strings.HasSuffix(r.URL.Path, "/"+suffix) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(a)
			return
		}
	}
	w.WriteHeader(http.StatusNotFound) // bare, as the docs list it
}

func goldenClient(t *testing.T, g *goldenServer, decimals map[string]int) *payprotocol.Client {
	t.Helper()
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	sec, _ := strconv.ParseInt("1723971200", 10, 64)
	c, err := payprotocol.New(payprotocol.Config{BaseURL: srv.URL + "/api/mer", APIKey: testKey, APISecret: testSecret,
		HTTP: payprotocol.NewHTTPClient(5 * time.Second), MaxRetries: -1, Decimals: decimals,
		Now: func() time.Time { return time.Unix(sec, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestClientRequestsMatchPluginVectors: what the client puts on the wire
// (method, path and query, body, X-PAY-SIGN) is what the plugin signs, the
// notify calls included (GETs with query parameters, as documented).
func TestClientRequestsMatchPluginVectors(t *testing.T) {
	vs := pluginVectors(t)
	ok := []byte(`{"code":200,"msg":"success"}`)
	g := &goldenServer{answers: map[string][]byte{
		"payment/detail":             testdata(t, "payment_detail_pending_bare.json"),
		"refund/detail":              testdata(t, "refund_detail_example.json"),
		"payment/notify":             ok,
		"refund/notify":              ok,
		"refund/createRefundOrder":   []byte(`{"code":200,"msg":"success","data":{"refundId":82}}`),
		"payment/createPaymentOrder": []byte(`{"code":200,"msg":"success","data":{"outPaymentNo":"P","paymentUrl":"/pay/P"}}`),
	}}
	c := goldenClient(t, g, nil)
	ctx := context.Background()
	if _, err := c.PaymentDetail(ctx, "T-20250903-0001", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RefundDetail(ctx, "202401181646089709495", "82"); err != nil {
		t.Fatal(err)
	}
	if err := c.NotifyPayment(ctx, "T-20250903-0001"); err != nil {
		t.Fatal(err)
	}
	if err := c.NotifyRefund(ctx, "T-20250903-0001", "82"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateRefundOrder(ctx, payprotocol.RefundOrder{OutTradeNo: "T-20250903-0001", Amount: 1234, Currency: "USD"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreatePaymentOrder(ctx, payprotocol.PaymentOrder{ChainID: 1, Description: "Order 42", OutTradeNo: "T-42",
		IsLegalTender: true, QuoteCurrency: "USD", QuoteAmount: 31350, NotifyURL: "https://shop.example/hooks/pp"}); err != nil {
		t.Fatal(err)
	}
	names := []string{"detail, order only", "refund detail", "payment notify", "refund notify", "refund order", "payment order"}
	if len(g.seen) != len(names) {
		t.Fatalf("%d requests, want %d", len(g.seen), len(names))
	}
	for i, name := range names {
		v, got := vs[name], g.seen[i]
		if got.method != strings.ToUpper(v.Method) || got.uri != v.RequestPath || got.body != v.Body || got.sign != v.Sign {
			t.Errorf("%s: sent %s %s %q signed %s; the plugin signs %s %s %q as %s", name, got.method, got.uri, got.body, got.sign,
				v.Method, v.RequestPath, v.Body, v.Sign)
		}
	}
}

// TestPublishedRefundDetailExample: the example answer of "Query refund
// order details", as published, is read field by field.
func TestPublishedRefundDetailExample(t *testing.T) {
	c := goldenClient(t, &goldenServer{answers: map[string][]byte{"refund/detail": testdata(t, "refund_detail_example.json")}}, nil)
	r, err := c.RefundDetail(context.Background(), "202401181646089709495", "")
	if err != nil {
		t.Fatal(err)
	}
	if r.RefundID != "82" || r.ChainID != 1 || r.CurrencyID != 1 || r.OutTradeNo != "202401181646089709495" ||
		r.OutPaymentNo != "202401181646089688773" || r.Status != payprotocol.RefundSuccess ||
		r.Address != "TSBJBk1Nfc7sxYp59bjTtLEV8WKxZcZy2L" || r.Amount.String() != "90000000" || r.Fee.Sign() != 0 ||
		r.TxHash != "fb8b8e8a62a0bad406832a5ab14968d97582998571d240e4969077436bddde0b" || r.Time != "2024-01-19 00:48:41" {
		t.Fatalf("RefundDetail = %+v", r)
	}
	// 90000000 scaled by USDT's 6 decimals on chain 1 is 90 USD one to one.
	if v, err := payprotocol.ToMinor(r.Amount.String(), 6, "USD"); err != nil || v != 9000 {
		t.Fatalf("refund amount = %d, %v", v, err)
	}
	// The same answer for another refund id is not taken.
	if _, err := c.RefundDetail(context.Background(), "", "83"); !errors.Is(err, payprotocol.ErrAnswer) {
		t.Fatalf("refund 83 answered by refund 82: %v", err)
	}
}

// TestPublishedPaymentDetailShapes: payment details in the published shape
// (no decimals field) are read; a fiat quote is compared as Pay
// Protocol's plugin compares it, exactly as a number; the status comes
// first; the schema's placeholder example is refused, never guessed.
func TestPublishedPaymentDetailShapes(t *testing.T) {
	ctx := context.Background()
	g := &goldenServer{answers: map[string][]byte{"payment/detail": testdata(t, "payment_detail_fiat_paid.json")}}
	c := goldenClient(t, g, map[string]int{"1:USDT": 6})
	p, err := c.PaymentDetail(ctx, "WC-4242", "")
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != payprotocol.PaymentPaid || !p.IsLegalTender || p.QuoteCurrency != "USD" || p.QuoteAmount != "313.500000" ||
		p.SettlementCurrency != "USDT" || p.ChainID != 1 || p.ExpectedAmount != "313500000" || p.FromAddress == "" {
		t.Fatalf("PaymentDetail = %+v", p)
	}
	// "313.500000" is the order's 313.50 USD, as "313.5" would be.
	q, err := p.Quote()
	if err != nil || q != (pipeline.Money{Minor: 31350, Currency: "USD"}) {
		t.Fatalf("Quote = %v, %v", q, err)
	}
	// An exponent is read too, exactly, as the plugin's PHP == reads it
	// (and Java's BigDecimal.toString writes it once zeros are stripped).
	for dec, want := range map[string]int64{"313.5": 31350, "313.50": 31350, "313.500000": 31350, "313": 31300, "0.01": 1,
		"3.135e2": 31350, "3.135E+2": 31350, "1E+3": 100000, "31350e-2": 31350, "0.3135E3": 31350} {
		if v, err := payprotocol.QuoteMinor(dec, "USD"); err != nil || v != want {
			t.Errorf("QuoteMinor(%s) = %d, %v; want %d", dec, v, err, want)
		}
	}
	for _, dec := range []string{"313.505", "313.5000001", "-313.5", "3.13505e2", "1e-3", "1e", "1e+", "1E+65", "1e2.5", "", "313,5", "+313.5", ".5", "5.", "1e2e3"} {
		if v, err := payprotocol.QuoteMinor(dec, "USD"); err == nil {
			t.Errorf("QuoteMinor(%q) = %d, want an error", dec, v)
		}
	}
	if v, err := payprotocol.QuoteMinor("313.0", "JPY"); err != nil || v != 313 {
		t.Errorf("QuoteMinor(313.0 JPY) = %d, %v", v, err)
	}
	if _, err := payprotocol.QuoteMinor("313.5", "JPY"); err == nil {
		t.Error("313.5 JPY became whole yen")
	}
	// The settled amount is read with decimals from configuration, per
	// chain and symbol; without them it is not read at all.
	d, ok := c.Decimals(p.ChainID, p.SettlementCurrency)
	if !ok || d != 6 {
		t.Fatalf("Decimals = %d, %v", d, ok)
	}
	if s, err := p.Settled(d); err != nil || s != "313.5" {
		t.Fatalf("Settled = %q, %v", s, err)
	}
	if _, ok := goldenClient(t, g, nil).Decimals(1, "USDT"); ok {
		t.Fatal("decimals without configuration")
	}

	// A payment in progress is read from its status alone.
	g.answers["payment/detail"] = testdata(t, "payment_detail_pending_bare.json")
	if p, err := c.PaymentDetail(ctx, "WC-4242", ""); err != nil || p.Status != payprotocol.PaymentBlockConfirmation || !p.Status.InProgress() {
		t.Fatalf("bare pending = %+v, %v", p, err)
	}

	// The schema's placeholder example: code 0 is not the documented
	// success, and with code 200 its amounts ("string") are refused.
	schema := testdata(t, "payment_detail_schema_example.json")
	g.answers["payment/detail"] = schema
	if _, err := c.PaymentDetail(ctx, "string", ""); err == nil {
		t.Fatal("code 0 taken for success")
	}
	g.answers["payment/detail"] = bytes.Replace(schema, []byte(`"code": 0`), []byte(`"code": 200`), 1)
	if _, err := c.PaymentDetail(ctx, "string", ""); !errors.Is(err, payprotocol.ErrAnswer) || !strings.Contains(err.Error(), "expectedAmount") {
		t.Fatalf("schema placeholders: %v, want ErrAnswer naming expectedAmount", err)
	}

	// A 404 without a body (the docs show none) is "not found".
	delete(g.answers, "payment/detail")
	if _, err := c.PaymentDetail(ctx, "WC-4242", ""); !errors.Is(err, payprotocol.ErrNotFound) {
		t.Fatalf("bare 404: %v, want ErrNotFound", err)
	}
}

// TestFakeAnswersInThePublishedShape: the fake's payment and refund
// details carry the published fields and no others of ours (no decimals,
// no currencySymbol), and answer an unknown order with a bare 404 when
// asked to.
func TestFakeAnswersInThePublishedShape(t *testing.T) {
	r := newRig(t, payprotocoltest.Options{BareNotFound: true, Polls: -1}, nil)
	ctx := context.Background()
	paid(t, r)
	raw := func(path string) map[string]any {
		req, _ := http.NewRequest(http.MethodGet, r.srv.URL+"/api/mer/"+path, nil)
		payprotocol.SignRequest(req, testKey, testSecret, time.Now(), nil)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a struct {
			Code int            `json:"code"`
			Data map[string]any `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || a.Code != 200 {
			t.Fatalf("%s: %d %v", path, a.Code, err)
		}
		return a.Data
	}
	p := raw("payment/detail?outTradeNo=T-1")
	published := []string{"chainId", "orgId", "outTradeNo", "outPaymentNo", "description", "isLegalTender", "quoteCurrencySymbol",
		"quoteAmount", "paymentStatus", "paymentType", "expectedAmount", "settlementAmount", "settlementCurrencySymbol",
		"transferHash", "userWalletAddress", "fromAddress", "createTime", "blockTime"}
	checkFields(t, "payment detail", p, published)
	if _, err := r.client.CreateRefundOrder(ctx, payprotocol.RefundOrder{OutTradeNo: "T-1", Amount: 100, Currency: "USD"}); err != nil {
		t.Fatal(err)
	}
	rf := raw("refund/detail?outTradeNo=T-1")
	checkFields(t, "refund detail", rf, []string{"chainId", "currencyId", "refundId", "outTradeNo", "outPaymentNo", "refundAddress",
		"refundAmount", "refundFee", "refundStatus", "refundTime", "transferHash"})
	if _, err := r.client.PaymentDetail(ctx, "T-NONE", ""); !errors.Is(err, payprotocol.ErrNotFound) {
		t.Fatalf("bare 404 from the fake: %v", err)
	}
	if _, err := r.client.RefundDetail(ctx, "T-NONE", ""); !errors.Is(err, payprotocol.ErrNotFound) {
		t.Fatalf("bare 404 from the fake: %v", err)
	}
}

func checkFields(t *testing.T, what string, got map[string]any, published []string) {
	t.Helper()
	want := map[string]bool{}
	for _, f := range published {
		want[f] = true
		if _, ok := got[f]; !ok {
			t.Errorf("%s: no %s", what, f)
		}
	}
	for f := range got {
		if !want[f] {
			t.Errorf("%s: field %s is not published", what, f)
		}
	}
}

// TestPreflight: cheap authenticated calls find a wrong base URL and
// refused credentials before anything is sent, as configuration errors
// naming Pay Protocol, after one call; accepted ones pass (the made-up
// order is not found).
func TestPreflight(t *testing.T) {
	ctx := context.Background()
	for _, bare := range []bool{false, true} {
		r := newRig(t, payprotocoltest.Options{BareNotFound: bare}, nil)
		if err := r.client.Preflight(ctx); err != nil {
			t.Fatalf("bare 404 %v: good credentials: %v", bare, err)
		}
	}
	// A base URL without /api/mer: the chain list is not there.
	r := newRig(t, payprotocoltest.Options{BareNotFound: true}, func(c *payprotocol.Config) { c.BaseURL = strings.TrimSuffix(c.BaseURL, "/api/mer") + "/api" })
	if err := r.client.Preflight(ctx); pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "base URL") {
		t.Fatalf("wrong base URL: %v (kind %v)", err, pipeline.KindOf(err))
	}
	r = newRig(t, payprotocoltest.Options{}, func(c *payprotocol.Config) { c.APISecret = "not-the-secret" })
	err := r.client.Preflight(ctx)
	if pipeline.KindOf(err) != pipeline.KindUsage || pipeline.KindOf(err).ExitCode() != 2 || strings.Contains(err.Error(), "\n") ||
		!strings.Contains(err.Error(), "Pay Protocol") || !strings.Contains(err.Error(), "refused our credentials") ||
		!errors.Is(err, payprotocol.ErrUnauthorized) {
		t.Fatalf("wrong secret: %v (kind %v)", err, pipeline.KindOf(err))
	}
	noSecret(t, "preflight", err)
	if n := r.fake.Calls(payprotocol.APIChainList) + r.fake.Calls(payprotocol.APIPaymentDetail); n != 1 {
		t.Fatalf("%d calls: refused credentials were retried or asked again", n)
	}
}

// TestClockSkewIsNamed: Pay Protocol refuses an X-PAY-TIMESTAMP more than
// 60 s off its clock, with the same code as a wrong key or secret. On a
// machine whose clock was 2 minutes off, the run said "refused our
// credentials: check the API key ..., the API secret ... and the clock",
// an operator's cue to rotate keys that were right. Its answer's Date
// header says how far apart the clocks are: the refusal names clock skew.
func TestClockSkewIsNamed(t *testing.T) {
	ctx := context.Background()
	for _, skew := range []time.Duration{2 * time.Minute, -2 * time.Minute} {
		r := newRig(t, payprotocoltest.Options{}, func(c *payprotocol.Config) { c.Now = func() time.Time { return time.Now().Add(skew) } })
		err := r.client.Preflight(ctx)
		if pipeline.KindOf(err) != pipeline.KindUsage || !errors.Is(err, payprotocol.ErrUnauthorized) || strings.Contains(err.Error(), "\n") ||
			!strings.Contains(err.Error(), "clock skew") || strings.Contains(err.Error(), "refused our credentials") {
			t.Fatalf("clock %v off: %v (kind %v)", skew, err, pipeline.KindOf(err))
		}
	}
}
