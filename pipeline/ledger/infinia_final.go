package ledger

import (
	"context"
	"fmt"

	"github.com/settlekit/settle/pipeline"
)

// EachExpectedShare calls fn for every seller and currency with a trade
// file or a revenue share in the run, by seller and currency, with what the ledger expects Infinia to show
// as available: accepted trade files less successful revenue shares, over
// all dates; and, as its Activity, the count, latest id and latest change
// of the seller's trade files and revenue shares in the currency, over all
// dates (a file or payout recorded, changed or removed changes it). One
// statement, whose rows stream: the caller holds what it keeps of them,
// not the run's sellers.
func (l *Ledger) EachExpectedShare(ctx context.Context, runID int64, fn func(pipeline.ExpectedShare) error) error {
	rows, err := l.db.QueryContext(ctx, `
		WITH s AS (
			SELECT seller_id, currency FROM trade_files WHERE run_id = $1
			UNION
			SELECT split_part(subject, '/', 3), currency FROM effects WHERE run_id = $1 AND kind = 'revenue_share'),
		files AS (
			SELECT t.seller_id, t.currency,
			       sum(t.seller_minor) FILTER (WHERE t.status = 'SUCCESS') AS uploaded,
			       count(*) AS n, max(t.id) AS last_id, max(t.updated_at) AS last_at
			FROM trade_files t JOIN s ON s.seller_id = t.seller_id AND s.currency = t.currency
			GROUP BY 1, 2),
		shares AS (
			SELECT s.seller_id, s.currency,
			       sum(e.amount_minor) FILTER (WHERE e.state = 'succeeded') AS paid,
			       sum(e.amount_minor) FILTER (WHERE e.state IN ('sent', 'unknown')) AS in_flight,
			       count(*) AS n, max(e.id) AS last_id, max(e.updated_at) AS last_at
			FROM effects e JOIN s ON s.seller_id = split_part(e.subject, '/', 3) AND s.currency = e.currency
			WHERE e.kind = 'revenue_share'
			GROUP BY 1, 2)
		SELECT s.seller_id, s.currency,
		       COALESCE((SELECT rs.infinia_seller_id FROM run_sellers rs WHERE rs.seller_id = s.seller_id AND rs.infinia_seller_id <> ''
		                 ORDER BY rs.run_id = $1 DESC, rs.run_id DESC LIMIT 1), ''),
		       COALESCE(f.uploaded, 0), COALESCE(x.paid, 0), COALESCE(x.in_flight, 0),
		       format('files %s/%s/%s shares %s/%s/%s',
		              COALESCE(f.n, 0), COALESCE(f.last_id, 0), COALESCE((extract(epoch FROM f.last_at) * 1000000)::bigint, 0),
		              COALESCE(x.n, 0), COALESCE(x.last_id, 0), COALESCE((extract(epoch FROM x.last_at) * 1000000)::bigint, 0))
		FROM s LEFT JOIN files f ON f.seller_id = s.seller_id AND f.currency = s.currency
		LEFT JOIN shares x ON x.seller_id = s.seller_id AND x.currency = s.currency
		ORDER BY s.seller_id, s.currency`, runID)
	if err != nil {
		return fmt.Errorf("read expected shares: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var x pipeline.ExpectedShare
		var cur string
		if err := rows.Scan(&x.SellerID, &cur, &x.ProviderSellerID, &x.Uploaded, &x.Paid, &x.InFlight, &x.Activity); err != nil {
			return fmt.Errorf("read expected shares: %w", err)
		}
		x.Currency = pipeline.Currency(cur)
		if err := fn(x); err != nil {
			return err
		}
	}
	return rows.Err()
}
