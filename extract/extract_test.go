package extract_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/settlekit/settle/extract"
	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/pipeline"
)

// TestMain drops what pgtest made once the tests are done, then fails
// them when a goroutine they started is still running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.M(m)) }

// Orders hands on every row as read: NULLs as nil, integers and numerics as
// their text, timestamps as instants, numbered from 1.
func TestOrdersKeepsRowsAsRead(t *testing.T) {
	db := pgtest.DB(t)
	src := &extract.Source{DB: db, Name: "test", Query: `
		SELECT * FROM (VALUES
			('A'::text, 'S1'::text, 'infiniapay'::text, NULL::text, 'USD'::text, 1200::bigint, 0::numeric, 'c'::text,
			 '2026-11-23 10:00:00.123456+08'::timestamptz, $1::timestamptz),
			(NULL, NULL, NULL, 'T', NULL, NULL, 12.50, NULL, NULL, $2::timestamptz - interval '1 microsecond')
		) AS v (order_no, seller_id, provider, provider_txn_id, currency, amount_minor, refunded_minor, category, paid_at, confirmed_at)`}
	w := pipeline.Window{Start: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)}
	var got []string
	err := src.Orders(context.Background(), w, func(r pipeline.SourceRow) error {
		s := func(p *string) string {
			if p == nil {
				return "NULL"
			}
			return *p
		}
		ts := func(p *time.Time) string {
			if p == nil {
				return "NULL"
			}
			return p.UTC().Format(time.RFC3339Nano)
		}
		got = append(got, strings.TrimSpace(fmt.Sprintln(r.Seq, s(r.OrderNo), s(r.SellerID), s(r.Provider), s(r.ProviderTxnID), s(r.Currency),
			s(r.AmountMinor), s(r.RefundedMinor), s(r.Category), ts(r.PaidAt), ts(r.ConfirmedAt))))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"1 A S1 infiniapay NULL USD 1200 0 c 2026-11-23T02:00:00.123456Z 2026-11-23T00:00:00Z",
		"2 NULL NULL NULL T NULL NULL 12.50 NULL NULL 2026-11-23T23:59:59.999999Z",
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("rows\n got %q\nwant %q", got, want)
	}
}

// A query that does not return the columns settle reads is a usage error
// naming the query.
func TestOrdersRefusesOtherColumns(t *testing.T) {
	db := pgtest.DB(t)
	src := &extract.Source{DB: db, Name: "q.sql", Query: `SELECT 1 AS order_no WHERE $1::timestamptz < $2::timestamptz`}
	err := src.Orders(context.Background(), pipeline.Window{Start: time.Now(), End: time.Now().Add(time.Hour)},
		func(pipeline.SourceRow) error { return nil })
	if pipeline.KindOf(err) != pipeline.KindUsage {
		t.Fatalf("got %v", err)
	}
}

// A source query returning a timestamp column as text (confirmed_at::text)
// stopped the day at its first row with exit 1, a failure to retry, on
// every run: it is a query to fix (exit 2), said before any row, naming
// the column and how to convert it. The late-refunds query's created_at
// likewise.
func TestQueriesRefuseATimestampColumnOfAnotherType(t *testing.T) {
	db := pgtest.DB(t)
	src := &extract.Source{DB: db, Name: "q.sql", Query: `
		SELECT 'A'::text AS order_no, 'S1'::text AS seller_id, 'infiniapay'::text AS provider, NULL::text AS provider_txn_id,
			'USD'::text AS currency, 1200 AS amount_minor, 0 AS refunded_minor, 'c'::text AS category,
			$1::timestamptz AS paid_at, $1::timestamptz::text AS confirmed_at WHERE $1::timestamptz < $2::timestamptz`}
	w := pipeline.Window{Start: time.Now().Add(-2 * time.Hour), End: time.Now().Add(-time.Hour)}
	err := src.Orders(context.Background(), w, func(pipeline.SourceRow) error { return nil })
	if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "confirmed_at as text") ||
		!strings.Contains(err.Error(), "confirmed_at::timestamptz where its values carry their offset") {
		t.Fatalf("source query with confirmed_at as text: got %v (kind %v), want a usage error naming the column", err, pipeline.KindOf(err))
	}
	late := &extract.LateRefunds{DB: db, Name: "l.sql", Query: `
		SELECT 'R1'::text AS refund_no, 'A'::text AS order_no, 'S1'::text AS seller_id, '5'::text AS amount_minor,
			$1::timestamptz::text AS created_at WHERE $1::timestamptz < $2::timestamptz`}
	err = late.LateRefunds(context.Background(), w, func(pipeline.LateRefundRow) error { return nil })
	if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "created_at as text") {
		t.Fatalf("late-refunds query with created_at as text: got %v (kind %v), want a usage error naming the column", err, pipeline.KindOf(err))
	}
}

