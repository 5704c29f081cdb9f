package main

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
	settlesql "github.com/settlekit/settle/sql"
)

// These tests play a WeChat Pay whose order query forgets an out_order_no
// some time after it was accepted (simulated: paysim's WeChatMemory, on
// the simulator's clock). WeChat Pay signs its answers with its clock, and
// settle refuses one five minutes or more off its own: the simulator
// forgets after two minutes and its clock is set three ahead, while the
// ledger's intents are made forty days old (settle takes WeChat Pay to
// remember thirty, --wechat-query-memory). A distribution whose
// answer was lost, resumed after WeChat Pay forgot it, is held for a
// person (pipeline.ErrPastMemory, exit 4), who records what WeChat Pay's
// records show (settle resolve --subject S --paid or --not-paid); the
// next run of the date ends 0, and WeChat Pay's frozen funds show every
// transaction distributed once.

// heldPastWeChatsMemory plays a distribution whose send met kind (Lost:
// WeChat Pay applied it; Reset: it never arrived) while WeChat Pay's order
// query could not be asked, then resumes the date forty days later (the
// ledger's intents made so old), WeChat Pay no longer knowing the
// out_order_no: the run holds its transaction for a person (exit 4). It returns the
// simulator, the out_order_no and the subject.
func heldPastWeChatsMemory(t *testing.T, e *env, kind fault.Kind) (*paysim.Sim, string, string) {
	t.Helper()
	e.mustSettle("seed", "--date", testDate, "--orders", "40", "--sellers", "2", "--seed", "21")
	return heldPastWeChatsMemoryAt(t, e, kind, "orders", wechatpay.KindDistribution)
}

// heldPastWeChatsMemoryAt is heldPastWeChatsMemory of the first request
// sent to endpoint (orders: a distribution; orders/unfreeze: an
// unfreeze, effect kind effectKind), the date seeded already.
func heldPastWeChatsMemoryAt(t *testing.T, e *env, kind fault.Kind, endpoint, effectKind string) (*paysim.Sim, string, string) {
	t.Helper()
	// Every order query but the preflight's (the first) fails: the
	// request's outcome stays unknown.
	queries := make([]int, 0, 1000)
	for i := 2; i <= 1000; i++ {
		queries = append(queries, i)
	}
	faults := fault.New(1,
		fault.Rule{Endpoint: endpoint, Kind: kind, Calls: []int{1}},
		fault.Rule{Endpoint: "orders/query", Kind: fault.ServerError, Calls: queries})
	var later atomic.Int64 // how far the simulator's clock is ahead of ours
	clock := func() time.Time { return time.Now().Add(time.Duration(later.Load())) }
	sim, err := paysim.Start(paysim.Options{Dir: t.TempDir(), Faults: faults, Polls: -1, WeChatMemory: 2 * time.Minute, Timing: paysim.Timing{Now: clock}, ShareKeys: true, KeyBits: testKeyBits})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	sh, _ := time.LoadLocation("Asia/Shanghai")
	d, _ := pipeline.ParseDate(testDate)
	if _, err := sim.SeedWeChat(context.Background(), sqlx.NewDb(e.db.DB, "postgres"), settlesql.SourceQuery, pipeline.WindowOf(d, sh)); err != nil {
		t.Fatal(err)
	}
	// No order query is answered: its wait (pipeline.Limits.Wait, from the
	// last request sent) cannot make anything final, and 6 s of it cost
	// each test 5 s more than 1 s. The run stops after distribute (still
	// processing: exit 1, as the whole run ended): its reconcile stage
	// asked the order query once more, through the client's retries
	// (about 4 s of backoff), for an error nothing here reads.
	out, code := e.runWeChat(sim, "--provider-wait", "1s", "--until", "distribute")
	if code == 0 {
		t.Fatalf("first run: exit 0, want the lost answer left unknown:\n%s", out)
	}
	var key, subject string
	if err := e.db.QueryRow(`SELECT idem_key, subject FROM settle.effects WHERE kind = $1 AND state IN ('sent', 'unknown')`, effectKind).Scan(&key, &subject); err != nil {
		t.Fatalf("the %s whose answer was lost: %v\n%v\n%s", effectKind, err, sim.WeChat.CallCounts(), out)
	}
	faults.Clear()
	later.Store(int64(3 * time.Minute)) // WeChat Pay forgot it

	if _, err := e.db.Exec(`UPDATE settle.effects SET created_at = created_at - interval '40 days'`); err != nil {
		t.Fatal(err)
	}
	out, code = e.runWeChat(sim)
	if code != 4 || !strings.Contains(out, key) || !strings.Contains(out, "40d ago") || !strings.Contains(out, "neither sent again nor failed") {
		t.Fatalf("resumed forty days later: exit %d, want 4 naming %s held:\n%s", code, key, out)
	}
	return sim, key, subject
}

