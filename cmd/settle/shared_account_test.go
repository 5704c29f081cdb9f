package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lib/pq"

	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/seed"
)

// TestSellersSharingAnInfiniaIDAreNotPaid: the platform gives two sellers
// the same Infinia seller id (a row copied, a typo). Their trade files
// went up under one account and both revenue shares paid it: one seller
// was paid the other's money. Now the orders of both that Infinia pays
// are held, each naming the other, in the one-pass extract (which meets
// the second seller after the first's orders) as in the transform stage;
// the dry run says so; every other seller is paid, and the run needs a
// person (exit 4). Once the platform corrects the second seller's id, the
// next run of the date pays both, each to its own account, once.
func TestSellersSharingAnInfiniaIDAreNotPaid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "300", "--sellers", "30", "--seed", "5")
	var pair []string
	if err := e.db.Select(&pair, `SELECT DISTINCT seller_id FROM orders WHERE provider IN ('infiniapay', 'payprotocol') ORDER BY 1 LIMIT 2`); err != nil || len(pair) != 2 {
		t.Fatalf("two sellers paid by Infinia: %v %v", pair, err)
	}
	var account string
	if err := e.db.Get(&account, `SELECT infinia_seller_id FROM sellers WHERE seller_id = $1`, pair[0]); err != nil {
		t.Fatal(err)
	}
	e.db.MustExec(`UPDATE sellers SET infinia_seller_id = $1 WHERE seller_id = $2`, account, pair[1])
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 30, nil, balance)

	dry, code := e.settle(append(e.infiniaArgs(sim), "--dry-run")...)
	if code != 0 || !strings.Contains(dry, "sellers "+pair[0]+" and "+pair[1]+" have the same infiniapay account") ||
		!strings.Contains(dry, "a real run holds all of them") {
		t.Errorf("dry run: exit %d, want 0 naming the two sellers:\n%s", code, dry)
	}

	out, code := e.runInfinia(sim)
	if code != 4 {
		t.Fatalf("run: exit %d, want 4 (orders held for their sellers' accounts):\n%s", code, out)
	}
	for i, seller := range pair {
		other := pair[1-i]
		items := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND channel <> 'wechatpay'`, seller)
		held := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND state = 'held' AND reason LIKE $2`, seller,
			"held: seller account: %Infinia Pay seller id \""+account+"\" is also seller "+other+"'s in the platform's sellers%")
		if items == 0 || held != items {
			t.Errorf("seller %s: %d of its %d Infinia-paid items held naming %s", seller, held, items, other)
		}
	}
	for _, s := range sim.Infinia.RevenueShares() {
		if s.SellerID == account {
			t.Errorf("revenue share %+v paid to the shared account", s)
		}
	}
	if paid := e.count(`SELECT count(DISTINCT seller_id) FROM settle.items WHERE channel = 'infiniapay' AND state = 'paid'`); paid < 20 {
		t.Errorf("only %d sellers paid", paid)
	}
	e.checkPaidOnce(sim, balance)

	// The platform corrects the second seller's id: both are paid, each
	// to its own account.
	e.db.MustExec(`UPDATE sellers SET infinia_seller_id = 'INF99999999' WHERE seller_id = $1`, pair[1])
	sim.Infinia.SetBinding("INF99999999", "ACTIVE")
	if out, code := e.runInfinia(sim); code != 0 {
		t.Fatalf("run after the platform corrected seller %s: exit %d, want 0:\n%s", pair[1], code, out)
	}
	for _, seller := range pair {
		if n := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND channel = 'infiniapay' AND state <> 'paid'`, seller); n != 0 {
			t.Errorf("seller %s: %d Infinia items not paid once the platform corrected the ids", seller, n)
		}
	}
	if n := e.count(`SELECT count(*) FROM settle.run_sellers WHERE seller_id = $1 AND infinia_seller_id = 'INF99999999'`, pair[1]); n != 1 {
		t.Errorf("the run's sellers do not record seller %s's corrected id", pair[1])
	}
	e.checkPaidOnce(sim, balance)
}

// TestASharedInfiniaIDMetLateIsHeldByTheOnePass: the one-pass extract
// and transform met the second seller of an Infinia seller id in a later
// batch of sellers than the first (past the first 4096 rows), with rows
// that are rejected before their seller is looked up (no amount, say): no
// lookup failed after the second seller was seen, so the pass kept its
// items, and the first seller's Infinia orders were recorded to be paid to
// the shared account, where the transform stage, run from the same
// snapshot, holds them naming the other seller. The pass now leaves the
// items to the transform stage whichever rows the second seller has.
func TestASharedInfiniaIDMetLateIsHeldByTheOnePass(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "4300", "--sellers", "5", "--seed", "5")
	var first, account string
	if err := e.db.Get(&first, `SELECT seller_id FROM orders WHERE provider = 'infiniapay' ORDER BY order_no LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Get(&account, `SELECT infinia_seller_id FROM sellers WHERE seller_id = $1`, first); err != nil || account == "" {
		t.Fatalf("seller %s's Infinia id %q: %v", first, account, err)
	}
	e.db.MustExec(`INSERT INTO sellers (seller_id, name, infinia_seller_id) VALUES ('SLATE', 'Late', $1)`, account)
	e.db.MustExec(`INSERT INTO orders (order_no, seller_id, provider, currency, amount_minor, category, paid_at, confirmed_at)
		VALUES ('ZZZZ-LATE', 'SLATE', 'infiniapay', 'USD', NULL, 'c', '2026-11-23 12:00+08', '2026-11-23 12:00+08')`)
	// The platform's rows in order number order: the second seller's last.
	q := filepath.Join(t.TempDir(), "source.sql")
	if err := os.WriteFile(q, []byte(`SELECT o.order_no, o.seller_id, o.provider, o.provider_txn_id, o.currency, o.amount_minor,
       COALESCE(r.refunded_minor, 0) AS refunded_minor, o.category, o.paid_at, o.confirmed_at
FROM orders o
LEFT JOIN (SELECT order_no, sum(amount_minor) AS refunded_minor FROM refunds WHERE created_at < $2 GROUP BY order_no) r ON r.order_no = o.order_no
WHERE o.confirmed_at >= $1 AND o.confirmed_at < $2
ORDER BY o.order_no`), 0o600); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM orders WHERE confirmed_at >= '2026-11-23 00:00+08' AND confirmed_at < '2026-11-24 00:00+08'`); n <= 4096 {
		t.Fatalf("%d orders on the date: the second seller must come after the first batch", n)
	}
	out := e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, "--until", "transform", skipAll,
		"--source-query", q, "--max-reject-ratio", "1")
	orders := e.count(`SELECT count(*) FROM orders WHERE seller_id = $1 AND provider IN ('infiniapay', 'payprotocol')
		AND confirmed_at >= '2026-11-23 00:00+08' AND confirmed_at < '2026-11-24 00:00+08'`, first)
	if n := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND channel <> 'wechatpay' AND state <> 'held'`, first); orders == 0 || n != 0 {
		t.Errorf("seller %s: %d of its %d Infinia-paid orders recorded to be paid to the account seller SLATE has too:\n%s", first, n, orders, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND state = 'held' AND reason LIKE 'held: seller account: %is also seller SLATE''s%'`, first); n != orders {
		t.Errorf("seller %s: %d of its %d Infinia-paid orders held naming SLATE", first, n, orders)
	}
}

// TestSellersSharingAnInfiniaIDAcrossShardsAreNotBothPaid: two sellers
// with one Infinia seller id in two shards of a date were both paid to it,
// each shard seeing its own sellers alone (found by a finance review).
// The shard that reads the day after the other holds its seller's
// Infinia-paid orders, naming the other shard's seller (exit 4); nothing
// more is paid to the shared account, and a run of that shard again,
// the platform's sellers unchanged, still holds them: its seller check
// reads the other shard's sellers too.
func TestSellersSharingAnInfiniaIDAcrossShardsAreNotBothPaid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "300", "--sellers", "30", "--seed", "5")
	// Two sellers paid by Infinia, one in each shard of two.
	var ids []string
	if err := e.db.Select(&ids, `SELECT DISTINCT seller_id FROM orders WHERE provider IN ('infiniapay', 'payprotocol') ORDER BY 1`); err != nil {
		t.Fatal(err)
	}
	first, second := "", ""
	for _, id := range ids {
		switch sh := (pipeline.Shard{Index: 0, Count: 2}); {
		case first == "" && sh.Owns(id):
			first = id
		case second == "" && !sh.Owns(id):
			second = id
		}
	}
	if first == "" || second == "" {
		t.Fatalf("no seller in each shard among %v", ids)
	}
	var account string
	if err := e.db.Get(&account, `SELECT infinia_seller_id FROM sellers WHERE seller_id = $1`, first); err != nil {
		t.Fatal(err)
	}
	e.db.MustExec(`UPDATE sellers SET infinia_seller_id = $1 WHERE seller_id = $2`, account, second)
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 30, nil, balance)
	if out, code := e.runInfinia(sim, "--shard", "0/2"); code != 0 {
		t.Fatalf("shard 0/2: exit %d:\n%s", code, out)
	}
	for range 2 {
		if out, code := e.runInfinia(sim, "--shard", "1/2"); code != 4 || !strings.Contains(out, "seller "+second+": ") {
			t.Fatalf("shard 1/2: exit %d, want 4 naming seller %s:\n%s", code, second, out)
		}
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND channel <> 'wechatpay'`, first); n == 0 {
		t.Fatalf("seller %s of the shard that read the day first: no Infinia-paid items", first)
	}
	items := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND channel <> 'wechatpay'`, second)
	held := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND state = 'held' AND reason LIKE $2`, second,
		"%\""+account+"\" is also seller "+first+"'s in the platform's sellers%")
	if items == 0 || held != items {
		t.Errorf("seller %s of the shard that read the day second: %d of its %d Infinia-paid items held naming %s", second, held, items, first)
	}
	e.checkPaidOnce(sim, balance)
}

