package ledger

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
)

// DateStatus is what `settle status` shows of a date, as one document: the
// text output and `status -o json` both print it, so they carry the same
// figures. Amounts are integer minor units with their currency.
type DateStatus struct {
	Date        string              `json:"date"`
	Runs        []RunStatus         `json:"runs"`
	NotStarted  []string            `json:"not_started,omitempty"` // shards of the date's sharding with no run yet
	Summary     []StatusSummaryLine `json:"summary"`               // summary.csv's rows
	Totals      []StatusTotal       `json:"totals"`                // the summary's rows by currency
	Effects     EffectsStatus       `json:"effects"`               // side effects of the date's runs
	Mismatches  MismatchStatus      `json:"mismatches"`            // what the reconcile stage found
	LateRefunds LateRefundStatus    `json:"late_refunds"`          // those read on this date
	LateOrders  LateOrdersStatus    `json:"late_orders"`           // what the looks at its window found since it was read
	Reprices    []Reprice           `json:"reprices,omitempty"`    // the date's reprices (settle reprice), oldest first
	Carried     []CarriedBalance    `json:"carried_balances"`      // every open balance, all dates
	Resolved    []Resolution        `json:"resolved"`              // what a person resolved (Resolutions)
}

// RunStatus is one run of the date.
type RunStatus struct {
	Shard       string         `json:"shard"`
	State       string         `json:"state"`  // as recorded: running, failed or done
	Active      bool           `json:"active"` // a process holds the run's lock now
	Attempts    int            `json:"attempts"`
	StartedAt   time.Time      `json:"started_at"`
	FinishedAt  *time.Time     `json:"finished_at,omitempty"`
	Stages      []StageStatus  `json:"stages"`
	LastError   string         `json:"last_error,omitempty"`   // why the run failed
	NeedsPerson string         `json:"needs_person,omitempty"` // what a person must look at
	SourceRows  int64          `json:"source_rows"`
	Totals      []RunTotal     `json:"totals"`
	Rejects     []RejectReason `json:"rejects"`
	// Skipped is the run's orders still waiting of the channels its last
	// channel check left out on purpose (--skip-channel), by channel and
	// currency: none once a run with their provider configured checked.
	Skipped []Skipped `json:"skipped,omitempty"`
}

// StageStatus says whether a stage of a run is done.
type StageStatus struct {
	Stage string `json:"stage"`
	Done  bool   `json:"done"`
}

// RunTotal is a run's items of one channel and currency.
type RunTotal struct {
	Channel    string `json:"channel"`
	Currency   string `json:"currency"`
	Orders     int64  `json:"orders"`
	Gross      int64  `json:"gross_minor"`
	Refunded   int64  `json:"refunded_minor"`
	Commission int64  `json:"commission_minor"`
	Seller     int64  `json:"seller_minor"`
	Balanced   bool   `json:"balanced"`
}

// StatusSummaryLine is a row of summary.csv.
type StatusSummaryLine struct {
	Channel            string `json:"channel"`
	Currency           string `json:"currency"`
	Orders             int64  `json:"orders"`
	Seller             int64  `json:"seller_minor"`
	Paid               int64  `json:"paid_minor"`
	Carried            int64  `json:"carried_minor"`
	Held               int64  `json:"held_minor"`
	Unverified         int64  `json:"unverified_minor"`
	RejectedByProvider int64  `json:"rejected_by_provider_minor"`
	InProgress         int64  `json:"in_progress_minor"`
	PaidLater          int64  `json:"paid_later_minor"`
	PaidLaterOn        string `json:"paid_later_on,omitempty"`
	Rejected           int64  `json:"rejected_orders"`
	Balanced           bool   `json:"balanced"`
	SkippedOrders      int64  `json:"skipped_orders"`
	Skipped            int64  `json:"skipped_minor"`
}

