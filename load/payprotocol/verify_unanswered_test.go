package payprotocol_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
)

// failingOn is a Pay Protocol that answers HTTP 500 about the orders in
// fail, every time, and a paid 10.00 USD payment about any other; asked
// counts the questions about each order.
func failingOn(t *testing.T, fail ...string) (*payprotocol.Client, func(string) int) {
	t.Helper()
	var mu sync.Mutex
	asked := map[string]int{}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/mer/conf/list/chain", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"code":200,"msg":"success","data":[]}`))
	})
	mux.HandleFunc("/api/mer/payment/detail", func(w http.ResponseWriter, r *http.Request) {
		no := r.URL.Query().Get("outTradeNo")
		mu.Lock()
		asked[no]++
		mu.Unlock()
		for _, f := range fail {
			if no == f {
				http.Error(w, "internal error", http.StatusInternalServerError)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"code":200,"msg":"success","data":{"chainId":1,"outTradeNo":"` + no + `","outPaymentNo":"P` + no +
			`","isLegalTender":1,"quoteCurrencySymbol":"USD","quoteAmount":"10.00","paymentStatus":0,"expectedAmount":"10000000",` +
			`"settlementAmount":"10000000","settlementCurrencySymbol":"USDT"}}`))
	})
	mux.HandleFunc("/api/mer/refund/detail", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound) // no refund: a bare 404, as Pay Protocol's docs list it
	})
	mux.HandleFunc("/api/mer/refund/list", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"code":200,"msg":"success","data":{"count":0,"page":1,"size":500,"list":[]}}`)) // no refund
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c, err := payprotocol.New(payprotocol.Config{BaseURL: srv.URL + "/api/mer", APIKey: testKey, APISecret: testSecret,
		HTTP: payprotocol.NewHTTPClient(5 * time.Second), RetryBase: time.Millisecond, RetryMax: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c, func(no string) int {
		mu.Lock()
		defer mu.Unlock()
		return asked[no]
	}
}

// TestAnOrderPayProtocolFailsOnDoesNotStopTheOthers: Pay Protocol answers
// 500 about one order, every time, and answers every other. The
// verification stopped at that order, and as it came first on every
// later run, asked alone, no payment of the date was verified again
// (found by a review). It is left unverified for the next run (a transient
// error, exit 1), and the others are verified.
func TestAnOrderPayProtocolFailsOnDoesNotStopTheOthers(t *testing.T) {
	t.Parallel()
	c, _ := failingOn(t, "T1")
	store := &verifyStore{states: map[string]string{},
		items: []pipeline.VerifyItem{toVerify("T1", 0), toVerify("T2", 0), toVerify("T3", 0), toVerify("T4", 0)}}
	summary, err := payprotocol.Verify(context.Background(), store, payprotocol.Adapter{Client: c}, nil, nil, &pipeline.Run{ID: 42})
	var e *payprotocol.Error
	if err == nil || pipeline.KindOf(err) != pipeline.KindFailed || !errors.As(err, &e) || !e.Transient() {
		t.Fatalf("err = %v, want Pay Protocol's transient failure about T1 (summary %q)", err, summary)
	}
	for _, no := range []string{"OT2", "OT3", "OT4"} {
		if got := store.states[no]; got != "recorded: " {
			t.Errorf("%s is %q, want recorded", no, got)
		}
	}
	if got, ok := store.states["OT1"]; ok {
		t.Errorf("OT1, not answered about, became %q", got)
	}
}

// TestPayProtocolDownStopsTheVerification: failing on every order, Pay
// Protocol is down: the verification stops after a few orders asked one
// at a time, not after asking every one.
func TestPayProtocolDownStopsTheVerification(t *testing.T) {
	t.Parallel()
	var items []pipeline.VerifyItem
	var names []string
	for _, no := range []string{"T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8"} {
		items = append(items, toVerify(no, 0))
		names = append(names, no)
	}
	c, asked := failingOn(t, names...)
	store := &verifyStore{states: map[string]string{}, items: items}
	_, err := payprotocol.Verify(context.Background(), store, payprotocol.Adapter{Client: c}, nil, nil, &pipeline.Run{ID: 42})
	var e *payprotocol.Error
	if err == nil || !errors.As(err, &e) || !e.Transient() {
		t.Fatalf("err = %v, want Pay Protocol's transient failure", err)
	}
	for _, no := range names[3:] {
		if n := asked(no); n != 0 {
			t.Errorf("%s asked %d times with Pay Protocol down", no, n)
		}
	}
	if len(store.states) != 0 {
		t.Errorf("states = %v, want none changed", store.states)
	}
}

// TestAnOrderPayProtocolFailsOnIsARowOfItsOwn: Pay Protocol answers 500
// about one order, every time, and answers every other. The matcher
// failed, and with it the whole reconciliation (every provider's
// findings, and the recheck of the date by later nightly runs), on every
// run (found by a review). That order is an unexpected unverifiable row,
// not kept, and the others are matched; Pay Protocol failing on every
// order still fails the matcher, after a few questions.
func TestAnOrderPayProtocolFailsOnIsARowOfItsOwn(t *testing.T) {
	t.Parallel()
	items := []pipeline.VerifyItem{toVerify("T1", 0), toVerify("T2", 0), toVerify("T3", 0), toVerify("T4", 0), toVerify("T5", 0)}
	states := map[string]string{}
	for _, it := range items {
		states[it.OrderNo] = "paid: "
	}
	c, _ := failingOn(t, "T1")
	store := &verifyStore{states: states, items: items}
	ms, err := payprotocol.Matcher(payprotocol.MatcherConfig{Store: store, API: payprotocol.Adapter{Client: c}})(context.Background(), &pipeline.Run{ID: 42})
	if err != nil {
		t.Fatalf("one order's failure failed the matcher: %v", err)
	}
	if len(ms) != 1 || ms[0].Subject != "T1" || ms[0].Category != pipeline.MismatchUnverifiable || ms[0].Expected {
		t.Fatalf("findings %+v, want one unexpected unverifiable row about T1", ms)
	}

	down, asked := failingOn(t, "T1", "T2", "T3", "T4", "T5")
	_, err = payprotocol.Matcher(payprotocol.MatcherConfig{Store: store, API: payprotocol.Adapter{Client: down}})(context.Background(), &pipeline.Run{ID: 42})
	var e *payprotocol.Error
	if err == nil || !errors.As(err, &e) || !e.Transient() {
		t.Fatalf("Pay Protocol down: err = %v, want its transient failure", err)
	}
	if n := asked("T4") + asked("T5"); n != 0 {
		t.Errorf("T4 and T5 asked %d times with Pay Protocol down", n)
	}
}

// TestTheOnlyOrderAskedFailingIsARowWhilePayProtocolAnswers: on a
// recheck, or a run whose verification kept the others' answers, the
// matcher asks one order alone, and Pay Protocol fails on it every time.
// Nothing was answered, which the matcher took for Pay Protocol down: it
// failed, and with it the reconciliation of every provider and the
// date's reports, on every run (what a row of its own was to end). Pay
// Protocol answering another question (MatcherConfig.Up) says it is the
// order's alone: a row, the matching done. Down, it still fails.
func TestTheOnlyOrderAskedFailingIsARowWhilePayProtocolAnswers(t *testing.T) {
	t.Parallel()
	store := &verifyStore{states: map[string]string{"T1": "paid: "}, items: []pipeline.VerifyItem{toVerify("T1", 0)}}
	c, _ := failingOn(t, "T1")
	ms, err := payprotocol.Matcher(payprotocol.MatcherConfig{Store: store, API: payprotocol.Adapter{Client: c}, Up: c.Preflight})(context.Background(), &pipeline.Run{ID: 42})
	if err != nil {
		t.Fatalf("the one order asked failing failed the matcher while Pay Protocol answers: %v", err)
	}
	if len(ms) != 1 || ms[0].Subject != "T1" || ms[0].Category != pipeline.MismatchUnverifiable || ms[0].Expected {
		t.Fatalf("findings %+v, want one unexpected unverifiable row about T1", ms)
	}
	// Pay Protocol down: the probe fails too.
	down, _ := failingOn(t, "T1", "settle-preflight-no-such-order")
	_, err = payprotocol.Matcher(payprotocol.MatcherConfig{Store: store, API: payprotocol.Adapter{Client: down}, Up: down.Preflight})(context.Background(), &pipeline.Run{ID: 42})
	var e *payprotocol.Error
	if err == nil || !errors.As(err, &e) || !e.Transient() {
		t.Fatalf("Pay Protocol down: err = %v, want its transient failure", err)
	}
}

// TestTheFirstOrdersFailingDoNotStopTheVerificationWhilePayProtocolAnswers:
// the verification asks one order at a time until Pay Protocol answers
// one, and took 3 unanswered in a row for Pay Protocol down. When the
// first 3 unverified orders by number are ones Pay Protocol fails on
// every time, every run of the date stopped there, and no payment after
// them was ever verified. Pay Protocol answering a question of its own
// (the pre-flight's) says those orders fail alone: the others are
// verified. Down, it still stops after a few questions.
func TestTheFirstOrdersFailingDoNotStopTheVerificationWhilePayProtocolAnswers(t *testing.T) {
	t.Parallel()
	items := []pipeline.VerifyItem{toVerify("T1", 0), toVerify("T2", 0), toVerify("T3", 0), toVerify("T4", 0), toVerify("T5", 0)}
	c, _ := failingOn(t, "T1", "T2", "T3")
	store := &verifyStore{states: map[string]string{}, items: items}
	p := payprotocol.NewProvider(payprotocol.ProviderConfig{Client: c, Store: store})
	_, err := p.Upload(context.Background(), &pipeline.Run{ID: 42})
	if !errors.Is(err, pipeline.ErrStillProcessing) {
		t.Fatalf("err = %v, want the unanswered left for the next run", err)
	}
	for _, no := range []string{"OT4", "OT5"} {
		if got := store.states[no]; got != "recorded: " {
			t.Errorf("%s is %q, want recorded", no, got)
		}
	}
	for _, no := range []string{"OT1", "OT2", "OT3"} {
		if got, ok := store.states[no]; ok {
			t.Errorf("%s, not answered about, became %q", no, got)
		}
	}

	var names []string
	for i := 1; i <= 12; i++ {
		names = append(names, fmt.Sprintf("T%02d", i))
	}
	items = nil
	for _, no := range names {
		items = append(items, toVerify(no, 0))
	}
	down, asked := failingOn(t, append(names, "settle-preflight-no-such-order")...)
	store = &verifyStore{states: map[string]string{}, items: items}
	_, err = payprotocol.NewProvider(payprotocol.ProviderConfig{Client: down, Store: store}).Upload(context.Background(), &pipeline.Run{ID: 42})
	if !errors.Is(err, pipeline.ErrStillProcessing) {
		t.Fatalf("Pay Protocol down: err = %v, want the payments left for the next run", err)
	}
	n := 0
	for _, no := range names {
		if asked(no) > 0 {
			n++
		}
	}
	if n > 3 {
		t.Errorf("%d orders asked with Pay Protocol down, want 3", n)
	}
}
