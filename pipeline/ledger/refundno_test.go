package ledger_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// lateRows is a late-refunds query that gives rows.
type lateRows []pipeline.LateRefundRow

func (r lateRows) LateRefunds(_ context.Context, _ pipeline.Window, fn func(pipeline.LateRefundRow) error) error {
	for _, row := range r {
		if err := fn(row); err != nil {
			return err
		}
	}
	return nil
}

// TestAPlatformRefundNumberedLikeSettlesOwnIsKeptApart: settle keeps
// refunds of its own making in the late refunds' key space, under numbers
// of its own ("settle:moved:ORDER:DATE", "settle:renumber:NO:ORDER"), and
// treats every refund_no with those beginnings as its own: the platform's
// rejected refunds it no longer gives are resolved, but not those, so a
// platform's refund numbered so, rejected (an amount that is no integer)
// and then removed by the platform, held its seller's revenue shares for
// ever; one of "settle:renumber:" was resolved as settle's own on the
// run that read it while the platform still gave it. A platform's number
// in settle's space is rejected with the reason and kept, as a row with
// no number is, under one that is no number of settle's and no
// platform's: resolved once the platform no longer gives the row.
func TestAPlatformRefundNumberedLikeSettlesOwnIsKeptApart(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := uploadedItems(t, l, day, "A", 1, 9000)
	w := pipeline.WindowOf(day, time.UTC)
	at := w.Start.Add(time.Hour)
	s := func(v string) *string { return &v }
	for _, no := range []string{pipeline.MovedRefundNo("Aa", day), pipeline.RenumberRefundNo("R9", "Aa")} {
		given := lateRows{{RefundNo: s(no), OrderNo: s("Aa"), SellerID: s("S1"), AmountMinor: s("1.5"), CreatedAt: &at}}
		if _, _, _, err := pipeline.ReadLateRefunds(ctx, given, l, run, w); err != nil {
			t.Fatal(err)
		}
		blocked, err := l.BlockedByLateRefunds(ctx, shareChannels)
		if err != nil {
			t.Fatal(err)
		}
		if len(blocked) != 1 {
			t.Fatalf("%s: while the platform gives its bad refund, blocked %v; want seller S1 held", no, blocked)
		}
		var reason string
		if err := l.DB().QueryRowContext(ctx, `SELECT reason FROM late_refunds WHERE order_no = 'Aa' AND state = 'rejected'`).Scan(&reason); err != nil {
			t.Fatal(err)
		}
		if want := "refund_no " + `"` + no + `"` + " begins as settle's own refund numbers do (settle:)"; len(reason) < len(want) || reason[:len(want)] != want {
			t.Fatalf("%s: rejected as %q, want it to begin %q", no, reason, want)
		}
		// The platform corrects its row away: nothing holds the seller.
		if _, _, _, err := pipeline.ReadLateRefunds(ctx, lateRows{}, l, run, w); err != nil {
			t.Fatal(err)
		}
		if blocked, err := l.BlockedByLateRefunds(ctx, shareChannels); err != nil || len(blocked) != 0 {
			t.Fatalf("%s: the platform no longer gives it, yet blocked %v (%v)", no, blocked, err)
		}
		var state string
		err = l.DB().QueryRowContext(ctx, `SELECT state, reason FROM late_refunds WHERE refund_no = $1`, no).Scan(&state, &reason)
		if !errors.Is(err, sql.ErrNoRows) {
			t.Fatalf("%s: the platform's refund is kept under settle's number (%s: %s, %v)", no, state, reason, err)
		}
	}
}
