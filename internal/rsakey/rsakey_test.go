package rsakey

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFormatsAndErrors(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p8, _ := x509.MarshalPKCS8PrivateKey(k)
	pub, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	for name, b := range map[string][]byte{
		"pkcs8 pem":   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}),
		"pkcs1 pem":   pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}),
		"bare base64": []byte(base64.StdEncoding.EncodeToString(p8)[:40] + "\n" + base64.StdEncoding.EncodeToString(p8)[40:]),
	} {
		got, err := ParsePrivate(b)
		if err != nil || !got.Equal(k) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if got, err := ParsePublic([]byte(base64.StdEncoding.EncodeToString(pub))); err != nil || !got.Equal(&k.PublicKey) {
		t.Errorf("public: %v", err)
	}
	secret := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(secret, []byte("SECRET-CONTENT-xyz"), 0o600)
	if _, err := LoadPrivate(secret); err == nil || !strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "SECRET-CONTENT") {
		t.Fatalf("error must name the file and not its content: %v", err)
	}
	if _, err := ParsePublic(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8})); err == nil {
		t.Fatal("a private key accepted as public")
	}
}
