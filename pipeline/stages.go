package pipeline

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// Source streams one business day's orders from the platform.
type Source interface {
	// Orders calls fn for every row the source query returns for w, in the
	// query's order, with Seq numbering them from 1. It stops at fn's first
	// error and returns it.
	Orders(ctx context.Context, w Window, fn func(SourceRow) error) error
}

// SellerSource looks sellers up on the platform.
type SellerSource interface {
	// Sellers calls fn for each of the sellers named by ids that the
	// platform knows, in any order.
	Sellers(ctx context.Context, ids []string, fn func(Seller) error) error
}

// ItemWriter receives the outcome of the transform stage, row by row.
type ItemWriter interface {
	Split(Split) error
	Reject(Reject) error
}

// ItemCounts is what the transform stage recorded.
type ItemCounts struct {
	Items   int64
	Rejects int64 // including orders already settled by another run
}

// Snapshot is the ledger's store for a run's input and items.
type Snapshot interface {
	// WriteSnapshot replaces the run's snapshot with the rows and sellers
	// fill adds and records StageExtract done, in one transaction. It
	// returns the count of rows.
	WriteSnapshot(ctx context.Context, runID int64, fill func(add func(SourceRow) error, addSeller func(Seller) error) error) (int64, error)
	// RunSellers returns the sellers recorded with the run's snapshot.
	RunSellers(ctx context.Context, runID int64) (map[string]Seller, error)
	// ReadSnapshot calls fn for each snapshot row, by Seq.
	ReadSnapshot(ctx context.Context, runID int64, fn func(SourceRow) error) error
	// WriteItems records the run's items and rejects and StageTransform
	// done, in one transaction, replacing rejects of an earlier attempt.
	// Rows may come in any order: every row whose order number another row
	// of the snapshot shares is rejected ("duplicate order_no: N rows share
	// it"), whatever its own outcome; an order already settled by another
	// run becomes a reject naming it. fill may be called a second time
	// (from the start) when a first, faster way finds an order number
	// shared: it must give the same rows again.
	WriteItems(ctx context.Context, run *Run, fill func(ItemWriter) error) (ItemCounts, error)
}

// Classifier validates a row and computes its split. It returns a reject for
// bad data, and an error only for what must stop the run (a configuration
// error, such as no commission rule for the date).
type Classifier func(row SourceRow) (Split, *Reject, error)

// ExtractStage reads the day's orders of the run's shard into the snapshot,
// with the sellers they name.
func ExtractStage(src Source, sellers SellerSource, snap Snapshot, w func(Date) Window) StageFunc {
	return func(ctx context.Context, run *Run) (string, error) {
		var skipped int64
		progress := ProgressFrom(ctx)
		n, err := snap.WriteSnapshot(ctx, run.ID, func(add func(SourceRow) error, addSeller func(Seller) error) error {
			ids := map[string]bool{}
			err := src.Orders(ctx, w(run.Key.Date), func(row SourceRow) error {
				if !run.Key.Shard.Owns(deref(row.SellerID)) {
					skipped++
					return nil
				}
				if row.SellerID != nil {
					ids[*row.SellerID] = true
				}
				progress.Add(1)
				return add(row)
			})
			if err != nil {
				return err
			}
			list := make([]string, 0, len(ids))
			for id := range ids {
				list = append(list, id)
			}
			sort.Strings(list)
			return sellers.Sellers(ctx, list, addSeller)
		})
		if err != nil {
			return "", fmt.Errorf("extract: %w", err)
		}
		if run.Key.Shard.Count > 1 {
			return fmt.Sprintf("%d orders read for shard %s (%d belong to other shards)", n, run.Key.Shard, skipped), nil
		}
		return fmt.Sprintf("%d orders read", n), nil
	}
}

// TransformStage classifies the snapshot and records items and rejects.
// classifier is given the run's sellers.
func TransformStage(snap Snapshot, classifier func(map[string]Seller) Classifier) StageFunc {
	return func(ctx context.Context, run *Run) (string, error) {
		sellers, err := snap.RunSellers(ctx, run.ID)
		if err != nil {
			return "", fmt.Errorf("transform: %w", err)
		}
		inner, progress := classifier(sellers), ProgressFrom(ctx)
		classify := func(row SourceRow) (Split, *Reject, error) {
			progress.Add(1)
			return inner(row)
		}
		// One pass over the snapshot as read, row by row: WriteItems finds
		// duplicated order numbers set-wise, so nothing is sorted.
		counts, err := snap.WriteItems(ctx, run, func(w ItemWriter) error {
			return snap.ReadSnapshot(ctx, run.ID, func(r SourceRow) error {
				split, rej, err := classify(r)
				if err != nil {
					return err
				}
				if rej != nil {
					rej.Seq = r.Seq
					return w.Reject(*rej)
				}
				split.Seq = r.Seq
				return w.Split(split)
			})
		})
		if err != nil {
			return "", fmt.Errorf("transform: %w", err)
		}
		return fmt.Sprintf("%d items recorded, %d rejected", counts.Items, counts.Rejects), nil
	}
}

