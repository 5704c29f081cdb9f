package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/extract"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// lateOrders looks, for the dates a run of o re-checks (the --recheck-days
// before its date) and for its own date when it was read before this
// invocation (own), at what the platform's source query gives now in the
// window the date was read with against what the date's runs read
// (lateOrdersOf): orders written into the window after the date was read
// (README, "Rows written into a settled window afterwards"), settled by
// no run, which nothing else says (an order the ledger holds an item of,
// settled by another date's run before the platform moved it into the
// window, is counted, not named); orders read whose columns that decide
// money changed since (paid, or rejected, on what was read); and orders
// settled on the date that the platform gives for no window now. Each
// named is a problem for a person (exit 4: problem); the check's own
// failure (the platform not answering) is failure, which the caller makes
// a warning and exit 1. Neither stops or changes the run. What it names of
// each date compared is recorded in the ledger with the look (runID's, 0
// if the invocation has no run recorded): settle status shows it, and the
// date's mismatches.csv once written again (ledger.LateOrdersLook).
//
// Only shard 0 of a sharded run looks (a date's comparison is the whole
// date's, and every pod of an Indexed Job would say the same), and only
// with --late-orders (the default; without it, one line says so). A date is
// compared only when that means something: every shard of its one
// sharding has its extract recorded (an order of a shard's seller is read
// only if that shard read it), in one time zone, and the source query
// given now is the one it was read with (the runs' config_hash, of their
// zone and the query's text); else one line says why it is not.
func (cfg *config) lateOrders(ctx context.Context, l *ledger.Ledger, src *sqlx.DB, o *runOptions, own bool, runID int64) (problem, failure error) {
	if o.key.Shard.Index != 0 {
		return nil, nil
	}
	if !o.lateOrders {
		cfg.note("orders written into the windows of dates already read, changed or gone since, not looked for (--late-orders=false)",
			"late_orders_compared", false)
		return nil, nil
	}
	var dates []pipeline.Date
	for i := o.recheckDays; i >= 1; i-- {
		dates = append(dates, o.key.Date.AddDays(-i))
	}
	if own {
		dates = append(dates, o.key.Date)
	}
	p := &pipeline.Problems{}
	var failures []error
	source := &extract.Source{DB: src, Query: o.query, Name: o.queryName}
	var found lateFound
	for _, d := range dates {
		f, err := cfg.lateOrdersOf(ctx, l, source, d, p, runID)
		found.add(f)
		if err != nil {
			// One date's comparison failing stops none of the others'.
			failures = append(failures, fmt.Errorf("look for orders written into %s's window after it was read: %w", d, err))
		}
		if ctx.Err() != nil {
			break
		}
	}
	if p.Count() > 0 {
		var parts []string
		if found.unread > 0 {
			parts = append(parts, fmt.Sprintf("%d written into them since, which no run read", found.unread))
		}
		if found.changed > 0 {
			parts = append(parts, fmt.Sprintf("%d changed since read in columns that decide money", found.changed))
		}
		if found.gone > 0 {
			parts = append(parts, fmt.Sprintf("%d settled and no longer given", found.gone))
		}
		p.Summary = fmt.Sprintf("%d orders the platform gives otherwise now in windows of dates already read than they were read: %s", p.Count(), strings.Join(parts, ", "))
		p.Rest = restLateOrders
	}
	return p.NeedsPerson(), errors.Join(failures...)
}

