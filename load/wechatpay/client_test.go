package wechatpay_test

import (
	"context"
	"crypto/rsa"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
)

// distribution pays amount of transaction T1 to the platform (mchID).
func distribution(outOrderNo string, amount int64) wechatpay.Distribution {
	return wechatpay.Distribution{SubMchID: subMchID, TransactionID: "T1", OutOrderNo: outOrderNo,
		Receivers: []wechatpay.Share{{Type: wechatpay.TypeMerchantID, Account: mchID, Name: "Platform Ltd",
			Currency: "CNY", Amount: amount, Description: "commission"}}}
}

// TestEveryAPIRoundTrip drives every API through real signatures against
// the fake, following one transaction from marking to settlement.
func TestEveryAPIRoundTrip(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, wechatpaytest.Options{}, nil, nil)
	c := r.client

	if err := c.Mark(ctx, wechatpay.MarkRequest{SubMchID: subMchID, OutTradeNo: "P1", Currency: "CNY"}); err != nil || !r.fake.Marked(subMchID, "P1") {
		t.Fatalf("Mark: %v", err)
	}

	// A receiver: added INIT, EFFECTIVE after one review poll; its name
	// travels encrypted.
	rs, err := c.AddReceiver(ctx, wechatpay.NewReceiver{SubMchID: subMchID, Type: wechatpay.TypeMerchantID, Account: mchID,
		Name: "示例平台 Platform Ltd", RelationType: wechatpay.RelationDistributor})
	if err != nil || rs.State != wechatpay.ReceiverInit || rs.Account != mchID {
		t.Fatalf("AddReceiver = %+v, %v", rs, err)
	}
	if _, name, _ := r.fake.Receiver(subMchID, wechatpay.TypeMerchantID, mchID); name != "示例平台 Platform Ltd" {
		t.Fatalf("the fake decrypted %q", name)
	}
	for _, want := range []string{wechatpay.ReceiverInit, wechatpay.ReceiverEffective} {
		rs, err := c.ReceiverResult(ctx, wechatpay.ReceiverRef{SubMchID: subMchID, Type: wechatpay.TypeMerchantID, Account: mchID})
		if err != nil || rs.State != want || rs.RelationType != wechatpay.RelationDistributor {
			t.Fatalf("ReceiverResult = %+v, %v; want %s", rs, err, want)
		}
	}
	if _, err := c.AddReceiver(ctx, wechatpay.NewReceiver{SubMchID: subMchID, Type: wechatpay.TypeMerchantID, Account: mchID,
		Name: "again", RelationType: wechatpay.RelationDistributor}); !refusedWith(err, wechatpay.CodeInvalidRequest) {
		t.Fatalf("adding twice: %v", err)
	}

	// A paid transaction: 100.00 CNY frozen.
	r.fake.AddTransaction(subMchID, "T1", "CNY", 100_00)
	if u, err := c.RemainingAmount(ctx, subMchID, "T1"); err != nil || u.Amount != 100_00 || u.Currency != "CNY" {
		t.Fatalf("RemainingAmount = %+v, %v", u, err)
	}
	o, err := c.Distribute(ctx, distribution("D-1", 30_00))
	if err != nil || o.State != wechatpay.StateProcessing || o.OrderID == "" || len(o.Receivers) != 1 || o.Receivers[0].Result != wechatpay.ResultPending {
		t.Fatalf("Distribute = %+v, %v", o, err)
	}
	for _, want := range []string{wechatpay.StateProcessing, wechatpay.StateProcessing, wechatpay.StateFinished} {
		got, err := c.QueryOrder(ctx, subMchID, "T1", "D-1")
		if err != nil || got.State != want || got.OrderID != o.OrderID {
			t.Fatalf("QueryOrder = %+v, %v; want %s", got, err, want)
		}
		if want == wechatpay.StateFinished {
			l := got.Receivers[0]
			if l.Result != wechatpay.ResultSuccess || l.Amount != 30_00 || l.Account != mchID || l.DetailID == "" ||
				l.FinishTime.IsZero() || l.SettlementCurrency != "CNY" || l.SettlementAmount != 30_00 || l.Rate != "1" {
				t.Fatalf("finished line = %+v", l)
			}
		}
	}
	if r.fake.Frozen("T1") != 70_00 || r.fake.Distributed("T1") != 30_00 {
		t.Fatalf("frozen %d, distributed %d", r.fake.Frozen("T1"), r.fake.Distributed("T1"))
	}
	if _, err := c.QueryOrder(ctx, subMchID, "T1", "NEVER"); !errors.Is(err, wechatpay.ErrNotFound) {
		t.Fatalf("unknown out_order_no: %v", err)
	}

	// The rest goes back to the seller.
	u, err := c.Unfreeze(ctx, wechatpay.Unfreeze{SubMchID: subMchID, TransactionID: "T1", OutOrderNo: "U-1", Description: "rest to the seller"})
	if err != nil || u.State != wechatpay.StateProcessing {
		t.Fatalf("Unfreeze = %+v, %v", u, err)
	}
	if r.fake.Frozen("T1") != 0 || r.fake.Unfrozen("T1") != 70_00 || r.fake.Requests("T1") != 2 {
		t.Fatalf("after unfreeze: frozen %d, unfrozen %d, requests %d", r.fake.Frozen("T1"), r.fake.Unfrozen("T1"), r.fake.Requests("T1"))
	}
	if left, err := c.RemainingAmount(ctx, subMchID, "T1"); err != nil || left.Amount != 0 {
		t.Fatalf("RemainingAmount after unfreeze = %+v, %v", left, err)
	}

	// The day's bill lists both, in yuan.
	day := pipeline.Date{Year: 2025, Month: 9, Day: 3}
	b, err := c.BillDownloadURL(ctx, subMchID, day)
	if err != nil || !strings.HasPrefix(b.URL, r.billSrv.URL+"/") {
		t.Fatalf("BillDownloadURL = %+v, %v", b, err)
	}
	// On another host than the API's: allowed only among BillHosts.
	strict := r.cfg
	strict.BillHosts = nil // WeChat Pay's domains only
	if sc, err := wechatpay.New(strict); err != nil {
		t.Fatal(err)
	} else if _, err := sc.DownloadBill(ctx, b); err == nil || !strings.Contains(err.Error(), "WeChat Pay host") || r.fake.Calls(wechatpay.APIBill) != 0 {
		t.Fatalf("bill on a host outside BillHosts: %v", err)
	}
	data, err := c.DownloadBill(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := wechatpay.DefaultBillLayout.Parse(data)
	if err != nil || len(lines) != 2 || lines[0].Type != wechatpay.BillDistribution || lines[0].Amount != 30_00 ||
		lines[0].OutOrderNo != "D-1" || lines[1].Type != wechatpay.BillUnfreeze || lines[1].Amount != 70_00 || lines[1].Account != subMchID {
		t.Fatalf("bill = %+v, %v\n%s", lines, err, data)
	}
	if !strings.Contains(string(data), "`30.00") {
		t.Fatalf("bill amounts are in yuan:\n%s", data)
	}
	// A URL off WeChat's hosts, or not over TLS, is refused before anything is sent.
	for _, u := range []string{"https://evil.example/v3/x?token=t", "http://api.mch.weixin.qq.com/v3/x?token=t", "https://weixin.qq.com.evil.example/x?token=t"} {
		if _, err := c.DownloadBill(ctx, wechatpay.Bill{URL: u}); err == nil || strings.Contains(err.Error(), "token") {
			t.Fatalf("%s: %v", u, err)
		}
	}

	// Settlement details: distributed funds are UNSETTLE until settled.
	// WeChat publishes the dates as "invalid" for UNSETTLE: none is sent,
	// and the answer holds every unsettled detail, whatever the dates.
	q := wechatpay.SettlementQuery{SubMchID: subMchID, State: wechatpay.SettleStateUnsettled, Start: day.AddDays(5), End: day.AddDays(6)}
	if got := collect(t, c, q); len(got) != 1 || got[0].Amount.Unsettled != 30_00 || got[0].Amount.Settled != 0 || got[0].Amount.Currency != "CNY" ||
		got[0].State != wechatpay.SettleStateUnsettled || got[0].TradeStart != day || got[0].TradeEnd != day || got[0].BatchID == "" {
		t.Fatalf("UNSETTLE = %+v", got)
	}
	q.Start, q.End = day, day.AddDays(1)
	r.fake.Settle()
	if got := collect(t, c, q); len(got) != 0 {
		t.Fatalf("UNSETTLE after Settle = %+v", got)
	}
	q.State = wechatpay.SettleStateSettled
	if got := collect(t, c, q); len(got) != 1 || got[0].Amount.Settled != 30_00 || got[0].Amount.Unsettled != 0 || got[0].SettlementDate != day {
		t.Fatalf("SETTLED = %+v", got)
	}

	// Deleting a receiver; deleting it again is not found.
	ref := wechatpay.ReceiverRef{SubMchID: subMchID, Type: wechatpay.TypeMerchantID, Account: mchID}
	if err := c.DeleteReceiver(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReceiverResult(ctx, wechatpay.ReceiverRef{SubMchID: subMchID, Type: wechatpay.TypeMerchantID, Account: mchID}); !errors.Is(err, wechatpay.ErrNotFound) {
		t.Fatalf("deleted receiver: %v", err)
	}
	if err := c.DeleteReceiver(ctx, ref); !errors.Is(err, wechatpay.ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
	// Every request named the platform key to sign its answer with.
	if n := r.fake.WithoutSerial(); n != 0 {
		t.Fatalf("%d requests without Wechatpay-Serial", n)
	}
}

func collect(t *testing.T, c *wechatpay.Client, q wechatpay.SettlementQuery) []wechatpay.Settlement {
	t.Helper()
	var out []wechatpay.Settlement
	for s, err := range c.Settlements(context.Background(), q) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func refusedWith(err error, code string) bool {
	var we *wechatpay.Error
	return errors.As(err, &we) && we.Code == code && we.Refused() && !we.Transient()
}

// TestSettlementsFetchesEveryPage spreads distributions over 23 days and
// reads them back 10 a page.
func TestSettlementsFetchesEveryPage(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, wechatpaytest.Options{Polls: -1, SubMerchantQPS: -1}, nil, nil)
	r.fake.SetReceiver(subMchID, wechatpay.TypeMerchantID, mchID, wechatpay.ReceiverEffective)
	first := pipeline.DateOf(r.clock.Now())
	var want int64
	for i := range 23 {
		id := "T" + string(rune('A'+i))
		r.fake.AddTransaction(subMchID, id, "CNY", 1000)
		d := distribution("D-"+id, int64(i+1))
		d.TransactionID = id
		if _, err := r.client.Distribute(ctx, d); err != nil {
			t.Fatal(err)
		}
		want += int64(i + 1)
		r.clock.Add(24 * time.Hour)
	}
	q := wechatpay.SettlementQuery{SubMchID: subMchID, State: wechatpay.SettleStateUnsettled, Start: first, End: first.AddDays(30)}
	got := collect(t, r.client, q)
	var sum int64
	for i, s := range got {
		sum += s.Amount.Unsettled
		if s.TradeStart != first.AddDays(i) {
			t.Fatalf("detail %d is of %s", i, s.TradeStart)
		}
	}
	if len(got) != 23 || sum != want || r.fake.Calls(wechatpay.APISettlements) != 3 {
		t.Fatalf("%d details adding up to %d in %d calls; want 23, %d, 3", len(got), sum, r.fake.Calls(wechatpay.APISettlements), want)
	}
	// Stopping early stops fetching.
	for range r.client.Settlements(ctx, q) {
		break
	}
	if n := r.fake.Calls(wechatpay.APISettlements); n != 4 {
		t.Fatalf("%d calls after an early break, want 4", n)
	}
	// An error ends the iteration with it.
	q.State, q.End = wechatpay.SettleStateSettled, first.AddDays(-1)
	for _, err := range r.client.Settlements(ctx, q) {
		if err == nil {
			t.Fatal("an end before the start was accepted")
		}
	}
}

func TestIdempotencyByOutOrderNo(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, wechatpaytest.Options{}, nil, nil)
	r.fake.AddTransaction(subMchID, "T1", "CNY", 100_00)
	r.fake.SetReceiver(subMchID, wechatpay.TypeMerchantID, mchID, wechatpay.ReceiverEffective)
	first, err := r.client.Distribute(ctx, distribution("D-1", 10_00))
	if err != nil {
		t.Fatal(err)
	}
	// The same request again (its name encrypted anew) is the same order.
	again, err := r.client.Distribute(ctx, distribution("D-1", 10_00))
	if err != nil || again.OrderID != first.OrderID || r.fake.Requests("T1") != 1 || r.fake.Distributed("T1") != 10_00 {
		t.Fatalf("replay = %+v, %v; requests %d, distributed %d", again, err, r.fake.Requests("T1"), r.fake.Distributed("T1"))
	}
	// Another body under the same key, or an unfreeze under it, is refused.
	if _, err := r.client.Distribute(ctx, distribution("D-1", 11_00)); !refusedWith(err, wechatpay.CodeInvalidRequest) {
		t.Fatalf("other body: %v", err)
	}
	if _, err := r.client.Unfreeze(ctx, wechatpay.Unfreeze{SubMchID: subMchID, TransactionID: "T1", OutOrderNo: "D-1", Description: "x"}); !refusedWith(err, wechatpay.CodeInvalidRequest) {
		t.Fatalf("unfreeze under a distribution's key: %v", err)
	}
	if r.fake.Distributed("T1") != 10_00 || r.fake.Frozen("T1") != 90_00 {
		t.Fatal("a refused request moved money")
	}
}

func TestTransactionLimits(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, wechatpaytest.Options{Polls: -1, SubMerchantQPS: -1}, nil, nil)
	r.fake.AddTransaction(subMchID, "T1", "CNY", 100_00)
	r.fake.SetReceiver(subMchID, wechatpay.TypeMerchantID, mchID, wechatpay.ReceiverEffective)
	// 30% of 100.00 at most, over all requests.
	if _, err := r.client.Distribute(ctx, distribution("D-OVER", 30_01)); !refusedWith(err, wechatpay.CodeParamError) || !strings.Contains(err.Error(), "ratio") {
		t.Fatalf("over the ratio: %v", err)
	}
	if _, err := r.client.Distribute(ctx, distribution("D-1", 29_52)); err != nil {
		t.Fatal(err)
	}
	// 49 more requests of 0.01 reach the cap of 50 requests and 30.00.
	for i := range 48 {
		if _, err := r.client.Distribute(ctx, distribution("D-"+strings.Repeat("x", i+2), 1)); err != nil {
			t.Fatalf("request %d: %v", i+2, err)
		}
	}
	if _, err := r.client.Distribute(ctx, distribution("D-OVER2", 1)); !refusedWith(err, wechatpay.CodeParamError) {
		t.Fatalf("at the cap: %v", err)
	}
	if _, err := r.client.Unfreeze(ctx, wechatpay.Unfreeze{SubMchID: subMchID, TransactionID: "T1", OutOrderNo: "U-50", Description: "rest"}); err != nil {
		t.Fatalf("50th request: %v", err)
	}
	if r.fake.Requests("T1") != 50 || r.fake.Distributed("T1") != 30_00 || r.fake.Unfrozen("T1") != 70_00 {
		t.Fatalf("requests %d, distributed %d, unfrozen %d", r.fake.Requests("T1"), r.fake.Distributed("T1"), r.fake.Unfrozen("T1"))
	}
	if _, err := r.client.Unfreeze(ctx, wechatpay.Unfreeze{SubMchID: subMchID, TransactionID: "T1", OutOrderNo: "U-51", Description: "rest"}); !refusedWith(err, wechatpay.CodeInvalidRequest) {
		t.Fatalf("51st request: %v", err)
	}
	// More than is left.
	r.fake.AddTransaction(subMchID, "T2", "CNY", 100)
	d := distribution("D-T2", 30)
	d.TransactionID, d.UnfreezeUnsplit = "T2", true
	if _, err := r.client.Distribute(ctx, d); err != nil || r.fake.Frozen("T2") != 0 || r.fake.Unfrozen("T2") != 70 {
		t.Fatalf("distribute and unfreeze the rest: %v", err)
	}
	d.OutOrderNo = "D-T2-AGAIN"
	if _, err := r.client.Distribute(ctx, d); !refusedWith(err, wechatpay.CodeNotEnough) {
		t.Fatalf("nothing left: %v", err)
	}
}

