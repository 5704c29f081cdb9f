package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
)

const effectColumns = `id, run_id, kind, subject, attempt, idem_key, currency, amount_minor, state,
	provider_ref, last_error, sends, created_at`

func scanEffect(row interface{ Scan(...any) error }) (pipeline.Effect, error) {
	var e pipeline.Effect
	var cur, state string
	err := row.Scan(&e.ID, &e.RunID, &e.Kind, &e.Subject, &e.Attempt, &e.Key, &cur, &e.Amount, &state,
		&e.ProviderRef, &e.LastError, &e.Sends, &e.Planned)
	e.Currency, e.State = pipeline.Currency(cur), pipeline.EffectState(state)
	return e, err
}

// PlanEffect records the intent e (state planned) and returns the stored row;
// when that attempt of that subject is already recorded, the stored row is
// returned unchanged, so planning is idempotent. A stored row whose key or
// amount differs from e is an error: the same intent must be planned the same
// way every time.
func (l *Ledger) PlanEffect(ctx context.Context, e pipeline.Effect) (pipeline.Effect, error) {
	_, err := l.execPrepared(ctx, planEffectOnceSQL,
		e.RunID, e.Kind, e.Subject, e.Attempt, e.Key, string(e.Currency), e.Amount)
	if err != nil {
		return e, l.keyTaken(ctx, e, fmt.Errorf("plan %s %s: %w", e.Kind, e.Subject, err))
	}
	stored, err := scanEffect(l.queryRowPrepared(ctx, `SELECT `+effectColumns+` FROM effects
		WHERE kind = $1 AND subject = $2 AND attempt = $3`, e.Kind, e.Subject, e.Attempt))
	if err != nil {
		return e, fmt.Errorf("plan %s %s: %w", e.Kind, e.Subject, err)
	}
	if stored.Key != e.Key || stored.Amount != e.Amount || stored.Currency != e.Currency {
		return stored, fmt.Errorf("plan %s %s attempt %d: already planned as %s %s, now %s %s: refusing to change a recorded intent",
			e.Kind, e.Subject, e.Attempt, stored.Key, pipeline.Money{Minor: stored.Amount, Currency: stored.Currency},
			e.Key, pipeline.Money{Minor: e.Amount, Currency: e.Currency})
	}
	return stored, nil
}

// keyTaken returns err, the error of planning e, as pipeline.ErrKeyTaken,
// naming the effect that holds e's key, when the ledger's unique index of
// idempotency keys refused e for another subject's effect (the keys'
// short hashes collide); any other error as it is. It reads the ledger
// outside the failed statement's transaction.
func (l *Ledger) keyTaken(ctx context.Context, e pipeline.Effect, err error) error {
	var pe *pq.Error
	if !errors.As(err, &pe) || pe.Code != "23505" || pe.Constraint != "effects_idem_key_key" {
		return err
	}
	var kind, subject string
	var attempt int
	if rerr := l.queryRowPrepared(ctx, `SELECT kind, subject, attempt FROM effects WHERE idem_key = $1`, e.Key).Scan(&kind, &subject, &attempt); rerr != nil {
		return fmt.Errorf("plan %s %s: key %s: %w", e.Kind, e.Subject, e.Key, pipeline.ErrKeyTaken)
	}
	if kind == e.Kind && subject == e.Subject {
		return err // its own key: not a collision
	}
	return fmt.Errorf("plan %s %s: key %s is already %s %s's (attempt %d): %w", e.Kind, e.Subject, e.Key, kind, subject, attempt, pipeline.ErrKeyTaken)
}

// planEffectOnceSQL is PlanEffect's insert.
var planEffectOnceSQL = planEffectSQL(`ON CONFLICT (kind, subject, attempt) DO NOTHING`)

// planEffectSQL inserts an effect's intent ($1..$7: run, kind, subject,
// attempt, key, currency, amount) and the first event of its history in
// one statement; conflict is the insert's ON CONFLICT clause, if any.
func planEffectSQL(conflict string) string {
	return `WITH ins AS (
		INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ` + conflict + ` RETURNING id, state)
	INSERT INTO effect_events (effect_id, to_state, cause) SELECT id, state, '` + string(pipeline.CausePlanned) + `' FROM ins`
}