// TestASellerSharingAnIDWithARejectedOneIsPaidOnceThePlatformCorrects:
// two sellers have the same Infinia seller id, and both hold their
// orders. The second is the platform's mistake (a copied row): a person
// rejects its held orders for good (settle resolve --seller --reject) and
// the platform takes the id from it. The first's orders are its own now,
// and the next run of the date pays them. The seller check read again
// only the sellers with orders still held, and compared the first's id
// with the second's as the run recorded it: the first stayed held on every
// run of the date, for good (a person could only reject its orders too).
func TestASellerSharingAnIDWithARejectedOneIsPaidOnceThePlatformCorrects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "300", "--sellers", "30", "--seed", "5")
	var pair []string
	if err := e.db.Select(&pair, `SELECT DISTINCT seller_id FROM orders WHERE provider = 'infiniapay' ORDER BY 1 LIMIT 2`); err != nil || len(pair) != 2 {
		t.Fatalf("two sellers paid by Infinia: %v %v", pair, err)
	}
	e.db.MustExec(`UPDATE sellers SET infinia_seller_id = (SELECT infinia_seller_id FROM sellers WHERE seller_id = $1) WHERE seller_id = $2`, pair[0], pair[1])
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 30, nil, balance)
	if out, code := e.runInfinia(sim); code != 4 {
		t.Fatalf("run: exit %d, want 4 (orders held for their sellers' accounts):\n%s", code, out)
	}
	e.mustSettle("resolve", "--date", testDate, "--seller", pair[1], "--reject", "--note", "a copied row, ticket 7")
	e.db.MustExec(`UPDATE sellers SET infinia_seller_id = NULL WHERE seller_id = $1`, pair[1])
	out, code := e.runInfinia(sim)
	if code != 0 {
		t.Fatalf("run after the platform took the id from seller %s: exit %d, want 0:\n%s", pair[1], code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND channel = 'infiniapay' AND state <> 'paid'`, pair[0]); n != 0 {
		t.Errorf("seller %s: %d of its Infinia items not paid", pair[0], n)
	}
	e.checkPaidOnce(sim, balance)
}

// TestASellerHeldForASharedIDIsNotPaidItsCarriedBalanceThere: a seller
// whose Infinia seller id another seller has too holds its orders of the
// date, never paid to an account that may not be its own; but it also had
// a balance carried from before, and the date's revenue share paid that
// balance to the shared id (the candidates take the account the run
// recorded): the other seller's account, maybe.
func TestASellerHeldForASharedIDIsNotPaidItsCarriedBalanceThere(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pair, account := e.sharedInfiniaPair(testDate)
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 30, nil, balance)
	if out, code := e.runInfinia(sim); code != 4 {
		t.Fatalf("run: exit %d, want 4 (orders held for their sellers' accounts):\n%s", code, out)
	}
	e.carryFor(sim, pair[1], account)
	out, code := e.runInfinia(sim)
	if code != 4 {
		t.Fatalf("re-run: exit %d, want 4:\n%s", code, out)
	}
	for _, s := range sim.Infinia.RevenueShares() {
		if s.SellerID == account {
			t.Errorf("revenue share %+v paid to the shared account", s)
		}
	}
	if n := e.count(`SELECT count(*) FROM settle.adjustments WHERE seller_id = $1 AND netted_into = ''`, pair[1]); n != 1 {
		t.Errorf("seller %s: its carried balance is not open any more (%d open)", pair[1], n)
	}

	// The platform corrects the second seller's id: its balance is paid
	// there, with its orders of the date.
	e.db.MustExec(`UPDATE sellers SET infinia_seller_id = 'INF99999999' WHERE seller_id = $1`, pair[1])
	sim.Infinia.SetBinding("INF99999999", "ACTIVE")
	sim.Infinia.SetAvailable("INF99999999", "USD", 1_000_000_00)
	// (Its reconciliation finds the balance carried in from nowhere the
	// test made it: not the run's doing.)
	if out, code := e.runInfinia(sim); code != 0 && code != 4 {
		t.Fatalf("run after the platform corrected seller %s: exit %d, want 0:\n%s", pair[1], code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.adjustments WHERE seller_id = $1 AND netted_into = ''`, pair[1]); n != 0 {
		t.Errorf("seller %s: its carried balance still open once its id was corrected", pair[1])
	}
	var paid int64
	for _, s := range sim.Infinia.RevenueShares() {
		if s.SellerID == "INF99999999" && s.Currency == "USD" && s.Status == "SUCCESS" {
			paid += s.Amount
		}
	}
	if owed := e.count(`SELECT COALESCE(sum(seller_minor), 0) FROM settle.items WHERE seller_id = $1 AND channel = 'infiniapay' AND currency = 'USD'`, pair[1]) + 12345; paid != owed || paid == 12345 {
		t.Errorf("seller %s: %d USD paid to its id, want its orders and its balance, %d", pair[1], paid, owed)
	}
}

