package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// TestSellersWithoutAnAccountAreHeldThenPaidOnce: four sellers the
// platform knows have no Infinia seller id yet (their onboarding is not
// done), about a sixth of the day. Their orders were rejects: over the
// reject gate's 5% they stopped every seller's payout (exit 3), and under
// it they were never paid once the date sent anything (--reextract is
// refused then). Now they are held: split and recorded as any, nothing
// paid on them, every other seller paid, the run needing a person (exit
// 4, naming each seller); a re-run before the platform gives the ids
// sends nothing new; a person rejects for good the orders of one that left
// the platform (settle resolve --seller --reject); once the platform gives
// the others' ids, the next run of the date uploads and pays them, once,
// and the one after sends nothing.
func TestSellersWithoutAnAccountAreHeldThenPaidOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "300", "--sellers", "30", "--seed", "5")
	type seller struct {
		ID      string `db:"seller_id"`
		Account string `db:"infinia_seller_id"`
		Orders  int64  `db:"orders"`
	}
	var held []seller
	if err := e.db.Select(&held, `SELECT s.seller_id, s.infinia_seller_id, count(*) AS orders FROM sellers s
		JOIN orders o ON o.seller_id = s.seller_id AND o.provider = 'infiniapay'
		GROUP BY 1, 2 ORDER BY count(*) DESC, 1 LIMIT 4`); err != nil || len(held) != 4 {
		t.Fatalf("four sellers paid by Infinia: %v %v", held, err)
	}
	var orders int64
	for _, s := range held {
		orders += s.Orders
		e.db.MustExec(`UPDATE sellers SET infinia_seller_id = NULL WHERE seller_id = $1`, s.ID)
	}
	if orders*20 <= 300 {
		t.Fatalf("the held sellers have %d of 300 orders: not over the reject gate's 5%%", orders)
	}
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 30, nil, balance)
	shares := func() int { return len(sim.Infinia.RevenueShares()) }

	dry, code := e.settle(append(e.infiniaArgs(sim), "--dry-run")...)
	if code != 0 || !strings.Contains(dry, "held for their sellers' accounts: ") || strings.Contains(dry, "a real run stops") ||
		!strings.Contains(dry, "seller "+held[0].ID+" has no Infinia Pay seller id") {
		t.Errorf("dry run: exit %d, want 0 saying the orders are held, not stopping the day:\n%s", code, dry)
	}

	out, code := e.runInfinia(sim)
	if code != 4 {
		t.Fatalf("run: exit %d, want 4 (orders held for their sellers' accounts):\n%s", code, out)
	}
	for _, s := range held {
		if !strings.Contains(out, "seller "+s.ID+": ") || !strings.Contains(out, "seller "+s.ID+" has no Infinia Pay seller id") {
			t.Errorf("run output does not name held seller %s:\n%s", s.ID, out)
		}
		n, all := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND channel = 'infiniapay' AND state = 'held' AND reason LIKE 'held: seller account: %'`, s.ID),
			e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND channel = 'infiniapay'`, s.ID)
		if n != all || n == 0 {
			t.Errorf("seller %s: %d of its %d Infinia items held", s.ID, n, all)
		}
	}
	if n := e.count(`SELECT count(*) FROM settle.rejects WHERE reason LIKE '%Infinia Pay seller id%'`); n != 0 {
		t.Errorf("%d orders rejected for their seller's id", n)
	}
	if paid := e.count(`SELECT count(DISTINCT seller_id) FROM settle.items WHERE channel = 'infiniapay' AND state = 'paid'`); paid < 20 {
		t.Errorf("only %d sellers paid beside the held ones", paid)
	}
	e.checkPaidOnce(sim, balance)
	before := shares()

	// Nothing given yet: the same, nothing new sent.
	out, code = e.runInfinia(sim)
	if code != 4 || !strings.Contains(out, "held for their accounts") {
		t.Fatalf("re-run before the ids are given: exit %d, want 4 saying the orders are still held:\n%s", code, out)
	}
	if shares() != before {
		t.Fatalf("re-run before the ids are given sent %d revenue shares", shares()-before)
	}

	// One seller left the platform and will never have an id: a person
	// rejects its held orders for good (a --seller without --reject, or
	// a seller with none held, is refused).
	gone := held[len(held)-1]
	held = held[:len(held)-1]
	if out, code := e.settle("resolve", "--date", testDate, "--seller", gone.ID, "--note", "left"); code != 2 || !strings.Contains(out, "only with --reject") {
		t.Errorf("resolve --seller without --reject: exit %d, want 2:\n%s", code, out)
	}
	if out, code := e.settle("resolve", "--date", testDate, "--seller", "S00999", "--reject", "--note", "left"); code != 2 || !strings.Contains(out, "no order of "+testDate+" is held for its account") {
		t.Errorf("resolve --seller of a seller with nothing held: exit %d, want 2:\n%s", code, out)
	}
	out = e.mustSettle("resolve", "--date", testDate, "--seller", gone.ID, "--reject", "--note", "left the platform, ticket 42")
	// Said again (a retry whose answer was lost): done before, exit 0,
	// nothing changed; it was exit 2, "no order held", with the hint to
	// fix the configuration.
	if again, code := e.settle("resolve", "--date", testDate, "--seller", gone.ID, "--reject", "--note", "again"); code != 0 || !strings.Contains(again, "were rejected before") {
		t.Errorf("resolve --seller --reject said again: exit %d, want 0 saying it was done before:\n%s", code, again)
	}
	rejected := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND state = 'rejected' AND reason LIKE 'rejected by a person%held for its seller''s account%left the platform, ticket 42; was held: seller account: %'`, gone.ID)
	if all := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND channel <> 'wechatpay'`, gone.ID); rejected == 0 || rejected != all {
		t.Fatalf("seller %s: %d of its %d Infinia-paid orders rejected by the person:\n%s", gone.ID, rejected, all, out)
	}

	// The platform gives the others' ids: the next run of the date pays them.
	for _, s := range held {
		e.db.MustExec(`UPDATE sellers SET infinia_seller_id = $1 WHERE seller_id = $2`, s.Account, s.ID)
	}
	out, code = e.runInfinia(sim)
	if code != 0 {
		t.Fatalf("run after the ids were given: exit %d, want 0:\n%s", code, out)
	}
	if !strings.Contains(out, "released (their accounts given since)") {
		t.Errorf("run after the ids were given does not say it released the orders:\n%s", out)
	}
	if !strings.Contains(out, fmt.Sprintf("rejected by a person (settle resolve): %d orders", rejected)) || strings.Contains(out, "rejected by the providers") {
		t.Errorf("run after the ids were given does not list the orders a person rejected as such:\n%s", out)
	}
	for _, s := range held {
		if n := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND channel = 'infiniapay' AND state <> 'paid'`, s.ID); n != 0 {
			t.Errorf("seller %s: %d of its Infinia items not paid once its id was given", s.ID, n)
		}
		if n := e.count(`SELECT count(*) FROM settle.run_sellers WHERE seller_id = $1 AND infinia_seller_id = $2`, s.ID, s.Account); n != 1 {
			t.Errorf("seller %s: the run's sellers do not record its id %s", s.ID, s.Account)
		}
	}
	e.checkPaidOnce(sim, balance)
	if n := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND state <> 'rejected' AND channel <> 'wechatpay'`, gone.ID); n != 0 {
		t.Errorf("seller %s: %d of the orders a person rejected are not rejected", gone.ID, n)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE state = 'held'`); n != 0 {
		t.Errorf("%d items still held", n)
	}
	after := shares()
	out, code = e.runInfinia(sim)
	if code != 0 || shares() != after {
		t.Fatalf("run after all were paid: exit %d, %d revenue shares sent:\n%s", code, shares()-after, out)
	}
}

// TestASellerWithoutASubMerchantIsHeldThenDistributedOnce: the platform
// gives a seller of WeChat Pay orders no sub_mchid yet. Its transactions
// are held (nothing distributed or unfrozen for them), every other
// seller's are settled, the run needs a person; once the platform gives
// the sub_mchid, the next run of the date settles them, each once, and
// its reconciliation finds nothing amiss.
func TestASellerWithoutASubMerchantIsHeldThenDistributedOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "200", "--sellers", "6", "--seed", "11")
	var seller, sub string
	if err := e.db.QueryRow(`SELECT s.seller_id, s.wechat_sub_mchid FROM sellers s JOIN orders o ON o.seller_id = s.seller_id
		WHERE o.provider = 'wechatpay' GROUP BY 1, 2 ORDER BY count(*) DESC, 1 LIMIT 1`).Scan(&seller, &sub); err != nil {
		t.Fatal(err)
	}
	sim := e.weChatSim(nil, 0) // WeChat Pay holds its transactions at its sub-merchant
	e.db.MustExec(`UPDATE sellers SET wechat_sub_mchid = '' WHERE seller_id = $1`, seller)
	out, code := e.runWeChat(sim)
	if code != 4 || !strings.Contains(out, "seller "+seller+" has no") {
		t.Fatalf("first run: exit %d, want 4 naming seller %s's missing sub_mchid:\n%s", code, seller, out)
	}
	held := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND channel = 'wechatpay' AND state = 'held' AND reason LIKE 'held: seller account: %'`, seller)
	if all := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND channel = 'wechatpay'`, seller); held == 0 || held != all {
		t.Fatalf("seller %s: %d of its %d WeChat transactions held", seller, held, all)
	}
	if !strings.Contains(out, "0 unexpected mismatches") {
		t.Errorf("first run: its reconciliation finds the held transactions amiss:\n%s", out)
	}
	first := e.checkWeChatOnce(sim)
	if others := e.count(`SELECT count(*) FROM settle.items WHERE seller_id <> $1 AND channel = 'wechatpay'`, seller); int64(first) != others {
		t.Fatalf("first run: %d of the other sellers' %d WeChat transactions settled", first, others)
	}
	e.db.MustExec(`UPDATE sellers SET wechat_sub_mchid = $1 WHERE seller_id = $2`, sub, seller)
	out, code = e.runWeChat(sim)
	if code != 0 {
		t.Fatalf("run after the sub_mchid was given: exit %d, want 0:\n%s", code, out)
	}
	paid := e.checkWeChatOnce(sim)
	if want := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay'`); int64(paid) != want {
		t.Fatalf("%d of %d WeChat transactions settled once the sub_mchid was given", paid, want)
	}
	if again, _ := e.runWeChat(sim); !strings.Contains(again, "0 new money movements") {
		t.Fatalf("the run after moved money:\n%s", again)
	}
}