// changeEffectSQL updates one effect ($1 its id; set and where are the
// UPDATE's clauses) and appends the change to its history with the cause
// (an SQL expression that may use old.state and upd.state), in one
// statement, so no change goes unrecorded. A change that alters neither
// the state, the sends, the reference nor the provider's words (a poll
// answering "still processing" again) adds no event. It returns the number
// of effects updated.
func changeEffectSQL(set, where, cause string) string {
	return `WITH old AS (SELECT state, sends, provider_ref, last_error FROM effects WHERE id = $1),
	upd AS (UPDATE effects SET ` + set + `, updated_at = now() WHERE id = $1 AND ` + where + `
		RETURNING id, state, sends, provider_ref, last_error),
	ev AS (INSERT INTO effect_events (effect_id, from_state, to_state, cause, sends, provider_ref, detail)
		SELECT upd.id, old.state, upd.state, ` + cause + `, upd.sends, upd.provider_ref, upd.last_error FROM upd, old
		WHERE upd.state <> old.state OR upd.sends <> old.sends OR upd.provider_ref <> old.provider_ref
		   OR upd.last_error <> old.last_error)
	SELECT count(*) FROM upd`
}

var (
	// markSentSQL is MarkSent's change ($1 the effect), of an effect not
	// final (planned, sent or unknown: the states the table allows). Not
	// named as the open states: they are effects_one_open's predicate,
	// and where the statistics held that index empty - a ledger whose
	// effects were all final when effects was last analyzed, as every
	// night leaves it - the planner scanned the whole index, through
	// every open version the night had left in it, rather than take the
	// key (TestMarkSentFindsItsEffectByKey).
	markSentSQL = changeEffectSQL(`state = 'sent', sends = sends + 1`,
		`state NOT IN ('succeeded', 'failed')`,
		`CASE WHEN old.state = 'planned' THEN '`+string(pipeline.CauseSent)+`' ELSE '`+string(pipeline.CauseResent)+`' END`)
	// recordOutcomeSQL is RecordOutcomeCause's ($1 the effect, $2 the
	// cause or '', $3 the state, $4 the reference or '', $5 the last error).
	recordOutcomeSQL = changeEffectSQL(`state = $3,
		provider_ref = CASE WHEN $4 = '' THEN provider_ref ELSE $4 END, last_error = $5`,
		`state NOT IN ('succeeded', 'failed')`,
		`CASE WHEN $2 <> '' THEN $2 WHEN upd.state = 'unknown' THEN '`+string(pipeline.CauseSendError)+`'
		      WHEN old.state = 'unknown' THEN '`+string(pipeline.CauseQuery)+`' ELSE '`+string(pipeline.CauseAnswer)+`' END`)
)

// MarkSent records, before the request leaves, that it is being sent; its
// history says whether it is the first send or a send again with the same
// key. It refuses once a lock this Ledger holds was lost (checkLocks).
func (l *Ledger) MarkSent(ctx context.Context, id int64) error {
	// Under the run's lock still (checkLocks), or not at all.
	if err := l.checkLocks(ctx); err != nil {
		return fmt.Errorf("mark effect %d sent: %w", id, err)
	}
	var n int
	err := l.queryRowPrepared(ctx, markSentSQL, id).Scan(&n)
	if err != nil {
		return fmt.Errorf("mark effect %d sent: %w", id, err)
	}
	if n != 1 {
		return fmt.Errorf("mark effect %d sent: it is already final", id)
	}
	return nil
}

// RecordOutcome moves an effect to state. A final state is never changed.
// The cause in its history is worked out from the change: unknown is a send
// whose answer never arrived; an answer to an effect in state unknown came
// from a status query; any other, the provider's answer.
func (l *Ledger) RecordOutcome(ctx context.Context, id int64, state pipeline.EffectState, ref, lastErr string) error {
	return l.RecordOutcomeCause(ctx, id, state, ref, lastErr, "")
}

// RecordOutcomeCause is RecordOutcome with the cause of the change, kept in
// the effect's history (empty: worked out as RecordOutcome does).
func (l *Ledger) RecordOutcomeCause(ctx context.Context, id int64, state pipeline.EffectState, ref, lastErr string, cause pipeline.EffectCause) error {
	var n int
	err := l.queryRowPrepared(ctx, recordOutcomeSQL, id, string(cause), string(state), ref, lastErr).Scan(&n)
	if err != nil {
		return fmt.Errorf("record effect %d %s: %w", id, state, err)
	}
	if n != 1 {
		return fmt.Errorf("record effect %d %s: it is already final", id, state)
	}
	return nil
}

