package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// carryFixture records, in the run of day, the two items a carry or a
// revenue share of S1 in USD over shareChannels takes (Ta and Tb, owed
// 1000 and 2000, uploaded, no payout yet), and one of each kind it must
// leave as it is: another seller's (Xs), another currency's (Xc), one of a
// channel the shares do not pay (Xw), one not uploaded yet (Xr) and one
// another payout covers already (Xk). It also records S1's carried
// entries and others': only the first (100, of an earlier date, open) is
// S1's open balance in USD up to day.
func carryFixture(t *testing.T, l *ledger.Ledger) *pipeline.Run {
	t.Helper()
	before := openRun(t, l, day.AddDays(-1))
	run := openRun(t, l, day)
	after := openRun(t, l, day.AddDays(1))
	at := time.Date(day.Year, time.Month(day.Month), day.Day, 12, 0, 0, 0, time.UTC)
	writeShares(t, l, run, at, []share{{"Ta", "S1", chInfinia, "USD", 1000}, {"Tb", "S1", chPayProtocol, "USD", 2000}, {"Xs", "S2", chInfinia, "USD", 4},
		{"Xc", "S1", chInfinia, "EUR", 8}, {"Xw", "S1", chWeChat, "USD", 16}, {"Xr", "S1", chInfinia, "USD", 32}, {"Xk", "S1", chInfinia, "USD", 64}})
	for _, q := range []string{
		`UPDATE items SET state = 'uploaded' WHERE order_no <> 'Xr'`,
		`UPDATE items SET payout_key = 'RS-other' WHERE order_no = 'Xk'`,
		fmt.Sprintf(`INSERT INTO adjustments (seller_id, currency, kind, amount_minor, business_date, run_id, netted_into, netted_date) VALUES
			('S1', 'USD', 'held', 100, '%[1]s', %[2]d, '', NULL),
			('S2', 'USD', 'held', 200, '%[1]s', %[2]d, '', NULL),
			('S1', 'EUR', 'held', 400, '%[1]s', %[2]d, '', NULL),
			('S1', 'USD', 'held', 800, '%[3]s', %[4]d, '', NULL),
			('S1', 'USD', 'held', 1600, '%[1]s', %[2]d, 'RS/old', '%[1]s')`, before.Key.Date, before.ID, after.Key.Date, after.ID),
	} {
		if _, err := l.DB().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return run
}

// itemRow is an item's state, reason and payout key.
type itemRow struct{ State, Reason, PayoutKey string }

func itemRows(t *testing.T, l *ledger.Ledger) map[string]itemRow {
	t.Helper()
	rows, err := l.DB().Query(`SELECT order_no, state, reason, payout_key FROM items`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]itemRow{}
	for rows.Next() {
		var no string
		var r itemRow
		if err := rows.Scan(&no, &r.State, &r.Reason, &r.PayoutKey); err != nil {
			t.Fatal(err)
		}
		out[no] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// untouched is how carryFixture leaves the items a carry or a payout of
// S1 in USD must not take.
var untouched = map[string]itemRow{"Xs": {State: "uploaded"}, "Xc": {State: "uploaded"}, "Xw": {State: "uploaded"},
	"Xr": {State: "recorded"}, "Xk": {State: "uploaded", PayoutKey: "RS-other"}}

// nettedInto is the amount of every entry netted into each subject.
func nettedInto(t *testing.T, l *ledger.Ledger) map[string][]int64 {
	t.Helper()
	rows, err := l.DB().Query(`SELECT netted_into, amount_minor FROM adjustments ORDER BY netted_into, amount_minor`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]int64{}
	for rows.Next() {
		var into string
		var amount int64
		if err := rows.Scan(&into, &amount); err != nil {
			t.Fatal(err)
		}
		out[into] = append(out[into], amount)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCarryItemsTakesOnlyTheSellersUploadedItemsOfItsCurrencyAndChannels:
// a carry of S1's items in USD moves Ta and Tb alone into one new held
// entry of 30.00, each with the reason, and leaves another seller's,
// another currency's, another channel's, one not uploaded and one another
// payout covers (mutants: dropping the seller, the currency, the channels,
// the state or the payout key from carryItems' condition each survived,
// carrying another seller's money into S1's balance, say). Carrying
// nothing left records no entry (mutant: n == 0 as n < 0 survived, an
// empty entry in settle status).
func TestCarryItemsTakesOnlyTheSellersUploadedItemsOfItsCurrencyAndChannels(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := carryFixture(t, l)
	if amount, n, err := l.CarryItems(ctx, run, "S1", "USD", shareChannels, "RS/x", "binding PENDING"); err != nil || amount != 3000 || n != 2 {
		t.Fatalf("carry: %d on %d items, %v; want 3000 on 2", amount, n, err)
	}
	want := maps.Clone(untouched)
	want["Ta"] = itemRow{State: "carried", Reason: "carried: binding PENDING"}
	want["Tb"] = want["Ta"]
	if got := itemRows(t, l); !reflect.DeepEqual(got, want) {
		t.Fatalf("items after the carry\n got %v\nwant %v", got, want)
	}
	var entries, carriedInto int64
	if err := l.DB().QueryRow(`SELECT count(*), (SELECT count(*) FROM items i JOIN adjustments c ON c.id = i.carry_id
		WHERE c.amount_minor = 3000 AND c.subject = 'RS/x') FROM adjustments a
		WHERE seller_id = 'S1' AND currency = 'USD' AND kind = 'held' AND amount_minor = 3000 AND subject = 'RS/x'`).Scan(&entries, &carriedInto); err != nil ||
		entries != 1 || carriedInto != 2 {
		t.Fatalf("the carry's entries: %d, items carried into it %d, %v; want one held entry of 3000 both items are carried into", entries, carriedInto, err)
	}
	if again, n, err := l.CarryItems(ctx, run, "S1", "USD", shareChannels, "RS/x", "binding PENDING"); err != nil || again != 0 || n != 0 {
		t.Fatalf("carrying again: %d on %d items, %v; want nothing", again, n, err)
	}
	var all int64
	if err := l.DB().QueryRow(`SELECT count(*) FROM adjustments`).Scan(&all); err != nil || all != 6 {
		t.Fatalf("%d entries after carrying nothing, %v; want 6 (the fixture's 5 and the carry's)", all, err)
	}
}

// TestAPayoutNetsOnlyTheSellersItemsAndOpenBalanceOfItsCurrency: a
// revenue share of S1 in USD adds up to Ta, Tb and S1's open entry in USD
// up to the run's date, nothing else; it marks those items and nets that
// entry alone (mutants: dropping the seller, the currency, the channels,
// the state or the empty payout key from PlanPayout's items, the seller, the
// currency or the date from its balance, or the seller, the currency or
// the empty netted_into from its netting each survived; the last re-netted an
// entry another payout paid, which this one's failure would then reopen
// to be paid again). Its failure carries its items with no payout key
// left on them (mutant: the carry keeping payout_key survived: orders.csv
// named a failed payout on carried orders) and reopens that entry alone.
func TestAPayoutNetsOnlyTheSellersItemsAndOpenBalanceOfItsCurrency(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := carryFixture(t, l)
	for _, amount := range []int64{3000, 3099, 3101, 3100 + 200, 3100 + 800, 3100 + 1600} {
		if _, err := l.PlanPayout(ctx, run, "S1", shareChannels, payout(run, amount, 1)); !errors.Is(err, pipeline.ErrBalanceMoved) {
			t.Fatalf("a payout of %d planned: %v; want ErrBalanceMoved (S1 is owed 3100 in USD)", amount, err)
		}
	}
	e, err := l.PlanPayout(ctx, run, "S1", shareChannels, payout(run, 3100, 1))
	if err != nil {
		t.Fatal(err)
	}
	want := maps.Clone(untouched)
	want["Ta"] = itemRow{State: "uploaded", PayoutKey: e.Key}
	want["Tb"] = want["Ta"]
	if got := itemRows(t, l); !reflect.DeepEqual(got, want) {
		t.Fatalf("items after planning\n got %v\nwant %v", got, want)
	}
	open := map[string][]int64{"": {200, 400, 800}, "RS/old": {1600}, e.Subject: {100}}
	if got := nettedInto(t, l); !reflect.DeepEqual(got, open) {
		t.Fatalf("entries by the subject netting them after planning: %v, want %v", got, open)
	}
	if err := l.RecordOutcome(ctx, e.ID, pipeline.EffectFailed, "", "refused"); err != nil {
		t.Fatal(err)
	}
	if err := l.PayoutFailed(ctx, run, "S1", "USD", shareChannels, e, "refused"); err != nil {
		t.Fatal(err)
	}
	want["Ta"] = itemRow{State: "carried", Reason: "carried: refused"}
	want["Tb"] = want["Ta"]
	if got := itemRows(t, l); !reflect.DeepEqual(got, want) {
		t.Fatalf("items after the failure\n got %v\nwant %v", got, want)
	}
	open = map[string][]int64{"": {100, 200, 400, 800, 3000}, "RS/old": {1600}}
	if got := nettedInto(t, l); !reflect.DeepEqual(got, open) {
		t.Fatalf("entries by the subject netting them after the failure: %v, want %v", got, open)
	}
}

// TestASuccessfulPayoutPaysOnlyTheItemsItCovers: a revenue share's
// success pays the items it was planned with and no item of the seller
// uploaded since (mutant: PayoutSucceeded dropping payout_key = its key
// survived, paying Tc, which no payout covered, and Xk, another payout's).
func TestASuccessfulPayoutPaysOnlyTheItemsItCovers(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := carryFixture(t, l)
	e, err := l.PlanPayout(ctx, run, "S1", shareChannels, payout(run, 3100, 1))
	if err != nil {
		t.Fatal(err)
	}
	// Tc: uploaded after the payout was planned (the next one pays it).
	if _, err := l.DB().Exec(`UPDATE items SET state = 'uploaded' WHERE order_no = 'Xr'`); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordOutcome(ctx, e.ID, pipeline.EffectSucceeded, "REF", ""); err != nil {
		t.Fatal(err)
	}
	e.ProviderRef = "REF"
	if err := l.PayoutSucceeded(ctx, run, "S1", "USD", shareChannels, e); err != nil {
		t.Fatal(err)
	}
	want := maps.Clone(untouched)
	want["Xr"] = itemRow{State: "uploaded"}
	want["Ta"] = itemRow{State: "paid", PayoutKey: e.Key}
	want["Tb"] = want["Ta"]
	if got := itemRows(t, l); !reflect.DeepEqual(got, want) {
		t.Fatalf("items after the success\n got %v\nwant %v", got, want)
	}
}

// TestOpenCarriesUpToADate: the open carried balances up to a date count
// the open entries of that date and earlier, not a later date's nor those
// netted; with no date, every open entry (mutants: <= as <, the date
// dropped or ignored each survived: a dry run counted the balances of
// later dates as balances it would net). They come by seller, then
// currency, as settle status lists them (mutant: by currency first
// survived), with the seller's latest Infinia id that is not empty
// (mutants: not skipping an empty one, or taking the oldest, survived).
func TestOpenCarriesUpToADate(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	var runs []*pipeline.Run
	for i := -1; i <= 1; i++ {
		runs = append(runs, openRun(t, l, day.AddDays(i)))
	}
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO adjustments (seller_id, currency, kind, amount_minor, business_date, run_id, netted_into, netted_date) VALUES
			('S1', 'USD', 'held', 100, '%[1]s', %[4]d, '', NULL),
			('S1', 'USD', 'held', 200, '%[2]s', %[5]d, '', NULL),
			('S1', 'USD', 'held', 400, '%[3]s', %[6]d, '', NULL),
			('S1', 'USD', 'held', 800, '%[1]s', %[4]d, 'RS/x', '%[2]s'),
			('S0', 'USD', 'held', 3, '%[2]s', %[5]d, '', NULL),
			('S1', 'EUR', 'held', 5, '%[2]s', %[5]d, '', NULL)`,
			runs[0].Key.Date, runs[1].Key.Date, runs[2].Key.Date, runs[0].ID, runs[1].ID, runs[2].ID),
		fmt.Sprintf(`INSERT INTO run_sellers (run_id, seller_id, infinia_seller_id) VALUES
			(%d, 'S1', 'I-old'), (%d, 'S1', 'I-new'), (%d, 'S1', '')`, runs[0].ID, runs[1].ID, runs[2].ID),
	} {
		if _, err := l.DB().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		upTo pipeline.Date
		want []pipeline.Carry
	}{
		{day, []pipeline.Carry{{SellerID: "S0", Currency: "USD", Amount: 3, Entries: 1},
			{SellerID: "S1", Currency: "EUR", Amount: 5, Entries: 1, Account: "I-new"},
			{SellerID: "S1", Currency: "USD", Amount: 300, Entries: 2, Account: "I-new"}}},
		{pipeline.Date{}, []pipeline.Carry{{SellerID: "S0", Currency: "USD", Amount: 3, Entries: 1},
			{SellerID: "S1", Currency: "EUR", Amount: 5, Entries: 1, Account: "I-new"},
			{SellerID: "S1", Currency: "USD", Amount: 700, Entries: 3, Account: "I-new"}}},
	} {
		got, err := l.OpenCarries(ctx, c.upTo)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("open carries up to %v\n got %+v\nwant %+v", c.upTo, got, c.want)
		}
	}
}

// share is an order writeShares records: seller's, of channel ch in
// currency cur, its seller share share (commission 1).
type share struct {
	no, seller string
	ch         pipeline.Channel
	cur        pipeline.Currency
	share      int64
}

// writeShares records the run's items of shares, paid and confirmed at.
func writeShares(t *testing.T, l *ledger.Ledger, run *pipeline.Run, at time.Time, shares []share) {
	t.Helper()
	if _, err := l.WriteItems(context.Background(), run, func(w pipeline.ItemWriter) error {
		for i, it := range shares {
			o := pipeline.Order{Seq: int64(i + 1), OrderNo: it.no, SellerID: it.seller, Channel: it.ch, ProviderTxnID: "T" + it.no,
				Currency: it.cur, Amount: it.share + 1, PaidAt: at, ConfirmedAt: at}
			if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 1, SellerShare: it.share}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestAPayoutWhoseKeyIsAnotherSubjectsIsRefusedAsKeyTaken: the requestNo
// of a revenue share is a 48-bit hash of its seller and currency, so two
// sellers' can be the same. The ledger's unique index refuses the second;
// PlanPayout and PlanEffect say so as pipeline.ErrKeyTaken, naming the
// subject holding the key, and record nothing (the stage carries that
// seller alone). Before, it was a bare unique violation, which stopped the
// date's distribute stage on every run.
func TestAPayoutWhoseKeyIsAnotherSubjectsIsRefusedAsKeyTaken(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := carryFixture(t, l)
	e := payout(run, 3100, 1)
	other := pipeline.Effect{RunID: run.ID, Kind: kindRevenueShare, Subject: shareSubject(run.Key.Date, "S9", "USD"), Attempt: 1,
		Key: e.Key, Currency: "USD", Amount: 5}
	if _, err := l.PlanEffect(ctx, other); err != nil {
		t.Fatal(err)
	}
	before := itemRows(t, l)
	_, err := l.PlanPayout(ctx, run, "S1", shareChannels, e)
	if !errors.Is(err, pipeline.ErrKeyTaken) || !strings.Contains(err.Error(), other.Subject) {
		t.Fatalf("PlanPayout under S9's key: %v; want ErrKeyTaken naming %s", err, other.Subject)
	}
	if got := itemRows(t, l); !reflect.DeepEqual(got, before) {
		t.Fatalf("items after the refused payout\n got %v\nwant %v", got, before)
	}
	e.Subject = shareSubject(run.Key.Date, "S8", "USD")
	if _, err := l.PlanEffect(ctx, e); !errors.Is(err, pipeline.ErrKeyTaken) {
		t.Fatalf("PlanEffect under S9's key: %v; want ErrKeyTaken", err)
	}
	if _, err := l.PlanEffect(ctx, other); err != nil {
		t.Fatalf("planning S9's own effect again: %v; want it returned as recorded", err)
	}
}
