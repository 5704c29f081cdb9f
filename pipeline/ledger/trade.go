package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
)

// Item states after transform. An item is recorded (a Pay Protocol item is
// unverified until its payment is verified); its trade file is uploaded and
// accepted; its seller's share is paid, or held, or it is rejected by the
// provider.
const (
	ItemUnverified = pipeline.ItemUnverified
	ItemRecorded   = pipeline.ItemRecorded
	ItemUploaded   = pipeline.ItemUploaded
	ItemPaid       = pipeline.ItemPaid
	ItemHeld       = pipeline.ItemHeld
	ItemRejected   = pipeline.ItemRejected
)

// runDate is the business date of run $1, for the per-seller queries of a
// run's items: a run's items are of its date, so (business_date,
// seller_id, currency) - the index items_date_seller - finds one seller's
// items of the run in proportion to their number, however large the day.
const runDate = `(SELECT r.business_date FROM runs r WHERE r.id = $1)`

// itemsForTradeQuery is the content of one trade file: $1 run, $2
// channels, $3 seller, $4 currency, $5 the file's requestNo.
const itemsForTradeQuery = `SELECT order_no, seller_id, channel, provider_txn_id, currency, category,
		gross_minor, refunded_minor, commission_minor, seller_minor, rule, paid_at, confirmed_at
		FROM items WHERE business_date = ` + runDate + ` AND seller_id = $3 AND currency = $4
		  AND run_id = $1 AND channel = ANY ($2) AND state = 'recorded' AND provider_ref = $5
		ORDER BY order_no`

// ItemsForTrade streams a run's recorded items of one seller and currency
// in the given channels that belong to the trade file requestNo ("" for the
// items in no file yet), ordered by order number: the content of one file.
func (l *Ledger) ItemsForTrade(ctx context.Context, runID int64, sellerID string, cur pipeline.Currency, channels []pipeline.Channel, requestNo string, fn func(pipeline.Split) error) error {
	chs := make([]string, len(channels))
	for i, c := range channels {
		chs[i] = string(c)
	}
	rows, err := l.db.QueryContext(ctx, itemsForTradeQuery, runID, pq.Array(chs), sellerID, string(cur), requestNo)
	if err != nil {
		return fmt.Errorf("read items for trade files: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s pipeline.Split
		var ch, cur string
		if err := rows.Scan(&s.OrderNo, &s.SellerID, &ch, &s.ProviderTxnID, &cur, &s.Category, &s.Amount, &s.Refunded,
			&s.Commission, &s.SellerShare, &s.Rule, &s.PaidAt, &s.ConfirmedAt); err != nil {
			return err
		}
		s.Channel, s.Currency = pipeline.Channel(ch), pipeline.Currency(cur)
		if err := fn(s); err != nil {
			return err
		}
	}
	return rows.Err()
}

const tradeFileColumns = `id, run_id, business_date, seller_id, currency, attempt, request_no, name, sha256, rows,
	bytes, seller_minor, status, error_file_url, reason,
	(SELECT e.updated_at FROM effects e WHERE e.idem_key = trade_files.request_no AND e.state = 'succeeded')`

func scanTradeFile(row interface{ Scan(...any) error }) (pipeline.TradeFile, error) {
	var f pipeline.TradeFile
	var d, uploaded sql.NullTime
	var cur string
	err := row.Scan(&f.ID, &f.RunID, &d, &f.SellerID, &cur, &f.Attempt, &f.RequestNo, &f.Name, &f.SHA256, &f.Rows,
		&f.Bytes, &f.SellerMinor, &f.Status, &f.ErrorURL, &f.Reason, &uploaded)
	f.Date, f.Currency, f.Uploaded = pipeline.DateOf(d.Time), pipeline.Currency(cur), uploaded.Time
	return f, err
}

// RecordTradeFile records a built file (status BUILT) and, in the same
// transaction, marks the items in no file yet (of the run, seller,
// currency and channels) as its content, by its requestNo; it returns the
// stored row. A file recorded earlier for the same date, seller, currency
// and attempt must have the same bytes: a rebuilt file that differs is an
// error, never a silent replacement.
func (l *Ledger) RecordTradeFile(ctx context.Context, f pipeline.TradeFile, channels []pipeline.Channel) (pipeline.TradeFile, error) {
	var stored pipeline.TradeFile
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO trade_files (run_id, business_date, seller_id, currency, attempt,
			request_no, name, sha256, rows, bytes, seller_minor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (business_date, seller_id, currency, attempt) DO NOTHING`,
			f.RunID, f.Date.String(), f.SellerID, string(f.Currency), f.Attempt, f.RequestNo, f.Name, f.SHA256, f.Rows, f.Bytes, f.SellerMinor)
		if err != nil {
			return err
		}
		if stored, err = scanTradeFile(tx.QueryRowContext(ctx, `SELECT `+tradeFileColumns+` FROM trade_files
			WHERE business_date = $1 AND seller_id = $2 AND currency = $3 AND attempt = $4`,
			f.Date.String(), f.SellerID, string(f.Currency), f.Attempt)); err != nil {
			return err
		}
		if stored.SHA256 != f.SHA256 || stored.Name != f.Name {
			return fmt.Errorf("was recorded with sha256 %s, rebuilt as %s %s: refusing to change an uploaded file",
				stored.SHA256, f.Name, f.SHA256)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // recorded before, with its items
		}
		tagged, err := tx.ExecContext(ctx, `UPDATE items SET provider_ref = $5, trade_file = $5 WHERE business_date = $6 AND seller_id = $2 AND currency = $3
			AND run_id = $1 AND channel = ANY ($4) AND state = 'recorded' AND provider_ref = ''`,
			f.RunID, f.SellerID, string(f.Currency), channelNames(channels), f.RequestNo, f.Date.String())
		if err != nil {
			return err
		}
		if n, _ := tagged.RowsAffected(); n != int64(f.Items) {
			return fmt.Errorf("built from %d items, %d are in no file now: the items moved while the file was built", f.Items, n)
		}
		return nil
	})
	if err != nil {
		var pe *pq.Error
		if errors.As(err, &pe) && pe.Code == "23505" && pe.Constraint == "trade_files_request_no_key" {
			// Another file's requestNo: the keys' short hashes of two
			// sellers collide. Nothing is recorded.
			var other string
			if rerr := l.db.QueryRowContext(ctx, `SELECT name FROM trade_files WHERE request_no = $1`, f.RequestNo).Scan(&other); rerr != nil {
				other = "another file"
			}
			return stored, fmt.Errorf("record trade file %s: its requestNo %s is %s's already: %w", f.Name, f.RequestNo, other, pipeline.ErrKeyTaken)
		}
		return stored, fmt.Errorf("record trade file %s: %w", f.Name, err)
	}
	return stored, nil
}

// infiniaRefusedRow begins the reason of an item whose row of its trade
// file Infinia refused.
const infiniaRefusedRow = "Infinia refused the trade detail: "

// FinishTradeFile records Infinia's final answer on a trade file and
// applies it to the file's items, in one transaction (a file is never
// final with its items left behind, nor the other way round): the rows
// Infinia refused are rejected with its reason, the file's other items
// move to state `to` with reason.
func (l *Ledger) FinishTradeFile(ctx context.Context, f pipeline.TradeFile, refused []pipeline.ProviderReject, to, reason string) error {
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		for _, r := range refused {
			if _, err := tx.ExecContext(ctx, `UPDATE items SET state = 'rejected', reason = $4
				WHERE run_id = $1 AND provider_ref = $2 AND order_no = $3 AND state = 'recorded'`,
				f.RunID, f.RequestNo, r.OrderNo, infiniaRefusedRow+r.Reason); err != nil {
				return err
			}
		}
		// A file's items are of its date, seller and currency: found by
		// those (items_date_seller), not among all of the run's.
		if _, err := tx.ExecContext(ctx, `UPDATE items SET state = $3, reason = $4
			WHERE business_date = $5 AND seller_id = $6 AND currency = $7 AND run_id = $1 AND provider_ref = $2 AND state = 'recorded'`,
			f.RunID, f.RequestNo, to, reason, f.Date.String(), f.SellerID, string(f.Currency)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE trade_files SET status = $2, error_file_url = $3, reason = $4,
			updated_at = now() WHERE id = $1`, f.ID, f.Status, f.ErrorURL, f.Reason)
		return err
	})
	if err != nil {
		return fmt.Errorf("record the outcome of trade file %s: %w", f.Name, err)
	}
	return nil
}

