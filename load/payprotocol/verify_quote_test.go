package payprotocol_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
)

// TestAQuoteIsReadAsANumber: Pay Protocol's own plugin checks a paid
// payment's quoteAmount against the order's total with PHP's ==, to which
// "1E+3" is 1000 (what Java's BigDecimal.toString writes once trailing
// zeros are stripped). The client refused an exponent, and the payment of
// the 1000.00 USD order was rejected for good: its seller never paid
// (found by a review). It is read exactly now, and verified. A quoteAmount
// that is no number at all ("-1000", a sign) is an answer that cannot be
// used: that order is held and asked again, not rejected; one finer than
// the currency's minor unit is still not the order's price: rejected.
func TestAQuoteIsReadAsANumber(t *testing.T) {
	t.Parallel()
	quotes := map[string]string{"T1": `"1E+3"`, "T2": `1E+3`, "T3": `"-1000"`, "T4": `"1.0000005E+3"`, "T5": `"1000.00"`}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/mer/payment/detail", func(w http.ResponseWriter, r *http.Request) {
		no := r.URL.Query().Get("outTradeNo")
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"code":200,"msg":"success","data":{"chainId":1,"outTradeNo":"` + no + `","outPaymentNo":"P` + no +
			`","isLegalTender":1,"quoteCurrencySymbol":"USD","quoteAmount":` + quotes[no] + `,"paymentStatus":0,"expectedAmount":"1000000000",` +
			`"settlementAmount":"1000000000","settlementCurrencySymbol":"USDT"}}`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c, err := payprotocol.New(payprotocol.Config{BaseURL: srv.URL + "/api/mer", APIKey: testKey, APISecret: testSecret,
		HTTP: payprotocol.NewHTTPClient(5 * time.Second), RetryBase: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var items []pipeline.VerifyItem
	for _, no := range []string{"T1", "T2", "T3", "T4", "T5"} {
		it := toVerify(no, 0)
		it.Amount = 100000 // 1000.00 USD
		items = append(items, it)
	}
	store := &verifyStore{states: map[string]string{}, items: items}
	_, err = payprotocol.Verify(context.Background(), store, payprotocol.Adapter{Client: c}, nil, nil, &pipeline.Run{ID: 42})
	if err != nil && pipeline.KindOf(err) != pipeline.KindNeedsPerson {
		t.Fatal(err)
	}
	for no, want := range map[string]string{"OT1": "recorded: ", "OT2": "recorded: ", "OT3": "held: ", "OT4": "rejected: ", "OT5": "recorded: "} {
		if got := store.states[no]; !strings.HasPrefix(got, want) {
			t.Errorf("%s is %q, want %s...", no, got, want)
		}
	}
	if !strings.Contains(store.states["OT3"], "quoteAmount") {
		t.Errorf("OT3's reason does not name quoteAmount: %q", store.states["OT3"])
	}
}
