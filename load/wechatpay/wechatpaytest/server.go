// Package wechatpaytest is a stateful fake WeChat Pay Global
// funds-distribution API, simulated: an http.Handler speaking API v3 (it
// checks our Authorization signature with the merchant's public key and
// signs every answer with the platform private key, naming it in
// Wechatpay-Serial), with transactions whose funds are frozen per
// sub-merchant, receivers under review, idempotent distribution and
// unfreeze requests that go PROCESSING -> FINISHED over a few polls, the
// maximum distribution ratio and request count per transaction, QPS limits
// per service provider and per sub-merchant, bills and settlement details
// consistent with what was distributed (unless a test tampers with what
// WeChat reports: ForgetOrder, SetReportedAmount; or refuses a transaction
// outright: Poison), the faults of internal/fault, and when asked its
// timing model (Options.Latency, OrderDelay; off by default).
//
// Where WeChat Pay's behaviour is not public, the fake follows the
// assumptions of PROVIDERS.md and the wechatpay package: 404
// RESOURCE_NOT_EXISTS for unknown objects; 400 INVALID_REQUEST for a
// request (a distribution, an unfreeze, their query, the remaining
// amount) naming a transaction under another sub-merchant than its own
// (the closest published answer: see otherSubMerchant); 400 ORDER_NOT_READY for a
// transaction not yet distributable; 400 PARAM_ERROR above the maximum
// ratio; 400 NOT_ENOUGH above the unsplit amount; 400 INVALID_REQUEST for
// a 51st request on a transaction, a reused out_order_no with other
// parameters, or adding a receiver that is INIT or EFFECTIVE (one whose
// review failed is added again, as published); a receiver that is not EFFECTIVE
// is paid nothing (its line is CLOSED with NO_RELATION). Funds are
// distributed in CNY only, as published (receivers[].currency "CNY
// today"): a receiver line in another currency is refused 400 PARAM_ERROR,
// and a transaction is held in CNY fen whatever it was paid in (at a rate
// of 1: the fake does not model WeChat Pay's exchange rate), so its unsplit
// amount, its order lines (settlement rate 1), bills and settlement details
// are CNY. As published, what is left to distribute of a transaction is
// its amount less WeChat Pay's fee (Options.FeeBps; none by default). As
// published, a sub_mchid or transaction_id longer than 32
// characters, an out_order_no longer than 64, a description longer than
// 80, a receiver added with a relation_type WeChat Pay does not publish or
// a custom_relation longer than 10 characters, or a settlement page of
// more than 30 is refused 400 PARAM_ERROR, and
// what is still frozen of a transaction goes to the seller
// wechatpay.FreezeWindow (180 days) after it was paid (SetPaidAt;
// AddTransaction: now). The outcome of a
// request is decided when it is accepted and shown after the polls; so are
// its bill lines and settlement details.
//
// Fault endpoints are the wechatpay API names: "transactions/mark",
// "orders", "orders/unfreeze", "orders/query", "amounts", "receivers",
// "receivers/query", "receivers/delete", "bill-download-url", "bill" and
// "settlements". ServerError answers 500 SYSTEM_ERROR, Unavailable 503
// SYSTEM_ERROR, TooMany 429 FREQUENCY_LIMITED with Retry-After (nothing
// applied); Reset drops the connection before, Lost after applying; Stuck
// keeps an order PROCESSING for Fault.Polls more queries.
package wechatpaytest

import (
	"crypto/rsa"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/wechatpay"
)