// StatusTotal is the date's seller shares in one currency, every minor unit
// in one column: paid + carried + held + unverified + rejected by the
// provider + in progress = seller share (late refunds' clawbacks included,
// in carried).
type StatusTotal struct {
	Currency           string `json:"currency"`
	Seller             int64  `json:"seller_minor"`
	Paid               int64  `json:"paid_minor"`
	Carried            int64  `json:"carried_minor"`
	Held               int64  `json:"held_minor"`
	Unverified         int64  `json:"unverified_minor"`
	RejectedByProvider int64  `json:"rejected_by_provider_minor"`
	InProgress         int64  `json:"in_progress_minor"`
	PaidLater          int64  `json:"paid_later_minor"`
	Skipped            int64  `json:"skipped_minor"` // of unverified and in progress: left out on purpose (--skip-channel)
}

// EffectsStatus counts the date's side effects and lists those worth a
// look: an answer lost (went through unknown), sent more than once, failed,
// or not final yet, each with its history.
type EffectsStatus struct {
	Counts map[string]map[string]int `json:"counts"` // kind -> state -> attempts
	// Succeeded sums the amounts of the succeeded attempts, kind ->
	// currency -> minor units: of revenue_share, what left the platform's
	// account at the provider for the date (its orders and the carried
	// entries netted); of distribution, the commission moved to the
	// platform; of upload, a delivery that moves nothing (payouts.csv).
	Succeeded      map[string]map[string]int64 `json:"succeeded_minor"`
	Sends          int64                       `json:"sends"`
	ThroughUnknown int                         `json:"through_unknown"`
	WorthALook     int                         `json:"worth_a_look"` // how many; Listed holds the first ones
	Listed         []EffectReport              `json:"listed"`
}

// EffectReport is one attempt at a side effect with its history.
type EffectReport struct {
	Kind        string        `json:"kind"`
	Subject     string        `json:"subject"`
	Attempt     int           `json:"attempt"`
	Key         string        `json:"key"`
	Currency    string        `json:"currency"`
	Amount      int64         `json:"amount_minor"`
	State       string        `json:"state"`
	Path        string        `json:"path"`
	Sends       int           `json:"sends"`
	ProviderRef string        `json:"provider_ref,omitempty"`
	LastError   string        `json:"last_error,omitempty"`
	History     []StatusEvent `json:"history"`
}

// StatusEvent is one event of an effect's history.
type StatusEvent struct {
	At     time.Time `json:"at"`
	From   string    `json:"from,omitempty"`
	To     string    `json:"to"`
	Cause  string    `json:"cause"`
	Sends  int       `json:"sends"`
	Detail string    `json:"detail,omitempty"`
}

// MismatchStatus counts the date's mismatches.
type MismatchStatus struct {
	Unexpected int64 `json:"unexpected"`
	Expected   int64 `json:"expected"`
}

// LateRefundStatus counts the late refunds read on the date by state and
// lists those still waiting for their order.
type LateRefundStatus struct {
	ByState map[string]int      `json:"by_state"`
	Waiting []LateRefundWaiting `json:"waiting"`
}

// LateRefundWaiting is a late refund still pending.
type LateRefundWaiting struct {
	RefundNo string `json:"refund_no"`
	OrderNo  string `json:"order_no"`
	SellerID string `json:"seller_id"`
	Amount   int64  `json:"amount_minor"`
}

// CarriedBalance is a seller's open carried balance in one currency: the
// business date of its oldest open entry, and the newest entry's date and
// reason (why the seller was last not paid: a binding, the minimum
// payout, a failed revenue share, a late refund's clawback, as the run
// recorded it) - the date's orders.csv has the orders behind it.
type CarriedBalance struct {
	SellerID   string `json:"seller_id"`
	Currency   string `json:"currency"`
	Entries    int64  `json:"entries"`
	Amount     int64  `json:"amount_minor"`
	Since      string `json:"since"`
	LastDate   string `json:"last_date"`
	LastReason string `json:"last_reason"`
}

// statusListMax bounds the lists of a status document.
const statusListMax = 50

