// Package payprotocol is settle's Pay Protocol provider: the client for Pay
// Protocol, the non-custodial crypto payment gateway, and what a run does
// with it (NewProvider): it verifies that each crypto payment was made
// before its order is paid (Verify: the payment detail query, never our
// database or the buyer's redirect alone) and reconciles the ledger's
// payments and refunds with Pay Protocol's (Matcher), watching too, from
// a nightly run, the orders of earlier dates rejected for a failed payment
// that a buyer may still pay late (Watcher). The client also
// follows refunds, lists them (RefundList: the merchant's refund orders, a
// page at a time, by creation time), creates payment and refund orders,
// asks for callbacks to be sent again, and receives callbacks
// (CallbackHandler).
//
// Every request carries X-PAY-KEY, X-PAY-TIMESTAMP and X-PAY-SIGN (Sign:
// HMAC-SHA256 with the API secret over timestamp + METHOD + requestPath +
// body). Answers are {code, msg, data}, code 200 for success; Pay Protocol
// does not sign them, so nothing in an answer is trusted beyond TLS:
// amounts are checked to be exact and the order in the answer to be the one
// asked for. Request amounts are decimal strings; so is an answer's
// quoteAmount, compared as a number (Payment.Quote: "313.5" and
// "313.500000" are the same price). Amounts in answers and callbacks are
// integers scaled by 10^decimals of the crypto currency, whose decimals
// no payment or refund answer gives: a refund names its currency by
// currencyId, and Pay Protocol's currency list of the chain (Currencies,
// read once per chain) gives its symbol and decimals, which
// Config.Decimals, when set, must agree with; the amounts are kept as
// written (big integers for refunds) and converted with ToMinor and
// FromMinor, exactly or not at all. An answer is read status first: a
// payment in progress needs nothing else.
//
// Queries (payment and refund detail, refund list) and the idempotent
// "send the callback again" calls are retried on transient failures. The
// create calls are not: a payment or refund order whose answer never
// arrived fails with ErrUnknownOutcome, and the caller resolves it with PaymentDetail or
// RefundDetail (DESIGN section 3). A refund order has no idempotency key at
// Pay Protocol, so a refund must never be sent again before RefundDetail by
// outTradeNo has said there is none.
//
// Refused credentials (401 or 403: the API key, the signature or the
// clock) concern every call: they are never retried and come back as a
// pipeline.KindUsage error (exit 2) naming Pay Protocol and what was
// refused; Preflight finds them before anything is sent.
//
// What is not public and therefore assumed (the README lists it, with the
// page it was looked for in):
//   - the codes in {code, msg, data} other than 200: 401 bad signature or
//     timestamp, 404 no such order or refund, 429 and 5xx transient
//     (Config.NotFoundCodes); the docs list HTTP 401, 403 and 404 without
//     a body, and a 404 with no body at all is taken as "not found" (one
//     with another body - a proxy's HTML page - or reached by a redirect
//     is not);
//   - that the currency list (GET /conf/list/currency) answers the
//     currencies of the chainId asked, and that a refund's currencyId is
//     one of them: a payment names its settlement currency by symbol
//     alone, a refund by currencyId alone (Currencies);
//   - with only outTradeNo, the refund detail answers the order's latest
//     refund; the refund order amount is in the payment's quote currency;
//   - the refund list's entries carry the refund detail's fields (the
//     page we read names chainId to refundAddress, then is cut off), in no
//     stated order, startTime and endTime both included: RefundList tells
//     entries apart by refundId and checks their count;
//   - which path a callback is signed over (the notify URL's path and
//     query is assumed; the batch job confirms every callback by a detail
//     query anyway);
//   - query values are signed percent-encoded, exactly as sent; order
//     numbers of unreserved characters ([A-Za-z0-9._~-]) avoid the
//     question.
package payprotocol

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/settlekit/settle/internal/httpcall"
	"github.com/settlekit/settle/pipeline"
)

