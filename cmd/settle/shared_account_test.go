package main

import (
	"strings"
	"testing"
)

// TestSellersSharingAnInfiniaIDAreNotPaid: the platform gives two sellers
// the same Infinia seller id (a row copied, a typo). Their trade files
// went up under one account and both revenue shares paid it: one seller
// was paid the other's money. Now the orders of both that Infinia pays
// are rejected, each naming the other, in the one-pass extract (which
// meets the second seller after the first's orders) as in the transform
// stage; the dry run says so; every other seller is paid.
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
		!strings.Contains(dry, "a real run rejects all of them") {
		t.Errorf("dry run: exit %d, want 0 naming the two sellers:\n%s", code, dry)
	}

	out, code := e.runInfinia(sim, "--max-reject-ratio", "1")
	if code != 0 {
		t.Fatalf("run: exit %d, want 0 (the rejects within the tolerance):\n%s", code, out)
	}
	for i, seller := range pair {
		other := pair[1-i]
		orders := e.count(`SELECT count(*) FROM orders WHERE seller_id = $1 AND provider IN ('infiniapay', 'payprotocol')`, seller)
		rejected := e.count(`SELECT count(*) FROM settle.rejects WHERE seller_id = $1 AND reason LIKE $2`, seller,
			"%Infinia Pay seller id \""+account+"\" is also seller "+other+"'s in the platform's sellers%")
		if orders == 0 || rejected != orders {
			t.Errorf("seller %s: %d of its %d Infinia-paid orders rejected naming %s", seller, rejected, orders, other)
		}
		if n := e.count(`SELECT count(*) FROM settle.items WHERE seller_id = $1 AND channel <> 'wechatpay'`, seller); n != 0 {
			t.Errorf("seller %s: %d Infinia-paid items recorded", seller, n)
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
}
