package wechatpaytest_test

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
)

func day(y int, m time.Month, d int) pipeline.Date { return pipeline.Date{Year: y, Month: m, Day: d} }

var testKeys = sync.OnceValues(wechatpaytest.GenerateKeys)

func keys(t *testing.T) wechatpaytest.Keys {
	t.Helper()
	k, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// start runs a fake under prefix and returns it with its URL and a client.
func start(t *testing.T, o wechatpaytest.Options, prefix string) (*wechatpaytest.Server, string, *wechatpay.Client) {
	t.Helper()
	o.Keys, o.MchID = keys(t), "1900000100"
	fake := wechatpaytest.New(o)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	cfg := fake.ClientConfig(srv.URL + prefix)
	cfg.RetryBase, cfg.RetryMax = time.Millisecond, time.Millisecond
	if o.Now != nil {
		cfg.Now = o.Now
	}
	c, err := wechatpay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return fake, srv.URL, c
}

// signed makes a request signed with key at ts, as a client would.
func signed(t *testing.T, k wechatpaytest.Keys, mchID, method, url, body string, ts time.Time) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	msg := wechatpay.RequestMessage(method, req.URL.RequestURI(), ts.Unix(), "NONCE1", []byte(body))
	sig, err := wechatpay.Sign(k.MerchantPrivate, msg)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", wechatpay.Authorization{MchID: mchID, Nonce: "NONCE1", Timestamp: ts.Unix(), Serial: k.MerchantSerial, Signature: sig}.String())
	req.Header.Set(wechatpay.HeaderSerial, k.PlatformSerial)
	return req
}

// do sends req and returns the status, the code of the answer and whether
// the answer's signature verified.
func do(t *testing.T, k wechatpaytest.Keys, req *http.Request) (int, string, bool) {
	t.Helper()
	resp, err := wechatpay.NewHTTPClient(5 * time.Second).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e struct {
		Code string `json:"code"`
	}
	json.Unmarshal(body, &e)
	pub := map[string]*rsa.PublicKey{k.PlatformSerial: &k.PlatformPrivate.PublicKey}
	return resp.StatusCode, e.Code, wechatpay.VerifyResponse(pub, resp.Header, body, time.Now()) == nil
}

func TestAuthenticationRefusals(t *testing.T) {
	k := keys(t)
	fake, url, _ := start(t, wechatpaytest.Options{}, "")
	path := url + "/v3/global/profit-sharing/transactions/T1/amounts?sub_mchid=1900000109"
	now := time.Now()
	other := k
	other.MerchantPrivate = k.PlatformPrivate
	for name, req := range map[string]*http.Request{
		"no Authorization":   func() *http.Request { r, _ := http.NewRequest("GET", path, nil); return r }(),
		"another merchant":   signed(t, k, "1900000999", "GET", path, "", now),
		"another key":        signed(t, other, "1900000100", "GET", path, "", now),
		"5 minutes old":      signed(t, k, "1900000100", "GET", path, "", now.Add(-5*time.Minute)),
		"signed another URL": signed(t, k, "1900000100", "GET", path+"&x=1", "", now),
	} {
		if name == "signed another URL" {
			req.URL.RawQuery = "sub_mchid=1900000109"
		}
		status, code, ok := do(t, k, req)
		if status != http.StatusUnauthorized || code != wechatpay.CodeSignError || !ok {
			t.Errorf("%s: HTTP %d %s (signed answer: %v), want a signed 401 SIGN_ERROR", name, status, code, ok)
		}
	}
	// A good one gets through (to a 404 for the unknown transaction).
	if status, code, ok := do(t, k, signed(t, k, "1900000100", "GET", path, "", now)); status != 404 || code != wechatpay.CodeNotFound || !ok {
		t.Fatalf("good request: HTTP %d %s %v", status, code, ok)
	}
	// A request naming an unknown platform key is refused; one naming none
	// is counted.
	other = k
	other.PlatformSerial = "PUB_KEY_ID_NOPE"
	if status, code, ok := do(t, k, signed(t, other, "1900000100", "GET", path, "", now)); status != 400 || code != wechatpay.CodeParamError || !ok {
		t.Fatalf("unknown Wechatpay-Serial: HTTP %d %s %v", status, code, ok)
	}
	noSerial := signed(t, k, "1900000100", "GET", path, "", now)
	noSerial.Header.Del(wechatpay.HeaderSerial)
	if status, _, ok := do(t, k, noSerial); status != 404 || !ok || fake.WithoutSerial() != 1 {
		t.Fatalf("no Wechatpay-Serial: HTTP %d %v, counted %d", status, ok, fake.WithoutSerial())
	}
	// An unknown path: an unsigned 404.
	if status, _, ok := do(t, k, signed(t, k, "1900000100", "GET", url+"/v3/global/profit-sharing/nothing", "", now)); status != 404 || ok {
		t.Fatalf("unknown path: HTTP %d, signed %v", status, ok)
	}
}

