package ledger_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// reextractRace is a ledger where S1's items of day (999) are carried,
// one held entry of day's run, and S1's item of the next day (500) is
// uploaded, to be paid by that day's revenue share with the carried 999.
type reextractRace struct {
	l         *ledger.Ledger
	ctx       context.Context
	d, next   *pipeline.Run
	channels  []pipeline.Channel
	entry     int64 // the held entry's id
	heldOrder string
}

func newReextractRace(t *testing.T) *reextractRace {
	t.Helper()
	l, _ := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	r := &reextractRace{l: l, ctx: ctx, channels: []pipeline.Channel{chInfinia}, heldOrder: "Pa"}
	at := time.Date(day.Year, time.Month(day.Month), day.Day, 12, 0, 0, 0, time.UTC)
	r.d = openRun(t, l, day)
	writeShares(t, l, r.d, at, []share{{r.heldOrder, "S1", chInfinia, "USD", 999}})
	if _, err := l.DB().Exec(`UPDATE items SET state = 'uploaded' WHERE run_id = $1`, r.d.ID); err != nil {
		t.Fatal(err)
	}
	if amount, n, err := l.CarryItems(ctx, r.d, "S1", "USD", r.channels, shareSubject(day, "S1", "USD"), "held by the test"); err != nil || amount != 999 || n != 1 {
		t.Fatalf("carry S1's item of %s: %d, %d items, %v; want 999, 1", day, amount, n, err)
	}
	if err := l.DB().QueryRow(`SELECT id FROM adjustments WHERE run_id = $1 AND kind = 'held'`, r.d.ID).Scan(&r.entry); err != nil {
		t.Fatal(err)
	}
	r.next = openRun(t, l, day.AddDays(1))
	writeShares(t, l, r.next, at.Add(24*time.Hour), []share{{"Ua", "S1", chInfinia, "USD", 500}})
	if _, err := l.DB().Exec(`UPDATE items SET state = 'uploaded' WHERE run_id = $1`, r.next.ID); err != nil {
		t.Fatal(err)
	}
	return r
}

// plan plans the next day's revenue share of S1 for amount, in the
// background.
func (r *reextractRace) plan(amount int64) <-chan error {
	e := pipeline.Effect{RunID: r.next.ID, Kind: kindRevenueShare, Subject: shareSubject(r.next.Key.Date, "S1", "USD"), Attempt: 1,
		Key: shareKey(r.next.Key.Date, "S1", "USD", 1), Currency: "USD", Amount: amount}
	done := make(chan error, 1)
	go func() {
		_, err := r.l.PlanPayout(r.ctx, r.next, "S1", r.channels, e)
		done <- err
	}()
	return done
}

// reextract re-extracts day's run in the background.
func (r *reextractRace) reextract() <-chan error {
	done := make(chan error, 1)
	go func() { done <- r.l.Reextract(r.ctx, r.d.ID) }()
	return done
}

// hold locks the row of the item order (of either day) from another
// connection until the transaction returned ends.
func (r *reextractRace) hold(t *testing.T, order string) *sql.Tx {
	t.Helper()
	tx, err := r.l.DB().BeginTx(r.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() })
	if _, err := tx.Exec(`SELECT 1 FROM items WHERE order_no = $1 FOR UPDATE`, order); err != nil {
		t.Fatal(err)
	}
	return tx
}

// until waits until n sessions of the test's database wait for a lock,
// or done has an answer (kept for the test to read).
func (r *reextractRace) until(t *testing.T, n int, done <-chan error) <-chan error {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			again := make(chan error, 1)
			again <- err
			return again
		default:
		}
		var w int
		if err := r.l.DB().QueryRow(`SELECT count(*) FROM pg_locks WHERE NOT granted
			AND pid IN (SELECT pid FROM pg_stat_activity WHERE datname = current_database())`).Scan(&w); err != nil {
			t.Fatal(err)
		}
		if w >= n {
			return done
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions waiting for a lock; want %d", w, n)
		}
	}
}

