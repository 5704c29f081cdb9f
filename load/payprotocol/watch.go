package payprotocol

import (
	"context"
	"fmt"

	"github.com/settlekit/settle/pipeline"
)

// WatchStore is what the watch of rejected orders (Watcher) needs of the
// ledger.
type WatchStore interface {
	// RejectedToWatch returns at most limit of the rejected items of
	// channel ch whose reason starts with one of reasons, of the runs
	// dated from since to the day before run's date that run's shard
	// watches, but the runs of skip, whose order number comes after
	// `after`, by order number, each with its Reason and Date.
	RejectedToWatch(ctx context.Context, run *pipeline.Run, since pipeline.Date, skip []int64, ch pipeline.Channel, reasons []string,
		after string, limit int) ([]pipeline.RefundedItem, error)
}

// Watcher is the watch of the orders rejected for a failed payment (by a
// person, or by an older settle: RejectedReasons) of the days dated
// within days before the run's date: a buyer may pay such an order late,
// on chain, long after its date is reconciled for the last time (its own
// runs, and the rechecks within --recheck-days; a date an older settle
// reconciled is not rechecked at all), and the platform would hold money
// it never settled, nobody told. So the run's own reconciliation asks Pay
// Protocol about each of them once (those of the runs it reconciles
// itself are left to their matcher: reconciled), on c.Pacer as the
// matcher's questions, a page of c.PageSize at a time. What needs a person
// is returned as findings of the run's reconciliation (its reports, its
// exit 4; alone, they leave the run recorded done, not waiting on a
// person: pipeline.ErrOfEarlierDates), named with the order's date: a
// payment paid now (MatchRejected's unexpected row, and a line on c.Log:
// settle resolve --date D --order O --reopen holds it again, and no longer
// rejected it is not asked again), an order Pay Protocol did not answer
// about or answered unreadably (a row; the others are asked). One still
// failed, refunded, or unknown to Pay Protocol needs nobody and is not
// reported: its date's report has its row. A failure that concerns every
// order (refused credentials, Pay Protocol down: downAfter orders in a row
// unanswered and c.Up not answering either) fails the reconciliation, as
// the matcher's does. days <= 0: nothing is watched.
func Watcher(c MatcherConfig, store WatchStore, days int) pipeline.Watcher {
	if c.Pacer == nil {
		c.Pacer = pipeline.NewPacer(pipeline.Limits{})
	}
	size := c.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	return func(ctx context.Context, run *pipeline.Run, reconciled []int64) ([]pipeline.Mismatch, error) {
		if days <= 0 || pipeline.Rechecking(ctx) {
			return nil, nil
		}
		since := run.Key.Date.AddDays(-days)
		ans := answers{probe: c.Up}
		var out []pipeline.Mismatch
		for after := ""; ; {
			items, err := store.RejectedToWatch(ctx, run, since, reconciled, Channel, RejectedReasons, after, size)
			if err != nil {
				return nil, fmt.Errorf("watch the rejected Pay Protocol orders since %s: %w", since, err)
			}
			found := make([][]pipeline.Mismatch, len(items))
			ask1 := func(i int) (err error) {
				found[i], err = c.askRejected(ctx, items[i], items[i].Date, &ans)
				return err
			}
			if err := pipeline.EachFirstAlonePaced(ctx, c.Pacer, seq(len(items)), ask1); err != nil {
				return nil, err
			}
			for i, ms := range found {
				for _, m := range ms {
					if m.Expected {
						continue
					}
					m.Detail = fmt.Sprintf("order of %s, watched (--rejected-watch-days %d): %s", items[i].Date, days, m.Detail)
					out = append(out, m)
				}
			}
			if len(items) < size {
				break
			}
			after = items[len(items)-1].OrderNo
		}
		if err := ans.down(); err != nil {
			if c.Up == nil {
				return nil, err
			}
			if uerr := c.Up(ctx); uerr != nil {
				return nil, err
			}
		}
		return out, nil
	}
}
