package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
)

// WriteSnapshot replaces the run's snapshot with the rows (by COPY,
// streaming) and sellers fill adds, and records how many rows of its shard
// it read (runs.rows_read, SnapshotCount) and the extract stage done, in
// one transaction. The run is held (FOR KEY SHARE) for the transaction: the
// check a foreign key would make for every row, made once. Statistics of
// the tables it loaded are refreshed right after the commit.
func (l *Ledger) WriteSnapshot(ctx context.Context, runID int64, fill func(add func(pipeline.SourceRow) error, addSeller func(pipeline.Seller) error) error) (int64, error) {
	var n int64
	var sellers []pipeline.Seller // one COPY at a time: sellers go in after the rows
	err := l.inConnTx(ctx, func(conn *sql.Conn, tx *sql.Tx) error {
		if err := holdRun(ctx, tx, runID); err != nil {
			return err
		}
		for _, q := range []string{`DELETE FROM source_rows WHERE run_id = $1`, `DELETE FROM run_sellers WHERE run_id = $1`} {
			if _, err := tx.ExecContext(ctx, q, runID); err != nil {
				return err
			}
		}
		err := copyFrom(ctx, conn, copySnapshot,
			func(ls *lineSender) error {
				return fill(func(r pipeline.SourceRow) error {
					if !r.OtherShard {
						n++
					}
					return sendSourceRow(ls, runID, r)
				}, func(s pipeline.Seller) error {
					sellers = append(sellers, s)
					return nil
				})
			})
		if err != nil {
			return fmt.Errorf("copy snapshot: %w", err)
		}
		if err := copySellers(ctx, tx, runID, sellers); err != nil {
			return err
		}
		return completeExtract(ctx, tx, runID, n)
	})
	if err != nil {
		return n, err
	}
	return n, l.analyze(ctx, "source_rows", "run_sellers")
}

// completeExtract records, in the snapshot's transaction, how many rows of
// its shard the run's extract stage read (runs.rows_read, SnapshotCount)
// and the stage done.
func completeExtract(ctx context.Context, tx *sql.Tx, runID, rows int64) error {
	if _, err := tx.ExecContext(ctx, `UPDATE runs SET rows_read = $2 WHERE id = $1`, runID, rows); err != nil {
		return fmt.Errorf("record the rows read: %w", err)
	}
	return completeStage(ctx, tx, runID, pipeline.StageExtract)
}

// copySnapshot is the COPY of sendSourceRow's lines.
const copySnapshot = `COPY source_rows (run_id, seq, order_no, seller_id, provider,
	provider_txn_id, currency, amount_minor, refunded_minor, category, paid_at, confirmed_at, other_shard) FROM STDIN`

// sendSourceRow sends a snapshot row, as read (a row marked OtherShard:
// its keys, migration 00020).
func sendSourceRow(ls *lineSender, runID int64, r pipeline.SourceRow) error {
	c := ls.start()
	c.int(runID)
	c.int(r.Seq)
	for _, v := range []*string{r.OrderNo, r.SellerID, r.Provider, r.ProviderTxnID, r.Currency,
		r.AmountMinor, r.RefundedMinor, r.Category} {
		c.text(v)
	}
	c.timeOrNull(r.PaidAt)
	c.timeOrNull(r.ConfirmedAt)
	c.bool(r.OtherShard)
	return ls.send()
}

