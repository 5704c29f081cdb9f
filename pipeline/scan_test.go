package pipeline

import (
	"database/sql"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Rows filled from one reused scan keep their own values, and a NULL
// column stays nil.
func TestSourceScanFillKeepsEachRowsValues(t *testing.T) {
	var sc SourceScan
	var seq int64
	dest := sc.Dest(&seq)
	if len(dest) != 11 {
		t.Fatalf("Dest gives %d destinations, want seq and the ten columns", len(dest))
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	*dest[1].(*sql.NullString) = sql.NullString{String: "O1", Valid: true}
	*dest[6].(*sql.NullString) = sql.NullString{String: "100", Valid: true}
	scan(t, dest[9], at)
	var first SourceRow
	sc.Fill(&first)

	*dest[1].(*sql.NullString) = sql.NullString{String: "O2", Valid: true}
	*dest[6].(*sql.NullString) = sql.NullString{}
	scan(t, dest[9], at.Add(time.Hour))
	second := SourceRow{AmountMinor: new(string)}
	sc.Fill(&second)

	if first.OrderNo == nil || *first.OrderNo != "O1" || *first.AmountMinor != "100" || !first.PaidAt.Equal(at) {
		t.Errorf("the first row changed with the second: %+v", first)
	}
	if *second.OrderNo != "O2" || !second.PaidAt.Equal(at.Add(time.Hour)) {
		t.Errorf("second row: %+v", second)
	}
	if second.AmountMinor != nil || second.SellerID != nil || second.ConfirmedAt != nil {
		t.Errorf("a NULL column is not nil: amount %v, seller %v, confirmed %v", second.AmountMinor, second.SellerID, second.ConfirmedAt)
	}
}

// scan scans v into dest as database/sql would.
func scan(t *testing.T, dest any, v any) {
	t.Helper()
	if err := dest.(sql.Scanner).Scan(v); err != nil {
		t.Fatal(err)
	}
}

// A bad value is a value, not a reason to stop reading the day: an
// infinite timestamp is read as one (and told apart from every instant),
// and bytes that are not UTF-8 are read as U+FFFD, before the row is
// recorded or classified.
func TestSourceScanReadsBadValues(t *testing.T) {
	var sc SourceScan
	var seq int64
	dest := sc.Dest(&seq)
	*dest[1].(*sql.NullString) = sql.NullString{String: "BAD-\xff\xfe-\xc3", Valid: true}
	*dest[8].(*sql.NullString) = sql.NullString{String: "猫", Valid: true}
	scan(t, dest[9], []byte("-infinity"))
	scan(t, dest[10], "infinity")
	var r SourceRow
	sc.Fill(&r)
	if *r.OrderNo != "BAD-\ufffd-\ufffd" || *r.Category != "猫" {
		t.Errorf("order_no %q, category %q", *r.OrderNo, *r.Category)
	}
	if TimeInfinity(*r.PaidAt) != "-infinity" || TimeInfinity(*r.ConfirmedAt) != "infinity" {
		t.Errorf("paid_at %v, confirmed_at %v", r.PaidAt, r.ConfirmedAt)
	}
	for _, at := range []time.Time{{}, time.Date(294276, 12, 31, 23, 59, 59, 999999000, time.UTC), time.Date(-4713, 11, 24, 0, 0, 0, 0, time.UTC)} {
		if TimeInfinity(at) != "" {
			t.Errorf("%v taken for an infinity", at)
		}
	}
	scan(t, dest[9], nil)
	sc.Fill(&r)
	if r.PaidAt != nil {
		t.Errorf("NULL paid_at read as %v", r.PaidAt)
	}
	if err := dest[9].(sql.Scanner).Scan([]byte("soon")); err == nil || !strings.Contains(err.Error(), `"soon"`) {
		t.Errorf("a timestamp column giving %q: %v", "soon", err)
	}
}

// A reject keeps at most MaxRejectText characters of a value, as UTF-8.
func TestRejectTextIsShortAndUTF8(t *testing.T) {
	long := strings.Repeat("商", 200)
	for _, c := range []struct{ in, want string }{
		{"O1", "O1"},
		{"a\xffb", "a\ufffdb"},
		{strings.Repeat("x", MaxRejectText), strings.Repeat("x", MaxRejectText)},
		{strings.Repeat("x", MaxRejectText+1), strings.Repeat("x", MaxRejectText-1) + "…"},
		{long, strings.Repeat("商", MaxRejectText-1) + "…"},
	} {
		got := RejectText(c.in)
		if got != c.want || utf8.RuneCountInString(got) > MaxRejectText || !utf8.ValidString(got) {
			t.Errorf("RejectText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
