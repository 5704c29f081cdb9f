// Package wechatpay is WeChat Pay Global as a provider of settle
// (NewProvider): the checks that run beside the upload stage and record
// each transaction's request as an intent (PrepareStage), the distribute
// stage that settles each WeChat transaction (DistributeStage), the matcher that compares WeChat Pay's word with the
// ledger's (Matcher), the Adapter between them and the Client, and the
// Client itself.
//
// The Client speaks WeChat Pay Global's cross-border funds distribution
// (API v3, host apihk.mch.weixin.qq.com):
// marking an order for distribution, requesting a distribution and
// unfreezing the rest for the seller, their results, a transaction's
// unsplit amount, receivers (add, review result, delete), the distribution
// bill, and the sub-merchant's fund settlement details.
//
// Every request is signed with the merchant's API private key (the
// WECHATPAY2-SHA256-RSA2048 Authorization header) and names in
// Wechatpay-Serial the platform key WeChat Pay is to sign its answer with;
// every answer's signature is verified with the platform key named by its
// Wechatpay-Serial header; an answer signed 5 minutes or more away from our
// clock is refused. Refused credentials (HTTP 401) and answers our platform
// key cannot verify are configuration errors (pipeline.KindUsage);
// Preflight finds them with one cheap query. Receiver names are encrypted
// with RSA-OAEP (SHA-1) under a platform key. Amounts are int64 minor
// units, as on the wire. Bills are unsigned files, downloaded over HTTPS
// from WeChat Pay's hosts only and checked by their own summary lines.
//
// Queries and requests that are safe to repeat are retried on transient
// failures (network, HTTP 429, 5xx), under a token-bucket rate limit. A
// distribution or unfreeze whose answer never arrived is not: the error
// wraps ErrUnknownOutcome and the caller resolves it with QueryOrder and
// the same out_order_no (DESIGN section 3); a receiver add, with the
// receiver result query (EnsureReceiver). DistributionSender plugs this
// into pipeline.ApplyEffect.
package wechatpay

import (
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/settlekit/settle/internal/httpcall"
)

// DefaultBaseURL is WeChat Pay Global's API host for merchants outside
// mainland China.
const DefaultBaseURL = "https://apihk.mch.weixin.qq.com"

// API paths below the base URL.
const (
	distributionPrefix = "/v3/global/profit-sharing/"
	settlementsPath    = "/v3/global/settle/settlements"
)

// Config configures a Client. Zero values take the defaults named.
type Config struct {
	BaseURL    string          // default DefaultBaseURL; a path prefix is kept (for a fake)
	MchID      string          // our merchant (service provider or institution) id
	SerialNo   string          // serial number of our merchant API certificate
	PrivateKey *rsa.PrivateKey // our merchant API private key: signs requests
	// PlatformKeys are WeChat Pay's platform public keys by serial (a
	// platform certificate's serial or a "PUB_KEY_ID_..." public key id):
	// answers are verified with the one their Wechatpay-Serial names.
	PlatformKeys map[string]*rsa.PublicKey
	// EncryptSerial names the platform key that encrypts receiver names
	// and that every request names in its Wechatpay-Serial header (while a
	// merchant moves from platform certificates to a platform public key,
	// WeChat Pay signs each answer with the key the request names). It may
	// be empty when PlatformKeys holds exactly one key.
	EncryptSerial string
	HTTP          *http.Client  // required (see NewHTTPClient); never http.DefaultClient
	Timeout       time.Duration // per attempt, answer read included; default 10s
	// Limiter is a token bucket shared by every call (WeChat Pay's limit per
	// service provider); nil = unlimited.
	Limiter *rate.Limiter
	// SubMerchantLimit is the rate of calls per sub_mchid (WeChat Pay's
	// limit per sub-merchant), with SubMerchantBurst (default 1); 0 = no
	// limit per sub-merchant.
	SubMerchantLimit rate.Limit
	SubMerchantBurst int
	MaxRetries       int              // retries after the first attempt; default 4, negative = none
	Now              func() time.Time // default time.Now: signing timestamps, answer skew, backoff
	Nonce            func() string    // default NewNonce; [0-9A-Za-z_-], at most 32 characters
	RetryBase        time.Duration    // first backoff interval; default 500ms
	RetryMax         time.Duration    // longest backoff interval; default 10s
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
	// NotFoundCodes are the codes meaning "no such object" besides HTTP
	// 404; they map to ErrNotFound. Default ["RESOURCE_NOT_EXISTS"] (assumed).
	NotFoundCodes []string
	// NotReadyCodes are the codes meaning "not distributable yet" (a
	// transaction paid minutes ago); such errors are Transient but not
	// retried within a call. Default ["ORDER_NOT_READY"] (assumed).
	NotReadyCodes []string
	// SettlementPageSize is the limit asked per page of settlement details;
	// default 10, at most MaxSettlementLimit.
	SettlementPageSize int
	// MaxBillBytes bounds a downloaded bill; default 64 MiB.
	MaxBillBytes int64
	// BillHosts are the host names (and the domains below them) a bill may
	// be downloaded from, over HTTPS only; default DefaultBillHosts. The
	// API host itself is always allowed.
	BillHosts []string
}

