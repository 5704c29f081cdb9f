package infiniapay_test

import (
	"context"
	"errors"
	"testing"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
	"github.com/settlekit/settle/pipeline"
)

// markStore is an EffectStore of one effect that counts its sends.
type markStore struct {
	e     pipeline.Effect
	marks int
}

func (s *markStore) PlanEffect(_ context.Context, e pipeline.Effect) (pipeline.Effect, error) {
	return s.e, nil
}

func (s *markStore) MarkSent(context.Context, int64) error {
	s.marks++
	s.e.State, s.e.Sends = pipeline.EffectSent, s.e.Sends+1
	return nil
}

func (s *markStore) RecordOutcome(_ context.Context, _ int64, state pipeline.EffectState, ref, lastErr string) error {
	s.e.State, s.e.ProviderRef, s.e.LastError = state, ref, lastErr
	return nil
}

// TestRevenueShareSellerReadBeforeMarkedSent: the seller's Infinia id
// was read from the ledger inside Send, after the engine had marked the
// share sent: a ledger that could not be read left it counted as sent
// once (unknown) although nothing went out, and a later refusal of it was
// taken as a refused repeat, waited on for KnownAfter (found by a review).
// It is read before: the share stays planned, never sent, and goes out
// once when the ledger is back.
func TestRevenueShareSellerReadBeforeMarkedSent(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, infiniapaytest.Options{Polls: -1}, nil, nil)
	payable(r)
	down := true
	s := infiniapay.RevenueShareSender{Client: r.client, SellerID: func(_ context.Context, e pipeline.Effect) (string, error) {
		if down {
			return "", pipeline.NotRead(errors.New("pq: the database system is shutting down"))
		}
		return "S1", nil
	}}
	e := effect("RS-PREPARED", 100)
	e.ID = 1
	st := &markStore{e: e}
	got, err := pipeline.ApplyEffect(ctx, st, s, e)
	if !errors.Is(err, pipeline.ErrNotRead) {
		t.Fatalf("err %v, want the ledger's failure to read", err)
	}
	if st.marks != 0 || got.Sends != 0 || got.State != pipeline.EffectPlanned || st.e.State != pipeline.EffectPlanned {
		t.Fatalf("after the failed read: %d marks, returned %s/%d, stored %s; want planned, not counted as sent", st.marks, got.State, got.Sends, st.e.State)
	}
	if n := len(r.fake.RevenueShares()); n != 0 {
		t.Fatalf("%d shares at Infinia, want none", n)
	}
	down = false
	got, err = pipeline.ApplyEffect(ctx, st, s, got)
	if err != nil || got.State != pipeline.EffectSucceeded || got.Sends != 1 || st.marks != 1 {
		t.Fatalf("after the ledger is back: %s/%d, %v, %d marks; want succeeded, sent once", got.State, got.Sends, err, st.marks)
	}
	if shares := r.fake.RevenueShares(); len(shares) != 1 || shares[0].SellerID != "S1" {
		t.Fatalf("shares %+v, want one to S1", shares)
	}
}
