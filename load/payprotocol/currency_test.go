package payprotocol_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
	"github.com/settlekit/settle/pipeline"
)

// TestCurrencyListAsPublished: GET /conf/list/currency?chainId= answers
// the merchant's currencies on the chain, each with its currencyId,
// chainId, symbol and decimals; numbers written as strings are read too;
// an entry that cannot be trusted (another chain's, an id twice, no
// decimals) is returned with its Problem (the refunds it may concern wait
// for it: TestAnUnusableCurrencyHoldsBackOnlyItsRefunds); one that cannot
// be told apart from the others (no currencyId, no symbol) makes the list
// an answer that cannot be used.
func TestCurrencyListAsPublished(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newRig(t, payprotocoltest.Options{}, nil)
	trx, err := r.fake.AddCurrency(1, "TRX", 6)
	if err != nil {
		t.Fatal(err)
	}
	list, err := r.client.CurrencyList(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0] != (payprotocol.Currency{ID: 1, ChainID: 1, Symbol: "USDT", Name: "USDT", Address: list[0].Address, Decimals: 6}) ||
		list[1].ID != trx || list[1].Symbol != "TRX" || list[1].Decimals != 6 {
		t.Fatalf("chain 1: %+v", list)
	}
	for _, tc := range []struct{ name, data, problem string }{
		{"another chain's", `[{"currencyId":1,"chainId":2,"symbol":"USDT","decimals":6}]`, "entry 1: currency 1 is not of chain 1"},
		{"an id twice", `[{"currencyId":1,"chainId":1,"symbol":"USDT","decimals":6},{"currencyId":1,"chainId":1,"symbol":"TRX","decimals":6}]`, "entry 2: currencyId 1 listed twice (entries 1 and 2)"},
		{"no decimals", `[{"currencyId":1,"chainId":1,"symbol":"USDT"}]`, "entry 1: currency 1 (USDT): missing decimals, or outside 0..36"},
		{"too many decimals", `[{"currencyId":1,"chainId":1,"symbol":"USDT","decimals":37}]`, "entry 1: currency 1 (USDT): missing decimals, or outside 0..36"},
	} {
		c := clientAnswering(t, `{"code":200,"msg":"success","data":`+tc.data+`}`)
		list, err := c.CurrencyList(ctx, 1)
		if err != nil || len(list) == 0 {
			t.Fatalf("%s: %+v, %v", tc.name, list, err)
		}
		for _, cur := range list {
			if cur.Problem != tc.problem || cur.Decimals != 0 {
				t.Errorf("%s: %+v, want the problem %q", tc.name, cur, tc.problem)
			}
		}
	}
	for _, tc := range []struct{ name, data string }{
		{"no symbol", `[{"currencyId":1,"chainId":1,"decimals":6}]`},
		{"a symbol with spaces", `[{"currencyId":1,"chainId":1,"symbol":"USDT ","decimals":6}]`},
		{"no currencyId", `[{"currencyId":1,"chainId":1,"symbol":"USDT","decimals":6},{"chainId":1,"symbol":"TRX","decimals":6}]`},
		{"currencyId 0", `[{"currencyId":0,"chainId":1,"symbol":"TRX","decimals":6}]`},
	} {
		c := clientAnswering(t, `{"code":200,"msg":"success","data":`+tc.data+`}`)
		if _, err := c.CurrencyList(ctx, 1); !errors.Is(err, payprotocol.ErrAnswer) {
			t.Errorf("%s: %v, want an answer that cannot be used", tc.name, err)
		}
	}
	c := clientAnswering(t, `{"code":200,"msg":"success","data":[{"currencyId":"7","chainId":"1","name":"TRON","symbol":"TRX","address":"T9y","decimals":"6","createTime":"2023-08-02 18:04:33","icon":"data:image/webp;base64,UklG","exchangeRate":"7.1"}]}`)
	if list, err := c.CurrencyList(ctx, 1); err != nil || len(list) != 1 || list[0] != (payprotocol.Currency{ID: 7, ChainID: 1, Symbol: "TRX", Name: "TRON", Address: "T9y", Decimals: 6}) {
		t.Errorf("the published example's shape: %+v, %v", list, err)
	}
}

