package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/paysim"
)

// TestANightlyRunNamesTheNightsMissed: a nightly run settles yesterday
// only, so a night the schedule missed (the CronJob controller down past
// its starting deadline, say) left a date never settled, and the next
// night's success hid it. The nightly run (no --date) now ends needing a
// person, naming the dates of the month before it that have no run, with
// the backfill that settles them; a run of a given date does not look.
func TestANightlyRunNamesTheNightsMissed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", "2026-11-21", "--orders", "10", "--sellers", "2")
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC) // yesterday: 2026-11-25
	at := e.runAtClock(&now)
	// A new ledger: nothing before the night to compare with.
	if out, code := at(); code != 0 || strings.Contains(out, "never run") {
		t.Fatalf("first night: exit %d, want 0:\n%s", code, out)
	}
	for _, d := range []string{"2026-11-20", "2026-11-21", "2026-11-23"} {
		if out, code := at("--date", d); code != 0 {
			t.Fatalf("run of %s: exit %d:\n%s", d, code, out)
		}
	}
	want := "2 dates from 2026-11-22 to 2026-11-24 before 2026-11-25 never run (a night the schedule missed?): settle run --from 2026-11-22 --to 2026-11-24"
	if out, code := at(); code != 4 || !strings.Contains(out, want) || !strings.Contains(out, "date 2026-11-24 has no run") {
		t.Fatalf("night with 2026-11-22 and 2026-11-24 never run: exit %d, want 4 with %q:\n%s", code, want, out)
	} else if !strings.Contains(out, "settle: "+hintEarlierDates) {
		// The hint, the last JSON line's in a pod, said to "run the
		// date again": the night's own, which finishes none of them.
		t.Errorf("night with dates never run: the hint is not that they need a run of their own:\n%s", out)
	}
	if out, code := at("--date", "2026-11-25"); code != 0 {
		t.Fatalf("the same date given: exit %d, want 0 (a date given is not the nightly run):\n%s", code, out)
	}
	if out, code := at("--from", "2026-11-22", "--to", "2026-11-24"); code != 0 {
		t.Fatalf("backfill: exit %d:\n%s", code, out)
	}
	if out, code := at(); code != 0 {
		t.Fatalf("night after the backfill: exit %d, want 0:\n%s", code, out)
	}
	// A date an Indexed Job of two ran in one shard alone (the other pod
	// never started): the next night names the shard never run.
	now = now.AddDate(0, 0, 2) // yesterday: 2026-11-27
	if out, code := at("--date", "2026-11-26", "--shard", "0/2"); code != 0 {
		t.Fatalf("shard 0/2 of 2026-11-26: exit %d:\n%s", code, out)
	}
	if out, code := at(); code != 4 || !strings.Contains(out, "date 2026-11-26: shard 1/2 never run (settle run --date 2026-11-26 runs them)") {
		t.Fatalf("night after a date with a shard never run: exit %d, want 4 naming it:\n%s", code, out)
	}
	if out, code := at("--date", "2026-11-26", "--shard", "1/2"); code != 0 {
		t.Fatalf("shard 1/2 of 2026-11-26: exit %d:\n%s", code, out)
	}
	if out, code := at(); code != 0 {
		t.Fatalf("night after the shard ran: exit %d, want 0:\n%s", code, out)
	}
}

