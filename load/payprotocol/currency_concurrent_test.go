package payprotocol_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/load/payprotocol"
)

// TestCurrenciesConcurrently: many callers of Client.Currencies at once,
// on two chains, share one request per chain and the same list (run with
// -race); a reader whose context ends leaves no failure kept: a caller
// beside it, and the next, ask for themselves and get the list.
func TestCurrenciesConcurrently(t *testing.T) {
	t.Parallel()
	var asked atomic.Int32
	arrived := make(chan struct{}, 16)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		asked.Add(1)
		arrived <- struct{}{}
		select {
		case <-release:
		case <-req.Context().Done():
			return
		}
		chain := req.URL.Query().Get("chainId")
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"code":200,"msg":"success","data":[{"currencyId":` + chain + `,"chainId":` + chain + `,"name":"Tether USD","symbol":"USDT","address":"T","decimals":6}]}`))
	}))
	t.Cleanup(srv.Close)
	c, err := payprotocol.New(payprotocol.Config{BaseURL: srv.URL + "/api/mer", APIKey: testKey, APISecret: testSecret,
		HTTP: payprotocol.NewHTTPClient(5 * time.Second), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}

	// A reader whose context ends while Pay Protocol has not answered.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := c.Currencies(ctx, 1); done <- err }()
	<-arrived
	var wg sync.WaitGroup
	lists := make([][]payprotocol.Currency, 20)
	errs := make([]error, 20)
	for i := range lists {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lists[i], errs[i] = c.Currencies(context.Background(), 1+i%2)
		}()
	}
	cancel()
	if err := <-done; err == nil || !errors.Is(err, context.Canceled) && !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("the cancelled reader: %v, want its context's end", err)
	}
	close(release)
	wg.Wait()
	for i := range lists {
		chain := 1 + i%2
		if errs[i] != nil || len(lists[i]) != 1 || lists[i][0].ChainID != chain || lists[i][0].ID != chain {
			t.Errorf("caller %d, chain %d: %+v, %v", i, chain, lists[i], errs[i])
		}
	}
	// The cancelled request, then one per chain: the callers that joined
	// the cancelled one wait for one of them to ask again.
	if n := asked.Load(); n != 3 {
		t.Errorf("%d requests, want the cancelled one and one per chain", n)
	}
	before := asked.Load()
	for chain := 1; chain <= 2; chain++ {
		if l, err := c.Currencies(context.Background(), chain); err != nil || len(l) != 1 {
			t.Errorf("chain %d again: %+v, %v", chain, l, err)
		}
	}
	if n := asked.Load(); n != before {
		t.Errorf("asked again once read: %d requests, want %d", n, before)
	}
}
