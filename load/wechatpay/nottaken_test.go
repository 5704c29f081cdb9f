package wechatpay_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
)

// TestSenderSaysWhatWasNotTaken: a distribution WeChat Pay answered 429
// FREQUENCY_LIMITED to the end of the retries, one refused that its query
// confirms it holds nothing under, one whose connection was never made and
// one that could not be turned into a request moved no money: the sender
// says so (pipeline.ErrNotTaken, Outcome.NotTaken), and the run's new
// money movements do not count it. One whose answer was lost, or whose
// 429s followed a SYSTEM_ERROR that may have been applied, may have been
// taken and is not marked; nor is one taken.
func TestSenderSaysWhatWasNotTaken(t *testing.T) {
	ctx := context.Background()
	// The fake's 429s ask for a second: waiting at most a millisecond, the
	// call ends at the first 429, as one whose retries ran out.
	fewRetries := func(c *wechatpay.Config) { c.MaxRetries = 2; c.MaxRetryAfter = time.Millisecond }
	tooMany := func(calls ...int) fault.Rule {
		return fault.Rule{Endpoint: wechatpay.APIOrders, Kind: fault.TooMany, Calls: calls}
	}

	r := newRig(t, faults(tooMany(1, 2, 3)), nil, fewRetries)
	payable(r)
	if _, err := sender(r).Send(ctx, effect(wechatpay.KindDistribution, "WXD-LATER", 1_00)); !errors.Is(err, pipeline.ErrNotTaken) ||
		!strings.Contains(err.Error(), wechatpay.CodeFrequencyLimited) || errors.Is(err, wechatpay.ErrUnknownOutcome) {
		t.Fatalf("429 to the end: %v; want an error that says it was not taken, with WeChat Pay's code", err)
	}
	if n := r.fake.Calls(wechatpay.APIOrders); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}

	// A SYSTEM_ERROR first (WeChat Pay may have applied it), then 429s to
	// the end: unknown, and may have been taken.
	r = newRig(t, faults(fault.Rule{Endpoint: wechatpay.APIOrders, Kind: fault.ServerError, Calls: []int{1}}, tooMany(2, 3)), nil, fewRetries)
	payable(r)
	if _, err := sender(r).Send(ctx, effect(wechatpay.KindDistribution, "WXD-500-LATER", 1_00)); !errors.Is(err, wechatpay.ErrUnknownOutcome) ||
		errors.Is(err, pipeline.ErrNotTaken) {
		t.Fatalf("SYSTEM_ERROR then 429 to the end: %v; want unknown, which may have been taken", err)
	}
	if n := r.fake.Calls(wechatpay.APIOrders); n != 2 {
		t.Fatalf("SYSTEM_ERROR then 429: %d attempts, want 2", n)
	}

	// Refused, and the query confirms WeChat Pay holds nothing.
	r = newRig(t, faults(), nil, nil)
	payable(r)
	if out, err := sender(r).Send(ctx, effect(wechatpay.KindDistribution, "WXD-TOO-MUCH", 90_00)); err != nil ||
		out.Status != pipeline.OutcomeFailed || !out.NotTaken {
		t.Fatalf("refused: %+v, %v; want failed, not taken", out, err)
	}
	// Taken.
	if out, err := sender(r).Send(ctx, effect(wechatpay.KindDistribution, "WXD-OK", 1_00)); err != nil || out.NotTaken {
		t.Fatalf("taken: %+v, %v", out, err)
	}
	// Never turned into a request.
	bad := sender(r)
	bad.Distribution = func(pipeline.Effect) (wechatpay.Distribution, error) { return distribution("", 2), nil }
	if _, err := bad.Send(ctx, effect(wechatpay.KindDistribution, "WXD-BAD", 1)); !errors.Is(err, pipeline.ErrNotTaken) {
		t.Fatalf("an effect that is no request: %v; want not taken", err)
	}

	// The answer lost: unknown, may have been taken.
	r = newRig(t, faults(fault.Rule{Endpoint: wechatpay.APIOrders, Kind: fault.Lost, Calls: []int{1}}), nil, nil)
	payable(r)
	if _, err := sender(r).Send(ctx, effect(wechatpay.KindDistribution, "WXD-LOST", 1_00)); !errors.Is(err, wechatpay.ErrUnknownOutcome) ||
		errors.Is(err, pipeline.ErrNotTaken) {
		t.Fatalf("answer lost: %v; want unknown, which may have been taken", err)
	}

	// No connection made: nothing sent.
	r = newRig(t, faults(), nil, fewRetries)
	payable(r)
	r.srv.Close()
	if _, err := sender(r).Send(ctx, effect(wechatpay.KindDistribution, "WXD-DOWN", 1_00)); !errors.Is(err, pipeline.ErrNotTaken) {
		t.Fatalf("no connection made: %v; want not taken", err)
	}
}
