// Package infiniapay is settle's client for Infinia Pay: account binding,
// the trade-details upload status, balances, sellers' available revenue
// share, revenue sharing (paying a seller from the platform's Infinia
// account) and its status, and the seller-status webhook.
//
// Every call is a POST of Infinia's encrypted and signed envelope
// (PROVIDERS.md): the business JSON encrypted with Infinia's RSA public key
// (RSAES-PKCS1-v1_5, in chunks), signed SHA256withRSA with our private key;
// answers are decrypted with our private key and, when signed, verified with
// Infinia's public key. Amounts are int64 minor units in Go and decimal
// strings in major units on the wire.
//
// Currency codes Infinia spells differently (CNY is CNH at Infinia) are
// mapped on the way out and back (Currencies); trade files are written and
// error files read in a Layout that is data, ours by default. Refused
// credentials (a signature or appId Infinia will not take) are errors of
// kind pipeline.KindUsage, never retried; Preflight finds them with one
// cheap call.
//
// Queries and requests that Infinia makes idempotent by requestNo are
// retried on transient failures. A revenue-sharing request whose answer
// never arrived is not: the error wraps ErrUnknownOutcome and the caller
// resolves it with RevenueShareStatus and the same requestNo (DESIGN
// section 3). RevenueShareSender plugs this into pipeline.ApplyEffect.
//
// The package is also Infinia Pay as a provider of a run (NewProvider):
// its upload stage (trade files built from the ledger, uploaded many at a
// time over one SFTP session, their statuses asked in paced waves), its
// distribute stage (revenue shares, intent first, on the effect engine),
// its matcher (revenue shares and available shares against the ledger)
// and its pre-flight, each against small interfaces declared here: Store
// and ReconcileStore, which the ledger implements, FileUploader, which
// load.SFTPSession implements, and API, which NewProvider implements over
// the Client; cmd only fills ProviderConfig.
package infiniapay

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/settlekit/settle/internal/httpcall"
	"github.com/settlekit/settle/pipeline"
)

// Paths are the API paths appended to Config.BaseURL. A zero field takes
// its default (DefaultPaths).
type Paths struct {
	BindAccount        string // default "v1/account-binding/request"
	BindingStatus      string // default "v1/account-binding/query" (assumed)
	UploadStatus       string // default "v1/trade-details/query" (assumed)
	Balance            string // default "v1/balance/query" (assumed)
	AvailableShare     string // default "v1/revenue-sharing/available" (assumed)
	RevenueShare       string // default "v1/revenue-sharing/request" (assumed)
	RevenueShareStatus string // default "v1/revenue-sharing/query"
}

// DefaultPaths returns the documented and assumed paths.
func DefaultPaths() Paths {
	return Paths{
		BindAccount:        "v1/account-binding/request",
		BindingStatus:      "v1/account-binding/query",
		UploadStatus:       "v1/trade-details/query",
		Balance:            "v1/balance/query",
		AvailableShare:     "v1/revenue-sharing/available",
		RevenueShare:       "v1/revenue-sharing/request",
		RevenueShareStatus: "v1/revenue-sharing/query",
	}
}

// WithDefaults returns p with every empty path set to its default.
func (p Paths) WithDefaults() Paths {
	d := DefaultPaths()
	for _, f := range []struct{ v, def *string }{
		{&p.BindAccount, &d.BindAccount}, {&p.BindingStatus, &d.BindingStatus},
		{&p.UploadStatus, &d.UploadStatus}, {&p.Balance, &d.Balance},
		{&p.AvailableShare, &d.AvailableShare}, {&p.RevenueShare, &d.RevenueShare},
		{&p.RevenueShareStatus, &d.RevenueShareStatus},
	} {
		if *f.v == "" {
			*f.v = *f.def
		}
	}
	return p
}