// TestASellerRejectedWithAnIDAnotherHasIsNotPaidItsCarriedBalanceThere:
// as above, but a person rejects the second seller's held orders for good
// (settle resolve --seller --reject: a copied row) before the platform
// takes the id from it. Its orders are no longer held, so the date's
// next run no longer carried its balance from before: it was paid to the
// id the first seller has too.
func TestASellerRejectedWithAnIDAnotherHasIsNotPaidItsCarriedBalanceThere(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pair, account := e.sharedInfiniaPair(testDate)
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 30, nil, balance)
	if out, code := e.runInfinia(sim); code != 4 {
		t.Fatalf("run: exit %d, want 4 (orders held for their sellers' accounts):\n%s", code, out)
	}
	e.carryFor(sim, pair[1], account)
	e.mustSettle("resolve", "--date", testDate, "--seller", pair[1], "--reject", "--note", "a copied row, ticket 7")
	out, code := e.runInfinia(sim)
	for _, s := range sim.Infinia.RevenueShares() {
		if s.SellerID == account {
			t.Errorf("revenue share %+v paid to the id seller %s has too (exit %d):\n%s", s, pair[0], code, out)
		}
	}
	if n := e.count(`SELECT count(*) FROM settle.adjustments WHERE seller_id = $1 AND netted_into = ''`, pair[1]); n != 1 {
		t.Errorf("seller %s: its carried balance is not open any more (%d open)", pair[1], n)
	}
}

