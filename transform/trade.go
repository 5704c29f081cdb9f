package transform

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// TradeRows returns the trade-detail rows of a split: a SALE row with the
// gross amount, the commission and the seller's share, and, when part of
// the order was refunded, a REFUND row with the refunded amount.
func TradeRows(s pipeline.Split) []pipeline.TradeRow {
	cur := s.Currency
	f := func(v int64) string { return pipeline.FormatMinor(v, cur) }
	when := s.ConfirmedAt.UTC().Format(time.RFC3339)
	rows := []pipeline.TradeRow{{
		OrderNo: s.OrderNo, TradeType: "SALE", ProductType: s.Category, Currency: string(cur),
		Amount: f(s.Amount), Commission: f(s.Commission), SellerAmount: f(s.SellerShare), TradeTime: when,
	}}
	if s.Refunded > 0 {
		rows = append(rows, pipeline.TradeRow{
			OrderNo: s.OrderNo, TradeType: "REFUND", ProductType: s.Category, Currency: string(cur),
			Amount: f(s.Refunded), Commission: f(0), SellerAmount: f(0), TradeTime: when,
		})
	}
	return rows
}

// shortHash is a stable 12-hex-digit digest of parts, for keys that must be
// deterministic, short and free of the characters ids may contain.
func shortHash(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return strings.ToUpper(hex.EncodeToString(h[:6]))
}

// TradeRequestNo is the deterministic requestNo of a trade-detail upload:
// the same date, seller, currency and attempt always give the same one.
func TradeRequestNo(d pipeline.Date, sellerID string, cur pipeline.Currency, attempt int) string {
	return fmt.Sprintf("TDU-%s-%s-%d", d.Compact(), shortHash("TD", sellerID, string(cur)), attempt)
}

// TradeFileName is the file name Infinia expects (assumed):
// TD_<platformId>_<sellerId>_<currency>_<YYYYMMDD>_<requestNo>.csv.
func TradeFileName(platformID, infiniaID string, cur pipeline.Currency, d pipeline.Date, requestNo string) string {
	return fmt.Sprintf("TD_%s_%s_%s_%s_%s.csv", platformID, infiniaID, cur, d.Compact(), requestNo)
}

// RevenueShareRequestNo is the deterministic requestNo of a revenue share.
func RevenueShareRequestNo(d pipeline.Date, sellerID string, cur pipeline.Currency, attempt int) string {
	return fmt.Sprintf("RS-%s-%s-%d", d.Compact(), shortHash("RS", sellerID, string(cur)), attempt)
}

// BindingRequestNo is the requestNo of a binding request or status query
// made on date d.
func BindingRequestNo(kind string, d pipeline.Date, sellerID string) string {
	return fmt.Sprintf("%s-%s-%s", kind, d.Compact(), shortHash(kind, sellerID))
}

// RevenueShareSubject names the logical payout of a seller's share in a
// currency for a date (the effect's subject).
func RevenueShareSubject(d pipeline.Date, sellerID string, cur pipeline.Currency) string {
	return fmt.Sprintf("RS/%s/%s/%s", d.Compact(), sellerID, cur)
}

// UploadSubject names the logical upload of a seller's trade details in a
// currency for a date.
func UploadSubject(d pipeline.Date, sellerID string, cur pipeline.Currency) string {
	return fmt.Sprintf("TD/%s/%s/%s", d.Compact(), sellerID, cur)
}
