package wechatpay_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
)

// captured is one request as it reached the server.
type captured struct {
	method, uri, auth string
	body              []byte
}

// TestAuthorizationVector checks the Authorization header of a POST and a
// GET byte for byte against a signature worked out here with crypto/rsa
// alone: a fixed key, timestamp and nonce, the string to sign written by
// hand.
func TestAuthorizationVector(t *testing.T) {
	key := readKey(t, "merchant_key.pem")
	var mu sync.Mutex
	var got []captured
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, captured{r.Method, r.RequestURI, r.Header.Get("Authorization"), body})
		mu.Unlock()
		http.Error(w, "unsigned", http.StatusTeapot) // the answer does not matter here
	}))
	defer srv.Close()
	c, err := wechatpay.New(wechatpay.Config{BaseURL: srv.URL, MchID: mchID, SerialNo: merchantSerial, PrivateKey: key,
		PlatformKeys: map[string]*rsa.PublicKey{platformSerial: &readKey(t, "platform_key.pem").PublicKey},
		HTTP:         wechatpay.NewHTTPClient(5 * time.Second), MaxRetries: -1,
		Now:   func() time.Time { return time.Unix(1554208460, 0) },
		Nonce: func() string { return "593BEC0C930BF1AFEB40B4A08C8FB242" }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c.Mark(ctx, wechatpay.MarkRequest{SubMchID: subMchID, OutTradeNo: "P20150806125346", Currency: "CNY"})
	c.QueryOrder(ctx, subMchID, "4208450740201411110007820472", "P20150806125346")

	wantBody := `{"sub_mchid":"1900000109","out_trade_no":"P20150806125346","currency":"CNY"}`
	vectors := []struct {
		method, uri, body, toSign string
	}{
		{"POST", "/v3/global/profit-sharing/transactions/mark", wantBody,
			"POST\n/v3/global/profit-sharing/transactions/mark\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n" + wantBody + "\n"},
		{"GET", "/v3/global/profit-sharing/orders/P20150806125346?sub_mchid=1900000109&transaction_id=4208450740201411110007820472", "",
			"GET\n/v3/global/profit-sharing/orders/P20150806125346?sub_mchid=1900000109&transaction_id=4208450740201411110007820472\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n"},
	}
	if len(got) != len(vectors) {
		t.Fatalf("%d requests, want %d", len(got), len(vectors))
	}
	for i, v := range vectors {
		g := got[i]
		if g.method != v.method || g.uri != v.uri || string(g.body) != v.body {
			t.Fatalf("request %d = %s %s %q, want %s %s %q", i, g.method, g.uri, g.body, v.method, v.uri, v.body)
		}
		sum := sha256.Sum256([]byte(v.toSign))
		sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		want := `WECHATPAY2-SHA256-RSA2048 mchid="1900000100",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",` +
			`timestamp="1554208460",serial_no="5157F09EFDC096DE15EBE81A47057A7232F1B8E1",signature="` +
			base64.StdEncoding.EncodeToString(sig) + `"`
		if g.auth != want {
			t.Fatalf("%s Authorization\n got: %s\nwant: %s", v.method, g.auth, want)
		}
		if wechatpay.Authorization(mustParse(t, g.auth)).String() != g.auth {
			t.Fatal("ParseAuthorization does not round-trip")
		}
	}
}

func mustParse(t *testing.T, h string) wechatpay.Authorization {
	t.Helper()
	a, err := wechatpay.ParseAuthorization(h)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestParseAuthorizationRefusesMalformed(t *testing.T) {
	for _, h := range []string{
		"", `Bearer x`,
		`WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="N",timestamp="1",serial_no="S"`,
		`WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="N",timestamp="x",serial_no="S",signature="s"`,
		`WECHATPAY2-SHA256-RSA2048 mchid="1",mchid="2",nonce_str="N",timestamp="1",serial_no="S"`,
		`WECHATPAY2-SHA256-RSA2048 mchid=1,nonce_str="N",timestamp="1",serial_no="S",signature="s"`,
	} {
		if _, err := wechatpay.ParseAuthorization(h); err == nil {
			t.Errorf("ParseAuthorization(%q) accepted", h)
		}
	}
}

// resign returns a wrapper that signs the fake's answer again with the
// platform key at timestamp at (and the body as edit leaves it).
func resign(keys wechatpaytest.Keys, at func() time.Time, edit func([]byte) []byte) func(http.Handler) http.Handler {
	return rewrite(func(h http.Header, body []byte) []byte {
		body = edit(body)
		ts := strconv.FormatInt(at().Unix(), 10)
		sig, _ := wechatpay.Sign(keys.PlatformPrivate, wechatpay.ResponseMessage(ts, h.Get(wechatpay.HeaderNonce), body))
		h.Set(wechatpay.HeaderTimestamp, ts)
		h.Set(wechatpay.HeaderSignature, sig)
		return body
	})
}

func TestAnswersTamperedOrStaleAreRefused(t *testing.T) {
	ctx := context.Background()
	same := func(b []byte) []byte { return b }
	tamper := rewrite(func(_ http.Header, body []byte) []byte {
		return []byte(strings.Replace(string(body), `"unsplit_amount":1000`, `"unsplit_amount":9000`, 1))
	})
	var clock *testClock
	at := func(d time.Duration) func() time.Time { return func() time.Time { return clock.Now().Add(d) } }
	cases := []struct {
		name   string
		wrap   func(http.Handler) http.Handler
		sentry error
		text   string
	}{
		{"tampered body", tamper, wechatpay.ErrSignature, "does not verify"},
		{"signed 5 minutes ago", resign(testKeys(t), at(-5*time.Minute), same), wechatpay.ErrStale, "the limit is 5m0s"},
		{"signed 5 minutes ahead", resign(testKeys(t), at(5*time.Minute), same), wechatpay.ErrStale, "the limit is 5m0s"},
		{"unknown serial", rewrite(func(h http.Header, b []byte) []byte { h.Set(wechatpay.HeaderSerial, "OTHER"); return b }),
			wechatpay.ErrSignature, `platform key "OTHER", which is not configured`},
		{"unsigned", rewrite(func(h http.Header, b []byte) []byte { h.Del(wechatpay.HeaderSignature); return b }),
			wechatpay.ErrSignature, "not signed"},
	}
	for _, tc := range cases {
		r := newRig(t, wechatpaytest.Options{}, tc.wrap, nil)
		clock = r.clock
		r.fake.AddTransaction(subMchID, "T1", "CNY", 1000)
		_, err := r.client.RemainingAmount(ctx, subMchID, "T1")
		if !errors.Is(err, tc.sentry) || !strings.Contains(err.Error(), tc.text) || !strings.Contains(err.Error(), "wechatpay amounts T1") {
			t.Fatalf("%s: %v, want %v saying %q", tc.name, err, tc.sentry, tc.text)
		}
		if n := r.fake.Calls(wechatpay.APIAmounts); n != 1 {
			t.Fatalf("%s: an answer we cannot trust was asked again (%d calls)", tc.name, n)
		}
	}
	// Just inside the limit is fine.
	r := newRig(t, wechatpaytest.Options{}, resign(testKeys(t), func() time.Time { return clock.Now().Add(-5*time.Minute + time.Second) }, same), nil)
	clock = r.clock
	r.fake.AddTransaction(subMchID, "T1", "CNY", 1000)
	if u, err := r.client.RemainingAmount(ctx, subMchID, "T1"); err != nil || u.Amount != 1000 {
		t.Fatalf("4m59s old answer: %+v, %v", u, err)
	}
}

// A distribution whose answer was tampered with is unknown, not failed:
// the money may have moved.
func TestTamperedDistributionAnswerIsUnknown(t *testing.T) {
	tamper := rewrite(func(_ http.Header, body []byte) []byte {
		return []byte(strings.Replace(string(body), "PROCESSING", "FINISHED", 1))
	})
	r := newRig(t, wechatpaytest.Options{}, tamper, nil)
	r.fake.AddTransaction(subMchID, "T1", "CNY", 1000)
	r.fake.SetReceiver(subMchID, wechatpay.TypeMerchantID, mchID, wechatpay.ReceiverEffective)
	_, err := r.client.Distribute(context.Background(), distribution("D1", 100))
	if !errors.Is(err, wechatpay.ErrUnknownOutcome) || !errors.Is(err, wechatpay.ErrSignature) {
		t.Fatalf("tampered distribution answer: %v", err)
	}
	if r.fake.Distributed("T1") != 100 || r.fake.Calls(wechatpay.APIOrders) != 1 {
		t.Fatal("the fake applied it once")
	}
}

func TestSensitiveFieldsRoundTrip(t *testing.T) {
	k := testKeys(t)
	ct, err := wechatpay.EncryptSensitive(&k.PlatformPrivate.PublicKey, "张三 Trading Ltd")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := wechatpay.EncryptSensitive(&k.PlatformPrivate.PublicKey, "张三 Trading Ltd")
	if ct == again {
		t.Fatal("RSA-OAEP must be randomized")
	}
	if plain, err := wechatpay.DecryptSensitive(k.PlatformPrivate, ct); err != nil || plain != "张三 Trading Ltd" {
		t.Fatalf("DecryptSensitive = %q, %v", plain, err)
	}
	if _, err := wechatpay.DecryptSensitive(k.MerchantPrivate, ct); err == nil {
		t.Fatal("decrypted with the wrong key")
	}
}
