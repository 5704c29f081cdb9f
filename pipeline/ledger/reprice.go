package ledger

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
)

// repriceItemsQuery reads the items of a date ($1) with what their late
// refunds' clawbacks and earlier reprices moved since.
const repriceItemsQuery = `
	SELECT i.order_no, i.seller_id, i.channel, i.provider_txn_id, i.currency, i.category, i.gross_minor, i.refunded_minor,
	       i.commission_minor, i.seller_minor, i.rule, i.state, i.run_id,
	       COALESCE(a.refund, 0), COALESCE(a.seller_back, 0), COALESCE(a.commission_back, 0), COALESCE(p.repriced, 0), COALESCE(p.n, 0)
	FROM items i
	-- Each kind by its own index on the order (adjustments_order,
	-- adjustments_reprice_order): a condition on both kinds matches
	-- neither partial index.
	LEFT JOIN LATERAL (SELECT sum(refund_minor) AS refund, sum(-amount_minor) AS seller_back, sum(commission_back) AS commission_back
	                   FROM adjustments WHERE kind = 'clawback' AND order_no = i.order_no) a ON true
	LEFT JOIN LATERAL (SELECT sum(amount_minor) AS repriced, count(*) AS n
	                   FROM adjustments WHERE kind = 'reprice' AND order_no = i.order_no) p ON true
	WHERE i.business_date = $1
	ORDER BY i.order_no`

// Reprice prices date d again under rules (pipeline.RepriceStore), in one
// transaction: the date's reprice lock held exclusively (a clawback of one
// of its orders holds it shared: ResolveLateRefund), it reads every item of
// d with its clawbacks and earlier reprices, calls each with each, then
// plan; when plan says to record, it keeps the rules file (rules_files), records
// the reprice (migration 00038) and its entries, commits them under the
// ledger's carried-balances lock, held exclusively (lockCarried: every
// seller's carry lock at once, one lock whatever the number of sellers;
// a revenue share planned meanwhile nets them all or none), and returns
// its id.
func (l *Ledger) Reprice(ctx context.Context, d pipeline.Date, rules pipeline.RulesFile, each func(pipeline.RepriceItem) error,
	plan func(rulesChanged bool) ([]pipeline.Adjustment, int64, bool, error)) (int64, error) {
	var id int64
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, repriceLockClass, d.String()); err != nil {
			return err
		}
		changed, err := rulesChanged(ctx, tx, d, rules.Hash)
		if err != nil {
			return err
		}
		if err := eachRepriceItem(ctx, tx, d, each); err != nil {
			return err
		}
		adjust, named, record, err := plan(changed)
		if err != nil || !record {
			return err
		}
		file, err := keepFile(ctx, tx, rules.Name, rules.Hash, rules.Body)
		if err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `INSERT INTO reprices (business_date, rules_file, rules_hash, orders, named)
			VALUES ($1, $2, $3, $4, $5) RETURNING id`, d.String(), file, rules.Hash, len(adjust), named).Scan(&id); err != nil {
			return fmt.Errorf("record the reprice of %s: %w", d, err)
		}
		// Recorded in seller and currency order.
		adjust = slices.Clone(adjust)
		slices.SortStableFunc(adjust, func(a, b pipeline.Adjustment) int {
			return cmp.Or(cmp.Compare(a.SellerID, b.SellerID), cmp.Compare(a.Currency, b.Currency))
		})
		for _, a := range adjust {
			if a.Kind != pipeline.AdjustReprice || a.RunID == 0 {
				return fmt.Errorf("reprice of %s: entry of order %s is a %q of run %d, want a reprice of its item's run", d, a.OrderNo, a.Kind, a.RunID)
			}
		}
		entries := len(adjust) > 0
		// In batches: one statement an entry was 31 s for 100,000.
		for len(adjust) > 0 {
			n := min(len(adjust), repriceBatch)
			if err := insertReprices(ctx, tx, d, id, adjust[:n]); err != nil {
				return err
			}
			adjust = adjust[n:]
		}
		if !entries {
			return nil
		}
		// Every seller's carry lock at once, in one lock, from the last
		// statement to the commit: a revenue share planned meanwhile
		// (under its seller's carry lock, which takes this one shared)
		// nets all of the entries or none. One holding its carry lock
		// when the reprice asks for this one sees none of them in any of
		// its statements (uncommitted: the reprice waits for it to end);
		// one asking for its carry lock after waits for the commit and
		// sees them all. Taken once the entries are written (seconds at
		// 100,000, under no carry lock), it keeps a run beside the
		// reprice waiting for the commit alone.
		return l.lockCarried(ctx, tx)
	})
	if err != nil {
		return 0, err
	}
	return id, nil
}

