package wechatpay

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/settlekit/settle/internal/httpcall"
	"github.com/settlekit/settle/pipeline"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrNotFound: WeChat Pay said, in a signed answer, that the object
	// (an out_order_no, a transaction, a receiver) does not exist: HTTP 404
	// or one of Config.NotFoundCodes. An unsigned 404 (a proxy, a wrong
	// path) is never taken for it, because "not found" allows a resend.
	ErrNotFound = errors.New("not found")
	// ErrUnknownOutcome: a request that is not safe to resend blindly (a
	// distribution, an unfreeze, adding a receiver) may or may not have been
	// applied: no answer, an answer we cannot trust, or a server error.
	// Resolve it by query before anything is sent again (DESIGN section 3):
	// QueryOrder with the same out_order_no, or ReceiverResult for a
	// receiver (EnsureReceiver does it).
	ErrUnknownOutcome = errors.New("outcome unknown: resolve by query before sending again")
	// ErrSignature: an answer whose signature is missing where required,
	// made with an unknown platform key, or not verifying.
	ErrSignature = errors.New("bad signature")
	// ErrNotWeChat: an answer that is clearly not WeChat Pay's (neither
	// Wechatpay-Signature nor Wechatpay-Serial, or a Content-Type that is
	// not JSON: a proxy's page, say) where a signed one was due. It says
	// nothing of our keys: the call is treated as one whose answer never
	// arrived (a query is retried; a money request's outcome is unknown).
	ErrNotWeChat = errors.New("answer not from WeChat Pay")
	// ErrSignProbe: an answer whose Wechatpay-Signature starts with
	// SignProbePrefix, WeChat Pay's signature probe: it publishes that it
	// signs "a very few" answers and callbacks wrongly so, to check that
	// merchants verify signatures. The answer is not trusted, and it says
	// nothing of our keys: the call is treated as one whose answer never
	// arrived (a query is retried; a money request's outcome is unknown).
	ErrSignProbe = errors.New("WeChat Pay signature probe: answer not trusted")
	// ErrStale: a signed answer whose timestamp is MaxSkew or more away
	// from our clock.
	ErrStale = errors.New("stale signature")
	// ErrAnswer: a signed answer that does not say what the API documents.
	ErrAnswer = errors.New("malformed answer")
	// ErrBadKeys: a sub_mchid, transaction id or out_order_no WeChat Pay
	// cannot take (empty, too long, characters outside [0-9A-Za-z_-]),
	// refused before anything is sent: it concerns that transaction alone.
	ErrBadKeys = errors.New("keys WeChat Pay cannot take")
)

// Error codes WeChat Pay answers with an HTTP status. The ones marked
// assumed are not in the public documentation for the global
// funds-distribution API; the client makes them configurable and the fake
// answers them.
const (
	CodeSystemError      = "SYSTEM_ERROR"        // 500: retry with the same parameters
	CodeFrequencyLimited = "FREQUENCY_LIMITED"   // 429
	CodeParamError       = "PARAM_ERROR"         // 400
	CodeNoAuth           = "NO_AUTH"             // 403
	CodeSignError        = "SIGN_ERROR"          // 401: our signature refused
	CodeNotFound         = "RESOURCE_NOT_EXISTS" // 404 (assumed); see Config.NotFoundCodes
	CodeInvalidRequest   = "INVALID_REQUEST"     // 400 (assumed): a request the state forbids
	CodeNotEnough        = "NOT_ENOUGH"          // 400 (assumed): more than the unsplit amount
	CodeOrderNotReady    = "ORDER_NOT_READY"     // 400 (assumed): paid too recently; see Config.NotReadyCodes
)

// failure says how an attempt failed, which decides whether it is retried.
type failure int

const (
	failLocal     failure = iota // on our side, before sending: never retried
	failNotSent                  // the connection was never made: nothing sent
	failNoAnswer                 // sent, answer never (fully) arrived
	failHTTP                     // an error status without a usable {code, message}
	failCode                     // an error status with WeChat Pay's {code, message, detail}
	failBadAnswer                // an answer we cannot use (signature, format)
	failAccepted                 // HTTP 202: accepted, not processed yet; WeChat Pay asks for the same request again
)

// errAccepted is the cause of a signed HTTP 202 answer: WeChat Pay Global
// publishes 202 as "服务器已接受请求,但尚未处理 - 请使用原参数重复请求一遍"
// (accepted, not processed yet: send the same request again with the
// same parameters; pay.weixin.qq.com/doc/global/v3/zh/4012354972). It is
// no answer to read: a query is asked again, a request idempotent by
// out_order_no sent again as it is, and a money request whose calls all
// end so has an unknown outcome (it was accepted), resolved by its query.
var errAccepted = errors.New("accepted, not processed yet (HTTP 202): WeChat Pay asks for the same request again")

