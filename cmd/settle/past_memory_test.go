package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
	"github.com/settlekit/settle/seed"
	settlesql "github.com/settlekit/settle/sql"
)

// These tests settle a date that ended longer ago than the providers'
// status queries are taken to remember (thirty days by default). Every
// request's key is a function of its date: a run the ledger does not hold
// (restored from an older backup, or rows lost) may have sent it, and a
// provider that forgot it may pay it again, which settle cannot tell from
// a key never sent. A new request of such a date is held for a person
// (exit 4) unless --send-past-memory says a person checked the date in the
// provider's statements; a date whose work is done sends nothing and ends
// 0 as before.

// pastMemoryDate is a date that ended 45 days ago in Asia/Shanghai, past
// the thirty days the providers' queries are taken to remember.
func pastMemoryDate() string {
	sh, _ := time.LoadLocation("Asia/Shanghai")
	return time.Now().In(sh).AddDate(0, 0, -45).Format(time.DateOnly)
}

// recentDate is a date that ended 3 days ago in Asia/Shanghai, well
// within the providers' memory whatever the day the tests run on (testDate
// is not, from 2026-12-24).
func recentDate() string {
	sh, _ := time.LoadLocation("Asia/Shanghai")
	return time.Now().In(sh).AddDate(0, 0, -3).Format(time.DateOnly)
}

// heldPastMemory checks a run of day held for its date past a provider's
// memory: exit 4, naming the date, the memory and the flag.
func heldPastMemory(t *testing.T, what, day, out string, code int) {
	t.Helper()
	if code != 4 || !strings.Contains(out, "no new") || !strings.Contains(out, "of "+day+" sent") ||
		!strings.Contains(out, "status query is taken to remember (30d)") || !strings.Contains(out, "--send-past-memory") {
		t.Fatalf("%s: exit %d, want 4 saying no new request of %s is sent, why, and --send-past-memory:\n%s", what, code, day, out)
	}
}

// TestANewDatePastInfiniasMemoryIsSentOnlyWithTheFlag: a date 45 days
// old run for the first time builds no trade file and sends no revenue
// share (exit 4, every run), until --send-past-memory; the date then
// paid, its runs without the flag send nothing and end 0. Before, it was
// sent at once.
func TestANewDatePastInfiniasMemoryIsSentOnlyWithTheFlag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.pastMemory = true
	day := pastMemoryDate()
	e.mustSettle("seed", "--date", day, "--orders", "60", "--sellers", "3", "--seed", "8")
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 3, nil, balance)
	for _, what := range []string{"first run", "run again"} {
		out, code := e.runInfiniaOn(sim, day)
		heldPastMemory(t, what, day, out, code)
		if n := sim.Infinia.Calls("revenue-sharing/request"); n != 0 {
			t.Fatalf("%s: %d revenue share requests reached Infinia, want none:\n%s", what, n, out)
		}
		if n := e.count(`SELECT count(*) FROM settle.trade_files`); n != 0 {
			t.Fatalf("%s: %d trade files built, want none", what, n)
		}
	}
	out, code := e.runInfiniaOn(sim, day, "--send-past-memory")
	if code != 0 {
		t.Fatalf("with --send-past-memory: exit %d, want 0:\n%s", code, out)
	}
	e.checkPaidOnce(sim, balance)
	shares := len(sim.Infinia.RevenueShares())
	if shares == 0 {
		t.Fatal("no revenue share paid with --send-past-memory")
	}
	out, code = e.runInfiniaOn(sim, day)
	if code != 0 || !strings.Contains(out, "0 new money movements") {
		t.Fatalf("the paid date run again without the flag: exit %d, want 0 moving nothing:\n%s", code, out)
	}
	if n := len(sim.Infinia.RevenueShares()); n != shares {
		t.Fatalf("%d revenue shares at Infinia, %d before", n, shares)
	}
}

// TestARestoredLedgerPastInfiniasMemoryIsNotSettledAgainWithoutTheFlag:
// the ledger is restored from a backup taken before a date 45 days old
// was run, or after its uploads; Infinia paid its revenue shares (in this
// test it remembers them, but it may not). Run again, the date sends
// nothing - its trade files and revenue shares are new to the ledger,
// their keys perhaps forgotten by Infinia - and ends 4, nothing carried,
// until a person gives --send-past-memory; then Infinia replays what it
// paid, and nothing is paid twice. Before, the restored ledger sent every
// request again at once.
func TestARestoredLedgerPastInfiniasMemoryIsNotSettledAgainWithoutTheFlag(t *testing.T) {
	if testing.Short() {
		t.Skip("restore test")
	}
	t.Parallel()
	for _, point := range []string{"before", "upload"} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			day := pastMemoryDate()
			e.mustSettle("seed", "--date", day, "--orders", "60", "--sellers", "3", "--seed", "8")
			const balance = 1_000_000_000_00
			sim := e.sim(nil, 3, nil, balance)
			e.mustSettle("migrate")
			if point == "upload" { // the tests' --send-past-memory
				if out, code := e.runInfiniaOn(sim, day, "--until", point); code != 0 {
					t.Fatalf("run until %s: exit %d\n%s", point, code, out)
				}
			}
			backup := e.backupLedger(point)
			if out, code := e.runInfiniaOn(sim, day); code != 0 {
				t.Fatalf("first run: exit %d\n%s", code, out)
			}
			shares, requests := len(sim.Infinia.RevenueShares()), sim.Infinia.Calls("revenue-sharing/request")
			e.restoreLedger(backup)
			e.pastMemory = true
			out, code := e.runInfiniaOn(sim, day)
			heldPastMemory(t, "run after the restore", day, out, code)
			if n := sim.Infinia.Calls("revenue-sharing/request"); n != requests {
				t.Fatalf("run after the restore: %d revenue share requests reached Infinia, want none:\n%s", n-requests, out)
			}
			if n := e.count(`SELECT count(*) FROM settle.effects WHERE kind = 'revenue_share'`); n != 0 {
				t.Fatalf("run after the restore: %d revenue shares planned, want none", n)
			}
			if n := e.count(`SELECT count(*) FROM settle.adjustments`); n != 0 {
				t.Fatalf("run after the restore: %d carried balance entries, want none", n)
			}
			if out, code := e.runInfiniaOn(sim, day, "--send-past-memory"); code != 0 {
				t.Fatalf("with --send-past-memory: exit %d, want 0:\n%s", code, out)
			}
			e.checkPaidOnce(sim, balance)
			if n := len(sim.Infinia.RevenueShares()); n != shares {
				t.Fatalf("%d revenue shares at Infinia after the restore, %d before", n, shares)
			}
			if out, code := e.runInfiniaOn(sim, day); code != 0 || !strings.Contains(out, "0 new money movements") {
				t.Fatalf("the date run again without the flag: exit %d, want 0 moving nothing:\n%s", code, out)
			}
		})
	}
}

