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
// nor with the watch off; reopened by a person, it is asked no more, the
// nights name its date until a run of it settles the order once.
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
		err := runAt(context.Background(), func() time.Time { return now }, sendingPastMemory(plainTextArgs(full)), func(string) string { return "" }, &out, &errb)
		code := exitCode(err, &errb) // first: it writes the error's lines to errb
		return out.String() + errb.String(), code
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
	// The night's own work is done: its run is not recorded as waiting on
	// a person for an order of another date (it stayed listed, and
	// counted by settle_unsettled_runs, after the order was reopened).
	if n := e.count(`SELECT count(*) FROM settle.runs WHERE business_date = $1 AND state = 'done' AND last_error = ''`, yesterday.String()); n != 1 {
		t.Fatalf("tonight's run recorded needing a person for the watched order (%d runs done with no note)", n)
	}

	// The date is 41 days old: the run the hints name holds the date's
	// new requests until --send-past-memory, and they say so.
	if out, code := resolve("--reopen"); code != 0 || !strings.Contains(out, "gives it --send-past-memory") {
		t.Fatalf("resolve --reopen: exit %d, want 0 saying its date's run needs --send-past-memory:\n%s", code, out)
	}
	// Reopened, the order is held again, and only a run of its date
	// settles it: the night names that date and the command (nothing
	// else reminded anyone), not the payment paid late any more.
	if out, code := run(); code != 4 || strings.Contains(out, payprotocol.PaidAfterRejection) ||
		!strings.Contains(out, "date "+day+": its run holds 1 orders a person reopened (settle resolve --reopen: "+order+")") ||
		!strings.Contains(out, "settle run --date "+day+" verifies and settles them; "+day+" ended longer ago than Infinia is taken to remember") {
		t.Fatalf("tonight again, the order reopened and its date not run: exit %d, want 4 naming the date and its command:\n%s", code, out)
	}
	if out, code := run("--date", day); code != 0 {
		t.Fatalf("%s again, reopened: exit %d, want 0:\n%s", day, code, out)
	}
	if state, reason := e.itemOf(order); state != pipeline.ItemPaid && state != "carried" {
		t.Fatalf("reopened and run: %s is %s %q, want paid", order, state, reason)
	}
	e.checkPaidOnce(sim, balance)
	// Settled, the date is named no more (tonight's run pays what its
	// seller carries of it).
	if out, code := run(); code != 0 || strings.Contains(out, "reopened") {
		t.Fatalf("tonight again, the reopened order settled: exit %d, want 0, nothing named:\n%s", code, out)
	}
}