// holdRun checks that the run exists and keeps it (FOR KEY SHARE) until the
// transaction ends: what the foreign key of every bulk-loaded row checked,
// once per transaction (migration 00005).
func holdRun(ctx context.Context, tx *sql.Tx, runID int64) error {
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM runs WHERE id = $1 FOR KEY SHARE`, runID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("run %d is not in the ledger", runID)
	}
	return err
}

// analyze refreshes the planner's statistics of tables a stage has just
// bulk-loaded (and committed), so that the next stage's queries are planned
// on the day's real numbers rather than on what autovacuum last saw. It runs
// after the commit: ANALYZE holds a lock that two shards' transactions
// would otherwise queue on.
func (l *Ledger) analyze(ctx context.Context, tables ...string) error {
	for _, t := range tables {
		if _, err := l.db.ExecContext(ctx, `ANALYZE `+t); err != nil {
			return fmt.Errorf("refresh statistics of %s (its rows are committed): %w", t, err)
		}
	}
	return nil
}

// SellerAccounts names, for each account column of run_sellers
// (infinia_seller_id, wechat_sub_mchid, in this order), the provider the
// seller's account is at: its key in pipeline.Seller.Accounts. An account
// at another provider needs a column (a migration) and its name here.
func SellerAccounts() []string { return []string{"infiniapay", "wechatpay"} }

// accountColumns are run_sellers' account columns, in SellerAccounts' order.
var accountColumns = []string{"infinia_seller_id", "wechat_sub_mchid"}

// accountOneSeller says, by provider (SellerAccounts), whether an account
// there is one seller's (the ChannelSpec's OneSellerAnAccount of the
// channels it pays): two sellers recorded with one is bad data.
var accountOneSeller = map[string]bool{"infiniapay": true}

// accountColumn is run_sellers' column of the sellers' accounts at
// provider.
func accountColumn(provider string) (string, error) {
	i := slices.Index(SellerAccounts(), provider)
	if i < 0 {
		return "", fmt.Errorf("the ledger keeps no accounts at %s", provider)
	}
	return accountColumns[i], nil
}

func copySellers(ctx context.Context, tx *sql.Tx, runID int64, sellers []pipeline.Seller) error {
	stmt, err := tx.PrepareContext(ctx, `COPY run_sellers (run_id, seller_id, name, entity_type, country,
		infinia_seller_id, wechat_sub_mchid, carried_only) FROM STDIN`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	providers := SellerAccounts()
	for _, s := range sellers {
		args := []any{runID, s.ID, s.Name, s.EntityType, s.Country}
		for _, p := range providers {
			args = append(args, s.Account(p))
		}
		for p, id := range s.Accounts {
			if id != "" && !slices.Contains(providers, p) {
				return fmt.Errorf("seller %s has an account at %s, which the ledger has no column for", s.ID, p)
			}
		}
		args = append(args, s.CarriedOnly)
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return err
		}
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		return fmt.Errorf("copy sellers: %w", err)
	}
	return nil
}

// RunSellers returns the sellers recorded with the run's snapshot, by id,
// with their accounts (SellerAccounts; an empty column is none).
func (l *Ledger) RunSellers(ctx context.Context, runID int64) (map[string]pipeline.Seller, error) {
	return l.sellers(ctx, `SELECT seller_id, name, entity_type, country, infinia_seller_id,
		wechat_sub_mchid FROM run_sellers WHERE run_id = $1`, runID)
}

// OtherShardSellers returns the sellers the date's other shards of key's
// sharding recorded with their snapshots (those that read the day before
// this one), by id, with their accounts: two sellers with one Infinia
// seller id in two shards were both paid to it, each shard seeing its own
// sellers alone (found by a review).
func (l *Ledger) OtherShardSellers(ctx context.Context, key pipeline.RunKey) (map[string]pipeline.Seller, error) {
	return l.sellers(ctx, `SELECT rs.seller_id, rs.name, rs.entity_type, rs.country, rs.infinia_seller_id, rs.wechat_sub_mchid
		FROM run_sellers rs JOIN runs r ON r.id = rs.run_id
		WHERE r.business_date = $1 AND r.shard_count = $2 AND r.shard_index <> $3`,
		key.Date.String(), key.Shard.Count, key.Shard.Index)
}

// sellers reads sellers with their accounts (q's columns: id, name, entity
// type, country, then the accounts in SellerAccounts' order), by id.
func (l *Ledger) sellers(ctx context.Context, q string, args ...any) (map[string]pipeline.Seller, error) {
	rows, err := l.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read sellers: %w", err)
	}
	defer rows.Close()
	providers := SellerAccounts()
	out := map[string]pipeline.Seller{}
	acc := make([]string, len(providers))
	for rows.Next() {
		var s pipeline.Seller
		dest := []any{&s.ID, &s.Name, &s.EntityType, &s.Country}
		for i := range acc {
			dest = append(dest, &acc[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		for i, id := range acc {
			if id != "" {
				if s.Accounts == nil {
					s.Accounts = make(map[string]string, len(acc))
				}
				s.Accounts[providers[i]] = id
			}
		}
		out[s.ID] = s
	}
	return out, rows.Err()
}

// AccountsAt returns, by seller id, the accounts at provider (its name in
// SellerAccounts) of the sellers recorded with the run's snapshot; a
// seller with none there is absent. It is what a provider's stages keep of
// the sellers: one string a seller, not the whole Seller, so that a day of
// tens of thousands of sellers costs each provider a megabyte or two.
func (l *Ledger) AccountsAt(ctx context.Context, runID int64, provider string) (map[string]string, error) {
	column, err := accountColumn(provider)
	if err != nil {
		return nil, err
	}
	rows, err := l.db.QueryContext(ctx, `SELECT seller_id, `+column+` FROM run_sellers
		WHERE run_id = $1 AND `+column+` <> ''`, runID)
	if err != nil {
		return nil, fmt.Errorf("read sellers' accounts at %s: %w", provider, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var seller, account string
		if err := rows.Scan(&seller, &account); err != nil {
			return nil, err
		}
		out[seller] = account
	}
	return out, rows.Err()
}

// AccountOf returns a seller's account at provider recorded with the run
// ("" when none), or, for a seller the run did not record, the latest one
// recorded with any run: a run pays a seller with no order that day its
// carried balance, and the seller is then recorded with earlier runs only
// (EachPayoutCandidate finds the account the same way; the payout is sent
// to the one it was planned for).
func (l *Ledger) AccountOf(ctx context.Context, runID int64, provider, sellerID string) (string, error) {
	column, err := accountColumn(provider)
	if err != nil {
		return "", err
	}
	var account string
	err = l.queryRowPrepared(ctx, `SELECT COALESCE((SELECT `+column+` FROM run_sellers WHERE run_id = $1 AND seller_id = $2),
		(SELECT h.`+column+` FROM run_sellers h WHERE h.seller_id = $2 AND h.`+column+` <> '' ORDER BY h.run_id DESC LIMIT 1), '')`,
		runID, sellerID).Scan(&account)
	if err != nil {
		return "", fmt.Errorf("read seller %s's account at %s: %w", sellerID, provider, err)
	}
	return account, nil
}

// ReadSnapshot streams the run's snapshot in the order it was read (by
// seq), but the keys of other shards' rows. Duplicated order numbers are
// found set-wise by WriteItems, so the snapshot is never sorted.
func (l *Ledger) ReadSnapshot(ctx context.Context, runID int64, fn func(pipeline.SourceRow) error) error {
	rows, err := l.db.QueryContext(ctx, `SELECT seq, order_no, seller_id, provider, provider_txn_id, currency,
		amount_minor, refunded_minor, category, paid_at, confirmed_at
		FROM source_rows WHERE run_id = $1 AND NOT other_shard ORDER BY seq`, runID)
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	defer rows.Close()
	var sc pipeline.SourceScan
	var seq int64
	dest := sc.Dest(&seq)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("read snapshot: %w", err)
		}
		r := pipeline.SourceRow{Seq: seq}
		sc.Fill(&r)
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// itemStart is the state a split's item starts in.
func itemStart(s pipeline.Split) pipeline.ItemState {
	if s.SellerHold != "" {
		return pipeline.ItemHeld
	}
	if s.Unverified {
		return pipeline.ItemUnverified
	}
	return pipeline.ItemRecorded
}

// itemReason is the reason a split's item starts with: "" but for an item
// held for its seller's account.
func itemReason(s pipeline.Split) string {
	if s.SellerHold != "" {
		return pipeline.SellerHoldPrefix + s.SellerHold
	}
	return ""
}

// itemCopy streams splits and rejects into one temporary table: a connection
// runs one COPY at a time, and the two arrive interleaved.
type itemCopy struct {
	ctx   context.Context
	stmt  *sql.Stmt
	items int64
}

func (c *itemCopy) Split(s pipeline.Split) error {
	if !s.Balanced() {
		return fmt.Errorf("order %s: split does not conserve its amount (%d != %d + %d + %d)",
			s.OrderNo, s.Amount, s.Refunded, s.Commission, s.SellerShare)
	}
	c.items++
	_, err := c.stmt.ExecContext(c.ctx, "item", s.Seq, s.OrderNo, s.SellerID, string(s.Channel), s.ProviderTxnID,
		string(s.Currency), s.Category, strconv.FormatInt(s.Amount, 10), strconv.FormatInt(s.Refunded, 10),
		s.Commission, s.SellerShare, s.Rule, s.PaidAt, s.ConfirmedAt, itemReason(s), itemStart(s), s.TxnOnce)
	return err
}

func (c *itemCopy) Reject(r pipeline.Reject) error {
	_, err := c.stmt.ExecContext(c.ctx, "reject", r.Seq, r.OrderNo, r.SellerID, r.Provider, nil,
		r.Currency, nil, r.Amount, r.Refunded, nil, nil, nil, nil, nil, r.Reason, nil, nil)
	return err
}

// WriteItems records the run's items and rejects and the transform stage
// done, in one transaction. Rejects of an earlier attempt are replaced.
//
// The rows may arrive in any order: every row sharing its order number with
// another row of the snapshot is rejected (with two versions of an order,
// neither can be trusted), whatever its own outcome. An order that another
// run already settled becomes a reject naming that run: an order settles
// once, ever. Both are checked set-wise.
//
// The items are first COPYed straight into items (the rejects, rare, wait
// in memory, at most maxHeldRejects of them): the primary key refuses an order seen twice or
// settled before, and the few rejected rows are checked against the items
// by that key. Only when either finds an order number shared does the
// stage start again (fill is called a second time) through a staging
// table, where the culprits are looked up (so does a day with more
// rejects than the direct way holds). Statistics of items and
// rejects are refreshed right after the commit.
func (l *Ledger) WriteItems(ctx context.Context, run *pipeline.Run, fill func(pipeline.ItemWriter) error) (pipeline.ItemCounts, error) {
	var counts pipeline.ItemCounts
	err := l.inConnTx(ctx, func(conn *sql.Conn, tx *sql.Tx) error {
		if err := holdRun(ctx, tx, run.ID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM rejects WHERE run_id = $1`, run.ID); err != nil {
			return err
		}
		if err := createStage(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `SAVEPOINT direct`); err != nil {
			return err
		}
		done, err := writeItemsDirect(ctx, conn, tx, run, fill, &counts)
		if err != nil {
			return err
		}
		if !done {
			if _, err := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT direct`); err != nil {
				return err
			}
			if err := writeItemsStaged(ctx, tx, run, fill, &counts); err != nil {
				return err
			}
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM rejects WHERE run_id = $1`, run.ID).Scan(&counts.Rejects); err != nil {
			return err
		}
		return completeStage(ctx, tx, run.ID, pipeline.StageTransform)
	})
	if err != nil {
		return pipeline.ItemCounts{}, err
	}
	return counts, l.analyze(ctx, "items", "rejects")
}

