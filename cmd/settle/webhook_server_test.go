package main

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The webhook's server faces the network: a caller that sends its body
// slowly, or never, is cut off, and a delivery whose confirmation hangs is
// answered 503 with its context cancelled. Before, only the headers had a
// deadline: a caller could hold a connection and a goroutine for ever.
func TestWebhookServerBoundsSlowCallersAndHandlers(t *testing.T) {
	t.Parallel()
	for name, d := range map[string]time.Duration{"header": defaultWebhookLimits.header, "request": defaultWebhookLimits.request,
		"handler": defaultWebhookLimits.handler, "idle": defaultWebhookLimits.idle} {
		if d <= 0 {
			t.Errorf("default webhook limit %s is %v: unbounded", name, d)
		}
	}
	cancelled := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			<-r.Context().Done()
			close(cancelled)
			return
		}
		w.Write([]byte("SUCCESS"))
	})
	lim := webhookLimits{header: 200 * time.Millisecond, request: 300 * time.Millisecond, handler: 300 * time.Millisecond, idle: time.Second}
	srv := newWebhookServer("127.0.0.1:0", h, lim)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	// A body promised and never sent: the connection is closed.
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 512)
	for {
		if _, err := conn.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("a request whose body never came still held its connection after 10 s")
			}
			break
		}
	}

	// A handler that hangs: 503, its context cancelled.
	resp, err := http.Post("http://"+ln.Addr().String()+"/hang", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a hanging delivery: %d %q, want 503", resp.StatusCode, line)
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the hanging handler's context was never cancelled")
	}
}
