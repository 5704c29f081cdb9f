package wechatpay

import (
	"context"
	"fmt"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/settlekit/settle/pipeline"
)

// A client asked for thousands of sub-merchants keeps buckets only for the
// ones asked lately (the rest were full, as new), and a sub-merchant's
// rate holds across a sweep: its bucket, just drawn from, is not full and
// stays.
func TestSubMerchantBucketsFollowTheSubMerchantsAsked(t *testing.T) {
	c := &Client{cfg: Config{SubMerchantLimit: rate.Limit(1000), SubMerchantBurst: 1}, subs: map[string]*rate.Limiter{}, sweepAt: subSweepFrom}
	ctx := context.Background()
	for i := range 5000 {
		if err := c.waitSub(ctx, fmt.Sprint("sub", i)); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 999 {
			time.Sleep(5 * time.Millisecond) // the buckets drawn from before refill (1 ms at 1,000/s)
		}
	}
	c.mu.Lock()
	held := len(c.subs)
	c.mu.Unlock()
	if held > 2*1000+subSweepFrom {
		t.Errorf("%d buckets held after 5,000 sub-merchants, about 1,000 a burst: the full ones are not dropped", held)
	}

	// A slow sub-merchant's bucket, drawn from, survives any sweep.
	slow := &Client{cfg: Config{SubMerchantLimit: rate.Limit(2), SubMerchantBurst: 1}, subs: map[string]*rate.Limiter{}, sweepAt: subSweepFrom}
	if err := slow.waitSub(ctx, "slow"); err != nil {
		t.Fatal(err)
	}
	slow.mu.Lock()
	slow.dropFull(time.Now())
	_, kept := slow.subs["slow"]
	slow.mu.Unlock()
	if !kept {
		t.Fatal("a bucket just drawn from was dropped: the next call would start full and pass the sub-merchant's rate")
	}
	start := time.Now()
	if err := slow.waitSub(ctx, "slow"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("the second call of a sub-merchant limited to 2/s waited %v, want about 500ms", d)
	}

	// A wait cancelled gives its token back and says why.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := slow.waitSub(cctx, "slow"); err == nil {
		t.Error("a cancelled wait for a token returned nil")
	}
}

// TestReleaseOfAClosedDistribution: a failed distribution released the
// seller's share only when WeChat Pay's order is FINISHED with the
// platform's line CLOSED and the rest line to the seller SUCCESS for at
// least the share (the closed amount inside it or apart); the rest still
// PENDING is releasing; anything else (a refusal: no order) is not.
func TestReleaseOfAClosedDistribution(t *testing.T) {
	closed := OrderLine{Platform: true, Result: ResultClosed, FailReason: "ACCOUNT_ABNORMAL", Amount: 10}
	rest := func(result string, amount int64) OrderLine {
		return OrderLine{Rest: true, Result: result, Amount: amount}
	}
	for _, tc := range []struct {
		name  string
		order OrderStatus
		want  release
	}{
		{"the closed amount inside the rest", OrderStatus{State: StateFinished, Lines: []OrderLine{closed, rest(ResultSuccess, 997)}}, released},
		{"the closed amount apart", OrderStatus{State: StateFinished, Lines: []OrderLine{closed, rest(ResultSuccess, 987)}}, released},
		{"the rest below the share", OrderStatus{State: StateFinished, Lines: []OrderLine{closed, rest(ResultSuccess, 986)}}, notReleased},
		{"the rest pending", OrderStatus{State: StateFinished, Lines: []OrderLine{closed, rest(ResultPending, 987)}}, releasing},
		{"still processing", OrderStatus{State: StateProcessing, Lines: []OrderLine{closed, rest(ResultSuccess, 987)}}, notReleased},
		{"the platform's line paid", OrderStatus{State: StateFinished, Lines: []OrderLine{{Platform: true, Result: ResultSuccess, Amount: 10}, rest(ResultSuccess, 987)}}, notReleased},
		{"another receiver's line, not the seller's", OrderStatus{State: StateFinished, Lines: []OrderLine{closed, {Result: ResultSuccess, Amount: 987}}}, notReleased},
		{"no order (refused)", OrderStatus{}, notReleased},
	} {
		if _, got := releaseOf(tc.order, 987); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestOrderOfSubject(t *testing.T) {
	d := pipeline.Date{Year: 2026, Month: 11, Day: 23}
	if o, ok := OrderOfSubject(Subject(d, "O-1/2")); !ok || o != "O-1/2" {
		t.Fatalf("order of %s: %q, %v", Subject(d, "O-1/2"), o, ok)
	}
	if _, ok := OrderOfSubject("RS/20261123/S1/CNY"); ok {
		t.Fatal("a revenue share's subject read as WeChat's")
	}
}