// SetFileItemsReason gives the items of trade file f still in it
// (recorded) whose reason begins with from ("": whatever it is) the
// reason to. The items stay in the file: the provider's answer about it
// moves them as it does any file's (FinishTradeFile), and SendAgain takes
// them out of it. The upload stage holds so the orders of a file its
// provider lost (the reports then show them held, not in progress), and
// lets them go once the provider knows the file.
func (l *Ledger) SetFileItemsReason(ctx context.Context, f pipeline.TradeFile, from, to string) error {
	if _, err := l.db.ExecContext(ctx, `UPDATE items SET reason = $6
		WHERE business_date = $1 AND seller_id = $2 AND currency = $3 AND run_id = $4 AND provider_ref = $5
		  AND state = 'recorded' AND reason <> $6 AND starts_with(reason, $7)`,
		f.Date.String(), f.SellerID, string(f.Currency), f.RunID, f.RequestNo, to, from); err != nil {
		return fmt.Errorf("set the reason of the items of trade file %s: %w", f.Name, err)
	}
	return nil
}

// HoldWaiting gives the run's items of the seller and currency in the
// channels that wait in state - recorded: in no trade file yet; uploaded:
// covered by no payout - and have no reason the reason hold (it begins
// with pipeline.HeldPrefix), their state left as it is: the reports count
// them held, not in progress, and nothing carries them (no adjustment, no
// state a later date's payout nets). ReleaseWaiting takes hold back. It
// returns how many items it held.
func (l *Ledger) HoldWaiting(ctx context.Context, runID int64, sellerID string, cur pipeline.Currency, channels []pipeline.Channel, state, hold string) (int64, error) {
	res, err := l.db.ExecContext(ctx, `UPDATE items SET reason = $6
		WHERE business_date = `+runDate+` AND seller_id = $2 AND currency = $3 AND run_id = $1 AND channel = ANY ($4) AND state = $5
		  AND reason = '' AND (state = 'recorded' AND provider_ref = '' OR state = 'uploaded' AND payout_key = '')`,
		runID, sellerID, string(cur), channelNames(channels), state, hold)
	if err != nil {
		return 0, fmt.Errorf("hold the items of %s %s: %w", sellerID, cur, err)
	}
	return res.RowsAffected()
}

// HoldPayoutItems gives the run's items of the seller and currency in the
// channels that the payout planned under key covers (uploaded, marked
// with its key by PlanPayout) and that have no reason the reason hold,
// as HoldWaiting does: their state, key and the payout left as they are,
// the reports count them held, not in progress. ReleaseWaiting of
// uploaded items takes it back. It returns how many items it held.
func (l *Ledger) HoldPayoutItems(ctx context.Context, runID int64, sellerID string, cur pipeline.Currency, channels []pipeline.Channel, key, hold string) (int64, error) {
	res, err := l.db.ExecContext(ctx, `UPDATE items SET reason = $6
		WHERE business_date = `+runDate+` AND seller_id = $2 AND currency = $3 AND run_id = $1 AND channel = ANY ($4)
		  AND state = 'uploaded' AND payout_key = $5 AND reason = ''`,
		runID, sellerID, string(cur), channelNames(channels), key, hold)
	if err != nil {
		return 0, fmt.Errorf("hold the items of %s %s under %s: %w", sellerID, cur, key, err)
	}
	return res.RowsAffected()
}

