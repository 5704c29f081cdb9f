package ledger_test

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// row is a snapshot row: order number (nil: NULL) and amount as read.
type row struct {
	orderNo *string
	amount  string
}

func sp(s string) *string { return &s }

// transform writes rows as the run's snapshot and runs the real transform
// stage over it with a classifier that rejects a NULL or empty order number
// and an amount that is not "10".
func transform(t *testing.T, l *ledger.Ledger, d pipeline.Date, rows []row) (*pipeline.Run, string) {
	t.Helper()
	ctx := context.Background()
	run := openRun(t, l, d)
	if _, err := l.WriteSnapshot(ctx, run.ID, func(add func(pipeline.SourceRow) error, addSeller func(pipeline.Seller) error) error {
		for _, r := range sourceRows(d, rows) {
			if err := add(r); err != nil {
				return err
			}
		}
		return addSeller(pipeline.Seller{ID: "S1", Name: "one"})
	}); err != nil {
		t.Fatal(err)
	}
	summary, err := pipeline.TransformStage(l, func(map[string]pipeline.Seller) pipeline.Classifier { return classify(d) })(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	return run, summary
}

func openRun(t *testing.T, l *ledger.Ledger, d pipeline.Date) *pipeline.Run {
	t.Helper()
	run, _, err := l.OpenRun(context.Background(), pipeline.RunKey{Date: d, Shard: pipeline.Whole}, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// openRunBefore opens the whole-day run of d in a ledger migrated in part,
// as a binary of its version does: OpenRun writes columns of later
// migrations (runs.accounts, 00026).
func openRunBefore(t *testing.T, l *ledger.Ledger, d pipeline.Date) *pipeline.Run {
	t.Helper()
	if _, err := l.DB().Exec(`INSERT INTO runs (business_date, shard_index, shard_count, time_zone, rules_hash, config_hash) VALUES ($1, 0, 1, 'UTC', '', '')`, d.String()); err != nil {
		t.Fatal(err)
	}
	run, err := l.GetRun(context.Background(), pipeline.RunKey{Date: d, Shard: pipeline.Whole})
	if err != nil || run == nil {
		t.Fatalf("run of %s: %v", d, err)
	}
	return run
}

// sourceRows are rows as the source gives them, numbered from 1.
func sourceRows(d pipeline.Date, rows []row) []pipeline.SourceRow {
	at := time.Date(d.Year, time.Month(d.Month), d.Day, 12, 0, 0, 0, time.UTC)
	var out []pipeline.SourceRow
	for i, r := range rows {
		out = append(out, pipeline.SourceRow{Seq: int64(i + 1), OrderNo: r.orderNo, SellerID: sp("S1"), Provider: sp("infiniapay"),
			Currency: sp("USD"), AmountMinor: sp(r.amount), RefundedMinor: sp("0"), PaidAt: &at, ConfirmedAt: &at})
	}
	return out
}

// classify rejects a NULL or empty order number and an amount that is not
// "10".
func classify(d pipeline.Date) pipeline.Classifier {
	at := time.Date(d.Year, time.Month(d.Month), d.Day, 12, 0, 0, 0, time.UTC)
	return func(r pipeline.SourceRow) (pipeline.Split, *pipeline.Reject, error) {
		switch {
		case r.OrderNo == nil:
			rej := pipeline.RejectOf(r, "order_no is NULL")
			return pipeline.Split{}, &rej, nil
		case *r.OrderNo == "":
			rej := pipeline.RejectOf(r, "order_no is empty")
			return pipeline.Split{}, &rej, nil
		case *r.AmountMinor != "10":
			rej := pipeline.RejectOf(r, "bad amount")
			return pipeline.Split{}, &rej, nil
		}
		o := pipeline.Order{Seq: r.Seq, OrderNo: *r.OrderNo, SellerID: "S1", Channel: chInfinia,
			Currency: "USD", Amount: 10, PaidAt: at, ConfirmedAt: at}
		return pipeline.Split{Order: o, Rule: "r", Commission: 1, SellerShare: 9}, nil, nil
	}
}

// outcome lists the run's items and rejects: "seq:reason" for rejects (by
// seq), then the order numbers of the items.
func outcome(t *testing.T, l *ledger.Ledger, run *pipeline.Run) (rejects, items string) {
	t.Helper()
	var rs, is []string
	if err := l.DB().Select(&rs, `SELECT seq || ':' || reason FROM rejects WHERE run_id = $1 ORDER BY seq`, run.ID); err != nil {
		t.Fatal(err)
	}
	if err := l.DB().Select(&is, `SELECT order_no FROM items WHERE run_id = $1 ORDER BY order_no`, run.ID); err != nil {
		t.Fatal(err)
	}
	checkRunTotals(t, l, run.ID)
	return strings.Join(rs, "|"), strings.Join(is, ",")
}

// checkRunTotals checks that the totals recorded with a run's items are
// its items' sums (whichever way the items went in).
func checkRunTotals(t *testing.T, l *ledger.Ledger, runID int64) {
	t.Helper()
	const sums = `SELECT channel, currency, count(*) AS orders, sum(gross_minor)::text AS gross, sum(refunded_minor)::text AS refunded,
		sum(commission_minor)::text AS commission, sum(seller_minor)::text AS seller FROM items WHERE run_id = $1
		GROUP BY channel, currency ORDER BY channel, currency`
	const recorded = `SELECT channel, currency, orders, gross_minor::text AS gross, refunded_minor::text AS refunded,
		commission_minor::text AS commission, seller_minor::text AS seller FROM run_totals WHERE run_id = $1
		ORDER BY channel, currency`
	type line struct {
		Channel, Currency                   string
		Orders                              int64
		Gross, Refunded, Commission, Seller string
	}
	var want, got []line
	if err := l.DB().Select(&want, sums, runID); err != nil {
		t.Fatal(err)
	}
	if err := l.DB().Select(&got, recorded, runID); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("run %d: totals recorded %+v, its items sum to %+v", runID, got, want)
	}
}

// A run's totals are recorded with its items, by channel and currency,
// exactly (a sum past int64 too); a run with none recorded (before
// migration 00016) has them summed from its items; a re-extract drops them
// with the items.
func TestRunTotalsRecordedWithTheItems(t *testing.T) {
	ctx := context.Background()
	l, _ := open(t)
	d := pipeline.Date{Year: 2026, Month: 11, Day: 12}
	at := time.Date(2026, 11, 12, 12, 0, 0, 0, time.UTC)
	write := func(run *pipeline.Run, splits []pipeline.Split) {
		t.Helper()
		writeSplits(t, l, run, splits...)
	}
	split := func(no string, ch pipeline.Channel, cur pipeline.Currency, amount, refunded, commission int64) pipeline.Split {
		o := pipeline.Order{Seq: int64(len(no)), OrderNo: no, SellerID: "S1", Channel: ch, Currency: cur, Amount: amount,
			Refunded: refunded, PaidAt: at, ConfirmedAt: at}
		return pipeline.Split{Order: o, Rule: "r", Commission: commission, SellerShare: amount - refunded - commission}
	}
	run := openRun(t, l, d)
	write(run, []pipeline.Split{
		split("A1", chInfinia, "USD", 1000, 100, 30), split("A2", chInfinia, "USD", 7, 0, 1),
		split("A3", chInfinia, "EUR", 500, 0, 5), split("A4", "wechatpay", "CNY", 12345, 45, 300),
		split("A5", "wechatpay", "CNY", 1, 1, 0),
	})
	checkRunTotals(t, l, run.ID)
	want := []pipeline.Totals{
		{Channel: chInfinia, Currency: "EUR", Orders: 1, Gross: 500, Commission: 5, Seller: 495},
		{Channel: chInfinia, Currency: "USD", Orders: 2, Gross: 1007, Refunded: 100, Commission: 31, Seller: 876},
		{Channel: "wechatpay", Currency: "CNY", Orders: 2, Gross: 12346, Refunded: 46, Commission: 300, Seller: 12000},
	}
	got, err := l.TotalsOfRun(ctx, run.ID)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("totals %+v (%v), want %+v", got, err, want)
	}
	// More items for the run: added to its totals.
	write(run, []pipeline.Split{split("A6", chInfinia, "EUR", 20, 0, 2)})
	checkRunTotals(t, l, run.ID)
	want[0] = pipeline.Totals{Channel: chInfinia, Currency: "EUR", Orders: 2, Gross: 520, Commission: 7, Seller: 513}
	// Without recorded totals (a run from before they were kept): the same, from the items.
	if _, err := l.DB().Exec(`DELETE FROM run_totals WHERE run_id = $1`, run.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := l.TotalsOfRun(ctx, run.ID); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("totals summed from the items %+v (%v), want %+v", got, err, want)
	}

	// Sums past int64 are recorded exactly (summed by the database); reading
	// them as int64 fails rather than wraps.
	big := openRun(t, l, pipeline.Date{Year: 2026, Month: 11, Day: 13})
	write(big, []pipeline.Split{split("B1", chInfinia, "USD", 5e18, 0, 0), split("B2", chInfinia, "USD", 5e18, 0, 0)})
	checkRunTotals(t, l, big.ID)
	var gross string
	if err := l.DB().Get(&gross, `SELECT gross_minor::text FROM run_totals WHERE run_id = $1`, big.ID); err != nil || gross != "10000000000000000000" {
		t.Fatalf("gross recorded %q (%v)", gross, err)
	}
	if got, err := l.TotalsOfRun(ctx, big.ID); err == nil {
		t.Fatalf("totals past int64 read as %+v", got)
	}

	// A re-extract drops the run's totals with its items.
	if err := l.Reextract(ctx, big.ID); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := l.DB().Get(&n, `SELECT count(*) FROM run_totals WHERE run_id = $1`, big.ID); err != nil || n != 0 {
		t.Fatalf("%d totals left after a re-extract (%v)", n, err)
	}
}

// Every row whose order number another row shares is rejected, however far
// apart the rows are and whatever their own outcome; NULL order numbers
// share nothing, empty ones do; an order settled by another run is a reject
// naming it. The rows are never sorted: all of this is found set-wise.
func TestTransformRejectsDuplicatesSetWise(t *testing.T) {
	l, _ := open(t)
	earlier := pipeline.Date{Year: 2026, Month: 11, Day: 22}
	first, _ := transform(t, l, earlier, []row{{sp("E"), "10"}, {sp("F"), "10"}})

	// An item shares its order number with a later item (A), with a
	// rejected row (C), and with another run's item (E, F).
	run, summary := transform(t, l, day, []row{
		{sp("A"), "10"}, {sp("B"), "10"}, {nil, "10"}, {sp("A"), "10"}, {nil, "10"}, {sp(""), "10"}, {sp(""), "10"},
		{sp("C"), "bad"}, {sp("C"), "10"}, {sp("E"), "10"}, {sp("F"), "10"}, {sp("F"), "10"}, {sp("G"), "10"},
	})
	dup := "duplicate order_no: 2 rows share it"
	// Rows without an order number share none: the two NULLs and the two
	// empty ones are each rejected for what they are (the empty ones were
	// "duplicate order_no", found by an adversarial data review).
	want := fmt.Sprintf("1:%[1]s|3:order_no is NULL|4:%[1]s|5:order_no is NULL|6:order_no is empty|7:order_no is empty|8:%[1]s|9:%[1]s|"+
		"10:already settled on 2026-11-22 by run %[2]d|11:%[1]s|12:%[1]s", dup, first.ID)
	rejects, items := outcome(t, l, run)
	if rejects != want || items != "B,G" {
		t.Fatalf("rejects\n got %s\nwant %s\nitems %s, want B,G", rejects, want, items)
	}
	if summary != "2 items recorded, 11 rejected" {
		t.Fatalf("summary %q", summary)
	}
	// A duplicate's reject keeps the row as read.
	var amount string
	if err := l.DB().Get(&amount, `SELECT amount FROM rejects WHERE run_id = $1 AND seq = 8`, run.ID); err != nil || amount != "bad" {
		t.Fatalf("amount of row 8: %q %v", amount, err)
	}
	if _, items := outcome(t, l, first); items != "E,F" {
		t.Fatalf("the earlier run's items changed: %s", items)
	}

	// No two items share an order number: only the rejected rows are
	// looked at (H is an item and a reject, K two rejects).
	next := pipeline.Date{Year: 2026, Month: 11, Day: 24}
	run, summary = transform(t, l, next, []row{
		{sp("H"), "10"}, {sp("I"), "bad"}, {sp("H"), "bad"}, {sp("J"), "10"}, {nil, "1"}, {nil, "1"}, {sp("K"), "x"}, {sp("K"), "y"},
	})
	want = fmt.Sprintf("1:%[1]s|2:bad amount|3:%[1]s|5:order_no is NULL|6:order_no is NULL|7:%[1]s|8:%[1]s", dup)
	if rejects, items := outcome(t, l, run); rejects != want || items != "J" {
		t.Fatalf("rejects\n got %s\nwant %s\nitems %s, want J", rejects, want, items)
	}
	if summary != "1 items recorded, 7 rejected" {
		t.Fatalf("summary %q", summary)
	}

	// Rejects that share nothing: kept as they are.
	run, summary = transform(t, l, pipeline.Date{Year: 2026, Month: 11, Day: 25}, []row{
		{sp("L"), "10"}, {sp("M"), "bad"}, {nil, "1"}, {sp("N"), "10"}, {sp(""), "10"},
	})
	want = "2:bad amount|3:order_no is NULL|5:order_no is empty"
	if rejects, items := outcome(t, l, run); rejects != want || items != "L,N" || summary != "2 items recorded, 3 rejected" {
		t.Fatalf("rejects\n got %s\nwant %s\nitems %s, want L,N; %s", rejects, want, items, summary)
	}

	// More rejects than the direct way holds in memory: the same outcome,
	// through the staging table.
	defer ledger.SetMaxHeldRejects(2)()
	run, summary = transform(t, l, pipeline.Date{Year: 2026, Month: 11, Day: 26}, []row{
		{sp("P"), "10"}, {sp("Q"), "bad"}, {nil, "1"}, {sp("R"), "10"}, {sp(""), "10"}, {sp("P"), "x"},
	})
	want = fmt.Sprintf("1:%[1]s|2:bad amount|3:order_no is NULL|5:order_no is empty|6:%[1]s", dup)
	if rejects, items := outcome(t, l, run); rejects != want || items != "R" || summary != "1 items recorded, 5 rejected" {
		t.Fatalf("rejects\n got %s\nwant %s\nitems %s, want R; %s", rejects, want, items, summary)
	}
}

// A provider transaction settles once, ever (migration 00019): every
// order of a day naming a transaction another order of that day names is
// rejected (a row rejected for its order number keeps that reason, and
// still counts), and so is an order naming a transaction another date
// settled. No transaction (an Infinia order may have none) names nothing,
// and the same transaction id at another channel is another transaction.
func TestProviderTransactionSettlesOnce(t *testing.T) {
	l, _ := open(t)
	type txnRow struct{ orderNo, channel, txn string }
	run := func(d pipeline.Date, rows []txnRow) (*pipeline.Run, string) {
		t.Helper()
		ctx := context.Background()
		at := time.Date(d.Year, time.Month(d.Month), d.Day, 12, 0, 0, 0, time.UTC)
		r := openRun(t, l, d)
		if _, err := l.WriteSnapshot(ctx, r.ID, func(add func(pipeline.SourceRow) error, addSeller func(pipeline.Seller) error) error {
			for i, row := range rows {
				if err := add(pipeline.SourceRow{Seq: int64(i + 1), OrderNo: sp(row.orderNo), SellerID: sp("S1"), Provider: sp(row.channel),
					ProviderTxnID: sp(row.txn), Currency: sp("USD"), AmountMinor: sp("10"), RefundedMinor: sp("0"), PaidAt: &at, ConfirmedAt: &at}); err != nil {
					return err
				}
			}
			return addSeller(pipeline.Seller{ID: "S1", Name: "one"})
		}); err != nil {
			t.Fatal(err)
		}
		classify := func(sr pipeline.SourceRow) (pipeline.Split, *pipeline.Reject, error) {
			o := pipeline.Order{Seq: sr.Seq, OrderNo: *sr.OrderNo, SellerID: "S1", Channel: pipeline.Channel(*sr.Provider),
				ProviderTxnID: *sr.ProviderTxnID, Currency: "USD", Amount: 10, PaidAt: at, ConfirmedAt: at}
			return pipeline.Split{Order: o, Rule: "r", Commission: 1, SellerShare: 9, TxnOnce: o.Channel != chInfinia}, nil, nil
		}
		summary, err := pipeline.TransformStage(l, func(map[string]pipeline.Seller) pipeline.Classifier { return classify })(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return r, summary
	}
	earlier := pipeline.Date{Year: 2026, Month: 11, Day: 22}
	first, summary := run(earlier, []txnRow{{"E", "wechatpay", "TE"}, {"F", "infiniapay", ""}, {"G", "infiniapay", ""}})
	if rejects, items := outcome(t, l, first); rejects != "" || items != "E,F,G" || summary != "3 items recorded, 0 rejected" {
		t.Fatalf("a day sharing no transaction: rejects %q, items %s (%s)", rejects, items, summary)
	}

	r, summary := run(day, []txnRow{
		{"A", "wechatpay", "T1"}, {"B", "wechatpay", "T1"}, // one transaction, two orders
		{"C", "wechatpay", "TE"},                                                           // settled on the earlier date with E
		{"D", "payprotocol", "T2"}, {"D", "payprotocol", "T3"}, {"H", "payprotocol", "T2"}, // D twice, and H shares D's T2
		{"I", "infiniapay", ""}, {"J", "infiniapay", ""}, // no transaction
		{"K", "payprotocol", "T1"}, // T1 at another channel
		{"L", "wechatpay", "T4"},
		{"M", "infiniapay", "P1"}, {"N", "infiniapay", "P1"}, // one Infinia payment for two orders: Infinia settles per order
	})
	want := fmt.Sprintf("1:duplicate provider_txn_id: 2 orders name it|2:duplicate provider_txn_id: 2 orders name it|"+
		"3:provider_txn_id already settled with order E on 2026-11-22 by run %d|"+
		"4:duplicate order_no: 2 rows share it|5:duplicate order_no: 2 rows share it|6:duplicate provider_txn_id: 2 orders name it", first.ID)
	rejects, items := outcome(t, l, r)
	if rejects != want || items != "I,J,K,L,M,N" || summary != "6 items recorded, 6 rejected" {
		t.Fatalf("rejects\n got %s\nwant %s\nitems %s, want I,J,K,L,M,N (%s)", rejects, want, items, summary)
	}
	if _, items := outcome(t, l, first); items != "E,F,G" {
		t.Fatalf("the earlier run's items changed: %s", items)
	}
	// The rule holds in the database, whoever writes.
	_, err := l.DB().Exec(`INSERT INTO items (order_no, run_id, business_date, seller_id, channel, provider_txn_id, currency,
		category, gross_minor, refunded_minor, commission_minor, seller_minor, rule, paid_at, confirmed_at, txn_once)
		VALUES ('Z', $1, '2026-11-23', 'S1', 'wechatpay', 'T4', 'USD', '', 10, 0, 1, 9, 'r', now(), now(), true)`, r.ID)
	if pe, ok := err.(*pq.Error); !ok || pe.Code != "23505" || pe.Constraint != "items_provider_txn" {
		t.Fatalf("a second item of transaction T4: %v", err)
	}
}

// Migration 00019 on a ledger written before it: the items of the
// channels that settle per transaction are held to the rule at once, but
// for those that already share a transaction (settled before the rule),
// which it leaves out and lists for a person; it never fails.
func TestProviderTransactionRuleCoversTheLedgerBeforeIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := openAt(t, 18)
	r := openRunBefore(t, l, day)
	before := `INSERT INTO items (order_no, run_id, business_date, seller_id, channel, provider_txn_id, currency,
		category, gross_minor, refunded_minor, commission_minor, seller_minor, rule, paid_at, confirmed_at)
		VALUES ($1, $2, '2026-11-23', 'S1', $3, $4, 'USD', '', 10, 0, 1, 9, 'r', now(), now())`
	for _, it := range [][3]string{{"A", "wechatpay", "T1"}, {"B", "wechatpay", "T1"}, {"C", "wechatpay", "T2"},
		{"D", "payprotocol", "T1"}, {"E", "infiniapay", "P1"}, {"F", "infiniapay", "P1"}} {
		if _, err := l.DB().Exec(before, it[0], r.ID, it[1], it[2]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var shared, marked []string
	if err := l.DB().Select(&shared, `SELECT channel || '/' || provider_txn_id || '/' || order_no FROM items_txn_shared_before ORDER BY 1`); err != nil {
		t.Fatal(err)
	}
	if err := l.DB().Select(&marked, `SELECT order_no FROM items WHERE txn_once ORDER BY 1`); err != nil {
		t.Fatal(err)
	}
	if strings.Join(shared, ",") != "wechatpay/T1/A,wechatpay/T1/B" || strings.Join(marked, ",") != "C,D" {
		t.Fatalf("listed as shared before the rule %v, held to it %v", shared, marked)
	}
	after := `INSERT INTO items (order_no, run_id, business_date, seller_id, channel, provider_txn_id, currency,
		category, gross_minor, refunded_minor, commission_minor, seller_minor, rule, paid_at, confirmed_at, txn_once)
		VALUES ($1, $2, '2026-11-23', 'S1', $3, $4, 'USD', '', 10, 0, 1, 9, 'r', now(), now(), $5)`
	for _, c := range []struct {
		order, channel, txn string
		once, refused       bool
	}{
		{"G", "wechatpay", "T2", true, true},   // C settled T2 before the migration
		{"H", "payprotocol", "T1", true, true}, // D settled it at Pay Protocol
		{"I", "wechatpay", "T1", true, false},  // A and B are left out
		{"J", "wechatpay", "T3", true, false},
		{"K", "wechatpay", "T3", true, true},
		{"L", "infiniapay", "P1", false, false}, // Infinia settles per order
	} {
		_, err := l.DB().Exec(after, c.order, r.ID, c.channel, c.txn, c.once)
		var pe *pq.Error
		refused := errors.As(err, &pe) && pe.Code == "23505" && pe.Constraint == "items_provider_txn"
		if refused != c.refused || (err != nil && !refused) {
			t.Errorf("item %s of %s/%s: %v", c.order, c.channel, c.txn, err)
		}
	}
}

// An older binary on the migrated ledger: a settle built before
// migration 00019 writes items without txn_once, and such an item was
// outside the rule (a copy of its order under another number could be
// paid again). Migration 00023 leaves the column no default, so its write
// is refused whole; and a binary from then on refuses a ledger migrated
// past what it knows, before it reads a day.
func TestAnOlderBinaryCannotWriteOutsideTheRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := open(t)
	r := openRun(t, l, day)
	// What a binary from before 00019 writes: the columns it knows.
	_, err := l.DB().Exec(`INSERT INTO items (order_no, run_id, business_date, seller_id, channel, provider_txn_id, currency,
		category, gross_minor, refunded_minor, commission_minor, seller_minor, rule, paid_at, confirmed_at)
		VALUES ('A', $1, '2026-11-23', 'S1', 'wechatpay', 'T1', 'USD', '', 10, 0, 1, 9, 'r', now(), now())`, r.ID)
	var pe *pq.Error
	if !errors.As(err, &pe) || pe.Code != "23502" || pe.Column != "txn_once" {
		t.Fatalf("an item written without txn_once: %v", err)
	}

	// A ledger a newer settle migrated.
	if _, err := l.DB().Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (9999, true)`); err != nil {
		t.Fatal(err)
	}
	_, err = l.Migrate(ctx)
	if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(fmt.Sprint(err), "at migration 9999, newer than this settle knows") {
		t.Fatalf("migrating a ledger a newer settle migrated: %v", err)
	}
}

// A ledger migrated in part, to 00019 and no further (the next migration
// gave up on a table a running job holds, 00020's source_rows here), holds
// an older binary's items to the rule already: a settle built before
// 00019, a pod of a Job started before the deploy, writes items without
// txn_once, and they took its default, false, outside the rule until a
// later "settle migrate" applied 00023 - too late for the items written
// meanwhile (a copy of such an order under another number was settled
// again; found by a review of the upgrade path).
func TestALedgerMigratedInPartRefusesAnOlderBinarysItems(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := openAt(t, 18)
	l.SetMigrateLockWait(300 * time.Millisecond)
	busy, err := l.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Rollback()
	if _, err := busy.ExecContext(ctx, `LOCK TABLE source_rows IN ACCESS SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	bounded, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := l.Migrate(bounded); err == nil || !strings.Contains(err.Error(), "run it again when no run is active") {
		t.Fatalf("migrating while source_rows is held: %v", err)
	}
	var version int64
	if err := l.DB().Get(&version, `SELECT max(version_id) FROM goose_db_version`); err != nil || version != 19 {
		t.Fatalf("the ledger is at %d, want 19 (00020 waits on source_rows): %v", version, err)
	}
	r := openRunBefore(t, l, day)
	// What a binary from before 00019 writes: the columns it knows.
	_, err = l.DB().Exec(`INSERT INTO items (order_no, run_id, business_date, seller_id, channel, provider_txn_id, currency,
		category, gross_minor, refunded_minor, commission_minor, seller_minor, rule, paid_at, confirmed_at)
		VALUES ('A', $1, '2026-11-23', 'S1', 'payprotocol', 'T1', 'USD', '', 10, 0, 1, 9, 'r', now(), now())`, r.ID)
	var pe *pq.Error
	if !errors.As(err, &pe) || pe.Code != "23502" || pe.Column != "txn_once" {
		t.Fatalf("an item written without txn_once on a ledger at 00019: %v", err)
	}
	busy.Rollback()
	if applied, err := l.Migrate(ctx); err != nil || len(applied) == 0 || !strings.HasPrefix(applied[0], "00020_") {
		t.Fatalf("once the table is free: %v %v; want 00020 on", applied, err)
	}
}

// A migration that needs a table a running job holds gives up after its
// lock wait (exit 1, to be run again) instead of queueing its exclusive
// lock in front of every other session of the table; nothing of it is
// applied, and it applies once the table is free.
func TestAMigrationDoesNotWaitForeverOnABusyTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := openAt(t, 22)
	l.SetMigrateLockWait(300 * time.Millisecond)
	busy, err := l.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Rollback()
	if _, err := busy.ExecContext(ctx, `LOCK TABLE items IN ACCESS SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	// Bounded here too, so that a migration that would wait forever fails
	// the test rather than hanging it.
	bounded, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err = l.Migrate(bounded)
	if err == nil || !strings.Contains(err.Error(), "run it again when no run is active") || pipeline.KindOf(err) != pipeline.KindFailed {
		t.Fatalf("migrating while items is held: %v", err)
	}
	var version int64
	if err := l.DB().Get(&version, `SELECT max(version_id) FROM goose_db_version`); err != nil || version != 22 {
		t.Fatalf("00023 applied in part or at all (version %d): %v", version, err)
	}
	busy.Rollback()
	if applied, err := l.Migrate(ctx); err != nil || len(applied) == 0 || !strings.HasPrefix(applied[0], "00023_") {
		t.Fatalf("once the table is free: %v %v; want 00023 on", applied, err)
	}
}

// The bulk tables no longer check their run row by row: every bulk write
// checks it once, and a run can never be deleted from under its rows.
func TestBulkWritesHoldTheirRun(t *testing.T) {
	l, _ := open(t)
	ctx := context.Background()
	_, err := l.WriteSnapshot(ctx, 999, func(func(pipeline.SourceRow) error, func(pipeline.Seller) error) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "run 999 is not in the ledger") {
		t.Fatalf("snapshot of a missing run: %v", err)
	}
	_, err = l.WriteItems(ctx, &pipeline.Run{ID: 999, Key: pipeline.RunKey{Date: day}}, func(pipeline.ItemWriter) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "run 999 is not in the ledger") {
		t.Fatalf("items of a missing run: %v", err)
	}
	run, _ := transform(t, l, day, []row{{sp("A"), "10"}})
	if _, err := l.DB().Exec(`DELETE FROM runs WHERE id = $1`, run.ID); err == nil || !strings.Contains(err.Error(), "never deleted") {
		t.Fatalf("delete a run: %v", err)
	}
	if _, err := l.DB().Exec(`UPDATE runs SET id = 1000 WHERE id = $1`, run.ID); err == nil {
		t.Fatal("a run was renumbered")
	}
}

// After each bulk write the planner knows the day's numbers, and a trade
// file's items are found through (date, seller, currency): the query costs
// what it returns, not the run.
func TestStatisticsFreshAndPerFileQueryIndexed(t *testing.T) {
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	const n, sellers = 6000, 300
	if _, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
		for i := range n {
			o := pipeline.Order{Seq: int64(i + 1), OrderNo: fmt.Sprintf("O%06d", i), SellerID: fmt.Sprintf("S%03d", i%sellers),
				Channel: chInfinia, Currency: "USD", Amount: 10, PaidAt: at, ConfirmedAt: at}
			if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 1, SellerShare: 9}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var tuples float64
	if err := l.DB().Get(&tuples, `SELECT reltuples FROM pg_class WHERE oid = 'items'::regclass`); err != nil {
		t.Fatal(err)
	}
	if tuples != n {
		t.Fatalf("planner's items: %v, want %d (statistics not refreshed after the bulk write)", tuples, n)
	}
	var plan []string
	if err := l.DB().Select(&plan, `EXPLAIN `+ledger.ItemsForTradeQuery, run.ID, "{infiniapay,payprotocol}", "S007", "USD", ""); err != nil {
		t.Fatal(err)
	}
	if p := strings.Join(plan, "\n"); !strings.Contains(p, "items_date_seller") {
		t.Fatalf("the per-file query does not use (business_date, seller_id, currency):\n%s", p)
	}
	var got int
	if err := l.ItemsForTrade(ctx, run.ID, "S007", "USD", shareChannels, "", func(pipeline.Split) error { got++; return nil }); err != nil {
		t.Fatal(err)
	}
	if got != n/sellers {
		t.Fatalf("%d items for S007, want %d", got, n/sellers)
	}
}

// The snapshot keeps what was read exactly, through COPY's text format:
// escapes, NULLs, empty strings and timestamps to the microsecond.
func TestSnapshotKeepsRowsExactly(t *testing.T) {
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	at := time.Date(2026, 11, 23, 23, 59, 59, 123456000, time.FixedZone("", 8*3600))
	bc, far := time.Date(-44, 3, 15, 12, 0, 0, 0, time.UTC), time.Date(12000, 1, 1, 0, 0, 0, 1000, time.UTC)
	in := []pipeline.SourceRow{
		{Seq: 1, OrderNo: sp("a\tb\\c\nd\re\\N"), SellerID: sp(""), Provider: nil, Currency: sp("USD"), AmountMinor: sp(" 12 "),
			RefundedMinor: nil, Category: sp("猫"), PaidAt: &at, ConfirmedAt: nil},
		{Seq: 2, OrderNo: nil, SellerID: sp(`\N`), ProviderTxnID: sp("x"), PaidAt: nil, ConfirmedAt: &at},
		{Seq: 3, OrderNo: sp("old"), PaidAt: &bc, ConfirmedAt: &far},
	}
	if _, err := l.WriteSnapshot(ctx, run.ID, func(add func(pipeline.SourceRow) error, _ func(pipeline.Seller) error) error {
		for _, r := range in {
			if err := add(r); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	show := func(r pipeline.SourceRow) string {
		s := func(p *string) string {
			if p == nil {
				return "NULL"
			}
			return fmt.Sprintf("%q", *p)
		}
		ts := func(p *time.Time) string {
			if p == nil {
				return "NULL"
			}
			return p.UTC().Format(time.RFC3339Nano)
		}
		return fmt.Sprint(r.Seq, s(r.OrderNo), s(r.SellerID), s(r.Provider), s(r.ProviderTxnID), s(r.Currency),
			s(r.AmountMinor), s(r.RefundedMinor), s(r.Category), ts(r.PaidAt), ts(r.ConfirmedAt))
	}
	var got []string
	if err := l.ReadSnapshot(ctx, run.ID, func(r pipeline.SourceRow) error { got = append(got, show(r)); return nil }); err != nil {
		t.Fatal(err)
	}
	for i, r := range in {
		if i >= len(got) || got[i] != show(r) {
			t.Fatalf("row %d\n got %v\nwant %s", i+1, got, show(r))
		}
	}
}

// An item starts as its split says - unverified when its channel's spec
// says so, else recorded - whichever way the items are written.
func TestItemsStartAsTheirSplitSays(t *testing.T) {
	l, _ := open(t)
	ctx := context.Background()
	for i, staged := range []bool{false, true} {
		d := pipeline.Date{Year: 2026, Month: 10, Day: 1 + i}
		run, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: d, Shard: pipeline.Whole}, pipeline.RunParams{TimeZone: "UTC"})
		if err != nil {
			t.Fatal(err)
		}
		if staged {
			defer ledger.SetMaxHeldRejects(0)() // the reject sends it the staged way
		}
		at := d.Time(time.UTC)
		_, err = l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
			for j, unverified := range []bool{false, true} {
				no := fmt.Sprintf("%s-%v", d, unverified)
				o := pipeline.Order{Seq: int64(j + 1), OrderNo: no, SellerID: "S1", Channel: chPayProtocol, ProviderTxnID: "T" + no,
					Currency: "USD", Amount: 1000, Category: "c", PaidAt: at, ConfirmedAt: at}
				if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 100, SellerShare: 900, Unverified: unverified}); err != nil {
					return err
				}
			}
			return w.Reject(pipeline.Reject{Seq: 3, OrderNo: "X" + d.String(), Reason: "bad"})
		})
		if err != nil {
			t.Fatal(err)
		}
		for state, want := range map[string]string{ledger.ItemUnverified: d.String() + "-true", ledger.ItemRecorded: d.String() + "-false"} {
			items, err := l.ItemsInState(ctx, run.ID, chPayProtocol, state)
			if err != nil || len(items) != 1 || items[0].OrderNo != want {
				t.Errorf("staged %v: %s items %+v (%v), want %s", staged, state, items, err, want)
			}
		}
	}
}

// The sellers of a snapshot keep their accounts; an account at a provider
// the ledger has no column for is refused, not dropped.
func TestRunSellersKeepAccounts(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	sellers := []pipeline.Seller{
		{ID: "S1", Name: "One", EntityType: "Corporate", Country: "CHN", Accounts: map[string]string{"infiniapay": "INF1", "wechatpay": "1900"}},
		{ID: "S2", Accounts: map[string]string{"wechatpay": "1901"}},
		{ID: "S3"},
	}
	write := func(sellers []pipeline.Seller) error {
		_, err := l.WriteSnapshot(ctx, run.ID, func(_ func(pipeline.SourceRow) error, addSeller func(pipeline.Seller) error) error {
			for _, s := range sellers {
				if err := addSeller(s); err != nil {
					return err
				}
			}
			return nil
		})
		return err
	}
	if err := write(append(sellers[:1:1], pipeline.Seller{ID: "S4", Accounts: map[string]string{"otherpay": "X"}})); err == nil ||
		!strings.Contains(err.Error(), "otherpay") {
		t.Fatalf("an account the ledger cannot keep: %v", err)
	}
	if err := write(sellers); err != nil {
		t.Fatal(err)
	}
	got, err := l.RunSellers(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]pipeline.Seller{}
	for _, s := range sellers {
		want[s.ID] = s
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("sellers\n got %+v\nwant %+v", got, want)
	}
	// What a provider's stages keep: the accounts at it alone.
	for provider, want := range map[string]map[string]string{
		"infiniapay": {"S1": "INF1"},
		"wechatpay":  {"S1": "1900", "S2": "1901"},
	} {
		got, err := l.AccountsAt(ctx, run.ID, provider)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("accounts at %s: %v, %v; want %v", provider, got, err, want)
		}
	}
	if _, err := l.AccountsAt(ctx, run.ID, "otherpay"); err == nil || !strings.Contains(err.Error(), "otherpay") {
		t.Fatalf("accounts at a provider the ledger has no column for: %v", err)
	}
}

// ItemsInStateAfter reads a run's items of a channel and state one keyset
// page at a time, by order number: the pages together are every item,
// once, in order, and none is larger than its limit.
func TestItemsInStateAfterPagesByOrderNo(t *testing.T) {
	t.Parallel()
	l, url := open(t)
	ctx := context.Background()
	d := pipeline.Date{Year: 2026, Month: 9, Day: 3}
	run := openRun(t, l, d)
	at := d.Time(time.UTC)
	var want []string
	_, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
		for j := range 7 {
			no := fmt.Sprintf("P-%02d", 7-j) // written out of order
			want = append([]string{no}, want...)
			o := pipeline.Order{Seq: int64(j + 1), OrderNo: no, SellerID: "S1", Channel: chPayProtocol, ProviderTxnID: "T" + no,
				Currency: "USD", Amount: 1000, Category: "c", PaidAt: at, ConfirmedAt: at}
			if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 100, SellerShare: 900}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Two of them are paid already: a page walks them and leaves them out.
	for _, no := range []string{"P-02", "P-06"} {
		if err := l.SetItemPaid(ctx, run.ID, no, "K", "R", ""); err != nil {
			t.Fatal(err)
		}
		want = slices.DeleteFunc(want, func(s string) bool { return s == no })
	}
	var got, pages []string
	for after := ""; ; {
		items, next, err := l.ItemsInStateAfter(ctx, run.ID, chPayProtocol, ledger.ItemRecorded, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		var page []string
		for _, it := range items {
			got, page = append(got, it.OrderNo), append(page, it.OrderNo)
		}
		pages = append(pages, strings.Join(page, ",")+" to "+next)
		if after = next; next == "" || len(pages) > 3 {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pages gave %v, want %v", got, want)
	}
	if w := []string{"P-01,P-03 to P-03", "P-04,P-05 to P-06", "P-07 to "}; !slices.Equal(pages, w) {
		t.Errorf("pages %q, want %q (three walks of at most 3 items each)", pages, w)
	}
	// An item is paid once: marking it paid again (another request's
	// answer, read late) leaves the request that paid it (a mutation test
	// found SetItemPaid's state = 'recorded' untested).
	if err := l.SetItemPaid(ctx, run.ID, "P-02", "K2", "R2", "again"); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var key, ref, reason string
	if err := db.QueryRow(`SELECT payout_key, provider_ref, reason FROM settle.items WHERE order_no = 'P-02'`).Scan(&key, &ref, &reason); err != nil ||
		key != "K" || ref != "R" || reason != "" {
		t.Errorf("paid again: payout_key %q, provider_ref %q, reason %q (%v); want the first payment's K, R and no reason", key, ref, reason, err)
	}
}

// A keyset page of a run's items starts at its cursor and stops at its
// limit, whatever else the ledger holds: the planner walks items_run_order
// in order, not every item of the run sorted for each page (what it did
// with items_run alone once the ledger held several days), and finds a
// WeChat item's attempts by their subject, not by reading every effect of
// the ledger (what the attempts' page did, whatever the index). A page of
// the items in a state walks the run's items and reads those in the state
// between its bounds: asked for the next ones in the state, the planner
// guessed few in a ledger whose other days are settled, and read and
// sorted every item of the run after the cursor. The days here interleave
// their order numbers, as a platform numbering orders when they are placed
// and releasing them over several days would.
func TestItemPagesWalkTheRunInOrder(t *testing.T) {
	l, _ := open(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	const days, n = 20, 3000
	channels := []pipeline.Channel{chInfinia, chWeChat, chPayProtocol}
	var runs []*pipeline.Run
	for d := range days {
		run := openRun(t, l, day.AddDays(d))
		runs = append(runs, run)
		if _, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
			for i := range n {
				no := fmt.Sprintf("O%07d", i*days+d)
				o := pipeline.Order{Seq: int64(i + 1), OrderNo: no, SellerID: fmt.Sprintf("S%03d", i%50),
					Channel: channels[i%len(channels)], ProviderTxnID: "T" + no, Currency: "USD", Amount: 10, PaidAt: at, ConfirmedAt: at}
				if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 1, SellerShare: 9}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	// Every WeChat item of every day has a distribution that went out.
	if _, err := l.DB().Exec(`INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state, sends)
		SELECT run_id, 'wechat_distribution', 'WX/' || to_char(business_date, 'YYYYMMDD') || '/' || order_no, 1, 'K' || order_no,
		       currency, 1, 'succeeded', 1
		FROM items WHERE channel = 'wechatpay'; ANALYZE effects`); err != nil {
		t.Fatal(err)
	}
	run := runs[1]
	// The other days are settled, as in a ledger of many days: the planner
	// guesses that few of the run's items are in any open state. A few of
	// every day's Pay Protocol payments were rejected, and a few held for a
	// failed payment.
	if _, err := l.DB().Exec(fmt.Sprintf(`UPDATE items SET state = 'paid' WHERE run_id <> %d;
		UPDATE items SET state = 'rejected', reason = 'unknown payment' WHERE channel = 'payprotocol' AND order_no LIKE '%%00';
		UPDATE items SET state = 'held', reason = 'failed: expired' WHERE channel = 'payprotocol' AND order_no LIKE '%%50';
		ANALYZE items; ANALYZE items_rejected; ANALYZE items_held`, run.ID)); err != nil {
		t.Fatal(err)
	}
	args := map[string]func(after string) []any{
		"RefundedItemsAfter":   func(after string) []any { return []any{ledger.ItemUnverified, ledger.ItemRejected, after} },
		"WeChatItemsAfter":     func(after string) []any { return []any{after} },
		"WeChatAttemptsAfter":  func(after string) []any { return []any{pq.Array([]string{"wechat_distribution"}), after, ""} },
		"walk":                 func(after string) []any { return []any{after} },
		"walk of Pay Protocol": func(after string) []any { return []any{after} },
	}
	// The walk of a page of the verification goes by the run's Pay
	// Protocol items' own index (migration 00018), not every item of the
	// run.
	queries := maps.Clone(ledger.PageQueries)
	queries["walk of Pay Protocol"] = queries["walk"]
	channelOf := map[string]pipeline.Channel{"walk of Pay Protocol": chPayProtocol}
	indexOf := map[string]string{"walk of Pay Protocol": "items_run_payprotocol"}
	for name, query := range queries {
		for _, after := range []string{"", fmt.Sprintf("O%07d", n*days/2)} {
			a := append(append([]any{run.ID, string(cmp.Or(channelOf[name], chWeChat))}, args[name](after)...), 100)
			var plan []string
			if err := l.DB().Select(&plan, `EXPLAIN `+query, a...); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			p := strings.Join(plan, "\n")
			// An incremental sort of each order's attempts is fine; a sort
			// of everything after the cursor, or a scan of a whole table,
			// is not.
			if !regexp.MustCompile(`Index (Only )?Scan using `+cmp.Or(indexOf[name], "items_run_order")+" ").MatchString(p) || !regexp.MustCompile(`Index Cond: \(\(run_id = .*\) AND \(order_no >=? `).MatchString(p) ||
				regexp.MustCompile(`(^|->  )Sort  `).MatchString(p) || strings.Contains(p, "Seq Scan") {
				t.Errorf("%s after %q does not walk the run's items in order from its cursor:\n%s", name, after, p)
			}
		}
	}
	// The items in a state are read between the walk's bounds, however
	// few the planner guesses there are: almost none, in a ledger whose
	// other days are settled.
	walked := map[string][]any{"ItemsInStateAfter": {chWeChat, ledger.ItemRecorded}, "ItemsToVerifyAfter": {chPayProtocol, "held: "}}
	for name, query := range ledger.WalkedPageQueries {
		for _, bounds := range [][2]string{{"", fmt.Sprintf("O%07d", 300)}, {fmt.Sprintf("O%07d", n*days/2), fmt.Sprintf("O%07d", n*days/2+300)}} {
			var plan []string
			if err := l.DB().Select(&plan, `EXPLAIN `+query, run.ID, walked[name][0], walked[name][1], bounds[0], bounds[1]); err != nil {
				t.Fatal(err)
			}
			if p := strings.Join(plan, "\n"); !regexp.MustCompile(`Index Cond: \(\(run_id = .*\) AND \(order_no > .*\) AND \(order_no <= `).MatchString(p) ||
				strings.Contains(p, "Seq Scan") {
				t.Errorf("%s does not read the items of its walk %v between its bounds:\n%s", name, bounds, p)
			}
		}
	}
	// The run's orders a provider rejected, listed at every run's end,
	// are read from their notes (migration 00018), each item by its key,
	// not by walking the run's items.
	var plan []string
	if err := l.DB().Select(&plan, `EXPLAIN `+ledger.ProviderRejectsQuery, run.ID); err != nil {
		t.Fatal(err)
	}
	if p := strings.Join(plan, "\n"); !strings.Contains(p, "items_rejected") || !strings.Contains(p, "order_no = r.order_no") ||
		regexp.MustCompile(`Seq Scan on items( |$)`).MatchString(p) {
		t.Errorf("the provider's rejects of a run are not read from their notes:\n%s", p)
	}
	// So are the orders it holds for a failed payment, which every run's
	// reject gate counts (migration 00034), each item by its key: not a
	// walk of the run's Pay Protocol items.
	plan = nil
	if err := l.DB().Select(&plan, `EXPLAIN `+ledger.HeldOfRunQuery, run.ID, string(chPayProtocol), "failed:"); err != nil {
		t.Fatal(err)
	}
	if p := strings.Join(plan, "\n"); !strings.Contains(p, "items_held") || !strings.Contains(p, "order_no = h.order_no") ||
		regexp.MustCompile(`Seq Scan on items( |$)`).MatchString(p) {
		t.Errorf("the held orders of a run are not read from their notes:\n%s", p)
	}
	// So are the orders held for their sellers' accounts, which every
	// run's upload stage reads, and those a person rejected so, which
	// every Infinia distribute stage reads.
	for name, q := range map[string]string{"SellerHolds": ledger.SellerHoldsQuery, "SellersRejectedHeld": ledger.SellersRejectedHeldQuery} {
		plan = nil
		if err := l.DB().Select(&plan, `EXPLAIN `+q, run.ID, "held: seller account: "); err != nil {
			t.Fatal(err)
		}
		if p := strings.Join(plan, "\n"); !regexp.MustCompile(`items_(held|rejected) `).MatchString(p) ||
			regexp.MustCompile(`Seq Scan on items( |$)|Index Cond: \(run_id = `+fmt.Sprint(run.ID)+`\)`).MatchString(p) {
			t.Errorf("%s does not read the run's orders from their notes:\n%s", name, p)
		}
	}
	// So are the rejected Pay Protocol orders every reconciliation asks
	// about again (RejectedItemsAfter), a page of notes at a time.
	plan = nil
	if err := l.DB().Select(&plan, `EXPLAIN `+ledger.RejectedItemsQuery, run.ID, string(chPayProtocol), pq.Array([]string{"unknown"}), "", fmt.Sprintf("O%07d", n*days)); err != nil {
		t.Fatal(err)
	}
	if p := strings.Join(plan, "\n"); !strings.Contains(p, "items_rejected") || !strings.Contains(p, "order_no = r.order_no") ||
		regexp.MustCompile(`Seq Scan on items( |$)`).MatchString(p) {
		t.Errorf("the rejected Pay Protocol orders of a run are not read from their notes:\n%s", p)
	}
	// The pages still give every item once, in order.
	var got []string
	for after := ""; ; {
		page, err := l.WeChatItemsAfter(ctx, run.ID, chWeChat, after, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, it := range page {
			got = append(got, it.OrderNo)
		}
		after = page[len(page)-1].OrderNo
	}
	if len(got) != n/len(channels) || !slices.IsSorted(got) || got[0] != fmt.Sprintf("O%07d", days+1) {
		t.Fatalf("%d WeChat items of day 2 paged, first %q, sorted %v; want %d", len(got), got[0], slices.IsSorted(got), n/len(channels))
	}
}

// TestASplitThatDoesNotBalanceIsNeverWritten: the ledger writes no split
// whose parts do not add up to its order's amount (one that pays the
// seller a cent the buyer never paid), whatever wrote it: the transform
// stage fails and no item of the run is written. WriteItems checks it
// before it writes; the items' check constraint would refuse it too.
func TestASplitThatDoesNotBalanceIsNeverWritten(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	_, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
		for i, s := range []struct{ commission, seller int64 }{{1, 9}, {1, 10}} {
			o := pipeline.Order{Seq: int64(i + 1), OrderNo: fmt.Sprintf("B%d", i), SellerID: "S1",
				Channel: chInfinia, Currency: "USD", Amount: 10, PaidAt: at, ConfirmedAt: at}
			if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: s.commission, SellerShare: s.seller}); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		t.Fatalf("write of a split of 10 into 1 + 10: %v; want it refused", err)
	}
	var n int
	if err := l.DB().Get(&n, `SELECT count(*) FROM items WHERE run_id = $1`, run.ID); err != nil || n != 0 {
		t.Fatalf("%d items written (%v), want none", n, err)
	}
}

// TestSnapshotCountIsRecordedWithTheSnapshot: how many rows of its shard a
// run read is recorded with its snapshot (runs.rows_read, migration 00033)
// and read from there: the reject gate asks it at every run, and counted
// from source_rows it cost a re-run of a finished million-order day a scan
// of the million. Another shard's keys are not counted; a run from before
// the migration (NULL) is counted as before.
func TestSnapshotCountIsRecordedWithTheSnapshot(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	rows := sourceRows(day, []row{{sp("A"), "10"}, {sp("B"), "10"}, {sp("C"), "10"}})
	rows[2].OtherShard = true
	if n, err := l.WriteSnapshot(ctx, run.ID, func(add func(pipeline.SourceRow) error, _ func(pipeline.Seller) error) error {
		for _, r := range rows {
			if err := add(r); err != nil {
				return err
			}
		}
		return nil
	}); err != nil || n != 2 {
		t.Fatalf("snapshot: %d rows of the shard (%v), want 2", n, err)
	}
	count := func() int64 {
		t.Helper()
		n, err := l.SnapshotCount(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	var recorded sql.NullInt64
	if err := l.DB().QueryRowContext(ctx, `SELECT rows_read FROM runs WHERE id = $1`, run.ID).Scan(&recorded); err != nil || recorded.Int64 != 2 || count() != 2 {
		t.Fatalf("rows_read %v (%v), SnapshotCount %d; want 2 and 2", recorded, err, count())
	}
	l.DB().MustExec(`UPDATE runs SET rows_read = 7 WHERE id = $1`, run.ID)
	if n := count(); n != 7 {
		t.Fatalf("SnapshotCount %d with 7 recorded: want the recorded figure, not a count", n)
	}
	l.DB().MustExec(`UPDATE runs SET rows_read = NULL WHERE id = $1`, run.ID)
	if n := count(); n != 2 {
		t.Fatalf("SnapshotCount %d of a run from before 00033, want 2 counted", n)
	}
}
