package ledger_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// capped splits an order at 10% of what is left of it, the commission at
// most max (0: no cap): a rules file's max_minor.
func capped(max int64) pipeline.Resplit {
	return func(_ context.Context, o pipeline.Order, _ pipeline.Date, _ int64) (pipeline.Split, error) {
		base := o.Amount - o.Refunded
		c := base / 10
		if max > 0 && c > max {
			c = max
		}
		return pipeline.Split{Order: o, Rule: "capped", Commission: c, SellerShare: base - c}, nil
	}
}

// TestALateRefundOfAnOrderARepriceLeftAloneSplitsUnderTheDatesRules: an
// order late refunded in part before a reprice, whose split the corrected
// rules leave as it is at the refunded total of then (no reprice entry),
// while they would have split it otherwise at its settlement (a cap its
// then larger base reached). Its next late refund splits under the date's
// rules, the repriced ones, which still give what it has now: the
// commission gives back its share of the refund, the seller the rest, and
// no note for a person. Before, the order was judged against its split of
// settlement under the repriced rules, found "split otherwise", and the
// seller gave back the whole refund.
func TestALateRefundOfAnOrderARepriceLeftAloneSplitsUnderTheDatesRules(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	d2 := day.AddDays(1)
	run := openRun(t, l, day)
	at := time.Date(day.Year, time.Month(day.Month), day.Day, 12, 0, 0, 0, time.UTC)
	if _, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
		for i, no := range []string{"Pc", "Pd"} {
			o := pipeline.Order{Seq: int64(i + 1), OrderNo: no, SellerID: "S1", Channel: chInfinia, ProviderTxnID: "T" + no,
				Currency: "USD", Amount: 1000, PaidAt: at, ConfirmedAt: at}
			if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 100, SellerShare: 900}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DB().Exec(`UPDATE items SET state = 'paid'`); err != nil {
		t.Fatal(err)
	}
	run2 := openRun(t, l, d2)
	refund := func(no string, amount int64, resplit pipeline.Resplit) *pipeline.Problems {
		t.Helper()
		if _, err := l.RecordLateRefunds(ctx, run2, []pipeline.LateRefund{{RefundNo: no, OrderNo: "Pc", SellerID: "S1", Amount: amount,
			CreatedAt: at.Add(24 * time.Hour), State: pipeline.LateRefundPending}}); err != nil {
			t.Fatal(err)
		}
		_, problems, err := pipeline.ClawBacks(ctx, l, resplit, repriceChannels, run2)
		if err != nil {
			t.Fatal(err)
		}
		return problems
	}
	// 500 of Pc, under the rules it settled with (10%): 50 of commission
	// back, 450 from the seller. Pc now: commission 50, seller 450.
	if p := refund("R1", 500, capped(0)); p.Count() != 0 {
		t.Fatalf("first late refund: %v", p.List)
	}
	// The corrected rules cap the commission at 50: Pc at 500 refunded
	// is 50 under them too, no entry; Pd, 100 -> 50, +50 to the seller.
	rules := pipeline.RulesFile{Name: "capped.csv", Body: []byte("seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from\n,,,1000,,,50,2020-01-01\n"), Hash: "hcap"}
	res, err := pipeline.Reprice(ctx, l, day, rules, repriceChannels, func(o pipeline.Order, d pipeline.Date) (pipeline.Split, error) {
		return capped(50)(ctx, o, d, 0)
	}, false)
	if err != nil || res.ID == 0 || len(res.Repricing.Adjust) != 1 || res.Repricing.Adjust[0].OrderNo != "Pd" {
		t.Fatalf("reprice: %+v %v; want Pd's entry alone", res.Repricing, err)
	}
	// 100 more of Pc, under the date's rules now (capped): at 600
	// refunded, commission 40 and seller 360: 10 of commission back, 90
	// from the seller.
	p := refund("R2", 100, capped(50))
	var sellerBack, commissionBack int64
	if err := l.DB().QueryRow(`SELECT -amount_minor, commission_back FROM adjustments WHERE refund_no = 'R2'`).Scan(&sellerBack, &commissionBack); err != nil {
		t.Fatal(err)
	}
	if sellerBack != 90 || commissionBack != 10 || p.Count() != 0 {
		t.Errorf("late refund of Pc after the reprice: %d back from the seller, %d of commission, notes %v; want 90 and 10, no note",
			sellerBack, commissionBack, p.List)
	}
}

// TestTheRolesThatReadRunsReadTheReprices: a role that may read the
// ledger's runs (settle status, settle report under a role of their own,
// README "Roles") may read the reprices, as 00037 grants it the late
// orders: settle status reads a date's reprices, and its reports their
// entries. Before (00038 granted SELECT to the run roles alone), such a
// role's status and reports of any date were "permission denied for
// table reprices" once the ledger was migrated.
func TestTheRolesThatReadRunsReadTheReprices(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := openAt(t, 37)
	role := "settle_t_reader_" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	for _, q := range []string{`CREATE ROLE ` + role, `GRANT USAGE ON SCHEMA ` + ledger.DefaultSchema + ` TO ` + role,
		`GRANT SELECT ON ALL TABLES IN SCHEMA ` + ledger.DefaultSchema + ` TO ` + role} {
		if _, err := l.DB().Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		l.DB().Exec(`DROP OWNED BY ` + role)
		l.DB().Exec(`DROP ROLE ` + role)
	})
	if _, err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := l.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, `SET ROLE `+role); err != nil {
		t.Fatal(err)
	}
	defer c.ExecContext(context.Background(), `RESET ROLE`)
	for _, table := range []string{"late_orders", "reprices"} {
		var n int64
		if err := c.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Errorf("a role that reads runs reads %s: %v", table, err)
		}
	}
}