// clientAnswering is a client whose every request is answered body.
func clientAnswering(t *testing.T, body string) *payprotocol.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	c, err := payprotocol.New(payprotocol.Config{BaseURL: srv.URL + "/api/mer", APIKey: testKey, APISecret: testSecret,
		HTTP: payprotocol.NewHTTPClient(5 * time.Second), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestARefundInAnotherCurrencyIsHeld: a refund names its currency by
// currencyId, and a refund's amount is a scaled integer of that currency.
// One in another currency than its payment's settlement currency (1 TRX
// of a payment settled in USDT), or in a currency Pay Protocol's currency
// list does not have, was read as if it were in the payment's currency,
// and 1 TRX passed for the 1.00 USD the order nets: the order was verified
// and its seller paid. It is held now, naming both currencies, never paid
// on, verified again by every run of its date; the reconciliation says
// why it cannot compare. A refund in the payment's currency is read with
// the list's decimals; configured decimals that disagree with the list's
// hold the order for settle's configuration.
func TestARefundInAnotherCurrencyIsHeld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := listRig(t, "T-TRX", "T-UNLISTED", "T-OK", "T-BNB")
	trx, err := r.fake.AddCurrency(1, "TRX", 6)
	if err != nil {
		t.Fatal(err)
	}
	refund := map[string]string{}
	for _, no := range []string{"T-TRX", "T-UNLISTED", "T-OK", "T-BNB"} {
		refund[no] = r.refund(t, no, "1000000")
	}
	if err := r.fake.SetRefundCurrency(refund["T-TRX"], trx); err != nil {
		t.Fatal(err)
	}
	if err := r.fake.SetRefundCurrency(refund["T-UNLISTED"], 99); err != nil {
		t.Fatal(err)
	}
	// USDT of chain 3 (currency 3): another currency than chain 1's USDT,
	// though of the same symbol, and not on chain 1's list.
	if err := r.fake.SetRefundCurrency(refund["T-BNB"], 3); err != nil {
		t.Fatal(err)
	}
	api := payprotocol.Adapter{Client: r.client}
	store := &verifyStore{states: map[string]string{}, items: []pipeline.VerifyItem{toVerify("T-TRX", 100), toVerify("T-UNLISTED", 100), toVerify("T-OK", 100), toVerify("T-BNB", 100)}}
	summary, err := payprotocol.Verify(ctx, store, api, nil, nil, &pipeline.Run{ID: 42})
	if summary != "Pay Protocol: 1 payments verified, 3 held, 0 rejected" || pipeline.KindOf(err) != pipeline.KindNeedsPerson {
		t.Fatalf("%q, %v", summary, err)
	}
	for no, want := range map[string][]string{
		"OT-TRX":      {"held: held: Pay Protocol refund " + refund["T-TRX"] + " cannot be read against the payment", "in TRX (currency " + strconv.Itoa(trx) + ")", "settled in USDT (currency 1) on chain 1"},
		"OT-UNLISTED": {"held: held: Pay Protocol refund " + refund["T-UNLISTED"] + " cannot be read against the payment", "currency 99, which Pay Protocol's currency list of chain 1 does not have", "USDT (currency 1)"},
		"OT-BNB":      {"held: held: Pay Protocol refund " + refund["T-BNB"] + " cannot be read against the payment", "currency 3, which Pay Protocol's currency list of chain 1 does not have"},
		"OT-OK":       {"recorded: "},
	} {
		got := store.states[no]
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q, want it to say %q", no, got, w)
			}
		}
	}
	if n := r.fake.Calls(payprotocol.APICurrencyList); n != 1 {
		t.Errorf("chain 1's currency list asked %d times for 4 refunds, want once", n)
	}

	// The reconciliation does not compare such a refund: a row saying why.
	o, err := api.Order(ctx, "T-TRX")
	if err != nil || o.Refund == nil {
		t.Fatalf("%+v, %v", o, err)
	}
	it := pipeline.RefundedItem{OrderNo: "OT-TRX", ProviderTxnID: "T-TRX", Currency: "USD", Gross: 1000, Refunded: 100, State: pipeline.ItemRecorded}
	if ms := payprotocol.Match(it, o); len(ms) != 1 || ms[0].Expected || ms[0].Theirs != "" || !strings.Contains(ms[0].Detail, "cannot be compared: the refund is in TRX") {
		t.Errorf("matched: %+v, want one unexpected row saying the refund in TRX cannot be compared", ms)
	}

	// Configured decimals that disagree with the list's hold the order,
	// naming both, for settle's configuration to be corrected.
	cfg := r.cfg
	cfg.Decimals = map[string]int{"1:USDT": 18}
	c, err := payprotocol.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	store = &verifyStore{states: map[string]string{}, items: []pipeline.VerifyItem{toVerify("T-OK", 100)}}
	if _, err := payprotocol.Verify(ctx, store, payprotocol.Adapter{Client: c}, nil, nil, &pipeline.Run{ID: 42}); pipeline.KindOf(err) != pipeline.KindNeedsPerson {
		t.Fatal(err)
	}
	if got, want := store.states["OT-OK"], "held: held: Pay Protocol refund "+refund["T-OK"]+" is in an amount settle cannot read (--payprotocol-decimals gives USDT on chain 1 18 decimals, Pay Protocol's currency list 6 (currency 1): correct or remove 1:USDT)"; !strings.HasPrefix(got, want) {
		t.Errorf("%q, want %q...", got, want)
	}
}