// repriceBatch is how many entries of a reprice one statement records.
const repriceBatch = 5000

// insertReprices records the entries as, dated d, of the reprice id, each
// under its run.
func insertReprices(ctx context.Context, tx *sql.Tx, d pipeline.Date, id int64, as []pipeline.Adjustment) error {
	sellers, curs, orders, reasons := make(pq.StringArray, len(as)), make(pq.StringArray, len(as)), make(pq.StringArray, len(as)), make(pq.StringArray, len(as))
	amounts, runs := make(pq.Int64Array, len(as)), make(pq.Int64Array, len(as))
	for i, a := range as {
		sellers[i], curs[i], orders[i], reasons[i], amounts[i], runs[i] = a.SellerID, string(a.Currency), a.OrderNo, a.Reason, a.Amount, a.RunID
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO adjustments (seller_id, currency, kind, amount_minor, order_no, refund_no,
		refund_minor, commission_back, subject, reason, business_date, run_id, reprice_id)
		SELECT e.seller_id, e.currency, 'reprice', e.amount, e.order_no, '', 0, e.amount, '', e.reason, $7, e.run_id, $8
		FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[])
		     AS e(seller_id, currency, order_no, amount, reason, run_id)`,
		sellers, curs, orders, amounts, reasons, runs, d.String(), id); err != nil {
		return fmt.Errorf("record the entries of the reprice of %s: %w", d, err)
	}
	return nil
}

// eachRepriceItem calls each with every item of d (repriceItemsQuery).
func eachRepriceItem(ctx context.Context, tx *sql.Tx, d pipeline.Date, each func(pipeline.RepriceItem) error) error {
	rows, err := tx.QueryContext(ctx, repriceItemsQuery, d.String())
	if err != nil {
		return fmt.Errorf("read the items of %s: %w", d, err)
	}
	defer rows.Close()
	for rows.Next() {
		var it pipeline.RepriceItem
		var ch, cur string
		if err := rows.Scan(&it.OrderNo, &it.SellerID, &ch, &it.ProviderTxnID, &cur, &it.Category, &it.Amount, &it.Refunded,
			&it.Commission, &it.SellerShare, &it.Rule, &it.State, &it.RunID,
			&it.LateRefunded, &it.LateSellerBack, &it.LateCommissionBack, &it.Repriced, &it.RepricedN); err != nil {
			return fmt.Errorf("read the items of %s: %w", d, err)
		}
		it.Channel, it.Currency, it.Date = pipeline.Channel(ch), pipeline.Currency(cur), d
		if err := each(it); err != nil {
			return err
		}
	}
	return rows.Err()
}

// rulesChanged says whether hash is other than date d's rules: its latest
// reprice's, else those its runs split with (every run's).
func rulesChanged(ctx context.Context, tx *sql.Tx, d pipeline.Date, hash string) (bool, error) {
	var latest sql.NullString
	if err := tx.QueryRowContext(ctx, `SELECT rules_hash FROM reprices WHERE business_date = $1 ORDER BY id DESC LIMIT 1`,
		d.String()).Scan(&latest); err != nil && err != sql.ErrNoRows {
		return false, fmt.Errorf("read the reprices of %s: %w", d, err)
	}
	if latest.Valid {
		return latest.String != hash, nil
	}
	var other bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM runs WHERE business_date = $1 AND rules_hash <> $2)`,
		d.String(), hash).Scan(&other); err != nil {
		return false, fmt.Errorf("read the rules of %s: %w", d, err)
	}
	return other, nil
}

// Reprice is a reprice of a date as the ledger keeps it (RepricesOf).
type Reprice struct {
	ID         int64     `json:"id"`
	RecordedAt time.Time `json:"recorded_at"`
	Name       string    `json:"name"`
	FileHash   string    `json:"file_hash"`
	RulesHash  string    `json:"rules_hash"`
	Body       string    `json:"body,omitempty"`
	Orders     int64     `json:"orders"` // the orders whose seller share it changed
	Named      int64     `json:"named"`  // the orders it named for a person
	// Totals are its entries by currency: what it gave the sellers (+)
	// and took back (-), each netted into their next revenue share.
	Totals []RepriceTotal `json:"totals"`
}

