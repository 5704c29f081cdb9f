package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
)

// weChatFake returns a fake WeChat Pay, enforcing what WeChat Pay
// publishes of an added receiver, and a client configuration for it.
func weChatFake(t *testing.T) (*wechatpaytest.Server, wechatpay.Config) {
	t.Helper()
	keys, err := wechatpaytest.GenerateKeysOfSize(1024) // test keys: fast to make
	if err != nil {
		t.Fatal(err)
	}
	fake := wechatpaytest.New(wechatpaytest.Options{Keys: keys})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	cfg := fake.ClientConfig(srv.URL)
	cfg.EncryptSerial = keys.PlatformSerial
	return fake, cfg
}

// TestThePlatformsCustomRelationIsOneWeChatPayTakes: with
// --wechat-receiver-relation CUSTOM, the platform's receiver was added
// with the custom_relation "marketplace platform", 20 characters, where
// WeChat Pay publishes at most 10 ("本字段最多10个字"): refused
// (PARAM_ERROR) at every sub-merchant, every order with a commission was
// held, every run. The fake, taught the limit, adds it.
func TestThePlatformsCustomRelationIsOneWeChatPayTakes(t *testing.T) {
	fake, cfg := weChatFake(t)
	w, err := newWeChat(cfg, 0, 0, "1900009999", "Platform Ltd", wechatpay.RelationCustom, 3000)
	if err != nil {
		t.Fatalf("settle refused the relation CUSTOM: %v", err)
	}
	r := w.receiver
	r.SubMchID = "1900000109"
	st, err := w.client.EnsureReceiver(context.Background(), r)
	if err != nil || st.State != wechatpay.ReceiverInit {
		t.Fatalf("platform receiver with custom_relation %q: %+v, %v: want it added (INIT)", r.CustomRelation, st, err)
	}
	if _, _, found := fake.Receiver("1900000109", wechatpay.TypeMerchantID, "1900009999"); !found {
		t.Fatal("the fake holds no receiver")
	}
}

// TestAReceiverRelationWeChatPayDoesNotPublishIsAUsageError: a relation
// type WeChat Pay does not publish (a typo) was taken at start, and the
// platform's receiver refused (PARAM_ERROR) at every sub-merchant: every
// order with a commission held, every run. It is a usage error (exit 2)
// naming the flag, before anything is sent; the fake refuses it too.
func TestAReceiverRelationWeChatPayDoesNotPublishIsAUsageError(t *testing.T) {
	fake, cfg := weChatFake(t)
	_, err := newWeChat(cfg, 0, 0, "1900009999", "Platform Ltd", "DISTRIBUTER", 3000)
	if pipeline.KindOf(err) != pipeline.KindUsage || err == nil {
		t.Fatalf("relation DISTRIBUTER: err %v: want a usage error", err)
	}
	if n := fake.Calls(wechatpay.APIAddReceiver); n != 0 {
		t.Fatalf("%d receivers added: want none", n)
	}

	// The fake refuses what WeChat Pay refuses (the client's check
	// bypassed with a raw request).
	for _, body := range []string{
		`{"sub_mchid":"1900000109","type":"MERCHANT_ID","account":"1900009999","name":"NAME","relation_type":"DISTRIBUTER"}`,
		`{"sub_mchid":"1900000109","type":"MERCHANT_ID","account":"1900009999","name":"NAME","relation_type":"CUSTOM","custom_relation":"marketplace platform"}`,
	} {
		if code, msg := rawWeChatPost(t, cfg, "/v3/global/profit-sharing/receivers", body); code != http.StatusBadRequest || !strings.Contains(msg, "relation") {
			t.Errorf("the fake answered %d %s to %s: want 400 PARAM_ERROR about the relation", code, msg, body)
		}
	}
}

// rawWeChatPost posts body to the fake at path, signed as WeChat Pay
// asks, with the platform receiver's name encrypted in place of NAME,
// and returns the HTTP status and body.
func rawWeChatPost(t *testing.T, cfg wechatpay.Config, path, body string) (int, string) {
	t.Helper()
	name, err := wechatpay.EncryptSensitive(cfg.PlatformKeys[cfg.EncryptSerial], "Platform Ltd")
	if err != nil {
		t.Fatal(err)
	}
	b := []byte(strings.Replace(body, `"NAME"`, `"`+name+`"`, 1))
	ts, nonce := time.Now().Unix(), wechatpay.NewNonce()
	sig, err := wechatpay.Sign(cfg.PrivateKey, wechatpay.RequestMessage(http.MethodPost, path, ts, nonce, b))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, cfg.BaseURL+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", fmt.Sprintf(`WECHATPAY2-SHA256-RSA2048 mchid="%s",nonce_str="%s",timestamp="%d",serial_no="%s",signature="%s"`,
		cfg.MchID, nonce, ts, cfg.SerialNo, sig))
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(wechatpay.HeaderSerial, cfg.EncryptSerial)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(msg)
}
