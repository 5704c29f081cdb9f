package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/paysim"
)

// startPaysim runs paysim with args and returns the URL of its state.
func startPaysim(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncWriter{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"--dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--sftp-addr", "127.0.0.1:0"}, args...), out)
	}()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "SETTLE_SFTP_KNOWN_HOSTS") {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("paysim stopped: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no configuration printed:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if _, u, ok := strings.Cut(line, "curl -s "); ok {
			return u
		}
	}
	t.Fatalf("no state URL printed:\n%s", out.String())
	return ""
}

func requests(t *testing.T, stateURL string) paysim.Requests {
	t.Helper()
	resp, err := http.Get(strings.TrimSuffix(stateURL, "state") + "requests")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r paysim.Requests
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPaysimTimingFlags: --timing internet sets the model, single flags
// override it, and the counters show it; without --timing answers are
// instant, as before.
func TestPaysimTimingFlags(t *testing.T) {
	r := requests(t, startPaysim(t, "--timing", "internet", "--revenue-share-delay", "3s", "--latency", "5ms", "--infinia-qps", "7"))
	inf, wx, pp := r["infinia"], r["wechat"], r["payprotocol"]
	if inf.LatencySeconds != 0.005 || inf.ProcessingSeconds["revenue_share"] != 3 || inf.ProcessingSeconds["upload"] != 20 || inf.LimitQPS != 7 {
		t.Fatalf("infinia %+v: want latency 5ms, revenue share 3s, upload 20s, 7/s", inf)
	}
	if wx.ProcessingSeconds["distribution"] != 10 || wx.LimitQPS != 300 || wx.SubMerchantLimitQPS != 30 || pp.LimitQPS != 50 {
		t.Fatalf("wechat %+v, payprotocol %+v: want 10s, 300/s, 30/s; 50/s", wx, pp)
	}
	r = requests(t, startPaysim(t, "--upload-delay", "1s")) // a delay alone selects the model
	if r["infinia"].LatencySeconds != 0.08 || r["infinia"].ProcessingSeconds["upload"] != 1 {
		t.Fatalf("--upload-delay alone: %+v", r["infinia"])
	}
	r = requests(t, startPaysim(t))
	if r["infinia"].LatencySeconds != 0 || r["infinia"].ProcessingSeconds["upload"] != 0 || r["infinia"].LimitQPS != 0 {
		t.Fatalf("default: %+v, want instant and unlimited", r["infinia"])
	}
	if err := run(context.Background(), []string{"--dir", t.TempDir(), "--timing", "slow"}, &syncWriter{}); err == nil {
		t.Fatal("an unknown preset must be refused")
	}
}

// TestPaysimCounts429: beyond Infinia's limit paysim answers 429 and
// counts it, as the benchmark reads it.
func TestPaysimCounts429(t *testing.T) {
	state := startPaysim(t, "--infinia-qps", "2")
	infURL := strings.TrimSuffix(state, "paysim/state") + "api/v1/balance/query"
	codes := map[int]int{}
	for i := 0; i < 10; i++ {
		resp, err := http.Post(infURL, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes[resp.StatusCode]++
	}
	r := requests(t, state)
	if codes[http.StatusTooManyRequests] < 5 || r["infinia"].TooMany != codes[http.StatusTooManyRequests] || r["infinia"].Total != 10 {
		t.Fatalf("answers %v, counters %+v: want most of 10 quick requests at 2/s refused with 429, counted", codes, r["infinia"])
	}
}
