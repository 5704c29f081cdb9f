package wechatpay

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// AuthScheme is the Authorization scheme of API v3 requests signed
// SHA256withRSA with a 2048-bit merchant key.
const AuthScheme = "WECHATPAY2-SHA256-RSA2048"

// MaxSkew is the clock difference at which a signed timestamp is refused,
// in either direction: an answer 5 minutes or more away from our clock is
// stale (or replayed), whatever its signature.
const MaxSkew = 5 * time.Minute

// SignProbePrefix starts the Wechatpay-Signature of WeChat Pay's
// signature probes ("签名探测流量"): answers signed wrongly on purpose, to
// check that the merchant verifies them (ErrSignProbe).
const SignProbePrefix = "WECHATPAY/SIGNTEST/"

// The headers of a signed answer, and the request header naming the
// platform key that encrypted a request's sensitive fields.
const (
	HeaderSerial    = "Wechatpay-Serial"
	HeaderTimestamp = "Wechatpay-Timestamp"
	HeaderNonce     = "Wechatpay-Nonce"
	HeaderSignature = "Wechatpay-Signature"
	HeaderRequestID = "Request-ID"
)

// RequestMessage returns what a request signature covers: the method, the
// path with its query as sent, the timestamp (Unix seconds), the nonce and
// the body, each followed by "\n". The body is empty for a GET.
func RequestMessage(method, pathWithQuery string, timestamp int64, nonce string, body []byte) []byte {
	var b strings.Builder
	b.Grow(len(method) + len(pathWithQuery) + len(nonce) + len(body) + 16)
	b.WriteString(method + "\n" + pathWithQuery + "\n" + strconv.FormatInt(timestamp, 10) + "\n" + nonce + "\n")
	b.Write(body)
	b.WriteString("\n")
	return []byte(b.String())
}

// ResponseMessage returns what an answer signature covers: the
// Wechatpay-Timestamp and Wechatpay-Nonce headers as received and the body,
// each followed by "\n".
func ResponseMessage(timestamp, nonce string, body []byte) []byte {
	msg := make([]byte, 0, len(timestamp)+len(nonce)+len(body)+3)
	msg = append(msg, timestamp+"\n"+nonce+"\n"...)
	msg = append(msg, body...)
	return append(msg, '\n')
}

// Sign returns the Base64 of the SHA256withRSA (PKCS #1 v1.5) signature of
// msg by key.
func Sign(key *rsa.PrivateKey, msg []byte) (string, error) {
	sum := sha256.Sum256(msg)
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// Verify checks a Base64 SHA256withRSA signature of msg; the error wraps
// ErrSignature.
func Verify(key *rsa.PublicKey, msg []byte, sig string) error {
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("%w: not Base64", ErrSignature)
	}
	sum := sha256.Sum256(msg)
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], raw); err != nil {
		return fmt.Errorf("%w: does not verify", ErrSignature)
	}
	return nil
}

// Authorization is the content of a request's Authorization header.
type Authorization struct {
	MchID     string // the merchant (service provider) id making the request
	Nonce     string // nonce_str
	Timestamp int64  // Unix seconds
	Serial    string // serial number of the merchant API certificate
	Signature string // Base64 SHA256withRSA over RequestMessage
}

// String formats the header value:
// WECHATPAY2-SHA256-RSA2048 mchid="...",nonce_str="...",timestamp="...",serial_no="...",signature="...".
func (a Authorization) String() string {
	return fmt.Sprintf(`%s mchid="%s",nonce_str="%s",timestamp="%d",serial_no="%s",signature="%s"`,
		AuthScheme, a.MchID, a.Nonce, a.Timestamp, a.Serial, a.Signature)
}