// Settle classifies a stream of rows ordered by order_no and sends each to
// w as a split or a reject. Every row sharing an order number with another
// is rejected: with two versions of an order, neither can be trusted.
func Settle(rows func(func(SourceRow) error) error, classify Classifier, w ItemWriter) error {
	var group []SourceRow
	flush := func() error {
		defer func() { group = group[:0] }()
		if len(group) > 1 {
			for _, r := range group {
				if err := w.Reject(RejectOf(r, fmt.Sprintf("duplicate order_no: %d rows share it", len(group)))); err != nil {
					return err
				}
			}
			return nil
		}
		for _, r := range group {
			split, rej, err := classify(r)
			if err != nil {
				return err
			}
			if rej != nil {
				rej.Seq = r.Seq
				err = w.Reject(*rej)
			} else {
				split.Seq = r.Seq
				err = w.Split(split)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	err := rows(func(r SourceRow) error {
		// NULL order numbers are not duplicates of each other.
		if len(group) > 0 && (r.OrderNo == nil || group[0].OrderNo == nil || *r.OrderNo != *group[0].OrderNo) {
			if err := flush(); err != nil {
				return err
			}
		}
		group = append(group, r)
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// RejectOf makes a reject of a raw row, keeping what can be read of it.
func RejectOf(r SourceRow, reason string) Reject {
	return Reject{Seq: r.Seq, OrderNo: deref(r.OrderNo), SellerID: deref(r.SellerID), Provider: deref(r.Provider),
		Currency: deref(r.Currency), Amount: deref(r.AmountMinor), Refunded: deref(r.RefundedMinor), Reason: reason}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Totals sums items by channel and currency, for plans and status.
type Totals struct {
	Channel    Channel
	Currency   Currency
	Orders     int64
	Gross      int64
	Refunded   int64
	Commission int64
	Seller     int64
}

// Balanced reports whether the totals conserve money.
func (t Totals) Balanced() bool {
	return t.Gross == t.Refunded+t.Commission+t.Seller
}

// Plan accumulates what a dry run would record. It implements ItemWriter.
type Plan struct {
	totals  map[[2]string]*Totals
	Rejects []Reject
	Items   int64
}

// Split adds a split to the plan's totals.
func (p *Plan) Split(s Split) error {
	if p.totals == nil {
		p.totals = map[[2]string]*Totals{}
	}
	k := [2]string{string(s.Channel), string(s.Currency)}
	t := p.totals[k]
	if t == nil {
		t = &Totals{Channel: s.Channel, Currency: s.Currency}
		p.totals[k] = t
	}
	p.Items++
	t.Orders++
	var err error
	for _, add := range []struct {
		dst *int64
		v   int64
	}{{&t.Gross, s.Amount}, {&t.Refunded, s.Refunded}, {&t.Commission, s.Commission}, {&t.Seller, s.SellerShare}} {
		if *add.dst, err = Add(*add.dst, add.v); err != nil {
			return fmt.Errorf("totals for %s %s: %w", s.Channel, s.Currency, err)
		}
	}
	return nil
}

// Reject adds a reject to the plan.
func (p *Plan) Reject(r Reject) error {
	p.Rejects = append(p.Rejects, r)
	return nil
}

// Totals returns the plan's totals sorted by channel and currency.
func (p *Plan) Totals() []Totals {
	out := make([]Totals, 0, len(p.totals))
	for _, t := range p.totals {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Channel != out[j].Channel {
			return out[i].Channel < out[j].Channel
		}
		return out[i].Currency < out[j].Currency
	})
	return out
}

// SortedSourceQuery wraps a source query so that its rows come ordered by
// order_no (NULL first), as Settle needs for a dry run that reads the
// platform directly.
func SortedSourceQuery(q string) string {
	q = strings.TrimRight(strings.TrimSpace(q), ";")
	return "SELECT * FROM (\n" + q + "\n) AS q ORDER BY order_no NULLS FIRST"
}
