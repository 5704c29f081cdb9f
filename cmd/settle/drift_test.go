package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	// The run stops after distribute, its share still processing (exit 1):
	// reconcile would only ask the failing query again (heldPastInfiniasMemory).
	if out, code := e.runInfinia(first, "--until", "distribute"); code == 0 {
		t.Fatalf("first run: exit 0, want the lost answer left unknown:\n%s", out)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE kind = 'revenue_share' AND state IN ('sent', 'unknown')`); n == 0 {
		t.Fatal("no revenue share left unknown")
	}
	other := e.simWith(paysim.Options{AppID: "APP-OTHER", ShareKeys: true, KeyBits: testKeyBits}, 3, nil, balance)
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

// TestADateReadAgainInAnotherZoneIsJudgedInIt: a date read again with
// --reextract in another time zone reads its orders in that zone's hours,
// and its run says so: the date beside it, opened in the old zone, is
// refused as its window does not meet this one's (the run kept the zone it
// was first opened in, and the night before was opened in Shanghai's
// hours beside a day read in UTC's: the eight hours between read by no
// run).
func TestADateReadAgainInAnotherZoneIsJudgedInIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(50, 0)
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--until", "transform", skipAll)
	e.mustSettle("run", "--date", testDate, "--tz", "UTC", "--reextract", "--rules", e.rules, "--until", "transform", skipAll, "--max-reject-ratio", "1")
	var zone string
	if err := e.db.Get(&zone, `SELECT time_zone FROM settle.runs WHERE business_date = $1`, testDate); err != nil || zone != "UTC" {
		t.Fatalf("the run read again in UTC records zone %q (%v), want UTC", zone, err)
	}
	out, code := e.settle("run", "--date", "2026-11-22", "--rules", e.rules, "--until", "transform", skipAll, "--max-reject-ratio", "1")
	if code != 2 || !strings.Contains(out, "2026-11-23 was run in time zone UTC") {
		t.Fatalf("the date before, in Shanghai: exit %d, want 2 naming the zone 2026-11-23 was read in:\n%s", code, out)
	}
}

// TestADateResumedBeforeItWasReadIsJudgedInItsNewZone: a run that stopped
// before it read its day (the source query failed) reads it when resumed,
// in the zone it is resumed in: a window that does not meet the date
// before's is refused, as for a new run (it was read with a warning
// alone).
func TestADateResumedBeforeItWasReadIsJudgedInItsNewZone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(50, 0)
	e.mustSettle("run", "--date", "2026-11-22", "--rules", e.rules, "--until", "transform", skipAll, "--max-reject-ratio", "1")
	bad := filepath.Join(t.TempDir(), "source.sql")
	if err := os.WriteFile(bad, []byte(`SELECT order_no, seller_id, provider, provider_txn_id, currency, amount_minor, refunded_minor,
		category, paid_at, confirmed_at FROM orders WHERE confirmed_at >= $1 AND confirmed_at < $2 AND 1 / (amount_minor - amount_minor) = 1`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--until", "transform", skipAll, "--source-query", bad); code == 0 {
		t.Fatalf("a source query that fails: exit 0:\n%s", out)
	}
	if n := e.count(`SELECT count(*) FROM settle.runs WHERE business_date = $1 AND stages_done = '{}'`, testDate); n != 1 {
		t.Fatalf("%d runs of %s with nothing done, want 1", n, testDate)
	}
	out, code := e.settle("run", "--date", testDate, "--tz", "UTC", "--rules", e.rules, "--until", "transform", skipAll, "--max-reject-ratio", "1")
	if code != 2 || !strings.Contains(out, "2026-11-22 was run in time zone Asia/Shanghai") {
		t.Fatalf("resumed in UTC: exit %d, want 2 naming the zone of 2026-11-22:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.source_rows`) - e.count(`SELECT count(*) FROM settle.source_rows s JOIN settle.runs r ON r.id = s.run_id WHERE r.business_date = '2026-11-22'`); n != 0 {
		t.Fatalf("%d rows of %s read in UTC's hours", n, testDate)
	}
}

