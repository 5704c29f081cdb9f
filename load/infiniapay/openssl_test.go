package infiniapay_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/infiniapay"
)

// opensslPeer is Infinia's side of the envelope played by the openssl
// command line, a peer nobody here wrote: RSAES-PKCS1-v1_5 in 64-byte
// plaintext chunks, cipher blocks concatenated then Base64, and
// SHA256withRSA over the requestData (or responseData) string.
type opensslPeer struct {
	t   *testing.T
	bin string
	dir string // the keys as PEM files (infiniapaytest.Keys.WriteFiles)
	n   int
}

func newOpenSSL(t *testing.T) *opensslPeer {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatal("openssl not found: under CI=true the envelope peer test must run (scripts/test-deps.sh installs it)")
		}
		t.Skip("openssl not found (apt-get install openssl)")
	}
	dir := t.TempDir()
	if err := keys(t).WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	return &opensslPeer{t: t, bin: bin, dir: dir}
}

// run runs openssl with args and stdin, and returns its stdout.
func (o *opensslPeer) run(stdin []byte, args ...string) []byte {
	o.t.Helper()
	cmd := exec.Command(o.bin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		o.t.Fatalf("openssl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out.Bytes()
}

func (o *opensslPeer) file(name string, data []byte) string {
	o.t.Helper()
	o.n++
	p := filepath.Join(o.dir, strconv.Itoa(o.n)+"-"+name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		o.t.Fatal(err)
	}
	return p
}

// encrypt encrypts plain for the public key file pub, 64 bytes at a time.
func (o *opensslPeer) encrypt(pub string, plain []byte) string {
	var blocks []byte
	for len(plain) > 0 {
		n := min(64, len(plain))
		blocks = append(blocks, o.run(plain[:n], "pkeyutl", "-encrypt", "-pubin", "-inkey", filepath.Join(o.dir, pub),
			"-pkeyopt", "rsa_padding_mode:pkcs1")...)
		plain = plain[n:]
	}
	return base64.StdEncoding.EncodeToString(blocks)
}

// decrypt decrypts Base64 data block by block with the private key file.
func (o *opensslPeer) decrypt(priv, data string) []byte {
	o.t.Helper()
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil || len(raw)%256 != 0 {
		o.t.Fatalf("data is not Base64 of whole 2048-bit blocks: %d bytes, %v", len(raw), err)
	}
	var plain []byte
	for i := 0; i < len(raw); i += 256 {
		plain = append(plain, o.run(raw[i:i+256], "pkeyutl", "-decrypt", "-inkey", filepath.Join(o.dir, priv),
			"-pkeyopt", "rsa_padding_mode:pkcs1")...)
	}
	return plain
}

// sign returns Base64 of SHA256withRSA over the string data.
func (o *opensslPeer) sign(priv, data string) string {
	return base64.StdEncoding.EncodeToString(o.run([]byte(data), "dgst", "-sha256", "-sign", filepath.Join(o.dir, priv)))
}

// verify checks a Base64 SHA256withRSA signature over data with openssl.
func (o *opensslPeer) verify(pub, data, signature string) error {
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return err
	}
	cmd := exec.Command(o.bin, "dgst", "-sha256", "-verify", filepath.Join(o.dir, pub), "-signature", o.file("sig", sig))
	cmd.Stdin = strings.NewReader(data)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Verified OK") {
		return errors.New("openssl: " + strings.TrimSpace(string(out)))
	}
	return nil
}