// Config configures a Client. Zero values take the defaults named.
type Config struct {
	BaseURL    string           // e.g. "https://uat-openapi.infiniax.com/api/"; paths are appended
	AppID      string           // our appId at Infinia
	PlatformID string           // our platform id, used in trade-detail file names
	OurKey     *rsa.PrivateKey  // signs requests, decrypts answers
	InfiniaKey *rsa.PublicKey   // encrypts requests, verifies answers
	Paths      Paths            // default DefaultPaths()
	HTTP       *http.Client     // required (see NewHTTPClient); never http.DefaultClient
	Timeout    time.Duration    // per attempt, answer read included; default 10s
	Limiter    *rate.Limiter    // token bucket shared by every call; nil = unlimited
	MaxRetries int              // retries after the first attempt; default 4, negative = none
	Now        func() time.Time // default time.Now; for Retry-After dates and backoff
	ChunkSize  int              // plaintext bytes per RSA block; default 64
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
	// NotFoundCodes are the codes meaning "no such requestNo/seller";
	// they map to ErrNotFound. Default ["BIZ-404"] (assumed).
	NotFoundCodes []string
	// RequireResponseSignature makes an unsigned answer an error. Infinia's
	// public documentation shows no response signature, so a missing one is
	// accepted by default; a present one is always verified. Turn this on
	// once Infinia confirms it signs every answer.
	RequireResponseSignature bool
	// Currencies maps the platform's currency codes to Infinia's (see
	// Currencies). Nil takes DefaultCurrencies (CNY -> CNH); an empty map
	// maps nothing.
	Currencies Currencies
	// Layout is the trade-file and error-file layout; the zero Layout is
	// DefaultLayout.
	Layout Layout
	// Statuses maps status words Infinia writes to the ones the client
	// knows (see Statuses); nil maps none.
	Statuses Statuses
	// PreflightCurrency is the currency of Preflight's balance query, the
	// platform's code (mapped by Currencies); default USD. One the account
	// holds: Infinia's refusal of it, for good, is taken for a refusal of
	// our requests (exit 2).
	PreflightCurrency pipeline.Currency
}

// Client calls Infinia Pay. It is safe for concurrent use.
type Client struct {
	cfg Config
}

// CloseIdleConnections closes the connections to Infinia Pay that the client's
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
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return nil, fmt.Errorf("infiniapay: base URL %s: want an http or https URL with a host", httpcall.ShowURL(cfg.BaseURL))
	case u.Scheme == "http" && !httpcall.Loopback(u.Hostname()):
		return nil, fmt.Errorf("infiniapay: base URL %s: plain http is for this machine only (the simulator): want https", httpcall.ShowURL(cfg.BaseURL))
	case cfg.AppID == "":
		return nil, errors.New("infiniapay: no appId")
	case cfg.OurKey == nil || cfg.InfiniaKey == nil:
		return nil, errors.New("infiniapay: both our private key and Infinia's public key are required")
	case cfg.HTTP == nil:
		return nil, errors.New("infiniapay: no HTTP client: make one with NewHTTPClient")
	}
	if !strings.HasSuffix(cfg.BaseURL, "/") {
		cfg.BaseURL += "/"
	}
	cfg.Paths = cfg.Paths.WithDefaults()
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
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	if max := cfg.InfiniaKey.Size() - 11; cfg.ChunkSize < 1 || cfg.ChunkSize > max {
		return nil, fmt.Errorf("infiniapay: chunk size %d outside 1..%d for Infinia's key", cfg.ChunkSize, max)
	}
	if cfg.Currencies == nil {
		cfg.Currencies = DefaultCurrencies()
	} else if err := cfg.Currencies.check(); err != nil {
		return nil, fmt.Errorf("infiniapay: %w", err)
	}
	if cfg.PreflightCurrency == "" {
		cfg.PreflightCurrency = "USD"
	}
	layout, err := cfg.Layout.WithDefaults()
	if err != nil {
		return nil, fmt.Errorf("infiniapay: %w", err)
	}
	cfg.Layout = layout
	if cfg.NotFoundCodes == nil {
		cfg.NotFoundCodes = []string{CodeNotFound}
	}
	return &Client{cfg: cfg}, nil
}

