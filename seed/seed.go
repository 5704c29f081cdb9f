// Package seed writes deterministic synthetic platform data into the
// reference schema (sellers, orders, refunds): every channel, several
// currencies including zero- and three-decimal ones, partial, full and late
// refunds, orders confirmed around midnight, and on request bad rows of every
// kind the job must reject. The demo, the tests and the benchmarks use it.
package seed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
	settlesql "github.com/settlekit/settle/sql"
)

// Options say what to generate.
type Options struct {
	Date     pipeline.Date
	Location *time.Location // the business time zone
	Orders   int            // orders confirmed on Date (good and bad rows together)
	Sellers  int
	Seed     uint64 // same seed, same data
	BadRows  int    // how many of Orders are bad rows, cycling through BadKinds
	// SubMerchants is how many WeChat Pay sub-merchants the sellers
	// share: seller i is at WeChatSubMchID(i, SubMerchants). 0: one each.
	SubMerchants int
}

// BadKinds are the kinds of bad row the seed can write, in the order used.
var BadKinds = []string{
	"null seller_id", "negative amount", "overflowing amount", "unknown currency",
	"unknown provider", "duplicate order_no", "refund above amount", "missing provider_txn_id",
	"unknown seller",
}

// Result says what was written.
type Result struct {
	Sellers     int
	Orders      int // rows written into orders confirmed on the date
	Outside     int // rows confirmed just outside the date (must not be read)
	Refunds     int
	LateRefunds int // refunds created after the day closed
	BadRows     int
}

type channelMix struct {
	channel    pipeline.Channel
	currencies []pipeline.Currency
}

var mix = []channelMix{
	{infiniapay.Channel, []pipeline.Currency{"USD", "CNY", "JPY", "EUR", "KWD"}},
	{infiniapay.Channel, []pipeline.Currency{"USD", "JPY"}},
	// WeChat Pay distributes in CNY only (its receivers' currency, as
	// published): its orders are CNY. The second entry was CNY and HKD,
	// and an HKD order is one settle holds for a person; it stays, CNY
	// alone, so that WeChat keeps 2 in 5 of the orders and every draw
	// after it is the same (IntN(1) draws once, as IntN(2) did): the
	// other channels' data does not move.
	{wechatpay.Channel, []pipeline.Currency{"CNY"}},
	{wechatpay.Channel, []pipeline.Currency{"CNY"}},
	{payprotocol.Channel, []pipeline.Currency{"USD"}},
}

var categories = []string{"electronics", "apparel", "books", "home", "beauty", ""}

// OrderPrefix is the prefix of the numbers of the seed's orders confirmed
// on d: O20261123-00000001 for the first order of 2026-11-23.
func OrderPrefix(d pipeline.Date) string { return "O" + d.Compact() + "-" }

// MaxOrders bounds Options.Orders: the order numbers that begin with
// before or after (after the date's prefix) are those a seeding writes just
// outside its day, so that every seeded order number is unique over any set
// of dates.
const MaxOrders = 79_999_999

// Marks of the orders a seeding of D writes just outside its day: the one
// just before it is O(D-1)-8000000j, those just after it O(D+1)-9000000j.
const (
	before = "8"
	after  = "9"
)

// check names the first option out of range, with its value.
func (o Options) check() error {
	var what string
	switch {
	case o.Orders < 0 || o.Orders > MaxOrders:
		what = fmt.Sprintf("orders %d: want 0 to %d", o.Orders, MaxOrders)
	case o.Sellers < 1:
		what = fmt.Sprintf("sellers %d: want at least 1", o.Sellers)
	case o.BadRows < 0 || o.BadRows > o.Orders:
		what = fmt.Sprintf("bad rows %d: want 0 to the orders (%d)", o.BadRows, o.Orders)
	case o.SubMerchants < 0:
		what = fmt.Sprintf("sub-merchants %d: want 0 or more", o.SubMerchants)
	default:
		return nil
	}
	return pipeline.Errorf(pipeline.KindUsage, "seed", "%s", what)
}

// seededOrder matches every order number a seeding writes (OrderPrefix,
// then digits): the check of OnlySeeded.
const seededOrder = `^O[0-9]{8}-[0-9]+$`

