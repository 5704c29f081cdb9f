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

// carryLockClass is the first key of the transaction-level advisory lock
// that serialises changes to one seller's carried balance in one currency
// (the second is a hash of both). Two-key locks do not collide with the
// run locks, which use one key.
const carryLockClass = 0x5e771e

// carriedLockClass is the first key of the transaction-level advisory
// lock over every carried balance of the ledger (the second is a hash of
// its schema): lockCarry takes it shared before a seller's carry lock, a
// reprice and a re-extract exclusively, instead of their sellers' carry
// locks (lockCarried).
const carriedLockClass = 0x5e7721

// orderLockClass is the first key of the lock that serialises the
// clawbacks of one order.
const orderLockClass = 0x5e771f

// repriceLockClass is the first key of the lock of a date's reprice (the
// second is a hash of the date): a reprice holds it exclusively, a
// clawback of one of the date's orders shared, so that no clawback is
// worked out on the split a reprice is changing.
const repriceLockClass = 0x5e7720

// lockCarry takes, until tx ends, the carry lock of the seller's balance
// in cur: every change to a carried balance - an entry recorded (a
// clawback, a carry), netted into a revenue share planned, or opened
// again by one that failed - is made under it, so that two transactions
// never work one balance out at once. It takes the ledger's
// carried-balances lock first, shared, in the same statement (no round
// trip more): a reprice commits its entries under that lock held
// exclusively (lockCarried), every seller's carry lock at once, so that
// a revenue share planned meanwhile nets all of them or none, and a
// re-extract checks and drops its run's held entries under it. The shared
// lock is re-entrant: a transaction taking several carry locks holds it
// once, and is granted it again at once, never queued behind a reprice
// waiting for it.
func (l *Ledger) lockCarry(ctx context.Context, tx *sql.Tx, sellerID string, cur pipeline.Currency) error {
	// The subquery, volatile, is not pulled up into the outer query: the
	// shared lock is taken first.
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))
		FROM (SELECT pg_advisory_xact_lock_shared($3, hashtext($4))) AS carried`,
		carryLockClass, sellerID+"/"+string(cur), carriedLockClass, l.schema)
	return err
}

// lockCarried takes, until tx ends, the ledger's carried-balances lock
// exclusively: the carry lock of every seller and currency at once, one
// lock however many sellers a reprice changes (a re-extract takes it
// too, Reextract). A reprice took one carry lock per seller and
// currency, and one of more than the server's lock table holds
// (max_locks_per_transaction times its connections: 6,400 nominal by
// default, about 12,800 taken on the test server before it was full)
// failed, "out of shared memory", nothing recorded; one of
// thousands could leave a run beside it that error. It waits for the
// transactions holding a carry lock to end (each a few statements; none
// waits on a reprice or a re-extract: a date's reprice lock, an order's
// lock and a late refund's row are taken before a carry lock, never after
// it), and a carry lock asked for
// meanwhile waits until tx ends (PostgreSQL queues a shared request behind
// an exclusive one waiting: a stream of carry locks does not keep it
// waiting).
func (l *Ledger) lockCarried(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, carriedLockClass, l.schema)
	return err
}

func channelNames(channels []pipeline.Channel) pq.StringArray {
	chs := make(pq.StringArray, len(channels))
	for i, c := range channels {
		chs[i] = string(c)
	}
	return chs
}

// RecordLateRefunds records the late refunds not seen before, and
// replaces one recorded as rejected (a platform row corrected since), or
// ignored as no longer given (NoLongerRead: given again, by its date or
// another's).
func (l *Ledger) RecordLateRefunds(ctx context.Context, run *pipeline.Run, rs []pipeline.LateRefund) (int, error) {
	n := 0
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		for _, r := range rs {
			var created any
			if !r.CreatedAt.IsZero() {
				created = r.CreatedAt
			}
			res, err := tx.ExecContext(ctx, `INSERT INTO late_refunds (refund_no, order_no, seller_id, amount_minor, created_at,
				run_id, business_date, state, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
				ON CONFLICT (refund_no) DO UPDATE SET order_no = EXCLUDED.order_no, seller_id = EXCLUDED.seller_id,
				    amount_minor = EXCLUDED.amount_minor, created_at = EXCLUDED.created_at, run_id = EXCLUDED.run_id,
				    business_date = EXCLUDED.business_date, state = EXCLUDED.state, reason = EXCLUDED.reason
				WHERE (late_refunds.state = 'rejected' OR late_refunds.state = 'ignored' AND starts_with(late_refunds.reason, $10))
				  AND late_refunds.reason IS DISTINCT FROM EXCLUDED.reason`,
				r.RefundNo, r.OrderNo, r.SellerID, r.Amount, created, run.ID, run.Key.Date.String(), r.State, r.Reason, noLongerGiven)
			if err != nil {
				return fmt.Errorf("record late refund %s: %w", r.RefundNo, err)
			}
			k, _ := res.RowsAffected()
			n += int(k)
		}
		return nil
	})
	return n, err
}

// LateRefundsRecordedOtherwise returns, of rs, the refunds whose number
// the ledger holds, not rejected, for another refund: another order,
// seller or amount (pipeline.AdjustStore). RecordLateRefunds left those
// rows as they were. The same refund read again (a re-run of its date, or
// its time changed by the platform) is not another refund.
func (l *Ledger) LateRefundsRecordedOtherwise(ctx context.Context, rs []pipeline.LateRefund) ([]pipeline.LateRefund, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	nos, orders, sellers := make(pq.StringArray, len(rs)), make(pq.StringArray, len(rs)), make(pq.StringArray, len(rs))
	amounts := make(pq.Int64Array, len(rs))
	for i, r := range rs {
		nos[i], orders[i], sellers[i], amounts[i] = r.RefundNo, r.OrderNo, r.SellerID, r.Amount
	}
	rows, err := l.db.QueryContext(ctx, `
		SELECT DISTINCT l.refund_no, l.order_no, l.seller_id, l.amount_minor, l.business_date::text, l.state
		FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS r(refund_no, order_no, seller_id, amount_minor)
		JOIN late_refunds l ON l.refund_no = r.refund_no
		WHERE l.state <> 'rejected'
		  AND (l.order_no, l.seller_id, l.amount_minor) IS DISTINCT FROM (r.order_no, r.seller_id, r.amount_minor)
		ORDER BY l.refund_no`, nos, orders, sellers, amounts)
	if err != nil {
		return nil, fmt.Errorf("read the late refunds recorded under the numbers read: %w", err)
	}
	defer rows.Close()
	var out []pipeline.LateRefund
	for rows.Next() {
		var r pipeline.LateRefund
		var date string
		if err := rows.Scan(&r.RefundNo, &r.OrderNo, &r.SellerID, &r.Amount, &date, &r.State); err != nil {
			return nil, fmt.Errorf("read the late refunds recorded under the numbers read: %w", err)
		}
		if r.Date, err = pipeline.ParseDate(date); err != nil {
			return nil, fmt.Errorf("late refund %s: %w", r.RefundNo, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// RenumberedSince resolves, ignored, the refunds of the run's date kept
// under a number of settle's (pipeline.RenumberRefundNo) for the sellers
// of the run's shard that keep does not list (pipeline.AdjustStore).
func (l *Ledger) RenumberedSince(ctx context.Context, run *pipeline.Run, keep []pipeline.LateRefund) error {
	kept := map[string]bool{}
	for _, k := range keep {
		kept[k.RefundNo] = true
	}
	const what = "the late refunds kept under a number of settle's"
	gone, err := l.rejectedOfShard(ctx, run, what, `starts_with(refund_no, $2)`, pipeline.RenumberPrefix)
	if err != nil {
		return err
	}
	gone = slices.DeleteFunc(gone, func(no string) bool { return kept[no] })
	return l.ignoreRejected(ctx, gone, what,
		"the platform no longer gives this refund under a number the ledger holds for another refund: read again under its own number, worked out there; was: ")
}

// noLongerGiven begins the reason of a late refund NoLongerRead ignored.
const noLongerGiven = "the late-refunds query no longer gives this refund (the platform removed or renumbered it): nothing taken back for it; was: "

// NoLongerRead resolves the late refunds the run's date recorded
// rejected, of the sellers of the run's shard, under a platform's number,
// that the date's late-refunds query no longer gives (read: the numbers it
// gave now; pipeline.AdjustStore): the platform removed the row, or gave
// a row without a number one, kept under "(no refund_no: ...)", which no
// corrected row replaces. Each held its seller's revenue shares in its
// currency (BlockedByLateRefunds) on every run, for ever. Each is ignored
// with the reason (ignoreRejected); settle's own numbers (renumbered,
// moved) are left to their own resolution.
func (l *Ledger) NoLongerRead(ctx context.Context, run *pipeline.Run, read []string) error {
	const what = "the rejected late refunds no longer given"
	gone, err := l.rejectedOfShard(ctx, run, what,
		`NOT (refund_no = ANY ($2)) AND NOT starts_with(refund_no, $3) AND NOT starts_with(refund_no, 'settle:moved:')`,
		pq.StringArray(read), pipeline.RenumberPrefix)
	if err != nil {
		return err
	}
	return l.ignoreRejected(ctx, gone, what, noLongerGiven)
}

// rejectedOfShard returns the numbers of the late refunds of the run's
// date recorded rejected that match cond (its arguments from $2, args),
// of the sellers of the run's shard; what names them in an error.
func (l *Ledger) rejectedOfShard(ctx context.Context, run *pipeline.Run, what, cond string, args ...any) (pq.StringArray, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT refund_no, seller_id FROM late_refunds
		WHERE business_date = $1 AND state = 'rejected' AND `+cond+` ORDER BY refund_no`,
		append([]any{run.Key.Date.String()}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	defer rows.Close()
	var out pq.StringArray
	for rows.Next() {
		var no, seller string
		if err := rows.Scan(&no, &seller); err != nil {
			return nil, fmt.Errorf("read %s: %w", what, err)
		}
		if run.Key.Shard.Owns(seller) {
			out = append(out, no)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return out, nil
}

// ignoreRejected resolves the rejected late refunds numbered gone as
// ignored, why before their reason, each kept as it was read: one whose
// amount could not be read stays at 0 (migration 00032; it was deleted,
// and the ledger lost what it had been given). what names them in an
// error.
func (l *Ledger) ignoreRejected(ctx context.Context, gone pq.StringArray, what, why string) error {
	if len(gone) == 0 {
		return nil
	}
	if _, err := l.db.ExecContext(ctx, `UPDATE late_refunds SET state = 'ignored', reason = $2 || reason
		WHERE refund_no = ANY ($1) AND state = 'rejected'`, gone, why); err != nil {
		return fmt.Errorf("resolve %s: %w", what, err)
	}
	return nil
}

// MovedOrderRefunds returns what the run's rows rejected as already
// settled on an earlier date show refunded beyond what the ledger knows
// of their orders up to the run's date (the item's refund and the late
// refunds read by dates up to it: a later date's, run first, is not in the
// row), as pending late refunds (pipeline.AdjustStore), each with the
// seller of the row (the clawback refuses one of another seller than the
// item's: another order under the same number). An order a later
// date recorded a moved refund of has none here: that date's row held
// every refund this one holds.
func (l *Ledger) MovedOrderRefunds(ctx context.Context, run *pipeline.Run) ([]pipeline.LateRefund, error) {
	rows, err := l.db.QueryContext(ctx, `
		SELECT j.order_no, j.seller_id, i.business_date::text, i.refunded_minor, COALESCE(lr.known, 0), j.refunded
		FROM (SELECT order_no, seller_id, currency, CASE WHEN refunded ~ '^[0-9]{1,18}$' THEN refunded::bigint END AS refunded
		      FROM rejects WHERE run_id = $1 AND reason LIKE 'already settled on %') j
		JOIN items i ON i.order_no = j.order_no AND i.business_date < $2 AND i.currency = j.currency
		LEFT JOIN LATERAL (SELECT sum(amount_minor) AS known FROM late_refunds
		                   WHERE order_no = j.order_no AND state <> 'rejected' AND business_date <= $2) lr ON true
		WHERE j.refunded > i.refunded_minor + COALESCE(lr.known, 0)
		  -- A later date's moved refund of the order was worked out from a
		  -- row that holds every refund this one does (refunds up to its
		  -- own day's end): it covered them already (an order moved twice,
		  -- the later date run first).
		  AND NOT EXISTS (SELECT 1 FROM late_refunds m WHERE m.order_no = j.order_no AND m.state <> 'rejected'
		                  AND m.refund_no LIKE 'settle:moved:%' AND m.business_date > $2)
		ORDER BY j.order_no`, run.ID, run.Key.Date.String())
	if err != nil {
		return nil, fmt.Errorf("read the refunds of orders moved to %s: %w", run.Key.Date, err)
	}
	defer rows.Close()
	var out []pipeline.LateRefund
	for rows.Next() {
		var (
			r                pipeline.LateRefund
			settled          string
			netted, known, n int64
		)
		if err := rows.Scan(&r.OrderNo, &r.SellerID, &settled, &netted, &known, &n); err != nil {
			return nil, fmt.Errorf("read the refunds of orders moved to %s: %w", run.Key.Date, err)
		}
		r.Date, r.RefundNo, r.State, r.Amount = run.Key.Date, pipeline.MovedRefundNo(r.OrderNo, run.Key.Date), pipeline.LateRefundPending, n-netted-known
		r.Reason = fmt.Sprintf("refunded after the platform moved order %s to %s: its row shows %d refunded, its settlement on %s netted %d and later refunds %d",
			r.OrderNo, run.Key.Date, n, settled, netted, known)
		out = append(out, r)
	}
	return out, rows.Err()
}

// pendingLateRefundsQuery reads the pending late refunds with their items,
// their orders' clawbacks and, for an order never settled, its first reject.
const pendingLateRefundsQuery = `
		SELECT lr.refund_no, lr.order_no, lr.seller_id, lr.amount_minor, lr.created_at, lr.state, lr.reason, lr.business_date::text,
		       i.order_no IS NOT NULL, COALESCE(i.seller_id, ''), COALESCE(i.channel, ''), COALESCE(i.provider_txn_id, ''),
		       COALESCE(i.currency, ''), COALESCE(i.category, ''), COALESCE(i.gross_minor, 0), COALESCE(i.refunded_minor, 0),
		       COALESCE(i.commission_minor, 0), COALESCE(i.seller_minor, 0), COALESCE(i.rule, ''),
		       COALESCE(i.business_date::text, ''), COALESCE(i.state, ''),
		       COALESCE(a.refund, 0), COALESCE(a.seller_back, 0), COALESCE(a.commission_back, 0),
		       COALESCE(rp.amount, 0), COALESCE(rp.n, 0),
		       CASE WHEN i.order_no IS NULL THEN 0 ELSE COALESCE((SELECT max(id) FROM reprices WHERE business_date = i.business_date), 0) END,
		       CASE WHEN i.order_no IS NULL THEN COALESCE(j.why, '') ELSE '' END
		FROM (SELECT DISTINCT order_no FROM late_refunds
		      WHERE state = 'pending' AND order_no > $1 ORDER BY order_no LIMIT $2) n
		JOIN late_refunds lr ON lr.order_no = n.order_no
		LEFT JOIN items i ON i.order_no = lr.order_no
		LEFT JOIN LATERAL (SELECT 'rejected on ' || r.business_date || ': ' || j.reason AS why
		                   FROM rejects j JOIN runs r ON r.id = j.run_id
		                   WHERE j.order_no = lr.order_no AND j.order_no <> '' AND r.business_date <= lr.business_date
		                   ORDER BY r.business_date, j.seq LIMIT 1) j ON true
		LEFT JOIN LATERAL (SELECT sum(refund_minor) AS refund, sum(-amount_minor) AS seller_back, sum(commission_back) AS commission_back
		                   FROM adjustments WHERE kind = 'clawback' AND order_no = lr.order_no) a ON true
		LEFT JOIN LATERAL (SELECT sum(amount_minor) AS amount, count(*) AS n
		                   FROM adjustments WHERE kind = 'reprice' AND order_no = lr.order_no) rp ON true
		WHERE lr.state = 'pending'
		ORDER BY lr.order_no, lr.created_at, lr.refund_no`

// PendingLateRefunds returns the pending late refunds of the first
// orders orders numbered after after, each order's whole, with their
// items. The orders come from the open refunds' index (late_refunds_open);
// each refund finds its item, its order's clawbacks and, for an order
// never settled, its first reject through an index on the order (the
// items' key, adjustments_order, rejects_order): the cost is the page's,
// not the ledger's history.
func (l *Ledger) PendingLateRefunds(ctx context.Context, after string, orders int) ([]pipeline.PendingLateRefund, error) {
	rows, err := l.db.QueryContext(ctx, pendingLateRefundsQuery, after, orders)
	if err != nil {
		return nil, fmt.Errorf("read pending late refunds: %w", err)
	}
	defer rows.Close()
	var out []pipeline.PendingLateRefund
	for rows.Next() {
		var p pipeline.PendingLateRefund
		var it pipeline.SettledItem
		var has bool
		var ch, cur, date, read string
		if err := rows.Scan(&p.RefundNo, &p.OrderNo, &p.SellerID, &p.Amount, &p.CreatedAt, &p.State, &p.Reason, &read,
			&has, &it.SellerID, &ch, &it.ProviderTxnID, &cur, &it.Category, &it.Amount, &it.Refunded,
			&it.Commission, &it.SellerShare, &it.Rule, &date, &it.State,
			&it.LateRefunded, &it.LateSellerBack, &it.LateCommissionBack, &it.Repriced, &it.RepricedN, &it.RepriceID, &p.SourceRejected); err != nil {
			return nil, fmt.Errorf("read pending late refunds: %w", err)
		}
		if p.Date, err = pipeline.ParseDate(read); err != nil {
			return nil, err
		}
		if has {
			it.OrderNo, it.Channel, it.Currency = p.OrderNo, pipeline.Channel(ch), pipeline.Currency(cur)
			if it.Date, err = pipeline.ParseDate(date); err != nil {
				return nil, err
			}
			p.Item = &it
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// ResolveLateRefund records a pending late refund's outcome and, for a
// clawback, its adjustment, in one transaction.
func (l *Ledger) ResolveLateRefund(ctx context.Context, run *pipeline.Run, refundNo, state, reason string, adj *pipeline.Adjustment, prior int64) error {
	return l.inTx(ctx, func(tx *sql.Tx) error {
		if adj != nil {
			// A reprice of the order's date (settle reprice) changes the
			// split this was worked out on, and the date's rules: none
			// meanwhile, and none recorded since (the sum of the order's
			// entries below, and the date's latest reprice: one that
			// changed the rules and no entry of the order, worked out
			// under the rules it replaced, split the refund otherwise
			// than the date's rules now).
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock_shared($1, hashtext(business_date::text)) FROM items WHERE order_no = $2`,
				repriceLockClass, adj.OrderNo); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, orderLockClass, adj.OrderNo); err != nil {
				return err
			}
			var clawed, repriced, rules int64
			if err := tx.QueryRowContext(ctx, `SELECT
				(SELECT COALESCE(sum(refund_minor), 0) FROM adjustments WHERE kind = 'clawback' AND order_no = $1),
				(SELECT COALESCE(sum(amount_minor), 0) FROM adjustments WHERE kind = 'reprice' AND order_no = $1),
				(SELECT COALESCE(max(p.id), 0) FROM items i JOIN reprices p ON p.business_date = i.business_date WHERE i.order_no = $1)`,
				adj.OrderNo).Scan(&clawed, &repriced, &rules); err != nil {
				return err
			}
			if clawed != prior || repriced != adj.Repriced || rules != adj.RulesReprice {
				return fmt.Errorf("late refund %s of order %s: %w (its clawbacks now cover %d, %d when worked out; its reprices %d, %d; its date's rules those of reprice %d, %d)",
					refundNo, adj.OrderNo, pipeline.ErrBalanceMoved, clawed, prior, repriced, adj.Repriced, rules, adj.RulesReprice)
			}
			// Before the refund's row is marked: a re-extract holds every
			// carry lock (lockCarried) while it drops the moved refunds of
			// its run, and waited for this row while this waited for it,
			// a deadlock. Taken first, the clawback waits for the
			// re-extract's commit and finds the refund gone, or the
			// re-extract waits for the clawback and is refused.
			if err := l.lockCarry(ctx, tx, adj.SellerID, adj.Currency); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `UPDATE late_refunds SET state = $2, reason = $3 WHERE refund_no = $1 AND state = 'pending'`,
			refundNo, state, reason)
		if err != nil {
			return fmt.Errorf("resolve late refund %s: %w", refundNo, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("resolve late refund %s: %w", refundNo, pipeline.ErrAlreadyResolved)
		}
		if adj == nil {
			return nil
		}
		_, err = insertAdjustment(ctx, tx, run, *adj)
		return err
	})
}

func insertAdjustment(ctx context.Context, tx *sql.Tx, run *pipeline.Run, a pipeline.Adjustment) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `INSERT INTO adjustments (seller_id, currency, kind, amount_minor, order_no, refund_no,
		refund_minor, commission_back, subject, reason, business_date, run_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id`,
		a.SellerID, string(a.Currency), a.Kind, a.Amount, a.OrderNo, a.RefundNo, a.RefundMinor, a.CommissionBack,
		a.Subject, a.Reason, cmp.Or(a.Date, run.Key.Date).String(), cmp.Or(a.RunID, run.ID)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("record %s adjustment for %s %s: %w", a.Kind, a.SellerID, a.Currency, err)
	}
	return id, nil
}

// CarriedSellers returns, sorted, the sellers with a carried balance of a
// date up to d not netted into a payout yet (pipeline.CarriedSellers): what
// EachPayoutCandidate merges in as their open balances, by the index of
// the open entries.
func (l *Ledger) CarriedSellers(ctx context.Context, d pipeline.Date) ([]string, error) {
	var ids []string
	if err := l.db.SelectContext(ctx, &ids, `SELECT DISTINCT seller_id FROM adjustments
		WHERE netted_into = '' AND business_date <= $1 ORDER BY 1`, d.String()); err != nil {
		return nil, fmt.Errorf("read the sellers with a carried balance: %w", err)
	}
	return ids, nil
}

// OpenCarries returns every seller's open carried balance by currency -
// the entries of dates up to upTo (zero: all) - with the seller's Infinia
// id as last recorded, ordered by seller and currency.
func (r Reader) OpenCarries(ctx context.Context, upTo pipeline.Date) ([]pipeline.Carry, error) {
	bound := "9999-12-31"
	if !upTo.IsZero() {
		bound = upTo.String()
	}
	rows, err := r.q.QueryContext(ctx, `
		SELECT a.seller_id, a.currency, sum(a.amount_minor), count(*),
		       COALESCE((SELECT rs.infinia_seller_id FROM run_sellers rs
		                 WHERE rs.seller_id = a.seller_id AND rs.infinia_seller_id <> '' ORDER BY rs.run_id DESC LIMIT 1), '')
		FROM adjustments a WHERE a.netted_into = '' AND a.business_date <= $1
		GROUP BY a.seller_id, a.currency ORDER BY a.seller_id, a.currency`, bound)
	if err != nil {
		return nil, fmt.Errorf("read carried balances: %w", err)
	}
	defer rows.Close()
	var out []pipeline.Carry
	for rows.Next() {
		var c pipeline.Carry
		var cur string
		if err := rows.Scan(&c.SellerID, &cur, &c.Amount, &c.Entries, &c.Account); err != nil {
			return nil, fmt.Errorf("read carried balances: %w", err)
		}
		c.Currency = pipeline.Currency(cur)
		out = append(out, c)
	}
	return out, rows.Err()
}

// CarryItems moves the run's uploaded items of a seller and currency into
// a new held entry of the seller's carried balance, with the reason. It
// returns the amount carried and how many items (0, 0 when none were left).
// A payout of the seller and currency the run kept to check
// (payout_candidates) is forgotten with it: held, the run's planning does
// not send it, and another run paying now no longer counts it as one the
// run may still take (PayingRuns). Kept until the run's planning ended, a
// currency one shard held whole (its balance short of both shards' needs)
// held the other shard's too, which the balance covered alone (found by a
// review).
func (l *Ledger) CarryItems(ctx context.Context, run *pipeline.Run, sellerID string, cur pipeline.Currency, channels []pipeline.Channel, subject, reason string) (int64, int64, error) {
	var amount, n int64
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		if err := l.lockCarry(ctx, tx, sellerID, cur); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM payout_candidates WHERE run_id = $1 AND currency = $2 AND seller_id = $3`,
			run.ID, string(cur), sellerID); err != nil {
			return fmt.Errorf("forget the kept payout of %s %s: %w", sellerID, cur, err)
		}
		var err error
		amount, n, err = carryItems(ctx, tx, run, sellerID, cur, channels, "", subject, reason)
		return err
	})
	return amount, n, err
}

// carryItems carries the run's uploaded items of the seller and currency
// that the payout key covers ("": no payout).
func carryItems(ctx context.Context, tx *sql.Tx, run *pipeline.Run, sellerID string, cur pipeline.Currency, channels []pipeline.Channel, key, subject, reason string) (int64, int64, error) {
	var amount, n int64
	where := `business_date = ` + runDate + ` AND seller_id = $2 AND currency = $3 AND run_id = $1 AND channel = ANY ($4)
		AND state = 'uploaded' AND payout_key = $5`
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(sum(seller_minor), 0), count(*) FROM items WHERE `+where,
		run.ID, sellerID, string(cur), channelNames(channels), key).Scan(&amount, &n); err != nil {
		return 0, 0, fmt.Errorf("carry items of %s %s: %w", sellerID, cur, err)
	}
	if n == 0 {
		return 0, 0, nil
	}
	id, err := insertAdjustment(ctx, tx, run, pipeline.Adjustment{SellerID: sellerID, Currency: cur, Kind: pipeline.AdjustHeld,
		Amount: amount, Subject: subject, Reason: reason})
	if err != nil {
		return 0, 0, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE items SET state = 'carried', reason = $6, carry_id = $7, payout_key = '' WHERE `+where,
		run.ID, sellerID, string(cur), channelNames(channels), key, "carried: "+reason, id); err != nil {
		return 0, 0, fmt.Errorf("carry items of %s %s: %w", sellerID, cur, err)
	}
	return amount, n, nil
}

// PlanPayout records the intent of a revenue share e paying the run's
// uploaded items of the seller in e's currency that no payout covers yet
// plus the seller's open carried balance up to the run's date (a re-run
// of an earlier date leaves later dates' entries to them), marks those
// items with e's key and nets the balance into it, in one transaction. The two must add up to
// e.Amount, else nothing is recorded (pipeline.ErrBalanceMoved). The
// seller's payout the run kept to check (payout_candidates) is forgotten
// in the same transaction: it is planned.
func (l *Ledger) PlanPayout(ctx context.Context, run *pipeline.Run, sellerID string, channels []pipeline.Channel, e pipeline.Effect) (pipeline.Effect, error) {
	var stored pipeline.Effect
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		if err := l.lockCarry(ctx, tx, sellerID, e.Currency); err != nil {
			return err
		}
		var payable, carried int64
		own := `business_date = ` + runDate + ` AND seller_id = $2 AND currency = $3 AND run_id = $1 AND channel = ANY ($4)
			AND state = 'uploaded' AND payout_key = ''`
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(sum(seller_minor), 0) FROM items WHERE `+own,
			run.ID, sellerID, string(e.Currency), channelNames(channels)).Scan(&payable); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(sum(amount_minor), 0) FROM adjustments
			WHERE seller_id = $1 AND currency = $2 AND netted_into = '' AND business_date <= $3`,
			sellerID, string(e.Currency), run.Key.Date.String()).Scan(&carried); err != nil {
			return err
		}
		if payable+carried != e.Amount {
			return fmt.Errorf("%s: %w (now %s + %s carried, planned %s)", e.Subject, pipeline.ErrBalanceMoved,
				pipeline.Money{Minor: payable, Currency: e.Currency}, pipeline.Money{Minor: carried, Currency: e.Currency},
				pipeline.Money{Minor: e.Amount, Currency: e.Currency})
		}
		if _, err := tx.ExecContext(ctx, planEffectSQL(""), e.RunID, e.Kind, e.Subject, e.Attempt, e.Key, string(e.Currency), e.Amount); err != nil {
			return fmt.Errorf("plan %s %s: %w", e.Kind, e.Subject, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE items SET payout_key = $5 WHERE `+own,
			run.ID, sellerID, string(e.Currency), channelNames(channels), e.Key); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE adjustments SET netted_into = $3, netted_date = $4
			WHERE seller_id = $1 AND currency = $2 AND netted_into = '' AND business_date <= $4`,
			sellerID, string(e.Currency), e.Subject, run.Key.Date.String()); err != nil {
			return err
		}
		// Planned, the payout is no longer one kept to check: another run
		// paying now counts it once, as planned (OutstandingInCurrency).
		if _, err := tx.ExecContext(ctx, `DELETE FROM payout_candidates WHERE run_id = $1 AND kind = $2 AND currency = $3 AND seller_id = $4`,
			run.ID, e.Kind, string(e.Currency), sellerID); err != nil {
			return err
		}
		var err error
		stored, err = scanEffect(tx.QueryRowContext(ctx, `SELECT `+effectColumns+` FROM effects WHERE idem_key = $1`, e.Key))
		return err
	})
	if err != nil {
		return stored, l.keyTaken(ctx, e, err)
	}
	return stored, nil
}

// PayoutSucceeded marks paid what a successful revenue share paid: the
// run's items it covers (marked with its key when it was planned), and the
// carried items whose entries were netted into it.
func (l *Ledger) PayoutSucceeded(ctx context.Context, run *pipeline.Run, sellerID string, cur pipeline.Currency, channels []pipeline.Channel, e pipeline.Effect) error {
	return l.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE items SET state = 'paid', reason = '', provider_ref = $6
			WHERE business_date = `+runDate+` AND seller_id = $2 AND currency = $3 AND run_id = $1 AND channel = ANY ($4)
			  AND state = 'uploaded' AND payout_key = $5`,
			run.ID, sellerID, string(cur), channelNames(channels), e.Key, e.ProviderRef); err != nil {
			return fmt.Errorf("mark items of %s paid: %w", e.Subject, err)
		}
		if _, err := tx.ExecContext(ctx, payoutSucceededCarriedQuery, e.Subject, e.Key, e.ProviderRef); err != nil {
			return fmt.Errorf("mark carried items of %s paid: %w", e.Subject, err)
		}
		return nil
	})
}

// payoutSucceededCarriedQuery marks paid the carried items of the entries
// netted into a revenue share ($1 its subject, $2 its key, $3 the
// provider's reference). The entries are read first (adjustments_netted),
// an array the items are then looked up by (items_carry), so that the
// statement costs the payout's entries and their items whatever the
// statistics say. Written as carry_id IN (the entries), the planner could
// join from the items' side: with statistics taken before the night's
// carry (the items are analyzed when written, carried after: no carried
// item, carry_id all NULL) it walked all of items_carry - every item ever
// carried, paid ones too, as an item keeps its carry_id - for each payout
// that succeeded (244-491 ms a payout at 100,000 carried items; see
// PERFORMANCE.md).
const payoutSucceededCarriedQuery = `UPDATE items SET state = 'paid', payout_key = $2, provider_ref = $3
	WHERE state = 'carried'
	  AND carry_id = ANY (ARRAY(SELECT id FROM adjustments WHERE netted_into = $1 AND netted_into <> ''))`

// PayoutFailed undoes a failed revenue share's netting: the entries netted
// into it are open again, and the run's items it would have paid are
// carried with the reason. Nothing moved, so nothing is lost.
func (l *Ledger) PayoutFailed(ctx context.Context, run *pipeline.Run, sellerID string, cur pipeline.Currency, channels []pipeline.Channel, e pipeline.Effect, reason string) error {
	return l.inTx(ctx, func(tx *sql.Tx) error {
		if err := l.lockCarry(ctx, tx, sellerID, cur); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE adjustments SET netted_into = '', netted_date = NULL, reopened_from = $1 WHERE netted_into = $1`, e.Subject); err != nil {
			return err
		}
		_, _, err := carryItems(ctx, tx, run, sellerID, cur, channels, e.Key, e.Subject, reason)
		return err
	})
}

// PayoutFailedHeld undoes a failed revenue share's netting as PayoutFailed
// does, but carries none of the run's items it would have paid: they are
// uploaded again, covered by no payout, with the reason hold (it begins
// with pipeline.HeldPrefix), as HoldWaiting leaves them; nothing carries
// them (no entry a later date's payout nets). The distribute stage applies
// it to a failed revenue share of a date past the provider's memory, whose
// next attempt a run the ledger lost may have sent. ReleaseWaiting of
// uploaded items takes hold back, and the share's next attempt covers them.
func (l *Ledger) PayoutFailedHeld(ctx context.Context, run *pipeline.Run, sellerID string, cur pipeline.Currency, channels []pipeline.Channel, e pipeline.Effect, hold string) error {
	return l.inTx(ctx, func(tx *sql.Tx) error {
		if err := l.lockCarry(ctx, tx, sellerID, cur); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE adjustments SET netted_into = '', netted_date = NULL, reopened_from = $1 WHERE netted_into = $1`, e.Subject); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE items SET payout_key = '', reason = $6
			WHERE business_date = `+runDate+` AND seller_id = $2 AND currency = $3 AND run_id = $1 AND channel = ANY ($4)
			  AND state = 'uploaded' AND payout_key = $5`,
			run.ID, sellerID, string(cur), channelNames(channels), e.Key, hold); err != nil {
			return fmt.Errorf("hold the items of %s: %w", e.Subject, err)
		}
		return nil
	})
}

