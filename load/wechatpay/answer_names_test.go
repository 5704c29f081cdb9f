package wechatpay_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
)

// TestAnOrderAnswerAboutAnotherSubMerchantOrReceiverIsNotOurs: WeChat
// Pay's signed answer about our out_order_no that names another
// sub-merchant, or pays the commission to a receiver the request did not
// name, is not the request we sent: it was taken as our distribution
// succeeded (the commission recorded collected, the seller's share
// released) while the lines it reports are someone else's. Such an
// answer is one we cannot use (ErrAnswer): the effect stays as it is,
// asked again by its out_order_no, never succeeded on it.
func TestAnOrderAnswerAboutAnotherSubMerchantOrReceiverIsNotOurs(t *testing.T) {
	ctx := context.Background()
	for name, swap := range map[string][2]string{
		"another sub-merchant": {`"sub_mchid":"` + subMchID + `"`, `"sub_mchid":"1900000777"`},
		"another receiver":     {`"account":"` + mchID + `"`, `"account":"1900000999"`},
	} {
		t.Run(name, func(t *testing.T) {
			var on atomic.Bool
			var clock *testClock
			r := newRig(t, wechatpaytest.Options{Polls: -1}, resign(testKeys(t), func() time.Time { return clock.Now() }, func(b []byte) []byte {
				if on.Load() {
					b = []byte(strings.ReplaceAll(string(b), swap[0], swap[1]))
				}
				return b
			}), nil)
			clock = r.clock
			payable(r)
			s := sender(r)
			e := effect(wechatpay.KindDistribution, "WXD-20250903-S1-1", 20_00)
			if out, err := s.Send(ctx, e); err != nil || out.Status != pipeline.OutcomeSucceeded {
				t.Fatalf("Send = %+v, %v; want succeeded", out, err)
			}
			on.Store(true)
			out, err := s.Query(ctx, e)
			if err == nil || !errors.Is(err, wechatpay.ErrAnswer) {
				t.Fatalf("answer naming %s: %+v, %v; want an answer we cannot use (ErrAnswer)", swap[1], out, err)
			}
		})
	}
}

// TestAReceiverAnswerAboutAnotherSubMerchantIsNotOurs: the receiver result
// of our receiver at another sub-merchant (EFFECTIVE there) was taken as
// its state at ours: the stage then distributed to a receiver our
// sub-merchant may have no relation with, or judged its review by another
// sub-merchant's.
func TestAReceiverAnswerAboutAnotherSubMerchantIsNotOurs(t *testing.T) {
	ctx := context.Background()
	var clock *testClock
	r := newRig(t, wechatpaytest.Options{}, resign(testKeys(t), func() time.Time { return clock.Now() }, func(b []byte) []byte {
		return []byte(strings.ReplaceAll(string(b), `"sub_mchid":"`+subMchID+`"`, `"sub_mchid":"1900000777"`))
	}), nil)
	clock = r.clock
	payable(r)
	st, err := r.client.ReceiverResult(ctx, wechatpay.ReceiverRef{SubMchID: subMchID, Type: wechatpay.TypeMerchantID, Account: mchID})
	if !errors.Is(err, wechatpay.ErrAnswer) {
		t.Fatalf("a receiver answer about sub-merchant 1900000777: %+v, %v; want ErrAnswer", st, err)
	}
}