// TestANewDatePastWeChatsMemoryIsSentOnlyWithTheFlag: the WeChat Pay
// transactions of a date 45 days old get no distribution or unfreeze
// (exit 4) until --send-past-memory; settled then, the date's runs
// without the flag end as that run did, sending nothing.
func TestANewDatePastWeChatsMemoryIsSentOnlyWithTheFlag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.pastMemory = true
	day := pastMemoryDate()
	e.mustSettle("seed", "--date", day, "--orders", "40", "--sellers", "3", "--seed", "14")
	sim, err := paysim.Start(paysim.Options{Dir: t.TempDir(), ShareKeys: true, KeyBits: testKeyBits})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	sh, _ := time.LoadLocation("Asia/Shanghai")
	d, _ := pipeline.ParseDate(day)
	if _, err := sim.SeedWeChat(context.Background(), sqlx.NewDb(e.db.DB, "postgres"), settlesql.SourceQuery, pipeline.WindowOf(d, sh)); err != nil {
		t.Fatal(err)
	}
	sends := func() int { return sim.WeChat.Calls(wechatpay.APIOrders) + sim.WeChat.Calls(wechatpay.APIUnfreeze) }
	out, code := e.runWeChatOn(sim, day)
	heldPastMemory(t, "first run", day, out, code)
	if n := sends(); n != 0 {
		t.Fatalf("first run: %d distributions or unfreezes reached WeChat Pay, want none:\n%s", n, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE kind IN ('distribution', 'unfreeze')`); n != 0 {
		t.Fatalf("first run: %d requests planned, want none", n)
	}
	out, first := e.runWeChatOn(sim, day, "--send-past-memory")
	if first != 0 && first != 4 || sends() == 0 || strings.Contains(out, "--send-past-memory") {
		t.Fatalf("with --send-past-memory: exit %d, %d requests sent, want them sent:\n%s", first, sends(), out)
	}
	paid := e.checkWeChatOnce(sim)
	sent := sends()
	out, code = e.runWeChatOn(sim, day)
	if code != first || sends() != sent || (first == 0 && !strings.Contains(out, "0 new money movements")) {
		t.Fatalf("the date run again without the flag: exit %d (want %d), %d requests sent, want none:\n%s", code, first, sends()-sent, out)
	}
	if n := e.checkWeChatOnce(sim); n != paid {
		t.Fatalf("%d transactions settled, %d before", n, paid)
	}
}

// TestACarriedBalanceIsNotNettedIntoADatePastInfiniasMemory: a date 45
// days old whose revenue shares were all carried (below --min-payout) is
// run again: it nets none of its sellers' carried balances into a new
// revenue share of its own date (a requestNo past Infinia's memory),
// sends nothing and ends 0; a recent date's run pays them, under its own
// date's requestNos. Planned as the old date's, they were held for a
// person (exit 4) on every run of it, the balances netted into shares
// never sent.
func TestACarriedBalanceIsNotNettedIntoADatePastInfiniasMemory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.pastMemory = true
	day, recent := pastMemoryDate(), recentDate()
	e.mustSettle("seed", "--date", day, "--orders", "60", "--sellers", "3", "--seed", "8")
	e.mustSettle("seed", "--date", recent, "--orders", "60", "--sellers", "3", "--seed", "9")
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 3, nil, balance)
	// Every currency the seed gives Infinia's sellers (KWD too: a date
	// whose sellers had a KWD order paid its share, and the test read
	// that first run's revenue share as the second's).
	if out, code := e.runInfiniaOn(sim, day, "--send-past-memory", "--min-payout", "USD=1000000.00,EUR=1000000.00,CNY=1000000.00,JPY=100000000,KWD=1000000.000"); code != 0 {
		t.Fatalf("the old date with --send-past-memory, every share below the minimum: exit %d\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE kind = 'revenue_share'`); n != 0 {
		t.Fatalf("the old date with --send-past-memory: %d revenue shares planned, want every share carried below the minimum", n)
	}
	if n := e.count(`SELECT count(*) FROM settle.adjustments`); n == 0 {
		t.Fatal("nothing carried by the old date")
	}
	requests := sim.Infinia.Calls("revenue-sharing/request")
	out, code := e.runInfiniaOn(sim, day)
	if code != 0 || !strings.Contains(out, "0 new money movements") || sim.Infinia.Calls("revenue-sharing/request") != requests {
		t.Fatalf("the old date again, its balances carried: exit %d, %d revenue share requests; want 0, none:\n%s", code, sim.Infinia.Calls("revenue-sharing/request")-requests, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE kind = 'revenue_share'`); n != 0 {
		t.Fatalf("the old date again: %d revenue shares planned, want none", n)
	}
	if out, code := e.runInfiniaOn(sim, recent); code != 0 || sim.Infinia.Calls("revenue-sharing/request") == requests {
		t.Fatalf("the recent date: exit %d, nothing sent; want the carried balances paid with its own:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE kind = 'revenue_share' AND (state <> 'succeeded' OR subject NOT LIKE $1)`, "RS/"+strings.ReplaceAll(recent, "-", "")+"/%"); n != 0 {
		t.Fatalf("%d revenue shares not paid, or not of the recent date", n)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'infiniapay' AND state <> 'paid'`); n != 0 {
		t.Fatalf("%d Infinia items not paid", n)
	}
}

// TestADryRunOfADatePastMemorySaysARealRunHoldsIt: the dry run of a date
// 45 days old says a real run sends none of its new requests (exit 4)
// without --send-past-memory, and nothing of it with the flag. Before, it
// said what the run would record and "would send", and the real run
// ended 4 holding every seller.
func TestADryRunOfADatePastMemorySaysARealRunHoldsIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.pastMemory = true
	day := pastMemoryDate()
	e.mustSettle("seed", "--date", day, "--orders", "20", "--sellers", "2", "--seed", "8")
	sim := e.sim(nil, 2, nil, 1_000_000_000_00)
	out, code := e.runInfiniaOn(sim, day, "--dry-run")
	if code != 0 || !strings.Contains(out, "a real run sends no new Infinia request of "+day) || !strings.Contains(out, "--send-past-memory") {
		t.Fatalf("dry run: exit %d, want 0 saying a real run holds the date's Infinia requests and naming --send-past-memory:\n%s", code, out)
	}
	out, code = e.runInfiniaOn(sim, day, "--dry-run", "--send-past-memory")
	if code != 0 || strings.Contains(out, "a real run sends no new") {
		t.Fatalf("dry run with --send-past-memory: exit %d, want 0 saying nothing of a hold:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.runs`); n != 0 {
		t.Fatalf("the dry runs recorded %d runs", n)
	}
}

// TestInfiniaOrdersHeldPastMemoryShowAsHeld: the orders of a date 45
// days old that the guard holds - in no trade file (none built), or
// uploaded and covered by no revenue share (none planned) - show in
// settle status as held, not in progress, and in orders.csv with a reason
// naming --send-past-memory; nothing carried. Given the flag, the date is
// paid and shows paid. Before, they showed in progress: money waiting for
// a person, reported as in-flight work (found by a review).
func TestInfiniaOrdersHeldPastMemoryShowAsHeld(t *testing.T) {
	t.Parallel()
	for _, at := range []string{"upload", "distribute"} {
		t.Run(at, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			day := pastMemoryDate()
			e.mustSettle("seed", "--date", day, "--orders", "30", "--sellers", "3", "--seed", "8")
			const balance = 1_000_000_000_00
			sim := e.sim(nil, 3, nil, balance)
			if at == "distribute" { // uploaded with the tests' --send-past-memory
				if out, code := e.runInfiniaOn(sim, day, "--until", "upload"); code != 0 {
					t.Fatalf("run until upload: exit %d\n%s", code, out)
				}
			}
			e.pastMemory = true
			for _, what := range []string{"first run", "run again"} {
				out, code := e.runInfiniaOn(sim, day)
				heldPastMemory(t, what, day, out, code)
				held, progress := infiniaHeldInProgress(t, e, day)
				if held == 0 || progress != 0 {
					t.Fatalf("%s: status shows %d held, %d in progress of the Infinia orders; want them all held", what, held, progress)
				}
				if n := e.count(`SELECT count(*) FROM settle.adjustments`); n != 0 {
					t.Fatalf("%s: %d carried balance entries, want none", what, n)
				}
				if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'infiniapay' AND state IN ('recorded', 'uploaded') AND NOT (reason LIKE 'held: %--send-past-memory%')`); n != 0 {
					t.Fatalf("%s: %d Infinia orders without a hold naming --send-past-memory", what, n)
				}
				e.mustSettle("report", "--date", day, "--out", e.reports)
				orders, err := os.ReadFile(filepath.Join(e.reports, day, "orders.csv"))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(orders), "held: nothing sent: the date is past Infinia's memory") {
					t.Fatalf("%s: orders.csv names no hold past Infinia's memory:\n%s", what, orders)
				}
			}
			if out, code := e.runInfiniaOn(sim, day, "--send-past-memory"); code != 0 {
				t.Fatalf("with --send-past-memory: exit %d, want 0:\n%s", code, out)
			}
			e.checkPaidOnce(sim, balance)
			if held, progress := infiniaHeldInProgress(t, e, day); held != 0 || progress != 0 {
				t.Fatalf("paid: status shows %d held, %d in progress; want none", held, progress)
			}
			if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'infiniapay' AND (state NOT IN ('paid', 'rejected') OR state = 'paid' AND reason <> '')`); n != 0 {
				t.Fatalf("paid: %d Infinia orders not paid, or with a reason left", n)
			}
			if out, code := e.runInfiniaOn(sim, day); code != 0 || !strings.Contains(out, "0 new money movements") {
				t.Fatalf("the paid date again without the flag: exit %d, want 0 moving nothing:\n%s", code, out)
			}
			if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'infiniapay' AND (state NOT IN ('paid', 'rejected') OR state = 'paid' AND reason <> '')`); n != 0 {
				t.Fatalf("the paid date again: %d Infinia orders not paid, or with a reason", n)
			}
		})
	}
}

// infiniaHeldInProgress reads settle status of day (-o json): the
// Infinia orders' seller shares held and in progress, summed over
// currencies.
func infiniaHeldInProgress(t *testing.T, e *env, day string) (held, progress int64) {
	t.Helper()
	var s ledger.DateStatus
	if err := json.Unmarshal([]byte(e.mustSettle("status", "--date", day, "-o", "json")), &s); err != nil {
		t.Fatal(err)
	}
	for _, l := range s.Summary {
		if l.Channel == "infiniapay" {
			held += l.Held
			progress += l.InProgress
		}
	}
	var tHeld, tProgress int64
	for _, x := range s.Totals {
		tHeld += x.Held
		tProgress += x.InProgress
	}
	if tHeld < held || tProgress < progress {
		t.Fatalf("status totals by currency: %d held, %d in progress; less than its summary's Infinia rows, %d, %d", tHeld, tProgress, held, progress)
	}
	return held, progress
}

// TestAHoldPastInfiniasMemoryIsReleasedByALongerMemory: the orders a run
// held as their date was past Infinia's memory (in no trade file, or
// uploaded and unpaid) are released, as --send-past-memory releases them,
// by a run given a longer --infinia-query-memory: the guard no longer
// holds the date, and its orders are in progress again while their
// requests go out (here a run stopped after its upload stage, or one
// whose revenue share Infinia keeps processing past --provider-wait), then
// paid with no hold left. Before, they went out still named held: settle
// status counted them held for a person while they were being paid (the
// uploaded ones: those in no file lost the hold as their file was built).
func TestAHoldPastInfiniasMemoryIsReleasedByALongerMemory(t *testing.T) {
	t.Parallel()
	for _, at := range []string{"upload", "distribute"} {
		t.Run(at, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			day := pastMemoryDate()
			e.mustSettle("seed", "--date", day, "--orders", "30", "--sellers", "3", "--seed", "8")
			const balance = 1_000_000_000_00
			// The first revenue share asked about stays PROCESSING for 200
			// polls: past a 1s --provider-wait of 20ms polls.
			faults := fault.New(1, fault.Rule{Endpoint: "revenue-sharing/query", Kind: fault.Stuck, Calls: []int{1}, Polls: 200})
			sim := e.sim(faults, 3, nil, balance)
			if at == "distribute" { // uploaded with the tests' --send-past-memory
				if out, code := e.runInfiniaOn(sim, day, "--until", "upload"); code != 0 {
					t.Fatalf("run until upload: exit %d\n%s", code, out)
				}
			}
			e.pastMemory = true
			out, code := e.runInfiniaOn(sim, day)
			heldPastMemory(t, "first run", day, out, code)
			if held, _ := infiniaHeldInProgress(t, e, day); held == 0 {
				t.Fatalf("first run: nothing held:\n%s", out)
			}
			longer := []string{"--infinia-query-memory", "1200h"} // 50 days
			if at == "upload" {
				out, code = e.runInfiniaOn(sim, day, append(longer, "--until", "upload")...)
			} else {
				out, code = e.runInfiniaOn(sim, day, append(longer, "--provider-wait", "1s")...)
			}
			if code != 0 && code != 1 || strings.Contains(out, "--send-past-memory") {
				t.Fatalf("with a longer --infinia-query-memory: exit %d, want 0 or 1 (a revenue share still processing), nothing held:\n%s", code, out)
			}
			if held, progress := infiniaHeldInProgress(t, e, day); held != 0 || progress == 0 {
				t.Fatalf("with a longer --infinia-query-memory, the orders not paid yet: status shows %d held, %d in progress; want them in progress, none held", held, progress)
			}
			if n := e.count(`SELECT count(*) FROM settle.items WHERE reason LIKE '%--send-past-memory%'`); n != 0 {
				t.Fatalf("with a longer --infinia-query-memory: %d orders still held past Infinia's memory", n)
			}
			if out, code := e.runInfiniaOn(sim, day, append(longer, "--provider-wait", "30s")...); code != 0 {
				t.Fatalf("with a longer --infinia-query-memory, to its end: exit %d, want 0:\n%s", code, out)
			}
			e.checkPaidOnce(sim, balance)
			if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'infiniapay' AND (state NOT IN ('paid', 'rejected') OR state = 'paid' AND reason <> '')`); n != 0 {
				t.Fatalf("the longer memory: %d Infinia orders not paid, or with a reason left", n)
			}
		})
	}
}

