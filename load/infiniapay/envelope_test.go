package infiniapay_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
)

// TestEnvelopeFormat checks Seal against the format written out by hand
// with crypto/rsa: 64-byte chunks, one 256-byte block each, Base64; the
// signature SHA256withRSA over the Base64 text.
func TestEnvelopeFormat(t *testing.T) {
	k := keys(t)
	payload := map[string]string{"requestNo": "RS-1", "note": strings.Repeat("é", 300)} // ~700 bytes of JSON
	body, err := infiniapay.Seal("APP", payload, k.InfiniaPublic, k.PlatformPrivate, 64)
	if err != nil {
		t.Fatal(err)
	}
	var env infiniapay.RequestEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	if env.Version != "1.0" || env.DataType != "JSON" || env.AppID != "APP" {
		t.Fatalf("envelope %+v", env)
	}
	plain, _ := json.Marshal(payload)
	raw, err := base64.StdEncoding.DecodeString(env.RequestData)
	if err != nil {
		t.Fatal(err)
	}
	blocks := (len(plain) + 63) / 64
	if blocks < 5 || len(raw) != blocks*256 {
		t.Fatalf("%d plaintext bytes gave %d cipher bytes, want %d blocks of 256", len(plain), len(raw), blocks)
	}
	var got []byte
	for i := 0; i < len(raw); i += 256 {
		//lint:ignore SA1019 checking the provider's PKCS #1 v1.5 format by hand
		pt, err := rsa.DecryptPKCS1v15(nil, k.InfiniaPrivate, raw[i:i+256])
		if err != nil {
			t.Fatalf("block %d: %v", i/256, err)
		}
		if i+256 < len(raw) && len(pt) != 64 {
			t.Fatalf("block %d holds %d bytes, want 64", i/256, len(pt))
		}
		got = append(got, pt...)
	}
	if !bytes.Equal(got, plain) {
		t.Fatal("decrypted blocks are not the JSON")
	}
	sig, _ := base64.StdEncoding.DecodeString(env.Signature)
	sum := sha256.Sum256([]byte(env.RequestData))
	if err := rsa.VerifyPKCS1v15(k.PlatformPublic, crypto.SHA256, sum[:], sig); err != nil {
		t.Fatalf("signature is not SHA256withRSA over requestData: %v", err)
	}
	// And Open reverses it.
	if _, opened, err := infiniapay.Open(body, k.InfiniaPrivate, k.PlatformPublic); err != nil || !bytes.Equal(opened, plain) {
		t.Fatalf("Open: %v", err)
	}
	// Decrypt takes blocks made by any chunk size, e.g. Java's usual 117.
	other, err := infiniapay.Encrypt(k.PlatformPublic, plain, 117)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := infiniapay.Decrypt(k.PlatformPrivate, other); err != nil || !bytes.Equal(back, plain) {
		t.Fatalf("Decrypt of 117-byte chunks: %v", err)
	}
	if _, err := infiniapay.Decrypt(k.PlatformPrivate, base64.StdEncoding.EncodeToString(make([]byte, 300))); err == nil {
		t.Fatal("300 bytes is not whole 256-byte blocks")
	}
}

// post sends a raw body to the fake and returns its answer envelope.
func post(t *testing.T, url string, body []byte) infiniapay.ResponseEnvelope {
	t.Helper()
	resp, err := infiniapay.NewHTTPClient(0).Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env infiniapay.ResponseEnvelope
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	return env
}

func TestFakeRefusesTamperedRequests(t *testing.T) {
	r := newRig(t, infiniapaytest.Options{}, nil, nil)
	k := keys(t)
	url := r.srv.URL + "/api/v1/balance/query"
	q := map[string]string{"requestNo": "BAL-1", "currency": "USD"}
	seal := func(to *rsa.PublicKey, from *rsa.PrivateKey) infiniapay.RequestEnvelope {
		body, err := infiniapay.Seal("APP-TEST", q, to, from, 64)
		if err != nil {
			t.Fatal(err)
		}
		var env infiniapay.RequestEnvelope
		json.Unmarshal(body, &env)
		return env
	}
	send := func(env infiniapay.RequestEnvelope) infiniapay.ResponseEnvelope {
		b, _ := json.Marshal(env)
		return post(t, url, b)
	}
	if got := send(seal(k.InfiniaPublic, k.PlatformPrivate)); got.Code != infiniapay.CodeSuccess {
		t.Fatalf("untampered: %+v", got)
	}
	flip := func(s string) string {
		b := []byte(s)
		if b[10] == 'A' {
			b[10] = 'B'
		} else {
			b[10] = 'A'
		}
		return string(b)
	}
	env := seal(k.InfiniaPublic, k.PlatformPrivate)
	env.RequestData = flip(env.RequestData)
	if got := send(env); got.Code != infiniapay.CodeInvalidParameter || got.Message != "invalid signature" || got.ResponseData != "" {
		t.Fatalf("tampered requestData: %+v", got)
	}
	env = seal(k.InfiniaPublic, k.PlatformPrivate)
	env.Signature = flip(env.Signature)
	if got := send(env); got.Code != infiniapay.CodeInvalidParameter {
		t.Fatalf("tampered signature: %+v", got)
	}
	if got := send(seal(k.InfiniaPublic, k.InfiniaPrivate)); got.Code != infiniapay.CodeInvalidParameter {
		t.Fatalf("signed with the wrong key: %+v", got)
	}
	// Signed right but encrypted for the wrong key: it does not decrypt.
	if got := send(seal(k.PlatformPublic, k.PlatformPrivate)); got.Code != infiniapay.CodeBadFormat {
		t.Fatalf("encrypted for the wrong key: %+v", got)
	}
	env = seal(k.InfiniaPublic, k.PlatformPrivate)
	env.Version = "2.0"
	if got := send(env); got.Code != infiniapay.CodeBadFormat {
		t.Fatalf("version 2.0: %+v", got)
	}
	if got := post(t, url, []byte("{not json")); got.Code != infiniapay.CodeBadFormat {
		t.Fatalf("not JSON: %+v", got)
	}
}