// TestANightlyRunNamesEarlierDatesLeftUndone: a nightly run settles its
// own date alone, so an earlier date whose run stopped before its end
// (killed, its pods past the Job's deadline, with nothing sent yet) or
// ended failed (exit 1 past the Job's retries) is finished by nobody, its
// orders unpaid and the balances netted into its planned payouts waiting.
// The night named only the runs stopped with requests in flight, and
// ended 0 over these. It now ends needing a person, naming each with the
// run that finishes it; a date that ended needing a person (exit 4,
// held for that person, who was told then) is not named every night as
// a problem: a note says it waits, and the exit is the night's.
func TestANightlyRunNamesEarlierDatesLeftUndone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", "2026-11-21", "--orders", "10", "--sellers", "2")
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC) // yesterday: 2026-11-25
	at := e.runAtClockStopped(&now)
	for _, d := range []string{"2026-11-21", "2026-11-22", "2026-11-23", "2026-11-24"} {
		if out, code := at("--date", d); code != 0 {
			t.Fatalf("run of %s: exit %d:\n%s", d, code, out)
		}
	}
	// 2026-11-21 done, then re-run and killed after planning a revenue
	// share (the run stays done); 2026-11-22 stopped before its upload
	// stage (as --until transform, or a kill, leaves it); 2026-11-23
	// ended 1 on its last retry; 2026-11-24 ended 4, held for a person.
	e.db.MustExec(`UPDATE settle.runs SET state = 'done', finished_at = now() WHERE business_date = '2026-11-21'`)
	e.db.MustExec(`INSERT INTO settle.effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor)
		SELECT id, 'revenue_share', 'RS/20261121/S00001/USD', 1, 'RS2026112100001USD01', 'USD', 1000 FROM settle.runs WHERE business_date = '2026-11-21'`)
	e.db.MustExec(`UPDATE settle.runs SET state = 'failed', last_error = 'stage upload: Infinia: connection refused' WHERE business_date = '2026-11-23'`)
	e.db.MustExec(`UPDATE settle.runs SET state = 'failed', last_error = 'needs a person: stage distribute: seller S00001 USD: Infinia binding is FROZEN' WHERE business_date = '2026-11-24'`)
	out, code := at()
	stopped := "date 2026-11-22: its run stopped before its upload stage and was not run again (killed, or run with --until): settle run --date 2026-11-22 finishes it"
	failed := "date 2026-11-23: its run failed and was not run again (stage upload: Infinia: connection refused): settle run --date 2026-11-23 runs it again"
	planned := "date 2026-11-21: its run left 1 requests planned and never sent (a run of it stopped before sending them; what they net waits on them): settle run --date 2026-11-21 sends them"
	waiting := "1 runs of dates before 2026-11-25 wait on a person (they ended needing one, exit 4 then, and were not run again; not this night's exit): 2026-11-24; settle status --date D says what is held"
	if code != 4 || !strings.Contains(out, stopped) || !strings.Contains(out, failed) || !strings.Contains(out, planned) ||
		strings.Contains(out, "date 2026-11-24") || !strings.Contains(out, waiting) {
		t.Fatalf("night after a date stopped, one failed and one with a payout planned: exit %d, want 4 naming them (the one for a person in a note alone):\n%s", code, out)
	}
	// Those run again to their end: the next night ends 0, the date held
	// for a person left to the person.
	e.db.MustExec(`UPDATE settle.runs SET state = 'done', last_error = '', finished_at = now() WHERE business_date IN ('2026-11-22', '2026-11-23', '2026-11-25')`)
	e.db.MustExec(`UPDATE settle.effects SET state = 'succeeded', sends = 1`)
	now = now.AddDate(0, 0, 1) // yesterday: 2026-11-26
	if out, code := at(); code != 0 || !strings.Contains(out, "1 runs of dates before 2026-11-26 wait on a person") {
		t.Fatalf("night after they ran again: exit %d, want 0 with a note of the date waiting on a person:\n%s", code, out)
	}
}