func TestMountedUnderAPrefix(t *testing.T) {
	fake, _, c := start(t, wechatpaytest.Options{}, "/wechat")
	fake.AddTransaction("1900000109", "T1", "CNY", 500)
	if u, err := c.RemainingAmount(context.Background(), "1900000109", "T1"); err != nil || u.Amount != 500 {
		t.Fatalf("RemainingAmount = %+v, %v", u, err)
	}
}

func TestFaultAnswers(t *testing.T) {
	ctx := context.Background()
	inj := fault.New(1,
		fault.Rule{Endpoint: wechatpay.APIAmounts, Kind: fault.TooMany, Calls: []int{1}},
		fault.Rule{Endpoint: wechatpay.APIAmounts, Kind: fault.Unavailable, Calls: []int{2}},
		fault.Rule{Endpoint: wechatpay.APIAmounts, Kind: fault.Latency, Calls: []int{3}, Delay: 20 * time.Millisecond})
	fake, _, c := start(t, wechatpaytest.Options{Faults: inj}, "")
	fake.AddTransaction("1900000109", "T1", "CNY", 500)
	start := time.Now()
	if _, err := c.RemainingAmount(ctx, "1900000109", "T1"); err != nil {
		t.Fatal(err)
	}
	if fake.Calls(wechatpay.APIAmounts) != 3 || fake.Count429() != 1 || time.Since(start) < time.Second {
		t.Fatalf("429 (Retry-After 1s), 503, slow answer: %d calls, %d 429s in %s", fake.Calls(wechatpay.APIAmounts), fake.Count429(), time.Since(start))
	}
}

func TestBillURLExpires(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	now := time.Date(2025, 9, 3, 10, 0, 0, 0, wechatpay.Beijing)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	_, _, c := start(t, wechatpaytest.Options{Now: clock}, "")
	b, err := c.BillDownloadURL(ctx, "1900000109", day(2025, 9, 3))
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.DownloadBill(ctx, b)
	if lines, perr := wechatpay.DefaultBillLayout.Parse(data); err != nil || perr != nil || len(lines) != 0 {
		t.Fatalf("empty bill: %q, %v, %v", data, err, perr)
	}
	mu.Lock()
	now = now.Add(31 * time.Second)
	mu.Unlock()
	var we *wechatpay.Error
	if _, err := c.DownloadBill(ctx, b); !errors.As(err, &we) || we.Code != wechatpay.CodeInvalidRequest || strings.Contains(err.Error(), "token") {
		t.Fatalf("expired URL: %v", err)
	}
}

func TestSettlementPageLimit(t *testing.T) {
	_, _, c := start(t, wechatpaytest.Options{}, "")
	q := wechatpay.SettlementQuery{SubMchID: "1900000109", State: wechatpay.SettleStateSettled, Start: day(2025, 9, 1), End: day(2025, 9, 3)}
	var we *wechatpay.Error
	// WeChat Pay publishes "up to 30 records" a page.
	if _, err := c.SettlementPage(context.Background(), q, 0, wechatpay.MaxSettlementLimit+1); !errors.As(err, &we) || we.Code != wechatpay.CodeParamError {
		t.Fatalf("limit %d: %v", wechatpay.MaxSettlementLimit+1, err)
	}
	if p, err := c.SettlementPage(context.Background(), q, 0, wechatpay.MaxSettlementLimit); err != nil || len(p.Items) != 0 || p.Total != 0 {
		t.Fatalf("empty page: %+v, %v", p, err)
	}
}

