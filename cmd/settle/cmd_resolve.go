package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
)

// resolveCommand records that a person settled a failed WeChat Pay payout
// outside settle (ledger.Resolve): the date's runs stop counting it as a
// failed payout, so that a run of the date can end 0 once nothing else is
// left.
func resolveCommand(cfg *config) *cli.Command {
	return &cli.Command{
		Name:  "resolve",
		Usage: "record that a failed WeChat Pay payout of a date was settled outside settle (--subject from payouts.csv, --note how)",
		Flags: append(databaseFlags(), dateFlag("business date YYYY-MM-DD (required)"),
			&cli.StringFlag{Name: "subject", Usage: "the payout's subject, as payouts.csv gives it (required)"},
			&cli.StringFlag{Name: "note", Usage: "how it was settled: who, where, the reference (required)"}),
		Action: func(c *cli.Context) error {
			d, err := requiredDate(c)
			if err != nil {
				return err
			}
			if c.String("subject") == "" {
				return pipeline.Errorf(pipeline.KindUsage, "--subject", "required: the failed payout's subject, as payouts.csv gives it")
			}
			l, err := openLedger(c.Context, c, true)
			if err != nil {
				return err
			}
			defer l.Close()
			// A WeChat Pay subject names its order ("" for any other: refused).
			orderNo, _ := wechatpay.OrderOfSubject(c.String("subject"))
			r, before, err := l.Resolve(c.Context, d, c.String("subject"), orderNo, c.String("note"))
			if err != nil {
				return err
			}
			when := "resolved"
			if before {
				when = "already resolved"
			}
			fmt.Fprintf(cfg.stdout, "%s %s %s (%s) at %s: %s\nthe next run of %s no longer counts it as a failed payout\n",
				when, r.Kind, r.Subject, r.Key, r.ResolvedAt.UTC().Format(time.RFC3339), r.Note, d)
			return nil
		},
	}
}
