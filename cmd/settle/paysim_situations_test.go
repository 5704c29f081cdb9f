package main

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/seed"
	settlesql "github.com/settlekit/settle/sql"
)

// situationSim starts the simulator as the paysim command does - sellers
// 1..sellers bound, the default balance, the day's Pay Protocol payments
// and WeChat Pay transactions created - then applies the situation flags
// args, read as the command reads them.
func (e *env) situationSim(sellers int, args ...string) *paysim.Sim {
	e.t.Helper()
	sim, err := paysim.Start(paysim.Options{Dir: e.t.TempDir(), ShareKeys: true, KeyBits: testKeyBits})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { sim.Close() })
	for i := 1; i <= sellers; i++ {
		sim.Infinia.SetBinding(seed.InfiniaID(i), "ACTIVE")
	}
	for _, cur := range paysim.Currencies {
		sim.Infinia.SetBalance(cur, paysim.DefaultBalance)
	}
	sh, _ := time.LoadLocation("Asia/Shanghai")
	d, _ := pipeline.ParseDate(testDate)
	if _, err := sim.SeedDay(context.Background(), e.db, settlesql.SourceQuery, pipeline.WindowOf(d, sh)); err != nil {
		e.t.Fatal(err)
	}
	e.situations(sim, args...)
	return sim
}

// situations applies situation flags to sim as `paysim ctl` does: through
// its control endpoint.
func (e *env) situations(sim *paysim.Sim, args ...string) {
	e.t.Helper()
	set, err := paysim.ParseSettings(args)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(set) == 0 {
		return
	}
	if _, err := paysim.PostSettings(context.Background(), &http.Client{Timeout: 10 * time.Second}, sim.ControlURL(), set); err != nil {
		e.t.Fatalf("paysim ctl %s: %v", strings.Join(args, " "), err)
	}
}

// runAll runs the date against every simulated provider.
func (e *env) runAll(sim *paysim.Sim) (string, int) {
	return e.settle(append([]string{"run", "--date", testDate, "--rules", e.rules, "--out", e.reports, "--work-dir", filepath.Join(e.reports, "work"),
		"--provider-wait", "5s", "--provider-poll", "20ms", "--provider-rate", "0", "--infinia-lost-after", "1ms"}, sim.Config.Args()...)...)
}

