package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gocarina/gocsv"
	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
	settlesql "github.com/settlekit/settle/sql"
)

// weChatSim starts the simulator with the day's WeChat transactions frozen
// at their sub-merchants.
func (e *env) weChatSim(faults *fault.Injector, review int) *paysim.Sim {
	e.t.Helper()
	sim, err := paysim.Start(paysim.Options{Dir: e.t.TempDir(), Faults: faults, ReviewPolls: review, ShareKeys: true, KeyBits: testKeyBits})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { sim.Close() })
	sh, _ := time.LoadLocation("Asia/Shanghai")
	d, _ := pipeline.ParseDate(testDate)
	if _, err := sim.SeedWeChat(context.Background(), sqlx.NewDb(e.db.DB, "postgres"), settlesql.SourceQuery, pipeline.WindowOf(d, sh)); err != nil {
		e.t.Fatal(err)
	}
	return sim
}

// runWeChat runs the date with only WeChat Pay configured.
func (e *env) runWeChat(sim *paysim.Sim, extra ...string) (string, int) {
	return e.runWeChatOn(sim, testDate, extra...)
}

// runWeChatOn runs date day with only WeChat Pay configured.
func (e *env) runWeChatOn(sim *paysim.Sim, day string, extra ...string) (string, int) {
	args := []string{"run", "--date", day, "--rules", e.rules, "--out", e.reports, "--provider-wait", "6s", "--provider-poll", "20ms",
		"--skip-channel", "infiniapay,payprotocol"}
	return e.settle(append(append(args, weChatArgs(sim)...), extra...)...)
}

// weChatArgs are the flags of the simulator's WeChat Pay.
func weChatArgs(sim *paysim.Sim) []string {
	c := sim.Config
	return []string{"--wechat-url", c.WeChatURL, "--wechat-mchid", c.WeChatMchID, "--wechat-serial", c.WeChatSerial,
		"--wechat-private-key-file", c.WeChatKeyFile, "--wechat-platform-key-file", c.WeChatPlatformKeyFile,
		"--wechat-platform-serial", c.WeChatPlatformSerial, "--wechat-receiver-account", c.WeChatReceiverAccount,
		"--wechat-receiver-name", c.WeChatReceiverName}
}

// checkWeChatOnce verifies every settled WeChat transaction: nothing left
// frozen, exactly the commission distributed, and never more than one
// distribution or unfreeze that moved money.
func (e *env) checkWeChatOnce(sim *paysim.Sim) int {
	e.t.Helper()
	var rows []struct {
		Txn        string `db:"provider_txn_id"`
		Commission int64  `db:"commission_minor"`
		State      string `db:"state"`
		Reason     string `db:"reason"`
	}
	if err := e.db.Select(&rows, `SELECT provider_txn_id, commission_minor, state, reason FROM settle.items WHERE channel = 'wechatpay'`); err != nil {
		e.t.Fatal(err)
	}
	paid := 0
	for _, r := range rows {
		dist := sim.WeChat.Distributed(r.Txn)
		if dist > r.Commission {
			e.t.Errorf("%s: %d distributed, more than the commission %d", r.Txn, dist, r.Commission)
		}
		if r.State != "paid" {
			continue
		}
		paid++
		if strings.HasPrefix(r.Reason, "released to the seller") {
			// The platform's line closed: all of it went to the seller.
			if f := sim.WeChat.Frozen(r.Txn); f != 0 || dist != 0 {
				e.t.Errorf("%s released to the seller: %d still frozen, %d distributed", r.Txn, f, dist)
			}
			continue
		}
		if f := sim.WeChat.Frozen(r.Txn); f != 0 || dist != r.Commission {
			e.t.Errorf("%s: %d still frozen, %d distributed, commission %d", r.Txn, f, dist, r.Commission)
		}
	}
	return paid
}

func TestWeChatSettlesEachTransactionOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "300", "--sellers", "6", "--seed", "11")
	sim := e.weChatSim(nil, 1<<20) // a new receiver is under review until approved
	out, code := e.runWeChat(sim)
	// Only a run of this date settles them once the review is over: the
	// run must not end as if all were done.
	if code != 4 || !strings.Contains(out, "WeChat transactions wait on WeChat Pay") || !strings.Contains(out, "is INIT") {
		t.Fatalf("first run: exit %d, want 4 with transactions held for the receiver's review:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay' AND state = 'recorded' AND reason LIKE 'held: the platform''s receiver at sub-merchant % is INIT%'`); n == 0 {
		t.Fatalf("no transaction held for the receiver under review:\n%s", out)
	}
	e.checkWeChatOnce(sim)
	// The receivers are EFFECTIVE now: the re-run settles the rest.
	sim.WeChat.ApproveReceivers()
	out, code = e.runWeChat(sim)
	if code != 0 {
		t.Fatalf("second run: exit %d:\n%s", code, out)
	}
	paid := e.checkWeChatOnce(sim)
	want := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay'`)
	if int64(paid) != want || want == 0 {
		t.Fatalf("%d of %d WeChat transactions settled", paid, want)
	}
	again, _ := e.runWeChat(sim)
	if !strings.Contains(again, "0 new money movements") {
		t.Fatalf("the re-run moved money:\n%s", again)
	}
}

