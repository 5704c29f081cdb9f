package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
)

// SubjectHistory is what the ledger holds of one subject of a date (a
// payout as payouts.csv names it: a revenue share, a distribution or an
// unfreeze; or an uploaded file), for an auditor, in one document
// (`settle status --subject`): the runs that recorded it, every attempt
// with its key, amount and whole history (each change of state with its
// time, cause and the provider's words, as effect_events keeps them), the
// orders it paid or carried (of an uploaded file: listed, the file each
// item was last listed in, migration 00031) with their split, the rule
// that split them and the source row the run read, the carried entries
// netted into it or held for it, of an upload the trade file it delivered
// with the status its provider gave it (SubjectFile), what the date's
// reconciliation last found of it (SubjectMismatch), and what a person
// resolved of it, by whom. The key of a close of a seller's carried
// balance (settle sellers close) is a subject too, with no attempt: its
// run, the entries it closed with its own, their orders and who closed
// it, when and why (its resolution).
type SubjectHistory struct {
	Date        string              `json:"date"`
	Subject     string              `json:"subject"`
	Runs        []SubjectRun        `json:"runs"`
	Attempts    []EffectReport      `json:"attempts"`
	Items       []SubjectItem       `json:"items"`
	Adjustments []SubjectAdjustment `json:"adjustments"`
	Files       []SubjectFile       `json:"files"`
	Mismatches  []SubjectMismatch   `json:"mismatches"`
	Resolved    []Resolution        `json:"resolved"`
}

// SubjectMismatch is a disagreement the date's reconciliation last found
// about the subject or one of its attempts' keys (mismatches.csv's row):
// what the provider answers of it now, which a question that changed
// nothing - "not found", say - leaves out of the attempts' histories.
type SubjectMismatch struct {
	Provider    string `json:"provider"`
	Category    string `json:"category"`
	Key         string `json:"subject"`
	Currency    string `json:"currency"`
	Ours        *int64 `json:"ours_minor"`
	Theirs      *int64 `json:"theirs_minor"`
	OursState   string `json:"ours_state"`
	TheirsState string `json:"theirs_state"`
	Expected    bool   `json:"expected"`
	Detail      string `json:"detail"`
}

// SubjectFile is the trade file an upload attempt delivered (its
// requestNo the attempt's key), with the status its provider last gave it
// as the ledger recorded it, and the reason of a file refused: an upload
// succeeded says only that the file arrived, not that the provider took it.
type SubjectFile struct {
	Name      string    `json:"name"`
	RequestNo string    `json:"request_no"`
	Rows      int64     `json:"rows"`
	Status    string    `json:"status"`
	Reason    string    `json:"reason,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// SubjectRun is a run that recorded an attempt of the subject: the hashes
// of the rules and the configuration it ran with.
type SubjectRun struct {
	ID         int64     `json:"id"`
	Shard      string    `json:"shard"`
	TimeZone   string    `json:"time_zone"`
	RulesHash  string    `json:"rules_hash"`
	ConfigHash string    `json:"config_hash"`
	StartedAt  time.Time `json:"started_at"`
}

// SubjectItem is an order an attempt of the subject paid (its payout
// key), or whose seller share went into an entry carried for it: its
// split, the rule that made it, its state and reason, and the source row
// its run read (nil when the run keeps none of it: dropped by a
// re-extract).
type SubjectItem struct {
	OrderNo     string         `json:"order_no"`
	SellerID    string         `json:"seller_id"`
	Channel     string         `json:"channel"`
	Currency    string         `json:"currency"`
	Gross       int64          `json:"gross_minor"`
	Refunded    int64          `json:"refunded_minor"`
	Commission  int64          `json:"commission_minor"`
	Seller      int64          `json:"seller_minor"`
	Rule        string         `json:"rule"`
	State       string         `json:"state"`
	Reason      string         `json:"reason,omitempty"`
	PayoutKey   string         `json:"payout_key,omitempty"`
	ProviderRef string         `json:"provider_ref,omitempty"`
	Source      *SubjectSource `json:"source_row"`
}

// SubjectSource is a source row as the extract read it (amounts as text,
// NULLs kept).
type SubjectSource struct {
	Seq           int64      `json:"seq"`
	SellerID      *string    `json:"seller_id"`
	Provider      *string    `json:"provider"`
	ProviderTxnID *string    `json:"provider_txn_id"`
	Currency      *string    `json:"currency"`
	Amount        *string    `json:"amount_minor"`
	Refunded      *string    `json:"refunded_minor"`
	Category      *string    `json:"category"`
	PaidAt        *time.Time `json:"paid_at"`
	ConfirmedAt   *time.Time `json:"confirmed_at"`
}

// SubjectAdjustment is an entry of the carried-balance journal netted into
// the subject, held for it, or opened again by its failure. Only the
// entry's present netting is kept (netted_into is cleared when a revenue
// share fails, reopened_from keeps the last one): the attempts' histories
// say when each netting was sent.
type SubjectAdjustment struct {
	ID           int64      `json:"id"`
	Kind         string     `json:"kind"`
	Amount       int64      `json:"amount_minor"`
	Currency     string     `json:"currency"`
	OrderNo      string     `json:"order_no,omitempty"`
	RefundNo     string     `json:"refund_no,omitempty"`
	Subject      string     `json:"subject,omitempty"` // held: the revenue share that was to pay what it carries
	Reason       string     `json:"reason,omitempty"`
	Date         string     `json:"business_date"`
	NettedInto   string     `json:"netted_into,omitempty"`
	NettedDate   *time.Time `json:"netted_date,omitempty"`
	ReopenedFrom string     `json:"reopened_from,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
}

