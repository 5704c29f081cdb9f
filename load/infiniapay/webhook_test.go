package infiniapay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
)

// confirmer answers the binding status query from the fake, as
// Client.BindingStatus would.
func confirmer(fake *infiniapaytest.Server) func(context.Context, string) (string, error) {
	return func(_ context.Context, seller string) (string, error) {
		st, ok := fake.Binding(seller)
		if !ok {
			return "", infiniapay.ErrNotFound
		}
		return st, nil
	}
}

func TestWebhook(t *testing.T) {
	ctx := context.Background()
	k := keys(t)
	fake := infiniapaytest.New(infiniapaytest.Options{Keys: k, AppID: "APP-TEST", SignNotifications: true})
	var mu sync.Mutex
	var got []infiniapay.SellerStatus
	fail := true
	h := infiniapay.WebhookHandler(k.PlatformPrivate, k.InfiniaPublic, confirmer(fake), func(_ context.Context, st infiniapay.SellerStatus) error {
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
	if len(got) != 1 || got[0] != (infiniapay.SellerStatus{RequestNo: "N-1", SellerID: "S1", Status: "ACTIVE", Notified: "ACTIVE"}) {
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
	// Signed by us rather than Infinia: refused.
	forged, _ := infiniapay.Seal("APP-TEST", map[string]string{"requestNo": "N-3", "sellerId": "S1", "status": "ACTIVE"}, k.PlatformPublic, k.PlatformPrivate, 64)
	if status(forged) != http.StatusBadRequest || status([]byte("{")) != http.StatusBadRequest {
		t.Fatal("forged or broken envelope not refused")
	}
	if len(got) != 2 {
		t.Fatalf("refused notifications reached onStatus: %+v", got)
	}
	// The data under responseData instead of requestData is read too
	// (the query confirming what it says: FROZEN).
	fake.SetBinding("S1", "FROZEN")
	alt, _ := json.Marshal(map[string]string{"version": "1.0", "appId": "APP-TEST", "dataType": "JSON",
		"responseData": env.RequestData, "signature": env.Signature})
	if status(alt) != http.StatusOK || len(got) != 3 {
		t.Fatal("responseData variant not accepted")
	}
	resp, err := hc.Get(srv.URL)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	resp.Body.Close() // else its connection's goroutines outlive the test
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %s", resp.Status)
	}
}

func TestWebhookConcurrentDeliveriesRecordOnce(t *testing.T) {
	k := keys(t)
	fake := infiniapaytest.New(infiniapaytest.Options{Keys: k})
	var calls atomic.Int32
	fake.SetBinding("S1", "ACTIVE")
	h := infiniapay.WebhookHandler(k.PlatformPrivate, k.InfiniaPublic, confirmer(fake), func(context.Context, infiniapay.SellerStatus) error {
		calls.Add(1)
		return nil
	})
	h.MaxConfirming = 1 // deliveries of one requestNo wait for each other: they are not refused as busy
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

// The documented notification has no signature: it is taken when it
// decrypts with our key, and never acted on alone - the binding status
// query decides what is recorded.
func TestWebhookUnsignedConfirmedByQuery(t *testing.T) {
	k := keys(t)
	fake := infiniapaytest.New(infiniapaytest.Options{Keys: k, AppID: "APP-TEST"})
	var got []infiniapay.SellerStatus
	h := infiniapay.WebhookHandler(k.PlatformPrivate, k.InfiniaPublic, confirmer(fake), func(_ context.Context, st infiniapay.SellerStatus) error {
		got = append(got, st)
		return nil
	})
	post := func(body []byte) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
		return rec.Code
	}
	body, err := fake.Notification("N-1", "S1", "ACTIVE")
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]string
	json.Unmarshal(body, &env)
	if _, signed := env["signature"]; signed || env["requestData"] == "" || env["version"] != "1.0" || env["dataType"] != "JSON" {
		t.Fatalf("the fake's notification is not the documented shape: %s", body)
	}
	// Infinia's query says FROZEN whatever the notification claims: that
	// is recorded, and the notification, unconfirmed, is to be delivered
	// again (503), not answered SUCCESS.
	fake.SetBinding("S1", "FROZEN")
	if code := post(body); code != http.StatusServiceUnavailable || len(got) != 1 || got[0].Status != "FROZEN" || got[0].Notified != "ACTIVE" {
		t.Fatalf("answer %d, recorded %+v: want the queried status FROZEN, and 503", code, got)
	}
	// A seller the query does not know: nothing recorded, delivered again.
	unknown, _ := fake.Notification("N-2", "S-NONE", "ACTIVE")
	if code := post(unknown); code != http.StatusInternalServerError || len(got) != 1 {
		t.Fatalf("unconfirmed notification: answer %d, recorded %+v", code, got)
	}
	// Unsigned data that does not decrypt with our key: refused.
	other, _ := infiniapay.Encrypt(k.InfiniaPublic, []byte(`{"requestNo":"N-3","sellerId":"S1","status":"ACTIVE"}`), 64)
	forged, _ := json.Marshal(map[string]string{"version": "1.0", "appId": "APP-TEST", "dataType": "JSON", "requestData": other})
	if code := post(forged); code != http.StatusBadRequest || len(got) != 1 {
		t.Fatalf("undecryptable notification: answer %d, recorded %+v", code, got)
	}
	// Decrypts but is not a status: refused.
	junk, _ := infiniapay.Encrypt(k.PlatformPublic, []byte(`{"hello":"world"}`), 64)
	empty, _ := json.Marshal(map[string]string{"version": "1.0", "requestData": junk})
	if code := post(empty); code != http.StatusBadRequest || len(got) != 1 {
		t.Fatalf("malformed notification: answer %d, recorded %+v", code, got)
	}
}

// TestWebhookConfirmsABoundedNumberAtATime: anyone with our public key can
// make a notification that decrypts, each costing a binding query. Beyond
// MaxConfirming deliveries being confirmed, one is answered 503 at once
// (Infinia delivers it again), not queued behind Infinia's rate limit.
func TestWebhookConfirmsABoundedNumberAtATime(t *testing.T) {
	k := keys(t)
	fake := infiniapaytest.New(infiniapaytest.Options{Keys: k})
	fake.SetBinding("S1", "ACTIVE")
	fake.SetBinding("S2", "ACTIVE")
	release, asked := make(chan struct{}), make(chan string, 4)
	confirm := func(ctx context.Context, seller string) (string, error) {
		asked <- seller
		<-release
		return confirmer(fake)(ctx, seller)
	}
	var recorded atomic.Int32
	h := infiniapay.WebhookHandler(k.PlatformPrivate, k.InfiniaPublic, confirm, func(context.Context, infiniapay.SellerStatus) error {
		recorded.Add(1)
		return nil
	})
	h.MaxConfirming = 1
	post := func(requestNo, seller string) *httptest.ResponseRecorder {
		body, err := fake.Notification(requestNo, seller, "ACTIVE")
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
		return rec
	}
	first := make(chan *httptest.ResponseRecorder)
	go func() { first <- post("N-1", "S1") }()
	<-asked // N-1 is being confirmed
	second := make(chan *httptest.ResponseRecorder, 1)
	go func() { second <- post("N-2", "S2") }()
	select {
	case rec := <-second:
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("a delivery beyond MaxConfirming: answer %d %q, want 503 with Retry-After", rec.Code, rec.Body.String())
		}
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("a delivery beyond MaxConfirming was not answered at once: it waits on the confirmations")
	}
	close(release)
	if rec := <-first; rec.Code != http.StatusOK {
		t.Fatalf("N-1: answer %d", rec.Code)
	}
	if rec := post("N-2", "S2"); rec.Code != http.StatusOK || recorded.Load() != 2 || len(asked) != 1 {
		t.Fatalf("N-2 delivered again: answer %d, %d recorded, %d queries; want it confirmed and recorded", rec.Code, recorded.Load(), len(asked)+1)
	}
}

