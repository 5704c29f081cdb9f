package infiniapay

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestWebhookRemembersABoundedNumber: the notifications dealt with were kept
// for the life of the process, one more for every notification anyone
// made. The latest are remembered; an older one is asked of Seen (and
// confirmed again without it).
func TestWebhookRemembersABoundedNumber(t *testing.T) {
	queries := 0
	h := WebhookHandler(nil, nil, func(context.Context, string) (string, error) { queries++; return StatusActive, nil },
		func(context.Context, SellerStatus) error { return nil })
	h.done = remembered[notification](3)
	for i := range 5 {
		if err := h.record(context.Background(), SellerStatus{RequestNo: fmt.Sprint("N-", i), SellerID: "S1", Notified: StatusActive}); err != nil {
			t.Fatal(err)
		}
	}
	if h.done.Len() != 3 {
		t.Fatalf("%d notifications remembered, want 3", h.done.Len())
	}
	for _, tc := range []struct {
		n       int
		queries int
	}{{4, 0}, {2, 0}, {0, 1}} { // N-2..N-4 remembered; N-0 forgotten
		before := queries
		if err := h.record(context.Background(), SellerStatus{RequestNo: fmt.Sprint("N-", tc.n), SellerID: "S1", Notified: StatusActive}); err != nil {
			t.Fatal(err)
		}
		if queries-before != tc.queries {
			t.Errorf("N-%d again: %d binding queries, want %d", tc.n, queries-before, tc.queries)
		}
	}
}

// TestWebhookDecryptsABoundedNumberAtATime: anyone with our public key
// can send an unsigned notification, and one of maxNotificationBlocks
// took 76 ms of a core to decrypt, unbounded in concurrency: about 26 a
// second kept both cores of a pod busy (found by a review). With
// MaxDecrypting notifications being decrypted, another gets no turn: it
// is answered 503 with Retry-After once decryptWait is over (none here),
// undecrypted, rather than decrypted beside them; a turn given back is
// taken by the next delivery.
func TestWebhookDecryptsABoundedNumberAtATime(t *testing.T) {
	ourKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	h := WebhookHandler(ourKey, nil, func(context.Context, string) (string, error) { return StatusActive, nil },
		func(context.Context, SellerStatus) error { return nil })
	h.MaxDecrypting, h.decryptWait = 1, 0
	started, unblock := make(chan struct{}), make(chan struct{})
	var opened atomic.Int32
	h.open = func(body []byte, _ *rsa.PrivateKey, _ *rsa.PublicKey) (RequestEnvelope, []byte, error) {
		var env RequestEnvelope
		if err := json.Unmarshal(body, &env); err != nil {
			return env, nil, err
		}
		if opened.Add(1) == 1 {
			close(started)
			<-unblock // the first delivery's decryption, blocked
		}
		return env, []byte(`{"requestNo":"` + env.RequestData + `","sellerId":"S1","status":"ACTIVE"}`), nil
	}
	post := func(requestNo string) *httptest.ResponseRecorder {
		body, _ := json.Marshal(RequestEnvelope{RequestData: requestNo})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
		return rec
	}
	first := make(chan *httptest.ResponseRecorder, 1)
	go func() { first <- post("N-1") }()
	<-started // N-1 holds the one turn
	rec := post("N-2")
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || opened.Load() != 1 {
		close(unblock)
		t.Fatalf("a delivery while MaxDecrypting are decrypted: answer %d %q after %d decryptions, want 503 with Retry-After, not decrypted",
			rec.Code, rec.Body.String(), opened.Load())
	}
	close(unblock)
	if rec := <-first; rec.Code != http.StatusOK {
		t.Fatalf("N-1: answer %d %q", rec.Code, rec.Body.String())
	}
	if rec := post("N-2"); rec.Code != http.StatusOK || opened.Load() != 2 {
		t.Fatalf("N-2 delivered again: answer %d %q after %d decryptions, want it decrypted and taken", rec.Code, rec.Body.String(), opened.Load())
	}
}
