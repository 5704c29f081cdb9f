package wechatpay_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
)

// TestADistributionRefusedForOurKeyIsNotTaken: WeChat Pay answering a
// distribution or an unfreeze HTTP 401 SIGN_ERROR (our merchant
// certificate changed at WeChat Pay) refused who we are, not the request:
// WeChat Pay publishes that a request whose signature does not verify is
// not executed. The send's error says it moved nothing
// (pipeline.ErrNotTaken: unknown to the engine, asked about by its
// out_order_no, never failed for it), keeps its kind (usage, exit 2) and
// names the flags to check. It was an ordinary unknown send, counted as
// a money movement. Left unmarked, as what WeChat Pay may have executed:
// a 401 after a SYSTEM_ERROR (the first attempt may have been applied),
// a 401 without WeChat Pay's code (not its published answer), and an
// answer we cannot verify (WeChat Pay signs its answer to a request
// whose signature it took).
func TestADistributionRefusedForOurKeyIsNotTaken(t *testing.T) {
	ctx := context.Background()
	other, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{wechatpay.KindDistribution, wechatpay.KindUnfreeze} {
		r := newRig(t, faults(), nil, nil)
		payable(r)
		r.fake.RegisterMerchantKey(&other.PublicKey)
		_, err := sender(r).Send(ctx, effect(kind, "WXD-REFUSED", 1_00))
		if !errors.Is(err, pipeline.ErrNotTaken) || errors.Is(err, wechatpay.ErrUnknownOutcome) || pipeline.KindOf(err) != pipeline.KindUsage ||
			!strings.Contains(err.Error(), wechatpay.CodeSignError) || !strings.Contains(err.Error(), "--wechat-private-key-file") ||
			!strings.Contains(err.Error(), "--wechat-serial") || !strings.Contains(err.Error(), "--wechat-mchid") {
			t.Fatalf("%s refused for our key: %v; want a usage error marked not taken, naming the flags", kind, err)
		}
		if n := r.fake.Calls(wechatpay.APIOrders) + r.fake.Calls(wechatpay.APIUnfreeze); n != 1 {
			t.Errorf("%s: %d requests, want 1: refused credentials are never retried", kind, n)
		}
		if n := r.fake.Calls(wechatpay.APIQueryOrder); n != 0 {
			t.Errorf("%s: %d queries, want none: WeChat Pay would refuse them too", kind, n)
		}
	}

	// A SYSTEM_ERROR first (WeChat Pay may have applied it), then our key
	// refused: unknown, and may have been taken.
	var r *rig
	var calls atomic.Int64
	r = newRig(t, faults(fault.Rule{Endpoint: wechatpay.APIOrders, Kind: fault.ServerError, Calls: []int{1}}), func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if calls.Add(1) == 2 {
				r.fake.RegisterMerchantKey(&other.PublicKey)
			}
			next.ServeHTTP(w, req)
		})
	}, nil)
	payable(r)
	if _, err := sender(r).Send(ctx, effect(wechatpay.KindDistribution, "WXD-500-401", 1_00)); errors.Is(err, pipeline.ErrNotTaken) ||
		!errors.Is(err, wechatpay.ErrUnknownOutcome) || pipeline.KindOf(err) != pipeline.KindUsage {
		t.Fatalf("SYSTEM_ERROR then 401: %v; want a usage error, unknown, not marked not taken", err)
	}

	// A bare 401, without WeChat Pay's {code, message}.
	r = newRig(t, faults(), func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusUnauthorized) })
	}, nil)
	if _, err := sender(r).Send(ctx, effect(wechatpay.KindDistribution, "WXD-BARE-401", 1_00)); errors.Is(err, pipeline.ErrNotTaken) ||
		pipeline.KindOf(err) != pipeline.KindUsage {
		t.Fatalf("bare 401: %v; want a usage error not marked not taken", err)
	}

	// An answer that does not verify with our platform key: WeChat Pay
	// took our signature, and may have applied the request.
	r = newRig(t, faults(), nil, func(c *wechatpay.Config) {
		for serial := range c.PlatformKeys {
			c.PlatformKeys[serial] = &other.PublicKey
		}
	})
	payable(r)
	if _, err := sender(r).Send(ctx, effect(wechatpay.KindDistribution, "WXD-UNVERIFIED", 1_00)); errors.Is(err, pipeline.ErrNotTaken) ||
		pipeline.KindOf(err) != pipeline.KindUsage {
		t.Fatalf("answer not verified: %v; want a usage error not marked not taken", err)
	}
}