// A platform whose times are timestamp without time zone (a wall clock,
// Beijing time say) was read as if its values were UTC instants, while the
// default query's comparisons with $1 and $2 (timestamptz, cast to the
// column's type) dropped their offset: the day's rows were chosen by the
// wall clock and then dated 8 hours off, so the transform rejected the
// last 8 hours of every day as outside the window (exit 3 every night,
// those orders never paid) and recorded the others with times 8 hours off
// (the trade files' trade_time too). Only the query's author knows the
// zone such a value is in: it is a query to fix (exit 2), said before any
// row, naming the column; a date column likewise.
func TestQueriesRefuseATimestampWithoutTimeZone(t *testing.T) {
	db := pgtest.DB(t)
	if _, err := db.Exec(`CREATE TABLE orders (order_no text, seller_id text, provider text, provider_txn_id text, currency text,
			amount_minor numeric, category text, paid_at timestamp, confirmed_at timestamp, confirmed_on date);
		CREATE TABLE refunds (refund_no text, order_no text, amount_minor numeric, created_at timestamp);
		INSERT INTO orders VALUES ('A', 'S1', 'infiniapay', NULL, 'CNY', 1200, 'c', '2026-11-23 19:00', '2026-11-23 20:00', '2026-11-23');
		INSERT INTO refunds VALUES ('R1', 'A', 100, '2026-11-23 21:00')`); err != nil {
		t.Fatal(err)
	}
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	w := pipeline.WindowOf(pipeline.Date{Year: 2026, Month: time.November, Day: 23}, shanghai)
	const cols = `o.order_no, o.seller_id, o.provider, o.provider_txn_id, o.currency, o.amount_minor, 0 AS refunded_minor, o.category, o.paid_at, `
	for _, c := range []struct{ query, col, typ string }{
		{`SELECT ` + cols + `o.confirmed_at FROM orders o WHERE o.confirmed_at >= $1 AND o.confirmed_at < $2`, "paid_at", "timestamp"},
		{`SELECT ` + cols + `o.confirmed_on AS confirmed_at FROM orders o WHERE o.confirmed_on >= $1 AND o.confirmed_on < $2`, "paid_at", "timestamp"},
		{`SELECT ` + strings.Replace(cols, "o.paid_at", "o.paid_at AT TIME ZONE 'Asia/Shanghai' AS paid_at", 1) +
			`o.confirmed_on AS confirmed_at FROM orders o WHERE o.confirmed_on >= $1 AND o.confirmed_on < $2`, "confirmed_at", "date"},
	} {
		var read []string
		err := (&extract.Source{DB: db, Name: "q.sql", Query: c.query}).Orders(context.Background(), w, func(r pipeline.SourceRow) error {
			read = append(read, fmt.Sprintf("%s confirmed %s", *r.OrderNo, r.ConfirmedAt.In(shanghai).Format(time.RFC3339)))
			return nil
		})
		if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), c.col+" as "+c.typ) {
			t.Errorf("source query returning %s as %s: got %v (kind %v, rows %q), want a usage error naming the column", c.col, c.typ, err, pipeline.KindOf(err), read)
		}
	}
	// Converted by the query, at the zone its values are in, it reads the
	// wall clock's instants.
	var read []string
	err = (&extract.Source{DB: db, Name: "q.sql", Query: `SELECT ` + strings.Replace(cols, "o.paid_at", "o.paid_at AT TIME ZONE 'Asia/Shanghai' AS paid_at", 1) +
		`o.confirmed_at AT TIME ZONE 'Asia/Shanghai' AS confirmed_at FROM orders o
		WHERE o.confirmed_at AT TIME ZONE 'Asia/Shanghai' >= $1 AND o.confirmed_at AT TIME ZONE 'Asia/Shanghai' < $2`}).Orders(context.Background(), w, func(r pipeline.SourceRow) error {
		read = append(read, fmt.Sprintf("%s confirmed %s", *r.OrderNo, r.ConfirmedAt.In(shanghai).Format(time.RFC3339)))
		return nil
	})
	if err != nil || len(read) != 1 || read[0] != "A confirmed 2026-11-23T20:00:00+08:00" {
		t.Errorf("converted query: got %q, %v; want A confirmed at 20:00 in Shanghai", read, err)
	}
	late := &extract.LateRefunds{DB: db, Name: "l.sql", Query: `SELECT r.refund_no, r.order_no, o.seller_id, r.amount_minor::text, r.created_at
		FROM refunds r JOIN orders o ON o.order_no = r.order_no WHERE r.created_at >= $1 AND r.created_at < $2`}
	err = late.LateRefunds(context.Background(), w, func(pipeline.LateRefundRow) error { return nil })
	if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "created_at as timestamp") {
		t.Errorf("late-refunds query with created_at as timestamp: got %v (kind %v), want a usage error naming the column", err, pipeline.KindOf(err))
	}
}

