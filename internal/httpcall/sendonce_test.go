package httpcall_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/httpcall"
	"github.com/settlekit/settle/internal/httpcall/httpcalltest"
)

// h2Client is a client as the providers' are made: its own transport,
// HTTP/2 attempted.
func h2Client(s *httpcalltest.StreamResetter) *http.Client {
	hc := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}}
	s.Trust(hc)
	return hc
}

// TestSendOnceKeepsTheTransportFromResending: an HTTP/2 server that resets
// the stream of a request it read (PROTOCOL_ERROR) gets the request again
// from Go's transport, unasked, when its body can be rewound; SendOnce
// leaves it one request and an error.
func TestSendOnceKeepsTheTransportFromResending(t *testing.T) {
	t.Parallel()
	for _, once := range []bool{false, true} {
		s := httpcalltest.NewStreamResetter(t)
		// Sent once, the request ends at the reset: the time is the TLS
		// handshake's, which a loaded machine can stretch past a second
		// (0 requests at 700 ms). Resent, it goes on until the deadline.
		wait := 700 * time.Millisecond
		if once {
			wait = 10 * time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/pay", bytes.NewReader([]byte(`{"amount":"1.00"}`)))
		if err != nil {
			t.Fatal(err)
		}
		if once {
			httpcall.SendOnce(req)
		}
		resp, err := h2Client(s).Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			t.Fatalf("once %v: an answer from a server that never answers", once)
		}
		switch n := s.Requests(); {
		case once && n != 1:
			t.Errorf("SendOnce: the server got the request %d times, want once (%v)", n, err)
		case !once && n < 2:
			t.Logf("without SendOnce the transport did not resend (%d request): this Go no longer does", n)
		}
	}
}
