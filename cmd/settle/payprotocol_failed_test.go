package main

import (
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
)

// failedPaymentDay seeds a small day whose only Pay Protocol order (the
// others, and their refunds, taken out of the platform's tables) has no
// refund, and starts the simulator with that order's payment failed (set
// through its control endpoint, as paysim ctl --payprotocol-status does).
// It returns the simulator, the order, its payment (outTradeNo) and the
// balance the platform starts with.
func (e *env) failedPaymentDay() (sim *paysim.Sim, order, txn string, balance int64) {
	e.t.Helper()
	e.mustSettle("seed", "--date", testDate, "--orders", "60", "--sellers", "4", "--bad-rows", "0", "--seed", "3")
	order = e.first(`SELECT order_no FROM orders o WHERE provider = 'payprotocol' AND provider_txn_id IS NOT NULL
		AND confirmed_at >= '2026-11-23 00:00+08' AND confirmed_at < '2026-11-24 00:00+08'
		AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.order_no = o.order_no)`)
	e.db.MustExec(`DELETE FROM refunds WHERE order_no IN (SELECT order_no FROM orders WHERE provider = 'payprotocol' AND order_no <> $1)`, order)
	e.db.MustExec(`DELETE FROM orders WHERE provider = 'payprotocol' AND order_no <> $1`, order)
	txn = e.first(`SELECT provider_txn_id FROM orders WHERE order_no = $1`, order)
	balance = 1_000_000_000_00
	sim = e.payProtocolSim(nil, 4, balance)
	e.situations(sim, "--payprotocol-status", txn+"=failed")
	return sim, order, txn, balance
}

// itemOf returns the state and reason of order's item.
func (e *env) itemOf(order string) (state, reason string) {
	e.t.Helper()
	if err := e.db.QueryRow(`SELECT state, reason FROM settle.items WHERE order_no = $1`, order).Scan(&state, &reason); err != nil {
		e.t.Fatalf("item of %s: %v", order, err)
	}
	return state, reason
}

// TestAFailedPayProtocolPaymentPaidLateSettlesOnce: an order whose Pay
// Protocol payment answers failed (paymentStatus 4) was rejected for good,
// its seller never paid, though the platform released its escrow and a
// failed payment can still be paid late, on chain (Pay Protocol's own
// plugin reopens such an order). It is held: not paid, the run not ending
// 0 (exit 4, naming it, as settle status does), verified again by every
// run of its date; once Pay Protocol answers paid it settles, once, and
// the date's next run ends 0 with nothing more sent.
func TestAFailedPayProtocolPaymentPaidLateSettlesOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim, order, txn, balance := e.failedPaymentDay()
	for run := 1; run <= 2; run++ {
		before := sim.PayProtocol.Calls(payprotocol.APIPaymentDetail)
		out, code := e.runInfinia(sim)
		if code != 4 || !strings.Contains(out, "order "+order+": payment is failed") {
			t.Fatalf("run %d, payment failed: exit %d, want 4 naming the order:\n%s", run, code, out)
		}
		if state, reason := e.itemOf(order); state != pipeline.ItemHeld || !strings.HasPrefix(reason, payprotocol.HeldFailedPayment) {
			t.Fatalf("run %d: %s is %s %q, want held for its failed payment", run, order, state, reason)
		}
		if sim.PayProtocol.Calls(payprotocol.APIPaymentDetail) == before {
			t.Fatalf("run %d did not ask Pay Protocol about the held payment", run)
		}
		// Nothing moved, as Pay Protocol says: a timing gap, not a
		// mismatch of money (the verification names it for a person).
		for _, m := range e.mismatches(testDate) {
			if m.OrderNo != order || !m.Expected || m.TheirsState != "failed" {
				t.Errorf("run %d: mismatch %+v; want the held order's expected row alone", run, m)
			}
		}
		e.checkPaidOnce(sim, balance)
	}
	if out := e.mustSettle("status", "--date", testDate); !strings.Contains(out, "order "+order+": payment is failed") {
		t.Errorf("settle status does not name the held order:\n%s", out)
	}
	if out, code := e.runInfinia(sim, "--dry-run"); code != 0 || !strings.Contains(out, "ended needing a person: ") || !strings.Contains(out, "order "+order+": payment is failed") {
		t.Errorf("the dry run does not name the held order: exit %d\n%s", code, out)
	}

	// Paid late, on chain.
	e.situations(sim, "--payprotocol-status", txn+"=paid")
	out, code := e.runInfinia(sim)
	if code != 0 {
		t.Fatalf("paid since: exit %d, want 0:\n%s", code, out)
	}
	if state, reason := e.itemOf(order); state != pipeline.ItemPaid && state != "carried" {
		t.Fatalf("paid since: %s is %s %q, want paid (or carried to its seller's next payout)", order, state, reason)
	}
	e.checkPaidOnce(sim, balance)
	sends := e.count(`SELECT count(*) FROM settle.effects`)
	if out, code := e.runInfinia(sim); code != 0 {
		t.Fatalf("the date again: exit %d, want 0:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects`); n != sends {
		t.Errorf("the date again recorded %d side effects more", n-sends)
	}
	e.checkPaidOnce(sim, balance)
}

