package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
	"github.com/urfave/cli/v2"

	"github.com/settlekit/settle/extract"
	"github.com/settlekit/settle/load"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
	"github.com/settlekit/settle/transform"
)

func runCommand(cfg *config) *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "settle one business date (resumes where an earlier run of that date stopped)",
		Description: "Stages: extract, transform, upload, distribute, reconcile. Re-running a date is always safe:\n" +
			"finished work is skipped and nothing is sent twice.\n\n" + exitCodesHelp,
		Flags: categorize(append(append(databaseFlags(),
			dateFlag("business date YYYY-MM-DD (default: yesterday in --tz)"),
			&cli.StringFlag{Name: "from", EnvVars: []string{"SETTLE_FROM"}, Usage: "backfill: first date of a range, settled one date at a time, in order"},
			&cli.StringFlag{Name: "to", EnvVars: []string{"SETTLE_TO"}, Usage: "backfill: last date of the range (inclusive)"},
			// No environment variable: a one-off action, never to be left
			// set in a scheduled job's environment.
			&cli.BoolFlag{Name: flagReextract,
				Usage: "read the date again: drop the run's snapshot, items and rejects and redo extract and transform (refused once anything of the run was sent; command line only)"},
			&cli.BoolFlag{Name: flagNewTZ,
				Usage: "open the date in --tz though a date beside it was run in another zone: the zone changes for good here, and the orders between the two windows are read by neither (or by both: the second rejects them as settled); command line only"},
			&cli.BoolFlag{Name: flagNewSource,
				Usage: "read the platform database the settings give though the date, or the latest earlier date, read from another (a run is otherwise refused, exit 2: a staging copy, another marketplace's, a URL left in the environment): the platform moved to it for good; command line only"},
			&cli.BoolFlag{Name: flagNewAccount,
				Usage: "send from the provider accounts the settings give (--infinia-app-id and --platform-id, --wechat-mchid) though the latest earlier date sent from others: the accounts change for good from this date (a run is otherwise refused, exit 2: another environment's settings, a second merchant's); command line only"},
			&cli.BoolFlag{Name: flagSendPastMemory,
				Usage: "send the new requests (trade files, revenue shares, WeChat distributions and unfreezes) of a date that ended longer ago than the provider's status query remembers (--infinia-query-memory, --wechat-query-memory), which are otherwise held (exit 4): their keys are functions of the date, and a run the ledger does not hold (a backup restored, rows lost) may have sent them; give it once a person checked the date in the provider's statements and found none of them; command line only"},
			&cli.StringSliceFlag{Name: flagSkipChannel, EnvVars: []string{"SETTLE_SKIP_CHANNEL"},
				Usage: "leave this channel's orders unpaid on purpose (" + channelSpecs().Names() + "; repeat or comma-separate); without it, orders of a channel whose provider is not configured end the run with exit 4"},
			&cli.BoolFlag{Name: flagSourceStandbyOfPrimary, EnvVars: []string{"SETTLE_SOURCE_STANDBY_OF_PRIMARY"},
				Usage: "the platform's database, if a hot standby, streams straight from the primary (no cascading): a day is then read once its WAL receiver shows it replayed all the primary had past the day's end, though the primary committed nothing since (its role needs pg_read_all_stats)"},
			tzFlag(),
			&cli.StringFlag{Name: flagRules, EnvVars: []string{"SETTLE_RULES"}, Usage: "commission rules CSV file (required)"},
			&cli.StringFlag{Name: flagSourceQuery, EnvVars: []string{"SETTLE_SOURCE_QUERY"},
				Usage: "SQL file returning the source columns for $1 (window start) and $2 (window end)"},
			sellersQueryFlag(),
			&cli.StringFlag{Name: flagLateRefundsQ, EnvVars: []string{"SETTLE_LATE_REFUNDS_QUERY"},
				Usage: "SQL file returning refund_no, order_no, seller_id, amount_minor, created_at: refunds recorded in [$1, $2) for orders confirmed before $1"},
			&cli.StringFlag{Name: flagMinPayout, EnvVars: []string{"SETTLE_MIN_PAYOUT"},
				Usage: "smallest revenue share per currency, e.g. USD=10.00,JPY=1000; a smaller net is carried to the seller's next payout"},
			&cli.IntFlag{Name: flagRecheckDays, EnvVars: []string{"SETTLE_RECHECK_DAYS"}, Value: defaultRecheckDays,
				Usage: "also reconcile again the dates of the last N days whose findings still include timing gaps (bills not out, funds UNSETTLE); each costs one more pass of the per-order queries not yet final; the last N days' windows are also read again for orders no run read (written into them after they were read: exit 4)"},
			&cli.IntFlag{Name: flagWatchDays, EnvVars: []string{"SETTLE_REJECTED_WATCH_DAYS"}, Value: defaultWatchDays,
				Usage: "a nightly run (no --date, --from) also asks Pay Protocol about the orders rejected for a failed payment of the last N days whose dates it does not reconcile, one question each: one paid late since is reported (exit 4) for settle resolve --order --reopen; 0: not asked"},
			&cli.BoolFlag{Name: flagLateOrders, EnvVars: []string{"SETTLE_LATE_ORDERS"}, Value: true,
				Usage: "read the windows of the --recheck-days dates before the run's, and of its own date read before, again, for orders written into them, changed or gone since they were read (exit 4); false: not read, said once (the reconcile re-checks of those dates still run)"},
			&cli.BoolFlag{Name: flagReconcileAll, EnvVars: []string{"SETTLE_RECONCILE_ALL"},
				Usage: "ask the providers again about every order, also those whose answer was final and agreed with the ledger (kept, and not asked again, by default)"},
			&cli.StringFlag{Name: "until", EnvVars: []string{"SETTLE_UNTIL"}, Value: string(pipeline.StageReconcile),
				Usage: "stop after this stage: extract, transform, upload, distribute or reconcile"},
			&cli.BoolFlag{Name: "dry-run", EnvVars: []string{"SETTLE_DRY_RUN"}, Usage: "compute and print the plan; write and send nothing"},
			&cli.StringFlag{Name: flagShard, EnvVars: []string{"SETTLE_SHARD"},
				Usage: "I/N: settle only the sellers of shard I of N (default: from JOB_COMPLETION_INDEX and SETTLE_SHARDS, else 0/1)"},
			lockWaitFlag(),
			&cli.Float64Flag{Name: "max-reject-ratio", EnvVars: []string{"SETTLE_MAX_REJECT_RATIO"}, Value: 0.05,
				Usage: "stop before anything is sent (exit 3) when more than this share of the day's rows is rejected"},
			outFlag(),
			&cli.IntFlag{Name: flagReportsKeepDays, EnvVars: []string{"SETTLE_REPORTS_KEEP_DAYS"},
				Usage: "after the run, remove the reports of every date (settle's files of DIR/YYYY-MM-DD/, or the directory left empty) all written more than N days ago, but for the run's own; 0 keeps them all (settle report --date D writes a date's again from the ledger)"},
			&cli.StringFlag{Name: "metrics-pushgateway", EnvVars: []string{"SETTLE_METRICS_PUSHGATEWAY"},
				Usage: "Prometheus Pushgateway URL: the run's metrics replace its shard's group there (job settle, shard I-of-N)"},
			&cli.StringFlag{Name: "metrics-file", EnvVars: []string{"SETTLE_METRICS_FILE"},
				Usage: "write the run's metrics to this file, for node exporter's textfile collector"},
		), append(infiniaFlags(), weChatFlags()...)...)),
		Action: func(c *cli.Context) error {
			dates, err := cfg.runDates(c)
			if err != nil {
				return err
			}
			cfg.dates = dates
			// Dates named by the environment alone: what a scheduled job
			// carries when SETTLE_DATE is left in its ConfigMap.
			envDates := datesFromEnvironment(c, cfg.args)
			if envDates != "" && !c.Bool("dry-run") {
				cfg.logger().Warn(envDatesLine(envDates, dates)+"; a date named for one run goes on the command line (settle run --date D)", "from_environment", envDates)
			}
			if n := c.Int(flagReportsKeepDays); n < 0 {
				return pipeline.Errorf(pipeline.KindUsage, "--"+flagReportsKeepDays, "%d: want a number of days, 0 (keep every date's reports) or more", n)
			}
			// Taken as 0 without a word, these were the opposite of what
			// was meant (found by an operator's trial).
			if n := c.Int(flagRecheckDays); n < 0 {
				return pipeline.Errorf(pipeline.KindUsage, "--"+flagRecheckDays, "%d: want a number of days, 0 (reconcile no earlier date again) or more", n)
			}
			if err := checkLockWait(c); err != nil {
				return err
			}
			if c.Bool(flagReextract) && (len(dates) > 1 || c.Bool("dry-run")) {
				return pipeline.Errorf(pipeline.KindUsage, "--"+flagReextract, "reads one date again: give --date, without --from/--to or --dry-run")
			}
			if !c.Bool("dry-run") {
				flag := "--date"
				if c.String("to") != "" {
					flag = "--to" // the last date of a backfill
				}
				if err := cfg.checkOver(c, flag, dates[len(dates)-1]); err != nil {
					return err
				}
			}
			var l *ledger.Ledger
			defer func() {
				if l != nil {
					l.Close()
				}
			}()
			sink := &metricsSink{}
			var last *runOptions // the last date's: the night's source, for missedNights
			pushURL, metricsFile := c.String("metrics-pushgateway"), c.String("metrics-file")
			if !c.Bool("dry-run") {
				// A stop that ends before this action does (past
				// SETTLE_STOP_TIMEOUT, or at a second signal) reports
				// how it ended all the same (run: reportCut).
				cfg.setOnCut(func(ctx context.Context, err error) { sink.flush(ctx, cfg, nil, pushURL, metricsFile, err) })
			}
			err = backfill(dates, cfg.whileLocked(c, func(d pipeline.Date) error {
				// The options first: a configuration error is exit 2
				// before the database is touched.
				sh, err := cfg.shard(c)
				sink.at(d, sh, err == nil)
				if err == nil && sh.Count > 1 {
					cfg.shardName = sh.String()
				}
				opts, err := cfg.runOptions(c, d)
				if err != nil {
					return err
				}
				opts.metrics = sink
				last = opts
				sink.at(d, opts.key.Shard, true)
				if c.Bool("dry-run") {
					return cfg.dryRun(c, opts)
				}
				if err := opts.writableDirs(); err != nil {
					return err
				}
				if l == nil {
					if l, err = cfg.openLedger(c.Context, c, true); err != nil {
						return err
					}
					if err := checkLedgerClock(c.Context, l); err != nil {
						return err
					}
				}
				// A whole date holds the date's lock while it reads what
				// ran before and runs it: a date run in shards is run in
				// those shards, one after another, and no pod of an
				// Indexed Job runs beside them.
				if opts.key.Shard.Count <= 1 {
					release, err := l.LockDate(c.Context, d)
					if err != nil {
						return err
					}
					defer release()
				}
				runs, err := l.RunsOn(c.Context, d)
				if err != nil {
					return err
				}
				keys := pipeline.ShardsToRun(runs, opts.key)
				if opts.reextract && len(keys) > 1 {
					return pipeline.Errorf(pipeline.KindUsage, "--"+flagReextract,
						"%s was run in shards (%s): --reextract reads one of them again, give its --shard (one that sent nothing can be read again)", d, shardList(keys))
				}
				if len(dates) > 1 {
					// A backfill run again resumes where it stopped.
					if done, err := finished(c.Context, l, runs, keys); err != nil || done {
						if done {
							cfg.note(fmt.Sprintf("%s: done earlier, with nothing left for a person; skipped (settle run --date %s runs it again)", d, d),
								"date", d.String(), "skipped", true)
						}
						return err
					}
				}
				if len(keys) > 1 {
					return cfg.settleShards(c.Context, l, opts, keys)
				}
				return cfg.settle(c.Context, l, opts)
			}))
			err = cfg.whyReadOnly(c.Context, err) // exit 1 or 2: before the metrics take the code
			// Also when the night's date ended well but its look for
			// orders written late failed (lateOrdersUnchecked): the
			// missed nights went unnamed for as long as that look failed.
			nightly := c.String(flagDate) == "" && c.String("from") == ""
			if (nightly || envDates != "") && !c.Bool("dry-run") && l != nil &&
				(err == nil || pipeline.KindOf(err) == pipeline.KindNeedsPerson || errors.As(err, new(lateOrdersUnchecked))) {
				mine, _ := cfg.shard(c) // read above: the run got this far
				payable, done := sellersPayable(l, last, sellersCheckWait)
				// A date from the environment looks before the nightly
				// run's date, yesterday, not before its own.
				before := dates[0]
				if envDates != "" {
					loc, _ := location(c) // read above: the run got this far
					before = yesterday(cfg.clock(), loc)
				}
				missed, merr := missedNights(c.Context, l, before, dates, mine, cfg.note, payable)
				done()
				if merr != nil {
					cfg.logger().Warn("could not look for missed nights", "error", merr.Error())
				}
				if missed != nil {
					// The exit code's hint said "run the date again".
					hint := hintEarlierDates
					if envDates != "" {
						hint = envDatesLine(envDates, dates) + "; " + hint
					}
					switch {
					case errors.As(err, new(lateOrdersUnchecked)):
						hint = failureHint(err) + "; and " + hint // exit 1's
					case err != nil:
						hint = exitHint(pipeline.KindNeedsPerson.ExitCode()) + "; and " + hint
					}
					missed = hinted{missed, hint}
				}
				err = errors.Join(err, missed)
			}
			ran := l != nil // the ledger opened for the runs, not for the metrics below
			if l == nil && err != nil && (c.String("metrics-file") != "" || c.String("metrics-pushgateway") != "") {
				// Failed before the ledger was opened (a rules file that
				// cannot be read, say): the metrics still get the exit
				// code, with the shard's health if the ledger answers.
				octx, cancel := context.WithTimeout(context.WithoutCancel(c.Context), 5*time.Second)
				if opened, err := cfg.openLedger(octx, c, false); err == nil {
					l = opened
				}
				cancel()
			}
			if !c.Bool("dry-run") {
				// A dry run settles nothing: its end is not the shard's
				// last run (an operator's mistyped flag would page as the
				// night's configuration refused, and replace its exit).
				sink.flush(context.WithoutCancel(c.Context), cfg, l, pushURL, metricsFile, err)
			}
			if ran && !c.Bool("dry-run") {
				// Last: a backlog of dates (the first night with it set)
				// waits on no metric.
				cfg.pruneReports(c, l, dates)
			}
			return err
		},
	}
}