// wxResolveArgs is settle resolve of the date's subject with the
// simulator's WeChat Pay flags.
func wxResolveArgs(sim *paysim.Sim, subject string, more ...string) []string {
	return append(append([]string{"resolve", "--date", testDate, "--subject", subject}, more...), weChatArgs(sim)...)
}

// wxTxnOf is the WeChat transaction of a WeChat subject's order.
func (e *env) wxTxnOf(subject string) (txn string, commission int64) {
	e.t.Helper()
	order := subject[strings.LastIndex(subject, "/")+1:]
	if err := e.db.QueryRow(`SELECT provider_txn_id, commission_minor FROM settle.items WHERE order_no = $1`, order).Scan(&txn, &commission); err != nil {
		e.t.Fatal(err)
	}
	return txn, commission
}

// checkResolved checks the resolution of key: its effect in state, its
// last event resolved by a person with the note, listed by settle status.
func (e *env) checkResolved(key, subject, state, kind, note string) {
	e.t.Helper()
	var got, cause, detail string
	if err := e.db.QueryRow(`SELECT e.state, v.cause, v.detail FROM settle.effects e JOIN settle.effect_events v ON v.effect_id = e.id
		WHERE e.idem_key = $1 ORDER BY v.id DESC LIMIT 1`, key).Scan(&got, &cause, &detail); err != nil {
		e.t.Fatal(err)
	}
	if got != state || cause != "resolved by a person" || !strings.Contains(detail, note) || !strings.Contains(detail, "did not know out_order_no "+key) {
		e.t.Fatalf("%s is %s, its last event %q %q: want %s, resolved by a person with the proof and the note", key, got, cause, detail, state)
	}
	if out := e.mustSettle("status", "--date", testDate); !strings.Contains(out, "resolved by a person: "+kind+" "+subject+" ("+key+")") {
		e.t.Fatalf("settle status: want the resolution listed:\n%s", out)
	}
}

// TestAWeChatDistributionHeldPastItsMemoryResolvedPaidIsSettledOnce:
// WeChat Pay applied the distribution whose answer was lost, and forgot
// it. A person finds it in WeChat Pay's records and records it applied
// (settle resolve --paid), which WeChat Pay's frozen funds bear out (it
// holds nothing of the transaction); --not-paid is refused for the same
// reason. The next run sends nothing, settles the order paid by it, and
// ends 0; the commission was distributed once. Before, the stage asked
// WeChat Pay's order query about the resolved out_order_no for the
// seller's share, and held the transaction again on every run.
func TestAWeChatDistributionHeldPastItsMemoryResolvedPaidIsSettledOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim, key, subject := heldPastWeChatsMemory(t, e, fault.Lost)
	txn, commission := e.wxTxnOf(subject)
	if got := sim.WeChat.Distributed(txn); got != commission || sim.WeChat.Frozen(txn) != 0 {
		t.Fatalf("%s: WeChat Pay distributed %d, holds %d; want the commission %d, nothing held", txn, got, sim.WeChat.Frozen(txn), commission)
	}
	if out, code := e.settle(wxResolveArgs(sim, subject, "--paid")...); code != 2 || !strings.Contains(out, "--note") {
		t.Fatalf("resolve --paid without --note: exit %d, want 2 asking for it:\n%s", code, out)
	}
	if out, code := e.settle(wxResolveArgs(sim, subject, "--not-paid", "--note", "n")...); code != 2 || !strings.Contains(out, "holds nothing of transaction "+txn) {
		t.Fatalf("resolve --not-paid of a transaction WeChat Pay holds nothing of: exit %d, want 2:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.resolutions`); n != 0 {
		t.Fatalf("%d resolutions recorded by refused resolves", n)
	}
	const note = "ops: WeChat Pay distribution bill 2026-11-23 line 3"
	out := e.mustSettle(wxResolveArgs(sim, subject, "--paid", "--note", note)...)
	if !strings.Contains(out, key) || !strings.Contains(out, "sends nothing for it") {
		t.Fatalf("resolve --paid: want the out_order_no and what the next run does:\n%s", out)
	}
	e.checkResolved(key, subject, "succeeded", "past_memory_paid", note)
	if out := e.mustSettle(wxResolveArgs(sim, subject, "--paid", "--note", "again")...); !strings.Contains(out, "was resolved before") {
		t.Fatalf("resolve --paid again: want it said resolved before:\n%s", out)
	}
	sends := func() int { return sim.WeChat.Calls("orders") + sim.WeChat.Calls("orders/unfreeze") }
	requests := sends()
	if out, code := e.runWeChat(sim); code != 0 {
		t.Fatalf("run after resolve --paid: exit %d, want 0:\n%s", code, out)
	}
	if n := sends(); n != requests || sim.WeChat.Requests(txn) != 1 {
		t.Fatalf("WeChat Pay was sent %d requests, %d before the run, and %s took %d: want none sent, the one taken", n, requests, txn, sim.WeChat.Requests(txn))
	}
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE subject = $1`, subject); n != 1 {
		t.Fatalf("%d attempts at %s, want the one", n, subject)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE payout_key = $1 AND state = 'paid'`, key); n != 1 {
		t.Fatalf("%d items paid by %s, want its order", n, key)
	}
	paid, want := e.checkWeChatOnce(sim), e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay'`)
	if int64(paid) != want {
		t.Fatalf("%d of %d WeChat transactions settled", paid, want)
	}
	if out, code := e.runWeChat(sim); code != 0 || sends() != requests {
		t.Fatalf("run again: exit %d, %d requests sent (%d before):\n%s", code, sends(), requests, out)
	}
	e.checkReportsAgree(testDate)
	payouts := string(readFile(t, filepath.Join(e.reports, testDate, "payouts.csv")))
	if !strings.Contains(payouts, key) || strings.Count(payouts, subject) != 1 {
		t.Fatalf("payouts.csv: want %s once:\n%s", subject, payouts)
	}
}

