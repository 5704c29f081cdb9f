package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/settlekit/settle/seed"
)

func seedCommand(cfg *config) *cli.Command {
	return &cli.Command{
		Name:  "seed",
		Usage: "write deterministic synthetic orders for a date into the reference platform schema",
		Flags: append(databaseFlags(),
			dateFlag("business date YYYY-MM-DD (required)"), tzFlag(),
			&cli.IntFlag{Name: "orders", Value: 1000, Usage: "orders confirmed on the date"},
			&cli.IntFlag{Name: "sellers", Value: 50, Usage: "sellers"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "random seed: the same seed writes the same data"},
			&cli.IntFlag{Name: "bad-rows", Value: 0, Usage: "how many of the orders are bad rows of every kind"},
			&cli.IntFlag{Name: "sub-merchants", Value: 0, Usage: "WeChat Pay sub-merchants the sellers share (0: one per seller)"},
			&cli.BoolFlag{Name: "allow-other-orders", Usage: "seed a database whose orders table holds orders no seeding wrote (a trial's own; refused by default: a platform's)"},
		),
		Action: func(c *cli.Context) error {
			d, err := requiredDate(c)
			if err != nil {
				return err
			}
			loc, err := location(c)
			if err != nil {
				return err
			}
			url, err := databaseURL(c)
			if err != nil {
				return err
			}
			src, err := sourceURL(c, url)
			if err != nil {
				return err
			}
			err = cfg.seed(c.Context, src, c.Bool("allow-other-orders"), seed.Options{Date: d, Location: loc, Orders: c.Int("orders"),
				Sellers: c.Int("sellers"), Seed: c.Uint64("seed"), BadRows: c.Int("bad-rows"), SubMerchants: c.Int("sub-merchants")})
			if errors.Is(err, seed.ErrOtherOrders) {
				return fmt.Errorf("%w (or give --allow-other-orders if these are a trial's own)", err)
			}
			return err
		},
	}
}

func (cfg *config) seed(ctx context.Context, url string, allowOthers bool, o seed.Options) error {
	db, err := openDB(ctx, url)
	if err != nil {
		return err
	}
	defer db.Close()
	if !allowOthers {
		if err := seed.OnlySeeded(ctx, db); err != nil {
			return err
		}
	}
	start := time.Now()
	res, err := seed.Generate(ctx, db, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(cfg.stdout, "seeded %s: %d orders (%d bad rows), %d more just outside the day, %d refunds (%d late), %d sellers in %s\n",
		o.Date, res.Orders, res.BadRows, res.Outside, res.Refunds, res.LateRefunds, res.Sellers,
		time.Since(start).Round(time.Millisecond))
	return nil
}