func TestWriteFilesLoadBack(t *testing.T) {
	k := keys(t)
	dir := t.TempDir()
	if err := k.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	priv, err := wechatpay.LoadPrivateKey(filepath.Join(dir, wechatpaytest.MerchantKeyFile))
	if err != nil || !priv.Equal(k.MerchantPrivate) {
		t.Fatalf("merchant key: %v", err)
	}
	serial, pub, err := wechatpay.LoadPlatformKey(filepath.Join(dir, wechatpaytest.PlatformPublicFile), k.PlatformSerial)
	if err != nil || serial != k.PlatformSerial || !pub.Equal(&k.PlatformPrivate.PublicKey) {
		t.Fatalf("platform key: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, wechatpaytest.MerchantKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode: %v", err)
	}
	if _, _, err := wechatpay.LoadPlatformKey(filepath.Join(dir, wechatpaytest.PlatformPublicFile), ""); err == nil {
		t.Fatal("a bare public key needs its id")
	}
	if !strings.HasPrefix(k.PlatformSerial, "PUB_KEY_ID_") {
		t.Fatalf("platform serial %q", k.PlatformSerial)
	}
}

// distributed sets up a fake with two transactions at one sub-merchant,
// settled by settle's two kinds of request: D-1 distributes 30 of T1 to the
// platform's receiver (the rest unfrozen), U-1 unfreezes T2.
func distributed(t *testing.T) (*wechatpaytest.Server, *wechatpay.Client, pipeline.Date) {
	t.Helper()
	ctx := context.Background()
	now := time.Date(2025, 9, 3, 10, 0, 0, 0, wechatpay.Beijing)
	fake, _, c := start(t, wechatpaytest.Options{Polls: -1, Now: func() time.Time { return now }}, "")
	fake.SetReceiver(sub, wechatpay.TypeMerchantID, "1900009999", wechatpay.ReceiverEffective)
	fake.AddTransaction(sub, "T1", "CNY", 100)
	fake.AddTransaction(sub, "T2", "CNY", 50)
	if _, err := c.Distribute(ctx, wechatpay.Distribution{SubMchID: sub, TransactionID: "T1", OutOrderNo: "D-1", UnfreezeUnsplit: true,
		Receivers: []wechatpay.Share{{Type: wechatpay.TypeMerchantID, Account: "1900009999", Currency: "CNY", Amount: 30, Description: "commission"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unfreeze(ctx, wechatpay.Unfreeze{SubMchID: sub, TransactionID: "T2", OutOrderNo: "U-1", Description: "unfreeze"}); err != nil {
		t.Fatal(err)
	}
	return fake, c, pipeline.DateOf(now)
}

const sub = "1900000109"

// reported returns what WeChat Pay reports of a day: the amount of each
// query's first line and of each bill line by out_order_no and type
// (missing: not found), and the day's settlement details as "STATE amount".
func reported(t *testing.T, c *wechatpay.Client, d pipeline.Date) (queries, bill map[string]int64, settlements []string) {
	t.Helper()
	ctx := context.Background()
	queries, bill = map[string]int64{}, map[string]int64{}
	for no, txn := range map[string]string{"D-1": "T1", "U-1": "T2"} {
		o, err := c.QueryOrder(ctx, sub, txn, no)
		if errors.Is(err, wechatpay.ErrNotFound) {
			continue
		}
		// One line: a distribution's receiver or an unfreeze's; a
		// distribution with unfreeze_unsplit also answers the rest
		// released to the seller, as WeChat Pay does.
		if err != nil || o.State != wechatpay.StateFinished || len(o.Receivers) == 0 || len(o.Receivers) > 2 ||
			o.Receivers[0].SettlementAmount != o.Receivers[0].Amount ||
			len(o.Receivers) == 2 && (o.Receivers[1].Account != sub || o.Receivers[1].Description != wechatpaytest.RestDescription) {
			t.Fatalf("query %s: %+v, %v", no, o, err)
		}
		queries[no] = o.Receivers[0].Amount
	}
	b, err := c.BillDownloadURL(ctx, sub, d)
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.DownloadBill(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := wechatpay.DefaultBillLayout.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		bill[l.OutOrderNo+" "+l.Type] = l.Amount
	}
	for _, state := range []string{wechatpay.SettleStateSettled, wechatpay.SettleStateUnsettled} {
		for s, err := range c.Settlements(ctx, wechatpay.SettlementQuery{SubMchID: sub, State: state, Start: d, End: d.AddDays(7)}) {
			if err != nil {
				t.Fatal(err)
			}
			if s.TradeStart != d || s.TradeEnd != d {
				continue
			}
			settlements = append(settlements, fmt.Sprintf("%s %d", s.State, s.Amount.Settled+s.Amount.Unsettled))
		}
	}
	return queries, bill, settlements
}

func TestUntamperedReportsWhatMoved(t *testing.T) {
	_, c, d := distributed(t)
	q, b, s := reported(t, c, d)
	if !maps.Equal(q, map[string]int64{"D-1": 30, "U-1": 50}) || !maps.Equal(b, map[string]int64{"D-1 DISTRIBUTION": 30, "D-1 UNFREEZE": 70, "U-1 UNFREEZE": 50}) ||
		!slices.Equal(s, []string{"UNSETTLE 30"}) {
		t.Fatalf("queries %v, bill %v, settlements %q", q, b, s)
	}
}

func TestForgetOrder(t *testing.T) {
	fake, c, d := distributed(t)
	fake.ForgetOrder("U-1")
	q, b, s := reported(t, c, d)
	if !maps.Equal(q, map[string]int64{"D-1": 30}) || !maps.Equal(b, map[string]int64{"D-1 DISTRIBUTION": 30, "D-1 UNFREEZE": 70}) || !slices.Equal(s, []string{"UNSETTLE 30"}) {
		t.Fatalf("U-1 forgotten: queries %v, bill %v, settlements %q", q, b, s)
	}
	fake.Settle()
	fake.ForgetOrder("D-1")
	q, b, s = reported(t, c, d)
	if len(q) != 0 || len(b) != 0 || len(s) != 0 {
		t.Fatalf("both forgotten, after settling: queries %v, bill %v, settlements %q", q, b, s)
	}
	if fake.Distributed("T1") != 30 || fake.Unfrozen("T1") != 70 || fake.Unfrozen("T2") != 50 {
		t.Fatal("forgetting an order moved money back")
	}
}

func TestForgetOrderKeepsTheRestOfTheBatch(t *testing.T) {
	fake, c, d := distributed(t)
	fake.AddTransaction(sub, "T3", "CNY", 100)
	if _, err := c.Distribute(context.Background(), wechatpay.Distribution{SubMchID: sub, TransactionID: "T3", OutOrderNo: "D-3", UnfreezeUnsplit: true,
		Receivers: []wechatpay.Share{{Type: wechatpay.TypeMerchantID, Account: "1900009999", Currency: "CNY", Amount: 20, Description: "commission"}}}); err != nil {
		t.Fatal(err)
	}
	fake.ForgetOrder("D-1")
	if _, _, s := reported(t, c, d); !slices.Equal(s, []string{"UNSETTLE 20"}) {
		t.Fatalf("settlements %q, want the other distribution's 20 left", s)
	}
}

func TestSetReportedAmount(t *testing.T) {
	fake, c, d := distributed(t)
	fake.SetReportedAmount("D-1", 29)
	fake.SetReportedAmount("U-1", 51)
	q, b, s := reported(t, c, d)
	if !maps.Equal(q, map[string]int64{"D-1": 29, "U-1": 51}) || !maps.Equal(b, map[string]int64{"D-1 DISTRIBUTION": 29, "D-1 UNFREEZE": 70, "U-1 UNFREEZE": 51}) ||
		!slices.Equal(s, []string{"UNSETTLE 30"}) {
		t.Fatalf("queries %v, bill %v, settlements %q (settlement keeps what moved)", q, b, s)
	}
	if fake.Distributed("T1") != 30 {
		t.Fatal("reporting another amount moved money")
	}
}

// A bill lists its own sub-merchant's distributions only, an out_order_no
// another sub-merchant used too included (the fake keeps orders by
// sub-merchant, so that a bill reads only its own).
func TestBillListsItsSubMerchantOnly(t *testing.T) {
	fake, c, d := distributed(t)
	const other = "1900000110"
	fake.SetReceiver(other, wechatpay.TypeMerchantID, "1900009999", wechatpay.ReceiverEffective)
	fake.AddTransaction(other, "T9", "CNY", 100)
	if _, err := c.Distribute(context.Background(), wechatpay.Distribution{SubMchID: other, TransactionID: "T9", OutOrderNo: "D-1", UnfreezeUnsplit: true,
		Receivers: []wechatpay.Share{{Type: wechatpay.TypeMerchantID, Account: "1900009999", Currency: "CNY", Amount: 20, Description: "commission"}}}); err != nil {
		t.Fatal(err)
	}
	if _, b, _ := reported(t, c, d); !maps.Equal(b, map[string]int64{"D-1 DISTRIBUTION": 30, "D-1 UNFREEZE": 70, "U-1 UNFREEZE": 50}) {
		t.Fatalf("bill of %s: %v", sub, b)
	}
	bill := func() map[string]int64 {
		u, err := c.BillDownloadURL(context.Background(), other, d)
		if err != nil {
			t.Fatal(err)
		}
		data, err := c.DownloadBill(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := wechatpay.DefaultBillLayout.Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]int64{}
		for _, l := range lines {
			m[l.Sponsor+" "+l.OutOrderNo+" "+l.Type] = l.Amount
		}
		return m
	}
	if b := bill(); !maps.Equal(b, map[string]int64{other + " D-1 DISTRIBUTION": 20, other + " D-1 UNFREEZE": 80}) {
		t.Fatalf("bill of %s: %v", other, b)
	}
	fake.ForgetOrder("D-1") // at whichever sub-merchant: both
	if b := bill(); len(b) != 0 {
		t.Fatalf("bill of %s after D-1 forgotten: %v", other, b)
	}
}

// TestDistributesInCNYOnly: WeChat Pay publishes a receiver's currency as
// CNY (only, today). A distribution with a line in another currency is
// refused 400 PARAM_ERROR, saying so, and moves nothing; a transaction
// paid in HKD is held, and reported, in CNY. (The fake distributed an HKD
// transaction in HKD, as settle's seed and demo assumed WeChat Pay would.)
func TestDistributesInCNYOnly(t *testing.T) {
	ctx := context.Background()
	fake, _, c := start(t, wechatpaytest.Options{Polls: -1}, "")
	fake.SetReceiver(sub, wechatpay.TypeMerchantID, "1900009999", wechatpay.ReceiverEffective)
	fake.AddTransaction(sub, "T1", "HKD", 1000)
	left, err := c.RemainingAmount(ctx, sub, "T1")
	if err != nil || left.Currency != "CNY" || left.Amount != 1000 {
		t.Fatalf("remaining amount of an HKD transaction: %+v, %v; want 1000 CNY fen", left, err)
	}
	for _, cur := range []pipeline.Currency{"HKD", "USD"} {
		_, err := c.Distribute(ctx, wechatpay.Distribution{SubMchID: sub, TransactionID: "T1", OutOrderNo: "D-" + string(cur), UnfreezeUnsplit: true,
			Receivers: []wechatpay.Share{{Type: wechatpay.TypeMerchantID, Account: "1900009999", Currency: cur, Amount: 30, Description: "commission"}}})
		var we *wechatpay.Error
		if !errors.As(err, &we) || we.HTTPStatus != http.StatusBadRequest || we.Code != wechatpay.CodeParamError ||
			!strings.Contains(we.Message, "currency "+string(cur)+" is not supported: funds are distributed in CNY only") {
			t.Fatalf("a receiver line in %s: %v; want 400 PARAM_ERROR saying CNY only", cur, err)
		}
	}
	if fake.Requests("T1") != 0 || fake.Frozen("T1") != 1000 || fake.Distributed("T1") != 0 {
		t.Fatalf("refused requests moved money: %d requests, %d frozen, %d distributed", fake.Requests("T1"), fake.Frozen("T1"), fake.Distributed("T1"))
	}
	o, err := c.Distribute(ctx, wechatpay.Distribution{SubMchID: sub, TransactionID: "T1", OutOrderNo: "D-CNY", UnfreezeUnsplit: true,
		Receivers: []wechatpay.Share{{Type: wechatpay.TypeMerchantID, Account: "1900009999", Currency: "CNY", Amount: 30, Description: "commission"}}})
	if err != nil || fake.Distributed("T1") != 30 || fake.Frozen("T1") != 0 {
		t.Fatalf("a CNY line: %v, %d distributed, %d frozen; want 30 distributed, the rest unfrozen", err, fake.Distributed("T1"), fake.Frozen("T1"))
	}
	for _, l := range o.Receivers {
		if l.SettlementCurrency != "CNY" {
			t.Errorf("line %+v: settlement currency %s, want CNY", l, l.SettlementCurrency)
		}
	}
}
