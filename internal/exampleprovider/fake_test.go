package exampleprovider

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fake is Ledger Transfer in a test: every answer takes Latency, a
// transfer is PROCESSING until Processing has passed, a key answers the
// transfer it was first sent with, and its faults are per wallet.
type fake struct {
	Latency, Processing time.Duration

	mu        sync.Mutex
	transfers map[string]*fakeTransfer
	order     []string
	posts     map[string]int // POSTs by key
	gets      map[string]int // status queries by key
	// loseAnswer: a wallet whose next transfer is applied and its answer
	// lost (the connection closed before any answer).
	loseAnswer map[string]bool
	// closed: wallets whose transfers fail.
	closed map[string]bool
	// secret: wallets whose transfers' status the fake refuses to tell
	// (403).
	secret map[string]bool
	// onPost runs as a POST arrives, before it is applied.
	onPost func(key string)
}

type fakeTransfer struct {
	Transfer
	created time.Time
}

func newFake(t *testing.T) (*fake, *Client) {
	f := &fake{Latency: 5 * time.Millisecond, Processing: 20 * time.Millisecond, transfers: map[string]*fakeTransfer{},
		posts: map[string]int{}, gets: map[string]int{}, loseAnswer: map[string]bool{}, closed: map[string]bool{}, secret: map[string]bool{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, &Client{BaseURL: srv.URL, HTTP: &http.Client{Timeout: 5 * time.Second}}
}

func (f *fake) view(t *fakeTransfer) Transfer {
	v := t.Transfer
	if v.Status == "PROCESSING" && time.Since(t.created) >= f.Processing {
		v.Status = "SUCCEEDED"
	}
	return v
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	time.Sleep(f.Latency)
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/ping":
		writeJSON(w, struct{}{})
	case r.Method == http.MethodPost && r.URL.Path == "/transfers":
		var in Transfer
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if f.onPost != nil {
			f.onPost(in.Key)
		}
		f.mu.Lock()
		f.posts[in.Key]++
		t, ok := f.transfers[in.Key]
		if !ok {
			t = &fakeTransfer{Transfer: in, created: time.Now()}
			t.Ref, t.Status = fmt.Sprintf("T%06d", len(f.order)+1), "PROCESSING"
			if f.closed[in.To] {
				t.Status, t.Reason = "FAILED", "wallet closed"
			}
			f.transfers[in.Key] = t
			f.order = append(f.order, in.Key)
		}
		lose := f.loseAnswer[in.To]
		delete(f.loseAnswer, in.To)
		v := f.view(t)
		f.mu.Unlock()
		if lose {
			// Applied, and the answer lost: the connection closes.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		writeJSON(w, v)
	case r.Method == http.MethodGet && r.URL.Path == "/transfers":
		f.mu.Lock()
		var out []Transfer
		for _, k := range f.order {
			if t := f.transfers[k]; t.Date == r.URL.Query().Get("date") {
				out = append(out, f.view(t))
			}
		}
		f.mu.Unlock()
		writeJSON(w, out)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/transfers/"):
		key := strings.TrimPrefix(r.URL.Path, "/transfers/")
		f.mu.Lock()
		f.gets[key]++
		t, ok := f.transfers[key]
		var v Transfer
		if ok {
			v = f.view(t)
		}
		secret := ok && f.secret[t.To]
		f.mu.Unlock()
		if secret {
			http.Error(w, "not yours to ask", http.StatusForbidden)
			return
		}
		if !ok {
			http.Error(w, "no such transfer", http.StatusNotFound)
			return
		}
		writeJSON(w, v)
	default:
		http.Error(w, "no such endpoint", http.StatusNotFound)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fake) count(m map[string]int, key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return m[key]
}

// edit changes the provider's record of key (a reconcile test's
// disagreement), or adds one it alone knows.
func (f *fake) edit(key string, fn func(*Transfer)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.transfers[key]
	if !ok {
		t = &fakeTransfer{Transfer: Transfer{Key: key, Status: "SUCCEEDED"}, created: time.Now()}
		f.transfers[key] = t
		f.order = append(f.order, key)
	}
	fn(&t.Transfer)
}
