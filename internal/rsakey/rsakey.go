// Package rsakey reads the RSA keys the provider clients use, from PEM
// (PKCS #8 or PKCS #1 private keys, X.509 SubjectPublicKeyInfo public keys)
// or from the bare Base64 of the DER, as provider consoles hand them out.
// Errors name the file, never its content.
package rsakey

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// LoadPrivate reads an RSA private key from a file.
func LoadPrivate(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	k, err := ParsePrivate(b)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	return k, nil
}

// LoadPublic reads an RSA public key from a file.
func LoadPublic(path string) (*rsa.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	k, err := ParsePublic(b)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return k, nil
}

// ParsePrivate parses what LoadPrivate reads.
func ParsePrivate(b []byte) (*rsa.PrivateKey, error) {
	der, pemType, err := keyDER(b)
	if err != nil {
		return nil, err
	}
	if pemType == "RSA PRIVATE KEY" {
		k, err := x509.ParsePKCS1PrivateKey(der)
		if err != nil {
			return nil, errors.New("not a valid PKCS #1 RSA private key")
		}
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("not a valid PKCS #8 private key")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, want an RSA key", k)
	}
	return rk, nil
}

// ParsePublic parses what LoadPublic reads.
func ParsePublic(b []byte) (*rsa.PublicKey, error) {
	der, _, err := keyDER(b)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, errors.New("not a valid X.509 SubjectPublicKeyInfo")
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %T, want an RSA key", k)
	}
	return rk, nil
}

// keyDER returns the DER inside a PEM block or a bare Base64 text (line
// breaks allowed), and the PEM type when there was one.
func keyDER(b []byte) ([]byte, string, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		return blk.Bytes, blk.Type, nil
	}
	text := strings.Join(strings.Fields(string(b)), "")
	der, err := base64.StdEncoding.DecodeString(text)
	if err != nil || len(der) == 0 {
		return nil, "", errors.New("neither PEM nor Base64 DER")
	}
	return der, "", nil
}
