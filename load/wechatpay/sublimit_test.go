package wechatpay

import (
	"context"
	"fmt"
	"testing"
	"time"

	"golang.org/x/time/rate"
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
