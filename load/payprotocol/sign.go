package payprotocol

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers that authenticate every request to Pay Protocol and every
// callback from it.
const (
	HeaderKey       = "X-PAY-KEY"       // the merchant's API key
	HeaderTimestamp = "X-PAY-TIMESTAMP" // Unix time in seconds, decimal
	HeaderSign      = "X-PAY-SIGN"      // see Sign
)

// DefaultMaxSkew is the largest difference Pay Protocol accepts between a
// request's X-PAY-TIMESTAMP and its clock; callbacks are held to the same.
const DefaultMaxSkew = 60 * time.Second

// Sign returns the X-PAY-SIGN of a request: Base64 (standard, padded) of
// HMAC-SHA256 keyed with the API secret over the plain concatenation
// timestamp + METHOD + requestPath + body. The method is upper-cased;
// requestPath is the path as sent, with the base URL's "/api/mer" prefix
// and, for a GET, "?" and the query string exactly as sent; body is the
// JSON body as sent, empty for a GET.
func Sign(secret, timestamp, method, requestPath string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	io.WriteString(m, timestamp)
	io.WriteString(m, strings.ToUpper(method))
	io.WriteString(m, requestPath)
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// SignRequest sets the three authentication headers on req, signed at t
// over req's method, its request URI as it goes on the wire
// (req.URL.RequestURI()) and body, which must be req's body.
func SignRequest(req *http.Request, key, secret string, t time.Time, body []byte) {
	ts := strconv.FormatInt(t.Unix(), 10)
	req.Header.Set(HeaderKey, key)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSign, Sign(secret, ts, req.Method, req.URL.RequestURI(), body))
}

// RequestPath returns the path and query a server received r with, as the
// sender signed it: the request-target from the request line, which
// http.StripPrefix and routers leave alone, or r.URL.RequestURI() when r
// did not come from a server.
func RequestPath(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// VerifyRequest checks the authentication headers of a received request
// whose body is body: X-PAY-KEY is key, X-PAY-TIMESTAMP is within maxSkew
// of now (DefaultMaxSkew when maxSkew <= 0), and X-PAY-SIGN is the
// signature of timestamp + r.Method + RequestPath(r) + body under secret.
// The error wraps ErrUnauthorized and says which check failed, never what
// the signature should have been.
func VerifyRequest(r *http.Request, body []byte, key, secret string, now time.Time, maxSkew time.Duration) error {
	if maxSkew <= 0 {
		maxSkew = DefaultMaxSkew
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get(HeaderKey)), []byte(key)) != 1 {
		return fmt.Errorf("%w: unknown %s", ErrUnauthorized, HeaderKey)
	}
	ts := r.Header.Get(HeaderTimestamp)
	sec, err := parseTimestamp(ts)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnauthorized, HeaderTimestamp, err)
	}
	if skew := now.Sub(time.Unix(sec, 0)).Abs(); skew > maxSkew {
		return fmt.Errorf("%w: %s is %v away from our clock (at most %v)", ErrUnauthorized, HeaderTimestamp, skew.Truncate(time.Second), maxSkew)
	}
	got, err := base64.StdEncoding.DecodeString(r.Header.Get(HeaderSign))
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: %s is not a Base64 HMAC-SHA256", ErrUnauthorized, HeaderSign)
	}
	want, _ := base64.StdEncoding.DecodeString(Sign(secret, ts, r.Method, RequestPath(r), body))
	if !hmac.Equal(got, want) {
		return fmt.Errorf("%w: %s does not match", ErrUnauthorized, HeaderSign)
	}
	return nil
}

// parseTimestamp reads Unix seconds written as plain ASCII digits.
func parseTimestamp(s string) (int64, error) {
	if s == "" || len(s) > 12 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("want Unix seconds, got %q", clip(s))
	}
	return strconv.ParseInt(s, 10, 64)
}
