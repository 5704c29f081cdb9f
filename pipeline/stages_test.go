package pipeline

import (
	"fmt"
	"strings"
	"testing"
)

func str(s string) *string { return &s }

func TestSettleRejectsEveryCopyOfADuplicateAndClassifiesTheRest(t *testing.T) {
	rows := []SourceRow{
		{Seq: 8, OrderNo: str("")}, // an empty order number shares none either
		{Seq: 9, OrderNo: str("")},
		{Seq: 5, OrderNo: nil},
		{Seq: 6, OrderNo: nil}, // then a named order
		{Seq: 1, OrderNo: str("A")},
		{Seq: 2, OrderNo: str("B")},
		{Seq: 4, OrderNo: str("B")},
		{Seq: 7, OrderNo: str("B")},
		{Seq: 3, OrderNo: str("C")},
		{Seq: 10, OrderNo: str("D")}, // two copies are a duplicate too
		{Seq: 11, OrderNo: str("D")},
		{Seq: 12, OrderNo: nil}, // a NULL after a named order (PostgreSQL sorts NULLs last)
	}
	classify := func(r SourceRow) (Split, *Reject, error) {
		if r.OrderNo == nil {
			rej := RejectOf(r, "order_no is NULL")
			return Split{}, &rej, nil
		}
		if *r.OrderNo == "" {
			rej := RejectOf(r, "order_no is empty")
			return Split{}, &rej, nil
		}
		return Split{Order: Order{OrderNo: *r.OrderNo, Amount: 10}, SellerShare: 10}, nil, nil
	}
	var plan Plan
	err := Settle(func(fn func(SourceRow) error) error {
		for _, r := range rows {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}, classify, &plan)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Items != 2 {
		t.Fatalf("items %d, want A and C", plan.Items)
	}
	var got []string
	for _, r := range plan.Rejects {
		got = append(got, fmt.Sprintf("%d:%s", r.Seq, r.Reason))
	}
	want := "8:order_no is empty|9:order_no is empty|5:order_no is NULL|6:order_no is NULL|2:duplicate order_no: 3 rows share it|4:duplicate order_no: 3 rows share it|7:duplicate order_no: 3 rows share it|" +
		"10:duplicate order_no: 2 rows share it|11:duplicate order_no: 2 rows share it|12:order_no is NULL"
	if strings.Join(got, "|") != want {
		t.Fatalf("rejects\n got %s\nwant %s", strings.Join(got, "|"), want)
	}
}

func TestSettleStopsOnAClassifierError(t *testing.T) {
	boom := fmt.Errorf("no rule")
	err := Settle(func(fn func(SourceRow) error) error { return fn(SourceRow{OrderNo: str("A")}) },
		func(SourceRow) (Split, *Reject, error) { return Split{}, nil, boom }, &Plan{})
	if err != boom {
		t.Fatalf("got %v", err)
	}
}

func TestSortedSourceQuery(t *testing.T) {
	q := SortedSourceQuery("SELECT 1 AS order_no -- trailing comment\n;  \n")
	if !strings.HasSuffix(q, "ORDER BY order_no NULLS FIRST") || strings.Contains(q, ";") {
		t.Fatalf("%q", q)
	}
}

// A query that a run accepts as it is can be wrapped: its last
// semicolons go, with the comments after them, and nothing else.
func TestQueryBody(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT 1":                          "SELECT 1",
		"SELECT 1;":                         "SELECT 1",
		"SELECT 1;;\n":                      "SELECT 1",
		"SELECT 1; -- the day's orders":     "SELECT 1",
		"SELECT 1; -- a\n/* b; */ \n-- c\n": "SELECT 1",
		"SELECT 1 -- note;\n":               "SELECT 1 -- note",
		"SELECT ';' AS x":                   "SELECT ';' AS x",
		"SELECT 1; /* not closed":           "SELECT 1; /* not closed",
		"SELECT 1 /* a */ ; -- b":           "SELECT 1 /* a */",
	} {
		if got := QueryBody(in); got != want {
			t.Errorf("QueryBody(%q) = %q, want %q", in, got, want)
		}
	}
}
