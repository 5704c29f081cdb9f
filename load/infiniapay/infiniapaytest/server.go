// Package infiniapaytest is a stateful fake Infinia Pay, simulated: an
// http.Handler speaking Infinia's envelope (it verifies our signature with
// the platform's public key, decrypts with Infinia's private key, encrypts
// answers with the platform's public key and signs them with Infinia's
// private key), with account bindings, balances per currency, sellers'
// available revenue share, idempotent revenue sharing that goes PROCESSING
// -> SUCCESS/FAILED over a few polls, trade-details files received from the
// SFTP side (ReceiveFile) and validated, error files, seller status
// webhooks, the faults of internal/fault, and its timing model when asked
// (Options.Latency, UploadDelay, ShareDelay, QPS; off by default).
//
// It speaks Infinia's currency codes: the yuan is CNH, and a request in
// CNY is refused with SYS-002 (a trade file named with CNY is not taken);
// its test helpers (SetBalance, Paid, ...) name currencies as settle does,
// CNY for Infinia's CNH. Trade files are validated, and error files
// written, in Options.Layout (infiniapay.DefaultLayout by default). Seller
// status notifications are unsigned, as Infinia's documented example.
//
// Where Infinia's behaviour is not public, the fake follows the assumptions
// listed in PROVIDERS.md and the infiniapay package. Request problems are
// answered with Infinia's system codes: a bad signature or unknown appId
// SYS-002 (with a message naming it), an unsupported currency SYS-002, a
// missing field SYS-004, an envelope or value that does not parse
// SYS-005, a non-positive amount SYS-006, a body over 1 MiB or a requestData
// longer than Infinia publishes (infiniapay.MaxRequestData) SYS-007; an
// unknown requestNo or seller BIZ-404 (assumed).
package infiniapaytest

import (
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/pipeline"
)

// Options configure a Server.
type Options struct {
	Keys       Keys            // InfiniaPrivate and PlatformPublic are required
	AppID      string          // when set, requests for another appId are refused (SYS-002)
	PlatformID string          // when set, trade files for another platform are refused
	Faults     *fault.Injector // endpoints: the API paths without "v1/", and "error-files"
	// Polls is how many status queries answer PROCESSING before the final
	// status of a revenue share or an upload (an upload first answers
	// RECEIVED). Default 2; negative: final at once.
	Polls int
	// BaseURL is the fake's public URL, for redirect and error-file links.
	// Empty: derived from each request's Host and path.
	BaseURL   string
	Paths     infiniapay.Paths // default infiniapay.DefaultPaths()
	ChunkSize int              // plaintext bytes per RSA block in answers; default 117
	Unsigned  bool             // answer without signatures (to test RequireResponseSignature)
	// Layout is the trade-file and error-file layout the fake expects and
	// writes; the zero Layout is infiniapay.DefaultLayout.
	Layout infiniapay.Layout
	// Spell writes these status words for settle's assumed ones in every
	// answer (SUCCESS -> SUCCEEDED, say): an Infinia whose words differ
	// from the assumption, for the client's Config.Statuses.
	Spell map[string]string
	// Answer, when set, rewrites the data of every answer before it is
	// sealed and signed (a copy: what the fake holds is unchanged), with
	// the endpoint (the API path without "v1/"): an Infinia whose
	// genuine answers echo another requestNo, seller, currency or amount
	// than asked, or a status not listed. Called under the fake's lock:
	// it must not call the Server.
	Answer func(endpoint string, data map[string]string)
	// SignNotifications signs seller status notifications; by default they
	// are sent as Infinia's documented example shows them, unsigned.
	SignNotifications bool
	// The timing model (internal/fault), off by default. Latency is waited
	// before every API answer. UploadDelay and ShareDelay keep an upload's
	// status, and a revenue share's, PROCESSING until that long after it
	// was received, on the clock Now (default time.Now), besides the Polls.
	// QPS limits API requests (all endpoints together; a burst of QPS) and
	// answers HTTP 429 with Retry-After beyond it; 0: unlimited.
	Latency     time.Duration
	UploadDelay time.Duration
	ShareDelay  time.Duration
	QPS         float64
	Now         func() time.Time
	// Memory, simulated (Infinia publishes no retention): when above 0, a
	// revenue share received longer than Memory ago (on Now) is forgotten
	// - its status query answers not found, and its requestNo sent again
	// is taken as a new request and pays again, as a provider that keeps
	// its keys for a limited time would. 0: remembered for ever.
	Memory time.Duration
}

