package extract_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/extract"
	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/pipeline"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

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
// the column. The late-refunds query's created_at likewise.
func TestQueriesRefuseATimestampColumnOfAnotherType(t *testing.T) {
	db := pgtest.DB(t)
	src := &extract.Source{DB: db, Name: "q.sql", Query: `
		SELECT 'A'::text AS order_no, 'S1'::text AS seller_id, 'infiniapay'::text AS provider, NULL::text AS provider_txn_id,
			'USD'::text AS currency, 1200 AS amount_minor, 0 AS refunded_minor, 'c'::text AS category,
			$1::timestamptz AS paid_at, $1::timestamptz::text AS confirmed_at WHERE $1::timestamptz < $2::timestamptz`}
	w := pipeline.Window{Start: time.Now(), End: time.Now().Add(time.Hour)}
	err := src.Orders(context.Background(), w, func(pipeline.SourceRow) error { return nil })
	if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "confirmed_at as text") {
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
