package infiniapay

import (
	"crypto/rsa"

	"github.com/settlekit/settle/internal/rsakey"
)

// LoadPrivateKey reads our RSA private key from a file: PEM ("PRIVATE KEY",
// PKCS #8; "RSA PRIVATE KEY", PKCS #1, is accepted too) or the bare Base64
// of the PKCS #8 DER, as Infinia's console hands it out. Errors name the
// file, never its content.
func LoadPrivateKey(path string) (*rsa.PrivateKey, error) { return rsakey.LoadPrivate(path) }

// LoadPublicKey reads an RSA public key (Infinia's) from a file: PEM
// ("PUBLIC KEY", X.509 SubjectPublicKeyInfo) or its bare Base64.
func LoadPublicKey(path string) (*rsa.PublicKey, error) { return rsakey.LoadPublic(path) }
