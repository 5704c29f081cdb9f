package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// Kinds of the resolutions ResolvePastMemory records: a person found in
// the provider's own records (its statements) that a request held past
// its status query's memory was applied, or that it never was.
const (
	KindPastMemoryPaid    = "past_memory_paid"
	KindPastMemoryNotPaid = "past_memory_not_paid"
)

// ResolvePastMemory records what a person found in a provider's own
// records about the latest attempt of subject, a money request of date d
// (revenue share, distribution or unfreeze) whose outcome is not known
// (sent, pending or unknown) and which the provider's status query no
// longer knows, planned longer ago than that query remembers
// (pipeline.ErrPastMemory: held for a person, its caller has asked the
// provider so; proof says what it answered). paid: the provider applied
// it, and the effect succeeds; not paid: it never was, and the effect
// fails, so that the next run pays its balance under a new key (its key
// is never sent again). Either is recorded in the effect's history
// (pipeline.CauseResolved, with proof and note) and as a resolution
// (KindPastMemoryPaid, KindPastMemoryNotPaid) with the note and its time,
// once: a second call for the same attempt returns the first resolution
// and true, changing nothing. Refused (pipeline.KindUsage): no payout of
// d has the subject, or its latest attempt is not key (the attempt the
// caller asked the provider about: another was planned since), or it is
// final (unless resolved so before) or only planned (never sent), or
// proof is empty (the provider not asked).
func (l *Ledger) ResolvePastMemory(ctx context.Context, d pipeline.Date, subject, key string, paid bool, proof, note string) (pipeline.Effect, Resolution, bool, error) {
	var (
		e   pipeline.Effect
		r   Resolution
		old bool
	)
	if strings.TrimSpace(note) == "" {
		return e, r, false, pipeline.Errorf(pipeline.KindUsage, "--note", "say what the provider's statement shows: who checked it, the statement, the reference")
	}
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		e, err = scanEffect(tx.QueryRowContext(ctx, `SELECT e.id, e.run_id, e.kind, e.subject, e.attempt, e.idem_key, e.currency, e.amount_minor, e.state,
			e.provider_ref, e.last_error, e.sends, e.created_at
			FROM effects e JOIN runs r ON r.id = e.run_id
			WHERE r.business_date = $1 AND e.subject = $2 AND e.kind IN ('revenue_share', 'distribution', 'unfreeze')
			ORDER BY e.attempt DESC LIMIT 1 FOR UPDATE OF e`, d.String(), subject))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: no payout of %s has this subject (the held line and payouts.csv give it)", subject, d)
		case err != nil:
			return err
		}
		if e.Key != key {
			// The caller's question was about another attempt: what the
			// provider said of it is not this one's proof.
			return pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: its latest attempt is %s %s (%s), not %s, which was checked; nothing recorded: run the command again",
				subject, e.Kind, e.Key, e.State, key)
		}
		r = Resolution{Kind: KindPastMemoryNotPaid, Subject: e.Subject, Key: e.Key}
		if paid {
			r.Kind = KindPastMemoryPaid
		}
		var prev Resolution
		err = tx.QueryRowContext(ctx, `SELECT kind, note, resolved_at, actor, db_role FROM resolutions
			WHERE kind IN ($1, $2) AND subject = $3 AND idem_key = $4`, KindPastMemoryPaid, KindPastMemoryNotPaid, e.Subject, e.Key).Scan(&prev.Kind, &prev.Note, &prev.ResolvedAt, &prev.Actor, &prev.DBRole)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case prev.Kind != r.Kind:
			return pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: %s %s was resolved before as %s, at %s by %s: %s; nothing recorded",
				subject, e.Kind, e.Key, pastMemoryWord(prev.Kind), prev.ResolvedAt.UTC().Format(time.RFC3339), prev.Who(), prev.Note)
		default:
			r.Note, r.ResolvedAt, r.Actor, r.DBRole, old = prev.Note, prev.ResolvedAt, prev.Actor, prev.DBRole, true
			return nil
		}
		switch e.State {
		case pipeline.EffectSent, pipeline.EffectUnknown:
		case pipeline.EffectPlanned:
			return pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: %s %s was never sent (planned): the next run sends it; nothing to resolve", subject, e.Kind, e.Key)
		default:
			return pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: its latest attempt %s is %s: its outcome is known; nothing to resolve", subject, e.Key, e.State)
		}
		if strings.TrimSpace(proof) == "" {
			return fmt.Errorf("%s %s: no answer of the provider's status query recorded as proof that it is past its memory: nothing recorded", e.Kind, e.Key)
		}
		state := pipeline.EffectFailed
		if paid {
			state = pipeline.EffectSucceeded
		}
		detail := pipeline.ResolvedDetail(paid, proof, note)
		var n int
		if err := tx.QueryRowContext(ctx, recordOutcomeSQL, e.ID, string(pipeline.CauseResolved), string(state), "", detail).Scan(&n); err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("%s %s: already final", e.Kind, e.Key)
		}
		e.State, e.LastError = state, detail
		_, err = recordResolution(ctx, tx, &r, note, l.Actor())
		return err
	})
	if err != nil && pipeline.KindOf(err) != pipeline.KindUsage {
		err = fmt.Errorf("resolve %s: %w", subject, err)
	}
	return e, r, old, err
}

func pastMemoryWord(kind string) string {
	if kind == KindPastMemoryPaid {
		return "paid (--paid)"
	}
	return "not paid (--not-paid)"
}
