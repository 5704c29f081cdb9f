package ledger_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline/ledger"
)

// rowsReadByPlan runs query under EXPLAIN ANALYZE and returns the rows its
// plan read from table: each node on the table, the rows it returned and
// those its filter removed, times its loops; and the plan.
func rowsReadByPlan(t *testing.T, l *ledger.Ledger, table, query string, args ...any) (int, string) {
	t.Helper()
	var plan []string
	if err := l.DB().Select(&plan, `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) `+query, args...); err != nil {
		t.Fatal(err)
	}
	node := regexp.MustCompile(`->|^\S`)
	returned := regexp.MustCompile(`rows=(\d+) loops=(\d+)`)
	removed := regexp.MustCompile(`Rows Removed by Filter: (\d+)`)
	n, loops, on := 0, 0, false
	for _, line := range plan {
		if node.MatchString(line) {
			on = strings.Contains(line, " on "+table+" ")
			if m := returned.FindStringSubmatch(line); on && m != nil {
				rows, _ := strconv.Atoi(m[1])
				loops, _ = strconv.Atoi(m[2])
				n += rows * loops
			}
		} else if m := removed.FindStringSubmatch(line); on && m != nil {
			rows, _ := strconv.Atoi(m[1])
			n += rows * loops
		}
	}
	return n, strings.Join(plan, "\n")
}

