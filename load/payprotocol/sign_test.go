package payprotocol_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/load/payprotocol"
)

// The vectors: a fixed secret and timestamp, a GET with a query and a POST
// with a body. The expected values were computed once, outside Go, with
//
//	printf '%s' '1723971200GET/api/mer/payment/detail?outTradeNo=T-20250903-0001&outPaymentNo=PP000000000001' |
//	  openssl dgst -sha256 -hmac 'ppsecret-test-0123456789abcdef' -binary | base64
//	printf '%s' '1723971200POST/api/mer/refund/createRefundOrder{"outTradeNo":"T-20250903-0001","amount":"12.34"}' |
//	  openssl dgst -sha256 -hmac 'ppsecret-test-0123456789abcdef' -binary | base64
const (
	vecTimestamp = "1723971200"
	vecGetPath   = "/api/mer/payment/detail?outTradeNo=T-20250903-0001&outPaymentNo=PP000000000001"
	vecGetSign   = "6Yn3v4HpjsqsBiA6BbKXliDZj68dDP8dzEJxBCfQALk="
	vecPostPath  = "/api/mer/refund/createRefundOrder"
	vecPostBody  = `{"outTradeNo":"T-20250903-0001","amount":"12.34"}`
	vecPostSign  = "KvsWN4Sz10uJItiD/lMnKE7WFQDzIVDn/aIG3QGOOHg="
)

