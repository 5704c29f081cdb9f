package main

import (
	"path/filepath"
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
	sim := e.simWith(paysim.Options{Faults: faults, Polls: -1, InfiniaMemory: 30 * 24 * time.Hour, Timing: paysim.Timing{Now: clock}, ShareKeys: true, KeyBits: testKeyBits}, 3, nil, balance)
	// The run stops after distribute (still processing: exit 1, as the
	// whole run ended): its reconcile stage asked the status query once
	// more, through the client's retries (about 4 s of backoff), for an
	// error nothing here reads.
	if out, code := e.runInfinia(sim, "--until", "distribute"); code == 0 {
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

// heldPastInfiniasMemory plays a revenue share whose send met kind (Lost:
// Infinia paid it; Reset: it never arrived) while Infinia could not be
// asked, and returns its requestNo and subject once the date is resumed
// forty days later and its run, Infinia (remembering thirty days) no
// longer knowing the requestNo, holds it for a person (exit 4). Before
// the forty days, within, when not nil, is called with them.
func heldPastInfiniasMemory(t *testing.T, e *env, kind fault.Kind, balance int64, within func(sim *paysim.Sim, key, subject string)) (*paysim.Sim, string, string) {
	t.Helper()
	e.mustSettle("seed", "--date", testDate, "--orders", "60", "--sellers", "3", "--seed", "8")
	faults := fault.New(1,
		fault.Rule{Endpoint: "revenue-sharing/request", Kind: kind, Calls: []int{1}},
		fault.Rule{Endpoint: "revenue-sharing/query", Kind: fault.ServerError, Prob: 1})
	var later atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(later.Load())) }
	sim := e.simWith(paysim.Options{Faults: faults, Polls: -1, InfiniaMemory: 30 * 24 * time.Hour, Timing: paysim.Timing{Now: clock}, ShareKeys: true, KeyBits: testKeyBits}, 3, nil, balance)
	// The run stops after distribute (still processing: exit 1, as the
	// whole run ended): its reconcile stage asked the status query once
	// more, through the client's retries (about 4 s of backoff), for an
	// error nothing here reads.
	if out, code := e.runInfinia(sim, "--until", "distribute"); code == 0 {
		t.Fatalf("first run: exit 0, want the lost answer left unknown:\n%s", out)
	}
	var key, subject string
	if err := e.db.QueryRow(`SELECT idem_key, subject FROM settle.effects WHERE kind = 'revenue_share' AND state IN ('sent', 'unknown')`).Scan(&key, &subject); err != nil {
		t.Fatalf("the revenue share whose answer was lost: %v", err)
	}
	faults.Clear()
	if within != nil {
		within(sim, key, subject)
	}
	later.Store(int64(40 * 24 * time.Hour))
	if _, err := e.db.Exec(`UPDATE settle.effects SET created_at = created_at - interval '40 days'`); err != nil {
		t.Fatal(err)
	}
	if out, code := e.runInfinia(sim); code != 4 || !strings.Contains(out, key) || !strings.Contains(out, "neither sent again nor failed") {
		t.Fatalf("resumed forty days later: exit %d, want 4 naming %s held:\n%s", code, key, out)
	}
	return sim, key, subject
}

// resolveArgs is settle resolve of the date's subject with the
// simulator's Infinia flags.
func resolveArgs(sim *paysim.Sim, subject string, more ...string) []string {
	return append(append([]string{"resolve", "--date", testDate, "--subject", subject}, more...), sim.Config.Args()...)
}

