package wechatpaytest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/wechatpay"
)

// serve plays the endpoint's fault, checks the QPS limits and the
// signature, runs the handler under the lock and signs its answer.
func (s *Server) serve(w http.ResponseWriter, c call, endpoint string, handle func(*Server, call) reply) {
	s.mu.Lock()
	s.calls[endpoint]++
	s.mu.Unlock()
	fault.Pause(c.r, s.o.Latency)
	c.fault = s.o.Faults.Next(endpoint)
	switch c.fault.Kind {
	case fault.Latency:
		c.fault.Sleep(c.r)
	case fault.ServerError:
		s.respond(w, refuse(http.StatusInternalServerError, wechatpay.CodeSystemError, "system error, retry with the same parameters"))
		return
	case fault.Unavailable:
		s.respond(w, refuse(http.StatusServiceUnavailable, wechatpay.CodeSystemError, "system busy, retry later"))
		return
	case fault.TooMany:
		a := refuse(http.StatusTooManyRequests, wechatpay.CodeFrequencyLimited, "frequency limited")
		a.after = c.fault.RetryAfter
		s.mu.Lock()
		s.count429++
		s.mu.Unlock()
		s.respond(w, a)
		return
	case fault.Reset:
		fault.DropConnection(w)
		return
	}
	a, pass := s.read(&c)
	if pass {
		a, pass = s.limit(c) // first, as a gateway would: cheap
	}
	if pass {
		a, pass = s.authenticate(c)
	}
	if pass {
		a, pass = s.poison(c)
	}
	if pass {
		s.mu.Lock()
		a = handle(s, c)
		s.mu.Unlock()
	}
	if c.fault.Kind == fault.Lost {
		fault.DropConnection(w) // applied; the answer never arrives
		return
	}
	if c.fault.Kind == fault.Held {
		c.fault.Sleep(c.r) // applied; the answer waits
	}
	s.mu.Lock()
	if s.probes[endpoint] > 0 {
		s.probes[endpoint]--
		a.probe = true
	}
	s.mu.Unlock()
	s.respond(w, a)
}