// Options configure a Server. Zero values take the defaults named.
type Options struct {
	Keys   Keys            // required
	MchID  string          // when set, requests signed for another merchant id are refused
	Faults *fault.Injector // see the package documentation for endpoint names
	// Polls is how many order queries answer PROCESSING before FINISHED.
	// Default 2; negative: FINISHED at once.
	Polls int
	// SettlementShift starts every settlement page after the first that
	// many details early: the page repeats the previous page's last
	// details, as a list that moved between two offset pages would (its
	// total_count unchanged: the last details of a list longer than the
	// pages read are not reached).
	SettlementShift int
	// ReviewPolls is how many receiver result queries answer INIT before
	// EFFECTIVE. Default 1; negative: EFFECTIVE when added.
	ReviewPolls int
	// ReadyAfter is how long after AddTransaction a transaction becomes
	// distributable (WeChat Pay needs a few minutes). Default 0: at once;
	// negative: only after SetReady.
	ReadyAfter time.Duration
	// MaxRatio caps what a transaction may distribute, in basis points of
	// its amount. Default 3000 (30%, assumed).
	MaxRatio int
	// FeeBps is WeChat Pay's acquiring fee, in basis points of a
	// transaction's amount (default 0: none). As published (查询订单剩余可退款
	// 金额, chapter4_1_12: an order of 100 CNY at 1% leaves 99 to
	// distribute), what is left to distribute of a transaction is its
	// amount less the fee, and a refund takes its share of the fee back
	// with it; the ratio cap stays on the order amount. The fee is
	// floor(amount * FeeBps / 10000): WeChat Pay's rounding is not
	// published.
	FeeBps int
	// MaxRequests is how many distribution and unfreeze requests a
	// transaction accepts. Default 50.
	MaxRequests int
	// ProviderQPS and SubMerchantQPS are the token buckets (rate per second
	// and burst) for all requests and for each sub_mchid. Defaults 300 and
	// 30; negative: unlimited. They run on LimitClock.
	ProviderQPS    int
	SubMerchantQPS int
	// LimitClock is the QPS buckets' clock: default time.Now, the real
	// clock the client's own limiter keeps to (not Now, which tests set
	// to a test clock). A test fixes it to see a burst refused exactly,
	// however slowly the machine serves it.
	LimitClock func() time.Time
	// Latency is waited before every answer, and OrderDelay keeps a
	// distribution or unfreeze PROCESSING until that long after it was
	// accepted (on Now), besides the Polls: the timing model of
	// internal/fault, off by default.
	Latency    time.Duration
	OrderDelay time.Duration
	// Now is the fake's clock: answer timestamps, the request skew check,
	// readiness, order and bill times. Default time.Now.
	Now func() time.Time
	// Memory, simulated (WeChat Pay publishes no retention for its order
	// query): when above 0, a distribution or unfreeze accepted longer
	// than Memory ago (on Now) is forgotten - its query answers not
	// found, and its out_order_no sent again is taken as a new request
	// (whatever the transaction still holds). 0: remembered for ever.
	Memory time.Duration
	// BaseURL is the fake's public URL, for bill download links. Empty:
	// derived from each request's Host and path.
	BaseURL string
	// BillBaseURL, when set, is the URL of the host bill download links
	// point at (WeChat Pay may serve bills from another host than the
	// API's); serve the same Server there, e.g. with httptest.NewTLSServer.
	BillBaseURL string
}

// Server is the fake. It is safe for concurrent use.
type Server struct {
	o        Options
	provider *rate.Limiter
	// merchant is the public key of our merchant API certificate WeChat
	// Pay holds now (Options.Keys.MerchantPrivate's until
	// RegisterMerchantKey).
	merchant atomic.Pointer[rsa.PublicKey]

	mu        sync.Mutex
	calls     map[string]int
	count429  int
	noSerial  int
	poisoned  map[string]string // transaction id -> code refusing it
	probes    map[string]int    // endpoint -> answers still to sign as a signature probe
	subs      map[string]*rate.Limiter
	txns      map[string]*txn
	orders    map[string]map[string]*order // sub_mchid -> out_order_no -> order: a bill reads its sub-merchant's only
	receivers map[string]*receiver
	failing   map[string]string // account -> fail_reason
	marks     map[string]bool
	batches   []*batch
	bills     map[string]billFile // token -> file
	seq       int
}

// call is one API request.
type call struct {
	r     *http.Request
	body  []byte
	path  string // below /v3/global/profit-sharing/ (or "settle/settlements")
	query url.Values
	fault fault.Fault
	base  string // the fake's URL up to /v3/
}

// reply is what a handler answers: an HTTP status and a JSON body (nil:
// none), or a raw unsigned file.
type reply struct {
	status int
	body   any
	file   []byte
	after  time.Duration // Retry-After
	probe  bool          // signed as WeChat Pay's signature probe (ProbeSignatures)
}

func ok(body any) reply { return reply{status: http.StatusOK, body: body} }

func refuse(status int, code, message string) reply {
	return reply{status: status, body: map[string]string{"code": code, "message": message}}
}

func notFound(what string) reply {
	return refuse(http.StatusNotFound, wechatpay.CodeNotFound, what+" does not exist")
}

func paramError(message string) reply {
	return refuse(http.StatusBadRequest, wechatpay.CodeParamError, message)
}

