package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/lib/pq"
	"github.com/settlekit/settle/pipeline"
)

// KindBalanceClosed is the kind of the resolution CloseBalance records
// (its subject SELLER/CURRENCY, its key the close's, CloseKey).
const KindBalanceClosed = "balance_closed"

// CloseKey is the key of the close of a seller's carried balance in a
// currency whose newest open entry is newest: the subject of the close's
// entry, and what it and the entries it closes are netted into. The same
// balance closed again has the same key (adjustments_close: once).
func CloseKey(sellerID string, cur pipeline.Currency, newest int64) string {
	return "CLOSE/" + sellerID + "/" + string(cur) + "/" + strconv.FormatInt(newest, 10)
}

// BalanceClose is a seller's carried balance in one currency as
// CloseBalance found it, and the close it records (or, in a dry run,
// would record).
type BalanceClose struct {
	SellerID string
	Currency pipeline.Currency
	Balance  int64         // the open entries' sum: what is closed
	Entries  int64         // how many open entries
	Since    pipeline.Date // the oldest open entry's date
	Date     pipeline.Date // the date the close is recorded under (its run's)
	Key      string        // CloseKey
	Reason   string        // the close entry's reason
	// Before is the close recorded before, when the balance was closed
	// already and nothing was carried since (nothing recorded now).
	Before *Resolution
	// Resolution is the close recorded now (nil in a dry run or Before).
	Resolution *Resolution
}

// CloseRun returns the run a close of the seller's carried balance is
// recorded under: the run of the latest date with a run whose shard owns
// the seller (the latest of that date's when none does). Dated so, the
// close changes no report of a date after it: a later date's carried in
// and forward count only entries netted on or after that date (and a
// date's reports before it show the balance carried, as it was). None
// (no run at all) is a usage error.
func (l *Ledger) CloseRun(ctx context.Context, sellerID string) (*pipeline.Run, error) {
	runs, err := l.runs(ctx, `WHERE r.business_date = (SELECT max(business_date) FROM runs) ORDER BY r.id DESC`)
	if err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		return nil, pipeline.Errorf(pipeline.KindUsage, "--seller", "%s: the ledger has no run: no balance to close", sellerID)
	}
	for _, r := range runs {
		if r.Key.Shard.Owns(sellerID) {
			return r, nil
		}
	}
	return runs[0], nil
}