// Config configures a Client. Zero values take the defaults named. Printed
// with fmt it hides APISecret.
type Config struct {
	// BaseURL is the API's base, "/api/mer" included:
	// "https://api.payprotocol.network/api/mer" (production) or
	// "https://api-sandbox.payprotocol.network/api/mer" (sandbox).
	BaseURL    string
	APIKey     string           // X-PAY-KEY
	APISecret  string           // HMAC key, read from a file by the caller; never logged or in errors
	HTTP       *http.Client     // required (see NewHTTPClient); never http.DefaultClient
	Timeout    time.Duration    // per attempt, answer read included; default 10s
	Limiter    *rate.Limiter    // token bucket shared by every call; nil = unlimited
	MaxRetries int              // retries after the first attempt; default 4, negative = none
	Now        func() time.Time // default time.Now; X-PAY-TIMESTAMP, backoff, Retry-After dates
	RetryBase  time.Duration    // first backoff interval; default 500ms
	RetryMax   time.Duration    // longest backoff interval; default 10s
	// MaxRetryAfter is the longest Retry-After we wait for; a 429 (or,
	// retrying a query, a 503) asking for more ends the call with the
	// error. Default 1 minute.
	MaxRetryAfter time.Duration
	// MaxRateLimited is how long in all a call waits out 429s (each
	// Retry-After, or RetryBase) before they spend its retries, so that a
	// provider whose rate limit is below ours slows a call rather than
	// failing it. Default 2 minutes; negative: never (429s spend retries,
	// as they do when MaxRetries is negative).
	MaxRateLimited time.Duration
	// NotFoundCodes are the codes meaning "no such order or refund"; they
	// map to ErrNotFound. Default [404] (assumed). An HTTP 404 with no
	// body at all is ErrNotFound too (the docs show none); one with a body
	// that is not {code, msg, data} (a proxy's HTML page) is not.
	NotFoundCodes []int
	// Decimals gives a crypto currency's decimals on a chain, keyed by
	// DecimalsKey(chainId, symbol) ("1:USDT": 6), as configured
	// (ParseDecimals reads the flag); a token's decimals differ from chain
	// to chain (USDT has 6 on Tron and Ethereum, 18 on BNB Chain). Pay
	// Protocol's payment and refund answers carry scaled integers and no
	// decimals; its currency list does, and a refund is read with the
	// list's: those set here must agree with them, or the refund is not
	// read (a disagreement is settle's configuration to correct, and the
	// caller holds the order). Optional: a currency not here is read with
	// the list's decimals alone.
	Decimals map[string]int
}

// String describes c without its secret, nor a password in its URL.
func (c Config) String() string {
	secret := ""
	if c.APISecret != "" {
		secret = "[redacted]"
	}
	return fmt.Sprintf("payprotocol.Config{BaseURL: %s, APIKey: %q, APISecret: %s, Timeout: %v, MaxRetries: %d}",
		httpcall.ShowURL(c.BaseURL), c.APIKey, secret, c.Timeout, c.MaxRetries)
}

// GoString is String, so that %#v hides the secret too.
func (c Config) GoString() string { return c.String() }

// Client calls Pay Protocol. It is safe for concurrent use.
type Client struct {
	cfg  Config
	base string // scheme, host and escaped base path, no trailing "/"
	// currencies keeps the currency list of each chain, read once
	// (Currencies).
	currencies currencyLists
}

// CloseIdleConnections closes the connections to Pay Protocol that the client's
// HTTP transport keeps open for reuse; one in use is left to its request,
// and the client stays usable (it dials again). A run's provider calls it
// as it ends (pipeline.Provider.Close): kept, they and their goroutines
// outlived the run by the transport's idle timeout, in a process that
// goes on (a test's, or settle demo's re-run).
func (c *Client) CloseIdleConnections() { c.cfg.HTTP.CloseIdleConnections() }

