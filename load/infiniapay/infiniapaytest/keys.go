package infiniapaytest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// Keys are the two RSA key pairs of the Infinia envelope: the platform's
// (ours: it signs requests and decrypts answers) and Infinia's.
type Keys struct {
	PlatformPrivate *rsa.PrivateKey
	PlatformPublic  *rsa.PublicKey
	InfiniaPrivate  *rsa.PrivateKey
	InfiniaPublic   *rsa.PublicKey
}

// GenerateKeys makes two fresh 2048-bit key pairs.
func GenerateKeys() (Keys, error) { return GenerateKeysOfSize(2048) }

// GenerateKeysOfSize makes two fresh key pairs of bits bits. Keys of 1024
// bits cost about a third of 2048's time to sign and decrypt with: for
// tests whose subject is not the envelope, which costs a private-key
// operation per 64 bytes of every request and answer (DefaultChunkSize).
func GenerateKeysOfSize(bits int) (Keys, error) {
	p, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return Keys{}, fmt.Errorf("generate platform key: %w", err)
	}
	i, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return Keys{}, fmt.Errorf("generate infinia key: %w", err)
	}
	return Keys{PlatformPrivate: p, PlatformPublic: &p.PublicKey, InfiniaPrivate: i, InfiniaPublic: &i.PublicKey}, nil
}

// Key file names written by WriteFiles.
const (
	PlatformPrivateFile = "platform_private.pem"
	PlatformPublicFile  = "platform_public.pem"
	InfiniaPrivateFile  = "infinia_private.pem"
	InfiniaPublicFile   = "infinia_public.pem"
)

// WriteFiles writes the keys into dir as PEM: private keys PKCS #8 ("PRIVATE
// KEY", mode 0600), public keys X.509 SubjectPublicKeyInfo ("PUBLIC KEY"),
// named platform_private.pem, platform_public.pem, infinia_private.pem and
// infinia_public.pem, for paysim and the job's --key-file flags.
func (k Keys) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		key  any
		priv bool
	}{
		{PlatformPrivateFile, k.PlatformPrivate, true}, {PlatformPublicFile, k.PlatformPublic, false},
		{InfiniaPrivateFile, k.InfiniaPrivate, true}, {InfiniaPublicFile, k.InfiniaPublic, false},
	} {
		var blk pem.Block
		var err error
		if f.priv {
			blk.Type = "PRIVATE KEY"
			blk.Bytes, err = x509.MarshalPKCS8PrivateKey(f.key)
		} else {
			blk.Type = "PUBLIC KEY"
			blk.Bytes, err = x509.MarshalPKIXPublicKey(f.key)
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
		mode := os.FileMode(0o644)
		if f.priv {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), pem.EncodeToMemory(&blk), mode); err != nil {
			return err
		}
	}
	return nil
}
