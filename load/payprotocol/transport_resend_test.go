package payprotocol_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/internal/httpcall/httpcalltest"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
)

// TestARefundOrderIsNotSentAgainByTheTransport: Pay Protocol (or a proxy
// before it) speaks HTTP/2, reads a refund order and resets its stream
// with PROTOCOL_ERROR. Go's transport sent the request again by itself,
// unasked, before the client saw an error: a refund, which has no
// idempotency key at Pay Protocol, reached it twice (found by a review of
// the transport). It reaches it once, and its outcome is unknown.
func TestARefundOrderIsNotSentAgainByTheTransport(t *testing.T) {
	t.Parallel()
	s := httpcalltest.NewStreamResetter(t)
	fake := payprotocoltest.New(payprotocoltest.Options{APIKey: testKey, APISecret: testSecret, Faults: fault.New(1)})
	t.Cleanup(fake.Close)
	cfg := fake.ClientConfig(s.URL + "/api/mer")
	cfg.HTTP, cfg.Timeout = payprotocol.NewHTTPClient(5*time.Second), 10*time.Second
	s.Trust(cfg.HTTP)
	c, err := payprotocol.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateRefundOrder(context.Background(), payprotocol.RefundOrder{OutTradeNo: "T-1"}); !errors.Is(err, payprotocol.ErrUnknownOutcome) {
		t.Fatalf("err = %v, want an unknown outcome", err)
	}
	if n := s.Requests(); n != 1 {
		t.Fatalf("the refund order reached Pay Protocol %d times, want once", n)
	}
}
