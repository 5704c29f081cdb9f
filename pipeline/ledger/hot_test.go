package ledger_test

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// writeDay writes n items of the run, order numbers prefix0000.., for
// sellers S00..S(sellers-1) in turn (so that a page holds items of several
// sellers, as a day's COPY leaves them), Pay Protocol ones unverified when
// unverified is set, else Infinia ones recorded.
func writeDay(t *testing.T, l *ledger.Ledger, run *pipeline.Run, prefix string, n, sellers int, unverified bool) {
	t.Helper()
	at := run.Key.Date.Time(time.UTC)
	ch := chInfinia
	if unverified {
		ch = chPayProtocol
	}
	if _, err := l.WriteItems(context.Background(), run, func(w pipeline.ItemWriter) error {
		for i := range n {
			no := fmt.Sprintf("%s%04d", prefix, i)
			o := pipeline.Order{Seq: int64(i + 1), OrderNo: no, SellerID: fmt.Sprintf("S%02d", i%sellers), Channel: ch,
				ProviderTxnID: "T" + no, Currency: "USD", Amount: 1000, Category: "c", PaidAt: at, ConfirmedAt: at}
			if err := w.Split(pipeline.Split{Order: o, Rule: "r", Commission: 100, SellerShare: 900, Unverified: unverified}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// The later stages move every item through its states, seller by seller;
// those writes are HOT (heap-only: no new index entries, nothing for
// VACUUM to clean in the indexes) only when no index of items names a
// column they change, in its key, INCLUDE, expression or predicate, and
// the new version fits on its page (fillfactor 90 leaves room). Migration
// 00018 made them so; an index on state (a partial one for the open or the
// rejected items, say) would undo it for every write of every item.
func TestItemWritesAreHOT(t *testing.T) {
	l, _ := open(t)
	ctx := context.Background()
	var defs []string
	if err := l.DB().Select(&defs, `SELECT indexdef FROM pg_indexes WHERE tablename = 'items'`); err != nil {
		t.Fatal(err)
	}
	written := regexp.MustCompile(`\b(state|reason|payout_key|provider_ref)\b`)
	for _, d := range defs {
		if written.MatchString(d) {
			t.Errorf("an index of items names a column the stages write, so no write of it is HOT: %s", d)
		}
	}
	run := openRun(t, l, day)
	writeDay(t, l, run, "O", 4000, 100, false) // a page holds no more than one item of a seller
	tx, err := l.DB().BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	// One seller's file accepted, another's refused: as the upload stage
	// writes them (the refused ones noted by migration 00018's trigger).
	for _, q := range []string{
		`UPDATE items SET state = 'uploaded', reason = 'accepted', provider_ref = 'F1' WHERE run_id = $1 AND seller_id = 'S07'`,
		`UPDATE items SET state = 'rejected', reason = 'refused' WHERE run_id = $1 AND seller_id = 'S08'`,
	} {
		if _, err := tx.Exec(q, run.ID); err != nil {
			t.Fatal(err)
		}
	}
	var upd, hot int64
	if err := tx.QueryRow(`SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relid = 'items'::regclass`).Scan(&upd, &hot); err != nil {
		t.Fatal(err)
	}
	if upd != 80 || hot != upd {
		t.Errorf("%d of %d item updates HOT, want all 80", hot, upd)
	}
}

// The orders a provider rejected are found from the notes the trigger of
// migration 00018 keeps, whatever wrote the rejection, and each is
// counted while its item stays rejected: not one that moved on, nor one of
// another run; a re-extract takes the run's notes with its items.
func TestProviderRejectsFollowTheItems(t *testing.T) {
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	writeDay(t, l, run, "P", 30, 3, true)
	other := openRun(t, l, day.AddDays(1))
	writeDay(t, l, other, "Q", 10, 1, true)
	unknown := "Pay Protocol does not know the payment"
	for _, no := range []string{"P0004", "P0001", "P0007"} {
		if err := l.SetItemState(ctx, run.ID, no, ledger.ItemUnverified, ledger.ItemRejected, unknown); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.SetItemState(ctx, other.ID, "Q0003", ledger.ItemUnverified, ledger.ItemRejected, unknown); err != nil {
		t.Fatal(err)
	}
	// A seller's items at once (S02: P0002, P0005, ...), and one that moves
	// on after its rejection.
	if n, err := l.SetItemsState(ctx, run.ID, "S02", "USD", []pipeline.Channel{chPayProtocol}, ledger.ItemUnverified,
		ledger.ItemRejected, "refused", "", ""); err != nil || n != 10 {
		t.Fatalf("%d rejected (%v), want 10", n, err)
	}
	if err := l.SetItemState(ctx, run.ID, "P0007", ledger.ItemRejected, ledger.ItemHeld, "looked at again"); err != nil {
		t.Fatal(err)
	}
	got, err := l.ProviderRejectsOfRun(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprint([]ledger.RejectReason{{Reason: "refused", Count: 10, Sample: "P0002"}, {Reason: unknown, Count: 2, Sample: "P0001"}}); fmt.Sprint(got) != want {
		t.Errorf("rejects of the run %v, want %v", got, want)
	}
	if err := l.Reextract(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	var notes int
	if err := l.DB().Get(&notes, `SELECT count(*) FROM items_rejected WHERE run_id = $1`, run.ID); err != nil || notes != 0 {
		t.Errorf("%d notes of rejected items left after a re-extract (%v)", notes, err)
	}
	if got, err := l.ProviderRejectsOfRun(ctx, other.ID); err != nil || len(got) != 1 || got[0].Count != 1 || got[0].Sample != "Q0003" {
		t.Errorf("rejects of the other run %v (%v), want Q0003 alone", got, err)
	}
}
