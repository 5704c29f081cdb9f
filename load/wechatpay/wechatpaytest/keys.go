package wechatpaytest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
)

// Keys are the two RSA key pairs of API v3: the merchant's (it signs our
// requests; its certificate has MerchantSerial) and WeChat Pay's platform
// key (it signs answers and decrypts receiver names; its id is
// PlatformSerial).
type Keys struct {
	MerchantPrivate *rsa.PrivateKey
	MerchantSerial  string
	PlatformPrivate *rsa.PrivateKey
	PlatformSerial  string
}

// GenerateKeys makes two fresh 2048-bit key pairs with random serials: a
// certificate-like hexadecimal serial for the merchant and a
// "PUB_KEY_ID_..." id for the platform public key.
func GenerateKeys() (Keys, error) { return GenerateKeysOfSize(2048) }

// GenerateKeysOfSize is GenerateKeys with keys of bits bits (1024: about
// a third of 2048's time to sign with, for tests whose subject is not the
// signature).
func GenerateKeysOfSize(bits int) (Keys, error) {
	m, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return Keys{}, fmt.Errorf("generate merchant key: %w", err)
	}
	p, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return Keys{}, fmt.Errorf("generate platform key: %w", err)
	}
	var serial [20]byte
	rand.Read(serial[:])
	var id [8]byte
	rand.Read(id[:])
	return Keys{MerchantPrivate: m, MerchantSerial: strings.ToUpper(hex.EncodeToString(serial[:])),
		PlatformPrivate: p, PlatformSerial: "PUB_KEY_ID_" + strings.ToUpper(hex.EncodeToString(id[:]))}, nil
}

// Key file names written by WriteFiles, as WeChat Pay names the downloads.
const (
	MerchantKeyFile    = "apiclient_key.pem"
	PlatformPublicFile = "pub_key.pem"
)

// WriteFiles writes the merchant's private key (PKCS #8 PEM, mode 0600)
// and the platform public key (X.509 SubjectPublicKeyInfo PEM) into dir,
// for paysim and the job's key-file flags; the serials are Keys'.
func (k Keys) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.MerchantPrivate)
	if err != nil {
		return fmt.Errorf("write %s: %w", MerchantKeyFile, err)
	}
	if err := os.WriteFile(filepath.Join(dir, MerchantKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	der, err = x509.MarshalPKIXPublicKey(&k.PlatformPrivate.PublicKey)
	if err != nil {
		return fmt.Errorf("write %s: %w", PlatformPublicFile, err)
	}
	return os.WriteFile(filepath.Join(dir, PlatformPublicFile), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
}

// ClientConfig returns a client configuration that talks to the fake at
// baseURL (an httptest.Server's URL, say) with the fake's keys and merchant
// id; callers adjust retries, timeouts and limits.
func (s *Server) ClientConfig(baseURL string) wechatpay.Config {
	mch := s.mchID()
	return wechatpay.Config{
		BaseURL: baseURL, MchID: mch, SerialNo: s.o.Keys.MerchantSerial, PrivateKey: s.o.Keys.MerchantPrivate,
		PlatformKeys: map[string]*rsa.PublicKey{s.o.Keys.PlatformSerial: &s.o.Keys.PlatformPrivate.PublicKey},
		HTTP:         wechatpay.NewHTTPClient(30 * time.Second),
	}
}