// TestAProviderLeftOutWithItsRequestsOutIsNotAllWell: a date whose revenue
// shares' answers were lost, run again without Infinia configured (its
// channels skipped), drives none of them: the run does not end 0, and says
// which requests wait on the provider it left out.
func TestAProviderLeftOutWithItsRequestsOutIsNotAllWell(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "60", "--sellers", "3", "--seed", "8")
	faults := fault.New(1,
		fault.Rule{Endpoint: "revenue-sharing/request", Kind: fault.Lost, Calls: []int{1}},
		fault.Rule{Endpoint: "revenue-sharing/query", Kind: fault.ServerError, Prob: 1})
	sim := e.sim(faults, 3, nil, 1_000_000_000_00)
	// The run stops after distribute, its share still processing (exit 1):
	// reconcile would only ask the failing query again (heldPastInfiniasMemory).
	if out, code := e.runInfinia(sim, "--until", "distribute"); code == 0 {
		t.Fatalf("first run: exit 0, want the lost answer left unknown:\n%s", out)
	}
	out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, skipAll)
	if code != 4 || !strings.Contains(out, "revenue_share requests of the run were sent and never answered, and their provider is not configured") {
		t.Fatalf("run without Infinia: exit %d, want 4 naming its revenue shares unknown:\n%s", code, out)
	}
}

// TestAnotherWeChatMerchantIsRefusedOnceTheDateSent: distributions whose
// answers were lost would be asked about, by a run with another service
// provider merchant id, as another merchant's: refused (exit 2) by what
// the run recorded, before any request, naming both ids. (The fake knows
// one merchant id: without the record, its pre-flight refuses the other
// as credentials; a real service provider with two merchant ids would
// answer for the second.)
func TestAnotherWeChatMerchantIsRefusedOnceTheDateSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "60", "--sellers", "3", "--seed", "41")
	// Every query but the pre-flight's (the first) fails.
	later := make([]int, 1000)
	for i := range later {
		later[i] = i + 2
	}
	faults := fault.New(1,
		fault.Rule{Endpoint: "orders", Kind: fault.Lost, Calls: []int{1}},
		fault.Rule{Endpoint: "orders/query", Kind: fault.ServerError, Calls: later})
	sim := e.weChatSim(faults, 0)
	// No order query is answered: the wait from the last distribution sent
	// cannot make anything final, and the run stops after distribute
	// (heldPastWeChatsMemoryAt).
	first, code := e.runWeChat(sim, "--provider-wait", "1s", "--until", "distribute")
	if code == 0 {
		t.Fatalf("first run: exit 0, want the lost answer left unknown:\n%s", first)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE kind = 'distribution' AND state IN ('sent', 'unknown')`); n == 0 {
		t.Fatalf("no distribution left unknown:\n%s", first)
	}
	faults.Clear()
	calls := sim.WeChat.Calls("orders/query")
	out, code := e.runWeChat(sim, "--wechat-mchid", "1900000999")
	if code != 2 || !strings.Contains(out, "distribution requests were sent from --wechat-mchid "+sim.Config.WeChatMchID) ||
		!strings.Contains(out, "go to --wechat-mchid 1900000999") {
		t.Fatalf("run with another merchant id: exit %d, want 2 naming both:\n%s", code, out)
	}
	if n := sim.WeChat.Calls("orders/query"); n != calls {
		t.Fatalf("%d queries made as the other merchant", n-calls)
	}
	if out, code := e.runWeChat(sim); code != 0 && code != 4 {
		t.Fatalf("run with the date's merchant id: exit %d:\n%s", code, out)
	}
	e.checkWeChatOnce(sim)
}

// TestResolveAsksNoOtherInfiniaAccountThanTheDatesOwn: settle resolve
// --paid or --not-paid of a revenue share held past Infinia's memory
// asks Infinia that it still does not know the requestNo, and weighs the
// word against Infinia's available share of the seller. Given another
// appId (a second merchant's settings, a sandbox's), it asked that
// account, which never saw the requestNo nor the seller's trade files:
// "not found" and an available share of nothing, which let --paid record
// paid a share that never arrived (the seller never paid), where the
// date's own account shows the seller's share untouched and refuses it.
// It is refused (exit 2) naming both accounts, as a run of the date is,
// nothing asked of the other account nor recorded; with the date's own
// account the word is weighed as before.
func TestResolveAsksNoOtherInfiniaAccountThanTheDatesOwn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const balance = 1_000_000_000_00
	sim, key, subject := heldPastInfiniasMemory(t, e, fault.Reset, balance, nil)
	other := e.simWith(paysim.Options{AppID: "APP-OTHER", InfiniaMemory: 30 * 24 * time.Hour, ShareKeys: true, KeyBits: testKeyBits}, 3, nil, balance)
	out, code := e.settle(resolveArgs(other, subject, "--paid", "--note", "ops: statement checked")...)
	if code != 2 || !strings.Contains(out, "--infinia-app-id APP-DEMO") || !strings.Contains(out, "--infinia-app-id APP-OTHER") {
		t.Fatalf("resolve --paid under another appId: exit %d, want 2 naming both accounts:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.resolutions`); n != 0 {
		t.Fatalf("%d resolutions recorded under another account", n)
	}
	// The date's own account: the share never arrived, its seller's
	// available share untouched, and --paid is refused.
	if out, code := e.settle(resolveArgs(sim, subject, "--paid", "--note", "ops: statement checked")...); code != 2 || !strings.Contains(out, "would have left at most") {
		t.Fatalf("resolve --paid of a share that never arrived: exit %d, want 2 naming Infinia's available share:\n%s", code, out)
	}
	if out := e.mustSettle(resolveArgs(sim, subject, "--not-paid", "--note", "ops: no payment of "+key+" in the statement")...); !strings.Contains(out, "it is failed") {
		t.Fatalf("resolve --not-paid under the date's account: want it failed:\n%s", out)
	}
}

