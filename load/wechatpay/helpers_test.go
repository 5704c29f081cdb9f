package wechatpay_test

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
)

// The keys in testdata were generated once with
// "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048": test
// keys, never used anywhere else.
const (
	merchantSerial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
	platformSerial = "PUB_KEY_ID_0114232134912410000000000000"
	mchID          = "1900000100"
	subMchID       = "1900000109"
)

// readKey parses a PKCS #8 PEM key from testdata with crypto/x509 alone.
func readKey(t testing.TB, name string) *rsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: not PEM", name)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PrivateKey)
}

var keyCache sync.Map // file name -> *rsa.PrivateKey: parsing checks the key, which is slow

func testKeys(t testing.TB) wechatpaytest.Keys {
	key := func(name string) *rsa.PrivateKey {
		if k, ok := keyCache.Load(name); ok {
			return k.(*rsa.PrivateKey)
		}
		k := readKey(t, name)
		keyCache.Store(name, k)
		return k
	}
	return wechatpaytest.Keys{MerchantPrivate: key("merchant_key.pem"), MerchantSerial: merchantSerial,
		PlatformPrivate: key("platform_key.pem"), PlatformSerial: platformSerial}
}

// testClock is a settable clock shared by a fake and its client (their
// signatures must be within 5 minutes of each other).
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock {
	return &testClock{t: time.Date(2025, 9, 3, 10, 0, 0, 0, wechatpay.Beijing)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// rig is a client talking to a fake over real HTTP.
type rig struct {
	fake    *wechatpaytest.Server
	srv     *httptest.Server
	billSrv *httptest.Server // the other host bills are downloaded from, over TLS
	client  *wechatpay.Client
	cfg     wechatpay.Config
	clock   *testClock
	keys    wechatpaytest.Keys
}

// newRig starts a fake (wrapped by wrap, when given) and a client with
// short retry intervals, both on one test clock unless o.Now is set; mod
// adjusts the client's configuration.
func newRig(t testing.TB, o wechatpaytest.Options, wrap func(http.Handler) http.Handler, mod func(*wechatpay.Config)) *rig {
	t.Helper()
	o.Keys, o.MchID = testKeys(t), mchID
	clock := newClock()
	if o.Now == nil {
		o.Now = clock.Now
	}
	if o.Faults == nil {
		o.Faults = fault.New(1)
	}
	// Bills are served from another host, over TLS, as WeChat Pay may.
	var h http.Handler
	billSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(billSrv.Close)
	o.BillBaseURL = billSrv.URL
	fake := wechatpaytest.New(o)
	h = fake
	if wrap != nil {
		h = wrap(fake)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg := fake.ClientConfig(srv.URL)
	cfg.HTTP = trusting(billSrv)
	cfg.BillHosts = []string{"127.0.0.1"}
	cfg.Now = clock.Now
	cfg.RetryBase, cfg.RetryMax, cfg.Timeout = 5*time.Millisecond, 20*time.Millisecond, 5*time.Second
	if mod != nil {
		mod(&cfg)
	}
	c, err := wechatpay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{fake: fake, srv: srv, billSrv: billSrv, client: c, cfg: cfg, clock: clock, keys: o.Keys}
}

// trusting returns an HTTP client for WeChat Pay (NewHTTPClient) that also
// trusts the test TLS server's certificate.
func trusting(srv *httptest.Server) *http.Client {
	c := wechatpay.NewHTTPClient(30 * time.Second)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c.Transport.(*http.Transport).TLSClientConfig.RootCAs = pool
	return c
}

func faults(rules ...fault.Rule) wechatpaytest.Options {
	return wechatpaytest.Options{Faults: fault.New(7, rules...)}
}

// rewrite returns a wrapper that lets the fake answer and then changes
// the answer with edit before it is sent.
func rewrite(edit func(h http.Header, body []byte) []byte) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			body := edit(rec.Header(), bytes.Clone(rec.Body.Bytes()))
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(body)
		})
	}
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

func pipelineDate(y int, m time.Month, d int) pipeline.Date {
	return pipeline.Date{Year: y, Month: m, Day: d}
}
