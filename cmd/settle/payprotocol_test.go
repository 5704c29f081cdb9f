package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
	settlesql "github.com/settlekit/settle/sql"
)

// payProtocolSim starts the simulator with Pay Protocol (faults, sellers
// and the platform balance as e.sim takes them) and gives Pay Protocol the
// payments of the seeded day's orders.
func (e *env) payProtocolSim(faults *fault.Injector, sellers int, balance int64) *paysim.Sim {
	e.t.Helper()
	sim := e.sim(faults, sellers, nil, balance)
	withPayProtocol(sim)
	sh, _ := time.LoadLocation("Asia/Shanghai")
	d, _ := pipeline.ParseDate(testDate)
	if _, err := sim.SeedPayProtocol(context.Background(), sqlx.NewDb(e.db.DB, "postgres"), settlesql.SourceQuery, pipeline.WindowOf(d, sh)); err != nil {
		e.t.Fatal(err)
	}
	return sim
}

func TestPayProtocolOnlyVerifiedPaymentsSettle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "600", "--sellers", "10", "--seed", "8")
	const balance = 1_000_000_000_00
	sim := e.payProtocolSim(nil, 10, balance)
	// One paid order whose amount at Pay Protocol disagrees with ours.
	var mismatch string
	if err := e.db.Get(&mismatch, `SELECT provider_txn_id FROM orders WHERE provider = 'payprotocol' AND provider_txn_id IS NOT NULL
		AND confirmed_at >= '2026-11-23 00:00+08' AND confirmed_at < '2026-11-24 00:00+08'
		AND order_no NOT IN (SELECT order_no FROM refunds) ORDER BY order_no`); err != nil {
		t.Fatal(err)
	}
	if p, _ := sim.PayProtocol.Payment(mismatch); p.Status == payprotocol.PaymentPaid {
		sim.PayProtocol.SetQuote(mismatch, "USD", "0.01", true)
	} else {
		mismatch = ""
	}
	// One paid order whose answer no client may read (an amount in
	// exponent notation): it is held with the reason, everyone else goes on.
	var poisoned string
	if err := e.db.Get(&poisoned, `SELECT provider_txn_id FROM orders WHERE provider = 'payprotocol' AND provider_txn_id IS NOT NULL
		AND confirmed_at >= '2026-11-23 00:00+08' AND confirmed_at < '2026-11-24 00:00+08'
		AND order_no NOT IN (SELECT order_no FROM refunds) AND provider_txn_id <> $1 ORDER BY order_no DESC LIMIT 1`, mismatch); err != nil {
		t.Fatal(err)
	}
	if err := sim.PayProtocol.PoisonPayment(poisoned, "settlementAmount", "1e6"); err != nil {
		t.Fatal(err)
	}
	// One paid order whose quote Pay Protocol writes with more decimals
	// than the currency has ("12.340000" for 12.34): the same number, paid.
	var padded string
	if err := e.db.Get(&padded, `SELECT provider_txn_id FROM orders WHERE provider = 'payprotocol' AND provider_txn_id IS NOT NULL
		AND confirmed_at >= '2026-11-23 00:00+08' AND confirmed_at < '2026-11-24 00:00+08'
		AND order_no NOT IN (SELECT order_no FROM refunds) AND provider_txn_id NOT IN ($1, $2) ORDER BY order_no DESC OFFSET 1 LIMIT 1`,
		mismatch, poisoned); err != nil {
		t.Fatal(err)
	}
	if p, _ := sim.PayProtocol.Payment(padded); p.Status == payprotocol.PaymentPaid {
		q := p.QuoteAmount + ".000"
		if strings.Contains(p.QuoteAmount, ".") {
			q = p.QuoteAmount + "0000"
		}
		if err := sim.PayProtocol.SetQuote(padded, p.QuoteCurrency, q, true); err != nil {
			t.Fatal(err)
		}
	} else {
		padded = ""
	}
	// Until distribute: the reconcile stage queries Pay Protocol again (by
	// design), and the fake's refunds move on with queries, which would
	// blur what the verification saw.
	out, code := e.runInfinia(sim, "--payprotocol-url", sim.Config.PayProtocolURL, "--payprotocol-api-key", sim.Config.PayProtocolAPIKey,
		"--payprotocol-secret-file", sim.Config.PayProtocolSecretFile, "--until", "distribute")
	// The held payments are verified again only by a run of this date:
	// the run says so, and ends needing a person.
	if code != 4 || !strings.Contains(out, "Pay Protocol payments held") || !strings.Contains(out, "only a run of this date verifies them again") {
		t.Fatalf("exit %d, want 4 naming the held payments:\n%s", code, out)
	}
	type item struct {
		Txn      string `db:"provider_txn_id"`
		State    string `db:"state"`
		Reason   string `db:"reason"`
		Refunded int64  `db:"refunded_minor"`
	}
	var items []item
	if err := e.db.Select(&items, `SELECT provider_txn_id, state, reason, refunded_minor FROM settle.items WHERE channel = 'payprotocol'`); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, it := range items {
		p, ok := sim.PayProtocol.Payment(it.Txn)
		if !ok {
			t.Fatalf("%s: no payment at the fake", it.Txn)
		}
		seen[it.State]++
		paid := it.State == "paid" || it.State == "uploaded"
		switch {
		case it.Txn == poisoned:
			if it.State != "held" || !strings.Contains(it.Reason, "could not be used") || !strings.Contains(it.Reason, "settlementAmount") {
				t.Errorf("poisoned answer %s: %s %q", it.Txn, it.State, it.Reason)
			}
		case it.Txn == padded:
			if !paid {
				t.Errorf("quote written with trailing zeros %s: %s %q", it.Txn, it.State, it.Reason)
			}
		case it.Txn == mismatch:
			if it.State != "rejected" || !strings.Contains(it.Reason, "0.01 USD was paid") {
				t.Errorf("amount mismatch %s: %s %q", it.Txn, it.State, it.Reason)
			}
		case p.Status != payprotocol.PaymentPaid:
			if paid {
				t.Errorf("%s settled with its payment %s", it.Txn, p.Status)
			}
			if !strings.Contains(it.Reason, p.Status.String()) {
				t.Errorf("%s: reason %q does not say %s", it.Txn, it.Reason, p.Status)
			}
		case it.Refunded > 0:
			if paid || !strings.Contains(it.Reason, "refund is pending approval") {
				t.Errorf("%s: refund awaiting approval, yet %s %q", it.Txn, it.State, it.Reason)
			}
		default:
			if !paid {
				t.Errorf("%s: paid at Pay Protocol, yet %s %q", it.Txn, it.State, it.Reason)
			}
		}
	}
	if seen["paid"] == 0 || seen["held"] == 0 || seen["rejected"] == 0 {
		t.Fatalf("states %v: want paid, held and rejected Pay Protocol orders", seen)
	}
	e.mustSettle("report", "--date", testDate, "--out", e.reports)
	report, _ := os.ReadFile(filepath.Join(e.reports, testDate, "orders.csv"))
	if !strings.Contains(string(report), "Pay Protocol payment is failed") {
		t.Fatal("orders.csv does not say why a failed payment was not settled")
	}
	if !strings.Contains(string(report), "answer about "+poisoned+" could not be used") {
		t.Fatal("orders.csv does not say why the poisoned payment waits")
	}
	// The day's Infinia orders, which need no Pay Protocol answer, were
	// all uploaded and paid.
	if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'infiniapay' AND state NOT IN ('paid', 'rejected', 'carried')`); n != 0 {
		t.Errorf("%d Infinia items not paid beside one unreadable Pay Protocol answer", n)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'infiniapay' AND state = 'paid'`); n == 0 {
		t.Error("no Infinia item paid")
	}
	e.checkPaidOnce(sim, balance)
	// A re-run's verification asks Pay Protocol nothing more about orders
	// already judged, only about those it held (reconcile, after it, does
	// ask about every order).
	var held []string
	if err := e.db.Select(&held, `SELECT provider_txn_id FROM settle.items WHERE channel = 'payprotocol' AND state = 'held'
		AND reason LIKE 'held: Pay Protocol payment is%' ORDER BY order_no`); err != nil || len(held) == 0 {
		t.Fatalf("held for their payment: %v %v", held, err)
	}
	before := sim.PayProtocol.Calls(payprotocol.APIPaymentDetail)
	e.runInfinia(sim, "--payprotocol-url", sim.Config.PayProtocolURL, "--payprotocol-api-key", sim.Config.PayProtocolAPIKey,
		"--payprotocol-secret-file", sim.Config.PayProtocolSecretFile, "--until", "distribute")
	heldForRefunds := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'payprotocol' AND reason LIKE 'held: Pay Protocol refund%'`)
	if after := sim.PayProtocol.Calls(payprotocol.APIPaymentDetail); after-before > int(len(held))+int(heldForRefunds)+len(held) {
		t.Fatalf("the re-run queried %d payments, %d were held", after-before, len(held))
	}

	// Pay Protocol's answer about the poisoned order is readable again:
	// a later run verifies it like any other.
	sim.PayProtocol.ClearPoison(poisoned)

	// One held payment completes at Pay Protocol: the next run verifies
	// it, sends it in a further trade file of the date, and - the date's
	// revenue share to its seller being paid already - carries its share
	// to the seller's next one. Nothing is paid twice.
	var txn string
	if err := e.db.Get(&txn, `SELECT provider_txn_id FROM settle.items WHERE channel = 'payprotocol' AND state = 'held'
		AND reason LIKE 'held: Pay Protocol payment is%' AND refunded_minor = 0 ORDER BY order_no LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	if err := sim.PayProtocol.SetPaymentStatus(txn, payprotocol.PaymentPaid); err != nil {
		t.Fatal(err)
	}
	// The others are still held: the run says so (exit 4).
	if out, code := e.runInfinia(sim, "--payprotocol-url", sim.Config.PayProtocolURL, "--payprotocol-api-key", sim.Config.PayProtocolAPIKey,
		"--payprotocol-secret-file", sim.Config.PayProtocolSecretFile); code != 4 || !strings.Contains(out, "Pay Protocol payments held") {
		t.Fatalf("exit %d, want 4 for the payments still held:\n%s", code, out)
	}
	var got struct {
		State    string `db:"state"`
		Reason   string `db:"reason"`
		Attempts int    `db:"attempts"`
		Status   string `db:"status"`
	}
	if err := e.db.Get(&got, `SELECT i.state, i.reason, f.attempt AS attempts, f.status FROM settle.items i
		JOIN settle.trade_files f ON f.request_no = i.provider_ref WHERE i.provider_txn_id = $1`, txn); err != nil {
		var st, rs, ref string
		e.db.QueryRow(`SELECT state, reason, provider_ref FROM settle.items WHERE provider_txn_id = $1`, txn).Scan(&st, &rs, &ref)
		t.Fatalf("%s: %s %q %q: %v", txn, st, rs, ref, err)
	}
	paidBefore := e.count(`SELECT count(*) FROM settle.effects WHERE kind = 'revenue_share' AND state = 'succeeded'
		AND subject LIKE '%/' || (SELECT seller_id FROM settle.items WHERE provider_txn_id = $1) || '/%'`, txn)
	if got.Attempts < 2 || got.Status != "SUCCESS" || (paidBefore > 0 && (got.State != "carried" || !strings.Contains(got.Reason, "after revenue share"))) ||
		(paidBefore == 0 && got.State != "paid") {
		t.Errorf("late-confirmed payment %s: %+v (revenue shares paid to its seller before: %d)", txn, got, paidBefore)
	}
	t.Logf("late-confirmed payment %s: %+v", txn, got)
	// The order held for its unreadable answer was asked about again and
	// verified once the answer could be read.
	var st string
	if err := e.db.Get(&st, `SELECT state FROM settle.items WHERE provider_txn_id = $1`, poisoned); err != nil || st == "held" || st == "unverified" || st == "rejected" {
		t.Errorf("once readable, the poisoned payment %s is %q (%v)", poisoned, st, err)
	}
	e.checkPaidOnce(sim, balance)
}

