package infiniapay

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// Envelope constants of every request.
const (
	Version          = "1.0"
	DataType         = "JSON"
	DefaultChunkSize = 64 // plaintext bytes per RSA block, as in Infinia's reference helper

	// MaxRequestData is the longest requestData Infinia publishes (Request
	// and Response parameters, doc.infiniax.com/doc-7371934: requestData
	// String, length 2048): with a 2048-bit key and 64-byte chunks, six
	// blocks, 384 bytes of JSON (the published binding example is 359).
	// The client never sends a longer one (Client.call), and infiniapaytest
	// refuses it (SYS-007).
	MaxRequestData = 2048
)

// EncryptedLen returns the length of what Encrypt makes of n bytes of
// plaintext under a key of keySize bytes in chunks of chunkSize bytes.
func EncryptedLen(n, keySize, chunkSize int) int {
	blocks := (n + chunkSize - 1) / chunkSize
	return base64.StdEncoding.EncodedLen(blocks * keySize)
}

// RequestEnvelope is the JSON body of every call to Infinia, and of
// Infinia's webhook notifications to us.
type RequestEnvelope struct {
	Version     string `json:"version"`
	AppID       string `json:"appId"`
	DataType    string `json:"dataType"`
	RequestData string `json:"requestData"`
	Signature   string `json:"signature"`
}

// ResponseEnvelope is the JSON body of every answer from Infinia. Signature
// is not in Infinia's public documentation; it is verified when present.
type ResponseEnvelope struct {
	AppID        string `json:"appId"`
	Code         string `json:"code"`
	Message      string `json:"message"`
	ResponseData string `json:"responseData"`
	Signature    string `json:"signature,omitempty"`
}

// Encrypt returns Base64 of the RSAES-PKCS1-v1_5 encryption of plaintext
// under pub: the plaintext is cut into chunks of chunkSize bytes (at most the
// key size minus 11), each chunk encrypted into one key-size block, the
// blocks concatenated.
func Encrypt(pub *rsa.PublicKey, plaintext []byte, chunkSize int) (string, error) {
	if pub == nil {
		return "", errors.New("encrypt: no public key")
	}
	if max := pub.Size() - 11; chunkSize < 1 || chunkSize > max {
		return "", fmt.Errorf("encrypt: chunk size %d outside 1..%d for a %d-bit key", chunkSize, max, pub.N.BitLen())
	}
	out := make([]byte, 0, (len(plaintext)/chunkSize+1)*pub.Size())
	for len(plaintext) > 0 {
		n := min(chunkSize, len(plaintext))
		// Infinia's envelope is PKCS #1 v1.5 by contract; we never act as a
		// decryption oracle for it (signatures are checked first, see Open).
		//lint:ignore SA1019 the provider's wire format mandates RSAES-PKCS1-v1_5
		block, err := rsa.EncryptPKCS1v15(rand.Reader, pub, plaintext[:n])
		if err != nil {
			return "", fmt.Errorf("encrypt: %w", err)
		}
		out = append(out, block...)
		plaintext = plaintext[n:]
	}
	return base64.StdEncoding.EncodeToString(out), nil
}

// Decrypt reverses Encrypt with the private key: Base64, then block by block
// (each block the key size in bytes). Its errors never contain plaintext.
func Decrypt(priv *rsa.PrivateKey, data string) ([]byte, error) {
	if priv == nil {
		return nil, errors.New("decrypt: no private key")
	}
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return nil, errors.New("decrypt: data is not Base64")
	}
	k := priv.Size()
	if len(raw) == 0 || len(raw)%k != 0 {
		return nil, fmt.Errorf("decrypt: %d bytes is not a whole number of %d-byte blocks", len(raw), k)
	}
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i += k {
		// opts nil: PKCS #1 v1.5, through crypto.Decrypter.
		pt, err := priv.Decrypt(nil, raw[i:i+k], nil)
		if err != nil {
			return nil, fmt.Errorf("decrypt: block %d does not decrypt with this key", i/k+1)
		}
		out = append(out, pt...)
	}
	return out, nil
}

// Sign returns Base64 of SHA256withRSA (RSASSA-PKCS1-v1_5 over SHA-256) of
// the string data, by priv.
func Sign(priv *rsa.PrivateKey, data string) (string, error) {
	if priv == nil {
		return "", errors.New("sign: no private key")
	}
	sum := sha256.Sum256([]byte(data))
	sig, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// Verify checks a signature made by Sign with the matching public key. It
// returns an error wrapping ErrSignature when it does not match.
func Verify(pub *rsa.PublicKey, data, signature string) error {
	if pub == nil {
		return errors.New("verify: no public key")
	}
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return fmt.Errorf("%w: not Base64", ErrSignature)
	}
	sum := sha256.Sum256([]byte(data))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return fmt.Errorf("%w: does not verify", ErrSignature)
	}
	return nil
}

// Seal builds a request envelope: v as JSON, encrypted for the recipient's
// public key in chunks of chunkSize bytes, the encrypted text signed by the
// sender's private key. We seal calls to Infinia (to = Infinia's key, from =
// ours); Infinia seals its webhooks to us (to = ours, from = Infinia's).
func Seal(appID string, v any, to *rsa.PublicKey, from *rsa.PrivateKey, chunkSize int) ([]byte, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	data, err := Encrypt(to, plain, chunkSize)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	sig, err := Sign(from, data)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return json.Marshal(RequestEnvelope{Version: Version, AppID: appID, DataType: DataType, RequestData: data, Signature: sig})
}

// Open parses a request envelope, verifies its signature with the sender's
// public key and only then decrypts its data with the recipient's private key
// (so a forger never gets to probe the decryption). A bad or missing
// signature wraps ErrSignature; anything else malformed wraps ErrEnvelope.
// The plaintext is returned, never put in an error.
func Open(body []byte, to *rsa.PrivateKey, from *rsa.PublicKey) (RequestEnvelope, []byte, error) {
	var env RequestEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return env, nil, fmt.Errorf("%w: not a JSON envelope", ErrEnvelope)
	}
	if env.Signature == "" {
		return env, nil, fmt.Errorf("%w: missing", ErrSignature)
	}
	if env.RequestData == "" {
		return env, nil, fmt.Errorf("%w: missing requestData", ErrEnvelope)
	}
	if err := Verify(from, env.RequestData, env.Signature); err != nil {
		return env, nil, err
	}
	plain, err := Decrypt(to, env.RequestData)
	if err != nil {
		return env, nil, fmt.Errorf("%w: %w", ErrEnvelope, err)
	}
	return env, plain, nil
}

// OpenNotification opens an envelope Infinia sends us unprompted (the
// seller status webhook), whose documented example has no signature: a
// signature, when present, is verified first as Open does; without one, the
// data must decrypt with our private key. The content is then only a
// claim: act on it after confirming it by a query.
func OpenNotification(body []byte, to *rsa.PrivateKey, from *rsa.PublicKey) (RequestEnvelope, []byte, error) {
	var env RequestEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return env, nil, fmt.Errorf("%w: not a JSON envelope", ErrEnvelope)
	}
	if env.Signature != "" {
		return Open(body, to, from)
	}
	if env.RequestData == "" {
		return env, nil, fmt.Errorf("%w: missing requestData", ErrEnvelope)
	}
	plain, err := Decrypt(to, env.RequestData)
	if err != nil {
		return env, nil, fmt.Errorf("%w: %w", ErrEnvelope, err)
	}
	return env, plain, nil
}
