package payprotocol

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/settlekit/settle/internal/httpcall"

	lru "github.com/hashicorp/golang-lru/v2"
)

// The kinds of callback.
const (
	CallbackPayment = "payment"
	CallbackRefund  = "refund"
)

// Callback is one verified callback from Pay Protocol: a payment's or a
// refund's new state. It is a hint, not proof: the batch job settles only
// what PaymentDetail confirms.
type Callback struct {
	Kind    string  // CallbackPayment or CallbackRefund
	Payment Payment // with CallbackPayment
	Refund  Refund  // with CallbackRefund
	Body    []byte  // the body as received, for the record
}

// Key identifies the event a callback reports, for deduplication: the same
// order, payment, status and paid amount (or refund and status) is the same
// event however often it is delivered, and two events never share a key.
// Its parts are joined by "/", each with its "%" and "/" escaped (%25,
// %2F), so that a part holding a "/" is not read across the next: order
// "a/b" and payment "c" had the key of order "a" and payment "b/c", and the
// second event was answered as a repeat, never delivered (found by
// FuzzCallbackKey). A part without either is written as it is, its key
// the same as before.
func (c Callback) Key() string {
	if c.Kind == CallbackRefund {
		return "refund/" + keyPart(c.Refund.RefundID) + "/" + c.Refund.Status.String()
	}
	paid := c.Payment.SettlementAmount
	if paid == "" {
		paid = "0"
	}
	return "payment/" + keyPart(c.Payment.OutTradeNo) + "/" + keyPart(c.Payment.OutPaymentNo) + "/" + c.Payment.Status.String() + "/" + keyPart(paid)
}

// keyEscaper escapes the separator of Key's parts, and the escape itself.
var keyEscaper = strings.NewReplacer("%", "%25", "/", "%2F")

// keyPart is s as a part of Key: its "%" and "/" escaped.
func keyPart(s string) string {
	if !strings.ContainsAny(s, "%/") {
		return s
	}
	return keyEscaper.Replace(s)
}

// maxCallback bounds a callback body.
const maxCallback = 1 << 20

// CallbackHandler receives Pay Protocol's payment and refund callbacks
// (POST to the notifyUrl). It verifies X-PAY-KEY (apiKey), X-PAY-TIMESTAMP
// (within maxSkew of now; DefaultMaxSkew when maxSkew <= 0; now nil is
// time.Now) and X-PAY-SIGN over timestamp + "POST" + the request's path and
// query as received (RequestPath) + body, with apiSecret. Which path Pay
// Protocol signs for a callback is not documented: the request path is
// assumed, that of the notifyUrl. Mount the handler where the notifyUrl's
// path arrives unchanged.
//
// It answers the plain text "success" once deliver has taken the callback,
// and again for a repeated event (Callback.Key) without calling deliver
// twice; 401 for a wrong key, a stale timestamp or a bad signature; 400 for
// a body that is not a payment or refund; 500 when deliver (or seen) fails,
// so that Pay Protocol sends it again.
//
// Repeats are remembered in memory (the latest maxRemembered events: they
// were kept for the life of the handler, one more for every event, in a
// web service that may run for months), and concurrent deliveries of one
// event wait for each other. seen, when not nil, extends that to older
// events and across restarts: it is asked before deliver and must
// report first = false only for keys whose delivery was recorded (by
// deliver, say, in the same transaction). It is never asked to record
// anything, so a failed deliver is not lost. deliver must still be
// idempotent: two processes may deliver one event.
func CallbackHandler(apiKey, apiSecret string, maxSkew time.Duration, now func() time.Time,
	seen func(key string) (first bool, err error), deliver func(context.Context, Callback) error) http.Handler {
	if now == nil {
		now = time.Now
	}
	if maxSkew <= 0 {
		maxSkew = DefaultMaxSkew
	}
	return &callbacks{key: apiKey, secret: apiSecret, maxSkew: maxSkew, now: now, seen: seen, deliver: deliver,
		done: remembered(maxRemembered), busy: map[string]chan struct{}{}}
}

// maxRemembered bounds the events a CallbackHandler remembers as
// delivered.
const maxRemembered = 1 << 16