// TestADateBesideOneRunInAnotherZoneIsRefused: a person's run with
// SETTLE_TZ unset (the default zone) of a date beside nights run in UTC
// read a window that did not meet theirs: the orders between were read by
// no run. Opening it is refused (exit 2), naming the zone to give; a zone
// whose windows meet theirs (another name for it) is taken, and so is
// --new-tz, for a zone that changes for good. The refused date leaves no
// directory of its reports behind.
func TestADateBesideOneRunInAnotherZoneIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", "2026-11-21", "--orders", "10", "--sellers", "2")
	run := func(d, tz string, extra ...string) (string, int) {
		return e.settle(append([]string{"run", "--date", d, "--tz", tz, "--rules", e.rules, "--out", e.reports, "--until", "transform"}, extra...)...)
	}
	for _, d := range []string{"2026-11-20", "2026-11-22"} {
		if out, code := run(d, "UTC"); code != 0 {
			t.Fatalf("run of %s: exit %d:\n%s", d, code, out)
		}
	}
	out, code := run("2026-11-21", "Asia/Shanghai")
	if want := "2026-11-20 was run in time zone UTC: its window ends at 2026-11-21T00:00:00Z, and this run's of 2026-11-21 in Asia/Shanghai starts at 2026-11-20T16:00:00Z"; code != 2 || !strings.Contains(out, want) || !strings.Contains(out, "--tz UTC") {
		t.Fatalf("a date between two run in UTC, in Shanghai: exit %d, want 2 with %q:\n%s", code, want, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.runs WHERE business_date = '2026-11-21'`); n != 0 {
		t.Fatalf("%d runs of the refused date recorded", n)
	}
	// Nor a directory of its reports, made to check it can be written.
	if _, err := os.Stat(filepath.Join(e.reports, "2026-11-21")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the refused date left its reports directory: %v", err)
	}
	if out, code := run("2026-11-23", "Etc/UTC"); code != 0 {
		t.Fatalf("another name of the same zone: exit %d:\n%s", code, out)
	}
	// Its window overlaps the UTC date before it: the orders both read
	// are rejected as settled by it, within this test's tolerance.
	if out, code := run("2026-11-21", "Asia/Shanghai", "--new-tz", "--max-reject-ratio", "1"); code != 0 ||
		e.count(`SELECT count(*) FROM settle.rejects WHERE reason LIKE '%settled%'`) == 0 {
		t.Fatalf("--new-tz: exit %d:\n%s", code, out)
	}
}

// TestDryRunSaysARunInAnotherZoneIsRefused: the dry run of a date beside
// one run in another zone, whose window did not meet it, planned the day
// and said nothing of the real run's refusal (exit 2); nor of a date
// resumed in other hours than it read its day in. It says so now, as it
// does of a refused sharding.
func TestDryRunSaysARunInAnotherZoneIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", "2026-11-21", "--orders", "10", "--sellers", "2")
	run := func(d, tz string, extra ...string) (string, int) {
		return e.settle(append([]string{"run", "--date", d, "--tz", tz, "--rules", e.rules, "--out", e.reports, "--until", "transform"}, extra...)...)
	}
	if out, code := run("2026-11-20", "UTC"); code != 0 {
		t.Fatalf("run of 2026-11-20: exit %d:\n%s", code, out)
	}
	real, code := run("2026-11-21", "Asia/Shanghai")
	if code != 2 {
		t.Fatalf("a date beside one run in UTC, in Shanghai: exit %d, want 2:\n%s", code, real)
	}
	out, code := run("2026-11-21", "Asia/Shanghai", "--dry-run")
	if want := "ledger: a real run is refused: --tz: 2026-11-20 was run in time zone UTC"; code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "--tz UTC") {
		t.Fatalf("dry run of a date a real run is refused for its zone: exit %d, want 0 with %q:\n%s", code, want, out)
	}
	if out, code := run("2026-11-21", "UTC", "--dry-run"); code != 0 || strings.Contains(out, "refused") {
		t.Fatalf("dry run in the zone of the date beside it: exit %d, want 0 and no refusal:\n%s", code, out)
	}
	// A date resumed in other hours than it read its day in.
	if out, code := run("2026-11-20", "Asia/Shanghai"); code != 2 {
		t.Fatalf("resumed in another zone: exit %d, want 2:\n%s", code, out)
	}
	out, code = run("2026-11-20", "Asia/Shanghai", "--dry-run")
	if want := "ledger: a real run is refused: --tz: 2026-11-20 read its day in time zone UTC"; code != 0 || !strings.Contains(out, want) {
		t.Fatalf("dry run of a date resumed in another zone: exit %d, want 0 with %q:\n%s", code, want, out)
	}
}

// TestStatusTimesAreUTC: settle status printed a run's start (and end) in
// the ledger session's zone ("+14" on a server in Pacific/Kiritimati),
// its other times in UTC.
func TestStatusTimesAreUTC(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", "2026-11-21", "--orders", "5", "--sellers", "1")
	e.mustSettle("run", "--date", "2026-11-21", "--rules", e.rules, "--out", e.reports, "--until", "transform")
	sep := "?"
	if strings.Contains(e.url, "?") {
		sep = "&"
	}
	out, code := e.raw("settle", "status", "--database-url", e.url+sep+"timezone=Pacific/Kiritimati", "--date", "2026-11-21")
	if code != 0 || !regexp.MustCompile(`started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\b`).MatchString(out) {
		t.Fatalf("status: exit %d, want the run's times in UTC:\n%s", code, out)
	}
}

// TestAllRefusedFilesAreSentAgainAtOnce: after a mistake that has Infinia
// refuse many files of a date (a layout, say), a person sent them again
// one name at a time (found by an on-call walk of the runbook). resolve
// --all-refused sends every refused file of the date again with one note,
// the next run pays them, once; a second call finds none left.
func TestAllRefusedFilesAreSentAgainAtOnce(t *testing.T) {
	t.Parallel()
	e, sim, refused := threeRefusedFiles(t)
	for _, o := range refused {
		sim.Infinia.RefuseOrder(o, "")
	}
	if out, code := e.settle("resolve", "--date", testDate, "--all-refused", "--trade-file", "x"); code != 2 || !strings.Contains(out, "exactly one of") {
		t.Fatalf("--all-refused with --trade-file: exit %d:\n%s", code, out)
	}
	out := e.mustSettle("resolve", "--date", testDate, "--all-refused", "--refused-rows", "--note", "Infinia ticket 11: took none; product types mapped")
	if !strings.Contains(out, "3 of 3 refused trade files of "+testDate+" sent again") {
		t.Fatalf("resolve --all-refused:\n%s", out)
	}
	if out, code := e.settle("resolve", "--date", testDate, "--all-refused", "--note", "again"); code != 2 || !strings.Contains(out, "no trade file Infinia refused that is not sent again") {
		t.Fatalf("a second --all-refused: exit %d, want 2:\n%s", code, out)
	}
	e.paidAfterAll(sim, refused)
}

// threeRefusedFiles seeds a day of five sellers, has Infinia refuse an
// order of each of three trade files (each with another order to hold),
// and runs the date: exit 4, three files refused. It returns the refused
// orders, first of each file.
func threeRefusedFiles(t *testing.T) (*env, *paysim.Sim, []string) {
	t.Helper()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "200", "--sellers", "5", "--seed", "6")
	sim := e.sim(nil, 5, nil, refusedBalance)
	var refused []string
	if err := e.db.Select(&refused, `SELECT DISTINCT ON (seller_id, currency) order_no FROM orders o WHERE provider = 'infiniapay'
		AND confirmed_at >= '2026-11-23 00:00+08' AND confirmed_at < '2026-11-24 00:00+08'
		AND (SELECT count(*) FROM orders p WHERE p.seller_id = o.seller_id AND p.currency = o.currency AND p.provider = 'infiniapay'
		     AND p.confirmed_at >= '2026-11-23 00:00+08' AND p.confirmed_at < '2026-11-24 00:00+08') > 1
		ORDER BY seller_id, currency, order_no LIMIT 3`); err != nil || len(refused) != 3 {
		t.Fatalf("three orders of three files: %v %v", refused, err)
	}
	for _, o := range refused {
		sim.Infinia.RefuseOrder(o, "product type not allowed")
	}
	if out, code := e.runInfinia(sim); code != 4 || e.count(`SELECT count(*) FROM settle.trade_files WHERE status = 'FAILED'`) != 3 {
		t.Fatalf("exit %d, want 4 with three files refused:\n%s", code, out)
	}
	return e, sim, refused
}

// refusedBalance is threeRefusedFiles' platform balance.
const refusedBalance = 1_000_000_000_00

// paidAfterAll runs the date after its refused files were sent again:
// exit 0, every refused order paid, each once.
func (e *env) paidAfterAll(sim *paysim.Sim, refused []string) {
	e.t.Helper()
	if out, code := e.runInfinia(sim); code != 0 {
		e.t.Fatalf("the run after the files were sent again: exit %d, want 0:\n%s", code, out)
	}
	for _, o := range refused {
		if n := e.count(`SELECT count(*) FROM settle.items WHERE order_no = $1 AND state = 'paid'`, o); n != 1 {
			e.t.Errorf("order %s refused, then sent again: not paid", o)
		}
	}
	e.checkPaidOnce(sim, refusedBalance)
}

// TestADryRunSaysARealRunWouldStopOnItsRejects: a day whose rows are
// rejected beyond --max-reject-ratio stops a real run before anything is
// sent (exit 3); the dry run listed the rejects and said nothing of that
// (found by a platform integrator's review: 173 of 173 rows rejected, and
// the plan read as if it would pay).
func TestADryRunSaysARealRunWouldStopOnItsRejects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", "2026-11-21", "--orders", "20", "--sellers", "2", "--bad-rows", "4")
	dry := func(ratio string) string {
		return e.mustSettle("run", "--date", "2026-11-21", "--rules", e.rules, "--dry-run", "--max-reject-ratio", ratio)
	}
	if out := dry("0.05"); !regexp.MustCompile(`a real run stops before anything is sent, exit 3: \d+ of 2\d rows rejected, more than 5\.00%`).MatchString(out) {
		t.Fatalf("dry run of a day beyond the tolerance:\n%s", out)
	}
	if out := dry("1"); strings.Contains(out, "a real run stops") {
		t.Fatalf("dry run within the tolerance says a real run stops:\n%s", out)
	}
}

// TestAReextractBesideADateRunInAnotherZoneIsRefused: --reextract reads
// the date again, in the zone it is given: a person's --reextract with
// SETTLE_TZ unset (the default zone) of a date between nights run in UTC
// read a window that does not meet theirs, with a warning only, and the
// orders between the windows were read by no run. It is refused as the
// date's first run is (exit 2, nothing read again); in the neighbours'
// zone it reads the date again.
func TestAReextractBesideADateRunInAnotherZoneIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", "2026-11-21", "--orders", "10", "--sellers", "2")
	run := func(d, tz string, extra ...string) (string, int) {
		return e.settle(append([]string{"run", "--date", d, "--tz", tz, "--rules", e.rules, "--out", e.reports, "--until", "transform", "--max-reject-ratio", "1"}, extra...)...)
	}
	for _, d := range []string{"2026-11-20", "2026-11-21", "2026-11-22"} {
		if out, code := run(d, "UTC"); code != 0 {
			t.Fatalf("run of %s: exit %d:\n%s", d, code, out)
		}
	}
	read := e.count(`SELECT count(*) FROM settle.source_rows s JOIN settle.runs r ON r.id = s.run_id WHERE r.business_date = '2026-11-21'`)
	out, code := run("2026-11-21", "Asia/Shanghai", "--reextract")
	if want := "2026-11-20 was run in time zone UTC"; code != 2 || !strings.Contains(out, want) || !strings.Contains(out, "--tz UTC") {
		t.Fatalf("--reextract in Shanghai between two dates run in UTC: exit %d, want 2 with %q:\n%s", code, want, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.source_rows s JOIN settle.runs r ON r.id = s.run_id WHERE r.business_date = '2026-11-21'`); n != read {
		t.Fatalf("the refused --reextract changed the date's snapshot: %d rows, had %d", n, read)
	}
	if out, code := run("2026-11-21", "UTC", "--reextract"); code != 0 {
		t.Fatalf("--reextract in the neighbours' zone: exit %d:\n%s", code, out)
	}
}

