package payprotocol_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
)

// rotatingAPI asks Pay Protocol through Adapter, and has Pay Protocol take
// another secret for our API key from the at-th payment asked on.
type rotatingAPI struct {
	payprotocol.Adapter
	asked  atomic.Int64
	at     int64
	rotate func()
}

func (a *rotatingAPI) Payment(ctx context.Context, outTradeNo string) (payprotocol.Order, error) {
	if a.asked.Add(1) == a.at {
		a.rotate()
	}
	return a.Adapter.Payment(ctx, outTradeNo)
}

// TestPayProtocolRefusingOurSecretMidRunStopsTheVerification: our API
// secret is revoked at Pay Protocol after the verification asked about
// its third payment (401 "invalid sign" from then on). The verification
// stops at the first refusal (the question in flight beside it ends):
// nothing more is asked, and it ends with a configuration error (exit 2)
// in one line naming the flags to check, --payprotocol-secret-file and
// --payprotocol-api-key (it named the X-PAY-* headers alone, which no
// operator sets). The order refused is left as it was, unverified, for
// the next run to ask about: never rejected nor held for it. The re-run
// with the secret put right verifies every order.
func TestPayProtocolRefusingOurSecretMidRunStopsTheVerification(t *testing.T) {
	const n, inFlight, rotateAt = 12, 2, 4
	ctx := context.Background()
	r := listRig(t) // paid 10 USDT for 10.00 USD
	store := &verifyStore{states: map[string]string{}}
	for i := range n {
		no := fmt.Sprintf("T-%02d", i)
		if _, err := r.fake.AddPayment(no, "USDT", 6, "10000000", payprotocol.PaymentPaid); err != nil {
			t.Fatal(err)
		}
		if err := r.fake.SetQuote(no, "USD", "10.00", true); err != nil {
			t.Fatal(err)
		}
		store.items = append(store.items, toVerify(no, 0))
	}
	api := &rotatingAPI{Adapter: payprotocol.Adapter{Client: r.client}, at: rotateAt, rotate: func() { r.fake.SetSecret("revoked-" + testSecret) }}
	pacer := pipeline.NewPacer(pipeline.Limits{MaxInFlight: inFlight})

	summary, err := payprotocol.Verify(ctx, store, api, pacer, nil, &pipeline.Run{ID: 42})
	t.Logf("%d payments asked: %s: %v", api.asked.Load(), summary, err)
	if pipeline.KindOf(err) != pipeline.KindUsage || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "refused our credentials") ||
		!strings.Contains(err.Error(), "--payprotocol-secret-file") || !strings.Contains(err.Error(), "--payprotocol-api-key") {
		t.Fatalf("%v: want a configuration error in one line naming the flags to check", err)
	}
	if got := r.fake.Calls(payprotocol.APIPaymentDetail); got < rotateAt || got > rotateAt+inFlight-1 {
		t.Errorf("%d payment questions, want %d to %d: nothing asked once Pay Protocol refused our secret", got, rotateAt, rotateAt+inFlight-1)
	}
	if len(store.states) > rotateAt-1 {
		t.Errorf("%d orders given a verdict, want at most the %d asked before the refusal: %v", len(store.states), rotateAt-1, store.states)
	}
	for no, st := range store.states {
		if !strings.HasPrefix(st, pipeline.ItemRecorded+":") {
			t.Errorf("order %s %s: a refusal of our secret is none of the order's", no, st)
		}
	}

	// The secret put right: every order verified, none rejected.
	r.fake.SetSecret(testSecret)
	api.at = -1
	store.items = store.items[:0]
	for i := range n {
		no := fmt.Sprintf("T-%02d", i)
		if _, done := store.states["O"+no]; !done {
			store.items = append(store.items, toVerify(no, 0))
		}
	}
	if summary, err := payprotocol.Verify(ctx, store, api, pacer, nil, &pipeline.Run{ID: 42}); err != nil {
		t.Fatalf("re-run: %s: %v", summary, err)
	}
	if len(store.states) != n {
		t.Errorf("%d orders verified, want %d: %v", len(store.states), n, store.states)
	}
}
