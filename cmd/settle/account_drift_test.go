package main

import (
	"strings"
	"testing"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/internal/paysim"
)

// TestAnotherInfiniaAccountIsRefusedOnceTheDateSent: a date whose revenue
// share's answer was lost is run again the next morning with another appId
// (another Infinia account). That account has never seen the requestNo:
// asked about it, it answers not found, and the request went to it again
// under the same key - the seller paid from both accounts. The run is
// refused (exit 2) naming the account the date sent from, and nothing
// reaches the other account; with the date's own account it goes on and
// pays once.
func TestAnotherInfiniaAccountIsRefusedOnceTheDateSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "60", "--sellers", "3", "--seed", "8")
	const balance = 1_000_000_000_00
	faults := fault.New(1,
		fault.Rule{Endpoint: "revenue-sharing/request", Kind: fault.Lost, Calls: []int{1}},
		fault.Rule{Endpoint: "revenue-sharing/query", Kind: fault.ServerError, Prob: 1})
	first := e.sim(faults, 3, nil, balance)
	if out, code := e.runInfinia(first); code == 0 {
		t.Fatalf("first run: exit 0, want the lost answer left unknown:\n%s", out)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE kind = 'revenue_share' AND state IN ('sent', 'unknown')`); n == 0 {
		t.Fatal("no revenue share left unknown")
	}
	other := e.simWith(paysim.Options{AppID: "APP-OTHER"}, 3, nil, balance)
	out, code := e.runInfinia(other)
	if code != 2 || !strings.Contains(out, "--infinia-app-id APP-DEMO") || !strings.Contains(out, "--infinia-app-id APP-OTHER") {
		t.Fatalf("run with another appId: exit %d, want 2 naming both accounts:\n%s", code, out)
	}
	if n := len(other.Infinia.RevenueShares()); n != 0 {
		t.Fatalf("the other account was sent %d revenue shares of the date", n)
	}
	faults.Clear()
	if out, code := e.runInfinia(first); code != 0 {
		t.Fatalf("run with the date's account: exit %d:\n%s", code, out)
	}
	e.checkPaidOnce(first, balance)
}
