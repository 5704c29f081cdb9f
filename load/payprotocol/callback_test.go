package payprotocol_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
)

// TestCallbacksOnScheduleUntilSuccess: the receiver fails twice (500), so
// the fake sends at 0, 15 and 30 (milli)seconds and stops at the first
// "success"; deliver saw the callback once.
func TestCallbacksOnScheduleUntilSuccess(t *testing.T) {
	r := newRig(t, payprotocoltest.Options{}, nil)
	paid(t, r)
	r.receiver.failNext(2)
	if err := r.fake.SetPaymentStatus("T-1", payprotocol.PaymentRefunded); err != nil {
		t.Fatal(err)
	}
	waitCallbacks(t, r.fake)
	ds := r.fake.Deliveries()
	if len(ds) != 3 {
		t.Fatalf("%d deliveries: %+v", len(ds), ds)
	}
	sched := payprotocoltest.Schedule()
	for i, d := range ds {
		due := sched[i] / 1000
		if d.Attempt != i+1 || d.Offset < due || d.Offset > due+250*time.Millisecond || d.Ref != "T-1" || d.Kind != payprotocol.CallbackPayment {
			t.Fatalf("delivery %d: %+v, due at %v", i, d, due)
		}
		if acked := i == 2; d.Acked != acked || (acked && d.HTTPStatus != 200) || (!acked && d.HTTPStatus != http.StatusInternalServerError) {
			t.Fatalf("delivery %d: %+v", i, d)
		}
	}
	if got := r.receiver.callbacks(); len(got) != 1 || got[0].Payment.Status != payprotocol.PaymentRefunded {
		t.Fatalf("delivered: %+v", got)
	}
}

// TestCallbacksGiveUpAfterSix: a receiver that never answers "success"
// gets six attempts, the last at 10 minutes (here 600 ms).
func TestCallbacksGiveUpAfterSix(t *testing.T) {
	hits := atomic.Int32{}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("ok")) // not "success"
	}))
	defer sink.Close()
	r := newRig(t, payprotocoltest.Options{NotifyURL: sink.URL + "/cb"}, nil)
	paid(t, r)
	r.fake.SetPaymentStatus("T-1", payprotocol.PaymentRefunded)
	waitCallbacks(t, r.fake)
	ds := r.fake.Deliveries()
	if len(ds) != 6 || hits.Load() != 6 {
		t.Fatalf("%d deliveries, %d hits", len(ds), hits.Load())
	}
	if last := ds[5]; last.Acked || last.Offset < 600*time.Millisecond || last.HTTPStatus != 200 {
		t.Fatalf("last delivery %+v", last)
	}
}

func TestCallbackHandlerRefuses(t *testing.T) {
	now := time.Unix(1723971200, 0)
	var delivered atomic.Int32
	h := payprotocol.CallbackHandler(testKey, testSecret, 0, func() time.Time { return now }, nil,
		func(context.Context, payprotocol.Callback) error { delivered.Add(1); return nil })
	body := []byte(`{"outTradeNo":"T-1","outPaymentNo":"P-1","paymentStatus":0,"isLegalTender":1,"quoteCurrencySymbol":"USD","quoteAmount":"12.34","expectedAmount":"12340000","settlementAmount":"12340000","settlementCurrencySymbol":"USDT"}`)
	serve := func(r *http.Request) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	const path = "/hooks/payprotocol?channel=crypto"
	for name, tc := range map[string]struct {
		req  *http.Request
		code int
	}{
		"stale timestamp": {signed("POST", path, body, testKey, testSecret, now.Add(-61*time.Second)), http.StatusUnauthorized},
		"wrong secret":    {signed("POST", path, body, testKey, "guess", now), http.StatusUnauthorized},
		"wrong key":       {signed("POST", path, body, "other", testSecret, now), http.StatusUnauthorized},
		"other path": {func() *http.Request {
			r := signed("POST", path, body, testKey, testSecret, now)
			r.RequestURI = "/hooks/other"
			return r
		}(), http.StatusUnauthorized},
		"unsigned":       {httptest.NewRequest("POST", path, bytes.NewReader(body)), http.StatusUnauthorized},
		"GET":            {signed("GET", path, nil, testKey, testSecret, now), http.StatusMethodNotAllowed},
		"not a callback": {signed("POST", path, []byte(`{"hello":1}`), testKey, testSecret, now), http.StatusBadRequest},
		"bad amount":     {signed("POST", path, bytes.Replace(body, []byte(`"12340000"`), []byte(`"12.34"`), 1), testKey, testSecret, now), http.StatusBadRequest},
	} {
		if rec := serve(tc.req); rec.Code != tc.code {
			t.Errorf("%s: %d %q, want %d", name, rec.Code, rec.Body, tc.code)
		}
	}
	if delivered.Load() != 0 {
		t.Fatalf("refused callbacks delivered %d times", delivered.Load())
	}
	// Signed with a timestamp 60 s old: accepted, answered plain "success".
	rec := serve(signed("POST", path, body, testKey, testSecret, now.Add(-60*time.Second)))
	if rec.Code != http.StatusOK || rec.Body.String() != "success" || rec.Header().Get("Content-Type") != "text/plain; charset=utf-8" || delivered.Load() != 1 {
		t.Fatalf("good callback: %d %q", rec.Code, rec.Body)
	}
	// Wrapped as {code, msg, data}: the same event, not delivered again.
	wrapped := append(append([]byte(`{"code":200,"msg":"success","data":`), body...), '}')
	if rec := serve(signed("POST", path, wrapped, testKey, testSecret, now)); rec.Code != http.StatusOK || delivered.Load() != 1 {
		t.Fatalf("wrapped duplicate: %d, delivered %d", rec.Code, delivered.Load())
	}
}