// LatestEffect returns the latest attempt at (kind, subject), ok false when
// none was planned.
func (l *Ledger) LatestEffect(ctx context.Context, kind, subject string) (pipeline.Effect, bool, error) {
	e, err := scanEffect(l.queryRowPrepared(ctx, `SELECT `+effectColumns+` FROM effects
		WHERE kind = $1 AND subject = $2 ORDER BY attempt DESC LIMIT 1`, kind, subject))
	if errors.Is(err, sql.ErrNoRows) {
		return pipeline.Effect{}, false, nil
	}
	return e, err == nil, err
}

// EffectsByID returns the effects with the given ids, by id: a stage
// that keeps only the ids of what it planned reads them a page at a time
// (pipeline.Engine.RunFeed).
func (l *Ledger) EffectsByID(ctx context.Context, ids []int64) ([]pipeline.Effect, error) {
	out, err := l.queryEffects(ctx, `SELECT `+effectColumns+` FROM effects WHERE id = ANY($1) ORDER BY id`, pq.Array(ids))
	if err == nil && len(out) != len(ids) {
		err = fmt.Errorf("read effects: %d of %d ids found", len(out), len(ids))
	}
	return out, err
}

// EffectHistory returns every change of an effect, oldest first.
func (l *Ledger) EffectHistory(ctx context.Context, id int64) ([]pipeline.EffectEvent, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT at, from_state, to_state, cause, sends, provider_ref, detail
		FROM effect_events WHERE effect_id = $1 ORDER BY id`, id)
	if err != nil {
		return nil, fmt.Errorf("read history of effect %d: %w", id, err)
	}
	defer rows.Close()
	var out []pipeline.EffectEvent
	for rows.Next() {
		var ev pipeline.EffectEvent
		var from, to, cause string
		if err := rows.Scan(&ev.At, &from, &to, &cause, &ev.Sends, &ev.ProviderRef, &ev.Detail); err != nil {
			return nil, fmt.Errorf("read history of effect %d: %w", id, err)
		}
		ev.From, ev.To, ev.Cause = pipeline.EffectState(from), pipeline.EffectState(to), pipeline.EffectCause(cause)
		out = append(out, ev)
	}
	return out, rows.Err()
}

// pathSQL is an effect's path of states from its history, repeats folded
// (planned>sent>unknown>succeeded), for an effect aliased e.
const pathSQL = `COALESCE((SELECT string_agg(h.to_state, '>' ORDER BY h.id) FROM (
		SELECT ev.id, ev.to_state, lag(ev.to_state) OVER (ORDER BY ev.id) AS prev
		FROM effect_events ev WHERE ev.effect_id = e.id) h WHERE h.prev IS DISTINCT FROM h.to_state), '')`

// LatestFailed returns a run's effects of one kind whose subject's
// latest attempt failed, by subject: what a stage must undo again after a
// crash, read without every effect of the run.
func (l *Ledger) LatestFailed(ctx context.Context, runID int64, kind string) ([]pipeline.Effect, error) {
	return l.queryEffects(ctx, `SELECT `+effectColumns+` FROM (
		SELECT DISTINCT ON (subject) * FROM effects WHERE run_id = $1 AND kind = $2
		ORDER BY subject, attempt DESC) latest WHERE state = 'failed' ORDER BY subject`, runID, kind)
}

// OpenEffectsAfter returns up to n of the run's effects of kind not final
// yet (planned, sent or unknown) with an id above after, by id: keyset
// pages, each the range after its cursor in effects_run_kind.
func (l *Ledger) OpenEffectsAfter(ctx context.Context, runID int64, kind string, after int64, n int) ([]pipeline.Effect, error) {
	return l.queryEffects(ctx, openEffectsAfterQuery, runID, kind, after, n)
}

// openEffectsAfterQuery is OpenEffectsAfter's statement ($1 the run, $2
// the kind, $3 the cursor, $4 the page's size). A page reads the run's
// effects of the kind from its cursor in order (effects_run_kind) until
// it has n open ones: all of the run's once over the pages. Not named as
// the open states, which are effects_one_open's predicate (as MarkSent's
// condition is not): where the statistics held that index empty, the
// planner read every open effect of the kind, every run's, for each page
// and sorted them; and with effects_run alone, it walked the primary key
// from the cursor through every later effect of the ledger (50,000 open
// revenue shares: 13-104 ms a page; see PERFORMANCE.md).
const openEffectsAfterQuery = `SELECT ` + effectColumns + ` FROM effects
	WHERE run_id = $1 AND kind = $2 AND id > $3 AND state NOT IN ('succeeded', 'failed')
	ORDER BY id LIMIT $4`

// UnappliedPayouts returns the run's revenue shares that succeeded while
// carried items whose entries they netted are still carried: the run
// stopped between recording the success and applying it
// (PayoutSucceeded). A revenue share that paid a carried balance alone has
// no item of the run to bring its seller back as a candidate.
//
// Its cost follows the run's succeeded payouts: each looks up the entries
// it netted (adjustments_netted, whose condition it repeats, netted_into
// not empty) and their items (items_carry), the LIMIT keeping the lookup a
// loop of its own. Written as EXISTS, the
// planner read every item of the ledger instead (a whole scan of items on
// every distribute: 1.3 s at 300,000 items, found by a review). The items
// are a LATERAL look-up of each entry, so that the entries come first
// whatever the statistics say: taken before the night's carry (the items
// are analyzed when written, carried after), they knew of no carried item,
// and the planner walked every carried item through items_carry for each
// payout (14.3 s in a re-run of a night of 5,000 sellers most below
// --min-payout; see PERFORMANCE.md).
func (l *Ledger) UnappliedPayouts(ctx context.Context, runID int64, kind string) ([]pipeline.Effect, error) {
	return l.queryEffects(ctx, unappliedPayoutsQuery, runID, kind)
}

// unappliedPayoutsQuery is UnappliedPayouts' statement ($1 the run, $2 the
// kind).
const unappliedPayoutsQuery = `SELECT ` + effectColumns + ` FROM effects e CROSS JOIN LATERAL (
		SELECT 1 FROM adjustments a CROSS JOIN LATERAL (
			SELECT 1 FROM items i WHERE i.carry_id = a.id AND i.state = 'carried' LIMIT 1) i
		WHERE a.netted_into = e.subject AND a.netted_into <> '' LIMIT 1) unapplied
	WHERE e.run_id = $1 AND e.kind = $2 AND e.state = 'succeeded'
	ORDER BY e.id`

// EffectsOfKind returns a run's effects of one kind, by subject and
// attempt.
func (l *Ledger) EffectsOfKind(ctx context.Context, runID int64, kind string) ([]pipeline.Effect, error) {
	return l.queryEffects(ctx, `SELECT `+effectColumns+` FROM effects WHERE run_id = $1 AND kind = $2
		ORDER BY subject, attempt`, runID, kind)
}

// EffectsOfKindAfter returns up to n of the run's effects of kind whose
// subject begins with prefix (not empty), after (afterSubject,
// afterAttempt) in subject and attempt order: keyset pages along the
// effects' (kind, subject, attempt) key within the prefix's subjects (a
// date's revenue shares), however many effects of other kinds the run has
// and of other dates the ledger has.
func (l *Ledger) EffectsOfKindAfter(ctx context.Context, runID int64, kind, prefix, afterSubject string, afterAttempt, n int) ([]pipeline.Effect, error) {
	if prefix == "" || prefix[len(prefix)-1] == 0xff {
		return nil, fmt.Errorf("read effects of kind %s: subject prefix %q has no end", kind, prefix)
	}
	end := prefix[:len(prefix)-1] + string([]byte{prefix[len(prefix)-1] + 1}) // the first subject after the prefix's
	return l.queryEffects(ctx, effectsOfKindAfterQuery, runID, kind, prefix, end, afterSubject, afterAttempt, n)
}

// effectsOfKindAfterQuery is EffectsOfKindAfter's page. The cursor is
// taken no lower than the prefix: the index scan starts from the row
// comparison's bound, not from subject >= $3 beside it, and the first
// page's cursor (empty, 0) walked every effect of the kind of every earlier
// date before the prefix's (the first page of a reconcile's revenue
// shares, on two years of nights: 15,500 buffers, 437 ms; from the
// prefix, 136 and 1 ms). An attempt is 1 or more: (prefix, 0) leaves
// none out.
const effectsOfKindAfterQuery = `SELECT ` + effectColumns + ` FROM effects
	WHERE kind = $2 AND subject >= $3 AND subject < $4 AND (subject, attempt) > (GREATEST($5 COLLATE "C", $3), $6) AND run_id = $1
	ORDER BY subject, attempt LIMIT $7`

// queryEffects returns the effects query selects (effectColumns).
func (l *Ledger) queryEffects(ctx context.Context, query string, args ...any) ([]pipeline.Effect, error) {
	rows, err := l.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read effects: %w", err)
	}
	defer rows.Close()
	var out []pipeline.Effect
	for rows.Next() {
		e, err := scanEffect(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Sent counts what was sent for effects of some kinds in every run of a
// date. Its difference across a run is what the run sent.
type Sent struct {
	// Requests is every request sent, resends included: an effect whose
	// outcome was unknown and that the provider's query then said it never
	// received is sent again with the same idempotency key.
	Requests int64
	// Effects is the effects sent at least once and taken, or whose
	// outcome is unknown: the money movements asked for, each under its
	// own idempotency key, whatever became of them. An effect all of whose
	// sends the provider refused (pipeline.CauseRefused: a refusal of the
	// request itself, "retry later" until the retries ran out) moved no
	// money, and is not one.
	Effects int64
	// Refused is the requests the provider did not take (CauseRefused).
	Refused int64
}

// Resent is the requests of s that sent an effect again after one that
// may have been taken.
func (s Sent) Resent() int64 { return s.Requests - s.Effects - s.Refused }

// Sends counts the requests sent for effects of the given kinds by the run
// of key, the effects they were for and the requests refused: the shards of
// a date running side by side each count their own. A send whose answer
// never came (or was never recorded: the process killed) counts as taken.
//
// One pass over the run's effects, joined to the ledger's refusals
// (effect_events_refused, migration 00027: a request a provider did not
// take, rare) counted by effect. Looked up in each effect's history
// instead, it cost a probe an effect, twice a run (13,000 money effects:
// 23 ms, 10 ms without the refusals; now 12 ms, PERFORMANCE.md).
func (l *Ledger) Sends(ctx context.Context, key pipeline.RunKey, kinds []string) (Sent, error) {
	var n Sent
	err := l.db.QueryRowContext(ctx, sendsQuery, key.Date.String(), key.Shard.Index, key.Shard.Count, pq.Array(kinds)).
		Scan(&n.Requests, &n.Effects, &n.Refused)
	return n, err
}

// sendsQuery is Sends' statement ($1 the date, $2 and $3 the shard, $4
// the kinds). The refusals are grouped by effect before the join (a hash
// of the ledger's refusals): joined in a lateral subquery, they were
// looked up effect by effect. The cause is written out, not a parameter:
// it is what selects the partial index.
const sendsQuery = `SELECT COALESCE(sum(e.sends), 0), count(*) FILTER (WHERE e.sends > COALESCE(x.refused, 0)),
		COALESCE(sum(x.refused), 0)
	FROM effects e JOIN runs r ON r.id = e.run_id
	LEFT JOIN (SELECT v.effect_id, count(*) AS refused FROM effect_events v WHERE v.cause = '` + string(pipeline.CauseRefused) + `' GROUP BY v.effect_id) x
		ON x.effect_id = e.id AND e.sends > 0
	WHERE r.business_date = $1 AND r.shard_index = $2 AND r.shard_count = $3 AND e.kind = ANY ($4)`

// Paid sums the succeeded effects of a kind in one currency.
type Paid struct {
	Minor int64
	Count int64
}

// PaidByCurrency sums the succeeded effects of kind in every run of a date,
// by currency.
func (l *Ledger) PaidByCurrency(ctx context.Context, d pipeline.Date, kind string) (map[pipeline.Currency]Paid, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT e.currency, sum(e.amount_minor), count(*) FROM effects e
		JOIN runs r ON r.id = e.run_id WHERE r.business_date = $1 AND e.kind = $2 AND e.state = 'succeeded'
		GROUP BY e.currency`, d.String(), kind)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[pipeline.Currency]Paid{}
	for rows.Next() {
		var cur string
		var p Paid
		if err := rows.Scan(&cur, &p.Minor, &p.Count); err != nil {
			return nil, err
		}
		out[pipeline.Currency(cur)] = p
	}
	return out, rows.Err()
}

// EffectCounts counts a run's effects by kind and state.
func (l *Ledger) EffectCounts(ctx context.Context, runID int64) (map[string]map[pipeline.EffectState]int, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT kind, state, count(*) FROM effects WHERE run_id = $1 GROUP BY kind, state`, runID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]map[pipeline.EffectState]int{}
	for rows.Next() {
		var kind, state string
		var n int
		if err := rows.Scan(&kind, &state, &n); err != nil {
			return nil, err
		}
		if out[kind] == nil {
			out[kind] = map[pipeline.EffectState]int{}
		}
		out[kind][pipeline.EffectState(state)] = n
	}
	return out, rows.Err()
}
