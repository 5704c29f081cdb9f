package main

import (
	"crypto/rsa"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/load/wechatpay"
)

// rotateWeChatKeyAt has WeChat Pay take another merchant certificate of
// ours (refusing our signature from then on, 401 SIGN_ERROR) when the
// at-th distribution or unfreeze reaches it, through a proxy in front of
// sim's WeChat Pay. It returns the count of distributions and unfreezes
// and our key, for WeChat Pay to take back.
func rotateWeChatKeyAt(t *testing.T, sim *paysim.Sim, at int64) (*atomic.Int64, *rsa.PrivateKey) {
	t.Helper()
	ours, other := ourKeyAndAnother(t, sim.Config.WeChatKeyFile)
	var sends atomic.Int64
	sim.Config.WeChatURL = countingProxy(t, sim.Config.WeChatURL, &sends,
		func(r *http.Request) bool {
			return r.Method == http.MethodPost &&
				(strings.HasSuffix(r.URL.Path, "/"+wechatpay.APIOrders) || strings.HasSuffix(r.URL.Path, "/"+wechatpay.APIUnfreeze))
		},
		func(n int64) {
			if n == at {
				sim.WeChat.RegisterMerchantKey(&other.PublicKey)
			}
		})
	return &sends, ours
}

// TestWeChatRefusingOurKeyMidRunSendsNothingMore: our merchant certificate
// changes at WeChat Pay after the run's second distribution (401
// SIGN_ERROR from then on). The run sends nothing more (--parallel 1) and
// ends exit 2 in one line naming --wechat-private-key-file. The request
// refused is unknown and recorded refused (WeChat Pay executes no request
// whose signature does not verify: no money moved); none failed. The
// re-run with the key put right settles each transaction once. Before,
// the refused request was an ordinary send error: "2 new money
// movements", and the line named no flag.
func TestWeChatRefusingOurKeyMidRunSendsNothingMore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "40", "--sellers", "2", "--seed", "15")
	sim := e.weChatSim(nil, 0)
	const rotateAt = 2
	sends, ours := rotateWeChatKeyAt(t, sim, rotateAt)

	out, code := e.runWeChat(sim, "--parallel", "1")
	if code != 2 || !strings.Contains(out, "--wechat-private-key-file") || strings.Count(out, "refused our credentials") != 1 {
		t.Fatalf("exit %d, want 2 with one line naming our key:\n%s", code, out)
	}
	if !strings.Contains(out, "1 new money movements; 1 requests refused by the provider (no money moved)") {
		t.Errorf("want the run to count 1 new money movement, the send before the refusal (the refused one moved nothing):\n%s", out)
	}
	if n := sends.Load(); n != rotateAt {
		t.Errorf("%d distributions and unfreezes sent, want %d: nothing more once WeChat Pay refused our key", n, rotateAt)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE kind IN ($1, $2) AND state = 'failed'`, wechatpay.KindDistribution, wechatpay.KindUnfreeze); n != 0 {
		t.Errorf("%d requests failed: a refusal of our key is none of the request's", n)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects e WHERE kind IN ($1, $2) AND state = 'unknown'
		AND EXISTS (SELECT 1 FROM settle.effect_events v WHERE v.effect_id = e.id AND v.cause = 'refused')`, wechatpay.KindDistribution, wechatpay.KindUnfreeze); n != 1 {
		t.Errorf("%d requests unknown and recorded refused, want the one refused", n)
	}

	sim.WeChat.RegisterMerchantKey(&ours.PublicKey)
	sends.Store(-1 << 30)
	if out, code := e.runWeChat(sim); code != 0 {
		t.Fatalf("re-run: exit %d:\n%s", code, out)
	}
	e.checkWeChatOnce(sim)
}