// settled checks what both left: the share, if planned, nets entries
// summing to its amount less the next day's 500 of items, and the held
// entry, if gone, was netted into no payout.
func (r *reextractRace) settled(t *testing.T) {
	t.Helper()
	var amount sql.NullInt64
	if err := r.l.DB().QueryRow(`SELECT amount_minor FROM effects WHERE run_id = $1 AND kind = 'revenue_share'`, r.next.ID).Scan(&amount); err != nil && !errors.Is(err, sql.ErrNoRows) {
		t.Fatal(err)
	}
	var netted, entries int64
	if err := r.l.DB().QueryRow(`SELECT COALESCE(sum(amount_minor), 0), count(*) FROM adjustments WHERE netted_into = $1`,
		shareSubject(r.next.Key.Date, "S1", "USD")).Scan(&netted, &entries); err != nil {
		t.Fatal(err)
	}
	if amount.Valid && amount.Int64-500 != netted {
		t.Errorf("the next day's share of S1 pays %d carried; its %d entries netted sum %d: want the same (a carried amount whose items are read again is paid twice)",
			amount.Int64-500, entries, netted)
	}
	if !amount.Valid && entries != 0 {
		t.Errorf("no share planned, yet %d entries netted into it", entries)
	}
	var held int
	if err := r.l.DB().QueryRow(`SELECT count(*) FROM adjustments WHERE id = $1`, r.entry).Scan(&held); err != nil {
		t.Fatal(err)
	}
	var items int
	if err := r.l.DB().QueryRow(`SELECT count(*) FROM items WHERE run_id = $1`, r.d.ID).Scan(&items); err != nil {
		t.Fatal(err)
	}
	if held == 0 && items != 0 || held == 1 && items == 0 {
		t.Errorf("after both: the held entry kept %v, the items it carried kept %v; want both or neither", held == 1, items != 0)
	}
}

// TestAReextractWhileAShareReadsTheBalanceIsRefusedOrTheShareNetsIt: the
// next day's revenue share of S1 reads its balance (the 999 carried from
// day's item) and is held up (the test holds its item's row) before it
// nets it; day's run is re-extracted meanwhile. The re-extract waits for
// the share to commit (the ledger's carried-balances lock), then finds the
// entry netted into it and is refused, naming it; the share nets the
// entry it counted. Before, the re-extract deleted the entry and
// committed under the share: the share paid 999 it netted no entry for,
// and day's item, read again, was paid again.
func TestAReextractWhileAShareReadsTheBalanceIsRefusedOrTheShareNetsIt(t *testing.T) {
	t.Parallel()
	r := newReextractRace(t)
	hold := r.hold(t, "Ua")
	planned := r.until(t, 1, r.plan(500+999)) // its balance read, held up at its item
	reextracted := r.until(t, 2, r.reextract())
	if err := hold.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-planned; err != nil {
		t.Fatalf("the share, its balance read before the re-extract: %v", err)
	}
	err := <-reextracted
	if err == nil || pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "carried balances netted into a payout") ||
		!strings.Contains(err.Error(), shareSubject(r.next.Key.Date, "S1", "USD")) {
		t.Errorf("re-extract of %s while the share netted its carried balance: %v; want refused naming the share it is netted into", day, err)
	}
	r.settled(t)
}

// TestAShareAskedForWhileAReextractDeletesItsBalanceFindsItMoved: day's
// run is re-extracted and held up (the test holds its carried item's row)
// after its checks found the carried entry open, before it deletes it;
// the next day's revenue share of S1 is asked for meanwhile on the balance
// with the entry. It waits for the re-extract to commit, then finds its
// balance moved (pipeline.ErrBalanceMoved), nothing planned. Before, it
// netted the entry and committed under the re-extract, which then deleted
// an entry netted into a payout: the share paid 999 for items read again
// and paid again.
func TestAShareAskedForWhileAReextractDeletesItsBalanceFindsItMoved(t *testing.T) {
	t.Parallel()
	r := newReextractRace(t)
	hold := r.hold(t, r.heldOrder)
	reextracted := r.until(t, 1, r.reextract()) // its checks done, held up at the carried item
	planned := r.until(t, 2, r.plan(500+999))
	if err := hold.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-reextracted; err != nil {
		t.Fatalf("re-extract of %s, nothing netted when it began: %v", day, err)
	}
	if err := <-planned; !errors.Is(err, pipeline.ErrBalanceMoved) {
		t.Errorf("the share asked for while the re-extract deleted its balance: %v; want ErrBalanceMoved", err)
	}
	r.settled(t)
}