// checkNeighbours refuses (exit 2) to open a date whose window does not
// meet the windows of the dates beside it that were run in another time
// zone: the orders between the two windows would be read by no run (or by
// both, the second rejecting them as settled) - a person's run with
// SETTLE_TZ unset, say, takes the default zone beside nights run in
// another. --new-tz opens it all the same, when the zone changes for good.
func checkNeighbours(ctx context.Context, l *ledger.Ledger, o *runOptions) error {
	d := o.key.Date
	for _, side := range []struct {
		date             pipeline.Date
		theirEnd, ourEnd string
		meets            func(w pipeline.Window) (theirs, ours time.Time)
	}{
		{d.AddDays(-1), "ends", "starts", func(w pipeline.Window) (time.Time, time.Time) { return w.End, o.window.Start }},
		{d.AddDays(1), "starts", "ends", func(w pipeline.Window) (time.Time, time.Time) { return w.Start, o.window.End }},
	} {
		runs, err := l.RunsOn(ctx, side.date)
		if err != nil {
			return err
		}
		for _, r := range runs {
			if r.TimeZone == o.tz {
				continue
			}
			// A zone this machine does not know, or Local (an older
			// settle's machine's zone, which LoadLocation would take as
			// this machine's): nothing to compare.
			loc, err := time.LoadLocation(r.TimeZone)
			if err != nil || r.TimeZone == "Local" {
				continue
			}
			if theirs, ours := side.meets(pipeline.WindowOf(side.date, loc)); !theirs.Equal(ours) {
				return pipeline.Errorf(pipeline.KindUsage, "--"+flagTZ,
					"%s was run in time zone %s: its window %s at %s, and this run's of %s in %s %s at %s, so the orders between would be read by neither run (or by both); "+
						"run %s with --tz %s (SETTLE_TZ), or with --%s if the zone changes for good here",
					side.date, r.TimeZone, side.theirEnd, theirs.UTC().Format(time.RFC3339), d, o.tz, side.ourEnd, ours.UTC().Format(time.RFC3339), d, r.TimeZone, flagNewTZ)
			}
		}
	}
	return nil
}

// checkZone refuses (exit 2) a run of o's date in o.tz that the date's
// run, run (nil: none yet), and the dates beside it do not allow: one that
// reads the day now (a new run, --reextract, or one resumed before its
// extract stage was done) in another zone than its run's, whose window
// does not meet the windows of the dates beside it run in another zone
// (checkNeighbours; --new-tz opens it all the same), and one resumed
// without reading its day in a zone of other hours than it read it in.
// The run and the dry run (which says why a real run would be refused)
// both ask it. It returns a warning for a date opened in an older
// settle's Local, which no --tz can match.
func checkZone(ctx context.Context, l *ledger.Ledger, o *runOptions, run *pipeline.Run) (warning string, err error) {
	// A run that reads the day now - a new one, or one read again with
	// --reextract or resumed before its extract stage was done, in another
	// zone than its run's - is refused a window that does not meet its
	// neighbours' (a --reextract in another zone read the day with a
	// warning alone, and the orders between the windows by no run: found
	// by a review). One read again in its run's zone reads the window it
	// read (the date a zone changed on, opened with --new-tz, was refused,
	// advising the old zone). The run records the zone it reads the day in
	// (Ledger.OpenRun).
	reads := run == nil || o.reextract || !run.Done(pipeline.StageExtract)
	if reads && (run == nil || run.TimeZone != o.tz) && !o.newTZ {
		if err := checkNeighbours(ctx, l, o); err != nil {
			return "", err
		}
	}
	// A date resumed in another time zone than it read its day in would
	// read its late refunds in other hours than its orders: those of the
	// hours between the two windows by no date's run, and their clawbacks
	// never made (it was said, and the run went on). Refused (exit 2): run
	// in the date's zone, or, if nothing of it was sent, read it again in
	// the new one with --reextract. A run that reads its day now records
	// its zone (above). An older settle's Local, which names no zone, is
	// said, not refused: no --tz could ever match it.
	if run == nil || reads || run.TimeZone == o.tz {
		return "", nil
	}
	if loc, err := time.LoadLocation(run.TimeZone); err == nil {
		if w := pipeline.WindowOf(o.key.Date, loc); w.Start.Equal(o.window.Start) && w.End.Equal(o.window.End) {
			return "", nil
		}
	}
	if run.TimeZone == "Local" {
		return fmt.Sprintf("%s was opened in time zone Local (run %d), an older settle's machine's: this run reads in %s; run it with --tz naming the zone that machine had unless that is meant",
			o.key, run.ID, o.tz), nil
	}
	return "", pipeline.Errorf(pipeline.KindUsage, "--"+flagTZ,
		"%s read its day in time zone %s (run %d), and this run is in %s, other hours: its late refunds would be read in other hours than its orders (some by no date's run, their clawbacks never made); "+
			"run it with --tz %s (SETTLE_TZ), or, if nothing of it was sent, read it again in %s with --%s",
		o.key, run.TimeZone, run.ID, o.tz, run.TimeZone, o.tz, flagReextract)
}

// defaultRecheckDays is --recheck-days unless set: two, because WeChat
// Pay's bill of a Beijing day is out only the next morning (10:00 Beijing
// time, wechatpay.BillOut). A night that runs before then, as the CronJob
// at 02:30 in Asia/Shanghai, distributes on the day after its date, and
// that day's bill can be compared only the night after next: with one,
// the bill's timing row left the window unasked, and the only check of
// distributions the ledger does not know was never made (found by a
// review). Only dates whose findings still include timing gaps are
// reconciled again.
const defaultRecheckDays = 2

// defaultWatchDays is --rejected-watch-days unless set: about a quarter,
// as long as a buyer's late payment on chain is worth looking for; a
// night's cost is one question per order rejected for a failed payment
// in it, and such orders are few.
const defaultWatchDays = 90

// watchDaysFlag returns the days of rejected orders a run watches
// (--rejected-watch-days): those of a nightly run (no --date, --from),
// which runs once a night; 0 for a run of a date named, a backfill's
// dates above all, each of which would ask the same orders again. A
// negative value is refused (exit 2).
func watchDaysFlag(c *cli.Context) (int, error) {
	n := c.Int(flagWatchDays)
	if n < 0 {
		return 0, pipeline.Errorf(pipeline.KindUsage, "--"+flagWatchDays, "want 0 (not watched) or a number of days, got %d", n)
	}
	if c.String(flagDate) != "" || c.String("from") != "" {
		return 0, nil
	}
	return n, nil
}

// flagReportsKeepDays is how many days a date's reports are kept.
const flagReportsKeepDays = "reports-keep-days"

// pruneReports removes, when --reports-keep-days is set, the reports of
// the dates all written more than that many days ago (load.Reports.Prune),
// but for the dates of this invocation, each under the date's report lock.
// It says what it removed in one line; a failure is a warning and leaves
// the exit as it is: the run's work is done, and the reports of a date
// can be written again from the ledger.
func (cfg *config) pruneReports(c *cli.Context, l *ledger.Ledger, dates []pipeline.Date) {
	days := c.Int(flagReportsKeepDays)
	if days <= 0 {
		return
	}
	cutoff := cfg.clock().Add(-time.Duration(days) * 24 * time.Hour)
	pruned, err := reportsFor(c).Prune(cutoff, func(d pipeline.Date) bool { return slices.Contains(dates, d) },
		func(d pipeline.Date) (func(), error) { return l.LockReports(c.Context, d) })
	if len(pruned) > 0 {
		names := pruned[0].String()
		if len(pruned) > 1 {
			names = fmt.Sprintf("%d dates from %s to %s", len(pruned), pruned[0], pruned[len(pruned)-1])
		}
		cfg.note(fmt.Sprintf("removed the reports of %s, all written before %s (--%s %d; settle report --date D writes a date's again)",
			names, cutoff.UTC().Format(time.RFC3339), flagReportsKeepDays, days), "reports_removed", len(pruned))
	}
	if err != nil {
		cfg.warn("remove old reports", err)
	}
}

// datesFromEnvironment names the environment variables that gave the
// run's dates ("SETTLE_DATE", "SETTLE_FROM, SETTLE_TO"), "" when the
// command line gave them (args, onCommandLine) or nothing did (the
// nightly run). Such a run looks for the nights missed as the nightly run
// does (missedNights), before yesterday: a person who ran a past date
// through the CronJob (kubectl create job --from, whose arguments cannot
// be changed) by setting SETTLE_DATE in its ConfigMap and left it there
// had every night settle that date again, end 0 with nothing new to do
// and refresh settle_last_success_timestamp_seconds, while no night since
// was settled: a date named was not the nightly run, which alone looked.
func datesFromEnvironment(c *cli.Context, args []string) string {
	switch {
	case c.String(flagDate) != "" && !onCommandLine(args, flagDate):
		return "SETTLE_DATE"
	case c.String("from") != "" && !onCommandLine(args, "from", "to"):
		return "SETTLE_FROM, SETTLE_TO"
	case c.String("from") != "" && !onCommandLine(args, "from"):
		return "SETTLE_FROM"
	}
	return ""
}

// envDatesLine says where a run's dates came from (datesFromEnvironment).
func envDatesLine(vars string, dates []pipeline.Date) string {
	what := "this run's date " + dates[0].String()
	if len(dates) > 1 {
		what = fmt.Sprintf("this run's dates %s to %s", dates[0], dates[len(dates)-1])
	}
	return fmt.Sprintf("%s came from the environment (%s), not the command line: left set where the nightly run reads it (the CronJob's ConfigMap), every night settles %s again and no night since",
		what, vars, map[bool]string{true: "them", false: "it"}[len(dates) > 1])
}

// onCommandLine reports whether args give one of the flags named, as
// urfave/cli reads them: -name or --name, its value after "=" or as the
// next word; nothing after a "--".
func onCommandLine(args []string, names ...string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if slices.Contains(names, name) {
			return true
		}
	}
	return false
}

// missedLookback is how far back a nightly run looks for dates with no
// run: a night or a week the schedule missed (the controller down past
// startingDeadlineSeconds, a suspended CronJob), which the next night's
// success would otherwise hide; a longer pause is what the alert on
// settle_last_success_timestamp_seconds is for.
const missedLookback = 31