// SubjectHistory reads what the ledger holds of subject of date d
// (SubjectHistory), at one instant (View). subject may be the key of one
// of its attempts instead. A subject or key of no attempt of d is refused
// (pipeline.KindUsage), a key of another date's naming that date.
func (l *Ledger) SubjectHistory(ctx context.Context, d pipeline.Date, subject string) (*SubjectHistory, error) {
	var h *SubjectHistory
	err := l.View(ctx, func(r Reader) error {
		var err error
		h, err = r.subjectHistory(ctx, d, subject)
		return err
	})
	return h, err
}

// subjectDate is the date a side effect's subject names, its second part
// (RS/20261123/S00001/USD); ok false for a text that names none.
func subjectDate(subject string) (pipeline.Date, bool) {
	parts := strings.SplitN(subject, "/", 3)
	if len(parts) < 3 || len(parts[1]) != 8 {
		return pipeline.Date{}, false
	}
	c := parts[1]
	d, err := pipeline.ParseDate(c[:4] + "-" + c[4:6] + "-" + c[6:])
	return d, err == nil
}

func (r Reader) subjectHistory(ctx context.Context, d pipeline.Date, subject string) (*SubjectHistory, error) {
	h := &SubjectHistory{Date: d.String(), Subject: subject, Runs: []SubjectRun{}, Attempts: []EffectReport{},
		Items: []SubjectItem{}, Adjustments: []SubjectAdjustment{}, Files: []SubjectFile{}, Mismatches: []SubjectMismatch{}, Resolved: []Resolution{}}
	fail := func(what string, err error) error {
		return fmt.Errorf("read the history of %s of %s: %s: %w", subject, d, what, err)
	}

	// An attempt's key - payouts.csv's key, orders.csv's payout_key, the
	// requestNo or out_order_no a provider's support names - stands for
	// its subject: what a person holds is often the key alone. A subject
	// is looked for first (no subject is a key: "RS/..." against "RS-...").
	var known bool
	if err := r.q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM effects e JOIN runs r ON r.id = e.run_id
		WHERE r.business_date = $1 AND e.subject = $2)`, d.String(), subject).Scan(&known); err != nil {
		return nil, fail("attempts", err)
	}
	if !known {
		var of, date string
		err := r.q.QueryRowContext(ctx, `SELECT e.subject, to_char(r.business_date, 'YYYY-MM-DD')
			FROM effects e JOIN runs r ON r.id = e.run_id WHERE e.idem_key = $1`, subject).Scan(&of, &date)
		switch {
		case err == sql.ErrNoRows:
		case err != nil:
			return nil, fail("the attempt of this key", err)
		case date != d.String():
			return nil, pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: the key of %s, a side effect of %s, not of %s: settle status --date %s --subject %s",
				subject, of, date, d, date, of)
		default:
			subject, h.Subject = of, of
		}
	}

	atts, err := r.attempts(ctx, `r.business_date = $1 AND e.subject = $2`, d.String(), subject)
	if err != nil {
		return nil, fail("attempts", err)
	}
	var ids []int64
	var keys []string
	byID := map[int64]int{}
	for _, a := range atts {
		byID[a.id] = len(h.Attempts)
		ids, keys = append(ids, a.id), append(keys, a.Key)
		h.Attempts = append(h.Attempts, a.EffectReport)
	}
	// The key of a close of a seller's carried balance (settle sellers
	// close; orders.csv's payout_key of its row) has no attempt: its run,
	// the entries it closed and its own (its reason naming the amount, who
	// and the note), their orders and the resolution stand for it.
	var closed string
	if len(ids) == 0 {
		err := r.q.QueryRowContext(ctx, `SELECT to_char(business_date, 'YYYY-MM-DD') FROM adjustments WHERE kind = 'close' AND subject = $1`,
			subject).Scan(&closed)
		switch {
		case err == sql.ErrNoRows:
		case err != nil:
			return nil, fail("the close of this key", err)
		case closed != d.String():
			return nil, pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: a close of a seller's carried balance recorded on %s, not %s: settle status --date %s --subject %s",
				subject, closed, d, closed, subject)
		default:
			keys = []string{subject} // the resolution's key
		}
	}
	if len(ids) == 0 && closed == "" {
		// A subject names its date (KIND/YYYYMMDD/...): one of another
		// date, copied from that date's payouts.csv, is named with the
		// command for it, as its key is.
		if other, ok := subjectDate(subject); ok && other != d {
			var there bool
			if err := r.q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM effects e JOIN runs r ON r.id = e.run_id
				WHERE r.business_date = $1 AND e.subject = $2)`, other.String(), subject).Scan(&there); err != nil {
				return nil, fail("attempts of its date", err)
			}
			if there {
				return nil, pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: a side effect of %s, not of %s: settle status --date %s --subject %s",
					subject, other, d, other, subject)
			}
		}
		return nil, pipeline.Errorf(pipeline.KindUsage, "--subject", "%s: no side effect of %s has this subject or key (payouts.csv lists them)", subject, d)
	}

	rows, err := r.q.QueryContext(ctx, `SELECT effect_id, at, from_state, to_state, cause, sends, detail
		FROM effect_events WHERE effect_id = ANY ($1) ORDER BY effect_id, id`, pq.Array(ids))
	if err != nil {
		return nil, fail("histories", err)
	}
	for rows.Next() {
		var id int64
		var ev StatusEvent
		if err := rows.Scan(&id, &ev.At, &ev.From, &ev.To, &ev.Cause, &ev.Sends, &ev.Detail); err != nil {
			rows.Close()
			return nil, fail("histories", err)
		}
		a := &h.Attempts[byID[id]]
		a.History = append(a.History, ev)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fail("histories", err)
	}

	rows, err = r.q.QueryContext(ctx, `SELECT r.id, r.shard_index, r.shard_count, r.time_zone, r.rules_hash, r.config_hash, r.started_at
		FROM runs r WHERE r.id IN (SELECT run_id FROM effects WHERE id = ANY ($1))
		   OR r.id IN (SELECT run_id FROM adjustments WHERE kind = 'close' AND subject = $2) ORDER BY r.id`, pq.Array(ids), subject)
	if err != nil {
		return nil, fail("runs", err)
	}
	for rows.Next() {
		var run SubjectRun
		var sh pipeline.Shard
		if err := rows.Scan(&run.ID, &sh.Index, &sh.Count, &run.TimeZone, &run.RulesHash, &run.ConfigHash, &run.StartedAt); err != nil {
			rows.Close()
			return nil, fail("runs", err)
		}
		run.Shard = sh.String()
		h.Runs = append(h.Runs, run)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fail("runs", err)
	}

	if h.Adjustments, err = r.adjustments(ctx, `subject = $1 OR netted_into = $1 OR reopened_from = $1`, subject); err != nil {
		return nil, fail("carried entries", err)
	}
	var carries []int64
	for _, a := range h.Adjustments {
		carries = append(carries, a.ID)
	}
	// The items: the date's paid by an attempt or listed in its trade
	// file (items_date_seller) and
	// those carried into its entries, of any date (items_carry: an order
	// of an earlier date whose seller share went into an entry netted into
	// it). Then, beside each, the row its run read: in one pass over their
	// runs' snapshots (source_rows has no index by order number), joined
	// here. Joined by the planner, each order was matched to its run's
	// rows one by one whenever it took the subject for one of few orders
	// (statistics taken before the night's run): a seller's 3,000 orders
	// on a day of 100,000 took 8 s, orders times rows.
	rows, err = r.q.QueryContext(ctx, `SELECT i.run_id, i.order_no, i.seller_id, i.channel, i.currency, i.gross_minor, i.refunded_minor, i.commission_minor, i.seller_minor,
			i.rule, i.state, i.reason, i.payout_key, i.provider_ref
		FROM items i WHERE (i.business_date = $3 AND (i.payout_key = ANY ($1) OR i.trade_file = ANY ($1))) OR i.carry_id = ANY ($2)
		ORDER BY i.order_no, i.run_id`,
		pq.Array(keys), pq.Array(carries), d.String())
	if err != nil {
		return nil, fail("orders", err)
	}
	type runOrder struct {
		run   int64
		order string
	}
	var items []runOrder
	runSet := map[int64]bool{}
	for rows.Next() {
		var it SubjectItem
		var ro runOrder
		if err := rows.Scan(&ro.run, &it.OrderNo, &it.SellerID, &it.Channel, &it.Currency, &it.Gross, &it.Refunded, &it.Commission, &it.Seller,
			&it.Rule, &it.State, &it.Reason, &it.PayoutKey, &it.ProviderRef); err != nil {
			rows.Close()
			return nil, fail("orders", err)
		}
		ro.order = it.OrderNo
		items, runSet[ro.run] = append(items, ro), true
		h.Items = append(h.Items, it)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fail("orders", err)
	}
	if len(items) > 0 {
		runIDs, orderNos := make([]int64, 0, len(runSet)), make([]string, len(items))
		for id := range runSet {
			runIDs = append(runIDs, id)
		}
		for i, ro := range items {
			orderNos[i] = ro.order
		}
		srcs, err := r.sourceRows(ctx, `s.run_id = ANY ($1) AND s.order_no = ANY ($2)`, pq.Array(runIDs), pq.Array(orderNos))
		if err != nil {
			return nil, fail("source rows", err)
		}
		read := map[runOrder][]SubjectSource{}
		for _, src := range srcs {
			ro := runOrder{src.run, ""}
			if src.order != nil {
				ro.order = *src.order
			}
			read[ro] = append(read[ro], src.SubjectSource)
		}
		// Each order beside each row its run read of it (the left join
		// it was: an order its run read twice is listed twice).
		all := h.Items
		h.Items = make([]SubjectItem, 0, len(all))
		for i, it := range all {
			srcs := read[items[i]]
			if len(srcs) == 0 {
				h.Items = append(h.Items, it)
				continue
			}
			for _, src := range srcs {
				it.Source = &src
				h.Items = append(h.Items, it)
			}
		}
	}

	if h.Files, err = r.tradeFiles(ctx, keys); err != nil {
		return nil, fail("trade files", err)
	}

	if h.Mismatches, err = r.mismatches(ctx, `r.business_date = $1 AND (m.subject = $2 OR m.subject = ANY ($3))`, d.String(), subject, pq.Array(keys)); err != nil {
		return nil, fail("mismatches", err)
	}

	orders := make([]string, len(h.Items))
	for i, it := range h.Items {
		orders[i] = it.OrderNo
	}
	if h.Resolved, err = r.resolutionsNaming(ctx, []string{subject}, append(append([]string{}, keys...), orders...)); err != nil {
		return nil, fail("resolutions", err)
	}
	return h, nil
}