// TestPayProtocolOrdersOfASellerRejectedByAPersonAreNotReopened: a seller
// without an Infinia seller id holds its Pay Protocol orders too (Infinia
// pays them); a person rejects them for good (settle resolve --seller
// --reject: the seller left). Their payments were never in doubt: Pay
// Protocol answers them paid. The reconciliation asked Pay Protocol about
// them as about an order a person rejected for its failed payment, found
// each paid, and needed a person on every run of the date ("the buyer paid
// and the seller is not paid"), advising settle resolve --order --reopen,
// which took it and held the order again for its date's next run to pay
// it to the seller that has no account. Now the date's next run ends 0,
// and --reopen refuses them.
func TestPayProtocolOrdersOfASellerRejectedByAPersonAreNotReopened(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "120", "--sellers", "6", "--bad-rows", "0", "--seed", "3")
	const balance = 1_000_000_000_00
	sim := e.payProtocolSim(nil, 6, balance)
	var seller string
	if err := e.db.Get(&seller, `SELECT seller_id FROM orders WHERE provider = 'payprotocol' AND provider_txn_id IS NOT NULL
		GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	e.db.MustExec(`UPDATE sellers SET infinia_seller_id = NULL WHERE seller_id = $1`, seller)
	if out, code := e.runInfinia(sim); code != 4 || !strings.Contains(out, "seller "+seller+" has no Infinia Pay seller id") {
		t.Fatalf("run: exit %d, want 4 naming seller %s:\n%s", code, seller, out)
	}
	order := e.first(`SELECT order_no FROM settle.items WHERE seller_id = $1 AND channel = 'payprotocol' AND state = 'held'`, seller)
	e.mustSettle("resolve", "--date", testDate, "--seller", seller, "--reject", "--note", "left the platform, ticket 9")
	// (The day's other Pay Protocol payments, pending and the like, need
	// a person of their own.)
	if out, _ := e.runInfinia(sim); strings.Contains(out, payprotocol.PaidAfterRejection) || strings.Contains(out, "--reopen") {
		t.Fatalf("run after the person rejected seller %s's orders asks to reopen them:\n%s", seller, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND channel = 'payprotocol' AND state <> 'rejected'`, seller); n != 0 {
		t.Errorf("seller %s: %d of its Pay Protocol orders not rejected", seller, n)
	}
	if out, code := e.settle(append([]string{"resolve", "--date", testDate, "--order", order, "--reopen", "--note", "n"}, sim.Config.Args()...)...); code != 2 {
		t.Errorf("--reopen of an order rejected with its seller: exit %d, want 2:\n%s", code, out)
	}
	if state, _ := e.itemOf(order); state != pipeline.ItemRejected {
		t.Errorf("order %s is %s, want rejected", order, state)
	}
}