// TestANeighbourRunInLocalIsNotComparedWithThisMachinesZone: a date
// beside one an older settle ran in time zone "Local" (that machine's
// zone, which no one recorded) was compared with this machine's zone, as
// time.LoadLocation("Local") names it: refused (exit 2) advising --tz
// Local, which is refused. Such a neighbour has nothing to compare, as
// checkNeighbours says.
func TestANeighbourRunInLocalIsNotComparedWithThisMachinesZone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", "2026-11-21", "--orders", "10", "--sellers", "2")
	run := func(d, tz string) (string, int) {
		return e.settle("run", "--date", d, "--tz", tz, "--rules", e.rules, "--out", e.reports, "--until", "transform", "--max-reject-ratio", "1")
	}
	if out, code := run("2026-11-20", "Asia/Shanghai"); code != 0 {
		t.Fatalf("run of 2026-11-20: exit %d:\n%s", code, out)
	}
	e.db.MustExec(`UPDATE settle.runs SET time_zone = 'Local' WHERE business_date = '2026-11-20'`)
	tz := "Pacific/Kiritimati" // a zone whose days meet no day of this machine's zone
	if time.Local.String() == tz {
		tz = "Pacific/Pago_Pago"
	}
	if out, code := run("2026-11-21", tz); code != 0 || strings.Contains(out, "--tz Local") {
		t.Fatalf("beside a date run in Local: exit %d, want 0:\n%s", code, out)
	}
}