// TestCallbackSeen: seen says what was recorded before a restart; it is
// asked, never told, so a failed deliver is delivered again.
func TestCallbackSeen(t *testing.T) {
	now := time.Unix(1723971200, 0)
	body := []byte(`{"refundId":82,"outTradeNo":"T-1","refundStatus":0,"refundAmount":"90000000"}`)
	var mu sync.Mutex
	recorded := map[string]bool{}
	var seenErr error
	deliverErr := errors.New("disk full")
	failDeliver := true
	h := payprotocol.CallbackHandler(testKey, testSecret, time.Minute, func() time.Time { return now },
		func(key string) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			return !recorded[key], seenErr
		},
		func(_ context.Context, cb payprotocol.Callback) error {
			mu.Lock()
			defer mu.Unlock()
			if failDeliver {
				failDeliver = false
				return deliverErr
			}
			if cb.Kind != payprotocol.CallbackRefund || cb.Refund.RefundID != "82" || cb.Refund.Amount.String() != "90000000" {
				return errors.New("wrong callback")
			}
			recorded[cb.Key()] = true
			return nil
		})
	post := func() int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, signed("POST", "/cb", body, testKey, testSecret, now))
		return rec.Code
	}
	if post() != http.StatusInternalServerError {
		t.Fatal("failed deliver not answered 500")
	}
	if post() != http.StatusOK || len(recorded) != 1 {
		t.Fatalf("redelivery not recorded: %v", recorded)
	}
	// A new handler (a restart) with the key recorded: success, no deliver.
	h2 := payprotocol.CallbackHandler(testKey, testSecret, 0, func() time.Time { return now },
		func(key string) (bool, error) { return !recorded[key], nil },
		func(context.Context, payprotocol.Callback) error { t.Error("delivered after restart"); return nil })
	rec := httptest.NewRecorder()
	h2.ServeHTTP(rec, signed("POST", "/cb", body, testKey, testSecret, now))
	if rec.Code != http.StatusOK || rec.Body.String() != "success" {
		t.Fatalf("after restart: %d", rec.Code)
	}
	// seen failing: 500, so that Pay Protocol sends it again.
	seenErr = errors.New("db down")
	h3 := payprotocol.CallbackHandler(testKey, testSecret, 0, func() time.Time { return now },
		func(string) (bool, error) { return true, seenErr },
		func(context.Context, payprotocol.Callback) error { return nil })
	rec = httptest.NewRecorder()
	h3.ServeHTTP(rec, signed("POST", "/cb", body, testKey, testSecret, now))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("seen failing: %d", rec.Code)
	}
}