// missedNights is a problem for a person (exit 4) naming the dates of the
// missedLookback before d that have no run while an earlier one of them
// has: a nightly run settles yesterday only, so a date whose night was
// missed is never settled unless a person runs it. It names too the runs
// of those dates that no process holds and that only a run of their date
// finishes (ledger.LeftUndone): stopped before their end (a night's pods
// killed past the Job's backoffLimit or deadline, or a person's run with
// --until), ended failed (exit 1 past the Job's retries, 2 or 3) and not
// run again, or with requests planned or in flight - the next night
// drives its own run's alone, and ended 0 with them, the balances netted
// into them waiting. It names too the earlier dates (any, not only the
// lookback's: a watched order may be months old) whose run holds orders a
// person reopened (settle resolve --reopen) that no run of their date has
// settled since: only such a run does, and resolve's own line saying so
// was all that told anyone. A run that ended needing a person (exit 4) with
// nothing open is not named: its work is held for that person, who was
// told then (settle_unsettled_runs keeps counting it), and naming it
// every night would teach the night's exit 4 to be ignored: note is told
// of them in one line, which does not change the exit. nil when there are
// none (or, but for the reopened orders, no date of the lookback was ever
// run: a new ledger).
//
// A night of shard mine speaks for its own shard (speaksFor): the pods of
// an Indexed Job each name their own shard's runs and shards never run,
// and a date with no run at all (every shard's); shard 0 (a whole night's
// too) names those of another sharding. Before, every pod named every
// shard's: one shard left undone failed every index of the night, each
// shard's metrics said 4, and the alert named every shard.
//
// The dates of own, those the invocation ran (a run whose dates came from
// the environment looks before yesterday, its own among them), are not
// named: their runs' own ends say what they left.
func missedNights(ctx context.Context, l *ledger.Ledger, d pipeline.Date, own []pipeline.Date, mine pipeline.Shard, note func(msg string, attrs ...any),
	payable func(context.Context, pipeline.RunKey) (int64, []string, error)) (problem, err error) {
	p := &pipeline.Problems{}
	reopened, err := l.ReopenedHeld(ctx, payprotocol.HeldReopened)
	if err != nil {
		return nil, err
	}
	for len(reopened) > 0 {
		k, n := reopened[0].Key, 1
		for n < len(reopened) && reopened[n].Key == k {
			n++
		}
		if speaksFor(mine, k.Shard) && k.Date.Before(d) && !slices.Contains(own, k.Date) {
			p.Add(reopenedLine(k, reopened[:n], d))
		}
		reopened = reopened[n:]
	}
	run, err := l.DatesRun(ctx, d.AddDays(-missedLookback), d)
	if err != nil {
		return nil, err
	}
	if len(run) == 0 {
		if p.Count() > 0 {
			p.Summary = fmt.Sprintf("runs of dates before %s hold orders a person reopened and not run again: only a run of their date settles them", d)
		}
		return p.NeedsPerson(), nil
	}
	var missed []pipeline.Date
	for day, i := run[0].Date, 0; day.Before(d); day = day.AddDays(1) {
		if i < len(run) && run[i].Date == day {
			m := slices.DeleteFunc(slices.Clone(run[i].Missing), func(sh pipeline.Shard) bool { return !speaksFor(mine, sh) })
			if len(m) > 0 && run[i].Mixed {
				// Runs of the date in two shardings (an older settle's):
				// settle opens no new run of it.
				p.AddMany(fmt.Sprintf("date %s: %s never run, its runs in several shardings (an older settle's), of which settle opens no new run: their sellers' orders of the date are for a person",
					day, shardNames(m)), len(m))
			} else if len(m) > 0 {
				// A pod of the night's Indexed Job that never started:
				// its sellers of the date were never settled.
				p.AddMany(fmt.Sprintf("date %s: %s never run (settle run --date %s runs them)", day, shardNames(m), day), len(m))
			}
			i++
			continue
		}
		missed = append(missed, day)
	}
	shards := p.Count()
	undone, err := l.LeftUndone(ctx, d.AddDays(-missedLookback), d)
	if err != nil {
		return nil, err
	}
	named := map[pipeline.RunKey]bool{}
	for _, u := range undone {
		named[u.Key] = true
		if speaksFor(mine, u.Key.Shard) && !slices.Contains(own, u.Key.Date) {
			p.Add(leftUndoneLine(u))
		}
	}
	waiting, err := l.WaitingOnAPerson(ctx, d.AddDays(-missedLookback), d)
	if err != nil {
		return nil, err
	}
	waiting = slices.DeleteFunc(waiting, func(k pipeline.RunKey) bool {
		return named[k] || !speaksFor(mine, k.Shard) || slices.Contains(own, k.Date)
	})
	// Of those, the ones holding orders for their sellers' accounts that
	// the platform's sellers give now: work a run of the date does, which
	// nobody would start (the date waits on a person, who was told when
	// the accounts were missing, not when they came).
	if payable != nil {
		var unasked []string
		var askErr error
		waiting = slices.DeleteFunc(waiting, func(k pipeline.RunKey) bool {
			n, sellers, err := payable(ctx, k)
			if err != nil {
				// One line for them all: the platform's database down
				// fails every date's question alike.
				unasked = append(unasked, k.Date.String())
				askErr = cmp.Or(askErr, err)
				return false
			}
			if n == 0 {
				return false
			}
			shard := ""
			if k.Shard.Count > 1 {
				shard = " --shard " + k.Shard.String()
			}
			p.Add(fmt.Sprintf("date %s: %d orders held for their sellers' accounts can be paid now, the platform's sellers give %s a usable account: settle run --date %s%s pays them",
				k.Date, n, sellerNames(sellers), k.Date, shard))
			return true
		})
		if len(unasked) > 0 {
			unasked = slices.Compact(unasked) // a date's shards
			note(fmt.Sprintf("could not ask whether the sellers of orders held for their accounts have them now, of %d dates (%s): %v",
				len(unasked), strings.Join(unasked[:min(len(unasked), waitingListMax)], ", "), askErr), "unasked", len(unasked))
		}
	}
	if len(waiting) > 0 {
		var names []string
		for _, k := range waiting[:min(len(waiting), waitingListMax)] {
			name := k.Date.String()
			if k.Shard.Count > 1 {
				name += " shard " + k.Shard.String()
			}
			names = append(names, name)
		}
		if len(waiting) > waitingListMax {
			names = append(names, fmt.Sprintf("and %d more", len(waiting)-waitingListMax))
		}
		note(fmt.Sprintf("%d runs of dates before %s wait on a person (they ended needing one, exit 4 then, and were not run again; not this night's exit): %s; settle status --date D says what is held",
			len(waiting), d, strings.Join(names, ", ")), "waiting_on_a_person", len(waiting))
	}
	if len(missed) > 0 {
		first, last := missed[0], missed[len(missed)-1]
		names := first.String()
		if len(missed) > 1 {
			names = fmt.Sprintf("%d dates from %s to %s", len(missed), first, last)
		}
		p.Summary = fmt.Sprintf("%s before %s never run (a night the schedule missed?): settle run --from %s --to %s settles them (dates done already are skipped)",
			names, d, first, last)
		for _, m := range missed {
			p.Add("date " + m.String() + " has no run")
		}
	} else if shards > 0 {
		p.Summary = fmt.Sprintf("shards of dates before %s never run", d)
	} else if p.Count() > 0 {
		p.Summary = fmt.Sprintf("runs of dates before %s left work undone (stopped, failed, with requests planned or in flight, holding orders a person reopened, or orders held for sellers' accounts the platform gives now) and not run again: only a run of their date finishes it", d)
	}
	// No report of the night lists the earlier dates: the summary names
	// the range never run, and each date's status says what it needs.
	p.Rest = fmt.Sprintf("settle status --date D of each date from %s to %s says what it needs", d.AddDays(-missedLookback), d.AddDays(-1))
	return p.NeedsPerson(), nil
}

// reopenedLine names the orders a person reopened (settle resolve
// --reopen) that run k of an earlier date still holds, with the command
// that settles them: nothing else runs that date again.
func reopenedLine(k pipeline.RunKey, orders []ledger.Reopened, night pipeline.Date) string {
	which, shard := "its run", ""
	if k.Shard.Count > 1 {
		which, shard = "shard "+k.Shard.String(), " --shard "+k.Shard.String()
	}
	names := make([]string, 0, min(len(orders), waitingListMax))
	for _, o := range orders[:min(len(orders), waitingListMax)] {
		names = append(names, o.OrderNo)
	}
	if len(orders) > waitingListMax {
		names = append(names, fmt.Sprintf("and %d more", len(orders)-waitingListMax))
	}
	// The night's date ends a day before the night runs: its end is the
	// night's clock near enough for the hint.
	return fmt.Sprintf("date %s: %s holds %d orders a person reopened (settle resolve --reopen: %s), paid and not settled: settle run --date %s%s verifies and settles them%s",
		k.Date, which, len(orders), strings.Join(names, ", "), k.Date, shard, pastMemoryHint(k.Date, pipeline.WindowOf(night.AddDays(1), time.UTC).Start))
}

// pastMemoryHint is what a hint naming a run of date d adds when d ended,
// as of now, longer ago than Infinia's status query is taken to remember
// (--infinia-query-memory's default; d's zone not known here: its
// earliest end, pipeline.DatePastMemory): that run holds the date's new
// requests (exit 4) until a person has checked them in Infinia's
// statements and gives it --send-past-memory. Before, the hints named the
// run alone, which then ended 4.
func pastMemoryHint(d pipeline.Date, now time.Time) string {
	if pipeline.DatePastMemory(d, "", now, infiniapay.DefaultMemory, "Infinia", "requests") == nil {
		return ""
	}
	return "; " + d.String() + " ended longer ago than Infinia is taken to remember its requests (--infinia-query-memory): that run holds them (exit 4) until a person has checked them in Infinia's statements and gives it --send-past-memory, as its message says"
}

// speaksFor reports whether the nightly run of shard mine names what
// concerns shard of: its own shard's, and, from shard 0 of its sharding (a
// whole night is 0/1), a shard of another sharding (a date run before the
// number of shards changed), so that each is named by one pod of the night.
func speaksFor(mine, of pipeline.Shard) bool {
	if of.Count != mine.Count {
		return mine.Index == 0
	}
	return of.Index == mine.Index
}

// sellersPayable returns what missedNights asks of an earlier date's
// run left needing a person: how many of its orders held for their
// sellers' accounts the seller check would release now, and whose
// (pipeline.SellerHoldsPayable), read with the night's source database
// and sellers query (o, its last date's options; nil: not asked), opened
// at the first run that holds such orders. done closes it.
//
// The night's own run is over when it asks, its exit decided: each
// question is left after wait (lib/pq bounds by the context the dial
// alone, and a database, or a proxy in front of it in a failover, that
// takes the connection and never answers held the night there for good,
// its exit and metrics never given), and once the database could not be
// opened or did not answer, the night's other dates are not asked (each
// of up to missedLookback dates opened it again, each attempt as long).
func sellersPayable(l *ledger.Ledger, o *runOptions, wait time.Duration) (payable func(context.Context, pipeline.RunKey) (int64, []string, error), done func()) {
	if o == nil {
		return nil, func() {}
	}
	var src *sqlx.DB
	var gaveUp error // the source could not be opened or did not answer: not asked again
	type answer struct {
		src     *sqlx.DB
		orders  int64
		sellers []string
		err     error
	}
	return func(ctx context.Context, k pipeline.RunKey) (int64, []string, error) {
			if gaveUp != nil {
				return 0, nil, gaveUp
			}
			run, err := l.GetRun(ctx, k)
			if err != nil || run == nil {
				return 0, nil, err
			}
			if holds, err := l.SellerHolds(ctx, run.ID); err != nil || len(holds) == 0 {
				return 0, nil, err
			}
			ctx, cancel := context.WithTimeout(ctx, wait)
			defer cancel()
			answered := make(chan answer, 1)
			go func(db *sqlx.DB) {
				if db == nil {
					var err error
					if db, err = openDB(ctx, o.sourceURL); err != nil {
						answered <- answer{err: err}
						return
					}
				}
				n, sellers, err := pipeline.SellerHoldsPayable(ctx, l, sellerSource(db, o.sellersQ, o.sellersName, nil), channelSpecs(), transform.CheckSeller, run)
				answered <- answer{db, n, sellers, err}
			}(src)
			select {
			case a := <-answered:
				if a.src == nil || errors.Is(a.err, pipeline.ErrStillProcessing) {
					gaveUp = a.err // not opened, or its sellers not read
				}
				if a.src != nil {
					src = a.src
				}
				return a.orders, a.sellers, a.err
			case <-ctx.Done():
				// Left to itself: a database it opened is closed once
				// (if ever) it answers.
				go func(prev *sqlx.DB) {
					if a := <-answered; a.src != nil && a.src != prev {
						a.src.Close()
					}
				}(src)
				gaveUp = fmt.Errorf("the platform's database did not answer within %v", wait)
				if cause := context.Cause(ctx); !errors.Is(cause, context.DeadlineExceeded) {
					gaveUp = cause // the night stopped
				}
				return 0, nil, gaveUp
			}
		}, func() {
			if src != nil {
				src.Close()
			}
		}
}

// sellersCheckWait bounds each of the night's questions to the platform's
// database about an earlier date's held sellers (sellersPayable).
const sellersCheckWait = 30 * time.Second

// sellerNames names sellers for a line: "S1", "S1 and S2", "S1, S2, S3
// and 4 more".
func sellerNames(ids []string) string {
	switch n := len(ids); {
	case n == 1:
		return ids[0]
	case n <= 3:
		return strings.Join(ids[:n-1], ", ") + " and " + ids[n-1]
	default:
		return fmt.Sprintf("%s and %d more", strings.Join(ids[:3], ", "), n-3)
	}
}

// leftUndoneLine names a run of an earlier date left undone for a person,
// with what it left and the command that finishes it.
func leftUndoneLine(u ledger.LeftUndone) string {
	which, shard := "its run", ""
	if u.Key.Shard.Count > 1 {
		which, shard = "shard "+u.Key.Shard.String(), " --shard "+u.Key.Shard.String()
	}
	planned := ""
	if u.Planned > 0 {
		planned = fmt.Sprintf(" with %d requests planned and never sent", u.Planned)
	}
	switch {
	case u.InFlight > 0:
		if planned != "" {
			planned = fmt.Sprintf(", and %d requests planned and never sent", u.Planned)
		}
		return fmt.Sprintf("date %s: %s stopped with %d requests sent and never answered (killed, or ended before its provider answered, and not run again)%s: settle run --date %s%s asks the providers about them",
			u.Key.Date, which, u.InFlight, planned, u.Key.Date, shard)
	case u.Stopped && u.State == pipeline.RunDone:
		return fmt.Sprintf("date %s: %s, done, was run again and stopped before its end%s (killed, or run with --until), and was not run again: settle run --date %s%s finishes it",
			u.Key.Date, which, planned, u.Key.Date, shard)
	case u.Stopped:
		at := "after its last stage, before its end was recorded"
		for _, st := range pipeline.Stages {
			if !slices.Contains(u.StagesDone, st) {
				at = "before its " + string(st) + " stage"
				break
			}
		}
		return fmt.Sprintf("date %s: %s stopped %s%s and was not run again (killed, or run with --until): settle run --date %s%s finishes it",
			u.Key.Date, which, at, planned, u.Key.Date, shard)
	case u.Planned > 0:
		return fmt.Sprintf("date %s: %s left %d requests planned and never sent (a run of it stopped before sending them; what they net waits on them): settle run --date %s%s sends them",
			u.Key.Date, which, u.Planned, u.Key.Date, shard)
	default:
		return fmt.Sprintf("date %s: %s failed and was not run again (%s): settle run --date %s%s runs it again",
			u.Key.Date, which, firstLine(u.LastError, 200), u.Key.Date, shard)
	}
}

// firstLine is the first line of s, cut to at most n bytes at a rune's
// start ("..." added when cut).
func firstLine(s string, n int) string {
	cut := false
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s, cut = s[:i], true
	}
	if len(s) > n {
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s, cut = s[:n], true
	}
	if cut {
		s += "..."
	}
	return s
}

// waitingListMax is how many runs waiting on a person the night's note
// names.
const waitingListMax = 10

