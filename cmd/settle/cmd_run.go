package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/settlekit/settle/extract"
	"github.com/settlekit/settle/load"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
	"github.com/settlekit/settle/transform"
)

func runCommand(cfg *config) *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "settle one business date (resumes where an earlier run of that date stopped)",
		Description: "Stages: extract, transform, upload, distribute, reconcile. Re-running a date is always safe:\n" +
			"finished work is skipped and nothing is sent twice.",
		Flags: append(append(databaseFlags(),
			dateFlag("business date YYYY-MM-DD (default: yesterday in --tz)"),
			&cli.StringFlag{Name: "from", Usage: "backfill: first date of a range, settled one date at a time, in order"},
			&cli.StringFlag{Name: "to", Usage: "backfill: last date of the range (inclusive)"},
			tzFlag(),
			&cli.StringFlag{Name: flagRules, EnvVars: []string{"SETTLE_RULES"}, Usage: "commission rules CSV file (required)"},
			&cli.StringFlag{Name: flagSourceQuery, EnvVars: []string{"SETTLE_SOURCE_QUERY"},
				Usage: "SQL file returning the source columns for $1 (window start) and $2 (window end)"},
			&cli.StringFlag{Name: flagSellersQuery, EnvVars: []string{"SETTLE_SELLERS_QUERY"},
				Usage: "SQL file returning the seller columns for $1 (a text[] of seller ids)"},
			&cli.StringFlag{Name: flagLateRefundsQ, EnvVars: []string{"SETTLE_LATE_REFUNDS_QUERY"},
				Usage: "SQL file returning refund_no, order_no, seller_id, amount_minor, created_at: refunds recorded in [$1, $2) for orders confirmed before $1"},
			&cli.StringFlag{Name: flagMinPayout, EnvVars: []string{"SETTLE_MIN_PAYOUT"},
				Usage: "smallest revenue share per currency, e.g. USD=10.00,JPY=1000; a smaller net is carried to the seller's next payout"},
			&cli.IntFlag{Name: flagRecheckDays, EnvVars: []string{"SETTLE_RECHECK_DAYS"}, Value: 1,
				Usage: "also reconcile again the dates of the last N days whose findings still include timing gaps (bills not out, funds UNSETTLE); each costs one more pass of per-order queries"},
			&cli.StringFlag{Name: "until", EnvVars: []string{"SETTLE_UNTIL"}, Value: string(pipeline.StageReconcile),
				Usage: "stop after this stage: extract, transform, upload, distribute or reconcile"},
			&cli.BoolFlag{Name: "dry-run", Usage: "compute and print the plan; write and send nothing"},
			&cli.StringFlag{Name: flagShard, EnvVars: []string{"SETTLE_SHARD"},
				Usage: "I/N: settle only the sellers of shard I of N (default: from JOB_COMPLETION_INDEX and SETTLE_SHARDS, else 0/1)"},
			&cli.Float64Flag{Name: "max-reject-ratio", EnvVars: []string{"SETTLE_MAX_REJECT_RATIO"}, Value: 0.05,
				Usage: "stop before anything is sent (exit 3) when more than this share of the day's rows is rejected"},
			outFlag(),
			&cli.StringFlag{Name: "metrics-pushgateway", EnvVars: []string{"SETTLE_METRICS_PUSHGATEWAY"},
				Usage: "Prometheus Pushgateway URL: the run's metrics are added there, grouped by job and shard"},
			&cli.StringFlag{Name: "metrics-file", EnvVars: []string{"SETTLE_METRICS_FILE"},
				Usage: "write the run's metrics to this file, for node exporter's textfile collector"},
		), append(infiniaFlags(), weChatFlags()...)...),
		Action: func(c *cli.Context) error {
			dates, err := cfg.runDates(c)
			if err != nil {
				return err
			}
			var l *ledger.Ledger
			if !c.Bool("dry-run") {
				if l, err = openLedger(c.Context, c, true); err != nil {
					return err
				}
				defer l.Close()
			}
			for _, d := range dates {
				opts, err := cfg.runOptions(c, d)
				if err != nil {
					return err
				}
				if c.Bool("dry-run") {
					err = cfg.dryRun(c, opts)
				} else {
					err = cfg.settle(c.Context, l, opts)
				}
				if err != nil {
					if len(dates) > 1 {
						return fmt.Errorf("backfill stopped at %s (earlier dates are done; run again to resume): %w", d, err)
					}
					return err
				}
			}
			return nil
		},
	}
}

// runOptions is everything a run needs, resolved from flags.
type runOptions struct {
	key         pipeline.RunKey
	window      pipeline.Window
	tz          string
	until       pipeline.Stage
	classify    func(seller func(string) (pipeline.Seller, bool, error)) pipeline.Classifier
	rulesHash   string
	query       string
	queryName   string
	sellersQ    string
	sellersName string
	lateQ       string
	lateName    string
	rules       *transform.Rules
	minPayout   map[pipeline.Currency]int64
	recheckDays int
	sourceURL   string
	reports     reportWriter
	maxRejectRt float64
	infinia     *infiniaSetup // nil: not configured
	wechat      *weChatSetup  // nil: not configured
	wait, poll  time.Duration
	parallel    int
	pushURL     string
	metricsFile string
}

