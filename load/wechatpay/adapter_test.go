package wechatpay_test

import (
	"context"
	"crypto/rsa"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// TestWeChatPreflight: the adapter's preflight passes with the
// credentials WeChat Pay knows and is exit 2, in one line naming WeChat Pay,
// with a merchant key it refuses; nothing but the one query is sent.
func TestWeChatPreflight(t *testing.T) {
	keys, err := wechatpaytest.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	fake := wechatpaytest.New(wechatpaytest.Options{Keys: keys, MchID: "1900000100"})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	setup := func(key *rsa.PrivateKey) *wechatpay.Adapter {
		cfg := fake.ClientConfig(srv.URL)
		cfg.PrivateKey, cfg.HTTP = key, wechatpay.NewHTTPClient(10*time.Second)
		return newAdapter(t, cfg)
	}
	ctx := context.Background()
	if err := setup(keys.MerchantPrivate).Preflight(ctx); err != nil {
		t.Fatalf("good credentials: %v", err)
	}
	err = setup(keys.PlatformPrivate).Preflight(ctx)
	if pipeline.KindOf(err) != pipeline.KindUsage || pipeline.KindOf(err).ExitCode() != 2 || !strings.HasPrefix(err.Error(), "WeChat Pay: our request signature was refused") ||
		strings.Contains(err.Error(), "\n") {
		t.Fatalf("refused merchant key: %v", err)
	}
	if n := fake.Calls(wechatpay.APIQueryOrder); n != 2 {
		t.Fatalf("%d queries, want one per preflight", n)
	}
}

// TestWeChatRefusedReceiverIsAskedOnce: where WeChat Pay refuses the
// platform's receiver, every transaction of that sub-merchant gets the
// same refusal, which is asked for once a run.
func TestWeChatRefusedReceiverIsAskedOnce(t *testing.T) {
	keys, err := wechatpaytest.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	fake := wechatpaytest.New(wechatpaytest.Options{Keys: keys, MchID: "1900000100"})
	fake.PoisonReceivers("1900000042", "PARAM_ERROR")
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	cfg := fake.ClientConfig(srv.URL)
	api := newAdapter(t, cfg)
	for range 3 {
		var we *wechatpay.Error
		if _, err := api.EnsureReceiver(context.Background(), "1900000042"); !errors.As(err, &we) || !we.Refused() || we.Code != "PARAM_ERROR" {
			t.Fatalf("refused receiver: %v", err)
		}
	}
	if n := fake.Calls(wechatpay.APIAddReceiver); n != 1 {
		t.Fatalf("%d adds, want 1", n)
	}
}

// newAdapter returns the adapter of a client of cfg, paying the platform's
// receiver 1900009999.
func newAdapter(t testing.TB, cfg wechatpay.Config) *wechatpay.Adapter {
	t.Helper()
	client, err := wechatpay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return wechatpay.NewAdapter(client, wechatpay.NewReceiver{Type: wechatpay.TypeMerchantID, Account: "1900009999",
		Name: "Platform Ltd", RelationType: wechatpay.RelationDistributor})
}

// The ledger is the store of the stage and the matcher.
var _ wechatpay.ProviderStore = (*ledger.Ledger)(nil)