// TestAHeldSellersCarriedBalanceIsNotPaidToTheSharedIDOnALaterDate:
// sellers S and T have one Infinia id, so the date holds T's orders (and
// S's); T has a balance carried from earlier dates. On the next date T has
// no order, so its carried balance is paid to its last recorded Infinia
// id: the one the held date recorded, S's. It is now carried for a person
// (no Infinia seller id to pay it to) until a run records a usable one.
func TestAHeldSellersCarriedBalanceIsNotPaidToTheSharedIDOnALaterDate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pair, account := e.sharedInfiniaPair(testDate, "2026-11-24")
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 30, nil, balance)
	if out, code := e.runInfinia(sim); code != 4 {
		t.Fatalf("run of %s: exit %d, want 4 (both sellers held):\n%s", testDate, code, out)
	}
	// T's balance carried from before (below the minimum payout, say).
	e.carryFor(sim, pair[1], account)
	e.db.MustExec(`DELETE FROM orders WHERE seller_id = $1 AND confirmed_at >= '2026-11-23 16:00:00+00'`, pair[1])
	out, code := e.runInfinia(sim, "--date", "2026-11-24")
	e.checkCarriedNotPaidThere(sim, pair, account, "next date", out, code)
}

// TestASellerWithoutInfiniaOrdersIsNotPaidItsCarriedBalanceToTheSharedID:
// sellers S and T have one Infinia id; on the date T has WeChat Pay orders
// only, so none of its orders is held for the id (S's are), yet the run
// records T with it. T's balance carried from earlier dates must not be
// paid to the id S has too, on the date nor on a later one where T has no
// order (found by a review of 95797dc).
func TestASellerWithoutInfiniaOrdersIsNotPaidItsCarriedBalanceToTheSharedID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pair, account := e.sharedInfiniaPair(testDate, "2026-11-24")
	// T's orders of the date are WeChat Pay's (one at least), none of them later.
	e.db.MustExec(`UPDATE orders SET provider = 'wechatpay', provider_txn_id = NULL, currency = 'CNY'
		WHERE seller_id = $1 AND provider <> 'wechatpay' AND confirmed_at < '2026-11-23 16:00:00+00'`, pair[1])
	e.db.MustExec(`DELETE FROM orders WHERE seller_id = $1 AND confirmed_at >= '2026-11-23 16:00:00+00'`, pair[1])
	// Its balance carried from an earlier date (below the minimum payout, say).
	e.db.MustExec(`INSERT INTO settle.runs (business_date, shard_index, shard_count, state, time_zone, rules_hash, config_hash)
		VALUES ('2026-11-20', 0, 1, 'done', 'Asia/Shanghai', '', '')`)
	e.db.MustExec(`INSERT INTO settle.adjustments (seller_id, currency, kind, amount_minor, reason, business_date, run_id)
		VALUES ($1, 'USD', 'held', 12345, 'below the minimum payout', '2026-11-20',
		        (SELECT id FROM settle.runs WHERE business_date = '2026-11-20'))`, pair[1])
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 30, nil, balance)
	sim.Infinia.SetAvailable(account, "USD", sim.Infinia.Available(account, "USD")+1_000_000)
	out, code := e.runInfinia(sim)
	e.checkCarriedNotPaidThere(sim, pair, account, "the date", out, code)
	out, code = e.runInfinia(sim, "--date", "2026-11-24")
	e.checkCarriedNotPaidThere(sim, pair, account, "next date", out, code)
}

