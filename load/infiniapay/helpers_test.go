package infiniapay_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
)

// testKeys are generated once per test binary: 2048-bit keys are slow.
var testKeys = sync.OnceValues(infiniapaytest.GenerateKeys)

func keys(t testing.TB) infiniapaytest.Keys {
	t.Helper()
	k, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rig is a client talking to a fake over real HTTP.
type rig struct {
	fake   *infiniapaytest.Server
	srv    *httptest.Server
	client *infiniapay.Client
	cfg    infiniapay.Config
	faults *fault.Injector
}

// newRig starts a fake (wrapped by wrap, when given) and a client with
// short retry intervals; mod adjusts the client's configuration.
func newRig(t testing.TB, o infiniapaytest.Options, wrap func(http.Handler) http.Handler, mod func(*infiniapay.Config)) *rig {
	t.Helper()
	o.Keys = keys(t)
	if o.AppID == "" {
		o.AppID = "APP-TEST"
	}
	if o.Faults == nil {
		o.Faults = fault.New(1)
	}
	fake := infiniapaytest.New(o)
	var h http.Handler = fake
	if wrap != nil {
		h = wrap(fake)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg := fake.ClientConfig(srv.URL + "/api/")
	cfg.RetryBase, cfg.RetryMax, cfg.Timeout = 5*time.Millisecond, 20*time.Millisecond, 5*time.Second
	if mod != nil {
		mod(&cfg)
	}
	c, err := infiniapay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{fake: fake, srv: srv, client: c, cfg: cfg, faults: o.Faults}
}

// noSecrets fails when an error text carries key material.
func noSecrets(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if s := err.Error(); strings.Contains(s, "PRIVATE KEY") || strings.Contains(s, "MII") {
		t.Fatalf("error text carries key material: %s", s)
	}
}