// TestAFailedPaymentAtTheRejectGateIsNamedHeld: an order held for its
// failed Pay Protocol payment counts at the reject gate, but it is held,
// not rejected, and no data of the platform is wrong: the gate's message
// counts it apart and says what ends it (paid, or rejected by a person),
// not "fix the data, then --reextract", which changes nothing of it; and
// the run's summary lists it, as it lists the rejects. The gate counted
// it "by the providers" while the summary said "rejected: none" (found on
// a day of one order, settle demo --orders 1).
func TestAFailedPaymentAtTheRejectGateIsNamedHeld(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim, order, _, _ := e.failedPaymentDay()
	out, code := e.runInfinia(sim, "--max-reject-ratio", "0.01")
	if code != 3 {
		t.Fatalf("payment failed, beyond the tolerance: exit %d, want 3:\n%s", code, out)
	}
	for _, want := range []string{
		"(0 by transform, 0 by the providers, 1 held for a failed Pay Protocol payment)",
		"run the date again once they are paid, or settle resolve --order O --reject",
		"held for a failed Pay Protocol payment: 1 orders",
		order,
		// The hint, the last JSON line's in a pod: the exit code's
		// own said to fix the data and read the date again.
		"settle resolve --date " + testDate + " --order O --reject",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "fix the data") {
		t.Errorf("the gate asks to fix the data of a failed payment:\n%s", out)
	}
}

