package main

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/settlekit/settle/internal/rsakey"
	"github.com/settlekit/settle/load/wechatpay"
)

// TestWeChatRefusingOurKeyMidRunSendsNothingMore: our merchant certificate
// changes at WeChat Pay after the run's second distribution (401
// SIGN_ERROR from then on). The run sends nothing more (--parallel 1) and
// ends exit 2 in one line naming --wechat-private-key-file. The request
// refused is unknown and recorded refused (WeChat Pay executes no request
// whose signature does not verify: no money moved); none failed. The
// re-run with the key put right settles each transaction once. Before,
// the refused request was an ordinary send error: "2 new money
// movements", and the line named no flag.
func TestWeChatRefusingOurKeyMidRunSendsNothingMore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "40", "--sellers", "2", "--seed", "15")
	sim := e.weChatSim(nil, 0)
	ours, err := rsakey.LoadPrivate(sim.Config.WeChatKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, testKeyBits)
	if err != nil {
		t.Fatal(err)
	}
	const rotateAt = 2
	var sends atomic.Int64
	u, err := url.Parse(sim.Config.WeChatURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && (strings.HasSuffix(r.URL.Path, "/"+wechatpay.APIOrders) || strings.HasSuffix(r.URL.Path, "/"+wechatpay.APIUnfreeze)) &&
			sends.Add(1) == rotateAt {
			sim.WeChat.RegisterMerchantKey(&other.PublicKey)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	sim.Config.WeChatURL = srv.URL + u.Path

	out, code := e.runWeChat(sim, "--parallel", "1")
	if code != 2 || !strings.Contains(out, "--wechat-private-key-file") || strings.Count(out, "refused our credentials") != 1 {
		t.Fatalf("exit %d, want 2 with one line naming our key:\n%s", code, out)
	}
	if !strings.Contains(out, "1 new money movements; 1 requests refused by the provider (no money moved)") {
		t.Errorf("want the run to count 1 new money movement, the send before the refusal (the refused one moved nothing):\n%s", out)
	}
	if n := sends.Load(); n != rotateAt {
		t.Errorf("%d distributions and unfreezes sent, want %d: nothing more once WeChat Pay refused our key", n, rotateAt)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE kind IN ($1, $2) AND state = 'failed'`, wechatpay.KindDistribution, wechatpay.KindUnfreeze); n != 0 {
		t.Errorf("%d requests failed: a refusal of our key is none of the request's", n)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects e WHERE kind IN ($1, $2) AND state = 'unknown'
		AND EXISTS (SELECT 1 FROM settle.effect_events v WHERE v.effect_id = e.id AND v.cause = 'refused')`, wechatpay.KindDistribution, wechatpay.KindUnfreeze); n != 1 {
		t.Errorf("%d requests unknown and recorded refused, want the one refused", n)
	}

	sim.WeChat.RegisterMerchantKey(&ours.PublicKey)
	sends.Store(-1 << 30)
	if out, code := e.runWeChat(sim); code != 0 {
		t.Fatalf("re-run: exit %d:\n%s", code, out)
	}
	e.checkWeChatOnce(sim)
}
