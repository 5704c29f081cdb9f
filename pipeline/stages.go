package pipeline

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
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
	// returns the count of rows, not counting those marked OtherShard.
	WriteSnapshot(ctx context.Context, runID int64, fill func(add func(SourceRow) error, addSeller func(Seller) error) error) (int64, error)
	// RunSellers returns the sellers recorded with the run's snapshot.
	RunSellers(ctx context.Context, runID int64) (map[string]Seller, error)
	// ReadSnapshot calls fn for each snapshot row, by Seq, but those
	// marked OtherShard.
	ReadSnapshot(ctx context.Context, runID int64, fn func(SourceRow) error) error
	// WriteItems records the run's items and rejects and StageTransform
	// done, in one transaction, replacing rejects of an earlier attempt.
	// Rows may come in any order: every row whose order number another row
	// of the snapshot shares (an OtherShard row included) is rejected
	// ("duplicate order_no: N rows share it"), whatever its own outcome, and
	// so is every item naming a provider transaction of a channel that
	// settles per transaction that another item or OtherShard row of that
	// channel names; an order already settled by another
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
// with the sellers they name, and the keys of the other shards' rows
// (SourceRow.OtherShardKeys).
func ExtractStage(src Source, sellers SellerSource, snap Snapshot, w func(Date) Window) StageFunc {
	return func(ctx context.Context, run *Run) (string, error) {
		var skipped int64
		progress := ProgressFrom(ctx)
		others, err := newOtherShards(ctx, run, snap)
		if err != nil {
			return "", fmt.Errorf("extract: %w", err)
		}
		n, err := snap.WriteSnapshot(ctx, run.ID, func(add func(SourceRow) error, addSeller func(Seller) error) error {
			ids := map[string]bool{}
			others.to(add, func(SourceRow) error { return nil })
			err := src.Orders(ctx, w(run.Key.Date), func(row SourceRow) error {
				if !run.Key.Shard.OwnsRow(row.SellerID, row.OrderNo) {
					skipped++
					return others.row(ctx, row)
				}
				if row.SellerID != nil {
					ids[*row.SellerID] = true
				}
				progress.Add(1)
				return add(row)
			})
			if err == nil {
				err = others.flush(ctx)
			}
			if err != nil {
				return err
			}
			carried, err := carriedSellers(ctx, run, snap)
			if err != nil {
				return err
			}
			only := map[string]bool{} // named by none of the rows
			for _, id := range carried {
				if !ids[id] {
					ids[id], only[id] = true, true
				}
			}
			list := make([]string, 0, len(ids))
			for id := range ids {
				list = append(list, id)
			}
			sort.Strings(list)
			return sellers.Sellers(ctx, list, func(s Seller) error {
				s.CarriedOnly = only[s.ID]
				return addSeller(s)
			})
		})
		if err != nil {
			return "", fmt.Errorf("extract: %w", err)
		}
		return readSummary(run, w(run.Key.Date), n, skipped), nil
	}
}

// readSummary is the extract stage's summary: n orders of the run's shard
// read, skipped of the other shards'. A source query that gave no row at
// all says so with the window it was given: its parameters swapped, or a
// filter of a status the platform renamed, read an empty day as a day
// without orders, exit 0, and once the date sent anything (a balance
// carried from before) it could not be read again (--reextract).
func readSummary(run *Run, w Window, n, skipped int64) string {
	read := fmt.Sprintf("%d orders read", n)
	if run.Key.Shard.Count > 1 {
		read = fmt.Sprintf("%d orders read for shard %s (%d belong to other shards)", n, run.Key.Shard, skipped)
	}
	if n == 0 && skipped == 0 {
		read += fmt.Sprintf(": the source query gave no row for the window %s to %s ($1 and $2); if the platform had orders then, "+
			"check the query (its parameters, its filters) before this date sends anything, then run it again with --reextract",
			w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339))
	}
	return read
}

// addOtherShard adds to a shard's snapshot the keys of a row of another
// shard's seller (SourceRow.OtherShardKeys): an order number or a provider
// transaction that rows of two shards share is then rejected in both, as
// an unsharded run rejects every row sharing it, whichever shard runs
// first.
func addOtherShard(add func(SourceRow) error, row SourceRow) error {
	if keys, ok := row.OtherShardKeys(); ok {
		return add(keys)
	}
	return nil
}