// sharedInfiniaPair seeds dates (300 orders of 30 sellers each) and gives
// the second of the first two sellers paid by Infinia the first's Infinia
// seller id, as a copied row does: the two, and the id.
func (e *env) sharedInfiniaPair(dates ...string) ([]string, string) {
	e.t.Helper()
	for i, d := range dates {
		e.mustSettle("seed", "--date", d, "--orders", "300", "--sellers", "30", "--seed", strconv.Itoa(5+i))
	}
	var pair []string
	if err := e.db.Select(&pair, `SELECT DISTINCT seller_id FROM orders WHERE provider = 'infiniapay' ORDER BY 1 LIMIT 2`); err != nil || len(pair) != 2 {
		e.t.Fatalf("two sellers paid by Infinia: %v %v", pair, err)
	}
	var account string
	if err := e.db.Get(&account, `SELECT infinia_seller_id FROM sellers WHERE seller_id = $1`, pair[0]); err != nil {
		e.t.Fatal(err)
	}
	e.db.MustExec(`UPDATE sellers SET infinia_seller_id = $1 WHERE seller_id = $2`, account, pair[1])
	return pair, account
}

// carryFor opens a balance of 123.45 USD carried for seller from before
// (a payout below the minimum, say), of the first run's date, and has
// Infinia hold enough of account's share to pay it.
func (e *env) carryFor(sim *paysim.Sim, seller, account string) {
	e.t.Helper()
	e.db.MustExec(`INSERT INTO settle.adjustments (seller_id, currency, kind, amount_minor, reason, business_date, run_id)
		SELECT $1, 'USD', 'held', 12345, 'below the minimum payout', business_date, id FROM settle.runs LIMIT 1`, seller)
	sim.Infinia.SetAvailable(account, "USD", sim.Infinia.Available(account, "USD")+1_000_000)
}

// checkCarriedNotPaidThere checks that the second seller of pair's balance
// of 123.45 USD carried from before was not paid to account, the first's
// Infinia id, and is carried for a person (a run's out and exit code,
// when).
func (e *env) checkCarriedNotPaidThere(sim *paysim.Sim, pair []string, account, when, out string, code int) {
	e.t.Helper()
	for _, s := range sim.Infinia.RevenueShares() {
		if s.SellerID == account && s.Amount == 12345 {
			e.t.Errorf("%s: seller %s's carried balance paid to seller %s's id %s (exit %d):\n%s", when, pair[1], pair[0], account, code, out)
		}
	}
	if code != 4 || !strings.Contains(out, "no Infinia seller id") {
		e.t.Errorf("%s: exit %d, want 4 carrying seller %s's balance for a person:\n%s", when, code, pair[1], out)
	}
	if n := e.count(`SELECT count(*) FROM settle.adjustments WHERE seller_id = $1 AND amount_minor = 12345 AND netted_into = ''`, pair[1]); n != 1 {
		e.t.Errorf("%s: seller %s's carried balance netted into a payout", when, pair[1])
	}
}

// TestASellerWithOnlyACarriedBalanceIsNotPaidToAnAccountNoLongerItsOwn: a
// seller with no order on the date and a balance carried from an earlier
// one was paid it to the Infinia id the last run that read the seller
// recorded, though the platform had corrected it since: here an id that is
// another seller's, who received the money. A run now reads such a seller
// with its snapshot and treats it as a seller of the day whose id changed
// ("A seller's Infinia seller id changed while a balance of it is
// carried"): the new account's available share does not hold what the old
// one was given, so the balance stays carried for a person (exit 4); with
// no id now, it is carried for its id.
func TestASellerWithOnlyACarriedBalanceIsNotPaidToAnAccountNoLongerItsOwn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "300", "--sellers", "30", "--seed", "5")
	var other string
	if err := e.db.Get(&other, `SELECT min(seller_id) FROM orders WHERE provider = 'infiniapay'`); err != nil {
		t.Fatal(err)
	}
	var wrong string
	if err := e.db.Get(&wrong, `SELECT infinia_seller_id FROM sellers WHERE seller_id = $1`, other); err != nil {
		t.Fatal(err)
	}
	// SC, of no order on the date: an earlier date's run read it with
	// the other seller's id, since corrected to its own, and carried its
	// balance; Infinia holds it in that id's available share.
	now := seed.InfiniaID(31)
	e.db.MustExec(`INSERT INTO sellers (seller_id, name, infinia_seller_id) VALUES ('SC', 'Carried', $1)`, now)
	e.db.MustExec(`INSERT INTO settle.runs (business_date, shard_index, shard_count, state, time_zone, rules_hash, config_hash)
		VALUES ('2026-11-20', 0, 1, 'done', 'Asia/Shanghai', '', '')`)
	e.db.MustExec(`INSERT INTO settle.run_sellers (run_id, seller_id, name, infinia_seller_id)
		SELECT id, 'SC', 'Carried', $1 FROM settle.runs WHERE business_date = '2026-11-20'`, wrong)
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 31, nil, balance)
	e.carryFor(sim, "SC", wrong)
	check := func(when, want, out string, code int) {
		t.Helper()
		for _, s := range sim.Infinia.RevenueShares() {
			if s.Amount == 12345 {
				t.Errorf("%s: SC's carried balance paid to %s (SC's id now %s, seller %s's %s):\n%s", when, s.SellerID, now, other, wrong, out)
			}
		}
		if code != 4 || !strings.Contains(out, want) {
			t.Errorf("%s: exit %d, want 4 carrying SC's balance (%q):\n%s", when, code, want, out)
		}
		if n := e.count(`SELECT count(*) FROM settle.adjustments WHERE seller_id = 'SC' AND netted_into = ''`); n != 1 {
			t.Errorf("%s: SC's carried balance netted into a payout", when)
		}
	}
	out, code := e.runInfinia(sim)
	check("its id corrected", "SC USD: Infinia shows", out, code)

	// The platform takes SC's id away: the next date carries the balance
	// for its id.
	e.db.MustExec(`UPDATE sellers SET infinia_seller_id = NULL WHERE seller_id = 'SC'`)
	e.mustSettle("seed", "--date", "2026-11-24", "--orders", "300", "--sellers", "30", "--seed", "6")
	out, code = e.runInfinia(sim, "--date", "2026-11-24")
	check("no id now", "no Infinia seller id", out, code)
}