// TestANewDateIsNotSentFromAnotherAccountThanTheDatesBefore: another
// environment's settings applied to production (a sandbox's appId and
// keys, a second merchant's Secret) took over from the next date not yet
// run without a word: that night's revenue shares went to the other
// account, were recorded paid and reconciled against it, exit 0, while the
// sellers, whose funds are at the account the dates before sent from, got
// nothing. Such a run is refused (exit 2) naming both accounts, nothing
// sent; --new-account on the command line takes the new account for good,
// and the dates after it go on from it without the flag.
func TestANewDateIsNotSentFromAnotherAccountThanTheDatesBefore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const balance = 1_000_000_000_00
	for _, d := range []string{"2026-11-21", "2026-11-22", "2026-11-23"} {
		e.mustSettle("seed", "--date", d, "--orders", "20", "--sellers", "3", "--seed", "8", "--allow-other-orders")
	}
	first := e.sim(nil, 3, nil, balance)
	if out, code := e.runInfiniaOn(first, "2026-11-21"); code != 0 {
		t.Fatalf("2026-11-21 from APP-DEMO: exit %d:\n%s", code, out)
	}
	other := e.simWith(paysim.Options{AppID: "APP-OTHER", ShareKeys: true, KeyBits: testKeyBits}, 3, nil, balance)
	if out, code := e.runInfiniaOn(other, "2026-11-22", "--dry-run"); code != 0 || !strings.Contains(out, "a real run is refused") || !strings.Contains(out, "--new-account") {
		t.Fatalf("dry run of 2026-11-22 from APP-OTHER: exit %d, want 0 saying a real run is refused:\n%s", code, out)
	}
	out, code := e.runInfiniaOn(other, "2026-11-22")
	if code != 2 || !strings.Contains(out, "--infinia-app-id APP-DEMO") || !strings.Contains(out, "--infinia-app-id APP-OTHER") || !strings.Contains(out, "--new-account") {
		t.Fatalf("2026-11-22 from APP-OTHER: exit %d, want 2 naming both accounts and --new-account:\n%s", code, out)
	}
	if n := len(other.Infinia.RevenueShares()); n != 0 {
		t.Fatalf("the other account was sent %d revenue shares", n)
	}
	if n := e.count(`SELECT count(*) FROM settle.runs WHERE business_date = '2026-11-22'`); n != 0 {
		t.Fatalf("%d runs of 2026-11-22 opened by the refused run", n)
	}
	// The account changes for good: taken with the flag, then kept.
	if out, code := e.runInfiniaOn(other, "2026-11-22", "--new-account"); code != 0 {
		t.Fatalf("2026-11-22 from APP-OTHER with --new-account: exit %d:\n%s", code, out)
	}
	if n := len(other.Infinia.RevenueShares()); n == 0 {
		t.Fatal("no revenue share sent from the new account")
	}
	if out, code := e.runInfiniaOn(other, "2026-11-23"); code != 0 {
		t.Fatalf("2026-11-23 from APP-OTHER after the change: exit %d:\n%s", code, out)
	}
}
