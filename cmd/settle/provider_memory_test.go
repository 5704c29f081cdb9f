package main

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/internal/paysim"
)

// These tests play a provider whose status query forgets a key some time
// after it was sent (simulated: the fakes' Memory). A revenue share whose
// answer was lost, resumed after Infinia forgot its requestNo, was asked
// about ("not found": taken as never arrived) and sent again under the
// same requestNo, which an Infinia that forgot it takes as a new request:
// the seller was paid twice.

// TestARevenueShareUnknownPastInfiniasMemoryIsHeldNotPaidAgain: the answer
// to a revenue share was lost and Infinia could not be asked; the date is
// resumed forty days later, when Infinia (remembering thirty days) no
// longer knows the requestNo it paid. The share is neither sent again nor
// failed: it stays as the ledger had it, the run ends 4 naming the
// requestNo and its age, and Infinia paid it once.
func TestARevenueShareUnknownPastInfiniasMemoryIsHeldNotPaidAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "60", "--sellers", "3", "--seed", "8")
	const balance = 1_000_000_000_00
	faults := fault.New(1,
		fault.Rule{Endpoint: "revenue-sharing/request", Kind: fault.Lost, Calls: []int{1}},
		fault.Rule{Endpoint: "revenue-sharing/query", Kind: fault.ServerError, Prob: 1})
	var later atomic.Int64 // how far the simulator's clock is ahead of ours
	clock := func() time.Time { return time.Now().Add(time.Duration(later.Load())) }
	sim := e.simWith(paysim.Options{Faults: faults, Polls: -1, InfiniaMemory: 30 * 24 * time.Hour, Timing: paysim.Timing{Now: clock}}, 3, nil, balance)
	if out, code := e.runInfinia(sim); code == 0 {
		t.Fatalf("first run: exit 0, want the lost answer left unknown:\n%s", out)
	}
	sent := len(sim.Infinia.RevenueShares())
	var key string
	if err := e.db.Get(&key, `SELECT idem_key FROM settle.effects WHERE kind = 'revenue_share' AND state IN ('sent', 'unknown')`); err != nil {
		t.Fatalf("the revenue share whose answer was lost: %v", err)
	}
	// Forty days later: Infinia forgot the requestNo, and the ledger's
	// intent is forty days old.
	later.Store(int64(40 * 24 * time.Hour))
	if _, err := e.db.Exec(`UPDATE settle.effects SET created_at = created_at - interval '40 days'`); err != nil {
		t.Fatal(err)
	}
	faults.Clear()
	out, code := e.runInfinia(sim)
	if code != 4 || !strings.Contains(out, key) || !strings.Contains(out, "40d ago") || !strings.Contains(out, "neither sent again nor failed") {
		t.Fatalf("resumed forty days later: exit %d, want 4 naming %s, its age, and that it is held:\n%s", code, key, out)
	}
	taken := 0
	for _, s := range sim.Infinia.RevenueShares() {
		if s.RequestNo == key {
			taken++
		}
	}
	if taken != 1 {
		t.Fatalf("Infinia took requestNo %s %d times, want once", key, taken)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE kind = 'revenue_share' AND idem_key <> $1
		AND subject = (SELECT subject FROM settle.effects WHERE idem_key = $1)`, key); n != 0 {
		t.Fatalf("%d further attempts at the payout of %s: its balance went out under a new requestNo", n, key)
	}
	// Run again: still held, still not sent.
	if out, code := e.runInfinia(sim); code != 4 {
		t.Fatalf("run again: exit %d, want 4:\n%s", code, out)
	}
	if n := len(sim.Infinia.RevenueShares()); n != sent {
		t.Fatalf("Infinia took %d revenue shares, %d after the first run: want no more", n, sent)
	}
}