// New checks cfg, fills in its defaults and returns a Client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("payprotocol: base URL %s: want an http or https URL with a host and no query", httpcall.ShowURL(cfg.BaseURL))
	case u.Scheme == "http" && !httpcall.Loopback(u.Hostname()):
		return nil, fmt.Errorf("payprotocol: base URL %s: plain http is for this machine only (the simulator): want https", httpcall.ShowURL(cfg.BaseURL))
	case cfg.APIKey == "":
		return nil, errors.New("payprotocol: no API key")
	case cfg.APISecret == "":
		return nil, errors.New("payprotocol: no API secret")
	case cfg.HTTP == nil:
		return nil, errors.New("payprotocol: no HTTP client: make one with NewHTTPClient")
	}
	for k, d := range cfg.Decimals {
		if _, _, err := splitDecimalsKey(k); err != nil {
			return nil, fmt.Errorf("payprotocol: decimals: %w", err)
		}
		if d < 0 || d > MaxDecimals {
			return nil, fmt.Errorf("payprotocol: decimals of %s: %d outside 0..%d", k, d, MaxDecimals)
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Timeout, 10*time.Second)
	def(&cfg.RetryBase, 500*time.Millisecond)
	def(&cfg.RetryMax, 10*time.Second)
	def(&cfg.MaxRetryAfter, time.Minute)
	if cfg.MaxRateLimited == 0 {
		cfg.MaxRateLimited = 2 * time.Minute
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 4
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NotFoundCodes == nil {
		cfg.NotFoundCodes = []int{CodeNotFound}
	}
	base := u.Scheme + "://" + u.Host + strings.TrimSuffix(u.EscapedPath(), "/")
	return &Client{cfg: cfg, base: base}, nil
}

// NewHTTPClient returns an HTTP client for Pay Protocol: its own transport
// (TLS 1.2 or later, pooled connections), the given overall timeout, and no
// redirects followed except for GETs (a POST that creates an order is never
// replayed elsewhere), and those only on the same scheme and host: every
// request carries X-PAY-KEY and a signature in headers that Go's client
// copies to wherever a redirect points, plain http or another host too.
func NewHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if via[0].Method != http.MethodGet || len(via) >= 5 ||
				req.URL.Scheme != via[0].URL.Scheme || req.URL.Host != via[0].URL.Host {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}

// maxAnswer bounds what we read of an answer.
const maxAnswer = 4 << 20

// spec describes one call.
type spec struct {
	api        string // the API's name in errors and fault endpoints, e.g. "payment/detail"
	method     string
	query      string // GET: the query string as sent and signed, without "?"
	outTradeNo string
	refundID   string
	create     bool // an answer that never arrived is unknown, not retried
}

func (sp spec) fail(kind failure, err error) *Error {
	return &Error{API: sp.api, OutTradeNo: sp.outTradeNo, RefundID: sp.refundID, Err: err, kind: kind}
}

// call sends in (nil for a GET), with retries, and decodes the answer's
// data into out (nil: no data wanted).
func (c *Client) call(ctx context.Context, sp spec, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return sp.fail(failLocal, err)
		}
	}
	return c.do(ctx, sp, func(ctx context.Context) *Error { return c.attempt(ctx, sp, body, out) })
}

// do runs attempt under the rate limit and the per-attempt timeout, and
// retries what may be retried with exponential backoff (Retry-After
// honoured), at most MaxRetries times. A create request whose attempt may
// have been applied is never retried: its error is marked unknown, for a
// status query.
func (c *Client) do(ctx context.Context, sp spec, attempt func(context.Context) *Error) error {
	before := func(ctx context.Context) error {
		if err := ctx.Err(); err != nil {
			return sp.fail(failLocal, err) // nothing sent by this attempt
		}
		if err := httpcall.Turn(ctx, c.cfg.Limiter); err != nil {
			return sp.fail(failLocal, err)
		}
		return nil
	}
	once := func(ctx context.Context) error {
		e := attempt(ctx)
		if e == nil {
			return nil
		}
		if sp.create && e.mayBeApplied() {
			e.Err = unknown(e.Err)
		}
		return e
	}
	judge := func(err error) httpcall.Verdict {
		e := err.(*Error)
		if sp.create && e.mayBeApplied() {
			return httpcall.Verdict{}
		}
		return httpcall.Verdict{Retry: e.retryable(sp.create), RetryAfter: e.RetryAfter, RateLimited: e.HTTPStatus == http.StatusTooManyRequests}
	}
	err := httpcall.Loop(ctx, httpcall.Policy{Timeout: c.cfg.Timeout, RetryBase: c.cfg.RetryBase, RetryMax: c.cfg.RetryMax,
		MaxRetries: c.cfg.MaxRetries, MaxRetryAfter: c.cfg.MaxRetryAfter, MaxRateLimited: c.cfg.MaxRateLimited, Now: c.cfg.Now}, before, once, judge)
	return refused(err)
}

// refused turns refused credentials into a configuration error: one line
// naming Pay Protocol, what it refused and the flags to check, exit 2, the
// *Error still in the chain for errors.Is and errors.As. It stops every
// stage that meets it at the first refusal (a configuration error
// concerns every order): nothing more is asked, and the order refused is
// left as it was, asked about by the next run.
func refused(err error) error {
	var e *Error
	if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &e) {
		return err
	}
	if e.skewKnown && e.skew.Abs() > DefaultMaxSkew-skewMargin {
		return pipeline.Errorf(pipeline.KindUsage, "Pay Protocol", "refused our request: clock skew, this machine's clock is %v %s Pay Protocol's (its answer's Date header), and it refuses an X-PAY-TIMESTAMP more than %v off: set the clock right (NTP), the keys are not at fault: %w",
			e.skew.Abs().Round(time.Second), aheadOrBehind(e.skew), DefaultMaxSkew, e)
	}
	return pipeline.Errorf(pipeline.KindUsage, "Pay Protocol", "refused our credentials: check --payprotocol-api-key (X-PAY-KEY), --payprotocol-secret-file (the API secret that signs X-PAY-SIGN: revoked or rotated at Pay Protocol?) and the clock (X-PAY-TIMESTAMP): %w", e)
}