// Pay Protocol down for a whole run (every payment query answered 503,
// past the client's retries), or its refund list failing alone while its
// payment and refund details answer: its orders wait unverified for the
// next run, and every other order goes on - the trade files of Infinia's
// orders are uploaded and their sellers paid - with the run ending 1,
// saying why. Before, the upload stage stopped at Pay Protocol and no
// seller of the date was paid. Its currency list failing alone holds
// back only the payments whose refunds need it (the others are
// verified). Once Pay Protocol answers, the next run verifies its
// payments and nothing is paid twice.
func TestAPayProtocolOutageHoldsBackOnlyItsOrders(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, endpoint, says string
		refundsOnly          bool // only the payments with refunds wait
	}{
		{"down", payprotocol.APIPaymentDetail, "Pay Protocol did not answer", false},
		{"its refund list failing", payprotocol.APIRefundList, "Pay Protocol's refund list could not be read", false},
		{"its currency list failing", payprotocol.APICurrencyList, "Pay Protocol's currency list could not be read", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.mustSettle("seed", "--date", testDate, "--orders", "300", "--sellers", "6", "--seed", "10")
			const balance = 1_000_000_000_00
			down := fault.New(1, fault.Rule{Endpoint: tc.endpoint, Kind: fault.Unavailable, Prob: 1})
			sim := e.payProtocolSim(down, 6, balance)
			pp := []string{"--payprotocol-url", sim.Config.PayProtocolURL, "--payprotocol-api-key", sim.Config.PayProtocolAPIKey,
				"--payprotocol-secret-file", sim.Config.PayProtocolSecretFile}
			out, code := e.runInfinia(sim, pp...)
			if code != 1 || !strings.Contains(out, tc.says) {
				t.Fatalf("exit %d, want 1 saying %q\n%s", code, tc.says, out)
			}
			switch moved := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'payprotocol' AND state <> 'unverified'`); {
			case !tc.refundsOnly && moved != 0:
				t.Fatalf("%d Pay Protocol items moved on while Pay Protocol could not verify them", moved)
			case tc.refundsOnly && (moved == 0 || e.count(`SELECT count(*) FROM settle.items WHERE channel = 'payprotocol' AND state = 'unverified'`) == 0):
				t.Fatalf("%d Pay Protocol items moved on: want those without refunds verified, those with refunds left unverified", moved)
			case tc.refundsOnly && e.count(`SELECT count(*) FROM settle.items WHERE channel = 'payprotocol' AND state = 'unverified' AND refunded_minor = 0`) != 0:
				t.Fatal("a Pay Protocol payment that nets no refund was left unverified")
			}
			if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'infiniapay' AND state = 'paid'`); n == 0 {
				t.Fatal("no Infinia order was paid meanwhile")
			}
			e.checkPaidOnce(sim, balance)

			down.Clear()
			if out, code := e.runInfinia(sim, pp...); code != 0 && code != 4 {
				t.Fatalf("Pay Protocol back: exit %d\n%s", code, out)
			}
			if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'payprotocol' AND state = 'unverified'`); n != 0 {
				t.Fatalf("%d Pay Protocol items still unverified once it answered", n)
			}
			e.checkPaidOnce(sim, balance)
		})
	}
}

func TestPayProtocolOrdersAreNeverPaidUnverified(t *testing.T) {
	t.Parallel()
	e := newBareEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "200", "--sellers", "5", "--seed", "9")
	const balance = 1_000_000_000_00
	sim := e.payProtocolSim(nil, 5, balance) // its payments seeded, for the run that configures it
	sim.Config.PayProtocolURL = ""           // Infinia configured, Pay Protocol not
	// A channel whose provider is configured cannot be skipped: it would be
	// paid all the same. Refused before anything is read or sent.
	if out, code := e.settle(append(e.infiniaArgs(sim), "--skip-channel", "wechatpay,infiniapay")...); code != 2 ||
		!strings.Contains(out, "channel infiniapay has its provider configured") {
		t.Fatalf("--skip-channel of a configured channel: exit %d, want 2:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM pg_namespace WHERE nspname = 'settle'`); n != 0 {
		t.Fatal("a refused --skip-channel reached the ledger")
	}
	// Its orders are work left undone: exit 4 naming the channel and count.
	if out, code := e.settle(append(e.infiniaArgs(sim), "--skip-channel", "wechatpay")...); code != 4 || !strings.Contains(out, "channel payprotocol: ") || !strings.Contains(out, "no provider configured") {
		t.Fatalf("exit %d, want 4 naming the payprotocol channel:\n%s", code, out)
	}
	// Left unpaid on purpose: exit 0.
	metrics := filepath.Join(t.TempDir(), "settle.prom")
	if out, code := e.runInfinia(sim, "--metrics-file", metrics); code != 0 {
		t.Fatalf("--skip-channel payprotocol: exit %d:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'payprotocol' AND state <> 'unverified'`); n != 0 {
		t.Fatalf("%d Pay Protocol items moved on without verification", n)
	}
	pp := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'payprotocol'`)
	if pp == 0 {
		t.Fatal("no Pay Protocol items to check")
	}
	// Shown as left out on purpose, not as being paid: in summary.csv,
	// settle status and the metrics. Then a run with Pay Protocol
	// configured pays them, and nothing says they are left out.
	e.checkLeftOut(metrics, map[string]int64{"payprotocol": pp, "wechatpay": -1})
	withPayProtocol(sim)
	if out, code := e.runInfinia(sim, "--metrics-file", metrics); code != 0 && code != 4 {
		t.Fatalf("Pay Protocol configured: exit %d\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'payprotocol' AND state IN ('recorded', 'unverified')`); n != 0 {
		t.Fatalf("%d Pay Protocol items still waiting once it is configured", n)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'payprotocol' AND state IN ('paid', 'carried')`); n == 0 {
		var states string
		e.db.Get(&states, `SELECT string_agg(state || ' ' || reason, '; ') FROM settle.items WHERE channel = 'payprotocol'`)
		t.Fatalf("no Pay Protocol item was settled once it is configured: %s", states)
	}
	e.checkLeftOut(metrics, map[string]int64{"payprotocol": 0, "wechatpay": -1})
	e.checkPaidOnce(sim, balance)
}

// checkLeftOut checks that the date's summary.csv, settle status (text and
// JSON) and the run's metrics file show the orders of each channel of want
// left out on purpose (--skip-channel): want[ch] of them (-1: some), or, for
// 0, none, and nothing saying so. Every other channel has none.
func (e *env) checkLeftOut(metrics string, want map[string]int64) {
	e.t.Helper()
	got := map[string]int64{}
	for _, l := range e.checkReportsBalance(testDate, "left out") {
		got[l.Channel] += l.SkippedOrders
		if n := want[l.Channel]; n != 0 && l.Skipped != l.Unverified+l.InProgress {
			// Every order of the channel waits: all of it left out.
			e.t.Errorf("summary.csv %s %s: %d left out on purpose, want its unverified and in progress %d", l.Channel, l.Currency,
				l.Skipped, l.Unverified+l.InProgress)
		}
		if want[l.Channel] == 0 && (l.Skipped != 0 || l.SkippedOrders != 0) {
			e.t.Errorf("summary.csv %s %s: %d orders (%d) left out on purpose, want none", l.Channel, l.Currency, l.SkippedOrders, l.Skipped)
		}
	}
	text := e.mustSettle("status", "--date", testDate)
	var doc struct {
		Runs []struct {
			Skipped []ledger.Skipped `json:"skipped"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(e.mustSettle("status", "--date", testDate, "-o", "json")), &doc); err != nil || len(doc.Runs) != 1 {
		e.t.Fatalf("status -o json: %v, %d runs", err, len(doc.Runs))
	}
	inStatus := map[string]int64{}
	for _, s := range doc.Runs[0].Skipped {
		inStatus[s.Channel] += s.Orders
	}
	prom := string(readFile(e.t, metrics))
	for ch, n := range want {
		if n < 0 {
			n = got[ch]
			if n == 0 {
				e.t.Errorf("summary.csv: no order of %s left out on purpose", ch)
			}
		}
		if got[ch] != n || inStatus[ch] != n {
			e.t.Errorf("%s: %d orders left out on purpose in summary.csv, %d in status -o json, want %d", ch, got[ch], inStatus[ch], n)
		}
		said := fmt.Sprintf("channel %s left out on purpose (%d orders", ch, n)
		if n == 0 {
			said = fmt.Sprintf("channel %s left out", ch)
		}
		if strings.Contains(text, said) != (n > 0) {
			e.t.Errorf("settle status, %d orders of %s left out: saying %q is %v:\n%s", n, ch, said, n > 0, text)
		}
		if line := fmt.Sprintf("settle_skipped_orders{channel=%q} %d\n", ch, n); !strings.Contains(prom, line) {
			e.t.Errorf("metrics lack %q:\n%s", line, prom)
		}
	}
	for ch, n := range got {
		if _, ok := want[ch]; !ok && n != 0 {
			e.t.Errorf("summary.csv: %d orders of %s left out on purpose, want none", n, ch)
		}
	}
}

