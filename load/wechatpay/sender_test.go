package wechatpay_test

import (
	"context"
	"strings"
	"testing"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
)

func effect(kind, key string, amount int64) pipeline.Effect {
	return pipeline.Effect{ID: 1, Kind: kind, Subject: "WX/20250903/S1/T1", Attempt: 1, Key: key, Currency: "CNY",
		Amount: amount, State: pipeline.EffectPlanned}
}

// sender pays each distribution effect's amount to the platform out of T1.
func sender(r *rig) wechatpay.DistributionSender {
	return wechatpay.DistributionSender{Client: r.client, Distribution: func(e pipeline.Effect) (wechatpay.Distribution, error) {
		d := distribution("", e.Amount)
		if e.Kind == wechatpay.KindUnfreeze {
			d.Receivers = nil
		}
		return d, nil
	}}
}

func TestSenderMapsStates(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, wechatpaytest.Options{}, nil, nil)
	payable(r)
	s := sender(r)

	e := effect(wechatpay.KindDistribution, "WXD-20250903-S1-1", 20_00)
	out, err := s.Send(ctx, e)
	if err != nil || out.Status != pipeline.OutcomePending || out.Ref == "" {
		t.Fatalf("Send = %+v, %v; want pending with the order id", out, err)
	}
	for _, want := range []pipeline.OutcomeStatus{pipeline.OutcomePending, pipeline.OutcomePending, pipeline.OutcomeSucceeded} {
		if got, err := s.Query(ctx, e); err != nil || got.Status != want || got.Ref != out.Ref {
			t.Fatalf("Query = %+v, %v; want %v", got, err, want)
		}
	}
	if r.fake.Distributed("T1") != 20_00 {
		t.Fatal("distributed")
	}
	if got, err := s.Query(ctx, effect(wechatpay.KindDistribution, "WXD-NEVER-SENT", 1)); err != nil || got.Status != pipeline.OutcomeNotFound {
		t.Fatalf("Query of an unknown key = %+v, %v; want not found", got, err)
	}

	// The unfreeze returns the rest.
	u := effect(wechatpay.KindUnfreeze, "WXU-20250903-S1-1", 0)
	if out, err := s.Send(ctx, u); err != nil || out.Status != pipeline.OutcomePending {
		t.Fatalf("Send unfreeze = %+v, %v", out, err)
	}
	var got pipeline.Outcome
	for range 3 {
		got, _ = s.Query(ctx, u)
	}
	if got.Status != pipeline.OutcomeSucceeded || r.fake.Frozen("T1") != 0 || r.fake.Unfrozen("T1") != 80_00 {
		t.Fatalf("unfreeze = %+v; frozen %d", got, r.fake.Frozen("T1"))
	}
}

func TestSenderFailures(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, wechatpaytest.Options{Polls: -1}, nil, nil)
	payable(r)
	s := sender(r)

	// A receiver CLOSED: failed with WeChat Pay's reason.
	r.fake.FailReceiver(mchID, "RECEIVER_HIGH_RISK")
	out, err := s.Send(ctx, effect(wechatpay.KindDistribution, "WXD-CLOSED", 1_00))
	if err != nil || out.Status != pipeline.OutcomeFailed || !strings.Contains(out.Reason, "RECEIVER_HIGH_RISK") || out.Ref == "" {
		t.Fatalf("closed = %+v, %v", out, err)
	}
	r.fake.FailReceiver(mchID, "")

	// Two receivers, one CLOSED: failed, and the reason says who was paid.
	r.fake.SetReceiver(subMchID, wechatpay.TypeMerchantID, "R2", wechatpay.ReceiverEffective)
	r.fake.FailReceiver("R2", "NO_AUTH")
	two := wechatpay.DistributionSender{Client: r.client, Distribution: func(e pipeline.Effect) (wechatpay.Distribution, error) {
		d := distribution("", 1_00)
		d.Receivers = append(d.Receivers, wechatpay.Share{Type: wechatpay.TypeMerchantID, Account: "R2", Currency: "CNY", Amount: 2_00, Description: "x"})
		return d, nil
	}}
	out, err = two.Send(ctx, effect(wechatpay.KindDistribution, "WXD-PARTIAL", 3_00))
	if err != nil || out.Status != pipeline.OutcomeFailed || out.Reason != "CLOSED: R2 NO_AUTH; paid all the same: "+mchID+" 1.00 CNY" {
		t.Fatalf("partial = %+v, %v", out, err)
	}

	// A definite refusal (over the ratio) is failed once a query confirms
	// WeChat Pay holds nothing under the key.
	out, err = s.Send(ctx, effect(wechatpay.KindDistribution, "WXD-TOO-MUCH", 90_00))
	if err != nil || out.Status != pipeline.OutcomeFailed || !strings.HasPrefix(out.Reason, "PARAM_ERROR ") {
		t.Fatalf("refused = %+v, %v", out, err)
	}
	if r.fake.Calls(wechatpay.APIQueryOrder) != 1 {
		t.Fatal("the refusal was not confirmed by a query")
	}

	// Not distributable yet: an error (outcome unknown), so the pipeline
	// queries and resends with the same key later.
	r = newRig(t, wechatpaytest.Options{ReadyAfter: -1}, nil, nil)
	payable(r)
	if _, err := sender(r).Send(ctx, effect(wechatpay.KindDistribution, "WXD-EARLY", 1_00)); err == nil {
		t.Fatal("not ready yet must be an error")
	}
}

