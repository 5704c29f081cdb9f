package payprotocol_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
)

// TestAProxysNotFoundPageIsNotPayProtocols: between settle and Pay
// Protocol, a proxy or load balancer answers 404 with its own page (HTML,
// or a framework's JSON that is not {code, msg, data}), or a redirect
// leads to a URL that answers a bare 404. None of them is Pay Protocol's
// word on the order: taken for "not found", the verification rejected a
// paid order for good as a payment Pay Protocol does not know (found by a
// review of the transport). They hold it, asked again by the next run;
// Pay Protocol's own bare 404 (no body, as its docs list it) still says
// "not found".
func TestAProxysNotFoundPageIsNotPayProtocols(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/api/mer/payment/detail", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("outTradeNo") {
		case "HTML":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte("<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found</h1></center><hr><center>nginx</center></body></html>\n"))
		case "JSON":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"timestamp":"2025-09-03T10:00:00Z","status":404,"error":"Not Found","path":"/api/mer/payment/detail"}`))
		case "MOVED":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		default: // Pay Protocol's own, as its docs list it
			w.WriteHeader(http.StatusNotFound)
		}
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c, err := payprotocol.New(payprotocol.Config{BaseURL: srv.URL + "/api/mer", APIKey: testKey, APISecret: testSecret,
		HTTP: payprotocol.NewHTTPClient(5 * time.Second), RetryBase: time.Millisecond, RetryMax: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, no := range []string{"HTML", "JSON", "MOVED"} {
		if _, err := (payprotocol.Adapter{Client: c}).Payment(ctx, no); err == nil || pipeline.IsNotFound(err) {
			t.Errorf("%s: %v, want an error that is not \"not found\"", no, err)
		}
	}
	if _, err := (payprotocol.Adapter{Client: c}).Payment(ctx, "BARE"); !pipeline.IsNotFound(err) {
		t.Errorf("Pay Protocol's bare 404: %v, want not found", err)
	}

	store := &verifyStore{states: map[string]string{},
		items: []pipeline.VerifyItem{toVerify("BARE", 0), toVerify("HTML", 0), toVerify("JSON", 0), toVerify("MOVED", 0)}}
	if _, err := payprotocol.Verify(ctx, store, payprotocol.Adapter{Client: c}, nil, nil, &pipeline.Run{ID: 42}); pipeline.KindOf(err) == pipeline.KindUsage {
		t.Fatalf("Verify: %v", err) // the held orders are its error; a configuration error is not
	}
	if got := store.states["OBARE"]; !strings.HasPrefix(got, pipeline.ItemRejected+": ") {
		t.Errorf("OBARE is %q, want rejected (Pay Protocol does not know it)", got)
	}
	for _, no := range []string{"OHTML", "OJSON", "OMOVED"} {
		if got := store.states[no]; !strings.HasPrefix(got, pipeline.ItemHeld+": ") {
			t.Errorf("%s is %q, want held, verified again by the next run", no, got)
		}
	}
}
