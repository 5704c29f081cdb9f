package transform

import (
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