// lateOrdersOf compares date d (lateOrders), adding to p what it finds once
// the comparison is through: the order numbers found before a failure are
// not to be trusted. It returns how many orders it named of each kind.
//
// Of the orders the query gives now that no run of d read (written late),
// those the ledger holds an item of (settled by another date's run before
// the platform moved them into the window) are counted, the others named.
// Of the orders d read, those whose columns that decide money
// (extract.MoneyColumns) the query gives otherwise now (changed) are named
// each, with each column old -> new: settled (an item of it), its seller
// was paid or is being paid on what was read; rejected when read (no item,
// d's transform recorded), no run reads it again, and a change may have
// mended its reject; not classified yet, d's run settles it on what was
// read. Of those the query no longer gives for the window (gone: deleted,
// moved out of it, dropped by the query's filter), those settled on d
// that the query gives for no window now either (extract.Source.Given,
// asked of them alone) are named (its seller was paid for an order the
// platform no longer has: a person's look); the rest are counted: moved
// to another day (which reads it and rejects it as settled, or whose
// comparison counts it), rejected when read, or settled on another date.
//
// Each order named is recorded in the ledger as it is found, in the
// look's transaction (ledger.LateOrdersLook), committed with the look once
// the comparison is through, else rolled back. A record that fails ends
// no comparison: the orders are named all the same, and the failure is
// returned with found (the look's failure: exit 1).
func (cfg *config) lateOrdersOf(ctx context.Context, l *ledger.Ledger, source *extract.Source, d pipeline.Date, p *pipeline.Problems, runID int64) (found lateFound, err error) {
	runs, err := l.RunsOn(ctx, d)
	if err != nil {
		return found, err
	}
	if len(runs) == 0 {
		return found, nil // never run: the nightly run's look for missed dates says so
	}
	ids, why := comparable(runs, source.Query)
	if why != "" {
		cfg.note(fmt.Sprintf("%s: orders written into its window after it was read not looked for: %s", d, why),
			"date", d.String(), "late_orders_compared", false)
		return found, nil
	}
	loc, err := time.LoadLocation(runs[0].TimeZone)
	if err != nil {
		return found, fmt.Errorf("its runs' time zone %q: %w", runs[0].TimeZone, err)
	}
	transformed := true
	for _, r := range runs {
		transformed = transformed && r.Done(pipeline.StageTransform)
	}
	look := l.LookForLateOrders(d, runID)
	defer look.Abandon()
	var (
		record    []ledger.LateOrder // of a batch, the orders named
		recordErr error              // the first failure to record
	)
	start := time.Now()
	var (
		first    []string // the first few lines, held until the comparison is through
		settled  int      // written late, settled by another date's run: the platform moved them since
		gone     int      // read, no longer given
		goneElse int      // of gone, not settled on d
		moved    int      // of gone, settled on d, given for another window now
		batch    []extract.Difference
		paidGone []extract.Difference // of batch, gone and settled on d
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		nos := make([]string, len(batch))
		for i, f := range batch {
			nos[i] = f.OrderNo
		}
		items, err := l.ItemsOf(ctx, nos)
		if err != nil {
			return err
		}
		for _, f := range batch {
			it, has := items[f.OrderNo]
			var line string
			switch f.Kind {
			case extract.WrittenLate:
				if has {
					settled++
					continue
				}
				found.unread++
				record = append(record, lateOrder(f, ledger.LateOrderNotRead, it, false))
				line = fmt.Sprintf("order %s: written into %s's window after %s was read: no run reads it; have the platform date it into an open day, or settle it by hand", f.OrderNo, d, d)
			case extract.Changed:
				found.changed++
				state := ledger.LateOrderUnclassified
				switch {
				case has:
					state = ledger.LateOrderSettled
				case transformed:
					state = ledger.LateOrderRejected
				}
				record = append(record, lateOrder(f, state, it, has))
				what := fmt.Sprintf("order %s: changed on the platform since %s was read (%s)", f.OrderNo, d, f.Changes())
				switch {
				case has:
					line = fmt.Sprintf("%s: settled on %s on what its run read (seller %s, %s): its seller was paid, or is being paid, on that; settle the difference by hand, with the platform", what, it.Date, it.SellerID, it.Gross)
				case transformed:
					line = fmt.Sprintf("%s: rejected when read (no item of it), and no run reads it again: if the change mends its reject, run %s with --reextract if it sent nothing yet, else settle it by hand", what, d)
				default:
					line = fmt.Sprintf("%s: not classified yet, and %s's run settles it on what was read: run %s with --reextract if it sent nothing yet, else settle the difference by hand", what, d, d)
				}
			case extract.Gone:
				gone++
				if !has || it.Date != d {
					goneElse++
					continue
				}
				paidGone = append(paidGone, f)
				continue
			}
			if len(first) < pipeline.ProblemsListed {
				first = append(first, line)
			}
		}
		batch = batch[:0]
		if len(paidGone) > 0 {
			// Settled on d and gone from its window: moved to another day
			// (which reads it, or whose comparison counts it, settled here
			// once) if the platform still gives it for some window.
			nos := make([]string, len(paidGone))
			for i, f := range paidGone {
				nos[i] = f.OrderNo
			}
			given, err := source.Given(ctx, nos)
			if err != nil {
				return err
			}
			for _, f := range paidGone {
				if given[f.OrderNo] {
					moved++
					continue
				}
				it := items[f.OrderNo]
				found.gone++
				record = append(record, lateOrder(f, ledger.LateOrderSettled, it, true))
				if len(first) < pipeline.ProblemsListed {
					first = append(first, fmt.Sprintf("order %s: settled on %s (seller %s, %s), and the platform's source query no longer gives it, for %s's window or any other (deleted, or left out by the query's filter: a status changed since, say): "+
						"its seller was paid, or is being paid, for it; see that the platform still means it paid, else take back by hand what its late refunds have not "+
						"(settle status --date %s --order %s shows the clawbacks taken)", f.OrderNo, d, it.SellerID, it.Gross, d, d, f.OrderNo))
				}
			}
			paidGone = paidGone[:0]
		}
		if recordErr == nil {
			recordErr = look.Record(ctx, record)
		}
		record = record[:0]
		return nil
	}
	rows, err := source.Compare(ctx, pipeline.WindowOf(d, loc), l.SnapshotRows(ctx, ids), func(f extract.Difference) error {
		batch = append(batch, f)
		if len(batch) == lateOrdersBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if errors.Is(err, extract.ErrNotComparable) {
		cfg.note(fmt.Sprintf("%s: orders written into its window after it was read not looked for: %v", d, err),
			"date", d.String(), "late_orders_compared", false)
		return lateFound{}, nil
	}
	if err != nil {
		return lateFound{}, err
	}
	if recordErr == nil {
		recordErr = look.Done(ctx)
	}
	if recordErr != nil {
		recordErr = fmt.Errorf("what it found not recorded in the ledger (settle status does not show it): %w", recordErr)
	}
	if found.total() == 0 && settled == 0 && gone == 0 {
		return found, recordErr // a date the platform gives as it was read says nothing
	}
	for _, line := range first {
		p.Add(line)
	}
	p.Total = p.Count() + found.total() - len(first)
	also := ""
	if settled > 0 {
		also = fmt.Sprintf("; %d more settled by another date's run (the platform moved them into the window since: not named)", settled)
	}
	if found.changed > 0 {
		also += fmt.Sprintf("; %d read with other columns that decide money than it gives now (named)", found.changed)
	}
	if gone > 0 {
		also += fmt.Sprintf("; %d read that it no longer gives for the window (%d settled on %s and given for no window now, named; %d settled on %s and moved to another day, %d rejected when read or settled on another date, not named)",
			gone, found.gone, d, moved, d, goneElse)
	}
	cfg.note(fmt.Sprintf("%s: the source query gives %d orders for its window now, %d of them read by no run of it%s (compared in %v)",
		d, rows, found.unread, also, time.Since(start).Round(time.Millisecond)), "date", d.String(), "late_orders_compared", true, "rows", rows, "unread", found.unread,
		"settled_elsewhere", settled, "changed", found.changed, "gone", gone, "gone_settled", found.gone, "gone_moved", moved)
	return found, recordErr
}

// lateOrder is what the ledger records of an order lateOrdersOf names,
// found as f, the ledger holding state of it, and its item it when has:
// the item's seller and currency, else the order's as given now (as read,
// of one gone); its amount given now where it is an integer.
func lateOrder(f extract.Difference, state string, it ledger.Item, has bool) ledger.LateOrder {
	o := ledger.LateOrder{OrderNo: f.OrderNo, Kind: f.Kind.String(), State: state, Detail: f.Detail()}
	if has {
		gross := it.Gross.Minor
		o.SellerID, o.Currency, o.SettledOn, o.Settled = it.SellerID, string(it.Gross.Currency), it.Date.String(), &gross
	}
	row := f.Now
	if f.Kind == extract.Gone {
		row = f.Read
	} else if now := row.AmountMinor; now != nil && f.NowRows == 1 {
		if n, err := strconv.ParseInt(*now, 10, 64); err == nil && strconv.FormatInt(n, 10) == *now {
			o.Now = &n
		}
	}
	if o.SellerID == "" && row.SellerID != nil {
		o.SellerID = *row.SellerID
	}
	if o.Currency == "" && row.Currency != nil {
		o.Currency = *row.Currency
	}
	return o
}

// lateFound counts the orders lateOrdersOf named, by kind.
type lateFound struct {
	unread  int // written late, read by no run
	changed int // read, given with other columns that decide money now
	gone    int // read and settled on the date, no longer given
}

func (f lateFound) total() int { return f.unread + f.changed + f.gone }

func (f *lateFound) add(o lateFound) {
	f.unread += o.unread
	f.changed += o.changed
	f.gone += o.gone
}

// lateOrdersBatch is how many differences lateOrdersOf asks the ledger's
// items about at once: what it holds of a date's comparison.
const lateOrdersBatch = 1000

// comparable returns the ids of runs, a date's, to compare the platform's
// orders of the date with, or why they are not to be.
func comparable(runs []*pipeline.Run, query string) (ids []int64, why string) {
	n := runs[0].Key.Shard.Count
	for _, r := range runs {
		switch {
		case r.Key.Shard.Count != n:
			return nil, "its runs are of several shardings (an older settle's)"
		case !r.Done(pipeline.StageExtract):
			return nil, fmt.Sprintf("its extract is not recorded (run %d, shard %s)", r.ID, r.Key.Shard)
		case r.TimeZone != runs[0].TimeZone:
			return nil, fmt.Sprintf("its shards read it in different time zones (%s, %s)", runs[0].TimeZone, r.TimeZone)
		case r.ConfigHash != configHash(r.TimeZone, query):
			return nil, "the source query given now is not the one it was read with (its runs' config_hash differs)"
		}
		ids = append(ids, r.ID)
	}
	if len(runs) != n {
		return nil, fmt.Sprintf("%d of its %d shards read it", len(runs), n)
	}
	return ids, ""
}

// withLateOrders is err, a run's, with what check (lateOrders) found: its
// problems (exit 4) joined to err's, keeping err's exit code where it is
// not 4; its failure a warning, and exit 1 unless err's is another than 4
// already (never a silent pass).
func withLateOrders(err error, cfg *config, check func() (problem, failure error)) error {
	problem, failure := check()
	if failure != nil {
		cfg.warn("look for orders written into windows already read", failure)
		failure = pipeline.E(pipeline.KindFailed, "", failure)
	}
	if problem != nil && failure == nil && (err == nil || pipeline.KindOf(err) == pipeline.KindNeedsPerson) {
		// Exit 4's hint says to run the date again, which reads none
		// of them.
		hint := hintLateOrders
		if err != nil {
			hint = exitHint(pipeline.KindNeedsPerson.ExitCode()) + "; and " + hint
		}
		problem = hinted{problem, hint}
	}
	add := errors.Join(failure, problem)
	if failure != nil && problem != nil {
		add = pipeline.E(pipeline.KindFailed, "", add)
	}
	switch {
	case add == nil:
		return err
	case err == nil:
		if failure != nil {
			return lateOrdersUnchecked{add, false}
		}
		return add
	case pipeline.KindOf(err) == pipeline.KindNeedsPerson:
		if failure != nil {
			return lateOrdersUnchecked{pipeline.E(pipeline.KindFailed, "", errors.Join(failure, err, problem)), true}
		}
		return errors.Join(err, problem)
	}
	return pipeline.E(pipeline.KindOf(err), "", errors.Join(err, add))
}

// lateOrdersUnchecked marks the exit 1 of a run whose own work ended as
// it would have without the look for orders written late (exit 0 or 4),
// the look alone failing (withLateOrders): a backfill goes on to its later
// dates past it, as past a date needing a person, and exits 1 at its end.
// It stopped there before, at a date settled whole, the later dates not
// run that night, for a check of earlier dates that changes none of them
// (found by a review). needsPerson says the run's own exit was 4.
type lateOrdersUnchecked struct {
	error
	needsPerson bool
}

func (u lateOrdersUnchecked) Unwrap() error { return u.error }

// hintLateOrders is the hint of a run that found orders of dates already
// read that the platform gives otherwise now (lateOrders).
const hintLateOrders = "a date's orders are read once (running the date again reads none of them again): " +
	"an order written into the window of a date already read is read by no run - have the platform date it into a day not read yet (a correction as a new row of the current day), or settle it by hand; " +
	"an order changed since its date was read, or settled and no longer given by the platform, was paid (or rejected) on what was read - settle the difference by hand, with the platform, as its line says; " +
	"the runs that re-check its date (--recheck-days) name it while the platform gives it so; " +
	"settle status --date D lists what the looks at D's window found (the first of them, and how many more: the ledger's late_orders keeps them all), " +
	"and settle status --order O what they found of O"

// restLateOrders follows the night's first few orders written late and
// its "... N more" (lateOrders). Status lists the first of a date's
// (ledger's statusListMax) and counts the rest: it said it listed them
// all.
const restLateOrders = "settle status --date D, of each date above, lists the first of them and counts the rest, " +
	"and --order O what the looks found of O; the ledger's late_orders keeps them all"