// TestAMovedRefundClawedBackWhileAReextractDropsItIsOneOrTheOther: day's
// run recorded a pending refund of an order the platform moved to day
// (settle:moved:, of an order of the day before), and is re-extracted,
// held up (the test holds its carried item's row) after its checks found
// the refund pending, before it drops the refund; the next day's run
// claws the refund back meanwhile. The clawback waits for the re-extract
// (under the carried-balances lock it asks for before it marks the refund
// clawed) and finds the refund gone (pipeline.ErrAlreadyResolved), nothing
// recorded: day's run, read again, works it out anew. Before, the clawback
// committed under the re-extract, which then dropped the refund it had
// clawed back, its clawback kept: read again, the refund was clawed back
// a second time. With the re-extract's lock alone, the clawback, its
// refund's row locked, waited for the lock the re-extract held, which
// waited for the row: a deadlock, one of them failed.
func TestAMovedRefundClawedBackWhileAReextractDropsItIsOneOrTheOther(t *testing.T) {
	t.Parallel()
	r := newReextractRace(t)
	at := time.Date(day.Year, time.Month(day.Month), day.Day, 12, 0, 0, 0, time.UTC)
	before := openRun(t, r.l, day.AddDays(-1))
	writeShares(t, r.l, before, at.Add(-24*time.Hour), []share{{"Ca", "S1", chInfinia, "USD", 700}})
	if _, err := r.l.DB().Exec(`UPDATE items SET state = 'paid' WHERE run_id = $1`, before.ID); err != nil {
		t.Fatal(err)
	}
	no := "settle:moved:Ca:" + day.String()
	if n, err := r.l.RecordLateRefunds(r.ctx, r.d, []pipeline.LateRefund{{Date: day, RefundNo: no, OrderNo: "Ca", SellerID: "S1",
		Amount: 100, CreatedAt: at, State: pipeline.LateRefundPending}}); err != nil || n != 1 {
		t.Fatalf("record the moved refund: %d, %v", n, err)
	}
	hold := r.hold(t, r.heldOrder)
	reextracted := r.until(t, 1, r.reextract()) // its checks done, held up at the carried item
	clawed := make(chan error, 1)
	go func() {
		clawed <- r.l.ResolveLateRefund(r.ctx, r.next, no, pipeline.LateRefundClawed, "", &pipeline.Adjustment{SellerID: "S1", Currency: "USD",
			Kind: pipeline.AdjustClawback, Amount: -100, OrderNo: "Ca", RefundNo: no, RefundMinor: 100}, 0)
	}()
	resolved := r.until(t, 2, clawed)
	if err := hold.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-reextracted; err != nil {
		t.Errorf("re-extract of %s, the moved refund pending when it began: %v", day, err)
	}
	if err := <-resolved; err != nil && !errors.Is(err, pipeline.ErrAlreadyResolved) {
		t.Errorf("the clawback of the moved refund asked for during the re-extract: %v; want it recorded, or ErrAlreadyResolved", err)
	}
	var entries int
	var state sql.NullString
	if err := r.l.DB().QueryRow(`SELECT (SELECT count(*) FROM adjustments WHERE kind = 'clawback' AND refund_no = $1),
		(SELECT state FROM late_refunds WHERE refund_no = $1)`, no).Scan(&entries, &state); err != nil {
		t.Fatal(err)
	}
	if entries == 1 && state.String != pipeline.LateRefundClawed || entries == 0 && state.Valid && state.String != pipeline.LateRefundPending {
		t.Errorf("after both: %d clawbacks of %s, the refund %v; want its clawback with the refund clawed, or neither", entries, no, state)
	}
}