// Error is a failed call: which API, about what, and what WeChat Pay (or
// the network) said. Err is the cause: ErrNotFound, ErrUnknownOutcome
// (wrapping what happened), ErrSignature, ErrStale, ErrAnswer, a network
// error, or nil when Code says it all. It never holds key material or
// decrypted fields.
type Error struct {
	API        string        // e.g. "orders"; see the API constants
	Key        string        // the out_order_no, transaction, account or date the call was about
	HTTPStatus int           // the HTTP status of an error answer
	Code       string        // WeChat Pay's code, when it answered one
	Message    string        // WeChat Pay's message, or what went wrong
	Detail     string        // WeChat Pay's detail object, compact JSON, clipped
	RequestID  string        // WeChat Pay's Request-ID, for its support
	RetryAfter time.Duration // what a 429 or a 503 asked us to wait (httpcall.RetryAfter)
	Err        error

	kind     failure
	signed   bool     // the error answer was signed and verified
	notReady []string // Config.NotReadyCodes
}

// Error says which API and object failed, and how.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "wechatpay %s", e.API)
	if e.Key != "" {
		fmt.Fprintf(&b, " %s", e.Key)
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
	if e.Detail != "" {
		fmt.Fprintf(&b, " (detail %s)", e.Detail)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " [Request-ID %s]", e.RequestID)
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

// Is reports the error as pipeline.ErrNoAnswer when WeChat Pay gave no
// answer at all to the call's last attempt: no connection made, or no
// whole answer back within the attempt's timeout (the engine stops once
// its provider answers none of several requests in a row). An answer
// that says error is not one, nor one that is not WeChat Pay's
// (ErrNotWeChat: a proxy's page) or a signature probe: something
// answered.
func (e *Error) Is(target error) bool {
	return target == pipeline.ErrNoAnswer && (e.kind == failNotSent ||
		(e.kind == failNoAnswer && !errors.Is(e.Err, ErrNotWeChat) && !errors.Is(e.Err, ErrSignProbe)))
}

// Transient reports whether the same request may succeed later: a network
// failure, HTTP 429 or 5xx, or a "not distributable yet" code
// (Config.NotReadyCodes).
func (e *Error) Transient() bool {
	switch e.kind {
	case failNotSent, failNoAnswer, failAccepted:
		return true
	case failHTTP, failCode:
		return e.HTTPStatus == http.StatusTooManyRequests || e.HTTPStatus >= 500 || e.NotReady()
	}
	return false
}

// NotReady reports whether WeChat Pay answered that it cannot distribute
// the transaction yet: one of Config.NotReadyCodes.
func (e *Error) NotReady() bool {
	return e.kind == failCode && slices.Contains(e.notReady, e.Code)
}

// Refused reports whether WeChat Pay definitely refused the request: a
// signed 4xx answer other than 429 that is not Transient, nor a refusal of
// our credentials (401, which concerns every request, not this one), to a
// request no earlier attempt of which may have been applied (the call
// marks such an answer ErrUnknownOutcome: a resend after a 500 that WeChat
// Pay had applied may be refused, NOT_ENOUGH say, while its query does not
// know the order yet; taken as refused, the distribution was recorded
// failed and sent again under a new key). Nothing was applied.
func (e *Error) Refused() bool {
	return e.kind == failCode && e.signed && e.HTTPStatus >= 400 && e.HTTPStatus < 500 &&
		e.HTTPStatus != http.StatusUnauthorized && !e.Transient() && !errors.Is(e.Err, ErrUnknownOutcome)
}

// Unreadable reports whether WeChat Pay answered, with a valid signature,
// something we cannot read (ErrAnswer): it concerns the object asked
// about, not the connection.
func (e *Error) Unreadable() bool {
	return e.kind == failBadAnswer && errors.Is(e.Err, ErrAnswer)
}

// credentials says what of our configuration WeChat Pay's answer refused,
// or "": this machine's clock (an answer signed MaxSkew or more away from
// it, ErrStale: WeChat Pay refuses our requests' timestamps as far off, a
// 401 SIGN_ERROR that is no fault of the keys), our request signature
// (HTTP 401, SIGN_ERROR), or its answer, which carries WeChat Pay's
// signature headers and does not verify with the platform key we hold
// (or names one we do not hold: errUnknownSerial).
// Such an error is a configuration error (pipeline.KindUsage), never
// retried. An answer that is clearly not WeChat Pay's (ErrNotWeChat: a
// proxy's page) is not one: one glitch of a proxy stopped the run as
// "check the platform public key".
func (e *Error) credentials() string {
	switch {
	case errors.Is(e.Err, ErrStale):
		return "this machine's clock and WeChat Pay's are 5 minutes or more apart (clock skew: WeChat Pay refuses such requests, and we such answers); set the clock right (NTP), the keys are not at fault"
	case e.HTTPStatus == http.StatusUnauthorized:
		return "our request signature was refused (check --wechat-mchid, --wechat-serial and --wechat-private-key-file: our merchant API certificate changed at WeChat Pay?)"
	case errors.Is(e.Err, errUnknownSerial):
		return "its answer is signed with a platform key we do not hold (check --wechat-platform-serial; or WeChat Pay is rotating its platform certificate or public key: get the new one from WeChat Pay and add it with --wechat-platform-verify-file, keeping the current one)"
	case errors.Is(e.Err, ErrSignature):
		return "its answer does not verify with our platform key (check the platform public key or certificate, and its serial)"
	}
	return ""
}

// notTaken reports whether WeChat Pay certainly did not take the failed
// call, so that a money request moved nothing: nothing was sent (refused
// on our side before sending, or no connection made), or the last answer
// was HTTP 429 (FREQUENCY_LIMITED, "not processed") to a call whose
// earlier attempts were all retried as not processed. An error marked
// ErrUnknownOutcome - an attempt of the same call may have been applied
// (a SYSTEM_ERROR resent, say: do marks it) - is not.
func (e *Error) notTaken() bool {
	if errors.Is(e.Err, ErrUnknownOutcome) {
		return false
	}
	switch e.kind {
	case failLocal, failNotSent:
		return true
	case failHTTP, failCode:
		return e.HTTPStatus == http.StatusTooManyRequests
	}
	return false
}

// signRefused reports whether WeChat Pay refused our request's signature
// (HTTP 401 with its published code SIGN_ERROR: a merchant certificate
// changed at WeChat Pay, a wrong mchid or serial) to a call no earlier
// attempt of which may have been applied. WeChat Pay publishes that a
// request that carries no signature, or whose signature does not verify,
// is not executed and is answered 401 Unauthorized: a distribution or
// unfreeze so answered moved nothing. Not one: a 401 after an attempt that
// may have been applied (ErrUnknownOutcome: a SYSTEM_ERROR resent), a 401
// without WeChat Pay's code (not its published answer: a proxy's, say),
// and an answer we cannot verify or that is signed 5 minutes or more
// away from our clock (WeChat Pay signs its answer to a request whose
// signature it took: it may have executed it). Those stay unknown.
func (e *Error) signRefused() bool {
	return e.kind == failCode && e.HTTPStatus == http.StatusUnauthorized && e.Code == CodeSignError &&
		!errors.Is(e.Err, ErrUnknownOutcome)
}

// RefusedOurKey reports whether err is WeChat Pay refusing our request
// signature (HTTP 401, outside a clock skew): our merchant key, serial or
// mchid, not the request.
func RefusedOurKey(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.HTTPStatus == http.StatusUnauthorized && !errors.Is(e.Err, ErrStale)
}

// mayBeApplied reports whether a failed attempt may still have been
// processed: no answer, an answer we cannot trust, a server error, or
// HTTP 202 (accepted, not processed yet).
func (e *Error) mayBeApplied() bool {
	switch e.kind {
	case failNoAnswer, failBadAnswer, failAccepted:
		return true
	case failHTTP, failCode:
		return e.HTTPStatus >= 500
	}
	return false
}

// retryable reports whether the call may be sent again as it is. once
// marks a request that is not safe to resend blindly; keyed, one that
// WeChat Pay makes idempotent by out_order_no, so that its documented
// "SYSTEM_ERROR: retry with the same parameters" is safe to follow.
func (e *Error) retryable(once, keyed bool) bool {
	switch e.kind {
	case failNotSent:
		return true
	case failNoAnswer:
		return !once
	case failAccepted:
		return !once || keyed // "repeat with the same parameters": the same out_order_no is the same request
	case failHTTP, failCode:
		switch {
		case e.HTTPStatus == http.StatusTooManyRequests:
			return true // rate limited: not processed
		case e.HTTPStatus >= 500 && !once:
			return true
		case e.HTTPStatus >= 500:
			return keyed && e.signed && e.Code == CodeSystemError
		}
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