// TestAWeChatDistributionHeldPastItsMemoryResolvedNotPaidGoesUnderANewKey:
// the distribution never arrived, and WeChat Pay, remembering thirty days,
// cannot say so: a person records it never applied (settle resolve
// --not-paid), which WeChat Pay's frozen funds bear out (it holds the
// transaction); --paid is refused for the same reason. The next run
// distributes the transaction under the next out_order_no, once, and ends
// 0; the first out_order_no is never sent again.
func TestAWeChatDistributionHeldPastItsMemoryResolvedNotPaidGoesUnderANewKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim, key, subject := heldPastWeChatsMemory(t, e, fault.Reset)
	txn, commission := e.wxTxnOf(subject)
	if got := sim.WeChat.Distributed(txn); got != 0 || sim.WeChat.Frozen(txn) == 0 {
		t.Fatalf("%s: WeChat Pay distributed %d, holds %d; want nothing distributed", txn, got, sim.WeChat.Frozen(txn))
	}
	if out, code := e.settle(wxResolveArgs(sim, subject, "--paid", "--note", "n")...); code != 2 || !strings.Contains(out, "still holds") {
		t.Fatalf("resolve --paid of a transaction WeChat Pay still holds: exit %d, want 2:\n%s", code, out)
	}
	if out, code := e.settle("resolve", "--date", testDate, "--subject", subject, "--not-paid", "--note", "n"); code != 2 || !strings.Contains(out, "--wechat-url") {
		t.Fatalf("resolve --not-paid without the --wechat-* flags: exit %d, want 2 asking for them:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.resolutions`); n != 0 {
		t.Fatalf("%d resolutions recorded by refused resolves", n)
	}
	const note = "ops: not in WeChat Pay's distribution bills of November and December"
	out := e.mustSettle(wxResolveArgs(sim, subject, "--not-paid", "--note", note)...)
	next := strings.TrimSuffix(key, "1") + "2"
	if !strings.Contains(out, "never sent again") || !strings.Contains(out, next) {
		t.Fatalf("resolve --not-paid: want the new out_order_no %s named:\n%s", next, out)
	}
	e.checkResolved(key, subject, "failed", "past_memory_not_paid", note)
	if out, code := e.settle(wxResolveArgs(sim, subject, "--paid", "--note", "changed my mind")...); code != 2 || !strings.Contains(out, "resolved before as not paid") {
		t.Fatalf("resolve --paid after --not-paid: exit %d, want 2:\n%s", code, out)
	}
	sent := func(k string) (n int64) {
		e.t.Helper()
		if err := e.db.Get(&n, `SELECT coalesce(sum(sends), 0) FROM settle.effects WHERE idem_key = $1`, k); err != nil {
			e.t.Fatal(err)
		}
		return n
	}
	before := sent(key)
	if out, code := e.runWeChat(sim); code != 0 {
		t.Fatalf("run after resolve --not-paid: exit %d, want 0:\n%s", code, out)
	}
	if sim.WeChat.Requests(txn) != 1 || sent(key) != before || sent(next) != 1 || e.count(`SELECT count(*) FROM settle.effects WHERE idem_key = $1 AND state = 'succeeded'`, next) != 1 {
		t.Fatalf("%s took %d requests, %s was sent %d times: want %s once, succeeded", txn, sim.WeChat.Requests(txn), next, sent(next), next)
	}
	if got := sim.WeChat.Distributed(txn); got != commission || sim.WeChat.Frozen(txn) != 0 {
		t.Fatalf("%s: WeChat Pay distributed %d, holds %d; want the commission %d once, nothing held", txn, got, sim.WeChat.Frozen(txn), commission)
	}
	paid, want := e.checkWeChatOnce(sim), e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay'`)
	if int64(paid) != want {
		t.Fatalf("%d of %d WeChat transactions settled", paid, want)
	}
	if out, code := e.runWeChat(sim); code != 0 || sent(key) != before || sent(next) != 1 || sim.WeChat.Requests(txn) != 1 {
		t.Fatalf("run again: exit %d, %s sent %d times, %s %d times:\n%s", code, key, sent(key), next, sent(next), out)
	}
	e.checkReportsAgree(testDate)
}