func TestNotDistributableYet(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, wechatpaytest.Options{ReadyAfter: 3 * time.Minute}, nil, nil)
	r.fake.AddTransaction(subMchID, "T1", "CNY", 100_00)
	r.fake.SetReceiver(subMchID, wechatpay.TypeMerchantID, mchID, wechatpay.ReceiverEffective)
	_, err := r.client.Distribute(ctx, distribution("D-1", 100))
	var we *wechatpay.Error
	if !errors.As(err, &we) || we.Code != wechatpay.CodeOrderNotReady || !we.Transient() || we.Refused() || errors.Is(err, wechatpay.ErrUnknownOutcome) {
		t.Fatalf("too early: %v", err)
	}
	if n := r.fake.Calls(wechatpay.APIOrders); n != 1 {
		t.Fatalf("not ready was retried within the call: %d calls", n)
	}
	r.clock.Add(3 * time.Minute)
	if _, err := r.client.Distribute(ctx, distribution("D-1", 100)); err != nil {
		t.Fatalf("after 3 minutes: %v", err)
	}
	// Never ready until SetReady.
	r = newRig(t, wechatpaytest.Options{ReadyAfter: -1}, nil, nil)
	r.fake.AddTransaction(subMchID, "T1", "CNY", 100_00)
	r.clock.Add(time.Hour)
	if _, err := r.client.Distribute(ctx, distribution("D-1", 100)); !errors.As(err, &we) || we.Code != wechatpay.CodeOrderNotReady {
		t.Fatalf("before SetReady: %v", err)
	}
	r.fake.SetReady("T1")
	if _, err := r.client.Distribute(ctx, distribution("D-1", 100)); err != nil {
		t.Fatalf("after SetReady: %v", err)
	}
}