// BlockedByLateRefunds returns, for every seller and currency with a late
// refund that cannot be right (rejected) on an order of channels (those a
// clawback nets into: paid by revenue sharing) that a provider did not
// reject, one such refund's number: what the seller owes back is unknown.
// A bad refund of a WeChat order (WeChat refunds from the sub-merchant's
// own funds: nothing is clawed back) or of an order never paid blocked
// the seller's revenue shares too (found by a review).
func (l *Ledger) BlockedByLateRefunds(ctx context.Context, channels []pipeline.Channel) (map[pipeline.SellerCurrency]string, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT i.seller_id, i.currency, min(lr.refund_no) FROM late_refunds lr
		JOIN items i ON i.order_no = lr.order_no WHERE lr.state = 'rejected' AND i.channel = ANY ($1) AND i.state <> 'rejected'
		GROUP BY 1, 2`, channelNames(channels))
	if err != nil {
		return nil, fmt.Errorf("read rejected late refunds: %w", err)
	}
	defer rows.Close()
	out := map[pipeline.SellerCurrency]string{}
	for rows.Next() {
		var k pipeline.SellerCurrency
		var cur, no string
		if err := rows.Scan(&k.SellerID, &cur, &no); err != nil {
			return nil, err
		}
		k.Currency = pipeline.Currency(cur)
		out[k] = no
	}
	return out, rows.Err()
}

// JournalMark is the newest entry of the carried-balance journal
// (adjustments) now, 0 for none: the entries recorded after it have
// greater ids (LaterDatesRunBefore).
func (l *Ledger) JournalMark(ctx context.Context) (int64, error) {
	var id int64
	err := l.db.QueryRowContext(ctx, `SELECT COALESCE(max(id), 0) FROM adjustments`).Scan(&id)
	return id, err
}

// LaterDatesRunBefore returns the earliest date of the journal entries
// run recorded after mark (JournalMark), and the dates from it on, but the
// run's own, that have a run: their reports, written before those entries
// existed, do not show them in their carried in and forward (a re-run of
// an earlier date that carries a share late; a clawback of a refund a
// later date read, dated by that date: pipeline.ClawBacks) until they are
// written again. The run's own date writes its reports at its end. Nothing
// recorded: the zero date and none.
func (l *Ledger) LaterDatesRunBefore(ctx context.Context, run *pipeline.Run, mark int64) (pipeline.Date, []pipeline.Date, error) {
	var first sql.NullTime
	if err := l.db.QueryRowContext(ctx, `SELECT min(business_date) FROM adjustments WHERE id > $1 AND run_id = $2`, mark, run.ID).Scan(&first); err != nil || !first.Valid {
		return pipeline.Date{}, nil, err
	}
	from := pipeline.DateOf(first.Time)
	// From the first entry's date on: one dated a later date than the
	// run's (a clawback of a refund that date read) is missing from that
	// date's reports too, not only from those after it.
	rows, err := l.db.QueryContext(ctx, `SELECT DISTINCT business_date FROM runs WHERE business_date >= $1 AND business_date <> $2 ORDER BY 1`,
		from.String(), run.Key.Date.String())
	if err != nil {
		return from, nil, err
	}
	defer rows.Close()
	var later []pipeline.Date
	for rows.Next() {
		var d time.Time
		if err := rows.Scan(&d); err != nil {
			return from, nil, err
		}
		later = append(later, pipeline.DateOf(d))
	}
	return from, later, rows.Err()
}

// carriedWithDate is the netted_into of a seller's entries
// HoldCarriedWithDate held with date d: it begins with
// pipeline.HeldPrefix, so that it is the subject of no payout (a revenue
// share's is RS/...). Their netted_date is d: the date's reports count
// them unsettled, and a later date's do not carry them in.
func carriedWithDate(d pipeline.Date) string {
	return carriedWithDatePrefix + d.String() + ", past the provider's memory"
}

// carriedWithDatePrefix begins carriedWithDate of every date: a LIKE
// pattern of the entries held with some date (no _ or % in it).
const carriedWithDatePrefix = pipeline.HeldPrefix + "carried balance held with "

// HoldCarriedWithDate holds with the run's date the open carried balance,
// up to the date, of the sellers and currencies whose items of the run in
// the channels have the reason hold (the hold of a date past the
// provider's memory): held, its entries are netted into no revenue share
// (netted_into is carriedWithDate) until ReleaseCarriedWithDate, and then
// into the date's own. It returns the sellers and currencies of those
// items.
//
// A run the ledger does not hold (restored from a backup) may have sent
// the date's revenue share, netting that balance, under a requestNo the
// provider forgot. Left open, a later date's share netted it again: its
// clawbacks were taken back from the seller twice, and the provider's
// available share of the seller did not catch its positive entries paid
// twice as it does a positive balance alone (the later share asks more
// than the seller has), since the first share's clawbacks left room for
// them. Held with the date, the date's share, sent once a person checked
// the provider's records (or replayed by the provider), nets it whole,
// the amount that run sent.
func (l *Ledger) HoldCarriedWithDate(ctx context.Context, run *pipeline.Run, channels []pipeline.Channel, hold string) ([]pipeline.SellerCurrency, error) {
	var held []pipeline.SellerCurrency
	if err := l.db.SelectContext(ctx, &held, `SELECT DISTINCT seller_id AS "sellerid", currency FROM items
		WHERE run_id = $1 AND channel = ANY ($2) AND reason = $3 ORDER BY 1, 2`, run.ID, channelNames(channels), hold); err != nil {
		return nil, fmt.Errorf("read the sellers held past the provider's memory: %w", err)
	}
	if len(held) == 0 {
		return nil, nil
	}
	err := l.moveCarried(ctx, held, `UPDATE adjustments a SET netted_into = $3, netted_date = $4
		FROM unnest($1::text[], $2::text[]) AS h(seller_id, currency)
		WHERE a.seller_id = h.seller_id AND a.currency = h.currency AND a.netted_into = '' AND a.business_date <= $4`,
		carriedWithDate(run.Key.Date), run.Key.Date.String())
	if err != nil {
		return nil, fmt.Errorf("hold carried balances with %s: %w", run.Key.Date, err)
	}
	return held, nil
}

// CarriedHeldGoneFromDate lists the sellers of the run's shard, by
// currency, whose carried balance is held with the run's date
// (HoldCarriedWithDate) and of whom the date has no item in channels any
// more (of any run of the date: a re-extract dropped their orders, the
// platform moved them). It moves nothing: a run of the date the ledger
// lost read the date as it was then, with their orders, and may have
// netted their balance into a share the provider paid and forgot, so
// only a run the guard does not hold (a person checked the provider's
// statement) releases it (ReleaseCarriedWithDate). The date's guarded
// runs name them for a person, as nothing of the date holds them now.
func (l *Ledger) CarriedHeldGoneFromDate(ctx context.Context, run *pipeline.Run, channels []pipeline.Channel) ([]pipeline.SellerCurrency, error) {
	var all, mine []pipeline.SellerCurrency
	if err := l.db.SelectContext(ctx, &all, `SELECT DISTINCT a.seller_id AS "sellerid", a.currency FROM adjustments a
		WHERE a.netted_into = $1 AND NOT EXISTS (SELECT 1 FROM items i WHERE i.business_date = $2
			AND i.seller_id = a.seller_id AND i.currency = a.currency AND i.channel = ANY ($3))
		ORDER BY 1, 2`, carriedWithDate(run.Key.Date), run.Key.Date.String(), channelNames(channels)); err != nil {
		return nil, fmt.Errorf("read the carried balances held with %s of sellers it no longer has: %w", run.Key.Date, err)
	}
	for _, sc := range all {
		if run.Key.Shard.Owns(sc.SellerID) {
			mine = append(mine, sc)
		}
	}
	return mine, nil
}

// ReleaseCarriedWithDate opens again the entries HoldCarriedWithDate held
// with the run's date of the sellers of its shard (for a run that may
// send the date's new requests), so that the date's revenue share nets
// them. It returns how many sellers and currencies it released.
func (l *Ledger) ReleaseCarriedWithDate(ctx context.Context, run *pipeline.Run) (int, error) {
	mark := carriedWithDate(run.Key.Date)
	var all, mine []pipeline.SellerCurrency
	if err := l.db.SelectContext(ctx, &all, `SELECT DISTINCT seller_id AS "sellerid", currency FROM adjustments
		WHERE netted_into = $1 ORDER BY 1, 2`, mark); err != nil {
		return 0, fmt.Errorf("read the carried balances held with %s: %w", run.Key.Date, err)
	}
	for _, sc := range all {
		if run.Key.Shard.Owns(sc.SellerID) {
			mine = append(mine, sc)
		}
	}
	if len(mine) == 0 {
		return 0, nil
	}
	err := l.moveCarried(ctx, mine, `UPDATE adjustments a SET netted_into = '', netted_date = NULL
		FROM unnest($1::text[], $2::text[]) AS h(seller_id, currency)
		WHERE a.seller_id = h.seller_id AND a.currency = h.currency AND a.netted_into = $3`, mark)
	if err != nil {
		return 0, fmt.Errorf("release the carried balances held with %s: %w", run.Key.Date, err)
	}
	return len(mine), nil
}

// moveCarried runs update ($1 the sellers, $2 their currencies, args from
// $3) in one transaction holding the ledger's carried-balances lock
// exclusively (lockCarried: every seller's carry lock at once, as a
// reprice's commit does): a revenue share planned meanwhile either nets
// the entries before they move or finds its balance moved
// (pipeline.ErrBalanceMoved), never nets entries its amount left out nor
// leaves out entries it counted. One lock whatever the number of sellers:
// one carry lock each, a date past the provider's memory with more held
// sellers than the server's lock table holds failed "out of shared
// memory" (found by a review). The update is one statement: the runs
// beside it wait milliseconds.
func (l *Ledger) moveCarried(ctx context.Context, scs []pipeline.SellerCurrency, update string, args ...any) error {
	sellers, curs := make(pq.StringArray, len(scs)), make(pq.StringArray, len(scs))
	for i, sc := range scs {
		sellers[i], curs[i] = sc.SellerID, string(sc.Currency)
	}
	return l.inTx(ctx, func(tx *sql.Tx) error {
		if err := l.lockCarried(ctx, tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, update, append([]any{sellers, curs}, args...)...)
		return err
	})
}