// createStage creates the staging table of the transform stage's rows, its
// keys in the collation of the items' (migration 00007).
func createStage(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `CREATE TEMP TABLE item_stage (
		kind text, seq bigint, order_no text COLLATE "C", seller_id text COLLATE "C", channel text, provider_txn_id text,
		currency text COLLATE "C", category text, gross text, refunded text, commission bigint, seller bigint,
		rule text, paid_at timestamptz, confirmed_at timestamptz, reason text, state text, txn_once boolean) ON COMMIT DROP`)
	return err
}

// maxHeldRejects bounds the rejects the direct way holds in memory while
// the items stream (about 200 bytes each): a day with more takes the
// staged way, so memory stays flat however bad the day.
var maxHeldRejects = 10000

// errManyRejects stops the direct way when it would hold too many rejects.
var errManyRejects = errors.New("more rejects than the direct way holds")

// directCopy COPYs splits straight into items and holds the rejects (a
// connection runs one COPY at a time; rejects are few).
type directCopy struct {
	ls      *lineSender
	runID   int64
	date    string
	items   int64
	rejects []pipeline.Reject
	totals  runTotals
}

func (c *directCopy) Split(s pipeline.Split) error {
	if !s.Balanced() {
		return fmt.Errorf("order %s: split does not conserve its amount (%d != %d + %d + %d)",
			s.OrderNo, s.Amount, s.Refunded, s.Commission, s.SellerShare)
	}
	state := itemStart(s)
	c.items++
	c.totals.add(s)
	l := c.ls.start()
	l.str(s.OrderNo)
	l.int(c.runID)
	l.str(c.date)
	for _, v := range []string{s.SellerID, string(s.Channel), s.ProviderTxnID, string(s.Currency), s.Category} {
		l.str(v)
	}
	for _, v := range []int64{s.Amount, s.Refunded, s.Commission, s.SellerShare} {
		l.int(v)
	}
	l.str(s.Rule)
	l.time(s.PaidAt)
	l.time(s.ConfirmedAt)
	l.str(itemReason(s))
	l.str(state)
	l.bool(s.TxnOnce)
	return c.ls.send()
}