func TestCallbackConcurrentDuplicatesDeliverOnce(t *testing.T) {
	now := time.Unix(1723971200, 0)
	var calls atomic.Int32
	h := payprotocol.CallbackHandler(testKey, testSecret, 0, func() time.Time { return now }, nil,
		func(context.Context, payprotocol.Callback) error {
			calls.Add(1)
			time.Sleep(5 * time.Millisecond)
			return nil
		})
	body := []byte(`{"outTradeNo":"T-1","outPaymentNo":"P-1","paymentStatus":0,"isLegalTender":1,"quoteCurrencySymbol":"USD","quoteAmount":"1","expectedAmount":"1"}`)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, signed("POST", "/cb", body, testKey, testSecret, now))
			if rec.Code != http.StatusOK || rec.Body.String() != "success" {
				t.Errorf("%d %q", rec.Code, rec.Body)
			}
		}()
	}
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("delivered %d times", calls.Load())
	}
	// The same payment with another status is another event.
	other := bytes.Replace(body, []byte(`"paymentStatus":0`), []byte(`"paymentStatus":5`), 1)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, signed("POST", "/cb", other, testKey, testSecret, now))
	if rec.Code != http.StatusOK || calls.Load() != 2 {
		t.Fatalf("new status: %d, %d calls", rec.Code, calls.Load())
	}
}

// TestFakeRefusesBadSignatures checks the fake's side directly, with
// requests signed by hand.
func TestFakeRefusesBadSignatures(t *testing.T) {
	r := newRig(t, payprotocoltest.Options{}, nil)
	paid(t, r)
	hc := payprotocol.NewHTTPClient(5 * time.Second)
	get := func(mod func(*http.Request)) int {
		req, _ := http.NewRequest("GET", r.srv.URL+"/api/mer/payment/detail?outTradeNo=T-1", nil)
		payprotocol.SignRequest(req, testKey, testSecret, time.Now(), nil)
		mod(req)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get(func(*http.Request) {}); c != http.StatusOK {
		t.Fatalf("good request: %d", c)
	}
	for name, mod := range map[string]func(*http.Request){
		"stale": func(q *http.Request) {
			payprotocol.SignRequest(q, testKey, testSecret, time.Now().Add(-2*time.Minute), nil)
		},
		"query changed": func(q *http.Request) { q.URL.RawQuery = "outTradeNo=T-2" },
		"path signed without prefix": func(q *http.Request) {
			q.Header.Set("X-PAY-SIGN", payprotocol.Sign(testSecret, q.Header.Get("X-PAY-TIMESTAMP"), "GET", "/payment/detail?outTradeNo=T-1", nil))
		},
		"no key": func(q *http.Request) { q.Header.Del("X-PAY-KEY") },
	} {
		if c := get(mod); c != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, c)
		}
	}
}

// TestCallbackKeyTellsASlashFromTheSeparator: order "A/B" paid under
// payment "C", then order "A" paid under payment "B/C", are two events,
// each delivered: their keys were one ("payment/A/B/C/paid/..."), and the
// second was answered "success" as a repeat, never delivered (found by
// FuzzCallbackKey). A key without "/" or "%" in its parts is as before.
func TestCallbackKeyTellsASlashFromTheSeparator(t *testing.T) {
	now := time.Unix(1723971200, 0)
	var got []string
	h := payprotocol.CallbackHandler(testKey, testSecret, 0, func() time.Time { return now }, nil,
		func(_ context.Context, cb payprotocol.Callback) error {
			got = append(got, cb.Payment.OutTradeNo+" "+cb.Payment.OutPaymentNo)
			return nil
		})
	for _, ids := range [][2]string{{"A/B", "C"}, {"A", "B/C"}, {"A%2FB", "C"}} {
		body := []byte(`{"outTradeNo":"` + ids[0] + `","outPaymentNo":"` + ids[1] + `","paymentStatus":0,"isLegalTender":1,"quoteCurrencySymbol":"USD","quoteAmount":"1","expectedAmount":"1","settlementAmount":"1000000"}`)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, signed("POST", "/cb", body, testKey, testSecret, now))
		if rec.Code != http.StatusOK {
			t.Fatalf("%v: %d", ids, rec.Code)
		}
	}
	if want := []string{"A/B C", "A B/C", "A%2FB C"}; !slices.Equal(got, want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
	plain := payprotocol.Callback{Kind: payprotocol.CallbackPayment, Payment: payprotocol.Payment{OutTradeNo: "T-1", OutPaymentNo: "P-1",
		Status: payprotocol.PaymentPaid, SettlementAmount: "1000000"}}
	if k := plain.Key(); k != "payment/T-1/P-1/"+payprotocol.PaymentPaid.String()+"/1000000" {
		t.Fatalf("key of plain ids changed: %q", k)
	}
}