func TestReceiverLinesClose(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, wechatpaytest.Options{Polls: -1}, nil, nil)
	r.fake.AddTransaction(subMchID, "T1", "CNY", 100_00)
	r.fake.SetReceiver(subMchID, wechatpay.TypeMerchantID, "R-OK", wechatpay.ReceiverEffective)
	r.fake.SetReceiver(subMchID, wechatpay.TypeMerchantID, "R-BAD", wechatpay.ReceiverEffective)
	r.fake.SetReceiver(subMchID, wechatpay.TypeMerchantID, "R-INIT", wechatpay.ReceiverInit)
	r.fake.FailReceiver("R-BAD", "ACCOUNT_ABNORMAL")
	d := distribution("D-1", 0)
	d.Receivers = nil
	for _, acct := range []string{"R-OK", "R-BAD", "R-INIT", "R-NOBODY"} {
		d.Receivers = append(d.Receivers, wechatpay.Share{Type: wechatpay.TypeMerchantID, Account: acct, Currency: "CNY", Amount: 5_00, Description: "share"})
	}
	o, err := r.client.Distribute(ctx, d)
	if err != nil || o.State != wechatpay.StateFinished {
		t.Fatalf("Distribute = %+v, %v", o, err)
	}
	want := map[string]string{"R-OK": "", "R-BAD": "ACCOUNT_ABNORMAL", "R-INIT": "NO_RELATION", "R-NOBODY": "NO_RELATION"}
	for _, l := range o.Receivers {
		if (want[l.Account] == "") != (l.Result == wechatpay.ResultSuccess) || l.FailReason != want[l.Account] {
			t.Fatalf("line %+v", l)
		}
	}
	if r.fake.Distributed("T1") != 5_00 || r.fake.Frozen("T1") != 95_00 {
		t.Fatalf("closed lines moved money: distributed %d", r.fake.Distributed("T1"))
	}
}

