package wechatpay_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/internal/httpcall/httpcalltest"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
)

// TestADistributionIsNotSentAgainByTheTransport: WeChat Pay (or a proxy
// before it) speaks HTTP/2, reads the distribution and resets its stream
// with PROTOCOL_ERROR. Go's transport sent the request again by itself,
// unasked, before the client saw an error: a distribution reached WeChat
// Pay twice without a query between (found by a review of the
// transport). It reaches it once, and its outcome is unknown.
func TestADistributionIsNotSentAgainByTheTransport(t *testing.T) {
	t.Parallel()
	s := httpcalltest.NewStreamResetter(t)
	clock := newClock()
	cfg := wechatpaytest.New(wechatpaytest.Options{Keys: testKeys(t), MchID: mchID, Now: clock.Now, Faults: fault.New(1)}).ClientConfig(s.URL)
	cfg.HTTP, cfg.Timeout, cfg.Now = wechatpay.NewHTTPClient(5*time.Second), 10*time.Second, clock.Now
	s.Trust(cfg.HTTP)
	c, err := wechatpay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Distribute(context.Background(), distribution("WXD-20250903-S1-1", 20_00)); !errors.Is(err, wechatpay.ErrUnknownOutcome) {
		t.Fatalf("err = %v, want an unknown outcome", err)
	}
	if n := s.Requests(); n != 1 {
		t.Fatalf("the distribution reached WeChat Pay %d times, want once", n)
	}
}