// TestAllRefusedRowsOfAFileSentAgainBeforeGoToo: resolve --all-refused
// --refused-rows listed only the refused files no person had sent again,
// so a file a person had sent again by name without its refused rows
// (the runbook's first step, before the cause of the rows was fixed) kept
// them rejected: "2 of 2 sent again", exit 0, and its seller was never
// paid for them (with every file sent again so, it said there was no
// refused file, exit 2). Its refused rows go with the others'.
func TestAllRefusedRowsOfAFileSentAgainBeforeGoToo(t *testing.T) {
	t.Parallel()
	e, sim, refused := threeRefusedFiles(t)
	var first string
	if err := e.db.Get(&first, `SELECT f.name FROM settle.items i JOIN settle.trade_files f ON f.request_no = i.provider_ref WHERE i.order_no = $1`, refused[0]); err != nil {
		t.Fatal(err)
	}
	// The held rest of the first file goes at once; its refused row's
	// cause is not fixed yet.
	if out, code := e.settle("resolve", "--date", testDate, "--trade-file", first, "--note", "Infinia ticket 10: took none of it"); code != 0 {
		t.Fatalf("resolve --trade-file %s: exit %d:\n%s", first, code, out)
	}
	for _, o := range refused {
		sim.Infinia.RefuseOrder(o, "")
	}
	out := e.mustSettle("resolve", "--date", testDate, "--all-refused", "--refused-rows", "--note", "Infinia ticket 11: took none; product types mapped")
	if !strings.Contains(out, "3 of 3 refused trade files of "+testDate+" sent again") {
		t.Errorf("resolve --all-refused --refused-rows after one file was sent again without its refused rows:\n%s", out)
	}
	e.paidAfterAll(sim, refused)
}

