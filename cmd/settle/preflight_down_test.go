package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/settlekit/settle/seed"
)

// TestAProviderDownAtTheStartHoldsBackOnlyItsOwnWork: Infinia Pay does
// not answer when the run begins (its pre-flight's balance query finds
// no one listening). That pre-flight failing stopped the whole run before
// its first sending stage ("before stage upload: preflight of Infinia
// Pay: ..."), every WeChat Pay transaction of the date held back with
// Infinia's sellers. Now only Infinia's work waits: WeChat Pay's
// transactions are settled, nothing goes to Infinia, and the run ends 1
// naming Infinia as not answering; the run once it answers pays each of
// Infinia's sellers once, and WeChat's transactions are not touched again.
func TestAProviderDownAtTheStartHoldsBackOnlyItsOwnWork(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(150, 0)
	const balance = 1_000_000_000_00
	sim := e.weChatSim(nil, 0)
	for i := 1; i <= 30; i++ {
		sim.Infinia.SetBinding(seed.InfiniaID(i), "ACTIVE")
	}
	for _, cur := range demoCurrencies {
		sim.Infinia.SetBalance(cur, balance)
	}
	sim.Config.PayProtocolURL = "" // no payments seeded: its orders left unpaid on purpose
	args := append(e.infiniaArgs(sim), "--skip-channel", "payprotocol")
	down := slices.Clone(args)
	down[slices.Index(down, "--"+flagInfiniaURL)+1] = "http://127.0.0.1:1" // nothing listens
	out, code := e.settle(down...)
	t.Logf("first run:\n%s", out)
	if code != 1 || !strings.Contains(out, "infiniapay is not answering") {
		t.Fatalf("Infinia down at the start: exit %d, want 1 naming it as not answering:\n%s", code, out)
	}
	wechat := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay'`)
	if paid := e.checkWeChatOnce(sim); wechat == 0 || int64(paid) != wechat {
		t.Fatalf("%d of %d WeChat transactions settled while Infinia was down, want all:\n%s", paid, wechat, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE kind IN ('upload', 'revenue_share')`); n != 0 {
		t.Errorf("%d effects of Infinia planned or sent while it was down, want none", n)
	}
	out, code = e.settle(args...)
	if code != 0 {
		t.Fatalf("Infinia answering again: exit %d, want 0:\n%s", code, out)
	}
	e.checkPaidOnce(sim, balance)
	if paid := e.checkWeChatOnce(sim); int64(paid) != wechat {
		t.Errorf("%d of %d WeChat transactions settled after the second run", paid, wechat)
	}
}
