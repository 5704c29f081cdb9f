package pipeline

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rowsSource is a LateRefundSource of fixed rows.
type rowsSource []LateRefundRow

func (s rowsSource) LateRefunds(_ context.Context, _ Window, fn func(LateRefundRow) error) error {
	for _, r := range s {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// recordingAdjust is memAdjust that keeps what ReadLateRefunds records, and
// says the ledger holds otherwise the refunds numbered in otherwise.
type recordingAdjust struct {
	memAdjust
	recorded  [][]LateRefund // one per RecordLateRefunds call
	otherwise map[string]LateRefund
}

func (m *recordingAdjust) RecordLateRefunds(_ context.Context, _ *Run, rs []LateRefund) (int, error) {
	m.recorded = append(m.recorded, append([]LateRefund(nil), rs...))
	return len(rs), nil
}

func (m *recordingAdjust) LateRefundsRecordedOtherwise(_ context.Context, rs []LateRefund) ([]LateRefund, error) {
	var held []LateRefund
	for _, r := range rs {
		if h, ok := m.otherwise[r.RefundNo]; ok {
			held = append(held, h)
		}
	}
	return held, nil
}

func lateRow(refundNo, orderNo, seller string, amount int64, at time.Time) LateRefundRow {
	a := strconv.FormatInt(amount, 10)
	return LateRefundRow{RefundNo: &refundNo, OrderNo: &orderNo, SellerID: &seller, AmountMinor: &a, CreatedAt: &at}
}

// sellersOf returns a seller the shard owns and one it does not.
func sellersOf(t *testing.T, s Shard) (mine, other string) {
	t.Helper()
	for i := 1; i < 100 && (mine == "" || other == ""); i++ {
		id := fmt.Sprintf("S%d", i)
		if s.Owns(id) {
			mine = cmp.Or(mine, id)
		} else {
			other = cmp.Or(other, id)
		}
	}
	if mine == "" || other == "" {
		t.Fatal("no sellers either side of the shard")
	}
	return mine, other
}

// ReadLateRefunds records the refunds of its window for the sellers of its
// shard alone; a refund number given in rows that disagree (order, seller, amount,
// time, in and outside the window) is recorded rejected with nothing to take
// back; a refund outside the window is not recorded, only counted for a
// person (the shard's own); a number the ledger holds for another refund
// is recorded again, rejected, under a number of settle's.
func TestReadLateRefundsRecordsOnlyWhatItMayTakeBack(t *testing.T) {
	loc := time.UTC
	w := Window{Start: time.Date(2024, 3, 2, 0, 0, 0, 0, loc), End: time.Date(2024, 3, 3, 0, 0, 0, 0, loc)}
	in, in2 := w.Start.Add(time.Hour), w.Start.Add(2*time.Hour)
	before := w.Start.Add(-time.Hour)
	shard := Shard{Index: 0, Count: 2}
	mine, other := sellersOf(t, shard)
	src := rowsSource{
		lateRow("OK", "O1", mine, 500, in),
		lateRow("AMT", "O2", mine, 300, in), lateRow("AMT", "O2", mine, 301, in),
		lateRow("TIME", "O3", mine, 200, in), lateRow("TIME", "O3", mine, 200, in2),
		lateRow("BOTH", "O4", mine, 100, before), lateRow("BOTH", "O4", mine, 100, in),
		lateRow("OUT", "O5", mine, 700, before),
		lateRow("AFTER", "O9", mine, 100, in), lateRow("AFTER", "O9", mine, 100, before),
		lateRow("SELLER", "O10", mine, 100, in), lateRow("SELLER", "O10", other, 100, in),
		lateRow("ORDER", "O11", mine, 100, in), lateRow("ORDER", "O12", mine, 100, in),
		lateRow("THEIRS", "O6", other, 900, in),
		lateRow("THEIRSOUT", "O7", other, 900, before),
		lateRow("HELD", "O8", mine, 50, in),
	}
	store := &recordingAdjust{otherwise: map[string]LateRefund{
		"HELD": {RefundNo: "HELD", OrderNo: "OX", SellerID: mine, Amount: 60, State: LateRefundClawed},
	}}
	run := &Run{ID: 7, Key: RunKey{Date: Date{2024, 3, 2}, Shard: shard}}
	_, problems, outside, err := ReadLateRefunds(context.Background(), src, store, run, w)
	if err != nil {
		t.Fatal(err)
	}
	if len(store.recorded) != 2 {
		t.Fatalf("RecordLateRefunds called %d times, want 2 (the rows, then the renumbered)", len(store.recorded))
	}
	var got []string
	for _, r := range store.recorded[0] {
		got = append(got, fmt.Sprintf("%s %s %d", r.RefundNo, r.State, r.Amount))
	}
	want := []string{
		"OK pending 500",
		"AMT rejected 0", "AMT rejected 0",
		"TIME rejected 0", "TIME rejected 0",
		"BOTH rejected 0",
		"AFTER rejected 0",
		"SELLER rejected 0",
		"ORDER rejected 0", "ORDER rejected 0",
		"HELD pending 50",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("recorded:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if outside.N != 3 {
		t.Errorf("outside the window: %d, want 3 (BOTH's, OUT's and AFTER's rows; not another shard's): %q", outside.N, outside.Lines)
	}
	re := store.recorded[1]
	if len(re) != 1 || re[0].RefundNo != RenumberRefundNo("HELD", "O8") || re[0].State != LateRefundRejected || re[0].OrderNo != "O8" {
		t.Errorf("renumbered: %+v, want HELD of O8 rejected under %s", re, RenumberRefundNo("HELD", "O8"))
	}
	if len(problems) != 1 || !strings.Contains(problems[0], "late refund HELD of order O8") {
		t.Errorf("problems %q, want the one of HELD", problems)
	}
}