// TransformStage classifies the snapshot and records items and rejects.
// classifier is given the run's sellers.
func TransformStage(snap Snapshot, classifier func(map[string]Seller) Classifier) StageFunc {
	return func(ctx context.Context, run *Run) (string, error) {
		sellers, err := snap.RunSellers(ctx, run.ID)
		if err != nil {
			return "", fmt.Errorf("transform: %w", err)
		}
		inner, progress := shardClassifier(run, classifier(sellers)), ProgressFrom(ctx)
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

// ItemStream is the item side of a one-pass extract: an ItemWriter whose
// items may be dropped, leaving them to the transform stage.
type ItemStream interface {
	ItemWriter
	// Abandon drops the items of the pass: the transform stage records
	// them from the snapshot afterwards. why says what stopped them.
	Abandon(why error)
	// Abandoned reports whether the items were dropped (by Abandon, or by
	// the writer, whose fast way does not fit the day: an order number
	// shared, many rejects, an error on its side).
	Abandoned() bool
}

// DayCounts is what a one-pass extract recorded.
type DayCounts struct {
	Rows  int64       // snapshot rows
	Items *ItemCounts // nil when the items were not recorded in the pass
	// Left says why the items were left to the transform stage.
	Left error
}

// DayWriter records a run's snapshot and, in the same pass, its items.
type DayWriter interface {
	// WriteDay replaces the run's snapshot with the rows and sellers fill
	// adds and records StageExtract done, in one transaction, as
	// WriteSnapshot does. The items and rejects fill gives the stream are
	// recorded as WriteItems records them, with StageTransform done, in a
	// second transaction committed after the first: unless the stream was
	// abandoned, in which case nothing of them is recorded. An error from
	// the stream (or the stream abandoned) is never the snapshot's: fill
	// goes on adding rows. Only fill's own error (or the snapshot's) fails
	// the call, with nothing recorded.
	WriteDay(ctx context.Context, run *Run, fill func(add func(SourceRow) error, addSeller func(Seller) error, items ItemStream) error) (DayCounts, error)
}

// sellerBatch is how many new sellers ExtractTransform looks up at once;
// maxWaiting is how many rows at most wait for their sellers meanwhile.
const (
	sellerBatch = 1000
	maxWaiting  = 4096
)

// ExtractTransform is the extract and transform stages as one pass
// (Runner.Passes): every row the source gives is added to the snapshot
// and, once its seller is known, classified into the items, in the same
// stream; what the snapshot is and what the items are is exactly what the
// two stages record one after the other (the items are those the transform
// stage would compute from the snapshot: the same rows, sellers and
// classifier). The sellers are looked up in batches as new ones appear,
// rows waiting for theirs (at most maxWaiting). When the item side cannot
// go on (an order number shared, more rejects than the fast way holds, a
// classifier error), the snapshot is still recorded and the pass ends
// after extract: the transform stage then runs from the snapshot as usual.
func ExtractTransform(src Source, sellers SellerSource, day DayWriter, w func(Date) Window, classifier func(seller func(string) (Seller, bool, error)) Classifier) func(ctx context.Context, run *Run) ([]string, error) {
	return func(ctx context.Context, run *Run) ([]string, error) {
		var skipped int64
		progress := ProgressFrom(ctx)
		others, err := newOtherShards(ctx, run, day)
		if err != nil {
			return nil, fmt.Errorf("extract: %w", err)
		}
		counts, err := day.WriteDay(ctx, run, func(add func(SourceRow) error, addSeller func(Seller) error, items ItemStream) error {
			known := map[string]*Seller{} // nil: looked up, not found
			lookup := func(id string) (Seller, bool, error) {
				if s := known[id]; s != nil {
					return *s, true, nil
				}
				return Seller{}, false, nil
			}
			classify := shardClassifier(run, classifier(lookup))
			var waiting []SourceRow
			want := map[string]bool{}
			// carried: the sellers read for a balance carried from before,
			// held back until the rows say which of them they name.
			carried, named := map[string]bool{}, map[string]bool{}
			var held []Seller
			write := func(r SourceRow) {
				split, rej, err := classify(r)
				switch {
				case err != nil:
					items.Abandon(err)
				case rej != nil:
					rej.Seq = r.Seq
					err = items.Reject(*rej)
				default:
					split.Seq = r.Seq
					err = items.Split(split)
				}
				if err != nil {
					items.Abandon(err)
				}
			}
			flush := func() error {
				ids := make([]string, 0, len(want))
				for id := range want {
					ids = append(ids, id)
					known[id] = nil
				}
				sort.Strings(ids)
				clear(want)
				err := sellers.Sellers(ctx, ids, func(s Seller) error {
					known[s.ID] = &s
					if carried[s.ID] {
						held = append(held, s) // recorded at the end, marked
						return nil
					}
					return addSeller(s)
				})
				if err != nil {
					return err
				}
				for _, r := range waiting {
					if items.Abandoned() {
						break
					}
					write(r)
				}
				waiting = waiting[:0]
				return nil
			}
			// The sellers with only a balance carried from earlier dates
			// first: seen before the day's (sharedWatch), and recorded.
			ids, err := carriedSellers(ctx, run, day)
			if err != nil {
				return err
			}
			for _, id := range ids {
				want[id], carried[id] = true, true
			}
			if len(want) > 0 {
				if err := flush(); err != nil {
					return err
				}
			}
			// A row no run would settle is the run's to reject.
			others.to(add, func(r SourceRow) error {
				if !items.Abandoned() {
					write(r)
				}
				return nil
			})
			err = src.Orders(ctx, w(run.Key.Date), func(row SourceRow) error {
				if !run.Key.Shard.OwnsRow(row.SellerID, row.OrderNo) {
					skipped++
					return others.row(ctx, row)
				}
				progress.Add(1)
				if err := add(row); err != nil {
					return err
				}
				if row.SellerID != nil {
					if carried[*row.SellerID] {
						named[*row.SellerID] = true
					}
					if _, seen := known[*row.SellerID]; !seen {
						want[*row.SellerID] = true
					}
				}
				if items.Abandoned() {
					waiting = waiting[:0]
				} else if row.SellerID != nil && want[*row.SellerID] {
					waiting = append(waiting, row)
				} else {
					write(row)
				}
				if len(want) >= sellerBatch || len(waiting) >= maxWaiting {
					return flush()
				}
				return nil
			})
			if err == nil {
				err = others.flush(ctx)
			}
			if err == nil {
				err = flush()
			}
			if err != nil {
				return err
			}
			for _, s := range held {
				s.CarriedOnly = !named[s.ID]
				if err := addSeller(s); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("extract: %w", err)
		}
		read := readSummary(run, w(run.Key.Date), counts.Rows, skipped)
		if counts.Items == nil {
			return []string{read + "; items left to the transform stage: " + counts.Left.Error()}, nil
		}
		return []string{read, fmt.Sprintf("%d items recorded, %d rejected", counts.Items.Items, counts.Items.Rejects)}, nil
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
		// NULL or empty order numbers are not duplicates of each other:
		// each is rejected for what it is.
		if len(group) > 0 && (deref(r.OrderNo) == "" || deref(group[0].OrderNo) == "" || *r.OrderNo != *group[0].OrderNo) {
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

// RejectOf makes a reject of a raw row, keeping what can be read of it
// (RejectText of each value: the snapshot keeps the row whole).
func RejectOf(r SourceRow, reason string) Reject {
	return Reject{Seq: r.Seq, OrderNo: RejectText(deref(r.OrderNo)), SellerID: RejectText(deref(r.SellerID)),
		Provider: RejectText(deref(r.Provider)), Currency: RejectText(deref(r.Currency)),
		Amount: RejectText(deref(r.AmountMinor)), Refunded: RejectText(deref(r.RefundedMinor)), Reason: reason}
}

// MaxRejectText is the most characters a reject keeps of a raw value.
const MaxRejectText = 128

// RejectText is a raw value as a reject keeps it: valid UTF-8 (a byte
// that is not becomes U+FFFD; the ledger's text is UTF-8) and at most
// MaxRejectText characters (a longer value keeps its first 127 and "…"),
// so that no value of a bad row can keep its reject from being recorded
// (an index entry holds at most about 2,700 bytes). The ledger clips a
// value it reads back from the snapshot the same way.
func RejectText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= MaxRejectText {
		return s
	}
	n := 0
	for i := range s {
		if n == MaxRejectText-1 {
			return s[:i] + "…"
		}
		n++
	}
	return s
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
	// Holds are the items held for their sellers' accounts (counted in
	// Items and the totals too), as rejects with the hold's reason.
	Holds []Reject
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
	if s.SellerHold != "" {
		p.Holds = append(p.Holds, Reject{Seq: s.Seq, OrderNo: s.OrderNo, SellerID: s.SellerID, Provider: string(s.Channel),
			Currency: string(s.Currency), Reason: s.SellerHold})
	}
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
	return "SELECT * FROM (\n" + QueryBody(q) + "\n) AS q ORDER BY order_no NULLS FIRST"
}

// QueryBody is query without what may end it but cannot stand inside a
// subquery: its last semicolons and whatever follows them when that is
// only blanks and comments ("SELECT ...; -- the day's orders"), which a
// query run as it is accepts. What is left goes on lines of its own in a
// wrapping query: a -- comment it ends with then ends before the wrap.
func QueryBody(query string) string {
	q := strings.TrimSpace(query)
	for end := len(q); end > 0; {
		i := strings.LastIndexByte(q[:end], ';')
		if i < 0 {
			return q
		}
		if onlyComments(q[i+1:]) {
			q = strings.TrimSpace(q[:i]) // and any semicolon before it
			end = len(q)
			continue
		}
		end = i // a semicolon in a comment or a string: look further left
	}
	return q
}

// onlyComments reports whether s holds nothing but blanks and SQL
// comments (-- to the end of a line, /* to */).
func onlyComments(s string) bool {
	for {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
			return true
		case strings.HasPrefix(s, "--"):
			end := strings.IndexByte(s, '\n')
			if end < 0 {
				return true
			}
			s = s[end+1:]
		case strings.HasPrefix(s, "/*"):
			end := strings.Index(s[2:], "*/")
			if end < 0 {
				return false
			}
			s = s[2+end+2:]
		default:
			return false
		}
	}
}

// ShardReads is what a shard's extract asks the ledger (a Snapshot or
// DayWriter that has it) about the other shards of its date, to find the
// rows no run of the date would settle: a row of another shard whose run
// recorded its items before this read, without the row (the platform
// changed it since: a seller id corrected after a shard stopped with exit
// 3, read again with --reextract, to a seller of a shard that had paid
// already). That shard never reads the date again, so the row was settled
// by no run and was in no report (found by a review).
type ShardReads interface {
	// ShardsRead returns, by shard index, the runs of run's date in its
	// sharding, run aside, whose transform stage is done.
	ShardsRead(ctx context.Context, run *Run) (map[int]int64, error)
	// Holding returns which of the order numbers are held: an item of
	// any run, or a reject of the run given with it (runs[i] for
	// orderNos[i]).
	Holding(ctx context.Context, orderNos []string, runs []int64) (map[string]bool, error)
}

// CarriedSellers is what ExtractStage and ExtractTransform ask of their
// store, where it has it (the ledger does): the sellers with a balance
// carried from earlier dates still open.
//
// A run looks those of its shard up with the sellers of the day's rows, and
// records them with its snapshot, so that it pays a seller with only a
// carried balance that day to the account the platform gives it now, as
// it pays every other seller: it paid it to the account the last run that
// read the seller recorded, which the platform may have corrected since
// (an id that was another seller's, say), and a seller with none now was
// paid all the same. A seller the platform no longer gives keeps being
// paid to that last account, unless a run of the date records it for
// another seller (the ledger's EachPayoutCandidate: carried for a person).
type CarriedSellers interface {
	// CarriedSellers returns, sorted, the sellers with a carried
	// balance of a date up to d not netted into a payout yet.
	CarriedSellers(ctx context.Context, d Date) ([]string, error)
}

// carriedSellers is the store's CarriedSellers of run's date that run's
// shard owns (none when the store has no CarriedSellers).
func carriedSellers(ctx context.Context, run *Run, store any) ([]string, error) {
	c, ok := store.(CarriedSellers)
	if !ok {
		return nil, nil
	}
	ids, err := c.CarriedSellers(ctx, run.Key.Date)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(ids, func(id string) bool { return !run.Key.Shard.Owns(id) }), nil
}

// RowShard is the index of the shard of s's sharding that owns a row
// (OwnsRow).
func (s Shard) RowShard(sellerID, orderNo *string) int {
	for i := range s.count() {
		if (Shard{Index: i, Count: s.count()}).OwnsRow(sellerID, orderNo) {
			return i
		}
	}
	return 0
}

// unreadPage is how many rows of other shards a shard's extract asks the
// ledger about at a time.
const unreadPage = 1000

// otherShards is what a shard's extract does with the rows of the other
// shards: their keys go into its snapshot (addOtherShard), but for a row
// whose shard's run recorded its items without it (ShardReads): that row
// goes in whole, as the shard's own, for its transform to reject
// (shardClassifier). Unsharded, or with a store that cannot say, every
// row is another shard's.
type otherShards struct {
	run     *Run
	reads   ShardReads
	read    map[int]int64 // the shards whose runs recorded their items
	waiting []SourceRow   // rows of those shards, to ask about
	add     func(SourceRow) error
	lost    func(SourceRow) error // a row no run would settle, after add
}

// newOtherShards asks store which shards of the run's date recorded their
// items already, before the run reads the date.
func newOtherShards(ctx context.Context, run *Run, store any) (*otherShards, error) {
	o := &otherShards{run: run}
	if reads, ok := store.(ShardReads); ok && run.Key.Shard.count() > 1 {
		read, err := reads.ShardsRead(ctx, run)
		if err != nil {
			return nil, err
		}
		o.reads, o.read = reads, read
	}
	return o, nil
}

// to starts a read of the day: rows go to add, and then a row no run would
// settle to lost.
func (o *otherShards) to(add, lost func(SourceRow) error) {
	o.add, o.lost, o.waiting = add, lost, o.waiting[:0]
}

// row takes a row of another shard.
func (o *otherShards) row(ctx context.Context, r SourceRow) error {
	if len(o.read) == 0 || r.OrderNo == nil || *r.OrderNo == "" {
		return addOtherShard(o.add, r)
	}
	if _, read := o.read[o.run.Key.Shard.RowShard(r.SellerID, r.OrderNo)]; !read {
		return addOtherShard(o.add, r)
	}
	o.waiting = append(o.waiting, r)
	if len(o.waiting) >= unreadPage {
		return o.flush(ctx)
	}
	return nil
}

// flush asks about the rows waiting and adds them.
func (o *otherShards) flush(ctx context.Context) error {
	if len(o.waiting) == 0 {
		return nil
	}
	nos, runs := make([]string, len(o.waiting)), make([]int64, len(o.waiting))
	for i, r := range o.waiting {
		nos[i], runs[i] = *r.OrderNo, o.read[o.run.Key.Shard.RowShard(r.SellerID, r.OrderNo)]
	}
	held, err := o.reads.Holding(ctx, nos, runs)
	if err != nil {
		return fmt.Errorf("rows of other shards: %w", err)
	}
	for _, r := range o.waiting {
		if held[*r.OrderNo] {
			err = addOtherShard(o.add, r)
		} else if err = o.add(r); err == nil {
			err = o.lost(r)
		}
		if err != nil {
			return err
		}
	}
	o.waiting = o.waiting[:0]
	return nil
}

// shardClassifier rejects, for a shard's run, a row of its snapshot that
// another shard owns (put there whole by otherShards: that shard's run
// recorded its items without it), and classifies the others with inner.
func shardClassifier(run *Run, inner Classifier) Classifier {
	if run.Key.Shard.count() <= 1 {
		return inner
	}
	return func(r SourceRow) (Split, *Reject, error) {
		if run.Key.Shard.OwnsRow(r.SellerID, r.OrderNo) {
			return inner(r)
		}
		rej := RejectOf(r, fmt.Sprintf("settled by no run: its seller's shard %d/%d recorded its items without this order, which the platform changed since (run %s shard %s read it); a person settles it",
			run.Key.Shard.RowShard(r.SellerID, r.OrderNo), run.Key.Shard.Count, run.Key.Date, run.Key.Shard))
		return Split{}, &rej, nil
	}
}
