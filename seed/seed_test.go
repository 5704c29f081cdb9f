package seed_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/seed"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var day = pipeline.Date{Year: 2026, Month: 11, Day: 23}

func generate(t *testing.T, db *sqlx.DB, s uint64, orders, bad int) seed.Result {
	t.Helper()
	sh, _ := time.LoadLocation("Asia/Shanghai")
	res, err := seed.Generate(context.Background(), db, seed.Options{Date: day, Location: sh, Orders: orders, Sellers: 20, Seed: s, BadRows: bad})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func fingerprint(t *testing.T, db *sqlx.DB) string {
	t.Helper()
	var f string
	err := db.Get(&f, `SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
		SELECT concat_ws(',', order_no, seller_id, provider, provider_txn_id, currency, amount_minor, category, paid_at, confirmed_at) AS x FROM orders
		UNION ALL SELECT concat_ws(',', refund_no, order_no, amount_minor, created_at) FROM refunds) s`)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestSameSeedSameData(t *testing.T) {
	t.Parallel()
	a, b := pgtest.DB(t), pgtest.DB(t)
	generate(t, a, 3, 500, 16)
	generate(t, b, 3, 500, 16)
	if fingerprint(t, a) != fingerprint(t, b) {
		t.Fatal("the same seed wrote different data")
	}
	generate(t, b, 4, 500, 16)
	if fingerprint(t, a) == fingerprint(t, b) {
		t.Fatal("another seed wrote the same data")
	}
	// Seeding a date again replaces it rather than adding to it.
	generate(t, a, 3, 500, 16)
	var n int
	a.Get(&n, `SELECT count(*) FROM orders`)
	if n != 500+2+3 { // two duplicate rows, three outside the day
		t.Fatalf("%d orders after re-seeding, want 505", n)
	}
}

func TestSeedCoversChannelsCurrenciesRefundsAndMidnight(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	res := generate(t, db, 1, 2000, 0)
	if res.Orders != 2000 || res.Outside != 3 || res.LateRefunds == 0 || res.Refunds == 0 {
		t.Fatalf("result %+v", res)
	}
	count := func(q string) int {
		var n int
		if err := db.Get(&n, q); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for q, min := range map[string]int{
		`SELECT count(DISTINCT provider) FROM orders`:                               3,
		`SELECT count(DISTINCT currency) FROM orders`:                               5,
		`SELECT count(*) FROM orders WHERE currency = 'JPY'`:                        1,
		`SELECT count(*) FROM orders WHERE currency = 'KWD'`:                        1,
		`SELECT count(*) FROM orders WHERE confirmed_at = '2026-11-23 00:00:00+08'`: 1,
		`SELECT count(*) FROM orders WHERE confirmed_at = '2026-11-24 00:00:00+08'`: 1,
		`SELECT count(*) FROM orders WHERE confirmed_at < '2026-11-23 00:00:00+08'`: 1,
		`SELECT count(*) FROM (SELECT r.order_no FROM refunds r JOIN orders o USING (order_no) GROUP BY r.order_no, o.amount_minor HAVING sum(r.amount_minor) = o.amount_minor) f`: 1,
		`SELECT count(*) FROM (SELECT r.order_no FROM refunds r JOIN orders o USING (order_no) GROUP BY r.order_no, o.amount_minor HAVING sum(r.amount_minor) < o.amount_minor) p`: 1,
		`SELECT count(*) FROM sellers WHERE infinia_seller_id IS NOT NULL AND wechat_sub_mchid IS NOT NULL`:                                                                        20,
	} {
		if n := count(q); n < min {
			t.Errorf("%s = %d, want at least %d", q, n, min)
		}
	}
	// WeChat Pay distributes in CNY only: a good WeChat order in another
	// currency would be held for a person by every run of the demo.
	if n := count(`SELECT count(*) FROM orders WHERE provider = 'wechatpay' AND currency <> 'CNY'`); n != 0 {
		t.Errorf("%d WeChat orders not in CNY", n)
	}
}

func TestSeedWritesEveryBadKind(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	res := generate(t, db, 1, 400, len(seed.BadKinds))
	if res.BadRows != len(seed.BadKinds) {
		t.Fatalf("bad rows %d", res.BadRows)
	}
	for kind, q := range map[string]string{
		"null seller_id":          `SELECT count(*) FROM orders WHERE seller_id IS NULL`,
		"negative amount":         `SELECT count(*) FROM orders WHERE amount_minor < 0`,
		"overflowing amount":      `SELECT count(*) FROM orders WHERE amount_minor > 9223372036854775807`,
		"unknown currency":        `SELECT count(*) FROM orders WHERE currency = 'XXX'`,
		"unknown provider":        `SELECT count(*) FROM orders WHERE provider = 'alipay'`,
		"duplicate order_no":      `SELECT count(*) FROM (SELECT order_no FROM orders GROUP BY order_no HAVING count(*) > 1) d`,
		"refund above amount":     `SELECT count(*) FROM (SELECT order_no FROM refunds r JOIN orders o USING (order_no) GROUP BY order_no, o.amount_minor HAVING sum(r.amount_minor) > o.amount_minor) x`,
		"missing provider_txn_id": `SELECT count(*) FROM orders WHERE provider = 'wechatpay' AND provider_txn_id IS NULL`,
		"unknown seller":          `SELECT count(*) FROM orders WHERE seller_id = 'S99999'`,
	} {
		var n int
		if err := db.Get(&n, q); err != nil || n != 1 {
			t.Errorf("%s: %d rows (%v), want 1", kind, n, err)
		}
	}
}

// TestSeveralDatesNeverShareAnID seeds two neighbouring dates (a multi-day
// trial): no transaction id, order number or refund number is shared, and
// every order number carries the date its order was confirmed on, also the
// orders written just outside a day. Seeding a date again leaves the other's
// rows alone.
func TestSeveralDatesNeverShareAnID(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	sh, _ := time.LoadLocation("Asia/Shanghai")
	seedDate := func(d pipeline.Date) {
		t.Helper()
		if _, err := seed.Generate(context.Background(), db, seed.Options{Date: d, Location: sh, Orders: 300, Sellers: 20, Seed: 5}); err != nil {
			t.Fatal(err)
		}
	}
	next := day.AddDays(1)
	seedDate(day)
	seedDate(next)
	count := func(q string) int {
		t.Helper()
		var n int
		if err := db.Get(&n, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	if n := count(`SELECT count(*) FROM (SELECT provider_txn_id FROM orders WHERE provider_txn_id IS NOT NULL
		GROUP BY 1 HAVING count(*) > 1) d`); n != 0 {
		t.Fatalf("%d provider transaction ids shared by several orders", n)
	}
	if n := count(`SELECT count(*) FROM orders WHERE provider = 'wechatpay'`); n < 100 {
		t.Fatalf("only %d WeChat orders: the check above proves little", n)
	}
	if n := count(`SELECT count(*) FROM (SELECT order_no FROM orders GROUP BY 1 HAVING count(*) > 1) d`) +
		count(`SELECT count(*) FROM (SELECT refund_no FROM refunds GROUP BY 1 HAVING count(*) > 1) d`); n != 0 {
		t.Fatalf("%d order or refund numbers shared", n)
	}
	wrong := `SELECT count(*) FROM orders WHERE substr(order_no, 2, 8) <> to_char(confirmed_at AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD')`
	if n := count(wrong); n != 0 {
		t.Fatalf("%d orders carry another date than their confirmation's", n)
	}
	total := count(`SELECT count(*) FROM orders`)
	if total != 2*(300+3) {
		t.Fatalf("%d orders, want %d", total, 2*(300+3))
	}
	seedDate(day)
	if n := count(`SELECT count(*) FROM orders`); n != total {
		t.Fatalf("re-seeding %s: %d orders, want %d", day, n, total)
	}
}

// TestSellersShareSubMerchants: with SubMerchants, the sellers are spread
// over that many WeChat Pay sub-merchants, round robin, as WeChatSubMchID
// names them; without, each has its own.
func TestSellersShareSubMerchants(t *testing.T) {
	t.Parallel()
	db := pgtest.DB(t)
	if _, err := seed.Generate(context.Background(), db, seed.Options{Date: day, Orders: 50, Sellers: 25, SubMerchants: 4}); err != nil {
		t.Fatal(err)
	}
	var subs []string
	if err := db.Select(&subs, `SELECT wechat_sub_mchid FROM sellers ORDER BY seller_id`); err != nil {
		t.Fatal(err)
	}
	distinct := map[string]bool{}
	for i, s := range subs {
		if want := seed.WeChatSubMchID(i+1, 4); s != want {
			t.Fatalf("seller %d at %s, want %s", i+1, s, want)
		}
		distinct[s] = true
	}
	if len(subs) != 25 || len(distinct) != 4 {
		t.Fatalf("%d sellers at %d sub-merchants, want 25 at 4", len(subs), len(distinct))
	}
	if seed.WeChatSubMchID(7, 0) != "1900000007" || seed.WeChatSubMchID(5, 4) != "1900000001" {
		t.Fatal("WeChatSubMchID")
	}
}

// TestOptionsOutOfRangeAreNamed: each option out of range is a usage error
// naming the option and its value, before the database is touched.
func TestOptionsOutOfRangeAreNamed(t *testing.T) {
	for _, c := range []struct {
		o    seed.Options
		want string
	}{
		{seed.Options{Orders: -1, Sellers: 1}, "orders -1: want 0 to"},
		{seed.Options{Orders: seed.MaxOrders + 1, Sellers: 1}, fmt.Sprintf("orders %d: want 0 to %d", seed.MaxOrders+1, seed.MaxOrders)},
		{seed.Options{Orders: 10, Sellers: 0}, "sellers 0: want at least 1"},
		{seed.Options{Orders: 0, Sellers: 1, BadRows: 8}, "bad rows 8: want 0 to the orders (0)"},
		{seed.Options{Orders: 10, Sellers: 1, BadRows: -1}, "bad rows -1"},
		{seed.Options{Orders: 10, Sellers: 1, SubMerchants: -2}, "sub-merchants -2: want 0 or more"},
	} {
		_, err := seed.Generate(context.Background(), nil, c.o)
		if pipeline.KindOf(err) != pipeline.KindUsage || err == nil || !strings.Contains(err.Error(), "seed: "+c.want) {
			t.Errorf("%+v: %v, want a usage error %q", c.o, err, c.want)
		}
	}
}

// A date the clocks skipped has no time to confirm an order in (Samoa went
// from 29 to 31 December 2011): seeding orders on it is a usage error
// naming the date and the zone, before the database is touched. It
// panicked (a random instant in an empty day), which exits 2 with a stack
// trace, as a configuration error would (found trying day shapes).
func TestADateTheClocksSkippedIsRefused(t *testing.T) {
	apia, err := time.LoadLocation("Pacific/Apia")
	if err != nil {
		t.Skip(err)
	}
	skipped := pipeline.Date{Year: 2011, Month: 12, Day: 30}
	if w := pipeline.WindowOf(skipped, apia); w.End.After(w.Start) {
		t.Fatalf("%s in %s: window %v, want an empty one", skipped, apia, w)
	}
	db := pgtest.DB(t)
	_, err = seed.Generate(context.Background(), db, seed.Options{Date: skipped, Location: apia, Orders: 5, Sellers: 1})
	if pipeline.KindOf(err) != pipeline.KindUsage || err == nil || !strings.Contains(err.Error(), "2011-12-30 has no time in Pacific/Apia") {
		t.Fatalf("%v, want a usage error naming the date and the zone", err)
	}
	var created bool
	if err := db.Get(&created, `SELECT to_regclass('orders') IS NOT NULL`); err != nil || created {
		t.Fatalf("orders table created: %v (%v), want the database untouched", created, err)
	}
}

// OnlySeeded takes a database with no orders table, or with orders every
// one of which a seeding wrote (bad rows and those just outside the day
// included), and refuses one holding an order no seeding wrote, naming it:
// settle seed in a shell that exports a platform's SETTLE_DATABASE_URL
// put synthetic orders among its real ones (found by an operator's
// review).
func TestOnlySeededRefusesAPlatformsOrders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.DB(t)
	if err := seed.OnlySeeded(ctx, db); err != nil {
		t.Fatalf("an empty database: %v", err)
	}
	generate(t, db, 3, 200, len(seed.BadKinds))
	if err := seed.OnlySeeded(ctx, db); err != nil {
		t.Fatalf("a seeded database: %v", err)
	}
	db.MustExec(`INSERT INTO orders (order_no, seller_id, provider, provider_txn_id, currency, amount_minor, paid_at, confirmed_at)
		VALUES ('ORD-2026-000017', 'S00001', 'infiniapay', 'T17', 'USD', 1000, now(), now())`)
	err := seed.OnlySeeded(ctx, db)
	if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(fmt.Sprint(err), `"ORD-2026-000017"`) {
		t.Fatalf("a platform's order among the seeded: %v, want a usage error naming it", err)
	}
}