func (c *directCopy) Reject(r pipeline.Reject) error {
	if len(c.rejects) >= maxHeldRejects {
		return errManyRejects
	}
	c.rejects = append(c.rejects, r)
	return nil
}

// copyItems is the COPY of directCopy's lines.
const copyItems = `COPY items (order_no, run_id, business_date, seller_id, channel, provider_txn_id,
	currency, category, gross_minor, refunded_minor, commission_minor, seller_minor, rule, paid_at, confirmed_at, reason, state, txn_once) FROM STDIN`

// writeItemsDirect is WriteItems' way for a day whose order numbers are
// all distinct and new: items straight into items, then the rejects. It
// reports false, with the transaction to be rolled back to the savepoint
// direct, when an order number is shared.
func writeItemsDirect(ctx context.Context, conn *sql.Conn, tx *sql.Tx, run *pipeline.Run, fill func(pipeline.ItemWriter) error, counts *pipeline.ItemCounts) (bool, error) {
	c := &directCopy{runID: run.ID, date: run.Key.Date.String()}
	err := copyFrom(ctx, conn, copyItems,
		func(ls *lineSender) error {
			c.ls = ls
			return fill(c)
		})
	if err != nil {
		var pe *pq.Error
		if errors.As(err, &pe) && (pe.Code == "23505" || pe.Code == "40P01") {
			// unique_violation: an order number seen before; deadlock_detected:
			// shards of the day that COPYed keys they share in opposite orders
			// (the staged way never writes such keys).
			return false, nil
		}
		if errors.Is(err, errManyRejects) {
			return false, nil
		}
		return false, fmt.Errorf("copy items: %w", err)
	}
	return finishDirect(ctx, tx, run, c, counts)
}

// finishDirect records the rejects the direct way held, once its items are
// in: it reports false, recording nothing, when a rejected row shares its
// order number with another row. The run's snapshot must be visible to tx.
func finishDirect(ctx context.Context, tx *sql.Tx, run *pipeline.Run, c *directCopy, counts *pipeline.ItemCounts) (bool, error) {
	if sharded(run) {
		shared, err := sharedWithOtherShards(ctx, tx, run.ID)
		if err != nil {
			return false, err
		}
		if shared {
			return false, nil
		}
	}
	if len(c.rejects) > 0 {
		if err := stageRejects(ctx, tx, c.rejects); err != nil {
			return false, err
		}
		if err := findDuplicates(ctx, tx, run.ID, false, sharded(run)); err != nil {
			return false, err
		}
		var shared bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM item_dups)`).Scan(&shared); err != nil {
			return false, err
		}
		if shared {
			return false, nil
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO rejects (run_id, seq, order_no, seller_id, provider, currency, amount, refunded, reason)
			SELECT $1, seq, order_no, seller_id, channel, currency, gross, refunded, reason
			FROM item_stage WHERE kind = 'reject'`, run.ID); err != nil {
			return false, fmt.Errorf("record rejects: %w", err)
		}
	}
	if err := c.totals.record(ctx, tx, run.ID); err != nil {
		return false, err
	}
	counts.Items = c.items
	return true, nil
}

// sharded reports whether the run is a shard of its day: its snapshot may
// hold keys of the other shards' rows (migration 00020).
func sharded(run *pipeline.Run) bool { return run.Key.Shard.Count > 1 }

// otherShardKeys fills other_keys, a temporary table of the keys of the
// other shards' rows in a shard's snapshot (migration 00020), analyzed:
// every query comparing them with the shard's own rows joins this table,
// whose size the planner knows. It must not join source_rows or items by
// the run: their statistics may predate it (the pass analyzes after its
// commits; the items are this transaction's), and a plan that took the
// run's rows for one walked the 300,000 of the other shards for each of
// 100,000 items.
func otherShardKeys(ctx context.Context, tx *sql.Tx, runID int64) error {
	return execSteps(ctx, tx, runID, "read the other shards' keys", `CREATE TEMP TABLE IF NOT EXISTS other_keys ON COMMIT DROP AS
		SELECT order_no, provider COLLATE "C" AS channel, provider_txn_id COLLATE "C" AS provider_txn_id
		FROM source_rows WHERE run_id = $1 AND other_shard`, `ANALYZE other_keys`)
}

