package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/settlekit/settle/load"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

func reportCommand(cfg *config) *cli.Command {
	return &cli.Command{
		Name:  "report",
		Usage: "(re)write the reports of a date from the ledger",
		Flags: append(ledgerFlags(ledgerURLUsage), dateFlag("business date YYYY-MM-DD (required)"), outFlag()),
		Action: func(c *cli.Context) error {
			d, err := requiredDate(c)
			if err != nil {
				return err
			}
			l, err := cfg.openLedger(c.Context, c, false)
			if err != nil {
				return err
			}
			defer l.Close()
			// Reports of a date nobody ran would be empty files that read
			// as "nothing to pay".
			migrated, err := l.Migrated(c.Context)
			if err != nil {
				return err
			}
			if migrated {
				if err := l.CheckMigrated(c.Context); err != nil {
					return err
				}
			}
			var runs []*pipeline.Run
			if migrated {
				if runs, err = l.RunsOn(c.Context, d); err != nil {
					return err
				}
			}
			if len(runs) == 0 {
				return pipeline.Errorf(pipeline.KindUsage, "--date", "%s: no run recorded, nothing to report (settle run --date %s first)", d, d)
			}
			path, err := reportWriter{reports: reportsFor(c)}.write(c.Context, l, d)
			if err != nil {
				return err
			}
			fmt.Fprintf(cfg.stdout, "wrote %s (and payouts.csv, sellers.csv, summary.csv, mismatches.csv, manifest.csv)\n", path)
			// A date run in shards one of whose shards has no run: its
			// sellers are in none of the reports, whose lines balance all
			// the same (settle status says so; the reports did not: found
			// by an operator's walkthrough).
			for _, k := range pipeline.ShardsToRun(runs, pipeline.RunKey{Date: d, Shard: pipeline.Whole}) {
				if !slices.ContainsFunc(runs, func(r *pipeline.Run) bool { return r.Key == k }) {
					fmt.Fprintf(cfg.stdout, "run %s shard %s: not started: its sellers are not settled, nor in these reports (settle run --date %s runs it)\n", d, k.Shard, d)
				}
			}
			return nil
		},
	}
}

// reportWriter writes a date's reports from the ledger.
type reportWriter struct {
	reports load.Reports
	// written, when set (tests), is called after each report of a set is
	// in place, before the next is read.
	written func(ctx context.Context, w load.Written) error
}

// write writes the date's reports and returns the orders report's path,
// under the date's report lock (ledger.LockReports): one writer of the
// date's files at a time. The manifest goes first and comes back last
// (load.Reports.BeginSet, WriteManifest): a set without one is not whole.
// The reports of the set are read at one instant (ledger.View): a payout
// another shard records while they are written is in all of them or in
// none, so their totals agree across files.
func (r reportWriter) write(ctx context.Context, l *ledger.Ledger, d pipeline.Date) (string, error) {
	release, err := l.LockReports(ctx, d)
	if err != nil {
		return "", err
	}
	defer release()
	if err := r.reports.BeginSet(d); err != nil {
		return "", err
	}
	var set []load.Written
	add := func(w load.Written, err error) error {
		if err != nil {
			return err
		}
		set = append(set, w)
		if r.written != nil {
			return r.written(ctx, w)
		}
		return nil
	}
	err = l.View(ctx, func(v ledger.Reader) error {
		if err := add(r.reports.WriteOrders(ctx, d, func(fn func(pipeline.OrderLine) error) error { return v.OrderLines(ctx, d, fn) })); err != nil {
			return err
		}
		if err := add(r.reports.WritePayouts(d, func(fn func(pipeline.PayoutLine) error) error { return v.PayoutLines(ctx, d, fn) })); err != nil {
			return err
		}
		if err := add(r.reports.WriteSellers(d, func(fn func(pipeline.SellerLine) error) error { return v.SellerLines(ctx, d, fn) })); err != nil {
			return err
		}
		if err := add(r.reports.WriteSummary(d, func(fn func(pipeline.SummaryLine) error) error { return v.SummaryLines(ctx, d, fn) })); err != nil {
			return err
		}
		return add(r.reports.WriteMismatches(d, func(fn func(pipeline.Mismatch) error) error { return v.MismatchLines(ctx, d, fn) }))
	})
	if err != nil {
		return "", err
	}
	if _, err := r.reports.WriteManifest(d, set...); err != nil {
		return "", err
	}
	return set[0].Path, nil
}

// stage writes the reports at the end of the reconcile stage, once the
// run's mismatches are recorded.
func (r reportWriter) stage(l *ledger.Ledger) func(ctx context.Context, run *pipeline.Run) (string, error) {
	return func(ctx context.Context, run *pipeline.Run) (string, error) {
		path, err := r.write(ctx, l, run.Key.Date)
		if err != nil {
			return "", err
		}
		return "wrote " + filepath.Dir(path) + "/{orders,payouts,sellers,summary,mismatches,manifest}.csv", nil
	}
}