func TestWeChatCommissionAboveTheCapIsHeld(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "100", "--sellers", "4", "--seed", "12")
	sim := e.weChatSim(nil, 0)
	out, code := e.runWeChat(sim, "--wechat-max-ratio-bps", "100") // 1%: below every commission of the rules
	if code != 4 || !strings.Contains(out, "above WeChat's cap") {
		t.Fatalf("exit %d, want 4 naming the cap:\n%s", code, out)
	}
	var n int64
	e.db.Get(&n, `SELECT count(*) FROM settle.items WHERE channel = 'wechatpay' AND commission_minor * 10000 > gross_minor * 100 AND state = 'paid'`)
	if n != 0 {
		t.Fatalf("%d transactions distributed above the cap", n)
	}
	e.checkWeChatOnce(sim)
}

// TestWeChatFaults plays every fault at every WeChat call - including an
// applied distribution whose answer is lost - re-runs until done, and
// checks that no transaction was distributed twice or above its commission.
func TestWeChatFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("many scenarios")
	}
	t.Parallel()
	endpoints := []string{"orders", "orders/unfreeze", "orders/query", "amounts", "receivers", "receivers/query"}
	kinds := []fault.Kind{fault.Latency, fault.ServerError, fault.TooMany, fault.Reset, fault.Lost, fault.Stuck}
	i := 0
	for _, ep := range endpoints {
		for _, k := range kinds {
			i++
			seedN := i
			t.Run(ep+"/"+string(k), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				seedN := faultSeed(t, seedN)
				e.mustSettle("seed", "--date", testDate, "--orders", "60", "--sellers", "3", "--seed", fmt.Sprint(40+seedN))
				sim := e.weChatSim(fault.New(uint64(seedN), fault.Rule{Endpoint: ep, Kind: k, Calls: []int{1, 2, 4}, Polls: 3}), 0)
				code := -1
				var out string
				// Done: exit 0, or exit 4 for nothing but the seed's smallest
				// orders, whose minimum commission is above WeChat's cap.
				done := func() bool {
					return code == 0 || code == 4 && strings.Count(out, "problem(s)") > 0 && !strings.Contains(out, "CLOSED") &&
						e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay' AND state = 'recorded' AND reason NOT LIKE 'held: commission % above WeChat''s cap%'`) == 0
				}
				for try := 0; try < 8 && !done(); try++ {
					out, code = e.runWeChat(sim)
				}
				if !done() {
					t.Fatalf("did not complete after 8 runs: exit %d:\n%s", code, out)
				}
				capped := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay' AND reason LIKE 'held: commission % above WeChat''s cap%'`)
				if paid, want := e.checkWeChatOnce(sim), e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay'`); int64(paid)+capped != want {
					t.Fatalf("%d of %d settled (%d above the cap)", paid, want, capped)
				}
			})
		}
	}
}

func TestWeChatKeepsToTheSubMerchantRateLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("rate limited")
	}
	t.Parallel()
	e := newEnv(t)
	// One seller (one sub-merchant) with many transactions.
	e.mustSettle("seed", "--date", testDate, "--orders", "400", "--sellers", "1", "--seed", "13")
	sim := e.weChatSim(nil, 0)
	out, code := e.runWeChat(sim, "--wechat-sub-merchant-qps", "30", "--parallel", "16", "--provider-wait", "1m")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if n := sim.WeChat.Count429(); n != 0 {
		t.Fatalf("the fake answered 429 %d times: the client did not keep to 30 QPS", n)
	}
	if paid, want := e.checkWeChatOnce(sim), e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay'`); int64(paid) != want || want < 100 {
		t.Fatalf("%d of %d settled", paid, want)
	}
}

func TestReceiversAddStatusDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim, err := paysim.Start(paysim.Options{Dir: t.TempDir(), ReviewPolls: 1, ShareKeys: true, KeyBits: testKeyBits})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	c := sim.Config
	flags := []string{"--wechat-url", c.WeChatURL, "--wechat-mchid", c.WeChatMchID, "--wechat-serial", c.WeChatSerial,
		"--wechat-private-key-file", c.WeChatKeyFile, "--wechat-platform-key-file", c.WeChatPlatformKeyFile,
		"--wechat-platform-serial", c.WeChatPlatformSerial, "--wechat-receiver-account", c.WeChatReceiverAccount,
		"--wechat-receiver-name", c.WeChatReceiverName}
	do := func(cmd string) (string, int) {
		return e.raw(append(append([]string{"settle", "receivers", cmd}, flags...), "1900000042")...)
	}
	if out, code := do("add"); code != 0 || !strings.Contains(out, "INIT") {
		t.Fatalf("add: exit %d: %s", code, out)
	}
	if out, code := do("status"); code != 0 || !strings.Contains(out, "INIT") {
		t.Fatalf("status under review: exit %d: %s", code, out)
	}
	if out, code := do("status"); code != 0 || !strings.Contains(out, "EFFECTIVE") {
		t.Fatalf("status after review: exit %d: %s", code, out)
	}
	// A receiver already there is shown, as the README says, not said
	// "added": nothing is sent (it printed "receiver ... added at
	// sub-merchant ...: EFFECTIVE" for an add that sent nothing).
	adds := sim.WeChat.Calls(wechatpay.APIAddReceiver)
	if out, code := do("add"); code != 0 || !strings.Contains(out, "already there") || strings.Contains(out, "added at") ||
		!strings.Contains(out, "EFFECTIVE") || sim.WeChat.Calls(wechatpay.APIAddReceiver) != adds {
		t.Fatalf("add of a receiver already there: exit %d, %d adds sent: %s", code, sim.WeChat.Calls(wechatpay.APIAddReceiver)-adds, out)
	}
	if out, code := do("delete"); code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: exit %d: %s", code, out)
	}
	if state, _, found := sim.WeChat.Receiver("1900000042", "MERCHANT_ID", c.WeChatReceiverAccount); found && state == "EFFECTIVE" {
		t.Fatalf("receiver still %s after delete", state)
	}
	// WeChat's "not found" is an answer, not a failure to retry (exit 1).
	if out, code := do("status"); code != 0 || !strings.Contains(out, "not added") {
		t.Fatalf("status after delete: exit %d: %s", code, out)
	}
	if out, code := do("delete"); code != 0 || !strings.Contains(out, "nothing to delete") {
		t.Fatalf("delete again: exit %d: %s", code, out)
	}
	// A receiver whose review WeChat did not approve is added again (it
	// printed the failed state as "added", and nothing could add it).
	sim.WeChat.SetReceiver("1900000042", "MERCHANT_ID", c.WeChatReceiverAccount, "FAILED")
	if out, code := do("add"); code != 0 || !strings.Contains(out, "INIT") {
		t.Fatalf("add after a failed review: exit %d: %s", code, out)
	}
	if state, _, found := sim.WeChat.Receiver("1900000042", "MERCHANT_ID", c.WeChatReceiverAccount); !found || state != "INIT" {
		t.Fatalf("after add: %s %v, want it under review again", state, found)
	}
	if _, code := e.raw("settle", "receivers", "add", "1900000042"); code != 2 {
		t.Fatal("receivers without --wechat-url must be a usage error")
	}
}

// TestWeChatOnePoisonedTransactionIsHeld: one transaction WeChat Pay
// refuses outright, and one whose answer cannot be read, are held with
// WeChat's answer as their reason, every other one is settled, and the run
// ends with exit 4 (issue 13.1).
func TestWeChatOnePoisonedTransactionIsHeld(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "80", "--sellers", "3", "--seed", "14")
	sim := e.weChatSim(nil, 0)
	var picked []struct {
		OrderNo string `db:"order_no"`
		Txn     string `db:"provider_txn_id"`
	}
	if err := e.db.Select(&picked, `SELECT o.order_no, o.provider_txn_id FROM orders o JOIN sellers s USING (seller_id)
		WHERE o.provider = 'wechatpay' AND s.wechat_sub_mchid IS NOT NULL AND o.provider_txn_id IS NOT NULL
		ORDER BY o.amount_minor DESC LIMIT 2`); err != nil || len(picked) != 2 {
		t.Fatal(picked, err)
	}
	poisoned, garbled := picked[0], picked[1]
	sim.WeChat.Poison(poisoned.Txn, "INVALID_REQUEST")
	sim.WeChat.Garble(garbled.Txn)
	out, code := e.runWeChat(sim)
	if code != 4 || !strings.Contains(out, "order "+poisoned.OrderNo) {
		t.Fatalf("exit %d, want 4 naming order %s:\n%s", code, poisoned.OrderNo, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE order_no = $1 AND state = 'recorded' AND reason LIKE 'held: WeChat Pay: %INVALID_REQUEST%'`, poisoned.OrderNo); n != 1 {
		t.Fatalf("the poisoned transaction is not held with WeChat's answer:\n%s", out)
	}
	for _, f := range []string{"orders.csv", "mismatches.csv"} {
		var row string
		for _, l := range strings.Split(string(readFile(t, filepath.Join(e.reports, testDate, f))), "\n") {
			if strings.Contains(l, poisoned.OrderNo) {
				row = l
			}
		}
		if !strings.Contains(row, "INVALID_REQUEST") {
			t.Fatalf("%s has no row for order %s with WeChat's answer", f, poisoned.OrderNo)
		}
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE order_no = $1 AND state = 'recorded' AND reason LIKE 'held: WeChat Pay: %malformed answer%'`, garbled.OrderNo); n != 1 {
		t.Fatalf("the transaction with an unreadable answer is not held with it:\n%s", out)
	}
	capped := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay' AND reason LIKE 'held: commission % above WeChat''s cap%'`)
	paid, want := e.checkWeChatOnce(sim), e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay'`)
	if int64(paid)+capped+2 != want || paid == 0 {
		t.Fatalf("%d of %d settled (%d above the cap, 2 poisoned):\n%s", paid, want, capped, out)
	}
}

// TestWeChatRefusedKeyIsAUsageError: a merchant key WeChat Pay refuses is
// exit 2, said once, and nothing is retried or settled (issue 13.4).
func TestWeChatRefusedKeyIsAUsageError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "40", "--sellers", "2", "--seed", "15")
	sim := e.weChatSim(nil, 0)
	other, err := wechatpaytest.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := other.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	out, code := e.runWeChat(sim, "--wechat-private-key-file", filepath.Join(dir, wechatpaytest.MerchantKeyFile))
	if code != 2 || strings.Count(out, "our request signature was refused") != 1 {
		t.Fatalf("exit %d, want 2 saying once that WeChat Pay refused our signature:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay' AND state = 'paid'`); n != 0 {
		t.Fatalf("%d paid with a refused key", n)
	}
}

