package ledger_test

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// uploadedItems records n items of seller S1 in USD, each owed owed, and
// marks them uploaded, in a run of date d.
func uploadedItems(t *testing.T, l *ledger.Ledger, d pipeline.Date, prefix string, n int, owed int64) *pipeline.Run {
	t.Helper()
	ctx := context.Background()
	run, _, err := l.OpenRun(ctx, pipeline.RunKey{Date: d, Shard: pipeline.Whole}, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(d.Year, time.Month(d.Month), d.Day, 12, 0, 0, 0, time.UTC)
	_, err = l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
		for i := range n {
			o := pipeline.Order{OrderNo: prefix + string(rune('a'+i)), SellerID: "S1", Channel: chInfinia,
				ProviderTxnID: "T" + prefix + string(rune('a'+i)), Currency: "USD", Amount: owed + 100, Category: "c", PaidAt: now, ConfirmedAt: now}
			if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 100, SellerShare: owed}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.SetItemsState(ctx, run.ID, "S1", "USD", shareChannels, "recorded", "uploaded", "", "", ""); err != nil {
		t.Fatal(err)
	}
	return run
}

func payout(run *pipeline.Run, amount int64, attempt int) pipeline.Effect {
	subject := shareSubject(run.Key.Date, "S1", "USD")
	return pipeline.Effect{RunID: run.ID, Kind: kindRevenueShare, Subject: subject, Attempt: attempt,
		Key: shareKey(run.Key.Date, "S1", "USD", attempt), Currency: "USD", Amount: amount}
}

func openBalance(t *testing.T, l *ledger.Ledger) int64 {
	t.Helper()
	carries, err := l.OpenCarries(context.Background(), pipeline.Date{})
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, c := range carries {
		sum += c.Amount
	}
	return sum
}

func TestCarriedBalanceIsNettedOnceAndReopenedOnFailure(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	d1, d2, d3 := day, day.AddDays(1), day.AddDays(2)
	ch := shareChannels

	// Day 1: 2 x 10.00 carried (say, not bound).
	r1 := uploadedItems(t, l, d1, "A", 2, 1000)
	if amount, n, err := l.CarryItems(ctx, r1, "S1", "USD", ch, "RS/x", "binding PENDING"); err != nil || amount != 2000 || n != 2 {
		t.Fatalf("carry: %d %d %v", amount, n, err)
	}
	if again, n, err := l.CarryItems(ctx, r1, "S1", "USD", ch, "RS/x", "binding PENDING"); err != nil || again != 0 || n != 0 {
		t.Fatalf("carrying twice: %d %d %v", again, n, err)
	}
	// Day 2 and day 3 both try to net the balance at once: exactly one does;
	// the other's amount no longer adds up and nothing is recorded for it.
	r2 := uploadedItems(t, l, d2, "B", 1, 500)
	r3 := uploadedItems(t, l, d3, "C", 1, 700)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, c := range []struct {
		run    *pipeline.Run
		amount int64
	}{{r2, 2500}, {r3, 2700}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = l.PlanPayout(ctx, c.run, "S1", ch, payout(c.run, c.amount, 1))
		}()
	}
	wg.Wait()
	moved := 0
	for _, err := range errs {
		if errors.Is(err, pipeline.ErrBalanceMoved) {
			moved++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if moved != 1 {
		t.Fatalf("concurrent netting: %v; want exactly one ErrBalanceMoved", errs)
	}
	winner := r2
	if errs[0] != nil {
		winner = r3
	}
	if b := openBalance(t, l); b != 0 {
		t.Fatalf("after netting, %d still open", b)
	}
	e, ok, err := l.LatestEffect(ctx, kindRevenueShare, shareSubject(winner.Key.Date, "S1", "USD"))
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	// It fails: the balance it netted is open again, and its own item is
	// carried too; nothing is lost.
	if err := l.RecordOutcome(ctx, e.ID, pipeline.EffectFailed, "", "refused"); err != nil {
		t.Fatal(err)
	}
	if err := l.PayoutFailed(ctx, winner, "S1", "USD", ch, e, "failed"); err != nil {
		t.Fatal(err)
	}
	if b := openBalance(t, l); b != e.Amount {
		t.Fatalf("after the failure, %d open, want %d", b, e.Amount)
	}
	// A second attempt nets it all and, on success, pays every item it
	// covers: the day's own and the carried ones.
	e2, err := l.PlanPayout(ctx, winner, "S1", ch, payout(winner, e.Amount, 2))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.RecordOutcome(ctx, e2.ID, pipeline.EffectSucceeded, "REF", ""); err != nil {
		t.Fatal(err)
	}
	e2.ProviderRef = "REF"
	if err := l.PayoutSucceeded(ctx, winner, "S1", "USD", ch, e2); err != nil {
		t.Fatal(err)
	}
	var paid, items int64
	if err := l.DB().QueryRowContext(ctx, `SELECT COALESCE(sum(seller_minor), 0), count(*) FROM items
		WHERE state = 'paid' AND payout_key = $1`, e2.Key).Scan(&paid, &items); err != nil {
		t.Fatal(err)
	}
	if paid != e.Amount || items != 3 {
		t.Errorf("paid %d on %d items by %s, want %d on 3", paid, items, e2.Key, e.Amount)
	}
	if b := openBalance(t, l); b != 0 {
		t.Errorf("%d still open", b)
	}
}

// TestARejectedLateRefundNoLongerGivenIsResolved: of the late refunds its
// date recorded rejected, those the late-refunds query no longer gives
// (and a run of the date's shard reads) are nothing to take back: each is
// ignored with the reason, kept as read (one whose amount could not be
// read at 0, migration 00032), so that neither holds its seller for ever; those still
// given, of settle's own numbers or of another shard's sellers stay. One
// given again later is read as any other.
func TestARejectedLateRefundNoLongerGivenIsResolved(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := uploadedItems(t, l, day, "A", 1, 9000)
	now := time.Now()
	rejected := func(no, seller string, amount int64) pipeline.LateRefund {
		return pipeline.LateRefund{Date: day, RefundNo: no, OrderNo: "Aa", SellerID: seller, Amount: amount, CreatedAt: now,
			State: pipeline.LateRefundRejected, Reason: "cannot be right"}
	}
	refunds := []pipeline.LateRefund{rejected("(no refund_no: run 1 row 1)", "S1", 0), rejected("RA", "S1", 99999),
		rejected("RK", "S1", 0), rejected(pipeline.RenumberRefundNo("RX", "Aa"), "S1", 5)}
	if _, err := l.RecordLateRefunds(ctx, run, refunds); err != nil {
		t.Fatal(err)
	}
	state := func(no string) (st string) {
		if err := l.DB().QueryRowContext(ctx, `SELECT state FROM late_refunds WHERE refund_no = $1`, no).Scan(&st); errors.Is(err, sql.ErrNoRows) {
			return "gone"
		} else if err != nil {
			t.Fatal(err)
		}
		return st
	}
	// A run of another shard, whose sellers S1 is not among, leaves them.
	other := *run
	other.Key.Shard = pipeline.Shard{Index: 0, Count: 2}
	if other.Key.Shard.Owns("S1") {
		other.Key.Shard.Index = 1
	}
	if err := l.NoLongerRead(ctx, &other, nil); err != nil {
		t.Fatal(err)
	}
	if st := state("RA"); st != pipeline.LateRefundRejected {
		t.Fatalf("another shard's run: RA %s, want rejected", st)
	}
	if err := l.NoLongerRead(ctx, run, []string{"RK"}); err != nil {
		t.Fatal(err)
	}
	for no, want := range map[string]string{"(no refund_no: run 1 row 1)": pipeline.LateRefundIgnored, "RA": pipeline.LateRefundIgnored, "RK": pipeline.LateRefundRejected,
		pipeline.RenumberRefundNo("RX", "Aa"): pipeline.LateRefundRejected} {
		if st := state(no); st != want {
			t.Errorf("%s: %s, want %s", no, st, want)
		}
	}
	// Settle's own numbers are RenumberedSince's: one not kept is ignored,
	// its 0 kept (it was deleted), one kept stays.
	renumbered := []pipeline.LateRefund{rejected(pipeline.RenumberRefundNo("RY", "Aa"), "S1", 0), rejected(pipeline.RenumberRefundNo("RZ", "Aa"), "S1", 0)}
	if _, err := l.RecordLateRefunds(ctx, run, renumbered); err != nil {
		t.Fatal(err)
	}
	if err := l.RenumberedSince(ctx, run, renumbered[1:]); err != nil {
		t.Fatal(err)
	}
	if y, z := state(renumbered[0].RefundNo), state(renumbered[1].RefundNo); y != pipeline.LateRefundIgnored || z != pipeline.LateRefundRejected {
		t.Errorf("renumbered: %s not kept %s, want ignored; %s kept %s, want rejected", renumbered[0].RefundNo, y, renumbered[1].RefundNo, z)
	}
	// Given again, corrected: read as any other.
	again := pipeline.LateRefund{Date: day, RefundNo: "RA", OrderNo: "Aa", SellerID: "S1", Amount: 500, CreatedAt: now, State: pipeline.LateRefundPending}
	if n, err := l.RecordLateRefunds(ctx, run, []pipeline.LateRefund{again}); err != nil || n != 1 || state("RA") != pipeline.LateRefundPending {
		t.Fatalf("given again: %d recorded (%v), RA %s; want it pending", n, err, state("RA"))
	}
}

func TestClawbacksOfOneOrderAreWorkedOutOnFreshSums(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := uploadedItems(t, l, day, "A", 1, 9000)
	now := time.Now()
	refunds := []pipeline.LateRefund{
		{Date: day, RefundNo: "R1", OrderNo: "Aa", SellerID: "S1", Amount: 1000, CreatedAt: now, State: pipeline.LateRefundPending},
		{Date: day, RefundNo: "R2", OrderNo: "Aa", SellerID: "S1", Amount: 2000, CreatedAt: now, State: pipeline.LateRefundPending},
		{Date: day, RefundNo: "R3", SellerID: "S1", State: pipeline.LateRefundRejected, Reason: "order_no is NULL"},
	}
	if n, err := l.RecordLateRefunds(ctx, run, refunds); err != nil || n != 3 {
		t.Fatalf("recorded %d: %v", n, err)
	}
	claw := func(no string, amount int64) *pipeline.Adjustment {
		return &pipeline.Adjustment{SellerID: "S1", Currency: "USD", Kind: pipeline.AdjustClawback, Amount: -amount,
			OrderNo: "Aa", RefundNo: no, RefundMinor: amount}
	}
	// Two runs worked both out from the same read (no clawback yet): the
	// first lands, the second finds the sums moved and records nothing.
	if err := l.ResolveLateRefund(ctx, run, "R1", pipeline.LateRefundClawed, "", claw("R1", 1000), 0); err != nil {
		t.Fatal(err)
	}
	err := l.ResolveLateRefund(ctx, run, "R2", pipeline.LateRefundClawed, "", claw("R2", 2000), 0)
	if !errors.Is(err, pipeline.ErrBalanceMoved) {
		t.Fatalf("stale clawback: %v, want ErrBalanceMoved", err)
	}
	if err := l.ResolveLateRefund(ctx, run, "R2", pipeline.LateRefundClawed, "", claw("R2", 2000), 1000); err != nil {
		t.Fatal(err)
	}
	if b := openBalance(t, l); b != -3000 {
		t.Errorf("open balance %d, want -3000", b)
	}
	// A run that worked out a refund another run resolved meanwhile is
	// told so (pipeline.ErrAlreadyResolved: not an error of its run; it
	// stopped the stage, exit 1), and records nothing.
	if err := l.ResolveLateRefund(ctx, run, "R2", pipeline.LateRefundClawed, "", claw("R2", 2000), 3000); !errors.Is(err, pipeline.ErrAlreadyResolved) {
		t.Fatalf("a clawed refund worked out again: %v, want ErrAlreadyResolved", err)
	}
	if err := l.ResolveLateRefund(ctx, run, "R1", pipeline.LateRefundIgnored, "WeChat", nil, 0); !errors.Is(err, pipeline.ErrAlreadyResolved) {
		t.Fatalf("a clawed refund ignored again: %v, want ErrAlreadyResolved", err)
	}
	if b := openBalance(t, l); b != -3000 {
		t.Errorf("open balance %d after the late resolutions, want -3000", b)
	}
	// A rejected row read again, corrected, replaces the rejection; a
	// valid one read again changes nothing.
	fixed := pipeline.LateRefund{Date: day, RefundNo: "R3", OrderNo: "Aa", SellerID: "S1", Amount: 500, CreatedAt: now, State: pipeline.LateRefundPending}
	if n, err := l.RecordLateRefunds(ctx, run, []pipeline.LateRefund{fixed, refunds[0]}); err != nil || n != 1 {
		t.Fatalf("read again: %d replaced, %v; want 1", n, err)
	}
	pending, err := l.PendingLateRefunds(ctx, "", 10)
	if err != nil || len(pending) != 1 || pending[0].RefundNo != "R3" || pending[0].Amount != 500 || pending[0].Item == nil ||
		pending[0].Item.LateRefunded != 3000 {
		t.Fatalf("pending %+v %v", pending, err)
	}
	if pending, err := l.PendingLateRefunds(ctx, "Aa", 10); err != nil || len(pending) != 0 {
		t.Fatalf("pending after the last order: %+v %v", pending, err)
	}
}

// TestPendingLateRefundsPagesHoldWholeOrders: read a page of one order or
// of two at a time, every pending refund comes once, and an order's
// refunds all in the same page, in the order they were made.
func TestPendingLateRefundsPagesHoldWholeOrders(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := uploadedItems(t, l, day, "A", 3, 9000)
	now := time.Now()
	var refunds []pipeline.LateRefund
	want := map[string][]string{"Aa": {"Ra1", "Ra2", "Ra3"}, "Ab": {"Rb1"}, "Ac": {"Rc1", "Rc2"}}
	for _, no := range []string{"Aa", "Ab", "Ac"} {
		for i, r := range want[no] {
			refunds = append(refunds, pipeline.LateRefund{Date: day, RefundNo: r, OrderNo: no, SellerID: "S1", Amount: 100,
				CreatedAt: now.Add(time.Duration(i) * time.Second), State: pipeline.LateRefundPending})
		}
	}
	if n, err := l.RecordLateRefunds(ctx, run, refunds); err != nil || n != len(refunds) {
		t.Fatalf("recorded %d: %v", n, err)
	}
	for _, orders := range []int{1, 2} {
		got := map[string][]string{}
		pages := 0
		for after := ""; ; {
			page, err := l.PendingLateRefunds(ctx, after, orders)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			pages++
			inPage := map[string]bool{}
			for _, p := range page {
				if p.OrderNo <= after || p.Item == nil {
					t.Fatalf("pages of %d orders: %s (item %v) in the page after %q", orders, p.OrderNo, p.Item, after)
				}
				inPage[p.OrderNo] = true
				got[p.OrderNo] = append(got[p.OrderNo], p.RefundNo)
			}
			if len(inPage) > orders {
				t.Fatalf("pages of %d orders: a page of %d", orders, len(inPage))
			}
			after = page[len(page)-1].OrderNo
		}
		if wantPages := (3 + orders - 1) / orders; pages != wantPages || !reflect.DeepEqual(got, want) {
			t.Errorf("pages of %d orders: %d pages, %v; want %d pages, %v", orders, pages, got, wantPages, want)
		}
	}
}

// TestOnlyABadRefundOfAnOrderPaidByRevenueSharingBlocksItsSeller: a late
// refund that cannot be right blocks its seller's revenue shares in its
// currency (what the seller owes back is unknown); one of a WeChat order
// (nothing is clawed back: WeChat refunds from the sub-merchant's funds)
// or of an order a provider rejected (never paid) blocked them too (found
// by a review).
func TestOnlyABadRefundOfAnOrderPaidByRevenueSharingBlocksItsSeller(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	if _, err := l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
		for i, o := range []struct {
			no, seller string
			ch         pipeline.Channel
		}{{"OI", "SI", chInfinia}, {"OW", "SW", chWeChat}, {"OR", "SR", chInfinia},
			{"OP", "SP", chInfinia}, {"OC", "SC", chInfinia}, {"OG", "SG", chInfinia}} {
			if err := w.Split(pipeline.Split{Order: pipeline.Order{Seq: int64(i + 1), OrderNo: o.no, SellerID: o.seller, Channel: o.ch,
				ProviderTxnID: "T" + o.no, Currency: "USD", Amount: 1000, PaidAt: now, ConfirmedAt: now}, Rule: "r", Commission: 100, SellerShare: 900}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DB().Exec(`UPDATE items SET state = 'rejected' WHERE order_no = 'OR'`); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DB().Exec(`INSERT INTO late_refunds (refund_no, order_no, seller_id, amount_minor, run_id, business_date, state, reason)
		SELECT 'R' || o, o, 'S' || substr(o, 2), 0, $1, $2, 'rejected', 'amount_minor: not a number' FROM unnest(ARRAY['OI', 'OW', 'OR']) o`,
		run.ID, day.String()); err != nil {
		t.Fatal(err)
	}
	// Late refunds that are right (pending, clawed back, ignored) block
	// no one: only a rejected one does (a mutation test found dropping
	// the state from the query untested: every seller with a late refund
	// would be carried, exit 4, for ever).
	if _, err := l.DB().Exec(`INSERT INTO late_refunds (refund_no, order_no, seller_id, amount_minor, run_id, business_date, state, reason)
		SELECT 'R' || o, o, 'S' || substr(o, 2), 100, $1, $2, s, '' FROM unnest(ARRAY['OP', 'OC', 'OG'], ARRAY['pending', 'clawed', 'ignored']) AS t(o, s)`,
		run.ID, day.String()); err != nil {
		t.Fatal(err)
	}
	blocked, err := l.BlockedByLateRefunds(ctx, shareChannels)
	if err != nil {
		t.Fatal(err)
	}
	want := map[pipeline.SellerCurrency]string{{SellerID: "SI", Currency: "USD"}: "ROI"}
	if !maps.Equal(blocked, want) {
		t.Fatalf("blocked %v, want only SI's (ROI)", blocked)
	}
}

// TestLaterDatesRunBeforeNamesTheDateOfALaterEntry: a re-run of an
// earlier date that claws back a refund read by a later date dates the
// clawback by that later date (pipeline.ClawBacks: the later of the
// refund's date and the run's), whose reports, written at its run's end,
// do not show it. That date is named as well as the dates after it; the
// run's own date never is (it writes its reports at its end), nor are
// entries recorded before the mark, or by another run.
func TestLaterDatesRunBeforeNamesTheDateOfALaterEntry(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	next := day.AddDays(1)
	early, later := openRun(t, l, day), openRun(t, l, next)
	entry := func(run *pipeline.Run, dated pipeline.Date) {
		t.Helper()
		l.DB().MustExec(`INSERT INTO adjustments (seller_id, currency, kind, amount_minor, reason, business_date, run_id)
			VALUES ('S1', 'USD', 'held', 100, 'test', $1, $2)`, dated.String(), run.ID)
	}
	entry(early, day) // before the mark: not this run's doing
	mark, err := l.JournalMark(ctx)
	if err != nil {
		t.Fatal(err)
	}
	entry(later, next) // another run's, after the mark
	from, dates, err := l.LaterDatesRunBefore(ctx, later, mark)
	if err != nil || from != next || len(dates) != 0 {
		t.Errorf("the newest date's own entry: from %s, later dates %v (%v); want from %s and none", from, dates, err, next)
	}
	from, dates, err = l.LaterDatesRunBefore(ctx, early, mark)
	if err != nil || !from.IsZero() || len(dates) != 0 {
		t.Errorf("no entry of the run's after the mark: from %s, later dates %v (%v); want none", from, dates, err)
	}
	entry(early, next) // a refund read on the later date, clawed back by the re-run of the earlier
	from, dates, err = l.LaterDatesRunBefore(ctx, early, mark)
	if err != nil || from != next || !reflect.DeepEqual(dates, []pipeline.Date{next}) {
		t.Errorf("an entry dated a later date that has a run: from %s, later dates %v (%v); want from %s, naming %s", from, dates, err, next, next)
	}
	entry(early, day)
	from, dates, err = l.LaterDatesRunBefore(ctx, early, mark)
	if err != nil || from != day || !reflect.DeepEqual(dates, []pipeline.Date{next}) {
		t.Errorf("entries dated the run's date and a later one: from %s, later dates %v (%v); want from %s, naming %s alone", from, dates, err, day, next)
	}
}
