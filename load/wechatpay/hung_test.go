package wechatpay_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
)

// TestADistributeAgainstAHungWeChatPayStopsChecking: WeChat Pay stopped
// (SIGSTOP) before the distribute stage accepts connections and never
// answers. The stage checks each transaction with it before planning its
// request (the platform's receiver at the sub-merchant, what WeChat Pay
// holds of the transaction), outside the engine: the engine's breaker
// did not count those checks, and each took its client's 5 attempts,
// whatever the ones before had found - 30 transactions, 150 attempts
// (at real figures, 5 attempts of 10 s for each transaction of the day,
// a few at a time), and the stage ended with a line a transaction. Now
// the third check in a row that gets no answer stops the stage: nothing
// more is asked, planned or sent, every transaction is left as the ledger
// holds it, and the stage ends resumable (exit 1) naming WeChat Pay as
// not answering. So too for a re-run that asks WeChat Pay's order of
// each request that succeeded, its item not marked paid yet. The re-run
// once WeChat Pay answers settles each transaction once, its request sent
// once.
func TestADistributeAgainstAHungWeChatPayStopsChecking(t *testing.T) {
	const n, inFlight = 30, 3
	for _, c := range []struct {
		name    string
		checked bool // the receiver found EFFECTIVE before WeChat Pay hung: each transaction's remaining amount is asked
		sent    bool // each request sent and succeeded by a run that stopped before its item was paid: its order is asked
	}{{"receiver", false, false}, {"remaining amount", true, false}, {"order of a request that succeeded", true, true}} {
		t.Run(c.name, func(t *testing.T) {
			h := newHungWeChat(t, n)
			r, store, api, hung, made := h.r, h.store, h.api, &h.hung, &h.made
			if c.checked {
				if st, err := api.EnsureReceiver(context.Background(), subMchID); err != nil || st != wechatpay.ReceiverEffective {
					t.Fatalf("receiver: %s, %v", st, err)
				}
			}
			run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}
			stageOf := func(api wechatpay.API) pipeline.StageFunc {
				return wechatpay.DistributeStage(wechatpay.StageConfig{Store: store, API: api, Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: inFlight}),
					Poll: time.Millisecond, Wait: 10 * time.Second})
			}
			stage := stageOf(api)

			if c.sent {
				if _, err := stageOf(h.answering(t))(context.Background(), run); err != nil {
					t.Fatal(err)
				}
				for no := range store.state {
					store.state[no] = pipeline.ItemRecorded // the run stopped before it marked them paid
				}
			}

			hung.Store(true)
			began := time.Now()
			_, err := stage(context.Background(), run)
			took := time.Since(began)
			hung.Store(false)
			t.Logf("took %s, %d requests made: %.600v", took, made.Load(), err)
			// The checks in flight end about together; the third stops the
			// stage, and those begun as the first ones ended are cut.
			// Checked through, the 30 took 150.
			if limit := int64((inFlight + pipeline.NotAnsweringAfter) * clientAttempts); made.Load() > limit {
				t.Errorf("%d requests to a hung WeChat Pay, want at most %d", made.Load(), limit)
			}
			if !errors.Is(err, pipeline.ErrStillProcessing) || pipeline.KindOf(err) != pipeline.KindFailed || !strings.Contains(err.Error(), "WeChat Pay is not answering") ||
				strings.Count(err.Error(), "\n") > 0 {
				t.Errorf("%v: want the resumable end in one line, naming WeChat Pay as not answering", err)
			}
			if store.count(pipeline.ItemRecorded) != n {
				t.Errorf("%d items recorded, want every item left as it was", store.count(pipeline.ItemRecorded))
			}
			for _, e := range store.effects {
				if !c.sent || e.State != pipeline.EffectSucceeded || e.Sends != 1 {
					t.Errorf("%s %s after %d sends; want none planned, or one succeeded left as it was", e.Key, e.State, e.Sends)
				}
			}

			// The re-run, WeChat Pay answering: each transaction settled,
			// its request sent once.
			if _, err := stageOf(h.answering(t))(context.Background(), run); err != nil {
				t.Fatalf("re-run: %v", err)
			}
			if paid := store.count(pipeline.ItemPaid); paid != n {
				t.Errorf("%d transactions paid, want %d", paid, n)
			}
			for _, e := range store.effects {
				if e.State != pipeline.EffectSucceeded || e.Sends != 1 || e.Attempt != 1 {
					t.Errorf("%s %s attempt %d after %d sends, want the first succeeded after its one send", e.Key, e.State, e.Attempt, e.Sends)
				}
			}
			if sent := r.fake.Calls(wechatpay.APIOrders); sent != n {
				t.Errorf("%d distributions sent, want %d", sent, n)
			}
		})
	}
}

// clientAttempts is how many attempts the client makes of a call (1 +
// MaxRetries).
const clientAttempts = 5