// shardNames names shards for a message: "shard 1/4", "shards 1/4, 3/4".
func shardNames(shards []pipeline.Shard) string {
	if len(shards) == 1 {
		return "shard " + joinShards(shards)
	}
	return "shards " + joinShards(shards)
}

// lockRetry is how often a run waiting for its date's lock (--lock-wait)
// tries it again.
const lockRetry = 2 * time.Second

// lockWaitFlag is --lock-wait, of settle run and settle report.
func lockWaitFlag() cli.Flag {
	return &cli.DurationFlag{Name: flagLockWait, EnvVars: []string{"SETTLE_LOCK_WAIT"},
		Usage: "while another settle process holds the date (a manual run of it, say), try again every few seconds for this long before exit 75 (0: exit 75 at once)"}
}

// checkLockWait refuses a negative --lock-wait (usage, exit 2).
func checkLockWait(c *cli.Context) error {
	if w := c.Duration(flagLockWait); w < 0 {
		return pipeline.Errorf(pipeline.KindUsage, "--"+flagLockWait, "%s: want a duration, 0 (exit 75 at once) or more", w)
	}
	return nil
}

// whileLocked is settle, run again every lockRetry while another process
// holds the date's lock (KindLocked), until --lock-wait is over: a nightly
// run that finds a person's run of its date working waits for it, and
// then goes on (a re-run of a finished date sends nothing), rather than
// fail the Job after three quick retries. Taking the lock is the first
// thing a run of a date does, so a refused one did nothing. Told to stop
// while it waits, it ends at once, interrupted (exit 1).
func (cfg *config) whileLocked(c *cli.Context, settle func(pipeline.Date) error) func(pipeline.Date) error {
	return func(d pipeline.Date) error {
		wait := c.Duration(flagLockWait)
		deadline := time.Now().Add(wait)
		for waited := false; ; waited = true {
			err := settle(d)
			left := time.Until(deadline)
			if pipeline.KindOf(err) != pipeline.KindLocked || left <= 0 {
				if waited && err == nil {
					cfg.note(fmt.Sprintf("%s: the other run ended; this one went on", d), "date", d.String())
				}
				if wait > 0 && pipeline.KindOf(err) == pipeline.KindLocked {
					// Said, or the 75 reads as if nothing was waited for;
					// also when the first try alone outlasted the wait (a
					// loaded machine: --lock-wait 1s), which tried once.
					return fmt.Errorf("%w (waited --lock-wait %s for it: nothing was done)", err, wait)
				}
				return err
			}
			if !waited {
				cfg.note(fmt.Sprintf("%s: another settle process holds the date; waiting for it, up to --lock-wait %s", d, wait),
					"date", d.String(), "lock_wait", wait)
			}
			t := time.NewTimer(min(lockRetry, left))
			select {
			case <-c.Context.Done():
				// Told to stop: interrupted, exit 1, as a stop is in every
				// stage (75 said the lock was still held past the wait).
				t.Stop()
				return lockWaitStopped{fmt.Errorf("%s: stopped while waiting for the date's lock, which another settle process holds (%w): nothing was done", d, context.Cause(c.Context))}
			case <-t.C:
			}
		}
	}
}

// lockWaitStopped is a run told to stop while it waited for its date's
// lock (whileLocked): interrupted, exit 1, having done nothing, so its
// metrics are left as they are (metricsSink.flush), as a 75's are.
type lockWaitStopped struct{ error }

func (e lockWaitStopped) Unwrap() error { return e.error }

// backfill settles the dates in order. Each date's exit is its own: a date
// that ends needing a person (exit 4) does not hold the later dates
// hostage; they are listed at the end and the backfill exits 4. Nor does a
// date whose own run ended so or well but whose look for orders written
// late into earlier windows failed (lateOrdersUnchecked): listed at the
// end, the backfill exits 1. Any other failure (1, 2, 3, 75) stops it at
// that date: what follows may depend on it (carried balances, orders
// settled once ever).
func backfill(dates []pipeline.Date, settle func(pipeline.Date) error) error {
	var attention, unchecked []string
	var first, firstUnchecked error
	for _, d := range dates {
		err := settle(d)
		if err == nil {
			continue
		}
		if len(dates) == 1 {
			return err
		}
		if u := (lateOrdersUnchecked{}); errors.As(err, &u) {
			unchecked = append(unchecked, d.String())
			if firstUnchecked == nil {
				firstUnchecked = err
			}
			if u.needsPerson {
				attention = append(attention, d.String())
				if first == nil {
					first = err
				}
			}
			continue
		}
		if pipeline.KindOf(err) == pipeline.KindNeedsPerson {
			attention = append(attention, d.String())
			if first == nil {
				first = err
			}
			continue
		}
		done := "earlier dates are done"
		if len(attention) > 0 {
			done = fmt.Sprintf("earlier dates are done, %s need a person", strings.Join(attention, ", "))
		}
		if len(unchecked) > 0 {
			done += fmt.Sprintf("; the look for orders written late failed at %s", strings.Join(unchecked, ", "))
		}
		return fmt.Errorf("backfill stopped at %s (%s; run again to resume): %w", d, done, err)
	}
	if len(unchecked) > 0 {
		people := ""
		if len(attention) > 0 {
			people = fmt.Sprintf("; %d need a person: %s (the first: %v)", len(attention), strings.Join(attention, ", "), first)
		}
		return lateOrdersUnchecked{pipeline.E(pipeline.KindFailed, "backfill",
			fmt.Errorf("%d of %d dates were run, but their look for orders written into windows already read failed: %s (the first: %w)%s",
				len(unchecked), len(dates), strings.Join(unchecked, ", "), firstUnchecked, people)), len(attention) > 0}
	}
	if len(attention) > 0 {
		return pipeline.E(pipeline.KindNeedsPerson, "backfill",
			fmt.Errorf("%d of %d dates need a person: %s (settle status --date D says why; the first: %w)",
				len(attention), len(dates), strings.Join(attention, ", "), first))
	}
	return nil
}

// finished reports whether every run of keys is among runs, done, with
// nothing left for a person and no item still to settle: a backfill run
// again skips its date rather than upload, distribute and reconcile it
// again (what a re-run of the date alone does). A date done whose reconcile
// found something for a person is run again (its exit says so), and so is
// one with items still recorded (of a channel skipped then, whose provider
// may be configured now).
func finished(ctx context.Context, l *ledger.Ledger, runs []*pipeline.Run, keys []pipeline.RunKey) (bool, error) {
	for _, k := range keys {
		i := slices.IndexFunc(runs, func(r *pipeline.Run) bool { return r.Key == k })
		if i < 0 || runs[i].State != pipeline.RunDone || runs[i].LastError != "" {
			return false, nil
		}
		if open, err := l.ItemsToSettle(ctx, runs[i].ID); err != nil || open {
			return false, err
		}
	}
	return true, nil
}

// settleShards settles a date that was run in shards, asked for as a whole
// (a re-run by hand, or a backfill, of an Indexed Job's date): its shards,
// one after another, each as its own pod would, under the date's lock. Their
// sellers are apart, so a shard that fails does not stop the next, but for
// a configuration error (exit 2: the next would meet it too) or an
// interruption. The date's error is the one that matters most to whoever
// runs it: a failure a retry may cure (exit 1, 75) before a configuration
// error (2), rejected input (3) and work that needs a person (4), the shards
// that did not finish named with it. The output ends with the date's count
// of new money movements; the metrics file holds the shards together (the
// Pushgateway gets each shard's group, as from the Indexed Job's pods).
func (cfg *config) settleShards(ctx context.Context, l *ledger.Ledger, o *runOptions, keys []pipeline.RunKey) error {
	d := o.key.Date
	cfg.note(fmt.Sprintf("%s was run in shards: settling %s one after another", d, shardList(keys)),
		"date", d.String(), "shards", shardList(keys))
	var (
		sent         ledger.Sent
		worst        error
		failed, left []string
		people       bool // a shard's run ended needing a person
	)
	for i, k := range keys {
		so := *o
		so.key, so.dateSent = k, &sent
		err := cfg.settle(ctx, l, &so)
		if err == nil {
			continue
		}
		failed = append(failed, fmt.Sprintf("%s (exit %d)", k.Shard, codeOf(err)))
		people = people || codeOf(err) == pipeline.KindNeedsPerson.ExitCode()
		if worse(err, worst) {
			worst = fmt.Errorf("%s: %w", k, err)
		}
		if ctx.Err() != nil || pipeline.KindOf(err) == pipeline.KindUsage {
			for _, k := range keys[i+1:] {
				left = append(left, k.Shard.String())
			}
			break
		}
	}
	if cfg.json {
		cfg.logger().Info("done", "date", d.String(), "stage", "summary", "runs", len(keys),
			"new_money_movements", sent.Effects, "requests_sent", sent.Requests, "requests_refused", sent.Refused)
	} else {
		fmt.Fprintf(cfg.stdout, "%s, %d runs: %d new money movements", d, len(keys), sent.Effects)
		printSent(cfg.stdout, sent)
	}
	if worst == nil {
		return nil
	}
	msg := fmt.Sprintf("%s: %d of %d runs did not finish: %s", d, len(failed)+len(left), len(keys), strings.Join(failed, ", "))
	if len(left) > 0 {
		msg += "; not run: " + strings.Join(left, ", ")
	}
	out := fmt.Errorf("%s; %w", msg, worst)
	if u := (lateOrdersUnchecked{}); errors.As(worst, &u) && people && !u.needsPerson {
		return lateOrdersUnchecked{out, true} // another shard's run needs a person
	}
	return out
}

// worse reports whether err, a shard's run's, is to be its date's error
// rather than worst (nil: none yet): of a worse exit code, or of the same
// but a failure of the run itself where worst is only its look for orders
// written late failing (lateOrdersUnchecked), which a backfill goes on
// past and a failure of a run must not pass for.
func worse(err, worst error) bool {
	if worst == nil {
		return true
	}
	if worseExit(codeOf(err), codeOf(worst)) != codeOf(worst) {
		return true
	}
	return codeOf(err) == codeOf(worst) && errors.As(worst, new(lateOrdersUnchecked)) && !errors.As(err, new(lateOrdersUnchecked))
}

// worseExit is the exit code that matters more to whoever runs settle: a
// failure a retry may cure (1, 75) before a configuration error (2),
// rejected input (3) and work that needs a person (4), and any before 0.
func worseExit(a, b int) int {
	order := []int{1, 75, 2, 3, 4}
	ia, ib := slices.Index(order, a), slices.Index(order, b)
	switch {
	case ia < 0:
		return b
	case ib < 0 || ia < ib:
		return a
	}
	return b
}

// metricsSink gathers the metrics of every run of one invocation (the
// dates of a backfill, the shards of a date run one after another). Each
// run's are reported as it ends; when there was more than one, the
// invocation's are reported again at its end (flush), so that the last
// word is the invocation's and not its last run's.
type metricsSink struct {
	// mu guards the rest: a stop cut short (reportCut) flushes the sink
	// while the run's goroutine may still write it.
	mu   sync.Mutex
	runs []load.RunMetrics
	// The date the invocation got to, and its shard (shardKnown: the
	// shard's flags could be read).
	date       pipeline.Date
	shard      pipeline.Shard
	shardKnown bool
}

// at records the date the invocation got to, and its shard (known: its
// flags could be read).
func (s *metricsSink) at(d pipeline.Date, sh pipeline.Shard, known bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.date = d
	if known {
		s.shard, s.shardKnown = sh, true
	}
}

// add records the metrics of a run that ended.
func (s *metricsSink) add(m load.RunMetrics) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs = append(s.runs, m)
}

// setHealth puts what the ledger says of the shard into its metrics: the
// orders left out on purpose still open for every channel, 0 for one with
// none (and no oldest date), so that a channel's last figure is replaced
// once it is paid.
func setHealth(m *load.RunMetrics, h ledger.ShardHealth) {
	m.LastSuccess, m.Unsettled, m.OldestUnsettled = h.LastSuccess, h.Unsettled, h.OldestUnsettled
	m.SkippedOpen = map[pipeline.Channel]int64{}
	for _, spec := range channelSpecs() {
		m.SkippedOpen[spec.Channel] = 0
	}
	for ch, n := range h.SkippedOpen {
		m.SkippedOpen[ch] += n
	}
	m.SkippedOpenOldest = h.SkippedOpenOldest
}

