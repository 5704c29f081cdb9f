package infiniapaytest_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestProcessingDelay: with the timing model an upload and a revenue share
// stay non-final until their delay has passed on the fake's clock, however
// often they are polled.
func TestProcessingDelay(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)}
	fake, c, _ := start(t, infiniapaytest.Options{Polls: -1, Now: clk.now, UploadDelay: 20 * time.Second, ShareDelay: 30 * time.Second})
	if err := fake.ReceiveFile("TD_P_S1_JPY_20250903_TDU-7.csv", strings.NewReader(head+"O1,SALE,X,JPY,1000,100,900,2025-09-03T10:00:00Z\n")); err != nil {
		t.Fatal(err)
	}
	status := func() string {
		u, err := c.UploadStatus(ctx, "TDU-7")
		if err != nil {
			t.Fatal(err)
		}
		return u.Status
	}
	var got []string
	for i := 0; i < 3; i++ {
		got = append(got, status())
	}
	clk.advance(19 * time.Second)
	got = append(got, status())
	clk.advance(time.Second)
	got = append(got, status())
	if want := "RECEIVED PROCESSING PROCESSING PROCESSING SUCCESS"; strings.Join(got, " ") != want {
		t.Fatalf("upload statuses %v, want %s", got, want)
	}

	fake.SetBinding("S1", infiniapay.StatusActive)
	fake.SetBalance("JPY", 10_000)
	res, err := c.RevenueShare(ctx, infiniapay.RevenueShareRequest{RequestNo: "RS-7", SellerID: "S1", Currency: "JPY", Amount: 900})
	if err != nil || res.Status != infiniapay.StatusProcessing {
		t.Fatalf("share accepted: %+v %v, want PROCESSING", res, err)
	}
	clk.advance(29 * time.Second)
	if res, err := c.RevenueShareStatus(ctx, "RS-7"); err != nil || res.Status != infiniapay.StatusProcessing {
		t.Fatalf("after 29 s: %+v %v, want PROCESSING", res, err)
	}
	clk.advance(time.Second)
	if res, err := c.RevenueShareStatus(ctx, "RS-7"); err != nil || res.Status != infiniapay.StatusSuccess {
		t.Fatalf("after 30 s: %+v %v, want SUCCESS", res, err)
	}
}

// TestRateLimit: beyond its QPS the fake answers 429 and counts it; once
// the clock has moved on it answers again.
func TestRateLimit(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)}
	fake, _, url := start(t, infiniapaytest.Options{Polls: -1, Now: clk.now, QPS: 2})
	cfg := fake.ClientConfig(url)
	cfg.MaxRetries = -1 // see each 429
	c, err := infiniapay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fake.SetBinding("S1", infiniapay.StatusActive)
	for i := 0; i < 2; i++ {
		if _, err := c.BindingStatus(ctx, "B-1", "S1"); err != nil {
			t.Fatalf("request %d within the limit: %v", i+1, err)
		}
	}
	if _, err := c.BindingStatus(ctx, "B-1", "S1"); err == nil {
		t.Fatal("a third request in the same instant at 2/s was answered")
	}
	if fake.Count429() == 0 {
		t.Fatal("no 429 counted")
	}
	clk.advance(time.Second)
	if _, err := c.BindingStatus(ctx, "B-1", "S1"); err != nil {
		t.Fatalf("after a second: %v", err)
	}
	if n := fake.CallCounts()["account-binding/query"]; n < 4 {
		t.Fatalf("binding-status calls %d (%v), want at least 4", n, fake.CallCounts())
	}
}