// TestANightNamesADateWhoseHeldSellersHaveTheirAccountsNow: a date's run
// held a seller's orders for its missing Infinia id and ended needing a
// person; the platform gave the id days later, and nobody ran the date
// again: the night only noted the date as waiting on a person, and the
// seller was never paid. The night now asks the platform's sellers about
// such a date's held sellers, and names the date (exit 4) once one of
// them can be paid, with the run that pays it.
func TestANightNamesADateWhoseHeldSellersHaveTheirAccountsNow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seller, account := e.heldInfiniaSeller()
	now := time.Date(2026, 11, 24, 20, 0, 0, 0, time.UTC) // yesterday in Asia/Shanghai: 2026-11-24
	at := e.nightAt(&now)
	if out, code := at("--date", testDate); code != 4 || !strings.Contains(out, "seller "+seller+" has no Infinia Pay seller id") {
		t.Fatalf("run of %s: exit %d, want 4 holding seller %s's orders:\n%s", testDate, code, seller, out)
	}
	if out, code := at(); code != 0 || !strings.Contains(out, "1 runs of dates before 2026-11-24 wait on a person") || strings.Contains(out, "can be paid now") {
		t.Fatalf("the night while the id is missing: exit %d, want 0 noting the date waiting:\n%s", code, out)
	}
	e.db.MustExec(`UPDATE sellers SET infinia_seller_id = $1 WHERE seller_id = $2`, account, seller)
	now = now.AddDate(0, 0, 1)
	want := "date " + testDate + ": "
	out, code := at()
	if code != 4 || !strings.Contains(out, want) || !strings.Contains(out, "orders held for their sellers' accounts can be paid now, the platform's sellers give "+seller+" a usable account: settle run --date "+testDate+" pays them") {
		t.Fatalf("the night after the id was given: exit %d, want 4 naming %s:\n%s", code, testDate, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND state = 'held'`, seller); n == 0 {
		t.Fatal("the night released the date's held orders: only a run of the date does")
	}
	if out, code := at("--date", testDate); code != 0 || !strings.Contains(out, "released (their accounts given since)") {
		t.Fatalf("the date run again: exit %d, want 0 releasing the orders:\n%s", code, out)
	}
	if out, code := at(); code != 0 || strings.Contains(out, "can be paid now") || strings.Contains(out, "wait on a person") {
		t.Fatalf("the night after the date ran again: exit %d, want 0 naming nothing:\n%s", code, out)
	}
}

// TestTheNightsSellerCheckIsBoundedAndAsksOnce: the night asks the
// platform's sellers about an earlier date's held sellers after its own
// run is over, its exit decided. A platform database that takes the
// connection and never answers (a failover's proxy) held the night there
// for good - lib/pq bounds by the context the dial alone - its exit
// code and metrics never given; and one that could not be opened was
// opened again for each waiting date (31 of them), each an attempt as
// long. Now the question is left after its bound, and not asked again
// of the night's other dates.
func TestTheNightsSellerCheckIsBoundedAndAsksOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seller, _ := e.heldInfiniaSeller()
	if out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports,
		"--skip-channel", "infiniapay,payprotocol,wechatpay"); code != 4 {
		t.Fatalf("run of %s: exit %d, want 4 holding seller %s's orders:\n%s", testDate, code, seller, out)
	}

	addr, taken := silentServer(t)
	l, err := ledger.Open(context.Background(), e.url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d, err := pipeline.ParseDate(testDate)
	if err != nil {
		t.Fatal(err)
	}
	o := &runOptions{sourceURL: "postgres://settle@" + addr + "/platform?sslmode=disable", sellersQ: sellersQueryDefault()}
	const wait = time.Second
	payable, done := sellersPayable(l, o, wait)
	defer done()
	ask := func() (time.Duration, error) {
		start := time.Now()
		answered := make(chan error, 1)
		go func() {
			_, _, err := payable(context.Background(), pipeline.RunKey{Date: d, Shard: pipeline.Whole})
			answered <- err
		}()
		select {
		case err := <-answered:
			return time.Since(start), err
		case <-time.After(wait + 20*time.Second):
			t.Fatalf("the night's seller check still waiting on a platform database that never answers after %v (its bound: %v)", time.Since(start), wait)
			return 0, nil
		}
	}
	if took, err := ask(); err == nil || took > wait+5*time.Second {
		t.Fatalf("first date: %v after %v, want an error within %v", err, took, wait)
	}
	if took, err := ask(); err == nil || took > time.Second {
		t.Fatalf("second date: %v after %v, want the first's error at once", err, took)
	}
	if n := taken(); n != 1 {
		t.Errorf("%d connections to the platform database, want 1: asked again after it did not answer", n)
	}
}

// TestANightNamesTheShardWhoseHeldSellersHaveTheirAccountsNow: the date
// was run in two shards, the held seller in one of them. Once the platform
// gives its id, the night's pod of that shard names it, with the run that
// pays it (--shard I/N); the other pod names nothing of it.
func TestANightNamesTheShardWhoseHeldSellersHaveTheirAccountsNow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seller, account := e.heldInfiniaSeller()
	mine := pipeline.Shard{Index: 0, Count: 2}
	if !mine.Owns(seller) {
		mine.Index = 1
	}
	other := pipeline.Shard{Index: 1 - mine.Index, Count: 2}
	now := time.Date(2026, 11, 24, 20, 0, 0, 0, time.UTC) // yesterday in Asia/Shanghai: 2026-11-24
	at := e.nightAt(&now)
	if out, code := at("--date", testDate, "--shard", mine.String()); code != 4 || !strings.Contains(out, "seller "+seller+" has no Infinia Pay seller id") {
		t.Fatalf("shard %s of %s: exit %d, want 4 holding seller %s's orders:\n%s", mine, testDate, code, seller, out)
	}
	if out, code := at("--date", testDate, "--shard", other.String()); code != 0 {
		t.Fatalf("shard %s of %s: exit %d, want 0:\n%s", other, testDate, code, out)
	}
	e.db.MustExec(`UPDATE sellers SET infinia_seller_id = $1 WHERE seller_id = $2`, account, seller)
	want := "the platform's sellers give " + seller + " a usable account: settle run --date " + testDate + " --shard " + mine.String() + " pays them"
	if out, code := at("--shard", mine.String()); code != 4 || !strings.Contains(out, want) {
		t.Fatalf("the night's pod %s: exit %d, want 4 naming %q:\n%s", mine, code, want, out)
	}
	if out, code := at("--shard", other.String()); code != 0 || strings.Contains(out, "can be paid now") {
		t.Fatalf("the night's pod %s: exit %d, want 0 naming nothing of shard %s:\n%s", other, code, mine, out)
	}
}

// TestANightDoesNotNameAHeldSellerGivenAnotherSellersAccount: the platform
// gives the held seller an Infinia id at last, but one another seller of
// the date has too: the date's run would hold it still, and the night
// must not say it can be paid.
func TestANightDoesNotNameAHeldSellerGivenAnotherSellersAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "100", "--sellers", "10", "--seed", "5")
	var pair []string
	if err := e.db.Select(&pair, `SELECT DISTINCT seller_id FROM orders WHERE provider = 'infiniapay' ORDER BY 1 LIMIT 2`); err != nil || len(pair) != 2 {
		t.Fatalf("two sellers paid by Infinia: %v %v", pair, err)
	}
	e.db.MustExec(`UPDATE sellers SET infinia_seller_id = NULL WHERE seller_id = $1`, pair[0])
	now := time.Date(2026, 11, 24, 20, 0, 0, 0, time.UTC) // yesterday in Asia/Shanghai: 2026-11-24
	at := e.nightAt(&now)
	if out, code := at("--date", testDate); code != 4 {
		t.Fatalf("run of %s: exit %d, want 4 holding seller %s's orders:\n%s", testDate, code, pair[0], out)
	}
	e.db.MustExec(`UPDATE sellers SET infinia_seller_id = (SELECT infinia_seller_id FROM sellers WHERE seller_id = $1) WHERE seller_id = $2`, pair[1], pair[0])
	if out, code := at(); code != 0 || strings.Contains(out, "can be paid now") || !strings.Contains(out, "1 runs of dates before 2026-11-24 wait on a person") {
		t.Fatalf("the night after seller %s was given seller %s's id: exit %d, want 0 noting the date waiting:\n%s", pair[0], pair[1], code, out)
	}
}

// heldInfiniaSeller seeds testDate (100 orders of 10 sellers) and takes
// the Infinia seller id from the seller with the most Infinia orders: the
// seller, and the id it had.
func (e *env) heldInfiniaSeller() (string, string) {
	e.t.Helper()
	e.mustSettle("seed", "--date", testDate, "--orders", "100", "--sellers", "10", "--seed", "5")
	var seller, account string
	if err := e.db.QueryRow(`SELECT s.seller_id, s.infinia_seller_id FROM sellers s JOIN orders o ON o.seller_id = s.seller_id
		WHERE o.provider = 'infiniapay' GROUP BY 1, 2 ORDER BY count(*) DESC, 1 LIMIT 1`).Scan(&seller, &account); err != nil {
		e.t.Fatal(err)
	}
	e.db.MustExec(`UPDATE sellers SET infinia_seller_id = NULL WHERE seller_id = $1`, seller)
	return seller, account
}

// nightAt runs settle run with the clock at *now (a night, without
// --date), every channel left out (the seller check runs all the same):
// its output and exit code.
func (e *env) nightAt(now *time.Time) func(args ...string) (string, int) {
	return func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		full := append([]string{"settle", "run", "--database-url", e.url, "--rules", e.rules, "--out", e.reports,
			"--skip-channel", "infiniapay,payprotocol,wechatpay"}, args...)
		err := runAt(context.Background(), func() time.Time { return *now }, sendingPastMemory(plainTextArgs(full)), func(string) string { return "" }, &out, &errb)
		code := exitCode(err, &errb) // writes the error's lines
		return out.String() + errb.String(), code
	}
}