// ParseAuthorization parses what Authorization.String formats (the
// parameters in any order), for servers checking our requests.
func ParseAuthorization(h string) (Authorization, error) {
	var a Authorization
	params, ok := strings.CutPrefix(h, AuthScheme+" ")
	if !ok {
		return a, fmt.Errorf("authorization: want the %s scheme", AuthScheme)
	}
	seen := map[string]bool{}
	for _, p := range strings.Split(params, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' || seen[k] {
			return a, fmt.Errorf("authorization: malformed parameter %q", clip(p))
		}
		seen[k] = true
		v = v[1 : len(v)-1]
		switch k {
		case "mchid":
			a.MchID = v
		case "nonce_str":
			a.Nonce = v
		case "timestamp":
			ts, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return a, fmt.Errorf("authorization: timestamp %q is not Unix seconds", clip(v))
			}
			a.Timestamp = ts
		case "serial_no":
			a.Serial = v
		case "signature":
			a.Signature = v
		default:
			return a, fmt.Errorf("authorization: unknown parameter %q", clip(k))
		}
	}
	if len(seen) != 5 {
		return a, errors.New("authorization: want mchid, nonce_str, timestamp, serial_no and signature")
	}
	return a, nil
}

// errUnknownSerial is the cause of an answer signed under a
// Wechatpay-Serial none of the configured platform keys has: a serial
// mistyped, or WeChat Pay rotating its platform certificate or public key
// (it then signs with the new one, which the merchant is to add beside the
// current one). It is an ErrSignature.
var errUnknownSerial = fmt.Errorf("%w", ErrSignature)

// VerifyResponse checks a signed answer: the platform key named by
// Wechatpay-Serial must be one of keys, Wechatpay-Timestamp within MaxSkew
// of now, and Wechatpay-Signature must verify over ResponseMessage. The
// error wraps ErrSignature or ErrStale and says which check failed.
func VerifyResponse(keys map[string]*rsa.PublicKey, h http.Header, body []byte, now time.Time) error {
	sig, serial := h.Get(HeaderSignature), h.Get(HeaderSerial)
	if sig == "" {
		return fmt.Errorf("%w: answer not signed (no %s header)", ErrSignature, HeaderSignature)
	}
	key, ok := keys[serial]
	if !ok {
		return fmt.Errorf("%w: answer signed with platform key %q, which is not configured", errUnknownSerial, clip(serial))
	}
	tsText := h.Get(HeaderTimestamp)
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not Unix seconds", ErrSignature, HeaderTimestamp, clip(tsText))
	}
	at := time.Unix(ts, 0)
	if skew := now.Sub(at).Abs(); skew >= MaxSkew {
		return fmt.Errorf("%w: answer signed at %s, %s away from our clock (%s); the limit is %s",
			ErrStale, at.UTC().Format(time.RFC3339), skew.Round(time.Second), now.UTC().Format(time.RFC3339), MaxSkew)
	}
	if err := Verify(key, ResponseMessage(tsText, h.Get(HeaderNonce), body), sig); err != nil {
		return fmt.Errorf("%w: answer signature does not verify with platform key %q: body or headers altered, or not from WeChat Pay", ErrSignature, serial)
	}
	return nil
}

// EncryptSensitive encrypts a sensitive field (a receiver's name) for
// WeChat Pay: RSAES-OAEP with SHA-1 (MGF1 SHA-1) under the platform public
// key, Base64. The request must carry that key's serial in Wechatpay-Serial.
func EncryptSensitive(key *rsa.PublicKey, plain string) (string, error) {
	ct, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, key, []byte(plain), nil)
	if err != nil {
		return "", fmt.Errorf("encrypt sensitive field: %w", err)
	}
	return base64.StdEncoding.EncodeToString(ct), nil
}

// DecryptSensitive reverses EncryptSensitive with the platform private key.
func DecryptSensitive(key *rsa.PrivateKey, cipherText string) (string, error) {
	ct, err := base64.StdEncoding.DecodeString(cipherText)
	if err != nil {
		return "", errors.New("decrypt sensitive field: not Base64")
	}
	plain, err := rsa.DecryptOAEP(sha1.New(), nil, key, ct, nil)
	if err != nil {
		return "", errors.New("decrypt sensitive field: not encrypted with this key (RSA-OAEP SHA-1)")
	}
	return string(plain), nil
}

// NewNonce returns 32 random upper-case hexadecimal characters, the
// default Config.Nonce.
func NewNonce() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// tokenChars reports whether s is a non-empty word of [0-9A-Za-z_-], safe
// inside a quoted Authorization parameter.
func tokenChars(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