// ReleaseWaiting takes the reason hold (HoldWaiting's, or one
// SetFileItemsReason gave the items of a file) back from every item of
// the run in the channels still in state with it, their reason empty
// again: they are in progress once more. It returns how many it released.
func (l *Ledger) ReleaseWaiting(ctx context.Context, runID int64, channels []pipeline.Channel, state, hold string) (int64, error) {
	res, err := l.db.ExecContext(ctx, `UPDATE items SET reason = ''
		WHERE run_id = $1 AND channel = ANY ($2) AND state = $3 AND reason = $4`,
		runID, channelNames(channels), state, hold)
	if err != nil {
		return 0, fmt.Errorf("release the items held (%s): %w", hold, err)
	}
	return res.RowsAffected()
}

// openTradeFile is the SQL condition of a trade file Infinia has not
// decided yet (migration 00011 indexes the run's open files by it).
const openTradeFile = `status NOT IN ('SUCCESS', 'FAILED')`

const openTradeFilesQuery = `SELECT ` + tradeFileColumns + ` FROM trade_files
		WHERE run_id = $1 AND ` + openTradeFile + ` AND id > $2 ORDER BY id LIMIT $3`

// OpenTradeFiles returns up to n of the run's trade files that Infinia
// has not decided yet (neither SUCCESS nor FAILED) with an id above after,
// ordered by id: keyset pages over the files still open, each walking the
// index trade_files_run_open from its cursor.
func (l *Ledger) OpenTradeFiles(ctx context.Context, runID, after int64, n int) ([]pipeline.TradeFile, error) {
	return l.tradeFiles(ctx, openTradeFilesQuery, runID, after, n)
}

// sentAgain is the SQL condition of a trade file whose held items a
// person sent again (SendAgain): refused, but no longer for a person.
const sentAgain = `EXISTS (SELECT 1 FROM resolutions s WHERE s.kind = '` + KindSentAgain + `'
		AND s.subject = trade_files.name AND s.idem_key = trade_files.request_no)`

// RefusedTradeFiles returns the first n of the run's trade files Infinia
// refused (FAILED), ordered by id, but those a person sent again.
func (l *Ledger) RefusedTradeFiles(ctx context.Context, runID int64, n int) ([]pipeline.TradeFile, error) {
	return l.tradeFiles(ctx, `SELECT `+tradeFileColumns+` FROM trade_files
		WHERE run_id = $1 AND status = 'FAILED' AND NOT `+sentAgain+` ORDER BY id LIMIT $2`, runID, n)
}

// RefusedRowsLeftFiles returns the run's refused (FAILED) trade files a
// person sent again without the rows Infinia refused, those rows still
// rejected, ordered by id: what resolve --all-refused --refused-rows sends
// again besides RefusedTradeFiles (it passed them over, and their refused
// rows stayed rejected, the seller never paid for them).
func (l *Ledger) RefusedRowsLeftFiles(ctx context.Context, runID int64) ([]pipeline.TradeFile, error) {
	return l.tradeFiles(ctx, `SELECT `+tradeFileColumns+` FROM trade_files
		WHERE run_id = $1 AND status = 'FAILED' AND `+sentAgain+`
		  AND NOT EXISTS (SELECT 1 FROM resolutions s WHERE s.kind = '`+KindRefusedRowsSentAgain+`'
			AND s.subject = trade_files.name AND s.idem_key = trade_files.request_no)
		  AND EXISTS (SELECT 1 FROM items i WHERE i.business_date = trade_files.business_date AND i.seller_id = trade_files.seller_id
			AND i.currency = trade_files.currency AND i.run_id = trade_files.run_id AND i.provider_ref = trade_files.request_no
			AND i.payout_key = '' AND i.state = 'rejected' AND starts_with(i.reason, $2))
		ORDER BY id`, runID, infiniaRefusedRow)
}

