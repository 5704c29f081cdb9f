package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
)

// What the ledger held of an order a look named (LateOrder.State).
const (
	LateOrderNotRead      = "not_read"     // written into the window late: no run read it
	LateOrderSettled      = "settled"      // an item of it (SettledOn: its date)
	LateOrderRejected     = "rejected"     // read, no item, its date's transform done
	LateOrderUnclassified = "unclassified" // read, its date's transform not done yet
)

// LateOrder is an order the look at the window of a date already read
// named (README, "Rows written into a settled window afterwards"): written
// into it since (kind written_late), read and changed since in a column
// that decides money (changed), or settled and no longer given (gone), as
// the look found it last (migration 00037). Amounts are minor units of
// Currency.
type LateOrder struct {
	OrderNo   string `json:"order_no"`
	Kind      string `json:"kind"`  // written_late, changed or gone
	State     string `json:"state"` // LateOrderNotRead, ...
	SellerID  string `json:"seller_id"`
	Currency  string `json:"currency"`
	SettledOn string `json:"settled_on,omitempty"`    // its item's date
	Settled   *int64 `json:"settled_minor,omitempty"` // its item's gross
	Now       *int64 `json:"now_minor,omitempty"`     // amount_minor as given now, an integer
	Detail    string `json:"detail"`                  // extract.Difference.Detail
	// Read from the ledger, not recorded by Record: when a look first
	// and last named it, which run's look last did, and whether the
	// date's latest look no longer did (the platform gives it as read
	// now, or it is named no more).
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	LastRun   string    `json:"last_run,omitempty"` // "D shard I/N"; "" if not recorded
	Cleared   bool      `json:"cleared"`
}

// LateOrdersLook records what one look at date d's window names, in one
// transaction of the ledger, begun at its first Record (or at Done): Done
// commits the orders named with the look itself (late_order_looks), and
// an order recorded before is cleared by a look that names it no more.
// Abandon (a look that failed: what it named before the failure is not to
// be trusted) records nothing. Times are the ledger's (now(): the
// transaction's start). Of two looks of one date at once, the later begun
// is kept where both write (an order's row, the date's look); they write
// their orders in the same order (Compare's, by order number), so neither
// waits on the other in turn.
type LateOrdersLook struct {
	l     *Ledger
	date  pipeline.Date
	runID int64 // 0: none recorded
	tx    *sql.Tx
}

// LookForLateOrders begins the record of a look at d's window, made by
// run runID (0: the looking invocation has no run recorded).
func (l *Ledger) LookForLateOrders(d pipeline.Date, runID int64) *LateOrdersLook {
	return &LateOrdersLook{l: l, date: d, runID: runID}
}

func (k *LateOrdersLook) begin(ctx context.Context) error {
	if k.tx != nil {
		return nil
	}
	tx, err := k.l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record the late orders of %s: %w", k.date, err)
	}
	k.tx = tx
	return nil
}

// Record records found, orders the look named (OrderNo to Detail), each
// once: a row a look recorded before is updated (what it found now, last
// seen, by which run), its first seen kept.
func (k *LateOrdersLook) Record(ctx context.Context, found []LateOrder) error {
	if len(found) == 0 {
		return nil
	}
	if err := k.begin(ctx); err != nil {
		return err
	}
	cols := make([][]string, 9)
	num := func(v *int64) string {
		if v == nil {
			return ""
		}
		return strconv.FormatInt(*v, 10)
	}
	for _, f := range found {
		for i, v := range []string{lateOrderKey(f.OrderNo), f.Kind, f.State, f.SellerID, f.Currency, f.SettledOn, num(f.Settled), num(f.Now), f.Detail} {
			cols[i] = append(cols[i], v)
		}
	}
	args := []any{k.date.String(), k.runID}
	for _, c := range cols {
		args = append(args, pq.Array(c))
	}
	_, err := k.tx.ExecContext(ctx, `INSERT INTO late_orders AS o (business_date, order_no, kind, state, seller_id, currency, settled_on,
			settled_minor, now_minor, detail, first_seen, last_seen, last_run_id)
		SELECT $1::date, f.no, f.kind, f.state, f.seller, f.cur, NULLIF(f.on_, '')::date, NULLIF(f.settled, '')::bigint,
			NULLIF(f.now_, '')::bigint, f.detail, now(), now(), NULLIF($2::bigint, 0)
		FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
			AS f (no, kind, state, seller, cur, on_, settled, now_, detail)
		ON CONFLICT (business_date, order_no, kind) DO UPDATE SET state = EXCLUDED.state, seller_id = EXCLUDED.seller_id,
			currency = EXCLUDED.currency, settled_on = EXCLUDED.settled_on, settled_minor = EXCLUDED.settled_minor,
			now_minor = EXCLUDED.now_minor, detail = EXCLUDED.detail, last_seen = EXCLUDED.last_seen, last_run_id = EXCLUDED.last_run_id
		WHERE o.last_seen <= EXCLUDED.last_seen`, args...)
	if err != nil {
		return fmt.Errorf("record the late orders of %s: %w", k.date, err)
	}
	return nil
}

// lateOrderKey is the order number a look's row keeps (late_orders.order_no,
// in its primary key): the number itself, or, longer than an identifier may
// be (pipeline.MaxIdentifier bytes: an order its date's run rejects, or
// would), its first 64 bytes (whole characters), its length and a digest
// of it, which tells two such numbers with the same beginning apart, is
// the same for it at every look, and is itself short enough to be kept
// as it is (status --order of the form status shows finds it too). A number of a few kilobytes written into a window read
// (the platform's, with no btree index of its order numbers) had the
// ledger refuse the look's record ("index row size ... exceeds btree
// version 4 maximum"): every run of the re-check window ended 1, and no
// order that look named was kept. status --order of the number finds the
// row under the same form.
func lateOrderKey(no string) string {
	if len(no) <= pipeline.MaxIdentifier {
		return no
	}
	return fmt.Sprintf("%s… (%d bytes, %s)", clipBytes(strings.ToValidUTF8(no, "\uFFFD"), 64), len(no), pipeline.ShortHash("late_orders", no))
}

