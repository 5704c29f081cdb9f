package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/lib/pq"
)

// FinalKeys returns which of keys matcher recorded as final answers
// (pipeline.FinalAnswers), in one statement.
func (l *Ledger) FinalKeys(ctx context.Context, matcher string, keys []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(keys) == 0 {
		return out, nil
	}
	rows, err := l.db.QueryContext(ctx, `SELECT key FROM reconciled_final WHERE matcher = $1 AND key = ANY ($2::text[])`,
		matcher, pq.Array(keys))
	if err != nil {
		return nil, fmt.Errorf("read final answers of %s: %w", matcher, err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("read final answers of %s: %w", matcher, err)
		}
		out[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read final answers of %s: %w", matcher, err)
	}
	return out, nil
}

// RecordFinal records keys as final answers of matcher, in one statement;
// a key recorded already is left as it is (its first time kept).
func (l *Ledger) RecordFinal(ctx context.Context, matcher string, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	if _, err := l.db.ExecContext(ctx, `INSERT INTO reconciled_final (matcher, key)
		SELECT $1, k FROM unnest($2::text[]) AS k ON CONFLICT DO NOTHING`, matcher, pq.Array(keys)); err != nil {
		return fmt.Errorf("record final answers of %s: %w", matcher, err)
	}
	return nil
}

// ForgetFinal forgets keys of matcher, in one statement: their answers are
// asked again (settle run --reconcile-all, which records again those still
// final and in agreement).
func (l *Ledger) ForgetFinal(ctx context.Context, matcher string, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	if _, err := l.db.ExecContext(ctx, `DELETE FROM reconciled_final WHERE matcher = $1 AND key = ANY ($2::text[])`,
		matcher, pq.Array(keys)); err != nil {
		return fmt.Errorf("forget final answers of %s: %w", matcher, err)
	}
	return nil
}

// pruneBatch is how many final answers PruneFinal deletes per statement.
const pruneBatch = 10000

// PruneFinal deletes the final answers of every matcher recorded more than
// keep ago (on the database's clock), pruneBatch at a time so that no
// statement holds many locks, and returns how many went. Rows another
// process is pruning at the same time are skipped (shards of a run prune
// side by side). A pruned answer is asked again by a later reconciliation
// of its date: nothing else depends on it.
func (l *Ledger) PruneFinal(ctx context.Context, keep time.Duration) (int64, error) {
	var total int64
	for {
		res, err := l.db.ExecContext(ctx, `DELETE FROM reconciled_final WHERE (matcher, key) IN (
			SELECT matcher, key FROM reconciled_final WHERE recorded_at < now() - make_interval(secs => $1)
			LIMIT $2 FOR UPDATE SKIP LOCKED)`, keep.Seconds(), pruneBatch)
		if err != nil {
			return total, fmt.Errorf("prune final answers: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("prune final answers: %w", err)
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}