// ppFake starts a fake Pay Protocol (refunds approved at once) and writes
// secret, which may be wrong, to a file as --payprotocol-secret-file.
func ppFake(t *testing.T, secret string) (*payprotocoltest.Server, string, string) {
	t.Helper()
	fake := payprotocoltest.New(payprotocoltest.Options{APIKey: "PPKEY", APISecret: "the-secret", Polls: -1})
	t.Cleanup(fake.Close)
	mux := http.NewServeMux()
	mux.Handle("/api/mer/", fake)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fake, srv.URL + "/api/mer", file
}

// TestPayProtocolPreflight: with a wrong secret the preflight is a
// configuration error (exit 2) in one line naming Pay Protocol, after one
// call; with the right one it passes.
func TestPayProtocolPreflight(t *testing.T) {
	ctx := context.Background()
	fake, url, bad := ppFake(t, "not-the-secret")
	pp, err := newPayProtocol(url, "PPKEY", bad, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	err = pp.provider(nil, nil, nil, 0).Preflight(ctx)
	if pipeline.KindOf(err).ExitCode() != 2 || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "Pay Protocol") ||
		!strings.Contains(err.Error(), "refused our credentials") || strings.Contains(err.Error(), "not-the-secret") {
		t.Fatalf("wrong secret: %v (kind %v)", err, pipeline.KindOf(err))
	}
	if n := fake.Calls(payprotocol.APIChainList) + fake.Calls(payprotocol.APIPaymentDetail); n != 1 {
		t.Fatalf("%d calls, want 1: refused credentials are never retried", n)
	}
	_, url, good := ppFake(t, "the-secret")
	if pp, err = newPayProtocol(url, "PPKEY", good, "", 0); err != nil {
		t.Fatal(err)
	}
	if err := pp.provider(nil, nil, nil, 0).Preflight(ctx); err != nil {
		t.Fatalf("right secret: %v", err)
	}
	if _, err := newPayProtocol(url, "PPKEY", good, "USDT=6", 0); pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), flagPPDecimals) {
		t.Fatalf("decimals without a chain: %v", err)
	}
}