// tamper rewrites the fake's answers on one API with edit.
func tamper(api string, edit func(*infiniapay.ResponseEnvelope)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, api) {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			var env infiniapay.ResponseEnvelope
			if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			edit(&env)
			json.NewEncoder(w).Encode(env)
		})
	}
}

func TestClientRefusesTamperedAnswers(t *testing.T) {
	ctx := context.Background()
	k := keys(t)
	badSig := func(env *infiniapay.ResponseEnvelope) {
		env.Signature = base64.StdEncoding.EncodeToString(make([]byte, 256))
	}
	r := newRig(t, infiniapaytest.Options{}, tamper("balance/query", badSig), nil)
	_, err := r.client.Balance(ctx, "BAL-1", "USD")
	if !errors.Is(err, infiniapay.ErrSignature) || !strings.Contains(err.Error(), "balance/query BAL-1") {
		t.Fatalf("bad signature: %v", err)
	}
	if n := r.fake.Calls("balance/query"); n != 1 {
		t.Fatalf("a forged answer was retried: %d calls", n)
	}

	// A data swap: someone else's valid ciphertext under Infinia's old signature.
	swap := func(env *infiniapay.ResponseEnvelope) {
		env.ResponseData, _ = infiniapay.Encrypt(k.PlatformPublic, []byte(`{"requestNo":"RS-1","status":"SUCCESS"}`), 64)
	}
	r = newRig(t, infiniapaytest.Options{}, tamper("revenue-sharing/request", swap), nil)
	r.fake.SetBinding("S1", infiniapay.StatusActive)
	_, err = r.client.RevenueShare(ctx, infiniapay.RevenueShareRequest{RequestNo: "RS-1", SellerID: "S1", Currency: "USD", Amount: 1})
	if !errors.Is(err, infiniapay.ErrSignature) || !errors.Is(err, infiniapay.ErrUnknownOutcome) {
		t.Fatalf("forged revenue-sharing answer: %v; want ErrSignature and ErrUnknownOutcome", err)
	}
	noSecrets(t, err)

	// Unsigned answers: accepted unless the client requires signatures.
	r = newRig(t, infiniapaytest.Options{Unsigned: true}, nil, nil)
	if _, err := r.client.Balance(ctx, "BAL-1", "USD"); err != nil {
		t.Fatalf("unsigned, not required: %v", err)
	}
	r = newRig(t, infiniapaytest.Options{Unsigned: true}, nil, func(c *infiniapay.Config) { c.RequireResponseSignature = true })
	if _, err := r.client.Balance(ctx, "BAL-1", "USD"); !errors.Is(err, infiniapay.ErrSignature) {
		t.Fatalf("unsigned, required: %v", err)
	}
}

func TestLoadKeys(t *testing.T) {
	k := keys(t)
	dir := t.TempDir()
	if err := k.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	priv, err := infiniapay.LoadPrivateKey(filepath.Join(dir, infiniapaytest.PlatformPrivateFile))
	if err != nil || !priv.Equal(k.PlatformPrivate) {
		t.Fatalf("PEM private key: %v", err)
	}
	pub, err := infiniapay.LoadPublicKey(filepath.Join(dir, infiniapaytest.InfiniaPublicFile))
	if err != nil || !pub.Equal(k.InfiniaPublic) {
		t.Fatalf("PEM public key: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, infiniapaytest.InfiniaPrivateFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key file mode %v", fi.Mode())
	}
	// Bare Base64 of the DER, wrapped at 64 columns as consoles hand it out.
	pemText, _ := os.ReadFile(filepath.Join(dir, infiniapaytest.InfiniaPublicFile))
	var bare []string
	for _, line := range strings.Split(string(pemText), "\n") {
		if line != "" && !strings.HasPrefix(line, "-----") {
			bare = append(bare, line)
		}
	}
	p := filepath.Join(dir, "bare.txt")
	os.WriteFile(p, []byte(strings.Join(bare, "\n")), 0o600)
	if pub, err := infiniapay.LoadPublicKey(p); err != nil || !pub.Equal(k.InfiniaPublic) {
		t.Fatalf("bare Base64 public key: %v", err)
	}
	// A broken key file: the error names the file, never its content.
	privText, _ := os.ReadFile(filepath.Join(dir, infiniapaytest.PlatformPrivateFile))
	broken := append(privText[:len(privText)/2:len(privText)/2], []byte("\n-----END PRIVATE KEY-----\n")...)
	os.WriteFile(p, broken, 0o600)
	_, err = infiniapay.LoadPrivateKey(p)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("broken key: %v", err)
	}
	noSecrets(t, err)
	os.WriteFile(p, pemText, 0o600)
	if _, err := infiniapay.LoadPrivateKey(p); err == nil {
		t.Fatal("a public key loaded as a private key")
	}
}