// Server is the fake. It is safe for concurrent use.
type Server struct {
	o      Options
	layout infiniapay.Layout
	polls  int
	routes []route
	limit  *fault.Limit
	// platform is the platform's public key Infinia holds now
	// (Options.Keys.PlatformPublic until RegisterPlatformKey).
	platform atomic.Pointer[rsa.PublicKey]

	mu           sync.Mutex
	calls        map[string]int
	bindings     map[string]string // sellerId -> status
	bindReqs     map[string]replay // requestNo -> first request and answer
	balances     map[pipeline.Currency]int64
	available    map[account]int64
	paid         map[account]int64
	shares       map[string]*share
	shareOrder   []*share // every revenue share taken, in order (a forgotten requestNo taken again is another)
	uploads      map[string]*upload
	refused      map[string]string // order_no -> reason: rows the fake refuses
	lose         map[string]bool   // sellerId -> its trade files are lost (LoseFilesOf)
	refuseStatus map[string]answer // sellerId -> the answer to its upload-status queries
	failShares   map[string]string // sellerId -> why its revenue shares fail (FailSharesOf)
	errorFiles   map[string][]byte
	refs         int
	count429     int
}

type account struct {
	seller string
	cur    pipeline.Currency
}

type replay struct {
	req    map[string]string
	answer map[string]string
}

// call is one decoded API request.
type call struct {
	req   map[string]string
	fault fault.Fault
	base  string // the fake's base URL, ending in "/"
}

// answer is what a handler says: a code, a message, and the data of a
// SUC-200.
type answer struct {
	code, message string
	data          map[string]string
}

func success(data map[string]string) answer {
	return answer{code: infiniapay.CodeSuccess, message: "success", data: data}
}

func refuse(code, format string, args ...any) answer {
	return answer{code: code, message: fmt.Sprintf(format, args...)}
}

type route struct {
	path     string
	endpoint string
	handle   func(*Server, call) answer
}

// New returns a fake Infinia Pay. It panics when Options.Keys lacks
// InfiniaPrivate or PlatformPublic, like a misconfigured test would.
func New(o Options) *Server {
	if o.Keys.InfiniaPrivate == nil || o.Keys.PlatformPublic == nil {
		panic("infiniapaytest: Options.Keys needs InfiniaPrivate and PlatformPublic")
	}
	o.Paths = o.Paths.WithDefaults()
	if o.ChunkSize == 0 {
		o.ChunkSize = 117
	}
	polls := o.Polls
	switch {
	case polls == 0:
		polls = 2
	case polls < 0:
		polls = 0
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	layout, err := o.Layout.WithDefaults()
	if err != nil {
		panic("infiniapaytest: Options.Layout: " + err.Error())
	}
	s := &Server{o: o, layout: layout, polls: polls, calls: map[string]int{}, bindings: map[string]string{},
		bindReqs: map[string]replay{}, balances: map[pipeline.Currency]int64{}, available: map[account]int64{},
		paid: map[account]int64{}, shares: map[string]*share{}, uploads: map[string]*upload{}, errorFiles: map[string][]byte{}}
	s.limit = fault.NewLimit(o.QPS, 0, o.Now)
	s.platform.Store(o.Keys.PlatformPublic)
	for _, r := range []struct {
		path   string
		handle func(*Server, call) answer
	}{
		{o.Paths.BindAccount, (*Server).bindAccount},
		{o.Paths.BindingStatus, (*Server).bindingStatus},
		{o.Paths.UploadStatus, (*Server).uploadStatus},
		{o.Paths.Balance, (*Server).balance},
		{o.Paths.AvailableShare, (*Server).availableShare},
		{o.Paths.RevenueShare, (*Server).revenueShare},
		{o.Paths.RevenueShareStatus, (*Server).revenueShareStatus},
	} {
		p := strings.Trim(r.path, "/")
		s.routes = append(s.routes, route{path: "/" + p, endpoint: strings.TrimPrefix(p, "v1/"), handle: r.handle})
	}
	return s
}

// RegisterPlatformKey replaces the platform's public key Infinia holds, as
// a key pair rotated at Infinia does: from now on a request signed with
// another key is refused (SYS-002 "invalid signature", as any bad
// signature), and answers are encrypted for this one.
func (s *Server) RegisterPlatformKey(pub *rsa.PublicKey) { s.platform.Store(pub) }

// Calls reports how many HTTP requests reached endpoint (e.g.
// "revenue-sharing/request"), faulted ones included.
func (s *Server) Calls(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[endpoint]
}

// CallCounts reports how many HTTP requests reached each endpoint.
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

func (s *Server) tooMany(w http.ResponseWriter, after time.Duration) {
	s.mu.Lock()
	s.count429++
	s.mu.Unlock()
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(after.Seconds()))))
	http.Error(w, "too many requests", http.StatusTooManyRequests)
}