// Sellers reads the account columns into the seller's accounts, by the
// provider each column names (SellerAccounts); NULL or empty is none.
func TestSellersReadsAccounts(t *testing.T) {
	db := pgtest.DB(t)
	if len(extract.SellerColumns) != 4+len(extract.SellerAccounts()) {
		t.Fatalf("%d seller columns, %d account columns named", len(extract.SellerColumns), len(extract.SellerAccounts()))
	}
	src := &extract.Sellers{DB: db, Name: "test", Query: `
		SELECT * FROM (VALUES
			('S1'::text, 'One'::text, 'Corporate'::text, 'CHN'::text, 'INF1'::text, '1900'::text),
			('S2', NULL, NULL, NULL, NULL, ''),
			('S3', 'Three', 'Individual', 'USA', '', 'SUB3')
		) AS v (seller_id, name, entity_type, country, infinia_seller_id, wechat_sub_mchid) WHERE seller_id = ANY ($1)`}
	got := map[string]pipeline.Seller{}
	err := src.Sellers(context.Background(), []string{"S1", "S2", "S3"}, func(s pipeline.Seller) error {
		got[s.ID] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]pipeline.Seller{
		"S1": {ID: "S1", Name: "One", EntityType: "Corporate", Country: "CHN", Accounts: map[string]string{"infiniapay": "INF1", "wechatpay": "1900"}},
		"S2": {ID: "S2"},
		"S3": {ID: "S3", Name: "Three", EntityType: "Individual", Country: "USA", Accounts: map[string]string{"wechatpay": "SUB3"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("sellers\n got %+v\nwant %+v", got, want)
	}

	// A query joining an accounts table gives a seller twice: the same
	// row again is the seller once; rows that disagree (two Infinia
	// accounts) are no seller at all, and the others are given still.
	src.Query = `SELECT * FROM (VALUES
			('S1'::text, 'One'::text, 'Corporate'::text, 'CHN'::text, 'INF1'::text, '1900'::text),
			('S1', 'One', 'Corporate', 'CHN', 'INF1', '1900'),
			('S2', 'Two', NULL, NULL, 'INF2', NULL),
			('S2', 'Two', NULL, NULL, 'INF2-OLD', NULL),
			('S3', 'Three', 'Individual', 'USA', '', 'SUB3')
		) AS v (seller_id, name, entity_type, country, infinia_seller_id, wechat_sub_mchid) WHERE seller_id = ANY ($1)`
	var calls []string
	err = src.Sellers(context.Background(), []string{"S1", "S2", "S3"}, func(s pipeline.Seller) error {
		calls = append(calls, s.ID)
		return nil
	})
	if err != nil || fmt.Sprint(calls) != "[S1 S3]" {
		t.Fatalf("sellers given %v (%v), want S1 once and S3", calls, err)
	}
}

// A sellers query runs read-only, as the orders and late-refunds queries
// do: one that writes is refused (exit 2), and what it wrote is not kept.
func TestSellersQueryIsReadOnly(t *testing.T) {
	db := pgtest.DB(t)
	db.MustExec(`CREATE TABLE seller_reads (n int)`)
	src := &extract.Sellers{DB: db, Name: "writes.sql", Query: `
		WITH w AS (INSERT INTO seller_reads VALUES (1) RETURNING n)
		SELECT 'S1'::text AS seller_id, 'One'::text AS name, 'Corporate'::text AS entity_type, 'CHN'::text AS country,
		       'INF1'::text AS infinia_seller_id, ''::text AS wechat_sub_mchid FROM w WHERE 'S1' = ANY ($1)`}
	err := src.Sellers(context.Background(), []string{"S1"}, func(pipeline.Seller) error { return nil })
	var n int
	if cerr := db.Get(&n, `SELECT count(*) FROM seller_reads`); cerr != nil {
		t.Fatal(cerr)
	}
	if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "read-only") || n != 0 {
		t.Fatalf("a sellers query that writes: %v (kind %v), %d rows written; want refused as read-only, none written", err, pipeline.KindOf(err), n)
	}
}

// A sellers query row whose seller_id is NULL (a LEFT JOIN from an accounts
// table to a seller it filtered out) is no seller's: it stopped the day
// with a scan error, exit 1 on every retry; the other sellers are given.
func TestSellersSkipsARowWithoutASellerID(t *testing.T) {
	db := pgtest.DB(t)
	src := &extract.Sellers{DB: db, Name: "test", Query: `
		SELECT * FROM (VALUES
			('S1'::text, 'One'::text, 'Corporate'::text, 'CHN'::text, 'INF1'::text, NULL::text),
			(NULL, NULL, NULL, NULL, 'INF2', NULL)
		) AS v (seller_id, name, entity_type, country, infinia_seller_id, wechat_sub_mchid) WHERE $1::text[] IS NOT NULL`}
	var calls []string
	err := src.Sellers(context.Background(), []string{"S1", "S2"}, func(s pipeline.Seller) error {
		calls = append(calls, s.ID)
		return nil
	})
	if err != nil || fmt.Sprint(calls) != "[S1]" {
		t.Fatalf("sellers given %v (%v), want S1 alone", calls, err)
	}
}

// TestOrdersWaitsForTheDatabasesClock: the day is read once the platform
// database's clock (the one its rows are committed by) is past its end by
// Margin, whatever this machine's clock says. A pod whose clock ran ahead
// read a day the database was still confirming orders in, and recorded it
// as read: the orders confirmed in its last minutes were never settled. A
// dry run (Unfinished) may look.
func TestOrdersWaitsForTheDatabasesClock(t *testing.T) {
	db := pgtest.DB(t)
	var dbNow time.Time
	if err := db.QueryRow(`SELECT now()`).Scan(&dbNow); err != nil {
		t.Fatal(err)
	}
	// A day that ended a minute ago on the database's clock; this
	// machine's clock an hour ahead of it says it is long over.
	end := dbNow.Add(-time.Minute)
	w := pipeline.Window{Start: end.Add(-24 * time.Hour), End: end}
	ahead := func() time.Time { return dbNow.Add(time.Hour) }
	q := `SELECT 'A'::text AS order_no, 'S1'::text AS seller_id, 'infiniapay'::text AS provider, NULL::text AS provider_txn_id,
		'USD'::text AS currency, 1::bigint AS amount_minor, 0::bigint AS refunded_minor, 'c'::text AS category,
		$1::timestamptz AS paid_at, $2::timestamptz - interval '1 second' AS confirmed_at`
	read := func(s *extract.Source) (int, error) {
		n := 0
		err := s.Orders(context.Background(), w, func(pipeline.SourceRow) error { n++; return nil })
		return n, err
	}
	n, err := read(&extract.Source{DB: db, Name: "q.sql", Query: q, Margin: 10 * time.Minute, Now: ahead})
	if pipeline.KindOf(err) != pipeline.KindUsage || n != 0 || !strings.Contains(err.Error(), "clock skew") ||
		!strings.Contains(err.Error(), end.UTC().Add(10*time.Minute).Format(time.RFC3339)) {
		t.Fatalf("a day 1 minute over on the database's clock, 10 minutes of margin: %d rows, %v", n, err)
	}
	if n, err := read(&extract.Source{DB: db, Name: "q.sql", Query: q, Margin: 10 * time.Minute, Unfinished: true}); err != nil || n != 1 {
		t.Fatalf("dry run: %d rows, %v", n, err)
	}
	if n, err := read(&extract.Source{DB: db, Name: "q.sql", Query: q, Margin: 30 * time.Second}); err != nil || n != 1 {
		t.Fatalf("past its margin: %d rows, %v", n, err)
	}
}

// An account value of MaxAccount bytes is the seller's account as it is;
// one byte more is recorded as a note of its length, which every
// provider's account check refuses (the seller's orders rejected, never
// paid to a cut account, nor a row the ledger's index cannot take).
func TestSellersBoundsAnAccountAtMaxAccount(t *testing.T) {
	db := pgtest.DB(t)
	src := &extract.Sellers{DB: db, Name: "test", Query: `
		SELECT * FROM (VALUES
			('S1'::text, 'One'::text, 'Corporate'::text, 'CHN'::text, repeat('a', $2::int), NULL::text),
			('S2', 'Two', 'Corporate', 'CHN', repeat('b', $2::int + 1), NULL)
		) AS v (seller_id, name, entity_type, country, infinia_seller_id, wechat_sub_mchid) WHERE seller_id = ANY ($1)`}
	src.Query = strings.Replace(src.Query, "$2::int", strconv.Itoa(extract.MaxAccount), 2)
	got := map[string]string{}
	err := src.Sellers(context.Background(), []string{"S1", "S2"}, func(s pipeline.Seller) error {
		got[s.ID] = s.Accounts["infiniapay"]
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got["S1"] != strings.Repeat("a", extract.MaxAccount) {
		t.Errorf("S1's account of %d bytes recorded as %q, want it as it is", extract.MaxAccount, got["S1"])
	}
	if want := fmt.Sprintf("(unusable: %d bytes)", extract.MaxAccount+1); got["S2"] != want {
		t.Errorf("S2's account of %d bytes recorded as %q, want %q", extract.MaxAccount+1, got["S2"], want)
	}
}

// A platform whose amounts are decimals of the major unit (numeric(12,2):
// 19.99 dollars) had every row rejected, one by one, as "not an integer"
// (a numeric of scale 2 is written 100.00, whole or not), the day recorded
// as read and exit 3 saying to fix the platform's data or raise the reject
// tolerance: the query is what to fix (exit 2), said before any row is read,
// naming the column and its type; the money type likewise (written with a
// currency symbol), and a float (1000000 written 1e+06: a day's large
// orders rejected, its small ones read). An integer numeric, numeric(20,0) or a sum of a
// numeric's values (no declared scale: each value is judged) is read.
func TestQueriesRefuseADecimalAmountColumn(t *testing.T) {
	db := pgtest.DB(t)
	w := pipeline.Window{Start: time.Now().Add(-2 * time.Hour), End: time.Now().Add(-time.Hour)}
	source := func(amount, refunded string) string {
		return `SELECT 'A'::text AS order_no, 'S1'::text AS seller_id, 'infiniapay'::text AS provider, NULL::text AS provider_txn_id,
			'USD'::text AS currency, ` + amount + ` AS amount_minor, ` + refunded + ` AS refunded_minor, 'c'::text AS category,
			$1::timestamptz AS paid_at, $1::timestamptz AS confirmed_at WHERE $1::timestamptz < $2::timestamptz`
	}
	for _, c := range []struct{ amount, refunded, col, typ string }{
		{`19.99::numeric(12,2)`, `0`, "amount_minor", "numeric(12,2)"},
		{`1999`, `0.50::numeric(12,2)`, "refunded_minor", "numeric(12,2)"},
		{`19.99::money`, `0`, "amount_minor", "money"},
		{`1999::float8`, `0`, "amount_minor", "float8"},
		{`1999`, `0::real`, "refunded_minor", "float4"},
	} {
		read := 0
		err := (&extract.Source{DB: db, Name: "q.sql", Query: source(c.amount, c.refunded)}).Orders(context.Background(), w,
			func(pipeline.SourceRow) error { read++; return nil })
		if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "q.sql") ||
			!strings.Contains(err.Error(), c.col+" as "+c.typ) || read != 0 {
			t.Errorf("source query returning %s as %s: got %v (kind %v, %d rows), want a usage error naming the query and the column before any row",
				c.col, c.typ, err, pipeline.KindOf(err), read)
		}
	}
	for _, amount := range []string{`1999::numeric(20,0)`, `1999::bigint`, `1999::integer`, `sum(1999.00::numeric(12,2))`, `1999::numeric`, `1900::numeric(5,-2)`} {
		var got []string
		err := (&extract.Source{DB: db, Name: "q.sql", Query: source(amount, `0`)}).Orders(context.Background(), w,
			func(r pipeline.SourceRow) error { got = append(got, *r.AmountMinor); return nil })
		if err != nil || len(got) != 1 {
			t.Errorf("source query returning amount_minor as %s: got %v, rows %q", amount, err, got)
		}
	}
	late := &extract.LateRefunds{DB: db, Name: "l.sql", Query: `
		SELECT 'R1'::text AS refund_no, 'A'::text AS order_no, 'S1'::text AS seller_id, 0.05::numeric(12,2) AS amount_minor,
			$1::timestamptz AS created_at WHERE $1::timestamptz < $2::timestamptz`}
	err := late.LateRefunds(context.Background(), w, func(pipeline.LateRefundRow) error { return nil })
	if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "l.sql") || !strings.Contains(err.Error(), "amount_minor as numeric(12,2)") {
		t.Fatalf("late-refunds query with amount_minor as numeric(12,2): got %v (kind %v), want a usage error naming the query and the column", err, pipeline.KindOf(err))
	}
}

// Check finds what LateRefunds would refuse of a late-refunds query -
// the database's refusal, other columns, a wall clock, a decimal amount -
// as a usage error naming the query, without reading a row; a good query
// passes, whatever rows it has.
func TestLateRefundsCheck(t *testing.T) {
	db := pgtest.DB(t)
	if _, err := db.Exec(`CREATE TABLE refunds (refund_no text, order_no text, seller_id text, amount_minor bigint, created_at timestamptz,
			created_local timestamp, amount numeric(12,2));
		INSERT INTO refunds VALUES ('R1', 'A', 'S1', 150, now() - interval '90 minutes', '2026-11-23 10:00', 1.50)`); err != nil {
		t.Fatal(err)
	}
	w := pipeline.Window{Start: time.Now().Add(-2 * time.Hour), End: time.Now().Add(-time.Hour)}
	const good = `SELECT refund_no, order_no, seller_id, amount_minor, created_at FROM refunds WHERE created_at >= $1 AND created_at < $2 -- a comment`
	if err := (&extract.LateRefunds{DB: db, Name: "l.sql", Query: good}).Check(context.Background(), w); err != nil {
		t.Fatalf("good query: %v", err)
	}
	for _, c := range []struct{ query, want string }{
		{"SELECT refund_no,\n  order_no, seller_id, amount_minor, created_at FROM refunds\n WHERE create_at >= $1", "column \"create_at\" does not exist at position 3:8"},
		{`SELEC refund_no FROM refunds`, "syntax error at or near \"SELEC\" at column 1"},
		{strings.Replace(good, "seller_id,", "", 1), "returns columns"},
		{strings.Replace(good, "seller_id,", "seller_no AS seller_id,", 1), "seller_no"},
		{strings.Replace(good, "created_at FROM", "created_local AS created_at FROM", 1), "created_at as timestamp (without time zone)"},
		{strings.Replace(good, "amount_minor,", "amount AS amount_minor,", 1), "amount_minor as numeric(12,2)"},
	} {
		err := (&extract.LateRefunds{DB: db, Name: "l.sql", Query: c.query}).Check(context.Background(), w)
		if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "late-refunds query l.sql") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v (kind %v), want a usage error naming the query and %q", c.query, err, pipeline.KindOf(err), c.want)
		}
	}
}

