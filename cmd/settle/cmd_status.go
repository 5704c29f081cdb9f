package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

func statusCommand(cfg *config) *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show what the runs of a date did: stages, counts, totals, rejects",
		Flags: append(databaseFlags(), dateFlag("business date YYYY-MM-DD (required)")),
		Action: func(c *cli.Context) error {
			d, err := requiredDate(c)
			if err != nil {
				return err
			}
			l, err := openLedger(c.Context, c, false)
			if err != nil {
				return err
			}
			defer l.Close()
			migrated, err := l.Migrated(c.Context)
			if err != nil {
				return err
			}
			if !migrated {
				fmt.Fprintf(cfg.stdout, "%s: no run recorded (the ledger schema %s does not exist yet)\n", d, l.Schema())
				return nil
			}
			runs, err := l.RunsOn(c.Context, d)
			if err != nil {
				return err
			}
			if len(runs) == 0 {
				fmt.Fprintf(cfg.stdout, "%s: no run recorded\n", d)
				return nil
			}
			w := cfg.stdout
			for _, run := range runs {
				fmt.Fprintf(w, "run %s: %s, attempt %d, started %s", run.Key, run.State, run.Attempts, run.StartedAt.Format("2006-01-02 15:04:05 MST"))
				if run.FinishedAt != nil {
					fmt.Fprintf(w, ", finished %s", run.FinishedAt.Format("2006-01-02 15:04:05 MST"))
				}
				fmt.Fprintln(w)
				var stages []string
				for _, st := range pipeline.Stages {
					mark := "pending"
					if run.Done(st) {
						mark = "done"
					}
					stages = append(stages, fmt.Sprintf("%s %s", st, mark))
				}
				fmt.Fprintf(w, "  stages: %s\n", strings.Join(stages, ", "))
				if run.LastError != "" {
					fmt.Fprintf(w, "  last error: %s\n", run.LastError)
				}
				read, err := l.SnapshotCount(c.Context, run.ID)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "  source rows read: %d\n", read)
				totals, err := l.TotalsOfRun(c.Context, run.ID)
				if err != nil {
					return err
				}
				printTotals(w, totals)
				reasons, err := l.RejectsOfRun(c.Context, run.ID)
				if err != nil {
					return err
				}
				printRejects(w, reasons, 50)
			}
			return printAdjustments(c.Context, w, l, d)
		},
	}
}

// printAdjustments shows the date's mismatches, the late refunds still
// waiting and every seller's open carried balance.
func printAdjustments(ctx context.Context, w io.Writer, l *ledger.Ledger, d pipeline.Date) error {
	unexpected, expected, err := l.MismatchCounts(ctx, d)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "mismatches with the providers: %d unexpected, %d expected (timing); see mismatches.csv\n", unexpected, expected)
	pending, err := l.PendingLateRefunds(ctx)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		fmt.Fprintf(w, "late refunds waiting for their order to settle: %d (e.g. %s of order %s)\n", len(pending), pending[0].RefundNo, pending[0].OrderNo)
	}
	carries, err := l.OpenCarries(ctx, pipeline.Date{})
	if err != nil {
		return err
	}
	if len(carries) == 0 {
		fmt.Fprintln(w, "carried balances: none")
		return nil
	}
	fmt.Fprintln(w, "carried balances (all dates; netted into each seller's next revenue share, never sent negative):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "seller\tcurrency\tentries\tbalance\t")
	const max = 50
	for i, c := range carries {
		if i == max {
			fmt.Fprintf(tw, "... %d more\t\t\t\t\n", len(carries)-max)
			break
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t\n", c.SellerID, c.Currency, c.Entries, pipeline.Money{Minor: c.Amount, Currency: c.Currency})
	}
	return tw.Flush()
}
