package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
)

// weChatRotation is a reverse proxy before paysim's WeChat Pay that
// re-signs its answers, once on, with another platform key under another
// serial: WeChat Pay rotating its platform certificate or public key.
type weChatRotation struct {
	URL    string
	key    *rsa.PrivateKey
	serial string
	on     atomic.Bool
	// onAfter, when set, turns the re-signing on once a request it
	// matches was answered (that answer signed as before).
	onAfter func(*http.Request) bool

	mu      sync.Mutex
	serials map[string]int // the Wechatpay-Serial of requests that carry one
}

func newWeChatRotation(t *testing.T, target string, key *rsa.PrivateKey, serial string) *weChatRotation {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	r := &weChatRotation{key: key, serial: serial, serials: map[string]int{}}
	p := httputil.NewSingleHostReverseProxy(u)
	p.ModifyResponse = func(resp *http.Response) error {
		if s := resp.Request.Header.Get(wechatpay.HeaderSerial); s != "" {
			r.mu.Lock()
			r.serials[s]++
			r.mu.Unlock()
		}
		if r.on.Load() && resp.Header.Get(wechatpay.HeaderSignature) != "" {
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			sig, err := wechatpay.Sign(key, wechatpay.ResponseMessage(resp.Header.Get(wechatpay.HeaderTimestamp), resp.Header.Get(wechatpay.HeaderNonce), body))
			if err != nil {
				return err
			}
			resp.Header.Set(wechatpay.HeaderSerial, serial)
			resp.Header.Set(wechatpay.HeaderSignature, sig)
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		}
		if r.onAfter != nil && r.onAfter(resp.Request) {
			r.on.Store(true)
		}
		return nil
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// requestSerials returns how many requests named each platform key.
func (r *weChatRotation) requestSerials() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.serials {
		out[k] = v
	}
	return out
}

// writePEM writes one PEM block into dir/name and returns its path.
func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// newPlatformKey returns a new WeChat Pay platform key, its public key
// file (X.509 SubjectPublicKeyInfo PEM) and a certificate file of it under
// certSerial (hexadecimal).
func newPlatformKey(t *testing.T, dir, certSerial string) (key *rsa.PrivateKey, pubFile, certFile string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, testKeyBits)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubFile = writePEM(t, dir, "new_pub_key.pem", "PUBLIC KEY", der)
	n, _ := new(big.Int).SetString(certSerial, 16)
	tmpl := &x509.Certificate{SerialNumber: n, Subject: pkix.Name{CommonName: "Tenpay.com"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pubFile, writePEM(t, dir, "new_cert.pem", "CERTIFICATE", cert)
}

// weChatArgsAt are the flags of the simulator's WeChat Pay, reached at url.
func weChatArgsAt(sim *paysim.Sim, url string) []string {
	args := weChatArgs(sim)
	args[1] = url
	return args
}

// TestWeChatPlatformKeysForARotation: WeChat Pay, rotating its platform
// certificate or public key, signs answers with the old or the new one and
// asks merchants to accept both meanwhile. The client picks the key by
// Wechatpay-Serial among several, but the command line took one
// (--wechat-platform-key-file): the first answer signed with the new key
// stopped every command (exit 2). --wechat-platform-verify-file (or
// SETTLE_WECHAT_PLATFORM_VERIFY_FILES, comma-separated) adds keys for
// checking answers - a certificate, its serial read from it, or
// PUB_KEY_ID_...=FILE - while requests still name the key of
// --wechat-platform-key-file. A serial given twice, a certificate under
// another serial, a file of several PEM blocks (the first alone was used)
// or one that cannot be read are exit 2 naming the flag; so is a
// certificate given as --wechat-platform-key-file with another serial in
// --wechat-platform-serial (the flag was ignored, the certificate's own
// serial named by the requests), naming both serials. Not parallel: it
// sets the environment.
func TestWeChatPlatformKeysForARotation(t *testing.T) {
	sim, err := paysim.Start(paysim.Options{Dir: t.TempDir(), ShareKeys: true, KeyBits: testKeyBits})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	c := sim.Config
	dir := t.TempDir()
	const newID, certSerial = "PUB_KEY_ID_0114232134912410000000000099", "0A1B2C3D4E5F"
	key, pubFile, certFile := newPlatformKey(t, dir, certSerial)
	byID := newWeChatRotation(t, c.WeChatURL, key, newID)
	byCert := newWeChatRotation(t, c.WeChatURL, key, certSerial)
	byID.on.Store(true)
	byCert.on.Store(true)
	oldPEM, err := os.ReadFile(c.WeChatPlatformKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	newPEM, err := os.ReadFile(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "both.pem")
	if err := os.WriteFile(bundle, append(oldPEM, newPEM...), 0o600); err != nil {
		t.Fatal(err)
	}

	for i, tc := range []struct {
		name  string
		proxy *weChatRotation
		env   string // SETTLE_WECHAT_PLATFORM_VERIFY_FILES
		args  []string
		code  int
		want  []string
	}{
		{name: "old key alone", proxy: byID, code: 2, want: []string{newID, "--" + flagWXPlatVerify}},
		{name: "public key added", proxy: byID, args: []string{"--" + flagWXPlatVerify, newID + "=" + pubFile}, want: []string{"not added"}},
		{name: "certificate added", proxy: byCert, args: []string{"--" + flagWXPlatVerify, certFile}, want: []string{"not added"}},
		{name: "both, repeated", proxy: byCert, args: []string{"--" + flagWXPlatVerify, newID + "=" + pubFile, "--" + flagWXPlatVerify, certFile}, want: []string{"not added"}},
		{name: "environment", proxy: byID, env: certFile + "," + newID + "=" + pubFile, want: []string{"not added"}},
		{name: "certificate under another serial", proxy: byCert, args: []string{"--" + flagWXPlatVerify, "A1B2C3D4E5F=" + certFile}, code: 2,
			want: []string{"--" + flagWXPlatVerify, certFile, certSerial}},
		{name: "a serial twice", proxy: byID, args: []string{"--" + flagWXPlatVerify, newID + "=" + pubFile, "--" + flagWXPlatVerify, newID + "=" + pubFile}, code: 2,
			want: []string{"--" + flagWXPlatVerify, newID, "twice"}},
		{name: "the current serial again", proxy: byID, args: []string{"--" + flagWXPlatVerify, c.WeChatPlatformSerial + "=" + c.WeChatPlatformKeyFile}, code: 2,
			want: []string{"--" + flagWXPlatVerify, c.WeChatPlatformSerial, "twice"}},
		{name: "missing file", proxy: byID, args: []string{"--" + flagWXPlatVerify, newID + "=" + filepath.Join(dir, "missing.pem")}, code: 2,
			want: []string{"--" + flagWXPlatVerify, "missing.pem"}},
		{name: "a public key without its id", proxy: byID, args: []string{"--" + flagWXPlatVerify, pubFile}, code: 2,
			want: []string{"--" + flagWXPlatVerify, pubFile, "PUB_KEY_ID_"}},
		{name: "several PEM blocks", proxy: byID, args: []string{"--" + flagWXPlatVerify, newID + "=" + bundle}, code: 2,
			want: []string{"--" + flagWXPlatVerify, bundle, "several PEM blocks"}},
		{name: "several PEM blocks as the current key", proxy: byID, args: []string{"--" + flagWXPlatKey, bundle}, code: 2,
			want: []string{"--" + flagWXPlatKey, bundle, "several PEM blocks"}},
		// The serial of one key pasted beside another's certificate: the
		// certificate's own serial was taken, the flag ignored.
		{name: "the current certificate under another serial", proxy: byCert, args: []string{"--" + flagWXPlatKey, certFile}, code: 2,
			want: []string{"--" + flagWXPlatSerial, certFile, certSerial, c.WeChatPlatformSerial}},
	} {
		sub := fmt.Sprintf("19000001%02d", i) // a sub-merchant each: the receiver is added
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SETTLE_WECHAT_PLATFORM_VERIFY_FILES", tc.env)
			before := tc.proxy.requestSerials()
			args := append([]string{"receivers", "status"}, weChatArgsAt(sim, tc.proxy.URL)...)
			args = append(append(args, tc.args...), sub)
			stdout, stderr, code := invoke(nil, args...)
			out := stdout + stderr
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					code = -1
				}
			}
			if code != tc.code {
				t.Fatalf("exit %d, want %d saying %q:\n%s", code, tc.code, tc.want, out)
			}
			if code != 0 {
				return
			}
			// Requests name the key of --wechat-platform-key-file: adding
			// the receiver encrypts its name with it.
			args[1] = "add"
			if stdout, stderr, code := invoke(nil, args...); code != 0 || !strings.Contains(stdout, "added") {
				t.Fatalf("receivers add: exit %d:\n%s%s", code, stdout, stderr)
			}
			after := tc.proxy.requestSerials()
			if after[c.WeChatPlatformSerial] <= before[c.WeChatPlatformSerial] || len(after) != 1 {
				t.Fatalf("requests named the platform keys %v, want %s alone", after, c.WeChatPlatformSerial)
			}
		})
	}
}

