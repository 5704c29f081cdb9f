package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
)

// Lock takes the advisory locks of a run on a dedicated connection: the
// date's lock (exclusive for an unsharded run, shared for a shard) and the
// shard's own. A second run of the same date or shard gets ErrLocked at once.
// The locks die with the connection, so a killed process leaves none behind.
func (l *Ledger) Lock(ctx context.Context, key pipeline.RunKey) (func() error, error) {
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", key, err)
	}
	dateKey := fmt.Sprintf("settle/%s/date/%s", l.schema, key.Date)
	fn := "pg_try_advisory_lock"
	if key.Shard.Count > 1 {
		fn = "pg_try_advisory_lock_shared"
	}
	keys := []struct{ fn, key string }{
		{fn, dateKey},
		{"pg_try_advisory_lock", fmt.Sprintf("%s/shard/%d/%d", dateKey, key.Shard.Index, key.Shard.Count)},
	}
	for _, k := range keys {
		var ok bool
		if err := conn.QueryRowContext(ctx, `SELECT `+k.fn+`(hashtextextended($1, 0))`, k.key).Scan(&ok); err != nil {
			conn.Close()
			return nil, fmt.Errorf("lock %s: %w", key, err)
		}
		if !ok {
			conn.Close()
			return nil, pipeline.E(pipeline.KindLocked, "run "+key.String(), fmt.Errorf("%w for this date; not starting a second one", pipeline.ErrLocked))
		}
	}
	release := func() error {
		// Closing the connection releases its locks; unlocking first returns
		// a pooled connection clean, should the driver ever keep it.
		_, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock_all()`)
		return conn.Close()
	}
	return release, nil
}

const runColumns = `id, business_date, shard_index, shard_count, state, stages_done, time_zone,
	rules_hash, config_hash, attempts, last_error, started_at, updated_at, finished_at`

func scanRun(row interface{ Scan(...any) error }, extra ...any) (*pipeline.Run, error) {
	var (
		r      pipeline.Run
		date   time.Time
		stages pq.StringArray
		state  string
	)
	dest := append([]any{&r.ID, &date, &r.Key.Shard.Index, &r.Key.Shard.Count, &state, &stages, &r.TimeZone,
		&r.RulesHash, &r.ConfigHash, &r.Attempts, &r.LastError, &r.StartedAt, &r.UpdatedAt, &r.FinishedAt}, extra...)
	err := row.Scan(dest...)
	if err != nil {
		return nil, err
	}
	r.Key.Date = pipeline.DateOf(date)
	r.State = pipeline.RunState(state)
	for _, s := range stages {
		r.StagesDone = append(r.StagesDone, pipeline.Stage(s))
	}
	return &r, nil
}

// OpenRun returns the run for key, creating it when new; a resumed run
// counts one more attempt and is marked running again.
func (l *Ledger) OpenRun(ctx context.Context, key pipeline.RunKey, p pipeline.RunParams) (*pipeline.Run, bool, error) {
	var created bool
	row := l.db.QueryRowContext(ctx, `
		INSERT INTO runs (business_date, shard_index, shard_count, time_zone, rules_hash, config_hash)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (business_date, shard_index, shard_count) DO UPDATE
		SET attempts = runs.attempts + 1,
		    state = CASE WHEN runs.state = 'done' THEN 'done' ELSE 'running' END,
		    updated_at = now()
		RETURNING `+runColumns+`, (xmax = 0) AS created`,
		key.Date.String(), key.Shard.Index, key.Shard.Count, p.TimeZone, p.RulesHash, p.ConfigHash)
	r, err := scanRun(row, &created)
	if err != nil {
		return nil, false, fmt.Errorf("open run %s: %w", key, err)
	}
	return r, created, nil
}

// GetRun returns the run for key, or nil when there is none.
func (l *Ledger) GetRun(ctx context.Context, key pipeline.RunKey) (*pipeline.Run, error) {
	r, err := scanRun(l.db.QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs
		WHERE business_date = $1 AND shard_index = $2 AND shard_count = $3`,
		key.Date.String(), key.Shard.Index, key.Shard.Count))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read run %s: %w", key, err)
	}
	return r, nil
}

// Migrated reports whether the ledger's schema has been created.
func (l *Ledger) Migrated(ctx context.Context) (bool, error) {
	var ok bool
	err := l.db.QueryRowContext(ctx, `SELECT to_regclass('runs') IS NOT NULL`).Scan(&ok)
	return ok, err
}

// RunsOn returns every run of a date (all shardings), oldest first.
func (l *Ledger) RunsOn(ctx context.Context, d pipeline.Date) ([]*pipeline.Run, error) {
	return l.runs(ctx, `WHERE business_date = $1 ORDER BY shard_count, shard_index`, d.String())
}

func (l *Ledger) runs(ctx context.Context, where string, args ...any) ([]*pipeline.Run, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT `+runColumns+` FROM runs r `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	defer rows.Close()
	var runs []*pipeline.Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, rows.Err()
}

// CompleteStage records that stage s of the run is done. Idempotent.
func (l *Ledger) CompleteStage(ctx context.Context, runID int64, s pipeline.Stage) error {
	return completeStage(ctx, l.db, runID, s)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func completeStage(ctx context.Context, db execer, runID int64, s pipeline.Stage) error {
	_, err := db.ExecContext(ctx, `UPDATE runs SET stages_done = array_append(stages_done, $2), updated_at = now()
		WHERE id = $1 AND NOT ($2 = ANY (stages_done))`, runID, string(s))
	if err != nil {
		return fmt.Errorf("record stage %s done: %w", s, err)
	}
	return nil
}

// FinishRun records the run's state and the error that ended it.
func (l *Ledger) FinishRun(ctx context.Context, runID int64, state pipeline.RunState, lastErr string) error {
	_, err := l.db.ExecContext(ctx, `UPDATE runs SET state = $2, last_error = $3, updated_at = now(),
		finished_at = CASE WHEN $2 = 'done' THEN now() ELSE finished_at END WHERE id = $1`,
		runID, string(state), lastErr)
	if err != nil {
		return fmt.Errorf("record run state: %w", err)
	}
	return nil
}

// LastSuccess returns when a run of shard (any date) last finished in state
// done; ok is false when none has. A later failed run does not hide it.
func (l *Ledger) LastSuccess(ctx context.Context, shard pipeline.Shard) (at time.Time, ok bool, err error) {
	var t sql.NullTime
	err = l.db.QueryRowContext(ctx, `SELECT max(finished_at) FROM runs
		WHERE state = 'done' AND shard_index = $1 AND shard_count = $2`, shard.Index, shard.Count).Scan(&t)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read the last successful run: %w", err)
	}
	return t.Time, t.Valid, nil
}
