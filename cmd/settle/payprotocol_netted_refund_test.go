package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
)

func TestPayProtocolMatcherCountsANettedLateRefundOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim, _, run, match := e.ppRun(400)
	ctx := context.Background()
	type order struct {
		No       string `db:"order_no"`
		Txn      string `db:"provider_txn_id"`
		Run      int64  `db:"run_id"`
		Refunded int64  `db:"refunded_minor"`
	}
	// The refunds under approval succeed as the fake is asked; a run
	// again verifies and pays their orders.
	match(ctx, run)
	match(ctx, run)
	if out, code := e.runInfinia(sim); code != 0 && code != 4 {
		t.Fatalf("run again: exit %d\n%s", code, out)
	}
	first, err := match(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]bool{}
	for _, m := range first {
		bad[m.OrderNo] = true
	}
	var os []order
	if err := e.db.Select(&os, `SELECT order_no, provider_txn_id, run_id, refunded_minor FROM settle.items
		WHERE channel = 'payprotocol' AND state IN ('paid', 'carried') AND refunded_minor > 0 ORDER BY order_no`); err != nil {
		t.Fatal(err)
	}
	var o order
	for _, x := range os {
		if !bad[x.No] {
			o = x
			break
		}
	}
	if o.No == "" {
		var n int
		e.db.Get(&n, `SELECT count(*) FROM settle.items WHERE channel = 'payprotocol' AND refunded_minor > 0`)
		var st []string
		e.db.Select(&st, `SELECT state || ' ' || refunded_minor || ' ' || reason FROM settle.items WHERE channel = 'payprotocol' AND refunded_minor > 0`)
		t.Fatalf("no clean refunded order of %d (%d paid): %v", n, len(os), st)
	}
	// The order's refund, read as a late refund on the order's own date
	// while the order had no item (the platform moved it here since), and
	// ignored by the clawbacks as netted by the order's source row.
	e.db.MustExec(`INSERT INTO settle.late_refunds (refund_no, order_no, amount_minor, created_at, run_id, business_date, state, reason, seller_id)
		VALUES ('LR-N', $1, $2, '2026-11-23 12:00+08', $3, '2026-11-23', 'ignored', 'netted by the order''s settlement on 2026-11-23 (its refunds up to that day''s end)',
		(SELECT seller_id FROM settle.items WHERE order_no = $1))`, o.No, o.Refunded, o.Run)
	got, err := match(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range got {
		if m.OrderNo == o.No {
			t.Errorf("a refund the order's row nets, counted again: %+v", m)
		}
	}

	// The same refund made a second time at Pay Protocol (its latest
	// refund agrees with the ledger, as before): the reconciliation settle
	// run builds reads Pay Protocol's refund list, finds the run's order
	// in the ledger, and reports the two refunds adding up to twice what
	// the platform counts, for a person.
	second, err := sim.PayProtocol.AddRefund(o.Txn, fmt.Sprint(o.Refunded*10_000), payprotocol.RefundSuccess) // USD cents in USDT's 6 decimals
	if err != nil {
		t.Fatal(err)
	}
	got, err = match(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	var rows []pipeline.Mismatch
	for _, m := range got {
		if m.OrderNo == o.No {
			rows = append(rows, m)
		}
	}
	if len(rows) != 1 || rows[0].Expected || rows[0].Category != pipeline.MismatchAmount || rows[0].Theirs != fmt.Sprint(2*o.Refunded) ||
		!strings.Contains(rows[0].Detail, second) || !strings.Contains(rows[0].Detail, "more than the ledger counts") {
		t.Fatalf("a refund made twice at Pay Protocol: %+v, want one unexpected amount row naming refund %s", rows, second)
	}
}