// TestWeChatLostReceiverAddIsResolvedInTheRun: the answer to adding the
// platform's receiver is lost (WeChat Pay added it); the run resolves it by
// the receiver result query and goes on, in the same run (issue 13.8).
func TestWeChatLostReceiverAddIsResolvedInTheRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "40", "--sellers", "2", "--seed", "16")
	faults := fault.New(16, fault.Rule{Endpoint: "receivers", Kind: fault.Lost, Calls: []int{1}})
	sim := e.weChatSim(faults, 0)
	out, code := e.runWeChat(sim)
	if code == 1 || code == 2 || strings.Contains(out, "outcome unknown") || faults.Played(fault.Lost) != 1 {
		t.Fatalf("exit %d (lost played %d times):\n%s", code, faults.Played(fault.Lost), out)
	}
	capped := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay' AND reason LIKE 'held: commission % above WeChat''s cap%'`)
	if paid, want := e.checkWeChatOnce(sim), e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay'`); int64(paid)+capped != want || paid == 0 {
		t.Fatalf("%d of %d settled in the run (%d above the cap):\n%s", paid, want, capped, out)
	}
}

// TestAClosedDistributionIsReleasedToTheSeller: WeChat Pay closes the line
// to the platform's receiver (an abnormal account). Sent with
// unfreeze_unsplit, the distribution leaves the commission with the seller
// and unfreezes it with the rest: the seller has its share, so the item is
// paid - released to the seller - and the commission not collected needs a
// person, on this run and on every re-run (a failed payout of the date),
// which sends nothing again.
func TestAClosedDistributionIsReleasedToTheSeller(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "30", "--sellers", "2", "--seed", "14")
	sim := e.weChatSim(nil, 0)
	sim.WeChat.FailReceiver(sim.Config.WeChatReceiverAccount, "ACCOUNT_ABNORMAL")
	out, code := e.runWeChat(sim)
	if code != 4 || !strings.Contains(out, "released to the seller with the platform's line closed (the commission not collected)") {
		t.Fatalf("exit %d, want 4 saying what was released\n%s", code, out)
	}
	var released []struct {
		Txn    string `db:"provider_txn_id"`
		Amount int64  `db:"amount"`
		Reason string `db:"reason"`
	}
	if err := e.db.Select(&released, `SELECT provider_txn_id, gross_minor - refunded_minor AS amount, reason FROM settle.items
		WHERE channel = 'wechatpay' AND commission_minor > 0`); err != nil {
		t.Fatal(err)
	}
	if len(released) == 0 {
		t.Fatal("no WeChat transaction with a commission")
	}
	for _, r := range released {
		if !strings.HasPrefix(r.Reason, "released to the seller by WeChat Pay: the platform's line of distribution ") ||
			!strings.Contains(r.Reason, "ACCOUNT_ABNORMAL") || !strings.Contains(r.Reason, "not collected, to be recovered outside WeChat Pay") {
			t.Fatalf("%s: reason %q", r.Txn, r.Reason)
		}
		if u := sim.WeChat.Unfrozen(r.Txn); u != r.Amount {
			t.Fatalf("%s: WeChat unfroze %d to the seller, the order is %d", r.Txn, u, r.Amount)
		}
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay' AND state <> 'paid'`); n != 0 {
		t.Fatalf("%d WeChat items not paid", n)
	}
	e.checkWeChatOnce(sim)
	// The reports say where the money is: the seller shares paid.
	var lines []pipeline.SummaryLine
	if err := gocsv.UnmarshalBytes(readFile(t, filepath.Join(e.reports, testDate, "summary.csv")), &lines); err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		if l.Channel == "wechatpay" && (l.Paid != l.Seller || l.Held != 0 || l.InProgress != 0 || !l.Balanced) {
			t.Fatalf("summary.csv: %+v, want every seller share paid", l)
		}
	}
	// Items an earlier version held after the closed distribution: a
	// re-run finds them released, sends nothing, and still ends 4 (the
	// commissions).
	sends := e.count(`SELECT COALESCE(sum(sends), 0) FROM settle.effects`)
	e.db.MustExec(`UPDATE settle.items SET state = 'recorded', reason = 'held: closed', payout_key = '', provider_ref = ''
		WHERE channel = 'wechatpay' AND commission_minor > 0`)
	out, code = e.runWeChat(sim)
	if code != 4 || e.count(`SELECT COALESCE(sum(sends), 0) FROM settle.effects`) != sends ||
		e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay' AND (state <> 'paid' OR commission_minor > 0 AND reason NOT LIKE 'released to the seller%')`) != 0 {
		t.Fatalf("re-run of held items: exit %d, want 4, them released and nothing sent\n%s", code, out)
	}
	// A person recovers the commissions and says so: the date then ends 0.
	var failed []string
	if err := e.db.Select(&failed, `SELECT subject FROM settle.effects WHERE state = 'failed' ORDER BY subject`); err != nil || len(failed) == 0 {
		t.Fatalf("failed distributions: %v, %v", failed, err)
	}
	var paid string
	if err := e.db.Get(&paid, `SELECT subject FROM settle.effects WHERE state = 'succeeded' LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	resolve := func(subject, note string, more ...string) (string, int) {
		return e.settle(append([]string{"resolve", "--date", testDate, "--subject", subject, "--note", note}, more...)...)
	}
	for _, bad := range [][2]string{{failed[0], ""}, {paid, "x"}, {"WX/20261123/NOPE", "x"}} {
		if out, code := resolve(bad[0], bad[1]); code != 2 {
			t.Fatalf("resolve %q with note %q: exit %d, want 2\n%s", bad[0], bad[1], code, out)
		}
	}
	// Who resolves it is recorded (found by an audit review): --actor,
	// else the OS user running settle; a blank one is refused.
	if out, code := resolve(failed[0], "x", "--actor", " "); code != 2 || !strings.Contains(out, "--actor") {
		t.Fatalf("resolve with a blank --actor: exit %d, want 2\n%s", code, out)
	}
	for i, subject := range failed {
		var by []string
		if i == 0 {
			by = []string{"--actor", "bob@example.com"}
		}
		if out, code := resolve(subject, "commission invoiced to the seller, INV-7", by...); code != 0 || !strings.HasPrefix(out, "resolved distribution "+subject) {
			t.Fatalf("resolve %s: exit %d\n%s", subject, code, out)
		}
	}
	if out, code := resolve(failed[0], "another note", "--actor", "carol"); code != 0 || !strings.HasPrefix(out, "already resolved") ||
		!strings.Contains(out, "INV-7") || !strings.Contains(out, "by bob@example.com") {
		t.Fatalf("resolved again: exit %d, want the first resolution, by bob@example.com\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.resolutions WHERE subject = $1 AND actor = 'bob@example.com' AND db_role = session_user`, failed[0]); n != 1 {
		t.Fatalf("%s: %d resolutions recorded by bob@example.com under the ledger's role, want 1", failed[0], n)
	}
	if n := e.count(`SELECT count(*) FROM settle.resolutions WHERE actor = $1`, osUser()); n != int64(len(failed)-1) {
		t.Fatalf("%d resolutions recorded by the OS user %q, want %d (those resolved without --actor)", n, osUser(), len(failed)-1)
	}
	if out, code := e.runWeChat(sim); code != 0 || e.count(`SELECT COALESCE(sum(sends), 0) FROM settle.effects`) != sends {
		t.Fatalf("once resolved: exit %d, want 0 and nothing sent\n%s", code, out)
	}
	if out := e.mustSettle("status", "--date", testDate); !strings.Contains(out, "resolved by a person: distribution "+failed[0]) ||
		!regexp.MustCompile(`resolved by a person: distribution `+regexp.QuoteMeta(failed[0])+` \([^)]*\) at \S+ by bob@example\.com \(database role [^)]+\): commission invoiced`).MatchString(out) {
		t.Fatalf("status does not list the resolutions with who made them:\n%s", out)
	}
	// One payout's whole history in one command, for an auditor: every
	// event of its attempt, the order it was for with its rule and the
	// row the run read, and who resolved it.
	var order, key, rule, amount string
	var events int
	if err := e.db.QueryRow(`SELECT i.order_no, x.idem_key, i.rule, s.amount_minor, (SELECT count(*) FROM settle.effect_events v WHERE v.effect_id = x.id)
		FROM settle.effects x JOIN settle.items i ON i.payout_key = x.idem_key
		JOIN settle.source_rows s ON s.run_id = i.run_id AND s.order_no = i.order_no WHERE x.subject = $1`, failed[0]).Scan(&order, &key, &rule, &amount, &events); err != nil {
		t.Fatal(err)
	}
	out = e.mustSettle("status", "--date", testDate, "--subject", failed[0])
	for _, want := range []string{"distribution attempt 1, key " + key + ": ", order + " seller ", "; rule " + rule + "; paid", "read as row ",
		"amount " + amount + ",", "resolved by a person: distribution " + failed[0] + " (" + key + ") at ", " by bob@example.com (database role "} {
		if !strings.Contains(out, want) {
			t.Fatalf("status --subject %s does not say %q:\n%s", failed[0], want, out)
		}
	}
	var h ledger.SubjectHistory
	if err := json.Unmarshal([]byte(e.mustSettle("status", "--date", testDate, "--subject", failed[0], "-o", "json")), &h); err != nil {
		t.Fatal(err)
	}
	if len(h.Attempts) != 1 || len(h.Attempts[0].History) != events || len(h.Items) != 1 || h.Items[0].Source == nil ||
		*h.Items[0].Source.Amount != amount || len(h.Resolved) != 1 || h.Resolved[0].Actor != "bob@example.com" {
		t.Fatalf("status --subject %s -o json: %+v, want its attempt with its %d events, its order with its source row, its resolution by bob", failed[0], h, events)
	}
	if out, code := e.settle("status", "--date", testDate, "--subject", "WX/20261123/NOPE"); code != 2 || !strings.Contains(out, "no side effect of") {
		t.Fatalf("status --subject of no side effect: exit %d, want 2\n%s", code, out)
	}
	// A failed distribution WeChat did not release to the seller (as if
	// refused) is not resolved by hand: a re-run may still pay it.
	e.db.MustExec(`UPDATE settle.effects SET state = 'failed' WHERE subject = $1`, paid)
	if out, code := resolve(paid, "paid by bank transfer"); code != 2 || !strings.Contains(out, "its provider did not release its order to the seller") {
		t.Fatalf("resolve of a distribution not released: exit %d, want 2\n%s", code, out)
	}
}