// TestWeChatPlatformKeyRotatedMidRun: WeChat Pay starts signing with a new
// platform key (a new serial) after the run's first distribution. With
// the old key alone, the run stops at the first answer it cannot verify:
// exit 2 naming the serial and --wechat-platform-verify-file; the
// distributions whose answers were not trusted are left unknown (sent),
// none recorded failed (that would send it again under a new out_order_no
// while WeChat Pay may have taken it). Re-run with the new key added: the
// unknown ones are resolved by query under their own out_order_no, every
// transaction settled once, no second attempt.
func TestWeChatPlatformKeyRotatedMidRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "60", "--sellers", "3", "--seed", "32")
	sim := e.weChatSim(nil, 0)
	const newID = "PUB_KEY_ID_0114232134912410000000000077"
	key, pubFile, _ := newPlatformKey(t, t.TempDir(), "01")
	proxy := newWeChatRotation(t, sim.Config.WeChatURL, key, newID)
	proxy.onAfter = func(r *http.Request) bool {
		return r.Method == http.MethodPost && r.URL.Path == "/v3/global/profit-sharing/orders"
	}
	runArgs := func(extra ...string) []string {
		args := []string{"run", "--date", testDate, "--rules", e.rules, "--out", e.reports, "--provider-wait", "6s", "--provider-poll", "20ms",
			"--skip-channel", "infiniapay,payprotocol"}
		return append(append(args, weChatArgsAt(sim, proxy.URL)...), extra...)
	}
	const distributions = `SELECT count(*) FROM settle.effects WHERE kind = '` + wechatpay.KindDistribution + `'`

	out, code := e.settle(runArgs()...)
	if code != 2 || !strings.Contains(out, newID) || !strings.Contains(out, "--"+flagWXPlatVerify) {
		t.Fatalf("old key alone: exit %d, want 2 naming %s and --%s:\n%s", code, newID, flagWXPlatVerify, out)
	}
	if n := e.count(distributions + ` AND state = 'failed'`); n != 0 {
		t.Fatalf("%d distributions recorded failed: their answers were not verified, not refusals", n)
	}
	if n := e.count(distributions + ` AND state IN ('sent', 'unknown')`); n == 0 {
		t.Fatalf("no distribution left unknown: the rotation came after the first one:\n%s", out)
	}
	t.Logf("old key alone: %d distributions succeeded, %d unknown, %d planned", e.count(distributions+` AND state = 'succeeded'`),
		e.count(distributions+` AND state IN ('sent', 'unknown')`), e.count(distributions+` AND state = 'planned'`))
	e.checkWeChatOnce(sim)

	out, code = e.settle(runArgs("--"+flagWXPlatVerify, newID+"="+pubFile)...)
	if code != 0 {
		t.Fatalf("with the new key added: exit %d:\n%s", code, out)
	}
	paid := e.checkWeChatOnce(sim)
	if want := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay'`); int64(paid) != want || want == 0 {
		t.Fatalf("%d of %d WeChat transactions settled", paid, want)
	}
	if n := e.count(distributions + ` AND (attempt > 1 OR state <> 'succeeded')`); n != 0 {
		t.Fatalf("%d distributions sent again under a new out_order_no, or not succeeded", n)
	}
	if got := proxy.requestSerials(); len(got) > 1 {
		t.Fatalf("requests named the platform keys %v: want the current one alone", got)
	}
}