func (l *Ledger) tradeFiles(ctx context.Context, q string, args ...any) ([]pipeline.TradeFile, error) {
	rows, err := l.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read trade files: %w", err)
	}
	defer rows.Close()
	var out []pipeline.TradeFile
	for rows.Next() {
		f, err := scanTradeFile(rows)
		if err != nil {
			return nil, fmt.Errorf("read trade files: %w", err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// TradeFileCounts counts the run's trade files: all of them, those
// Infinia accepted (SUCCESS) and those it refused (FAILED). A refused file
// whose held items a person sent again (SendAgain) is in none of the
// counts: it is neither open nor for a person any more.
func (l *Ledger) TradeFileCounts(ctx context.Context, runID int64) (all, accepted, refused int, err error) {
	err = l.db.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE NOT resent), count(*) FILTER (WHERE status = 'SUCCESS'),
		       count(*) FILTER (WHERE status = 'FAILED' AND NOT resent)
		FROM (SELECT status, status = 'FAILED' AND `+sentAgain+` AS resent FROM trade_files WHERE run_id = $1) f`, runID).Scan(&all, &accepted, &refused)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("count trade files: %w", err)
	}
	return all, accepted, refused, nil
}

// EachUnfiled calls fn for every seller and currency with recorded items
// of the run in the channels that are in no trade file yet, ordered by
// seller and currency: what the items sum to and count (as Payables counts
// them), and the last attempt of the run's trade files of the seller in
// that currency so far (0: none; the next file is that attempt + 1), and
// how many sellers and currencies there are in all. The rows stream: fn may
// write to the ledger (record the file) while later ones are read, and
// the caller holds one group at a time however many sellers the day has.
func (l *Ledger) EachUnfiled(ctx context.Context, runID int64, channels []pipeline.Channel, fn func(p pipeline.Payable, lastAttempt, groups int) error) error {
	rows, err := l.db.QueryContext(ctx, `SELECT i.seller_id, i.currency, COALESCE(sum(i.seller_minor) FILTER (WHERE i.payout_key = ''), 0),
		       count(*) FILTER (WHERE i.payout_key = ''),
		       (SELECT COALESCE(max(t.attempt), 0) FROM trade_files t WHERE t.business_date = i.business_date AND t.seller_id = i.seller_id
		          AND t.currency = i.currency AND t.run_id = $1),
		       count(*) OVER ()
		FROM items i WHERE i.run_id = $1 AND i.channel = ANY ($2) AND i.state = 'recorded' AND i.provider_ref = ''
		GROUP BY i.seller_id, i.currency, i.business_date ORDER BY i.seller_id, i.currency`, runID, channelNames(channels))
	if err != nil {
		return fmt.Errorf("read the items in no trade file: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p pipeline.Payable
		var cur string
		var last, groups int
		if err := rows.Scan(&p.SellerID, &cur, &p.Amount, &p.Items, &last, &groups); err != nil {
			return fmt.Errorf("read the items in no trade file: %w", err)
		}
		p.Currency = pipeline.Currency(cur)
		if err := fn(p, last, groups); err != nil {
			return err
		}
	}
	return rows.Err()
}

// SetItemsState moves a run's items of one seller and currency (and the
// given channels) from state `from` to `to`, with a reason, payout key and
// provider reference (empty strings keep nothing). It returns the count.
func (l *Ledger) SetItemsState(ctx context.Context, runID int64, sellerID string, cur pipeline.Currency, channels []pipeline.Channel,
	from, to, reason, payoutKey, ref string) (int64, error) {
	chs := make([]string, len(channels))
	for i, c := range channels {
		chs[i] = string(c)
	}
	res, err := l.db.ExecContext(ctx, `UPDATE items SET state = $6, reason = $7, payout_key = $8, provider_ref = $9
		WHERE business_date = `+runDate+` AND seller_id = $2 AND currency = $3 AND run_id = $1 AND channel = ANY ($4) AND state = $5`,
		runID, sellerID, string(cur), pq.Array(chs), from, to, reason, payoutKey, ref)
	if err != nil {
		return 0, fmt.Errorf("set items of %s %s to %s: %w", sellerID, cur, to, err)
	}
	return res.RowsAffected()
}

// Payables sums a run's items in the given state and channels by seller
// and currency, ordered by seller and currency, counting only the items no
// payout covers yet (a seller whose items all wait on a payout comes with
// 0, so that its payout is resolved); in state recorded, only the items in
// no trade file yet.
func (l *Ledger) Payables(ctx context.Context, runID int64, state string, channels []pipeline.Channel) ([]pipeline.Payable, error) {
	chs := make([]string, len(channels))
	for i, c := range channels {
		chs[i] = string(c)
	}
	rows, err := l.db.QueryContext(ctx, `SELECT seller_id, currency, COALESCE(sum(seller_minor) FILTER (WHERE payout_key = ''), 0),
		       count(*) FILTER (WHERE payout_key = '') FROM items
		WHERE run_id = $1 AND channel = ANY ($2) AND state = $3 AND (state <> 'recorded' OR provider_ref = '')
		GROUP BY seller_id, currency ORDER BY seller_id, currency`, runID, pq.Array(chs), state)
	if err != nil {
		return nil, fmt.Errorf("read payables: %w", err)
	}
	defer rows.Close()
	var out []pipeline.Payable
	for rows.Next() {
		var p pipeline.Payable
		var cur string
		if err := rows.Scan(&p.SellerID, &cur, &p.Amount, &p.Items); err != nil {
			return nil, err
		}
		p.Currency = pipeline.Currency(cur)
		out = append(out, p)
	}
	return out, rows.Err()
}

// SetBinding records a seller's binding status.
func (l *Ledger) SetBinding(ctx context.Context, b pipeline.Binding) error {
	_, err := l.db.ExecContext(ctx, `INSERT INTO seller_bindings (seller_id, infinia_seller_id, status, request_no, source)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seller_id) DO UPDATE SET
		infinia_seller_id = CASE WHEN EXCLUDED.infinia_seller_id = '' THEN seller_bindings.infinia_seller_id ELSE EXCLUDED.infinia_seller_id END,
		status = EXCLUDED.status, request_no = EXCLUDED.request_no, source = EXCLUDED.source, updated_at = now()`,
		b.SellerID, b.ProviderSellerID, b.Status, b.RequestNo, b.Source)
	if err != nil {
		return fmt.Errorf("record binding of %s: %w", b.SellerID, err)
	}
	return nil
}

// GetBinding returns the recorded binding of a seller, ok false when none.
func (l *Ledger) GetBinding(ctx context.Context, sellerID string) (pipeline.Binding, bool, error) {
	var b pipeline.Binding
	err := l.db.QueryRowContext(ctx, `SELECT seller_id, infinia_seller_id, status, request_no, source
		FROM seller_bindings WHERE seller_id = $1`, sellerID).Scan(&b.SellerID, &b.ProviderSellerID, &b.Status, &b.RequestNo, &b.Source)
	if errors.Is(err, sql.ErrNoRows) {
		return b, false, nil
	}
	return b, err == nil, err
}

// Bindings returns every recorded binding, by seller.
func (l *Ledger) Bindings(ctx context.Context) ([]pipeline.Binding, error) {
	var out []pipeline.Binding
	rows, err := l.db.QueryContext(ctx, `SELECT seller_id, infinia_seller_id, status, request_no, source
		FROM seller_bindings ORDER BY seller_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var b pipeline.Binding
		if err := rows.Scan(&b.SellerID, &b.ProviderSellerID, &b.Status, &b.RequestNo, &b.Source); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// Delivered reports whether the webhook notification requestNo, saying
// that Infinia seller infiniaID's binding is status, was recorded
// (RecordDelivery) already. A notification of that requestNo about
// another seller or status is not: see migration 00041.
func (l *Ledger) Delivered(ctx context.Context, requestNo, infiniaID, status string) (bool, error) {
	var seen bool
	err := l.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM webhook_events
		WHERE request_no = $1 AND infinia_seller_id = $2 AND status = $3)`, requestNo, infiniaID, status).Scan(&seen)
	return seen, err
}

// RecordDelivery records that the webhook notification requestNo (Infinia
// seller infiniaID's binding is status) was dealt with: only once what it
// prompted is recorded, so that a delivery whose recording failed is dealt
// with again when Infinia delivers it again (recorded first, a failed
// recording was lost for good: found by a review), and only once the
// binding status query confirmed it. Recording it twice is harmless.
func (l *Ledger) RecordDelivery(ctx context.Context, requestNo, infiniaID, status string) error {
	_, err := l.db.ExecContext(ctx, `INSERT INTO webhook_events (request_no, infinia_seller_id, status)
		VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, requestNo, infiniaID, status)
	return err
}

