package ledger

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/pipeline"
)

// ReplaceMismatches replaces a run's mismatches with ms, in their order.
func (l *Ledger) ReplaceMismatches(ctx context.Context, runID int64, ms []pipeline.Mismatch) error {
	return l.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM mismatches WHERE run_id = $1`, runID); err != nil {
			return fmt.Errorf("replace mismatches: %w", err)
		}
		for i, m := range ms {
			if _, err := tx.ExecContext(ctx, `INSERT INTO mismatches (run_id, seq, provider, category, subject, order_no, seller_id,
				currency, ours_minor, theirs_minor, ours_state, theirs_state, expected, detail)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULLIF($9, '')::bigint, NULLIF($10, '')::bigint, $11, $12, $13, $14)`,
				runID, i+1, m.Provider, m.Category, m.Subject, m.OrderNo, m.SellerID, m.Currency, m.Ours, m.Theirs,
				m.OursState, m.TheirsState, m.Expected, m.Detail); err != nil {
				return fmt.Errorf("record mismatch %s %s: %w", m.Provider, m.Subject, err)
			}
		}
		return nil
	})
}

// MismatchLines streams the mismatches of every run of date d, and the
// orders the latest look at d's window found (LateOrder; not those it no
// longer found), in report order. A late order's row is the platform's
// (provider platform, category late_order, subject its order number),
// never expected: ours_minor its item's gross (settled), theirs_minor its
// amount as given now (an integer), ours_state what the ledger held of it
// (LateOrder.State), theirs_state what the platform did (its kind:
// written_late, changed or gone), detail what was found (a change's
// columns old -> new).
func (r Reader) MismatchLines(ctx context.Context, d pipeline.Date, fn func(pipeline.Mismatch) error) error {
	rows, err := r.q.QueryContext(ctx, `SELECT provider, category, subject, order_no, seller_id, currency, ours, theirs, ours_state, theirs_state, expected, detail
		FROM (SELECT m.provider, m.category, m.subject, m.order_no, m.seller_id, m.currency,
				COALESCE(m.ours_minor::text, '') AS ours, COALESCE(m.theirs_minor::text, '') AS theirs, m.ours_state, m.theirs_state, m.expected, m.detail,
				r.shard_index, m.seq
			FROM mismatches m JOIN runs r ON r.id = m.run_id WHERE r.business_date = $1
			UNION ALL
			SELECT $2::text, $3::text, o.order_no, o.order_no, o.seller_id, o.currency, COALESCE(o.settled_minor::text, ''), COALESCE(o.now_minor::text, ''),
				o.state, o.kind, false, o.detail, 0, 0
			FROM late_orders o JOIN late_order_looks k ON k.business_date = o.business_date
			WHERE o.business_date = $1 AND o.last_seen >= k.looked_at) x
		ORDER BY provider, subject, category, order_no, detail, shard_index, seq`, d.String(), pipeline.ProviderPlatform, pipeline.MismatchLateOrder)
	if err != nil {
		return fmt.Errorf("read mismatches: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var m pipeline.Mismatch
		if err := rows.Scan(&m.Provider, &m.Category, &m.Subject, &m.OrderNo, &m.SellerID, &m.Currency, &m.Ours, &m.Theirs,
			&m.OursState, &m.TheirsState, &m.Expected, &m.Detail); err != nil {
			return fmt.Errorf("read mismatches: %w", err)
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return rows.Err()
}

// MismatchCounts counts the mismatches of date d: unexpected and expected.
func (r Reader) MismatchCounts(ctx context.Context, d pipeline.Date) (unexpected, expected int64, err error) {
	err = r.q.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE NOT m.expected), count(*) FILTER (WHERE m.expected)
		FROM mismatches m JOIN runs r ON r.id = m.run_id WHERE r.business_date = $1`, d.String()).Scan(&unexpected, &expected)
	return unexpected, expected, err
}

// FailedPayouts counts the money requests of the run of key (its date and
// shard: another shard's are its own run's to report) whose latest attempt
// failed and whose money is still owed: a WeChat distribution or unfreeze
// not retried with success, or a revenue share whose items, or the
// balance it netted and opened again as it failed (reopened_from), are
// still carried (once a later revenue share pays them, the failure no
// longer needs anyone). A WeChat payout a person resolved (Resolve) is
// not counted.
func (l *Ledger) FailedPayouts(ctx context.Context, key pipeline.RunKey) (int64, error) {
	var n int64
	err := l.db.QueryRowContext(ctx, failedPayoutsQuery, key.Date.String(), key.Shard.Index, key.Shard.Count).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count failed payouts: %w", err)
	}
	return n, nil
}

