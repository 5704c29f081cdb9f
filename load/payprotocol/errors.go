package payprotocol

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/settlekit/settle/internal/httpcall"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrNotFound: Pay Protocol answered one of Config.NotFoundCodes
	// (assumed 404) for an order or refund it does not know, or HTTP 404
	// with no body at all, not reached by a redirect: the docs list 404
	// "Not Found" with no body shown. A 404 with another body (a proxy's
	// or load balancer's HTML page) is not ErrNotFound: it says nothing of
	// the order. (A wrong base URL may look the same: Preflight tells it
	// apart by the chain list, the create calls can.)
	ErrNotFound = errors.New("not found")
	// ErrUnknownOutcome: a create call (payment order, refund order) may or
	// may not have been applied: no answer, or one we cannot trust. Resolve
	// it by a detail query, never by a blind resend (DESIGN section 3).
	ErrUnknownOutcome = errors.New("outcome unknown, resolve by detail query")
	// ErrUnauthorized: a request or callback whose key, timestamp or
	// signature is refused (code or HTTP 401 or 403 from Pay Protocol; a
	// failed check in CallbackHandler and VerifyRequest). Check the API key,
	// the secret and the clock.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrAnswer: an answer that is not what the API says it is.
	ErrAnswer = errors.New("malformed answer")
)

// Codes Pay Protocol answers in {code, msg, data}. Only CodeSuccess is
// documented; the others are assumed from the documented HTTP statuses.
const (
	CodeSuccess      = 200
	CodeBadRequest   = 400 // assumed: a parameter is missing or invalid
	CodeUnauthorized = 401 // assumed: "invalid sign", timestamp out of skew
	CodeForbidden    = 403
	CodeNotFound     = 404 // assumed: no such order or refund (Config.NotFoundCodes)
	CodeTooMany      = 429 // assumed
	CodeSystemError  = 500 // assumed
)

// TransientCode reports whether an answer's code says the same request may
// succeed later: 429 or 5xx (assumed).
func TransientCode(code int) bool {
	return code == CodeTooMany || (code >= 500 && code <= 599)
}

// failure says how an attempt failed, which decides whether it is retried.
type failure int

const (
	failLocal     failure = iota // on our side, before sending: never retried
	failNotSent                  // the connection was never made: nothing sent
	failNoAnswer                 // sent, answer never (fully) arrived
	failHTTP                     // an HTTP status other than 200 without a {code, msg, data} answer
	failCode                     // Pay Protocol answered a code other than 200
	failBadAnswer                // an answer we cannot use
)

// Error is a failed call: which API, about which order or refund, and what
// Pay Protocol (or the network) said. Err is the cause: ErrNotFound,
// ErrUnauthorized, ErrUnknownOutcome (wrapping the network error),
// ErrAnswer, a network error, or nil when Code says it all. It never holds
// the API secret or a signature.
type Error struct {
	API        string        // e.g. "payment/detail"
	OutTradeNo string        // the merchant order number of the call, when it has one
	RefundID   string        // the refund of the call, when it has one
	HTTPStatus int           // the HTTP status when it was not 200
	Code       int           // Pay Protocol's code, when it answered one
	Message    string        // Pay Protocol's msg (and description), or what went wrong
	RetryAfter time.Duration // what a 429 or a 503 asked us to wait (httpcall.RetryAfter)
	Err        error

	kind failure
	// skew is how far our clock was ahead of the server's Date header when
	// a refused request was signed (skewKnown: the answer had one).
	skew      time.Duration
	skewKnown bool
}

// Error says which API and order failed, and how.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "payprotocol %s", e.API)
	if e.OutTradeNo != "" {
		fmt.Fprintf(&b, " order %s", e.OutTradeNo)
	}
	if e.RefundID != "" {
		fmt.Fprintf(&b, " refund %s", e.RefundID)
	}
	b.WriteString(":")
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, " HTTP %d", e.HTTPStatus)
	}
	if e.Code != 0 {
		fmt.Fprintf(&b, " code %d", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, " %s", e.Message)
	}
	if e.Err != nil {
		if e.HTTPStatus != 0 || e.Code != 0 || e.Message != "" {
			b.WriteString(":")
		}
		fmt.Fprintf(&b, " %v", e.Err)
	}
	return b.String()
}

// Unwrap returns the cause, for errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.Err }

// Transient reports whether the same request may succeed later: a
// transient code, HTTP 429 or 5xx, or a network failure.
func (e *Error) Transient() bool {
	switch e.kind {
	case failNotSent, failNoAnswer:
		return true
	case failHTTP:
		return e.HTTPStatus == http.StatusTooManyRequests || e.HTTPStatus >= 500
	case failCode:
		return TransientCode(e.Code)
	}
	return false
}

// retryable reports whether the call may be sent again as it is. Queries
// and idempotent calls are resent on any transient failure. A create call
// is resent only when the request certainly was not processed: the
// connection was never made, or a 429 (a rate limiter refuses before
// anything is done).
func (e *Error) retryable(create bool) bool {
	switch e.kind {
	case failNotSent:
		return true
	case failNoAnswer:
		return !create
	case failHTTP:
		if e.HTTPStatus == http.StatusTooManyRequests {
			return true
		}
		return !create && e.HTTPStatus >= 500
	case failCode:
		if e.Code == CodeTooMany {
			return true
		}
		return !create && TransientCode(e.Code)
	}
	return false
}

// mayBeApplied reports whether a failed create call may still have been
// processed: no answer, an answer we cannot use, or a server error.
func (e *Error) mayBeApplied() bool {
	switch e.kind {
	case failNoAnswer, failBadAnswer:
		return true
	case failHTTP:
		return e.HTTPStatus >= 500
	case failCode:
		return e.Code != CodeTooMany && TransientCode(e.Code)
	}
	return false
}

func unknown(err error) error {
	if err == nil {
		return ErrUnknownOutcome
	}
	return fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
}

// clip keeps a provider's text short, and UTF-8, in our errors, the
// ledger and the reports (httpcall.Clip).
var clip = httpcall.Clip
