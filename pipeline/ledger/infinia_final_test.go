package ledger_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// Issue 12: EachExpectedShare marks the seller's activity (its trade files
// and revenue shares in the currency, over all dates): the mark changes
// with every one recorded or changed, even when the expected figures do
// not (a payout planned; a later date's file Infinia failed), and only
// then - another seller's file leaves it as it is.
func TestExpectedSharesMarkTheSellersActivity(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	run := uploadedItems(t, l, day, "A", 2, 500)
	share := func(r *pipeline.Run) pipeline.ExpectedShare {
		t.Helper()
		var xs []pipeline.ExpectedShare
		if err := l.EachExpectedShare(ctx, r.ID, func(x pipeline.ExpectedShare) error {
			xs = append(xs, x)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for _, x := range xs {
			if x.SellerID == "S1" && x.Currency == "USD" {
				return x
			}
		}
		t.Fatalf("no expected share of S1 in %+v", xs)
		return pipeline.ExpectedShare{}
	}
	file := func(r *pipeline.Run, seller string, minor int64) pipeline.TradeFile {
		t.Helper()
		req := tradeKey(r.Key.Date, seller, "USD", 1)
		f, err := l.RecordTradeFile(ctx, pipeline.TradeFile{RunID: r.ID, Date: r.Key.Date, SellerID: seller, Currency: "USD", Attempt: 1,
			RequestNo: req, Name: "TD_" + req + ".csv", SHA256: "x", SellerMinor: minor}, shareChannels)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	seen := map[string]string{}
	step := func(what string, uploaded, paid, inFlight int64) {
		t.Helper()
		x := share(run)
		if x.Uploaded != uploaded || x.Paid != paid || x.InFlight != inFlight {
			t.Fatalf("%s: %+v, want uploaded %d, paid %d, in flight %d", what, x, uploaded, paid, inFlight)
		}
		if x.Activity == "" || seen[x.Activity] != "" {
			t.Fatalf("%s: activity %q, as after %q", what, x.Activity, seen[x.Activity])
		}
		seen[x.Activity] = what
		if again := share(run); again.Activity != x.Activity {
			t.Fatalf("%s: activity %q then %q with nothing recorded", what, x.Activity, again.Activity)
		}
	}

	f := file(run, "S1", 1000)
	step("file built", 0, 0, 0)
	f.Status = "SUCCESS"
	if err := l.FinishTradeFile(ctx, f, nil, ledger.ItemUploaded, ""); err != nil {
		t.Fatal(err)
	}
	step("file accepted", 1000, 0, 0)
	e, err := l.PlanPayout(ctx, run, "S1", shareChannels, payout(run, 1000, 1))
	if err != nil {
		t.Fatal(err)
	}
	step("payout planned", 1000, 0, 0)
	if err := l.MarkSent(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	step("payout sent", 1000, 0, 1000)
	e.ProviderRef = "R"
	if err := l.RecordOutcome(ctx, e.ID, pipeline.EffectSucceeded, "R", ""); err != nil {
		t.Fatal(err)
	}
	if err := l.PayoutSucceeded(ctx, run, "S1", "USD", shareChannels, e); err != nil {
		t.Fatal(err)
	}
	step("payout succeeded", 1000, 1000, 0)

	// Another seller's file, on the next date: S1's mark stays.
	next := uploadedItems(t, l, day.AddDays(1), "B", 1, 300)
	file(next, "S2", 300)
	if x := share(run); seen[x.Activity] != "payout succeeded" {
		t.Fatalf("another seller's file changed S1's activity: %+v", x)
	}
	// S1's file of the next date, failed at Infinia: the figures stay, the
	// mark moves (for the next date's run too).
	g := file(next, "S1", 300)
	step("next date's file built", 1000, 1000, 0)
	g.Status = "FAILED"
	if err := l.FinishTradeFile(ctx, g, nil, "held", "refused"); err != nil {
		t.Fatal(err)
	}
	step("next date's file failed", 1000, 1000, 0)
	if x := share(next); x.Activity != share(run).Activity {
		t.Fatalf("the next date's run sees another activity of S1: %q, %q", x.Activity, share(run).Activity)
	}
}

// shareOracle sums a seller's trade files and revenue shares from scratch,
// over the whole ledger: what share_totals must hold.
const shareOracle = `
	SELECT seller_id, currency, sum(files)::bigint, sum(uploaded)::bigint, sum(shares)::bigint, sum(paid)::bigint, sum(in_flight)::bigint
	FROM (
	    SELECT seller_id, currency, count(*) AS files, COALESCE(sum(seller_minor) FILTER (WHERE status = 'SUCCESS'), 0) AS uploaded,
	           0 AS shares, 0 AS paid, 0 AS in_flight
	    FROM trade_files GROUP BY 1, 2
	    UNION ALL
	    SELECT split_part(subject, '/', 3), currency, 0, 0, count(*),
	           COALESCE(sum(amount_minor) FILTER (WHERE state = 'succeeded'), 0),
	           COALESCE(sum(amount_minor) FILTER (WHERE state IN ('sent', 'unknown')), 0)
	    FROM effects WHERE kind = 'revenue_share' GROUP BY 1, 2) x
	GROUP BY 1, 2`

type shareTotal struct {
	Files, Uploaded, Shares, Paid, InFlight int64
	Version                                 int64
}

func readShareTotals(t *testing.T, l *ledger.Ledger, q string) map[string]shareTotal {
	t.Helper()
	rows, err := l.DB().Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]shareTotal{}
	for rows.Next() {
		var seller, cur string
		var x shareTotal
		dest := []any{&seller, &cur, &x.Files, &x.Uploaded, &x.Shares, &x.Paid, &x.InFlight}
		if q != shareOracle {
			dest = append(dest, &x.Version)
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		out[seller+"/"+cur] = x
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkShareTotals: share_totals agrees with the sums from scratch (a pair
// whose rows are all gone keeps zeros).
func checkShareTotals(t *testing.T, l *ledger.Ledger, when string) map[string]shareTotal {
	t.Helper()
	kept := readShareTotals(t, l, `SELECT seller_id, currency, files, uploaded::bigint, shares, paid::bigint, in_flight::bigint, version FROM share_totals`)
	want := readShareTotals(t, l, shareOracle)
	for k, x := range kept {
		w := want[k]
		x.Version = 0
		if x != w {
			t.Fatalf("%s: share_totals of %s %+v, the ledger sums to %+v", when, k, x, w)
		}
	}
	for k, w := range want {
		if _, ok := kept[k]; !ok {
			t.Fatalf("%s: no share_totals of %s; the ledger sums to %+v", when, k, w)
		}
	}
	return kept
}

// shareWrites makes n random writes to the trade files and revenue shares
// of a few sellers and currencies over the runs' dates - any status, any
// state, changes and removals, some refused by the ledger's constraints -
// as any writer could, and returns the pairs each write that took moved.
func shareWrites(t *testing.T, l *ledger.Ledger, rnd *rand.Rand, runs []*pipeline.Run, n int) map[string]bool {
	t.Helper()
	sellers, currencies := []string{"S1", "S2", "S3"}, []string{"USD", "EUR"}
	statuses := []string{"BUILT", "UPLOADED", "SUCCESS", "FAILED"}
	states := []string{"planned", "sent", "unknown", "succeeded", "failed"}
	touched := map[string]bool{}
	db := l.DB()
	pairOf := func(table string, id int64) string {
		var k string
		q := `SELECT seller_id || '/' || currency FROM trade_files WHERE id = $1`
		if table == "effects" {
			q = `SELECT split_part(subject, '/', 3) || '/' || currency FROM effects WHERE id = $1`
		}
		if err := db.QueryRow(q, id).Scan(&k); err != nil {
			t.Fatal(err)
		}
		return k
	}
	pick := func(table, where string) (int64, bool) {
		var id, n int64
		if err := db.QueryRow(`SELECT count(*) FROM ` + table + ` WHERE ` + where).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return 0, false
		}
		// The seed picks the row: a failure repeats.
		if err := db.QueryRow(`SELECT id FROM `+table+` WHERE `+where+` ORDER BY id OFFSET $1 LIMIT 1`, rnd.Int64N(n)).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id, true
	}
	for range n {
		i := rnd.IntN(1 << 30) // a fresh request number, attempt and key
		run := runs[rnd.IntN(len(runs))]
		seller, cur := sellers[rnd.IntN(len(sellers))], currencies[rnd.IntN(len(currencies))]
		amount := int64(1 + rnd.IntN(100_000))
		switch op := rnd.IntN(6); op {
		case 0: // a trade file recorded
			req := fmt.Sprintf("TF-%d-%d", i, run.ID)
			if _, err := db.Exec(`INSERT INTO trade_files (run_id, business_date, seller_id, currency, attempt, request_no, name, sha256, rows, bytes, seller_minor, status)
				VALUES ($1, $2, $3, $4, $5, $6, $6, 'x', 1, 1, $7, $8)`, run.ID, run.Key.Date.String(), seller, cur, i+1, req, amount,
				statuses[rnd.IntN(len(statuses))]); err != nil {
				t.Fatal(err)
			}
			touched[seller+"/"+cur] = true
		case 1: // a trade file's status or amount changed
			if id, ok := pick("trade_files", "true"); ok {
				k := pairOf("trade_files", id)
				var moved bool
				if err := db.QueryRow(`WITH old AS (SELECT status, seller_minor FROM trade_files WHERE id = $1),
					upd AS (UPDATE trade_files SET status = $2, seller_minor = CASE WHEN $3 THEN $4 ELSE seller_minor END,
					                                reason = 'changed', updated_at = now() WHERE id = $1
					        RETURNING status, seller_minor)
					SELECT (old.status, old.seller_minor) IS DISTINCT FROM (upd.status, upd.seller_minor) FROM old, upd`,
					id, statuses[rnd.IntN(len(statuses))], rnd.IntN(3) == 0, amount).Scan(&moved); err != nil {
					t.Fatal(err)
				}
				touched[k] = touched[k] || moved // a change of the reason alone moves nothing
			}
		case 2: // a trade file removed (as a re-extract does)
			if id, ok := pick("trade_files", "true"); ok {
				k := pairOf("trade_files", id)
				if _, err := db.Exec(`DELETE FROM trade_files WHERE id = $1`, id); err != nil {
					t.Fatal(err)
				}
				touched[k] = true
			}
		case 3: // a revenue share recorded, in any state (the ledger's one-open and one-success rules refuse some)
			subject := fmt.Sprintf("RS/%s/%s/%s", run.Key.Date.Compact(), seller, cur)
			if _, err := db.Exec(`INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state)
				VALUES ($1, 'revenue_share', $2, $3, $4, $5, $6, $7)`, run.ID, subject, i+1, fmt.Sprintf("K-%d", i), cur, amount,
				states[rnd.IntN(len(states))]); err == nil {
				touched[seller+"/"+cur] = true
			} else if !strings.Contains(err.Error(), "duplicate key") {
				t.Fatal(err)
			}
		case 4: // a revenue share's state changed (some refused as above)
			if id, ok := pick("effects", "kind = 'revenue_share'"); ok {
				k := pairOf("effects", id)
				var moved bool
				if err := db.QueryRow(`WITH old AS (SELECT state FROM effects WHERE id = $1),
					upd AS (UPDATE effects SET state = $2, last_error = 'changed', sends = sends + 1 WHERE id = $1 RETURNING state)
					SELECT old.state <> upd.state FROM old, upd`, id, states[rnd.IntN(len(states))]).Scan(&moved); err == nil {
					touched[k] = touched[k] || moved // a send counted or an error recorded alone moves nothing
				} else if !strings.Contains(err.Error(), "duplicate key") {
					t.Fatal(err)
				}
			}
		case 5: // a plan never sent dropped, as a re-extract does; or another kind's effect, which moves nothing
			if id, ok := pick("effects", "kind = 'revenue_share' AND state = 'planned' AND sends = 0"); ok && rnd.IntN(2) == 0 {
				k := pairOf("effects", id)
				tx, err := db.Begin()
				if err != nil {
					t.Fatal(err)
				}
				_, err = tx.Exec(`SET LOCAL settle.reextract = 'on'`)
				if err == nil {
					_, err = tx.Exec(`DELETE FROM effect_events WHERE effect_id = $1`, id)
				}
				if err == nil {
					_, err = tx.Exec(`DELETE FROM effects WHERE id = $1`, id)
				}
				if err != nil {
					tx.Rollback()
					continue // its history says it left: the ledger keeps it
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
				touched[k] = true
				continue
			}
			if _, err := db.Exec(`INSERT INTO effects (run_id, kind, subject, attempt, idem_key, currency, amount_minor, state)
				VALUES ($1, 'wechat_distribution', $2, 1, $2, 'CNY', $3, 'succeeded')`, run.ID, fmt.Sprintf("WX/%s/%d", seller, i), amount); err != nil {
				t.Fatal(err)
			}
		}
	}
	return touched
}

// Issue 14: a seller's totals at Infinia (share_totals, migration 00013)
// follow every write to its trade files and revenue shares - recorded,
// changed, removed, in any status or state - and their mark of activity
// moves with each write to the pair that records, removes or changes a
// status, state or amount, and with no other. The migration sums a
// ledger written before it the same way.
func TestShareTotalsFollowEveryWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := openAt(t, 12)
	rnd := rand.New(rand.NewPCG(14, 13))
	var runs []*pipeline.Run
	for i := range 3 {
		runs = append(runs, openRunBefore(t, l, day.AddDays(i)))
	}
	// Written before the totals were kept: the migration sums them.
	shareWrites(t, l, rnd, runs, 150)
	if _, err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	before := checkShareTotals(t, l, "after the migration")
	for round := range 20 {
		touched := shareWrites(t, l, rnd, runs, 1+rnd.IntN(6))
		after := checkShareTotals(t, l, fmt.Sprintf("round %d", round))
		for k, x := range after {
			if moved := x.Version != before[k].Version; moved != touched[k] {
				t.Fatalf("round %d: %s written %v, its mark moved %v (%d -> %d)", round, k, touched[k], moved, before[k].Version, x.Version)
			}
		}
		before = after
	}
	// What reconciliation reads is those totals, for the run's pairs.
	for _, run := range runs {
		if err := l.EachExpectedShare(ctx, run.ID, func(x pipeline.ExpectedShare) error {
			k := x.SellerID + "/" + string(x.Currency)
			w := before[k]
			if x.Uploaded != w.Uploaded || x.Paid != w.Paid || x.InFlight != w.InFlight ||
				x.Activity != fmt.Sprintf("files %d shares %d changes %d", w.Files, w.Shares, w.Version) {
				t.Errorf("run %d: expected share %+v, totals %+v", run.ID, x, w)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}