// TestWeChatPlatformSerialOfACertificate: --wechat-platform-serial beside
// a certificate in --wechat-platform-key-file must be the certificate's
// own serial as WeChat Pay writes it (upper-case hexadecimal of its
// bytes, leading zero kept: wechatpay.ParseCertificate); empty, it is
// read from the certificate. Another - the serial of another certificate,
// a public key's id, the same number without its leading zero - is exit 2
// naming the flag, the file and both serials, before any request. A
// public key's id has nothing to be compared with: it is the flag's.
func TestWeChatPlatformSerialOfACertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const certSerial = "0A1B2C3D4E5F"
	_, pubFile, certFile := newPlatformKey(t, dir, certSerial)
	for _, ok := range []string{"", certSerial} {
		keys, serial, err := weChatPlatformKeys(certFile, ok, nil)
		if err != nil || serial != certSerial || keys[certSerial] == nil || len(keys) != 1 {
			t.Fatalf("serial %q: %q %v %v, want the certificate's %s", ok, serial, keys, err, certSerial)
		}
	}
	for _, wrong := range []string{"A1B2C3D4E5F", "0a1b2c3d4e5f", "0A1B2C3D4E60", "PUB_KEY_ID_0114232134912410000000000099"} {
		_, _, err := weChatPlatformKeys(certFile, wrong, nil)
		if pipeline.KindOf(err) != pipeline.KindUsage {
			t.Fatalf("serial %q beside the certificate of serial %s: %v, want a usage error", wrong, certSerial, err)
		}
		for _, w := range []string{"--" + flagWXPlatSerial, "--" + flagWXPlatKey, certFile, certSerial, wrong} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("serial %q: %v, want it naming %s", wrong, err, w)
			}
		}
	}
	// A public key is named by the flag: no serial of its own.
	const id = "PUB_KEY_ID_0114232134912410000000000099"
	if keys, serial, err := weChatPlatformKeys(pubFile, id, nil); err != nil || serial != id || keys[id] == nil {
		t.Fatalf("public key: %q %v %v", serial, keys, err)
	}
}