// A platform row of Pay Protocol refunded beyond its amount (a bad row the
// job rejects) is not a payment the simulator can hold: seeding it skips
// that row, as it skips WeChat's, instead of failing the demo (whose
// default day, 2026-12-01, had one).
func TestPayProtocolSeedSkipsARowRefundedBeyondItsAmount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "60", "--sellers", "4", "--seed", "5", "--bad-rows", "0")
	var txn string
	if err := e.db.Get(&txn, `WITH o AS (SELECT * FROM orders WHERE provider = 'payprotocol' AND provider_txn_id IS NOT NULL
			AND confirmed_at >= '2026-11-23 00:00+08' AND confirmed_at < '2026-11-24 00:00+08' ORDER BY order_no LIMIT 1),
		r AS (INSERT INTO refunds (refund_no, order_no, amount_minor, created_at) SELECT 'R-BEYOND', order_no, amount_minor + 100, paid_at FROM o)
		SELECT provider_txn_id FROM o`); err != nil {
		t.Fatal(err)
	}
	sim := e.sim(nil, 4, nil, 1_000_000_000_00)
	withPayProtocol(sim)
	sh, _ := time.LoadLocation("Asia/Shanghai")
	d, _ := pipeline.ParseDate(testDate)
	n, err := sim.SeedPayProtocol(context.Background(), sqlx.NewDb(e.db.DB, "postgres"), settlesql.SourceQuery, pipeline.WindowOf(d, sh))
	if err != nil || n == 0 {
		t.Fatalf("seeded %d payments: %v", n, err)
	}
	if _, ok := sim.PayProtocol.Payment(txn); ok {
		t.Fatalf("the row refunded beyond its amount (%s) was seeded as a payment", txn)
	}
}