// failedPayoutsQuery is FailedPayouts' statement ($1 the date, $2 and $3
// the shard). Its cost is the run's payouts and a look-up or two for
// each failed revenue share: its open carried entries by subject
// (adjustments_open_subject, whose predicate it repeats: an open entry
// as netted_date IS NULL, which adjustments_open's (netted_into empty) does
// not follow from, so that the planner never scans that one whole for a
// subject where the statistics hold it empty), and the seller's open
// entries it opened again (adjustments_open). Each look-up is a scalar
// subquery (true, or NULL when there is none: in the OR, as false would
// be), looked up for each failed payout: written as EXISTS, the planner
// hashed it, reading every open entry (or every entry) of the ledger at
// each reconcile: 16-95 ms at 25,000 open entries, 33 ms per failed
// payout on other statistics (see PERFORMANCE.md). A subject too short
// to name a seller names none (GREATEST): looked up for each failed
// share, a length below zero was an error, where the hashed look-up of
// no open entry never computed it.
const failedPayoutsQuery = `
	WITH latest AS (
		SELECT DISTINCT ON (e.kind, e.subject) e.kind, e.subject, e.idem_key, e.currency, e.state
		FROM effects e JOIN runs r ON r.id = e.run_id
		WHERE r.business_date = $1 AND r.shard_index = $2 AND r.shard_count = $3 AND e.kind IN ('revenue_share', 'distribution', 'unfreeze')
		ORDER BY e.kind, e.subject, e.attempt DESC)
	SELECT count(*) FROM latest x
	WHERE x.state = 'failed' AND (x.kind <> 'revenue_share' OR (
		SELECT true FROM adjustments a WHERE a.netted_date IS NULL AND a.kind = 'held' AND a.subject = x.subject LIMIT 1) OR (
		-- RS/YYYYMMDD/<seller>/<currency>: the seller's open entries (adjustments_open)
		SELECT true FROM adjustments a WHERE a.netted_into = '' AND a.reopened_from = x.subject
		  AND a.seller_id = substr(x.subject, 13, GREATEST(length(x.subject) - 13 - length(x.currency), 0)) AND a.currency = x.currency LIMIT 1))
	  AND NOT EXISTS (SELECT 1 FROM resolutions s WHERE s.kind = x.kind AND s.subject = x.subject AND s.idem_key = x.idem_key)`

// RunsToRecheck returns the runs dated in the days before run's date whose
// mismatches still include an expected (timing) one, or one about an item
// the ledger rejected (its provider proving the rejection wrong: a Pay
// Protocol order rejected for its failed payment, paid since, which needs a
// person on every night of the window, as it did on the first), oldest first: those
// of run's shard, and, for shard 0 (or a whole run), every run of a date
// in another sharding. Each earlier run is thus rechecked by exactly one
// run of a later date's sharding: when the number of shards changed
// between nights, no run of the later date was "the same shard" and the
// earlier date's timing gaps were never reconciled again (found by a
// review).
func (l *Ledger) RunsToRecheck(ctx context.Context, run *pipeline.Run, days int) ([]*pipeline.Run, error) {
	if days <= 0 {
		return nil, nil
	}
	return l.runs(ctx, `WHERE ((r.shard_index = $1 AND r.shard_count = $2) OR ($1 = 0 AND r.shard_count <> $2))
		  AND r.business_date < $3 AND r.business_date >= $3::date - $4::int
		  AND EXISTS (SELECT 1 FROM mismatches m WHERE m.run_id = r.id AND (m.expected OR m.ours_state = '`+pipeline.ItemRejected+`'))
		ORDER BY r.business_date, r.shard_count, r.shard_index`, run.Key.Shard.Index, run.Key.Shard.Count, run.Key.Date.String(), days)
}

// rejectedLateRefundsQuery reads the rejected late refunds read on a date (its argument).
const rejectedLateRefundsQuery = `SELECT refund_no, order_no, seller_id, amount_minor, state, reason FROM late_refunds
		WHERE business_date = $1 AND state = 'rejected' ORDER BY refund_no`

