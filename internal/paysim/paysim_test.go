package paysim

import (
	"bytes"
	"cmp"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/settlekit/settle/internal/rsakey"
)

// TestKeysAndSerialsSurviveARestart: a second start on the same directory
// serves the same keys, serials, API secret and SFTP host key, so the job's
// configuration from the first start still works; another directory gets
// keys of its own.
func TestKeysAndSerialsSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	start := func(dir string) (Config, []byte, map[string][]byte) {
		t.Helper()
		s, err := Start(Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		files := map[string][]byte{}
		for _, f := range []string{s.Config.OurKeyFile, s.Config.InfiniaPublicKeyFile, s.Config.SFTPKeyFile, s.Config.PayProtocolSecretFile,
			s.Config.WeChatKeyFile, s.Config.WeChatPlatformKeyFile} {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			files[f] = b
		}
		return s.Config, s.SFTP.HostKey().Marshal(), files
	}
	c1, host1, files1 := start(dir)
	c2, host2, files2 := start(dir)
	if c1.WeChatSerial != c2.WeChatSerial || c1.WeChatPlatformSerial != c2.WeChatPlatformSerial {
		t.Fatalf("serials changed: %s %s, then %s %s", c1.WeChatSerial, c1.WeChatPlatformSerial, c2.WeChatSerial, c2.WeChatPlatformSerial)
	}
	if !bytes.Equal(host1, host2) {
		t.Fatal("the SFTP host key changed: known_hosts from the first start no longer matches")
	}
	for f, b := range files1 {
		if !bytes.Equal(b, files2[f]) {
			t.Errorf("%s changed across a restart", f)
		}
	}
	c3, host3, _ := start(t.TempDir())
	if c3.WeChatSerial == c1.WeChatSerial || bytes.Equal(host3, host1) {
		t.Fatal("a new directory reused another's keys")
	}
}

// TestSharedKeysAreTheProcesss: simulators started with ShareKeys in new
// directories take one set of keys; one without takes its own.
func TestSharedKeysAreTheProcesss(t *testing.T) {
	start := func(share bool) (Config, []byte) {
		t.Helper()
		s, err := Start(Options{Dir: t.TempDir(), ShareKeys: share})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		return s.Config, s.SFTP.HostKey().Marshal()
	}
	c1, host1 := start(true)
	c2, host2 := start(true)
	if c1.WeChatSerial != c2.WeChatSerial || c1.WeChatPlatformSerial != c2.WeChatPlatformSerial || !bytes.Equal(host1, host2) {
		t.Fatal("two simulators sharing keys have different keys")
	}
	if c3, host3 := start(false); c3.WeChatSerial == c1.WeChatSerial || bytes.Equal(host3, host1) {
		t.Fatal("a simulator not sharing keys took the shared ones")
	}
}

// TestKeyBitsSizesTheKeys: a simulator's RSA keys are 2048 bits unless
// KeyBits says otherwise, and those shared are shared by size.
func TestKeyBitsSizesTheKeys(t *testing.T) {
	for _, o := range []Options{{}, {ShareKeys: true, KeyBits: 1024}, {KeyBits: 1024}, {ShareKeys: true}} {
		o.Dir = t.TempDir()
		s, err := Start(o)
		if err != nil {
			t.Fatal(err)
		}
		want := cmp.Or(o.KeyBits, 2048)
		for _, f := range []string{s.Config.OurKeyFile, s.Config.WeChatKeyFile} {
			k, err := rsakey.LoadPrivate(f)
			if err != nil {
				t.Fatal(err)
			}
			if k.N.BitLen() != want {
				t.Errorf("%+v: %s is of %d bits, want %d", o, filepath.Base(f), k.N.BitLen(), want)
			}
		}
		s.Close()
	}
}

