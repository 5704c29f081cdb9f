package wechatpay_test

// WeChat Pay's signature probes (签名探测流量): it publishes that it signs
// "a very few" answers and callbacks wrongly on purpose, with a
// Wechatpay-Signature starting "WECHATPAY/SIGNTEST/", to check that
// merchants verify signatures (pay.weixin.qq.com/doc/v3/merchant/4016241880).
// Such an answer is refused, as any that does not verify, but it says
// nothing of our keys: taken as one, a probe stopped the whole run as a
// configuration error ("check the platform public key", exit 2).

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
)

// TestTheSDKRefusesTheFakesSignatureProbe: the fake's probe is one WeChat
// Pay's official SDK refuses, and its next answer one the SDK accepts.
func TestTheSDKRefusesTheFakesSignatureProbe(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, wechatpaytest.Options{Now: time.Now}, nil, nil) // the SDK judges timestamps by the real clock
	payable(r)
	r.fake.ProbeSignatures(wechatpay.APIAmounts, 1)
	sdk := sdkClient(t, r.keys, r.cfg.HTTP, true)
	url := r.srv.URL + "/v3/global/profit-sharing/transactions/T1/amounts?sub_mchid=" + subMchID
	if _, err := sdk.Get(ctx, url); err == nil || !strings.Contains(err.Error(), "verif") {
		t.Fatalf("the SDK took the fake's signature probe: %v", err)
	}
	res, err := sdk.Get(ctx, url)
	if err != nil {
		t.Fatalf("the SDK refused the answer after the probe: %v", err)
	}
	res.Response.Body.Close()
}

// TestASignatureProbeIsNotAConfigurationError: a query answered with a
// probe is asked again; a distribution's outcome is unknown (applied, as
// WeChat Pay applies what a probed answer answers) and its query finds
// it; the preflight does not call it a configuration error. None is a
// pipeline.KindUsage error.
func TestASignatureProbeIsNotAConfigurationError(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, wechatpaytest.Options{}, nil, nil)
	payable(r)

	r.fake.ProbeSignatures(wechatpay.APIAmounts, 1)
	if u, err := r.client.RemainingAmount(ctx, subMchID, "T1"); err != nil || u.Amount != 100_00 {
		t.Fatalf("RemainingAmount after a probe: %+v, %v", u, err)
	}
	if n := r.fake.Calls(wechatpay.APIAmounts); n != 2 {
		t.Fatalf("%d calls, want the probed one and one more", n)
	}

	r.fake.ProbeSignatures(wechatpay.APIOrders, 1)
	_, err := r.client.Distribute(ctx, distribution("D-PROBE", 30_00))
	if !errors.Is(err, wechatpay.ErrUnknownOutcome) || !errors.Is(err, wechatpay.ErrSignProbe) || pipeline.KindOf(err) == pipeline.KindUsage {
		t.Fatalf("Distribute answered by a probe: %v (kind %v), want an unknown outcome", err, pipeline.KindOf(err))
	}
	if n := r.fake.Calls(wechatpay.APIOrders); n != 1 {
		t.Fatalf("a distribution answered by a probe was sent %d times", n)
	}
	if o, err := r.client.QueryOrder(ctx, subMchID, "T1", "D-PROBE"); err != nil || o.State != wechatpay.StateProcessing {
		t.Fatalf("query after the probe: %+v, %v", o, err)
	}

	// Every attempt of the preflight answered by a probe: no word on the
	// configuration.
	c := newRig(t, wechatpaytest.Options{}, nil, func(cfg *wechatpay.Config) { cfg.MaxRetries = -1 })
	c.fake.ProbeSignatures(wechatpay.APIQueryOrder, 1)
	err = c.client.Preflight(ctx)
	var we *wechatpay.Error
	if err == nil || pipeline.KindOf(err) == pipeline.KindUsage || !errors.As(err, &we) || !we.Transient() || we.HTTPStatus != http.StatusNotFound {
		t.Fatalf("Preflight answered by a probe: %v (kind %v)", err, pipeline.KindOf(err))
	}
	if err := c.client.Preflight(ctx); err != nil {
		t.Fatalf("Preflight after the probe: %v", err)
	}
}