// Our client encrypts and signs, openssl (as Infinia) verifies and
// decrypts; openssl encrypts and signs the answer, our client verifies and
// decrypts it. Both payloads span several 64-byte chunks.
func TestEnvelopeWithOpenSSL(t *testing.T) {
	o := newOpenSSL(t)
	var seen map[string]string
	answer := map[string]string{"requestNo": "RS-20261123-ABCDEF-1", "sellerId": "INF00000042", "currency": "CNH",
		"amount": "1234.56", "status": "SUCCESS", "reference": "IPAY-REF-000000000001", "failReason": ""}
	tamper := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var env infiniapay.RequestEnvelope
		if err := json.Unmarshal(body, &env); err != nil {
			t.Errorf("request: %v", err)
			return
		}
		if err := o.verify("platform_public.pem", env.RequestData, env.Signature); err != nil {
			t.Errorf("openssl does not verify our signature: %v", err)
		}
		if err := json.Unmarshal(o.decrypt("infinia_private.pem", env.RequestData), &seen); err != nil {
			t.Errorf("openssl's decryption is not our JSON: %v", err)
		}
		plain, _ := json.Marshal(answer)
		data := o.encrypt("platform_public.pem", plain)
		sig := o.sign("infinia_private.pem", data)
		if tamper {
			data = o.encrypt("platform_public.pem", bytes.Replace(plain, []byte("1234.56"), []byte("9234.56"), 1))
		}
		json.NewEncoder(w).Encode(infiniapay.ResponseEnvelope{AppID: "APP-TEST", Code: infiniapay.CodeSuccess, Message: "success",
			ResponseData: data, Signature: sig})
	}))
	defer srv.Close()
	k := keys(t)
	c, err := infiniapay.New(infiniapay.Config{BaseURL: srv.URL + "/api/", AppID: "APP-TEST", OurKey: k.PlatformPrivate,
		InfiniaKey: k.InfiniaPublic, HTTP: srv.Client(), MaxRetries: -1, RequireResponseSignature: true})
	if err != nil {
		t.Fatal(err)
	}
	req := infiniapay.RevenueShareRequest{RequestNo: "RS-20261123-ABCDEF-1", SellerID: "INF00000042", Currency: "CNY",
		Amount: 1234_56, Note: "RS/20261123/S00042/CNY"}
	res, err := c.RevenueShare(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"requestNo": req.RequestNo, "sellerId": req.SellerID, "currency": "CNH", "amount": "1234.56", "note": req.Note}
	if len(seen) != len(want) {
		t.Fatalf("openssl read %v, want %v", seen, want)
	}
	for k, v := range want {
		if seen[k] != v {
			t.Fatalf("openssl read %s=%q, want %q (all: %v)", k, seen[k], v, seen)
		}
	}
	if res.Status != infiniapay.StatusSuccess || res.Amount != 1234_56 || res.Currency != "CNY" || res.Reference != answer["reference"] {
		t.Fatalf("our client read %+v", res)
	}
	// An answer whose data is not what openssl signed is refused.
	tamper = true
	if _, err := c.RevenueShareStatus(context.Background(), req.RequestNo); !errors.Is(err, infiniapay.ErrSignature) {
		t.Fatalf("tampered answer: %v", err)
	}
}

// A notification made by openssl as Infinia's documentation shows it
// (encrypted, unsigned) and one signed too are both opened by our code.
func TestNotificationFromOpenSSL(t *testing.T) {
	o := newOpenSSL(t)
	k := keys(t)
	data := o.encrypt("platform_public.pem", []byte(`{"requestNo":"WH-20261123-0001","sellerId":"INF00000042","status":"ACTIVE"}`))
	for _, sig := range []string{"", o.sign("infinia_private.pem", data)} {
		body, _ := json.Marshal(infiniapay.RequestEnvelope{Version: "1.0", AppID: "APP-TEST", DataType: "JSON", RequestData: data, Signature: sig})
		_, plain, err := infiniapay.OpenNotification(body, k.PlatformPrivate, k.InfiniaPublic)
		if err != nil || !strings.Contains(string(plain), `"sellerId":"INF00000042"`) {
			t.Fatalf("signed=%v: %s, %v", sig != "", plain, err)
		}
	}
	// Signed by the wrong key (ours): refused.
	body, _ := json.Marshal(infiniapay.RequestEnvelope{Version: "1.0", RequestData: data, Signature: o.sign("platform_private.pem", data)})
	if _, _, err := infiniapay.OpenNotification(body, k.PlatformPrivate, k.InfiniaPublic); !errors.Is(err, infiniapay.ErrSignature) {
		t.Fatalf("wrong signer: %v", err)
	}
}
