package main

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
	settlesql "github.com/settlekit/settle/sql"
)

// ppRun settles a seeded day against the simulator with Pay Protocol
// configured (settle run with extra flags) and returns the simulator, the
// ledger, the run and the reconciliation of its Pay Protocol orders
// asking every order (--reconcile-all).
func (e *env) ppRun(orders int, extra ...string) (*paysim.Sim, *ledger.Ledger, *pipeline.Run, pipeline.Matcher) {
	e.t.Helper()
	e.mustSettle("seed", "--date", testDate, "--orders", fmt.Sprint(orders), "--sellers", "6", "--seed", "8")
	sim := e.sim(nil, 6, nil, 1_000_000_000_00)
	withPayProtocol(sim)
	sh, _ := time.LoadLocation("Asia/Shanghai")
	d, _ := pipeline.ParseDate(testDate)
	if _, err := sim.SeedPayProtocol(context.Background(), sqlx.NewDb(e.db.DB, "postgres"), settlesql.SourceQuery, pipeline.WindowOf(d, sh)); err != nil {
		e.t.Fatal(err)
	}
	// Some of the seeded payments are pending or refunded under review:
	// held, which the run says needs a run of the date again (exit 4).
	if out, code := e.runInfinia(sim, extra...); code != 0 && (code != 4 || !strings.Contains(out, "Pay Protocol payments held")) {
		e.t.Fatalf("exit %d:\n%s", code, out)
	}
	ctx := context.Background()
	l, err := ledger.Open(ctx, e.url, "")
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { l.Close() })
	run, err := l.GetRun(ctx, pipeline.RunKey{Date: d, Shard: pipeline.Whole})
	if err != nil || run == nil {
		e.t.Fatalf("run: %v, %v", run, err)
	}
	if n := len((&runOptions{}).providers(l, nil, nil, nil, nil)); n != 0 {
		e.t.Fatalf("%d providers without Pay Protocol", n)
	}
	return sim, l, run, e.ppMatcher(sim, l, pipeline.AskAll{Store: l})
}