// TestWeChatRefusingOurKeyMidRunStillSaysWhatItHeld: a transaction WeChat
// Pay refuses outright (INVALID_REQUEST, about it alone) is held for a
// person while the distributions are planned; WeChat Pay then refuses our
// key at the second distribution. The run ends exit 2, its last line
// naming the flag to check, and the transaction held is said as a stage's
// problems are on other exits: in the stage's one NEEDS A PERSON line,
// not in the last line. Before, the stop dropped it: the night's log said
// nothing of the transaction held, which only the re-run, once the key
// was put right, told.
func TestWeChatRefusingOurKeyMidRunStillSaysWhatItHeld(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "40", "--sellers", "2", "--seed", "15")
	sim := e.weChatSim(nil, 0)
	var poisoned struct {
		OrderNo string `db:"order_no"`
		Txn     string `db:"provider_txn_id"`
	}
	// The first order planned: held before anything is sent.
	if err := e.db.Get(&poisoned, `SELECT o.order_no, o.provider_txn_id FROM orders o JOIN sellers s USING (seller_id)
		WHERE o.provider = 'wechatpay' AND s.wechat_sub_mchid IS NOT NULL AND o.provider_txn_id IS NOT NULL
		ORDER BY o.order_no LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	sim.WeChat.Poison(poisoned.Txn, "INVALID_REQUEST")
	rotateWeChatKeyAt(t, sim, 2)
	out, code := e.runWeChat(sim, "--parallel", "1")
	person, last := personAndLast(out)
	if code != 2 || len(last) != 1 || !strings.Contains(last[0], "--wechat-private-key-file") || strings.Contains(last[0], "INVALID_REQUEST") {
		t.Fatalf("exit %d, want 2 with one last line naming --wechat-private-key-file alone:\n%s", code, out)
	}
	if len(person) != 1 || !strings.Contains(person[0], "stage=distribute") || !strings.Contains(person[0], "order "+poisoned.OrderNo) ||
		!strings.Contains(person[0], "INVALID_REQUEST") {
		t.Fatalf("%d NEEDS A PERSON lines, want the distribute stage's one naming order %s held for WeChat's INVALID_REQUEST:\n%s", len(person), poisoned.OrderNo, out)
	}
}

// TestWeChatRefusingOurKeyMidRunSaysWhatWaitsAndWhatIsSent: the platform's
// receiver at one seller's sub-merchant is under review (its transactions
// wait on WeChat Pay: only a run of this date settles them), and WeChat
// Pay refuses our key at the other's second distribution, the first still
// processing. The run ends exit 2 in one last line naming the flag, and
// the distribute stage's NEEDS A PERSON line says, as a run ending
// needing a person would, the transactions waiting on WeChat Pay and the
// distribution sent and not final at the stop, with the stage's own
// summary (WeChat's), not the other channels' alone. Before, the stop's
// line said neither, and its summary was the skipped channels'.
func TestWeChatRefusingOurKeyMidRunSaysWhatWaitsAndWhatIsSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "40", "--sellers", "2", "--seed", "15")
	sim := e.weChatSim(nil, 1<<20) // a new receiver is under review until approved
	var sub string
	if err := e.db.Get(&sub, `SELECT wechat_sub_mchid FROM sellers WHERE wechat_sub_mchid IS NOT NULL ORDER BY seller_id LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	sim.WeChat.SetReceiver(sub, "MERCHANT_ID", sim.Config.WeChatReceiverAccount, wechatpay.ReceiverEffective)
	rotateWeChatKeyAt(t, sim, 2)
	out, code := e.runWeChat(sim, "--parallel", "1")
	person, last := personAndLast(out)
	if code != 2 || len(last) != 1 || !strings.Contains(last[0], "--wechat-private-key-file") || strings.Contains(last[0], "wait on WeChat Pay") {
		t.Fatalf("exit %d, want 2 with one last line naming --wechat-private-key-file alone:\n%s", code, out)
	}
	var stop string
	for _, line := range person {
		if strings.Contains(line, "stage=distribute") {
			stop = line
		}
	}
	if !strings.Contains(stop, "WeChat transactions wait on WeChat Pay: only a run of this date settles them") || !strings.Contains(stop, "is INIT") {
		t.Errorf("the distribute stage's NEEDS A PERSON line does not say the transactions waiting on WeChat Pay:\n%s", out)
	}
	if !strings.Contains(stop, "1 WeChat distributions or unfreezes sent and not final when the stage stopped") {
		t.Errorf("the distribute stage's NEEDS A PERSON line does not say the distribution sent and not final at the stop:\n%s", out)
	}
	if _, summary, _ := strings.Cut(stop, ` summary="`); !strings.Contains(summary, "WeChat: ") || !strings.Contains(summary, "stopped: WeChat Pay refused our key") {
		t.Errorf("the distribute stage's NEEDS A PERSON line does not carry WeChat's summary:\n%s", out)
	}
}
