package wechatpay_test

import (
	"context"
	"errors"
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

// TestARefusedRepeatMarkedByAnEarlierVersionWaits: a refused repeat
// recorded before the rule moved into pipeline carries the mark this
// package wrote then (the reason below, copied from what it wrote). Asked
// about, it keeps its first refusal's time: pending, never sent a third
// time, until WeChat Pay has not known it for KnownAfter since then;
// failed after.
func TestARefusedRepeatMarkedByAnEarlierVersionWaits(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, faults(), nil, nil)
	payable(r)
	s := sender(r)
	e := effect(wechatpay.KindDistribution, "WXD-OLD", 90_00)
	e.Sends, e.State = 2, pipeline.EffectSent
	e.LastError = "WeChat Pay refused out_order_no WXD-OLD sent again after an unknown outcome (NOT_ENOUGH 分账金额不足) and does not know it: the first send may yet show (refused sent again, out_order_no unknown since 2025-09-03T02:00:00Z)"
	if !r.clock.Now().Equal(time.Date(2025, 9, 3, 2, 0, 0, 0, time.UTC)) {
		t.Fatalf("the rig's clock starts at %s, not at the mark's time", r.clock.Now())
	}
	r.clock.Add(wechatpay.DefaultKnownAfter - time.Minute)
	if out, err := s.Query(ctx, e); err != nil || out.Status != pipeline.OutcomePending || out.Reason != e.LastError {
		t.Fatalf("asked within KnownAfter of the old mark: %+v, %v; want pending, its reason kept", out, err)
	}
	r.clock.Add(2 * time.Minute)
	if out, err := s.Query(ctx, e); err != nil || out.Status != pipeline.OutcomeFailed || !strings.HasPrefix(out.Reason, e.LastError+"; WeChat Pay still does not know it 24h1m0s later") {
		t.Fatalf("asked after KnownAfter of the old mark: %+v, %v; want failed", out, err)
	}
	if n := r.fake.Calls(wechatpay.APIOrders); n != 0 {
		t.Fatalf("%d sends, want none", n)
	}
}

// TestARequestPastWeChatsMemoryIsHeldNotFailedNorSentAgain: WeChat Pay's
// order query does not remember an out_order_no for ever. A refused
// repeat asked about only weeks later (the date not resumed meanwhile)
// was failed as "never arrived" past KnownAfter, and its transaction went
// out again under a new out_order_no, while the first send may have been
// applied and forgotten since; an unknown one was answered "not found"
// and sent again under its out_order_no, which a WeChat Pay that forgot
// it may take as new. Past Memory the query answers an error wrapping
// pipeline.ErrPastMemory naming the key and its age (its transaction
// held for a person); within it, as before.
func TestARequestPastWeChatsMemoryIsHeldNotFailedNorSentAgain(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, faults(), nil, nil)
	payable(r)
	s := sender(r)
	s.Memory = 30 * 24 * time.Hour
	e := effect(wechatpay.KindDistribution, "WXD-OLD", 90_00) // above what WeChat Pay holds: refused
	e.Planned, e.Sends = r.clock.Now(), 2
	out, err := s.Send(ctx, e)
	if err != nil || out.Status != pipeline.OutcomePending {
		t.Fatalf("repeat refused: %+v, %v; want pending", out, err)
	}
	e.State, e.LastError = pipeline.EffectSent, out.Reason
	r.clock.Add(31 * 24 * time.Hour)
	out, err = s.Query(ctx, e)
	if !errors.Is(err, pipeline.ErrPastMemory) || !pipeline.SubjectOnly(err) || !strings.Contains(err.Error(), "WXD-OLD") || !strings.Contains(err.Error(), "31d ago") {
		t.Fatalf("the refused repeat asked 31 days later: %+v, %v; want ErrPastMemory naming the key and its age", out, err)
	}
	unknown := effect(wechatpay.KindUnfreeze, "WXU-OLD", 0)
	unknown.State, unknown.Sends, unknown.Planned = pipeline.EffectUnknown, 1, r.clock.Now().Add(-31*24*time.Hour)
	if out, err := s.Query(ctx, unknown); !errors.Is(err, pipeline.ErrPastMemory) {
		t.Fatalf("an unknown unfreeze planned 31 days ago, not known: %+v, %v; want ErrPastMemory, not \"not found\"", out, err)
	}
	unknown.Planned = r.clock.Now().Add(-29 * 24 * time.Hour)
	if out, err := s.Query(ctx, unknown); err != nil || out.Status != pipeline.OutcomeNotFound {
		t.Fatalf("an unknown unfreeze planned 29 days ago, not known: %+v, %v; want not found", out, err)
	}
}