// attempt is an attempt of a side effect as attempts reads it: its id (to
// read its history by) and business date beside what status shows of it.
type attempt struct {
	id   int64
	date string
	EffectReport
}

// attempts reads the attempts of side effects where cond holds (on effects
// e joined to their runs r), by kind and attempt, their histories empty:
// what status --subject and status --order show of an attempt.
func (r Reader) attempts(ctx context.Context, cond string, args ...any) ([]attempt, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT e.id, to_char(r.business_date, 'YYYY-MM-DD'), e.kind, e.subject, e.attempt, e.idem_key, e.currency,
		e.amount_minor, e.state, `+pathSQL+`, e.provider_ref, e.last_error, e.sends
		FROM effects e JOIN runs r ON r.id = e.run_id
		WHERE `+cond+` ORDER BY e.kind, e.subject, e.attempt`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []attempt
	for rows.Next() {
		var a attempt
		if err := rows.Scan(&a.id, &a.date, &a.Kind, &a.Subject, &a.Attempt, &a.Key, &a.Currency, &a.Amount, &a.State, &a.Path,
			&a.ProviderRef, &a.LastError, &a.Sends); err != nil {
			return nil, err
		}
		a.History = []StatusEvent{}
		out = append(out, a)
	}
	return out, rows.Err()
}

// adjustments reads the entries of the carried-balance journal where cond
// holds, by id.
func (r Reader) adjustments(ctx context.Context, cond string, args ...any) ([]SubjectAdjustment, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT id, kind, amount_minor, currency, order_no, refund_no, subject, reason,
		to_char(business_date, 'YYYY-MM-DD'), netted_into, netted_date, reopened_from, created_at
		FROM adjustments WHERE `+cond+` ORDER BY id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []SubjectAdjustment{}
	for rows.Next() {
		var a SubjectAdjustment
		if err := rows.Scan(&a.ID, &a.Kind, &a.Amount, &a.Currency, &a.OrderNo, &a.RefundNo, &a.Subject, &a.Reason, &a.Date,
			&a.NettedInto, &a.NettedDate, &a.ReopenedFrom, &a.CreatedAt); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// runSource is a row of a run's snapshot as sourceRows reads it: its run
// and order number (NULL as read) beside the row.
type runSource struct {
	run   int64
	order *string
	SubjectSource
}

// sourceRows reads the rows of the runs' snapshots where cond holds (on
// source_rows s), but other shards' keys, by run and seq.
func (r Reader) sourceRows(ctx context.Context, cond string, args ...any) ([]runSource, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT s.run_id, s.order_no, s.seq, s.seller_id, s.provider, s.provider_txn_id, s.currency, s.amount_minor,
			s.refunded_minor, s.category, s.paid_at, s.confirmed_at
		FROM source_rows s WHERE (`+cond+`) AND NOT s.other_shard ORDER BY s.run_id, s.seq`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []runSource
	for rows.Next() {
		var src runSource
		if err := rows.Scan(&src.run, &src.order, &src.Seq, &src.SellerID, &src.Provider, &src.ProviderTxnID, &src.Currency, &src.Amount,
			&src.Refunded, &src.Category, &src.PaidAt, &src.ConfirmedAt); err != nil {
			return nil, err
		}
		out = append(out, src)
	}
	return out, rows.Err()
}

