package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"

	"github.com/settlekit/settle/pipeline"
)

// WriteSnapshot replaces the run's snapshot with the rows (by COPY,
// streaming) and sellers fill adds, and records the extract stage done, in
// one transaction.
func (l *Ledger) WriteSnapshot(ctx context.Context, runID int64, fill func(add func(pipeline.SourceRow) error, addSeller func(pipeline.Seller) error) error) (int64, error) {
	var n int64
	var sellers []pipeline.Seller // one COPY at a time: sellers go in after the rows
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{`DELETE FROM source_rows WHERE run_id = $1`, `DELETE FROM run_sellers WHERE run_id = $1`} {
			if _, err := tx.ExecContext(ctx, q, runID); err != nil {
				return err
			}
		}
		stmt, err := tx.PrepareContext(ctx, `COPY source_rows (run_id, seq, order_no, seller_id, provider,
			provider_txn_id, currency, amount_minor, refunded_minor, category, paid_at, confirmed_at) FROM STDIN`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		err = fill(func(r pipeline.SourceRow) error {
			n++
			_, err := stmt.ExecContext(ctx, runID, r.Seq, r.OrderNo, r.SellerID, r.Provider, r.ProviderTxnID,
				r.Currency, r.AmountMinor, r.RefundedMinor, r.Category, r.PaidAt, r.ConfirmedAt)
			return err
		}, func(s pipeline.Seller) error {
			sellers = append(sellers, s)
			return nil
		})
		if err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx); err != nil {
			return fmt.Errorf("copy snapshot: %w", err)
		}
		if err := stmt.Close(); err != nil {
			return err
		}
		if err := copySellers(ctx, tx, runID, sellers); err != nil {
			return err
		}
		return completeStage(ctx, tx, runID, pipeline.StageExtract)
	})
	return n, err
}