// TestAWeChatUnfreezeHeldPastItsMemoryIsResolvedAgainstWhatWeChatHolds: a
// plain unfreeze (a transaction with no commission) whose answer was lost,
// resumed after WeChat Pay forgot its out_order_no, is held for a person
// as a distribution is: neither sent again nor failed. What WeChat Pay
// still holds of the transaction decides the person's word: an unfreeze
// applied left nothing frozen (--paid taken, --not-paid refused; the next
// run sends nothing and settles the order paid by it), one that never
// arrived left it all (--paid refused, --not-paid taken; the next run
// unfreezes it under the next out_order_no, once).
func TestAWeChatUnfreezeHeldPastItsMemoryIsResolvedAgainstWhatWeChatHolds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		kind    fault.Kind
		applied bool
	}{
		{"applied", fault.Lost, true},
		{"never arrived", fault.Reset, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			// Seed 15 refunds none of its WeChat Pay orders in full: the
			// fault hits whichever unfreeze goes first, and one never
			// arrived must leave something frozen to tell it from one
			// applied (of a transaction refunded in full WeChat Pay holds
			// nothing either way: resolve takes only --paid, no money
			// moving).
			e.mustSettle("seed", "--date", testDate, "--orders", "120", "--sellers", "4", "--seed", "15")
			sim, key, subject := heldPastWeChatsMemoryAt(t, e, tc.kind, "orders/unfreeze", wechatpay.KindUnfreeze)
			txn, commission := e.wxTxnOf(subject)
			if commission != 0 {
				t.Fatalf("%s: commission %d, want a plain unfreeze", subject, commission)
			}
			if n := e.count(`SELECT count(*) FROM settle.effects WHERE subject = $1`, subject); n != 1 {
				t.Fatalf("%d attempts at %s after the hold, want the one (neither failed nor sent again under a new key)", n, subject)
			}
			if n := e.count(`SELECT count(*) FROM settle.items WHERE provider_txn_id = $1 AND state = 'recorded' AND reason LIKE 'held: %'`, txn); n != 1 {
				t.Fatalf("%s: want its item held for a person", txn)
			}
			frozen := sim.WeChat.Frozen(txn)
			if tc.applied != (frozen == 0) || sim.WeChat.Distributed(txn) != 0 {
				t.Fatalf("%s: WeChat Pay holds %d, distributed %d; want the unfreeze applied %v, nothing distributed", txn, frozen, sim.WeChat.Distributed(txn), tc.applied)
			}
			word, wrong := "--paid", "--not-paid"
			if !tc.applied {
				word, wrong = wrong, word
			}
			if out, code := e.settle(wxResolveArgs(sim, subject, wrong, "--note", "n")...); code != 2 || !strings.Contains(out, "transaction "+txn) {
				t.Fatalf("resolve %s of what WeChat Pay's frozen funds contradict: exit %d, want 2:\n%s", wrong, code, out)
			}
			if n := e.count(`SELECT count(*) FROM settle.resolutions`); n != 0 {
				t.Fatalf("%d resolutions recorded by a refused resolve", n)
			}
			const note = "ops: WeChat Pay's records"
			if out := e.mustSettle(wxResolveArgs(sim, subject, word, "--note", note)...); !strings.Contains(out, "unfreeze "+subject) || strings.Contains(out, "0.00 CNY") {
				// An unfreeze's effect carries no amount: it releases what
				// WeChat Pay holds, not nothing.
				t.Fatalf("resolve %s: want the unfreeze named, not as moving 0.00 CNY:\n%s", word, out)
			}
			state, kind := "succeeded", "past_memory_paid"
			if !tc.applied {
				state, kind = "failed", "past_memory_not_paid"
			}
			e.checkResolved(key, subject, state, kind, note)
			sends := func() int { return sim.WeChat.Calls("orders") + sim.WeChat.Calls("orders/unfreeze") }
			requests := sends()
			if out, code := e.runWeChat(sim); code != 0 {
				t.Fatalf("run after resolve %s: exit %d, want 0:\n%s", word, code, out)
			}
			next := strings.TrimSuffix(key, "1") + "2"
			switch {
			case tc.applied:
				if n := sends(); n != requests || sim.WeChat.Requests(txn) != 1 {
					t.Fatalf("%d requests sent by the run (%d before), %s took %d: want none sent", n, requests, txn, sim.WeChat.Requests(txn))
				}
				if n := e.count(`SELECT count(*) FROM settle.items WHERE payout_key = $1 AND state = 'paid'`, key); n != 1 {
					t.Fatalf("%d items paid by %s, want its order", n, key)
				}
			default:
				if sim.WeChat.Requests(txn) != 1 || e.count(`SELECT count(*) FROM settle.effects WHERE idem_key = $1 AND kind = 'unfreeze' AND state = 'succeeded' AND sends = 1`, next) != 1 {
					t.Fatalf("%s took %d requests: want the unfreeze %s once, succeeded", txn, sim.WeChat.Requests(txn), next)
				}
				if n := e.count(`SELECT count(*) FROM settle.items WHERE payout_key = $1 AND state = 'paid'`, next); n != 1 {
					t.Fatalf("%d items paid by %s, want its order", n, next)
				}
			}
			if f := sim.WeChat.Frozen(txn); f != 0 || sim.WeChat.Distributed(txn) != 0 {
				t.Fatalf("%s: WeChat Pay holds %d, distributed %d: want all unfrozen to the seller, nothing distributed", txn, f, sim.WeChat.Distributed(txn))
			}
			paid, want := e.checkWeChatOnce(sim), e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay'`)
			if int64(paid) != want {
				t.Fatalf("%d of %d WeChat transactions settled", paid, want)
			}
			if out, code := e.runWeChat(sim); code != 0 || sends() != requests+map[bool]int{true: 0, false: 1}[tc.applied] {
				t.Fatalf("run again: exit %d, %d requests sent (%d before the first):\n%s", code, sends(), requests, out)
			}
			e.checkReportsAgree(testDate)
		})
	}
}

