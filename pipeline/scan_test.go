package pipeline

import (
	"database/sql"
	"testing"
	"time"
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
	*dest[9].(*sql.NullTime) = sql.NullTime{Time: at, Valid: true}
	var first SourceRow
	sc.Fill(&first)

	*dest[1].(*sql.NullString) = sql.NullString{String: "O2", Valid: true}
	*dest[6].(*sql.NullString) = sql.NullString{}
	*dest[9].(*sql.NullTime) = sql.NullTime{Time: at.Add(time.Hour), Valid: true}
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