// An id the sellers query cannot take is given no seller, its orders
// rejected as of a seller the platform does not give ("its sellers query
// gave no row for it"), while the others are read: the database's refusal
// (its id "N/A" no bigint, or a row of the seller that a cast of the query
// refuses) was dropped, and nothing told the operator what the database
// said. Refused is told each with the database's message; a lookup that
// fails whatever its ids returns an error with it, and tells none.
func TestSellersTellsWhatTheDatabaseSaidOfTheIDsItRefused(t *testing.T) {
	db := pgtest.DB(t)
	db.MustExec(`CREATE TABLE merchants (id bigint PRIMARY KEY, name text);
		INSERT INTO merchants SELECT i, 'M' || i FROM generate_series(1, 9) i;
		UPDATE merchants SET name = '12,5' WHERE id = 6`)
	var told []string
	src := &extract.Sellers{DB: db, Name: "sellers.sql", Batch: 4, Query: `SELECT id AS seller_id, name, 'Corporate' AS entity_type, 'CHN' AS country,
		'INF' || id AS infinia_seller_id, NULL AS wechat_sub_mchid FROM merchants WHERE id = ANY ($1::bigint[]) AND (id <> 6 OR name::numeric > 0)`,
		Refused: func(id string, err error) { told = append(told, fmt.Sprintf("%s: %v", id, err)) }}
	var calls []string
	err := src.Sellers(context.Background(), []string{"1", "2", "N/A", "3", "4", "5", "6", "7"}, func(s pipeline.Seller) error {
		calls = append(calls, s.ID)
		return nil
	})
	slices.Sort(calls)
	if err != nil || fmt.Sprint(calls) != "[1 2 3 4 5 7]" {
		t.Fatalf("sellers given %v (%v), want all but N/A and 6", calls, err)
	}
	all := strings.Join(told, "\n")
	for _, want := range []string{`N/A: sellers query sellers.sql: pq: invalid input syntax for type bigint: "N/A"`, `6: sellers query sellers.sql: pq: invalid input syntax for type numeric: "12,5"`} {
		if !strings.Contains(all, want) {
			t.Errorf("told:\n%s\nwant %q", all, want)
		}
	}
	src.Query = strings.Replace(src.Query, "(id <> 6 OR ", "(", 1)
	told = nil
	err = src.Sellers(context.Background(), []string{"6", "N/A"}, func(pipeline.Seller) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "sellers query sellers.sql: pq: invalid input syntax for type") || len(told) != 0 {
		t.Fatalf("a lookup the query takes no id of: %v (told %v), want its error with the database's message, and nothing told", err, told)
	}
}