// TestWebhookAsksSeenBeforeConfirming: a delivery the ledger dealt with
// before a restart costs no binding query.
func TestWebhookAsksSeenBeforeConfirming(t *testing.T) {
	k := keys(t)
	fake := infiniapaytest.New(infiniapaytest.Options{Keys: k})
	fake.SetBinding("S1", "ACTIVE")
	var queries, recorded atomic.Int32
	h := infiniapay.WebhookHandler(k.PlatformPrivate, k.InfiniaPublic, func(ctx context.Context, seller string) (string, error) {
		queries.Add(1)
		return confirmer(fake)(ctx, seller)
	}, func(context.Context, infiniapay.SellerStatus) error { recorded.Add(1); return nil })
	h.Seen = func(_ context.Context, st infiniapay.SellerStatus) (bool, error) { return st.RequestNo == "N-OLD", nil }
	for _, n := range []string{"N-OLD", "N-NEW"} {
		body, _ := fake.Notification(n, "S1", "ACTIVE")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
		if rec.Code != http.StatusOK || rec.Body.String() != "SUCCESS" {
			t.Fatalf("%s: answer %d %q", n, rec.Code, rec.Body.String())
		}
	}
	if queries.Load() != 1 || recorded.Load() != 1 {
		t.Fatalf("%d queries, %d recorded; want the new delivery's alone", queries.Load(), recorded.Load())
	}
}

// TestWebhookRefusesLargeNotificationsUndecrypted: anyone with our public
// key can make an unsigned notification that decrypts, and each RSA block
// costs a private-key operation: a 1 MiB body of them took over 3 s of a
// core, before MaxConfirming bounds anything (found by a security review).
// A notification of more blocks than a status needs is refused unopened;
// one of a usual size is taken.
func TestWebhookRefusesLargeNotificationsUndecrypted(t *testing.T) {
	k := keys(t)
	confirms := 0
	h := infiniapay.WebhookHandler(k.PlatformPrivate, k.InfiniaPublic, func(context.Context, string) (string, error) {
		confirms++
		return infiniapay.StatusActive, nil
	}, func(context.Context, infiniapay.SellerStatus) error { return nil })
	post := func(requestNo string, pad int) int {
		t.Helper()
		plain := `{"requestNo":"` + requestNo + `","sellerId":"S1","status":"ACTIVE"}` + strings.Repeat(" ", pad)
		data, err := infiniapay.Encrypt(k.PlatformPublic, []byte(plain), infiniapay.DefaultChunkSize)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(map[string]string{"version": "1.0", "appId": "APP-TEST", "dataType": "JSON", "requestData": data})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
		return rec.Code
	}
	if code := post("N-SMALL", 2000); code != http.StatusOK || confirms != 1 {
		t.Fatalf("a notification of 2 KiB: answer %d, %d confirmations; want 200, 1", code, confirms)
	}
	if code := post("N-LARGE", 64<<10); code != http.StatusBadRequest || confirms != 1 {
		t.Fatalf("a notification of 64 KiB (over 1,000 blocks to decrypt): answer %d, %d confirmations; want 400, none more", code, confirms)
	}
}
