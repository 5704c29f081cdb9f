package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
	settlesql "github.com/settlekit/settle/sql"
)

// TestANightlyRunWatchesARejectedOrderPaidLongAfterItsDate: an order a
// person rejected for its failed payment, paid late 40 days after its
// date, was found only by a run of its date or a recheck within
// --recheck-days: with --recheck-days 1 the nightly runs never asked, and
// the buyer's money stayed at the platform, the seller unpaid, nobody
// told. Tonight's nightly run (no --date: yesterday, on this machine's
// clock) asks about it (--rejected-watch-days, default 90): a row of its
// own reconciliation naming the order's date and the command, the WARN
// line, exit 4, nothing paid. Not within a window shorter than 40 days,
// nor with the watch off; reopened by a person, it is asked no more, and
// the run of its date settles it once.
func TestANightlyRunWatchesARejectedOrderPaidLongAfterItsDate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sh, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	// The night's clock: this machine's, but for the first minutes after
	// midnight in Shanghai, when yesterday is not over by dayOverMargin.
	now := time.Now()
	if local := now.In(sh); local.Hour() == 0 && local.Minute() < 20 {
		now = now.Add(-30 * time.Minute)
	}
	yesterday := pipeline.DateOf(now.In(sh)).AddDays(-1)
	d := yesterday.AddDays(-40)
	day := d.String()
	e.mustSettle("seed", "--date", day, "--orders", "60", "--sellers", "4", "--bad-rows", "0", "--seed", "3")
	w := pipeline.WindowOf(d, sh)
	order := e.first(`SELECT order_no FROM orders o WHERE provider = 'payprotocol' AND provider_txn_id IS NOT NULL
		AND confirmed_at >= $1 AND confirmed_at < $2 AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.order_no = o.order_no)`, w.Start, w.End)
	e.db.MustExec(`DELETE FROM refunds WHERE order_no IN (SELECT order_no FROM orders WHERE provider = 'payprotocol' AND order_no <> $1)`, order)
	e.db.MustExec(`DELETE FROM orders WHERE provider = 'payprotocol' AND order_no <> $1`, order)
	txn := e.first(`SELECT provider_txn_id FROM orders WHERE order_no = $1`, order)
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 4, nil, balance)
	withPayProtocol(sim)
	if _, err := sim.SeedPayProtocol(context.Background(), sqlx.NewDb(e.db.DB, "postgres"), settlesql.SourceQuery, w); err != nil {
		t.Fatal(err)
	}
	e.situations(sim, "--payprotocol-status", txn+"=failed")
	run := func(extra ...string) (string, int) {
		t.Helper()
		full := append(append([]string{"settle", "run", "--database-url", e.url, "--rules", e.rules, "--out", e.reports, "--work-dir", filepath.Join(e.reports, "work"),
			"--provider-wait", "3s", "--provider-poll", "20ms", "--provider-rate", "0", "--skip-channel", "wechatpay", "--recheck-days", "1"},
			sim.Config.Args()...), extra...)
		var out, errb bytes.Buffer
		err := runAt(context.Background(), func() time.Time { return now }, full, allowPlainTextFor(e.url, func(string) string { return "" }), &out, &errb)
		return out.String() + errb.String(), exitCode(err, &errb)
	}
	resolve := func(how string) (string, int) {
		return e.settle(append([]string{"resolve", "--date", day, "--order", order, how, "--note", "buyer paid late, ticket PP-80"}, sim.Config.Args()...)...)
	}
	if out, code := run("--date", day); code != 4 {
		t.Fatalf("%s, payment failed: exit %d, want 4:\n%s", day, code, out)
	}
	if out, code := resolve("--reject"); code != 0 {
		t.Fatalf("resolve --reject: exit %d:\n%s", code, out)
	}
	if out, code := run(); code != 0 {
		t.Fatalf("the night, the order rejected and still failed: exit %d, want 0:\n%s", code, out)
	}

	// The buyer pays, 40 days after the order's date.
	e.situations(sim, "--payprotocol-status", txn+"=paid")
	if out, code := run("--rejected-watch-days", "39"); code != 0 || strings.Contains(out, payprotocol.PaidAfterRejection) {
		t.Fatalf("a watch of 39 days: exit %d, want 0, the order not asked:\n%s", code, out)
	}
	if out, code := run("--rejected-watch-days", "0"); code != 0 {
		t.Fatalf("the watch off: exit %d, want 0:\n%s", code, out)
	}
	before := sim.PayProtocol.Calls(payprotocol.APIPaymentDetail)
	out, code := run()
	if code != 4 || !strings.Contains(out, payprotocol.PaidAfterRejection) || !strings.Contains(out, "settle resolve --date "+day+" --order "+order+" --reopen") {
		t.Fatalf("tonight, the order paid late: exit %d, want 4 naming the command:\n%s", code, out)
	}
	if n := sim.PayProtocol.Calls(payprotocol.APIPaymentDetail) - before; n > 2 {
		t.Errorf("the night asked Pay Protocol %d payment details, want at most its pre-flight's and the watched order's", n)
	}
	ms := e.mismatches(yesterday.String())
	if len(ms) != 1 || ms[0].OrderNo != order || ms[0].Expected || ms[0].Category != pipeline.MismatchStatus || ms[0].TheirsState != "paid" ||
		!strings.HasPrefix(ms[0].Detail, "order of "+day+", watched (--rejected-watch-days 90): ") {
		t.Fatalf("tonight's mismatches %+v, want the watched order's unexpected row", ms)
	}
	if state, _ := e.itemOf(order); state != pipeline.ItemRejected {
		t.Fatalf("%s is %s: paid by itself", order, state)
	}
	e.checkPaidOnce(sim, balance)

	if out, code := resolve("--reopen"); code != 0 {
		t.Fatalf("resolve --reopen: exit %d:\n%s", code, out)
	}
	if out, code := run(); code != 0 || strings.Contains(out, payprotocol.PaidAfterRejection) {
		t.Fatalf("tonight again, the order reopened: exit %d, want 0:\n%s", code, out)
	}
	if out, code := run("--date", day); code != 0 {
		t.Fatalf("%s again, reopened: exit %d, want 0:\n%s", day, code, out)
	}
	if state, reason := e.itemOf(order); state != pipeline.ItemPaid && state != "carried" {
		t.Fatalf("reopened and run: %s is %s %q, want paid", order, state, reason)
	}
	e.checkPaidOnce(sim, balance)
}