// hungWeChat is a day of n WeChat transactions (batchStore) at a fake
// WeChat Pay that, while hung, accepts connections and never answers,
// counting the requests it took so (made), through the real adapter and
// client (attempts of 100 ms; answering: an adapter of the rig's
// timeouts, for the runs while WeChat Pay answers).
type hungWeChat struct {
	r     *rig
	store *batchStore
	api   *wechatpay.Adapter
	hung  atomic.Bool
	made  atomic.Int64
	spare string // while hung, the requests whose URL holds it are answered ("": none)
}

func newHungWeChat(t *testing.T, n int) *hungWeChat {
	h := &hungWeChat{}
	release := make(chan struct{})
	h.r = newRig(t, wechatpaytest.Options{ReviewPolls: -1, ProviderQPS: -1, SubMerchantQPS: -1}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if h.hung.Load() && (h.spare == "" || !strings.Contains(req.URL.String(), h.spare)) {
				h.made.Add(1)
				select { // accepted, never answered
				case <-req.Context().Done():
				case <-release:
				}
				return
			}
			next.ServeHTTP(w, req)
		})
	}, func(cfg *wechatpay.Config) { cfg.Timeout = 100 * time.Millisecond })
	t.Cleanup(func() { close(release) }) // before the server's Close
	h.store = newBatchStore(n)
	h.store.sub, h.store.now = subMchID, h.r.clock.Now
	for _, it := range h.store.items {
		h.r.fake.AddTransaction(subMchID, it.ProviderTxnID, it.Currency, it.Amount)
	}
	h.api = newAdapter(t, h.r.cfg)
	return h
}

// answering is an adapter of the fake with the rig's timeouts: an answer
// that takes long on a busy machine is still one.
func (h *hungWeChat) answering(t *testing.T) *wechatpay.Adapter {
	cfg := h.r.cfg
	cfg.Timeout = 5 * time.Second
	return newAdapter(t, cfg)
}

// TestWeChatsPrepareAgainstAHungWeChatPayStopsChecking: the upload
// stage's WeChat part (PrepareStage) checks each transaction as
// distribute does: against a hung WeChat Pay it stops once the third
// check in a row gets no answer, plans nothing and leaves the rest to
// distribute, with no error of its own (distribute finds WeChat Pay not
// answering itself). Before, it checked every transaction through its
// client's retries until the uploads were done.
func TestWeChatsPrepareAgainstAHungWeChatPayStopsChecking(t *testing.T) {
	const n, inFlight = 30, 3
	h := newHungWeChat(t, n)
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}
	stage := wechatpay.PrepareStage(wechatpay.StageConfig{Store: h.store, API: h.api, Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: inFlight})})
	h.hung.Store(true)
	summary, err := stage(context.Background(), run)
	h.hung.Store(false)
	t.Logf("%d requests made: %s", h.made.Load(), summary)
	if limit := int64((inFlight + pipeline.NotAnsweringAfter) * clientAttempts); h.made.Load() > limit {
		t.Errorf("%d requests to a hung WeChat Pay, want at most %d", h.made.Load(), limit)
	}
	if err != nil || !strings.Contains(summary, "WeChat Pay is not answering") || len(h.store.effects) > 0 {
		t.Errorf("%q, %v, %d planned; want nothing planned, the rest left to distribute", summary, err, len(h.store.effects))
	}
}

// planRefused is a batchStore whose ledger refuses to plan the request
// of one order (a plain error: not pipeline.ErrNotRecorded).
type planRefused struct {
	*batchStore
	order string
}

func (s planRefused) PlanEffect(ctx context.Context, e pipeline.Effect) (pipeline.Effect, error) {
	if strings.HasSuffix(e.Subject, s.order) {
		return e, errors.New("plan " + e.Subject + ": the ledger refused it")
	}
	return s.batchStore.PlanEffect(ctx, e)
}

// TestWeChatsPrepareAgainstAHungWeChatPayStillSaysTheLedgersError: the
// ledger refuses to plan one checked transaction's request while the
// checks of the others get no answer, and the third stops the checks.
// The ledger's error is still the stage's: it was dropped with the
// checks' no answer, and the stage ended with no error at all.
func TestWeChatsPrepareAgainstAHungWeChatPayStillSaysTheLedgersError(t *testing.T) {
	const n, inFlight = 30, 3
	h := newHungWeChat(t, n)
	if st, err := h.api.EnsureReceiver(context.Background(), subMchID); err != nil || st != wechatpay.ReceiverEffective {
		t.Fatalf("receiver: %s, %v", st, err)
	}
	h.spare = "TORD-00000" // its check answered, its request's plan refused
	store := planRefused{h.store, "ORD-00000"}
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}
	stage := wechatpay.PrepareStage(wechatpay.StageConfig{Store: store, API: h.api, Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: inFlight})})
	h.hung.Store(true)
	summary, err := stage(context.Background(), run)
	h.hung.Store(false)
	t.Logf("%d requests made: %s: %v", h.made.Load(), summary, err)
	if err == nil || !strings.Contains(err.Error(), "the ledger refused it") || strings.Contains(err.Error(), "not answering") {
		t.Errorf("%v: want the ledger's error, alone", err)
	}
}
