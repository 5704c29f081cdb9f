package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
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
		Flags: append(ledgerFlags(ledgerURLUsage), dateFlag("business date YYYY-MM-DD (required)"), outFlag(), lockWaitFlag()),
		Action: func(c *cli.Context) error {
			d, err := requiredDate(c)
			if err != nil {
				return err
			}
			if err := checkLockWait(c); err != nil {
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
				// Nor one a newer settle migrated: this one would write
				// the date's reports over the newer's, from rows whose
				// newer rules it does not know (an image rolled back, or
				// an operator's older binary; its run is refused so).
				if err := l.CheckVersion(c.Context); err != nil {
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
			// The date's directory checked as a run checks it before its
			// work (runOptions.writableDirs): one that cannot be written
			// (a file in its place, no permission, a full or read-only
			// volume) is configuration, exit 2, which every retry meets
			// until a person acts; it was exit 1, "a retry is safe".
			reports := reportsFor(c)
			if err := writableDir(reports.DateDir(d), load.ReportDirMode); err != nil {
				return dirError(flagOut, reports.DateDir(d), err)
			}
			// Not while a process works on the date: its reports would be a
			// moment of its work, read between its transactions - a payout
			// recorded succeeded before its items are marked paid is a
			// sellers.csv line that does not balance, "the ledger holds
			// money they do not account for", exit 4 (found by a review:
			// 5 of 454 reports written during a run's distribute stage).
			// The run writes them at its end (its reconcile stage). The
			// date's lock is held while they are read and checked, so no
			// run of the date begins meanwhile either (a run that began
			// while they were read left them written, a moment of it).
			var release func() error
			err = cfg.whileLocked(c, func(d pipeline.Date) (err error) {
				release, err = l.LockToReport(c.Context, d)
				return err
			})(d)
			if pipeline.KindOf(err) == pipeline.KindLocked {
				return hinted{fmt.Errorf("%w: nothing written (its reports, read while it works, would be a moment of its work: payouts half applied read as lines that do not balance)", err),
					"its run writes the date's reports at its end; or settle report --lock-wait D waits for it"}
			}
			if err != nil {
				return err
			}
			defer release()
			// Read again under the lock: a shard of the date that began
			// while this waited for it (--lock-wait) was named "not
			// started" below, its sellers in the reports all the same.
			if runs, err = l.RunsOn(c.Context, d); err != nil {
				return err
			}
			path, err := reportWriter{reports: reports}.write(c.Context, l, d)
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
			// Reports whose lines do not balance (sellers.csv's two sums,
			// summary.csv's) are what a run's reconcile stage ends 4 on:
			// the ledger holds money it cannot account for. Written as
			// they are, they were exit 0, "all is well", with false in a
			// column nobody reads at 3 a.m.
			return unbalancedReports(c.Context, l, d)
		},
	}
}

// unbalancedReports is a NeedsPerson error (exit 4) listing the lines of
// date d's sellers.csv and summary.csv that do not balance, or nil.
func unbalancedReports(ctx context.Context, l *ledger.Ledger, d pipeline.Date) error {
	lines, err := l.Unbalanced(ctx, pipeline.RunKey{Date: d, Shard: pipeline.Whole})
	if err != nil || len(lines) == 0 {
		return err
	}
	problems := pipeline.Problems{Summary: fmt.Sprintf("the reports of %s were written, and %d of their lines do not balance: the ledger holds money they do not account for, a person must find why (settle status --date %s; each line follows)", d, len(lines), d)}
	for _, line := range lines {
		problems.Add(line)
	}
	return problems.NeedsPerson()
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
	path, err := r.writeSet(ctx, l, d)
	return path, r.notWritten(d, err)
}

// notWritten says, of an error of the filesystem (a full or read-only
// volume, a directory that cannot be made) that stopped date d's reports,
// which directory, in what state it leaves the set there, and what to do.
// Before, it said "write sellers.csv: ...: no space left on device" alone.
// Any other error (the ledger's) is returned as it is.
func (r reportWriter) notWritten(d pipeline.Date, err error) error {
	var pe *fs.PathError
	var le *os.LinkError
	if err == nil || !errors.As(err, &pe) && !errors.As(err, &le) {
		return err
	}
	dir := r.reports.DateDir(d)
	state := "no " + load.ManifestName + " there: what is there is not a whole set"
	if errors.Is(err, errSetNotBegun) {
		state = "nothing written there: the set there, if any, is the one written before (its " + load.ManifestName + " vouches for it)"
	}
	return fmt.Errorf("the reports of %s were not written in %s (%s): %w; once %s can be written (space on its volume, its permissions), settle report --date %s writes them again from the ledger, as does the next run of the date",
		d, dir, state, err, dir, d)
}

// errSetNotBegun marks an error of reportWriter.writeSet before it removed
// the set's manifest.
var errSetNotBegun = errors.New("the set not begun")

// writeSet is write, the date's report lock held.
func (r reportWriter) writeSet(ctx context.Context, l *ledger.Ledger, d pipeline.Date) (string, error) {
	if err := r.reports.BeginSet(d); err != nil {
		return "", notBegun{err}
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
	err := l.View(ctx, func(v ledger.Reader) error {
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
	// The set was read under the date's lock (settle report's, or its
	// run's): only if that lock's session still holds it (the server may
	// have ended it: a failover, an administrator) was no run of the date
	// working meanwhile. Otherwise the files are left without the manifest
	// that vouches for them.
	if err := l.CheckLocks(ctx); err != nil {
		return "", fmt.Errorf("the reports of %s were read, and the date's lock was lost meanwhile: a run of the date may have worked while they were read, so no %s vouches for what is in %s (settle report --date %s writes them again): %w",
			d, load.ManifestName, r.reports.DateDir(d), d, err)
	}
	if _, err := r.reports.WriteManifest(d, set...); err != nil {
		return "", err
	}
	return set[0].Path, nil
}

// notBegun is an error of reportWriter.writeSet before the set was begun.
type notBegun struct{ error }

func (e notBegun) Unwrap() []error { return []error{e.error, errSetNotBegun} }

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