// ppMatcher is the Pay Protocol matcher as settle run builds it from its
// flags, keeping its final answers in final.
func (e *env) ppMatcher(sim *paysim.Sim, l *ledger.Ledger, final pipeline.FinalAnswers) pipeline.Matcher {
	e.t.Helper()
	pp, err := newPayProtocol(sim.Config.PayProtocolURL, sim.Config.PayProtocolAPIKey, sim.Config.PayProtocolSecretFile, paysim.PayProtocolDecimals, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	pp.parallel = 4
	ms := pp.provider(l, final, nil, 0).Matchers
	if len(ms) != 1 {
		e.t.Fatalf("%d matchers for a configured Pay Protocol, want 1", len(ms))
	}
	return ms[0]
}

// unexpected returns the findings that need a person.
func unexpected(ms []pipeline.Mismatch) []pipeline.Mismatch {
	var out []pipeline.Mismatch
	for _, m := range ms {
		if !m.Expected {
			out = append(out, m)
		}
	}
	return out
}

func TestPayProtocolReconcileCleanDayThenTampered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim, _, run, match := e.ppRun(400)
	ctx := context.Background()

	// Clean: only timing gaps, for held items (payments still pending,
	// refunds still under review).
	first, err := match(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if u := unexpected(first); len(u) != 0 {
		t.Fatalf("clean day: %d unexpected mismatches, e.g. %+v", len(u), u[0])
	}
	timing := map[string]int{}
	for _, m := range first {
		if m.Category != pipeline.MismatchTiming || m.Provider != payprotocol.Name || m.OursState != "held" {
			t.Errorf("clean day: %+v", m)
		}
		timing[m.TheirsState]++
	}
	// (The run's own reconcile stage queried first, so the fake's refunds
	// may have moved past review already.)
	if timing["pending"]+timing["block confirmation"]+timing["partially paid"] == 0 {
		t.Fatalf("clean day: timing rows by Pay Protocol state %v, want payments in progress", timing)
	}
	// The refunds have succeeded since (the fake's approvals move on with
	// queries): they agree with ours, and the findings are stable.
	second, err := match(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	third, err := match(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(second, third) || len(unexpected(second)) != 0 {
		t.Fatalf("re-match differs or is not clean:\n%+v\n%+v", second, third)
	}
	for _, m := range second {
		if m.TheirsState == "refund under review" || m.TheirsState == "refund pending approval" {
			t.Fatalf("refund still in progress after approval: %+v", m)
		}
	}

	// Tamper with paid orders that have no refund.
	type order struct {
		No  string `db:"order_no"`
		Txn string `db:"provider_txn_id"`
		Cur string `db:"currency"`
		Run int64  `db:"run_id"`
	}
	var paid []order
	if err := e.db.Select(&paid, `SELECT order_no, provider_txn_id, currency, run_id FROM settle.items
		WHERE channel = 'payprotocol' AND state = 'paid' AND refunded_minor = 0 ORDER BY order_no`); err != nil {
		t.Fatal(err)
	}
	if len(paid) < 8 {
		t.Fatalf("%d paid Pay Protocol orders without refunds, want 8", len(paid))
	}
	scaled := func(o order, minor int64) string {
		s, err := payprotocol.FromMinor(minor, 6, pipeline.Currency(o.Cur))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	pp := sim.PayProtocol
	p, _ := pp.Payment(paid[0].Txn)
	must(pp.SetQuote(paid[0].Txn, p.QuoteCurrency, p.QuoteAmount+"1", true)) // "12.34" -> "12.341": not exact
	p, _ = pp.Payment(paid[1].Txn)
	q, _ := pipeline.ParseMinor(p.QuoteAmount, pipeline.Currency(paid[1].Cur))
	qs, _ := payprotocol.FormatDecimal(q+1, pipeline.Currency(paid[1].Cur))
	must(pp.SetQuote(paid[1].Txn, p.QuoteCurrency, qs, true))
	must(pp.SetPaymentStatus(paid[2].Txn, payprotocol.PaymentFailed))
	_, err = pp.AddRefund(paid[3].Txn, scaled(paid[3], 1), payprotocol.RefundSuccess) // never reported by the platform
	must(err)
	must(pp.RemovePayment(paid[4].Txn))
	must(pp.SetPaymentStatus(paid[5].Txn, payprotocol.PaymentRefunded))
	_, err = pp.AddRefund(paid[6].Txn, scaled(paid[6], 1), payprotocol.RefundPendingApproval)
	must(err)
	// A late refund the platform recorded and Pay Protocol made: agrees;
	// a rejected late refund is not counted.
	_, err = pp.AddRefund(paid[7].Txn, scaled(paid[7], 1), payprotocol.RefundSuccess)
	must(err)
	e.addLateRefund(paid[7].Run, "LR-1", paid[7].No, 1, "pending")
	e.addLateRefund(paid[7].Run, "LR-2", paid[7].No, 7, "rejected")
	// And one Pay Protocol does not know.
	e.addLateRefund(paid[0].Run, "LR-3", paid[0].No, 1, "clawed")

	got, err := match(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		subject, category string
		expected          bool
	}
	var keys []key
	for _, m := range got {
		if m.OursState == "held" && m.Category == pipeline.MismatchTiming {
			continue // as before
		}
		keys = append(keys, key{m.Subject, m.Category, m.Expected})
	}
	want := []key{
		{paid[0].Txn, pipeline.MismatchAmount, false}, // the quote cannot be read
		{paid[0].Txn, pipeline.MismatchAmount, false}, // refunds: the late refund
		{paid[1].Txn, pipeline.MismatchAmount, false},
		{paid[2].Txn, pipeline.MismatchStatus, false},
		{paid[3].Txn, pipeline.MismatchAmount, false},
		{paid[4].Txn, pipeline.MismatchMissingAtProvider, false},
		{paid[5].Txn, pipeline.MismatchStatus, false},
		{paid[6].Txn, pipeline.MismatchTiming, true},
	}
	sort.SliceStable(want, func(i, j int) bool { return want[i].subject < want[j].subject })
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("after tampering:\ngot  %v\nwant %v\n%+v", keys, want, got)
	}
	for _, m := range got {
		if m.Subject == paid[1].Txn && (m.Ours == m.Theirs || m.Ours == "" || m.Theirs == "") {
			t.Errorf("amount row without both sides: %+v", m)
		}
		if m.Subject == paid[3].Txn && (m.Ours != "0" || m.Theirs != "1" || m.TheirsState != "refund success") {
			t.Errorf("refund unknown to the platform: %+v", m)
		}
		if m.Subject == paid[5].Txn && (m.OursState != "paid" || m.TheirsState != "refunded") {
			t.Errorf("refunded payment: %+v", m)
		}
	}
}

// addLateRefund records a late refund of order, whichever version of the
// late_refunds table (with or without seller_id) is migrated.
func (e *env) addLateRefund(runID int64, refundNo, orderNo string, amount int64, state string) {
	e.t.Helper()
	e.db.MustExec(`INSERT INTO settle.late_refunds (refund_no, order_no, amount_minor, created_at, run_id, business_date, state, seller_id)
		VALUES ($1, $2, $3, '2026-11-24 12:00+08', $4, '2026-11-24', $5, (SELECT seller_id FROM settle.items WHERE order_no = $2))`,
		refundNo, orderNo, amount, runID, state)
}

// TestPayProtocolVerificationAnswersKept: the verification asks each
// payment once and the latest refund only of the orders with a refund we
// net; the run's reconciliation then asks the held orders in full and, of
// those whose payment the verification found in agreement, the latest
// refund alone (Pay Protocol shows none of them a refund). A default
// reconciliation trusts the answers kept until the ledger changes (a late
// refund), and --reconcile-all asks them all, finding what changed at Pay
// Protocol since.
func TestPayProtocolVerificationAnswersKept(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// The run up to its upload stage (the verification), then its
	// reconciliation as settle run makes it.
	sim, l, run, askAll := e.ppRun(300, "--until", "upload")
	ctx := context.Background()
	pp := sim.PayProtocol
	type item struct {
		Txn      string `db:"provider_txn_id"`
		State    string `db:"state"`
		Refunded int64  `db:"refunded_minor"`
	}
	var all []item
	if err := e.db.Select(&all, `SELECT provider_txn_id, state, refunded_minor FROM settle.items WHERE channel = 'payprotocol'`); err != nil {
		t.Fatal(err)
	}
	// Paid at Pay Protocol when verified: paid, or refunded since by a
	// refund of ours (a refund the verification asked about moves on).
	refunded := map[string]bool{}
	for _, r := range pp.Refunds() {
		refunded[r.OutTradeNo] = true
	}
	paidAtPP := func(txn string) bool {
		p, ok := pp.Payment(txn)
		return ok && (p.Status == payprotocol.PaymentPaid || p.Status == payprotocol.PaymentRefunded && refunded[txn])
	}
	var netted, on, held, heldPaid, reconciled int
	for _, it := range all {
		if it.Refunded > 0 && paidAtPP(it.Txn) {
			netted++
		}
		switch it.State {
		case pipeline.ItemRecorded, pipeline.ItemUploaded, pipeline.ItemPaid:
			on++
		case pipeline.ItemHeld:
			held++
			if paidAtPP(it.Txn) {
				heldPaid++
			}
		}
	}
	reconciled = on + held
	if held == 0 || on == 0 || netted == 0 {
		t.Fatalf("%d Pay Protocol items went on, %d held, %d with a refund netted: want some of each", on, held, netted)
	}
	calls := func() [2]int {
		return [2]int{pp.Calls(payprotocol.APIPaymentDetail), pp.Calls(payprotocol.APIRefundDetail)}
	}
	// (The pre-flight asks about one order of its own.)
	if c := calls(); c[0] != 1+len(all) || c[1] != netted {
		t.Fatalf("the verification asked %d payment and %d refund details, want %d (the pre-flight's and each of the %d payments once) and %d (the refunds netted)",
			c[0], c[1], 1+len(all), len(all), netted)
	}
	byDefault := e.ppMatcher(sim, l, l)
	before := calls()
	ms, err := byDefault(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if u := unexpected(ms); len(u) != 0 {
		t.Fatalf("the run's reconciliation found %+v", u)
	}
	if c := calls(); c[0]-before[0] != held || c[1]-before[1] != on+heldPaid {
		t.Fatalf("the run's reconciliation asked %d payment and %d refund details, want %d (the held) and %d (the %d that went on, their refund alone, and the %d held paid)",
			c[0]-before[0], c[1]-before[1], held, on+heldPaid, on, heldPaid)
	}

	// Tampered at Pay Protocol since: two orders that went on failed; the
	// ledger changed for one (a late refund).
	type order struct {
		No  string `db:"order_no"`
		Txn string `db:"provider_txn_id"`
		Run int64  `db:"run_id"`
	}
	var paid []order
	if err := e.db.Select(&paid, `SELECT order_no, provider_txn_id, run_id FROM settle.items
		WHERE channel = 'payprotocol' AND state IN ('recorded', 'uploaded', 'paid') AND refunded_minor = 0 ORDER BY order_no LIMIT 2`); err != nil {
		t.Fatal(err)
	}
	if len(paid) != 2 {
		t.Fatalf("%d Pay Protocol orders without refunds went on, want 2", len(paid))
	}
	for _, o := range paid {
		if err := pp.SetPaymentStatus(o.Txn, payprotocol.PaymentFailed); err != nil {
			t.Fatal(err)
		}
	}
	e.addLateRefund(paid[1].Run, "LR-1", paid[1].No, 1, "pending")
	found := func(m pipeline.Matcher) (subjects []string, payments int) {
		t.Helper()
		before := pp.Calls(payprotocol.APIPaymentDetail)
		ms, err := m(ctx, run)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range unexpected(ms) {
			subjects = append(subjects, m.Subject)
		}
		return subjects, pp.Calls(payprotocol.APIPaymentDetail) - before
	}
	if got, n := found(byDefault); !reflect.DeepEqual(got, []string{paid[1].Txn}) || n != held+1 {
		t.Fatalf("default reconciliation: unexpected findings about %v, %d payments asked; want %s alone (its ledger changed), %d asked",
			got, n, paid[1].Txn, held+1)
	}
	want := []string{paid[0].Txn, paid[1].Txn}
	sort.Strings(want)
	if got, n := found(askAll); !reflect.DeepEqual(got, want) || n != reconciled {
		t.Fatalf("--reconcile-all: unexpected findings about %v, %d payments asked; want %v, %d asked", got, n, want, reconciled)
	}
	// What --reconcile-all found is asked again by the default ones.
	// (How many it asks depends on the fake's refunds, which move on with
	// the queries: a held order whose payment is refunded whole since
	// agrees, and is final.)
	if got, _ := found(byDefault); !reflect.DeepEqual(got, want) {
		t.Fatalf("default reconciliation after --reconcile-all: unexpected findings about %v, want %v", got, want)
	}
}
