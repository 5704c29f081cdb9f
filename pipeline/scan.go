package pipeline

import (
	"database/sql"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// SourceScan holds one source row's ten columns while database/sql scans
// them: nullable values of its own types, which Scan fills without
// reflection (a **string destination goes through reflect for every
// column). The extract stage and the ledger's snapshot read share it.
type SourceScan struct {
	text [8]sql.NullString
	ts   [2]sourceTime
}

// sourceTime scans a timestamp column: NULL, an instant, or PostgreSQL's
// 'infinity' and '-infinity', which lib/pq gives as text (a bad row's
// value, not a reason to stop reading the day).
type sourceTime struct {
	Time  time.Time
	Valid bool
}

func (s *sourceTime) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*s = sourceTime{}
		return nil
	case time.Time:
		*s = sourceTime{x, true}
		return nil
	case []byte:
		return s.scanText(string(x))
	case string:
		return s.scanText(x)
	}
	return fmt.Errorf("a timestamp column gave %T", v)
}

func (s *sourceTime) scanText(v string) error {
	switch v {
	case "infinity":
		*s = sourceTime{infinity, true}
	case "-infinity":
		*s = sourceTime{negInfinity, true}
	default:
		return fmt.Errorf("a timestamp column gave %q", v)
	}
	return nil
}

// PostgreSQL's 'infinity' and '-infinity' as a SourceRow holds them:
// instants outside what a timestamptz can hold (4713 BC to 294276 AD), so
// that no value read can be taken for them. No order is paid or confirmed
// at either: the transform rejects them, and the snapshot keeps them as
// they were read.
var (
	infinity    = time.Date(294277, time.January, 1, 0, 0, 0, 0, time.UTC)
	negInfinity = time.Date(-4713, time.January, 1, 0, 0, 0, 0, time.UTC)
)

// TimeInfinity returns "infinity" or "-infinity" when t is a source row's
// infinite timestamp, "" for any other instant.
func TimeInfinity(t time.Time) string {
	switch {
	case t.Equal(infinity):
		return "infinity"
	case t.Equal(negInfinity):
		return "-infinity"
	}
	return ""
}

// Dest returns the scan destinations: seq, then the ten columns in the
// source query's order (order_no, seller_id, provider, provider_txn_id,
// currency, amount_minor, refunded_minor, category, paid_at, confirmed_at).
func (s *SourceScan) Dest(seq *int64) []any {
	d := []any{seq}
	for i := range s.text {
		d = append(d, &s.text[i])
	}
	return append(d, &s.ts[0], &s.ts[1])
}

// Fill sets r's columns from what was scanned (NULL stays nil). The
// row's values share one allocation, not one each (ten a row were a
// twentieth of the day's CPU in settle). Bytes of a text value that are
// not UTF-8 (a SQL_ASCII platform database holds any, and extract reads
// them as bytes there) become U+FFFD here, before the row is recorded or classified: the ledger's text is
// UTF-8, and the classification must see the row as the snapshot keeps it
// (the transform rejects an identifier holding U+FFFD).
func (s *SourceScan) Fill(r *SourceRow) {
	v := new(sourceValues)
	text := []**string{&r.OrderNo, &r.SellerID, &r.Provider, &r.ProviderTxnID,
		&r.Currency, &r.AmountMinor, &r.RefundedMinor, &r.Category}
	for i, dst := range text {
		*dst = nil
		if s.text[i].Valid {
			v.text[i] = ValidText(s.text[i].String)
			*dst = &v.text[i]
		}
	}
	for i, dst := range []**time.Time{&r.PaidAt, &r.ConfirmedAt} {
		*dst = nil
		if s.ts[i].Valid {
			v.ts[i] = s.ts[i].Time
			*dst = &v.ts[i]
		}
	}
}

// sourceValues holds the values of one filled SourceRow.
type sourceValues struct {
	text [8]string
	ts   [2]time.Time
}

// ValidText is s with each run of bytes that are not UTF-8 replaced by
// U+FFFD (s itself when it is UTF-8, as nearly every value is).
func ValidText(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