// TestARefundListedInAnotherCurrencyHoldsItsOrder: the refund list's
// entries name their currency too: a successful refund the list shows in
// another currency than its payment's cannot be added up with the others,
// and holds its order, as a latest refund in another currency does.
func TestARefundListedInAnotherCurrencyHoldsItsOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := listRig(t, "T-TWO", "T-OK")
	trx, err := r.fake.AddCurrency(1, "TRX", 6)
	if err != nil {
		t.Fatal(err)
	}
	first := r.refund(t, "T-TWO", "500000")
	r.refund(t, "T-TWO", "500000")
	r.refund(t, "T-OK", "500000")
	r.refund(t, "T-OK", "500000")
	if err := r.fake.SetRefundCurrency(first, trx); err != nil {
		t.Fatal(err)
	}
	store := &verifyStore{states: map[string]string{}, items: []pipeline.VerifyItem{toVerify("T-TWO", 100), toVerify("T-OK", 100)}}
	p := payprotocol.NewProvider(payprotocol.ProviderConfig{Client: r.client, Store: store})
	s, err := p.Upload(ctx, &pipeline.Run{ID: 42, Key: pipeline.RunKey{Date: pipeline.DateOf(time.Now().UTC())}, TimeZone: "UTC"})
	if !heldForAPerson(err, "1 Pay Protocol payments held") || s != "Pay Protocol: 1 payments verified, 1 held, 0 rejected" {
		t.Fatalf("%q, %v", s, err)
	}
	if got, want := store.states["OT-TWO"], "held: held: Pay Protocol refund "+first+" of the order cannot be read (the refund is in TRX"; !strings.HasPrefix(got, want) {
		t.Errorf("%q, want %q...", got, want)
	}
	if got := store.states["OT-OK"]; got != "recorded: " {
		t.Errorf("OT-OK: %q", got)
	}
}