// A platform whose seller ids are numbers casts $1 (README: m.id = ANY
// ($1::bigint[])), and the array holds every seller id the day's rows
// name: one that is no number ("", "N/A", a text column's typo) had the
// database refuse the cast, and the whole day stopped, exit 2 on every
// run, where a bad value is its row's reject. The ids the query cannot
// take are given no seller (their orders are rejected as of a seller the
// platform does not give); the others are read. A query that fails
// whatever its ids is still refused.
func TestSellersPassesOverAnIDTheQueryCannotTake(t *testing.T) {
	db := pgtest.DB(t)
	db.MustExec(`CREATE TABLE merchants (id bigint PRIMARY KEY, name text);
		INSERT INTO merchants SELECT i, 'M' || i FROM generate_series(1, 9) i`)
	src := &extract.Sellers{DB: db, Name: "sellers.sql", Batch: 4, Query: `SELECT id AS seller_id, name, 'Corporate' AS entity_type, 'CHN' AS country,
		'INF' || id AS infinia_seller_id, NULL AS wechat_sub_mchid FROM merchants WHERE id = ANY ($1::bigint[])`}
	var calls []string
	err := src.Sellers(context.Background(), []string{"1", "2", "", "3", "N/A", "4", "5", "99999999999999999999", "6", "7"}, func(s pipeline.Seller) error {
		calls = append(calls, s.ID)
		return nil
	})
	slices.Sort(calls)
	if err != nil || fmt.Sprint(calls) != "[1 2 3 4 5 6 7]" {
		t.Fatalf("sellers given %v (%v), want 1 to 7", calls, err)
	}
	src.Query = strings.Replace(src.Query, "WHERE id", "WHERE name::bigint > 0 AND id", 1)
	err = src.Sellers(context.Background(), []string{"1", "2"}, func(pipeline.Seller) error { return nil })
	if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "sellers query sellers.sql") {
		t.Fatalf("a sellers query that fails whatever its ids: %v (kind %v), want a usage error naming it", err, pipeline.KindOf(err))
	}
}

// A query naming a table its database does not have - the usual case of a
// ledger's database holding no platform tables when --source-database-url
// is unset - says where the platform's tables are read from, for each of
// the platform's queries.
func TestAQueryOnAMissingTableSaysWhereThePlatformsTablesAreRead(t *testing.T) {
	db := pgtest.DB(t)
	w := pipeline.Window{Start: time.Now().Add(-48 * time.Hour), End: time.Now().Add(-24 * time.Hour)}
	src := &extract.Source{DB: db, Name: "q.sql", Query: `SELECT * FROM orders WHERE $1::timestamptz < $2::timestamptz`}
	errs := map[string]error{"source query q.sql": src.Orders(context.Background(), w, func(pipeline.SourceRow) error { return nil })}
	sel := &extract.Sellers{DB: db, Name: "s.sql", Query: `SELECT * FROM nowhere.sellers WHERE seller_id = ANY ($1)`}
	errs["sellers query s.sql"] = sel.Sellers(context.Background(), []string{"S1"}, func(pipeline.Seller) error { return nil })
	for what, err := range errs {
		if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), what) ||
			!strings.Contains(err.Error(), "read from --source-database-url's database, or --database-url's") {
			t.Errorf("%s: got %v", what, err)
		}
	}
}
