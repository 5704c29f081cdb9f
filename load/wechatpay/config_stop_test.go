package wechatpay_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
)

// unknownSerial has every answer it writes name a platform key we do not
// hold in its Wechatpay-Serial header (WeChat Pay signing with a new
// platform certificate, which we were not given).
type unknownSerial struct{ http.ResponseWriter }

func (w unknownSerial) WriteHeader(code int) {
	w.Header().Set("Wechatpay-Serial", "PUB_KEY_ID_NOT_OURS")
	w.ResponseWriter.WriteHeader(code)
}

func (w unknownSerial) Write(b []byte) (int, error) { return w.ResponseWriter.Write(b) }

// TestAConfigurationStopOtherThanOurKeyStillSaysWhatItHeld: a transaction
// WeChat Pay refuses outright (INVALID_REQUEST) is held for a person;
// then WeChat Pay's answers, from the third distribution on, are signed
// with a platform key we do not hold (a configuration error, exit 2, its
// own line: not our key refused). The stage stops with that line alone,
// and the transaction held is in its problems (pipeline.StopProblems: the
// runner's NEEDS A PERSON line), with the stage's summary so far. Before,
// only a refusal of our key kept them: this stop returned its error
// alone, and the night's log said nothing of the transaction held.
func TestAConfigurationStopOtherThanOurKeyStillSaysWhatItHeld(t *testing.T) {
	const n, rotateAt = 6, 3
	var sends atomic.Int64
	r := newRig(t, wechatpaytest.Options{Polls: -1}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/"+wechatpay.APIOrders) && sends.Add(1) >= rotateAt {
				w = unknownSerial{w}
			}
			next.ServeHTTP(w, req)
		})
	}, nil)
	store := &reasonStore{batchStore: newBatchStore(n), reasons: map[string]string{}}
	store.sub, store.now = subMchID, r.clock.Now
	for _, it := range store.items {
		r.fake.AddTransaction(subMchID, it.ProviderTxnID, "CNY", it.Amount)
	}
	poisoned := store.items["ORD-00000"]
	r.fake.Poison(poisoned.ProviderTxnID, "INVALID_REQUEST")
	r.fake.SetReceiver(subMchID, wechatpay.TypeMerchantID, "1900009999", wechatpay.ReceiverEffective)
	api := wechatpay.NewAdapter(r.client, wechatpay.NewReceiver{Type: wechatpay.TypeMerchantID, Account: "1900009999",
		Name: "Platform Ltd", RelationType: wechatpay.RelationDistributor})
	stage := wechatpay.DistributeStage(wechatpay.StageConfig{Store: store, API: api, Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: 1}),
		Poll: time.Millisecond, Wait: 5 * time.Second})
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Shard: pipeline.Whole}}

	summary, err := stage(context.Background(), run)
	t.Logf("%d distributions sent: %s: %v", sends.Load(), summary, err)
	if pipeline.KindOf(err) != pipeline.KindUsage || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "platform key we do not hold") ||
		strings.Contains(err.Error(), "INVALID_REQUEST") {
		t.Fatalf("%v: want the configuration error alone, in one line", err)
	}
	problems := pipeline.StopProblems(err)
	if problems == nil || !strings.Contains(problems.Error(), "order "+poisoned.OrderNo) || !strings.Contains(problems.Error(), "INVALID_REQUEST") {
		t.Fatalf("the stop's problems: %v, want order %s held for WeChat Pay's INVALID_REQUEST", problems, poisoned.OrderNo)
	}
	t.Logf("the stop's problems: %v", problems)
	if !strings.Contains(summary, "1 held") || !strings.Contains(summary, "stopped: a configuration error") {
		t.Errorf("summary %q, want the stage's so far and why it stopped", summary)
	}
}
