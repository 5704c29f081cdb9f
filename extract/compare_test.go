package extract_test

import (
	"context"
	"fmt"
	"iter"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/settlekit/settle/extract"
	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/pipeline"
)

// compareWindow is the window the Compare tests read.
var compareWindow = pipeline.Window{Start: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)}

// compareQuery reads t_orders as a source query.
const compareQuery = `SELECT order_no, seller_id, provider, provider_txn_id, currency, amount_minor, refunded_minor, category, paid_at, confirmed_at
	FROM t_orders WHERE confirmed_at >= $1 AND confirmed_at < $2`

// snapshotOf is what a run's extract of src's window records, given as the
// ledger gives it back (SnapshotRows): its rows as Orders reads them, a
// NULL order number left out, in byte order of their order numbers, the
// rows of one order number in reverse (the ledger gives them in no order).
func snapshotOf(t *testing.T, src *extract.Source) []pipeline.SourceRow {
	t.Helper()
	var rows []pipeline.SourceRow
	read := *src
	read.Unfinished = true
	if err := read.Orders(context.Background(), compareWindow, func(r pipeline.SourceRow) error {
		if r.OrderNo != nil {
			rows = append(rows, r)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.SortStableFunc(rows, func(a, b pipeline.SourceRow) int { return strings.Compare(*a.OrderNo, *b.OrderNo) })
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && *rows[j].OrderNo == *rows[i].OrderNo {
			j++
		}
		slices.Reverse(rows[i:j])
		i = j
	}
	return rows
}

func rowsOf(rows []pipeline.SourceRow) iter.Seq2[pipeline.SourceRow, error] {
	return func(yield func(pipeline.SourceRow, error) bool) {
		for _, r := range rows {
			if !yield(r, nil) {
				return
			}
		}
	}
}

// differences is what Compare finds of src against snapshot, one line a
// difference: kind, order number, and its changes or rows.
func differences(t *testing.T, src *extract.Source, snapshot []pipeline.SourceRow) []string {
	t.Helper()
	var got []string
	kinds := map[extract.DifferenceKind]string{extract.WrittenLate: "late", extract.Changed: "changed", extract.Gone: "gone"}
	if _, err := src.Compare(context.Background(), compareWindow, rowsOf(snapshot), func(d extract.Difference) error {
		line := kinds[d.Kind] + " " + d.OrderNo
		if d.Kind == extract.Changed {
			line += ": " + d.Changes()
		}
		got = append(got, line)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// createCompareOrders creates t_orders, its amounts numeric (unconstrained:
// "100.00" is read as written), with awkward rows: NULL columns, text not
// ASCII, an order number given twice, a NULL one, one outside the window.
func createCompareOrders(t *testing.T, db *sqlx.DB) {
	t.Helper()
	db.MustExec(`CREATE TABLE t_orders (order_no text, seller_id text, provider text, provider_txn_id text, currency text,
		amount_minor numeric, refunded_minor bigint, category text, paid_at timestamptz, confirmed_at timestamptz)`)
	db.MustExec(`INSERT INTO t_orders VALUES
		('A1', 'S1', 'infiniapay', NULL, 'USD', 1000, 0, '电器', '2026-11-23 01:00Z', '2026-11-23 02:00Z'),
		('A2', 'Sä', 'wechatpay', 'tx2', 'CNY', 100.00, 0, NULL, '2026-11-23 01:00Z', '2026-11-23 02:00Z'),
		('B', 'S3', NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2026-11-23 03:00Z'),
		('D', 'S1', 'infiniapay', NULL, 'USD', 500, 0, 'c', '2026-11-23 01:00Z', '2026-11-23 04:00Z'),
		('D', 'S2', 'infiniapay', NULL, 'USD', 700, 0, 'c', '2026-11-23 01:00Z', '2026-11-23 05:00Z'),
		('É1', 'S1', 'payprotocol', 'tx9', 'JPY', 1500, 0, 'c', '2026-11-23 01:00Z', '2026-11-23 06:00Z'),
		(NULL, 'S1', 'infiniapay', NULL, 'USD', 1, 0, 'c', '2026-11-23 01:00Z', '2026-11-23 07:00Z'),
		('Z', 'S1', 'infiniapay', NULL, 'USD', 1, 0, 'c', '2026-11-24 01:00Z', '2026-11-24 01:00Z')`)
}

// TestCompareAnUnchangedDayFindsNothing: a window the platform gives as
// it was read - NULL columns, text not ASCII, an order number twice (its
// rows in another order), an amount read as "100.00" - is no difference;
// nor is a refund counted since, or a confirmed_at moved within the
// window (an amount's spelling changed:
// TestCompareNamesAnAmountItsSpellingMends). Seen failing: with
// refunded_minor among the columns compared.
func TestCompareAnUnchangedDayFindsNothing(t *testing.T) {
	db := pgtest.DB(t)
	createCompareOrders(t, db)
	src := &extract.Source{DB: db, Name: "test", Query: compareQuery}
	snapshot := snapshotOf(t, src)
	if len(snapshot) != 6 || *snapshot[1].AmountMinor != "100.00" {
		t.Fatalf("the snapshot: %d rows, want 6 with A2's amount as 100.00", len(snapshot))
	}
	if got := differences(t, src, snapshot); len(got) != 0 {
		t.Fatalf("an unchanged window: %q, want nothing", got)
	}
	db.MustExec(`UPDATE t_orders SET refunded_minor = 300 WHERE order_no = 'A1'`)
	db.MustExec(`UPDATE t_orders SET confirmed_at = confirmed_at + interval '1 hour' WHERE order_no = 'D'`)
	if got := differences(t, src, snapshot); len(got) != 0 {
		t.Fatalf("a refund, a confirmed_at within the window: %q, want nothing", got)
	}
}

// TestCompareNamesAnAmountItsSpellingMends: an amount read as "100.00"
// was rejected when read (the transform takes an amount written as an
// integer alone) and no run reads it again; given as "100" now (the
// column bigint), the order would be paid, and is named, its amount as
// written on each side. An amount read as an integer and given as "100.00"
// now is the same money, paid on what was read: no difference.
func TestCompareNamesAnAmountItsSpellingMends(t *testing.T) {
	db := pgtest.DB(t)
	createCompareOrders(t, db)
	src := &extract.Source{DB: db, Name: "test", Query: compareQuery}
	snapshot := snapshotOf(t, src)
	db.MustExec(`ALTER TABLE t_orders ALTER COLUMN amount_minor TYPE bigint`)
	want := []string{`changed A2: amount_minor "100.00" -> "100"`}
	if got := differences(t, src, snapshot); !slices.Equal(got, want) {
		t.Fatalf("the amounts bigint now: %q, want %q", got, want)
	}
	db.MustExec(`ALTER TABLE t_orders ALTER COLUMN amount_minor TYPE numeric(12,2)`)
	if got := differences(t, src, snapshot); len(got) != 0 {
		t.Fatalf("the amounts numeric(12,2) now (A1 read as 1000, given as 1000.00): %q, want nothing", got)
	}
}

// TestCompareFindsEachKind: Compare names, once each and in byte order of
// their order numbers, an order written into the window since (late), one
// whose columns that decide money changed (each column old -> new, an
// amount in money form; a NULL that became a value; a copy of an order
// number given twice), and one read that the window no longer has
// (deleted, or its confirmed_at moved out of the window).
func TestCompareFindsEachKind(t *testing.T) {
	db := pgtest.DB(t)
	createCompareOrders(t, db)
	src := &extract.Source{DB: db, Name: "test", Query: compareQuery}
	snapshot := snapshotOf(t, src)
	db.MustExec(`UPDATE t_orders SET amount_minor = 1250, seller_id = 'S9' WHERE order_no = 'A1'`)
	db.MustExec(`DELETE FROM t_orders WHERE order_no = 'A2'`)
	db.MustExec(`UPDATE t_orders SET category = 'x' WHERE order_no = 'B'`)
	db.MustExec(`INSERT INTO t_orders VALUES ('C', 'S1', 'infiniapay', NULL, 'USD', 1, 0, 'c', '2026-11-23 01:00Z', '2026-11-23 08:00Z')`)
	db.MustExec(`UPDATE t_orders SET amount_minor = 701 WHERE order_no = 'D' AND seller_id = 'S2'`)
	db.MustExec(`UPDATE t_orders SET confirmed_at = '2026-11-24 00:00Z' WHERE order_no = 'É1'`)
	want := []string{
		`changed A1: seller_id "S1" -> "S9"; amount_minor 10.00 USD -> 12.50 USD`,
		"gone A2",
		`changed B: category NULL -> "x"`,
		"late C",
		"changed D: read as 2 rows, given as 2 now, which differ",
		"gone É1",
	}
	if got := differences(t, src, snapshot); !slices.Equal(got, want) {
		t.Fatalf("differences:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// An order number read twice that the platform gives once now (one
	// copy deleted): its reject mended.
	db.MustExec(`DELETE FROM t_orders WHERE order_no = 'D' AND seller_id = 'S2'`)
	if got := differences(t, src, snapshot); !slices.Contains(got, "changed D: read as 2 rows, given as 1 now, which differ") {
		t.Fatalf("D given once now: %q", got)
	}
}

// TestCompareOnASQLASCIIPlatform: on a SQL_ASCII platform database, whose
// text columns the extract reads as their bytes and the snapshot keeps
// made UTF-8 (U+FFFD for bytes that are not), a seller id of GBK bytes
// read and given unchanged is no difference; changed, it is one, old as
// the snapshot keeps it.
func TestCompareOnASQLASCIIPlatform(t *testing.T) {
	db := asciiDB(t)
	db.MustExec(`CREATE TABLE t_orders (order_no text, seller_id text, provider text, provider_txn_id text, currency text,
		amount_minor bigint, refunded_minor bigint, category text, paid_at timestamptz, confirmed_at timestamptz)`)
	db.MustExec(`INSERT INTO t_orders VALUES
		('A', E'S\xc9\xcc', 'infiniapay', NULL, 'USD', 1000, 0, E'\xd0\x90', '2026-11-23 01:00Z', '2026-11-23 02:00Z'),
		('B', 'S1', 'infiniapay', NULL, 'USD', 1000, 0, NULL, '2026-11-23 01:00Z', '2026-11-23 02:00Z')`)
	src := &extract.Source{DB: db, Name: "test", Query: compareQuery}
	snapshot := snapshotOf(t, src)
	if got := *snapshot[0].SellerID; got != "S\uFFFD" {
		t.Fatalf("the snapshot keeps A's seller as %q", got)
	}
	if got := differences(t, src, snapshot); len(got) != 0 {
		t.Fatalf("an unchanged window on a SQL_ASCII platform: %q, want nothing", got)
	}
	db.MustExec(`UPDATE t_orders SET seller_id = E'S\xd0\x91' WHERE order_no = 'A'`)
	want := fmt.Sprintf("changed A: seller_id %q -> %q", "S\uFFFD", "SБ")
	if got := differences(t, src, snapshot); !slices.Equal(got, []string{want}) {
		t.Fatalf("A's seller changed on a SQL_ASCII platform: %q, want %q", got, want)
	}
}

// asciiDB is a database of its own, in SQL_ASCII, dropped at the test's
// end.
func asciiDB(t *testing.T) *sqlx.DB {
	t.Helper()
	base := pgtest.URL(t)
	admin, err := sqlx.Open("postgres", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/") + "_ascii"
	admin.MustExec("CREATE DATABASE " + pq.QuoteIdentifier(name) + " TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'")
	t.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS " + pq.QuoteIdentifier(name) + " WITH (FORCE)") })
	u.Path = "/" + name
	db, err := sqlx.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestDifferenceDetailSaysWhatWasFound: what the ledger keeps of an order
// the look names (late_orders.detail): a changed order's columns old ->
// new; one written late, its row as given now; one gone, its row as read,
// each column with its value, the amount in money form, and the rows of
// an order number given several times counted.
func TestDifferenceDetailSaysWhatWasFound(t *testing.T) {
	s := func(v string) *string { return &v }
	no := "O1"
	row := pipeline.SourceRow{OrderNo: &no, SellerID: s("S1"), Provider: s("infiniapay"), Currency: s("USD"), AmountMinor: s("1250"), Category: s("c")}
	changed := row
	changed.AmountMinor = s("1300")
	for _, c := range []struct {
		d    extract.Difference
		kind string
		want string
	}{
		{extract.Difference{Kind: extract.WrittenLate, OrderNo: no, Now: row, NowRows: 1}, "written_late",
			`given as: seller_id "S1"; provider "infiniapay"; provider_txn_id NULL; currency "USD"; amount_minor 12.50 USD; category "c"`},
		{extract.Difference{Kind: extract.Gone, OrderNo: no, Read: row, ReadRows: 2}, "gone",
			`read as 2 rows, the first: seller_id "S1"; provider "infiniapay"; provider_txn_id NULL; currency "USD"; amount_minor 12.50 USD; category "c"`},
		{extract.Difference{Kind: extract.Changed, OrderNo: no, Read: row, Now: changed, ReadRows: 1, NowRows: 1}, "changed",
			`amount_minor 12.50 USD -> 13.00 USD`},
	} {
		if got := c.d.Detail(); got != c.want {
			t.Errorf("%s: Detail %q, want %q", c.kind, got, c.want)
		}
		if got := c.d.Kind.String(); got != c.kind {
			t.Errorf("kind %q, want %q", got, c.kind)
		}
	}
}
