package ledger_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// rowsSource is a pipeline.Source giving fixed rows.
type rowsSource struct {
	rows []pipeline.SourceRow
	err  error // returned after the rows
}

func (s rowsSource) Orders(_ context.Context, _ pipeline.Window, fn func(pipeline.SourceRow) error) error {
	for _, r := range s.rows {
		if err := fn(r); err != nil {
			return err
		}
	}
	return s.err
}

// oneSeller knows the seller S1 only.
type oneSeller struct{}

func (oneSeller) Sellers(_ context.Context, ids []string, fn func(pipeline.Seller) error) error {
	for _, id := range ids {
		if id == "S1" {
			if err := fn(pipeline.Seller{ID: id, Name: "one"}); err != nil {
				return err
			}
		}
	}
	return nil
}

// pass runs extract and transform as one pass (ExtractTransform), then the
// transform stage when the pass left the items to it, as the runner does.
// It returns the summaries and whether the items were recorded in the pass.
func pass(t *testing.T, l *ledger.Ledger, d pipeline.Date, rows []row) (*pipeline.Run, string, bool) {
	t.Helper()
	ctx := context.Background()
	run := openRun(t, l, d)
	classifier := func(seller func(string) (pipeline.Seller, bool, error)) pipeline.Classifier {
		inner := classify(d)
		return func(r pipeline.SourceRow) (pipeline.Split, *pipeline.Reject, error) {
			if _, known, err := seller(*r.SellerID); err != nil || !known {
				t.Fatalf("row %d classified before its seller was known (%v)", r.Seq, err)
			}
			return inner(r)
		}
	}
	summaries, err := pipeline.ExtractTransform(rowsSource{rows: sourceRows(d, rows)}, oneSeller{}, l,
		func(pipeline.Date) pipeline.Window { return pipeline.Window{} }, classifier)(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	inPass := len(summaries) == 2
	if !inPass {
		s, err := pipeline.TransformStage(l, func(m map[string]pipeline.Seller) pipeline.Classifier {
			if m["S1"].Name != "one" {
				t.Fatalf("sellers recorded: %v", m)
			}
			return classify(d)
		})(ctx, run)
		if err != nil {
			t.Fatal(err)
		}
		summaries = append(summaries, s)
	}
	return run, summaries[1], inPass
}

// The one pass records exactly what extract then transform record: the
// same snapshot, sellers, items and rejects, duplicates and orders settled
// elsewhere included. A day whose order numbers are all distinct and new is
// recorded in the pass; one with a shared order number, or more rejects
// than the direct way holds, has its items recorded by the transform stage
// from the snapshot.
func TestExtractTransformPassRecordsWhatTheStagesRecord(t *testing.T) {
	days := []struct {
		name   string
		rows   []row
		inPass bool
	}{
		{"clean", []row{{sp("E"), "10"}, {sp("F"), "10"}}, true},
		{"item shares with item, reject and another run", []row{
			{sp("A"), "10"}, {sp("B"), "10"}, {nil, "10"}, {sp("A"), "10"}, {nil, "10"}, {sp(""), "10"}, {sp(""), "10"},
			{sp("C"), "bad"}, {sp("C"), "10"}, {sp("E"), "10"}, {sp("F"), "10"}, {sp("F"), "10"}, {sp("G"), "10"}}, false},
		{"only rejects share", []row{
			{sp("H"), "10"}, {sp("I"), "bad"}, {sp("H"), "bad"}, {sp("J"), "10"}, {nil, "1"}, {nil, "1"}, {sp("K"), "x"}, {sp("K"), "y"}}, false},
		{"rejects sharing nothing", []row{{sp("L"), "10"}, {sp("M"), "bad"}, {nil, "1"}, {sp("N"), "10"}, {sp(""), "10"}}, true},
		{"settled by an earlier run", []row{{sp("E"), "10"}, {sp("X"), "10"}}, false},
	}
	stages, _ := open(t)
	passed, _ := open(t)
	for i, day := range days {
		d := pipeline.Date{Year: 2026, Month: 11, Day: 10 + i}
		want, wantSummary := transform(t, stages, d, day.rows)
		got, summary, inPass := pass(t, passed, d, day.rows)
		wr, wi := outcome(t, stages, want)
		gr, gi := outcome(t, passed, got)
		if gr != wr || gi != wi || summary != wantSummary {
			t.Fatalf("%s: the pass recorded\nrejects %s\nitems %s\n%s\nthe stages\nrejects %s\nitems %s\n%s", day.name, gr, gi, summary, wr, wi, wantSummary)
		}
		if inPass != day.inPass {
			t.Fatalf("%s: items recorded in the pass: %v, want %v", day.name, inPass, day.inPass)
		}
		if a, b := snapshotOf(t, stages, want.ID), snapshotOf(t, passed, got.ID); a != b {
			t.Fatalf("%s: snapshot\n%s\nwant\n%s", day.name, b, a)
		}
		var done string
		if err := passed.DB().Get(&done, `SELECT array_to_string(stages_done, ',') FROM runs WHERE id = $1`, got.ID); err != nil || done != "extract,transform" {
			t.Fatalf("%s: stages done %q (%v)", day.name, done, err)
		}
	}
	// More rejects than the direct way holds: left to the transform stage.
	defer ledger.SetMaxHeldRejects(2)()
	rows := []row{{sp("P"), "10"}, {sp("Q"), "bad"}, {nil, "1"}, {sp("R"), "10"}, {sp(""), "10"}}
	d := pipeline.Date{Year: 2026, Month: 11, Day: 20}
	want, _ := transform(t, stages, d, rows)
	got, _, inPass := pass(t, passed, d, rows)
	wr, wi := outcome(t, stages, want)
	if gr, gi := outcome(t, passed, got); gr != wr || gi != wi || inPass {
		t.Fatalf("many rejects: %s / %s (in the pass: %v), want %s / %s", gr, gi, inPass, wr, wi)
	}
}

func snapshotOf(t *testing.T, l *ledger.Ledger, runID int64) string {
	t.Helper()
	var rows []string
	if err := l.DB().Select(&rows, `SELECT concat_ws('|', seq, order_no, amount_minor, paid_at) FROM source_rows WHERE run_id = $1 ORDER BY seq`, runID); err != nil {
		t.Fatal(err)
	}
	var sellers []string
	if err := l.DB().Select(&sellers, `SELECT seller_id || ':' || name FROM run_sellers WHERE run_id = $1 ORDER BY seller_id`, runID); err != nil {
		t.Fatal(err)
	}
	return strings.Join(rows, "\n") + "\nsellers " + strings.Join(sellers, ",")
}

// A source that fails records nothing: no snapshot, no items, extract not
// done. A classifier error leaves the snapshot recorded and the items to
// the transform stage (which then stops on the same error).
func TestExtractTransformPassAllOrNothing(t *testing.T) {
	l, _ := open(t)
	ctx := context.Background()
	d := pipeline.Date{Year: 2026, Month: 11, Day: 5}
	run := openRun(t, l, d)
	window := func(pipeline.Date) pipeline.Window { return pipeline.Window{} }
	lost := errors.New("connection lost")
	_, err := pipeline.ExtractTransform(rowsSource{rows: sourceRows(d, []row{{sp("A"), "10"}}), err: lost}, oneSeller{}, l, window,
		func(func(string) (pipeline.Seller, bool, error)) pipeline.Classifier { return classify(d) })(ctx, run)
	if !errors.Is(err, lost) {
		t.Fatalf("err %v", err)
	}
	var n int
	if err := l.DB().Get(&n, `SELECT (SELECT count(*) FROM source_rows WHERE run_id = $1) + (SELECT count(*) FROM items WHERE run_id = $1)
		+ (SELECT count(*) FROM run_sellers WHERE run_id = $1) + (SELECT cardinality(stages_done) FROM runs WHERE id = $1)`, run.ID); err != nil || n != 0 {
		t.Fatalf("%d rows or stages recorded (%v)", n, err)
	}

	noRule := pipeline.Errorf(pipeline.KindUsage, "rules", "no commission rule")
	summaries, err := pipeline.ExtractTransform(rowsSource{rows: sourceRows(d, []row{{sp("A"), "10"}, {sp("B"), "10"}})}, oneSeller{}, l, window,
		func(func(string) (pipeline.Seller, bool, error)) pipeline.Classifier {
			return func(pipeline.SourceRow) (pipeline.Split, *pipeline.Reject, error) {
				return pipeline.Split{}, nil, noRule
			}
		})(ctx, run)
	if err != nil || len(summaries) != 1 || !strings.Contains(summaries[0], "2 orders read; items left to the transform stage: ") {
		t.Fatalf("summaries %q, err %v", summaries, err)
	}
	if err := l.DB().Get(&n, `SELECT (SELECT count(*) FROM source_rows WHERE run_id = $1) * 10 + (SELECT count(*) FROM items WHERE run_id = $1)`, run.ID); err != nil || n != 20 {
		t.Fatalf("snapshot*10 + items = %d (%v)", n, err)
	}
	var done string
	if err := l.DB().Get(&done, `SELECT array_to_string(stages_done, ',') FROM runs WHERE id = $1`, run.ID); err != nil || done != "extract" {
		t.Fatalf("stages done %q (%v)", done, err)
	}
}
