package wechatpay

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/settlekit/settle/internal/rsakey"
)

// LoadPrivateKey reads the merchant API private key (apiclient_key.pem:
// PEM "PRIVATE KEY", PKCS #8; "RSA PRIVATE KEY", PKCS #1, is accepted too).
// Errors name the file, never its content.
func LoadPrivateKey(path string) (*rsa.PrivateKey, error) { return rsakey.LoadPrivate(path) }

// LoadPlatformKey reads a WeChat Pay platform key from a PEM file: a
// public key ("PUBLIC KEY", its id given by WeChat Pay as
// "PUB_KEY_ID_...") or a platform certificate ("CERTIFICATE", whose serial
// is returned), one a file: a file of several PEM blocks is refused.
// serial is the id to use when the file is a public key.
func LoadPlatformKey(path, serial string) (string, *rsa.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("platform key: %w", err)
	}
	blk, rest := pem.Decode(b)
	if blk == nil {
		return "", nil, fmt.Errorf("platform key %s: not PEM", path)
	}
	if next, _ := pem.Decode(rest); next != nil {
		// The first alone was used, silently: a bundle of the old and
		// the new certificate held the old one only.
		return "", nil, fmt.Errorf("platform key %s: several PEM blocks (%s, %s, ...): want one key or certificate a file (give another with its own flag)", path, blk.Type, next.Type)
	}
	if blk.Type == "CERTIFICATE" {
		s, k, err := ParseCertificate(b)
		if err != nil {
			return "", nil, fmt.Errorf("platform certificate %s: %w", path, err)
		}
		return s, k, nil
	}
	k, err := ParsePublicKey(b)
	if err != nil {
		return "", nil, fmt.Errorf("platform key %s: %w", path, err)
	}
	if serial == "" {
		return "", nil, fmt.Errorf("platform key %s: a public key needs its id (PUB_KEY_ID_...)", path)
	}
	return serial, k, nil
}

// ParsePublicKey parses a PEM "PUBLIC KEY" (X.509 SubjectPublicKeyInfo).
func ParsePublicKey(b []byte) (*rsa.PublicKey, error) { return rsakey.ParsePublic(b) }

// ParseCertificate parses a PEM certificate (the merchant's
// apiclient_cert.pem or a platform certificate) and returns its serial as
// WeChat Pay writes it and its RSA key: the serial's bytes in upper-case
// hexadecimal, leading zero kept, as WeChat Pay's Go SDK
// (utils.GetCertificateSerialNumber) and openssl x509 -serial write it.
func ParseCertificate(b []byte) (string, *rsa.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return "", nil, errors.New("not a PEM certificate")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", nil, errors.New("not a valid X.509 certificate")
	}
	k, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return "", nil, fmt.Errorf("a %T key, want RSA", cert.PublicKey)
	}
	return fmt.Sprintf("%X", cert.SerialNumber.Bytes()), k, nil
}
