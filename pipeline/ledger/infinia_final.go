package ledger

import (
	"context"
	"fmt"

	"github.com/settlekit/settle/pipeline"
)

// expectedSharesQuery reads the run's sellers and currencies at Infinia
// with their totals over all dates (share_totals): its argument is the run.
const expectedSharesQuery = `
		WITH s AS (
			SELECT seller_id, currency FROM trade_files WHERE run_id = $1
			UNION
			SELECT split_part(subject, '/', 3), currency FROM effects WHERE run_id = $1 AND kind = 'revenue_share')
		SELECT s.seller_id, s.currency,
		       COALESCE((SELECT rs.infinia_seller_id FROM run_sellers rs
		                 WHERE rs.run_id = $1 AND rs.seller_id = s.seller_id AND rs.infinia_seller_id <> ''),
		                (SELECT rs.infinia_seller_id FROM run_sellers rs
		                 WHERE rs.seller_id = s.seller_id AND rs.infinia_seller_id <> '' ORDER BY rs.run_id DESC LIMIT 1), ''),
		       COALESCE(t.uploaded, 0), COALESCE(t.paid, 0), COALESCE(t.in_flight, 0),
		       format('files %s shares %s changes %s', COALESCE(t.files, 0), COALESCE(t.shares, 0), COALESCE(t.version, 0))
		FROM s LEFT JOIN share_totals t ON t.seller_id = s.seller_id AND t.currency = s.currency
		ORDER BY s.seller_id, s.currency`

// EachExpectedShare calls fn for every seller and currency with a trade
// file or a revenue share in the run, by seller and currency, with what
// the ledger expects Infinia to show as available: accepted trade files
// less successful revenue shares, over all dates; and, as its Activity,
// the counts of the seller's trade files and revenue shares in the
// currency and the number of changes to them, over all dates (a file or
// payout recorded or removed, or a change of its status, state or amount,
// changes it). The figures come from
// share_totals (migration 00013), which triggers keep with every trade
// file and revenue share: the statement reads the run's files and revenue
// shares and a row of totals for each, whatever the ledger's history. Its
// rows stream: the caller holds what it keeps of them, not the run's
// sellers. The seller's Infinia id is the run's, else the latest run's
// that recorded one.
func (l *Ledger) EachExpectedShare(ctx context.Context, runID int64, fn func(pipeline.ExpectedShare) error) error {
	rows, err := l.db.QueryContext(ctx, expectedSharesQuery, runID)
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