// maxBackfill bounds --from/--to: a typo should not start a year of runs.
const maxBackfill = 366

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
	d1, err := pipeline.ParseDate(from)
	if err != nil {
		return nil, pipeline.E(pipeline.KindUsage, "--from", err)
	}
	d2, err := pipeline.ParseDate(to)
	if err != nil {
		return nil, pipeline.E(pipeline.KindUsage, "--to", err)
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
	ratio := c.Float64("max-reject-ratio")
	if ratio < 0 || ratio > 1 {
		return nil, pipeline.Errorf(pipeline.KindUsage, "--max-reject-ratio", "want a number from 0 to 1, got %v", ratio)
	}
	inf, err := infiniaFromFlags(c)
	if err != nil {
		return nil, err
	}
	w := pipeline.WindowOf(d, loc)
	wx, err := weChatFromFlags(c)
	if err != nil {
		return nil, err
	}
	return &runOptions{infinia: inf, wechat: wx, wait: c.Duration(flagProviderWait), poll: c.Duration(flagProviderPoll), parallel: c.Int(flagParallel), pushURL: c.String("metrics-pushgateway"), metricsFile: c.String("metrics-file"),
		key: pipeline.RunKey{Date: d, Shard: shard}, window: w, tz: loc.String(), until: until,
		classify: classifier(rules, d, w), rulesHash: rules.Hash(), query: query, queryName: name, sellersQ: sq, sellersName: sname,
		lateQ: lq, lateName: lname, rules: rules, minPayout: minPayout, recheckDays: c.Int(flagRecheckDays), sourceURL: src, reports: reportWriter{reports: reportsFor(c)}, maxRejectRt: ratio,
	}, nil
}

// shard is --shard, else JOB_COMPLETION_INDEX of N=SETTLE_SHARDS (a
// Kubernetes Indexed Job), else the whole day.
func (cfg *config) shard(c *cli.Context) (pipeline.Shard, error) {
	s := c.String(flagShard)
	if s == "" {
		if idx, n := cfg.getenv("JOB_COMPLETION_INDEX"), cfg.getenv("SETTLE_SHARDS"); idx != "" && n != "" {
			s = idx + "/" + n
		}
	}
	if s == "" {
		return pipeline.Whole, nil
	}
	sh, err := pipeline.ParseShard(s)
	if err != nil {
		return sh, pipeline.E(pipeline.KindUsage, "--shard", err)
	}
	return sh, nil
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
	runner := &pipeline.Runner{
		Store: l,
		Log:   cfg.logger(),
		Live:  cfg.live,
		Now:   cfg.now,
		Stages: map[pipeline.Stage]pipeline.StageFunc{
			pipeline.StageExtract: pipeline.ExtractStage(extractSource(src, o.query, o.queryName),
				sellerSource(src, o.sellersQ, o.sellersName), l, window),
			pipeline.StageTransform: pipeline.TransformStage(l, func(m map[string]pipeline.Seller) pipeline.Classifier {
				return o.classify(fromMap(m))
			}),
		},
		Gate: rejectGate(l, o.maxRejectRt),
		// Upload, distribute and reconcile run again on every invocation:
		// Pay Protocol payments held while confirming are verified again
		// (and go out in a further trade file once paid), carried balances
		// are paid once the cause is gone, timing gaps are reconciled
		// again. Nothing is sent twice: every side effect is keyed.
		Repeat: map[pipeline.Stage]bool{pipeline.StageUpload: true, pipeline.StageDistribute: true, pipeline.StageReconcile: true},
		Absent: map[pipeline.Stage]string{
			pipeline.StageUpload:     "Infinia Pay is not configured (--infinia-url)",
			pipeline.StageDistribute: "no provider is configured (--infinia-url, --wechat-url)",
		},
	}
	var distribute []pipeline.StageFunc
	var matchers []pipeline.Matcher
	if o.infinia != nil {
		late := &extract.LateRefunds{DB: src, Query: o.lateQ, Name: o.lateName}
		up, dist, match := o.infinia.stages(l, late, window, o.rules, o.minPayout)
		runner.Stages[pipeline.StageUpload] = up
		distribute = append(distribute, dist)
		matchers = append(matchers, match, pipeline.PlatformMatcher(l))
		if m := payProtocolMatcher(l, o.infinia.payProtocol, o.parallel); m != nil {
			matchers = append(matchers, m)
		}
		defer o.infinia.sftp.Close()
	}
	if o.wechat != nil {
		distribute = append(distribute, o.wechat.stage(l, o.parallel, o.wait, o.poll))
		matchers = append(matchers, o.wechat.matcher(l, cfg.clock))
	}
	if len(distribute) > 0 {
		runner.Stages[pipeline.StageDistribute] = pipeline.Concurrent(distribute...)
	}
	runner.Stages[pipeline.StageReconcile] = pipeline.ReconcileStage(l, matchers, o.reports.stage(l), o.recheckDays)
	moneyKinds := []string{pipeline.KindRevenueShare, pipeline.KindDistribution, pipeline.KindUnfreeze}
	sendsBefore, err := l.Sends(ctx, o.key.Date, moneyKinds)
	if err != nil {
		return err
	}
	started := time.Now()
	res, err := runner.Execute(ctx, o.key, pipeline.RunParams{TimeZone: o.tz, RulesHash: o.rulesHash, ConfigHash: configHash(o.tz, o.query)}, o.until)
	if res != nil && res.Run != nil && (o.pushURL != "" || o.metricsFile != "") {
		if merr := cfg.reportMetrics(context.WithoutCancel(ctx), l, o, res.Run, time.Since(started), err == nil); merr != nil {
			fmt.Fprintf(cfg.stderr, "settle: metrics: %v\n", merr) // metrics never fail a run
		}
	}
	if res != nil && res.Run != nil {
		sendsAfter, serr := l.Sends(ctx, o.key.Date, moneyKinds)
		if serr == nil {
			serr = cfg.printRunSummary(ctx, l, res, sendsAfter-sendsBefore)
		}
		if serr != nil && err == nil {
			err = serr
		}
		if pipeline.KindOf(err) == pipeline.KindInput {
			// Still show what was rejected, so the operator can act on it.
			if path, rerr := o.reports.write(ctx, l, o.key.Date); rerr == nil {
				fmt.Fprintf(cfg.stdout, "rejected rows are listed in %s\n", path)
			}
		}
	}
	return err
}

