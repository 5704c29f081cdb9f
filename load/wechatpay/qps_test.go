package wechatpay_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
)

// burst makes n concurrent queries for each sub-merchant and returns the
// errors.
func burst(r *rig, n int, subs ...string) []error {
	var wg sync.WaitGroup
	errs := make(chan error, n*len(subs))
	for _, sub := range subs {
		r.fake.AddTransaction(sub, "T-"+sub, "CNY", 100)
		for range n {
			wg.Go(func() {
				if _, err := r.client.RemainingAmount(context.Background(), sub, "T-"+sub); err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	var out []error
	for err := range errs {
		out = append(out, err)
	}
	return out
}

// TestSubMerchantQPSLimit: WeChat Pay allows 30 QPS per sub-merchant. A
// burst above it meets 429 FREQUENCY_LIMITED (counted by the fake: 60 at
// one instant of its limits' clock, held still, are 30 refused); a client
// limited to 30/s meets none.
func TestSubMerchantQPSLimit(t *testing.T) {
	t.Run("burst", func(t *testing.T) {
		instant := time.Now()
		r := newRig(t, wechatpaytest.Options{LimitClock: func() time.Time { return instant }}, nil,
			func(c *wechatpay.Config) { c.MaxRetries = -1 })
		errs := burst(r, 60, subMchID)
		if n := r.fake.Count429(); n != 30 || len(errs) != n {
			t.Fatalf("%d 429s counted, %d errors; want 30 of 60 refused", n, len(errs))
		}
		var we *wechatpay.Error
		if !errors.As(errs[0], &we) || we.HTTPStatus != 429 || we.Code != wechatpay.CodeFrequencyLimited || !we.Transient() {
			t.Fatalf("refusal: %v", errs[0])
		}
	})
	t.Run("client limited to 30/s", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, wechatpaytest.Options{}, nil, func(c *wechatpay.Config) { c.Limiter = rate.NewLimiter(30, 1) })
		if errs := burst(r, 40, subMchID); len(errs) != 0 || r.fake.Count429() != 0 {
			t.Fatalf("%d errors, %d 429s: %v", len(errs), r.fake.Count429(), errs)
		}
	})
	t.Run("client limited to 30/s per sub-merchant", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, wechatpaytest.Options{}, nil, func(c *wechatpay.Config) { c.SubMerchantLimit = 30 })
		if errs := burst(r, 20, "1900000201", "1900000202", "1900000203"); len(errs) != 0 || r.fake.Count429() != 0 {
			t.Fatalf("%d errors, %d 429s: %v", len(errs), r.fake.Count429(), errs)
		}
	})
}
