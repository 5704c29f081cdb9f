package main

import (
	"strings"
	"testing"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/pipeline"
)

// TestARevenueShareInfiniaAnsweredAndThenForgotIsNotSentAgain: Infinia
// answered a revenue share PROCESSING, with its reference, and kept it so
// past --provider-wait (exit 1); by the next run its status query no
// longer knows the requestNo. The run sent it again under the requestNo
// as one that never arrived - an Infinia that lost it pays it a second
// time. The share is left as it is, for a person, named with Infinia's
// reference (exit 4), and the other sellers are paid. settle resolve
// --paid and --not-paid refused it then ("within the 30d its status query
// remembers: it never arrived, and the date's next run sends it again"),
// which no run does any more: the date ended 4 every night until the share
// aged past --infinia-query-memory. The person's word, checked against
// Infinia's available share as past the memory, resolves it; the next run
// sends nothing and ends 0.
func TestARevenueShareInfiniaAnsweredAndThenForgotIsNotSentAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "150", "--sellers", "4", "--seed", "3")
	faults := fault.New(1, fault.Rule{Endpoint: "revenue-sharing/query", Kind: fault.Stuck, Calls: []int{1}, Polls: 1_000_000})
	sim := e.sim(faults, 4, nil, 1_000_000_000_00)
	if out, code := e.runInfinia(sim, "--provider-wait", "1s"); code != 1 || !strings.Contains(out, "revenue shares still processing") {
		t.Fatalf("first run: exit %d, want 1 with a revenue share still processing\n%s", code, out)
	}
	var key, ref, subject string
	if err := e.db.QueryRow(`SELECT idem_key, provider_ref, subject FROM settle.effects WHERE kind = 'revenue_share' AND state = 'sent'`).Scan(&key, &ref, &subject); err != nil || ref == "" {
		t.Fatalf("the share in flight: %q %q, %v; want one, with Infinia's reference", key, ref, err)
	}
	sim.Infinia.ForgetShare(key)
	sends := sim.Infinia.Calls("revenue-sharing/request")
	out, code := e.runInfinia(sim, "--provider-wait", "1s")
	if n := sim.Infinia.Calls("revenue-sharing/request") - sends; n != 0 {
		t.Fatalf("the share Infinia answered and forgot was sent again %d times (exit %d)\n%s", n, code, out)
	}
	if code != 4 || !strings.Contains(out, ref) {
		t.Fatalf("exit %d, want 4 naming Infinia's reference %s\n%s", code, ref, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE kind = 'revenue_share' AND idem_key = $1 AND state = 'sent'`, key); n != 1 {
		t.Fatalf("the share is no longer in flight (%d)", n)
	}
	found := false
	for _, m := range e.mismatches(testDate) {
		if m.Subject == key {
			found = m.Category == pipeline.MismatchStatus && !m.Expected && strings.Contains(m.Detail, ref)
		}
	}
	if !found {
		t.Fatalf("mismatches %+v: want an unexpected status row about %s naming %s (not \"the next run resolves it\")", e.mismatches(testDate), key, ref)
	}
	// Infinia took the share's funds when it answered it: its statement
	// shows it paid.
	out, code = e.settle(resolveArgs(sim, subject, "--paid", "--note", "ops: Infinia statement, reference "+ref)...)
	if code != 0 || !strings.Contains(out, "is resolved") {
		t.Fatalf("resolve --paid of the share Infinia answered and forgot: exit %d, want 0\n%s", code, out)
	}
	if out, code := e.runInfinia(sim, "--provider-wait", "1s"); code != 0 {
		t.Fatalf("run after resolve --paid: exit %d, want 0\n%s", code, out)
	}
	if n := sim.Infinia.Calls("revenue-sharing/request") - sends; n != 0 {
		t.Fatalf("%d revenue shares sent after the resolve, want none", n)
	}
}

// TestADistributionWeChatAnsweredAndThenForgotIsNotSentAgain: the same of
// WeChat Pay: a distribution it answered PROCESSING (with its order id)
// and whose order query no longer knows it was sent again under its
// out_order_no; it is held for a person, named with the order id, and the
// other transactions settle. settle resolve --subject refused it as within
// WeChat Pay's memory ("the date's next run sends it again"), which no run
// does: a person's word resolves it now.
func TestADistributionWeChatAnsweredAndThenForgotIsNotSentAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "60", "--sellers", "3", "--seed", "41")
	// Call 1 of orders/query is the pre-flight's (an order that does not exist).
	sim := e.weChatSim(fault.New(1, fault.Rule{Endpoint: "orders/query", Kind: fault.Stuck, Calls: []int{2}, Polls: 1_000_000}), 0)
	if out, code := e.runWeChat(sim, "--provider-wait", "1s"); code != 1 {
		t.Fatalf("first run: exit %d, want 1 with a distribution still processing\n%s", code, out)
	}
	var key, ref, subject string
	if err := e.db.QueryRow(`SELECT idem_key, provider_ref, subject FROM settle.effects WHERE kind IN ('distribution', 'unfreeze') AND state = 'sent'`).Scan(&key, &ref, &subject); err != nil || ref == "" {
		t.Fatalf("the request in flight: %q %q, %v; want one, with WeChat Pay's order id", key, ref, err)
	}
	sim.WeChat.ForgetOrder(key)
	sends := sim.WeChat.Calls("orders") + sim.WeChat.Calls("orders/unfreeze")
	out, code := e.runWeChat(sim, "--provider-wait", "1s")
	if n := sim.WeChat.Calls("orders") + sim.WeChat.Calls("orders/unfreeze") - sends; n != 0 {
		t.Fatalf("the request WeChat Pay answered and forgot was sent again %d times (exit %d)\n%s", n, code, out)
	}
	if code != 4 || !strings.Contains(out, ref) {
		t.Fatalf("exit %d, want 4 naming WeChat Pay's order %s\n%s", code, ref, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay' AND state = 'paid'`); n == 0 {
		t.Fatalf("no other transaction settled\n%s", out)
	}
	txn, _ := e.wxTxnOf(subject)
	how := "--not-paid" // WeChat Pay still holds the transaction's funds: never applied
	if sim.WeChat.Frozen(txn) == 0 {
		how = "--paid"
	}
	out, code = e.settle(wxResolveArgs(sim, subject, how, "--note", "ops: WeChat Pay bill, order "+ref)...)
	if code != 0 || !strings.Contains(out, "is resolved") {
		t.Fatalf("resolve %s of the request WeChat Pay answered and forgot: exit %d, want 0\n%s", how, code, out)
	}
	// (The fake's ForgetOrder takes the order out of its settlement
	// batches too: their amounts may disagree, a row of their own.)
	if out, code := e.runWeChat(sim, "--provider-wait", "1s"); code != 0 && (strings.Contains(out, ref) || strings.Contains(out, key) || strings.Contains(out, "missing_at_provider")) {
		t.Fatalf("run after resolve %s: exit %d, the request still a problem\n%s", how, code, out)
	}
}
