package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/lib/pq"

	"github.com/settlekit/settle/internal/dbconn"
	"github.com/settlekit/settle/pipeline"
)

// WriteDay records the run's snapshot and, in the same pass, its items
// (pipeline.DayWriter): the extract and transform stages in one stream,
// the day crossing the wire twice (platform to settle, settle to the
// ledger) instead of four times. Two connections, two transactions:
//
//   - the snapshot's, as WriteSnapshot: the rows COPYed into source_rows,
//     the sellers, StageExtract done;
//   - the items', as WriteItems' direct way: the items COPYed straight into
//     items at the same time (the rejects, rare, wait in memory), then,
//     once the snapshot is committed and so visible to it, the rejects
//     checked against the items and recorded, StageTransform done.
//
// The snapshot's commits first: a crash between the two leaves extract
// done and transform not, and the transform stage, run again, records the
// items from the snapshot. Whatever stops the items' side (an order number
// shared or settled before, more rejects than the direct way holds, a
// classifier error, an error of its connection) only drops the items'
// transaction: the snapshot is recorded all the same and the transform
// stage does the rest the usual way. Statistics of every table loaded are
// refreshed after the commits, the two transactions' tables side by side.
func (l *Ledger) WriteDay(ctx context.Context, run *pipeline.Run, fill func(add func(pipeline.SourceRow) error, addSeller func(pipeline.Seller) error, items pipeline.ItemStream) error) (pipeline.DayCounts, error) {
	var out pipeline.DayCounts
	snapConn, snapTx, err := l.beginConn(ctx)
	if err != nil {
		return out, err
	}
	defer snapConn.Close()
	defer snapTx.Rollback() // after Commit: sql.ErrTxDone, nothing done
	itemConn, itemTx, err := l.beginConn(ctx)
	if err != nil {
		return out, err
	}
	defer itemConn.Close()
	defer itemTx.Rollback()

	if err := holdRun(ctx, snapTx, run.ID); err != nil {
		return out, err
	}
	for _, q := range []string{`DELETE FROM source_rows WHERE run_id = $1`, `DELETE FROM run_sellers WHERE run_id = $1`} {
		if _, err := snapTx.ExecContext(ctx, q, run.ID); err != nil {
			return out, err
		}
	}
	items := &dayItems{c: &directCopy{runID: run.ID, date: run.Key.Date.String()}}
	if err := prepareItems(ctx, itemTx, run.ID); err != nil {
		items.Abandon(err)
	}

	var sellers []pipeline.Seller // one COPY at a time: sellers go in after the rows
	var fillErr error
	err = copyFrom(ctx, snapConn, copySnapshot, func(snap *lineSender) error {
		add := func(r pipeline.SourceRow) error {
			if !r.OtherShard {
				out.Rows++
			}
			return sendSourceRow(snap, run.ID, r)
		}
		addSeller := func(s pipeline.Seller) error {
			sellers = append(sellers, s)
			return nil
		}
		if items.Abandoned() {
			fillErr = fill(add, addSeller, items)
			return fillErr
		}
		cerr := copyFrom(ctx, itemConn, copyItems, func(ls *lineSender) error {
			items.c.ls = ls
			if fillErr = fill(add, addSeller, items); fillErr != nil {
				return fillErr
			}
			if items.Abandoned() {
				return errItemsAbandoned // the COPY ends; its transaction is rolled back
			}
			return nil
		})
		if fillErr != nil {
			return fillErr
		}
		if cerr != nil {
			items.Abandon(cerr)
		}
		return nil
	})
	if err != nil {
		return pipeline.DayCounts{}, fmt.Errorf("copy snapshot: %w", err)
	}
	if err := copySellers(ctx, snapTx, run.ID, sellers); err != nil {
		return pipeline.DayCounts{}, err
	}
	if err := completeExtract(ctx, snapTx, run.ID, out.Rows); err != nil {
		return pipeline.DayCounts{}, err
	}
	if err := snapTx.Commit(); err != nil {
		return pipeline.DayCounts{}, err
	}

	// The snapshot is recorded: nothing from here on fails the call.
	if !items.Abandoned() {
		counts, err := finishItems(ctx, itemTx, run, items.c)
		if err != nil {
			items.Abandon(err)
		} else {
			out.Items = &counts
		}
	}
	if out.Items == nil {
		itemTx.Rollback()
		out.Left = items.why
	}
	tables := [][]string{{"source_rows", "run_sellers"}}
	if out.Items != nil {
		tables = append(tables, []string{"items", "rejects"})
	}
	return out, l.analyzeSideBySide(ctx, tables...)
}

// errItemsAbandoned ends the items' COPY of a pass whose items were dropped.
var errItemsAbandoned = errors.New("items dropped")

// beginConn opens a transaction on a connection of its own (copyFrom needs
// the connection).
func (l *Ledger) beginConn(ctx context.Context) (*sql.Conn, *sql.Tx, error) {
	conn, err := dbconn.Fresh(ctx, l.db.Conn)
	if err != nil {
		return nil, nil, err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, tx, nil
}

// prepareItems readies the items' transaction of a pass: the run held,
// rejects of an earlier attempt dropped, the staging table for the rejects.
func prepareItems(ctx context.Context, tx *sql.Tx, runID int64) error {
	if err := holdRun(ctx, tx, runID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM rejects WHERE run_id = $1`, runID); err != nil {
		return err
	}
	return createStage(ctx, tx)
}

// finishItems records the rejects of a pass whose items are in (the
// snapshot committed: visible to tx) and StageTransform done, and commits.
func finishItems(ctx context.Context, tx *sql.Tx, run *pipeline.Run, c *directCopy) (pipeline.ItemCounts, error) {
	var counts pipeline.ItemCounts
	ok, err := finishDirect(ctx, tx, run, c, &counts)
	if err != nil {
		return counts, err
	}
	if !ok {
		return counts, errors.New("a rejected row shares its order number with another row, or an item a key with a row of another shard")
	}
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM rejects WHERE run_id = $1`, run.ID).Scan(&counts.Rejects); err != nil {
		return counts, err
	}
	if err := completeStage(ctx, tx, run.ID, pipeline.StageTransform); err != nil {
		return counts, err
	}
	return counts, tx.Commit()
}

// analyzeSideBySide runs analyze for each group of tables at the same time
// (each on a connection of its own).
func (l *Ledger) analyzeSideBySide(ctx context.Context, groups ...[]string) error {
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.analyze(ctx, g...)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// dayItems is the item side of a pass: directCopy until it is abandoned.
type dayItems struct {
	c   *directCopy
	why error // set once abandoned
}

func (d *dayItems) Split(s pipeline.Split) error {
	if d.why != nil {
		return nil
	}
	if err := d.c.Split(s); err != nil {
		d.Abandon(err)
		return err
	}
	return nil
}

func (d *dayItems) Reject(r pipeline.Reject) error {
	if d.why != nil {
		return nil
	}
	if err := d.c.Reject(r); err != nil {
		d.Abandon(err)
		return err
	}
	return nil
}

// Abandon drops the pass's items, keeping the first reason, said plainly.
func (d *dayItems) Abandon(why error) {
	if d.why != nil || why == nil {
		return
	}
	var pe *pq.Error
	switch {
	case errors.As(why, &pe) && pe.Code == "23505": // unique_violation
		why = errors.New("an order number or a provider transaction is shared or settled by another run")
	case errors.As(why, &pe) && pe.Code == "40P01": // deadlock_detected
		why = errors.New("a key shared with a row of another shard, written by both shards at once")
	}
	d.why = why
}

func (d *dayItems) Abandoned() bool { return d.why != nil }