// ServeHTTP serves the seven APIs (POST, matched on the path's end, so the
// fake may be mounted under any prefix) and GET .../error-files/<requestNo>.csv.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if i := strings.Index(r.URL.Path, "/error-files/"); i >= 0 && r.Method == http.MethodGet {
		s.serveErrorFile(w, r, strings.TrimPrefix(r.URL.Path[i:], "/error-files/"))
		return
	}
	for _, rt := range s.routes {
		if strings.HasSuffix(r.URL.Path, rt.path) {
			if r.Method != http.MethodPost {
				http.Error(w, "POST only", http.StatusMethodNotAllowed)
				return
			}
			s.serveAPI(w, r, rt)
			return
		}
	}
	http.NotFound(w, r)
}

// serveAPI plays the endpoint's fault, opens the envelope, runs the
// handler under the lock and seals its answer.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, rt route) {
	s.count(rt.endpoint)
	fault.Pause(r, s.o.Latency)
	if !s.limit.Allow() {
		s.tooMany(w, time.Second)
		return
	}
	f := s.o.Faults.Next(rt.endpoint)
	switch f.Kind {
	case fault.Latency:
		f.Sleep(r)
	case fault.ServerError:
		if f.Code != "" {
			s.respond(w, refuse(f.Code, "internal server error"))
			return
		}
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	case fault.Unavailable:
		s.respond(w, refuse(infiniapay.CodeUnavailable, "service unavailable, retry later"))
		return
	case fault.TooMany:
		s.tooMany(w, f.RetryAfter)
		return
	case fault.Reset:
		fault.DropConnection(w)
		return
	}
	c := call{fault: f, base: s.base(r, rt.path)}
	a, ok := s.decode(r, &c)
	if ok {
		s.mu.Lock()
		a = rt.handle(s, c)
		if s.o.Answer != nil && a.data != nil {
			a.data = maps.Clone(a.data)
			s.o.Answer(rt.endpoint, a.data)
		}
		s.mu.Unlock()
	}
	if f.Kind == fault.Lost {
		fault.DropConnection(w) // applied; the answer never arrives
		return
	}
	if f.Kind == fault.Held {
		f.Sleep(r) // applied; the answer waits
	}
	s.respond(w, a)
}

func (s *Server) count(endpoint string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[endpoint]++
}