// TestANightlyRunJudgesADateOfTwoShardingsByItsSellers: a date an older
// settle ran in two shardings (shard 0/2, then 1/4 and 3/4: every seller's
// hash is in one of them) was judged by its first sharding alone once
// neither had every shard, so the nightly named shard 1/2 never run and
// ended 4 on every night of the month, advising a run that opens no shard
// of such a date. It is whole when every seller's hash is in a run; a
// date that is not names the shards left, without that advice.
func TestANightlyRunJudgesADateOfTwoShardingsByItsSellers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", "2026-11-21", "--orders", "10", "--sellers", "2")
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC) // yesterday: 2026-11-25
	at := e.runAtClock(&now)
	for _, d := range []string{"2026-11-22", "2026-11-24"} {
		if out, code := at("--date", d); code != 0 {
			t.Fatalf("run of %s: exit %d:\n%s", d, code, out)
		}
	}
	// 2026-11-23 as an older settle left it: shard 0/2, then 1/4 and 3/4.
	e.db.MustExec(`INSERT INTO settle.runs (business_date, shard_index, shard_count, state, time_zone, rules_hash, config_hash)
		VALUES ('2026-11-23', 0, 2, 'done', 'UTC', '', ''), ('2026-11-23', 1, 4, 'done', 'UTC', '', ''), ('2026-11-23', 3, 4, 'done', 'UTC', '', '')`)
	if out, code := at(); code != 0 || strings.Contains(out, "never run") {
		t.Fatalf("night after a date whose two shardings ran every seller: exit %d, want 0:\n%s", code, out)
	}
	// 2026-11-26 in 0/2 and 1/4: the sellers of shard 3/4 in no run.
	now = now.AddDate(0, 0, 2) // yesterday: 2026-11-27
	e.db.MustExec(`INSERT INTO settle.runs (business_date, shard_index, shard_count, state, time_zone, rules_hash, config_hash)
		VALUES ('2026-11-26', 0, 2, 'done', 'UTC', '', ''), ('2026-11-26', 1, 4, 'done', 'UTC', '', '')`)
	out, code := at()
	if code != 4 || !strings.Contains(out, "date 2026-11-26: shard 3/4 never run") || strings.Contains(out, "shard 1/2") ||
		strings.Contains(out, "2026-11-23") || strings.Contains(out, "settle run --date 2026-11-26 runs them") {
		t.Fatalf("night after a date of two shardings with sellers of shard 3/4 in no run: exit %d, want 4 naming 3/4 alone:\n%s", code, out)
	}
}

// TestAReextractInItsRunsOwnZoneAfterAZoneChangeIsTaken: the date a zone
// changed for good on was opened with --new-tz beside a date run in the
// old zone; --reextract of it in its own zone reads the window its run
// read, and was refused (exit 2) advising the old zone, which would have
// moved its window (and had the next night, in the new zone, refused).
func TestAReextractInItsRunsOwnZoneAfterAZoneChangeIsTaken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", "2026-11-21", "--orders", "10", "--sellers", "2")
	run := func(d, tz string, extra ...string) (string, int) {
		return e.settle(append([]string{"run", "--date", d, "--tz", tz, "--rules", e.rules, "--out", e.reports, "--until", "transform", "--max-reject-ratio", "1"}, extra...)...)
	}
	if out, code := run("2026-11-20", "UTC"); code != 0 {
		t.Fatalf("run of 2026-11-20: exit %d:\n%s", code, out)
	}
	if out, code := run("2026-11-21", "Asia/Shanghai", "--new-tz"); code != 0 {
		t.Fatalf("run of 2026-11-21 with --new-tz: exit %d:\n%s", code, out)
	}
	if out, code := run("2026-11-21", "Asia/Shanghai", "--reextract"); code != 0 {
		t.Fatalf("--reextract of 2026-11-21 in the zone its run read it in: exit %d, want 0:\n%s", code, out)
	}
}

