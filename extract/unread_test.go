package extract_test

import (
	"context"
	"errors"
	"iter"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/extract"
	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/pipeline"
)

// seq gives the order numbers of a snapshot as the ledger gives them,
// then err (nil: none).
func seq(nos []string, err error) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for _, n := range nos {
			if !yield(n, nil) {
				return
			}
		}
		if err != nil {
			yield("", err)
		}
	}
}

// unreadQuery is a source query of the given order numbers (text) in the
// window, and one row outside it that is no order of it.
const unreadQuery = `
	SELECT * FROM (VALUES
		('b', 'S1', 'infiniapay', NULL, 'USD', 1, 0, 'c', $1::timestamptz, $1::timestamptz),
		('a', 'S1', 'infiniapay', NULL, 'USD', 1, 0, 'c', $1, $1),
		('B', 'S1', 'infiniapay', NULL, 'USD', 1, 0, 'c', $1, $1),
		('10', 'S1', 'infiniapay', NULL, 'USD', 1, 0, 'c', $1, $1),
		('9', 'S1', 'infiniapay', NULL, 'USD', 1, 0, 'c', $1, $1),
		('9', 'S2', 'infiniapay', NULL, 'USD', 1, 0, 'c', $1, $1),
		('ä', 'S1', 'infiniapay', NULL, 'USD', 1, 0, 'c', $1, $1),
		(NULL, 'S1', 'infiniapay', NULL, 'USD', 1, 0, 'c', $1, $1),
		('outside', 'S1', 'infiniapay', NULL, 'USD', 1, 0, 'c', $2, $2)
	) AS v (order_no, seller_id, provider, provider_txn_id, currency, amount_minor, refunded_minor, category, paid_at, confirmed_at)
	WHERE v.confirmed_at >= $1 AND v.confirmed_at < $2`

// Unread names, once each and in byte order, the order numbers the query
// gives for the window that the snapshot lacks, whatever the database's
// collation ("B" before "a", "10" before "9"), an order number the query
// gives twice once, a NULL one never; a snapshot that is not in byte
// order, or fails, is an error, never a finding.
func TestUnreadMergesTheQueryWithTheSnapshot(t *testing.T) {
	db := pgtest.DB(t)
	src := &extract.Source{DB: db, Name: "test", Query: unreadQuery}
	w := pipeline.Window{Start: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)}
	unread := func(snapshot iter.Seq2[string, error]) ([]string, int64, error) {
		var got []string
		n, err := src.Unread(context.Background(), w, snapshot, func(no string) error {
			got = append(got, no)
			return nil
		})
		return got, n, err
	}
	for _, c := range []struct {
		snapshot []string
		want     []string
	}{
		{nil, []string{"10", "9", "B", "a", "b", "ä"}},
		{[]string{"10", "9", "B", "a", "b", "ä"}, nil},
		{[]string{"0", "10", "10", "B", "b", "zz"}, []string{"9", "a", "ä"}},
		{[]string{"9", "a"}, []string{"10", "B", "b", "ä"}},
	} {
		got, n, err := unread(seq(c.snapshot, nil))
		if err != nil || n != 7 || !slices.Equal(got, c.want) {
			t.Errorf("snapshot %q: unread %q of %d rows (%v), want %q of 7", c.snapshot, got, n, err, c.want)
		}
	}
	// A number of the query's own type: its text, as the extract reads it.
	ints := &extract.Source{DB: db, Name: "test", Query: `SELECT * FROM (VALUES (9::bigint, 'S1', 'infiniapay', NULL, 'USD', 1, 0, 'c', $1::timestamptz, $2::timestamptz), (10, 'S1', 'infiniapay', NULL, 'USD', 1, 0, 'c', $1, $1))
		AS v (order_no, seller_id, provider, provider_txn_id, currency, amount_minor, refunded_minor, category, paid_at, confirmed_at)`}
	var got []string
	if _, err := ints.Unread(context.Background(), w, seq([]string{"10"}, nil), func(no string) error { got = append(got, no); return nil }); err != nil || !slices.Equal(got, []string{"9"}) {
		t.Errorf("bigint order numbers: unread %q (%v), want [9]", got, err)
	}

	if _, _, err := unread(seq([]string{"a", "B"}, nil)); err == nil || !strings.Contains(err.Error(), "not in byte order") {
		t.Errorf("a snapshot out of order: %v; want an error", err)
	}
	boom := errors.New("ledger gone")
	if _, _, err := unread(seq([]string{"10"}, boom)); !errors.Is(err, boom) {
		t.Errorf("a snapshot that fails: %v, want its error", err)
	}
}