// TestAHeldSellersCarriedBalanceIsNotPaidToTheSharedIDWhenNeitherSells:
// as TestAHeldSellersCarriedBalanceIsNotPaidToTheSharedIDOnALaterDate, but
// on the next date neither seller has an order. T, read with its carried
// balance (pipeline.CarriedSellers), is recorded with the id the platform
// still gives it, S's too, which no other seller of that date has: its
// balance was paid there, where the date that held T's orders for that id
// had it carried for a person (found by a review of b83e93d); and so on
// the next date, where the record the date before made of T was taken
// alone, and once the platform gives T no more, where it was T's last
// record.
func TestAHeldSellersCarriedBalanceIsNotPaidToTheSharedIDWhenNeitherSells(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pair, account := e.sharedInfiniaPair(testDate, "2026-11-24")
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 30, nil, balance)
	if out, code := e.runInfinia(sim); code != 4 {
		t.Fatalf("run of %s: exit %d, want 4 (both sellers held):\n%s", testDate, code, out)
	}
	e.carryFor(sim, pair[1], account)
	e.db.MustExec(`DELETE FROM orders WHERE seller_id = ANY ($1) AND confirmed_at >= '2026-11-23 16:00:00+00'`, pq.StringArray(pair))
	out, code := e.runInfinia(sim, "--date", "2026-11-24")
	e.checkCarriedNotPaidThere(sim, pair, account, "next date", out, code)
	// And the date after, T still carried-only and the platform unchanged.
	e.mustSettle("seed", "--date", "2026-11-25", "--orders", "300", "--sellers", "30", "--seed", "9")
	e.db.MustExec(`DELETE FROM orders WHERE seller_id = ANY ($1) AND confirmed_at >= '2026-11-24 16:00:00+00'`, pq.StringArray(pair))
	out, code = e.runInfinia(sim, "--date", "2026-11-25")
	e.checkCarriedNotPaidThere(sim, pair, account, "the date after", out, code)
	// The platform gives T no more: its balance is not paid to the
	// account last recorded for it either.
	e.mustSettle("seed", "--date", "2026-11-26", "--orders", "300", "--sellers", "30", "--seed", "10")
	e.db.MustExec(`DELETE FROM sellers WHERE seller_id = $1`, pair[1])
	e.db.MustExec(`DELETE FROM orders WHERE seller_id = ANY ($1) AND confirmed_at >= '2026-11-25 16:00:00+00'`, pq.StringArray(pair))
	out, code = e.runInfinia(sim, "--date", "2026-11-26")
	e.checkCarriedNotPaidThere(sim, pair, account, "once the platform gives T no more", out, code)
}

// TestAHeldSellersCarriedBalanceIsNotPaidToTheSharedIDAfterAnUpgrade: as
// TestAHeldSellersCarriedBalanceIsNotPaidToTheSharedIDWhenNeitherSells,
// with the next date run by a settle from before migration 00035: it
// records T, of only a carried balance, as the newer one does, but
// unmarked, and 00035 left that record carried_only false ("each was of a
// seller the day's rows named"). The newer settle, deployed before the
// date after, took it as a date T's rows were read, with the shared id and
// none of T's orders held for it, and paid T's balance there: the date
// that held T's orders for that id no longer counted (found by the review
// of an upgrade deployed while dates are half done).
func TestAHeldSellersCarriedBalanceIsNotPaidToTheSharedIDAfterAnUpgrade(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pair, account := e.sharedInfiniaPair(testDate, "2026-11-24", "2026-11-25")
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 30, nil, balance)
	if out, code := e.runInfinia(sim); code != 4 {
		t.Fatalf("run of %s: exit %d, want 4 (both sellers held):\n%s", testDate, code, out)
	}
	e.carryFor(sim, pair[1], account)
	e.db.MustExec(`DELETE FROM orders WHERE seller_id = ANY ($1) AND confirmed_at >= '2026-11-23 16:00:00+00'`, pq.StringArray(pair))
	out, code := e.runInfinia(sim, "--date", "2026-11-24")
	e.checkCarriedNotPaidThere(sim, pair, account, "next date", out, code)
	// The ledger as a settle from before 00035 left it, migrated to 00035
	// since: the next date's record of T unmarked.
	if n := e.count(`SELECT count(*) FROM settle.run_sellers WHERE seller_id = $1 AND carried_only`, pair[1]); n != 1 {
		t.Fatalf("seller %s recorded with only a carried balance %d times, want 1 (the next date's)", pair[1], n)
	}
	const marks = `SELECT coalesce(string_agg(run_id || ' ' || seller_id, ', ' ORDER BY run_id, seller_id), '') FROM settle.run_sellers
		WHERE carried_only AND run_id IN (SELECT id FROM settle.runs WHERE business_date < '2026-11-25')`
	var want string
	if err := e.db.Get(&want, marks); err != nil {
		t.Fatal(err)
	}
	e.db.MustExec(`UPDATE settle.run_sellers SET carried_only = false WHERE carried_only`)
	e.db.MustExec(`DELETE FROM settle.goose_db_version WHERE version_id > 35`)
	out, code = e.runInfinia(sim, "--date", "2026-11-25")
	e.checkCarriedNotPaidThere(sim, pair, account, "the date after, run by the newer settle", out, code)
	// The migration marked those records, and no other.
	var got string
	if err := e.db.Get(&got, marks); err != nil || got != want {
		t.Errorf("records of the earlier dates marked carried-only after the upgrade: %q, want %q (as the newer settle marks them) %v", got, want, err)
	}
}

