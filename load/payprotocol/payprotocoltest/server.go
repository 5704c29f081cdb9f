// Package payprotocoltest is a stateful fake Pay Protocol merchant API,
// simulated: an http.Handler to mount under /api/mer that checks every
// request's X-PAY-KEY, X-PAY-TIMESTAMP (60 s skew) and X-PAY-SIGN the way
// Pay Protocol documents them, keeps payment orders (added by AddPayment or
// created through the API) and refund orders that wait for a person's
// approval over a few polls, sends signed callbacks to the notifyUrl on
// Pay Protocol's retry schedule until they are answered "success", and
// plays the faults of internal/fault and, when asked, its timing model
// (Options.Latency and QPS; off by default).
//
// Answers are {code, msg, data}, unsigned, as Pay Protocol's are, with the
// published fields of the payment and refund details and of the refund
// list's pages (no decimals field: amounts are scaled by the settlement
// currency's decimals, which the currency list gives: the merchant's
// currencies on a chain, Options.Coin on chains 1 to 3 and every currency
// a payment is made in, each refund naming its payment's by currencyId
// unless SetRefundCurrency says otherwise); the notify calls are GETs
// with query parameters. The refund list pages
// through every refund order, newest first (assumed: the docs give no
// order), filtered as published. Where its
// behaviour is not public the fake follows the assumptions of package
// payprotocol: code 401 "invalid sign" (HTTP 401) for a bad key, signature
// or timestamp; 404 (HTTP 404; bare with Options.BareNotFound) for an
// unknown order or refund; 400 for a
// missing or invalid parameter; a repeated createPaymentOrder with the same
// fields replays its answer, with other fields it is refused. Orders quoted
// in a fiat currency settle in Options.Coin one to one (a fake rate).
package payprotocoltest

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/payprotocol"
)

// Options configure a Server.
type Options struct {
	APIKey    string          // required
	APISecret string          // required
	Faults    *fault.Injector // endpoints: payprotocol.API... ("payment/detail", ...)
	// Polls is how many refund detail queries answer 1 (pending approval),
	// and then how many answer 2 (under review), before the refund succeeds.
	// Default 2; negative: a refund succeeds at once.
	Polls int
	// TimeScale multiplies the callback schedule (0 s, 15 s, 30 s, 3 min,
	// 5 min, 10 min): 1.0/1000 turns it into 0..600 ms. Default 1.
	TimeScale float64
	Now       func() time.Time // the fake's clock (timestamp checks, callback timestamps); default time.Now
	MaxSkew   time.Duration    // default payprotocol.DefaultMaxSkew
	HTTP      *http.Client     // sends callbacks; default payprotocol.NewHTTPClient(10s)
	// NotifyURL receives the callbacks of payments added by AddPayment and
	// of refunds created without a notifyUrl. Empty: none are sent.
	NotifyURL    string
	Coin         string // what fiat-quoted orders settle in; default "USDT"
	CoinDecimals int    // its decimals, and those of crypto-quoted orders; default 6
	// BareNotFound answers an unknown order or refund with HTTP 404 and no
	// body (the docs list 404 "Not Found" without one) instead of
	// {code: 404, msg, data}.
	BareNotFound bool
	// The timing model of internal/fault, off by default: Latency is
	// waited before every answer; QPS limits requests (all endpoints
	// together, a burst of QPS, on Now) and answers HTTP 429 with
	// Retry-After beyond it, as a TooMany fault. 0: unlimited.
	Latency time.Duration
	QPS     float64
}

// Server is the fake. It is safe for concurrent use; Close stops its
// callbacks.
type Server struct {
	o     Options
	polls int
	limit *fault.Limit
	// secret is the API secret Pay Protocol holds for Options.APIKey now
	// (Options.APISecret until RevokeSecret).
	secret atomic.Pointer[string]

	mu         sync.Mutex
	calls      map[string]int
	count429   int
	payments   map[string]*payment // by outTradeNo
	refunds    map[string]*refund  // by refundId
	refundList []string
	// latest is each order's latest refund, by outTradeNo: the detail
	// by outTradeNo finds it at once, as Pay Protocol's index would (a
	// scan of every refund under the lock made a million-order day's
	// questions wait on each other past their timeouts).
	latest map[string]*refund
	// The merchant's currencies (the currency list), by chain and
	// symbol and in the order they were opened.
	currencyBy  map[currencyKey]*currency
	opened      []*currency
	currencySeq int
	seq         int
	deliveries  []Delivery

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	active int
}

