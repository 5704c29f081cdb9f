package main

import (
	"context"
	"crypto/rsa"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// weChatMatcherOf returns the WeChat matcher of the simulator's WeChat Pay
// on the test's ledger, at the clock now, asking every order every time.
func (e *env) weChatMatcherOf(sim *paysim.Sim, now func() time.Time) pipeline.Matcher {
	e.t.Helper()
	c := sim.Config
	key, err := wechatpay.LoadPrivateKey(c.WeChatKeyFile)
	if err != nil {
		e.t.Fatal(err)
	}
	serial, pub, err := wechatpay.LoadPlatformKey(c.WeChatPlatformKeyFile, c.WeChatPlatformSerial)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := wechatpay.Config{BaseURL: c.WeChatURL, MchID: c.WeChatMchID, SerialNo: c.WeChatSerial, PrivateKey: key,
		PlatformKeys: map[string]*rsa.PublicKey{serial: pub}, EncryptSerial: serial, HTTP: wechatpay.NewHTTPClient(30 * time.Second)}
	w, err := newWeChat(cfg, 300, 30, c.WeChatReceiverAccount, c.WeChatReceiverName, wechatpay.RelationDistributor, 3000)
	if err != nil {
		e.t.Fatal(err)
	}
	l, err := ledger.Open(context.Background(), e.url, "")
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { l.Close() })
	// No final answers kept: the test tampers with what WeChat Pay answered
	// FINISHED, which a matcher keeping them would not ask again.
	return wechatpay.Matcher(wechatpay.MatcherConfig{Store: l, API: wechatpay.NewAdapter(w.client, w.receiver), Now: now})
}

// matchWeChat runs the matcher on the test date's run, sorted as the reconcile
// stage sorts.
func (e *env) matchWeChat(m pipeline.Matcher) []pipeline.Mismatch {
	e.t.Helper()
	d, _ := pipeline.ParseDate(testDate)
	var run pipeline.Run
	if err := e.db.Get(&run.ID, `SELECT id FROM settle.runs WHERE business_date = $1`, testDate); err != nil {
		e.t.Fatal(err)
	}
	run.Key = pipeline.RunKey{Date: d, Shard: pipeline.Whole}
	ms, err := m(context.Background(), &run)
	if err != nil {
		e.t.Fatal(err)
	}
	pipeline.SortMismatches(ms)
	return ms
}

// weChatRows returns the mismatches of a category, by subject.
func weChatRows(ms []pipeline.Mismatch, category string) map[string][]pipeline.Mismatch {
	out := map[string][]pipeline.Mismatch{}
	for _, m := range ms {
		if m.Category == category {
			out[m.Subject] = append(out[m.Subject], m)
		}
	}
	return out
}

func TestWeChatReconcile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.weChatDay()
	var dist []struct {
		Key     string `db:"idem_key"`
		Amount  int64  `db:"amount_minor"`
		OrderNo string `db:"order_no"`
	}
	if err := e.db.Select(&dist, `SELECT e.idem_key, e.amount_minor, substr(e.subject, 13) AS order_no FROM settle.effects e
		WHERE e.kind = 'distribution' AND e.state = 'succeeded' ORDER BY e.idem_key LIMIT 2`); err != nil || len(dist) < 2 {
		t.Fatalf("want two distributions: %d, %v", len(dist), err)
	}
	tomorrow := func() time.Time { return time.Now().Add(48 * time.Hour) } // the bills of the run's days are out
	now := e.weChatMatcherOf(sim, time.Now)
	later := e.weChatMatcherOf(sim, tomorrow)

	// Clean: only known timing gaps - the funds are UNSETTLE, and today's
	// bill is not out yet.
	ms := e.matchWeChat(now)
	unsettled := weChatRows(ms, pipeline.MismatchTiming)
	if len(ms) == 0 || !slices.ContainsFunc(ms, func(m pipeline.Mismatch) bool { return strings.Contains(m.Detail, "bill") }) {
		t.Fatalf("clean run, today: want the bill not out yet: %+v", ms)
	}
	for _, m := range ms {
		if !m.Expected || m.Category != pipeline.MismatchTiming || m.Provider != wechatpay.Name {
			t.Fatalf("clean run: unexpected %+v", m)
		}
	}
	ms = e.matchWeChat(later)
	if len(ms) == 0 || len(ms) > len(unsettled) {
		t.Fatalf("clean run, bills out: %+v", ms)
	}
	for _, m := range ms {
		if !m.Expected || !strings.Contains(m.Detail, "funds still UNSETTLE") || m.Ours != m.Theirs || !strings.HasPrefix(m.Subject, "settlement/") {
			t.Fatalf("clean run, bills out: unexpected %+v", m)
		}
	}
	if again := e.matchWeChat(later); !slices.Equal(again, ms) {
		t.Fatalf("the same findings twice, other rows:\n%+v\n%+v", ms, again)
	}

	// Settled: nothing.
	sim.WeChat.Settle()
	if ms := e.matchWeChat(later); len(ms) != 0 {
		t.Fatalf("settled: %+v", ms)
	}

	// WeChat Pay reports another commission for one distribution: the query
	// and the bill disagree with the ledger.
	d := dist[1]
	sim.WeChat.SetReportedAmount(d.Key, d.Amount+1)
	ms = e.matchWeChat(later)
	amount := weChatRows(ms, pipeline.MismatchAmount)
	if len(ms) != 2 || len(amount[d.Key]) != 2 {
		t.Fatalf("another amount reported for %s: %+v", d.Key, ms)
	}
	for _, m := range amount[d.Key] {
		if m.Ours != pipeline.Minor(d.Amount) || m.Theirs != pipeline.Minor(d.Amount+1) || m.OrderNo != d.OrderNo || m.Expected {
			t.Fatalf("amount row %+v", m)
		}
	}

	// WeChat Pay loses another: missing at the provider, and its SETTLED
	// batch holds less than the ledger distributed.
	f := dist[0]
	sim.WeChat.ForgetOrder(f.Key)
	ms = e.matchWeChat(later)
	missing := weChatRows(ms, pipeline.MismatchMissingAtProvider)
	if len(missing[f.Key]) != 1 || missing[f.Key][0].Ours != pipeline.Minor(f.Amount) || missing[f.Key][0].Expected {
		t.Fatalf("forgotten %s: %+v", f.Key, ms)
	}
	short := slices.ContainsFunc(ms, func(m pipeline.Mismatch) bool { return strings.HasPrefix(m.Subject, "settlement/") && !m.Expected })
	if !short {
		t.Fatalf("forgotten %s: the settlement holds less than the ledger distributed, unreported: %+v", f.Key, ms)
	}
	if ms := e.matchWeChat(now); len(weChatRows(ms, pipeline.MismatchMissingAtProvider)[f.Key]) != 1 || len(weChatRows(ms, pipeline.MismatchAmount)[d.Key]) != 1 {
		t.Fatalf("before the bill is out, the queries still find both: %+v", ms)
	}
}
