package infiniapay_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/internal/httpcall/httpcalltest"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
)

// TestARevenueShareIsNotSentAgainByTheTransport: Infinia (or a proxy
// before it) speaks HTTP/2, reads the revenue share and resets its stream
// with PROTOCOL_ERROR. Go's transport sent the request again by itself,
// unasked, before the client saw an error: a payout reached Infinia twice
// without a status query between (found by a review of the transport).
// It reaches it once, and its outcome is unknown.
func TestARevenueShareIsNotSentAgainByTheTransport(t *testing.T) {
	t.Parallel()
	s := httpcalltest.NewStreamResetter(t)
	cfg := infiniapaytest.New(infiniapaytest.Options{Keys: keys(t), AppID: "APP-TEST", Faults: fault.New(1)}).ClientConfig(s.URL + "/api/")
	cfg.HTTP, cfg.Timeout = infiniapay.NewHTTPClient(5*time.Second), 10*time.Second
	s.Trust(cfg.HTTP)
	c, err := infiniapay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RevenueShare(context.Background(), share); !errors.Is(err, infiniapay.ErrUnknownOutcome) {
		t.Fatalf("err = %v, want an unknown outcome", err)
	}
	if n := s.Requests(); n != 1 {
		t.Fatalf("the revenue share reached Infinia %d times, want once", n)
	}
}