// skewMargin is how close to DefaultMaxSkew a clock difference read from
// a Date header (whole seconds, plus the request's travel) is taken as
// the reason a request was refused.
const skewMargin = 5 * time.Second

func aheadOrBehind(skew time.Duration) string {
	if skew < 0 {
		return "behind"
	}
	return "ahead of"
}

// preflightOrder is an order number no merchant has: Preflight asks for it.
const preflightOrder = "settle-preflight-no-such-order"

// Preflight makes two cheap authenticated calls before anything is sent:
// the chain list (GET /conf/list/chain, as Pay Protocol's own plugin calls
// it), which must exist, so that a wrong base URL is not taken for orders
// Pay Protocol does not know; then the payment detail of an order number
// that cannot exist, whose "not found" means the key and the signature
// were accepted. A wrong base URL and refused credentials come back as
// pipeline.KindUsage errors (exit 2) naming Pay Protocol and what is
// wrong; any other failure as it is.
func (c *Client) Preflight(ctx context.Context) error {
	var chains []json.RawMessage
	err := c.call(ctx, spec{api: APIChainList, method: http.MethodGet}, nil, &chains)
	var e *Error
	if errors.Is(err, ErrNotFound) || errors.As(err, &e) && e.HTTPStatus == http.StatusNotFound {
		return pipeline.Errorf(pipeline.KindUsage, "Pay Protocol", "%s/%s answers 404 Not Found: check the base URL (Pay Protocol's ends in /api/mer)", c.base, APIChainList)
	}
	if err != nil {
		return err
	}
	_, err = c.PaymentDetail(ctx, preflightOrder, "")
	if err == nil || errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// DecimalsKey is the Config.Decimals key of a currency on a chain:
// "<chainId>:<SYMBOL>".
func DecimalsKey(chainID int, symbol string) string {
	return strconv.Itoa(chainID) + ":" + symbol
}

// splitDecimalsKey reads a DecimalsKey. A key written otherwise than
// DecimalsKey writes it ("01:USDT", "+1:USDT", "1: USDT") is refused: it
// would never be looked up, and the currency would stay unconfigured.
func splitDecimalsKey(k string) (int, string, error) {
	c, sym, ok := strings.Cut(k, ":")
	id, err := strconv.Atoi(c)
	if !ok || err != nil || id <= 0 || c != strconv.Itoa(id) || sym == "" || strings.ToUpper(sym) != sym || strings.TrimSpace(sym) != sym {
		return 0, "", fmt.Errorf("%q: want <chainId>:<SYMBOL>, e.g. 1:USDT", clip(k))
	}
	return id, sym, nil
}

// ParseDecimals reads decimals per chain and symbol as configured:
// comma-separated <chainId>:<SYMBOL>=<decimals>, e.g. "1:USDT=6,3:USDT=18".
// Empty is none.
func ParseDecimals(s string) (map[string]int, error) {
	m := map[string]int{}
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		k, v, ok := strings.Cut(f, "=")
		d, err := strconv.Atoi(strings.TrimSpace(v))
		if !ok || err != nil || d < 0 || d > MaxDecimals {
			return nil, fmt.Errorf("decimals %q: want <chainId>:<SYMBOL>=<0..%d>", clip(f), MaxDecimals)
		}
		k = strings.TrimSpace(k)
		if _, _, err := splitDecimalsKey(k); err != nil {
			return nil, fmt.Errorf("decimals %w", err)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("decimals of %s given twice", k)
		}
		m[k] = d
	}
	return m, nil
}

// Decimals returns the configured decimals of symbol on chainID, and
// whether there are any. Without them a scaled amount cannot be read, and
// is never guessed.
func (c *Client) Decimals(chainID int, symbol string) (int, bool) {
	d, ok := c.cfg.Decimals[DecimalsKey(chainID, symbol)]
	return d, ok
}

