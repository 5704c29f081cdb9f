package payprotocol_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
	"github.com/settlekit/settle/pipeline"
)

// listAdding serves fake, adding extra to every currency list it answers:
// a provider whose list has entries the fake would not write.
func listAdding(t *testing.T, fake *payprotocoltest.Server, extra ...map[string]any) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !strings.HasSuffix(req.URL.Path, "/"+payprotocol.APICurrencyList) {
			fake.ServeHTTP(w, req)
			return
		}
		rec := httptest.NewRecorder()
		fake.ServeHTTP(rec, req)
		var ans struct {
			Code int              `json:"code"`
			Msg  string           `json:"msg"`
			Data []map[string]any `json:"data"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil {
			t.Errorf("the fake's currency list: %v", err)
		}
		ans.Data = append(ans.Data, extra...)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(ans)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestARefundInACurrencyOfTheSameSymbolIsHeld: the payment names its
// settlement currency by symbol alone, the refund by currencyId. When Pay
// Protocol's currency list has two currencies of the payment's symbol on
// its chain (a token and its bridged namesake, with other decimals), the
// refund's currency cannot be told to be the payment's: read as if it
// were, a whole 10 USDT refund of a second "USDT" of 2 decimals passed
// for 0.01 USD of a payment settled in the USDT of 6 decimals, below the
// 1.00 USD the order nets: the order was verified and its seller paid out
// of money returned to the buyer. It is held now, never paid on, naming
// both currencies; the reconciliation says it cannot compare.
func TestARefundInACurrencyOfTheSameSymbolIsHeld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newRig(t, payprotocoltest.Options{Polls: 50}, nil) // no --payprotocol-decimals: the list's alone
	for _, no := range []string{"T-TWIN", "T-OTHER"} {
		if _, err := r.fake.AddPayment(no, "USDT", 6, "10000000", payprotocol.PaymentPaid); err != nil {
			t.Fatal(err)
		}
		if err := r.fake.SetQuote(no, "USD", "10.00", true); err != nil {
			t.Fatal(err)
		}
	}
	twin, err := r.fake.AddRefund("T-TWIN", "1000", payprotocol.RefundSuccess) // 10.00 of a coin of 2 decimals
	if err != nil {
		t.Fatal(err)
	}
	if err := r.fake.SetRefundCurrency(twin, 50); err != nil {
		t.Fatal(err)
	}
	if _, err := r.fake.AddRefund("T-OTHER", "1000000", payprotocol.RefundSuccess); err != nil {
		t.Fatal(err)
	}
	// A second USDT on chain 1, of 2 decimals.
	base := listAdding(t, r.fake, map[string]any{"currencyId": 50, "chainId": 1, "name": "Bridged USDT", "symbol": "USDT",
		"address": "0x5050505050505050505050505050505050505050", "decimals": 2, "createTime": "2024-01-02 03:04:05", "icon": "", "exchangeRate": "1"})
	cfg := r.cfg
	cfg.BaseURL = base + "/api/mer"
	c, err := payprotocol.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	api := payprotocol.Adapter{Client: c}
	store := &verifyStore{states: map[string]string{}, items: []pipeline.VerifyItem{toVerify("T-TWIN", 100), toVerify("T-OTHER", 100)}}
	summary, err := payprotocol.Verify(ctx, store, api, nil, nil, &pipeline.Run{ID: 42})
	if summary != "Pay Protocol: 0 payments verified, 2 held, 0 rejected" || pipeline.KindOf(err) != pipeline.KindNeedsPerson {
		t.Fatalf("%q, %v; %v", summary, err, store.states)
	}
	for no, want := range map[string]string{"OT-TWIN": "currency 50", "OT-OTHER": "currency 1"} {
		got := store.states[no]
		for _, w := range []string{"held: held: Pay Protocol refund ", "cannot be read against the payment", want,
			"Pay Protocol's currency list of chain 1 has more than one USDT (currencies 1, 50)"} {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q, want it to say %q", no, got, w)
			}
		}
	}
	o, err := api.Order(ctx, "T-TWIN")
	if err != nil || o.Refund == nil {
		t.Fatalf("%+v, %v", o, err)
	}
	it := pipeline.RefundedItem{OrderNo: "OT-TWIN", ProviderTxnID: "T-TWIN", Currency: "USD", Gross: 1000, Refunded: 100, State: pipeline.ItemRecorded}
	if ms := payprotocol.Match(it, o); len(ms) != 1 || ms[0].Expected || ms[0].Theirs != "" || !strings.Contains(ms[0].Detail, "cannot be compared") {
		t.Errorf("matched: %+v, want one unexpected row saying the refund cannot be compared", ms)
	}

	// Another symbol added, chain 1 has one USDT: its refund is read as before.
	base = listAdding(t, r.fake, map[string]any{"currencyId": 60, "chainId": 1, "name": "Tron", "symbol": "TRX",
		"address": "T9y", "decimals": 6, "createTime": "2024-01-02 03:04:05", "icon": "", "exchangeRate": "1"})
	cfg.BaseURL = base + "/api/mer"
	if c, err = payprotocol.New(cfg); err != nil {
		t.Fatal(err)
	}
	store = &verifyStore{states: map[string]string{}, items: []pipeline.VerifyItem{toVerify("T-OTHER", 100)}}
	if s, err := payprotocol.Verify(ctx, store, payprotocol.Adapter{Client: c}, nil, nil, &pipeline.Run{ID: 42}); err != nil || s != "Pay Protocol: 1 payments verified, 0 held, 0 rejected" {
		t.Fatalf("one USDT: %q, %v; %v", s, err, store.states)
	}
}

// TestARefundOnANegativeChainIsHeld: a payment and its refund on chain -1
// (Pay Protocol's answer, not a chain) asked for chain -1's currency list,
// which settle refuses to send; that failure was taken for the list not
// answering: the order was left unverified "for the next run of the date"
// (exit 1) by every run, none of which could ever verify it, and nobody
// told why. It is held now for a person, as a refund naming no chain is,
// and the other orders go on.
func TestARefundOnANegativeChainIsHeld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := listRig(t, "T-NEG", "T-OK")
	neg := r.refund(t, "T-NEG", "1000000")
	r.refund(t, "T-OK", "1000000")
	if err := r.fake.PoisonPayment("T-NEG", "chainId", -1); err != nil {
		t.Fatal(err)
	}
	if err := r.fake.PoisonRefund(neg, "chainId", -1); err != nil {
		t.Fatal(err)
	}
	store := &verifyStore{states: map[string]string{}, items: []pipeline.VerifyItem{toVerify("T-NEG", 100), toVerify("T-OK", 100)}}
	s, err := payprotocol.Verify(ctx, store, payprotocol.Adapter{Client: r.client}, nil, nil, &pipeline.Run{ID: 42})
	if s != "Pay Protocol: 1 payments verified, 1 held, 0 rejected" || pipeline.KindOf(err) != pipeline.KindNeedsPerson || errors.Is(err, pipeline.ErrStillProcessing) {
		t.Fatalf("%q, %v", s, err)
	}
	if got, want := store.states["OT-NEG"], "held: held: Pay Protocol refund "+neg+" cannot be read against the payment (Pay Protocol names chain -1"; !strings.HasPrefix(got, want) {
		t.Errorf("%q, want %q...", got, want)
	}
}

// TestAnUnusableCurrencyHoldsBackOnlyItsRefunds: an entry of Pay Protocol's
// currency list that cannot be used (its decimals missing, another chain's)
// made the whole list unusable: every payment of the chain with a refund
// waited, exit 1, for as long as Pay Protocol listed it so, those in the
// chain's other currencies too. Now only the refunds it may concern wait:
// one in that currency, and those of payments settled in its symbol, of
// which it may be a namesake; the others are read.
func TestAnUnusableCurrencyHoldsBackOnlyItsRefunds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newRig(t, payprotocoltest.Options{Polls: 50}, nil)
	for _, no := range []string{"T-USDT", "T-TRX"} {
		if _, err := r.fake.AddPayment(no, "USDT", 6, "10000000", payprotocol.PaymentPaid); err != nil {
			t.Fatal(err)
		}
		if err := r.fake.SetQuote(no, "USD", "10.00", true); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.fake.AddRefund("T-USDT", "1000000", payprotocol.RefundSuccess); err != nil {
		t.Fatal(err)
	}
	trx, err := r.fake.AddRefund("T-TRX", "1000000", payprotocol.RefundSuccess)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.fake.SetRefundCurrency(trx, 60); err != nil {
		t.Fatal(err)
	}
	verify := func(extra map[string]any) (string, map[string]string, error) {
		t.Helper()
		cfg := r.cfg
		cfg.BaseURL = listAdding(t, r.fake, extra) + "/api/mer"
		c, err := payprotocol.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		store := &verifyStore{states: map[string]string{}, items: []pipeline.VerifyItem{toVerify("T-USDT", 100), toVerify("T-TRX", 100)}}
		s, err := payprotocol.Verify(ctx, store, payprotocol.Adapter{Client: c}, nil, nil, &pipeline.Run{ID: 42})
		return s, store.states, err
	}

	// TRX without decimals: the USDT refund is read, the TRX one waits.
	s, states, err := verify(map[string]any{"currencyId": 60, "chainId": 1, "name": "Tron", "symbol": "TRX", "address": "T9y"})
	if s != "Pay Protocol: 1 payments verified, 0 held, 0 rejected, 1 with refunds left unverified" || pipeline.KindOf(err) != pipeline.KindFailed ||
		!strings.Contains(fmt.Sprint(err), "Pay Protocol's currency list of chain 1 cannot be used for the refund's currency 60, the payment settled in USDT (entry 2: currency 60 (TRX): missing decimals") {
		t.Fatalf("%q, %v; %v", s, err, states)
	}
	if len(states) != 1 || states["OT-USDT"] != "recorded: " {
		t.Errorf("%v: want T-USDT verified, T-TRX left for the next run", states)
	}

	// A USDT of another chain in chain 1's list: which USDT the payment
	// was settled in cannot be told, so its refund waits too.
	s, states, err = verify(map[string]any{"currencyId": 70, "chainId": 2, "name": "USDT", "symbol": "USDT", "address": "0x7", "decimals": 6})
	if s != "Pay Protocol: 0 payments verified, 0 held, 0 rejected, 2 with refunds left unverified" || pipeline.KindOf(err) != pipeline.KindFailed ||
		!strings.Contains(fmt.Sprint(err), "(entry 2: currency 70 is not of chain 1)") || len(states) != 0 {
		t.Fatalf("%q, %v; %v", s, err, states)
	}
}