func TestSenderRefusesBadEffects(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, wechatpaytest.Options{}, nil, nil)
	payable(r)
	s := sender(r)
	for name, e := range map[string]pipeline.Effect{
		"other kind":   effect("revenue_share", "K1", 1),
		"bad key":      effect(wechatpay.KindDistribution, "has/slash", 1),
		"key too long": effect(wechatpay.KindDistribution, strings.Repeat("k", 65), 1),
	} {
		if _, err := s.Send(ctx, e); err == nil {
			t.Errorf("%s: sent", name)
		}
	}
	// Receivers that do not add up to the effect's amount.
	s.Distribution = func(pipeline.Effect) (wechatpay.Distribution, error) { return distribution("", 2), nil }
	if _, err := s.Send(ctx, effect(wechatpay.KindDistribution, "K1", 1)); err == nil || !strings.Contains(err.Error(), "add up to 2, the effect moves 1") {
		t.Errorf("amount mismatch: %v", err)
	}
	if n := r.fake.Calls(wechatpay.APIOrders); n != 0 {
		t.Fatalf("%d bad effects reached WeChat Pay", n)
	}
	s.Distribution = nil
	if _, err := s.Query(ctx, effect(wechatpay.KindDistribution, "K1", 1)); err == nil {
		t.Fatal("no Distribution func")
	}
}

// memStore is an in-memory pipeline.EffectStore.
type memStore struct{ e pipeline.Effect }

func (m *memStore) PlanEffect(_ context.Context, e pipeline.Effect) (pipeline.Effect, error) {
	m.e = e
	return e, nil
}

func (m *memStore) MarkSent(context.Context, int64) error {
	m.e.State, m.e.Sends = pipeline.EffectSent, m.e.Sends+1
	return nil
}

func (m *memStore) RecordOutcome(_ context.Context, _ int64, st pipeline.EffectState, ref, lastErr string) error {
	m.e.State, m.e.ProviderRef, m.e.LastError = st, ref, lastErr
	return nil
}

// TestApplyEffectThroughALostAnswer drives pipeline.ApplyEffect: the
// answer is lost (unknown), the next pass queries (found, pending), the
// last one finds it succeeded. One request in all.
func TestApplyEffectThroughALostAnswer(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, faults(fault.Rule{Endpoint: wechatpay.APIOrders, Kind: fault.Lost, Calls: []int{1}}), nil, nil)
	payable(r)
	store := &memStore{}
	e := effect(wechatpay.KindDistribution, "WXD-APPLY", 25_00)
	var err error
	for _, want := range []pipeline.EffectState{pipeline.EffectUnknown, pipeline.EffectSent, pipeline.EffectSent, pipeline.EffectSucceeded} {
		if e, err = pipeline.ApplyEffect(ctx, store, sender(r), e); err != nil || e.State != want {
			t.Fatalf("ApplyEffect = %s (%s), %v; want %s", e.State, e.LastError, err, want)
		}
	}
	if r.fake.Calls(wechatpay.APIOrders) != 1 || r.fake.Requests("T1") != 1 || r.fake.Distributed("T1") != 25_00 || e.Sends != 1 {
		t.Fatalf("%d sends, %d requests, %d distributed", e.Sends, r.fake.Requests("T1"), r.fake.Distributed("T1"))
	}
}
