package main

import (
	"fmt"
	"testing"
)

// TestRowsWithoutASellerDoNotStopShardZero: rows without a seller id were
// all given to shard 0 (so that each is rejected once), and its reject
// gate judged them against its quarter of the day: a day whose rejects
// were 1.5% of it, well within --max-reject-ratio whole, stopped shard
// 0/4 with exit 3 (7% of its rows), its sellers unpaid for rows that
// concern no seller, while shards 1-3 paid theirs. A row without a seller
// now goes to the shard its order number hashes to (shard 0 when it has
// none either), and is still rejected by exactly one shard.
func TestRowsWithoutASellerDoNotStopShardZero(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(400, 0)
	for i := range 6 {
		e.db.MustExec(`INSERT INTO orders SELECT $2, NULL, provider, provider_txn_id, currency, amount_minor,
			category, buyer_country, paid_at, confirmed_at FROM orders
			WHERE confirmed_at >= '2026-11-23 00:00:00+08' AND confirmed_at < '2026-11-24 00:00:00+08' AND provider = 'infiniapay'
			ORDER BY order_no OFFSET $1 LIMIT 1`, i, fmt.Sprintf("NOSELLER-%d", i))
	}
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--dry-run") // the whole day: within the ratio
	for i := range 4 {
		out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--until", "transform", "--shard", fmt.Sprintf("%d/4", i))
		if code != 0 {
			t.Fatalf("shard %d/4: exit %d, want 0 (the day's rejects are 6 of %d rows)\n%s", i, code, 406, out)
		}
	}
	if n := e.count(`SELECT count(*) FROM settle.rejects WHERE order_no LIKE 'NOSELLER-%'`); n != 6 {
		t.Fatalf("%d rejects of the rows without a seller, want each once (6)", n)
	}
}
