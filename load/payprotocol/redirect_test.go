package payprotocol_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/load/payprotocol"
)

// A GET that Pay Protocol's address redirects to another host is not
// followed: Go's client copies X-PAY-KEY and the request's signature to
// wherever a redirect points (it strips only Authorization and cookies),
// plain http included. A redirect on the same host still is.
func TestRedirectToAnotherHostCarriesNoCredentials(t *testing.T) {
	var leaked atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(payprotocol.HeaderKey) != "" || r.Header.Get(payprotocol.HeaderSign) != "" {
			leaked.Add(1)
		}
		w.WriteHeader(http.StatusNotFound)
	}))
	defer other.Close()
	var same atomic.Int32
	var first *httptest.Server
	first = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			same.Add(1)
			w.WriteHeader(http.StatusNotFound)
		case "/here":
			http.Redirect(w, r, first.URL+"/moved", http.StatusFound)
		default:
			http.Redirect(w, r, other.URL+r.URL.RequestURI(), http.StatusFound)
		}
	}))
	defer first.Close()
	hc := payprotocol.NewHTTPClient(5 * time.Second)
	for _, path := range []string{"/away", "/here"} {
		req, err := http.NewRequest(http.MethodGet, first.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(payprotocol.HeaderKey, "the-api-key")
		req.Header.Set(payprotocol.HeaderSign, "a-signature")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if n := leaked.Load(); n != 0 {
		t.Errorf("%d requests reached another host with the API key and a signature", n)
	}
	if same.Load() != 1 {
		t.Errorf("a redirect on the same host was not followed")
	}
}