// execSteps runs statements in order in tx, giving runID to those that
// take $1; an error names what they do.
func execSteps(ctx context.Context, tx *sql.Tx, runID int64, what string, steps ...string) error {
	for _, q := range steps {
		var args []any
		if strings.Contains(q, "$1") {
			args = append(args, runID)
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return nil
}

// sharedWithOtherShards reports whether an item a shard's run wrote into
// items shares its order number, or its provider transaction where its
// channel settles once per transaction, with a row of another shard's
// seller. It fills other_keys (otherShardKeys) and compares the run's
// items' keys with it, both analyzed.
func sharedWithOtherShards(ctx context.Context, tx *sql.Tx, runID int64) (bool, error) {
	if err := otherShardKeys(ctx, tx, runID); err != nil {
		return false, err
	}
	if err := execSteps(ctx, tx, runID, "find keys shared with other shards", `CREATE TEMP TABLE run_keys ON COMMIT DROP AS
		SELECT order_no, CASE WHEN txn_once AND provider_txn_id <> '' THEN channel COLLATE "C" END AS channel,
		       provider_txn_id COLLATE "C" AS provider_txn_id
		FROM items WHERE run_id = $1`,
		`ANALYZE run_keys`); err != nil {
		return false, err
	}
	// Counted, not EXISTS: a plan for the first match walks every pair
	// when there is none.
	var shared int64
	err := tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM run_keys i JOIN other_keys r ON r.order_no = i.order_no)
		+ (SELECT count(*) FROM run_keys i JOIN other_keys r ON r.channel = i.channel AND r.provider_txn_id = i.provider_txn_id)`).Scan(&shared)
	if err != nil {
		return false, fmt.Errorf("find keys shared with other shards: %w", err)
	}
	_, err = tx.ExecContext(ctx, `DROP TABLE run_keys`)
	return shared > 0, err
}

// stagedSharedWithOtherShards fills shard_shared, the seq of every staged
// item sharing a key with a row of another shard (other_keys, filled and
// analyzed first, as item_stage is), analyzed: the staged way leaves those
// items out of items with an anti-join on a table whose size the planner
// knows (an anti-join straight on other_keys was estimated at one row and
// run as a nested loop over every pair).
func stagedSharedWithOtherShards(ctx context.Context, tx *sql.Tx, runID int64) error {
	if err := otherShardKeys(ctx, tx, runID); err != nil {
		return err
	}
	return execSteps(ctx, tx, runID, "find keys shared with other shards", `ANALYZE item_stage`, `CREATE TEMP TABLE shard_shared ON COMMIT DROP AS
		SELECT s.seq FROM item_stage s JOIN other_keys r ON r.order_no = s.order_no WHERE s.kind = 'item'
		UNION
		SELECT s.seq FROM item_stage s JOIN other_keys r
		  ON r.channel = s.channel COLLATE "C" AND r.provider_txn_id = s.provider_txn_id COLLATE "C"
		WHERE s.kind = 'item' AND s.txn_once AND s.provider_txn_id <> ''`, `ANALYZE shard_shared`)
}

// stageRejects COPYs rejects into item_stage.
func stageRejects(ctx context.Context, tx *sql.Tx, rejects []pipeline.Reject) error {
	stmt, err := tx.PrepareContext(ctx, `COPY item_stage FROM STDIN`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	c := &itemCopy{ctx: ctx, stmt: stmt}
	for _, r := range rejects {
		if err := c.Reject(r); err != nil {
			return err
		}
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		return fmt.Errorf("copy rejects: %w", err)
	}
	return stmt.Close()
}

// writeItemsStaged is WriteItems' way when an order number is shared: every
// row through item_stage, then set-wise into items and rejects.
func writeItemsStaged(ctx context.Context, tx *sql.Tx, run *pipeline.Run, fill func(pipeline.ItemWriter) error, counts *pipeline.ItemCounts) error {
	// Rolled back to the savepoint: item_stage is empty, item_keys and
	// item_dups are gone.
	stmt, err := tx.PrepareContext(ctx, `COPY item_stage FROM STDIN`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	c := &itemCopy{ctx: ctx, stmt: stmt}
	if err := fill(c); err != nil {
		return err
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		return fmt.Errorf("copy items: %w", err)
	}
	if err := stmt.Close(); err != nil {
		return err
	}
	if sharded(run) {
		if err := stagedSharedWithOtherShards(ctx, tx, run.ID); err != nil {
			return err
		}
	}
	res, err := tx.ExecContext(ctx, `
			INSERT INTO items (order_no, run_id, business_date, seller_id, channel, provider_txn_id, currency,
				category, gross_minor, refunded_minor, commission_minor, seller_minor, rule, paid_at, confirmed_at, reason, state, txn_once)
			SELECT s.order_no, $1, $2, s.seller_id, s.channel, s.provider_txn_id, s.currency, s.category,
			       s.gross::bigint, s.refunded::bigint, s.commission, s.seller, s.rule, s.paid_at, s.confirmed_at,
			       COALESCE(s.reason, ''), s.state, s.txn_once
			FROM item_stage s WHERE s.kind = 'item'`+notSharedWithOtherShards(run)+`
			ON CONFLICT DO NOTHING`,
		run.ID, run.Key.Date.String())
	if err != nil {
		return fmt.Errorf("record items: %w", err)
	}
	inserted, err := res.RowsAffected()
	if err != nil {
		return err
	}
	// A staged item that did not go in shares its order number or its
	// provider transaction with another staged item or with an item
	// already in the ledger: only then is every staged row looked at;
	// otherwise only the rejected rows can share an order number (with
	// each other or an item).
	seen := inserted < c.items
	if seen {
		if _, err := tx.ExecContext(ctx, `ANALYZE item_stage`); err != nil {
			return err
		}
	}
	if err := findDuplicates(ctx, tx, run.ID, seen, sharded(run)); err != nil {
		return err
	}
	removed, err := tx.ExecContext(ctx, `DELETE FROM items i USING item_dups d WHERE i.order_no = d.order_no AND i.run_id = $1`, run.ID)
	if err != nil {
		return fmt.Errorf("reject duplicated orders: %w", err)
	}
	gone, err := removed.RowsAffected()
	if err != nil {
		return err
	}
	counts.Items = inserted - gone
	// Every row of a duplicated order number, as read (RejectOf); as
	// written when the snapshot has no such row.
	if _, err := tx.ExecContext(ctx, `
			INSERT INTO rejects (run_id, seq, order_no, seller_id, provider, currency, amount, refunded, reason)
			SELECT $1, u.seq,
			       CASE WHEN r.seq IS NULL THEN u.order_no ELSE `+rejectText("r.order_no")+` END,
			       CASE WHEN r.seq IS NULL THEN u.seller_id ELSE `+rejectText("r.seller_id")+` END,
			       CASE WHEN r.seq IS NULL THEN u.channel ELSE `+rejectText("r.provider")+` END,
			       CASE WHEN r.seq IS NULL THEN u.currency ELSE `+rejectText("r.currency")+` END,
			       CASE WHEN r.seq IS NULL THEN u.gross ELSE `+rejectText("r.amount_minor")+` END,
			       CASE WHEN r.seq IS NULL THEN u.refunded ELSE `+rejectText("r.refunded_minor")+` END,
			       'duplicate order_no: ' || u.n || ' rows share it'
			FROM (SELECT s.*, d.n FROM item_stage s JOIN item_dups d ON d.order_no = s.order_no WHERE s.kind = 'item'
			      UNION ALL
			      SELECT s.*, d.n FROM item_keys k JOIN item_dups d ON d.order_no = k.order_no
			      JOIN item_stage s ON s.seq = k.seq AND s.kind = 'reject') u
			LEFT JOIN source_rows r ON r.run_id = $1 AND r.seq = u.seq`, run.ID); err != nil {
		return fmt.Errorf("record duplicated orders: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `
			INSERT INTO rejects (run_id, seq, order_no, seller_id, provider, currency, amount, refunded, reason)
			SELECT $1, s.seq, s.order_no, s.seller_id, s.channel, s.currency, s.gross, s.refunded, s.reason
			FROM item_stage s WHERE s.kind = 'reject'
			  AND NOT EXISTS (SELECT 1 FROM item_keys k JOIN item_dups d ON d.order_no = k.order_no WHERE k.seq = s.seq)`,
		run.ID); err != nil {
		return fmt.Errorf("record rejects: %w", err)
	}
	if seen {
		// Orders settled by another run: rejected here, never settled twice.
		if _, err := tx.ExecContext(ctx, `
				INSERT INTO rejects (run_id, seq, order_no, seller_id, provider, currency, amount, refunded, reason)
				SELECT $1, s.seq, s.order_no, s.seller_id, s.channel, s.currency, s.gross, s.refunded,
				       'already settled on ' || i.business_date || ' by run ' || i.run_id
				FROM item_stage s JOIN items i ON i.order_no = s.order_no
				WHERE s.kind = 'item' AND i.run_id <> $1
				  AND NOT EXISTS (SELECT 1 FROM item_dups d WHERE d.order_no = s.order_no)`, run.ID); err != nil {
			return fmt.Errorf("record orders settled elsewhere: %w", err)
		}
		n, err := rejectSharedTransactions(ctx, tx, run.ID, sharded(run))
		if err != nil {
			return err
		}
		counts.Items -= n
	}
	return recordTotalsFromItems(ctx, tx, run.ID)
}

// notSharedWithOtherShards is the condition, for a shard's run, that a
// staged item s shares no key with another shard's row (not in
// shard_shared, stagedSharedWithOtherShards): the staged way does not
// write those items into items at all, so that it never waits on another
// shard's uncommitted keys, and rejects them as duplicates
// (findDuplicates, rejectSharedTransactions count those rows).
func notSharedWithOtherShards(run *pipeline.Run) string {
	if !sharded(run) {
		return ""
	}
	return `
			  AND NOT EXISTS (SELECT 1 FROM shard_shared x WHERE x.seq = s.seq)`
}

// rejectSharedTransactions applies "a provider transaction settles once,
// ever" (migration 00019: items whose split says TxnOnce) to a staged day
// whose items did not all go in: every staged item naming a transaction
// another staged item of its channel names (or, with shards, a row of
// another shard's seller: other_keys, filled before) is rejected (the items
// that went in are taken out again), and so is one naming a transaction an
// item of another run settled. A row already rejected for its order number
// keeps that reason. It returns the number of items taken out.
//
// A row of another shard counts whatever its own outcome (it is not
// classified here), where an unsharded run counts only the rows that
// became items: a transaction two orders name is rejected in a shard even
// when the other order is rejected for a reason of its own.
func rejectSharedTransactions(ctx context.Context, tx *sql.Tx, runID int64, shards bool) (int64, error) {
	others := ""
	if shards {
		others = `
			UNION ALL
			SELECT r.channel, r.provider_txn_id FROM other_keys r
			WHERE r.provider_txn_id <> ''
			  AND EXISTS (SELECT 1 FROM item_stage s WHERE s.kind = 'item' AND s.txn_once
			      AND s.channel COLLATE "C" = r.channel AND s.provider_txn_id COLLATE "C" = r.provider_txn_id)`
	}
	q := `CREATE TEMP TABLE txn_dups ON COMMIT DROP AS
		SELECT channel, provider_txn_id, count(*) AS n FROM (
			SELECT channel COLLATE "C" AS channel, provider_txn_id COLLATE "C" AS provider_txn_id
			FROM item_stage WHERE kind = 'item' AND txn_once AND provider_txn_id <> ''` + others + `) k
		GROUP BY 1, 2 HAVING count(*) > 1`
	if _, err := tx.ExecContext(ctx, q); err != nil {
		return 0, fmt.Errorf("find shared provider transactions: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `ANALYZE txn_dups`); err != nil {
		return 0, err
	}
	removed, err := tx.ExecContext(ctx, `DELETE FROM items i USING txn_dups d
		WHERE i.run_id = $1 AND i.channel COLLATE "C" = d.channel AND i.provider_txn_id COLLATE "C" = d.provider_txn_id
		  AND i.txn_once AND i.provider_txn_id <> ''`, runID)
	if err != nil {
		return 0, fmt.Errorf("reject shared provider transactions: %w", err)
	}
	gone, err := removed.RowsAffected()
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO rejects (run_id, seq, order_no, seller_id, provider, currency, amount, refunded, reason)
		SELECT $1, s.seq, s.order_no, s.seller_id, s.channel, s.currency, s.gross, s.refunded,
		       'duplicate provider_txn_id: ' || d.n || ' orders name it'
		FROM item_stage s JOIN txn_dups d ON d.channel = s.channel COLLATE "C" AND d.provider_txn_id = s.provider_txn_id COLLATE "C"
		WHERE s.kind = 'item' AND s.txn_once AND NOT EXISTS (SELECT 1 FROM rejects r WHERE r.run_id = $1 AND r.seq = s.seq)`, runID); err != nil {
		return 0, fmt.Errorf("record shared provider transactions: %w", err)
	}
	// What did not go in and is not rejected yet names a transaction an
	// item of another run settled (any other conflict is rejected above).
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO rejects (run_id, seq, order_no, seller_id, provider, currency, amount, refunded, reason)
		SELECT $1, s.seq, s.order_no, s.seller_id, s.channel, s.currency, s.gross, s.refunded,
		       'provider_txn_id already settled with order ' || i.order_no || ' on ' || i.business_date || ' by run ' || i.run_id
		FROM item_stage s JOIN items i ON i.channel COLLATE "C" = s.channel COLLATE "C"
		     AND i.provider_txn_id COLLATE "C" = s.provider_txn_id COLLATE "C" AND i.txn_once AND i.provider_txn_id <> ''
		WHERE s.kind = 'item' AND s.txn_once AND s.provider_txn_id <> '' AND i.run_id <> $1
		  AND NOT EXISTS (SELECT 1 FROM rejects r WHERE r.run_id = $1 AND r.seq = s.seq)
		  AND NOT EXISTS (SELECT 1 FROM items m WHERE m.order_no = s.order_no AND m.run_id = $1)`, runID); err != nil {
		return 0, fmt.Errorf("record provider transactions settled elsewhere: %w", err)
	}
	return gone, nil
}

// rejectText is pipeline.RejectText in SQL, of a snapshot column (NULL:
// empty): what a reject keeps of a value read back from the snapshot.
func rejectText(col string) string {
	return fmt.Sprintf(`(CASE WHEN length(%[1]s) > %[2]d THEN left(%[1]s, %[3]d) || '…' ELSE COALESCE(%[1]s, '') END)`,
		col, pipeline.MaxRejectText, pipeline.MaxRejectText-1)
}

// findDuplicates fills two temporary tables: item_keys, the order number of
// each staged row that can share one (seq, order_no as read: a NULL or
// empty order number shares nothing: two rows without one were "duplicate
// order_no", not "order_no is empty", found by an adversarial data
// review), and item_dups, the order numbers more than one
// row of the snapshot has, with their count. With all, every staged row is
// keyed (a staged item did not go in); without, only the rejected rows and
// the items they name, found by the items' primary key: every staged item
// went in, so no two of them share an order number. With shards, the rows
// of other shards' sellers naming one of those order numbers are keyed too
// (with a NULL seq, as the items named), from other_keys (otherShardKeys,
// filled before).
func findDuplicates(ctx context.Context, tx *sql.Tx, runID int64, all, shards bool) error {
	// A rejected row's order number as read: the snapshot knows a NULL from
	// an empty string (a writer given no snapshot row: empty is NULL).
	steps := []string{`CREATE TEMP TABLE item_keys ON COMMIT DROP AS
		SELECT seq, order_no FROM (
			SELECT s.seq, CASE WHEN r.seq IS NULL THEN NULLIF(s.order_no, '') ELSE r.order_no END AS order_no
			FROM item_stage s LEFT JOIN source_rows r ON r.run_id = $1 AND r.seq = s.seq WHERE s.kind = 'reject') k
		WHERE order_no <> ''`,
		`ANALYZE item_keys`}
	if all {
		steps = append(steps, `INSERT INTO item_keys SELECT seq, order_no FROM item_stage WHERE kind = 'item'`)
	} else {
		// Each item a rejected row names is one more row of the snapshot.
		steps = append(steps, `INSERT INTO item_keys SELECT NULL, i.order_no
			FROM (SELECT DISTINCT order_no FROM item_keys) k JOIN items i ON i.order_no = k.order_no WHERE i.run_id = $1`)
	}
	if shards {
		steps = append(steps, `ANALYZE item_keys`, `INSERT INTO item_keys SELECT NULL, r.order_no
			FROM other_keys r WHERE r.order_no IN (SELECT order_no FROM item_keys WHERE seq IS NOT NULL)`)
	}
	steps = append(steps, `ANALYZE item_keys`, `CREATE TEMP TABLE item_dups ON COMMIT DROP AS
		SELECT order_no, count(*) AS n FROM item_keys GROUP BY order_no HAVING count(*) > 1`, `ANALYZE item_dups`)
	return execSteps(ctx, tx, runID, "find duplicated orders", steps...)
}

// runTotals sums the splits the direct way COPYs into items, by channel and
// currency, to be added to the run's totals with them (run_totals,
// migration 00016): what a run's end and every re-run print, without
// reading the day's items again. The run's totals are its items' sums
// after every transaction that records items: added to by the direct way,
// summed again from the items by the staged way (which may remove items).
type runTotals struct {
	by       map[totalsKey]*pipeline.Totals
	overflow bool // a sum left int64: the totals are summed from the items instead
}

type totalsKey struct {
	channel  pipeline.Channel
	currency pipeline.Currency
}

func (r *runTotals) add(s pipeline.Split) {
	if r.by == nil {
		r.by = map[totalsKey]*pipeline.Totals{}
	}
	k := totalsKey{s.Channel, s.Currency}
	t := r.by[k]
	if t == nil {
		t = &pipeline.Totals{Channel: s.Channel, Currency: s.Currency}
		r.by[k] = t
	}
	t.Orders++
	for _, f := range []struct {
		sum *int64
		v   int64
	}{{&t.Gross, s.Amount}, {&t.Refunded, s.Refunded}, {&t.Commission, s.Commission}, {&t.Seller, s.SellerShare}} {
		sum := *f.sum + f.v // wraps on overflow, which this sees
		if (f.v > 0 && sum < *f.sum) || (f.v < 0 && sum > *f.sum) {
			r.overflow = true
		}
		*f.sum = sum
	}
}

// record adds the sums to the run's totals (in tx, with the items).
func (r *runTotals) record(ctx context.Context, tx *sql.Tx, runID int64) error {
	if r.overflow {
		return recordTotalsFromItems(ctx, tx, runID)
	}
	if len(r.by) == 0 {
		return nil
	}
	q := `INSERT INTO run_totals (run_id, channel, currency, orders, gross_minor, refunded_minor, commission_minor, seller_minor) VALUES `
	args := []any{runID}
	for _, t := range r.by {
		if len(args) > 1 {
			q += ", "
		}
		n := len(args)
		q += fmt.Sprintf("($1, $%d, $%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6, n+7)
		args = append(args, string(t.Channel), string(t.Currency), t.Orders, t.Gross, t.Refunded, t.Commission, t.Seller)
	}
	q += ` ON CONFLICT (run_id, channel, currency) DO UPDATE SET orders = run_totals.orders + EXCLUDED.orders,
		gross_minor = run_totals.gross_minor + EXCLUDED.gross_minor,
		refunded_minor = run_totals.refunded_minor + EXCLUDED.refunded_minor,
		commission_minor = run_totals.commission_minor + EXCLUDED.commission_minor,
		seller_minor = run_totals.seller_minor + EXCLUDED.seller_minor`
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("record the run's totals: %w", err)
	}
	return nil
}

// recordTotalsFromItems sets the run's totals (in tx, with its items) to
// its items' sums: the staged way, where the items are inserted and
// removed set-wise, and a day whose sums leave int64.
func recordTotalsFromItems(ctx context.Context, tx *sql.Tx, runID int64) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM run_totals WHERE run_id = $1`, runID); err != nil {
		return fmt.Errorf("record the run's totals: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO run_totals (run_id, channel, currency, orders, gross_minor, refunded_minor, commission_minor, seller_minor)
		SELECT $1, channel, currency, count(*), sum(gross_minor), sum(refunded_minor), sum(commission_minor), sum(seller_minor)
		FROM items WHERE run_id = $1 GROUP BY channel, currency`, runID); err != nil {
		return fmt.Errorf("record the run's totals: %w", err)
	}
	return nil
}

// ShardsRead returns, by shard index, the runs of run's date in its
// sharding, run aside, whose transform stage is done
// (pipeline.ShardReads).
func (l *Ledger) ShardsRead(ctx context.Context, run *pipeline.Run) (map[int]int64, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT shard_index, id FROM runs
		WHERE business_date = $1 AND shard_count = $2 AND id <> $3 AND 'transform' = ANY (stages_done)`,
		run.Key.Date.String(), run.Key.Shard.Count, run.ID)
	if err != nil {
		return nil, fmt.Errorf("read the shards of %s: %w", run.Key.Date, err)
	}
	defer rows.Close()
	out := map[int]int64{}
	for rows.Next() {
		var i int
		var id int64
		if err := rows.Scan(&i, &id); err != nil {
			return nil, err
		}
		out[i] = id
	}
	return out, rows.Err()
}

