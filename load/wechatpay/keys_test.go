package wechatpay_test

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/settlekit/settle/load/wechatpay"
)

// TestCertificateSerialAsWeChatPayWritesIt: WeChat Pay names a platform
// certificate (Wechatpay-Serial) and the merchant's by the serial's bytes
// in upper-case hexadecimal, as its Go SDK (utils.GetCertificateSerialNumber)
// and openssl x509 -serial write it. ParseCertificate wrote the number
// without its leading zero ("A1B2C" for 0A1B2C), so that a certificate
// whose serial starts with a zero half-byte never matched the answers
// signed with it: every answer refused as signed by a key not held.
func TestCertificateSerialAsWeChatPayWritesIt(t *testing.T) {
	k := testKeys(t)
	for _, hexSerial := range []string{"0A1B2C", "01", "0123456789ABCDEF0123456789ABCDEF01234567"} {
		n, ok := new(big.Int).SetString(hexSerial, 16)
		if !ok {
			t.Fatal(hexSerial)
		}
		tmpl := &x509.Certificate{SerialNumber: n, Subject: pkix.Name{CommonName: "Tenpay.com Root CA"},
			NotBefore: time.Unix(0, 0), NotAfter: time.Unix(0, 0).Add(24 * time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PlatformPrivate.PublicKey, k.PlatformPrivate)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		sdk := utils.GetCertificateSerialNumber(*cert)
		got, key, err := wechatpay.ParseCertificate(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
		if err != nil || got != sdk || got != hexSerial || !key.Equal(&k.PlatformPrivate.PublicKey) {
			t.Errorf("serial %s: got %q (%v), WeChat Pay's SDK writes %q", hexSerial, got, err, sdk)
		}
	}
}