// TestARevenueSharePlannedNeverSentPastInfiniasMemoryShowsItsOrdersHeld:
// the ledger holds a date's revenue shares planned and never sent (a
// backup taken between their intents and their sends, restored), and the
// date ended longer ago than Infinia's memory. The run sends none
// (pipeline.HoldFirstSends, exit 4, once for all), and the orders they
// cover show in settle status and orders.csv as held for the guard's
// reason, not in progress; given the flag, the shares go out under their
// requestNos and the orders are paid with no hold left. Before, the
// orders showed in progress, and the run named each share with the
// guard's whole explanation.
func TestARevenueSharePlannedNeverSentPastInfiniasMemoryShowsItsOrdersHeld(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	day := pastMemoryDate()
	e.mustSettle("seed", "--date", day, "--orders", "30", "--sellers", "3", "--seed", "8")
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 3, nil, balance)
	if out, code := e.runInfiniaOn(sim, day, "--until", "upload"); code != 0 { // the tests' --send-past-memory
		t.Fatalf("run until upload: exit %d\n%s", code, out)
	}
	planned := e.planRevenueShares(day)
	if planned == 0 {
		t.Fatal("no revenue share planned")
	}
	e.pastMemory = true
	for _, what := range []string{"first run", "run again"} {
		out, code := e.runInfiniaOn(sim, day)
		heldPastMemory(t, what, day, out, code)
		if n := sim.Infinia.Calls("revenue-sharing/request"); n != 0 {
			t.Fatalf("%s: %d revenue share requests reached Infinia, want none:\n%s", what, n, out)
		}
		if n := e.count(`SELECT count(*) FROM settle.effects WHERE kind = 'revenue_share' AND (state <> 'planned' OR sends <> 0)`); n != 0 {
			t.Fatalf("%s: %d revenue shares not left planned and unsent", what, n)
		}
		held, progress := infiniaHeldInProgress(t, e, day)
		if held == 0 || progress != 0 {
			t.Fatalf("%s: status shows %d held, %d in progress of the Infinia orders; want them all held", what, held, progress)
		}
		if !strings.Contains(out, fmt.Sprintf("%d sellers' revenue shares held", planned)) {
			t.Fatalf("%s: the run does not count the %d planned shares held:\n%s", what, planned, out)
		}
		if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'infiniapay' AND state = 'uploaded' AND NOT (reason LIKE 'held: %--send-past-memory%')`); n != 0 {
			t.Fatalf("%s: %d Infinia orders of the planned shares without a hold naming --send-past-memory", what, n)
		}
		e.mustSettle("report", "--date", day, "--out", e.reports)
		orders, err := os.ReadFile(filepath.Join(e.reports, day, "orders.csv"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(orders), "held: nothing sent: the date is past Infinia's memory") {
			t.Fatalf("%s: orders.csv names no hold past Infinia's memory:\n%s", what, orders)
		}
	}
	if out, code := e.runInfiniaOn(sim, day, "--send-past-memory"); code != 0 {
		t.Fatalf("with --send-past-memory: exit %d, want 0:\n%s", code, out)
	}
	e.checkPaidOnce(sim, balance)
	if n := sim.Infinia.Calls("revenue-sharing/request"); n != int(planned) {
		t.Fatalf("with --send-past-memory: %d revenue share requests, want the %d planned", n, planned)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'infiniapay' AND (state NOT IN ('paid', 'rejected') OR state = 'paid' AND reason <> '')`); n != 0 {
		t.Fatalf("paid: %d Infinia orders not paid, or with a reason left", n)
	}
}

