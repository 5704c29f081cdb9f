package ledger

import (
	"context"
	"fmt"

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
