package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// dayRecorder is a DayWriter in memory.
type dayRecorder struct {
	rows    []int64
	sellers map[string]bool
	items   []int64
	rejects []int64
	why     error
}

func (d *dayRecorder) WriteDay(_ context.Context, _ *Run, fill func(func(SourceRow) error, func(Seller) error, ItemStream) error) (DayCounts, error) {
	d.sellers = map[string]bool{}
	err := fill(func(r SourceRow) error { d.rows = append(d.rows, r.Seq); return nil },
		func(s Seller) error {
			if d.sellers[s.ID] {
				return fmt.Errorf("seller %s added twice", s.ID)
			}
			d.sellers[s.ID] = true
			return nil
		}, d)
	if err != nil {
		return DayCounts{}, err
	}
	out := DayCounts{Rows: int64(len(d.rows)), Left: d.why}
	if d.why == nil {
		out.Items = &ItemCounts{Items: int64(len(d.items)), Rejects: int64(len(d.rejects))}
	}
	return out, nil
}

func (d *dayRecorder) Split(s Split) error   { d.items = append(d.items, s.Seq); return nil }
func (d *dayRecorder) Reject(r Reject) error { d.rejects = append(d.rejects, r.Seq); return nil }
func (d *dayRecorder) Abandon(why error) {
	if d.why == nil {
		d.why = why
	}
}
func (d *dayRecorder) Abandoned() bool { return d.why != nil }

// evenSellers knows the sellers with an even number, counting lookups.
type evenSellers struct{ lookups, ids int }

func (e *evenSellers) Sellers(_ context.Context, ids []string, fn func(Seller) error) error {
	e.lookups++
	e.ids += len(ids)
	for _, id := range ids {
		var n int
		fmt.Sscanf(id, "S%d", &n)
		if n%2 == 0 {
			if err := fn(Seller{ID: id}); err != nil {
				return err
			}
		}
	}
	return nil
}

type seqSource []SourceRow

func (s seqSource) Orders(_ context.Context, _ Window, fn func(SourceRow) error) error {
	for _, r := range s {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// Every row goes to the snapshot in the source's order; every row is
// classified once, only once its seller was looked up; each seller is
// looked up once, in batches, and recorded once. A classifier error drops
// the items but not the snapshot.
func TestExtractTransformLooksSellersUpInBatches(t *testing.T) {
	const sellers, rows = 2500, 30000
	var src seqSource
	for i := range rows {
		id := fmt.Sprintf("S%d", (i*7)%sellers)
		src = append(src, SourceRow{Seq: int64(i + 1), SellerID: &id})
	}
	src = append(src, SourceRow{Seq: rows + 1}) // no seller
	known := &evenSellers{}
	day := &dayRecorder{}
	classifier := func(seller func(string) (Seller, bool, error)) Classifier {
		return func(r SourceRow) (Split, *Reject, error) {
			if r.SellerID == nil {
				return Split{}, &Reject{Reason: "no seller"}, nil
			}
			if _, ok, _ := seller(*r.SellerID); !ok {
				return Split{}, &Reject{Reason: "unknown seller"}, nil
			}
			return Split{}, nil, nil
		}
	}
	run := &Run{ID: 1, Key: RunKey{Shard: Whole}}
	summaries, err := ExtractTransform(src, known, day, func(Date) Window { return Window{} }, classifier)(context.Background(), run)
	if err != nil {
		t.Fatal(err)
	}
	if len(day.rows) != rows+1 {
		t.Fatalf("%d rows in the snapshot", len(day.rows))
	}
	for i, seq := range day.rows {
		if seq != int64(i+1) {
			t.Fatalf("snapshot row %d is seq %d", i, seq)
		}
	}
	if len(day.items) != rows/2 || len(day.rejects) != rows/2+1 {
		t.Fatalf("%d items, %d rejects", len(day.items), len(day.rejects))
	}
	// Batches of up to sellerBatch ids, flushed early when maxWaiting rows wait.
	fewest, most := (sellers+sellerBatch-1)/sellerBatch, (sellers+sellerBatch-1)/sellerBatch+rows/maxWaiting+1
	if known.ids != sellers || known.lookups < fewest || known.lookups > most || len(day.sellers) != sellers/2 {
		t.Fatalf("%d ids in %d lookups, %d sellers recorded", known.ids, known.lookups, len(day.sellers))
	}
	if fmt.Sprint(summaries) != fmt.Sprintf("[%d orders read %d items recorded, %d rejected]", rows+1, rows/2, rows/2+1) {
		t.Fatalf("summaries %q", summaries)
	}

	day, known = &dayRecorder{}, &evenSellers{}
	stop := errors.New("no rule")
	summaries, err = ExtractTransform(src, known, day, func(Date) Window { return Window{} },
		func(func(string) (Seller, bool, error)) Classifier {
			return func(SourceRow) (Split, *Reject, error) { return Split{}, nil, stop }
		})(context.Background(), run)
	if err != nil || len(day.rows) != rows+1 || known.ids != sellers || len(summaries) != 1 {
		t.Fatalf("err %v, %d rows, %d sellers, summaries %q", err, len(day.rows), known.ids, summaries)
	}
}

// A source query that gives no row says so with the window it was given
// (its parameters swapped, a status filter the platform renamed: an empty
// day read as one without orders, exit 0); a shard whose rows all belong
// to other shards, or a day of rows, does not.
func TestAnEmptyReadSaysWhichWindowItAsked(t *testing.T) {
	w := Window{Start: time.Date(2026, 11, 22, 16, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC)}
	id := "S1"
	other := Shard{Index: 0, Count: 2} // a shard that does not own S1
	if other.Owns(id) {
		other.Index = 1
	}
	for _, tc := range []struct {
		name  string
		src   seqSource
		shard Shard
		empty bool
	}{
		{"no row", nil, Whole, true},
		{"a row", seqSource{{Seq: 1, SellerID: &id}}, Whole, false},
		{"another shard's rows", seqSource{{Seq: 1, SellerID: &id}}, other, false},
	} {
		run := &Run{ID: 1, Key: RunKey{Shard: tc.shard}}
		summaries, err := ExtractTransform(tc.src, &evenSellers{}, &dayRecorder{}, func(Date) Window { return w },
			func(func(string) (Seller, bool, error)) Classifier {
				return func(SourceRow) (Split, *Reject, error) { return Split{}, nil, nil }
			})(context.Background(), run)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		said := strings.Contains(summaries[0], "the source query gave no row for the window 2026-11-22T16:00:00Z to 2026-11-23T16:00:00Z")
		if said != tc.empty {
			t.Errorf("%s: %q", tc.name, summaries[0])
		}
	}
}