// RepriceTotal is what a reprice moved in one currency.
type RepriceTotal struct {
	Currency string `json:"currency"`
	Orders   int64  `json:"orders"`
	Given    int64  `json:"given_minor"` // sum of the positive entries
	Taken    int64  `json:"taken_minor"` // sum of the negative entries (negative)
	Open     int64  `json:"open_minor"`  // what is not netted into a revenue share yet
}

// RepricesOf returns the reprices of date d (settle reprice), oldest
// first, each with its rules file (body when withBody) and its entries'
// totals. The date's rules are the last one's.
func (r Reader) RepricesOf(ctx context.Context, d pipeline.Date, withBody bool) ([]Reprice, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT p.id, p.recorded_at, f.name, f.file_hash, p.rules_hash, CASE WHEN $2 THEN f.body ELSE ''::bytea END,
		p.orders, p.named FROM reprices p JOIN rules_files f ON f.file_hash = p.rules_file
		WHERE p.business_date = $1 ORDER BY p.id`, d.String(), withBody)
	if err != nil {
		return nil, fmt.Errorf("read the reprices of %s: %w", d, err)
	}
	var out []Reprice
	for rows.Next() {
		var p Reprice
		var body []byte
		if err := rows.Scan(&p.ID, &p.RecordedAt, &p.Name, &p.FileHash, &p.RulesHash, &body, &p.Orders, &p.Named); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read the reprices of %s: %w", d, err)
		}
		p.Body = string(body)
		out = append(out, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the reprices of %s: %w", d, err)
	}
	for i := range out {
		trows, err := r.q.QueryContext(ctx, `SELECT currency, count(*), COALESCE(sum(amount_minor) FILTER (WHERE amount_minor > 0), 0),
			COALESCE(sum(amount_minor) FILTER (WHERE amount_minor < 0), 0), COALESCE(sum(amount_minor) FILTER (WHERE netted_into = ''), 0)
			FROM adjustments WHERE reprice_id = $1 GROUP BY currency ORDER BY currency`, out[i].ID)
		if err != nil {
			return nil, fmt.Errorf("read the reprices of %s: %w", d, err)
		}
		out[i].Totals = []RepriceTotal{}
		for trows.Next() {
			var t RepriceTotal
			if err := trows.Scan(&t.Currency, &t.Orders, &t.Given, &t.Taken, &t.Open); err != nil {
				trows.Close()
				return nil, fmt.Errorf("read the totals of reprice %d of %s: %w", out[i].ID, d, err)
			}
			out[i].Totals = append(out[i].Totals, t)
		}
		trows.Close()
		if err := trows.Err(); err != nil {
			return nil, fmt.Errorf("read the totals of reprice %d of %s: %w", out[i].ID, d, err)
		}
	}
	return out, nil
}

// RepriceFile returns reprice id of date d (settle reprice) with its rules
// file's name, file hash and body, without its totals: the rules a late
// refund of the date's orders splits under while it is the date's last
// (pipeline.Resplit). A reprice is never changed (append-only): its rules
// may be kept for as long as wanted.
func (r Reader) RepriceFile(ctx context.Context, d pipeline.Date, id int64) (Reprice, error) {
	var p Reprice
	var body []byte
	if err := r.q.QueryRowContext(ctx, `SELECT p.id, p.recorded_at, f.name, f.file_hash, p.rules_hash, f.body, p.orders, p.named
		FROM reprices p JOIN rules_files f ON f.file_hash = p.rules_file WHERE p.id = $1 AND p.business_date = $2`, id, d.String()).Scan(
		&p.ID, &p.RecordedAt, &p.Name, &p.FileHash, &p.RulesHash, &body, &p.Orders, &p.Named); err != nil {
		return Reprice{}, fmt.Errorf("read the rules of reprice %d of %s: %w", id, d, err)
	}
	p.Body = string(body)
	return p, nil
}

// DatesRunAfter returns the dates after d that have a run, in order: their
// reports, written before a reprice of d recorded its entries, do not show
// them in their carried in and forward until written again.
func (l *Ledger) DatesRunAfter(ctx context.Context, d pipeline.Date) ([]pipeline.Date, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT DISTINCT business_date FROM runs WHERE business_date > $1 ORDER BY 1`, d.String())
	if err != nil {
		return nil, fmt.Errorf("read the dates run after %s: %w", d, err)
	}
	defer rows.Close()
	var out []pipeline.Date
	for rows.Next() {
		var t time.Time
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("read the dates run after %s: %w", d, err)
		}
		out = append(out, pipeline.DateOf(t))
	}
	return out, rows.Err()
}
