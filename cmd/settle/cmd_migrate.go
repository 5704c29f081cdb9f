package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func migrateCommand(cfg *config) *cli.Command {
	return &cli.Command{
		Name:  "migrate",
		Usage: "apply the job's schema migrations (safe to run from several processes at once)",
		Flags: ledgerFlags(ledgerURLUsage),
		Action: func(c *cli.Context) error {
			l, err := cfg.openLedger(c.Context, c, false)
			if err != nil {
				return err
			}
			defer l.Close()
			applied, err := l.Migrate(c.Context)
			if err != nil {
				return err
			}
			if len(applied) == 0 {
				fmt.Fprintf(cfg.stdout, "schema %s is up to date\n", l.Schema())
			}
			for _, m := range applied {
				fmt.Fprintf(cfg.stdout, "applied %s to schema %s\n", m, l.Schema())
			}
			return nil
		},
	}
}
