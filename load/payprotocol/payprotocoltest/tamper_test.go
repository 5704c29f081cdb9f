package payprotocoltest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
)

func TestAddRefundBehindThePlatformsBack(t *testing.T) {
	fake, c, _ := start(t, payprotocoltest.Options{Polls: 1}, nil)
	ctx := context.Background()
	if _, err := fake.AddPayment("T-1", "USDT", 6, "10000000", payprotocol.PaymentPaid); err != nil {
		t.Fatal(err)
	}
	// Refused like a refund order would be.
	if _, err := fake.AddRefund("T-1", "10000001", payprotocol.RefundSuccess); err == nil {
		t.Fatal("a refund above the payment was recorded")
	}
	if _, err := fake.AddRefund("T-9", "1", payprotocol.RefundSuccess); err == nil {
		t.Fatal("a refund of an unknown order was recorded")
	}
	if _, err := fake.AddRefund("T-1", "0", payprotocol.RefundSuccess); err == nil {
		t.Fatal("a zero refund was recorded")
	}

	id, err := fake.AddRefund("T-1", "4000000", payprotocol.RefundSuccess)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.RefundDetail(ctx, "T-1", "")
	if err != nil || r.RefundID != id || r.Status != payprotocol.RefundSuccess || r.Amount.String() != "4000000" || r.TxHash == "" {
		t.Fatalf("latest refund %+v, %v; want %s success for 4000000 with its hash", r, err, id)
	}
	if got, _ := fake.RefundedAmount("T-1"); got != "4000000" {
		t.Fatalf("refunded %s, want 4000000", got)
	}
	if p, _ := c.PaymentDetail(ctx, "T-1", ""); p.Status != payprotocol.PaymentPaid {
		t.Fatalf("payment %s after a partial refund, want paid", p.Status)
	}

	// One in progress is reserved, then moves on with the queries.
	pending, err := fake.AddRefund("T-1", "5000000", payprotocol.RefundPendingApproval)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fake.AddRefund("T-1", "1000001", payprotocol.RefundSuccess); err == nil {
		t.Fatal("the reserved amount was refunded twice")
	}
	var seen []payprotocol.RefundStatus
	for range 3 {
		r, err := c.RefundDetail(ctx, "T-1", "")
		if err != nil || r.RefundID != pending {
			t.Fatalf("%+v, %v", r, err)
		}
		seen = append(seen, r.Status)
	}
	if seen[0] != payprotocol.RefundPendingApproval || seen[2] != payprotocol.RefundSuccess {
		t.Fatalf("statuses %v: want pending approval first and success at last", seen)
	}
	if got, _ := fake.RefundedAmount("T-1"); got != "9000000" {
		t.Fatalf("refunded %s, want 9000000", got)
	}

	// A rejected one returns nothing; the rest refunds the payment.
	if _, err := fake.AddRefund("T-1", "1000000", payprotocol.RefundRejected); err != nil {
		t.Fatal(err)
	}
	if got, _ := fake.RefundedAmount("T-1"); got != "9000000" {
		t.Fatalf("refunded %s after a rejected refund, want 9000000", got)
	}
	if _, err := fake.AddRefund("T-1", "1000000", payprotocol.RefundSuccess); err != nil {
		t.Fatal(err)
	}
	if p, _ := c.PaymentDetail(ctx, "T-1", ""); p.Status != payprotocol.PaymentRefunded {
		t.Fatalf("payment %s once all of it was refunded, want refunded", p.Status)
	}
	if _, err := fake.AddRefund("T-1", "1", payprotocol.RefundSuccess); err == nil {
		t.Fatal("a refunded payment was refunded again")
	}
	if n := len(fake.Refunds()); n != 4 {
		t.Fatalf("%d refunds, want 4", n)
	}
}

func TestRemovePayment(t *testing.T) {
	fake, c, _ := start(t, payprotocoltest.Options{Polls: -1}, nil)
	ctx := context.Background()
	for _, no := range []string{"T-1", "T-2"} {
		if _, err := fake.AddPayment(no, "USDT", 6, "10000000", payprotocol.PaymentPaid); err != nil {
			t.Fatal(err)
		}
		if _, err := fake.AddRefund(no, "1000000", payprotocol.RefundSuccess); err != nil {
			t.Fatal(err)
		}
	}
	if err := fake.RemovePayment("T-1"); err != nil {
		t.Fatal(err)
	}
	if err := fake.RemovePayment("T-1"); err == nil {
		t.Fatal("removed twice")
	}
	if _, err := c.PaymentDetail(ctx, "T-1", ""); !errors.Is(err, payprotocol.ErrNotFound) {
		t.Fatalf("payment detail of a removed order: %v, want ErrNotFound", err)
	}
	if _, err := c.RefundDetail(ctx, "T-1", ""); !errors.Is(err, payprotocol.ErrNotFound) {
		t.Fatalf("refund detail of a removed order: %v, want ErrNotFound", err)
	}
	if _, ok := fake.Payment("T-1"); ok {
		t.Fatal("the fake still holds the payment")
	}
	if r, err := c.RefundDetail(ctx, "T-2", ""); err != nil || r.OutTradeNo != "T-2" {
		t.Fatalf("the other order's refund: %+v, %v", r, err)
	}
	if rs := fake.Refunds(); len(rs) != 1 || rs[0].OutTradeNo != "T-2" {
		t.Fatalf("refunds %+v, want only T-2's", rs)
	}
}

func TestPoisonRefund(t *testing.T) {
	fake, c, _ := start(t, payprotocoltest.Options{Polls: -1}, nil)
	ctx := context.Background()
	if _, err := fake.AddPayment("T-1", "USDT", 6, "10000000", payprotocol.PaymentPaid); err != nil {
		t.Fatal(err)
	}
	id, err := fake.AddRefund("T-1", "1000000", payprotocol.RefundSuccess)
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.PoisonRefund("9999", "chainId", 2); err == nil {
		t.Fatal("an unknown refund was poisoned")
	}
	if err := fake.PoisonRefund(id, "chainId", 2); err != nil {
		t.Fatal(err)
	}
	if err := fake.PoisonRefund(id, "outPaymentNo", nil); err != nil {
		t.Fatal(err)
	}
	r, err := c.RefundDetail(ctx, "T-1", "")
	if err != nil || r.RefundID != id || r.ChainID != 2 || r.OutPaymentNo != "" || r.Amount.String() != "1000000" {
		t.Fatalf("poisoned refund %+v, %v; want chain 2, no outPaymentNo, the rest as it was", r, err)
	}
}
