package main

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/seed"
)

// TestInfiniaRefusingOurKeyLetsWeChatFinish: Infinia's and WeChat Pay's
// distribute chains run side by side; Infinia refuses our key at its
// first revenue share, which reaches it once WeChat Pay has taken its
// second distribution, and one WeChat transaction is held for a person
// (INVALID_REQUEST). The run ends exit 2, its last line Infinia's
// refusal, and WeChat's chain was not cut short: every other WeChat
// transaction is settled that run, and the one held is said in the
// distribute stage's NEEDS A PERSON line. Before, Infinia's refusal
// cancelled WeChat's chain: its transactions waited for the re-run, and
// the one held was said by no line of the run.
func TestInfiniaRefusingOurKeyLetsWeChatFinish(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "60", "--sellers", "4", "--seed", "15")
	sim := e.weChatSim(nil, 0)
	sim.Config.PayProtocolURL = "" // no Pay Protocol payments are seeded at it
	for i := 1; i <= 4; i++ {
		sim.Infinia.SetBinding(seed.InfiniaID(i), "ACTIVE")
	}
	for _, cur := range demoCurrencies {
		sim.Infinia.SetBalance(cur, 1_000_000_00)
	}
	var poisoned struct {
		OrderNo string `db:"order_no"`
		Txn     string `db:"provider_txn_id"`
	}
	if err := e.db.Get(&poisoned, `SELECT o.order_no, o.provider_txn_id FROM orders o JOIN sellers s USING (seller_id)
		WHERE o.provider = 'wechatpay' AND s.wechat_sub_mchid IS NOT NULL AND o.provider_txn_id IS NOT NULL
		ORDER BY o.order_no DESC LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	sim.WeChat.Poison(poisoned.Txn, "INVALID_REQUEST")

	second := make(chan struct{})
	var sends, shares atomic.Int64
	sim.Config.WeChatURL = countingProxy(t, sim.Config.WeChatURL, &sends,
		func(r *http.Request) bool {
			return r.Method == http.MethodPost &&
				(strings.HasSuffix(r.URL.Path, "/"+wechatpay.APIOrders) || strings.HasSuffix(r.URL.Path, "/"+wechatpay.APIUnfreeze))
		},
		func(n int64) {
			if n == 2 {
				close(second)
			}
		})
	_, other := ourKeyAndAnother(t, sim.Config.OurKeyFile)
	sim.Config.InfiniaURL = countingProxy(t, sim.Config.InfiniaURL, &shares,
		func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, infiniapay.APIRevenueShare) },
		func(n int64) {
			if n == 1 {
				select { // WeChat Pay's chain under way
				case <-second:
				case <-time.After(5 * time.Second):
				}
				sim.Infinia.RegisterPlatformKey(&other.PublicKey)
			}
		})
	out, code := e.runInfinia(sim, "--parallel", "1")
	person, last := personAndLast(out)
	if code != 2 || len(last) != 1 || !strings.Contains(last[0], "--infinia-private-key-file") || strings.Contains(last[0], "INVALID_REQUEST") {
		t.Fatalf("exit %d, want 2 with one last line naming --infinia-private-key-file alone:\n%s", code, out)
	}
	if n := shares.Load(); n != 1 {
		t.Errorf("%d revenue shares sent, want 1: nothing more once Infinia refused our key", n)
	}
	total := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay'`)
	if paid := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'wechatpay' AND state = 'paid'`); total < 3 || paid != total-1 {
		t.Errorf("%d of %d WeChat transactions paid, want all but the one held: WeChat's chain was cut short by Infinia's refusal:\n%s", paid, total, out)
	}
	if len(person) != 1 || !strings.Contains(person[0], "stage=distribute") || !strings.Contains(person[0], "order "+poisoned.OrderNo) {
		t.Fatalf("%d NEEDS A PERSON lines, want the distribute stage's one naming order %s held:\n%s", len(person), poisoned.OrderNo, out)
	}
}
