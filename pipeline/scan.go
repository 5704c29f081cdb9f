package pipeline

import (
	"database/sql"
	"time"
)

// SourceScan holds one source row's ten columns while database/sql scans
// them: nullable values of its own types, which Scan fills without
// reflection (a **string destination goes through reflect for every
// column). The extract stage and the ledger's snapshot read share it.
type SourceScan struct {
	text [8]sql.NullString
	ts   [2]sql.NullTime
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
// twentieth of the day's CPU in settle).
func (s *SourceScan) Fill(r *SourceRow) {
	v := new(sourceValues)
	text := []**string{&r.OrderNo, &r.SellerID, &r.Provider, &r.ProviderTxnID,
		&r.Currency, &r.AmountMinor, &r.RefundedMinor, &r.Category}
	for i, dst := range text {
		*dst = nil
		if s.text[i].Valid {
			v.text[i] = s.text[i].String
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