// reply is what a handler says: code, msg and the data of a success.
type reply struct {
	code int
	msg  string
	data any
	bare bool // HTTP status only, no body
}

func success(data any) reply { return reply{code: payprotocol.CodeSuccess, msg: "success", data: data} }

func refuse(code int, msg string) reply { return reply{code: code, msg: msg} }

// notFound refuses an unknown order or refund: code 404 in HTTP 404, or,
// with Options.BareNotFound, HTTP 404 with no body, as the docs list it.
func (s *Server) notFound(what string) reply {
	return reply{code: payprotocol.CodeNotFound, msg: what + " not found", bare: s.o.BareNotFound}
}

// request is one authenticated API call.
type request struct {
	query url.Values
	body  []byte
	fault fault.Fault
}

type route struct {
	api    string
	method string
	handle func(*Server, request) reply
}

var routes = []route{
	{payprotocol.APIPaymentDetail, http.MethodGet, (*Server).paymentDetail},
	{payprotocol.APIRefundDetail, http.MethodGet, (*Server).refundDetail},
	{payprotocol.APICreatePaymentOrder, http.MethodPost, (*Server).createPaymentOrder},
	{payprotocol.APICreateRefundOrder, http.MethodPost, (*Server).createRefundOrder},
	{payprotocol.APINotifyPayment, http.MethodGet, (*Server).notifyPayment},
	{payprotocol.APINotifyRefund, http.MethodGet, (*Server).notifyRefund},
	{payprotocol.APIChainList, http.MethodGet, (*Server).chainList},
	{payprotocol.APIRefundList, http.MethodGet, (*Server).refundListPage},
	{payprotocol.APICurrencyList, http.MethodGet, (*Server).currencyList},
}

// chainList answers GET /conf/list/chain with the chains the fake's
// payments use (chainId and chainName, what Pay Protocol's plugin reads).
func (s *Server) chainList(request) reply {
	return success([]map[string]any{{"chainId": 1, "chainName": "Tron"}, {"chainId": 2, "chainName": "Ethereum"}, {"chainId": 3, "chainName": "BNB Chain"}})
}

