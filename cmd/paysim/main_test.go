package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/seed"
)

func TestPaysimServesAndPrintsTheJobsConfiguration(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncWriter{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-dir", t.TempDir(), "-http-addr", "127.0.0.1:0", "-sftp-addr", "127.0.0.1:0", "-faults", "*:5xx~0.1"}, out)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "SETTLE_SFTP_KNOWN_HOSTS") {
		if time.Now().After(deadline) {
			t.Fatalf("no configuration printed:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var url string
	for _, line := range strings.Split(out.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "export SETTLE_INFINIA_URL="); ok {
			url = v
		}
	}
	resp, err := http.Post(url+"v1/balance/query", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("the API does not answer: %v", err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"-faults", "nonsense"}, &bytes.Buffer{}); err == nil {
		t.Fatal("a bad fault spec must be refused")
	}
}

// syncWriter is a buffer the test reads while paysim writes it.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func TestPaysimCreatesThePaymentsOfASeededDay(t *testing.T) {
	url := pgtest.URL(t)
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sh, _ := time.LoadLocation("Asia/Shanghai")
	if _, err := seed.Generate(context.Background(), db, seed.Options{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Location: sh, Orders: 200, Sellers: 5, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncWriter{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-dir", t.TempDir(), "-http-addr", "127.0.0.1:0", "-sftp-addr", "127.0.0.1:0",
			"-platform-db", url, "-date", "2026-11-23"}, out)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "export SETTLE_PAYPROTOCOL_URL") {
		select {
		case err := <-done:
			t.Fatalf("paysim stopped: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no configuration printed:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if !strings.Contains(out.String(), "# created ") || strings.Contains(out.String(), "# created 0 ") {
		t.Fatalf("no payments created:\n%s", out.String())
	}
}
func TestMain(m *testing.M) { pgtest.Main(m) }
