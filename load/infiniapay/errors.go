package infiniapay

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/settlekit/settle/internal/httpcall"
	"github.com/settlekit/settle/pipeline"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrNotFound: Infinia answered one of Config.NotFoundCodes, e.g. for a
	// requestNo it has never seen.
	ErrNotFound = errors.New("not found")
	// ErrUnknownOutcome: a money request may or may not have been applied
	// (no answer, or one we cannot trust). Resolve it by a status query with
	// the same requestNo, never by a blind resend (DESIGN section 3).
	ErrUnknownOutcome = errors.New("outcome unknown, resolve by status query")
	// ErrSignature: a signature is missing where one is required, or does
	// not verify.
	ErrSignature = errors.New("bad signature")
	// ErrEnvelope: an envelope that is not what the format says.
	ErrEnvelope = errors.New("malformed envelope")
	// ErrAnswer: an answer, opened and verified, about the request's
	// subject that cannot be used - a status this client does not know,
	// an answer about another seller, requestNo or currency, an amount
	// that does not parse. It concerns that subject alone (the stages
	// hold it for a person; the others go on). It wraps ErrEnvelope.
	ErrAnswer = fmt.Errorf("%w: an answer that cannot be used", ErrEnvelope)
	// ErrCredentials: Infinia refused our signature or appId (or answered
	// with a key we do not hold): a configuration error, never retried.
	// Errors wrapping it are of kind pipeline.KindUsage.
	// ErrTooLarge: a request whose requestData would be longer than
	// Infinia publishes (MaxRequestData); it was not sent.
	ErrTooLarge    = errors.New("request too large for Infinia")
	ErrCredentials = errors.New("refused credentials: check --infinia-app-id, our private key and Infinia's public key")
)

// errNotOurKey: an answer's data does not decrypt with our private key.
var errNotOurKey = errors.New("not encrypted for our key")

// credentialRefusal reports whether Infinia's answer refuses who we are.
// Infinia publishes no code of its own for that: a bad signature or appId
// is SYS-002 "invalid parameter" like any other, so its message decides;
// HTTP 401 and 403 say it without an envelope.
func credentialRefusal(code, message string, status int) bool {
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		return true
	}
	m := strings.ToLower(message)
	return code == CodeInvalidParameter && (strings.Contains(m, "signature") || strings.Contains(m, "appid") || strings.Contains(m, "app id"))
}

// Definite reports whether Infinia answered and refused the request for
// good: a code other than success that is not transient. Such a refusal
// concerns the request's subject (a seller, a file), not every call.
func (e *Error) Definite() bool {
	return e.kind == failCode && !TransientCode(e.Code)
}

// Codes Infinia answers in the response envelope.
const (
	CodeSuccess          = "SUC-200"
	CodeDatabase         = "SYS-001" // transient
	CodeInvalidParameter = "SYS-002"
	CodeInternal         = "SYS-003" // transient
	CodeMissingParameter = "SYS-004"
	CodeBadFormat        = "SYS-005"
	CodeOutOfRange       = "SYS-006"
	CodeTooLarge         = "SYS-007"
	CodeUnavailable      = "SYS-008" // transient: retry later
	CodeNotFound         = "BIZ-404" // assumed; see Config.NotFoundCodes
)

// TransientCode reports whether Infinia's code says a query may be sent
// again as it is. A money request is sent again only on SYS-008: after
// SYS-001 or SYS-003 its status is asked first (Error.mayBeApplied).
func TransientCode(code string) bool {
	return code == CodeDatabase || code == CodeInternal || code == CodeUnavailable
}

// RefusalCode reports whether code is one Infinia publishes as a refusal
// of the request itself (doc-7369157: invalid or missing parameter, bad
// format, out of range, payload too large): the request was not taken. A
// code Infinia does not publish says nothing of that.
func RefusalCode(code string) bool {
	switch code {
	case CodeInvalidParameter, CodeMissingParameter, CodeBadFormat, CodeOutOfRange, CodeTooLarge:
		return true
	}
	return false
}

// failure says how an attempt failed, which decides whether it is retried.
type failure int

const (
	failLocal     failure = iota // on our side, before sending: never retried
	failNotSent                  // the connection was never made: nothing sent
	failNoAnswer                 // sent, answer never (fully) arrived
	failHTTP                     // an HTTP status other than 200 without a usable envelope
	failCode                     // Infinia answered a code other than SUC-200
	failBadAnswer                // an answer we cannot use (signature, format)
)

// Error is a failed call: which API, which requestNo, and what Infinia (or
// the network) said. Err is the cause: ErrNotFound, ErrUnknownOutcome
// (wrapping the network error), ErrSignature, ErrEnvelope, a network error,
// or nil when Code says it all. It never holds key material or decrypted
// payloads.
type Error struct {
	API        string        // e.g. "revenue-sharing/request"
	RequestNo  string        // the requestNo of the call ("" for an error file)
	HTTPStatus int           // the HTTP status when it was not 200
	Code       string        // Infinia's code, when it answered one
	Message    string        // Infinia's message, or what went wrong
	RetryAfter time.Duration // what a 429 or a 503 asked us to wait (httpcall.RetryAfter)
	Err        error

	kind failure
}

// Error says which API and requestNo failed, and how.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "infiniapay %s", e.API)
	if e.RequestNo != "" {
		fmt.Fprintf(&b, " %s", e.RequestNo)
	}
	b.WriteString(":")
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, " HTTP %d", e.HTTPStatus)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, " %s", e.Message)
	}
	if e.Err != nil {
		if e.HTTPStatus != 0 || e.Code != "" || e.Message != "" {
			b.WriteString(":")
		}
		fmt.Fprintf(&b, " %v", e.Err)
	}
	return b.String()
}

// Unwrap returns the cause, for errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.Err }

// Is reports the error as pipeline.ErrNoAnswer when Infinia gave no
// answer at all to the call's last attempt: no connection made, or no
// whole answer back within the attempt's timeout (the engine stops once
// its provider answers none of several requests in a row). An answer
// that says error - a code, an HTTP status, an envelope we cannot use -
// is not one.
func (e *Error) Is(target error) bool {
	return target == pipeline.ErrNoAnswer && (e.kind == failNotSent || e.kind == failNoAnswer)
}

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

// notTaken reports whether the failed call was not taken by Infinia, so
// that a money request moved nothing: nothing was sent (on our side, or
// no connection made), or Infinia said to send it again later (HTTP 429,
// SYS-008) - the last attempt of a call whose earlier ones were all
// retried, which only such answers are. An outcome marked unknown is not.
func (e *Error) notTaken() bool {
	if errors.Is(e.Err, ErrUnknownOutcome) {
		return false
	}
	switch e.kind {
	case failLocal, failNotSent:
		return true
	case failHTTP:
		return e.HTTPStatus == http.StatusTooManyRequests
	case failCode:
		return e.Code == CodeUnavailable
	}
	return false
}

// retryable reports whether the call may be sent again as it is. A money
// request is resent only when Infinia (or its rate limiter, or a refused
// connection) says it was not processed; anything that may have been
// applied is left to a status query.
func (e *Error) retryable(money bool) bool {
	switch e.kind {
	case failNotSent:
		return true
	case failNoAnswer:
		return !money
	case failHTTP:
		if e.HTTPStatus == http.StatusTooManyRequests {
			return true
		}
		return !money && e.HTTPStatus >= 500
	case failCode:
		return TransientCode(e.Code)
	}
	return false
}

// clip keeps a provider's text short, and UTF-8, in our errors, the
// ledger and the reports (httpcall.Clip).
var clip = httpcall.Clip