// tradeFiles reads the trade files of the requestNos (trade_files'
// unique request_no), by attempt.
func (r Reader) tradeFiles(ctx context.Context, requestNos []string) ([]SubjectFile, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT name, request_no, rows, status, reason, updated_at FROM trade_files
		WHERE request_no = ANY ($1) ORDER BY attempt`, pq.Array(requestNos))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []SubjectFile{}
	for rows.Next() {
		var f SubjectFile
		if err := rows.Scan(&f.Name, &f.RequestNo, &f.Rows, &f.Status, &f.Reason, &f.UpdatedAt); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// resolutionsNaming reads what a person resolved of one of the subjects,
// or under one of the keys (an attempt's key, an order number, a trade
// file's requestNo), by time. resolutions is a person's few rows: read
// whole.
func (r Reader) resolutionsNaming(ctx context.Context, subjects, keys []string) ([]Resolution, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT kind, subject, idem_key, note, resolved_at, actor, db_role FROM resolutions
		WHERE subject = ANY ($1) OR idem_key = ANY ($2) ORDER BY resolved_at, kind`, pq.Array(subjects), pq.Array(keys))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Resolution{}
	for rows.Next() {
		var res Resolution
		if err := rows.Scan(&res.Kind, &res.Subject, &res.Key, &res.Note, &res.ResolvedAt, &res.Actor, &res.DBRole); err != nil {
			return nil, err
		}
		out = append(out, res)
	}
	return out, rows.Err()
}

// mismatches reads the mismatches (m) of runs (r) where cond holds, as
// mismatches.csv orders them: what the reconciliation last found.
func (r Reader) mismatches(ctx context.Context, cond string, args ...any) ([]SubjectMismatch, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT m.provider, m.category, m.subject, m.currency, m.ours_minor, m.theirs_minor, m.ours_state, m.theirs_state,
			m.expected, m.detail
		FROM mismatches m JOIN runs r ON r.id = m.run_id
		WHERE `+cond+`
		ORDER BY m.provider, m.subject, m.category, m.detail, r.shard_index, m.seq`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []SubjectMismatch{}
	for rows.Next() {
		var m SubjectMismatch
		if err := rows.Scan(&m.Provider, &m.Category, &m.Key, &m.Currency, &m.Ours, &m.Theirs, &m.OursState, &m.TheirsState, &m.Expected, &m.Detail); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