// first returns the first row of q's single column, failing the test if none.
func (e *env) first(q string, args ...any) string {
	e.t.Helper()
	var v string
	if err := e.db.Get(&v, q+` ORDER BY 1 LIMIT 1`, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return v
}

// TestPaysimSituationsRehearseTheRunbook: each situation flag of paysim
// produces the runbook situation it is documented for (README, "Runbook"),
// as settle reports it, all on one day of the seed; undone through the
// control endpoint (paysim ctl), the files sent again by resolve
// --trade-file, the next run of the date pays all but what cannot be
// undone (the WeChat refund, Pay Protocol's own pending ones).
func TestPaysimSituationsRehearseTheRunbook(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "120", "--sellers", "10", "--bad-rows", "0", "--seed", "1")
	const day = `o.confirmed_at >= '2026-11-23 00:00+08' AND o.confirmed_at < '2026-11-24 00:00+08'`
	ofSeller := func(provider string, seller int) string {
		return `SELECT o.order_no FROM orders o JOIN sellers s USING (seller_id) WHERE ` + day + ` AND o.provider = '` + provider +
			`' AND s.infinia_seller_id = '` + seed.InfiniaID(seller) + `'`
	}
	refused := e.first(ofSeller("infiniapay", 1))
	wxRefused := e.first(`SELECT provider_txn_id FROM orders WHERE order_no = $1`, e.first(ofSeller("wechatpay", 1)))
	wxRefunded := e.first(`SELECT o.provider_txn_id FROM orders o JOIN sellers s USING (seller_id) WHERE `+day+
		` AND o.provider = 'wechatpay' AND s.infinia_seller_id = $1 AND o.amount_minor > 1000 AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.order_no = o.order_no)`,
		seed.InfiniaID(3))
	sim := e.situationSim(10, "--refuse-order", refused+"=product type not allowed", "--lose-files-of", seed.InfiniaID(2),
		"--binding", seed.InfiniaID(3)+"=REJECTED", "--binding", seed.InfiniaID(4)+"=FROZEN", "--binding", seed.InfiniaID(5)+"=PENDING",
		"--binding", seed.InfiniaID(6)+"=NONE", "--refuse-status-of", seed.InfiniaID(7)+"=SYS-005", "--fail-revenue-shares", seed.InfiniaID(9)+"=account closed",
		"--balance", "KWD=1", "--wechat-refuse", wxRefused+"=INVALID_REQUEST", "--wechat-refund", wxRefunded+"=100")
	// Two paid Pay Protocol payments: one pending again, one refunded.
	var paid []string
	refunds := map[string]bool{}
	for _, r := range sim.PayProtocol.Refunds() {
		refunds[r.OutTradeNo] = true
	}
	rows, err := e.db.Query(`SELECT o.provider_txn_id FROM orders o WHERE ` + day + ` AND o.provider = 'payprotocol' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var no string
		rows.Scan(&no)
		if p, ok := sim.PayProtocol.Payment(no); ok && p.Status == payprotocol.PaymentPaid && !refunds[no] {
			paid = append(paid, no)
		}
	}
	rows.Close()
	if len(paid) < 2 {
		t.Fatalf("%d paid Pay Protocol payments with no refund: want 2", len(paid))
	}
	e.situations(sim, "--payprotocol-status", paid[0]+"=pending", "--payprotocol-status", paid[1]+"=refunded")

	out, code := e.runAll(sim)
	if code != 4 {
		t.Fatalf("exit %d, want 4:\n%s", code, out)
	}
	reason := func(order string) string {
		var r string
		e.db.Get(&r, `SELECT state || ': ' || reason FROM settle.items WHERE order_no = $1`, order)
		return r
	}
	sellerReasons := func(seller int) string {
		var rs []string
		e.db.Select(&rs, `SELECT DISTINCT i.state || ': ' || i.reason FROM settle.items i JOIN settle.run_sellers s USING (run_id, seller_id)
			WHERE s.infinia_seller_id = $1 AND i.channel = 'infiniapay'`, seed.InfiniaID(seller))
		return strings.Join(rs, " | ")
	}
	kwdReasons := func() string {
		var rs []string
		e.db.Select(&rs, `SELECT DISTINCT state || ': ' || reason FROM settle.items WHERE channel = 'infiniapay' AND currency = 'KWD'`)
		return strings.Join(rs, " | ")
	}
	ppOrder := func(txn string) string { return e.first(`SELECT order_no FROM orders WHERE provider_txn_id = $1`, txn) }
	wxOrder := ppOrder
	for _, c := range []struct{ flag, got, want string }{
		{"--refuse-order", out, "refused by Infinia: 1 rows refused, first " + refused + ": product type not allowed"},
		{"--refuse-order", reason(refused), "rejected: Infinia refused the trade detail: product type not allowed"},
		{"--lose-files-of", out, "trade files lost by Infinia (first: Infinia does not know trade file TD_PLATDEMO_" + seed.InfiniaID(2)},
		{"--lose-files-of", sellerReasons(2), "held: trade file TD_PLATDEMO_" + seed.InfiniaID(2)},
		{"--binding REJECTED", out, "Infinia binding is REJECTED: the seller or Infinia must act before it is paid"},
		{"--binding FROZEN", out, "Infinia binding is FROZEN"},
		{"--binding PENDING", sellerReasons(5), "carried: Infinia binding is PENDING"},
		{"--binding NONE", out, "Infinia does not know seller " + seed.InfiniaID(6) + " (binding query: not found at the provider"},
		{"--binding NONE", out, "BIZ-404 not found: seller: not found): carried; bind the seller (settle sellers bind --store-url URL S00006) and run the date again"},
		{"--refuse-status-of", out, "status query refused by Infinia: refused by the provider: infiniapay trade-details/query"},
		{"--refuse-status-of", out, "SYS-005 refused by paysim (--refuse-status-of)): left open, asked again by the next run of this date"},
		{"--fail-revenue-shares", sellerReasons(9), "failed: account closed"},
		{"--balance KWD=1", kwdReasons(), "carried: platform balance 0.001 KWD, short of the "},
		{"--balance KWD=1", kwdReasons(), " KWD this run's KWD payouts need: nothing sent in KWD; top up the platform's Infinia account, then run the date again"},
		{"--wechat-refuse", out, "HTTP 400 INVALID_REQUEST transaction " + wxRefused + " refused"},
		{"--wechat-refund", reason(wxOrder(wxRefunded)), "held: WeChat holds"},
		{"--payprotocol-status pending", out, "order " + ppOrder(paid[0]) + ": payment is pending"},
		{"--payprotocol-status refunded", reason(ppOrder(paid[1])), "rejected: Pay Protocol payment is refunded"},
	} {
		if !strings.Contains(c.got, c.want) {
			t.Errorf("%s: %q is not in:\n%s", c.flag, c.want, c.got)
		}
	}
	if t.Failed() {
		t.Fatalf("the run:\n%s", out)
	}

	// Undone through the control endpoint, as paysim ctl would; the
	// refused and lost files sent again by a person.
	e.situations(sim, "--refuse-order", refused+"=", "--take-files-of", seed.InfiniaID(2), "--binding", seed.InfiniaID(3)+"=ACTIVE",
		"--binding", seed.InfiniaID(4)+"=ACTIVE", "--binding", seed.InfiniaID(5)+"=ACTIVE", "--binding", seed.InfiniaID(6)+"=ACTIVE",
		"--refuse-status-of", seed.InfiniaID(7)+"=", "--fail-revenue-shares", seed.InfiniaID(9)+"=", "--balance", "KWD=100000000",
		"--wechat-refuse", wxRefused+"=", "--payprotocol-status", paid[0]+"=paid")
	var files []string
	if err := e.db.Select(&files, `SELECT name FROM settle.trade_files WHERE status = 'FAILED' OR status NOT IN ('SUCCESS', 'FAILED') AND seller_id = 'S00002' ORDER BY name`); err != nil || len(files) < 2 {
		t.Fatalf("refused and lost files: %v %v", files, err)
	}
	for _, f := range files {
		args := append([]string{"resolve", "--date", testDate, "--trade-file", f, "--note", "rehearsal", "--refused-rows", "--infinia-lost-after", "1ms"},
			sim.Config.Args()...)
		if strings.Contains(f, seed.InfiniaID(2)) {
			args = append(args[:7], args[8:]...) // a lost file: no --refused-rows
		}
		e.mustSettle(args...)
	}
	out, code = e.runAll(sim)
	if code != 4 || !strings.Contains(out, "WeChat holds") {
		t.Fatalf("after the undo: exit %d, want 4 for the WeChat refund alone:\n%s", code, out)
	}
	for _, gone := range []string{"refused by Infinia:", "lost by Infinia (", "Infinia binding is", "Infinia does not know seller", "status query refused",
		"short of", "INVALID_REQUEST", ppOrder(paid[0])} {
		if strings.Contains(out, gone) {
			t.Errorf("after the undo the run still says %q:\n%s", gone, out)
		}
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'infiniapay' AND state <> 'paid'`); n != 0 {
		t.Errorf("%d Infinia items not paid after the undo", n)
	}
}

