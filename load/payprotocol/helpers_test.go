package payprotocol_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
)

const (
	testKey    = "F1R28pRQ"
	testSecret = "ppsecret-test-0123456789abcdef"
)

// rig is a client talking over real HTTP to a fake mounted under /api/mer,
// and a callback receiver the fake notifies.
type rig struct {
	fake     *payprotocoltest.Server
	srv      *httptest.Server
	client   *payprotocol.Client
	cfg      payprotocol.Config
	faults   *fault.Injector
	receiver *receiver
}

// newRig starts a callback receiver, a fake (callbacks at 1/1000 of the
// real schedule) and a client with short retry intervals; mod adjusts the
// client's configuration.
func newRig(t testing.TB, o payprotocoltest.Options, mod func(*payprotocol.Config)) *rig {
	t.Helper()
	rcv := newReceiver(t)
	o.APIKey, o.APISecret = testKey, testSecret
	if o.Faults == nil {
		o.Faults = fault.New(1)
	}
	if o.TimeScale == 0 {
		o.TimeScale = 1.0 / 1000
	}
	if o.NotifyURL == "" {
		o.NotifyURL = rcv.url
	}
	fake := payprotocoltest.New(o)
	t.Cleanup(fake.Close)
	mux := http.NewServeMux()
	mux.Handle("/api/mer/", fake)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	cfg := fake.ClientConfig(srv.URL + "/api/mer")
	cfg.RetryBase, cfg.RetryMax, cfg.Timeout = 5*time.Millisecond, 20*time.Millisecond, 5*time.Second
	if mod != nil {
		mod(&cfg)
	}
	c, err := payprotocol.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{fake: fake, srv: srv, client: c, cfg: cfg, faults: o.Faults, receiver: rcv}
}

// receiver is a CallbackHandler behind a real server, recording what it
// delivers; fail makes deliver fail for the next n callbacks.
type receiver struct {
	url string

	mu   sync.Mutex
	got  []payprotocol.Callback
	fail int
}

func newReceiver(t testing.TB) *receiver {
	t.Helper()
	rcv := &receiver{}
	h := payprotocol.CallbackHandler(testKey, testSecret, 0, nil, nil, rcv.deliver)
	mux := http.NewServeMux()
	mux.Handle("/hooks/payprotocol", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	rcv.url = srv.URL + "/hooks/payprotocol?channel=crypto"
	return rcv
}

func (r *receiver) deliver(_ context.Context, cb payprotocol.Callback) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return errDatabaseDown
	}
	r.got = append(r.got, cb)
	return nil
}

func (r *receiver) failNext(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = n
}

func (r *receiver) callbacks() []payprotocol.Callback {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]payprotocol.Callback(nil), r.got...)
}

type testError string

func (e testError) Error() string { return string(e) }

const errDatabaseDown = testError("database down")

// waitCallbacks waits for the fake to finish sending.
func waitCallbacks(t testing.TB, fake *payprotocoltest.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fake.WaitCallbacks(ctx); err != nil {
		t.Fatal(err)
	}
}

// noSecret fails when a text carries the API secret.
func noSecret(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), testSecret) {
		t.Fatalf("%s: error carries the API secret: %v", what, err)
	}
}
