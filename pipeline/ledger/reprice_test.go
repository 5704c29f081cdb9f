package ledger_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// tenPercent splits an order at 10% of what is left of it.
func tenPercent(o pipeline.Order, _ pipeline.Date) (pipeline.Split, error) {
	base := o.Amount - o.Refunded
	return pipeline.Split{Order: o, Rule: "fixed.csv:2", Commission: base / 10, SellerShare: base - base/10}, nil
}

var repriceChannels = pipeline.Channels{{Channel: chInfinia}, {Channel: chPayProtocol},
	{Channel: chWeChat, LateRefundIgnored: "the provider refunds from the seller's own funds"}}

// TestARepriceNamesWhatItCannotNetAndRecordsAllOrNothing: settle reprice
// on the ledger. An order whose share would change that is not paid or
// carried yet stops the whole reprice, nothing recorded; once it is paid,
// the reprice records an entry per order whose share changes, of its
// item's run, and names (records nothing for) the order of a channel whose
// shares are not netted into revenue shares (WeChat Pay's). Run again with
// the same rules, it records nothing. A clawback worked out before the
// reprice is not recorded on the stale split (ErrBalanceMoved), the date
// cannot be read again (--reextract), and the database refuses a reprice
// entry that does not balance.
func TestARepriceNamesWhatItCannotNetAndRecordsAllOrNothing(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	at := time.Date(day.Year, time.Month(day.Month), day.Day, 12, 0, 0, 0, time.UTC)
	// Gross 1000 each, settled at commission 1: 10% is 100, the seller
	// 99 less.
	writeShares(t, l, run, at, []share{{"Pa", "S1", chInfinia, "USD", 999}, {"Pw", "S1", chWeChat, "USD", 999},
		{"Pf", "S2", chPayProtocol, "USD", 999}, {"Px", "S3", chInfinia, "USD", 999}})
	for _, q := range []string{`UPDATE items SET state = 'paid' WHERE order_no IN ('Pa', 'Pw')`,
		`UPDATE items SET state = 'rejected' WHERE order_no = 'Px'`} {
		if _, err := l.DB().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	// A late refund of Pa, read and worked out before the reprice.
	if _, err := l.RecordLateRefunds(ctx, run, []pipeline.LateRefund{{RefundNo: "R1", OrderNo: "Pa", SellerID: "S1", Amount: 100,
		CreatedAt: at, State: pipeline.LateRefundPending}}); err != nil {
		t.Fatal(err)
	}
	pending, err := l.PendingLateRefunds(ctx, "", 10)
	if err != nil || len(pending) != 1 || pending[0].Item == nil {
		t.Fatalf("pending late refunds: %+v %v", pending, err)
	}
	stale := *pending[0].Item

	rules := pipeline.RulesFile{Name: "fixed.csv", Body: []byte("seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from\n,,,1000,,,,2020-01-01\n"), Hash: "h10"}
	count := func(q string) int64 {
		t.Helper()
		var n int64
		if err := l.DB().QueryRow(q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Pf is recorded, not paid: nothing is recorded, for a person.
	_, err = pipeline.Reprice(ctx, l, day, rules, repriceChannels, tenPercent, false)
	if pipeline.KindOf(err) != pipeline.KindNeedsPerson || !strings.Contains(err.Error(), "order Pf") ||
		count(`SELECT count(*) FROM adjustments WHERE kind = 'reprice'`) != 0 || count(`SELECT count(*) FROM reprices`) != 0 {
		t.Fatalf("reprice with an order in flight: %v; want it named, nothing recorded", err)
	}
	if _, err := l.DB().Exec(`UPDATE items SET state = 'paid' WHERE order_no = 'Pf'`); err != nil {
		t.Fatal(err)
	}
	res, err := pipeline.Reprice(ctx, l, day, rules, repriceChannels, tenPercent, false)
	if err != nil || res.ID == 0 || !res.RulesChanged {
		t.Fatalf("reprice: %+v %v", res, err)
	}
	if n := res.Repricing.Named.Count(); n != 1 || !strings.Contains(res.Repricing.Named.List[0], "order Pw") {
		t.Errorf("named: %+v; want Pw, its channel's shares not netted", res.Repricing.Named)
	}
	if n := count(`SELECT count(*) FROM adjustments WHERE kind = 'reprice' AND amount_minor = -99 AND commission_back = -99
		AND reprice_id IS NOT NULL AND business_date = '` + day.String() + `' AND order_no IN ('Pa', 'Pf')`); n != 2 ||
		count(`SELECT count(*) FROM adjustments WHERE kind = 'reprice'`) != 2 ||
		count(`SELECT count(*) FROM adjustments a JOIN items i USING (order_no) WHERE a.kind = 'reprice' AND a.run_id <> i.run_id`) != 0 ||
		count(`SELECT named FROM reprices`) != 1 {
		t.Fatalf("want the entries of Pa and Pf, -99 each, under their items' run, and Pw named")
	}
	// Again: nothing.
	again, err := pipeline.Reprice(ctx, l, day, rules, repriceChannels, tenPercent, false)
	if err != nil || again.ID != 0 || again.RulesChanged || count(`SELECT count(*) FROM adjustments WHERE kind = 'reprice'`) != 2 {
		t.Fatalf("reprice again: %+v %v; want nothing recorded", again, err)
	}

	// The clawback worked out before the reprice.
	stale.LateRefunded = 0
	adj := &pipeline.Adjustment{SellerID: "S1", Currency: "USD", Kind: pipeline.AdjustClawback, Amount: -99, OrderNo: "Pa",
		RefundNo: "R1", RefundMinor: 100, CommissionBack: 1, Repriced: stale.Repriced}
	if err := l.ResolveLateRefund(ctx, run, "R1", pipeline.LateRefundClawed, "x", adj, 0); !errors.Is(err, pipeline.ErrBalanceMoved) {
		t.Fatalf("clawback on the split before the reprice: %v; want ErrBalanceMoved", err)
	}
	pending, err = l.PendingLateRefunds(ctx, "", 10)
	if err != nil || len(pending) != 1 || pending[0].Item.Repriced != -99 || pending[0].Item.RepricedN != 1 {
		t.Fatalf("pending late refunds after the reprice: %+v %v; want Pa repriced -99", pending, err)
	}
	if _, commission, seller := pending[0].Item.Now(); commission != 100 || seller != 900 {
		t.Errorf("Pa now: commission %d, seller %d; want 100, 900", commission, seller)
	}

	// The date, repriced, cannot be read again (its orders would be
	// split anew, the entries of the old rules standing).
	if err := l.Reextract(ctx, run.ID); pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "reprice") {
		t.Errorf("reextract of a repriced date: %v; want refused, naming the reprice", err)
	}

	// The database refuses an entry that does not balance.
	if _, err := l.DB().Exec(`INSERT INTO adjustments (seller_id, currency, kind, amount_minor, commission_back, order_no, business_date, run_id, reprice_id)
		SELECT 'S1', 'USD', 'reprice', 5, 4, 'Zz', business_date, run_id, reprice_id FROM adjustments WHERE kind = 'reprice' LIMIT 1`); err == nil ||
		!strings.Contains(err.Error(), "adjustments_reprice_check") {
		t.Errorf("a reprice entry whose commission does not move by its seller share's opposite: %v; want refused by adjustments_reprice_check", err)
	}
}