// DateStatus gathers what `settle status` shows of date d, every figure
// read in one snapshot of the ledger (View): a payout that another
// process (a shard's run, settle resolve) records while the status is
// read is in all of its sections or in none. Read one after another on
// the pool, a payout recorded between two reads was paid in the summary
// and not yet in the side effects, or the reverse. Whether a process
// holds a run's lock is asked as it is now: a lock is not in a snapshot.
func (l *Ledger) DateStatus(ctx context.Context, d pipeline.Date) (*DateStatus, error) {
	var s *DateStatus
	err := l.View(ctx, func(r Reader) error {
		var err error
		s, err = l.dateStatus(ctx, r, d)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// dateStatus reads DateStatus with r. Between its sections it calls
// l.statusRead (a test's), with the section read.
func (l *Ledger) dateStatus(ctx context.Context, r Reader, d pipeline.Date) (*DateStatus, error) {
	s := &DateStatus{Date: d.String(), Runs: []RunStatus{}, Summary: []StatusSummaryLine{}, Totals: []StatusTotal{},
		Carried: []CarriedBalance{}}
	runs, err := r.RunsOn(ctx, d)
	if err != nil {
		return nil, err
	}
	for _, run := range runs {
		rs := RunStatus{Shard: run.Key.Shard.String(), State: string(run.State), Attempts: run.Attempts, StartedAt: run.StartedAt,
			FinishedAt: run.FinishedAt, Totals: []RunTotal{}}
		if rs.Active, err = l.runActive(ctx, run.Key); err != nil {
			return nil, err
		}
		if note, ok := strings.CutPrefix(run.LastError, pipeline.NeedsPersonNote); ok {
			rs.NeedsPerson = note
		} else {
			rs.LastError = run.LastError
		}
		for _, st := range pipeline.Stages {
			rs.Stages = append(rs.Stages, StageStatus{Stage: string(st), Done: run.Done(st)})
		}
		if rs.SourceRows, err = r.SnapshotCount(ctx, run.ID); err != nil {
			return nil, err
		}
		totals, err := r.TotalsOfRun(ctx, run.ID)
		if err != nil {
			return nil, err
		}
		for _, t := range totals {
			rs.Totals = append(rs.Totals, RunTotal{Channel: string(t.Channel), Currency: string(t.Currency), Orders: t.Orders,
				Gross: t.Gross, Refunded: t.Refunded, Commission: t.Commission, Seller: t.Seller, Balanced: t.Balanced()})
		}
		if rs.Rejects, err = r.RejectsOfRun(ctx, run.ID); err != nil {
			return nil, err
		}
		if rs.Rejects == nil {
			rs.Rejects = []RejectReason{}
		}
		if rs.Skipped, err = r.SkippedOfRun(ctx, run.ID); err != nil {
			return nil, err
		}
		s.Runs = append(s.Runs, rs)
	}
	// A date run in shards is not done while one of its shards has no run
	// (its pod never opened it): its sellers' orders are in none of the
	// figures below, which balance all the same.
	for _, k := range pipeline.ShardsToRun(runs, pipeline.RunKey{Date: d, Shard: pipeline.Whole}) {
		if !slices.ContainsFunc(runs, func(r *pipeline.Run) bool { return r.Key == k }) && len(runs) > 0 {
			s.NotStarted = append(s.NotStarted, k.Shard.String())
		}
	}
	l.statusRead("runs")
	byCur := map[string]*StatusTotal{}
	var curs []string
	err = r.SummaryLines(ctx, d, func(x pipeline.SummaryLine) error {
		s.Summary = append(s.Summary, StatusSummaryLine{Channel: x.Channel, Currency: x.Currency, Orders: x.Orders, Seller: x.Seller,
			Paid: x.Paid, Carried: x.Carried, Held: x.Held, Unverified: x.Unverified, RejectedByProvider: x.RejectedByProvider,
			InProgress: x.InProgress, PaidLater: x.PaidLater, PaidLaterOn: x.PaidLaterOn, Rejected: x.Rejected, Balanced: x.Balanced,
			SkippedOrders: x.SkippedOrders, Skipped: x.Skipped})
		if x.Currency == "" {
			return nil // the rejected source rows: no money
		}
		t := byCur[x.Currency]
		if t == nil {
			t = &StatusTotal{Currency: x.Currency}
			byCur[x.Currency] = t
			curs = append(curs, x.Currency)
		}
		t.Seller += x.Seller
		t.Paid += x.Paid
		t.Carried += x.Carried
		t.Held += x.Held
		t.Unverified += x.Unverified
		t.RejectedByProvider += x.RejectedByProvider
		t.InProgress += x.InProgress
		t.PaidLater += x.PaidLater
		t.Skipped += x.Skipped
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(curs)
	for _, c := range curs {
		s.Totals = append(s.Totals, *byCur[c])
	}
	l.statusRead("summary")
	if s.Effects, err = r.effectsStatus(ctx, d); err != nil {
		return nil, err
	}
	l.statusRead("effects")
	if s.Mismatches.Unexpected, s.Mismatches.Expected, err = r.MismatchCounts(ctx, d); err != nil {
		return nil, err
	}
	if s.LateRefunds, err = r.lateRefundStatus(ctx, d); err != nil {
		return nil, err
	}
	if s.LateOrders, err = r.lateOrdersStatus(ctx, d); err != nil {
		return nil, err
	}
	if s.Reprices, err = r.RepricesOf(ctx, d, false); err != nil {
		return nil, err
	}
	carries, err := r.OpenCarries(ctx, pipeline.Date{})
	if err != nil {
		return nil, err
	}
	type sellerCur struct{ seller, cur string }
	why := map[sellerCur]CarriedBalance{}
	if len(carries) > 0 {
		// By the index of the open entries (adjustments_open), each
		// seller's and currency's newest.
		rows, err := r.q.QueryContext(ctx, `SELECT DISTINCT ON (seller_id, currency) seller_id, currency,
				to_char(min(business_date) OVER (PARTITION BY seller_id, currency), 'YYYY-MM-DD'),
				to_char(business_date, 'YYYY-MM-DD'), reason
			FROM adjustments WHERE netted_into = '' ORDER BY seller_id, currency, id DESC`)
		if err != nil {
			return nil, fmt.Errorf("read why the carried balances are carried: %w", err)
		}
		for rows.Next() {
			var k sellerCur
			var c CarriedBalance
			if err := rows.Scan(&k.seller, &k.cur, &c.Since, &c.LastDate, &c.LastReason); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read why the carried balances are carried: %w", err)
			}
			why[k] = c
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read why the carried balances are carried: %w", err)
		}
	}
	for _, c := range carries {
		w := why[sellerCur{c.SellerID, string(c.Currency)}]
		s.Carried = append(s.Carried, CarriedBalance{SellerID: c.SellerID, Currency: string(c.Currency), Entries: c.Entries, Amount: c.Amount,
			Since: w.Since, LastDate: w.LastDate, LastReason: w.LastReason})
	}
	if s.Resolved, err = r.Resolutions(ctx, d); err != nil {
		return nil, err
	}
	return s, nil
}

// statusRead calls the test's hook, if any, once section is read.
func (l *Ledger) statusRead(section string) {
	if l.statusHook != nil {
		l.statusHook(section)
	}
}

// effectsStatus counts the date's effects and lists those worth a look.
func (r Reader) effectsStatus(ctx context.Context, d pipeline.Date) (EffectsStatus, error) {
	es := EffectsStatus{Counts: map[string]map[string]int{}, Succeeded: map[string]map[string]int64{}, Listed: []EffectReport{}}
	var ids []int64
	byID := map[int64]int{}
	err := r.PayoutLinesWithID(ctx, d, func(id int64, p pipeline.PayoutLine) error {
		if es.Counts[p.Kind] == nil {
			es.Counts[p.Kind] = map[string]int{}
		}
		es.Counts[p.Kind][p.State]++
		if p.State == string(pipeline.EffectSucceeded) {
			if es.Succeeded[p.Kind] == nil {
				es.Succeeded[p.Kind] = map[string]int64{}
			}
			es.Succeeded[p.Kind][p.Currency] += p.Amount
		}
		es.Sends += int64(p.Sends)
		unknown := strings.Contains(p.Path, string(pipeline.EffectUnknown))
		if unknown {
			es.ThroughUnknown++
		}
		if !unknown && p.Sends <= 1 && p.State == string(pipeline.EffectSucceeded) {
			return nil
		}
		es.WorthALook++
		if len(es.Listed) < statusListMax {
			byID[id] = len(es.Listed)
			ids = append(ids, id)
			es.Listed = append(es.Listed, EffectReport{Kind: p.Kind, Subject: p.Subject, Attempt: p.Attempt, Key: p.Key,
				Currency: p.Currency, Amount: p.Amount, State: p.State, Path: p.Path, Sends: p.Sends, ProviderRef: p.ProviderRef,
				LastError: p.LastError, History: []StatusEvent{}})
		}
		return nil
	})
	if err != nil || len(ids) == 0 {
		return es, err
	}
	rows, err := r.q.QueryContext(ctx, `SELECT effect_id, at, from_state, to_state, cause, sends, detail
		FROM effect_events WHERE effect_id = ANY ($1) ORDER BY effect_id, id`, pq.Array(ids))
	if err != nil {
		return es, fmt.Errorf("read effect histories: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var h StatusEvent
		if err := rows.Scan(&id, &h.At, &h.From, &h.To, &h.Cause, &h.Sends, &h.Detail); err != nil {
			return es, err
		}
		e := &es.Listed[byID[id]]
		e.History = append(e.History, h)
	}
	return es, rows.Err()
}

// lateRefundsOfDateQuery reads the late refunds read on a date (its argument).
const lateRefundsOfDateQuery = `SELECT refund_no, order_no, seller_id, amount_minor, state FROM late_refunds
		WHERE business_date = $1 ORDER BY refund_no`

// lateRefundStatus counts the late refunds read on date d by state and
// lists the first ones still waiting.
func (r Reader) lateRefundStatus(ctx context.Context, d pipeline.Date) (LateRefundStatus, error) {
	ls := LateRefundStatus{ByState: map[string]int{}, Waiting: []LateRefundWaiting{}}
	rows, err := r.q.QueryContext(ctx, lateRefundsOfDateQuery, d.String())
	if err != nil {
		return ls, fmt.Errorf("read late refunds: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var w LateRefundWaiting
		var state string
		if err := rows.Scan(&w.RefundNo, &w.OrderNo, &w.SellerID, &w.Amount, &state); err != nil {
			return ls, err
		}
		ls.ByState[state]++
		if state == pipeline.LateRefundPending && len(ls.Waiting) < statusListMax {
			ls.Waiting = append(ls.Waiting, w)
		}
	}
	return ls, rows.Err()
}

// runActive reports whether a process holds the run's lock now (a run
// recorded as running whose lock nobody holds was stopped: killed, or ended
// before its last stage).
func (l *Ledger) runActive(ctx context.Context, key pipeline.RunKey) (bool, error) {
	_, shard := l.lockKeys(key)
	held, err := l.lockHeld(ctx, shard)
	if err != nil {
		return false, fmt.Errorf("read the lock of run %s: %w", key, err)
	}
	return held, nil
}

// dateActive reports whether a process holds the lock of the run's date
// now, in either mode: a run of the date (a whole date's, or a shard of an
// Indexed Job), or a date run in shards being run again as a whole, its
// shards one after another (LockDate), or settle resolve.
func (l *Ledger) dateActive(ctx context.Context, key pipeline.RunKey) (bool, error) {
	date, _ := l.lockKeys(key)
	held, err := l.lockHeld(ctx, date)
	if err != nil {
		return false, fmt.Errorf("read the lock of date %s: %w", key.Date, err)
	}
	return held, nil
}

// lockHeld reports whether a session of this database holds the advisory
// lock of key (hashtextextended), in either mode.
func (l *Ledger) lockHeld(ctx context.Context, key string) (bool, error) {
	var held bool
	err := l.db.QueryRowContext(ctx, `SELECT EXISTS (
		SELECT 1 FROM pg_locks p, (SELECT hashtextextended($1, 0) AS k) x
		WHERE p.locktype = 'advisory' AND p.granted AND p.objsubid = 1
		  AND p.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND p.classid::bigint = (x.k >> 32) & 4294967295 AND p.objid::bigint = x.k & 4294967295)`, key).Scan(&held)
	return held, err
}