// TestADaySellersIDThatACarriedOnlySellerHasIsHeldAndTheDryRunSaysSo: a
// run reads a seller with only a balance carried from before with the
// day's sellers (pipeline.CarriedSellers), so a seller of the day whose
// Infinia id the platform gives it too has its orders held, as two sellers
// of the day are, and the carried balance is not paid there. The dry run,
// which reads no carried seller, planned the day seller's orders to be
// paid, saying nothing (found by a review of b83e93d).
func TestADaySellersIDThatACarriedOnlySellerHasIsHeldAndTheDryRunSaysSo(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "300", "--sellers", "30", "--seed", "5")
	var day, account string
	if err := e.db.Get(&day, `SELECT min(seller_id) FROM orders WHERE provider = 'infiniapay'`); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Get(&account, `SELECT infinia_seller_id FROM sellers WHERE seller_id = $1`, day); err != nil {
		t.Fatal(err)
	}
	e.db.MustExec(`INSERT INTO sellers (seller_id, name, infinia_seller_id) VALUES ('SC', 'Carried', $1)`, account)
	e.db.MustExec(`INSERT INTO settle.runs (business_date, shard_index, shard_count, state, time_zone, rules_hash, config_hash)
		VALUES ('2026-11-20', 0, 1, 'done', 'Asia/Shanghai', '', '')`)
	e.db.MustExec(`INSERT INTO settle.adjustments (seller_id, currency, kind, amount_minor, reason, business_date, run_id)
		SELECT 'SC', 'USD', 'held', 12345, 'below the minimum payout', business_date, id FROM settle.runs`)
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 30, nil, balance)
	sim.Infinia.SetAvailable(account, "USD", sim.Infinia.Available(account, "USD")+1_000_000)

	dry, code := e.settle(append(e.infiniaArgs(sim), "--dry-run")...)
	if code != 0 || !strings.Contains(dry, "sellers "+day+" and SC have the same infiniapay account") {
		t.Errorf("dry run: exit %d, want 0 naming seller %s and SC:\n%s", code, day, dry)
	}
	out, code := e.runInfinia(sim)
	if code != 4 {
		t.Fatalf("run: exit %d, want 4:\n%s", code, out)
	}
	items := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND channel = 'infiniapay'`, day)
	held := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND channel = 'infiniapay' AND state = 'held' AND reason LIKE '%also seller SC''s%'`, day)
	if items == 0 || held != items {
		t.Errorf("seller %s: %d of its %d Infinia items held naming SC", day, held, items)
	}
	for _, s := range sim.Infinia.RevenueShares() {
		if s.SellerID == account {
			t.Errorf("revenue share %+v paid to the shared account", s)
		}
	}
	if n := e.count(`SELECT count(*) FROM settle.adjustments WHERE seller_id = 'SC' AND netted_into = ''`); n != 1 {
		t.Errorf("SC's carried balance netted into a payout")
	}
}