// clipBytes is s cut to at most n bytes, at a character's start.
func clipBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := 0
	for i := range s {
		if i > n {
			break
		}
		cut = i
	}
	return s[:cut]
}

// Done records the look, and commits it with what Record recorded.
func (k *LateOrdersLook) Done(ctx context.Context) error {
	if err := k.begin(ctx); err != nil {
		return err
	}
	_, err := k.tx.ExecContext(ctx, `INSERT INTO late_order_looks AS k (business_date, looked_at, run_id) VALUES ($1, now(), NULLIF($2::bigint, 0))
		ON CONFLICT (business_date) DO UPDATE SET looked_at = EXCLUDED.looked_at, run_id = EXCLUDED.run_id
		WHERE k.looked_at <= EXCLUDED.looked_at`, k.date.String(), k.runID)
	if err == nil {
		err = k.tx.Commit()
	}
	k.Abandon()
	if err != nil {
		return fmt.Errorf("record the look at %s's window: %w", k.date, err)
	}
	return nil
}

// Abandon rolls back what Record recorded, if Done did not commit it.
func (k *LateOrdersLook) Abandon() {
	if k.tx != nil {
		k.tx.Rollback()
		k.tx = nil
	}
}

// LateOrdersStatus is what the looks at date d's window found (status):
// when the latest look was and by which run (LookedAt nil: no look
// recorded), how many orders it found, how many earlier looks found that
// it did not (cleared), and the first of them, those found first, by kind
// and order number.
type LateOrdersStatus struct {
	LookedAt *time.Time  `json:"looked_at"`
	LookedBy string      `json:"looked_by,omitempty"` // "D shard I/N"
	Found    int         `json:"found"`
	Cleared  int         `json:"cleared"`
	Listed   []LateOrder `json:"listed"` // at most statusListMax
}

// lateOrdersStatus reads LateOrdersStatus of d.
func (r Reader) lateOrdersStatus(ctx context.Context, d pipeline.Date) (LateOrdersStatus, error) {
	s := LateOrdersStatus{Listed: []LateOrder{}}
	var at sql.NullTime
	var by sql.NullString
	var sh pipeline.Shard
	var idx, cnt sql.NullInt64
	err := r.q.QueryRowContext(ctx, `SELECT k.looked_at, to_char(r.business_date, 'YYYY-MM-DD'), r.shard_index, r.shard_count
		FROM late_order_looks k LEFT JOIN runs r ON r.id = k.run_id WHERE k.business_date = $1`, d.String()).Scan(&at, &by, &idx, &cnt)
	switch {
	case err == sql.ErrNoRows:
		return s, nil
	case err != nil:
		return s, fmt.Errorf("read the late orders of %s: %w", d, err)
	}
	s.LookedAt = &at.Time
	if by.Valid {
		sh.Index, sh.Count = int(idx.Int64), int(cnt.Int64)
		s.LookedBy = by.String + " shard " + sh.String()
	}
	if err := r.q.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE last_seen >= $2), count(*) FILTER (WHERE last_seen < $2)
		FROM late_orders WHERE business_date = $1`, d.String(), at.Time).Scan(&s.Found, &s.Cleared); err != nil {
		return s, fmt.Errorf("read the late orders of %s: %w", d, err)
	}
	if s.Listed, err = r.lateOrders(ctx, d, "", statusListMax); err != nil {
		return s, err
	}
	return s, nil
}

// lateOrders reads the orders the looks at d's window named (of them,
// order orderNo's alone, unless ""), at most limit: those the latest look
// found first, then by kind and order number.
func (r Reader) lateOrders(ctx context.Context, d pipeline.Date, orderNo string, limit int) ([]LateOrder, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT o.order_no, o.kind, o.state, o.seller_id, o.currency,
			COALESCE(to_char(o.settled_on, 'YYYY-MM-DD'), ''), o.settled_minor, o.now_minor, o.detail, o.first_seen, o.last_seen,
			to_char(r.business_date, 'YYYY-MM-DD'), r.shard_index, r.shard_count, o.last_seen < k.looked_at
		FROM late_orders o JOIN late_order_looks k ON k.business_date = o.business_date LEFT JOIN runs r ON r.id = o.last_run_id
		WHERE o.business_date = $1 AND ($2 = '' OR o.order_no = $2)
		ORDER BY o.last_seen < k.looked_at, o.kind, o.order_no LIMIT $3`, d.String(), lateOrderKey(orderNo), limit)
	if err != nil {
		return nil, fmt.Errorf("read the late orders of %s: %w", d, err)
	}
	defer rows.Close()
	out := []LateOrder{}
	for rows.Next() {
		var o LateOrder
		var runDate sql.NullString
		var idx, cnt sql.NullInt64
		if err := rows.Scan(&o.OrderNo, &o.Kind, &o.State, &o.SellerID, &o.Currency, &o.SettledOn, &o.Settled, &o.Now, &o.Detail,
			&o.FirstSeen, &o.LastSeen, &runDate, &idx, &cnt, &o.Cleared); err != nil {
			return nil, fmt.Errorf("read the late orders of %s: %w", d, err)
		}
		if runDate.Valid {
			o.LastRun = runDate.String + " shard " + pipeline.Shard{Index: int(idx.Int64), Count: int(cnt.Int64)}.String()
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the late orders of %s: %w", d, err)
	}
	return out, nil
}