func TestLocalValidation(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, wechatpaytest.Options{}, nil, nil)
	bad := []wechatpay.Distribution{
		distribution("has space", 1),
		distribution(strings.Repeat("x", 65), 1),
		distribution("D-1", 0),
		{SubMchID: subMchID, TransactionID: "T1", OutOrderNo: "D-1"},
	}
	d := distribution("D-1", 1)
	d.Receivers[0].Description = ""
	bad = append(bad, d)
	d = distribution("D-1", 1)
	d.Receivers[0].Type = "EMAIL"
	bad = append(bad, d)
	for i, d := range bad {
		var we *wechatpay.Error
		if _, err := r.client.Distribute(ctx, d); !errors.As(err, &we) || we.Transient() || errors.Is(err, wechatpay.ErrUnknownOutcome) {
			t.Fatalf("bad distribution %d: %v", i, err)
		}
	}
	if n := r.fake.Calls(wechatpay.APIOrders); n != 0 {
		t.Fatalf("%d invalid requests were sent", n)
	}
	if !wechatpay.ValidOutOrderNo("A-z_09") || !wechatpay.ValidOutOrderNo(strings.Repeat("a", 64)) || wechatpay.ValidOutOrderNo("a/b") {
		t.Fatal("ValidOutOrderNo")
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	k := testKeys(t)
	good := wechatpay.Config{MchID: mchID, SerialNo: merchantSerial, PrivateKey: k.MerchantPrivate,
		PlatformKeys: map[string]*rsa.PublicKey{platformSerial: &k.PlatformPrivate.PublicKey}, HTTP: wechatpay.NewHTTPClient(time.Second)}
	if _, err := wechatpay.New(good); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for name, mod := range map[string]func(*wechatpay.Config){
		"no HTTP client":              func(c *wechatpay.Config) { c.HTTP = nil },
		"no private key":              func(c *wechatpay.Config) { c.PrivateKey = nil },
		"no platform key":             func(c *wechatpay.Config) { c.PlatformKeys = nil },
		"no mchid":                    func(c *wechatpay.Config) { c.MchID = "" },
		"bad base URL":                func(c *wechatpay.Config) { c.BaseURL = "ftp://x" },
		"unknown encryptor":           func(c *wechatpay.Config) { c.EncryptSerial = "NOPE" },
		"plain http off this machine": func(c *wechatpay.Config) { c.BaseURL = "http://apihk.mch.weixin.qq.com" },
	} {
		c := good
		mod(&c)
		if _, err := wechatpay.New(c); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			noSecrets(t, err)
		}
	}
	for _, local := range []string{"http://127.0.0.1:8700", "http://localhost:8700", "http://[::1]:8700"} {
		c := good
		c.BaseURL = local
		if _, err := wechatpay.New(c); err != nil {
			t.Errorf("%s (the simulator): %v", local, err)
		}
	}
	// Two platform keys: which one requests name (Wechatpay-Serial) and
	// encrypt with must be said.
	two := good
	two.PlatformKeys = map[string]*rsa.PublicKey{"A": &k.PlatformPrivate.PublicKey, "B": &k.MerchantPrivate.PublicKey}
	if _, err := wechatpay.New(two); err == nil || !strings.Contains(err.Error(), "EncryptSerial") {
		t.Fatalf("two platform keys, none named: %v", err)
	}
	two.EncryptSerial = "A"
	if _, err := wechatpay.New(two); err != nil {
		t.Fatal(err)
	}
}