// TestAShareHeldPastInfiniasMemoryResolvedPaidIsPaidOnce: a person finds
// the held revenue share in Infinia's statement and records it paid
// (settle resolve --paid): the next run sends nothing and ends 0, and the
// seller is paid once, in the ledger, the reports and at Infinia.
func TestAShareHeldPastInfiniasMemoryResolvedPaidIsPaidOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const balance = 1_000_000_000_00
	sim, key, subject := heldPastInfiniasMemory(t, e, fault.Lost, balance, nil)
	sent := len(sim.Infinia.RevenueShares())
	if out, code := e.settle(resolveArgs(sim, subject, "--paid")...); code != 2 || !strings.Contains(out, "--note") {
		t.Fatalf("resolve --paid without --note: exit %d, want 2 asking for it:\n%s", code, out)
	}
	// Infinia paid it: its available share of the seller is short of
	// what an unpaid share would leave, and --not-paid is refused.
	if out, code := e.settle(resolveArgs(sim, subject, "--not-paid", "--note", "misread statement")...); code != 2 || !strings.Contains(out, "Infinia took it") || !strings.Contains(out, "available") {
		t.Fatalf("resolve --not-paid of a share Infinia paid: exit %d, want 2 naming Infinia's available share:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.resolutions`); n != 0 {
		t.Fatalf("%d resolutions recorded by a refused --not-paid", n)
	}
	out := e.mustSettle(resolveArgs(sim, subject, "--paid", "--note", "ops: Infinia statement 2026-12 line 14")...)
	if !strings.Contains(out, key) || !strings.Contains(out, "sends nothing for it") || !strings.Contains(out, "cannot prove this at Infinia") || !strings.Contains(out, "is not paid these") {
		t.Fatalf("resolve --paid: want the requestNo, what the next run does, and that settle could not check it (what a wrong word costs):\n%s", out)
	}
	var state, cause, detail string
	if err := e.db.QueryRow(`SELECT e.state, v.cause, v.detail FROM settle.effects e JOIN settle.effect_events v ON v.effect_id = e.id
		WHERE e.idem_key = $1 ORDER BY v.id DESC LIMIT 1`, key).Scan(&state, &cause, &detail); err != nil {
		t.Fatal(err)
	}
	if state != "succeeded" || cause != "resolved by a person" || !strings.Contains(detail, "statement 2026-12 line 14") {
		t.Fatalf("%s is %s, its last event %q %q: want succeeded, resolved by a person with the note", key, state, cause, detail)
	}
	if out := e.mustSettle("status", "--date", testDate); !strings.Contains(out, "resolved by a person: past_memory_paid "+subject+" ("+key+")") {
		t.Fatalf("settle status: want the resolution listed:\n%s", out)
	}
	// A second call changes nothing; the other way is refused.
	if out := e.mustSettle(resolveArgs(sim, subject, "--paid", "--note", "again")...); !strings.Contains(out, "was resolved before") {
		t.Fatalf("resolve --paid again: want it said resolved before:\n%s", out)
	}
	if out, code := e.settle(resolveArgs(sim, subject, "--not-paid", "--note", "changed my mind")...); code != 2 || !strings.Contains(out, "resolved before as paid") {
		t.Fatalf("resolve --not-paid after --paid: exit %d, want 2:\n%s", code, out)
	}
	if out, code := e.runInfinia(sim); code != 0 {
		t.Fatalf("run after resolve --paid: exit %d, want 0:\n%s", code, out)
	}
	if n := len(sim.Infinia.RevenueShares()); n != sent {
		t.Fatalf("Infinia took %d revenue shares, %d before: want none sent", n, sent)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE subject = $1`, subject); n != 1 {
		t.Fatalf("%d attempts at %s, want the one", n, subject)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE payout_key = $1 AND state = 'paid'`, key); n == 0 {
		t.Fatalf("no item paid by %s", key)
	}
	e.checkPaidOnce(sim, balance)
	e.checkReportsAgree(testDate)
	payouts := string(readFile(t, filepath.Join(e.reports, testDate, "payouts.csv")))
	if !strings.Contains(payouts, key) || strings.Count(payouts, subject) != 1 {
		t.Fatalf("payouts.csv: want %s once:\n%s", subject, payouts)
	}
}

