// Package fault is the one fault-injection mechanism shared by every
// provider fake and the SFTP test server (DESIGN section 6). A fake asks its
// Injector, at each call of an endpoint, which fault (if any) to play; rules
// select calls by sequence number or by seeded probability, so a failing
// scenario can always be replayed. It also holds the fakes' timing model
// (timing.go): a latency before every answer, a processing delay in wall
// time before a final status, and token-bucket rate limits, on an
// injectable clock.
package fault

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kind is a kind of fault.
type Kind string

// The fault kinds.
const (
	None        Kind = ""
	Latency     Kind = "latency"    // answer after Fault.Delay
	ServerError Kind = "5xx"        // HTTP 500 (or the provider's transient error code)
	Unavailable Kind = "busy"       // the provider's "unavailable, retry later" (Infinia SYS-008, HTTP 503)
	TooMany     Kind = "429"        // HTTP 429 with Retry-After
	Reset       Kind = "reset"      // connection closed without an answer, nothing applied
	Lost        Kind = "lost"       // applied, then the connection closed: the answer is lost
	Stuck       Kind = "stuck"      // a status stays PROCESSING for Fault.Polls more polls
	Disconnect  Kind = "disconnect" // SFTP: the connection drops after Fault.Bytes bytes of a file
	// Held: applied, then the answer is held back for Fault.Delay
	// (default 1 minute) or until the caller hangs up: a process killed
	// meanwhile was killed between the provider's acceptance and its
	// own record of it.
	Held Kind = "held"
)

var kinds = []Kind{Latency, ServerError, Unavailable, TooMany, Reset, Lost, Stuck, Disconnect, Held}

// Rule says when to play a fault at an endpoint.
type Rule struct {
	Endpoint string  // endpoint name as the fake calls it, or "*" for every endpoint
	Kind     Kind    // what to play
	Calls    []int   // 1-based call numbers at the endpoint that get the fault
	Prob     float64 // or: the probability that any call gets it (0..1)
	Delay    time.Duration
	Polls    int   // Stuck: polls to stay PROCESSING (default 3)
	Bytes    int64 // Disconnect: bytes accepted before the drop (default 1 KiB)
	// Code: ServerError answered as the provider's own error code (in its
	// signed envelope, nothing applied) instead of a bare HTTP 500, where
	// the fake speaks codes.
	Code string
}

// Fault is what a fake must play for one call. The zero Fault is no fault.
type Fault struct {
	Kind       Kind
	Delay      time.Duration
	Polls      int
	Bytes      int64
	RetryAfter time.Duration
	Code       string
}

// Injector hands out faults. It is safe for concurrent use; a nil
// *Injector plays no faults.
type Injector struct {
	mu     sync.Mutex
	rules  []Rule
	calls  map[string]int
	played map[Kind]int
	rng    *rand.Rand
}

// New returns an injector playing rules, its probabilities drawn from seed.
func New(seed uint64, rules ...Rule) *Injector {
	return &Injector{rules: rules, calls: map[string]int{}, played: map[Kind]int{}, rng: rand.New(rand.NewPCG(seed, 0x5e771e))}
}

// Add appends rules.
func (in *Injector) Add(rules ...Rule) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rules = append(in.rules, rules...)
}

// Clear drops every rule: the faults stop (the calls are still counted).
func (in *Injector) Clear() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rules = nil
}

