package ledger_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// closeFixture records S1's order O1 of the day before day, carried (900
// USD, an open held entry of that date), and the runs of both dates: a
// balance CloseBalance closes under the run of day, once nothing refuses
// it. It returns the run of day.
func closeFixture(t *testing.T, l *ledger.Ledger) *pipeline.Run {
	t.Helper()
	before := openRun(t, l, day.AddDays(-1))
	run := openRun(t, l, day)
	at := time.Date(day.Year, time.Month(day.Month), day.Day-1, 12, 0, 0, 0, time.UTC)
	writeShares(t, l, before, at, []share{{"O1", "S1", chInfinia, "USD", 900}})
	execAll(t, l,
		`UPDATE items SET state = 'carried'`,
		fmt.Sprintf(`INSERT INTO adjustments (seller_id, currency, kind, amount_minor, business_date, run_id)
			VALUES ('S1', 'USD', 'held', 900, '%s', %d)`, before.Key.Date, before.ID),
		`UPDATE items SET carry_id = (SELECT id FROM adjustments)`)
	return run
}

func execAll(t *testing.T, l *ledger.Ledger, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := l.DB().Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// closeS1 closes S1's balance in USD under run (--force: the fixture
// records no run_sellers).
func closeS1(l *ledger.Ledger, run *pipeline.Run) (ledger.BalanceClose, error) {
	return l.CloseBalance(context.Background(), run, "S1", "USD", "paid by bank transfer, FIN-1", true, false)
}

// closes is how many close entries the ledger holds.
func closes(t *testing.T, l *ledger.Ledger) int {
	t.Helper()
	var n int
	if err := l.DB().QueryRow(`SELECT count(*) FROM adjustments WHERE kind = 'close'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestClosingABalanceIsRefusedWhileARunOrALateRefundMayMoveIt: a close of
// S1's balance is refused (usage, recording nothing) while a run keeps a
// revenue share of S1 in USD to check (its planning nets the balance;
// mutant: the payout_candidates check dropped), while a late refund of
// its order is pending (its clawback moves the balance) or rejected (what
// it owes back is unknown), also one whose row names another seller than
// the order's (BlockedByLateRefunds blocks the order's seller's revenue
// shares for it; mutants: each check dropped), and, once the refund is
// worked out, closed.
func TestClosingABalanceIsRefusedWhileARunOrALateRefundMayMoveIt(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	run := closeFixture(t, l)
	refused := func(what, want string) {
		t.Helper()
		if _, err := closeS1(l, run); pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("%s: %v, want refused saying %q", what, err, want)
		}
		if n := closes(t, l); n != 0 {
			t.Fatalf("%s: %d closes recorded", what, n)
		}
	}

	execAll(t, l, fmt.Sprintf(`INSERT INTO payout_candidates (run_id, kind, currency, seller_id, payable_minor, items, carried_minor, account)
		VALUES (%d, 'revenue_share', 'USD', 'S1', 0, 0, 900, 'I-S1')`, run.ID))
	refused("a payout kept to check", fmt.Sprintf("the run of %s (shard 0/1) keeps a revenue share of it to check (it may net the balance: 900)", day))
	execAll(t, l, `DELETE FROM payout_candidates`)

	execAll(t, l, fmt.Sprintf(`INSERT INTO late_refunds (refund_no, order_no, seller_id, amount_minor, created_at, run_id, business_date, state, reason)
		VALUES ('R1', 'O1', 'S1', 100, now(), %d, '%s', 'pending', 'read')`, run.ID, day))
	refused("a late refund pending", "late refund R1 of order O1 is pending (read)")
	execAll(t, l, `UPDATE late_refunds SET state = 'rejected', reason = 'amount unreadable'`)
	refused("a late refund rejected", "late refund R1 of order O1 is rejected (amount unreadable)")
	execAll(t, l, `UPDATE late_refunds SET seller_id = 'S9', reason = 'of another seller'`)
	refused("a late refund rejected, its row of another seller", "late refund R1 of order O1 is rejected (of another seller)")
	execAll(t, l, `UPDATE late_refunds SET state = 'ignored'`)

	c, err := closeS1(l, run)
	if err != nil || c.Resolution == nil || c.Balance != 900 || c.Entries != 1 {
		t.Fatalf("close once nothing refuses it: %+v, %v", c, err)
	}
}

// TestClosingABalanceIsRefusedBeforeALaterDate: a close recorded under a
// run of one date is refused while an entry of the balance is dated
// after it (mutant: the check dropped; the close netted an entry of a
// later date into a date before it), or a later date has a run (the
// command's date is the latest: a run of a later date begun since read
// the balance, and its reports say it carried it; mutant: the check
// dropped).
func TestClosingABalanceIsRefusedBeforeALaterDate(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	run := closeFixture(t, l)
	later := day.AddDays(1)
	execAll(t, l, fmt.Sprintf(`INSERT INTO adjustments (seller_id, currency, kind, amount_minor, business_date, run_id)
		VALUES ('S1', 'USD', 'held', 50, '%s', %d)`, later, run.ID))
	if _, err := closeS1(l, run); pipeline.KindOf(err) != pipeline.KindUsage ||
		!strings.Contains(fmt.Sprint(err), fmt.Sprintf("an entry of its balance is dated %s, after %s", later, day)) {
		t.Errorf("an entry dated after the close's date: %v, want refused", err)
	}
	execAll(t, l, `DELETE FROM adjustments WHERE amount_minor = 50`)
	openRun(t, l, later)
	if _, err := closeS1(l, run); pipeline.KindOf(err) != pipeline.KindUsage ||
		!strings.Contains(fmt.Sprint(err), fmt.Sprintf("a run of %s, after %s", later, day)) {
		t.Errorf("a run of a later date: %v, want refused", err)
	}
	if n := closes(t, l); n != 0 {
		t.Fatalf("%d closes recorded", n)
	}
}

// TestAClosesKeyIsASubjectOfItsDate: settle status --subject of a close's
// key says what it closed - its run, the entries it netted and its own,
// the order whose carried share it closed - and who closed it, when and
// why (was: no side effect of the date has it, exit 2); of another date,
// it names the close's.
func TestAClosesKeyIsASubjectOfItsDate(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := closeFixture(t, l)
	c, err := closeS1(l, run)
	if err != nil {
		t.Fatal(err)
	}
	h, err := l.SubjectHistory(ctx, day, c.Key)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Runs) != 1 || h.Runs[0].ID != run.ID || len(h.Attempts) != 0 {
		t.Errorf("runs %+v, attempts %+v: want the close's run alone, no attempt", h.Runs, h.Attempts)
	}
	var kinds []string
	for _, a := range h.Adjustments {
		kinds = append(kinds, fmt.Sprintf("%s %d into %s", a.Kind, a.Amount, a.NettedInto))
	}
	if want := fmt.Sprintf("[held 900 into %[1]s close -900 into %[1]s]", c.Key); fmt.Sprint(kinds) != want {
		t.Errorf("entries %v, want %s", kinds, want)
	}
	if len(h.Items) != 1 || h.Items[0].OrderNo != "O1" || h.Items[0].State != "carried" {
		t.Errorf("orders %+v, want O1, carried", h.Items)
	}
	if len(h.Resolved) != 1 || h.Resolved[0].Kind != ledger.KindBalanceClosed || h.Resolved[0].Note != "paid by bank transfer, FIN-1" ||
		h.Resolved[0].Actor != "ledger test" || h.Resolved[0].Key != c.Key {
		t.Errorf("resolved %+v, want the close's, with its note and who", h.Resolved)
	}
	if _, err := l.SubjectHistory(ctx, day.AddDays(-1), c.Key); pipeline.KindOf(err) != pipeline.KindUsage ||
		!strings.Contains(fmt.Sprint(err), fmt.Sprintf("recorded on %s, not %s", day, day.AddDays(-1))) {
		t.Errorf("the close's key of another date: %v, want refused naming the close's date", err)
	}
}

// TestTheReportsAroundACloseBalance: with S1's 900 carried from the day
// before day and closed on day, and a late refund of its order clawed
// back after the close (100, dated the next day, as a run of that date
// records it), every date's sellers and summary lines balance; day's
// sellers line has the 900 carried in and closed (clawback -900), nothing
// carried forward, and the clawback after the close is carried forward
// the next day, not closed (mutant: the close left out of the clawback
// column: day's line did not balance).
func TestTheReportsAroundACloseBalance(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := closeFixture(t, l)
	if _, err := closeS1(l, run); err != nil {
		t.Fatal(err)
	}
	next := openRun(t, l, day.AddDays(1))
	execAll(t, l, fmt.Sprintf(`INSERT INTO adjustments (seller_id, currency, kind, amount_minor, order_no, refund_no, refund_minor, commission_back,
		business_date, run_id) VALUES ('S1', 'USD', 'clawback', -100, 'O1', 'R2', 150, 50, '%s', %d)`, next.Key.Date, next.ID))
	want := map[pipeline.Date][3]int64{day.AddDays(-1): {0, 0, 900}, day: {900, -900, 0}, day.AddDays(1): {0, -100, -100}}
	for d, w := range want {
		if bad, err := l.Unbalanced(ctx, pipeline.RunKey{Date: d, Shard: pipeline.Whole}); err != nil || len(bad) > 0 {
			t.Errorf("%s: %v %v", d, bad, err)
		}
		var got [3]int64
		if err := l.SellerLines(ctx, d, func(s pipeline.SellerLine) error {
			if s.SellerID == "S1" {
				got = [3]int64{s.CarriedIn, s.Clawback, s.Held}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got != w {
			t.Errorf("%s: S1 carried in, clawback, carried forward %v, want %v", d, got, w)
		}
	}
}

// TestTheOrdersOfABalanceClosedSayItWasClosed: S1's order O1, carried, is
// in the balance a close closes. Its row in its date's orders.csv, written
// again, stays carried (no new state) but gives the close's key as its
// payout_key and says in its reason that the balance was closed, on which
// date and that settle will not pay it; another order of the date carried
// and still open says nothing of a close. Before, its row was the same as
// an order carried and still to be paid by the seller's next revenue share
// ("carried", no key), though none would ever pay it.
func TestTheOrdersOfABalanceClosedSayItWasClosed(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := closeFixture(t, l)
	c, err := closeS1(l, run)
	if err != nil {
		t.Fatal(err)
	}
	before := day.AddDays(-1)
	var prev *pipeline.Run
	if prev, err = l.GetRun(ctx, pipeline.RunKey{Date: before, Shard: pipeline.Whole}); err != nil || prev == nil {
		t.Fatalf("run of %s: %v", before, err)
	}
	at := time.Date(day.Year, time.Month(day.Month), day.Day-1, 12, 0, 0, 0, time.UTC)
	writeShares(t, l, prev, at, []share{{"O2", "S2", chInfinia, "USD", 300}})
	execAll(t, l, fmt.Sprintf(`INSERT INTO adjustments (seller_id, currency, kind, amount_minor, business_date, run_id)
			VALUES ('S2', 'USD', 'held', 300, '%s', %d)`, before, prev.ID),
		`UPDATE items SET state = 'carried', reason = 'carried: below the minimum', carry_id = (SELECT max(id) FROM adjustments WHERE seller_id = 'S2') WHERE order_no = 'O2'`)
	rows := map[string]pipeline.OrderLine{}
	if err := l.OrderLines(ctx, before, func(o pipeline.OrderLine) error {
		rows[o.OrderNo] = o
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	o1, o2 := rows["O1"], rows["O2"]
	if o1.State != "carried" || o1.PayoutKey != c.Key || !strings.Contains(o1.Reason, "closed on "+day.String()) || !strings.Contains(o1.Reason, c.Key) || o1.Balanced != "true" {
		t.Errorf("O1, its balance closed: %+v; want carried, payout key %s, its reason naming the close of %s", o1, c.Key, day)
	}
	if o2.State != "carried" || o2.PayoutKey != "" || o2.Reason != "carried: below the minimum" {
		t.Errorf("O2, carried and open: %+v; want carried, no key, its reason as recorded", o2)
	}
}

// TestAReextractOfADateWhoseCarriedBalanceWasClosedSaysSo: the day
// before's run carried O1 into an entry a close netted. Read again, the
// entry would be dropped and O1 carried anew, open for S1's next revenue
// share: refused, naming the close, not "netted into a payout" (no payout
// nets it).
func TestAReextractOfADateWhoseCarriedBalanceWasClosedSaysSo(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := closeFixture(t, l)
	c, err := closeS1(l, run)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := l.GetRun(ctx, pipeline.RunKey{Date: day.AddDays(-1), Shard: pipeline.Whole})
	if err != nil || prev == nil {
		t.Fatalf("run of the day before: %v", err)
	}
	err = l.Reextract(ctx, prev.ID)
	want := "1 carried balances closed (settle sellers close) (S1 USD by " + c.Key + ")"
	if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "netted into a payout") {
		t.Fatalf("re-extract of the day before: %v; want a refusal naming %q", err, want)
	}
}