// TestWeChatRefusingOurKeyMidRunStopsTheDistributions: our merchant
// certificate changes at WeChat Pay after the stage sent its third
// distribution (401 SIGN_ERROR from then on). The stage stops at the
// first refusal (those in flight end), ends with a configuration error
// (exit 2) in one line naming the flags to check and saying nothing more
// was sent; none is failed (it would go again under a new out_order_no),
// the one refused is left unknown. The re-run with the key put right
// settles every transaction once, each under its first out_order_no.
func TestWeChatRefusingOurKeyMidRunStopsTheDistributions(t *testing.T) {
	const n, inFlight, rotateAt = 12, 2, 4
	other, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	var (
		r     *rig
		sends atomic.Int64
	)
	r = newRig(t, wechatpaytest.Options{Polls: -1}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/"+wechatpay.APIOrders) && sends.Add(1) == rotateAt {
				r.fake.RegisterMerchantKey(&other.PublicKey) // changed at WeChat Pay: this request on is refused
			}
			next.ServeHTTP(w, req)
		})
	}, nil)
	store := &reasonStore{batchStore: newBatchStore(n), reasons: map[string]string{}}
	store.sub, store.now = subMchID, r.clock.Now
	for _, it := range store.items {
		r.fake.AddTransaction(subMchID, it.ProviderTxnID, "CNY", it.Amount)
	}
	r.fake.SetReceiver(subMchID, wechatpay.TypeMerchantID, "1900009999", wechatpay.ReceiverEffective)
	api := wechatpay.NewAdapter(r.client, wechatpay.NewReceiver{Type: wechatpay.TypeMerchantID, Account: "1900009999",
		Name: "Platform Ltd", RelationType: wechatpay.RelationDistributor})
	stage := wechatpay.DistributeStage(wechatpay.StageConfig{Store: store, API: api, Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: inFlight}),
		Poll: time.Millisecond, Wait: 5 * time.Second})
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}

	_, err = stage(context.Background(), run)
	t.Logf("%d distributions sent: %v", sends.Load(), err)
	if pipeline.KindOf(err) != pipeline.KindUsage || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "--wechat-private-key-file") ||
		!strings.Contains(err.Error(), "nothing more was sent") {
		t.Fatalf("%v: want a configuration error in one line, naming the flags, nothing more sent", err)
	}
	if got := sends.Load(); got < rotateAt || got > rotateAt+inFlight-1 {
		t.Errorf("%d distributions sent, want %d to %d: nothing sent once WeChat Pay refused our key", got, rotateAt, rotateAt+inFlight-1)
	}
	refused := 0
	for _, e := range store.effects {
		switch {
		case e.State == pipeline.EffectFailed:
			t.Errorf("%s failed (%s): a refusal of our key is no refusal of the distribution", e.Key, e.LastError)
		case e.State == pipeline.EffectUnknown && strings.Contains(e.LastError, wechatpay.CodeSignError):
			refused++
		}
	}
	if refused == 0 {
		t.Errorf("no distribution left unknown with WeChat Pay's refusal: %+v", store.effects)
	}
	if held := store.count(pipeline.ItemHeld); held != 0 {
		t.Errorf("%d transactions held, want none", held)
	}

	// The key put right: every transaction settled once, under its first
	// out_order_no.
	r.fake.RegisterMerchantKey(&r.keys.MerchantPrivate.PublicKey)
	sends.Store(-1 << 30)
	if _, err := stage(context.Background(), run); err != nil {
		t.Fatalf("re-run: %v", err)
	}
	if paid := store.count(pipeline.ItemPaid); paid != n {
		t.Errorf("%d transactions paid, want %d", paid, n)
	}
	for _, e := range store.effects {
		if e.State != pipeline.EffectSucceeded || e.Attempt != 1 {
			t.Errorf("%s %s attempt %d, want the first succeeded", e.Key, e.State, e.Attempt)
		}
	}
	for _, it := range store.items {
		if got := r.fake.Distributed(it.ProviderTxnID); got != it.Commission {
			t.Errorf("%s: %d distributed, want its commission %d once", it.OrderNo, got, it.Commission)
		}
	}
}