// knownSellersQuery reads every seller the ledger knows an Infinia id
// for, with the id and its recorded binding's status. The sellers of the
// runs are walked one seller at a time through run_sellers_infinia_seller
// (seller_id, run_id), each one's latest run read from its end: it costs
// two index probes a seller, however many nights each was in. A DISTINCT
// ON over run_sellers read and sorted every seller of every run (a row a
// seller and night: on two years of nights of 1,500 sellers with an
// Infinia id, 1,050,000 rows, a sort spilled to disk, 12 s).
const knownSellersQuery = `
		WITH RECURSIVE s (seller_id) AS (
			(SELECT seller_id FROM run_sellers WHERE infinia_seller_id <> '' ORDER BY seller_id LIMIT 1)
			UNION ALL
			SELECT (SELECT r.seller_id FROM run_sellers r WHERE r.infinia_seller_id <> '' AND r.seller_id > s.seller_id
			        ORDER BY r.seller_id LIMIT 1)
			FROM s WHERE s.seller_id IS NOT NULL)
		SELECT k.seller_id, k.infinia_seller_id, COALESCE(b.status, '') FROM (
			SELECT DISTINCT ON (seller_id) seller_id, infinia_seller_id FROM (
				SELECT seller_id, infinia_seller_id, 1 AS pref FROM seller_bindings WHERE infinia_seller_id <> ''
				UNION ALL
				SELECT s.seller_id, (SELECT r.infinia_seller_id FROM run_sellers r
				                     WHERE r.seller_id = s.seller_id AND r.infinia_seller_id <> ''
				                     ORDER BY r.run_id DESC LIMIT 1), 2
				FROM s WHERE s.seller_id IS NOT NULL
			) u ORDER BY seller_id, pref) k
		LEFT JOIN seller_bindings b USING (seller_id)
		ORDER BY k.seller_id`

