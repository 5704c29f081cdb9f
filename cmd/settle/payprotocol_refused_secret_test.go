package main

import (
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/settlekit/settle/load/payprotocol"
)

// TestPayProtocolRefusingOurSecretMidRunAsksNothingMore: our API secret is
// revoked at Pay Protocol after the run's third payment question (401
// "invalid sign" from then on). Settle sends Pay Protocol no money
// request, only questions: the verification (in the upload stage) stops
// at the first refusal, asking nothing more than those in flight beside
// it, and the run ends exit 2 in one line naming --payprotocol-secret-file.
// No order is rejected or held for the refusal: those not verified stay
// unverified, none is paid. The re-run with the secret put right
// verifies them all and pays each seller once. Before, the line named the
// X-PAY-* headers alone.
func TestPayProtocolRefusingOurSecretMidRunAsksNothingMore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "300", "--sellers", "6", "--seed", "10")
	const balance = 1_000_000_000_00
	sim := e.payProtocolSim(nil, 6, balance)
	const rotateAt = 3
	var asked, after atomic.Int64
	ppURL := countingProxy(t, sim.Config.PayProtocolURL, &asked,
		func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/"+payprotocol.APIPaymentDetail) },
		func(n int64) {
			if n == rotateAt {
				sim.PayProtocol.SetSecret("revoked-secret")
			}
			if n >= rotateAt {
				after.Add(1)
			}
		})
	pp := []string{"--payprotocol-url", ppURL, "--payprotocol-api-key", sim.Config.PayProtocolAPIKey,
		"--payprotocol-secret-file", sim.Config.PayProtocolSecretFile}

	out, code := e.runInfinia(sim, pp...)
	if code != 2 || !strings.Contains(out, "--payprotocol-secret-file") || strings.Count(out, "refused our credentials") != 1 {
		t.Fatalf("exit %d, want 2 with one line naming our secret:\n%s", code, out)
	}
	t.Logf("%d payment questions from the refusal on", after.Load())
	if n := after.Load(); n < 1 || n > 8 {
		t.Errorf("%d payment questions from the refusal on, want the refused one and at most those in flight beside it", n)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'payprotocol' AND (state = 'paid' OR reason LIKE '%invalid sign%' OR reason LIKE '%unauthorized%')`); n != 0 {
		t.Errorf("%d Pay Protocol items paid, or rejected or held for our secret refused", n)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'payprotocol' AND state = 'unverified'`); n == 0 {
		t.Error("no Pay Protocol item left unverified")
	}

	secret, err := os.ReadFile(sim.Config.PayProtocolSecretFile)
	if err != nil {
		t.Fatal(err)
	}
	sim.PayProtocol.SetSecret(strings.TrimSpace(string(secret)))
	asked.Store(-1 << 30)
	if out, code := e.runInfinia(sim, pp...); code != 0 && code != 4 {
		t.Fatalf("re-run: exit %d\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'payprotocol' AND state = 'unverified'`); n != 0 {
		t.Errorf("%d Pay Protocol items still unverified once it took our secret", n)
	}
	e.checkPaidOnce(sim, balance)
}

// TestPayProtocolRefusingOurSecretMidRunStillSaysWhatItHeld: the first
// payment verified is pending at Pay Protocol (held: only a run of this
// date verifies it again); Pay Protocol then refuses our secret at the
// third payment question. The run ends exit 2, its last line naming
// --payprotocol-secret-file alone, and the payment held is said as on
// other exits: in the upload stage's NEEDS A PERSON line. Before, the stop
// dropped it: the night's log said nothing of the payment held, which
// only the re-run told.
func TestPayProtocolRefusingOurSecretMidRunStillSaysWhatItHeld(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "300", "--sellers", "6", "--seed", "10")
	sim := e.payProtocolSim(nil, 6, 1_000_000_000_00)
	var first struct {
		OrderNo string `db:"order_no"`
		Txn     string `db:"provider_txn_id"`
	}
	if err := e.db.Get(&first, `SELECT order_no, provider_txn_id FROM orders WHERE provider = 'payprotocol' AND provider_txn_id IS NOT NULL
		ORDER BY order_no LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	if err := sim.PayProtocol.SetPaymentStatus(first.Txn, payprotocol.PaymentPending); err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int64
	ppURL := countingProxy(t, sim.Config.PayProtocolURL, &asked,
		func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/"+payprotocol.APIPaymentDetail) },
		func(n int64) {
			if n == 3 {
				sim.PayProtocol.SetSecret("revoked-secret")
			}
		})
	out, code := e.runInfinia(sim, "--payprotocol-url", ppURL, "--payprotocol-api-key", sim.Config.PayProtocolAPIKey,
		"--payprotocol-secret-file", sim.Config.PayProtocolSecretFile, "--parallel", "1")
	person, last := personAndLast(out)
	if code != 2 || len(last) != 1 || !strings.Contains(last[0], "--payprotocol-secret-file") || strings.Contains(last[0], "payments held") {
		t.Fatalf("exit %d, want 2 with one last line naming --payprotocol-secret-file alone:\n%s", code, out)
	}
	if len(person) != 1 || !strings.Contains(person[0], "stage=upload") || !strings.Contains(person[0], "Pay Protocol payments held") ||
		!strings.Contains(person[0], "order "+first.OrderNo) {
		t.Fatalf("%d NEEDS A PERSON lines, want the upload stage's one naming order %s held pending:\n%s", len(person), first.OrderNo, out)
	}
}
