package infiniapay_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
	"github.com/settlekit/settle/pipeline"
)

// TestInfiniaRefusingOurKeyWhilePlanningSaysWhatToCheck: Infinia refuses
// our signature (our key pair changed at Infinia) at the first question
// of the distribute stage's planning - a binding, the platform balance,
// a seller's available share, or (the share short) the status of the
// share under its requestNo. The stage ended exit 2 with the client's
// generic "refused credentials" text, which names neither our private
// key's flag nor says whether anything was sent; once refused while
// sending it said both. Now planning's refusal says so too, in one line:
// check --infinia-private-key-file and --infinia-app-id, nothing sent.
// The status question refused so held the seller's share for a person,
// as if Infinia had said something of it, and the run went on asking.
func TestInfiniaRefusingOurKeyWhilePlanningSaysWhatToCheck(t *testing.T) {
	other, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for _, api := range []string{infiniapay.APIBindingStatus, infiniapay.APIBalance, infiniapay.APIAvailableShare, infiniapay.APIRevenueShareStatus} {
		t.Run(api, func(t *testing.T) {
			var r *rig
			r = newRig(t, infiniapaytest.Options{PlatformID: "P1"}, func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
					if strings.HasSuffix(req.URL.Path, api) {
						r.fake.RegisterPlatformKey(&other.PublicKey) // rotated at Infinia: refused from this question on
					}
					next.ServeHTTP(w, req)
				})
			}, nil)
			r.fake.SetBinding("I1", infiniapay.StatusActive)
			available := int64(1_000_00)
			if api == infiniapay.APIRevenueShareStatus {
				available = 50_00 // short: Infinia is asked whether it took the share already
			}
			r.fake.SetAvailable("I1", "USD", available)
			r.fake.SetBalance("USD", 1_000_00)
			ledger := infiniapay.NewMemLedger([]pipeline.PayoutCandidate{{SellerID: "S1", Currency: "USD", Payable: 100_00, Items: 1, Account: "I1"}})
			run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 12, Day: 1}, Shard: pipeline.Whole}}
			stage := infiniapay.DistributeStage(infiniapay.StageConfig{Store: ledger, API: infiniapay.StageAPIOf(r.client),
				Payouts: infiniapay.StageSenderOf(r.client, ledger), Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: 1}),
				FirstPoll: time.Second, Poll: 10 * time.Millisecond, Wait: 10 * time.Second})

			_, err := stage(context.Background(), run)
			if pipeline.KindOf(err) != pipeline.KindUsage || !errors.Is(err, infiniapay.ErrCredentials) || strings.Contains(err.Error(), "\n") ||
				!strings.Contains(err.Error(), "--infinia-private-key-file") || !strings.Contains(err.Error(), "--infinia-app-id") ||
				!strings.Contains(err.Error(), "nothing was sent") {
				t.Fatalf("%v: want a configuration error in one line, telling to check our key and appId", err)
			}
			if n := r.fake.Calls(infiniapay.APIRevenueShare); n != 0 {
				t.Errorf("%d revenue shares sent after planning was refused", n)
			}
			if n := r.fake.Calls(api); n != 1 {
				t.Errorf("%d %s questions, want 1: a refusal of our key is not asked again", n, api)
			}
		})
	}
}