// TestSellersSharingAnInfiniaIDInShardsReadAtOnceAreNotBothPaid: the
// pods of an Indexed Job read the day at the same moment, and each shard's
// split compares its sellers with those the other shards had recorded when
// it began: none yet. Two sellers with one Infinia seller id, one in each
// shard, were then both split to be paid, and both were paid to it. Here
// shard 1/2 splits its day before shard 0/2's sellers are in the ledger
// (they are hidden while it does), as when both read at once. The seller
// check at the start of each upload stage, after its own sellers were
// recorded, compares them with the other shards' recorded since: of two
// shards, the later to check sees the other's. Nothing is paid to the
// shared account for the second seller.
func TestSellersSharingAnInfiniaIDInShardsReadAtOnceAreNotBothPaid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "300", "--sellers", "30", "--seed", "5")
	var ids []string
	if err := e.db.Select(&ids, `SELECT DISTINCT seller_id FROM orders WHERE provider = 'infiniapay' ORDER BY 1`); err != nil {
		t.Fatal(err)
	}
	zero := pipeline.Shard{Index: 0, Count: 2}
	first, second := "", ""
	for _, id := range ids {
		switch {
		case first == "" && zero.Owns(id):
			first = id
		case second == "" && !zero.Owns(id):
			second = id
		}
	}
	if first == "" || second == "" {
		t.Fatalf("no seller in each shard among %v", ids)
	}
	var account string
	if err := e.db.Get(&account, `SELECT infinia_seller_id FROM sellers WHERE seller_id = $1`, first); err != nil {
		t.Fatal(err)
	}
	e.db.MustExec(`UPDATE sellers SET infinia_seller_id = $1 WHERE seller_id = $2`, account, second)
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 30, nil, balance)
	if out, code := e.runInfinia(sim, "--shard", "0/2", "--until", "transform"); code != 0 {
		t.Fatalf("shard 0/2 until transform: exit %d:\n%s", code, out)
	}
	// Shard 1/2 reads and splits the day as if shard 0/2 had recorded
	// nothing yet.
	e.db.MustExec(`UPDATE settle.run_sellers SET infinia_seller_id = 'hidden-' || infinia_seller_id WHERE seller_id = $1`, first)
	out, code := e.runInfinia(sim, "--shard", "1/2", "--until", "transform")
	e.db.MustExec(`UPDATE settle.run_sellers SET infinia_seller_id = substr(infinia_seller_id, 8) WHERE seller_id = $1`, first)
	if code != 0 {
		t.Fatalf("shard 1/2 until transform: exit %d:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND state = 'held'`, second); n != 0 {
		t.Fatalf("seller %s: %d orders held by the split: it saw shard 0/2's sellers, not the race this test plays", second, n)
	}
	out0, code0 := e.runInfinia(sim, "--shard", "0/2")
	out1, code1 := e.runInfinia(sim, "--shard", "1/2")
	paidTo := map[string]bool{}
	if err := func() error {
		rows, err := e.db.Query(`SELECT DISTINCT i.seller_id FROM settle.items i JOIN settle.run_sellers s ON s.run_id = i.run_id AND s.seller_id = i.seller_id
			WHERE i.state = 'paid' AND i.channel <> 'wechatpay' AND s.infinia_seller_id = $1`, account)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			paidTo[id] = true
		}
		return rows.Err()
	}(); err != nil {
		t.Fatal(err)
	}
	if len(paidTo) > 1 {
		t.Errorf("both sellers %v paid to the one Infinia account %s (exits %d and %d):\n%s\n%s", paidTo, account, code0, code1, out0, out1)
	}
	if code0 != 4 && code1 != 4 {
		t.Errorf("exits %d and %d: want a shard to end 4, holding its seller's orders for the shared account:\n%s\n%s", code0, code1, out0, out1)
	}
	for _, s := range sim.Infinia.RevenueShares() {
		if s.Status == infiniapay.StatusFailed {
			t.Errorf("Infinia failed revenue share %s of %s: %s", s.RequestNo, s.SellerID, s.FailReason)
		}
	}
}

// TestALeftSellersCarriedBalanceIsNotPaidToAnIDThePlatformGaveAnother: a
// seller that left the platform (its sellers query gives no row for it)
// with a balance carried is paid it to the Infinia id last recorded for
// it - but that id, no other seller's on the date that recorded it, is
// another seller's on the date run now, as the platform gives it: the
// balance went into that seller's account (found by a review of the
// sellers' lifecycle). It is carried for a person now.
func TestALeftSellersCarriedBalanceIsNotPaidToAnIDThePlatformGaveAnother(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "300", "--sellers", "30", "--seed", "5")
	var other string
	if err := e.db.Get(&other, `SELECT min(seller_id) FROM orders WHERE provider = 'infiniapay'`); err != nil {
		t.Fatal(err)
	}
	var id string
	if err := e.db.Get(&id, `SELECT infinia_seller_id FROM sellers WHERE seller_id = $1`, other); err != nil {
		t.Fatal(err)
	}
	// SL, in no row of the platform's sellers now: an earlier date's run
	// read it with the id the platform gives the other seller now, and
	// carried its balance.
	e.db.MustExec(`INSERT INTO settle.runs (business_date, shard_index, shard_count, state, time_zone, rules_hash, config_hash)
		VALUES ('2026-11-20', 0, 1, 'done', 'Asia/Shanghai', '', '')`)
	e.db.MustExec(`INSERT INTO settle.run_sellers (run_id, seller_id, name, infinia_seller_id)
		SELECT id, 'SL', 'Left', $1 FROM settle.runs WHERE business_date = '2026-11-20'`, id)
	sim := e.sim(nil, 30, nil, 1_000_000_000_00)
	e.carryFor(sim, "SL", id)
	out, code := e.runInfinia(sim)
	e.checkCarriedNotPaidThere(sim, []string{other, "SL"}, id, "the id another seller's now", out, code)
}
