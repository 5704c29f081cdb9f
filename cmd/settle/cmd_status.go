package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/settlekit/settle/pipeline"
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
			return nil
		},
	}
}