// TestAHeldOrderSettledByHandWithWeChat: WeChat Pay refuses a
// transaction, so settle holds its order and every run of the date ends 4.
// A person settles it with WeChat Pay by hand and says so with settle
// resolve --order: refused while WeChat Pay does not answer or still holds
// the order's money (settle can still settle it); once it holds nothing,
// the item is paid with the person's note, and the next run ends 0 and
// sends nothing.
func TestAHeldOrderSettledByHandWithWeChat(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "30", "--sellers", "2", "--seed", "14")
	sim := e.weChatSim(nil, 0)
	var held struct {
		OrderNo string `db:"order_no"`
		Txn     string `db:"provider_txn_id"`
		Sub     string `db:"wechat_sub_mchid"`
	}
	if err := e.db.Get(&held, `SELECT o.order_no, o.provider_txn_id, s.wechat_sub_mchid FROM orders o JOIN sellers s USING (seller_id)
		WHERE o.provider = 'wechatpay' AND s.wechat_sub_mchid IS NOT NULL AND o.provider_txn_id IS NOT NULL
		ORDER BY o.amount_minor DESC LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	sim.WeChat.Poison(held.Txn, "INVALID_REQUEST")
	if out, code := e.runWeChat(sim); code != 4 || !strings.Contains(out, "order "+held.OrderNo) {
		t.Fatalf("exit %d, want 4 naming order %s\n%s", code, held.OrderNo, out)
	}
	sends := e.count(`SELECT COALESCE(sum(sends), 0) FROM settle.effects`)
	resolve := func(order, note string, flags ...string) (string, int) {
		return e.settle(append([]string{"resolve", "--date", testDate, "--order", order, "--note", note}, flags...)...)
	}
	stillHeld := func(when string) {
		t.Helper()
		if n := e.count(`SELECT count(*) FROM settle.items WHERE order_no = $1 AND state = 'recorded' AND reason LIKE 'held: %'`, held.OrderNo); n != 1 {
			t.Fatalf("%s: order %s is no longer held", when, held.OrderNo)
		}
	}
	wx := weChatArgs(sim)
	for _, bad := range []struct {
		order, note string
		flags       []string
		says        string
	}{
		{held.OrderNo, "by hand", nil, "--wechat-url"},
		{held.OrderNo, " ", wx, "--note"},
		{"NOPE-1", "by hand", wx, "no item of " + testDate},
	} {
		if out, code := resolve(bad.order, bad.note, bad.flags...); code != 2 || !strings.Contains(out, bad.says) {
			t.Fatalf("resolve --order %s --note %q: exit %d, want 2 saying %q\n%s", bad.order, bad.note, code, bad.says, out)
		}
	}
	if out, code := e.settle("resolve", "--date", testDate, "--order", held.OrderNo, "--subject", "WX/x", "--note", "x"); code != 2 {
		t.Fatalf("--order with --subject: exit %d, want 2\n%s", code, out)
	}
	// WeChat Pay refuses to say what it holds: nothing recorded, exit 2
	// (asking again will not change a refusal: it was exit 1, "retry").
	if out, code := resolve(held.OrderNo, "by hand", wx...); code != 2 || !strings.Contains(out, "refuses to say") || !strings.Contains(out, "nothing recorded") {
		t.Fatalf("resolve while WeChat Pay refuses the transaction: exit %d, want 2\n%s", code, out)
	}
	stillHeld("WeChat Pay refused to answer")
	// WeChat Pay answers again and still holds the order's money.
	sim.WeChat.Cure(held.Txn)
	if out, code := resolve(held.OrderNo, "by hand", wx...); code != 2 || !strings.Contains(out, "WeChat Pay still holds") {
		t.Fatalf("resolve while WeChat Pay holds the money: exit %d, want 2\n%s", code, out)
	}
	stillHeld("WeChat Pay holds the money")
	// A paid order is not settled by hand.
	var paid string
	if err := e.db.Get(&paid, `SELECT order_no FROM settle.items WHERE channel = 'wechatpay' AND state = 'paid' LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	if out, code := resolve(paid, "by hand", wx...); code != 2 || !strings.Contains(out, "only a WeChat Pay order settle holds") {
		t.Fatalf("resolve of a paid order: exit %d, want 2\n%s", code, out)
	}
	// The person releases the whole transaction to the seller by hand.
	client, err := wechatpay.New(sim.WeChat.ClientConfig(sim.Config.WeChatURL))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Unfreeze(context.Background(), wechatpay.Unfreeze{SubMchID: held.Sub, TransactionID: held.Txn,
		OutOrderNo: "MANUAL-" + held.OrderNo, Description: "released by hand"}); err != nil {
		t.Fatal(err)
	}
	// While a run of the date works, nothing is recorded.
	release := e.holdLock(pipeline.Whole)
	if out, code := resolve(held.OrderNo, "by hand", wx...); code != 75 {
		t.Fatalf("resolve beside a run of the date: exit %d, want 75\n%s", code, out)
	}
	stillHeld("a run of the date works")
	if err := release(); err != nil {
		t.Fatal(err)
	}
	out, code := resolve(held.OrderNo, "unfrozen by hand in the merchant portal, ticket OPS-12", wx...)
	if code != 0 || !strings.Contains(out, "order "+held.OrderNo+" (transaction "+held.Txn+") is paid: settled outside settle (WeChat Pay held nothing") {
		t.Fatalf("resolve once WeChat Pay holds nothing: exit %d\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE order_no = $1 AND state = 'paid' AND reason LIKE 'settled outside settle (%OPS-12%; was held: WeChat Pay: %INVALID_REQUEST%'`, held.OrderNo); n != 1 {
		t.Fatalf("the item is not paid with the note and what held it:\n%s", out)
	}
	if out, code := resolve(held.OrderNo, "again", wx...); code != 2 || !strings.Contains(out, "only a WeChat Pay order settle holds") {
		t.Fatalf("resolve again: exit %d, want 2\n%s", code, out)
	}
	if out, code := e.runWeChat(sim); code != 0 || e.count(`SELECT COALESCE(sum(sends), 0) FROM settle.effects`) != sends {
		t.Fatalf("the run after: exit %d, want 0 and nothing sent\n%s", code, out)
	}
	if out := e.mustSettle("status", "--date", testDate); !strings.Contains(out, "resolved by a person: settled_outside WX/") ||
		!strings.Contains(out, "("+held.OrderNo+")") || !strings.Contains(out, "OPS-12") {
		t.Fatalf("status does not list the order settled by hand:\n%s", out)
	}
}

// TestAWeChatTxnIDWeChatCannotTakeIsHeldAlone: one WeChat order's
// provider_txn_id is no WeChat transaction id ([0-9A-Za-z_-], at most 32).
// Read from the source, it is rejected at transform with the reason
// (TestWeChatATransactionIDWeChatPayCannotTakeIsRejected). An item a
// settle from before that check recorded with one is refused by the client
// before sending: that order is held for a person, the others are
// settled, and the run ends 4 with its reports; every run ended 1 before
// reconcile, with no reports (found by a review).
func TestAWeChatTxnIDWeChatCannotTakeIsHeldAlone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "30", "--sellers", "2", "--seed", "14")
	var bad string
	if err := e.db.Get(&bad, `SELECT o.order_no FROM orders o JOIN sellers s USING (seller_id)
		WHERE o.provider = 'wechatpay' AND s.wechat_sub_mchid IS NOT NULL AND o.provider_txn_id IS NOT NULL
		ORDER BY o.amount_minor DESC LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	sim := e.weChatSim(nil, 0)
	// Recorded as an older settle recorded it: the transform took the id.
	if out, code := e.runWeChat(sim, "--until", "transform"); code != 0 {
		t.Fatalf("--until transform: exit %d\n%s", code, out)
	}
	e.db.MustExec(`UPDATE settle.items SET provider_txn_id = provider_txn_id || '.1' WHERE order_no = $1`, bad)
	for run := 1; run <= 2; run++ {
		out, code := e.runWeChat(sim)
		if _, err := os.Stat(filepath.Join(e.reports, testDate, "orders.csv")); code != 4 || err != nil || !strings.Contains(out, "order "+bad) {
			t.Fatalf("run %d: exit %d (orders.csv: %v), want 4 with order %s held and the reports written\n%s", run, code, err, bad, out)
		}
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE order_no = $1 AND state = 'recorded' AND reason LIKE 'held: WeChat Pay: %cannot take%'`, bad); n != 1 {
		t.Fatalf("order %s is not held with the reason", bad)
	}
	if paid := e.checkWeChatOnce(sim); int64(paid) != e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay'`)-1 {
		t.Fatalf("%d settled, want every other WeChat order", paid)
	}
}