// NewHTTPClient returns an HTTP client for Infinia: its own transport
// (TLS 1.2 or later, pooled connections), the given overall timeout, and no
// redirects followed except for GETs (a POST that moves money is never
// replayed elsewhere).
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
			// Never down from https to plain http, nor to plain http off
			// this machine (the simulator's): a download's token and
			// content would travel in the clear.
			if via[0].Method != http.MethodGet || len(via) >= 5 ||
				req.URL.Scheme != "https" && (via[len(via)-1].URL.Scheme == "https" || !loopback(req.URL.Hostname())) {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}

// maxAnswer bounds what we read of an API answer.
const maxAnswer = 4 << 20

// spec describes one call for errors and retries.
type spec struct {
	api       string // the API's name in errors, e.g. "revenue-sharing/request"
	path      string
	requestNo string
	money     bool // an answer that never arrived is unknown, not retried
}

func (sp spec) fail(kind failure, err error) *Error {
	return &Error{API: sp.api, RequestNo: sp.requestNo, Err: err, kind: kind}
}

// call seals in, posts it with retries and opens the answer into out (nil:
// no answer data wanted).
// A request whose requestData would be longer than Infinia publishes
// (MaxRequestData) is not sent: the error wraps ErrTooLarge.
func (c *Client) call(ctx context.Context, sp spec, in, out any) error {
	if n, err := c.requestDataLen(in); err != nil || n > MaxRequestData {
		if err == nil {
			err = fmt.Errorf("%w: requestData of %d characters, Infinia takes at most %d: nothing sent", ErrTooLarge, n, MaxRequestData)
		}
		return sp.fail(failLocal, err)
	}
	body, err := Seal(c.cfg.AppID, in, c.cfg.InfiniaKey, c.cfg.OurKey, c.cfg.ChunkSize)
	if err != nil {
		return sp.fail(failLocal, err)
	}
	return c.do(ctx, sp, func(ctx context.Context) *Error { return c.post(ctx, sp, body, out) })
}

// requestDataLen returns the length of the requestData that in would be
// sent as (EncryptedLen of its JSON).
func (c *Client) requestDataLen(in any) (int, error) {
	plain, err := json.Marshal(in)
	if err != nil {
		return 0, fmt.Errorf("seal: %w", err)
	}
	return EncryptedLen(len(plain), c.cfg.InfiniaKey.Size(), c.cfg.ChunkSize), nil
}

// fits reports whether in would be sent: its requestData is no longer
// than Infinia publishes (MaxRequestData).
func (c *Client) fits(in any) bool {
	n, err := c.requestDataLen(in)
	return err == nil && n <= MaxRequestData
}

// do runs attempt under the rate limit and the per-attempt timeout, and
// retries what may be retried with exponential backoff (Retry-After
// honoured), at most MaxRetries times. A money request whose attempt may
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
		if sp.money && e.mayBeApplied() {
			e.Err = unknown(e.Err)
		}
		return e
	}
	judge := func(err error) httpcall.Verdict {
		e := err.(*Error)
		if sp.money && e.mayBeApplied() {
			return httpcall.Verdict{}
		}
		return httpcall.Verdict{Retry: e.retryable(sp.money), RetryAfter: e.RetryAfter, RateLimited: e.HTTPStatus == http.StatusTooManyRequests}
	}
	err := httpcall.Loop(ctx, httpcall.Policy{Timeout: c.cfg.Timeout, RetryBase: c.cfg.RetryBase, RetryMax: c.cfg.RetryMax,
		MaxRetries: c.cfg.MaxRetries, MaxRetryAfter: c.cfg.MaxRetryAfter, MaxRateLimited: c.cfg.MaxRateLimited, Now: c.cfg.Now}, before, once, judge)
	if errors.Is(err, ErrCredentials) {
		return pipeline.E(pipeline.KindUsage, "", err)
	}
	return err
}

// mayBeApplied reports whether a failed attempt may still have been
// processed by Infinia: no answer, an answer we cannot trust, a bare 5xx,
// or SYS-001 ("Database operation failed") or SYS-003 ("Internal server
// error"), which Infinia does not document as "not processed" (only
// SYS-008, "Service unavailable. Please try again later", says to send
// again): a money request that got one is resolved by its status query,
// never resent blindly.
func (e *Error) mayBeApplied() bool {
	return e.kind == failNoAnswer || e.kind == failBadAnswer || (e.kind == failHTTP && e.HTTPStatus >= 500) ||
		(e.kind == failCode && (e.Code == CodeDatabase || e.Code == CodeInternal))
}