// RejectedLateRefunds returns the late refunds read by the runs of date d
// that were rejected, by refund number.
func (l *Ledger) RejectedLateRefunds(ctx context.Context, d pipeline.Date) ([]pipeline.LateRefund, error) {
	rows, err := l.db.QueryContext(ctx, rejectedLateRefundsQuery, d.String())
	if err != nil {
		return nil, fmt.Errorf("read rejected late refunds: %w", err)
	}
	defer rows.Close()
	var out []pipeline.LateRefund
	for rows.Next() {
		r := pipeline.LateRefund{Date: d}
		if err := rows.Scan(&r.RefundNo, &r.OrderNo, &r.SellerID, &r.Amount, &r.State, &r.Reason); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Unbalanced describes the lines of the date's sellers and summary reports
// whose conservation check fails, as the run of key judges them: a shard
// judges its own sellers (another shard's payout in flight - recorded
// succeeded, its items marked paid a transaction later - showed its seller
// both paid and unsettled for an instant, and a clean shard ended 4,
// naming a seller it does not own: found by a review), and every shard the
// summary, which one statement reads from the items' states alone, so no
// shard's work in flight unbalances it.
func (l *Ledger) Unbalanced(ctx context.Context, key pipeline.RunKey) ([]string, error) {
	var out []string
	d := key.Date
	err := l.SellerLines(ctx, d, func(s pipeline.SellerLine) error {
		if !s.Balanced && key.Shard.Owns(s.SellerID) {
			out = append(out, fmt.Sprintf("sellers.csv %s %s does not balance: payable %d (gross - refunded - commission %d) + carried in %d + clawback %d, paid %d + carried forward %d + unsettled %d",
				s.SellerID, s.Currency, s.Payable, s.Gross-s.Refunded-s.Commission, s.CarriedIn, s.Clawback, s.Paid, s.Held, s.Unsettled))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = l.SummaryLines(ctx, d, func(s pipeline.SummaryLine) error {
		if !s.Balanced {
			out = append(out, fmt.Sprintf("summary.csv %s %s does not balance: gross %d, refunded %d + commission %d + seller %d; seller %d, in its columns %d",
				s.Channel, s.Currency, s.Gross, s.Refunded, s.Commission, s.Seller, s.Seller, s.Accounted()))
		}
		return nil
	})
	return out, err
}

// Resolution is what a person decided of a payout, an order or a trade
// file outside a run (settle resolve): what (Kind, Subject, Key), why
// (Note), when (ResolvedAt) and who - Actor, the person the ledger's
// actor named (SetActor), and DBRole, the database role it was written
// under. Both are "" in a resolution recorded before they were
// (migration 00029). Resolutions are append-only: the database refuses
// to change or remove one.
type Resolution struct {
	Kind       string    `json:"kind" db:"kind"`
	Subject    string    `json:"subject" db:"subject"`
	Key        string    `json:"key" db:"idem_key"`
	Note       string    `json:"note" db:"note"`
	ResolvedAt time.Time `json:"resolved_at" db:"resolved_at"`
	Actor      string    `json:"actor" db:"actor"`
	DBRole     string    `json:"db_role" db:"db_role"`
}

// Who names who made r for a person: its actor, with the database role
// it was written under, or that neither was recorded (a resolution from
// before they were).
func (r Resolution) Who() string {
	switch {
	case r.Actor == "" && r.DBRole == "":
		return "a person not recorded (resolved before settle recorded who)"
	case r.DBRole == "":
		return r.Actor
	}
	return fmt.Sprintf("%s (database role %s)", cmp.Or(r.Actor, "not recorded"), r.DBRole)
}

// Resolve records that a person settled outside settle the commission of
// a distribution of a run of date d that its provider closed and whose
// rest it released to the seller (the item orderNo paid by the latest
// attempt of subject, failed, its reason pipeline.ReleasedToSeller), with
// note saying how. It returns
// the resolution, and whether it was recorded before (the same attempt
// resolved again keeps its first note). Anything else is refused
// (pipeline.KindUsage), as settle may still pay it: a subject of no run of
// d, one whose latest attempt did not fail, one whose item is not paid (a
// re-run may send it again), a revenue share (its balance stays carried,
// and the seller's next payout pays it).
func (l *Ledger) Resolve(ctx context.Context, d pipeline.Date, subject, orderNo, note string) (Resolution, bool, error) {
	if strings.TrimSpace(note) == "" {
		return Resolution{}, false, pipeline.Errorf(pipeline.KindUsage, "--note", "say how the commission was recovered")
	}
	var (
		r       Resolution
		created bool
	)
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		var state, item, reason string
		// The item by its order number, paid by this very attempt.
		err := tx.QueryRowContext(ctx, `SELECT e.kind, e.subject, e.idem_key, e.state, COALESCE(i.state, ''), COALESCE(i.reason, '')
			FROM effects e JOIN runs r ON r.id = e.run_id
			LEFT JOIN items i ON i.order_no = $3 AND i.run_id = e.run_id AND i.payout_key = e.idem_key
			WHERE r.business_date = $1 AND e.subject = $2 AND e.kind IN ('revenue_share', 'distribution', 'unfreeze')
			ORDER BY e.attempt DESC LIMIT 1`, d.String(), subject, orderNo).Scan(&r.Kind, &r.Subject, &r.Key, &state, &item, &reason)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: no payout of %s has this subject (payouts.csv lists them)", subject, d)
		case err != nil:
			return err
		case state != string(pipeline.EffectFailed):
			// Before the revenue share's answer: one paid (by a later
			// attempt, say) has no balance left carried.
			return pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: its latest attempt (%s) is %s, not failed: nothing to resolve", subject, r.Key, state)
		case r.Kind == "revenue_share":
			return pipeline.Errorf(pipeline.KindUsage, "--subject", "%s is a revenue share: its balance stays carried and the seller's next payout pays it; fix the cause and run again", subject)
		case item != string(pipeline.ItemPaid) || !strings.HasPrefix(reason, pipeline.ReleasedToSeller):
			return pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: its provider did not release its order to the seller (the item is %s): settle may still pay it; fix the cause and run the date again",
				subject, cmp.Or(item, "not recorded with it"))
		}
		created, err = recordResolution(ctx, tx, &r, note, l.Actor())
		return err
	})
	if err != nil && pipeline.KindOf(err) != pipeline.KindUsage {
		err = fmt.Errorf("resolve %s: %w", subject, err)
	}
	return r, !created, err
}

// recordResolution records r (its kind, subject and key) with note and
// actor (the person deciding it: required), unless it was recorded
// before, and reads it back into r - in a statement of its own, which
// sees a resolution another person committed meanwhile (read committed),
// whose first note and actor stand. It reports whether this call
// recorded it.
func recordResolution(ctx context.Context, tx *sql.Tx, r *Resolution, note, actor string) (bool, error) {
	if strings.TrimSpace(actor) == "" {
		return false, fmt.Errorf("%s %s: no person named to record it with (Ledger.SetActor): nothing recorded", r.Kind, r.Subject)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO resolutions (kind, subject, idem_key, note, actor) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (kind, subject, idem_key) DO NOTHING`, r.Kind, r.Subject, r.Key, note, actor)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	err = tx.QueryRowContext(ctx, `SELECT note, resolved_at, actor, db_role FROM resolutions WHERE kind = $1 AND subject = $2 AND idem_key = $3`,
		r.Kind, r.Subject, r.Key).Scan(&r.Note, &r.ResolvedAt, &r.Actor, &r.DBRole)
	return n == 1, err
}

// Forgotten is a caller's proof (Proof: what the provider's status query
// answered, and when) that the provider no longer knows request Key, sent
// longer ago than it remembers (pipeline.ErrPastMemory): SettleOutside
// records such a request not applied.
type Forgotten struct{ Key, Proof string }

// HeldItem is an item of a date a provider's stage holds (ItemRecorded,
// its reason pipeline.HeldPrefix), as SettleOutside reads it.
type HeldItem struct {
	RunID         int64
	OrderNo       string
	SellerID      string
	Channel       pipeline.Channel
	TransactionID string
	Currency      pipeline.Currency
	Gross         int64
	Refunded      int64
	Commission    int64
	SellerShare   int64
	State         string
	Reason        string
}

// heldItemQuery reads an item of a date by its order number ($1, $2 the
// date), locked when it ends FOR UPDATE.
const heldItemQuery = `SELECT i.run_id, i.order_no, i.seller_id, i.channel, i.provider_txn_id, i.currency, i.gross_minor,
	i.refunded_minor, i.commission_minor, i.seller_minor, i.state, i.reason
	FROM items i WHERE i.order_no = $1 AND i.business_date = $2`

// scanItem reads a row of heldItemQuery.
func scanItem(row *sql.Row) (HeldItem, error) {
	var it HeldItem
	err := row.Scan(&it.RunID, &it.OrderNo, &it.SellerID, &it.Channel, &it.TransactionID, &it.Currency, &it.Gross,
		&it.Refunded, &it.Commission, &it.SellerShare, &it.State, &it.Reason)
	return it, err
}

// Item returns the item of order orderNo settled on date d, or a usage
// error naming the order when d settled none.
func (l *Ledger) Item(ctx context.Context, d pipeline.Date, orderNo string) (HeldItem, error) {
	it, err := scanItem(l.db.QueryRowContext(ctx, heldItemQuery, orderNo, d.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return it, pipeline.Errorf(pipeline.KindUsage, "--order", "%s: no item of %s has this order number (orders.csv lists them)", orderNo, d)
	}
	if err != nil {
		return it, fmt.Errorf("read the item of order %s: %w", orderNo, err)
	}
	return it, nil
}

// SettleOutside records that a person settled outside settle the item of
// order orderNo of date d, which a stage of its channel ch holds
// (ItemRecorded, its reason pipeline.HeldPrefix), once its provider holds
// nothing of it any more (proof says what the provider answered, asked by
// the caller): in one transaction the item becomes paid, its reason
// pipeline.SettledOutside with the proof and note, so that no run sends
// anything for it again, and the latest request of subject (the item's
// payout subject at its provider), when it failed, is resolved with note
// (FailedPayouts no longer counts it). It is refused (pipeline.KindUsage)
// when the item is not of ch or not held, or when a request of subject is
// still in flight: a re-run finds out what became of it. A request that
// succeeded stands (the item was held for what it did not do). A request
// sent whose outcome is unknown is settled too when forgotten proves that
// the provider's status query no longer knows it (its key, past the
// provider's memory: the caller asked): the person's word that the item
// was settled by hand is that the request was never applied (the provider
// would hold nothing to settle by hand otherwise), so it is recorded failed
// by a person (pipeline.CauseResolved), with forgotten's proof, proof and
// note, and resolved as a failed one. Credited to the request instead (the
// only way out before: settle resolve --paid, the provider holding
// nothing), the ledger said that it moved what the person moved by hand.
// The caller holds the date's lock (LockDate), so that no run of d works
// meanwhile.
func (l *Ledger) SettleOutside(ctx context.Context, d pipeline.Date, ch pipeline.Channel, orderNo, subject, proof, note string, forgotten *Forgotten) (HeldItem, *Resolution, error) {
	if strings.TrimSpace(note) == "" {
		return HeldItem{}, nil, pipeline.Errorf(pipeline.KindUsage, "--note", "say how the order was settled: who, where, the reference")
	}
	var (
		it  HeldItem
		res *Resolution
	)
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if it, err = lockItem(ctx, tx, d, ch, orderNo); err != nil {
			return err
		}
		if it.State != pipeline.ItemRecorded || !strings.HasPrefix(it.Reason, pipeline.HeldPrefix) {
			return pipeline.Errorf(pipeline.KindUsage, "--order", "%s is %s, not held (%s): nothing to settle by hand", orderNo, it.State, cmp.Or(it.Reason, "no reason recorded"))
		}
		var r Resolution
		var (
			state string
			id    int64
		)
		err = tx.QueryRowContext(ctx, `SELECT e.id, e.kind, e.subject, e.idem_key, e.state FROM effects e JOIN runs r ON r.id = e.run_id
			WHERE r.business_date = $1 AND e.subject = $2 ORDER BY e.attempt DESC LIMIT 1 FOR UPDATE OF e`, d.String(), subject).Scan(&id, &r.Kind, &r.Subject, &r.Key, &state)
		inFlight := state == string(pipeline.EffectSent) || state == string(pipeline.EffectUnknown)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case state == string(pipeline.EffectSucceeded):
			// It moved what it was sent for (a commission), and the
			// item was held for the rest (a release WeChat Pay closed).
		case inFlight && forgotten != nil && forgotten.Key == r.Key && strings.TrimSpace(forgotten.Proof) != "":
			// Forgotten by the provider, and the transaction settled by
			// hand: it never applied.
			detail := fmt.Sprintf("%s: not applied, its transaction settled outside settle by a person (%s; %s): %s", pipeline.SettledOutside, forgotten.Proof, proof, note)
			var n int
			if err := tx.QueryRowContext(ctx, recordOutcomeSQL, id, string(pipeline.CauseResolved), string(pipeline.EffectFailed), "", detail).Scan(&n); err != nil {
				return err
			}
			if n != 1 {
				return fmt.Errorf("%s %s: already final", r.Kind, r.Key)
			}
			if _, err := recordResolution(ctx, tx, &r, note, l.Actor()); err != nil {
				return err
			}
			res = &r
		case state != string(pipeline.EffectFailed):
			return pipeline.Errorf(pipeline.KindUsage, "--order", "%s: its request %s is %s: run the date again, settle finds out what became of it", orderNo, r.Key, state)
		default:
			if _, err := recordResolution(ctx, tx, &r, note, l.Actor()); err != nil {
				return err
			}
			res = &r
		}
		it.State, it.Reason = pipeline.ItemPaid, fmt.Sprintf("%s (%s): %s; was %s", pipeline.SettledOutside, proof, note, it.Reason)
		if _, err := tx.ExecContext(ctx, `UPDATE items SET state = $2, reason = $3 WHERE order_no = $1`, orderNo, it.State, it.Reason); err != nil {
			return err
		}
		// Listed with the date's resolutions (Resolutions), by order.
		_, err = recordResolution(ctx, tx, &Resolution{Kind: KindSettledOutside, Subject: subject, Key: orderNo}, note, l.Actor())
		return err
	})
	if err != nil && pipeline.KindOf(err) != pipeline.KindUsage {
		err = fmt.Errorf("settle order %s outside settle: %w", orderNo, err)
	}
	return it, res, err
}

// RejectHeld records that a person rejected for good the item of order
// orderNo of date d, of channel ch, which settle holds with a reason
// starting with heldPrefix (a Pay Protocol order whose payment failed and
// will never arrive), proof saying what its provider answered when the
// caller asked it: in one transaction the item becomes rejected, its
// reason pipeline.RejectedByPerson with the proof and note, so that no run
// verifies, pays or counts it as held again, and the resolution is
// recorded (KindRejectedHeld, its subject the provider's transaction, its
// key the order number; Resolutions lists it). It returns the item, and
// whether a person rejected it before (the item is then as that person
// left it, and nothing changes). It is refused (pipeline.KindUsage) when
// the item is not of ch, or not held for that reason. The caller holds
// the date's lock (LockDate), so that no run of d works meanwhile.
func (l *Ledger) RejectHeld(ctx context.Context, d pipeline.Date, ch pipeline.Channel, orderNo, heldPrefix, proof, note string) (HeldItem, bool, error) {
	if strings.TrimSpace(note) == "" {
		return HeldItem{}, false, pipeline.Errorf(pipeline.KindUsage, "--note", "say why the order will never be paid: who, what the provider said, the reference")
	}
	return l.moveItem(ctx, d, ch, orderNo, "reject", KindRejectedHeld, note, func(it HeldItem) (bool, error) {
		switch {
		case it.State == pipeline.ItemRejected && strings.HasPrefix(it.Reason, pipeline.RejectedByPerson):
			return true, nil
		case it.State != pipeline.ItemHeld || !strings.HasPrefix(it.Reason, heldPrefix):
			return false, pipeline.Errorf(pipeline.KindUsage, "--order", "%s is %s (%s), not held for %q: nothing to reject",
				orderNo, it.State, cmp.Or(it.Reason, "no reason recorded"), strings.TrimPrefix(heldPrefix, pipeline.HeldPrefix))
		}
		return false, nil
	}, pipeline.ItemRejected, fmt.Sprintf("%s (%s): %s", pipeline.RejectedByPerson, proof, note))
}

// ReopenRejected records that a person took back the rejection of the
// item of order orderNo of date d, of channel ch, rejected with a reason
// starting with one of rejected (a Pay Protocol order rejected for a
// payment that failed, which its provider answers paid since), proof
// saying what its provider answered when the caller asked it: in one
// transaction the item is held again, its reason held (a hold its
// provider's next verification of the date takes up: the run verifies
// it, and settles it once, as any held payment paid late) with the proof
// and note, and the resolution is recorded (KindReopened, its subject
// the provider's transaction, its key the order number). Nothing is
// sent here: the money goes out through the run's own keyed requests. It
// returns the item, and whether a person reopened it before and no run
// decided it since (the item held so: nothing changes). It is refused
// (pipeline.KindUsage) when the item is not of ch, or not rejected for
// one of those reasons. The caller holds the date's lock (LockDate), so
// that no run of d works meanwhile.
func (l *Ledger) ReopenRejected(ctx context.Context, d pipeline.Date, ch pipeline.Channel, orderNo string, rejected []string, held, proof, note string) (HeldItem, bool, error) {
	if strings.TrimSpace(note) == "" {
		return HeldItem{}, false, pipeline.Errorf(pipeline.KindUsage, "--note", "say why the order is settled after all: who checked the payment, the reference")
	}
	return l.moveItem(ctx, d, ch, orderNo, "reopen", KindReopened, note, func(it HeldItem) (bool, error) {
		switch {
		case it.State == pipeline.ItemHeld && strings.HasPrefix(it.Reason, held):
			return true, nil
		case it.State != pipeline.ItemRejected || !slices.ContainsFunc(rejected, func(r string) bool { return strings.HasPrefix(it.Reason, r) }) ||
			strings.HasPrefix(it.Reason, pipeline.RejectedSellerHold):
			return false, pipeline.Errorf(pipeline.KindUsage, "--order", "%s is %s (%s), not rejected for a failed payment: nothing to reopen",
				orderNo, it.State, cmp.Or(it.Reason, "no reason recorded"))
		}
		return false, nil
	}, pipeline.ItemHeld, fmt.Sprintf("%s (%s): %s", held, proof, note))
}

// moveItem is what a person's decision about one item (RejectHeld,
// ReopenRejected) does in one transaction, under the order's lock
// (lockItem): judge says whether the item is as the decision leaves it
// already (done: nothing changes, and moveItem returns true) or refuses
// it; otherwise the item goes to state with reason, its earlier reason
// kept after it ("; was ..."), and the resolution of kind is recorded
// (its subject the provider's transaction, its key the order number;
// Resolutions lists it). verb names the decision in an error.
func (l *Ledger) moveItem(ctx context.Context, d pipeline.Date, ch pipeline.Channel, orderNo, verb, kind, note string,
	judge func(HeldItem) (bool, error), state, reason string) (HeldItem, bool, error) {
	var (
		it   HeldItem
		done bool
	)
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if it, err = lockItem(ctx, tx, d, ch, orderNo); err != nil {
			return err
		}
		if done, err = judge(it); done || err != nil {
			return err
		}
		it.State, it.Reason = state, reason+"; was "+it.Reason
		if _, err := tx.ExecContext(ctx, `UPDATE items SET state = $2, reason = $3 WHERE order_no = $1`, orderNo, it.State, it.Reason); err != nil {
			return err
		}
		_, err = recordResolution(ctx, tx, &Resolution{Kind: kind, Subject: it.TransactionID, Key: orderNo}, note, l.Actor())
		return err
	})
	if err != nil && pipeline.KindOf(err) != pipeline.KindUsage {
		err = fmt.Errorf("%s order %s: %w", verb, orderNo, err)
	}
	return it, done, err
}

// KindReopened is the kind of the resolution ReopenRejected records of an
// item (its key the order number).
const KindReopened = "reopened_rejected"

// Reopened is an order a person reopened (ReopenRejected) that its date's
// run still holds so.
type Reopened struct {
	Key     pipeline.RunKey // the run of its date that holds it
	OrderNo string
}

// ReopenedHeld returns the orders a person reopened (ReopenRejected,
// whatever their date) that are still held with a reason starting with
// held: no run of their date has verified and settled them since, and
// only one does. By date, shard and order number.
func (l *Ledger) ReopenedHeld(ctx context.Context, held string) ([]Reopened, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT DISTINCT to_char(r.business_date, 'YYYY-MM-DD'), r.shard_index, r.shard_count, i.order_no
		FROM resolutions s JOIN items i ON i.order_no = s.idem_key JOIN runs r ON r.id = i.run_id
		WHERE s.kind = $1 AND i.state = 'held' AND starts_with(i.reason, $2)
		ORDER BY 1, 3, 2, 4`, KindReopened, held)
	if err != nil {
		return nil, fmt.Errorf("read the reopened orders still held: %w", err)
	}
	defer rows.Close()
	var out []Reopened
	for rows.Next() {
		var (
			o   Reopened
			day string
		)
		if err := rows.Scan(&day, &o.Key.Shard.Index, &o.Key.Shard.Count, &o.OrderNo); err != nil {
			return nil, fmt.Errorf("read the reopened orders still held: %w", err)
		}
		if o.Key.Date, err = pipeline.ParseDate(day); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// lockItem reads, for update, the item of order orderNo of date d under
// the order's lock (orderLockClass), refusing (pipeline.KindUsage) one
// the date does not have or of another channel than ch.
func lockItem(ctx context.Context, tx *sql.Tx, d pipeline.Date, ch pipeline.Channel, orderNo string) (HeldItem, error) {
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, orderLockClass, orderNo); err != nil {
		return HeldItem{}, err
	}
	it, err := scanItem(tx.QueryRowContext(ctx, heldItemQuery+` FOR UPDATE`, orderNo, d.String()))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return HeldItem{}, pipeline.Errorf(pipeline.KindUsage, "--order", "%s: no item of %s has this order number (orders.csv lists them)", orderNo, d)
	case err != nil:
		return HeldItem{}, err
	case it.Channel != ch:
		return HeldItem{}, pipeline.Errorf(pipeline.KindUsage, "--order", "%s is a %s order, not %s", orderNo, it.Channel, ch)
	}
	return it, nil
}

// KindRejectedHeld is the kind of the resolution RejectHeld records of an
// item (its key the order number).
const KindRejectedHeld = "rejected_held"

// KindSettledOutside is the kind of the resolution SettleOutside records
// of an item (its key the order number), beside the failed request it
// resolves: what a person settled by hand is listed whether or not a
// request of it failed.
const KindSettledOutside = "settled_outside"

// Resolutions returns what a person resolved of date d's runs: failed
// payouts, items settled outside settle (KindSettledOutside) or rejected
// while held (KindRejectedHeld) or reopened since (KindReopened), refused
// trade files sent again (KindSentAgain), and requests held past their
// provider's memory a person found paid or not (KindPastMemoryPaid,
// KindPastMemoryNotPaid), by subject.
func (r Reader) Resolutions(ctx context.Context, d pipeline.Date) ([]Resolution, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT * FROM (
		SELECT DISTINCT s.kind, s.subject, s.idem_key, s.note, s.resolved_at, s.actor, s.db_role
		FROM resolutions s JOIN effects e ON e.kind = s.kind AND e.subject = s.subject AND e.idem_key = s.idem_key
		JOIN runs r ON r.id = e.run_id WHERE r.business_date = $1
		UNION ALL
		SELECT s.kind, s.subject, s.idem_key, s.note, s.resolved_at, s.actor, s.db_role
		FROM resolutions s JOIN effects e ON e.subject = s.subject AND e.idem_key = s.idem_key
		JOIN runs r ON r.id = e.run_id WHERE r.business_date = $1 AND s.kind IN ('`+KindPastMemoryPaid+`', '`+KindPastMemoryNotPaid+`')
		UNION ALL
		SELECT s.kind, s.subject, s.idem_key, s.note, s.resolved_at, s.actor, s.db_role
		FROM resolutions s JOIN items i ON i.order_no = s.idem_key AND i.business_date = $1
		WHERE s.kind IN ('`+KindSettledOutside+`', '`+KindRejectedHeld+`', '`+KindReopened+`')
		UNION ALL
		SELECT s.kind, s.subject, s.idem_key, s.note, s.resolved_at, s.actor, s.db_role
		FROM resolutions s JOIN trade_files t ON t.name = s.subject AND t.request_no = s.idem_key AND t.business_date = $1
		WHERE s.kind IN ('`+KindSentAgain+`', '`+KindRefusedRowsSentAgain+`')
		UNION ALL
		SELECT s.kind, s.subject, s.idem_key, s.note, s.resolved_at, s.actor, s.db_role
		FROM resolutions s JOIN adjustments a ON a.kind = 'close' AND a.subject = s.idem_key AND a.business_date = $1
		WHERE s.kind = '`+KindBalanceClosed+`') x ORDER BY subject, kind`, d.String())
	if err != nil {
		return nil, fmt.Errorf("read resolutions of %s: %w", d, err)
	}
	defer rows.Close()
	var out []Resolution
	if err := sqlx.StructScan(rows, &out); err != nil {
		return nil, fmt.Errorf("read resolutions of %s: %w", d, err)
	}
	return out, nil
}
