package pipeline

import (
	"math/big"
	"strings"
	"testing"
	"time"
)

// FuzzReadLateRefund checks the amount of a late refund row against
// math/big: a refund is pending with its amount only when amount_minor is
// a positive integer within int64 written as PostgreSQL writes one (no
// "+", no leading zeros, ASCII digits); any other row is rejected, amount
// 0, with a reason naming the column.
func FuzzReadLateRefund(f *testing.F) {
	for _, s := range []string{"150", "0", "-5", "+150", "0150", "-0", " 150", "150 ", "٣", "0x10", "1e3", "1e400", "NaN",
		"9223372036854775807", "9223372036854775808", "1.5", ""} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, amount string) {
		ref, order, seller := "R", "O", "S"
		r := ReadLateRefund(LateRefundRow{RefundNo: &ref, OrderNo: &order, SellerID: &seller, AmountMinor: &amount, CreatedAt: &now}, 1)
		want, ok := new(big.Int).SetString(amount, 10)
		ok = ok && want.IsInt64() && want.Sign() > 0 && want.String() == amount
		switch {
		case ok && (r.State != LateRefundPending || r.Amount != want.Int64()):
			t.Fatalf("amount %q: %+v, want pending %v", amount, r, want)
		case !ok && (r.State != LateRefundRejected || r.Amount != 0 || !strings.HasPrefix(r.Reason, "amount_minor ")):
			t.Fatalf("amount %q: %+v, want rejected naming amount_minor", amount, r)
		}
	})
}