// DefaultBillHosts are WeChat Pay's domains: the download URL of a bill may
// name another WeChat Pay host than the API's (the published example is on
// api.mch.weixin.qq.com).
var DefaultBillHosts = []string{"weixin.qq.com"}

// Client calls WeChat Pay Global. It is safe for concurrent use.
type Client struct {
	cfg    Config
	base   *url.URL
	encKey *rsa.PublicKey

	mu      sync.Mutex
	subs    map[string]*rate.Limiter // sub_mchid -> its bucket, while not full (waitSub)
	sweepAt int                      // len(subs) at which waitSub next drops the full buckets
}

// CloseIdleConnections closes the connections to WeChat Pay that the client's
// HTTP transport keeps open for reuse; one in use is left to its request,
// and the client stays usable (it dials again). A run's provider calls it
// as it ends (pipeline.Provider.Close): kept, they and their goroutines
// outlived the run by the transport's idle timeout, in a process that
// goes on (a test's, or settle demo's re-run).
func (c *Client) CloseIdleConnections() { c.cfg.HTTP.CloseIdleConnections() }

// New checks cfg, fills in its defaults and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(strings.TrimSuffix(cfg.BaseURL, "/"))
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "":
		return nil, fmt.Errorf("wechatpay: base URL %s: want an http or https URL with a host and no query", httpcall.ShowURL(cfg.BaseURL))
	case u.Scheme == "http" && !httpcall.Loopback(u.Hostname()):
		return nil, fmt.Errorf("wechatpay: base URL %s: plain http is for this machine only (the simulator): want https", httpcall.ShowURL(cfg.BaseURL))
	case !tokenChars(cfg.MchID) || !tokenChars(cfg.SerialNo):
		return nil, errors.New("wechatpay: a merchant id and our certificate serial ([0-9A-Za-z_-]) are required")
	case cfg.PrivateKey == nil:
		return nil, errors.New("wechatpay: no merchant API private key")
	case len(cfg.PlatformKeys) == 0:
		return nil, errors.New("wechatpay: no platform public key to verify answers with")
	case cfg.HTTP == nil:
		return nil, errors.New("wechatpay: no HTTP client: make one with NewHTTPClient")
	}
	c := &Client{base: u, subs: map[string]*rate.Limiter{}, sweepAt: subSweepFrom}
	cfg.PlatformKeys = maps.Clone(cfg.PlatformKeys)
	if cfg.EncryptSerial == "" && len(cfg.PlatformKeys) == 1 {
		for serial := range cfg.PlatformKeys {
			cfg.EncryptSerial = serial
		}
	}
	if cfg.EncryptSerial == "" {
		return nil, errors.New("wechatpay: several platform keys: name the one requests carry in Wechatpay-Serial (EncryptSerial)")
	}
	if c.encKey = cfg.PlatformKeys[cfg.EncryptSerial]; c.encKey == nil {
		return nil, fmt.Errorf("wechatpay: encrypt serial %q is not among the platform keys", cfg.EncryptSerial)
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
	if cfg.Nonce == nil {
		cfg.Nonce = NewNonce
	}
	if cfg.SubMerchantBurst <= 0 {
		cfg.SubMerchantBurst = 1
	}
	if cfg.NotFoundCodes == nil {
		cfg.NotFoundCodes = []string{CodeNotFound}
	}
	if cfg.NotReadyCodes == nil {
		cfg.NotReadyCodes = []string{CodeOrderNotReady}
	}
	if cfg.SettlementPageSize <= 0 {
		cfg.SettlementPageSize = 10
	}
	if cfg.SettlementPageSize > MaxSettlementLimit {
		return nil, fmt.Errorf("wechatpay: settlement page size %d: WeChat Pay returns at most %d", cfg.SettlementPageSize, MaxSettlementLimit)
	}
	if cfg.MaxBillBytes <= 0 {
		cfg.MaxBillBytes = 64 << 20
	}
	if cfg.BillHosts == nil {
		cfg.BillHosts = DefaultBillHosts
	}
	c.cfg = cfg
	return c, nil
}

// NewHTTPClient returns an HTTP client for WeChat Pay: its own transport
// (TLS 1.2 or later, pooled connections), the given overall timeout, and no
// redirects followed (a redirected request would need a new signature, and
// a request that moves money is never replayed elsewhere).
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
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