// TestWeChatHoldsAnOrderInACurrencyWeChatDoesNotDistribute: WeChat Pay
// distributes in CNY only. One WeChat order of the day is in HKD: the dry
// run says a real run holds it; the run holds it for a person with the
// reason (exit 4, on every run), nothing asked or sent about its
// transaction, while the day's CNY orders are paid (--wechat-currencies
// CNY,HKD lets it reach WeChat Pay's check, which holds it too: WeChat
// Pay holds it in CNY). Settled by hand at
// WeChat Pay, settle resolve --order records it paid. A bad
// --wechat-currencies is exit 2.
func TestWeChatHoldsAnOrderInACurrencyWeChatDoesNotDistribute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "30", "--sellers", "2", "--seed", "14")
	var hkd struct {
		OrderNo string `db:"order_no"`
		Txn     string `db:"provider_txn_id"`
		Sub     string `db:"wechat_sub_mchid"`
	}
	if err := e.db.Get(&hkd, `SELECT o.order_no, o.provider_txn_id, s.wechat_sub_mchid FROM orders o JOIN sellers s USING (seller_id)
		WHERE o.provider = 'wechatpay' AND s.wechat_sub_mchid IS NOT NULL AND o.provider_txn_id IS NOT NULL
		ORDER BY o.amount_minor DESC LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	e.db.MustExec(`UPDATE orders SET currency = 'HKD' WHERE order_no = $1`, hkd.OrderNo)
	sim := e.weChatSim(nil, 0)
	for _, bad := range []string{"CNY,XYZ", "", "cny", "CNY,CNY"} {
		if out, code := e.runWeChat(sim, "--wechat-currencies", bad); code != 2 || !strings.Contains(out, "--wechat-currencies") {
			t.Fatalf("--wechat-currencies %q: exit %d, want 2 naming the flag\n%s", bad, code, out)
		}
	}
	dry, code := e.runWeChat(sim, "--dry-run")
	if code != 0 || !strings.Contains(dry, "channel wechatpay: 1 orders in HKD, which WeChat Pay does not distribute (--wechat-currencies CNY): a real run holds each for a person") {
		t.Fatalf("dry run: exit %d, want 0 saying the HKD order is held\n%s", code, dry)
	}
	// Configured as distributable (wrongly), the HKD order is checked
	// against what WeChat Pay holds of it, in CNY: held, nothing sent.
	if out, code := e.runWeChat(sim, "--wechat-currencies", "CNY, HKD"); code != 4 ||
		!strings.Contains(out, "order "+hkd.OrderNo+": WeChat holds ") || !strings.Contains(out, " CNY for transaction "+hkd.Txn+", the order says ") {
		t.Fatalf("--wechat-currencies CNY,HKD: exit %d, want 4 with order %s held for what WeChat Pay holds in CNY\n%s", code, hkd.OrderNo, out)
	}
	reason := "WeChat Pay distributes in CNY only (--wechat-currencies), not HKD: nothing is sent for transaction " + hkd.Txn +
		"; settle it by hand at WeChat Pay (sub-merchant " + hkd.Sub + "), then settle resolve --order"
	for run := 1; run <= 2; run++ {
		out, code := e.runWeChat(sim)
		if code != 4 || !strings.Contains(out, "order "+hkd.OrderNo+": "+reason) {
			t.Fatalf("run %d: exit %d, want 4 naming order %s and why\n%s", run, code, hkd.OrderNo, out)
		}
		if n := e.count(`SELECT count(*) FROM settle.items WHERE order_no = $1 AND state = 'recorded' AND reason = $2`, hkd.OrderNo, "held: "+reason); n != 1 {
			t.Fatalf("run %d: order %s is not held with the reason\n%s", run, hkd.OrderNo, out)
		}
		if n, sent := sim.WeChat.Requests(hkd.Txn), e.count(`SELECT count(*) FROM settle.effects WHERE subject = $1`, wechatpay.Subject(pipeline.Date{Year: 2026, Month: 11, Day: 23}, hkd.OrderNo)); n != 0 || sent != 0 {
			t.Fatalf("run %d: %d requests about the HKD transaction at WeChat Pay, %d in the ledger; want none", run, n, sent)
		}
		if paid, want := e.checkWeChatOnce(sim), e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay'`)-1; int64(paid) != want || want == 0 {
			t.Fatalf("run %d: %d WeChat orders paid, want every CNY one (%d)", run, paid, want)
		}
	}
	// WeChat Pay holds the transaction in CNY: resolve says so while it
	// holds it (it named the order's currency), and records it paid once a
	// person released it at WeChat Pay.
	wx := weChatArgs(sim)
	resolve := func() (string, int) {
		return e.settle(append([]string{"resolve", "--date", testDate, "--order", hkd.OrderNo, "--note", "unfrozen by hand, ticket OPS-7"}, wx...)...)
	}
	if out, code := resolve(); code != 2 || !strings.Contains(out, fmt.Sprintf("WeChat Pay still holds %s of transaction %s",
		pipeline.Money{Minor: sim.WeChat.Frozen(hkd.Txn), Currency: "CNY"}, hkd.Txn)) {
		t.Fatalf("resolve while WeChat Pay holds the transaction: exit %d, want 2 naming what it holds in CNY\n%s", code, out)
	}
	client, err := wechatpay.New(sim.WeChat.ClientConfig(sim.Config.WeChatURL))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Unfreeze(context.Background(), wechatpay.Unfreeze{SubMchID: hkd.Sub, TransactionID: hkd.Txn,
		OutOrderNo: "MANUAL-" + hkd.OrderNo, Description: "released by hand"}); err != nil {
		t.Fatal(err)
	}
	if out, code := resolve(); code != 0 || !strings.Contains(out, "order "+hkd.OrderNo+" (transaction "+hkd.Txn+") is paid: settled outside settle") {
		t.Fatalf("resolve once WeChat Pay holds nothing: exit %d\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE order_no = $1 AND state = 'paid' AND reason LIKE '%OPS-7%was held: WeChat Pay distributes in CNY only%'`, hkd.OrderNo); n != 1 {
		t.Fatal("the item is not paid with the note and what held it")
	}
	if out, code := e.runWeChat(sim); code != 0 {
		t.Fatalf("the run after: exit %d, want 0\n%s", code, out)
	}
}