// FailedPayouts looks up the open entries of each failed revenue share
// (by its subject, and the seller's it opened again), not every open entry
// of the ledger. Written as EXISTS, the planner hashed the look-ups: where
// the statistics held no entry open (taken before the night's carry) it
// read every open entry, twice, at every reconcile; on fresh ones, every
// entry of the ledger (no index served the subject): 16-95 ms at 25,000
// open entries (see PERFORMANCE.md). What it counts is unchanged: a failed
// share with an open entry of its subject or one it opened again, not one
// whose entries were netted since, nor one that owes nothing.
func TestFailedPayoutsLooksUpTheFailedSharesEntriesAlone(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := openRun(t, l, day)
	const others = 3000
	r := strings.NewReplacer("$run", fmt.Sprint(run.ID), "$others", fmt.Sprint(others),
		"$rs", "'RS/"+strings.ReplaceAll(day.String(), "-", "")+"/'")
	// Other sellers' entries, netted, analyzed; then as many open ones.
	if _, err := l.DB().ExecContext(ctx, r.Replace(`
		ALTER TABLE adjustments SET (autovacuum_enabled = false);
		INSERT INTO adjustments (seller_id, currency, kind, amount_minor, subject, business_date, run_id, netted_into, netted_date)
		SELECT 'N' || k, 'USD', 'held', 100, $rs || 'N' || k || '/USD', r.business_date, r.id, 'RS/x/N' || k, r.business_date
		FROM runs r, generate_series(1, $others) k WHERE r.id = $run;
		ANALYZE adjustments`)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DB().ExecContext(ctx, r.Replace(`
		INSERT INTO adjustments (seller_id, currency, kind, amount_minor, subject, business_date, run_id)
		SELECT 'O' || k, 'USD', 'held', 100, $rs || 'O' || k || '/USD', r.business_date, r.id
		FROM runs r, generate_series(1, $others) k WHERE r.id = $run;
		-- F0-F9 failed, P0-P9 paid
		INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state)
		SELECT $run, 'revenue_share', $rs || s || k || '/USD', 1, 'K' || s || k, 'USD', 100, CASE s WHEN 'F' THEN 'failed' ELSE 'succeeded' END
		FROM generate_series(0, 9) k, unnest(ARRAY['F', 'P']) s;
		-- F0-F2 and P0: their items carried (an open entry of the subject); F3: carried, netted since
		INSERT INTO adjustments (seller_id, currency, kind, amount_minor, subject, business_date, run_id, netted_into, netted_date)
		SELECT s, 'USD', 'held', 100, $rs || s || '/USD', r.business_date, r.id,
		       CASE s WHEN 'F3' THEN 'RS/later/F3/USD' ELSE '' END, CASE s WHEN 'F3' THEN r.business_date END
		FROM runs r, unnest(ARRAY['F0', 'F1', 'F2', 'F3', 'P0']) s WHERE r.id = $run;
		-- F4-F6 and P1: an earlier balance opened again as they failed; F7: opened again, netted since
		INSERT INTO adjustments (seller_id, currency, kind, amount_minor, subject, business_date, run_id, reopened_from, netted_into, netted_date)
		SELECT s, 'USD', 'held', 100, 'RS/earlier/' || s || '/USD', r.business_date, r.id, $rs || s || '/USD',
		       CASE s WHEN 'F7' THEN 'RS/later/F7/USD' ELSE '' END, CASE s WHEN 'F7' THEN r.business_date END
		FROM runs r, unnest(ARRAY['F4', 'F5', 'F6', 'F7', 'P1']) s WHERE r.id = $run`)); err != nil {
		t.Fatal(err)
	}
	const failed, owed = 10, 6 // F0-F2, F4-F6
	for _, stats := range []string{"of before the carry", "fresh"} {
		if stats == "fresh" {
			if _, err := l.DB().ExecContext(ctx, `ANALYZE adjustments`); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := l.FailedPayouts(ctx, run.Key); err != nil || n != owed {
			t.Fatalf("statistics %s: FailedPayouts = %d (%v), want %d", stats, n, err, owed)
		}
		// Two look-ups for each failed share, an entry or two each.
		n, plan := rowsReadByPlan(t, l, "adjustments", ledger.FailedPayoutsQuery, day.String(), run.Key.Shard.Index, run.Key.Shard.Count)
		if n > 3*failed {
			t.Errorf("statistics %s: FailedPayouts read %d entries for %d failed revenue shares:\n%s", stats, n, failed, plan)
		}
	}
}

// OpenEffectsAfter reads its page: the run's effects of the kind from the
// cursor on, not every open effect of the kind (effects_one_open, then a
// sort of them all, where the statistics held that index empty) nor every
// later effect of the ledger (the primary key from the cursor). The
// distribute stage pages through a run's open revenue shares with it, 1,000
// at a time: the 50 pages of 50,000 open shares cost 0.5-0.9 s before, on
// statistics of before the night (see PERFORMANCE.md).
func TestOpenEffectsAfterReadsItsPage(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	// 40 earlier nights' revenue shares, all final when analyzed.
	if _, err := l.DB().ExecContext(ctx, `INSERT INTO runs (business_date, shard_index, shard_count, state, time_zone, rules_hash, config_hash)
		SELECT $1::date - d, 0, 1, 'done', 'UTC', '', '' FROM generate_series(1, 40) d`, day.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DB().ExecContext(ctx, `INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state)
		SELECT r.id, 'revenue_share', 'RS/' || r.id || '/' || k, 1, 'E' || r.id || '-' || k, 'USD', 100, 'succeeded'
		FROM runs r, generate_series(1, 1000) k WHERE r.business_date < $1::date ORDER BY r.id, k`, day.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DB().ExecContext(ctx, `VACUUM ANALYZE effects`); err != nil {
		t.Fatal(err)
	}
	run := openRun(t, l, day)
	other := openRun(t, l, day.AddDays(1))
	// The night: this run's and another's revenue shares interleaved, a
	// tenth of this run's final already, and this run's uploads.
	if _, err := l.DB().ExecContext(ctx, `INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state)
		SELECT r, kind, kind || '/' || r || '/' || k, 1, kind || r || '-' || k, 'USD', 100,
		       CASE WHEN r = $1 AND k % 10 = 0 THEN 'succeeded' WHEN r = $1 AND k % 10 = 5 THEN 'failed' WHEN k % 3 = 0 THEN 'sent' ELSE 'planned' END
		FROM generate_series(1, 2000) k, unnest(ARRAY[$1, $2]::bigint[]) r, unnest(ARRAY['revenue_share', 'upload']) kind
		WHERE kind = 'revenue_share' OR r = $1
		ORDER BY k, r, kind`, run.ID, other.ID); err != nil {
		t.Fatal(err)
	}
	var open []int64
	if err := l.DB().Select(&open, `SELECT id FROM effects WHERE run_id = $1 AND kind = 'revenue_share' AND state IN ('planned', 'sent', 'unknown') ORDER BY id`, run.ID); err != nil {
		t.Fatal(err)
	}
	const page = 100
	for _, stats := range []string{"of before the night", "fresh"} {
		after := open[len(open)/2]
		if stats == "fresh" {
			if _, err := l.DB().ExecContext(ctx, `ANALYZE effects`); err != nil {
				t.Fatal(err)
			}
			after = 0
		}
		n, plan := rowsReadByPlan(t, l, "effects", ledger.OpenEffectsAfterQuery, run.ID, "revenue_share", after, page)
		// The page and the run's final effects among it.
		if n > 2*page {
			t.Errorf("statistics %s: a page of %d open effects after %d read %d effects:\n%s", stats, page, after, n, plan)
		}
		got, err := l.OpenEffectsAfter(ctx, run.ID, "revenue_share", after, page)
		if err != nil {
			t.Fatal(err)
		}
		i := 0
		for i < len(open) && open[i] <= after {
			i++
		}
		want := open[i : i+page]
		if len(got) != len(want) {
			t.Fatalf("statistics %s: %d effects after %d, want %d", stats, len(got), after, len(want))
		}
		for k, e := range got {
			if e.ID != want[k] || e.RunID != run.ID || e.Kind != "revenue_share" || e.State.Final() {
				t.Fatalf("statistics %s: effect %d of the page after %d is %d (%d %s %s), want %d", stats, k, after, e.ID, e.RunID, e.Kind, e.State, want[k])
			}
		}
	}
}