// planRevenueShares plans, as the distribute stage does and sends
// nothing, a revenue share (attempt 1) of every seller and currency of
// day's uploaded Infinia orders with a share to pay, and returns how
// many.
func (e *env) planRevenueShares(day string) int64 {
	e.t.Helper()
	ctx := context.Background()
	l, err := ledger.Open(ctx, e.url, "")
	if err != nil {
		e.t.Fatal(err)
	}
	defer l.Close()
	d, _ := pipeline.ParseDate(day)
	runs, err := l.RunsOn(ctx, d)
	if err != nil || len(runs) != 1 {
		e.t.Fatalf("runs of %s: %d, %v", day, len(runs), err)
	}
	var owed []struct {
		Seller   string `db:"seller_id"`
		Currency string `db:"currency"`
		Amount   int64  `db:"amount"`
	}
	if err := e.db.Select(&owed, `SELECT seller_id, currency, sum(seller_minor) AS amount FROM settle.items
		WHERE channel = 'infiniapay' AND state = 'uploaded' GROUP BY 1, 2 HAVING sum(seller_minor) > 0 ORDER BY 1, 2`); err != nil {
		e.t.Fatal(err)
	}
	for _, o := range owed {
		cur := pipeline.Currency(o.Currency)
		_, err := l.PlanPayout(ctx, runs[0], o.Seller, []pipeline.Channel{infiniapay.Channel, payprotocol.Channel}, pipeline.Effect{RunID: runs[0].ID,
			Kind: infiniapay.KindRevenueShare, Subject: infiniapay.RevenueShareSubject(d, o.Seller, cur), Attempt: 1,
			Key: infiniapay.RevenueShareRequestNo(d, o.Seller, cur, 1), Currency: cur, Amount: o.Amount})
		if err != nil {
			e.t.Fatal(err)
		}
	}
	return int64(len(owed))
}