func copySellers(ctx context.Context, tx *sql.Tx, runID int64, sellers []pipeline.Seller) error {
	stmt, err := tx.PrepareContext(ctx, `COPY run_sellers (run_id, seller_id, name, entity_type, country,
		infinia_seller_id, wechat_sub_mchid) FROM STDIN`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, s := range sellers {
		if _, err := stmt.ExecContext(ctx, runID, s.ID, s.Name, s.EntityType, s.Country, s.InfiniaID, s.WeChatSubMchID); err != nil {
			return err
		}
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		return fmt.Errorf("copy sellers: %w", err)
	}
	return nil
}

// RunSellers returns the sellers recorded with the run's snapshot, by id.
func (l *Ledger) RunSellers(ctx context.Context, runID int64) (map[string]pipeline.Seller, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT seller_id, name, entity_type, country, infinia_seller_id,
		wechat_sub_mchid FROM run_sellers WHERE run_id = $1`, runID)
	if err != nil {
		return nil, fmt.Errorf("read sellers: %w", err)
	}
	defer rows.Close()
	out := map[string]pipeline.Seller{}
	for rows.Next() {
		var s pipeline.Seller
		if err := rows.Scan(&s.ID, &s.Name, &s.EntityType, &s.Country, &s.InfiniaID, &s.WeChatSubMchID); err != nil {
			return nil, err
		}
		out[s.ID] = s
	}
	return out, rows.Err()
}

// ReadSnapshot streams the run's snapshot ordered by order_no (NULL first),
// then seq.
func (l *Ledger) ReadSnapshot(ctx context.Context, runID int64, fn func(pipeline.SourceRow) error) error {
	rows, err := l.db.QueryContext(ctx, `SELECT seq, order_no, seller_id, provider, provider_txn_id, currency,
		amount_minor, refunded_minor, category, paid_at, confirmed_at
		FROM source_rows WHERE run_id = $1 ORDER BY order_no NULLS FIRST, seq`, runID)
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r pipeline.SourceRow
		if err := rows.Scan(&r.Seq, &r.OrderNo, &r.SellerID, &r.Provider, &r.ProviderTxnID, &r.Currency,
			&r.AmountMinor, &r.RefundedMinor, &r.Category, &r.PaidAt, &r.ConfirmedAt); err != nil {
			return fmt.Errorf("read snapshot: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// itemCopy streams splits and rejects into one temporary table: a connection
// runs one COPY at a time, and the two arrive interleaved.
type itemCopy struct {
	ctx  context.Context
	stmt *sql.Stmt
}

func (c *itemCopy) Split(s pipeline.Split) error {
	if !s.Balanced() {
		return fmt.Errorf("order %s: split does not conserve its amount (%d != %d + %d + %d)",
			s.OrderNo, s.Amount, s.Refunded, s.Commission, s.SellerShare)
	}
	_, err := c.stmt.ExecContext(c.ctx, "item", s.Seq, s.OrderNo, s.SellerID, string(s.Channel), s.ProviderTxnID,
		string(s.Currency), s.Category, strconv.FormatInt(s.Amount, 10), strconv.FormatInt(s.Refunded, 10),
		s.Commission, s.SellerShare, s.Rule, s.PaidAt, s.ConfirmedAt, nil)
	return err
}

func (c *itemCopy) Reject(r pipeline.Reject) error {
	_, err := c.stmt.ExecContext(c.ctx, "reject", r.Seq, r.OrderNo, r.SellerID, r.Provider, nil,
		r.Currency, nil, r.Amount, r.Refunded, nil, nil, nil, nil, nil, r.Reason)
	return err
}

// WriteItems records the run's items and rejects and the transform stage
// done, in one transaction. Rejects of an earlier attempt are replaced. An
// order that another run already settled becomes a reject naming that run:
// an order settles once, ever.
func (l *Ledger) WriteItems(ctx context.Context, run *pipeline.Run, fill func(pipeline.ItemWriter) error) (pipeline.ItemCounts, error) {
	var counts pipeline.ItemCounts
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM rejects WHERE run_id = $1`, run.ID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE item_stage (
			kind text, seq bigint, order_no text, seller_id text, channel text, provider_txn_id text,
			currency text, category text, gross text, refunded text, commission bigint, seller bigint,
			rule text, paid_at timestamptz, confirmed_at timestamptz, reason text) ON COMMIT DROP`); err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, `COPY item_stage FROM STDIN`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		if err := fill(&itemCopy{ctx: ctx, stmt: stmt}); err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx); err != nil {
			return fmt.Errorf("copy items: %w", err)
		}
		// Orders settled by another run: rejected here, never settled twice.
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO rejects (run_id, seq, order_no, seller_id, provider, currency, amount, refunded, reason)
			SELECT $1, s.seq, s.order_no, s.seller_id, s.channel, s.currency, s.gross, s.refunded,
			       'already settled on ' || i.business_date || ' by run ' || i.run_id
			FROM item_stage s JOIN items i ON i.order_no = s.order_no
			WHERE s.kind = 'item' AND i.run_id <> $1`, run.ID); err != nil {
			return fmt.Errorf("record orders settled elsewhere: %w", err)
		}
		res, err := tx.ExecContext(ctx, `
			INSERT INTO items (order_no, run_id, business_date, seller_id, channel, provider_txn_id, currency,
				category, gross_minor, refunded_minor, commission_minor, seller_minor, rule, paid_at, confirmed_at, state)
			SELECT s.order_no, $1, $2, s.seller_id, s.channel, s.provider_txn_id, s.currency, s.category,
			       s.gross::bigint, s.refunded::bigint, s.commission, s.seller, s.rule, s.paid_at, s.confirmed_at,
			       CASE WHEN s.channel = $3 THEN $4 ELSE 'recorded' END
			FROM item_stage s
			WHERE s.kind = 'item' AND NOT EXISTS (SELECT 1 FROM items i WHERE i.order_no = s.order_no)`,
			run.ID, run.Key.Date.String(), string(pipeline.ChannelPayProtocol), pipeline.ItemUnverified)
		if err != nil {
			return fmt.Errorf("record items: %w", err)
		}
		counts.Items, _ = res.RowsAffected()
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO rejects (run_id, seq, order_no, seller_id, provider, currency, amount, refunded, reason)
			SELECT $1, seq, order_no, seller_id, channel, currency, gross, refunded, reason
			FROM item_stage WHERE kind = 'reject'`, run.ID); err != nil {
			return fmt.Errorf("record rejects: %w", err)
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM rejects WHERE run_id = $1`, run.ID).Scan(&counts.Rejects); err != nil {
			return err
		}
		return completeStage(ctx, tx, run.ID, pipeline.StageTransform)
	})
	if err != nil {
		return pipeline.ItemCounts{}, err
	}
	return counts, nil
}
