package ledger

import (
	"context"
	"fmt"

	"github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
)

const effectColumns = `id, run_id, kind, subject, attempt, idem_key, currency, amount_minor, state,
	provider_ref, last_error, sends`

func scanEffect(row interface{ Scan(...any) error }) (pipeline.Effect, error) {
	var e pipeline.Effect
	var cur, state string
	err := row.Scan(&e.ID, &e.RunID, &e.Kind, &e.Subject, &e.Attempt, &e.Key, &cur, &e.Amount, &state,
		&e.ProviderRef, &e.LastError, &e.Sends)
	e.Currency, e.State = pipeline.Currency(cur), pipeline.EffectState(state)
	return e, err
}

// PlanEffect records the intent e (state planned) and returns the stored row;
// when that attempt of that subject is already recorded, the stored row is
// returned unchanged, so planning is idempotent. A stored row whose key or
// amount differs from e is an error: the same intent must be planned the same
// way every time.
func (l *Ledger) PlanEffect(ctx context.Context, e pipeline.Effect) (pipeline.Effect, error) {
	_, err := l.db.ExecContext(ctx, `INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (kind, subject, attempt) DO NOTHING`,
		e.RunID, e.Kind, e.Subject, e.Attempt, e.Key, string(e.Currency), e.Amount)
	if err != nil {
		return e, fmt.Errorf("plan %s %s: %w", e.Kind, e.Subject, err)
	}
	stored, err := scanEffect(l.db.QueryRowContext(ctx, `SELECT `+effectColumns+` FROM effects
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

// MarkSent records, before the request leaves, that it is being sent.
func (l *Ledger) MarkSent(ctx context.Context, id int64) error {
	res, err := l.db.ExecContext(ctx, `UPDATE effects SET state = 'sent', sends = sends + 1, updated_at = now()
		WHERE id = $1 AND state IN ('planned', 'sent', 'unknown')`, id)
	if err != nil {
		return fmt.Errorf("mark effect %d sent: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("mark effect %d sent: it is already final", id)
	}
	return nil
}

// RecordOutcome moves an effect to state. A final state is never changed.
func (l *Ledger) RecordOutcome(ctx context.Context, id int64, state pipeline.EffectState, ref, lastErr string) error {
	res, err := l.db.ExecContext(ctx, `UPDATE effects SET state = $2,
		provider_ref = CASE WHEN $3 = '' THEN provider_ref ELSE $3 END, last_error = $4, updated_at = now()
		WHERE id = $1 AND state NOT IN ('succeeded', 'failed')`, id, string(state), ref, lastErr)
	if err != nil {
		return fmt.Errorf("record effect %d %s: %w", id, state, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("record effect %d %s: it is already final", id, state)
	}
	return nil
}

// LatestEffect returns the latest attempt at (kind, subject), ok false when
// none was planned.
func (l *Ledger) LatestEffect(ctx context.Context, kind, subject string) (pipeline.Effect, bool, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT `+effectColumns+` FROM effects
		WHERE kind = $1 AND subject = $2 ORDER BY attempt DESC LIMIT 1`, kind, subject)
	if err != nil {
		return pipeline.Effect{}, false, err
	}
	defer rows.Close()
	if !rows.Next() {
		return pipeline.Effect{}, false, rows.Err()
	}
	e, err := scanEffect(rows)
	return e, err == nil, err
}

// EffectsOfKind returns a run's effects of one kind, by subject and
// attempt.
func (l *Ledger) EffectsOfKind(ctx context.Context, runID int64, kind string) ([]pipeline.Effect, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT `+effectColumns+` FROM effects WHERE run_id = $1 AND kind = $2
		ORDER BY subject, attempt`, runID, kind)
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

// Sends counts the requests sent for effects of the given kinds in every
// run of a date: the difference across a run is its new money movements.
func (l *Ledger) Sends(ctx context.Context, d pipeline.Date, kinds []string) (int64, error) {
	var n int64
	err := l.db.QueryRowContext(ctx, `SELECT COALESCE(sum(e.sends), 0) FROM effects e JOIN runs r ON r.id = e.run_id
		WHERE r.business_date = $1 AND e.kind = ANY ($2)`, d.String(), pq.Array(kinds)).Scan(&n)
	return n, err
}

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