// Holding returns which of the order numbers are held: an item of any run,
// or a reject of runs[i] for orderNos[i] (pipeline.ShardReads). A reject
// keeps its order number as pipeline.RejectText gives it (one longer than
// MaxRejectText characters clipped), and is looked for so.
func (l *Ledger) Holding(ctx context.Context, orderNos []string, runs []int64) (map[string]bool, error) {
	kept := make([]string, len(orderNos))
	for i, no := range orderNos {
		kept[i] = pipeline.RejectText(no)
	}
	rows, err := l.db.QueryContext(ctx, `SELECT u.order_no FROM unnest($1::text[], $2::bigint[], $3::text[]) u (order_no, run_id, kept)
		WHERE EXISTS (SELECT 1 FROM items i WHERE i.order_no = u.order_no)
		   OR EXISTS (SELECT 1 FROM rejects j WHERE j.order_no = u.kept AND j.order_no <> '' AND j.run_id = u.run_id)`,
		pq.Array(orderNos), pq.Array(runs), pq.Array(kept))
	if err != nil {
		return nil, fmt.Errorf("orders held: %w", err)
	}
	defer rows.Close()
	out := make(map[string]bool, len(orderNos))
	for rows.Next() {
		var no string
		if err := rows.Scan(&no); err != nil {
			return nil, err
		}
		out[no] = true
	}
	return out, rows.Err()
}
