package infiniapay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
)

// TestWebhookForgedNotificationDoesNotSuppressTheReal: an unsigned
// notification is anyone's to make who holds our public key, and
// Infinia's requestNos are guessable (ABR-20250903-0001). Deliveries were
// deduplicated by requestNo alone, and a forged one was remembered
// however it was dealt with: one about a seller unknown to us (answered
// SUCCESS, not asked about), or about a seller of ours in the status it
// had, or in a status it did not have yet (the query's answer recorded).
// The real notification with that requestNo was then answered SUCCESS
// unheard: the seller's freeze was never recorded. Each forgery here is
// answered so that nothing of it is remembered, and the real
// notification after it is confirmed and recorded (found by a review).
func TestWebhookForgedNotificationDoesNotSuppressTheReal(t *testing.T) {
	ctx := context.Background()
	k := keys(t)
	fake := infiniapaytest.New(infiniapaytest.Options{Keys: k, AppID: "APP-TEST"})
	ours := map[string]bool{"S1": true, "S2": true, "S3": true}
	confirm := func(ctx context.Context, seller string) (string, error) {
		if !ours[seller] {
			return "", infiniapay.ErrNotOurs
		}
		return confirmer(fake)(ctx, seller)
	}
	var mu sync.Mutex
	var got []infiniapay.SellerStatus
	h := infiniapay.WebhookHandler(k.PlatformPrivate, k.InfiniaPublic, confirm, func(_ context.Context, st infiniapay.SellerStatus) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, st)
		return nil
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	hc := infiniapay.NewHTTPClient(0)
	forge := func(requestNo, seller, status string) int {
		t.Helper()
		plain, _ := json.Marshal(map[string]string{"requestNo": requestNo, "sellerId": seller, "status": status})
		data, err := infiniapay.Encrypt(k.PlatformPublic, plain, infiniapay.DefaultChunkSize) // our public key: anyone's
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(map[string]string{"version": "1.0", "appId": "APP-TEST", "dataType": "JSON", "requestData": data})
		resp, err := hc.Post(srv.URL, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	last := func() infiniapay.SellerStatus {
		mu.Lock()
		defer mu.Unlock()
		if len(got) == 0 {
			return infiniapay.SellerStatus{}
		}
		return got[len(got)-1]
	}
	for _, tc := range []struct {
		name, requestNo, seller    string // the real notification's: seller S freezes
		forgedSeller, forgedStatus string
		forgedCode                 int
	}{
		{"a seller unknown to us", "ABR-1", "S1", "S-STRANGER", infiniapay.StatusActive, http.StatusOK},
		{"a seller of ours in the status it has", "ABR-2", "S2", "S2", infiniapay.StatusActive, http.StatusOK},
		{"a seller of ours in the status it will have", "ABR-3", "S3", "S3", infiniapay.StatusFrozen, http.StatusServiceUnavailable},
	} {
		fake.SetBinding(tc.seller, infiniapay.StatusActive)
		if code := forge(tc.requestNo, tc.forgedSeller, tc.forgedStatus); code != tc.forgedCode {
			t.Errorf("%s: forged notification answered %d, want %d", tc.name, code, tc.forgedCode)
		}
		// Infinia freezes the seller and notifies, with that requestNo.
		if err := fake.Notify(ctx, hc, srv.URL, tc.requestNo, tc.seller, infiniapay.StatusFrozen); err != nil {
			t.Fatalf("%s: the real notification: %v", tc.name, err)
		}
		want := infiniapay.SellerStatus{RequestNo: tc.requestNo, SellerID: tc.seller, Status: infiniapay.StatusFrozen, Notified: infiniapay.StatusFrozen}
		if l := last(); l != want {
			t.Errorf("after a forgery about %s, the real notification was answered SUCCESS with %+v recorded last, want %+v", tc.name, l, want)
		}
	}
	// The real one is remembered: delivered again, it is not recorded twice.
	n := len(got)
	if err := fake.Notify(ctx, hc, srv.URL, "ABR-3", "S3", infiniapay.StatusFrozen); err != nil || len(got) != n {
		t.Fatalf("a repeat of a confirmed notification: %v, %d recorded, want none more", err, len(got)-n)
	}
}

// TestWebhookUnconfirmedIsDeliveredAgain: a notification the binding
// status query does not confirm (Infinia's query not saying it yet, or a
// forgery) has the query's answer recorded, and is answered 503, not
// SUCCESS, so that Infinia delivers it again; delivered again once the
// query says it, it is recorded and answered SUCCESS.
func TestWebhookUnconfirmedIsDeliveredAgain(t *testing.T) {
	k := keys(t)
	fake := infiniapaytest.New(infiniapaytest.Options{Keys: k, AppID: "APP-TEST"})
	var got []infiniapay.SellerStatus
	h := infiniapay.WebhookHandler(k.PlatformPrivate, k.InfiniaPublic, confirmer(fake), func(_ context.Context, st infiniapay.SellerStatus) error {
		got = append(got, st)
		return nil
	})
	body, err := fake.Notification("N-1", "S1", infiniapay.StatusFrozen)
	if err != nil {
		t.Fatal(err)
	}
	post := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
		return rec
	}
	fake.SetBinding("S1", infiniapay.StatusActive) // the query does not say FROZEN yet
	if rec := post(); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || len(got) != 1 || got[0].Status != infiniapay.StatusActive {
		t.Fatalf("unconfirmed: answer %d %q, recorded %+v; want 503 with Retry-After and ACTIVE recorded", rec.Code, rec.Body.String(), got)
	}
	fake.SetBinding("S1", infiniapay.StatusFrozen)
	if rec := post(); rec.Code != http.StatusOK || rec.Body.String() != "SUCCESS" || len(got) != 2 || got[1].Status != infiniapay.StatusFrozen {
		t.Fatalf("delivered again once confirmed: answer %d %q, recorded %+v", rec.Code, rec.Body.String(), got)
	}
	if rec := post(); rec.Code != http.StatusOK || len(got) != 2 {
		t.Fatalf("a repeat: answer %d, recorded %+v", rec.Code, got)
	}
}

// TestWebhookRefusesLongFields: every notification the query confirms is
// remembered (the latest 65,536), and anyone can make one confirmed: a
// seller of ours in the status it has. With a requestNo of the 4 KiB a
// notification may hold, that memory measured 267 MiB (found by a
// review). A requestNo, sellerId or status over 128 bytes is refused,
// 400, before any query; one of 128 is taken.
func TestWebhookRefusesLongFields(t *testing.T) {
	k := keys(t)
	confirms := 0
	h := infiniapay.WebhookHandler(k.PlatformPrivate, k.InfiniaPublic, func(context.Context, string) (string, error) {
		confirms++
		return infiniapay.StatusActive, nil
	}, func(context.Context, infiniapay.SellerStatus) error { return nil })
	post := func(requestNo, seller string) int {
		t.Helper()
		plain, _ := json.Marshal(map[string]string{"requestNo": requestNo, "sellerId": seller, "status": infiniapay.StatusActive})
		data, err := infiniapay.Encrypt(k.PlatformPublic, plain, infiniapay.DefaultChunkSize)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(map[string]string{"version": "1.0", "appId": "APP-TEST", "dataType": "JSON", "requestData": data})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
		return rec.Code
	}
	if code := post(strings.Repeat("N", 128), "S1"); code != http.StatusOK || confirms != 1 {
		t.Fatalf("a requestNo of 128 bytes: answer %d, %d confirmations; want 200, 1", code, confirms)
	}
	if code := post(strings.Repeat("N", 129), "S1"); code != http.StatusBadRequest || confirms != 1 {
		t.Fatalf("a requestNo of 129 bytes: answer %d, %d confirmations; want 400, none more", code, confirms)
	}
	if code := post("N-1", strings.Repeat("S", 129)); code != http.StatusBadRequest || confirms != 1 {
		t.Fatalf("a sellerId of 129 bytes: answer %d, %d confirmations; want 400, none more", code, confirms)
	}
}