// rejectGate stops a run before its first side effect when too much of the
// day was rejected: paying on bad data is worse than paying late.
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
		var rejected int64
		for _, r := range reasons {
			rejected += r.Count
		}
		if read > 0 && float64(rejected) > maxRatio*float64(read) {
			return pipeline.Errorf(pipeline.KindInput, "input check",
				"%d of %d rows rejected (more than %.2f%%): nothing will be sent until the data is fixed or --max-reject-ratio raised",
				rejected, read, 100*maxRatio)
		}
		return nil
	}
}

func (cfg *config) printRunSummary(ctx context.Context, l *ledger.Ledger, res *pipeline.Result, moved int64) error {
	run := res.Run
	totals, err := l.TotalsOfRun(ctx, run.ID)
	if err != nil {
		return err
	}
	reasons, err := l.RejectsOfRun(ctx, run.ID)
	if err != nil {
		return err
	}
	nothingNew := len(res.Ran) == 0 && len(res.Skipped) > 0 && moved == 0
	if cfg.json {
		log := cfg.logger().With("run_id", run.ID, "date", run.Key.Date.String(), "shard", run.Key.Shard.String(), "stage", "summary")
		for _, t := range totals {
			log.Info("totals", "channel", t.Channel, "currency", t.Currency, "orders", t.Orders, "gross_minor", t.Gross,
				"refunded_minor", t.Refunded, "commission_minor", t.Commission, "seller_minor", t.Seller, "balanced", t.Balanced())
		}
		for _, r := range reasons {
			log.Warn("rejected", "reason", r.Reason, "rows", r.Count, "example", r.Sample)
		}
		log.Info("done", "new_money_movements", moved, "nothing_new", nothingNew)
		return nil
	}
	printTotals(cfg.stdout, totals)
	printRejects(cfg.stdout, reasons, 10)
	if nothingNew {
		fmt.Fprint(cfg.stdout, "nothing new: every stage of this date was done earlier; ")
	}
	fmt.Fprintf(cfg.stdout, "%d new money movements\n", moved)
	return nil
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
	var n int64
	for _, r := range reasons {
		n += r.Count
	}
	if n == 0 {
		fmt.Fprintln(w, "rejected: none")
		return
	}
	fmt.Fprintf(w, "rejected: %d rows, nothing paid on them:\n", n)
	for i, r := range reasons {
		if i == max {
			fmt.Fprintf(w, "  ... and %d more reasons (see orders.csv)\n", len(reasons)-max)
			break
		}
		fmt.Fprintf(w, "  %6d  %s (e.g. %s)\n", r.Count, r.Reason, r.Sample)
	}
}

// reportMetrics pushes and/or writes the run's metrics.
func (cfg *config) reportMetrics(ctx context.Context, l *ledger.Ledger, o *runOptions, run *pipeline.Run, took time.Duration, ok bool) error {
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
	m := load.RunMetrics{Date: run.Key.Date, Shard: run.Key.Shard, Duration: took, Totals: totals, Effects: effects,
		Success: ok, Finished: cfg.clock()}
	for _, t := range totals {
		m.Items += t.Orders
	}
	for _, r := range reasons {
		m.Rejects += r.Count
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