// New returns a fake Pay Protocol. It panics without Options.APIKey and
// APISecret, like a misconfigured test would.
func New(o Options) *Server {
	if o.APIKey == "" || o.APISecret == "" {
		panic("payprotocoltest: Options needs APIKey and APISecret")
	}
	if o.TimeScale <= 0 {
		o.TimeScale = 1
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxSkew <= 0 {
		o.MaxSkew = payprotocol.DefaultMaxSkew
	}
	if o.HTTP == nil {
		o.HTTP = payprotocol.NewHTTPClient(10 * time.Second)
	}
	if o.Coin == "" {
		o.Coin = "USDT"
	}
	if o.CoinDecimals == 0 {
		o.CoinDecimals = 6
	}
	polls := o.Polls
	switch {
	case polls == 0:
		polls = 2
	case polls < 0:
		polls = 0
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{o: o, polls: polls, calls: map[string]int{}, payments: map[string]*payment{},
		refunds: map[string]*refund{}, latest: map[string]*refund{}, currencyBy: map[currencyKey]*currency{}, ctx: ctx, cancel: cancel}
	s.limit = fault.NewLimit(o.QPS, 0, o.Now)
	for chain := 1; chain <= 3; chain++ { // the chains of chainList
		s.openCurrency(chain, o.Coin, o.CoinDecimals)
	}
	s.secret.Store(&o.APISecret)
	return s
}

// SetSecret replaces the API secret Pay Protocol holds for our API key, as
// a secret revoked or rotated at Pay Protocol is: from now on a request
// signed with another secret is refused (HTTP 401, "invalid sign"). The
// callbacks the fake sends are still signed with Options.APISecret.
func (s *Server) SetSecret(secret string) { s.secret.Store(&secret) }

// Close stops sending callbacks and waits for the senders to return.
func (s *Server) Close() {
	s.mu.Lock() // notify adds to wg under the lock, never after this
	s.cancel()
	s.mu.Unlock()
	s.wg.Wait()
}

// Calls reports how many HTTP requests reached the API (e.g.
// "payment/detail"), faulted and refused ones included.
func (s *Server) Calls(api string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[api]
}

// ServeHTTP serves the nine APIs, matched on the path's end so that the fake
// may be mounted under any prefix (normally /api/mer).
//
// Every answer's Date header is the fake's clock (Options.Now), as a real
// server's is its own: the client names clock skew by it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Date", s.o.Now().UTC().Format(http.TimeFormat))
	for _, rt := range routes {
		if strings.HasSuffix(r.URL.Path, "/"+rt.api) {
			if r.Method != rt.method {
				w.Header().Set("Allow", rt.method)
				http.Error(w, rt.method+" only", http.StatusMethodNotAllowed)
				return
			}
			s.serveAPI(w, r, rt)
			return
		}
	}
	http.NotFound(w, r)
}

// serveAPI plays the endpoint's fault, checks the signature, runs the
// handler under the lock and writes its reply.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, rt route) {
	s.count(rt.api)
	fault.Pause(r, s.o.Latency)
	if !s.limit.Allow() {
		s.tooMany(w, time.Second)
		return
	}
	f := s.o.Faults.Next(rt.api)
	switch f.Kind {
	case fault.Latency:
		f.Sleep(r)
	case fault.ServerError:
		s.respond(w, http.StatusInternalServerError, refuse(payprotocol.CodeSystemError, "system error"))
		return
	case fault.Unavailable:
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	case fault.TooMany:
		s.tooMany(w, f.RetryAfter)
		return
	case fault.Reset:
		fault.DropConnection(w)
		return
	}
	const maxBody = 1 << 20
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		s.respond(w, http.StatusOK, refuse(payprotocol.CodeBadRequest, "cannot read the request"))
		return
	}
	if err := payprotocol.VerifyRequest(r, body, s.o.APIKey, *s.secret.Load(), s.o.Now(), s.o.MaxSkew); err != nil {
		s.respond(w, http.StatusUnauthorized, refuse(payprotocol.CodeUnauthorized, "invalid sign"))
		return
	}
	s.mu.Lock()
	rep := rt.handle(s, request{query: r.URL.Query(), body: body, fault: f})
	s.mu.Unlock()
	if f.Kind == fault.Lost {
		fault.DropConnection(w) // applied; the answer never arrives
		return
	}
	status := http.StatusOK
	if rep.code == payprotocol.CodeNotFound {
		status = http.StatusNotFound
	}
	if rep.bare {
		w.WriteHeader(status)
		return
	}
	s.respond(w, status, rep)
}

func (s *Server) tooMany(w http.ResponseWriter, after time.Duration) {
	s.mu.Lock()
	s.count429++
	s.mu.Unlock()
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(after.Seconds()))))
	http.Error(w, "too many requests", http.StatusTooManyRequests)
}

// CallCounts reports how many HTTP requests reached each API.
func (s *Server) CallCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// Count429 reports how many HTTP 429 answers the fake gave: its QPS limit
// and TooMany faults.
func (s *Server) Count429() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count429
}

func (s *Server) count(api string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[api]++
}

func (s *Server) respond(w http.ResponseWriter, status int, rep reply) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"code": rep.code, "msg": rep.msg, "data": rep.data})
}

// decode reads a JSON body into v, or says what to refuse.
func (r request) decode(v any) (reply, bool) {
	if err := json.Unmarshal(r.body, v); err != nil {
		return refuse(payprotocol.CodeBadRequest, "invalid parameter: request body"), false
	}
	return reply{}, true
}

// ClientConfig returns a client configuration that talks to the fake at
// baseURL (an httptest.Server's URL with "/api/mer", say) with the fake's
// key and secret and clock; callers adjust retries, timeouts and limits.
func (s *Server) ClientConfig(baseURL string) payprotocol.Config {
	return payprotocol.Config{BaseURL: baseURL, APIKey: s.o.APIKey, APISecret: s.o.APISecret,
		HTTP: payprotocol.NewHTTPClient(30 * time.Second), Now: s.o.Now}
}
