package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
	"github.com/settlekit/settle/transform"
)

// TestALateRefundSplitsUnderTheRulesOfTheRepriceItWasReadUnder: a run's
// resplit keeps the rules it looked up, a reprice's by its id. A reprice
// of the date committed while the run goes on is another id, and a late
// refund read after it splits under its rules, those the ledger checks
// the clawback against when it records it (ResolveLateRefund). Before,
// the run kept the date's rules as it first looked them up, and split
// under 12% a refund of a date repriced to 11% meanwhile (seen failing
// so: commission 12.00 of 100.00, want 11.00).
func TestALateRefundSplitsUnderTheRulesOfTheRepriceItWasReadUnder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	d, l, reprice := e.repriceable()
	split := resplit(l, rulesOf(t, "given.csv", 1000))
	o := pipeline.Order{OrderNo: "O1", SellerID: "S1", Channel: "infiniapay", Currency: "USD", Amount: 10000}
	commission := func(reprice int64) int64 {
		t.Helper()
		s, err := split(ctx, o, d, reprice)
		if err != nil {
			t.Fatal(err)
		}
		return s.Commission
	}
	twelve := reprice(rulesOf(t, "rules-12.csv", 1200))
	if c := commission(twelve); c != 1200 {
		t.Fatalf("under the reprice to 12%%: commission %d, want 1200", c)
	}
	eleven := reprice(rulesOf(t, "rules-11.csv", 1100))
	if c := commission(eleven); c != 1100 {
		t.Errorf("under the reprice to 11%%, committed after the run looked up the date's rules: commission %d, want 1100", c)
	}
	if c := commission(twelve); c != 1200 {
		t.Errorf("read under the reprice to 12%%: commission %d, want 1200 (the ledger refuses it, its rules replaced)", c)
	}
}

// rulesOf parses a rules file of one default rule of bps, named name.
func rulesOf(t *testing.T, name string, bps int) *transform.Rules {
	t.Helper()
	rs, err := transform.ParseRules(strings.NewReader("seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from\n,,,"+
		strconv.Itoa(bps)+",,,,2020-01-01\n"), name)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// repriceable records a run of testDate, done, with no item, and returns
// the date, the env's ledger and a func that reprices the date under rules
// (pipeline.Reprice, as settle reprice does) and returns the reprice's id.
func (e *env) repriceable() (pipeline.Date, *ledger.Ledger, func(*transform.Rules) int64) {
	t := e.t
	t.Helper()
	ctx := context.Background()
	d, err := pipeline.ParseDate(testDate)
	if err != nil {
		t.Fatal(err)
	}
	e.recordRun(d, pipeline.Whole, pipeline.RunDone, "")
	l, err := ledger.Open(ctx, e.url, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return d, l, func(rs *transform.Rules) int64 {
		t.Helper()
		name, body := rs.File()
		res, err := pipeline.Reprice(ctx, l, d, pipeline.RulesFile{Name: name, Body: body, Hash: rs.Hash()}, channelSpecs(),
			func(o pipeline.Order, d pipeline.Date) (pipeline.Split, error) { return transform.SplitOrder(o, rs, d) }, false)
		if err != nil || res.ID == 0 {
			t.Fatalf("reprice under %s: %+v %v", name, res, err)
		}
		return res.ID
	}
}

// TestARepriceRunAgainNamesTheLaterDatesAgain: a reprice names the later
// dates whose reports, written before, show its entries only once written
// again. Run again after it recorded (killed after its commit, before or
// while it printed), it records nothing and says so again, from what the
// ledger holds of the reprice. Before, the re-run printed nothing of it
// (seen failing so): the dates to write again were said once, if at all.
func TestARepriceRunAgainNamesTheLaterDatesAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.scenario()
	day1, day2 := scenarioDays[0], scenarioDays[1]
	if out, code := e.runDay(sim, day1); code != 0 {
		t.Fatalf("%s: exit %d\n%s", day1, code, out)
	}
	d2, err := pipeline.ParseDate(day2)
	if err != nil {
		t.Fatal(err)
	}
	e.recordRun(d2, pipeline.Whole, pipeline.RunDone, "")
	twelve := e.writeRules("rules-12.csv", 1200)
	note := "the reports of the 1 dates run after it (" + day2 + ")"
	out := e.mustSettle("reprice", "--date", day1, "--rules", twelve, "--out", e.reports)
	if !strings.Contains(out, note) || e.count(`SELECT count(*) FROM settle.adjustments WHERE kind = 'reprice'`) == 0 {
		t.Fatalf("reprice: want entries recorded and %s named:\n%s", day2, out)
	}
	out = e.mustSettle("reprice", "--date", day1, "--rules", twelve, "--out", e.reports)
	if !strings.Contains(out, "nothing recorded") || !strings.Contains(out, note) {
		t.Errorf("the same reprice again: want nothing recorded, and %s named again:\n%s", day2, out)
	}
}

// TestStatusRulesInJSONHasTheReprices: settle status --rules -o json
// gives, as the text does, the rules files the date was repriced with,
// oldest first (the last one's rules are the date's): on each run of its
// list, beside the file the run split with, as "repriced". Before, the
// JSON had the runs' files alone (seen failing so: no reprice).
func TestStatusRulesInJSONHasTheReprices(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, _, reprice := e.repriceable()
	twelve, eleven := rulesOf(t, "rules-12.csv", 1200), rulesOf(t, "rules-11.csv", 1100)
	reprice(twelve)
	reprice(eleven)
	var runs []struct {
		ledger.RunRules
		Repriced []ledger.Reprice `json:"repriced"`
	}
	out := e.mustSettle("status", "--date", testDate, "--rules", "-o", "json")
	if err := json.Unmarshal([]byte(out), &runs); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(runs) != 1 || runs[0].RunID == 0 || len(runs[0].Repriced) != 2 {
		t.Fatalf("status --rules -o json: want the date's run with its 2 reprices:\n%s", out)
	}
	for i, rs := range []*transform.Rules{twelve, eleven} {
		name, body := rs.File()
		if p := runs[0].Repriced[i]; p.Name != name || p.Body != string(body) || p.RulesHash != rs.Hash() {
			t.Errorf("reprice %d: %+v; want %s, its body and rules hash", i, p, name)
		}
	}
	if text := e.mustSettle("status", "--date", testDate, "--rules"); !strings.Contains(text, "rules-12.csv") ||
		!strings.Contains(text, "rules-11.csv, rules "+eleven.Hash()+"; the date's rules now") {
		t.Errorf("status --rules: want both reprices, the last the date's rules:\n%s", text)
	}
}