// remembered is a set of the latest n keys (n > 0): the one used least
// lately is forgotten past n (hashicorp/golang-lru).
func remembered(n int) *lru.Cache[string, struct{}] {
	c, err := lru.New[string, struct{}](n)
	if err != nil {
		panic(err) // n <= 0
	}
	return c
}

type callbacks struct {
	key, secret string
	maxSkew     time.Duration
	now         func() time.Time
	seen        func(string) (bool, error)
	deliver     func(context.Context, Callback) error

	mu   sync.Mutex
	done *lru.Cache[string, struct{}] // keys delivered, the latest maxRemembered
	busy map[string]chan struct{}     // keys being delivered; closed when done
}

// ServeHTTP verifies, parses and records one callback.
func (h *callbacks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCallback+1))
	if err != nil || len(body) > maxCallback {
		http.Error(w, "cannot read the body", http.StatusBadRequest)
		return
	}
	if err := VerifyRequest(r, body, h.key, h.secret, h.now(), h.maxSkew); err != nil {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	cb, err := ParseCallback(body)
	if err != nil {
		http.Error(w, "not a payment or refund callback", http.StatusBadRequest)
		return
	}
	if err := h.record(r.Context(), cb); err != nil {
		http.Error(w, "not recorded, send again", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "success")
}

// record calls deliver once per event key that it accepts.
func (h *callbacks) record(ctx context.Context, cb Callback) error {
	key := cb.Key()
	mine := make(chan struct{})
	for {
		h.mu.Lock()
		if h.done.Contains(key) {
			h.mu.Unlock()
			return nil
		}
		other, inFlight := h.busy[key]
		if !inFlight {
			h.busy[key] = mine
			h.mu.Unlock()
			break
		}
		h.mu.Unlock()
		select {
		case <-other:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := h.deliverOnce(ctx, key, cb)
	h.mu.Lock()
	delete(h.busy, key)
	if err == nil {
		h.done.Add(key, struct{}{}) // the oldest forgotten past maxRemembered (seen, when set, still knows it)
	}
	h.mu.Unlock()
	close(mine)
	return err
}

func (h *callbacks) deliverOnce(ctx context.Context, key string, cb Callback) error {
	if h.seen != nil {
		first, err := h.seen(key)
		if err != nil {
			return err
		}
		if !first {
			return nil
		}
	}
	return h.deliver(ctx, cb)
}

// ParseCallback reads a callback body: the payment or refund object of the
// detail query (a refund has refundStatus, a payment paymentStatus),
// or the same wrapped as {code, msg, data}. Amounts are checked like
// answers'.
func ParseCallback(body []byte) (Callback, error) {
	var probe struct {
		PaymentStatus json.RawMessage `json:"paymentStatus"`
		RefundStatus  json.RawMessage `json:"refundStatus"`
		Data          json.RawMessage `json:"data"`
	}
	obj := body
	if err := json.Unmarshal(obj, &probe); err != nil {
		return Callback{}, errors.New("callback: not a JSON object")
	}
	if probe.PaymentStatus == nil && probe.RefundStatus == nil && len(probe.Data) > 0 {
		obj = probe.Data
		probe.Data = nil
		if err := json.Unmarshal(obj, &probe); err != nil {
			return Callback{}, errors.New("callback: data is not a JSON object")
		}
	}
	cb := Callback{Body: bytes.Clone(body)}
	switch {
	case probe.RefundStatus != nil:
		var w wireRefund
		if err := json.Unmarshal(obj, &w); err != nil {
			return Callback{}, errors.New("callback: refund: " + httpcall.JSONProblem(err, clip(err.Error())))
		}
		r, err := w.refund()
		if err != nil {
			return Callback{}, err
		}
		cb.Kind, cb.Refund = CallbackRefund, r
	case probe.PaymentStatus != nil:
		var w wirePayment
		if err := json.Unmarshal(obj, &w); err != nil {
			return Callback{}, errors.New("callback: payment: " + httpcall.JSONProblem(err, clip(err.Error())))
		}
		p, err := w.payment()
		if err != nil {
			return Callback{}, err
		}
		cb.Kind, cb.Payment = CallbackPayment, p
	default:
		return Callback{}, errors.New("callback: neither paymentStatus nor refundStatus")
	}
	return cb, nil
}
