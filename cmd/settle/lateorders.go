package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/extract"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// lateOrders looks, for the dates a run of o re-checks (the --recheck-days
// before its date) and for its own date when it was read before this
// invocation (own), for orders the platform's source query gives now in
// the window the date was read with that no run of the date read: written
// into the window after the date was read (README, "Rows written into a
// settled window afterwards"), they are settled by no run, and nothing
// else says so (an order the ledger holds an item of, settled by another
// date's run before the platform moved it into the window, is counted,
// not named). Each is a problem for a person (exit 4: problem); the
// check's own failure (the platform not answering) is failure, which the
// caller makes a warning and exit 1. Neither stops or changes the run.
//
// Only shard 0 of a sharded run looks (a date's comparison is the whole
// date's, and every pod of an Indexed Job would say the same). A date is
// compared only when that means something: every shard of its one
// sharding has its extract recorded (an order of a shard's seller is read
// only if that shard read it), in one time zone, and the source query
// given now is the one it was read with (the runs' config_hash, of their
// zone and the query's text); else one line says why it is not.
func (cfg *config) lateOrders(ctx context.Context, l *ledger.Ledger, src *sqlx.DB, o *runOptions, own bool) (problem, failure error) {
	if o.key.Shard.Index != 0 {
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
	for _, d := range dates {
		if err := cfg.lateOrdersOf(ctx, l, source, d, p); err != nil {
			// One date's comparison failing stops none of the others'.
			failures = append(failures, fmt.Errorf("look for orders written into %s's window after it was read: %w", d, err))
		}
		if ctx.Err() != nil {
			break
		}
	}
	if p.Count() > 0 {
		p.Summary = fmt.Sprintf("%d orders the platform has now in windows of dates already read, which no run read", p.Count())
		p.Rest = "each date's line above counts them; the platform's source query for the date's window, less the date's snapshot (source_rows), names them"
	}
	return p.NeedsPerson(), errors.Join(failures...)
}

// lateOrdersOf compares date d (lateOrders), adding to p what it finds once
// the comparison is through: the order numbers found before a failure are
// not to be trusted.
func (cfg *config) lateOrdersOf(ctx context.Context, l *ledger.Ledger, source *extract.Source, d pipeline.Date, p *pipeline.Problems) error {
	runs, err := l.RunsOn(ctx, d)
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		return nil // never run: the nightly run's look for missed dates says so
	}
	ids, why := comparable(runs, source.Query)
	if why != "" {
		cfg.note(fmt.Sprintf("%s: orders written into its window after it was read not looked for: %s", d, why),
			"date", d.String(), "late_orders_compared", false)
		return nil
	}
	loc, err := time.LoadLocation(runs[0].TimeZone)
	if err != nil {
		return fmt.Errorf("its runs' time zone %q: %w", runs[0].TimeZone, err)
	}
	start := time.Now()
	var (
		first   []string // the first few lines, held until the comparison is through
		unread  int
		settled int      // settled by another date's run: the platform moved them since
		batch   []string // order numbers found, asked about the ledger's items by the batch
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		settledAlready, err := l.Settled(ctx, batch)
		if err != nil {
			return err
		}
		for _, no := range batch {
			if settledAlready[no] {
				settled++
				continue
			}
			unread++
			if len(first) < pipeline.ProblemsListed {
				first = append(first, fmt.Sprintf("order %s: written into %s's window after %s was read: no run reads it; have the platform date it into an open day, or settle it by hand", no, d, d))
			}
		}
		batch = batch[:0]
		return nil
	}
	rows, err := source.Unread(ctx, pipeline.WindowOf(d, loc), l.SnapshotOrderNumbers(ctx, ids), func(no string) error {
		batch = append(batch, no)
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
		return nil
	}
	if err != nil {
		return err
	}
	if unread == 0 && settled == 0 {
		return nil // a date where nothing was written late says nothing
	}
	for _, line := range first {
		p.Add(line)
	}
	p.Total = p.Count() + unread - len(first)
	also := ""
	if settled > 0 {
		also = fmt.Sprintf("; %d more settled by another date's run (the platform moved them into the window since: not named)", settled)
	}
	cfg.note(fmt.Sprintf("%s: the source query gives %d orders for its window now, %d of them read by no run of it%s (compared in %v)",
		d, rows, unread, also, time.Since(start).Round(time.Millisecond)), "date", d.String(), "late_orders_compared", true, "rows", rows, "unread", unread, "settled_elsewhere", settled)
	return nil
}

// lateOrdersBatch is how many order numbers lateOrdersOf asks the
// ledger's items about at once: what it holds of a date's comparison.
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

// hintLateOrders is the hint of a run that found orders written into the
// windows of dates already read (lateOrders).
const hintLateOrders = "an order written into the window of a date already read is read by no run, this date's or any other (running the date again does not read it): " +
	"have the platform date it into a day not read yet (a correction as a new row of the current day), or settle it by hand; " +
	"the runs that re-check its date (--recheck-days) name it while it is in the date's window"