// flush reports the invocation's metrics when it ran more than one run, or
// ended otherwise than its one run (a backfill stopped at a date refused
// before its run opened, a night that found nights missed), or failed
// before any run (then only its exit code, dated the date it got to, with
// its shard's health when the ledger gives it): to the Pushgateway, each
// shard's group summed over its runs (their worst exit, the shard's last
// success read again), the invocation's shard's with the invocation's exit
// when that is worse; to the metrics file, all of them summed with the
// invocation's exit code (the oldest shard's last success). It also
// reports a stop cut short (reportCut: l nil, the shard's health
// unread). An invocation that ended 75 (another process held a date), or
// was stopped while it waited for a date's lock, is reported as its runs
// ended, and one that ran none reports nothing: the
// Pushgateway's groups and the file keep what they said. ctx bounds the pushes and the reading of the health: a run
// told to stop reports after the stop (context.WithoutCancel).
func (s *metricsSink) flush(ctx context.Context, cfg *config, l *ledger.Ledger, pushURL, file string, err error) {
	if s == nil {
		return
	}
	s.mu.Lock()
	snap := &metricsSink{runs: slices.Clone(s.runs), date: s.date, shard: s.shard, shardKnown: s.shardKnown}
	s.mu.Unlock()
	s = snap
	var shards []pipeline.Shard
	byShard := map[pipeline.Shard][]load.RunMetrics{}
	worst := 0
	for _, m := range s.runs {
		if byShard[m.Shard] == nil {
			shards = append(shards, m.Shard)
		}
		byShard[m.Shard] = append(byShard[m.Shard], m)
		worst = worseExit(worst, m.ExitCode)
	}
	inv := codeOf(err)
	if inv == pipeline.KindLocked.ExitCode() || errors.As(err, new(lockWaitStopped)) {
		// Exit 75: another process holds a date, so nothing was done of it
		// and nothing new is known; that process reports its own run. The
		// invocation reports its runs alone, or nothing: its 75 replaced
		// an earlier run's 4 (needs a person) at the Pushgateway and in
		// the textfile, and the page on it cleared while the work still
		// waited for a person (found by a review). So does one stopped
		// while it waited for the lock (exit 1, nothing done either).
		inv = worst
	}
	if len(s.runs) == 1 && s.runs[0].ExitCode == inv {
		return
	}
	if len(s.runs) == 0 && inv == 0 {
		return // nothing ran: every date was done (the file says how it ended), or another process holds the date
	}
	// What the invocation ended with beyond its runs (failed before one
	// opened, nights missed) is its shard's: without that, its group said
	// the last run's 0 while the Job failed.
	beyond := inv != worst && worseExit(worst, inv) == inv
	if beyond && s.shardKnown && byShard[s.shard] == nil {
		shards = append(shards, s.shard)
	}
	var groups []load.RunMetrics
	for _, sh := range shards {
		code := 0
		for _, m := range byShard[sh] {
			code = worseExit(code, m.ExitCode)
		}
		g := load.Combine(byShard[sh], code)
		g.Shard = sh
		if len(byShard[sh]) == 0 {
			g.Date, g.NoRun = s.date, true
		}
		if beyond && s.shardKnown && sh == s.shard {
			g.ExitCode = worseExit(code, inv)
		}
		g.NoHealth = true
		if l != nil {
			if h, err := l.ShardHealth(ctx, sh); err == nil {
				setHealth(&g, h)
				g.NoHealth = false
			}
		}
		groups = append(groups, g)
		if pushURL != "" {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := load.PushMetrics(pctx, &http.Client{Timeout: 10 * time.Second}, pushURL, g); err != nil {
				cfg.warn("metrics", err)
			}
			cancel()
		}
	}
	if file == "" {
		return
	}
	m := load.Combine(groups, inv)
	if len(groups) > 1 && !m.NoHealth && l != nil {
		// Groups of several shardings (a backfill across a change of
		// SETTLE_SHARDS, a sharded date's shards with the invocation's
		// whole group): shard 0 of each counts the other shardings' runs
		// (ShardHealth), so their sum counted those twice. Each run once.
		shs := make([]pipeline.Shard, len(groups))
		for i, g := range groups {
			shs[i] = g.Shard
		}
		if h, err := l.ShardsHealth(ctx, shs); err == nil {
			last := m.LastSuccess // the oldest of the shards', as Combine took it
			setHealth(&m, h)
			m.LastSuccess = last
		} else {
			m.NoHealth = true
		}
	}
	if len(s.runs) == 0 {
		// Without the ledger, or the shard (its flags are what failed), the
		// exit code alone: another shard's health would say all is well.
		m = load.RunMetrics{Date: s.date, Shard: s.shard, ExitCode: inv, NoRun: true, NoHealth: true}
		if len(groups) == 1 {
			m = groups[0]
			m.ExitCode = inv
		}
	}
	if err := load.WriteMetricsFile(file, m); err != nil {
		cfg.warn("metrics", err) // metrics never fail a run
	}
}

// shardList lists the keys' shards, "0/4, 1/4, 2/4, 3/4".
func shardList(keys []pipeline.RunKey) string {
	shards := make([]pipeline.Shard, len(keys))
	for i, k := range keys {
		shards[i] = k.Shard
	}
	return joinShards(shards)
}

// joinShards lists shards for a message: "1/4, 3/4".
func joinShards(shards []pipeline.Shard) string {
	s := make([]string, len(shards))
	for i, sh := range shards {
		s[i] = sh.String()
	}
	return strings.Join(s, ", ")
}

// runOptions is everything a run needs, resolved from flags.
type runOptions struct {
	unfinished   bool // the day may be read before it is over by dayOverMargin on the database's clock: the demo's, which it seeds itself
	standbyOfPri bool // --source-standby-of-primary
	key          pipeline.RunKey
	window       pipeline.Window
	tz           string
	until        pipeline.Stage
	classify     func(seller func(string) (pipeline.Seller, bool, error)) pipeline.Classifier
	rulesHash    string
	query        string
	queryName    string
	sellersQ     string
	sellersName  string
	lateQ        string
	lateName     string
	rules        *transform.Rules
	minPayout    map[pipeline.Currency]int64
	recheckDays  int
	watchDays    int  // --rejected-watch-days of a nightly run; 0 otherwise
	reconcileAll bool // --reconcile-all
	lateOrders   bool // --late-orders
	sourceURL    string
	reports      reportWriter
	maxRejectRt  float64
	infinia      *infiniaSetup     // nil: not configured
	payProtocol  *payProtocolSetup // nil: not configured
	wechat       *weChatSetup      // nil: not configured
	wait, poll   time.Duration
	parallel     int
	pushURL      string
	metricsFile  string
	// skip lists channels the operator leaves unpaid on purpose.
	skip map[pipeline.Channel]bool
	// reextract reads the date again (drops extract and transform).
	reextract bool
	// newSource lets the run read another platform database than its
	// date, or the dates before it, read from (RunParams.NewSource).
	newSource bool
	// newAccount lets the run send from other accounts than the latest
	// earlier date sent from (pipeline.RunParams.NewAccounts).
	newAccount bool
	// newTZ opens the date in its zone though a date beside it was run in
	// another (checkNeighbours).
	newTZ bool
	// sendPastMemory sends the new requests of a date past a provider's
	// memory (--send-past-memory; pipeline.DatePastMemory).
	sendPastMemory bool
	// dateSent, for a run of a date run in shards one after another, sums
	// what each sent, for the date's last line.
	dateSent *ledger.Sent
	// metrics gathers the metrics of every run of the invocation.
	metrics *metricsSink
	// preflights are cheap authenticated calls to the configured
	// providers, made once at the start of the first sending stage of each
	// invocation, before anything is sent (a KindUsage error: exit 2).
	preflights []func(context.Context) error
}

// maxBackfill bounds --from/--to: a typo should not start a year of runs.
const maxBackfill = 366

// ledgerSkew is how far this machine's clock and the ledger database's may
// be apart: the stages compare the times the ledger records (its
// database's clock: when a trade file was uploaded, when a request was
// last answered) with this machine's, to take a trade file Infinia does
// not know as lost after --infinia-lost-after, or a refused repeat as
// failed after its wait. Infinia signs no time, so nothing else would
// catch a pod a day ahead holding every file of the night as lost.
const ledgerSkew = 5 * time.Minute

// wallClockKey carries, in a test's context, the clock checkLedgerClock
// reads instead of the machine's: cfg.now is the business date's clock,
// days away from the database's in the tests of a date's own night.
type wallClockKey struct{}