// New returns a fake WeChat Pay. It panics when Options.Keys is incomplete,
// like a misconfigured test would.
func New(o Options) *Server {
	if o.Keys.MerchantPrivate == nil || o.Keys.PlatformPrivate == nil || o.Keys.MerchantSerial == "" || o.Keys.PlatformSerial == "" {
		panic("wechatpaytest: Options.Keys needs both private keys and both serials")
	}
	switch {
	case o.Polls == 0:
		o.Polls = 2
	case o.Polls < 0:
		o.Polls = 0
	}
	switch {
	case o.ReviewPolls == 0:
		o.ReviewPolls = 1
	case o.ReviewPolls < 0:
		o.ReviewPolls = -1
	}
	if o.MaxRatio <= 0 {
		o.MaxRatio = 3000
	}
	o.FeeBps = min(max(o.FeeBps, 0), 10000)
	if o.MaxRequests <= 0 {
		o.MaxRequests = 50
	}
	if o.ProviderQPS == 0 {
		o.ProviderQPS = 300
	}
	if o.SubMerchantQPS == 0 {
		o.SubMerchantQPS = 30
	}
	if o.LimitClock == nil {
		o.LimitClock = time.Now
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, calls: map[string]int{}, subs: map[string]*rate.Limiter{}, txns: map[string]*txn{},
		orders: map[string]map[string]*order{}, receivers: map[string]*receiver{}, failing: map[string]string{},
		marks: map[string]bool{}, bills: map[string]billFile{}, poisoned: map[string]string{}, probes: map[string]int{}}
	if o.ProviderQPS > 0 {
		s.provider = rate.NewLimiter(rate.Limit(o.ProviderQPS), o.ProviderQPS)
	}
	s.merchant.Store(&o.Keys.MerchantPrivate.PublicKey)
	return s
}

// RegisterMerchantKey replaces the public key of our merchant API
// certificate WeChat Pay holds, as a certificate changed at WeChat Pay
// does: from now on a request signed with another key is refused (HTTP
// 401 SIGN_ERROR, "signature does not verify"), before anything else.
func (s *Server) RegisterMerchantKey(pub *rsa.PublicKey) { s.merchant.Store(pub) }

// mchID is the service provider's merchant id: Options.MchID or the
// default of ClientConfig.
func (s *Server) mchID() string {
	if s.o.MchID != "" {
		return s.o.MchID
	}
	return "1900000100"
}

// Calls reports how many HTTP requests reached endpoint (e.g. "orders"),
// faulted and refused ones included.
func (s *Server) Calls(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[endpoint]
}

// WithoutSerial reports how many authenticated requests named no platform
// key in Wechatpay-Serial.
func (s *Server) WithoutSerial() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.noSerial
}

// CallCounts reports how many HTTP requests reached each endpoint.
func (s *Server) CallCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// Count429 reports how many 429 FREQUENCY_LIMITED answers the fake gave:
// its QPS limits and TooMany faults.
func (s *Server) Count429() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count429
}

// route names the endpoint and handler of a request, or "" when there is
// none.
func route(method, path string) (string, func(*Server, call) reply) {
	switch {
	case path == "settle/settlements" && method == http.MethodGet:
		return wechatpay.APISettlements, (*Server).settlements
	case path == "transactions/mark" && method == http.MethodPost:
		return wechatpay.APIMark, (*Server).mark
	case path == "orders" && method == http.MethodPost:
		return wechatpay.APIOrders, (*Server).distribute
	case path == "orders/unfreeze" && method == http.MethodPost:
		return wechatpay.APIUnfreeze, (*Server).unfreeze
	case strings.HasPrefix(path, "orders/") && method == http.MethodGet:
		return wechatpay.APIQueryOrder, (*Server).queryOrder
	case strings.HasPrefix(path, "transactions/") && strings.HasSuffix(path, "/amounts") && method == http.MethodGet:
		return wechatpay.APIAmounts, (*Server).amounts
	case path == "receivers" && method == http.MethodPost:
		return wechatpay.APIAddReceiver, (*Server).addReceiver
	case path == "receivers" && method == http.MethodDelete:
		return wechatpay.APIDeleteReceiver, (*Server).deleteReceiver
	case strings.HasPrefix(path, "receivers/") && method == http.MethodGet:
		return wechatpay.APIReceiverResult, (*Server).receiverResult
	case path == "bill-download-url" && method == http.MethodGet:
		return wechatpay.APIBillURL, (*Server).billURL
	case path == billPath && method == http.MethodGet:
		return wechatpay.APIBill, (*Server).billDownload
	}
	return "", nil
}

// ServeHTTP serves the API under any prefix: everything up to "/v3/" is
// ignored. Unknown paths get an unsigned 404, which a client never takes
// for "not found".
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := strings.Index(r.URL.Path, "/v3/global/")
	if i < 0 {
		http.NotFound(w, r)
		return
	}
	path := strings.TrimPrefix(r.URL.Path[i:], "/v3/global/")
	if !strings.HasPrefix(path, "settle/") {
		var found bool
		if path, found = strings.CutPrefix(path, "profit-sharing/"); !found {
			http.NotFound(w, r)
			return
		}
	}
	endpoint, handle := route(r.Method, path)
	if handle == nil {
		http.NotFound(w, r)
		return
	}
	c := call{r: r, path: path, query: r.URL.Query(), base: s.base(r, i)}
	s.serve(w, c, endpoint, handle)
}