// CloseBalance records that a person settled outside settle (or forgave)
// the seller's carried balance in cur, note saying who, why and the
// reference: in one transaction, under the seller's carried-balance lock
// (lockCarry, as every revenue share's planning takes it), an entry of
// kind close (pipeline.AdjustClose) of the balance's opposite, dated run's
// date, under run (CloseRun), its commission_back the same (the balance
// moves to the platform's books; migration 00042), and every open entry
// and the close itself netted into the close's key, on run's date: the
// balance is exactly 0, no revenue share nets those entries, and the
// resolution is recorded (KindBalanceClosed, with the note and the
// ledger's actor). dryRun records nothing and returns what it would.
//
// The balance closed before, with nothing carried since, is no error:
// Before says by whom and when, and nothing is recorded. Refused
// (pipeline.KindUsage), naming what and where: no open entry (nothing to
// close) or entries summing to 0; an entry dated after run's date, or a
// run of a later date (one begun since CloseRun: it read the balance); a
// revenue share of the seller in cur planned, sent or unknown (its entries
// would open again if it failed); a payout of it a run keeps to check
// (payout_candidates: that run's planning nets the balance); an item of
// the seller in cur not settled yet (uploaded, held, unverified,
// recorded: it is paid or carried by a later run); a late refund of its
// orders in cur pending (its clawback moves the balance) or rejected
// (what the seller owes back is unknown); and, unless force, a seller
// the platform still gave at run (run_sellers: a seller still on the
// platform is paid, or nets what it owes, by its next revenue shares).
// Refused as locked (pipeline.KindLocked) while a process other than the
// caller holds the lock of a date (a run of any date may net the balance):
// the caller holds run's date (LockDate), so that no run of it begins; a
// dry run holds none, and names a process holding run's date too.
func (l *Ledger) CloseBalance(ctx context.Context, run *pipeline.Run, sellerID string, cur pipeline.Currency, note string, force, dryRun bool) (BalanceClose, error) {
	c := BalanceClose{SellerID: sellerID, Currency: cur, Date: run.Key.Date}
	if strings.TrimSpace(note) == "" {
		return c, pipeline.Errorf(pipeline.KindUsage, "--note", "say who settled the balance outside settle, or decided to forgive it, why, and the reference")
	}
	if !dryRun && strings.TrimSpace(l.Actor()) == "" {
		return c, fmt.Errorf("close %s %s: no person named to record it with (Ledger.SetActor): nothing recorded", sellerID, cur)
	}
	refuse := func(format string, args ...any) error {
		return pipeline.Errorf(pipeline.KindUsage, "sellers close", "%s %s: "+format, append([]any{sellerID, cur}, args...)...)
	}
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		if err := l.lockCarry(ctx, tx, sellerID, cur); err != nil {
			return err
		}
		var newest sql.NullInt64
		var since, last sql.NullString
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(sum(amount_minor), 0), count(*), max(id), min(business_date)::text, max(business_date)::text
			FROM adjustments WHERE seller_id = $1 AND currency = $2 AND netted_into = ''`, sellerID, string(cur)).
			Scan(&c.Balance, &c.Entries, &newest, &since, &last); err != nil {
			return fmt.Errorf("read the carried balance of %s %s: %w", sellerID, cur, err)
		}
		if c.Entries == 0 {
			before, err := closedBefore(ctx, tx, sellerID, cur)
			if err != nil || before != nil {
				c.Before = before
				return err
			}
			return refuse("no carried balance: nothing to close (settle status --date D lists the open balances)")
		}
		var err error
		if c.Since, err = pipeline.ParseDate(since.String); err != nil {
			return err
		}
		if c.Balance == 0 {
			return refuse("its %d open entries sum to 0: nothing to close (the seller's next revenue share nets them)", c.Entries)
		}
		if last.String > run.Key.Date.String() {
			return refuse("an entry of its balance is dated %s, after %s, the date the close would be recorded under: run that date first", last.String, run.Key.Date)
		}
		// CloseRun's date is the latest with a run: a run of a later date
		// begun since read the balance (its reports carry it forward).
		var after sql.NullString
		if err := tx.QueryRowContext(ctx, `SELECT min(business_date)::text FROM runs WHERE business_date > $1`, run.Key.Date.String()).Scan(&after); err != nil {
			return err
		}
		if after.Valid {
			return refuse("a run of %s, after %s, the date the close would be recorded under, began since: close it again (it is recorded on the latest date)", after.String, run.Key.Date)
		}
		if err := closeBlocked(ctx, tx, sellerID, cur, refuse); err != nil {
			return err
		}
		except := run.Key.Date // the caller's, held
		if dryRun {
			except = pipeline.Date{} // none taken: a run of the date is named too
		}
		if err := l.datesWorked(ctx, except); err != nil {
			return err
		}
		if !force {
			var given bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM run_sellers rs JOIN runs r ON r.id = rs.run_id
				WHERE r.business_date = $1 AND rs.seller_id = $2)`, run.Key.Date.String(), sellerID).Scan(&given); err != nil {
				return err
			}
			if given {
				return refuse("the platform still gave this seller on %s (its run read it): the balance of a seller still on the platform is paid, or what it owes netted, by its next revenue shares; "+
					"close it only if it was settled outside settle (--force)", run.Key.Date)
			}
		}
		c.Key = CloseKey(sellerID, cur, newest.Int64)
		c.Reason = fmt.Sprintf("balance of %s closed by %s (settled outside settle, or forgiven): %s",
			pipeline.Money{Minor: c.Balance, Currency: cur}, strings.TrimSpace(l.Actor()), note)
		if dryRun {
			return errDryRun
		}
		if _, err := tx.ExecContext(ctx, `UPDATE adjustments SET netted_into = $3, netted_date = $4
			WHERE seller_id = $1 AND currency = $2 AND netted_into = ''`, sellerID, string(cur), c.Key, run.Key.Date.String()); err != nil {
			return fmt.Errorf("close the entries of %s %s: %w", sellerID, cur, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO adjustments (seller_id, currency, kind, amount_minor, commission_back, subject, reason,
			business_date, run_id, netted_into, netted_date) VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $5, $7)`,
			sellerID, string(cur), pipeline.AdjustClose, -c.Balance, c.Key, c.Reason, run.Key.Date.String(), run.ID); err != nil {
			return fmt.Errorf("record the close of %s %s: %w", sellerID, cur, err)
		}
		r := Resolution{Kind: KindBalanceClosed, Subject: sellerID + "/" + string(cur), Key: c.Key}
		if _, err := recordResolution(ctx, tx, &r, note, l.Actor()); err != nil {
			return err
		}
		c.Resolution = &r
		return nil
	})
	if errors.Is(err, errDryRun) {
		err = nil
	}
	if err != nil && pipeline.KindOf(err) != pipeline.KindUsage && pipeline.KindOf(err) != pipeline.KindLocked {
		err = fmt.Errorf("close the balance of %s %s: %w", sellerID, cur, err)
	}
	return c, err
}

// errDryRun rolls a dry run's transaction back.
var errDryRun = errors.New("dry run: nothing recorded")

// closedBefore returns the resolution of the seller's latest close in
// cur when it is the seller's latest entry in cur (nothing carried since),
// else nil.
func closedBefore(ctx context.Context, tx *sql.Tx, sellerID string, cur pipeline.Currency) (*Resolution, error) {
	var kind, key string
	err := tx.QueryRowContext(ctx, `SELECT kind, subject FROM adjustments WHERE seller_id = $1 AND currency = $2 ORDER BY id DESC LIMIT 1`,
		sellerID, string(cur)).Scan(&kind, &key)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && kind != pipeline.AdjustClose) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r := Resolution{Kind: KindBalanceClosed, Subject: sellerID + "/" + string(cur), Key: key}
	err = tx.QueryRowContext(ctx, `SELECT note, resolved_at, actor, db_role FROM resolutions WHERE kind = $1 AND subject = $2 AND idem_key = $3`,
		r.Kind, r.Subject, r.Key).Scan(&r.Note, &r.ResolvedAt, &r.Actor, &r.DBRole)
	return &r, err
}

// closeBlocked refuses (refuse) a close of the seller's balance in cur
// while anything of the seller in cur may still move it, or is held for a
// person on a ground the close would hide: the first it finds of each
// kind, named with where it is.
func closeBlocked(ctx context.Context, tx *sql.Tx, sellerID string, cur pipeline.Currency, refuse func(string, ...any) error) error {
	checks := []struct{ what, q string }{
		// Its entries open again if it fails.
		{"revenue share %s (%s) is %s: run its date again first (settle finds out what became of it)",
			`SELECT e.subject, r.business_date::text, e.state FROM effects e JOIN runs r ON r.id = e.run_id
			WHERE e.kind = 'revenue_share' AND e.state IN ('planned', 'sent', 'unknown') AND e.currency = $2
			  AND split_part(e.subject, '/', 3) = $1 ORDER BY e.id LIMIT 1`},
		{"the run of %s (shard %s) keeps a revenue share of it to check (it may net the balance: %s): run that date again first",
			`SELECT r.business_date::text, r.shard_index || '/' || r.shard_count, (p.payable_minor + p.carried_minor)::text
			FROM payout_candidates p JOIN runs r ON r.id = p.run_id
			WHERE p.seller_id = $1 AND p.currency = $2 ORDER BY r.id LIMIT 1`},
		// By the index of each date's items (items_date_seller).
		{"order %s of %s is %s, not settled yet (%s): settle it first (run its date again; or settle resolve, for one held for a person)",
			`SELECT i.order_no, i.business_date::text, i.state, i.reason FROM (SELECT DISTINCT business_date FROM runs) d
			JOIN items i ON i.business_date = d.business_date AND i.seller_id = $1 AND i.currency = $2
			WHERE i.state NOT IN ('paid', 'carried', 'rejected') ORDER BY i.business_date, i.order_no LIMIT 1`},
		// By the index of the open late refunds (late_refunds_open). Of
		// the order's seller too: a refund whose row names another seller
		// is rejected, and blocks the order's seller's revenue shares
		// (BlockedByLateRefunds).
		{"late refund %s of order %s is %s (%s): what the seller owes back is not worked out yet (a pending one: run any date; a rejected one: the platform corrects it)",
			`SELECT lr.refund_no, lr.order_no, lr.state, lr.reason FROM late_refunds lr JOIN items i ON i.order_no = lr.order_no
			WHERE lr.state IN ('pending', 'rejected') AND (lr.seller_id = $1 OR i.seller_id = $1) AND i.currency = $2 AND i.state <> 'rejected'
			ORDER BY lr.refund_no LIMIT 1`},
	}
	for _, c := range checks {
		// As many text columns as the message has verbs.
		vals := make([]string, strings.Count(c.what, "%s"))
		dest := make([]any, len(vals))
		for i := range vals {
			dest[i] = &vals[i]
		}
		err := tx.QueryRowContext(ctx, c.q, sellerID, string(cur)).Scan(dest...)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			continue
		case err != nil:
			return fmt.Errorf("read what may still move the balance of %s %s: %w", sellerID, cur, err)
		}
		args := make([]any, len(vals))
		for i, v := range vals {
			args[i] = v
		}
		return refuse(c.what, args...)
	}
	return nil
}

// datesWorked refuses (pipeline.KindLocked) while another session holds
// the lock of a date with a run, but except's (the caller's own,
// LockDate): a run of that date, or a shard of it, may net the balance a
// close is about to close (a resolve or report of it is refused the same,
// as it holds the date as a run does), naming the first such date and its
// holder.
func (l *Ledger) datesWorked(ctx context.Context, except pipeline.Date) error {
	var days []string
	if err := l.db.SelectContext(ctx, &days, `SELECT DISTINCT business_date::text FROM runs WHERE business_date::text <> $1 ORDER BY 1`, except.String()); err != nil {
		return fmt.Errorf("read the dates a process works on: %w", err)
	}
	keys := make(pq.StringArray, len(days))
	for i, day := range days {
		d, err := pipeline.ParseDate(day)
		if err != nil {
			return err
		}
		keys[i], _ = l.lockKeys(pipeline.RunKey{Date: d})
	}
	var held sql.NullInt32 // the first date's index (1-based) whose lock a session holds
	err := l.db.QueryRowContext(ctx, `SELECT min(k.n) FROM unnest($1::text[]) WITH ORDINALITY AS k(key, n),
		LATERAL (SELECT hashtextextended(k.key, 0) AS h) x
		WHERE EXISTS (SELECT 1 FROM pg_locks p
			WHERE p.locktype = 'advisory' AND p.granted AND p.objsubid = 1
			  AND p.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			  AND p.classid::bigint = (x.h >> 32) & 4294967295 AND p.objid::bigint = x.h & 4294967295)`, keys).Scan(&held)
	if err != nil {
		return fmt.Errorf("read the dates a process works on: %w", err)
	}
	if !held.Valid {
		return nil
	}
	day, key := days[held.Int32-1], keys[held.Int32-1]
	return pipeline.E(pipeline.KindLocked, "sellers close", fmt.Errorf("%w for date %s%s: a run of any date may net the balance; try again once it ended (settle status shows the runs working)",
		pipeline.ErrLocked, day, lockHolder(ctx, l.db, key)))
}
