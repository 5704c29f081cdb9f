package pipeline

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"
)

// ruleSplit splits as a rules file's rule does (transform.Commission, which
// this package cannot import): round_half_even(base*rate/10000) + fixed,
// within [min, max] (max 0: no cap), then within [0, base].
func ruleSplit(rate, fixed, minC, maxC int64) Resplit {
	return func(_ context.Context, o Order, _ Date, _ int64) (Split, error) {
		base := o.Amount - o.Refunded
		c, err := MulDivHalfEven(base, rate, 10000)
		if err != nil {
			return Split{}, err
		}
		c = max(c+fixed, minC)
		if maxC > 0 {
			c = min(c, maxC)
		}
		c = min(max(c, 0), base)
		return Split{Order: o, Rule: "r:2", Commission: c, SellerShare: base - c}, nil
	}
}

// FuzzClawBacksUnderTheSameRules: an order's late refunds, clawed back one
// after another under the rules it was settled with, each give back
// exactly the refund, in parts that are not negative, and leave the order
// where a split of its whole refunded total would: the refunds' order and
// sizes change nothing, and the fallback (the seller's share first) is
// never taken. It holds because a rule's commission, and so the seller's
// share, never falls as the base grows.
func FuzzClawBacksUnderTheSameRules(f *testing.F) {
	f.Add(int64(10000), int64(0), int64(1000), int64(0), int64(0), int64(0), []byte{1, 0, 2, 0, 3, 0})
	f.Add(int64(10001), int64(3), int64(9999), int64(7), int64(50), int64(60), []byte{255, 255, 1, 0})
	f.Add(int64(1_000_000_000_000), int64(0), int64(5), int64(0), int64(0), int64(0), []byte{0xff, 0xff, 0xff, 0xff})
	f.Add(int64(5), int64(0), int64(5000), int64(0), int64(0), int64(0), []byte{1, 0, 1, 0, 1, 0, 1, 0, 1, 0})
	f.Fuzz(func(t *testing.T, amount, refunded, rate, fixed, minC, maxC int64, raw []byte) {
		const maxAmount = 1_000_000_000_000
		if amount <= 0 || amount > maxAmount || refunded < 0 || refunded > amount ||
			rate < 0 || rate > 10000 || fixed < 0 || fixed > maxAmount || minC < 0 || minC > maxAmount ||
			maxC < 0 || (maxC > 0 && minC > maxC) {
			t.Skip()
		}
		split := ruleSplit(rate, fixed, minC, maxC)
		o := Order{OrderNo: "A", SellerID: "S1", Channel: cardCh, Currency: "USD", Amount: amount, Refunded: refunded}
		s, err := split(context.Background(), o, Date{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		it := &SettledItem{Split: s, State: "paid"}
		for i := 0; len(raw) >= 2 && i < 16; raw, i = raw[2:], i+1 {
			left := amount - it.Refunded - it.LateRefunded
			if left == 0 {
				break
			}
			// A refund of 1 to what is left of the order, in steps that
			// reach both ends.
			r := 1 + int64(binary.LittleEndian.Uint16(raw))*(left-1)/0xffff
			adj, note, err := clawback(context.Background(), it, LateRefund{RefundNo: "R", Amount: r}, split)
			if err != nil || note != "" {
				t.Fatalf("refund %d of %+v: %v %s", r, it, err, note)
			}
			back := -adj.Amount
			if back < 0 || adj.CommissionBack < 0 || back+adj.CommissionBack != r || adj.RefundMinor != r {
				t.Fatalf("refund %d: seller back %d, commission back %d", r, back, adj.CommissionBack)
			}
			if !strings.Contains(adj.Reason, "split again") {
				t.Fatalf("refund %d of %+v under its own rules: %s", r, it, adj.Reason)
			}
			it.LateRefunded += r
			it.LateSellerBack += back
			it.LateCommissionBack += adj.CommissionBack
			whole := o
			whole.Refunded = refunded + it.LateRefunded
			want, _ := split(context.Background(), whole, Date{}, 0)
			if it.SellerShare-it.LateSellerBack != want.SellerShare || it.Commission-it.LateCommissionBack != want.Commission {
				t.Fatalf("after %d refunded late, left seller %d commission %d; a split of the whole refunded total gives %d and %d",
					it.LateRefunded, it.SellerShare-it.LateSellerBack, it.Commission-it.LateCommissionBack, want.SellerShare, want.Commission)
			}
		}
	})
}
