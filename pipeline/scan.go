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

// Fill sets r's columns from what was scanned (NULL stays nil).
func (s *SourceScan) Fill(r *SourceRow) {
	str := func(n sql.NullString) *string {
		if !n.Valid {
			return nil
		}
		v := n.String
		return &v
	}
	ts := func(n sql.NullTime) *time.Time {
		if !n.Valid {
			return nil
		}
		v := n.Time
		return &v
	}
	r.OrderNo, r.SellerID, r.Provider, r.ProviderTxnID = str(s.text[0]), str(s.text[1]), str(s.text[2]), str(s.text[3])
	r.Currency, r.AmountMinor, r.RefundedMinor, r.Category = str(s.text[4]), str(s.text[5]), str(s.text[6]), str(s.text[7])
	r.PaidAt, r.ConfirmedAt = ts(s.ts[0]), ts(s.ts[1])
}