// attempt makes one signed request and reads the whole answer. Each
// attempt is signed anew, so a retry after a long wait is not refused for
// an old timestamp.
func (c *Client) attempt(ctx context.Context, sp spec, body []byte, out any) *Error {
	target := c.base + "/" + sp.api
	if sp.query != "" {
		target += "?" + sp.query
	}
	var rd io.Reader
	if sp.method != http.MethodGet {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, sp.method, target, rd)
	if err != nil {
		return sp.fail(failLocal, err)
	}
	if sp.method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	signed := c.cfg.Now()
	SignRequest(req, c.cfg.APIKey, c.cfg.APISecret, signed, body)
	if sp.create {
		httpcall.SendOnce(req) // never sent again by the transport itself
	}
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		return sp.fail(netFailure(err), err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return sp.fail(failNoAnswer, fmt.Errorf("reading the answer: %w", err))
	}
	if len(raw) > maxAnswer {
		return sp.fail(failBadAnswer, fmt.Errorf("%w: larger than %d bytes", ErrAnswer, maxAnswer))
	}
	e := c.open(sp, resp, raw, out)
	if e != nil && errors.Is(e, ErrUnauthorized) {
		e.skew, e.skewKnown = clockSkew(resp.Header, signed)
	}
	return e
}

// clockSkew is how far our clock (signed: when the request was signed)
// is ahead of the answering server's, by its Date header (1 s
// resolution, plus the request's travel); false without a Date header.
func clockSkew(h http.Header, signed time.Time) (time.Duration, bool) {
	at, err := http.ParseTime(h.Get("Date"))
	if err != nil {
		return 0, false
	}
	return signed.Sub(at), true
}

// answer is Pay Protocol's reply to every call.
type answer struct {
	Code        *flexInt        `json:"code"`
	Msg         string          `json:"msg"`
	Description string          `json:"description"`
	Data        json.RawMessage `json:"data"`
}

// open checks an answer: its code when it has one, else the HTTP status;
// then the data.
func (c *Client) open(sp spec, resp *http.Response, raw []byte, out any) *Error {
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil || a.Code == nil {
		if resp.StatusCode == http.StatusOK {
			return sp.fail(failBadAnswer, fmt.Errorf("%w: not {code, msg, data}", ErrAnswer))
		}
		e := sp.fail(failHTTP, nil)
		e.HTTPStatus = resp.StatusCode
		e.RetryAfter = httpcall.RetryAfter(resp, c.cfg.Now)
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			e.Err = ErrUnauthorized
		case http.StatusNotFound:
			// The docs list 404 "Not Found" with no body: a bare 404 is
			// "not found" too. A 404 with a body that is not {code, msg,
			// data} (a proxy's or load balancer's HTML page), or one of
			// a URL a redirect led to, is not Pay Protocol's word on the
			// order: taken for it, a passing fault rejected a paid order
			// for good as a payment Pay Protocol does not know (found by
			// a review of the transport).
			if notFoundPage(resp, raw) {
				e.Err = ErrNotFound
			}
		}
		return e
	}
	if code := int(*a.Code); code != CodeSuccess {
		e := sp.fail(failCode, nil)
		e.Code, e.Message = code, clip(strings.TrimSpace(a.Msg+" "+a.Description))
		if resp.StatusCode != http.StatusOK {
			e.HTTPStatus = resp.StatusCode
		}
		switch {
		case slices.Contains(c.cfg.NotFoundCodes, code):
			e.Err = ErrNotFound
		case code == CodeUnauthorized || code == CodeForbidden:
			e.Err = ErrUnauthorized
		}
		e.RetryAfter = httpcall.RetryAfter(resp, c.cfg.Now)
		return e
	}
	if resp.StatusCode != http.StatusOK {
		return sp.fail(failBadAnswer, fmt.Errorf("%w: code 200 with HTTP %d", ErrAnswer, resp.StatusCode))
	}
	if out == nil {
		return nil
	}
	if len(a.Data) == 0 || string(a.Data) == "null" {
		return sp.fail(failBadAnswer, fmt.Errorf("%w: code 200 without data", ErrAnswer))
	}
	if err := json.Unmarshal(a.Data, out); err != nil {
		return sp.fail(failBadAnswer, fmt.Errorf("%w: data: %s", ErrAnswer, httpcall.JSONProblem(err, clip(err.Error()))))
	}
	return nil
}

// notFoundPage reports whether a 404 without {code, msg, data} is Pay
// Protocol's documented bare "Not Found": no body, and an answer to the
// URL asked for, not one a redirect led to.
func notFoundPage(resp *http.Response, raw []byte) bool {
	redirected := resp.Request != nil && resp.Request.Response != nil
	return !redirected && len(bytes.TrimSpace(raw)) == 0
}

// netFailure tells a connection that was never made (nothing sent) from
// one that broke after the request may have left.
func netFailure(err error) failure {
	if httpcall.NotSent(err) {
		return failNotSent
	}
	return failNoAnswer
}
