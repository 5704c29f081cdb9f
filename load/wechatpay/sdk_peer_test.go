package wechatpay_test

// Tests against WeChat Pay's official Go SDK (github.com/wechatpay-apiv3/
// wechatpay-go, pinned at v0.2.20, test-only): a peer nobody here wrote.
// Its core client calls every endpoint of our fake and validates the
// answers; its verifier checks our client's Authorization headers; answers
// signed with its signer are read by our client; RSA-OAEP both ways with its
// utils.

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/signers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/validators"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
)

// sdkClient is the SDK's core client with our merchant credential,
// verifying answers with the platform public key (or not at all).
func sdkClient(t *testing.T, k wechatpaytest.Keys, hc *http.Client, validate bool) *core.Client {
	t.Helper()
	opts := []core.ClientOption{option.WithMerchantCredential(mchID, k.MerchantSerial, k.MerchantPrivate), option.WithHTTPClient(hc)}
	if validate {
		opts = append(opts, option.WithVerifier(verifiers.NewSHA256WithRSAPubkeyVerifier(k.PlatformSerial, k.PlatformPrivate.PublicKey)))
	} else {
		opts = append(opts, option.WithoutValidator())
	}
	c, err := core.NewClient(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSDKClientCallsEveryEndpointOfTheFake: the fake authenticates the
// SDK's Authorization headers and the SDK's validator accepts every answer
// the fake signs, on every endpoint, in the shapes WeChat Pay publishes.
func TestSDKClientCallsEveryEndpointOfTheFake(t *testing.T) {
	ctx := context.Background()
	// The SDK judges timestamps by the real clock: so does the fake here.
	r := newRig(t, wechatpaytest.Options{Now: time.Now, Polls: -1}, nil, nil)
	k := r.keys
	sdk := sdkClient(t, k, r.cfg.HTTP, true)
	api := r.srv.URL + "/v3/global/profit-sharing/"
	call := func(method, path string, body any, want int) []byte {
		t.Helper()
		var res *core.APIResult
		var err error
		switch method {
		case http.MethodGet:
			res, err = sdk.Get(ctx, path)
		case http.MethodPost:
			res, err = sdk.Post(ctx, path, body)
		case http.MethodDelete:
			res, err = sdk.Delete(ctx, path, body)
		}
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		if res.Response.StatusCode != want {
			t.Fatalf("%s %s: HTTP %d, want %d", method, path, res.Response.StatusCode, want)
		}
		return readAll(t, res.Response)
	}
	decode := func(b []byte, v any) {
		t.Helper()
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
	}

	call(http.MethodPost, api+"transactions/mark", map[string]string{"sub_mchid": subMchID, "out_trade_no": "P1", "currency": "CNY"}, 204)

	name, err := utils.EncryptOAEPWithPublicKey("示例平台 Platform Ltd", &k.PlatformPrivate.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	var rcv struct{ State string }
	decode(call(http.MethodPost, api+"receivers", map[string]string{"sub_mchid": subMchID, "type": wechatpay.TypeMerchantID,
		"account": mchID, "name": name, "relation_type": wechatpay.RelationDistributor}, 200), &rcv)
	if _, got, _ := r.fake.Receiver(subMchID, wechatpay.TypeMerchantID, mchID); got != "示例平台 Platform Ltd" || rcv.State != wechatpay.ReceiverInit {
		t.Fatalf("receiver %+v named %q", rcv, got)
	}
	decode(call(http.MethodGet, api+"receivers/"+mchID+"?sub_mchid="+subMchID+"&type="+wechatpay.TypeMerchantID, nil, 200), &rcv)
	decode(call(http.MethodGet, api+"receivers/"+mchID+"?sub_mchid="+subMchID+"&type="+wechatpay.TypeMerchantID, nil, 200), &rcv)
	if rcv.State != wechatpay.ReceiverEffective {
		t.Fatalf("receiver after review: %+v", rcv)
	}

	r.fake.AddTransaction(subMchID, "T1", "CNY", 100_00)
	var left struct {
		UnsplitAmount int64  `json:"unsplit_amount"`
		Currency      string `json:"currency"`
	}
	decode(call(http.MethodGet, api+"transactions/T1/amounts?sub_mchid="+subMchID, nil, 200), &left)
	if left.UnsplitAmount != 100_00 || left.Currency != "CNY" {
		t.Fatalf("amounts: %+v", left)
	}
	var order struct {
		OutOrderNo string `json:"out_order_no"`
		State      string `json:"state"`
		Receivers  []struct {
			Amount int64  `json:"amount"`
			Result string `json:"result"`
		} `json:"receivers"`
	}
	// The fake dates the bill's lines and the settlement by the real clock
	// in Beijing when the orders are made: the day is read before them and
	// again after, so a Beijing midnight between the two is no failure.
	first := pipeline.DateOf(time.Now().In(wechatpay.Beijing))
	decode(call(http.MethodPost, api+"orders", map[string]any{"sub_mchid": subMchID, "transaction_id": "T1", "out_order_no": "D-1",
		"receivers": []map[string]any{{"currency": "CNY", "type": wechatpay.TypeMerchantID, "account": mchID, "amount": 30_00,
			"description": "commission"}}, "unfreeze_unsplit": false}, 200), &order)
	decode(call(http.MethodGet, api+"orders/D-1?sub_mchid="+subMchID+"&transaction_id=T1", nil, 200), &order)
	if order.OutOrderNo != "D-1" || order.State != wechatpay.StateFinished || len(order.Receivers) != 1 || order.Receivers[0].Result != wechatpay.ResultSuccess {
		t.Fatalf("order: %+v", order)
	}
	decode(call(http.MethodPost, api+"orders/unfreeze", map[string]string{"sub_mchid": subMchID, "transaction_id": "T1",
		"out_order_no": "U-1", "description": "rest to the seller"}, 200), &order)
	if order.OutOrderNo != "U-1" || r.fake.Unfrozen("T1") != 70_00 {
		t.Fatalf("unfreeze: %+v", order)
	}

	// The bill: only a download URL; the file itself is unsigned, so the
	// SDK downloads it without its validator, as it does mainland bills.
	day, last := first, pipeline.DateOf(time.Now().In(wechatpay.Beijing))
	var lines []wechatpay.BillLine
	for d := first; !last.Before(d); d = d.AddDays(1) {
		var bill map[string]string
		decode(call(http.MethodGet, api+"bill-download-url?sub_mchid="+subMchID+"&bill_date="+d.String(), nil, 200), &bill)
		if len(bill) != 1 || !strings.HasPrefix(bill["download_url"], "https://") {
			t.Fatalf("bill-download-url answer %v: want download_url alone, over TLS", bill)
		}
		res, err := sdkClient(t, k, r.cfg.HTTP, false).Get(ctx, bill["download_url"])
		if err != nil {
			t.Fatal(err)
		}
		got, err := wechatpay.DefaultBillLayout.Parse(readAll(t, res.Response))
		if err != nil {
			t.Fatalf("bill of %s: %v", d, err)
		}
		lines = append(lines, got...)
	}
	if len(lines) != 2 || lines[0].Sponsor != subMchID || lines[0].Initiator != mchID {
		t.Fatalf("bill: %+v", lines)
	}

	var settled struct {
		Data []struct {
			BatchID        string `json:"batch_id"`
			TradeStartDate string `json:"trade_start_date"`
			Amount         struct {
				Unsettle int64  `json:"unsettle"`
				Currency string `json:"currency"`
			} `json:"amount"`
		} `json:"data"`
	}
	decode(call(http.MethodGet, r.srv.URL+"/v3/global/settle/settlements?sub_mchid="+subMchID+"&settle_state=UNSETTLE&settle_start_date="+
		day.Compact()+"&settle_end_date="+day.AddDays(1).Compact()+"&offset=0&limit=10", nil, 200), &settled)
	if len(settled.Data) != 1 || settled.Data[0].Amount.Unsettle != 30_00 || (settled.Data[0].TradeStartDate != day.Compact() && settled.Data[0].TradeStartDate != last.Compact()) {
		t.Fatalf("settlements: %+v", settled)
	}

	// DELETE receivers: 204, signed, accepted by the SDK's validator.
	call(http.MethodDelete, api+"receivers", map[string]string{"sub_mchid": subMchID, "type": wechatpay.TypeMerchantID, "account": mchID}, 204)

	// A signed error answer: the SDK reads WeChat's code.
	_, err = sdk.Get(ctx, api+"orders/NEVER?sub_mchid="+subMchID+"&transaction_id=T1")
	var ae *core.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 404 || ae.Code != wechatpay.CodeNotFound {
		t.Fatalf("unknown order through the SDK: %v", err)
	}
	if n := r.fake.WithoutSerial(); n != 1 { // the bill download, sent by the SDK without a validator
		t.Fatalf("%d requests without Wechatpay-Serial, want 1", n)
	}
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sdkSigned is a fake WeChat Pay answering body with status, signed with
// the SDK's signer (the platform key) at the time at(), recording the
// requests it got.
type sdkSigned struct {
	t      *testing.T
	key    *rsa.PrivateKey
	serial string
	status int
	body   string
	at     func() time.Time
	tamper bool // change the body after signing

	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	method, uri, auth, serial string
	body                      []byte
}

func (s *sdkSigned) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.reqs = append(s.reqs, recorded{r.Method, r.RequestURI, r.Header.Get("Authorization"), r.Header.Get(wechatpay.HeaderSerial), body})
	s.mu.Unlock()
	ts, nonce := strconv.FormatInt(s.at().Unix(), 10), "SDKNONCE0123456789"
	signer := &signers.SHA256WithRSASigner{MchID: mchID, PrivateKey: s.key, CertificateSerialNo: s.serial}
	sig, err := signer.Sign(context.Background(), ts+"\n"+nonce+"\n"+s.body+"\n")
	if err != nil {
		s.t.Error(err)
		return
	}
	h := w.Header()
	h.Set(wechatpay.HeaderTimestamp, ts)
	h.Set(wechatpay.HeaderNonce, nonce)
	h.Set(wechatpay.HeaderSerial, s.serial)
	h.Set(wechatpay.HeaderSignature, sig.Signature)
	h.Set("Content-Type", "application/json")
	w.WriteHeader(s.status)
	out := s.body
	if s.tamper {
		out = strings.Replace(out, "7000", "7001", 1)
	}
	w.Write([]byte(out))
}

func (s *sdkSigned) requests() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.reqs...)
}

// sdkRig is our client talking to an sdkSigned server, on the real clock
// (the SDK's verifier judges by it).
func sdkRig(t *testing.T, s *sdkSigned) *wechatpay.Client {
	t.Helper()
	k := testKeys(t)
	s.t, s.key, s.serial = t, k.PlatformPrivate, platformSerial
	if s.at == nil {
		s.at = time.Now
	}
	if s.status == 0 {
		s.status = http.StatusOK
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c, err := wechatpay.New(wechatpay.Config{BaseURL: srv.URL, MchID: mchID, SerialNo: merchantSerial, PrivateKey: k.MerchantPrivate,
		PlatformKeys: map[string]*rsa.PublicKey{platformSerial: &k.PlatformPrivate.PublicKey}, HTTP: wechatpay.NewHTTPClient(5 * time.Second),
		MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const unsplitAnswer = `{"transaction_id":"4208450740201411110007820472","unsplit_amount":7000,"currency":"CNY"}`

// TestOurAuthorizationVerifiesWithTheSDK: the SDK's verifier accepts our
// request signatures, and the SDK's signer makes the very same signature
// over the same message (PKCS #1 v1.5 is deterministic).
func TestOurAuthorizationVerifiesWithTheSDK(t *testing.T) {
	ctx := context.Background()
	s := &sdkSigned{body: unsplitAnswer}
	c := sdkRig(t, s)
	if _, err := c.RemainingAmount(ctx, subMchID, "4208450740201411110007820472"); err != nil {
		t.Fatal(err)
	}
	c.Mark(ctx, wechatpay.MarkRequest{SubMchID: subMchID, OutTradeNo: "P-中文-1", Currency: "CNY"}) // a body; the answer does not matter
	k := testKeys(t)
	verifier := verifiers.NewSHA256WithRSAPubkeyVerifier(merchantSerial, k.MerchantPrivate.PublicKey)
	signer := &signers.SHA256WithRSASigner{MchID: mchID, PrivateKey: k.MerchantPrivate, CertificateSerialNo: merchantSerial}
	reqs := s.requests()
	if len(reqs) != 2 || len(reqs[1].body) == 0 {
		t.Fatalf("requests %+v", reqs)
	}
	for _, r := range reqs {
		a, err := wechatpay.ParseAuthorization(r.auth)
		if err != nil || a.MchID != mchID || a.Serial != merchantSerial {
			t.Fatalf("%s %s: Authorization %q: %v", r.method, r.uri, r.auth, err)
		}
		msg := fmt.Sprintf("%s\n%s\n%d\n%s\n%s\n", r.method, r.uri, a.Timestamp, a.Nonce, r.body)
		if err := verifier.Verify(ctx, a.Serial, msg, a.Signature); err != nil {
			t.Fatalf("%s %s: the SDK's verifier refuses our signature: %v", r.method, r.uri, err)
		}
		theirs, err := signer.Sign(ctx, msg)
		if err != nil || theirs.Signature != a.Signature {
			t.Fatalf("%s %s: the SDK signs %q, we sent %q (%v)", r.method, r.uri, theirs.Signature, a.Signature, err)
		}
		if r.serial != platformSerial {
			t.Fatalf("%s %s: Wechatpay-Serial %q, want %s", r.method, r.uri, r.serial, platformSerial)
		}
	}
}

// TestSDKSignedAnswers: an answer signed with the SDK's signer is read; one
// altered after signing, or signed 5 minutes or more ago, is refused - as
// the SDK's own validator judges each of them.
func TestSDKSignedAnswers(t *testing.T) {
	ctx := context.Background()
	k := testKeys(t)
	validator := validators.NewWechatPayResponseValidator(verifiers.NewSHA256WithRSAPubkeyVerifier(platformSerial, k.PlatformPrivate.PublicKey))
	stale := func() time.Time { return time.Now().Add(-wechatpay.MaxSkew - time.Second) }
	for name, s := range map[string]*sdkSigned{
		"good":     {body: unsplitAnswer},
		"tampered": {body: unsplitAnswer, tamper: true},
		"stale":    {body: unsplitAnswer, at: stale},
	} {
		sdkRig(t, s)
		srv := httptest.NewServer(s)
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		sdkErr := validator.Validate(ctx, resp) // reads and restores the body
		body := readAll(t, resp)
		ourErr := wechatpay.VerifyResponse(map[string]*rsa.PublicKey{platformSerial: &k.PlatformPrivate.PublicKey}, resp.Header, body, time.Now())
		srv.Close()
		if (sdkErr == nil) != (name == "good") || (ourErr == nil) != (name == "good") {
			t.Fatalf("%s: the SDK's validator says %v, ours %v", name, sdkErr, ourErr)
		}
	}

	u, err := sdkRig(t, &sdkSigned{body: unsplitAnswer}).RemainingAmount(ctx, subMchID, "4208450740201411110007820472")
	if err != nil || u.Amount != 7000 || u.Currency != "CNY" {
		t.Fatalf("SDK-signed answer: %+v, %v", u, err)
	}
	_, err = sdkRig(t, &sdkSigned{body: unsplitAnswer, tamper: true}).RemainingAmount(ctx, subMchID, "4208450740201411110007820472")
	if !errors.Is(err, wechatpay.ErrSignature) {
		t.Fatalf("tampered answer: %v", err)
	}
	_, err = sdkRig(t, &sdkSigned{body: unsplitAnswer, at: stale}).RemainingAmount(ctx, subMchID, "4208450740201411110007820472")
	if !errors.Is(err, wechatpay.ErrStale) {
		t.Fatalf("stale answer: %v", err)
	}
}

// TestOAEPWithTheSDK: what we encrypt the SDK decrypts, and the other way.
func TestOAEPWithTheSDK(t *testing.T) {
	k := testKeys(t)
	ours, err := wechatpay.EncryptSensitive(&k.PlatformPrivate.PublicKey, "示例平台 Platform Ltd")
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := utils.DecryptOAEP(ours, k.PlatformPrivate); err != nil || plain != "示例平台 Platform Ltd" {
		t.Fatalf("the SDK decrypts ours: %q, %v", plain, err)
	}
	theirs, err := utils.EncryptOAEPWithPublicKey("张三", &k.PlatformPrivate.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := wechatpay.DecryptSensitive(k.PlatformPrivate, theirs); err != nil || plain != "张三" {
		t.Fatalf("we decrypt the SDK's: %q, %v", plain, err)
	}
}
