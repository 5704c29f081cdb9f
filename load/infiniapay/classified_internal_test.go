package infiniapay

import (
	"context"
	"errors"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

type downAccounts struct{}

func (downAccounts) AccountOf(context.Context, int64, string, string) (string, error) {
	return "", errors.New("pq: the database system is shutting down")
}

// TestClassifiedSenderPrepares: the run's revenue share sender is
// wrapped (classified); the wrapper must keep its Prepare, or the seller's
// Infinia id is read inside Send again, after the share is marked sent.
func TestClassifiedSenderPrepares(t *testing.T) {
	var s pipeline.EffectSender = classified{NewRevenueShareSender(&Client{}, downAccounts{}, nil, 0, 0)}
	p, ok := s.(pipeline.EffectPreparer)
	if !ok {
		t.Fatal("the run's revenue share sender does not read the seller's Infinia id before the send is marked")
	}
	e := pipeline.Effect{Kind: KindRevenueShare, Subject: "RS/20250903/S1/USD", Key: "K", Currency: "USD", Amount: 1}
	if _, err := p.Prepare(context.Background(), e); !errors.Is(err, pipeline.ErrNotRead) {
		t.Fatalf("Prepare: %v, want the ledger's failure to read", err)
	}
}
