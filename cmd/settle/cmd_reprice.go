package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
	"github.com/settlekit/settle/transform"
)

// repriceCommand prices a date already split again under a corrected rules
// file (DESIGN section 3, rule 6: a fixed rule becomes an adjustment line):
// each paid or carried order whose seller share differs becomes an entry of
// its seller's carried balance, netted into the seller's next revenue share
// by the next run of any date, as a clawback is. It sends nothing.
func repriceCommand(cfg *config) *cli.Command {
	return &cli.Command{
		Name:  "reprice",
		Usage: "price a date already split again under a corrected rules file; the differences are paid or taken back by each seller's next revenue share",
		Flags: append(ledgerFlags(ledgerURLUsage), dateFlag("business date YYYY-MM-DD (required)"),
			&cli.StringFlag{Name: flagRules, EnvVars: []string{"SETTLE_RULES"}, Usage: "the corrected commission rules CSV file (required)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print what would be adjusted per seller and currency; record nothing"},
			outFlag(), lockWaitFlag()),
		Action: func(c *cli.Context) error {
			d, err := requiredDate(c)
			if err != nil {
				return err
			}
			if err := checkLockWait(c); err != nil {
				return err
			}
			rules, err := loadRules(c.String(flagRules), d)
			if err != nil {
				return err
			}
			dry := c.Bool("dry-run")
			l, err := cfg.openLedger(c.Context, c, false)
			if err != nil {
				return err
			}
			defer l.Close()
			migrated, err := l.Migrated(c.Context)
			if err != nil {
				return err
			}
			if !migrated {
				return pipeline.Errorf(pipeline.KindUsage, "--date", "%s: no run recorded, nothing to reprice (the ledger schema %s does not exist yet)", d, l.Schema())
			}
			if err := l.CheckMigrated(c.Context); err != nil {
				return err
			}
			if err := l.CheckVersion(c.Context); err != nil {
				return err
			}
			// No run of the date meanwhile: its items keep their states
			// while they are priced again (a run of another date may net
			// the entries, never before they are all recorded).
			var release func() error
			err = cfg.whileLocked(c, func(d pipeline.Date) (err error) {
				release, err = l.LockToReport(c.Context, d)
				return err
			})(d)
			if pipeline.KindOf(err) == pipeline.KindLocked {
				return hinted{fmt.Errorf("%w: nothing repriced", err), "settle reprice --lock-wait D waits for it"}
			}
			if err != nil {
				return err
			}
			defer release()
			runs, err := l.RunsOn(c.Context, d)
			if err != nil {
				return err
			}
			if len(runs) == 0 {
				return pipeline.Errorf(pipeline.KindUsage, "--date", "%s: no run recorded, nothing to reprice (settle run --date %s --rules FILE splits it under FILE)", d, d)
			}
			// A shard not started, or not split yet, would split under the
			// rules its run is given, after the reprice priced the rest.
			for _, k := range pipeline.ShardsToRun(runs, pipeline.RunKey{Date: d, Shard: pipeline.Whole}) {
				i := slices.IndexFunc(runs, func(r *pipeline.Run) bool { return r.Key == k })
				if i < 0 || !runs[i].Done(pipeline.StageTransform) {
					return pipeline.Errorf(pipeline.KindUsage, "--date", "%s: shard %s has not split its orders yet: nothing repriced (settle run --date %s --rules FILE splits them under FILE; then reprice)", d, k.Shard, d)
				}
			}
			name, body := rules.File()
			res, err := pipeline.Reprice(c.Context, l, d, pipeline.RulesFile{Name: name, Body: body, Hash: rules.Hash()}, channelSpecs(),
				func(o pipeline.Order, d pipeline.Date) (pipeline.Split, error) {
					return transform.SplitOrder(o, rules, d)
				}, dry)
			if err != nil {
				return err
			}
			out := controlSafe(cfg.stdout)
			rp := res.Repricing
			totals := rp.Totals()
			switch {
			case dry:
				fmt.Fprintf(out, "DRY RUN: %s under %s (rules %s): nothing recorded\n", d, name, rules.Hash())
			case res.ID == 0:
				fmt.Fprintf(out, "%s: already priced under %s (rules %s): nothing recorded\n", d, name, rules.Hash())
			default:
				fmt.Fprintf(out, "%s: repriced under %s (rules %s), now the date's rules: %d orders adjusted\n", d, name, rules.Hash(), len(rp.Adjust))
			}
			if len(totals) == 0 && !dry && res.ID != 0 {
				fmt.Fprintln(out, "no seller share changed")
			}
			verb := "adjusted"
			if dry {
				verb = "would be adjusted"
			}
			for _, t := range totals {
				what := "owed to the seller, paid with its next revenue share"
				if t.Amount < 0 {
					what = "taken back from the seller's next revenue share"
				}
				fmt.Fprintf(out, "  %s %s: %d orders %s, %s (%s)\n", t.SellerID, t.Currency, t.Orders, verb,
					pipeline.Money{Minor: t.Amount, Currency: t.Currency}, what)
			}
			if dry {
				fmt.Fprintf(out, "%d orders %s; the date's rules %s\n", len(rp.Adjust), verb, map[bool]string{true: "would become " + name, false: "stay"}[res.RulesChanged])
			}
			// Written again whether or not this recorded anything: a
			// reprice that ended after it recorded and before it wrote them
			// (killed) left them without its entries, and its re-run
			// records nothing.
			if !dry {
				path, err := reportWriter{reports: reportsFor(c)}.write(c.Context, l, d)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "wrote %s (and payouts.csv, sellers.csv, summary.csv, mismatches.csv, manifest.csv)\n", path)
				if err := printLaterDates(c.Context, out, l, d, rules.Hash(), res.ID); err != nil {
					return err
				}
				if err := unbalancedReports(c.Context, l, d); err != nil {
					return err
				}
			}
			if rp.Named.Count() > 0 {
				rp.Named.Summary = fmt.Sprintf("%s: %d orders whose seller share %s changes are not adjusted: their channel's shares are not paid by revenue sharing; a person corrects them with the provider",
					d, rp.Named.Count(), name)
				return rp.Named.NeedsPerson()
			}
			return nil
		},
	}
}

// printLaterDates names the dates run after d whose reports, written
// before the date's last reprice recorded its entries, show them in their
// carried in and forward only once written again - when that reprice is
// of rules hash (FILE's) and recorded entries. It is read from the ledger,
// not from what this process recorded (id, 0 when nothing): a reprice
// killed after its commit, before it said so, is run again, records
// nothing, and says it then.
func printLaterDates(ctx context.Context, out io.Writer, l *ledger.Ledger, d pipeline.Date, hash string, id int64) error {
	ps, err := l.RepricesOf(ctx, d, false)
	if err != nil || len(ps) == 0 {
		return err
	}
	last := ps[len(ps)-1]
	if last.RulesHash != hash || last.Orders == 0 {
		return nil
	}
	later, err := l.DatesRunAfter(ctx, d)
	if err != nil || len(later) == 0 {
		return err
	}
	names := make([]string, len(later))
	for i, ld := range later {
		names[i] = ld.String()
	}
	which := "the entries are"
	if last.ID != id {
		which = fmt.Sprintf("the %d entries the reprice of %s recorded are", last.Orders, last.RecordedAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(out, "%s dated %s: the reports of the %d dates run after it (%s) show them in their carried in and forward once written again (settle report --date D for each)\n",
		which, d, len(later), strings.Join(names, " "))
	return nil
}