// TestAFailedPayProtocolPaymentRejectedByAPerson: an order held for its
// failed payment stays held (exit 4) until Pay Protocol answers paid, or a
// person says the payment will never arrive: settle resolve --order
// --reject rejects it for good, with the note in the ledger, once Pay
// Protocol answers that the payment is still failed; it is then neither
// verified nor counted as held, and the date's next run ends 0. Anything
// else is refused, nothing recorded.
func TestAFailedPayProtocolPaymentRejectedByAPerson(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim, order, txn, balance := e.failedPaymentDay()
	// Held, it still counts at the reject gate, as it did rejected: an
	// order the platform released unpaid (1 of the day's 60 rows is above
	// this ratio: no payout is sent on the date).
	if out, code := e.runInfinia(sim, "--max-reject-ratio", "0.01"); code != 3 || !strings.Contains(out, order+": "+payprotocol.HeldFailedPayment) {
		t.Fatalf("payment failed, beyond the tolerance: exit %d, want 3 naming the order:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE kind = 'revenue_share'`); n != 0 {
		t.Fatalf("%d revenue shares planned past the reject gate", n)
	}
	resolve := func(order string, extra ...string) (string, int) {
		return e.settle(append(append([]string{"resolve", "--date", testDate, "--order", order, "--reject", "--note", "buyer never paid, ticket PP-77"},
			sim.Config.Args()...), extra...)...)
	}
	// Refused, nothing recorded: an order not held for its failed payment;
	// a payment Pay Protocol answers paid now; no Pay Protocol to ask.
	infinia := e.first(`SELECT order_no FROM settle.items WHERE channel = 'infiniapay'`)
	if out, code := resolve(infinia); code != 2 || !strings.Contains(out, "only a Pay Protocol order settle holds for its failed payment") {
		t.Errorf("an Infinia order: exit %d, want 2:\n%s", code, out)
	}
	if out, code := e.settle(append([]string{"resolve", "--date", testDate, "--order", order, "--note", "n"}, sim.Config.Args()...)...); code != 2 ||
		!strings.Contains(out, "--reject rejects it for good") {
		t.Errorf("without --reject: exit %d, want 2 pointing to it:\n%s", code, out)
	}
	e.situations(sim, "--payprotocol-status", txn+"=paid")
	if out, code := resolve(order); code != 2 || !strings.Contains(out, "answers its payment "+txn+" paid now") {
		t.Errorf("paid now: exit %d, want 2:\n%s", code, out)
	}
	e.situations(sim, "--payprotocol-status", txn+"=failed")
	if out, code := e.settle("resolve", "--date", testDate, "--order", order, "--reject", "--note", "n"); code != 2 || !strings.Contains(out, "--payprotocol-url") {
		t.Errorf("without Pay Protocol: exit %d, want 2:\n%s", code, out)
	}
	if out, code := e.settle(append([]string{"resolve", "--date", testDate, "--order", order, "--reject"}, sim.Config.Args()...)...); code != 2 || !strings.Contains(out, "--note") {
		t.Errorf("without a note: exit %d, want 2:\n%s", code, out)
	}
	if state, _ := e.itemOf(order); state != pipeline.ItemHeld || e.count(`SELECT count(*) FROM settle.resolutions`) != 0 {
		t.Fatalf("a refused resolve changed the ledger: %s is %s", order, state)
	}

	out, code := resolve(order)
	if code != 0 || !strings.Contains(out, "is rejected") || !strings.Contains(out, "settle run --date "+testDate) {
		t.Fatalf("resolve --reject: exit %d:\n%s", code, out)
	}
	state, reason := e.itemOf(order)
	if state != pipeline.ItemRejected || !strings.HasPrefix(reason, pipeline.RejectedByPerson) || !strings.Contains(reason, "buyer never paid, ticket PP-77") ||
		!strings.Contains(reason, "failed") {
		t.Fatalf("rejected by a person: %s is %s %q", order, state, reason)
	}
	// Again: said, nothing changed.
	if out, code := resolve(order); code != 0 || !strings.Contains(out, "was rejected before") {
		t.Errorf("resolve --reject again: exit %d:\n%s", code, out)
	}
	if _, again := e.itemOf(order); again != reason {
		t.Errorf("resolved again: reason %q, was %q", again, reason)
	}
	before := sim.PayProtocol.Calls(payprotocol.APIPaymentDetail)
	// A person's rejection is no bad data: the reject gate does not count
	// it (1 of the day's 60 rows is above this ratio; counted, the date
	// would end 3, no money sent on it, for good).
	if out, code := e.runInfinia(sim, "--max-reject-ratio", "0.01"); code != 0 || strings.Contains(out, "order "+order+": payment is failed") || !strings.Contains(out, "rejected by a person") {
		t.Fatalf("after the person rejected it: exit %d, want 0, %s no longer held but rejected by a person:\n%s", code, order, out)
	}
	if n := sim.PayProtocol.Calls(payprotocol.APIPaymentDetail) - before; n > 2 {
		t.Errorf("the run asked Pay Protocol %d payment details, want at most its own pre-flight's and the reconciliation's of the rejected order", n)
	}
	if state, _ := e.itemOf(order); state != pipeline.ItemRejected {
		t.Errorf("after the run %s is %s", order, state)
	}
	status := e.mustSettle("status", "--date", testDate)
	if !strings.Contains(status, "resolved by a person: rejected_held "+txn+" ("+order+")") || !strings.Contains(status, "buyer never paid, ticket PP-77") {
		t.Errorf("settle status does not list the rejection:\n%s", status)
	}
	e.checkPaidOnce(sim, balance)
}

// TestARejectedPayProtocolOrderPaidLaterIsReportedAndReopened: an order a
// person rejected for its failed payment (settle resolve --order
// --reject) that Pay Protocol answers paid later was reported nowhere: the
// buyer had paid, the platform released the escrow, and the seller was
// never paid, nobody told. The date's reconciliation asks about it: still
// failed, an expected row (the run ends 0); paid, an unexpected row and a
// line naming the order, its amount and currency and the command, exit 4,
// nothing paid by itself. settle resolve --order --reopen (once Pay
// Protocol answers paid) holds it again, and the date's next run settles
// it, once, and ends 0.
func TestARejectedPayProtocolOrderPaidLaterIsReportedAndReopened(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim, order, txn, balance := e.failedPaymentDay()
	if _, code := e.runInfinia(sim); code != 4 {
		t.Fatalf("payment failed: exit %d, want 4", code)
	}
	resolve := func(how string) (string, int) {
		return e.settle(append([]string{"resolve", "--date", testDate, "--order", order, how, "--note", "buyer paid late, ticket PP-78"}, sim.Config.Args()...)...)
	}
	// Not rejected yet: nothing to reopen.
	if out, code := resolve("--reopen"); code != 2 || !strings.Contains(out, "only a Pay Protocol order rejected for its failed payment") {
		t.Fatalf("reopen a held order: exit %d, want 2:\n%s", code, out)
	}
	if out, code := resolve("--reject"); code != 0 {
		t.Fatalf("resolve --reject: exit %d:\n%s", code, out)
	}
	before := sim.PayProtocol.Calls(payprotocol.APIPaymentDetail)
	if out, code := e.runInfinia(sim); code != 0 {
		t.Fatalf("rejected, still failed: exit %d, want 0:\n%s", code, out)
	}
	if sim.PayProtocol.Calls(payprotocol.APIPaymentDetail) == before {
		t.Errorf("the reconciliation did not ask Pay Protocol about the rejected order")
	}
	if ms := e.mismatches(testDate); len(ms) != 1 || ms[0].OrderNo != order || !ms[0].Expected || ms[0].TheirsState != "failed" {
		t.Errorf("rejected, still failed: mismatches %+v, want the order's expected row", ms)
	}
	// Still failed: nothing to reopen.
	if out, code := resolve("--reopen"); code != 2 || !strings.Contains(out, "not paid: it stays rejected") {
		t.Errorf("reopen a payment still failed: exit %d, want 2:\n%s", code, out)
	}

	// The buyer pays late, on chain.
	e.situations(sim, "--payprotocol-status", txn+"=paid")
	gross := e.first(`SELECT gross_minor::text || ' ' || currency FROM settle.items WHERE order_no = $1`, order)
	{
		out, code := e.runInfinia(sim)
		if code != 4 || !strings.Contains(out, payprotocol.PaidAfterRejection) || !strings.Contains(out, "settle resolve --date "+testDate+" --order "+order+" --reopen") {
			t.Fatalf("rejected and paid since: exit %d, want 4 naming the command:\n%s", code, out)
		}
		ms := e.mismatches(testDate)
		if len(ms) != 1 || ms[0].OrderNo != order || ms[0].Expected || ms[0].Category != pipeline.MismatchStatus || ms[0].TheirsState != "paid" ||
			ms[0].Ours+" "+ms[0].Currency != gross {
			t.Fatalf("rejected and paid since: mismatches %+v, want one unexpected status row of %s (%s)", ms, order, gross)
		}
		if state, _ := e.itemOf(order); state != pipeline.ItemRejected {
			t.Fatalf("%s is %s: paid by itself after a person rejected it", order, state)
		}
		e.checkPaidOnce(sim, balance)
	}

	out, code := resolve("--reopen")
	if code != 0 || !strings.Contains(out, "is held again") {
		t.Fatalf("resolve --reopen: exit %d:\n%s", code, out)
	}
	if state, reason := e.itemOf(order); state != pipeline.ItemHeld || !strings.HasPrefix(reason, payprotocol.HeldReopened) || !strings.Contains(reason, "PP-78") {
		t.Fatalf("reopened: %s is %s %q", order, state, reason)
	}
	if out, code := resolve("--reopen"); code != 0 || !strings.Contains(out, "was reopened before") {
		t.Errorf("resolve --reopen again: exit %d:\n%s", code, out)
	}
	if out, code := e.runInfinia(sim); code != 0 {
		t.Fatalf("reopened: exit %d, want 0:\n%s", code, out)
	}
	if state, reason := e.itemOf(order); state != pipeline.ItemPaid && state != "carried" {
		t.Fatalf("reopened and run: %s is %s %q, want paid", order, state, reason)
	}
	e.checkPaidOnce(sim, balance)
	sends := e.count(`SELECT count(*) FROM settle.effects`)
	if out, code := e.runInfinia(sim); code != 0 {
		t.Fatalf("the date again: exit %d, want 0:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects`); n != sends {
		t.Errorf("the date again recorded %d side effects more", n-sends)
	}
	if status := e.mustSettle("status", "--date", testDate); !strings.Contains(status, "reopened_rejected "+txn+" ("+order+")") {
		t.Errorf("settle status does not list the reopening:\n%s", status)
	}
	e.checkPaidOnce(sim, balance)
}

// TestRejectedWatchDaysFlag: --rejected-watch-days (default 90) is a
// nightly run's alone (no --date, --from: a backfill's dates would each
// ask the same orders again), 0 turns the watch off, and a negative value
// is refused, exit 2.
func TestRejectedWatchDaysFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want int
		err  bool
	}{
		{nil, defaultWatchDays, false},
		{[]string{"--rejected-watch-days", "30"}, 30, false},
		{[]string{"--rejected-watch-days", "0"}, 0, false},
		{[]string{"--date", testDate}, 0, false},
		{[]string{"--from", testDate, "--to", testDate}, 0, false},
		{[]string{"--rejected-watch-days", "-1"}, 0, true},
		{[]string{"--rejected-watch-days", "-1", "--date", testDate}, 0, true},
	} {
		var got int
		var err error
		app := &cli.App{Flags: []cli.Flag{&cli.IntFlag{Name: flagWatchDays, Value: defaultWatchDays}, &cli.StringFlag{Name: flagDate},
			&cli.StringFlag{Name: "from"}, &cli.StringFlag{Name: "to"}},
			Action: func(c *cli.Context) error { got, err = watchDaysFlag(c); return nil }}
		if rerr := app.Run(append([]string{"settle"}, c.args...)); rerr != nil {
			t.Fatal(rerr)
		}
		if c.err != (pipeline.KindOf(err) == pipeline.KindUsage) || got != c.want {
			t.Errorf("%q: %d, %v; want %d (refused: %v)", c.args, got, err, c.want, c.err)
		}
	}
	e := newEnv(t)
	if out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--rejected-watch-days", "-2"); code != 2 || !strings.Contains(out, "--rejected-watch-days") {
		t.Errorf("a negative --rejected-watch-days: exit %d, want 2 naming it:\n%s", code, out)
	}
}