// Next counts a call of endpoint and returns the fault to play for it: the
// first rule that selects the call wins.
func (in *Injector) Next(endpoint string) Fault {
	if in == nil {
		return Fault{}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.calls[endpoint]++
	n := in.calls[endpoint]
	for _, r := range in.rules {
		if r.Endpoint != "*" && r.Endpoint != endpoint {
			continue
		}
		if !r.selects(n, in.rng) {
			continue
		}
		in.played[r.Kind]++
		f := Fault{Kind: r.Kind, Delay: r.Delay, Polls: r.Polls, Bytes: r.Bytes, RetryAfter: time.Second, Code: r.Code}
		if f.Kind == Stuck && f.Polls == 0 {
			f.Polls = 3
		}
		if f.Kind == Disconnect && f.Bytes == 0 {
			f.Bytes = 1024
		}
		if f.Kind == Latency && f.Delay == 0 {
			f.Delay = 50 * time.Millisecond
		}
		if f.Kind == Held && f.Delay == 0 {
			f.Delay = time.Minute
		}
		return f
	}
	return Fault{}
}

func (r Rule) selects(n int, rng *rand.Rand) bool {
	for _, c := range r.Calls {
		if c == n {
			return true
		}
	}
	return r.Prob > 0 && rng.Float64() < r.Prob
}

// Calls reports how many calls endpoint has had.
func (in *Injector) Calls(endpoint string) int {
	if in == nil {
		return 0
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.calls[endpoint]
}

// Played reports how many faults of kind k were handed out.
func (in *Injector) Played(k Kind) int {
	if in == nil {
		return 0
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.played[k]
}

// ParseRules parses a fault specification, for paysim's flags and files:
// rules separated by ";" or newlines, each ENDPOINT:KIND@CALLS or
// ENDPOINT:KIND~PROBABILITY, with optional ",delay=D", ",polls=N",
// ",bytes=N". CALLS is a "+"-separated list of 1-based call numbers.
// Examples: "revenue-sharing/request:lost@1", "*:5xx~0.05",
// "upload:disconnect@1+2,bytes=4096", "trade-details/query:stuck@1,polls=5".
func ParseRules(spec string) ([]Rule, error) {
	var rules []Rule
	for _, part := range strings.FieldsFunc(spec, func(r rune) bool { return r == ';' || r == '\n' }) {
		part = strings.TrimSpace(part)
		if part == "" || strings.HasPrefix(part, "#") {
			continue
		}
		r, err := parseRule(part)
		if err != nil {
			return nil, fmt.Errorf("fault rule %q: %w", part, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func parseRule(s string) (Rule, error) {
	var r Rule
	head, opts, _ := strings.Cut(s, ",")
	i := strings.LastIndex(head, ":")
	if i <= 0 {
		return r, fmt.Errorf("want ENDPOINT:KIND@CALLS or ENDPOINT:KIND~PROB")
	}
	r.Endpoint = head[:i]
	sel := head[i+1:]
	switch {
	case strings.Contains(sel, "@"):
		k, calls, _ := strings.Cut(sel, "@")
		r.Kind = Kind(k)
		for _, c := range strings.Split(calls, "+") {
			n, err := strconv.Atoi(c)
			if err != nil || n < 1 {
				return r, fmt.Errorf("call number %q: want a positive integer", c)
			}
			r.Calls = append(r.Calls, n)
		}
	case strings.Contains(sel, "~"):
		k, p, _ := strings.Cut(sel, "~")
		r.Kind = Kind(k)
		prob, err := strconv.ParseFloat(p, 64)
		if err != nil || prob < 0 || prob > 1 {
			return r, fmt.Errorf("probability %q: want 0..1", p)
		}
		r.Prob = prob
	default:
		return r, fmt.Errorf("want @CALLS or ~PROBABILITY after the kind")
	}
	if !validKind(r.Kind) {
		return r, fmt.Errorf("unknown kind %q", r.Kind)
	}
	for _, opt := range strings.Split(opts, ",") {
		if opt == "" {
			continue
		}
		k, v, _ := strings.Cut(opt, "=")
		var err error
		switch k {
		case "delay":
			r.Delay, err = time.ParseDuration(v)
		case "polls":
			r.Polls, err = strconv.Atoi(v)
		case "bytes":
			r.Bytes, err = strconv.ParseInt(v, 10, 64)
		default:
			err = fmt.Errorf("unknown option")
		}
		if err != nil {
			return r, fmt.Errorf("option %q: %v", opt, err)
		}
	}
	return r, nil
}

func validKind(k Kind) bool {
	for _, x := range kinds {
		if x == k {
			return true
		}
	}
	return false
}

// DropConnection closes the client's connection without an answer, as a
// reset or a lost response looks to the client. It falls back to a 502 when
// the ResponseWriter cannot be hijacked.
func DropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	http.Error(w, "fault: connection dropped", http.StatusBadGateway)
}

// Sleep waits for f.Delay (Latency, and Held once the fake applied the
// request), or until the request is cancelled.
func (f Fault) Sleep(r *http.Request) {
	if (f.Kind != Latency && f.Kind != Held) || f.Delay <= 0 {
		return
	}
	t := time.NewTimer(f.Delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}
