package wechatpay_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
)

// TestARefusedRepeatWaitsForTheFirstSend: a distribution sent again under
// its out_order_no after an unknown outcome (Effect.Sends 2), refused by
// WeChat Pay while its query does not know the out_order_no, may be the
// refusal of a repeat whose first send WeChat Pay applied and its query
// does not show yet (NOT_ENOUGH: the first took the funds). It was
// recorded failed, and the next attempt went under a new key. It is
// pending, asked about by its key and never sent a third time, and failed
// only once WeChat Pay has not known it for KnownAfter. A first send so
// refused is failed at once, as before.
func TestARefusedRepeatWaitsForTheFirstSend(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, faults(), nil, nil)
	payable(r)
	s := sender(r)
	e := effect(wechatpay.KindDistribution, "WXD-AGAIN", 90_00) // above what WeChat Pay holds: refused
	if out, err := s.Send(ctx, e); err != nil || out.Status != pipeline.OutcomeFailed {
		t.Fatalf("first send refused: %+v, %v; want failed", out, err)
	}
	e.Sends = 2
	out, err := s.Send(ctx, e)
	if err != nil || out.Status != pipeline.OutcomePending || !strings.Contains(out.Reason, "the first send may yet show") {
		t.Fatalf("repeat refused: %+v, %v; want pending, waiting for the first send", out, err)
	}
	e.LastError = out.Reason
	sent := r.fake.Calls(wechatpay.APIOrders)
	r.clock.Add(wechatpay.DefaultKnownAfter - time.Minute)
	if out, err := s.Query(ctx, e); err != nil || out.Status != pipeline.OutcomePending {
		t.Fatalf("asked within KnownAfter: %+v, %v; want pending (not found would send it a third time)", out, err)
	}
	r.clock.Add(2 * time.Minute)
	if out, err := s.Query(ctx, e); err != nil || out.Status != pipeline.OutcomeFailed || !strings.Contains(out.Reason, "the first send never arrived") {
		t.Fatalf("asked after KnownAfter: %+v, %v; want failed", out, err)
	}
	if n := r.fake.Calls(wechatpay.APIOrders); n != sent {
		t.Fatalf("%d more sends while it waited, want none", n-sent)
	}
}