// decode opens the request envelope into c.req, or says what to refuse.
func (s *Server) decode(r *http.Request, c *call) (answer, bool) {
	const maxBody = 1 << 20
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return refuse(infiniapay.CodeBadFormat, "cannot read the request"), false
	}
	if len(body) > maxBody {
		return refuse(infiniapay.CodeTooLarge, "payload too large"), false
	}
	env, plain, err := infiniapay.Open(body, s.o.Keys.InfiniaPrivate, s.platform.Load())
	switch {
	case errors.Is(err, infiniapay.ErrSignature):
		return refuse(infiniapay.CodeInvalidParameter, "invalid signature"), false
	case err != nil:
		return refuse(infiniapay.CodeBadFormat, "bad format: cannot open the envelope"), false
	case env.Version != infiniapay.Version || env.DataType != infiniapay.DataType:
		return refuse(infiniapay.CodeBadFormat, "bad format: want version 1.0, dataType JSON"), false
	case s.o.AppID != "" && env.AppID != s.o.AppID:
		return refuse(infiniapay.CodeInvalidParameter, "unknown appId"), false
	case len(env.RequestData) > infiniapay.MaxRequestData:
		return refuse(infiniapay.CodeTooLarge, "payload too large: requestData longer than %d characters", infiniapay.MaxRequestData), false
	}
	if err := json.Unmarshal(plain, &c.req); err != nil || c.req == nil {
		return refuse(infiniapay.CodeBadFormat, "bad format: requestData must be a JSON object of strings"), false
	}
	return answer{}, true
}

// respond seals an answer: data encrypted with the platform's public key,
// signed with Infinia's private key.
func (s *Server) respond(w http.ResponseWriter, a answer) {
	env := infiniapay.ResponseEnvelope{AppID: s.o.AppID, Code: a.code, Message: a.message}
	if w := s.o.Spell[a.data["status"]]; w != "" {
		a.data["status"] = w
	}
	if a.data != nil {
		plain, err := json.Marshal(a.data)
		if err == nil {
			env.ResponseData, err = infiniapay.Encrypt(s.platform.Load(), plain, s.o.ChunkSize)
		}
		if err != nil {
			http.Error(w, "fake: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	if !s.o.Unsigned {
		sig, err := infiniapay.Sign(s.o.Keys.InfiniaPrivate, env.ResponseData)
		if err != nil {
			http.Error(w, "fake: "+err.Error(), http.StatusInternalServerError)
			return
		}
		env.Signature = sig
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(env)
}

// base is the fake's base URL: Options.BaseURL, or the request's scheme,
// host and path up to the API path.
func (s *Server) base(r *http.Request, apiPath string) string {
	if s.o.BaseURL != "" {
		return strings.TrimSuffix(s.o.BaseURL, "/") + "/"
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + strings.TrimSuffix(r.URL.Path, apiPath) + "/"
}

// require returns the first missing field's refusal.
func (c call) require(fields ...string) (answer, bool) {
	for _, f := range fields {
		if c.req[f] == "" {
			return refuse(infiniapay.CodeMissingParameter, "missing parameter: %s", f), false
		}
	}
	return answer{}, true
}

// codes are Infinia's currency codes where they differ from ISO 4217's
// as settle knows them: Infinia settles yuan as CNH and does not know CNY.
// The fake keeps its accounts under settle's code (CNY, for its decimals)
// and speaks Infinia's on the wire.
var codes = infiniapay.DefaultCurrencies()

// wire is Infinia's code for an account's currency.
func wire(cur pipeline.Currency) string { return codes.Out(cur) }

// parseWire reads a currency code as Infinia does: CNH is the yuan, CNY
// is unknown.
func parseWire(code string) (pipeline.Currency, error) {
	if _, mapped := codes[pipeline.Currency(code)]; mapped {
		return "", fmt.Errorf("unsupported currency %q", code)
	}
	return codes.In(code)
}

// currency returns the request's known currency, or the refusal (SYS-002,
// as Infinia refuses CNY).
func (c call) currency() (pipeline.Currency, answer, bool) {
	cur, err := parseWire(c.req["currency"])
	if err != nil {
		return "", refuse(infiniapay.CodeInvalidParameter, "invalid parameter: currency %q", c.req["currency"]), false
	}
	return cur, answer{}, true
}

func sameRequest(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func notFound(what string) answer {
	return refuse(infiniapay.CodeNotFound, "not found: %s", what)
}