// TestAShareHeldPastInfiniasMemoryResolvedNotPaidGoesUnderANewKey: the
// held share never arrived, as Infinia's statement shows, and a person
// records it (settle resolve --not-paid): the next run pays the seller
// under the next requestNo, once, and ends 0; the old one is never sent
// again. Before, resolve refuses what is not held past the memory: a
// share Infinia does not know within its memory, a paid one.
func TestAShareHeldPastInfiniasMemoryResolvedNotPaidGoesUnderANewKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const balance = 1_000_000_000_00
	sim, key, subject := heldPastInfiniasMemory(t, e, fault.Reset, balance, func(sim *paysim.Sim, key, subject string) {
		if out, code := e.settle(resolveArgs(sim, subject, "--not-paid", "--note", "n")...); code != 2 || !strings.Contains(out, "within the 30d") {
			t.Fatalf("resolve --not-paid within Infinia's memory: exit %d, want 2:\n%s", code, out)
		}
		var paid string
		if err := e.db.Get(&paid, `SELECT subject FROM settle.effects WHERE kind = 'revenue_share' AND state = 'succeeded' LIMIT 1`); err != nil {
			t.Fatal(err)
		}
		if out, code := e.settle(resolveArgs(sim, paid, "--paid", "--note", "n")...); code != 2 || !strings.Contains(out, "is succeeded") {
			t.Fatalf("resolve --paid of a paid share: exit %d, want 2:\n%s", code, out)
		}
		other := append([]string{"resolve", "--date", "2026-11-24", "--subject", subject, "--not-paid", "--note", "n"}, sim.Config.Args()...)
		if out, code := e.settle(other...); code != 2 || !strings.Contains(out, "no revenue share of 2026-11-24") {
			t.Fatalf("resolve --not-paid of another date's subject: exit %d, want 2:\n%s", code, out)
		}
		if out, code := e.settle(resolveArgs(sim, subject, "--not-paid", "--paid", "--note", "n")...); code != 2 || !strings.Contains(out, "one of --paid and --not-paid") {
			t.Fatalf("resolve --paid --not-paid: exit %d, want 2:\n%s", code, out)
		}
		if n := e.count(`SELECT count(*) FROM settle.resolutions`); n != 0 {
			t.Fatalf("%d resolutions recorded by refused resolves", n)
		}
	})
	sent := len(sim.Infinia.RevenueShares())
	// Infinia never paid it: its available share of the seller is what
	// it was, and --paid is refused.
	if out, code := e.settle(resolveArgs(sim, subject, "--paid", "--note", "misread statement")...); code != 2 || !strings.Contains(out, "would have left at most") {
		t.Fatalf("resolve --paid of a share Infinia never paid: exit %d, want 2 naming Infinia's available share:\n%s", code, out)
	}
	out := e.mustSettle(resolveArgs(sim, subject, "--not-paid", "--note", "ops: not in Infinia's statements of November and December")...)
	next := strings.TrimSuffix(key, "1") + "2"
	if !strings.Contains(out, "never sent again") || !strings.Contains(out, next) {
		t.Fatalf("resolve --not-paid: want the new requestNo %s named:\n%s", next, out)
	}
	// Infinia holds nothing to check the person's word against: the
	// command says so, what a wrong word costs, and from when to look.
	var planned time.Time
	if err := e.db.Get(&planned, `SELECT created_at FROM settle.effects WHERE idem_key = $1`, key); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "cannot prove this at Infinia") || !strings.Contains(out, "a second time") || !strings.Contains(out, "from "+planned.UTC().Format(time.DateOnly)+" on") {
		t.Fatalf("resolve --not-paid: want it said that settle could not check it, that a share Infinia paid is paid a second time, and the statements from the share's planning on:\n%s", out)
	}
	if out, code := e.runInfinia(sim); code != 0 {
		t.Fatalf("run after resolve --not-paid: exit %d, want 0:\n%s", code, out)
	}
	taken := map[string]int{}
	for _, s := range sim.Infinia.RevenueShares() {
		taken[s.RequestNo]++
	}
	if n := len(sim.Infinia.RevenueShares()); n != sent+1 || taken[key] != 0 || taken[next] != 1 {
		t.Fatalf("Infinia took %d revenue shares (%d before), %s %d times, %s %d times: want %s once, %s never", n, sent, key, taken[key], next, taken[next], next, key)
	}
	if out, code := e.runInfinia(sim); code != 0 || len(sim.Infinia.RevenueShares()) != sent+1 {
		t.Fatalf("run again: exit %d, %d shares taken:\n%s", code, len(sim.Infinia.RevenueShares()), out)
	}
	e.checkPaidOnce(sim, balance)
	e.checkReportsAgree(testDate)
}