// TestACurrencyListThatCannotBeReadHoldsBackOnlyRefundedPayments: the
// currency list is read only for refunds, once per chain: when it cannot
// be read, a payment whose refunds need it is left unverified for the
// next run of the date (as when the refund list cannot be read, exit 1),
// not read as if its refunds were in its currency, while the payments
// without refunds are verified; the list is not asked again, with its
// retries, for each refund. The reconciliation's row says why the refund
// cannot be compared. Once the list answers, the next run verifies it.
func TestACurrencyListThatCannotBeReadHoldsBackOnlyRefundedPayments(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := listRig(t, "T-R1", "T-R2", "T-NONE")
	r.refund(t, "T-R1", "1000000")
	r.refund(t, "T-R2", "1000000")
	if _, err := r.fake.AddPayment("T-PEND", "USDT", 6, "10000000", payprotocol.PaymentPending); err != nil {
		t.Fatal(err)
	}
	r.faults.Add(fault.Rule{Endpoint: payprotocol.APICurrencyList, Kind: fault.Unavailable, Prob: 1})
	api := payprotocol.Adapter{Client: r.client}
	items := []pipeline.VerifyItem{toVerify("T-R1", 100), toVerify("T-R2", 100), toVerify("T-NONE", 0), toVerify("T-PEND", 0)}
	store := &verifyStore{states: map[string]string{}, items: items}
	pacer := pipeline.NewPacer(pipeline.Limits{MaxInFlight: 3})
	s, err := payprotocol.Verify(ctx, store, api, pacer, nil, &pipeline.Run{ID: 42})
	// Resumable (exit 1), and naming the payment held for a person too.
	if !errors.Is(err, pipeline.ErrStillProcessing) || pipeline.KindOf(err) != pipeline.KindFailed || !strings.Contains(err.Error(), "Pay Protocol's currency list could not be read, or not for their refunds' currencies, so 2 payments with refunds were not verified yet") ||
		!strings.Contains(err.Error(), "1 Pay Protocol payments held") || s != "Pay Protocol: 1 payments verified, 1 held, 0 rejected, 2 with refunds left unverified" {
		t.Fatalf("%q, %v", s, err)
	}
	if len(store.states) != 2 || store.states["OT-NONE"] != "recorded: " || !strings.HasPrefix(store.states["OT-PEND"], "held: ") {
		t.Fatalf("%v: want T-NONE verified, T-PEND held, the others left unverified", store.states)
	}
	if n := r.fake.Calls(payprotocol.APICurrencyList); n != 5 {
		t.Errorf("the currency list asked %d times, want once with its 4 retries (the default)", n)
	}
	o, err := api.Order(ctx, "T-R1")
	if err != nil || o.Refund == nil || !o.Refund.CurrenciesUnread {
		t.Fatalf("%+v, %v", o, err)
	}
	it := pipeline.RefundedItem{OrderNo: "OT-R1", ProviderTxnID: "T-R1", Currency: "USD", Gross: 1000, Refunded: 100, State: pipeline.ItemRecorded}
	if ms := payprotocol.Match(it, o); len(ms) != 1 || ms[0].Expected || !strings.Contains(ms[0].Detail, "cannot be compared: Pay Protocol's currency list of chain 1 could not be read") {
		t.Errorf("matched: %+v", ms)
	}

	// The next run (another process: its client reads the list again).
	r.faults.Clear()
	c, err := payprotocol.New(r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n := r.fake.Calls(payprotocol.APICurrencyList); n != 5 {
		t.Errorf("the reconciliation's question asked the list again (%d calls): want the run's failure kept", n)
	}
	store = &verifyStore{states: map[string]string{}, items: items[:2]}
	if s, err := payprotocol.Verify(ctx, store, payprotocol.Adapter{Client: c}, nil, nil, &pipeline.Run{ID: 42}); err != nil || s != "Pay Protocol: 2 payments verified, 0 held, 0 rejected" {
		t.Fatalf("the list back: %q, %v", s, err)
	}
}