// TestPayProtocolRefusedCredentialsStopBeforeAnythingIsSent: with a secret
// Pay Protocol refuses, the run exits 2 with one line naming Pay Protocol
// and what it refused, asks once, and no trade file went out.
func TestPayProtocolRefusedCredentialsStopBeforeAnythingIsSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "120", "--sellers", "4", "--seed", "5")
	sim := e.sim(nil, 4, nil, 1_000_000_000_00)
	withPayProtocol(sim)
	sh, _ := time.LoadLocation("Asia/Shanghai")
	d, _ := pipeline.ParseDate(testDate)
	if _, err := sim.SeedPayProtocol(context.Background(), sqlx.NewDb(e.db.DB, "postgres"), settlesql.SourceQuery, pipeline.WindowOf(d, sh)); err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(t.TempDir(), "wrong-secret")
	if err := os.WriteFile(wrong, []byte("not-the-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sim.Config.PayProtocolSecretFile = wrong
	out, code := e.runInfinia(sim)
	if code != 2 || !strings.Contains(out, "Pay Protocol") || !strings.Contains(out, "refused our credentials") || strings.Contains(out, "not-the-secret") {
		t.Fatalf("exit %d, want 2 naming Pay Protocol's refusal:\n%s", code, out)
	}
	if n := strings.Count(out, "refused our credentials"); n != 1 {
		t.Errorf("the refusal is said %d times:\n%s", n, out)
	}
	// The pre-flight asks once (the chain list, or the detail query after
	// it); a refusal is never retried.
	if n := sim.PayProtocol.Calls(payprotocol.APIPaymentDetail) + sim.PayProtocol.Calls(payprotocol.APIChainList); n != 1 {
		t.Errorf("%d calls to Pay Protocol, want 1: refused credentials are never retried", n)
	}
	if n := e.count(`SELECT count(*) FROM settle.trade_files`); n != 0 {
		t.Errorf("%d trade files went out with Pay Protocol refusing our credentials", n)
	}
}
