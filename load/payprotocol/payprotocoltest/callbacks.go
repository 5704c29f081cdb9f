package payprotocoltest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/settlekit/settle/load/payprotocol"
)

// Schedule returns when Pay Protocol sends a callback, after the event,
// until one is answered "success": 0 s, 15 s, 30 s, 3 min, 5 min, 10 min
// (before Options.TimeScale).
func Schedule() []time.Duration {
	return []time.Duration{0, 15 * time.Second, 30 * time.Second, 3 * time.Minute, 5 * time.Minute, 10 * time.Minute}
}

// Delivery is one callback the fake sent.
type Delivery struct {
	Kind       string        // payprotocol.CallbackPayment or payprotocol.CallbackRefund
	Ref        string        // the payment's outTradeNo or the refund's refundId
	Status     int           // the paymentStatus or refundStatus it reported
	Attempt    int           // 1 .. len(Schedule())
	Offset     time.Duration // when it was sent, after the event (real time)
	HTTPStatus int           // the receiver's answer; 0 for none
	Acked      bool          // answered 200 with the plain text "success"
}

// Deliveries returns every callback sent so far, in the order sent.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.deliveries...)
}

// WaitCallbacks waits until no callback is waiting to be sent (each
// acknowledged or its schedule exhausted), or ctx ends.
func (s *Server) WaitCallbacks(ctx context.Context) error {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		n := s.active
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// notify starts sending a callback of data to target on the schedule; the
// caller holds s.mu. The body is the state at the event; each attempt is
// signed anew.
func (s *Server) notify(kind, ref string, status int, target string, data any) {
	if target == "" || s.ctx.Err() != nil {
		return
	}
	body, err := json.Marshal(data)
	if err != nil {
		panic(err) // maps of strings and numbers
	}
	s.active++
	s.wg.Add(1)
	go s.send(Delivery{Kind: kind, Ref: ref, Status: status}, target, body)
}

func (s *Server) send(d Delivery, target string, body []byte) {
	defer func() {
		s.mu.Lock()
		s.active--
		s.mu.Unlock()
		s.wg.Done()
	}()
	start := time.Now()
	for i, at := range Schedule() {
		due := start.Add(time.Duration(float64(at) * s.o.TimeScale))
		if wait := time.Until(due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-s.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		d.Attempt, d.Offset = i+1, time.Since(start)
		d.HTTPStatus, d.Acked = s.post(target, body)
		s.mu.Lock()
		s.deliveries = append(s.deliveries, d)
		s.mu.Unlock()
		if d.Acked {
			return
		}
	}
}

// post sends one signed callback.
func (s *Server) post(target string, body []byte) (int, bool) {
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, false
	}
	req.Header.Set("Content-Type", "application/json")
	payprotocol.SignRequest(req, s.o.APIKey, s.o.APISecret, s.o.Now(), body)
	resp, err := s.o.HTTP.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	ans, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return resp.StatusCode, resp.StatusCode == http.StatusOK && strings.TrimSpace(string(ans)) == "success"
}
