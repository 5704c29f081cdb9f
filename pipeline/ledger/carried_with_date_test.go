package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

// TestACarriedBalanceHeldWithADateIsNettedByItsShareAlone: S1's order Ta
// of day is held past the provider's memory; HoldCarriedWithDate holds
// with day S1's open balance in USD up to day (100 carried, a clawback of
// -50 recorded on day), not its entry of the day after, nor another
// seller's or another currency's (S1 has no order held in EUR), nor one
// netted already. Held, a later date's revenue share does not net it (a
// run the ledger lost may have netted it into day's, under a requestNo
// the provider forgot: it took the clawback back twice), and it is no
// open balance. Released by a run of another shard, nothing moves;
// released by day's run, day's share nets it.
func TestACarriedBalanceHeldWithADateIsNettedByItsShareAlone(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := carryFixture(t, l)
	const hold = "held: past the provider memory"
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO adjustments (seller_id, currency, kind, amount_minor, refund_minor, business_date, run_id)
			VALUES ('S1', 'USD', 'clawback', -50, 50, '%s', %d)`, run.Key.Date, run.ID),
		`UPDATE items SET reason = '` + hold + `' WHERE order_no = 'Ta'`,
	} {
		if _, err := l.DB().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	held, err := l.HoldCarriedWithDate(ctx, run, shareChannels, hold)
	if want := []pipeline.SellerCurrency{{SellerID: "S1", Currency: "USD"}}; err != nil || !reflect.DeepEqual(held, want) {
		t.Fatalf("held %v, %v; want %v", held, err, want)
	}
	mark := "held: carried balance held with " + run.Key.Date.String() + ", past the provider's memory"
	want := map[string][]int64{"": {200, 400, 800}, "RS/old": {1600}, mark: {-50, 100}}
	if got := nettedInto(t, l); !reflect.DeepEqual(got, want) {
		t.Fatalf("entries by what nets them after the hold: %v, want %v", got, want)
	}
	if again, err := l.HoldCarriedWithDate(ctx, run, shareChannels, hold); err != nil || len(again) != 1 {
		t.Fatalf("held again: %v, %v", again, err)
	}
	if got := nettedInto(t, l); !reflect.DeepEqual(got, want) {
		t.Fatalf("entries after holding again: %v, want %v", got, want)
	}
	carries, err := l.OpenCarries(ctx, pipeline.Date{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range carries {
		if c.SellerID == "S1" && c.Currency == "USD" && c.Amount != 800 {
			t.Errorf("S1's open balance in USD %d, want 800 (the day after's entry alone)", c.Amount)
		}
	}
	after := openRun(t, l, day.AddDays(1))
	if _, err := l.PlanPayout(ctx, after, "S1", shareChannels, payout(after, 800-50+100, 1)); !errors.Is(err, pipeline.ErrBalanceMoved) {
		t.Fatalf("the day after's share netting the held balance: %v, want ErrBalanceMoved", err)
	}
	later, err := l.PlanPayout(ctx, after, "S1", shareChannels, payout(after, 800, 1))
	if err != nil {
		t.Fatal(err)
	}
	other := *run
	other.Key.Shard = pipeline.Shard{Index: 0, Count: 2}
	if other.Key.Shard.Owns("S1") {
		other.Key.Shard.Index = 1
	}
	if n, err := l.ReleaseCarriedWithDate(ctx, &other); err != nil || n != 0 {
		t.Fatalf("released by another shard: %d, %v; want nothing", n, err)
	}
	if n, err := l.ReleaseCarriedWithDate(ctx, run); err != nil || n != 1 {
		t.Fatalf("released: %d, %v; want S1 in USD", n, err)
	}
	e, err := l.PlanPayout(ctx, run, "S1", shareChannels, payout(run, 3000+100-50, 1))
	if err != nil {
		t.Fatal(err)
	}
	want = map[string][]int64{"": {200, 400}, "RS/old": {1600}, later.Subject: {800}, e.Subject: {-50, 100}}
	if got := nettedInto(t, l); !reflect.DeepEqual(got, want) {
		t.Fatalf("entries after the release and the date's share: %v, want %v", got, want)
	}
}

// TestCarriedBalancesOfMoreSellersThanTheLockTableHoldsAreHeldWithADate:
// a date past the provider's memory whose orders of 20,000 sellers are
// held - more than the test server's lock table holds (about 12,800
// locks) - holds and releases their carried balances whole. Before, the
// hold took one carry lock per seller and currency in one transaction and
// failed, "out of shared memory" (found by a review), the stage with it.
func TestCarriedBalancesOfMoreSellersThanTheLockTableHoldsAreHeldWithADate(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	const sellers = 20000
	run := manySellersDay(t, l, sellers)
	const hold = "held: past the provider memory"
	for _, q := range []string{
		`UPDATE items SET reason = '` + hold + `'`,
		fmt.Sprintf(`INSERT INTO adjustments (seller_id, currency, kind, amount_minor, business_date, run_id)
			SELECT 'S' || lpad(i::text, 5, '0'), 'USD', 'held', 10, '%s', %d FROM generate_series(0, %d) i`, run.Key.Date, run.ID, sellers-1),
	} {
		if _, err := l.DB().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	held, err := l.HoldCarriedWithDate(ctx, run, shareChannels, hold)
	if err != nil || len(held) != sellers {
		t.Fatalf("held %d sellers, %v; want %d", len(held), err, sellers)
	}
	var open int64
	if err := l.DB().QueryRow(`SELECT count(*) FROM adjustments WHERE netted_into = ''`).Scan(&open); err != nil || open != 0 {
		t.Fatalf("%d entries open after the hold (%v), want 0", open, err)
	}
	released, err := l.ReleaseCarriedWithDate(ctx, run)
	if err != nil || released != sellers {
		t.Fatalf("released %d, %v; want %d", released, err, sellers)
	}
	if err := l.DB().QueryRow(`SELECT count(*) FROM adjustments WHERE netted_into = ''`).Scan(&open); err != nil || open != sellers {
		t.Fatalf("%d entries open after the release (%v), want %d", open, err, sellers)
	}
}

// TestAReextractLeavesHeldWithItsDateTheBalancesOfOtherRuns:
// day is past the provider's memory; its run held S1's order Ta and S2's
// Xs, and with them S1's and S2's balances in USD carried from the day
// before (100 and 200) with day. Day is read again (the platform moved
// S1's orders to another seller): the re-extract is not refused for the
// balances held with its own date, and leaves them held, S1's too: a run
// of day the ledger lost read it as it was then, S1's orders in it, and
// may have netted S1's balance into a share the provider paid; only a
// run of day the guard does not hold releases it.
func TestAReextractLeavesHeldWithItsDateTheBalancesOfOtherRuns(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := carryFixture(t, l)
	const hold = "held: past the provider memory"
	if _, err := l.DB().Exec(`UPDATE items SET reason = '` + hold + `' WHERE order_no IN ('Ta', 'Xs')`); err != nil {
		t.Fatal(err)
	}
	if held, err := l.HoldCarriedWithDate(ctx, run, shareChannels, hold); err != nil || len(held) != 2 {
		t.Fatalf("held %v, %v; want S1 and S2 in USD", held, err)
	}
	mark := "held: carried balance held with " + run.Key.Date.String() + ", past the provider's memory"
	if err := l.Reextract(ctx, run.ID); err != nil {
		t.Fatalf("re-extract of a date whose run held carried balances with it: %v", err)
	}
	want := map[string][]int64{"": {400, 800}, "RS/old": {1600}, mark: {100, 200}}
	if got := nettedInto(t, l); !reflect.DeepEqual(got, want) {
		t.Fatalf("entries after the re-extract: %v, want %v", got, want)
	}
}

// TestAReextractIsRefusedForABalanceHeldWithAnotherDateAndSaysSo: day's
// run carried S1's items (an entry of 999); it is held with the day after,
// a date past the provider's memory whose run held S1's orders. Day read
// again would drop the entry the day after's share is to net: refused,
// naming the date it is held with, not "netted into a payout" (no payout
// nets it). Its own date's hold does not refuse it: an entry of day's run
// held with day goes with its items.
func TestAReextractIsRefusedForABalanceHeldWithAnotherDateAndSaysSo(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := uploadedItems(t, l, day, "A", 1, 999)
	if _, _, err := l.CarryItems(ctx, run, "S1", "USD", shareChannels, "RS/x", "below the minimum"); err != nil {
		t.Fatal(err)
	}
	next := uploadedItems(t, l, day.AddDays(1), "B", 1, 500)
	const hold = "held: past the provider memory"
	if _, err := l.DB().Exec(`UPDATE items SET reason = $1 WHERE run_id = $2`, hold, next.ID); err != nil {
		t.Fatal(err)
	}
	if held, err := l.HoldCarriedWithDate(ctx, next, shareChannels, hold); err != nil || len(held) != 1 {
		t.Fatalf("held %v, %v; want S1 in USD", held, err)
	}
	err := l.Reextract(ctx, run.ID)
	want := "1 carried balances held with another date past the provider's memory (S1 USD with " + next.Key.Date.String() + ")"
	if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "netted into a payout") {
		t.Fatalf("re-extract of %s: %v; want a refusal naming %q", day, err, want)
	}
	// Held with its own date instead (day past the memory, its own
	// orders held): read again, the entry goes with its items.
	if _, err := l.DB().Exec(`UPDATE adjustments SET netted_into = $1, netted_date = $2 WHERE run_id = $3`,
		"held: carried balance held with "+day.String()+", past the provider's memory", day.String(), run.ID); err != nil {
		t.Fatal(err)
	}
	if err := l.Reextract(ctx, run.ID); err != nil {
		t.Fatalf("re-extract of %s, its entry held with its own date: %v", day, err)
	}
	if got := nettedInto(t, l); len(got) != 0 {
		t.Fatalf("entries after the re-extract: %v, want none", got)
	}
}