// runAtClock runs `settle run` in UTC through transform with the clock at
// *now (a test moves it), and returns its output and exit code. The runs
// it opens stop after transform, for speed, and are then recorded done,
// as a whole run would leave them: a nightly run names an earlier date's
// run stopped before its end (runAtClockStopped leaves them so).
func (e *env) runAtClock(now *time.Time) func(args ...string) (string, int) {
	run := e.runAtClockStopped(now)
	return func(args ...string) (string, int) {
		out, code := run(args...)
		e.db.MustExec(`UPDATE settle.runs SET state = 'done', finished_at = now() WHERE state = 'running' OR updated_at > finished_at`)
		return out, code
	}
}

// runAtClockStopped is runAtClock leaving its runs as --until transform
// does: recorded running, stopped before their upload stage.
func (e *env) runAtClockStopped(now *time.Time) func(args ...string) (string, int) {
	return func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		full := append([]string{"settle", "run", "--database-url", e.url, "--tz", "UTC", "--rules", e.rules, "--out", e.reports,
			"--until", "transform"}, args...)
		err := runAt(context.Background(), func() time.Time { return *now }, sendingPastMemory(plainTextArgs(full)), func(string) string { return "" }, &out, &errb)
		code := exitCode(err, &errb)
		return out.String() + errb.String(), code
	}
}

// TestAShardsNightNamesItsOwnShard: each pod of the sharded nightly run
// named every shard's earlier runs left undone and shards never run, so
// one shard's failure failed every index of the night (exit 4 each, each
// shard's metrics 4, the alert naming every shard). A shard's night names
// its own shard's; shard 0 names those of another sharding (a whole run
// of an earlier date) too; a date with no run at all is every shard's.
func TestAShardsNightNamesItsOwnShard(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", "2026-11-21", "--orders", "10", "--sellers", "2")
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC) // yesterday: 2026-11-25
	at := e.runAtClock(&now)
	// 2026-11-21 whole, failed; 2026-11-22 in two shards, 1/2 never run;
	// 2026-11-23 in two shards, 1/2 failed; 2026-11-24 in two shards, 0/2
	// ended needing a person.
	runs := [][]string{{"2026-11-21"}, {"2026-11-22", "--shard", "0/2"}, {"2026-11-23", "--shard", "0/2"},
		{"2026-11-23", "--shard", "1/2"}, {"2026-11-24", "--shard", "0/2"}, {"2026-11-24", "--shard", "1/2"}}
	for _, r := range runs {
		if out, code := at(append([]string{"--date"}, r...)...); code != 0 {
			t.Fatalf("run of %s: exit %d:\n%s", r, code, out)
		}
	}
	e.db.MustExec(`UPDATE settle.runs SET state = 'failed', last_error = 'stage upload: Infinia: connection refused'
		WHERE business_date IN ('2026-11-21', '2026-11-23') AND shard_index = shard_count - 1`)
	e.db.MustExec(`UPDATE settle.runs SET state = 'failed', last_error = 'needs a person: stage distribute: seller S00001 USD: Infinia binding is FROZEN'
		WHERE business_date = '2026-11-24' AND shard_index = 0`)
	whole := "date 2026-11-21: its run failed"
	neverRun := "date 2026-11-22: shard 1/2 never run"
	failed := "date 2026-11-23: shard 1/2 failed"
	waiting := "wait on a person (they ended needing one, exit 4 then, and were not run again; not this night's exit): 2026-11-24 shard 0/2;"
	for _, c := range []struct {
		shard         string
		code          int
		names, silent []string
	}{
		{"0/2", 4, []string{whole, waiting}, []string{neverRun, failed}},
		{"1/2", 4, []string{neverRun, failed}, []string{whole, "wait on a person"}},
	} {
		out, code := at("--shard", c.shard)
		if code != c.code {
			t.Errorf("night of shard %s: exit %d, want %d:\n%s", c.shard, code, c.code, out)
		}
		for _, w := range c.names {
			if !strings.Contains(out, w) {
				t.Errorf("night of shard %s does not name %q:\n%s", c.shard, w, out)
			}
		}
		for _, w := range c.silent {
			if strings.Contains(out, w) {
				t.Errorf("night of shard %s names %q, another shard's:\n%s", c.shard, w, out)
			}
		}
	}
	// The whole run of 2026-11-21 run again: shard 0's night ends 0, its
	// own shard of 2026-11-24 in a note; shard 1's still 4 for its own.
	e.db.MustExec(`UPDATE settle.runs SET state = 'done', last_error = '', finished_at = now() WHERE business_date = '2026-11-21'`)
	if out, code := at("--shard", "0/2"); code != 0 || !strings.Contains(out, waiting) {
		t.Errorf("night of shard 0/2, its own shard's runs done: exit %d, want 0 with the note:\n%s", code, out)
	}
	// A date with no run at all is every shard's.
	now = now.AddDate(0, 0, 2) // yesterday: 2026-11-27, 2026-11-26 never run
	for _, sh := range []string{"0/2", "1/2"} {
		if out, code := at("--shard", sh); code != 4 || !strings.Contains(out, "date 2026-11-26 has no run") {
			t.Errorf("night of shard %s after a date never run: exit %d, want 4 naming it:\n%s", sh, code, out)
		}
	}
}

