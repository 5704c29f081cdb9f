package transform

import (
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
)

func TestTradeRows(t *testing.T) {
	at := time.Date(2026, 11, 23, 1, 2, 3, 0, time.FixedZone("CST", 8*3600))
	s := pipeline.Split{Order: pipeline.Order{OrderNo: "O1", Currency: "USD", Amount: 10000, Refunded: 2500, Category: "books", ConfirmedAt: at},
		Commission: 600, SellerShare: 6900}
	rows := TradeRows(s)
	if len(rows) != 2 {
		t.Fatalf("%d rows", len(rows))
	}
	want := pipeline.TradeRow{OrderNo: "O1", TradeType: "SALE", ProductType: "books", Currency: "USD", Amount: "100.00",
		Commission: "6.00", SellerAmount: "69.00", TradeTime: "2026-11-22T17:02:03Z"}
	if rows[0] != want {
		t.Fatalf("sale %+v", rows[0])
	}
	if rows[1].TradeType != "REFUND" || rows[1].Amount != "25.00" || rows[1].SellerAmount != "0.00" {
		t.Fatalf("refund %+v", rows[1])
	}
	s.Refunded, s.Currency = 0, "JPY"
	s.Amount, s.Commission, s.SellerShare = 1200, 60, 1140
	if rows := TradeRows(s); len(rows) != 1 || rows[0].Amount != "1200" || rows[0].SellerAmount != "1140" {
		t.Fatalf("JPY %+v", rows)
	}
}