// TestThePastMemoryGuardSaysWhyOnce: a run held as its date is past
// Infinia's memory names, on its stage's NEEDS A PERSON line, in that
// line's subjects and at its end, what is held, the date's age against the
// memory and the command; the guard's explanation (why a key of the date
// may have been sent and forgotten, what a person checks, and what not to
// do) comes once, at the run's end: on a terminal a line of its own after
// the error, in JSON logs the last line's hint. Before, the whole
// explanation came three times in a terminal's output (the stage's line,
// its subjects, the error) and four in JSON logs (the last line's error
// and subjects too).
func TestThePastMemoryGuardSaysWhyOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	day := pastMemoryDate()
	e.mustSettle("seed", "--date", day, "--orders", "30", "--sellers", "3", "--seed", "8")
	sim := e.sim(nil, 3, nil, 1_000_000_000_00)
	if out, code := e.runInfiniaOn(sim, day, "--until", "upload"); code != 0 { // the tests' --send-past-memory
		t.Fatalf("run until upload: exit %d\n%s", code, out)
	}
	e.pastMemory = true
	const why = "which settle cannot tell from a key never sent"
	short := "settle run --date " + day + " --send-past-memory"
	out, code := e.runInfiniaOn(sim, day)
	heldPastMemory(t, "on a terminal", day, out, code)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if n := strings.Count(out, why); n != 1 || !strings.Contains(lines[len(lines)-1], why) {
		t.Fatalf("on a terminal: the explanation %d times, want once, on the last line:\n%s", n, out)
	}
	for _, l := range lines {
		if strings.Contains(l, "NEEDS A PERSON") && (!strings.Contains(l, short) || !strings.Contains(l, "subjects=")) {
			t.Fatalf("on a terminal: the stage's line does not name %q in its message and subjects:\n%s", short, l)
		}
	}

	args := e.infiniaArgs(sim)
	args[slices.Index(args, "--date")+1] = day
	args = append([]string{"settle", "run", "--database-url", e.url}, append(args[1:], "--skip-channel", "wechatpay", "--skip-channel", "payprotocol")...)
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string {
		if k == "SETTLE_LOG_FORMAT" {
			return "json"
		}
		return ""
	}
	err := run(context.Background(), plainTextArgs(args), getenv, &stdout, &stderr)
	if code := exitCode(err, &stderr); code != 4 || stderr.Len() != 0 {
		t.Fatalf("JSON logs: exit %d, want 4, stderr %q\n%s", code, stderr.String(), stdout.String())
	}
	lines = strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if n := strings.Count(stdout.String(), why); n != 1 {
		t.Fatalf("JSON logs: the explanation %d times, want once:\n%s", n, stdout.String())
	}
	var last struct {
		Error    string   `json:"error"`
		Hint     string   `json:"hint"`
		Subjects []string `json:"subjects"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(last.Hint, why) || !strings.Contains(last.Error, short) || len(last.Subjects) == 0 || !strings.Contains(last.Subjects[0], short) {
		t.Fatalf("JSON logs: the last line does not name the command in its error and subjects and the explanation in its hint:\n%s", lines[len(lines)-1])
	}
}

// TestOrdersUploadedAfterAShareNeverSentPastInfiniasMemoryAreNotCarried:
// a restored ledger holds, for a date 45 days old, a revenue share of a
// seller planned and never sent that covers some of its uploaded orders,
// and another of its orders of the date uploaded after the share was
// planned (covered by none). Its run without --send-past-memory holds
// that order too, with the past-memory reason: carried, a later date's
// revenue share (inside Infinia's memory, so sent) would pay it, while a
// run the ledger lost may have paid it already under a requestNo of the
// old date Infinia forgot (that share failed, say, and its next attempt
// netted the order). Before, it was carried ("uploaded after revenue
// share ... was in flight (planned)") and the recent date's share paid it.
// With the flag, the old date pays it as before.
func TestOrdersUploadedAfterAShareNeverSentPastInfiniasMemoryAreNotCarried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	day, recent := pastMemoryDate(), recentDate()
	e.mustSettle("seed", "--date", day, "--orders", "30", "--sellers", "3", "--seed", "8")
	e.mustSettle("seed", "--date", recent, "--orders", "30", "--sellers", "3", "--seed", "9")
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 3, nil, balance)
	if out, code := e.runInfiniaOn(sim, day, "--until", "upload"); code != 0 { // the tests' --send-past-memory
		t.Fatalf("run until upload: exit %d\n%s", code, out)
	}
	if e.planRevenueShares(day) == 0 {
		t.Fatal("no revenue share planned")
	}
	// One order of a share of two or more is uploaded after the share was
	// planned: the share covers the others, for their amount.
	var late struct {
		Order  string `db:"order_no"`
		Key    string `db:"payout_key"`
		Seller string `db:"seller_id"`
		Amount int64  `db:"seller_minor"`
	}
	if err := e.db.Get(&late, `SELECT i.order_no, i.payout_key, i.seller_id, i.seller_minor FROM settle.items i
		JOIN settle.effects f ON f.idem_key = i.payout_key
		WHERE i.channel = 'infiniapay' AND i.state = 'uploaded' AND i.seller_minor > 0 AND f.amount_minor > i.seller_minor
		ORDER BY i.order_no LIMIT 1`); err != nil {
		t.Fatalf("no order of a share of two or more: %v", err)
	}
	if _, err := e.db.Exec(`UPDATE settle.items SET payout_key = '' WHERE order_no = $1`, late.Order); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Exec(`UPDATE settle.effects SET amount_minor = amount_minor - $2 WHERE idem_key = $1`, late.Key, late.Amount); err != nil {
		t.Fatal(err)
	}
	e.pastMemory = true
	for _, what := range []string{"first run", "run again"} {
		out, code := e.runInfiniaOn(sim, day)
		heldPastMemory(t, what, day, out, code)
		if n := sim.Infinia.Calls("revenue-sharing/request"); n != 0 {
			t.Fatalf("%s: %d revenue share requests reached Infinia, want none:\n%s", what, n, out)
		}
		if n := e.count(`SELECT count(*) FROM settle.adjustments WHERE business_date = $1`, day); n != 0 {
			t.Fatalf("%s: %d entries of the old date carried, want none:\n%s", what, n, out)
		}
		if n := e.count(`SELECT count(*) FROM settle.items WHERE order_no = $1 AND state = 'uploaded' AND payout_key = '' AND reason LIKE 'held: %--send-past-memory%'`, late.Order); n != 1 {
			var state, reason string
			_ = e.db.QueryRow(`SELECT state, reason FROM settle.items WHERE order_no = $1`, late.Order).Scan(&state, &reason)
			t.Fatalf("%s: the order uploaded after the share is %s (%s), want uploaded and held past Infinia's memory:\n%s", what, state, reason, out)
		}
	}
	// The recent date, inside Infinia's memory, pays its own orders and
	// nothing of the old date.
	if out, code := e.runInfiniaOn(sim, recent); code != 0 {
		t.Fatalf("the recent date: exit %d\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE business_date = $1 AND state = 'paid'`, day); n != 0 {
		t.Fatalf("the recent date paid %d orders of the old date", n)
	}
	// A person checked the old date: its share is sent, and the order
	// uploaded after it is carried to the seller's next revenue share.
	if out, code := e.runInfiniaOn(sim, day, "--send-past-memory"); code != 0 {
		t.Fatalf("the old date with --send-past-memory: exit %d\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE business_date = $1 AND channel = 'infiniapay' AND state <> 'paid' AND order_no <> $2`, day, late.Order); n != 0 {
		t.Fatalf("with --send-past-memory: %d orders of the old date not paid", n)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE order_no = $1 AND state = 'carried' AND reason NOT LIKE '%--send-past-memory%'`, late.Order); n != 1 {
		t.Fatal("with --send-past-memory: the order uploaded after the share is not carried")
	}
}

// TestAFailedShareOfADatePastInfiniasMemoryCarriesNothing: a restored
// ledger holds, for a date 45 days old, revenue shares Infinia failed:
// the failure recorded and not applied yet (the backup taken between
// the two, or the process killed there), or the shares in flight (the
// backup taken before Infinia's answer). Its run without
// --send-past-memory applies the failure holding the shares' orders with
// the date, past Infinia's memory: carried, a later date's revenue share
// (inside Infinia's memory, so sent) would pay them, while a run the
// ledger lost may have paid them under the shares' next requestNos, of
// the old date, which Infinia forgot. Before, they were carried and the
// recent date's shares paid them. With the flag, the old date pays them.
func TestAFailedShareOfADatePastInfiniasMemoryCarriesNothing(t *testing.T) {
	t.Parallel()
	for _, at := range []string{"recorded", "in flight", "recorded, its last attempt", "in flight, its last attempt"} {
		t.Run(at, func(t *testing.T) {
			t.Parallel()
			failedSharePastMemory(t, strings.HasPrefix(at, "in flight"), strings.HasSuffix(at, "last attempt"))
		})
	}
}

// failedSharePastMemory: lastAttempt makes each failed share its seller's
// last attempt of the date (infiniapay.DefaultMaxAttempts), after which
// a date inside Infinia's memory carries the orders for a person: past
// it, they were carried so by the run after the one that held them, and
// the recent date's shares paid them.
func failedSharePastMemory(t *testing.T, inFlight, lastAttempt bool) {
	e := newEnv(t)
	day, recent := pastMemoryDate(), recentDate()
	e.mustSettle("seed", "--date", day, "--orders", "30", "--sellers", "3", "--seed", "8")
	e.mustSettle("seed", "--date", recent, "--orders", "30", "--sellers", "3", "--seed", "9")
	const balance = 1_000_000_000_00
	sim := e.sim(nil, 3, nil, balance)
	for i := 1; i <= 3; i++ {
		sim.Infinia.FailSharesOf(seed.InfiniaID(i), "account frozen")
	}
	if out, code := e.runInfiniaOn(sim, day); code != 4 { // the tests' --send-past-memory
		t.Fatalf("the old date, its shares failing: exit %d, want 4\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE kind = 'revenue_share' AND state = 'failed'`); n == 0 {
		t.Fatal("no revenue share failed")
	}
	// The failures recorded, not applied: the orders back under their
	// shares, nothing carried.
	if _, err := e.db.Exec(`UPDATE settle.items i SET state = 'uploaded', reason = '', carry_id = NULL, payout_key = f.idem_key
		FROM settle.adjustments a JOIN settle.effects f ON f.subject = a.subject AND f.kind = 'revenue_share' AND f.state = 'failed'
		WHERE i.carry_id = a.id AND a.business_date = $1`, day); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Exec(`DELETE FROM settle.adjustments WHERE business_date = $1`, day); err != nil {
		t.Fatal(err)
	}
	if lastAttempt {
		if _, err := e.db.Exec(`UPDATE settle.effects SET attempt = $1 WHERE kind = 'revenue_share' AND state = 'failed'`,
			infiniapay.DefaultMaxAttempts); err != nil {
			t.Fatal(err)
		}
	}
	shares := e.count(`SELECT count(*) FROM settle.effects WHERE kind = 'revenue_share' AND state = 'failed'`)
	if inFlight {
		if _, err := e.db.Exec(`UPDATE settle.effects SET state = 'sent', last_error = '' WHERE kind = 'revenue_share' AND state = 'failed'`); err != nil {
			t.Fatal(err)
		}
		// An order of each share uploaded after it, covered by none:
		// held with the date when its share is found in flight, and its
		// seller held again when the share is answered FAILED.
		if _, err := e.db.Exec(`UPDATE settle.items SET payout_key = '' WHERE order_no IN (
			SELECT min(order_no) FROM settle.items WHERE business_date = $1 AND payout_key <> '' GROUP BY payout_key)`, day); err != nil {
			t.Fatal(err)
		}
	}
	requests := sim.Infinia.Calls("revenue-sharing/request")
	e.pastMemory = true
	for _, what := range []string{"first run", "run again"} {
		out, code := e.runInfiniaOn(sim, day)
		heldPastMemory(t, what, day, out, code)
		// Each seller's share counted once in the stage's line (a share
		// in flight with a late order, then failed, was counted twice).
		if what == "first run" && !strings.Contains(out, fmt.Sprintf("%d sellers' revenue shares held", shares)) {
			t.Errorf("%s: the line does not count the %d sellers' shares held once each:\n%s", what, shares, out)
		}
		if n := sim.Infinia.Calls("revenue-sharing/request"); n != requests {
			t.Fatalf("%s: %d revenue share requests reached Infinia, want none:\n%s", what, n-requests, out)
		}
		if n := e.count(`SELECT count(*) FROM settle.adjustments WHERE business_date = $1`, day); n != 0 {
			t.Fatalf("%s: %d entries of the old date carried, want none:\n%s", what, n, out)
		}
		if n := e.count(`SELECT count(*) FROM settle.items WHERE business_date = $1 AND channel = 'infiniapay' AND state = 'uploaded'
			AND (payout_key <> '' OR NOT (reason LIKE 'held: %--send-past-memory%'))`, day); n != 0 {
			t.Fatalf("%s: %d orders of the failed shares not held past Infinia's memory:\n%s", what, n, out)
		}
	}
	for i := 1; i <= 3; i++ {
		sim.Infinia.FailSharesOf(seed.InfiniaID(i), "")
	}
	if out, code := e.runInfiniaOn(sim, recent); code != 0 {
		t.Fatalf("the recent date: exit %d\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE business_date = $1 AND state = 'paid'`, day); n != 0 {
		t.Fatalf("the recent date paid %d orders of the old date", n)
	}
	if lastAttempt {
		// A person checked the old date: its shares have no attempt
		// left, and their orders are carried for the person, as a date
		// inside Infinia's memory carries them.
		out, code := e.runInfiniaOn(sim, day, "--send-past-memory")
		if code != 4 || !strings.Contains(out, fmt.Sprintf("failed %d times", infiniapay.DefaultMaxAttempts)) {
			t.Fatalf("the old date with --send-past-memory, no attempt left: exit %d, want 4 saying the shares failed %d times\n%s",
				code, infiniapay.DefaultMaxAttempts, out)
		}
		if n := e.count(`SELECT count(*) FROM settle.items WHERE business_date = $1 AND channel = 'infiniapay' AND state = 'uploaded'`, day); n != 0 {
			t.Fatalf("with --send-past-memory, no attempt left: %d orders not carried for a person", n)
		}
		return
	}
	// A person checked the old date: the shares' next attempts pay it.
	if out, code := e.runInfiniaOn(sim, day, "--send-past-memory"); code != 0 {
		t.Fatalf("the old date with --send-past-memory: exit %d\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE channel = 'infiniapay' AND state NOT IN ('paid', 'rejected')`); n != 0 {
		t.Fatalf("with --send-past-memory: %d Infinia orders not paid", n)
	}
}

// TestAReextractOfADatePastInfiniasMemoryKeepsHeldTheBalanceOfASellerItNoLongerHas:
// the day before a date 45 days old carried its sellers' shares (below
// --min-payout); the date's run, held past Infinia's memory, held their
// balances with the date: a run of the date the ledger lost (restored
// from a backup) may have netted them into a share Infinia paid and
// forgot. The platform then drops one seller's orders of the date, and
// the date is read again (--reextract), held again: that seller's balance
// stays held with the date as the others' do - the lost run read the
// date as it was then, with that seller's orders - and a recent date's
// revenue share does not net it (it would pay it a second time). Before,
// the date's next guarded run released it (ReleaseCarriedGoneFromDate)
// and the recent date's share paid it.
func TestAReextractOfADatePastInfiniasMemoryKeepsHeldTheBalanceOfASellerItNoLongerHas(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	day, recent := pastMemoryDate(), recentDate()
	d, _ := pipeline.ParseDate(day)
	before := d.AddDays(-1).String()
	e.mustSettle("seed", "--date", before, "--orders", "60", "--sellers", "3", "--seed", "7")
	e.mustSettle("seed", "--date", day, "--orders", "60", "--sellers", "3", "--seed", "8")
	e.mustSettle("seed", "--date", recent, "--orders", "60", "--sellers", "3", "--seed", "9")
	sim := e.sim(nil, 3, nil, 1_000_000_000_00)
	if out, code := e.runInfiniaOn(sim, before, "--send-past-memory", "--min-payout", "USD=1000000.00,EUR=1000000.00,CNY=1000000.00,JPY=100000000,KWD=1000000.000"); code != 0 {
		t.Fatalf("the day before, every share below the minimum: exit %d\n%s", code, out)
	}
	e.pastMemory = true
	out, code := e.runInfiniaOn(sim, day)
	heldPastMemory(t, "the date's first run", day, out, code)
	const held = `SELECT count(DISTINCT seller_id || currency) FROM settle.adjustments WHERE netted_into LIKE 'held: carried balance held with %'`
	if n := e.count(held); n < 2 {
		t.Fatalf("%d balances held with %s, want every seller's with Infinia orders of it:\n%s", n, day, out)
	}
	var gone string
	if err := e.db.QueryRow(`SELECT min(seller_id) FROM settle.adjustments WHERE netted_into LIKE 'held: carried balance held with %'`).Scan(&gone); err != nil {
		t.Fatal(err)
	}
	others := held + ` AND seller_id <> '` + gone + `'`
	sh, _ := time.LoadLocation("Asia/Shanghai")
	w := pipeline.WindowOf(d, sh)
	e.db.MustExec(`DELETE FROM orders WHERE seller_id = $1 AND confirmed_at >= $2 AND confirmed_at < $3`, gone, w.Start, w.End)
	goneEntries := `SELECT count(*) FROM settle.adjustments WHERE netted_into LIKE 'held: carried balance held with %' AND seller_id = '` + gone + `'`
	goneBefore := e.count(goneEntries)
	heldBefore := e.count(others)
	if heldBefore == 0 {
		t.Fatalf("only %s's balances held with %s: no other seller to stay held", gone, day)
	}
	out, code = e.runInfiniaOn(sim, day, "--reextract")
	heldPastMemory(t, "the date read again", day, out, code)
	// Held still, and said: the run needs a person for it, though nothing
	// of the date holds the seller now (before, held silently).
	if !strings.Contains(out, "seller "+gone+" ") || !strings.Contains(out, "has no Infinia order of the seller any more") {
		t.Fatalf("the date read again does not name %s, whose balance it still holds:\n%s", gone, out)
	}
	if n := e.count(goneEntries); n != goneBefore {
		t.Fatalf("%s, with no order of %s any more: %d entries held with it after it was read again, want %d (a lost run of the date may have paid them):\n%s", gone, day, n, goneBefore, out)
	}
	if n := e.count(others); n != heldBefore {
		t.Fatalf("%d balances of the other sellers held with %s after it was read again, want %d (they stay held)", n, day, heldBefore)
	}
	e.pastMemory = false
	if out, code := e.runInfiniaOn(sim, recent); code != 0 {
		t.Fatalf("the recent date: exit %d\n%s", code, out)
	}
	if n := e.count(goneEntries); n != goneBefore {
		t.Fatalf("%s: %d entries held with %s after the recent date's run, want %d (netted into its share, paid a second time after a lost run)", gone, n, day, goneBefore)
	}
	if n := e.count(others); n != heldBefore {
		t.Fatalf("%d balances of the other sellers held with %s after the recent date's run, want %d", n, day, heldBefore)
	}
}