// TestNewNeverShowsAURLPassword: a base URL refused (plain http off this
// machine, one that does not parse) is named in the error, which goes to
// the logs, without the password a URL may carry.
func TestNewNeverShowsAURLPassword(t *testing.T) {
	k := testKeys(t)
	for _, u := range []string{"http://user:S3cretPw@apihk.mch.weixin.qq.com", "https://user:S3cretPw@apihk mch.weixin.qq.com", "ftp://user:S3cretPw@x"} {
		_, err := wechatpay.New(wechatpay.Config{BaseURL: u, MchID: mchID, SerialNo: merchantSerial, PrivateKey: k.MerchantPrivate,
			PlatformKeys: map[string]*rsa.PublicKey{platformSerial: &k.PlatformPrivate.PublicKey}, HTTP: wechatpay.NewHTTPClient(time.Second)})
		if err == nil || strings.Contains(err.Error(), "S3cretPw") {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// An unsigned 404 (a proxy, a wrong path) is never "not found": that
// would allow a resend.
func TestUnsignedNotFoundIsNotErrNotFound(t *testing.T) {
	r := newRig(t, wechatpaytest.Options{}, func(http.Handler) http.Handler { return http.NotFoundHandler() }, nil)
	_, err := r.client.QueryOrder(context.Background(), subMchID, "T1", "D-1")
	var we *wechatpay.Error
	if !errors.As(err, &we) || we.HTTPStatus != 404 || errors.Is(err, wechatpay.ErrNotFound) {
		t.Fatalf("unsigned 404: %v", err)
	}
}

// TestASettlementListedTwiceIsCountedOnce: the settlement details come in
// offset pages; a list that moved between two pages repeats a detail on
// the next page, which was counted twice (a false amount mismatch; found
// by a review). A detail met again is yielded once.
func TestASettlementListedTwiceIsCountedOnce(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, wechatpaytest.Options{Polls: -1, SubMerchantQPS: -1, SettlementShift: 2}, nil, nil)
	r.fake.SetReceiver(subMchID, wechatpay.TypeMerchantID, mchID, wechatpay.ReceiverEffective)
	first := pipeline.DateOf(r.clock.Now())
	for i := range 15 {
		id := "T" + string(rune('A'+i))
		r.fake.AddTransaction(subMchID, id, "CNY", 1000)
		d := distribution("D-"+id, int64(i+1))
		d.TransactionID = id
		if _, err := r.client.Distribute(ctx, d); err != nil {
			t.Fatal(err)
		}
		r.clock.Add(24 * time.Hour)
	}
	q := wechatpay.SettlementQuery{SubMchID: subMchID, State: wechatpay.SettleStateUnsettled, Start: first, End: first.AddDays(30)}
	got := collect(t, r.client, q)
	seen := map[string]bool{}
	for _, s := range got {
		if seen[s.BatchID] {
			t.Fatalf("batch %s yielded twice", s.BatchID)
		}
		seen[s.BatchID] = true
	}
	if len(got) != 15 {
		t.Fatalf("%d details, want the 15", len(got))
	}
}