// TestPaysimClosedReceiverRehearsesACommissionRecoveredByHand:
// --wechat-close-receiver closes the platform's line of every
// distribution: each item is released to the seller, its distribution a
// failed payout (exit 4), until a person resolves it.
func TestPaysimClosedReceiverRehearsesACommissionRecoveredByHand(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "30", "--sellers", "2", "--bad-rows", "0", "--seed", "14")
	sim := e.situationSim(2, "--wechat-close-receiver", "ACCOUNT_ABNORMAL")
	out, code := e.runWeChat(sim)
	if code != 4 || !strings.Contains(out, "CLOSED (ACCOUNT_ABNORMAL), the rest unfrozen to the seller") {
		t.Fatalf("exit %d, want 4 with the platform's lines closed:\n%s", code, out)
	}
	var failed []string
	if err := e.db.Select(&failed, `SELECT subject FROM settle.effects WHERE state = 'failed' AND last_error LIKE '%ACCOUNT_ABNORMAL%'`); err != nil || len(failed) == 0 {
		t.Fatalf("failed distributions: %v %v", failed, err)
	}
	for _, s := range failed {
		e.mustSettle("resolve", "--date", testDate, "--subject", s, "--note", "rehearsal: recovered by invoice")
	}
	if out, code := e.runWeChat(sim); code != 0 {
		t.Fatalf("once resolved: exit %d, want 0:\n%s", code, out)
	}
}

// TestPaysimAvailableShareRehearsesAShortShare: --available set between a
// run stopped after its uploads and the next, below what settle owes the
// seller, holds the seller's payout for a person (exit 4) and reports the
// difference.
func TestPaysimAvailableShareRehearsesAShortShare(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "40", "--sellers", "3", "--bad-rows", "0", "--seed", "1")
	sim := e.situationSim(3)
	sim.Config.WeChatURL, sim.Config.PayProtocolURL = "", "" // Infinia alone
	if out, code := e.runInfinia(sim, "--until", "upload"); code != 0 {
		t.Fatalf("--until upload: exit %d\n%s", code, out)
	}
	e.situations(sim, "--available", seed.InfiniaID(1)+":USD=100")
	out, code := e.runInfinia(sim)
	if code != 4 || !strings.Contains(out, "seller S00001 USD: Infinia shows 1.00 USD available, we owe ") {
		t.Fatalf("exit %d, want 4 with S00001's USD payout held:\n%s", code, out)
	}
}