// TestAWeChatTransactionSettledByHandWhileItsRequestWasForgottenIsNotCreditedToIt:
// the distribution never arrived, WeChat Pay (remembering thirty days)
// cannot say so, and a person, rather than wait, releases the transaction
// to the seller by hand in the merchant portal (the commission not
// collected). WeChat Pay then holds nothing: --not-paid is refused, and the
// only way out was --paid, which recorded the distribution succeeded - the
// commission collected by it, the order paid by it, the reconciliation
// taking it as applied and forgotten - while it moved nothing. settle
// resolve --order takes it instead, once WeChat Pay's query still does not
// know the out_order_no: the order is settled outside settle, and its
// distribution recorded failed, not applied (resolved: not a failed payout
// of the date); the next run sends nothing and ends 0.
func TestAWeChatTransactionSettledByHandWhileItsRequestWasForgottenIsNotCreditedToIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim, key, subject := heldPastWeChatsMemory(t, e, fault.Reset)
	txn, _ := e.wxTxnOf(subject)
	order, _ := wechatpay.OrderOfSubject(subject)
	var sub string
	if err := e.db.Get(&sub, `SELECT s.wechat_sub_mchid FROM orders o JOIN sellers s USING (seller_id) WHERE o.order_no = $1`, order); err != nil {
		t.Fatal(err)
	}
	if sim.WeChat.Distributed(txn) != 0 || sim.WeChat.Frozen(txn) == 0 {
		t.Fatalf("%s: WeChat Pay distributed %d, holds %d; want nothing distributed", txn, sim.WeChat.Distributed(txn), sim.WeChat.Frozen(txn))
	}
	// Within WeChat Pay's memory, or while it holds the transaction, an
	// order whose request is in flight is not settled by hand.
	if out, code := e.settle(append([]string{"resolve", "--date", testDate, "--order", order, "--note", "n"}, weChatArgs(sim)...)...); code != 2 || !strings.Contains(out, "still holds") {
		t.Fatalf("resolve --order while WeChat Pay holds the transaction: exit %d, want 2:\n%s", code, out)
	}
	client, err := wechatpay.New(sim.WeChat.ClientConfig(sim.Config.WeChatURL))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Unfreeze(context.Background(), wechatpay.Unfreeze{SubMchID: sub, TransactionID: txn, OutOrderNo: "MANUAL-" + order, Description: "released by hand"}); err != nil {
		t.Fatal(err)
	}
	if sim.WeChat.Frozen(txn) != 0 {
		t.Fatalf("%s: WeChat Pay holds %d after the release by hand", txn, sim.WeChat.Frozen(txn))
	}
	if out, code := e.settle(wxResolveArgs(sim, subject, "--not-paid", "--note", "n")...); code != 2 || !strings.Contains(out, "--order "+order) {
		t.Fatalf("resolve --not-paid once WeChat Pay holds nothing: exit %d, want 2 naming resolve --order:\n%s", code, out)
	}
	const note = "released to the seller by hand in the merchant portal, ticket OPS-31"
	// WeChat Pay's order query failing a moment is no word that it forgot
	// the request: nothing is recorded, and the person is told to ask
	// again, not sent to a run that would hold the order again.
	sim.Faults.Add(fault.Rule{Endpoint: "orders/query", Kind: fault.ServerError, Prob: 1})
	if out, code := e.settle(append([]string{"resolve", "--date", testDate, "--order", order, "--note", note}, weChatArgs(sim)...)...); code != 1 ||
		!strings.Contains(out, "whether it still knows") || strings.Contains(out, "run the date again") {
		t.Fatalf("resolve --order while WeChat Pay's order query fails: exit %d, want 1, asking again:\n%s", code, out)
	}
	sim.Faults.Clear()
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE idem_key = $1 AND state IN ('sent', 'unknown')`, key); n != 1 {
		t.Fatalf("%s: not in flight after a resolve that could not ask WeChat Pay: something was recorded", key)
	}
	out := e.mustSettle(append([]string{"resolve", "--date", testDate, "--order", order, "--note", note}, weChatArgs(sim)...)...)
	if !strings.Contains(out, "is paid: settled outside settle") || !strings.Contains(out, key+"), which WeChat Pay no longer knows, is recorded failed, not applied") {
		t.Fatalf("resolve --order: want the order settled outside and its distribution recorded not applied:\n%s", out)
	}
	var state, cause, detail string
	if err := e.db.QueryRow(`SELECT e.state, v.cause, v.detail FROM settle.effects e JOIN settle.effect_events v ON v.effect_id = e.id
		WHERE e.idem_key = $1 ORDER BY v.id DESC LIMIT 1`, key).Scan(&state, &cause, &detail); err != nil {
		t.Fatal(err)
	}
	if state != "failed" || cause != "resolved by a person" || !strings.Contains(detail, "not applied") || !strings.Contains(detail, "did not know out_order_no "+key) || !strings.Contains(detail, note) {
		t.Fatalf("%s is %s, its last event %q %q: want failed by a person, not applied, with the proof and the note", key, state, cause, detail)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE order_no = $1 AND state = 'paid' AND payout_key = '' AND reason LIKE 'settled outside settle (%OPS-31%'`, order); n != 1 {
		t.Fatalf("order %s: want it paid, settled outside settle, credited to no request", order)
	}
	sends := func() int { return sim.WeChat.Calls("orders") + sim.WeChat.Calls("orders/unfreeze") }
	requests := sends()
	if out, code := e.runWeChat(sim); code != 0 || sends() != requests {
		t.Fatalf("run after resolve --order: exit %d, %d requests sent (%d before), want 0 and none:\n%s", code, sends(), requests, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE subject = $1`, subject); n != 1 || sim.WeChat.Distributed(txn) != 0 {
		t.Fatalf("%d attempts at %s, %d distributed: want the one, nothing distributed", n, subject, sim.WeChat.Distributed(txn))
	}
	e.checkReportsAgree(testDate)
}