// checkLedgerClock refuses a run (exit 2) on a machine whose clock is
// more than ledgerSkew from the ledger database's, naming both.
func checkLedgerClock(ctx context.Context, l *ledger.Ledger) error {
	db, err := l.Clock(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	if f, ok := ctx.Value(wallClockKey{}).(func() time.Time); ok {
		now = f()
	}
	if d := now.Sub(db); d > ledgerSkew || d < -ledgerSkew {
		return pipeline.Errorf(pipeline.KindUsage, "clock", "clock skew: this machine's clock reads %s, the ledger database's %s (%s apart, more than %s): "+
			"the stages judge the times the ledger records (a trade file's upload, a request's last answer) by this machine's clock; "+
			"set the clocks right (NTP) and run again: nothing was sent", now.UTC().Format(time.RFC3339), db.UTC().Format(time.RFC3339), d.Abs().Round(time.Second), ledgerSkew)
	}
	return nil
}

// dayOverMargin is how long after its end a day is settled: the orders
// confirmed in its last moments are committed a little later (a snapshot
// taken before would miss them for good, as a run records the day it read
// as read), and this machine's clock and the platform database's may be a
// few minutes apart. Both clocks must be past it: checkOver checks this
// machine's, extract.Source the database's as it reads the day.
const dayOverMargin = 10 * time.Minute

// checkOver refuses to settle a date that is not over yet in --tz, by
// dayOverMargin, on this machine's clock: its orders are still being
// confirmed, and a run records the day it read as done, so the rest would
// never be settled (a dry run may look at it). flag is the flag that gave
// d, named in the error.
func (cfg *config) checkOver(c *cli.Context, flag string, d pipeline.Date) error {
	loc, err := location(c)
	if err != nil {
		return err
	}
	if end, now := pipeline.WindowOf(d, loc).End, cfg.clock(); end.Add(dayOverMargin).After(now) {
		return pipeline.Errorf(pipeline.KindUsage, flag, "%s is not over yet in %s (it ends at %s; this machine's clock reads %s): a date is settled once its day is over, from %v after its end on",
			d, loc, end.Format(time.RFC3339), now.In(loc).Format(time.RFC3339), dayOverMargin)
	}
	return nil
}

// runDates is --date (or yesterday), or every date of --from..--to.
func (cfg *config) runDates(c *cli.Context) ([]pipeline.Date, error) {
	loc, err := location(c)
	if err != nil {
		return nil, err
	}
	from, to := c.String("from"), c.String("to")
	if from == "" && to == "" {
		d, err := cfg.businessDate(c, loc)
		return []pipeline.Date{d}, err
	}
	if from == "" || to == "" || c.String(flagDate) != "" {
		return nil, pipeline.Errorf(pipeline.KindUsage, "--from/--to", "give both --from and --to, and no --date")
	}
	d1, err := flagDateValue("--from", from)
	if err != nil {
		return nil, err
	}
	d2, err := flagDateValue("--to", to)
	if err != nil {
		return nil, err
	}
	var dates []pipeline.Date
	for d := d1; !d2.Before(d); d = d.AddDays(1) {
		if len(dates) == maxBackfill {
			return nil, pipeline.Errorf(pipeline.KindUsage, "--from/--to", "more than %d dates", maxBackfill)
		}
		dates = append(dates, d)
	}
	if len(dates) == 0 {
		return nil, pipeline.Errorf(pipeline.KindUsage, "--from/--to", "%s is after %s", from, to)
	}
	return dates, nil
}

func (cfg *config) runOptions(c *cli.Context, d pipeline.Date) (*runOptions, error) {
	loc, err := location(c)
	if err != nil {
		return nil, err
	}
	until, err := pipeline.ParseStage(c.String("until"))
	if err != nil {
		return nil, pipeline.E(pipeline.KindUsage, "--until", err)
	}
	shard, err := cfg.shard(c)
	if err != nil {
		return nil, err
	}
	skip, err := parseSkipChannels(c.StringSlice(flagSkipChannel))
	if err != nil {
		return nil, err
	}
	rules, err := loadRules(c.String(flagRules), d)
	if err != nil {
		return nil, err
	}
	query, name, err := sourceQuery(c)
	if err != nil {
		return nil, err
	}
	sq, sname, err := sellersQuery(c)
	if err != nil {
		return nil, err
	}
	lq, lname, err := lateRefundsQuery(c)
	if err != nil {
		return nil, err
	}
	minPayout, err := parseMinPayout(c.String(flagMinPayout))
	if err != nil {
		return nil, err
	}
	dbURL, err := databaseURL(c)
	if err != nil {
		return nil, err
	}
	src, err := sourceURL(c, dbURL)
	if err != nil {
		return nil, err
	}
	for _, u := range []struct{ flag, url string }{{flagDatabaseURL, dbURL}, {flagSourceURL, src}} {
		if host := ledger.UnverifiedServer(u.url); host != "" && (u.flag == flagDatabaseURL || src != dbURL) {
			cfg.logger().Warn("sslmode=require encrypts but does not check that the server is "+host+": a network in between can answer for it and take the password; set sslmode=verify-full with sslrootcert=the server's CA file",
				"flag", "--"+u.flag)
		}
	}
	watchDays, err := watchDaysFlag(c)
	if err != nil {
		return nil, err
	}
	ratio := c.Float64("max-reject-ratio")
	if !(ratio >= 0 && ratio <= 1) { // NaN too: it would open the gate
		return nil, pipeline.Errorf(pipeline.KindUsage, "--max-reject-ratio", "want a number from 0 to 1, got %v", ratio)
	}
	for _, f := range []string{flagProviderRate, flagWXQPS, flagWXSubQPS} {
		if _, err := rateFlag(c, f); err != nil { // also of a provider not configured: a typo is one
			return nil, err
		}
	}
	inf, err := cfg.infiniaFromFlags(c)
	if err != nil {
		return nil, err
	}
	pp, err := cfg.payProtocolFromFlags(c)
	if err != nil {
		return nil, err
	}
	w := pipeline.WindowOf(d, loc)
	wx, err := cfg.weChatFromFlags(c)
	if err != nil {
		return nil, err
	}
	o := &runOptions{infinia: inf, payProtocol: pp, wechat: wx, skip: skip, reextract: c.Bool(flagReextract), newTZ: c.Bool(flagNewTZ), newAccount: c.Bool(flagNewAccount), newSource: c.Bool(flagNewSource), sendPastMemory: c.Bool(flagSendPastMemory), wait: c.Duration(flagProviderWait), poll: c.Duration(flagProviderPoll), parallel: c.Int(flagParallel), pushURL: c.String("metrics-pushgateway"), metricsFile: c.String("metrics-file"),
		key: pipeline.RunKey{Date: d, Shard: shard}, window: w, tz: loc.String(), until: until,
		classify: classifier(rules, d, w), rulesHash: rules.Hash(), query: query, queryName: name, sellersQ: sq, sellersName: sname,
		lateQ: lq, lateName: lname, rules: rules, minPayout: minPayout, recheckDays: c.Int(flagRecheckDays), watchDays: watchDays, reconcileAll: c.Bool(flagReconcileAll), lateOrders: c.Bool(flagLateOrders), standbyOfPri: c.Bool(flagSourceStandbyOfPrimary), sourceURL: src, reports: reportWriter{reports: reportsFor(c)}, maxRejectRt: ratio,
	}
	// --skip-channel leaves unpaid the orders of a channel nobody pays:
	// with its provider configured they would be paid all the same.
	configured := o.configured()
	for _, spec := range channelSpecs() {
		if ch := spec.Channel; skip[ch] && configured[ch] {
			return nil, pipeline.Errorf(pipeline.KindUsage, "--"+flagSkipChannel,
				"channel %s has its provider configured (%s), which pays its orders: to leave them unpaid, leave that unset", ch, channelFlag(ch))
		}
	}
	return o, nil
}

// shard is --shard, else JOB_COMPLETION_INDEX of N=SETTLE_SHARDS (a
// Kubernetes Indexed Job), else the whole day.
func (cfg *config) shard(c *cli.Context) (pipeline.Shard, error) {
	s := c.String(flagShard)
	if s == "" {
		idx, n := cfg.getenv("JOB_COMPLETION_INDEX"), cfg.getenv("SETTLE_SHARDS")
		switch {
		case idx != "" && n != "":
			s = idx + "/" + n
		case n != "" && n != "1" && n != "0":
			// Every pod would settle the whole day.
			return pipeline.Shard{}, pipeline.Errorf(pipeline.KindUsage, "--shard",
				"SETTLE_SHARDS=%s is set without JOB_COMPLETION_INDEX (a Kubernetes Indexed Job sets it): give --shard I/N, or unset SETTLE_SHARDS", n)
		case idx != "" && idx != "0":
			return pipeline.Shard{}, pipeline.Errorf(pipeline.KindUsage, "--shard",
				"JOB_COMPLETION_INDEX=%s is set without SETTLE_SHARDS: set SETTLE_SHARDS to the Job's completions, or give --shard I/N", idx)
		}
	}
	if s == "" {
		return pipeline.Whole, nil
	}
	sh, err := pipeline.ParseShard(s)
	if err != nil && c.String(flagShard) == "" {
		// Read from the Job's variables: named, not --shard, which was
		// not given (found by an operator's review).
		return sh, pipeline.E(pipeline.KindUsage, "JOB_COMPLETION_INDEX/SETTLE_SHARDS", err)
	}
	if err != nil {
		return sh, pipeline.E(pipeline.KindUsage, "--shard", err)
	}
	return sh, nil
}

// sourceDB names the platform database src reaches as its server names
// it: the database's name and the cluster's system identifier (which a
// hot standby shares with its primary), for ledger.OpenRun to hold a date,
// and the dates after it, to one platform database
// (pipeline.RunParams.SourceDB). "" when the server would not say (a
// warning): the run is not judged.
func (cfg *config) sourceDB(ctx context.Context, src *sqlx.DB) string {
	var name string
	err := src.QueryRowContext(ctx, `SELECT current_database() || ' (system ' || system_identifier || ')' FROM pg_control_system()`).Scan(&name)
	if err != nil {
		if ctx.Err() == nil {
			cfg.logger().Warn("the platform database would not say which it is: not compared with the one the dates before read from", "error", err.Error())
		}
		return ""
	}
	return name
}

// settle runs (or resumes) the date and prints what happened.
func (cfg *config) settle(ctx context.Context, l *ledger.Ledger, o *runOptions) error {
	src, err := openDB(ctx, o.sourceURL)
	if err != nil {
		return err
	}
	defer src.Close()
	if cfg.json {
		cfg.logger().Info("settle run", "date", o.key.Date.String(), "shard", o.key.Shard.String(),
			"window_start", o.window.Start, "window_end", o.window.End, "tz", o.tz)
	} else {
		fmt.Fprintf(cfg.stdout, "settle run %s (window %s .. %s, %s)\n", o.key,
			o.window.Start.Format("2006-01-02 15:04:05"), o.window.End.Format("2006-01-02 15:04:05"), o.tz)
	}
	window := func(pipeline.Date) pipeline.Window { return o.window }
	// The sellers of the date's other shards that read it before this
	// one (read below, when this invocation reads the day): a seller of
	// this shard with an Infinia seller id one of theirs has is rejected
	// as two of one shard are.
	var others map[string]pipeline.Seller
	watch := &sharedWatch{SellerSource: sellerSource(src, o.sellersQ, o.sellersName, cfg.logger())}
	runner := &pipeline.Runner{
		Store: l,
		Log:   cfg.logger(),
		Live:  cfg.live,
		Now:   cfg.now,
		Stages: map[pipeline.Stage]pipeline.StageFunc{
			pipeline.StageExtract: pipeline.ExtractStage(cfg.extractSource(src, o.query, o.queryName, o.unfinished, o.standbyOfPri),
				sellerSource(src, o.sellersQ, o.sellersName, cfg.logger()), l, window),
			pipeline.StageTransform: pipeline.TransformStage(l, func(m map[string]pipeline.Seller) pipeline.Classifier {
				return o.classify(fromMap(m, others))
			}),
		},
		// A fresh run through transform reads, records and classifies the
		// day in one pass; a resumed one runs the stages one by one.
		Passes: map[pipeline.Stage]pipeline.Pass{pipeline.StageExtract: {Through: pipeline.StageTransform,
			Run: pipeline.ExtractTransform(cfg.extractSource(src, o.query, o.queryName, o.unfinished, o.standbyOfPri), watch, l, window, watch.classifier(o.classify))}},
		Gate: rejectGate(l, o.maxRejectRt),
		// Upload, distribute and reconcile run again on every invocation:
		// Pay Protocol payments held while confirming are verified again
		// (and go out in a further trade file once paid), carried balances
		// are paid once the cause is gone, timing gaps are reconciled
		// again. Nothing is sent twice: every side effect is keyed.
		Repeat: map[pipeline.Stage]bool{pipeline.StageUpload: true, pipeline.StageDistribute: true, pipeline.StageReconcile: true},
	}
	if o.reextract {
		runner.Reextract = func(ctx context.Context, key pipeline.RunKey) error {
			run, err := l.GetRun(ctx, key)
			if err != nil || run == nil { // nothing recorded yet: nothing to drop
				return err
			}
			return l.Reextract(ctx, run.ID)
		}
	}
	// The configured providers, each built by its own package: their
	// upload parts in order, their distribute chains side by side after
	// the channel check, their matchers. Orders of a channel no provider
	// settles are work left undone: the channel check says so (exit 4)
	// unless the operator skips the channel on purpose.
	providers := o.providers(l, src, window, cfg.clock, cfg.logger())
	defer pipeline.CloseAll(providers)
	var settles []pipeline.Channel
	for _, p := range providers {
		settles = append(settles, p.Settles...)
	}
	plugged := pipeline.Plug(channelCheck(l, settles, o.skip, o.accounts()), providers...)
	checks := append([]func(context.Context) error(nil), o.preflights...)
	if o.infinia != nil {
		// The late-refunds query is read in the distribute stage, after
		// the trade files went up: checked before anything is sent, a
		// broken one stops the day whole (exit 2), not half sent.
		late := &extract.LateRefunds{DB: src, Query: o.lateQ, Name: o.lateName}
		checks = append(checks, func(ctx context.Context) error { return late.Check(ctx, o.window) })
	}
	runner.Preflight = preflight(append(checks, plugged.Preflight))
	runner.Stages[pipeline.StageUpload] = plugged.Upload
	if plugged.Upload == nil {
		runner.Stages[pipeline.StageUpload] = func(context.Context, *pipeline.Run) (string, error) {
			return "nothing uploaded: no provider of the run uploads (Infinia Pay is not configured: --infinia-url)", nil
		}
	}
	// Before anything is built or sent, on every invocation: the orders
	// held for their sellers' accounts are released once the platform's
	// sellers give them (the rest need a person, exit 4).
	runner.Stages[pipeline.StageUpload] = pipeline.Combine(
		pipeline.SellerHoldStage(l, sellerSource(src, o.sellersQ, o.sellersName, cfg.logger()), channelSpecs(), transform.CheckSeller),
		runner.Stages[pipeline.StageUpload])
	runner.Stages[pipeline.StageDistribute] = plugged.Distribute
	runner.Stages[pipeline.StageReconcile] = cfg.pruningFinal(l, pipeline.ReconcileStageWatching(l, append(plugged.Matchers, pipeline.PlatformMatcher(l)), plugged.Watchers, o.reports.stage(l), o.recheckDays))
	// A run that reads the day now - a new one, or one read again with
	// --reextract or resumed before its extract stage was done, in another
	// zone than its run's - is refused a window that does not meet its
	// neighbours' (a --reextract in another zone read the day with a
	// warning alone, and the orders between the windows by no run: found
	// by a review). One read again in its run's zone reads the window it
	// read (the date a zone changed on, opened with --new-tz, was refused,
	// advising the old zone). The run records the zone it reads the day in
	// (Ledger.OpenRun).
	run, err := l.GetRun(ctx, o.key)
	if err != nil {
		return err
	}
	if o.key.Shard.Count > 1 && (run == nil || o.reextract || !run.Done(pipeline.StageTransform)) {
		if others, err = l.OtherShardSellers(ctx, o.key); err != nil {
			return err
		}
		watch.others = others
		if err := warnOtherShardsRules(ctx, cfg, l, o); err != nil {
			return err
		}
	}
	warning, err := checkZone(ctx, l, o, run)
	if err != nil {
		return err
	}
	if warning != "" {
		cfg.logger().Warn(warning)
	}
	sendsBefore, err := l.Sends(ctx, o.key, plugged.Pays)
	if err != nil {
		return err
	}
	// The journal's newest entry before the run: what it records after,
	// under an earlier date than other dates' runs, those dates' reports
	// do not show (laterReportsNote).
	mark, err := l.JournalMark(ctx)
	if err != nil {
		return err
	}
	started := time.Now()
	params := pipeline.RunParams{TimeZone: o.tz, RulesHash: o.rulesHash, ConfigHash: configHash(o.tz, o.query), Accounts: o.accounts(), NewAccounts: o.newAccount,
		SourceDB: cfg.sourceDB(ctx, src), NewSource: o.newSource}
	if o.rules != nil {
		params.RulesName, params.RulesBody = o.rules.File()
	}
	res, err := runner.Execute(ctx, o.key, params, o.until)
	err = cfg.whyReadOnly(ctx, err) // before the run's metrics take its exit code
	if ctx.Err() == nil {
		// Orders written into the windows of dates read already (the
		// recheck days', and this date's when read before): beside the
		// run, whatever it ended with, changing none of its work.
		var runID int64 // the run that looks, which the ledger records with what it finds
		if res != nil && res.Run != nil {
			runID = res.Run.ID
		}
		err = withLateOrders(err, cfg, func() (error, error) {
			return cfg.lateOrders(ctx, l, src, o, run != nil && run.Done(pipeline.StageExtract) && !o.reextract, runID)
		})
	}
	if res != nil && res.Run != nil && (o.pushURL != "" || o.metricsFile != "") {
		if merr := cfg.reportMetrics(context.WithoutCancel(ctx), l, o, res.Run, time.Since(started), err); merr != nil {
			cfg.warn("metrics", merr) // metrics never fail a run
		}
	}
	if res != nil && res.Run != nil {
		sendsAfter, serr := l.Sends(ctx, o.key, plugged.Pays)
		if serr == nil {
			sent := ledger.Sent{Requests: sendsAfter.Requests - sendsBefore.Requests, Effects: sendsAfter.Effects - sendsBefore.Effects,
				Refused: sendsAfter.Refused - sendsBefore.Refused}
			if o.dateSent != nil {
				o.dateSent.Requests += sent.Requests
				o.dateSent.Effects += sent.Effects
				o.dateSent.Refused += sent.Refused
			}
			serr = cfg.printRunSummary(ctx, l, res, sent)
		}
		if serr != nil && err == nil {
			err = serr
		}
		cfg.laterReportsNote(ctx, l, res.Run, mark)
		if err == nil && o.until != pipeline.StageReconcile && !res.Run.Done(pipeline.StageReconcile) {
			// Stopped by --until, as asked: exit 0, and the output said
			// nothing else but "0 new money movements", as a date
			// settled would (found by an on-call's walk through the
			// runbook).
			shard := ""
			if o.key.Shard != pipeline.Whole {
				shard = " --shard " + o.key.Shard.String()
			}
			cfg.note(fmt.Sprintf("stopped after the %s stage (--until), as asked: %s is not settled; settle run --date %s%s without --until runs it to its end "+
				"(until then every nightly run names it, exit 4)", o.until, o.key.Date, o.key.Date, shard), "until", string(o.until), "settled", false)
		}
		if pipeline.KindOf(err) == pipeline.KindInput {
			// Still show what was rejected, so the operator can act on it.
			if path, rerr := o.reports.write(ctx, l, o.key.Date); rerr == nil {
				cfg.note("rejected rows are listed in "+path, "path", path)
			}
		}
	}
	return err
}

// laterReportsNote says, of a run that recorded carried-balance entries
// (Ledger.LaterDatesRunBefore) under a date before other dates' runs, or
// under one of them - a re-run of an earlier date carrying a share late,
// or clawing back a refund a later date read, dated by that date -, which
// later dates' reports do not show them in their carried in and
// carried forward until written again: a month-end check of each date's
// carried forward against the next date's carried in broke on them (found
// by a month-long audit). Reading it never fails the run.
func (cfg *config) laterReportsNote(ctx context.Context, l *ledger.Ledger, run *pipeline.Run, mark int64) {
	// Also of a run told to stop: what it recorded before is as missing.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	from, later, err := l.LaterDatesRunBefore(ctx, run, mark)
	if err != nil {
		cfg.warn("read which later dates' reports predate this run's carried balances", err)
		return
	}
	if len(later) == 0 {
		return
	}
	dates := later[0].String()
	if n := len(later); n > 1 {
		dates = fmt.Sprintf("%d dates, %s to %s", n, later[0], later[n-1])
	}
	cfg.note(fmt.Sprintf("%s: this run recorded carried balances dated %s, after later dates were run (%s): their reports' carried in and carried forward do not show them "+
		"until written again - settle report --date D for each (README, Reports), before checking one date's carried forward against the next's carried in",
		run.Key.Date, from, dates), "carried_date", from.String(), "later_dates", len(later), "first_later", later[0].String(), "last_later", later[len(later)-1].String())
}

// finalAnswersKept is how long the ledger keeps the answers a
// reconciliation found final (reconciled_final): a reconciliation of the
// same date within it does not ask them again. Older ones are pruned after
// every run's reconcile stage; a later reconciliation of their date asks
// the provider again, which is all a pruned answer costs.
const finalAnswersKept = 35 * 24 * time.Hour

// pruningFinal is the reconcile stage followed by the pruning of the final
// answers older than finalAnswersKept. Pruning never fails the run: what
// goes wrong is a warning, and the next run prunes.
func (c *config) pruningFinal(l *ledger.Ledger, stage pipeline.StageFunc) pipeline.StageFunc {
	return func(ctx context.Context, run *pipeline.Run) (string, error) {
		summary, err := stage(ctx, run)
		if ctx.Err() != nil {
			return summary, err
		}
		n, perr := l.PruneFinal(ctx, finalAnswersKept)
		if perr != nil {
			c.warn("prune the final answers", perr)
		} else if n > 0 {
			summary += fmt.Sprintf("; %d final answers older than %d days pruned", n, int(finalAnswersKept.Hours()/24))
		}
		return summary, err
	}
}

// rejectGate stops a run before a sending stage when too much of the day
// was rejected: paying on bad data is worse than paying late. It counts the
// rows rejected by transform and the orders a provider rejected since (Pay
// Protocol payments it does not know, rows of a refused trade file), and
// the orders whose Pay Protocol payment is failed (held, as they may still
// be paid late, but orders the platform released unpaid all the same:
// rejected before, they were counted), not those a person rejected
// (pipeline.RejectedByPerson). Its message counts those held apart and,
// when nothing else is over, says what ends them (paid, or rejected by a
// person), not to fix the data and read the date again.
func rejectGate(l *ledger.Ledger, maxRatio float64) func(context.Context, *pipeline.Run) error {
	return func(ctx context.Context, run *pipeline.Run) error {
		read, err := l.SnapshotCount(ctx, run.ID)
		if err != nil {
			return err
		}
		reasons, err := l.RejectsOfRun(ctx, run.ID)
		if err != nil {
			return err
		}
		byProvider, err := l.ProviderRejectsOfRun(ctx, run.ID)
		if err != nil {
			return err
		}
		// An order a person rejected (settle resolve --order --reject: a
		// payment that will never arrive) is a decision, not bad data:
		// counted, it stopped the rest of the date at this gate for good.
		byProvider = slices.DeleteFunc(byProvider, func(r ledger.RejectReason) bool { return strings.HasPrefix(r.Reason, pipeline.RejectedByPerson) })
		failed, err := l.HeldOfRun(ctx, run.ID, payprotocol.Channel, payprotocol.HeldFailedPayment)
		if err != nil {
			return err
		}
		rows, provider, held := sumRejects(reasons), sumRejects(byProvider), sumRejects(failed)
		rejected := rows + provider + held
		if read > 0 && float64(rejected) > maxRatio*float64(read) {
			by := ""
			switch {
			case held > 0:
				// Held, not rejected, and no data of the platform is
				// wrong: counted apart (they were counted "by the
				// providers", and the summary listed none).
				by = fmt.Sprintf(" (%d by transform, %d by the providers, %d held for a failed Pay Protocol payment)", rows, provider, held)
			case provider > 0:
				by = fmt.Sprintf(" (%d by transform, %d by the providers)", rows, provider)
			}
			effects, err := l.EffectCounts(ctx, run.ID)
			if err != nil {
				return err
			}
			// The subjects: one example order per reason, for the last log line.
			p := &pipeline.Problems{Total: int(rejected)}
			for _, r := range append(append(reasons, byProvider...), failed...) {
				p.List = append(p.List, fmt.Sprintf("%s: %s", r.Sample, r.Reason))
			}
			sent := false
			for _, states := range effects {
				for state, n := range states {
					// The date's trade files are out: it can no longer
					// be read again.
					sent = sent || state != pipeline.EffectPlanned && n > 0
				}
			}
			const heldUntil = "the orders held for a failed Pay Protocol payment count until they are paid or rejected by a person: run the date again once they are paid, or settle resolve --order O --reject those that never will be"
			until := fmt.Sprintf("until you fix the data, then run again with --%s (reads the date again), or raise --max-reject-ratio", flagReextract)
			// The last log line's hint says the same (hinted): the
			// exit code's own, "fix the data, then --reextract", was
			// refused for a date whose trade files went up, and does
			// nothing for held payments.
			hint := exitHint(pipeline.KindInput.ExitCode())
			switch {
			case rows+provider == 0:
				// Only held orders: reading the date again changes
				// nothing of a payment Pay Protocol answers failed.
				until = "until " + heldUntil + "; or raise --max-reject-ratio"
				hint = "orders held for a failed Pay Protocol payment are beyond --max-reject-ratio (the error and subjects name them, orders.csv and settle status list them): " +
					"run the date again once they are paid, or settle resolve --date " + run.Key.Date.String() + " --order O --reject --note ... those that never will be, or raise --max-reject-ratio; " +
					"--reextract would not change them"
			case sent:
				until = fmt.Sprintf("until the orders are corrected with the providers, or --max-reject-ratio is raised (--%s is refused: this date already sent files or requests)", flagReextract)
				hint = "rows rejected beyond --max-reject-ratio (the error and subjects name them, orders.csv and settle status list them) after this date's trade files or requests went out: " +
					"--reextract is refused now; correct the orders with the providers, or raise --max-reject-ratio if the rejects are expected, then run the date again: what was done is skipped, the rest is paid"
			}
			if held > 0 && rows+provider > 0 {
				until += "; " + heldUntil
				hint += "; " + heldUntil
			}
			p.Summary = fmt.Sprintf("%d of %d rows rejected%s, more than %.2f%%: no money is sent on this date %s", rejected, read, by, 100*maxRatio, until)
			return pipeline.E(pipeline.KindInput, "input check", hinted{p, hint})
		}
		return nil
	}
}

func sumRejects(reasons []ledger.RejectReason) int64 {
	var n int64
	for _, r := range reasons {
		n += r.Count
	}
	return n
}

// writableDirs refuses (exit 2) a reports directory, or Infinia's work
// directory, that cannot be written, before anything is done: found at the
// reconcile stage it was exit 1, "retry is safe", after the day's money
// had moved, and every retry failed the same way (found by an operator's
// review). One not there yet is checked through its parent, where the
// stages make it (writableDir). Of the reports, and of the work
// directory, the date's own directory is checked: one that a person's settle report made as another user, or a
// file in its place, passed the check of the reports directory, and the
// run moved the day's money before its reports failed there. A failure
// that says nothing of the directory (dirError) is one to retry.
func (o *runOptions) writableDirs() error {
	type dir struct {
		flag, path string
		mode       fs.FileMode
	}
	dirs := []dir{{flagOut, o.reports.reports.DateDir(o.key.Date), load.ReportDirMode}}
	if o.infinia != nil {
		// The date's own directory, where the trade files are built, as
		// the date's reports directory: one made by another user, or a
		// file in its place, passed, and the upload stage failed there,
		// exit 1, on every retry.
		dirs = append(dirs, dir{flagWorkDir, filepath.Join(o.infinia.workDir, o.key.Date.String()), infiniapay.WorkDirMode})
	}
	for _, d := range dirs {
		if err := writableDir(d.path, d.mode); err != nil {
			return dirError(d.flag, d.path, err)
		}
	}
	return nil
}

// dirError is the error of the directory dir of --flag that could not be
// made or written (err): configuration (exit 2) when err says so of the
// directory - no permission, a read-only file system, a file in its path,
// a name too long, no space or quota left, which every retry meets until
// a person acts - and a failure a retry may get past (exit 1) otherwise:
// an I/O error of the volume, a network file system's server gone a
// moment (the reports' ReadWriteMany volume is one), which as exit 2
// failed the Job for good (podFailurePolicy FailJob). The files settle
// reads at start-up are told apart the same way (pipeline.PathRefused,
// pipeline.FileError).
func dirError(flag, dir string, err error) error {
	if pipeline.PathRefused(err) {
		return pipeline.Errorf(pipeline.KindUsage, "--"+flag, "%s cannot be written: %v", dir, err)
	}
	return fmt.Errorf("--%s: %s could not be written now: %w", flag, dir, err)
}

// writableDir checks that dir ("": the working directory) can be written:
// it writes a block to a file in it, syncs it and removes it. A full
// volume still makes an empty file (an inode, no block): an empty one
// passed, and the run moved the day's money before its reports found the
// volume full (exit 1, and every retry the same). A dir not there yet is
// not made: its parent, where the stage that writes there makes it, is
// checked (made with mode when missing). A run refused after the check
// (its time zone, the date's lock, the ledger) leaves no empty directory
// of its date; and a directory made for the check and taken away after it
// was, at times, the one another shard of the date, started at the same
// moment on the shared reports volume, had just found or made and was
// writing in (exit 1, "no such file or directory").
func writableDir(dir string, mode fs.FileMode) error {
	if dir == "" {
		dir = "."
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		dir = filepath.Dir(dir)
	}
	if err := os.MkdirAll(dir, mode); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".settle-write-check-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(make([]byte, writeCheckBytes))
	if err == nil {
		err = f.Sync() // a volume over the network may say so only now
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Remove(f.Name())
}

// writeCheckBytes is what writableDir writes: a block of most filesystems.
const writeCheckBytes = 4096

// preflight calls each provider's pre-flight in turn; the first error stops.
func preflight(checks []func(context.Context) error) func(context.Context) error {
	if len(checks) == 0 {
		return nil
	}
	return func(ctx context.Context) error {
		for _, check := range checks {
			if check == nil {
				continue
			}
			if err := check(ctx); err != nil {
				return err
			}
		}
		return nil
	}
}

// finalAnswers is where the matchers keep the answers that can no longer
// change: the ledger, which a later reconciliation of the date trusts
// instead of asking again; with --reconcile-all the ledger records them
// but everything is asked.
func (o *runOptions) finalAnswers(l *ledger.Ledger) pipeline.FinalAnswers {
	if o.reconcileAll {
		return pipeline.AskAll{Store: l}
	}
	return l
}

// providers returns the run's configured providers, in the order their
// upload parts run: Pay Protocol verifies payments before Infinia files
// them. log gets what a provider's reconciliation tells a person at once
// (a rejected Pay Protocol order paid since).
func (o *runOptions) providers(l *ledger.Ledger, src *sqlx.DB, window func(pipeline.Date) pipeline.Window, now func() time.Time, log *slog.Logger) []pipeline.Provider {
	var out []pipeline.Provider
	if o.payProtocol != nil { // verifies its payments before Infinia files them
		out = append(out, o.payProtocol.provider(l, o.finalAnswers(l), log, o.watchDays))
	}
	if o.infinia != nil {
		late := &extract.LateRefunds{DB: src, Query: o.lateQ, Name: o.lateName, Margin: dayOverMargin, StandbyOfPrimary: o.standbyOfPri}
		out = append(out, o.infinia.provider(l, late, window, o.rules, o.minPayout, o.finalAnswers(l), now, o.sendPastMemory))
	}
	if o.wechat != nil {
		out = append(out, o.wechat.provider(l, o.finalAnswers(l), o.parallel, o.wait, o.poll, now, o.sendPastMemory))
	}
	return out
}

// accounts names, by the effect kind of each configured provider, the
// account its requests go to (pipeline.RunParams.Accounts). Pay Protocol
// sends nothing: it only answers queries.
func (o *runOptions) accounts() map[string]string {
	out := map[string]string{}
	if o.infinia != nil {
		out[infiniapay.KindUpload], out[infiniapay.KindRevenueShare] = o.infinia.account, o.infinia.account
	}
	if o.wechat != nil {
		out[wechatpay.KindDistribution], out[wechatpay.KindUnfreeze] = o.wechat.account, o.wechat.account
	}
	return out
}

// channelCheck finds the run's orders waiting on a channel whose provider is
// not configured: each such channel is a line naming it and its count, and
// the run ends needing a person (exit 4), unless the operator skips it. It
// finds too the run's requests sent and never answered of a kind no
// configured provider drives (drives: the kinds of those configured, by
// their accounts): a run again without their provider, its channels
// skipped, asks nothing about them, and ended 0, its run done, while they
// may have paid or not (found by a review). Skipping a channel leaves its
// orders unpaid; it cannot leave a request that may have paid unknown, and
// the run needs a person whatever is skipped. The channels it leaves out on
// purpose are recorded on the run (Ledger.RecordSkipped), in place of what
// a run of the date recorded before: the reports and `settle status` show
// their orders as left out, not as being paid, until a run with their
// provider configured checks the channels again; the stage's line counts
// them as they do (SkippedOfRun).
func channelCheck(l *ledger.Ledger, settled []pipeline.Channel, skip map[pipeline.Channel]bool, drives map[string]string) pipeline.StageFunc {
	configured := map[pipeline.Channel]bool{}
	for _, ch := range settled {
		configured[ch] = true
	}
	return func(ctx context.Context, run *pipeline.Run) (string, error) {
		waiting, err := l.WaitingByChannel(ctx, run.ID)
		if err != nil {
			return "", err
		}
		var problems, skipped []string
		var left []pipeline.Channel
		for _, spec := range channelSpecs() {
			ch := spec.Channel
			n := waiting[ch]
			if n == 0 || configured[ch] {
				continue
			}
			if skip[ch] {
				left = append(left, ch)
				continue
			}
			problems = append(problems, fmt.Sprintf("channel %s: %d orders and no provider configured (%s): they stay unpaid; configure it, or say --%s %s",
				ch, n, channelFlag(ch), flagSkipChannel, ch))
		}
		open, err := l.InFlightByKind(ctx, run.ID)
		if err != nil {
			return "", err
		}
		for _, kind := range slices.Sorted(maps.Keys(open)) {
			if _, ok := drives[kind]; !ok {
				problems = append(problems, fmt.Sprintf("%d %s requests of the run were sent and never answered, and their provider is not configured: nothing asks about them; configure it, with the account they were sent from, and run the date again",
					open[kind], kind))
			}
		}
		if err := l.RecordSkipped(ctx, run.ID, left); err != nil {
			return "", err
		}
		// Counted as summary.csv and settle status count them
		// (SkippedOfRun): an order of the channel held with a reason is
		// held, not left out (the waiting orders, which the line counted,
		// had it left unpaid).
		if len(left) > 0 {
			orders, err := l.SkippedOfRun(ctx, run.ID)
			if err != nil {
				return "", err
			}
			n := map[pipeline.Channel]int64{}
			for _, o := range orders {
				n[pipeline.Channel(o.Channel)] += o.Orders
			}
			for _, ch := range left {
				if n[ch] > 0 {
					skipped = append(skipped, fmt.Sprintf("%s: %d orders left unpaid (--%s)", ch, n[ch], flagSkipChannel))
				}
			}
		}
		summary := strings.Join(skipped, "; ")
		if len(problems) > 0 {
			// A subject a channel, as the metrics count them (none were
			// counted: an alert on settle_needs_person_subjects never
			// fired for it; found by a review).
			return summary, (&pipeline.Problems{Summary: "orders of a channel with no provider configured", List: problems}).NeedsPerson()
		}
		return summary, nil
	}
}

// parseSkipChannels reads --skip-channel: channel names, repeated or comma
// separated.
func parseSkipChannels(values []string) (map[pipeline.Channel]bool, error) {
	out, known := map[pipeline.Channel]bool{}, channelSpecs()
	for _, v := range values {
		for _, name := range strings.Split(v, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			ch := pipeline.Channel(name)
			if !known.Known(ch) {
				return nil, pipeline.Errorf(pipeline.KindUsage, "--"+flagSkipChannel, "unknown channel %q (want %s)", name, known.Names())
			}
			out[ch] = true
		}
	}
	return out, nil
}

// printRunSummary prints the run's totals, what was rejected and what the
// run sent: its new money movements (effects sent for the first time, each
// under its own idempotency key, that the provider took or whose outcome
// is unknown) and, when they differ, the requests (a request whose outcome
// was unknown and that the provider never received is sent again under
// the same key: two requests, one movement; one the provider refused,
// "retry later" or a refusal of the request itself, moved nothing).
func (cfg *config) printRunSummary(ctx context.Context, l *ledger.Ledger, res *pipeline.Result, sent ledger.Sent) error {
	run := res.Run
	totals, err := l.TotalsOfRun(ctx, run.ID)
	if err != nil {
		return err
	}
	reasons, err := l.RejectsOfRun(ctx, run.ID)
	if err != nil {
		return err
	}
	byProvider, err := l.ProviderRejectsOfRun(ctx, run.ID)
	if err != nil {
		return err
	}
	// Those a person rejected (settle resolve --reject) are listed apart:
	// no provider refused them.
	var byPerson []ledger.RejectReason
	byProvider = slices.DeleteFunc(byProvider, func(r ledger.RejectReason) bool {
		if strings.HasPrefix(r.Reason, pipeline.RejectedByPerson) {
			byPerson = append(byPerson, r)
			return true
		}
		return false
	})
	// Held, not rejected, but counted by the reject gate: listed beside
	// the rejects, so that a gate's count has its orders in the summary.
	failed, err := l.HeldOfRun(ctx, run.ID, payprotocol.Channel, payprotocol.HeldFailedPayment)
	if err != nil {
		return err
	}
	// Nothing new only when every stage was done before: a stage left
	// for a person (payments still held, say) is work not done.
	nothingNew := len(res.Ran) == 0 && len(res.Skipped) > 0 && sent.Requests == 0
	for _, st := range pipeline.Stages {
		nothingNew = nothingNew && run.Done(st)
	}
	if cfg.json {
		log := cfg.logger().With("run_id", run.ID, "date", run.Key.Date.String(), "shard", run.Key.Shard.String(), "stage", "summary")
		for _, t := range totals {
			log.Info("totals", "channel", t.Channel, "currency", t.Currency, "orders", t.Orders, "gross_minor", t.Gross,
				"refunded_minor", t.Refunded, "commission_minor", t.Commission, "seller_minor", t.Seller, "balanced", t.Balanced())
		}
		for _, r := range reasons {
			log.Warn("rejected", "reason", r.Reason, "rows", r.Count, "example", r.Sample)
		}
		for _, r := range byProvider {
			log.Warn("rejected by the provider", "reason", r.Reason, "orders", r.Count, "example", r.Sample)
		}
		for _, r := range byPerson {
			log.Info("rejected by a person", "reason", r.Reason, "orders", r.Count, "example", r.Sample)
		}
		for _, r := range failed {
			log.Warn("held for a failed Pay Protocol payment", "reason", r.Reason, "orders", r.Count, "example", r.Sample)
		}
		log.Info("done", "new_money_movements", sent.Effects, "requests_sent", sent.Requests, "nothing_new", nothingNew, "requests_refused", sent.Refused)
		return nil
	}
	printTotals(cfg.stdout, totals)
	printRejects(cfg.stdout, reasons, 10)
	printProviderRejects(cfg.stdout, byProvider, 10)
	printReasons(cfg.stdout, "rejected by a person (settle resolve): %d orders, nothing paid on them:\n", byPerson, 10)
	printHeldFailed(cfg.stdout, failed, 10)
	if nothingNew {
		fmt.Fprint(cfg.stdout, "nothing new: every stage of this date was done earlier; ")
	}
	fmt.Fprintf(cfg.stdout, "%d new money movements", sent.Effects)
	printSent(cfg.stdout, sent)
	return nil
}

// printSent ends the line of a run's new money movements with the
// requests sent, when they are not one a movement: those sent again under
// the same key after an unknown outcome, and those the provider refused
// (no money moved: not movements).
func printSent(w io.Writer, sent ledger.Sent) {
	if r := sent.Resent(); r != 0 {
		fmt.Fprintf(w, "; requests sent: %d, of which %d again under the same idempotency key after an unknown outcome", sent.Requests, r)
	}
	if sent.Refused != 0 {
		fmt.Fprintf(w, "; %d requests refused by the provider (no money moved)", sent.Refused)
	}
	fmt.Fprintln(w)
}

func printTotals(w io.Writer, totals []pipeline.Totals) {
	if len(totals) == 0 {
		fmt.Fprintln(w, "no items recorded")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "channel\tcurrency\torders\tgross\trefunded\tcommission\tseller share\tcheck\t")
	for _, t := range totals {
		check := "ok"
		if !t.Balanced() {
			check = "UNBALANCED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t\n", t.Channel, t.Currency, t.Orders,
			pipeline.FormatMinor(t.Gross, t.Currency), pipeline.FormatMinor(t.Refunded, t.Currency),
			pipeline.FormatMinor(t.Commission, t.Currency), pipeline.FormatMinor(t.Seller, t.Currency), check)
	}
	tw.Flush()
}

func printRejects(w io.Writer, reasons []ledger.RejectReason, max int) {
	if sumRejects(reasons) == 0 {
		fmt.Fprintln(controlSafe(w), "rejected: none")
		return
	}
	printReasons(w, "rejected: %d rows, nothing paid on them:\n", reasons, max)
}

// printHeldFailed lists the orders held for a failed Pay Protocol payment,
// which the reject gate counts with the rejects; nothing when there are
// none.
func printHeldFailed(w io.Writer, reasons []ledger.RejectReason, max int) {
	printReasons(w, "held for a failed Pay Protocol payment: %d orders, nothing paid on them until they are paid (the reject gate counts them):\n", reasons, max)
}

// printProviderRejects lists the orders a provider rejected after
// transform (nothing is paid on them); nothing when there are none.
func printProviderRejects(w io.Writer, reasons []ledger.RejectReason, max int) {
	printReasons(w, "rejected by the providers: %d orders, nothing paid on them:\n", reasons, max)
}

// printReasons writes head (its %d the orders in all) and then the first
// max reasons, each with its count and an example; nothing when there are
// no orders. The reasons are the platform's and the providers' words,
// written through controlSafe.
func printReasons(w io.Writer, head string, reasons []ledger.RejectReason, max int) {
	w = controlSafe(w)
	n := sumRejects(reasons)
	if n == 0 {
		return
	}
	fmt.Fprintf(w, head, n)
	for i, r := range reasons {
		if i == max {
			fmt.Fprintf(w, "  ... and %d more reasons (see orders.csv)\n", len(reasons)-max)
			break
		}
		fmt.Fprintf(w, "  %6d  %s (e.g. %s)\n", r.Count, r.Reason, sampleOnALine(r.Sample))
	}
}

// sampleOnALine is an example value of a list, on one line: one holding a
// newline, a carriage return or a tab (an order number rejected for it)
// is quoted, as its reason quotes it, so that it neither breaks its line
// nor passes for one of settle's own.
func sampleOnALine(s string) string {
	if strings.ContainsAny(s, "\n\r\t") {
		return strconv.Quote(s)
	}
	return s
}

// reportMetrics pushes and/or writes the run's metrics; runErr is how the
// run ended.
func (cfg *config) reportMetrics(ctx context.Context, l *ledger.Ledger, o *runOptions, run *pipeline.Run, took time.Duration, runErr error) error {
	totals, err := l.TotalsOfRun(ctx, run.ID)
	if err != nil {
		return err
	}
	reasons, err := l.RejectsOfRun(ctx, run.ID)
	if err != nil {
		return err
	}
	effects, err := l.EffectCounts(ctx, run.ID)
	if err != nil {
		return err
	}
	health, err := l.ShardHealth(ctx, run.Key.Shard)
	if err != nil {
		return err
	}
	skipped, err := l.SkippedOfRun(ctx, run.ID)
	if err != nil {
		return err
	}
	failed, err := l.FailedPayouts(ctx, run.Key)
	if err != nil {
		return err
	}
	m := load.RunMetrics{Date: run.Key.Date, Shard: run.Key.Shard, Duration: took, Totals: totals, Effects: effects,
		ExitCode: codeOf(runErr), Skipped: map[pipeline.Channel]int64{}, FailedPayouts: failed}
	for _, spec := range channelSpecs() {
		m.Skipped[spec.Channel] = 0
	}
	for _, s := range skipped {
		m.Skipped[pipeline.Channel(s.Channel)] += s.Orders
	}
	setHealth(&m, health)
	if pipeline.KindOf(runErr) == pipeline.KindNeedsPerson {
		_, m.NeedsPerson = pipeline.ProblemsOf(runErr, 0)
	}
	for _, t := range totals {
		m.Items += t.Orders
	}
	byProvider, err := l.ProviderRejectsOfRun(ctx, run.ID)
	if err != nil {
		return err
	}
	// An order a provider rejected is counted as rejected, not as an item.
	m.Rejects = sumRejects(reasons) + sumRejects(byProvider)
	m.Items -= sumRejects(byProvider)
	if o.metrics != nil {
		o.metrics.add(m)
	}
	if o.metricsFile != "" {
		if err := load.WriteMetricsFile(o.metricsFile, m); err != nil {
			return err
		}
	}
	if o.pushURL != "" {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return load.PushMetrics(ctx, &http.Client{Timeout: 10 * time.Second}, o.pushURL, m)
	}
	return nil
}

// warnOtherShardsRules warns, before a shard splits its orders, of the
// date's other shards that split theirs under other rules (the rules file
// changed while the pods of an Indexed Job started, say): the date's
// sellers would be priced by two rules files. Said, not refused: the
// other shards' splits stand, and this shard's rules may be the right ones.
func warnOtherShardsRules(ctx context.Context, cfg *config, l *ledger.Ledger, o *runOptions) error {
	runs, err := l.RunsOn(ctx, o.key.Date)
	if err != nil {
		return err
	}
	for _, r := range runs {
		if r.Key != o.key && r.Key.Shard.Count == o.key.Shard.Count && r.Done(pipeline.StageTransform) && r.RulesHash != o.rulesHash {
			cfg.logger().Warn(fmt.Sprintf("%s split its orders under other rules than these (rules hash %.12s, these %.12s): the date's sellers are priced by two rules files unless this shard is given the same",
				r.Key, r.RulesHash, o.rulesHash))
		}
	}
	return nil
}