// TestANightOfMoreMissedDatesThanItListsSaysWhereTheRestAre: a night that
// finds more earlier dates undone than its message lists counted the rest
// "(see the reports)", but no report lists them (found by the operator's
// README walk-through): it says where to look instead.
func TestANightOfMoreMissedDatesThanItListsSaysWhereTheRestAre(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", "2026-11-21", "--orders", "10", "--sellers", "2")
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC) // yesterday: 2026-11-25
	at := e.runAtClock(&now)
	if out, code := at("--date", "2026-11-10"); code != 0 {
		t.Fatalf("run of 2026-11-10: exit %d:\n%s", code, out)
	}
	// 2026-11-11 to 2026-11-24 never run: 14 dates, 10 listed.
	out, code := at()
	want := "; ... 4 more (settle status --date D of each date from 2026-10-25 to 2026-11-24 says what it needs)"
	if code != 4 || !strings.Contains(out, want) || strings.Contains(out, "see the reports") {
		t.Fatalf("night with 14 dates never run: exit %d, want 4 with %q:\n%s", code, want, out)
	}
}

// TestADateLeftInTheEnvironmentDoesNotHideTheNightsSinceIt: a person who
// runs a past date through the CronJob (kubectl create job --from, whose
// arguments cannot be changed) sets SETTLE_DATE in its ConfigMap; left
// there, every night settles that date again, ends 0 (nothing new to do)
// and refreshes settle_last_success_timestamp_seconds, while no night
// since is settled: a date named is not the nightly run, which alone
// looked for dates never run. A run whose dates come from the environment
// alone (SETTLE_DATE, SETTLE_FROM/SETTLE_TO, none on the command line)
// now looks as the nightly run does, before yesterday, and says where its
// date came from; one named on the command line does not look.
func TestADateLeftInTheEnvironmentDoesNotHideTheNightsSinceIt(t *testing.T) {
	e := newEnv(t)
	e.mustSettle("seed", "--date", "2026-11-21", "--orders", "10", "--sellers", "2")
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC) // yesterday: 2026-11-25
	at := e.runAtClock(&now)
	if out, code := at("--from", "2026-11-20", "--to", "2026-11-25"); code != 0 {
		t.Fatalf("backfill: exit %d:\n%s", code, out)
	}
	t.Setenv("SETTLE_DATE", "2026-11-21")
	// The first night with it set: yesterday is the night's own date,
	// not looked at (a person's run of a date from the environment before
	// the night's run must not page).
	now = now.AddDate(0, 0, 1) // yesterday: 2026-11-26
	if out, code := at(); code != 0 {
		t.Fatalf("first night with SETTLE_DATE set: exit %d, want 0:\n%s", code, out)
	}
	now = now.AddDate(0, 0, 1) // yesterday: 2026-11-27
	out, code := at()
	if code != 4 || !strings.Contains(out, "date 2026-11-26 has no run") ||
		!strings.Contains(out, "this run's date 2026-11-21 came from the environment (SETTLE_DATE), not the command line") {
		t.Fatalf("second night with SETTLE_DATE=2026-11-21 set: exit %d, want 4 naming 2026-11-26 never run and where the date came from:\n%s", code, out)
	}
	// The same date on the command line is a person's run of it: it does
	// not look, as before.
	if out, code := at("--date", "2026-11-21"); code != 0 {
		t.Fatalf("--date 2026-11-21 on the command line: exit %d, want 0:\n%s", code, out)
	}
	t.Setenv("SETTLE_DATE", "")
	t.Setenv("SETTLE_FROM", "2026-11-20")
	t.Setenv("SETTLE_TO", "2026-11-21")
	if out, code := at(); code != 4 || !strings.Contains(out, "date 2026-11-26 has no run") ||
		!strings.Contains(out, "(SETTLE_FROM, SETTLE_TO)") {
		t.Fatalf("a night with SETTLE_FROM/SETTLE_TO set: exit %d, want 4 naming 2026-11-26 never run:\n%s", code, out)
	}
}