// TestConfigPathsAreAbsolute: started with a relative --dir, the key paths
// it prints still work for a job started in another directory.
func TestConfigPathsAreAbsolute(t *testing.T) {
	t.Chdir(t.TempDir())
	s, err := Start(Options{Dir: "paysim-data"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range []string{s.Config.OurKeyFile, s.Config.KnownHostsFile, s.Config.PayProtocolSecretFile, s.Config.WeChatKeyFile} {
		if !filepath.IsAbs(p) {
			t.Errorf("%s is relative", p)
		}
	}
}

// TestAnEveryAddressListenerIsDialledOnLoopback: a simulator listening on
// every address (--http-addr :PORT) gave the job "http://[::]:PORT" URLs,
// which settle refuses over plain http off this machine: they name
// 127.0.0.1, and the providers' clients take them.
func TestAnEveryAddressListenerIsDialledOnLoopback(t *testing.T) {
	s, err := Start(Options{Dir: t.TempDir(), HTTPAddr: ":0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, u := range []string{s.Config.InfiniaURL, s.Config.PayProtocolURL, s.Config.WeChatURL, s.StateURL(), s.ControlURL()} {
		if !strings.HasPrefix(u, "http://127.0.0.1:") {
			t.Errorf("%s: want http://127.0.0.1:PORT", u)
		}
	}
	resp, err := http.Get(s.StateURL())
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("state at %s: %v %v", s.StateURL(), resp, err)
	}
	resp.Body.Close()
}

// TestControlEndpointIsLoopbackOnly: the control endpoint applies
// settings posted as JSON from a loopback peer, refuses another peer and
// another content type (a browser's form post), and says which setting it
// could not apply.
func TestControlEndpointIsLoopbackOnly(t *testing.T) {
	s, err := Start(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	post := func(remote, ctype, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, ControlPath, strings.NewReader(body))
		r.RemoteAddr, r.Header["Content-Type"] = remote, []string{ctype}
		w := httptest.NewRecorder()
		s.serveControl(w, r)
		return w
	}
	set := `[{"name":"binding","value":"INF1=FROZEN"},{"name":"lose-files-of","value":"INF2"}]`
	if w := post("10.1.2.3:5555", "application/json", set); w.Code != http.StatusForbidden {
		t.Fatalf("a peer off loopback: %d %s", w.Code, w.Body)
	}
	if w := post("127.0.0.1:5555", "text/plain", set); w.Code != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain: %d %s", w.Code, w.Body)
	}
	if st, _ := s.Infinia.Binding("INF1"); st != "" {
		t.Fatalf("a refused post applied a setting: binding %q", st)
	}
	if w := post("[::1]:5555", "application/json", set); w.Code != http.StatusOK {
		t.Fatalf("from loopback: %d %s", w.Code, w.Body)
	}
	if st, _ := s.Infinia.Binding("INF1"); st != "FROZEN" {
		t.Fatalf("binding %q after the post, want FROZEN", st)
	}
	if w := post("127.0.0.1:5555", "application/json", `[{"name":"binding","value":"INF1=NONE"},{"name":"nonsense","value":"x"}]`); w.Code != http.StatusBadRequest ||
		!strings.Contains(w.Body.String(), `unknown setting "nonsense"`) {
		t.Fatalf("an unknown setting: %d %s", w.Code, w.Body)
	}
	if _, bound := s.Infinia.Binding("INF1"); bound {
		t.Fatal("--binding INF1=NONE: Infinia still knows the seller")
	}
}

// TestTheWeChatFeeIsHeldBack: WeChat Pay publishes that what it holds to
// distribute of a transaction is its amount less its fee; the simulator
// held the whole amount whatever. With WeChatFeeBps it holds the amount
// less the fee (1% of 347.04: 343.57 left to distribute).
func TestTheWeChatFeeIsHeldBack(t *testing.T) {
	s, err := Start(Options{Dir: t.TempDir(), HTTPAddr: "127.0.0.1:0", SFTPAddr: "127.0.0.1:0", WeChatFeeBps: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.WeChat.AddTransaction("1900000109", "T-FEE", "CNY", 34704)
	if got := s.WeChat.Frozen("T-FEE"); got != 34704-347 {
		t.Fatalf("WeChat holds %d of 34704 at a fee of 1%%: want %d", got, 34704-347)
	}
}