// read reads the request body.
func (s *Server) read(c *call) (reply, bool) {
	const maxBody = 1 << 20
	body, err := io.ReadAll(io.LimitReader(c.r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		return paramError("cannot read the request body"), false
	}
	c.body = body
	return reply{}, true
}

// authenticate checks the Authorization header: our merchant id, our
// certificate serial, a timestamp within 5 minutes of the fake's clock and
// a signature that verifies with the merchant key.
func (s *Server) authenticate(c call) (reply, bool) {
	signErr := func(msg string) (reply, bool) {
		return refuse(http.StatusUnauthorized, wechatpay.CodeSignError, msg), false
	}
	a, err := wechatpay.ParseAuthorization(c.r.Header.Get("Authorization"))
	switch {
	case err != nil:
		return signErr("bad Authorization header: " + err.Error())
	case s.o.MchID != "" && a.MchID != s.o.MchID:
		return signErr("unknown mchid")
	case a.Serial != s.o.Keys.MerchantSerial:
		return signErr("unknown merchant certificate serial_no")
	case s.o.Now().Sub(time.Unix(a.Timestamp, 0)).Abs() >= wechatpay.MaxSkew:
		return signErr("timestamp expired: 5 minutes or more away from WeChat Pay's clock")
	}
	msg := wechatpay.RequestMessage(c.r.Method, c.r.RequestURI, a.Timestamp, a.Nonce, c.body)
	if wechatpay.Verify(s.merchant.Load(), msg, a.Signature) != nil {
		return signErr("signature does not verify")
	}
	// A request names the platform key to sign the answer with. The fake
	// has one: it refuses a request naming another, and counts those naming
	// none (WeChat Pay then picks one, which a merchant moving between
	// keys may not hold).
	switch serial := c.r.Header.Get(wechatpay.HeaderSerial); serial {
	case s.o.Keys.PlatformSerial:
	case "":
		s.mu.Lock()
		s.noSerial++
		s.mu.Unlock()
	default:
		return paramError("Wechatpay-Serial " + strconv.Quote(serial) + ": no such platform key (want " + s.o.Keys.PlatformSerial + ")"), false
	}
	return reply{}, true
}

// limit takes a token from the service provider's bucket and the
// sub-merchant's (named by the query or the body), or answers 429.
func (s *Server) limit(c call) (reply, bool) {
	sub := c.query.Get("sub_mchid")
	if sub == "" && len(c.body) > 0 {
		var b struct {
			SubMchID string `json:"sub_mchid"`
		}
		json.Unmarshal(c.body, &b)
		sub = b.SubMchID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.LimitClock()
	limited := s.provider != nil && !s.provider.AllowN(now, 1)
	if !limited && sub != "" && s.o.SubMerchantQPS > 0 {
		l := s.subs[sub]
		if l == nil {
			l = rate.NewLimiter(rate.Limit(s.o.SubMerchantQPS), s.o.SubMerchantQPS)
			s.subs[sub] = l
		}
		limited = !l.AllowN(now, 1)
	}
	if limited {
		s.count429++
		return refuse(http.StatusTooManyRequests, wechatpay.CodeFrequencyLimited, "frequency limited"), false
	}
	return reply{}, true
}

// respond signs and writes an answer: Wechatpay-Timestamp, -Nonce,
// -Serial and -Signature over the body. A file is written unsigned, as
// WeChat Pay's bill downloads are.
func (s *Server) respond(w http.ResponseWriter, a reply) {
	h := w.Header()
	h.Set(wechatpay.HeaderRequestID, randomHex(16))
	if a.file != nil {
		h.Set("Content-Type", "text/csv; charset=utf-8")
		w.WriteHeader(a.status)
		w.Write(a.file)
		return
	}
	var body []byte
	if a.body != nil {
		var err error
		if body, err = json.Marshal(a.body); err != nil {
			http.Error(w, "fake: "+err.Error(), http.StatusInternalServerError)
			return
		}
		h.Set("Content-Type", "application/json")
	}
	ts, nonce := strconv.FormatInt(s.o.Now().Unix(), 10), randomHex(16)
	sig, err := wechatpay.Sign(s.o.Keys.PlatformPrivate, wechatpay.ResponseMessage(ts, nonce, body))
	if err != nil {
		http.Error(w, "fake: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if a.probe {
		// WeChat Pay's probe: the prefix before a signature, which no
		// longer verifies.
		sig = wechatpay.SignProbePrefix + sig
	}
	h.Set(wechatpay.HeaderTimestamp, ts)
	h.Set(wechatpay.HeaderNonce, nonce)
	h.Set(wechatpay.HeaderSerial, s.o.Keys.PlatformSerial)
	h.Set(wechatpay.HeaderSignature, sig)
	if a.after > 0 {
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(a.after.Seconds()))))
	}
	w.WriteHeader(a.status)
	w.Write(body)
}

// base is the fake's URL up to "/v3/": Options.BaseURL, or the request's
// scheme, host and path prefix.
func (s *Server) base(r *http.Request, prefixLen int) string {
	if s.o.BaseURL != "" {
		return strings.TrimSuffix(s.o.BaseURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.Path[:prefixLen]
}

// decode reads a JSON body into v, or says what to refuse.
func (c call) decode(v any) (reply, bool) {
	if err := json.Unmarshal(c.body, v); err != nil {
		return paramError("the body is not the JSON this API takes"), false
	}
	return reply{}, true
}

// require returns the first missing parameter's refusal.
func require(fields ...[2]string) (reply, bool) {
	for _, f := range fields {
		if f[1] == "" {
			return paramError("missing parameter: " + f[0]), false
		}
		if n := publishedMax[f[0]]; n > 0 && len([]rune(f[1])) > n {
			return paramError(fmt.Sprintf("%s: at most %d characters", f[0], n)), false
		}
	}
	return reply{}, true
}

// publishedMax is the longest value WeChat Pay publishes for a field
// (Request funds-distribution, pay.weixin.qq.com/doc/global/v3/en/4012356850:
// sub_mchid string[1,32], transaction_id string[1,32], out_order_no
// string[1,64]); a longer one is refused PARAM_ERROR.
var publishedMax = map[string]int{"sub_mchid": wechatpay.MaxSubMchID, "transaction_id": wechatpay.MaxTransactionID,
	"out_order_no": wechatpay.MaxOutOrderNo}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return strings.ToUpper(hex.EncodeToString(b))
}

// next returns the next sequence number for ids.
func (s *Server) next() int {
	s.seq++
	return s.seq
}
