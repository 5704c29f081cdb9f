package infiniapay_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
	"github.com/settlekit/settle/pipeline"
)

// TestARevenueShareRefusedForOurKeyIsNotTaken: Infinia refusing our
// signature (SYS-002 "invalid signature": a key pair rotated at Infinia)
// refused who we are, not the payout: the send's error says it moved
// nothing (pipeline.ErrNotTaken: unknown to the engine, asked about by
// its requestNo, never failed for it) and keeps its kind (usage, exit 2).
// It is not confirmed by a status query, which Infinia would refuse too.
func TestARevenueShareRefusedForOurKeyIsNotTaken(t *testing.T) {
	r := newRig(t, infiniapaytest.Options{}, nil, nil)
	r.fake.SetBalance("USD", 1_000_00)
	r.fake.SetAvailable("I1", "USD", 1_000_00)
	other, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	r.fake.RegisterPlatformKey(&other.PublicKey)
	sender := infiniapay.RevenueShareSender{Client: r.client, SellerID: func(context.Context, pipeline.Effect) (string, error) { return "I1", nil }}
	e := pipeline.Effect{ID: 1, Kind: infiniapay.KindRevenueShare, Subject: "RS/20261201/S1/USD", Attempt: 1, Key: "RS-KEY-1", Currency: "USD", Amount: 100_00, Sends: 1}
	out, err := sender.Send(context.Background(), e)
	if !errors.Is(err, pipeline.ErrNotTaken) || !errors.Is(err, infiniapay.ErrCredentials) || pipeline.KindOf(err) != pipeline.KindUsage || out.Status != 0 {
		t.Fatalf("%+v %v: want a usage error marked not taken", out, err)
	}
	if n := r.fake.Calls(infiniapay.APIRevenueShareStatus); n != 0 {
		t.Errorf("%d status queries after refused credentials, want none", n)
	}
	if n := r.fake.Calls(infiniapay.APIRevenueShare); n != 1 {
		t.Errorf("%d requests, want 1: refused credentials are never retried", n)
	}
}

// TestInfiniaRefusingOurKeyMidRunStopsTheRevenueShares: our key pair is
// rotated at Infinia after the distribute stage sent its third revenue
// share (Infinia holds another public key for us from then on and refuses
// our signature, SYS-002 "invalid signature"). The engine kept an error of
// a send as an unknown outcome and went on: every revenue share left was
// sent, each refused, and the stage ended once the first question about
// them was refused. Now the first refusal stops the sends: nothing more
// is sent (those in flight end), and the stage ends with a configuration
// error (exit 2) in one line telling the operator to check our key. None
// is failed (its balance would go out under a new requestNo) nor carried:
// the one refused stays unknown, asked about by its requestNo. The re-run
// with the key put right pays each seller once, each under its first
// requestNo.
func TestInfiniaRefusingOurKeyMidRunStopsTheRevenueShares(t *testing.T) {
	const n, inFlight, rotateAt = 12, 2, 4
	other, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	var (
		r     *rig
		sends atomic.Int64
	)
	r = newRig(t, infiniapaytest.Options{PlatformID: "P1"}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if strings.HasSuffix(req.URL.Path, infiniapay.APIRevenueShare) && sends.Add(1) == rotateAt {
				r.fake.RegisterPlatformKey(&other.PublicKey) // rotated at Infinia: this request on is refused
			}
			next.ServeHTTP(w, req)
		})
	}, nil)
	var cands []pipeline.PayoutCandidate
	for i := range n {
		account := fmt.Sprintf("I%02d", i)
		cands = append(cands, pipeline.PayoutCandidate{SellerID: fmt.Sprintf("S%02d", i), Currency: "USD", Payable: 100_00, Items: 1, Account: account})
		r.fake.SetBinding(account, infiniapay.StatusActive)
		r.fake.SetAvailable(account, "USD", 1_000_00)
	}
	r.fake.SetBalance("USD", n*100_00)
	ledger := infiniapay.NewMemLedger(cands)
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 12, Day: 1}, Shard: pipeline.Whole}}
	stage := infiniapay.DistributeStage(infiniapay.StageConfig{Store: ledger, API: infiniapay.StageAPIOf(r.client),
		Payouts: infiniapay.StageSenderOf(r.client, ledger), Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: inFlight}),
		FirstPoll: time.Second, Poll: 10 * time.Millisecond, Wait: 10 * time.Second})

	_, err = stage(context.Background(), run)
	t.Logf("%d revenue shares sent: %v", r.fake.Calls(infiniapay.APIRevenueShare), err)
	if pipeline.KindOf(err) != pipeline.KindUsage || !errors.Is(err, infiniapay.ErrCredentials) || strings.Contains(err.Error(), "\n") ||
		!strings.Contains(err.Error(), "--infinia-private-key-file") || !strings.Contains(err.Error(), "nothing more was sent") {
		t.Fatalf("%v: want a configuration error in one line, telling to check our key", err)
	}
	// The refused one, and those in flight beside it: nothing after.
	if got := r.fake.Calls(infiniapay.APIRevenueShare); got < rotateAt || got > rotateAt+inFlight-1 {
		t.Errorf("%d revenue shares sent, want %d to %d: nothing sent once Infinia refused our key", got, rotateAt, rotateAt+inFlight-1)
	}
	if got := len(r.fake.RevenueShares()); got != rotateAt-1 {
		t.Errorf("Infinia took %d revenue shares, want the %d sent before the rotation", got, rotateAt-1)
	}
	if carried := ledger.Carried(); len(carried) > 0 {
		t.Errorf("carried %v, want nothing carried: the sellers are paid by the re-run", carried)
	}
	refused := 0
	for _, e := range ledger.Effects() {
		switch {
		case e.State == pipeline.EffectFailed:
			t.Errorf("%s failed (%s): a refusal of our key is no refusal of the payout", e.Key, e.LastError)
		case e.State == pipeline.EffectUnknown && strings.Contains(e.LastError, "invalid signature"):
			refused++
		case e.Sends == 0 && e.State != pipeline.EffectPlanned:
			t.Errorf("%s %s never sent", e.Key, e.State)
		}
	}
	if refused == 0 {
		t.Errorf("no revenue share left unknown with Infinia's refusal: %+v", ledger.Effects())
	}

	// The key put right (Infinia holds ours again): the re-run pays each
	// seller once, each under its first requestNo.
	r.fake.RegisterPlatformKey(&keys(t).PlatformPrivate.PublicKey)
	sends.Store(-1 << 30) // no rotation again
	if _, err := stage(context.Background(), run); err != nil {
		t.Fatalf("re-run: %v", err)
	}
	for _, p := range cands {
		if got := ledger.Paid()[p.SellerID+" USD"]; got != 100_00 {
			t.Errorf("%s paid %d, want 10000", p.SellerID, got)
		}
	}
	for _, e := range ledger.Effects() {
		if e.State != pipeline.EffectSucceeded || e.Attempt != 1 {
			t.Errorf("%s %s attempt %d, want the first succeeded", e.Key, e.State, e.Attempt)
		}
	}
	if got := len(r.fake.RevenueShares()); got != n {
		t.Errorf("%d revenue shares at Infinia, want %d: each seller paid once", got, n)
	}
}