// OnlySeeded refuses (KindUsage) a database whose orders table holds an
// order no seeding wrote: it is a platform's, or a trial's with orders of
// its own, and the next run of that date would settle the synthetic orders
// Generate writes among the real ones. A database without an orders table
// is fine. settle seed reads SETTLE_DATABASE_URL, which a production
// shell or pod exports (found by an operator's review).
func OnlySeeded(ctx context.Context, db *sqlx.DB) error {
	var exists bool
	if err := db.GetContext(ctx, &exists, `SELECT to_regclass('orders') IS NOT NULL`); err != nil {
		return fmt.Errorf("seed: look for an orders table: %w", err)
	}
	if !exists {
		return nil
	}
	var other []string
	if err := db.SelectContext(ctx, &other, `SELECT order_no FROM orders WHERE order_no IS NOT NULL AND order_no !~ $1 LIMIT 1`, seededOrder); err != nil {
		return fmt.Errorf("seed: read the orders there: %w", err)
	}
	if len(other) == 0 {
		return nil
	}
	return pipeline.Errorf(pipeline.KindUsage, "seed",
		"%w (order %q, for one): seeding it would put synthetic orders among them, "+
			"for the next run of their date to settle; seed a trial database", ErrOtherOrders, other[0])
}

// ErrOtherOrders is OnlySeeded's refusal.
var ErrOtherOrders = errors.New("the database's orders table holds orders no seeding wrote")

// Generate writes the data. Seeding a date again replaces that date's
// seeded orders and refunds; sellers are added when missing. A date with
// no time in Location (its clocks skipped it) takes no orders: a usage
// error, before the database is touched.
func Generate(ctx context.Context, db *sqlx.DB, o Options) (Result, error) {
	if err := o.check(); err != nil {
		return Result{}, err
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if w := pipeline.WindowOf(o.Date, o.Location); o.Orders > 0 && !w.End.After(w.Start) {
		// Samoa went from 29 to 31 December 2011: no instant to confirm
		// an order at (it was a panic, drawing one in an empty day).
		return Result{}, pipeline.Errorf(pipeline.KindUsage, "seed",
			"%s has no time in %s (its clocks skipped the day): no order can be confirmed on it", o.Date, o.Location)
	}
	var res Result
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return res, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, settlesql.PlatformSchema); err != nil {
		return res, fmt.Errorf("seed: create reference schema: %w", err)
	}
	// What an earlier seeding of this date wrote: its own orders, and those
	// it wrote just outside the day, which carry the neighbours' dates.
	own := `(order_no LIKE $1 || '%' AND substr(order_no, length($1) + 1, 1) NOT IN ('` + before + `', '` + after + `'))
		OR order_no LIKE $2 || '` + before + `%' OR order_no LIKE $3 || '` + after + `%'`
	for _, q := range []string{`DELETE FROM refunds WHERE ` + own, `DELETE FROM orders WHERE ` + own} {
		if _, err := tx.ExecContext(ctx, q, OrderPrefix(o.Date), OrderPrefix(o.Date.AddDays(-1)), OrderPrefix(o.Date.AddDays(1))); err != nil {
			return res, fmt.Errorf("seed: clear %s: %w", o.Date, err)
		}
	}
	if err := writeSellers(ctx, tx.Tx, o.Sellers, o.SubMerchants); err != nil {
		return res, err
	}
	res.Sellers = o.Sellers
	g := &gen{o: o, rng: rand.New(rand.NewPCG(o.Seed, uint64(o.Date.Year)<<16|uint64(o.Date.Month)<<8|uint64(o.Date.Day)))}
	if err := g.writeOrders(ctx, tx.Tx, &res); err != nil {
		return res, err
	}
	if _, err := tx.ExecContext(ctx, `ANALYZE orders`); err != nil {
		return res, err
	}
	return res, tx.Commit()
}

