package paysim

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
)

// secretsFile holds every key and serial of the simulator, under Dir/keys:
// read back on a restart, so that the job's configuration (key files,
// serials, known_hosts) stays valid across restarts of paysim.
const secretsFile = "paysim-secrets.pem"

// secrets are the simulator's keys: generated once per directory.
type secrets struct {
	infinia           infiniapaytest.Keys
	wechat            wechatpaytest.Keys
	sftpClient        ed25519.PrivateKey
	sftpHost          ed25519.PrivateKey
	payProtocolSecret string
}

// PEM block names in secretsFile.
const (
	blockInfiniaPlatform = "infinia-platform"
	blockInfinia         = "infinia"
	blockWeChatMerchant  = "wechat-merchant"
	blockWeChatPlatform  = "wechat-platform"
	blockSFTPClient      = "sftp-client"
	blockSFTPHost        = "sftp-host"
	blockPayProtocol     = "payprotocol-secret"
)

// loadSecrets reads dir's secrets, or generates and writes them when the
// directory has none yet, with RSA keys of bits bits (share: the
// process's shared ones of that size).
func loadSecrets(dir string, share bool, bits int) (*secrets, error) {
	path := filepath.Join(dir, secretsFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		generate := newSecrets
		if share {
			generate = shared
		}
		s, err := generate(bits)
		if err != nil {
			return nil, err
		}
		return s, s.write(path)
	}
	if err != nil {
		return nil, err
	}
	s, err := parseSecrets(b)
	if err != nil {
		return nil, fmt.Errorf("paysim: %s: %w (remove the directory to start afresh)", path, err)
	}
	return s, nil
}

// sharedSecrets are the secrets of every simulator started with
// Options.ShareKeys, by the size of their RSA keys: generated once per
// process.
var sharedSecrets sync.Map // int → func() (*secrets, error)

func shared(bits int) (*secrets, error) {
	f, _ := sharedSecrets.LoadOrStore(bits, sync.OnceValues(func() (*secrets, error) { return newSecrets(bits) }))
	return f.(func() (*secrets, error))()
}

// newSecrets generates a simulator's secrets, its RSA keys of bits bits.
func newSecrets(bits int) (*secrets, error) {
	inf, err := infiniapaytest.GenerateKeysOfSize(bits)
	if err != nil {
		return nil, err
	}
	wx, err := wechatpaytest.GenerateKeysOfSize(bits)
	if err != nil {
		return nil, err
	}
	_, client, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	_, host, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 24)
	rand.Read(secret)
	return &secrets{infinia: inf, wechat: wx, sftpClient: client, sftpHost: host, payProtocolSecret: hex.EncodeToString(secret)}, nil
}

func (s *secrets) write(path string) error {
	var out []byte
	for _, k := range []struct {
		name, serial string
		key          any
	}{
		{blockInfiniaPlatform, "", s.infinia.PlatformPrivate}, {blockInfinia, "", s.infinia.InfiniaPrivate},
		{blockWeChatMerchant, s.wechat.MerchantSerial, s.wechat.MerchantPrivate},
		{blockWeChatPlatform, s.wechat.PlatformSerial, s.wechat.PlatformPrivate},
		{blockSFTPClient, "", s.sftpClient}, {blockSFTPHost, "", s.sftpHost},
	} {
		der, err := x509.MarshalPKCS8PrivateKey(k.key)
		if err != nil {
			return fmt.Errorf("paysim: %s key: %w", k.name, err)
		}
		h := map[string]string{"Name": k.name}
		if k.serial != "" {
			h["Serial"] = k.serial
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: h, Bytes: der})...)
	}
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "SECRET", Headers: map[string]string{"Name": blockPayProtocol},
		Bytes: []byte(s.payProtocolSecret)})...)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o600)
}

func parseSecrets(b []byte) (*secrets, error) {
	s := &secrets{}
	seen := map[string]bool{}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		name := blk.Headers["Name"]
		seen[name] = true
		if blk.Type == "SECRET" && name == blockPayProtocol {
			s.payProtocolSecret = string(blk.Bytes)
			continue
		}
		key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", name, err)
		}
		rsaKey, _ := key.(*rsa.PrivateKey)
		edKey, _ := key.(ed25519.PrivateKey)
		switch name {
		case blockInfiniaPlatform:
			s.infinia.PlatformPrivate = rsaKey
		case blockInfinia:
			s.infinia.InfiniaPrivate = rsaKey
		case blockWeChatMerchant:
			s.wechat.MerchantPrivate, s.wechat.MerchantSerial = rsaKey, blk.Headers["Serial"]
		case blockWeChatPlatform:
			s.wechat.PlatformPrivate, s.wechat.PlatformSerial = rsaKey, blk.Headers["Serial"]
		case blockSFTPClient:
			s.sftpClient = edKey
		case blockSFTPHost:
			s.sftpHost = edKey
		}
	}
	if s.infinia.PlatformPrivate == nil || s.infinia.InfiniaPrivate == nil || s.wechat.MerchantPrivate == nil ||
		s.wechat.PlatformPrivate == nil || s.wechat.MerchantSerial == "" || s.wechat.PlatformSerial == "" ||
		s.sftpClient == nil || s.sftpHost == nil || s.payProtocolSecret == "" {
		return nil, fmt.Errorf("incomplete: has %v", seen)
	}
	s.infinia.PlatformPublic, s.infinia.InfiniaPublic = &s.infinia.PlatformPrivate.PublicKey, &s.infinia.InfiniaPrivate.PublicKey
	return s, nil
}