// hmacB64 is the documented rule written out directly, independent of Sign.
func hmacB64(secret, s string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestSignVectors(t *testing.T) {
	for _, tc := range []struct{ method, path, body, openssl string }{
		{"GET", vecGetPath, "", vecGetSign},
		{"get", vecGetPath, "", vecGetSign}, // the method is upper-cased
		{"POST", vecPostPath, vecPostBody, vecPostSign},
	} {
		got := payprotocol.Sign(testSecret, vecTimestamp, tc.method, tc.path, []byte(tc.body))
		direct := hmacB64(testSecret, vecTimestamp+strings.ToUpper(tc.method)+tc.path+tc.body)
		if got != direct || got != tc.openssl {
			t.Errorf("Sign(%s %s) = %s; direct HMAC %s; openssl %s", tc.method, tc.path, got, direct, tc.openssl)
		}
	}
}

// TestClientSignsWhatItSends checks the headers of real requests, for a GET
// with a query (in the order we send it) and a POST with a body, against
// the vectors.
func TestClientSignsWhatItSends(t *testing.T) {
	type seen struct {
		header http.Header
		uri    string
		body   string
	}
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = append(got, seen{r.Header.Clone(), r.RequestURI, string(body)})
		if r.Method == http.MethodGet {
			io.WriteString(w, `{"code":200,"msg":"success","data":{"outTradeNo":"T-20250903-0001","outPaymentNo":"PP000000000001",
				"paymentStatus":0,"isLegalTender":1,"quoteCurrencySymbol":"USD","quoteAmount":"12.34","expectedAmount":"12340000","settlementAmount":"12340000","settlementCurrencySymbol":"USDT"}}`)
			return
		}
		io.WriteString(w, `{"code":200,"msg":"success","data":{"refundId":82}}`)
	}))
	defer srv.Close()
	sec, _ := strconv.ParseInt(vecTimestamp, 10, 64)
	c, err := payprotocol.New(payprotocol.Config{BaseURL: srv.URL + "/api/mer/", APIKey: testKey, APISecret: testSecret,
		HTTP: payprotocol.NewHTTPClient(5 * time.Second), Now: func() time.Time { return time.Unix(sec, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.PaymentDetail(ctx, "T-20250903-0001", "PP000000000001"); err != nil {
		t.Fatal(err)
	}
	id, err := c.CreateRefundOrder(ctx, payprotocol.RefundOrder{OutTradeNo: "T-20250903-0001", Amount: 1234, Currency: "USD"})
	if err != nil || id != "82" {
		t.Fatalf("CreateRefundOrder = %q, %v", id, err)
	}
	want := []struct{ method, uri, body, sign string }{
		{"GET", vecGetPath, "", vecGetSign},
		{"POST", vecPostPath, vecPostBody, vecPostSign},
	}
	for i, w := range want {
		g := got[i]
		if g.uri != w.uri || g.body != w.body {
			t.Fatalf("request %d: sent %s %q, want %s %q", i, g.uri, g.body, w.uri, w.body)
		}
		if g.header.Get("X-PAY-KEY") != testKey || g.header.Get("X-PAY-TIMESTAMP") != vecTimestamp {
			t.Fatalf("request %d: headers %v", i, g.header)
		}
		direct := hmacB64(testSecret, g.header.Get("X-PAY-TIMESTAMP")+w.method+g.uri+g.body)
		if s := g.header.Get("X-PAY-SIGN"); s != direct || s != w.sign {
			t.Fatalf("request %d: X-PAY-SIGN %s; direct HMAC %s; openssl %s", i, s, direct, w.sign)
		}
	}
}

// signed returns a request to path signed at ts, as Pay Protocol signs
// callbacks.
func signed(method, path string, body []byte, key, secret string, ts time.Time) *http.Request {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	payprotocol.SignRequest(r, key, secret, ts, body)
	return r
}

func TestVerifyRequest(t *testing.T) {
	now := time.Unix(1723971200, 0)
	body := []byte(`{"outTradeNo":"T-1","paymentStatus":0}`)
	const path = "/hooks/pp?x=1&y=2"
	good := func() *http.Request { return signed("POST", path, body, testKey, testSecret, now) }
	if err := payprotocol.VerifyRequest(good(), body, testKey, testSecret, now, 0); err != nil {
		t.Fatalf("good request: %v", err)
	}
	for _, skew := range []time.Duration{60 * time.Second, -60 * time.Second} {
		r := signed("POST", path, body, testKey, testSecret, now.Add(skew))
		if err := payprotocol.VerifyRequest(r, body, testKey, testSecret, now, 0); err != nil {
			t.Fatalf("skew %v: %v", skew, err)
		}
	}
	bad := map[string]func() (*http.Request, []byte){
		"stale by 61s": func() (*http.Request, []byte) {
			return signed("POST", path, body, testKey, testSecret, now.Add(-61*time.Second)), body
		},
		"future by 61s": func() (*http.Request, []byte) {
			return signed("POST", path, body, testKey, testSecret, now.Add(61*time.Second)), body
		},
		"wrong secret": func() (*http.Request, []byte) { return signed("POST", path, body, testKey, "other", now), body },
		"wrong key":    func() (*http.Request, []byte) { return signed("POST", path, body, "other", testSecret, now), body },
		"body changed": func() (*http.Request, []byte) {
			return good(), []byte(`{"outTradeNo":"T-2","paymentStatus":0}`)
		},
		"query changed": func() (*http.Request, []byte) {
			r := good()
			r.RequestURI = "/hooks/pp?y=2&x=1"
			return r, body
		},
		"method changed": func() (*http.Request, []byte) {
			r := good()
			r.Method = "PUT"
			return r, body
		},
		"timestamp changed": func() (*http.Request, []byte) {
			r := good()
			r.Header.Set("X-PAY-TIMESTAMP", "1723971201")
			return r, body
		},
		"timestamp in ms": func() (*http.Request, []byte) {
			r := good()
			r.Header.Set("X-PAY-TIMESTAMP", "1723971200000")
			return r, body
		},
		"no signature": func() (*http.Request, []byte) {
			r := good()
			r.Header.Del("X-PAY-SIGN")
			return r, body
		},
	}
	for name, mk := range bad {
		r, b := mk()
		err := payprotocol.VerifyRequest(r, b, testKey, testSecret, now, 0)
		if !errors.Is(err, payprotocol.ErrUnauthorized) {
			t.Errorf("%s: %v, want ErrUnauthorized", name, err)
		}
		noSecret(t, name, err)
		if err != nil && strings.Contains(err.Error(), payprotocol.Sign(testSecret, vecTimestamp, "POST", path, body)) {
			t.Errorf("%s: the error shows the expected signature", name)
		}
	}
}

func TestConfigHidesSecret(t *testing.T) {
	cfg := payprotocol.Config{BaseURL: "https://user:UrlPassw0rd@api.payprotocol.network/api/mer", APIKey: testKey, APISecret: testSecret}
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%v", struct{ C payprotocol.Config }{cfg})} {
		if strings.Contains(s, testSecret) || strings.Contains(s, "UrlPassw0rd") || !strings.Contains(s, testKey) || !strings.Contains(s, "api.payprotocol.network") {
			t.Fatalf("printed config: %s", s)
		}
	}
}
