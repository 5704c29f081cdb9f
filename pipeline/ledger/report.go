package ledger

import (
	"context"
	"fmt"
	"strconv"

	"github.com/settlekit/settle/pipeline"
)

// OrderLines streams every order considered on date d by any of its runs -
// settled items and rejects - ordered by order_no then source position, for
// the orders report, the entries of the date's reprices (settle reprice:
// action reprice, the commission and seller share moved, refunded 0), and
// the late refunds: each on the date that read it,
// with the parts it took back when its clawback is dated that date too. A
// clawback dated later (its order settled after the refund was read) has
// its parts on its own date's row, where summary.csv and sellers.csv count
// it, so that a date's late_refund rows add up to its clawbacks; the
// reading date's row names that date.
func (r Reader) OrderLines(ctx context.Context, d pipeline.Date, fn func(pipeline.OrderLine) error) error {
	rows, err := r.q.QueryContext(ctx, `
		SELECT i.order_no, i.seller_id, i.channel, i.currency, i.gross_minor::text, i.refunded_minor::text,
		       i.commission_minor::text, i.seller_minor::text, 'settle', i.state,
		       CASE WHEN k.subject IS NULL THEN i.reason
		            ELSE concat_ws('; ', NULLIF(i.reason, ''), 'its carried balance closed on ' || k.business_date::text
		                           || ' by settle sellers close (' || k.subject || '): not paid by settle') END,
		       i.rule, COALESCE(k.subject, i.payout_key), i.provider_ref, r.shard_index || '/' || r.shard_count, 0 AS seq
		FROM items i JOIN runs r ON r.id = i.run_id
		-- A carried item whose entry a close netted (settle sellers
		-- close): still carried, never to be paid by settle; the close's
		-- key and date said, as a paid item's row gives the share that
		-- paid it. Looked up for each carried item alone, its entry by
		-- key and the close by adjustments_close (LIMIT 1: a loop of its
		-- own; joined, the planner scanned every entry of the ledger).
		LEFT JOIN LATERAL (SELECT k.subject, k.business_date FROM adjustments c
		                   JOIN adjustments k ON k.kind = 'close' AND k.subject = c.netted_into
		                   WHERE i.state = 'carried' AND c.id = i.carry_id LIMIT 1) k ON true
		WHERE i.business_date = $1
		UNION ALL
		SELECT j.order_no, j.seller_id, j.provider, j.currency, j.amount, j.refunded, '', '', 'rejected',
		       'rejected', j.reason, '', '', '', r.shard_index || '/' || r.shard_count, j.seq
		FROM rejects j JOIN runs r ON r.id = j.run_id
		WHERE r.business_date = $1
		UNION ALL
		SELECT lr.order_no, lr.seller_id, COALESCE(i.channel, ''), COALESCE(i.currency, ''), '', lr.amount_minor::text,
		       CASE WHEN a.business_date = lr.business_date THEN (-a.commission_back)::text ELSE '' END,
		       CASE WHEN a.business_date = lr.business_date THEN a.amount_minor::text ELSE '' END, 'late_refund', lr.state,
		       CASE WHEN a.id IS NULL AND lr.state = 'pending' AND lr.reason = ''
		            THEN 'late refund ' || lr.refund_no || ': waiting for its order to be paid or carried; clawed back then'
		            WHEN a.id IS NULL THEN 'late refund ' || lr.refund_no || ': ' || lr.reason
		            WHEN a.business_date = lr.business_date THEN a.reason
		            ELSE a.reason || '; clawed back on ' || a.business_date::text || ': in that date''s reports' END,
		       '', '', '', r.shard_index || '/' || r.shard_count, 0
		FROM late_refunds lr JOIN runs r ON r.id = lr.run_id
		LEFT JOIN items i ON i.order_no = lr.order_no
		LEFT JOIN adjustments a ON a.kind = 'clawback' AND a.refund_no = lr.refund_no
		WHERE lr.business_date = $1
		UNION ALL
		SELECT lr.order_no, lr.seller_id, COALESCE(i.channel, ''), COALESCE(i.currency, ''), '', lr.amount_minor::text,
		       (-a.commission_back)::text, a.amount_minor::text, 'late_refund', lr.state,
		       a.reason || '; read on ' || lr.business_date::text || ', clawed back on this date',
		       '', '', '', r.shard_index || '/' || r.shard_count, 0
		FROM adjustments a JOIN late_refunds lr ON lr.refund_no = a.refund_no JOIN runs r ON r.id = a.run_id
		LEFT JOIN items i ON i.order_no = lr.order_no
		WHERE a.kind = 'clawback' AND a.business_date = $1 AND lr.business_date <> $1
		UNION ALL
		SELECT a.order_no, a.seller_id, COALESCE(i.channel, ''), a.currency, '', '0',
		       (-a.commission_back)::text, a.amount_minor::text, 'reprice', 'repriced', a.reason,
		       '', '', '', r.shard_index || '/' || r.shard_count, a.reprice_id
		FROM adjustments a JOIN runs r ON r.id = a.run_id
		LEFT JOIN items i ON i.order_no = a.order_no
		WHERE a.reprice_id = ANY (ARRAY(SELECT id FROM reprices WHERE business_date = $1))
		UNION ALL
		SELECT '', a.seller_id, '', a.currency, '', '0', (-a.commission_back)::text, a.amount_minor::text, 'close', 'closed', a.reason,
		       '', a.subject, '', r.shard_index || '/' || r.shard_count, 0
		FROM adjustments a JOIN runs r ON r.id = a.run_id
		WHERE a.kind = 'close' AND a.business_date = $1
		ORDER BY 1, 9, 16, 15, 11, 6`, d.String())
	if err != nil {
		return fmt.Errorf("read order lines: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var o pipeline.OrderLine
		var seq int64
		if err := rows.Scan(&o.OrderNo, &o.SellerID, &o.Provider, &o.Currency, &o.Gross, &o.Refunded,
			&o.Commission, &o.Seller, &o.Action, &o.State, &o.Reason, &o.Rule, &o.PayoutKey, &o.ProviderRef,
			&o.Shard, &seq); err != nil {
			return fmt.Errorf("read order lines: %w", err)
		}
		o.Balanced = orderBalanced(o)
		if err := fn(o); err != nil {
			return err
		}
	}
	return rows.Err()
}

// TotalsOfRun returns a run's items summed by channel and currency: as
// recorded with them (run_totals), or summed from the items for a run
// recorded before the ledger kept its totals (or with none yet).
func (r Reader) TotalsOfRun(ctx context.Context, runID int64) ([]pipeline.Totals, error) {
	out, err := r.totals(ctx, `
		SELECT channel, currency, orders, gross_minor, refunded_minor, commission_minor, seller_minor
		FROM run_totals WHERE run_id = $1 ORDER BY channel, currency`, runID)
	if err != nil || len(out) > 0 {
		return out, err
	}
	return r.totals(ctx, `
		SELECT channel, currency, count(*), sum(gross_minor), sum(refunded_minor), sum(commission_minor), sum(seller_minor)
		FROM items WHERE run_id = $1 GROUP BY channel, currency ORDER BY channel, currency`, runID)
}

// totals reads (channel, currency, orders, gross, refunded, commission,
// seller) rows.
func (r Reader) totals(ctx context.Context, query string, runID int64) ([]pipeline.Totals, error) {
	rows, err := r.q.QueryContext(ctx, query, runID)
	if err != nil {
		return nil, fmt.Errorf("read totals: %w", err)
	}
	defer rows.Close()
	var out []pipeline.Totals
	for rows.Next() {
		var t pipeline.Totals
		var ch, cur string
		// numeric sums cannot overflow in SQL; scanning into int64 fails loudly if they exceed it.
		if err := rows.Scan(&ch, &cur, &t.Orders, &t.Gross, &t.Refunded, &t.Commission, &t.Seller); err != nil {
			return nil, fmt.Errorf("read totals: %w", err)
		}
		t.Channel, t.Currency = pipeline.Channel(ch), pipeline.Currency(cur)
		out = append(out, t)
	}
	return out, rows.Err()
}

// RejectReason is one reason of a run's rejects: how many there are and
// one of them.
type RejectReason struct {
	Reason string `json:"reason"`
	Count  int64  `json:"count"`
	Sample string `json:"sample"` // one order number (or source position) with this reason
}

// RejectsOfRun groups a run's rejects by reason, most frequent first.
func (r Reader) RejectsOfRun(ctx context.Context, runID int64) ([]RejectReason, error) {
	return r.rejectReasons(ctx, "rejects", `
		SELECT reason, count(*), min(CASE WHEN order_no = '' THEN '(row ' || seq || ')' ELSE order_no END)
		FROM rejects WHERE run_id = $1 GROUP BY reason ORDER BY count(*) DESC, reason`, runID)
}

// rejectReasons reads (reason, count, sample) rows: query with args.
func (r Reader) rejectReasons(ctx context.Context, what, query string, args ...any) ([]RejectReason, error) {
	rows, err := r.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	defer rows.Close()
	var out []RejectReason
	for rows.Next() {
		var r RejectReason
		if err := rows.Scan(&r.Reason, &r.Count, &r.Sample); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// SnapshotCount is how many source rows the run's extract stage recorded
// (of its shard's sellers: not counting the other shards' keys), as it
// recorded the figure (runs.rows_read, migration 00033); counted for a run
// extracted before. The reject gate asks it at every run: counted, a
// re-run of a finished million-order day scanned the million rows.
func (r Reader) SnapshotCount(ctx context.Context, runID int64) (int64, error) {
	var n int64
	err := r.q.QueryRowContext(ctx, `SELECT coalesce(r.rows_read,
			(SELECT count(*) FROM source_rows s WHERE s.run_id = r.id AND NOT s.other_shard))
		FROM runs r WHERE r.id = $1`, runID).Scan(&n)
	return n, err
}

// The classes of an item's seller share in the date's reports, for an
// item i joined to its carry entry c (LEFT JOIN adjustments c ON c.id =
// i.carry_id): exactly one holds for every state an item can be in, so the
// summary's columns add up to the seller share only when that stays true.
// An item carried on its date stays carried in its date's reports when a
// later date's payout pays it (laterSQL); one carried and paid again on
// its own date is paid.
const (
	laterSQL      = `(i.state = 'paid' AND c.netted_date > i.business_date)`
	paidSQL       = `(i.state = 'paid' AND NOT COALESCE(c.netted_date > i.business_date, false))`
	carriedSQL    = `(i.state = 'carried' OR ` + laterSQL + `)`
	heldSQL       = `(i.state = 'held' OR (i.state IN ('recorded', 'uploaded') AND i.reason LIKE 'held:%'))`
	unverifiedSQL = `(i.state = 'unverified')`
	rejectedSQL   = `(i.state = 'rejected')`
	progressSQL   = `(i.state IN ('recorded', 'uploaded') AND i.reason NOT LIKE 'held:%')`
	// skippedSQL is not a class of its own but part of unverifiedSQL and
	// progressSQL: an item waiting (recorded or unverified, not held) of a
	// channel its run r (JOIN runs r ON r.id = i.run_id) left out on
	// purpose the last time it checked its channels (--skip-channel).
	skippedSQL = `(i.state IN ('recorded', 'unverified') AND i.reason NOT LIKE 'held:%' AND i.channel = ANY (r.skipped_channels))`
)

// PayoutLines streams every effect of the date's runs, by kind, subject and
// attempt, each with the path of states of its history.
func (r Reader) PayoutLines(ctx context.Context, d pipeline.Date, fn func(pipeline.PayoutLine) error) error {
	return r.PayoutLinesWithID(ctx, d, func(_ int64, p pipeline.PayoutLine) error { return fn(p) })
}

// PayoutLinesWithID is PayoutLines with each effect's id.
func (r Reader) PayoutLinesWithID(ctx context.Context, d pipeline.Date, fn func(int64, pipeline.PayoutLine) error) error {
	rows, err := r.q.QueryContext(ctx, `SELECT e.id, e.kind, e.subject, e.attempt, e.idem_key, e.currency, e.amount_minor, e.state,
		`+pathSQL+`, e.provider_ref, e.last_error, e.sends FROM effects e JOIN runs r ON r.id = e.run_id
		WHERE r.business_date = $1 ORDER BY e.kind, e.subject, e.attempt`, d.String())
	if err != nil {
		return fmt.Errorf("read payouts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var p pipeline.PayoutLine
		if err := rows.Scan(&id, &p.Kind, &p.Subject, &p.Attempt, &p.Key, &p.Currency, &p.Amount, &p.State, &p.Path, &p.ProviderRef,
			&p.LastError, &p.Sends); err != nil {
			return err
		}
		if err := fn(id, p); err != nil {
			return err
		}
	}
	return rows.Err()
}

// sellerLinesQuery reads the sellers report of a date: its arguments are the date and
// its revenue shares' subject prefix (RS/<YYYYMMDD>/%).
const sellerLinesQuery = `
		WITH it AS (
			SELECT i.seller_id, i.currency, count(*) FILTER (WHERE i.state <> 'rejected') AS orders,
			       sum(i.gross_minor) FILTER (WHERE i.state <> 'rejected') AS gross,
			       sum(i.refunded_minor) FILTER (WHERE i.state <> 'rejected') AS refunded,
			       sum(i.commission_minor) FILTER (WHERE i.state <> 'rejected') AS commission,
			       sum(i.seller_minor) FILTER (WHERE i.state <> 'rejected') AS payable,
			       sum(i.gross_minor) FILTER (WHERE i.state = 'rejected') AS rejected_gross,
			       sum(i.seller_minor) FILTER (WHERE i.state = 'paid' AND i.carry_id IS NULL AND i.channel = 'wechatpay') AS paid_wx,
			       sum(i.seller_minor) FILTER (WHERE i.state NOT IN ('paid', 'carried', 'rejected') AND i.carry_id IS NULL) AS pending,
			       count(*) FILTER (WHERE i.state = 'rejected') AS rejected
			FROM items i WHERE i.business_date = $1 GROUP BY i.seller_id, i.currency),
		adj AS (
			SELECT a.seller_id, a.currency,
			       sum(a.amount_minor) FILTER (WHERE a.business_date < $1 AND (a.netted_date IS NULL OR a.netted_date >= $1)) AS carried_in,
			       sum(a.amount_minor) FILTER (WHERE a.kind IN ('clawback', 'reprice', 'close') AND a.business_date = $1) AS clawback,
			       sum(a.amount_minor) FILTER (WHERE a.business_date <= $1 AND (a.netted_date IS NULL OR a.netted_date > $1)) AS carried_out,
			       -- The entries a close netted (settle sellers close) sum
			       -- to 0 with it: they add nothing here (the close is in
			       -- clawback, on its date).
			       sum(a.amount_minor) FILTER (WHERE a.netted_date = $1 AND p.paid IS NULL) AS in_flight
			-- The entries open (netted_date IS NULL: netted_into = '') and
			-- those netted on or after the date, each through its index;
			-- each one netted on the date looks up its payout's success by
			-- key.
			FROM (SELECT * FROM adjustments WHERE netted_into = '' AND business_date <= $1
			      UNION ALL
			      SELECT * FROM adjustments WHERE netted_into <> '' AND netted_date >= $1 AND business_date <= $1) a
			LEFT JOIN LATERAL (SELECT true AS paid FROM effects e WHERE a.netted_date = $1
			                   AND e.kind = 'revenue_share' AND e.subject = a.netted_into AND e.state = 'succeeded' LIMIT 1) p ON true
			GROUP BY a.seller_id, a.currency),
		rs AS (
			SELECT split_part(e.subject, '/', 3) AS seller_id, e.currency, sum(e.amount_minor) AS paid
			FROM effects e WHERE e.kind = 'revenue_share' AND e.state = 'succeeded' AND e.subject LIKE $2
			GROUP BY 1, 2),
		k AS (SELECT seller_id, currency FROM it UNION SELECT seller_id, currency FROM adj UNION SELECT seller_id, currency FROM rs)
		SELECT k.seller_id, k.currency, COALESCE(it.orders, 0), COALESCE(it.gross, 0), COALESCE(it.refunded, 0),
		       COALESCE(it.commission, 0), COALESCE(it.payable, 0), COALESCE(adj.carried_in, 0), COALESCE(adj.clawback, 0),
		       COALESCE(rs.paid, 0) + COALESCE(it.paid_wx, 0), COALESCE(adj.carried_out, 0),
		       COALESCE(it.pending, 0) + COALESCE(adj.in_flight, 0), COALESCE(it.rejected, 0), COALESCE(it.rejected_gross, 0)
		FROM k LEFT JOIN it USING (seller_id, currency) LEFT JOIN adj USING (seller_id, currency) LEFT JOIN rs USING (seller_id, currency)
		ORDER BY k.seller_id, k.currency`

// SellerLines streams the date's sellers by seller and currency: what the
// date's items owe them (the items a provider rejected counted apart, so
// gross - refunded - commission = payable), the carried balance coming in,
// the clawbacks and reprice entries recorded that day, what was paid for the date, the balance
// carried forward and what is not settled yet. Payable + CarriedIn +
// Clawback = Paid + Held + Unsettled, checked in Balanced with the
// item sums: the carried figures come from the adjustments journal, paid
// from the successful revenue shares and WeChat distributions, so the check
// is not circular.
func (r Reader) SellerLines(ctx context.Context, d pipeline.Date, fn func(pipeline.SellerLine) error) error {
	rows, err := r.q.QueryContext(ctx, sellerLinesQuery, d.String(), "RS/"+d.Compact()+"/%")
	if err != nil {
		return fmt.Errorf("read sellers report: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s pipeline.SellerLine
		if err := rows.Scan(&s.SellerID, &s.Currency, &s.Orders, &s.Gross, &s.Refunded, &s.Commission, &s.Payable, &s.CarriedIn,
			&s.Clawback, &s.Paid, &s.Held, &s.Unsettled, &s.Rejected, &s.RejectedGross); err != nil {
			return err
		}
		s.Balanced = s.Gross-s.Refunded-s.Commission == s.Payable && s.Payable+s.CarriedIn+s.Clawback == s.Paid+s.Held+s.Unsettled
		if err := fn(s); err != nil {
			return err
		}
	}
	return rows.Err()
}

// SummaryLines streams the date's totals by channel and currency, with the
// conservation checks, a row for the rejected source rows, and a row per
// currency for the clawbacks recorded on the date.
func (r Reader) SummaryLines(ctx context.Context, d pipeline.Date, fn func(pipeline.SummaryLine) error) error {
	sum := func(class string) string {
		return `COALESCE(sum(i.seller_minor) FILTER (WHERE ` + class + `), 0)`
	}
	rows, err := r.q.QueryContext(ctx, `
		SELECT i.channel, i.currency, count(*), sum(i.gross_minor), sum(i.refunded_minor), sum(i.commission_minor), sum(i.seller_minor),
		       `+sum(paidSQL)+`, `+sum(carriedSQL)+`, `+sum(heldSQL)+`, `+sum(unverifiedSQL)+`, `+sum(rejectedSQL)+`,
		       `+sum(progressSQL)+`, `+sum(laterSQL)+`,
		       COALESCE(string_agg(DISTINCT c.netted_date::text, ' ' ORDER BY c.netted_date::text) FILTER (WHERE `+laterSQL+`), ''),
		       count(*) FILTER (WHERE `+rejectedSQL+`), count(*) FILTER (WHERE `+skippedSQL+`), `+sum(skippedSQL)+`
		FROM items i LEFT JOIN adjustments c ON c.id = i.carry_id JOIN runs r ON r.id = i.run_id
		WHERE i.business_date = $1 GROUP BY i.channel, i.currency ORDER BY i.channel, i.currency`, d.String())
	if err != nil {
		return fmt.Errorf("read summary: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s pipeline.SummaryLine
		if err := rows.Scan(&s.Channel, &s.Currency, &s.Orders, &s.Gross, &s.Refunded, &s.Commission, &s.Seller,
			&s.Paid, &s.Carried, &s.Held, &s.Unverified, &s.RejectedByProvider, &s.InProgress, &s.PaidLater, &s.PaidLaterOn,
			&s.Rejected, &s.SkippedOrders, &s.Skipped); err != nil {
			return err
		}
		s.Balanced = s.Gross == s.Refunded+s.Commission+s.Seller && s.Seller == s.Accounted()
		if err := fn(s); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var rejected int64
	if err := r.q.QueryRowContext(ctx, `SELECT count(*) FROM rejects j JOIN runs r ON r.id = j.run_id WHERE r.business_date = $1`, d.String()).Scan(&rejected); err != nil {
		return err
	}
	if rejected > 0 {
		if err := fn(pipeline.SummaryLine{Channel: "(source rows rejected)", Rejected: rejected, Balanced: true}); err != nil {
			return err
		}
	}
	if err := r.clawbackSummary(ctx, d, fn); err != nil {
		return err
	}
	if err := r.repriceSummary(ctx, d, fn); err != nil {
		return err
	}
	return r.closeSummary(ctx, d, fn)
}

// closeSummaryQuery sums the closes of carried balances recorded on a
// date (its argument) by currency.
const closeSummaryQuery = `SELECT currency, count(*), -sum(commission_back), sum(amount_minor)
		FROM adjustments WHERE kind = 'close' AND business_date = $1 GROUP BY currency ORDER BY currency`

// repriceSummaryQuery sums the reprice entries of a date (its argument) by currency.
// A reprice's entries are dated its date: read by the date's reprices
// (reprices_date), an array the entries are then looked up by
// (adjustments_reprice), whatever the statistics say (as
// payoutSucceededCarriedQuery).
const repriceSummaryQuery = `SELECT currency, count(*), -sum(commission_back), sum(amount_minor)
		FROM adjustments WHERE reprice_id = ANY (ARRAY(SELECT id FROM reprices WHERE business_date = $1))
		GROUP BY currency ORDER BY currency`

// repriceSummary adds a row per currency for the reprice entries of date
// d (settle reprice): the commission the platform gives back (or takes)
// and the seller shares given (or taken back), which add up to 0; the
// sellers' part is in carried, netted into their next revenue shares.
func (r Reader) repriceSummary(ctx context.Context, d pipeline.Date, fn func(pipeline.SummaryLine) error) error {
	return r.movedSummary(ctx, d, "(rules repriced)", repriceSummaryQuery, fn)
}

// closeSummary adds a row per currency for the carried balances a person
// closed on date d (settle sellers close): the sellers' balances closed
// (the opposite of what they were) and the platform's part, which takes
// them (its commission), adding up to 0; the sellers' part is in carried,
// the balance it brings to 0.
func (r Reader) closeSummary(ctx context.Context, d pipeline.Date, fn func(pipeline.SummaryLine) error) error {
	return r.movedSummary(ctx, d, "(balances closed)", closeSummaryQuery, fn)
}

// movedSummary adds the rows of query (currency, entries, the platform's
// part, the sellers' part, by currency, of date d) as summary lines of
// channel: entries that move money between the sellers' carried balances
// and the platform's commission, no refund among them.
func (r Reader) movedSummary(ctx context.Context, d pipeline.Date, channel, query string, fn func(pipeline.SummaryLine) error) error {
	rows, err := r.q.QueryContext(ctx, query, d.String())
	if err != nil {
		return fmt.Errorf("read summary: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		s := pipeline.SummaryLine{Channel: channel}
		if err := rows.Scan(&s.Currency, &s.Orders, &s.Commission, &s.Seller); err != nil {
			return err
		}
		s.Carried = s.Seller
		s.Balanced = s.Refunded+s.Commission+s.Seller == 0
		if err := fn(s); err != nil {
			return err
		}
	}
	return rows.Err()
}

// clawbackSummaryQuery sums the clawbacks recorded on a date (its argument) by currency.
const clawbackSummaryQuery = `SELECT currency, count(*), sum(refund_minor), -sum(commission_back), sum(amount_minor)
		FROM adjustments WHERE kind = 'clawback' AND business_date = $1 GROUP BY currency ORDER BY currency`

// clawbackSummary adds a row per currency for the clawbacks recorded on
// date d: refunded = commission given back + seller share taken back.
func (r Reader) clawbackSummary(ctx context.Context, d pipeline.Date, fn func(pipeline.SummaryLine) error) error {
	rows, err := r.q.QueryContext(ctx, clawbackSummaryQuery, d.String())
	if err != nil {
		return fmt.Errorf("read summary: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		s := pipeline.SummaryLine{Channel: "(late refunds clawed back)"}
		if err := rows.Scan(&s.Currency, &s.Orders, &s.Refunded, &s.Commission, &s.Seller); err != nil {
			return err
		}
		// The seller's part taken back goes into the seller's carried
		// balance (negative), netted into the next revenue share.
		s.Carried = s.Seller
		s.Balanced = s.Refunded+s.Commission+s.Seller == 0
		if err := fn(s); err != nil {
			return err
		}
	}
	return rows.Err()
}

// orderBalanced checks an orders.csv row's conservation (see
// pipeline.OrderLine.Balanced).
func orderBalanced(o pipeline.OrderLine) string {
	if o.Action == "rejected" {
		return ""
	}
	var v [4]int64
	for i, s := range []string{o.Gross, o.Refunded, o.Commission, o.Seller} {
		if s == "" {
			continue // a late refund has no gross; one not clawed back has no parts
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return "false"
		}
		v[i] = n
	}
	ok := v[0] == v[1]+v[2]+v[3]
	if o.Action == "late_refund" || o.Action == "reprice" || o.Action == "close" {
		ok = o.Commission == "" || v[1]+v[2]+v[3] == 0
	}
	return strconv.FormatBool(ok)
}
