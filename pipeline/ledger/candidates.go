package ledger

import (
	"context"
	"fmt"

	"github.com/lib/pq"
	"github.com/settlekit/settle/pipeline"
)

// EachPayoutCandidate calls fn for every seller and currency the run may
// pay, ordered by seller and currency: the run's items in state uploaded
// and the channels (summing and counting only those no payout covers yet;
// a seller whose items all wait on a payout comes with 0, so that its
// payout is resolved), merged with every seller's open carried balance up
// to the run's date (all sellers: the caller keeps those of its shard),
// with the seller's account at provider: the run's record of the seller
// (a run reads the sellers with an open carried balance of its shard with
// the day's, pipeline.CarriedSellers), else, for one the run did not
// record (the platform no longer gives it, or its balance was carried
// after the run read the day), its last recorded account (see
// PayoutCandidate.Account: a carried-only seller's last recorded account
// counts for none when its
// run held the seller's orders at the channels for it, so that a balance
// carried from the date a seller was held for an id another seller has
// too is not paid there on a later date: found by a review; nor, where an
// account at provider is one seller's, when the run that recorded it, or
// this run for a seller it recorded with nothing to pay at the channels,
// recorded another seller of its date with it too, or, for a seller the
// run did not record, a run of this run's date recorded another seller
// with it).
// The rows stream, as the ledger was when the call began: fn may write
// to the ledger (carry, plan) while later ones are read, and the caller
// holds one at a time however many sellers the day has.
func (l *Ledger) EachPayoutCandidate(ctx context.Context, run *pipeline.Run, channels []pipeline.Channel, provider string,
	fn func(pipeline.PayoutCandidate) error) error {
	col, err := accountColumn(provider)
	if err != nil {
		return err
	}
	// shared(rs): the account the run_sellers row rs records is recorded
	// for another seller by a run of rs's date (any shard of its
	// sharding), where an account at provider is one seller's. A seller
	// with only a carried balance at provider that day (none of its
	// orders paid there: none held either) was recorded with the id
	// another seller has too, and paid its balance to it, that day or a
	// later one (found by a review).
	shared := func(rs string) string {
		if !accountOneSeller[provider] {
			return "false"
		}
		// By the index of the accounts (run_sellers_infinia_run: its
		// predicate named, or the planner read run_sellers whole for
		// each seller).
		return `EXISTS (SELECT 1 FROM run_sellers o JOIN runs ro ON ro.id = o.run_id
		                WHERE o.` + col + ` = ` + rs + `.` + col + ` AND o.` + col + ` <> '' AND o.seller_id <> ` + rs + `.seller_id
		                  AND (ro.business_date, ro.shard_count) = (SELECT rr.business_date, rr.shard_count FROM runs rr WHERE rr.id = ` + rs + `.run_id))`
	}
	// voided(rs): the account the run_sellers row rs records for its
	// seller counts for none for a balance the seller carries with no
	// order of its own to pay at the channels, where the seller's latest
	// record (but this run's) of a date its rows were read has that
	// account and is of a run that held the seller's orders at the
	// channels for it (or a person rejected them so held), or one that
	// another seller of its date had too. A run records a seller with
	// only a carried balance with the account the platform gives it then
	// (pipeline.CarriedSellers, run_sellers.carried_only): that record
	// says nothing of the account, so the verdict of the date that held
	// the seller's orders for it stands until the platform gives another,
	// or a run pays the seller's own orders there. Taken alone, the
	// record of a later date where no other seller had the account paid
	// the balance there, and so did the last recorded account of a seller
	// the platform gave no more (found by a review of b83e93d). By the
	// index of the records of the dates read (run_sellers_infinia_read,
	// migration 00035: the Infinia ids'; another provider's is read
	// through run_sellers_seller).
	voided := func(rs string) string {
		return `COALESCE((SELECT d.` + col + ` = ` + rs + `.` + col + ` AND (EXISTS (SELECT 1 FROM runs r JOIN items i ON i.business_date = r.business_date
		                          AND i.seller_id = d.seller_id AND i.run_id = r.id
		                      WHERE r.id = d.run_id AND i.channel = ANY ($2)
		                        AND (i.state = 'held' AND starts_with(i.reason, $4) OR i.state = 'rejected' AND starts_with(i.reason, $5)))
		                    OR ` + shared("d") + `)
		        FROM run_sellers d WHERE d.seller_id = ` + rs + `.seller_id AND d.` + col + ` <> '' AND NOT d.carried_only AND d.run_id <> $1
		        ORDER BY d.run_id DESC LIMIT 1), false)`
	}
	// sharedToday(rs): the account the run_sellers row rs (of another
	// run: a seller this run did not record, the platform giving it no
	// row now, say, as it left) records is recorded for another seller
	// by a run of this run's date (any shard of its sharding), where an
	// account at provider is one seller's: the account the platform gives
	// that seller now. Its last record's date alone was compared, and a
	// seller that left with a balance carried had it paid into the
	// account the platform had given another seller since (found by a
	// review of the sellers' lifecycle).
	sharedToday := func(rs string) string {
		if !accountOneSeller[provider] {
			return "false"
		}
		return `EXISTS (SELECT 1 FROM run_sellers o JOIN runs ro ON ro.id = o.run_id
		                WHERE o.` + col + ` = ` + rs + `.` + col + ` AND o.` + col + ` <> '' AND o.seller_id <> ` + rs + `.seller_id
		                  AND (ro.business_date, ro.shard_count) = (SELECT rr.business_date, rr.shard_count FROM runs rr WHERE rr.id = $1))`
	}
	rows, err := l.db.QueryContext(ctx, `
		WITH p AS (
			SELECT seller_id, currency, COALESCE(sum(seller_minor) FILTER (WHERE payout_key = ''), 0) AS payable,
			       count(*) FILTER (WHERE payout_key = '') AS n
			FROM items WHERE run_id = $1 AND channel = ANY ($2) AND state = 'uploaded'
			GROUP BY seller_id, currency),
		c AS (
			SELECT seller_id, currency, sum(amount_minor) AS carried FROM adjustments
			WHERE netted_into = '' AND business_date <= $3
			GROUP BY seller_id, currency)
		SELECT COALESCE(p.seller_id, c.seller_id), COALESCE(p.currency, c.currency),
		       COALESCE(p.payable, 0), COALESCE(p.n, 0), COALESCE(c.carried, 0),
		       COALESCE(CASE WHEN rs.seller_id IS NOT NULL THEN
		           CASE WHEN p.seller_id IS NULL AND rs.`+col+` <> '' AND (`+shared("rs")+` OR `+voided("rs")+`) THEN '' ELSE rs.`+col+` END ELSE
		           (SELECT CASE WHEN `+shared("l")+` OR `+sharedToday("l")+` OR `+voided("l")+` THEN '' ELSE l.`+col+` END
		            FROM run_sellers l WHERE l.seller_id = c.seller_id AND l.`+col+` <> ''
		            ORDER BY l.run_id DESC LIMIT 1) END, '')
		FROM p FULL JOIN c ON c.seller_id = p.seller_id AND c.currency = p.currency
		LEFT JOIN run_sellers rs ON rs.run_id = $1 AND rs.seller_id = COALESCE(p.seller_id, c.seller_id)
		ORDER BY 1, 2`, run.ID, channelNames(channels), run.Key.Date.String(), pipeline.SellerHoldPrefix, pipeline.RejectedSellerHold)
	if err != nil {
		return fmt.Errorf("read what the run may pay: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p pipeline.PayoutCandidate
		var cur string
		if err := rows.Scan(&p.SellerID, &cur, &p.Payable, &p.Items, &p.Carried, &p.Account); err != nil {
			return fmt.Errorf("read what the run may pay: %w", err)
		}
		p.Currency = pipeline.Currency(cur)
		if err := fn(p); err != nil {
			return err
		}
	}
	return rows.Err()
}

// AddPayoutCandidates keeps candidates of the run's payouts of a kind
// that wait on a check of their currency (payout_candidates); a candidate
// kept already is replaced.
func (l *Ledger) AddPayoutCandidates(ctx context.Context, runID int64, kind string, ps []pipeline.PayoutCandidate) error {
	if len(ps) == 0 {
		return nil
	}
	var sellers, curs, accounts pq.StringArray
	var payable, items, carried pq.Int64Array
	for _, p := range ps {
		sellers = append(sellers, p.SellerID)
		curs = append(curs, string(p.Currency))
		accounts = append(accounts, p.Account)
		payable = append(payable, p.Payable)
		items = append(items, p.Items)
		carried = append(carried, p.Carried)
	}
	_, err := l.db.ExecContext(ctx, `INSERT INTO payout_candidates
		(run_id, kind, seller_id, currency, payable_minor, items, carried_minor, account)
		SELECT $1, $2, * FROM unnest($3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::text[])
		ON CONFLICT (run_id, kind, currency, seller_id) DO UPDATE SET payable_minor = EXCLUDED.payable_minor,
			items = EXCLUDED.items, carried_minor = EXCLUDED.carried_minor, account = EXCLUDED.account`,
		runID, kind, sellers, curs, payable, items, carried, accounts)
	if err != nil {
		return fmt.Errorf("keep %d payouts to check: %w", len(ps), err)
	}
	return nil
}

// PayoutCandidateTotals sums the nets of the run's kept payouts of a kind
// by currency, ordered by currency. A sum beyond int64 is an error.
func (l *Ledger) PayoutCandidateTotals(ctx context.Context, runID int64, kind string) ([]pipeline.Money, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT currency, sum(payable_minor::numeric + carried_minor)
		FROM payout_candidates WHERE run_id = $1 AND kind = $2 GROUP BY currency ORDER BY currency`, runID, kind)
	if err != nil {
		return nil, fmt.Errorf("sum the payouts to check: %w", err)
	}
	defer rows.Close()
	var out []pipeline.Money
	for rows.Next() {
		var m pipeline.Money
		var cur string
		if err := rows.Scan(&cur, &m.Minor); err != nil {
			return nil, fmt.Errorf("sum the payouts to check in %s: %w", cur, err)
		}
		m.Currency = pipeline.Currency(cur)
		out = append(out, m)
	}
	return out, rows.Err()
}

// PayoutCandidatesAfter returns up to n of the run's kept payouts of a
// kind in a currency, of sellers after afterSeller, by seller.
func (l *Ledger) PayoutCandidatesAfter(ctx context.Context, runID int64, kind string, cur pipeline.Currency, afterSeller string, n int) ([]pipeline.PayoutCandidate, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT seller_id, payable_minor, items, carried_minor, account
		FROM payout_candidates WHERE run_id = $1 AND kind = $2 AND currency = $3 AND seller_id > $4
		ORDER BY seller_id LIMIT $5`, runID, kind, string(cur), afterSeller, n)
	if err != nil {
		return nil, fmt.Errorf("read the payouts to check in %s: %w", cur, err)
	}
	defer rows.Close()
	var out []pipeline.PayoutCandidate
	for rows.Next() {
		p := pipeline.PayoutCandidate{Currency: cur}
		if err := rows.Scan(&p.SellerID, &p.Payable, &p.Items, &p.Carried, &p.Account); err != nil {
			return nil, fmt.Errorf("read the payouts to check in %s: %w", cur, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// ClearPayoutCandidates forgets the run's kept payouts of a kind.
func (l *Ledger) ClearPayoutCandidates(ctx context.Context, runID int64, kind string) error {
	if _, err := l.db.ExecContext(ctx, `DELETE FROM payout_candidates WHERE run_id = $1 AND kind = $2`, runID, kind); err != nil {
		return fmt.Errorf("clear the payouts to check: %w", err)
	}
	return nil
}

// PayingRuns returns the runs other than runID that pay payouts of a kind
// now: a process holds their lock (runActive), and they keep payouts of
// the kind to check (payout_candidates) or have some recorded that their
// provider has not taken yet (unacceptedPayout). Their planning draws on
// the same platform balance as this run's, and, for a seller of both, on
// the same available share at the provider: two runs that each checked
// its own need against the balance both sent, and the provider failed
// what came second (found by a review: the shards of an Indexed Job, or a
// backfill beside the nightly run). By id.
func (l *Ledger) PayingRuns(ctx context.Context, runID int64, kind string) ([]*pipeline.Run, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT `+runColumns+` FROM runs WHERE id <> $1 AND (
			id IN (SELECT run_id FROM payout_candidates WHERE kind = $2)
			OR id IN (SELECT run_id FROM effects WHERE kind = $2 AND state IN ('planned', 'sent', 'unknown') AND `+unacceptedPayout+`))
		ORDER BY id`, runID, kind)
	if err != nil {
		return nil, fmt.Errorf("read the runs paying now: %w", err)
	}
	var runs []*pipeline.Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("read the runs paying now: %w", err)
		}
		runs = append(runs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the runs paying now: %w", err)
	}
	var paying []*pipeline.Run
	for _, r := range runs {
		active, err := l.runActive(ctx, r.Key)
		if err != nil {
			return nil, err
		}
		if active {
			paying = append(paying, r)
		}
	}
	return paying, nil
}

// unacceptedPayout is the condition of an effect (an alias-free WHERE
// clause of effects) its provider has not taken yet, as far as the ledger
// knows: planned (never sent), or sent, or unknown, with no reference from
// the provider. A payout it took (answered with its reference) is in the
// balances it answers already.
const unacceptedPayout = `(state = 'planned' OR state IN ('sent', 'unknown') AND provider_ref = '')`

// keptElsewhere is what another run's kept payout o (payout_candidates)
// may still take beyond the run's own, m (its kept payout of the same
// seller, kind and currency, if any; $4 its date, r o's run): its items,
// and of its carried balance what the run's own does not net already - the
// entries dated after the run's date, where o's run is of a later date; none, where of an
// earlier one. Both nets hold the entries both dates reach, and the first
// to plan nets them (PlanPayout; the other is refused,
// pipeline.ErrBalanceMoved): counted in both, a nightly beside a
// backfill held every seller with such a balance (found by trying it).
const keptElsewhere = `GREATEST(0, o.payable_minor::numeric + o.carried_minor - CASE WHEN m.seller_id IS NULL THEN 0
	WHEN r.business_date >= $4 THEN m.carried_minor ELSE o.carried_minor END)`

// keptElsewhereFrom joins what keptElsewhere reads: the runs' kept payouts
// o ($1 their ids, $2 the kind, $3 the currency), their runs r, and the
// run's own m ($5 its id).
const keptElsewhereFrom = `payout_candidates o JOIN runs r ON r.id = o.run_id
	LEFT JOIN payout_candidates m ON m.run_id = $5 AND m.kind = o.kind AND m.currency = o.currency AND m.seller_id = o.seller_id
	WHERE o.run_id = ANY ($1) AND o.kind = $2 AND o.currency = $3`

// OutstandingInCurrency sums, in cur, what the runs (PayingRuns) keep to
// check of a kind beyond what run's own kept payouts hold (keptElsewhere),
// and what they recorded of it that the provider has not taken yet: what
// their planning may still take from the platform balance in cur.
func (l *Ledger) OutstandingInCurrency(ctx context.Context, run *pipeline.Run, runIDs []int64, kind string, cur pipeline.Currency) (int64, error) {
	var sum int64
	err := l.db.QueryRowContext(ctx, `SELECT COALESCE(sum(amount), 0) FROM (
			SELECT `+keptElsewhere+` AS amount FROM `+keptElsewhereFrom+`
			UNION ALL
			SELECT amount_minor FROM effects
			WHERE run_id = ANY ($1) AND kind = $2 AND currency = $3 AND `+unacceptedPayout+`) x`,
		pq.Int64Array(runIDs), kind, string(cur), run.Key.Date.String(), run.ID).Scan(&sum)
	if err != nil {
		return 0, fmt.Errorf("sum what the runs paying now may take in %s: %w", cur, err)
	}
	return sum, nil
}

// OutstandingOf returns what the runs (PayingRuns) keep to check of a kind
// in cur for sellers beyond what run's own kept payouts hold
// (keptElsewhere), by seller, and what is recorded of the kind under
// subjects, by those runs, that the provider has not taken yet, by
// subject: what their planning may still take from each seller's
// available share; and each seller's open carried balance in cur up to
// run's date now, by seller (none: absent). A kept payout of the run's
// whose carried balance is no longer that one is stale: another run netted
// (or carried) entries since, and its net holds what that run's payout
// holds too (PlanPayout refuses it).
func (l *Ledger) OutstandingOf(ctx context.Context, run *pipeline.Run, runIDs []int64, kind string, cur pipeline.Currency, sellers, subjects []string) (kept, recorded, carried map[string]int64, err error) {
	kept, recorded, carried = map[string]int64{}, map[string]int64{}, map[string]int64{}
	read := func(m map[string]int64, q string, args ...any) error {
		rows, err := l.db.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			var v int64
			if err := rows.Scan(&k, &v); err != nil {
				return err
			}
			m[k] += v
		}
		return rows.Err()
	}
	if err := read(kept, `SELECT o.seller_id, sum(`+keptElsewhere+`) FROM `+keptElsewhereFrom+` AND o.seller_id = ANY ($6) GROUP BY o.seller_id`,
		pq.Int64Array(runIDs), kind, string(cur), run.Key.Date.String(), run.ID, pq.StringArray(sellers)); err != nil {
		return nil, nil, nil, fmt.Errorf("read what the runs paying now keep in %s: %w", cur, err)
	}
	// By the index of the open effects (effects_one_open).
	if err := read(recorded, `SELECT subject, amount_minor FROM effects
		WHERE kind = $1 AND subject = ANY ($2) AND state IN ('planned', 'sent', 'unknown') AND run_id = ANY ($3) AND `+unacceptedPayout,
		kind, pq.StringArray(subjects), pq.Int64Array(runIDs)); err != nil {
		return nil, nil, nil, fmt.Errorf("read what the runs paying now recorded in %s: %w", cur, err)
	}
	// As PlanPayout sums it.
	if err := read(carried, `SELECT seller_id, sum(amount_minor) FROM adjustments
		WHERE seller_id = ANY ($1) AND currency = $2 AND netted_into = '' AND business_date <= $3 GROUP BY seller_id`,
		pq.StringArray(sellers), string(cur), run.Key.Date.String()); err != nil {
		return nil, nil, nil, fmt.Errorf("read the carried balances in %s: %w", cur, err)
	}
	return kept, recorded, carried, nil
}