// KnownSellers returns every seller the ledger knows an Infinia id for - its
// recorded binding's, else its latest run's (the id the platform gave it
// last) - with its recorded status ("" when none), by seller id.
func (l *Ledger) KnownSellers(ctx context.Context) ([]pipeline.Binding, error) {
	// Among a seller's runs, the latest: the first row of the seller's
	// runs was the one taken, often its oldest id (found by a review).
	rows, err := l.db.QueryContext(ctx, knownSellersQuery)
	if err != nil {
		return nil, fmt.Errorf("read known sellers: %w", err)
	}
	defer rows.Close()
	var out []pipeline.Binding
	for rows.Next() {
		var b pipeline.Binding
		if err := rows.Scan(&b.SellerID, &b.ProviderSellerID, &b.Status); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// sellerOfInfiniaIDQuery finds the seller of an Infinia id (its argument):
// the seller whose binding has it, else the seller of the latest run that
// gave it (an id the platform moved to another seller is the other's).
// The latest run is read from the end of the id's runs in
// run_sellers_infinia_run (migration 00025): one index entry, where the
// whole of the id's runs - a night each that its seller sold - was read
// and sorted for every binding webhook.
const sellerOfInfiniaIDQuery = `SELECT seller_id FROM (
		SELECT seller_id, 1 AS pref, 0::bigint AS run_id FROM seller_bindings WHERE infinia_seller_id = $1
		UNION ALL (SELECT seller_id, 2, run_id FROM run_sellers WHERE infinia_seller_id = $1 AND infinia_seller_id <> ''
		           ORDER BY run_id DESC LIMIT 1)) s
		ORDER BY pref, run_id DESC LIMIT 1`

// SellerOfInfiniaID returns the platform seller id of an Infinia seller id,
// ok false when the ledger has never known the id (no binding, no run's
// seller has it).
func (l *Ledger) SellerOfInfiniaID(ctx context.Context, infiniaID string) (id string, ok bool, err error) {
	err = l.db.QueryRowContext(ctx, sellerOfInfiniaIDQuery, infiniaID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	return id, err == nil, err
}

// ItemsToVerify returns a run's items of channel ch whose payment is to be
// verified - unverified, or held by an earlier verification (a payment
// still confirming, a refund awaiting approval: its reason starts with
// heldPrefix) - by order number.
func (l *Ledger) ItemsToVerify(ctx context.Context, runID int64, ch pipeline.Channel, heldPrefix string) ([]pipeline.VerifyItem, error) {
	items, _, err := l.ItemsToVerifyAfter(ctx, runID, ch, heldPrefix, "", 0)
	return items, err
}

// The pages of a run's items in one state (the verification's, the WeChat
// distribution's) each walk the next `limit` of the run's items of their
// channel by order number, all of them, and return those in the state
// among them. An item's state is indexed nowhere (no index of items may
// name it: the items' updates would not be HOT), and a page that asked
// the planner for the next `limit` items in a state would be planned on
// its guess of how many there are: in a ledger of many days, whose items
// are almost all settled, it guesses few, and reads every item of the run
// after the cursor, and sorts them, for every page. Bounded by its walk, a
// page costs what it walks, however the planner reads it: a first run
// reads each of the day's items of the channel once (almost all in the
// state), a re-run of a finished day too, to find none.
const (
	// itemsWalkQuery is where a page's walk ends (NULL: nothing after the
	// cursor) and how many items it walked: by the run's items in order
	// (items_run_order, migration 00008), or its Pay Protocol ones
	// (items_run_payprotocol, migration 00018).
	itemsWalkQuery = `SELECT max(order_no), count(*) FROM (SELECT order_no FROM items
		WHERE run_id = $1 AND channel = $2 AND order_no > $3 ORDER BY order_no LIMIT $4) w`
	// itemsToVerifyQuery reads the items to verify of a walk ($4, $5]:
	// unverified, or held with a reason starting with $3.
	itemsToVerifyQuery = `SELECT order_no, seller_id, channel, provider_txn_id, currency, category,
	gross_minor, refunded_minor, commission_minor, seller_minor, rule, paid_at, confirmed_at, state, reason,
	CASE WHEN refunded_minor > 0 THEN (SELECT COALESCE(sum(lr.amount_minor), 0) FROM late_refunds lr
	     WHERE lr.order_no = items.order_no AND lr.state IN ('pending', 'clawed')
	       -- read by a later date: one read on a date no later than the
	       -- item's is netted by its row (the clawbacks ignore it)
	       AND lr.business_date > items.business_date) ELSE 0 END
	FROM items WHERE run_id = $1 AND channel = $2
	  AND (state = 'unverified' OR (state = 'held' AND starts_with(reason, $3)))
	  AND order_no > $4 AND order_no <= $5
	ORDER BY order_no`
	// itemsInStateQuery reads the items in state $3 of a walk ($4, $5].
	itemsInStateQuery = `SELECT order_no, seller_id, channel, provider_txn_id, currency, category,
	gross_minor, refunded_minor, commission_minor, seller_minor, rule, paid_at, confirmed_at, starts_with(reason, 'held: ')
	FROM items WHERE run_id = $1 AND channel = $2 AND state = $3 AND order_no > $4 AND order_no <= $5
	ORDER BY order_no`
)

// walk walks the next limit (0: every one) of the run's items of channel
// ch after `after`: end is the last order number walked (ok false: no
// item follows `after`), next the cursor of the page after this one, end
// again, or "" when the walk reached the run's last item.
func (l *Ledger) walk(ctx context.Context, runID int64, ch pipeline.Channel, after string, limit int) (end, next string, ok bool, err error) {
	n := sql.NullInt64{Int64: int64(limit), Valid: limit > 0}
	var last sql.NullString
	var walked int64
	if err := l.db.QueryRowContext(ctx, itemsWalkQuery, runID, string(ch), after, n).Scan(&last, &walked); err != nil || !last.Valid {
		return "", "", false, err
	}
	if limit > 0 && walked == int64(limit) {
		next = last.String
	}
	return last.String, next, true, nil
}

// ItemsToVerifyAfter is ItemsToVerify's keyset page: of the next limit (0:
// every one) items of the run's channel whose order number comes after
// `after`, those to verify, by order number, so that a verification holds
// one page at a time. next is the cursor of the next page, the last order
// number walked; "" when the walk reached the run's last item.
func (l *Ledger) ItemsToVerifyAfter(ctx context.Context, runID int64, ch pipeline.Channel, heldPrefix, after string, limit int) (
	items []pipeline.VerifyItem, next string, err error) {
	end, next, ok, err := l.walk(ctx, runID, ch, after, limit)
	if err != nil || !ok {
		if err != nil {
			err = fmt.Errorf("read items to verify: %w", err)
		}
		return nil, "", err
	}
	rows, err := l.db.QueryContext(ctx, itemsToVerifyQuery, runID, string(ch), heldPrefix, after, end)
	if err != nil {
		return nil, "", fmt.Errorf("read items to verify: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v pipeline.VerifyItem
		s := &v.Split
		var c, cur string
		if err := rows.Scan(&s.OrderNo, &s.SellerID, &c, &s.ProviderTxnID, &cur, &s.Category, &s.Amount, &s.Refunded,
			&s.Commission, &s.SellerShare, &s.Rule, &s.PaidAt, &s.ConfirmedAt, &v.State, &v.Reason, &v.LateRefunded); err != nil {
			return nil, "", err
		}
		s.Channel, s.Currency = pipeline.Channel(c), pipeline.Currency(cur)
		items = append(items, v)
	}
	return items, next, rows.Err()
}

// ItemsInState returns a run's items of one channel in one state, by order
// number.
func (l *Ledger) ItemsInState(ctx context.Context, runID int64, ch pipeline.Channel, state string) ([]pipeline.Split, error) {
	items, _, err := l.ItemsInStateAfter(ctx, runID, ch, state, "", 0)
	return items, err
}

// ItemsInStateAfter is ItemsInState's keyset page: of the next limit (0:
// every one) items of the run's channel whose order number comes after
// `after`, those in the state, by order number, so that a stage reading a
// day's items holds one page at a time. next is the cursor of the next
// page, the last order number walked; "" when the walk reached the run's
// last item.
func (l *Ledger) ItemsInStateAfter(ctx context.Context, runID int64, ch pipeline.Channel, state, after string, limit int) (
	items []pipeline.Split, next string, err error) {
	end, next, ok, err := l.walk(ctx, runID, ch, after, limit)
	if err != nil || !ok {
		if err != nil {
			err = fmt.Errorf("read %s items: %w", state, err)
		}
		return nil, "", err
	}
	rows, err := l.db.QueryContext(ctx, itemsInStateQuery, runID, string(ch), state, after, end)
	if err != nil {
		return nil, "", fmt.Errorf("read %s items: %w", state, err)
	}
	defer rows.Close()
	for rows.Next() {
		var s pipeline.Split
		var c, cur string
		if err := rows.Scan(&s.OrderNo, &s.SellerID, &c, &s.ProviderTxnID, &cur, &s.Category, &s.Amount, &s.Refunded,
			&s.Commission, &s.SellerShare, &s.Rule, &s.PaidAt, &s.ConfirmedAt, &s.Held); err != nil {
			return nil, "", err
		}
		s.Channel, s.Currency = pipeline.Channel(c), pipeline.Currency(cur)
		items = append(items, s)
	}
	return items, next, rows.Err()
}

// SetItemState moves one item of a run from state `from` to `to`.
func (l *Ledger) SetItemState(ctx context.Context, runID int64, orderNo, from, to, reason string) error {
	_, err := l.execPrepared(ctx, `UPDATE items SET state = $4, reason = $5 WHERE run_id = $1 AND order_no = $2 AND state = $3`,
		runID, orderNo, from, to, reason)
	return err
}

// SetItemPaid marks one recorded item of a run paid by the request key with
// the provider's reference, and why when it is not the usual way (reason
// "" otherwise).
func (l *Ledger) SetItemPaid(ctx context.Context, runID int64, orderNo, payoutKey, ref, reason string) error {
	_, err := l.execPrepared(ctx, `UPDATE items SET state = 'paid', reason = $5, payout_key = $3, provider_ref = $4
		WHERE run_id = $1 AND order_no = $2 AND state = 'recorded'`, runID, orderNo, payoutKey, ref, reason)
	return err
}

// KindSentAgain is the kind of the resolution SendAgain records of a
// refused trade file: its subject the file's name, its key the file's
// requestNo. KindRefusedRowsSentAgain is the one it records when the rows
// Infinia refused go on a later call than the file's held rows.
const (
	KindSentAgain            = "trade_file_sent_again"
	KindRefusedRowsSentAgain = "trade_file_refused_rows_sent_again"
)

// SentAgain is what SendAgain did with a trade file.
type SentAgain struct {
	File       pipeline.TradeFile
	Orders     int64 // the file's items now in no file again, to go out in a further file of the date
	Resolution Resolution
	Before     bool // sent again before: nothing moved now
	// RefusedLeft counts, when Before, the file's rows Infinia refused
	// that are still rejected: --refused-rows sends them.
	RefusedLeft int64
}

// SendAgainRequest is what a person asks of SendAgain.
type SendAgainRequest struct {
	Name string // the trade file's name
	Note string // who confirmed with Infinia that it took none of the file, the reference, what was fixed
	// RefusedRows sends again the rows Infinia refused too, not only the
	// held rest of the file.
	RefusedRows bool
	// Lost is, for a file Infinia has not decided, what shows that
	// Infinia lost it (infiniapay.Client.LostFile): such a file is given
	// up (FAILED, its upload failed with the proof) and sent again. Empty:
	// only a file Infinia refused is sent again.
	Lost string
}

// SendAgain returns the items of trade file r.Name of date d to the items
// of its run in no trade file, so that the next run of the date builds
// them into a further file of the seller and currency (the next attempt:
// a new name and requestNo) and uploads it. The file is one Infinia
// refused (FAILED): its held items go (the rows Infinia did not refuse),
// and with r.RefusedRows the rows it refused too; or one Infinia lost
// (r.Lost): it is given up first - refused for this run with the proof,
// its upload failed - and all its items go. It is what a person does once
// the cause is fixed (the trade file's layout, say, or the platform's
// data) and Infinia confirms it took none of the file: settle never sends
// a file's orders again by itself, as only Infinia can say what it took
// of a file. The file is then no longer for a person (RefusedTradeFiles,
// TradeFileCounts), and the resolution is recorded with the note, once: a
// second call moves nothing (Before), but for the rows Infinia refused
// when the first call left them and this one asks for them (recorded as
// KindRefusedRowsSentAgain, once). Refused (pipeline.KindUsage): a file
// Infinia accepted or has not decided (without r.Lost), one with nothing
// to send again.
func (l *Ledger) SendAgain(ctx context.Context, d pipeline.Date, r SendAgainRequest) (SentAgain, error) {
	var out SentAgain
	if strings.TrimSpace(r.Note) == "" {
		return out, pipeline.Errorf(pipeline.KindUsage, "--note", "say why the file's orders can go out again: who confirmed with Infinia that it took none of the file, the reference, what was fixed")
	}
	name := r.Name
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		out.File, err = scanTradeFile(tx.QueryRowContext(ctx, `SELECT `+tradeFileColumns+` FROM trade_files
			WHERE business_date = $1 AND name = $2 FOR UPDATE OF trade_files`, d.String(), name))
		f := &out.File
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return pipeline.Errorf(pipeline.KindUsage, "--trade-file", "%s: no trade file of %s has this name (the run's output and orders.csv name a refused one: \"held: trade file NAME was refused by Infinia\")", name, d)
		case err != nil:
			return err
		case f.Status == "SUCCESS":
			return pipeline.Errorf(pipeline.KindUsage, "--trade-file", "%s: Infinia accepted it; its orders are paid by their seller's revenue share", name)
		case f.Status != "FAILED" && r.Lost == "":
			return pipeline.Errorf(pipeline.KindUsage, "--trade-file", "%s: Infinia has not refused it (%s): every run asks Infinia about it again; nothing to send again", name, f.Status)
		}
		out.Resolution = Resolution{Kind: KindSentAgain, Subject: name, Key: f.RequestNo}
		created, err := recordResolution(ctx, tx, &out.Resolution, r.Note, l.Actor())
		if err != nil {
			return err
		}
		again := !created // sent again before: only its refused rows may go now
		if again {
			if !r.RefusedRows {
				out.Before = true
				return tx.QueryRowContext(ctx, `SELECT count(*) FROM items WHERE business_date = $1 AND seller_id = $2 AND currency = $3
					AND run_id = $4 AND provider_ref = $5 AND payout_key = '' AND state = 'rejected' AND starts_with(reason, $6)`,
					d.String(), f.SellerID, string(f.Currency), f.RunID, f.RequestNo, infiniaRefusedRow).Scan(&out.RefusedLeft)
			}
			// Sent again before without the rows Infinia refused: they go
			// now, under a resolution of their own (with this note), once.
			rows := Resolution{Kind: KindRefusedRowsSentAgain, Subject: name, Key: f.RequestNo}
			if created, err = recordResolution(ctx, tx, &rows, r.Note, l.Actor()); err != nil || !created {
				out.Before, out.Resolution = !created, rows
				return err
			}
			out.Resolution = rows
		}
		if f.Status != "FAILED" {
			// Lost: given up, so that no run asks about it or uploads it
			// again (the upload stage feeds only open files).
			f.Status, f.Reason = "FAILED", "lost by Infinia, given up by a person: "+r.Lost
			if _, err := tx.ExecContext(ctx, `UPDATE trade_files SET status = $2, reason = $3, updated_at = now() WHERE id = $1`,
				f.ID, f.Status, f.Reason); err != nil {
				return err
			}
			var id int64
			err := tx.QueryRowContext(ctx, `SELECT id FROM effects WHERE run_id = $1 AND idem_key = $2 AND state NOT IN ('succeeded', 'failed')`,
				f.RunID, f.RequestNo).Scan(&id)
			switch {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return err
			default:
				var n int
				if err := tx.QueryRowContext(ctx, recordOutcomeSQL, id, string(pipeline.CauseGivenUp), string(pipeline.EffectFailed), "",
					"given up by a person ("+r.Lost+"): "+r.Note).Scan(&n); err != nil {
					return err
				}
			}
		}
		if r.RefusedRows {
			// A late refund of a refused row's order was ignored while the
			// order was rejected (nothing was paid on it): the order is
			// paid after all now, so its refund is pending again, clawed
			// back once the order is paid (else the seller kept it).
			if _, err := tx.ExecContext(ctx, `UPDATE late_refunds lr SET state = $8, reason = ''
				FROM items i WHERE lr.order_no = i.order_no AND lr.state = $9 AND lr.reason = $10
				  AND i.business_date = $1 AND i.seller_id = $2 AND i.currency = $3 AND i.run_id = $4 AND i.provider_ref = $5
				  AND i.payout_key = '' AND $6 AND i.state = 'rejected' AND starts_with(i.reason, $7)`,
				d.String(), f.SellerID, string(f.Currency), f.RunID, f.RequestNo, r.RefusedRows, infiniaRefusedRow,
				pipeline.LateRefundPending, pipeline.LateRefundIgnored, pipeline.LateRefundOfRejected); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `UPDATE items SET state = 'recorded', reason = '', provider_ref = ''
			WHERE business_date = $1 AND seller_id = $2 AND currency = $3 AND run_id = $4 AND provider_ref = $5 AND payout_key = ''
			  AND (NOT $8 AND state IN ('held', 'recorded') OR $6 AND state = 'rejected' AND starts_with(reason, $7))`,
			d.String(), f.SellerID, string(f.Currency), f.RunID, f.RequestNo, r.RefusedRows, infiniaRefusedRow, again)
		if err != nil {
			return err
		}
		if out.Orders, err = res.RowsAffected(); err != nil {
			return err
		}
		if out.Orders == 0 {
			what := "the rows Infinia refused stay rejected; --refused-rows sends them too"
			if r.RefusedRows {
				what = "none of its orders is held or refused by Infinia now"
			}
			return pipeline.Errorf(pipeline.KindUsage, "--trade-file", "%s: nothing to send again (%s); nothing recorded", name, what)
		}
		return nil
	})
	if err != nil && pipeline.KindOf(err) != pipeline.KindUsage {
		err = fmt.Errorf("send trade file %s again: %w", name, err)
	}
	return out, err
}

// TradeFileNamed returns the trade file of date d named name, ok false
// when there is none.
func (l *Ledger) TradeFileNamed(ctx context.Context, d pipeline.Date, name string) (pipeline.TradeFile, bool, error) {
	f, err := scanTradeFile(l.db.QueryRowContext(ctx, `SELECT `+tradeFileColumns+` FROM trade_files
		WHERE business_date = $1 AND name = $2`, d.String(), name))
	if errors.Is(err, sql.ErrNoRows) {
		return f, false, nil
	}
	if err != nil {
		return f, false, fmt.Errorf("read trade file %s: %w", name, err)
	}
	return f, true, nil
}
