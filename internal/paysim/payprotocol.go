package paysim

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/big"
	"strconv"

	"github.com/jmoiron/sqlx"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
)

// PayProtocolDecimals is the --payprotocol-decimals value for the
// simulated Pay Protocol: its payments settle in USDT with 6 decimals on
// chain 1. Pay Protocol's answers carry no decimals.
const PayProtocolDecimals = "1:USDT=6"

// PaymentMix is how SeedPayProtocol spreads payment statuses: out of 100
// orders, by hash of the order, the rest being paid.
var PaymentMix = []struct {
	Status payprotocol.PaymentStatus
	Per100 uint64
}{
	{payprotocol.PaymentPending, 3}, {payprotocol.PaymentBlockConfirmation, 3}, {payprotocol.PaymentPartiallyPaid, 3},
	{payprotocol.PaymentFailed, 3}, {payprotocol.PaymentRefunded, 3},
}

// SeedPayProtocol creates at the simulated Pay Protocol the payments of the
// platform's payprotocol orders confirmed in w - in every status, by a hash
// of the order so that the same orders always get the same status - and,
// for orders the platform shows refunded, their refunds (through the API,
// so they wait for approval as real ones do). Amounts are in USDT with 6
// decimals, quoted in the order's fiat currency.
func (s *Sim) SeedPayProtocol(ctx context.Context, db *sqlx.DB, query string, w pipeline.Window) (int, error) {
	rows, err := db.QueryContext(ctx, `SELECT provider_txn_id, currency, amount_minor::text, refunded_minor::text
		FROM (`+query+`) q WHERE provider = 'payprotocol' AND provider_txn_id IS NOT NULL`, w.Start, w.End)
	if err != nil {
		return 0, err
	}
	type refund struct {
		txn    string
		amount int64
		cur    pipeline.Currency
	}
	var refunds []refund
	n := 0
	for rows.Next() {
		var txn, cur, amount, refunded string
		if err := rows.Scan(&txn, &cur, &amount, &refunded); err != nil {
			rows.Close()
			return n, err
		}
		c := pipeline.Currency(cur)
		minor, err1 := strconv.ParseInt(amount, 10, 64) // the source's amounts are minor units already
		ref, err2 := strconv.ParseInt(refunded, 10, 64)
		exp, ok := c.Exponent()
		if err1 != nil || err2 != nil || !ok || minor <= 0 || ref < 0 || ref > minor {
			continue // a bad row (refunded more than paid, say): the job rejects it before asking Pay Protocol
		}
		if _, dup := s.PayProtocol.Payment(txn); dup {
			continue // a duplicated order (a seeded bad row): one payment; the job rejects the duplicate
		}
		scaled := new(big.Int).Mul(big.NewInt(minor), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(6-exp)), nil))
		if _, err := s.PayProtocol.AddPayment(txn, "USDT", 6, scaled.String(), statusOf(txn)); err != nil {
			rows.Close()
			return n, err
		}
		if err := s.PayProtocol.SetQuote(txn, cur, pipeline.FormatMinor(minor, c), true); err != nil {
			rows.Close()
			return n, err
		}
		s.trackPayProtocol(txn)
		n++
		if ref > 0 && statusOf(txn) == payprotocol.PaymentPaid {
			refunds = append(refunds, refund{txn, ref, c})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return n, err
	}
	// The refunds go 16 at a time (one at a time, a simulated latency of
	// 80 ms made a day of 1,000,000 orders take most of an hour to seed),
	// kept under the simulator's own limit, which counts a 429.
	cfg := s.PayProtocol.ClientConfig(s.Config.PayProtocolURL)
	if qps := s.timing.PayProtocolQPS; qps > 0 {
		cfg.Limiter = rate.NewLimiter(rate.Limit(qps*0.8), 1)
	}
	client, err := payprotocol.New(cfg)
	if err != nil {
		return n, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, r := range refunds {
		g.Go(func() error {
			if _, err := client.CreateRefundOrder(gctx, payprotocol.RefundOrder{OutTradeNo: r.txn, Amount: r.amount, Currency: r.cur}); err != nil {
				return fmt.Errorf("refund of %s: %w", r.txn, err)
			}
			return nil
		})
	}
	return n, g.Wait()
}

func statusOf(txn string) payprotocol.PaymentStatus {
	h := fnv.New64a()
	h.Write([]byte(txn))
	v := h.Sum64() % 100
	for _, m := range PaymentMix {
		if v < m.Per100 {
			return m.Status
		}
		v -= m.Per100
	}
	return payprotocol.PaymentPaid
}