func unknown(err error) error {
	if err == nil {
		return ErrUnknownOutcome
	}
	return fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
}

// post makes one attempt: the request, the whole answer, its envelope.
func (c *Client) post(ctx context.Context, sp spec, body []byte, out any) *Error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.BaseURL+strings.TrimPrefix(sp.path, "/"), bytes.NewReader(body))
	if err != nil {
		return sp.fail(failLocal, err)
	}
	if sp.money {
		httpcall.SendOnce(req) // never sent again by the transport itself
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Accept", "application/json")
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
		return sp.fail(failBadAnswer, fmt.Errorf("answer larger than %d bytes", maxAnswer))
	}
	return c.open(sp, resp, raw, out)
}

// open checks an answer: an envelope when there is one (signature first,
// then the code, then the data), else the HTTP status.
func (c *Client) open(sp spec, resp *http.Response, raw []byte, out any) *Error {
	var env ResponseEnvelope
	if err := json.Unmarshal(raw, &env); err != nil || env.Code == "" {
		if resp.StatusCode == http.StatusOK {
			return sp.fail(failBadAnswer, fmt.Errorf("%w: not a response envelope", ErrEnvelope))
		}
		e := sp.fail(failHTTP, nil)
		e.HTTPStatus = resp.StatusCode
		e.RetryAfter = httpcall.RetryAfter(resp, c.cfg.Now)
		if credentialRefusal("", "", resp.StatusCode) {
			e.Err = ErrCredentials
		}
		return e
	}
	if env.Signature != "" {
		if err := Verify(c.cfg.InfiniaKey, env.ResponseData, env.Signature); err != nil {
			return sp.fail(failBadAnswer, fmt.Errorf("answer: %w", err))
		}
	} else if c.cfg.RequireResponseSignature {
		return sp.fail(failBadAnswer, fmt.Errorf("answer: %w: missing", ErrSignature))
	}
	if env.Code != CodeSuccess {
		e := sp.fail(failCode, nil)
		e.Code, e.Message = env.Code, clip(env.Message)
		if resp.StatusCode != http.StatusOK {
			e.HTTPStatus = resp.StatusCode
		}
		if slices.Contains(c.cfg.NotFoundCodes, env.Code) {
			e.Err = ErrNotFound
		}
		if credentialRefusal(env.Code, env.Message, resp.StatusCode) {
			e.Err = ErrCredentials
		}
		e.RetryAfter = httpcall.RetryAfter(resp, c.cfg.Now)
		return e
	}
	if resp.StatusCode != http.StatusOK {
		return sp.fail(failBadAnswer, fmt.Errorf("%w: %s with HTTP %d", ErrEnvelope, CodeSuccess, resp.StatusCode))
	}
	if out == nil {
		return nil
	}
	if env.ResponseData == "" {
		return sp.fail(failBadAnswer, fmt.Errorf("%w: %s without responseData", ErrEnvelope, CodeSuccess))
	}
	plain, err := Decrypt(c.cfg.OurKey, env.ResponseData)
	if err != nil {
		return sp.fail(failBadAnswer, fmt.Errorf("%w: responseData: %w: %w", ErrEnvelope, errNotOurKey, err))
	}
	if err := json.Unmarshal(plain, out); err != nil {
		// Opened and verified: an answer about this request's subject
		// that cannot be used, that subject's alone (a malformed
		// envelope concerns every request: one seller's odd answer
		// stopped the stage for all; found by a review).
		return sp.fail(failBadAnswer, fmt.Errorf("%w: responseData: %s", ErrAnswer, httpcall.JSONProblem(err, "invalid JSON")))
	}
	return nil
}

// netFailure tells a connection that was never made (nothing sent) from
// one that broke after the request may have left.
func netFailure(err error) failure {
	if httpcall.NotSent(err) {
		return failNotSent
	}
	return failNoAnswer
}
