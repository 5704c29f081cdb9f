package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

var tenPercentRules = pipeline.RulesFile{Name: "fixed.csv",
	Body: []byte("seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from\n,,,1000,,,,2020-01-01\n"), Hash: "h10"}

// TestARepriceOfMoreSellersThanTheLockTableHoldsIsRecorded: a reprice
// changing the share of 20,000 sellers, one order each - more than the
// test server's lock table holds (max_locks_per_transaction 64 times 100
// connections: 6,400 nominal, about 12,800 taken before it was full) - is
// recorded whole. Before, it took one lock per seller and failed, "out of
// shared memory", nothing recorded: a marketplace of tens of thousands of
// sellers could not reprice a date at all.
func TestARepriceOfMoreSellersThanTheLockTableHoldsIsRecorded(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	const sellers = 20000
	manySellersDay(t, l, sellers)
	if _, err := l.DB().Exec(`UPDATE items SET state = 'paid'`); err != nil {
		t.Fatal(err)
	}
	res, err := pipeline.Reprice(ctx, l, day, tenPercentRules, repriceChannels, tenPercent, false)
	if err != nil || res.ID == 0 {
		t.Fatalf("reprice of %d sellers: %+v %v; want it recorded", sellers, res.ID, err)
	}
	var n, sum int64
	if err := l.DB().QueryRow(`SELECT count(DISTINCT seller_id), sum(amount_minor) FROM adjustments WHERE kind = 'reprice' AND reprice_id = $1`,
		res.ID).Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	if n != sellers || sum != -99*sellers {
		t.Errorf("reprice entries: %d sellers, %d in all; want %d, %d", n, sum, sellers, -99*sellers)
	}
}

// TestASharePlannedWhileARepriceRecordsNetsAllItsEntriesOrNone: the
// revenue shares of a reprice's sellers planned while it records its
// entries net all of a seller's entries or none, and what they net is what
// they were planned with. S2's share, planned on the balance of before the
// reprice and held up (the test holds its item's row) between reading the
// balance and netting it, nets none of them: the reprice commits only once
// it is planned. S1's, asked for while the reprice waits to commit, waits
// for the commit and finds them all: planned on the balance of before, it
// is refused (ErrBalanceMoved), nothing netted; on the balance now, it nets
// both. Without the carry locks, the reprice committed while S2's share was
// held up, and the share netted S2's entry into an amount without it.
func TestASharePlannedWhileARepriceRecordsNetsAllItsEntriesOrNone(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := openRun(t, l, day)
	at := time.Date(day.Year, time.Month(day.Month), day.Day, 12, 0, 0, 0, time.UTC)
	writeShares(t, l, run, at, []share{{"Pa", "S1", chInfinia, "USD", 999}, {"Pb", "S1", chInfinia, "USD", 999}, {"Pc", "S2", chInfinia, "USD", 999}})
	if _, err := l.DB().Exec(`UPDATE items SET state = 'paid'`); err != nil {
		t.Fatal(err)
	}
	next := openRun(t, l, day.AddDays(1))
	writeShares(t, l, next, at.Add(24*time.Hour), []share{{"Ua", "S1", chInfinia, "USD", 500}, {"Uc", "S2", chInfinia, "USD", 300}})
	if _, err := l.DB().Exec(`UPDATE items SET state = 'uploaded' WHERE run_id = $1`, next.ID); err != nil {
		t.Fatal(err)
	}
	share := func(seller string, amount int64) pipeline.Effect {
		return pipeline.Effect{RunID: next.ID, Kind: kindRevenueShare, Subject: shareSubject(next.Key.Date, seller, "USD"), Attempt: 1,
			Key: shareKey(next.Key.Date, seller, "USD", 1), Currency: "USD", Amount: amount}
	}
	plan := func(seller string, amount int64) <-chan error {
		done := make(chan error, 1)
		go func() {
			_, err := l.PlanPayout(ctx, next, seller, []pipeline.Channel{chInfinia}, share(seller, amount))
			done <- err
		}()
		return done
	}
	// until waits until n sessions of the test's database wait for a
	// lock, or done has an answer (kept for the test to read).
	until := func(n int, done <-chan error) <-chan error {
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
			if err := l.DB().QueryRow(`SELECT count(*) FROM pg_locks WHERE NOT granted
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

	hold, err := l.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback()
	if _, err := hold.Exec(`SELECT 1 FROM items WHERE order_no = 'Uc' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	s2 := until(1, plan("S2", 300)) // its balance read, held up at its item
	reprice := make(chan error, 1)
	go func() {
		_, err := pipeline.Reprice(ctx, l, day, tenPercentRules, repriceChannels, tenPercent, false)
		reprice <- err
	}()
	repriced := until(2, reprice) // waiting to commit, or committed
	s1 := until(3, plan("S1", 500))
	if err := hold.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-repriced; err != nil {
		t.Fatalf("reprice: %v", err)
	}
	if err := <-s2; err != nil {
		t.Fatalf("S2's share, planned before the reprice committed: %v", err)
	}
	if err := <-s1; !errors.Is(err, pipeline.ErrBalanceMoved) {
		t.Errorf("S1's share asked for while the reprice waited to commit, on the balance of before: %v; want ErrBalanceMoved, the reprice's entries found", err)
	}
	netted := func(seller string) (n, sum int64) {
		t.Helper()
		if err := l.DB().QueryRow(`SELECT count(*), COALESCE(sum(amount_minor), 0) FROM adjustments WHERE seller_id = $1 AND netted_into <> ''`,
			seller).Scan(&n, &sum); err != nil {
			t.Fatal(err)
		}
		return n, sum
	}
	if n, sum := netted("S2"); n != 0 {
		t.Errorf("S2's share of 300, planned on its 300 of items, netted %d entries (%d); want none", n, sum)
	}
	if n, _ := netted("S1"); n != 0 {
		t.Errorf("S1's refused share netted %d entries; want none", n)
	}
	if _, err := l.PlanPayout(ctx, next, "S1", []pipeline.Channel{chInfinia}, share("S1", 500-2*99)); err != nil {
		t.Fatalf("S1's share on the balance now: %v", err)
	}
	if n, sum := netted("S1"); n != 2 || sum != -2*99 {
		t.Errorf("S1's share on the balance now netted %d entries (%d); want both (-198)", n, sum)
	}
}

// manySellersDay opens day's run with an Infinia order of 999 USD of each
// of n sellers (P00000 of S00000, and on), for the tests of more sellers
// than the server's lock table holds.
func manySellersDay(t *testing.T, l *ledger.Ledger, n int) *pipeline.Run {
	t.Helper()
	run := openRun(t, l, day)
	at := time.Date(day.Year, time.Month(day.Month), day.Day, 12, 0, 0, 0, time.UTC)
	shares := make([]share, n)
	for i := range shares {
		shares[i] = share{fmt.Sprintf("P%05d", i), fmt.Sprintf("S%05d", i), chInfinia, "USD", 999}
	}
	writeShares(t, l, run, at, shares)
	return run
}