func writeSellers(ctx context.Context, tx *sql.Tx, n, subs int) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO sellers (seller_id, name, entity_type, country, infinia_seller_id, wechat_sub_mchid)
		SELECT 'S' || lpad(i::text, 5, '0'), 'Seller ' || i,
		       CASE WHEN i % 3 = 0 THEN 'Individual' ELSE 'Corporate' END,
		       (ARRAY['CHN','HKG','USA','JPN','KWT'])[1 + i % 5],
		       'INF' || lpad(i::text, 8, '0'),
		       (1900000000 + CASE WHEN $2 > 0 THEN (i - 1) % $2 + 1 ELSE i END)::text
		FROM generate_series(1, $1) AS i
		ON CONFLICT (seller_id) DO NOTHING`, n, subs)
	if err != nil {
		return fmt.Errorf("seed: sellers: %w", err)
	}
	return nil
}

// InfiniaID is the Infinia Pay seller id of the seed's i-th seller.
func InfiniaID(i int) string { return fmt.Sprintf("INF%08d", i) }

// SellerID is the id of the seed's i-th seller (1-based).
func SellerID(i int) string { return fmt.Sprintf("S%05d", i) }

type gen struct {
	o   Options
	rng *rand.Rand
}

type order struct {
	no, seller, provider, txn, currency, amount, category, country string
	paid, confirmed                                                time.Time
	refunds                                                        []refund
}

type refund struct {
	amount int64
	at     time.Time
}

func (g *gen) writeOrders(ctx context.Context, tx *sql.Tx, res *Result) error {
	ostmt, err := tx.PrepareContext(ctx, `COPY orders (order_no, seller_id, provider, provider_txn_id, currency,
		amount_minor, category, buyer_country, paid_at, confirmed_at) FROM STDIN`)
	if err != nil {
		return err
	}
	var refunds []struct {
		order string
		r     refund
	}
	write := func(o order) error {
		_, err := ostmt.ExecContext(ctx, nullable(o.no), nullable(o.seller), nullable(o.provider), nullable(o.txn),
			nullable(o.currency), o.amount, nullable(o.category), o.country, o.paid, o.confirmed)
		for _, r := range o.refunds {
			refunds = append(refunds, struct {
				order string
				r     refund
			}{o.no, r})
		}
		return err
	}
	day := pipeline.WindowOf(g.o.Date, g.o.Location)
	span := day.End.Sub(day.Start)
	bad := spread(g.o.Orders, g.o.BadRows)
	for i := 1; i <= g.o.Orders; i++ {
		o := g.good(fmt.Sprintf("%s%08d", OrderPrefix(g.o.Date), i), i, day.Start.Add(g.confirmOffset(i, span)))
		if bad[i] >= 0 {
			extra := g.spoil(&o, BadKinds[bad[i]%len(BadKinds)])
			res.BadRows++
			if extra != nil {
				if err := write(*extra); err != nil {
					return err
				}
			}
		}
		if err := write(o); err != nil {
			return err
		}
		res.Orders++
	}
	// Orders confirmed just outside the day: they belong to its neighbours,
	// whose dates they carry.
	for j, at := range []time.Time{day.Start.Add(-time.Microsecond), day.End, day.End.Add(time.Second)} {
		mark := after
		if at.Before(day.Start) {
			mark = before
		}
		no := fmt.Sprintf("%s%s%07d", OrderPrefix(pipeline.DateOf(at.In(g.o.Location))), mark, j)
		o := g.good(no, g.o.Orders+1+j, at)
		if err := write(o); err != nil {
			return err
		}
		res.Outside++
	}
	if _, err := ostmt.ExecContext(ctx); err != nil {
		return fmt.Errorf("seed: copy orders: %w", err)
	}
	if err := ostmt.Close(); err != nil {
		return err
	}
	rstmt, err := tx.PrepareContext(ctx, `COPY refunds (refund_no, order_no, amount_minor, created_at) FROM STDIN`)
	if err != nil {
		return err
	}
	for k, r := range refunds {
		if _, err := rstmt.ExecContext(ctx, fmt.Sprintf("R%s-%d", r.order, k), r.order, r.r.amount, r.r.at); err != nil {
			return err
		}
		res.Refunds++
		if !r.r.at.Before(day.End) {
			res.LateRefunds++
		}
	}
	if _, err := rstmt.ExecContext(ctx); err != nil {
		return fmt.Errorf("seed: copy refunds: %w", err)
	}
	return rstmt.Close()
}

// confirmOffset places order i in the day: the first few exactly at and just
// after midnight and just before the next, the rest spread at random.
func (g *gen) confirmOffset(i int, span time.Duration) time.Duration {
	switch i {
	case 1:
		return 0
	case 2:
		return time.Microsecond
	case 3:
		return span - time.Microsecond
	}
	return time.Duration(g.rng.Int64N(int64(span)))
}

// good is a good order numbered no, the i-th the seeding of the date writes.
func (g *gen) good(no string, i int, confirmed time.Time) order {
	m := mix[g.rng.IntN(len(mix))]
	cur := m.currencies[g.rng.IntN(len(m.currencies))]
	seller := SellerID(1 + g.rng.IntN(g.o.Sellers))
	exp, _ := cur.Exponent()
	// Log-uniform-ish amounts from 1 to 5,000 major units.
	major := int64(1) + g.rng.Int64N(10)*g.rng.Int64N(500)
	amount := major * pow10(exp)
	if exp > 0 {
		amount += g.rng.Int64N(pow10(exp))
	}
	o := order{
		no: no, seller: seller, provider: string(m.channel), currency: string(cur),
		amount: strconv.FormatInt(amount, 10), category: categories[g.rng.IntN(len(categories))],
		country:   []string{"CHN", "USA", "JPN", "DEU", "KWT"}[g.rng.IntN(5)],
		confirmed: confirmed, paid: confirmed.Add(-time.Duration(1+g.rng.IntN(240)) * time.Hour),
	}
	switch m.channel {
	case wechatpay.Channel:
		// 28 digits like WeChat's: 4200000000, the seeded date, the index,
		// so that no two seeded dates share one.
		o.txn = fmt.Sprintf("4200000000%s%010d", g.o.Date.Compact(), i)
	case payprotocol.Channel:
		o.txn = "PP" + no
	default:
		o.txn = "INFT" + no
	}
	switch r := g.rng.IntN(100); {
	case r < 10: // partial refund, before the day closed
		o.refunds = []refund{{amount: 1 + g.rng.Int64N(amount), at: confirmed.Add(-time.Minute)}}
		if o.refunds[0].amount == amount {
			o.refunds[0].amount = amount / 2
		}
	case r < 13: // full refund, in two parts
		o.refunds = []refund{{amount: amount / 2, at: confirmed.Add(-2 * time.Minute)}, {amount: amount - amount/2, at: confirmed.Add(-time.Minute)}}
	case r < 15: // late refund: after the day closed
		o.refunds = []refund{{amount: 1 + g.rng.Int64N(amount), at: confirmed.Add(36 * time.Hour)}}
	}
	return o
}

// spoil turns o into a bad row of the given kind; for a duplicate it returns
// the second row to write.
func (g *gen) spoil(o *order, kind string) *order {
	switch kind {
	case "null seller_id":
		o.seller = ""
	case "negative amount":
		o.amount = "-" + o.amount
	case "overflowing amount":
		o.amount = "92233720368547758070"
	case "unknown currency":
		o.currency = "XXX"
	case "unknown provider":
		o.provider = "alipay"
	case "duplicate order_no":
		dup := *o
		dup.refunds = nil
		return &dup
	case "refund above amount":
		amt, _ := strconv.ParseInt(o.amount, 10, 64)
		o.refunds = []refund{{amount: amt + 1, at: o.confirmed.Add(-time.Minute)}}
	case "unknown seller":
		o.seller = "S99999"
	case "missing provider_txn_id":
		o.provider, o.txn = string(wechatpay.Channel), ""
		o.currency = "CNY"
	}
	return nil
}

// spread marks k of the n orders (1..n) as bad, evenly, with the index of
// the bad kind; -1 for a good order.
func spread(n, k int) []int {
	out := make([]int, n+1)
	for i := range out {
		out[i] = -1
	}
	for j := 0; j < k; j++ {
		out[n-j*n/k] = j
	}
	return out
}

func pow10(e int) int64 {
	p := int64(1)
	for ; e > 0; e-- {
		p *= 10
	}
	return p
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
