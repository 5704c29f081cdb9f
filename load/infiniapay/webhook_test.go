package infiniapay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
)

func TestWebhook(t *testing.T) {
	ctx := context.Background()
	k := keys(t)
	fake := infiniapaytest.New(infiniapaytest.Options{Keys: k, AppID: "APP-TEST"})
	var mu sync.Mutex
	var got []infiniapay.SellerStatus
	fail := true
	h := infiniapay.WebhookHandler(k.PlatformPrivate, k.InfiniaPublic, func(_ context.Context, st infiniapay.SellerStatus) error {
		mu.Lock()
		defer mu.Unlock()
		if st.RequestNo == "N-FAIL" && fail {
			fail = false
			return errors.New("database down")
		}
		got = append(got, st)
		return nil
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	hc := infiniapay.NewHTTPClient(0)

	// Two deliveries of one notification: SUCCESS twice, recorded once.
	for i := 0; i < 2; i++ {
		if err := fake.Notify(ctx, hc, srv.URL, "N-1", "S1", infiniapay.StatusActive); err != nil {
			t.Fatalf("delivery %d: %v", i+1, err)
		}
	}
	if len(got) != 1 || got[0] != (infiniapay.SellerStatus{RequestNo: "N-1", SellerID: "S1", Status: "ACTIVE"}) {
		t.Fatalf("onStatus calls: %+v", got)
	}

	// onStatus fails: 500, so Infinia delivers again, and then it is recorded.
	if err := fake.Notify(ctx, hc, srv.URL, "N-FAIL", "S2", infiniapay.StatusFrozen); err == nil {
		t.Fatal("a notification that was not recorded was acknowledged")
	}
	if err := fake.Notify(ctx, hc, srv.URL, "N-FAIL", "S2", infiniapay.StatusFrozen); err != nil || len(got) != 2 {
		t.Fatalf("redelivery: %v, %+v", err, got)
	}

	status := func(body []byte) int {
		resp, err := hc.Post(srv.URL, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	body, _ := fake.Notification("N-2", "S1", "FROZEN")
	var env infiniapay.RequestEnvelope
	json.Unmarshal(body, &env)
	bad := env
	bad.Signature = env.Signature[:10] + "AAAA" + env.Signature[14:]
	if b, _ := json.Marshal(bad); status(b) != http.StatusBadRequest {
		t.Fatal("bad signature not refused with 400")
	}
	bad = env
	bad.Signature = ""
	if b, _ := json.Marshal(bad); status(b) != http.StatusBadRequest {
		t.Fatal("missing signature not refused with 400")
	}
	// Signed by us rather than Infinia: refused.
	forged, _ := infiniapay.Seal("APP-TEST", map[string]string{"requestNo": "N-3", "sellerId": "S1", "status": "ACTIVE"}, k.PlatformPublic, k.PlatformPrivate, 64)
	if status(forged) != http.StatusBadRequest || status([]byte("{")) != http.StatusBadRequest {
		t.Fatal("forged or broken envelope not refused")
	}
	if len(got) != 2 {
		t.Fatalf("refused notifications reached onStatus: %+v", got)
	}
	// The data under responseData instead of requestData is read too.
	alt, _ := json.Marshal(map[string]string{"version": "1.0", "appId": "APP-TEST", "dataType": "JSON",
		"responseData": env.RequestData, "signature": env.Signature})
	if status(alt) != http.StatusOK || len(got) != 3 {
		t.Fatal("responseData variant not accepted")
	}
	if resp, err := hc.Get(srv.URL); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %v", err)
	}
}

func TestWebhookConcurrentDeliveriesRecordOnce(t *testing.T) {
	k := keys(t)
	fake := infiniapaytest.New(infiniapaytest.Options{Keys: k})
	var calls atomic.Int32
	h := infiniapay.WebhookHandler(k.PlatformPrivate, k.InfiniaPublic, func(context.Context, infiniapay.SellerStatus) error {
		calls.Add(1)
		return nil
	})
	body, _ := fake.Notification("N-1", "S1", "ACTIVE")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
			if rec.Code != http.StatusOK || rec.Body.String() != "SUCCESS" {
				t.Errorf("answer %d %q", rec.Code, rec.Body.String())
			}
		}()
	}
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("onStatus called %d times", calls.Load())
	}
}
