package payprotocoltest_test

import (
	"context"
	"testing"
	"time"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
)

// TestRateLimitAndLatency: at 5 requests a second (real clock; burst 5) a
// quick series of 20 gets about 5 answers and 429s for the rest, counted;
// each answer waits the latency. Margins are wide.
func TestRateLimitAndLatency(t *testing.T) {
	ctx := context.Background()
	fake, _, url := start(t, payprotocoltest.Options{QPS: 5, Latency: 20 * time.Millisecond}, nil)
	cfg := fake.ClientConfig(url + "/api/mer")
	cfg.MaxRetries = -1 // see each 429
	c, err := payprotocol.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fake.AddPayment("T-1", "USDT", 6, "1000000", payprotocol.PaymentPaid); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	answered := 0
	for i := 0; i < 20; i++ {
		if _, err := c.PaymentDetail(ctx, "T-1", ""); err == nil {
			answered++
		}
	}
	took := time.Since(start)
	if took < 20*20*time.Millisecond {
		t.Fatalf("20 requests took %v, want at least 20 x 20 ms latency", took)
	}
	// burst 5, plus 5/s over the series' duration, with margin
	if max := 5 + int(took.Seconds()*5) + 2; answered < 5 || answered > max {
		t.Fatalf("answered %d of 20 in %v at 5/s, want 5..%d", answered, took, max)
	}
	if got := fake.Count429(); got != 20-answered {
		t.Fatalf("429s counted %d, want %d", got, 20-answered)
	}
	if got := fake.CallCounts()[payprotocol.APIPaymentDetail]; got != 20 {
		t.Fatalf("calls %d, want 20", got)
	}
}
