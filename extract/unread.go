package extract

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"unicode/utf8"

	"github.com/settlekit/settle/internal/dbconn"
	"github.com/settlekit/settle/pipeline"
)

// ErrNotComparable is Unread's error when the platform's order numbers
// cannot be compared with a snapshot's in one order: a comparison not
// made, not a failure of the platform.
var ErrNotComparable = errors.New("the platform's order numbers cannot be compared with the snapshot's")

// ascii reports whether b is ASCII alone.
func ascii(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Unread compares what the source query gives for window w now with read,
// the order numbers a date was read with (its snapshot), and calls fn with
// each order number the query gives that read lacks, once: an order
// written into the window after the date was read (a transaction that took
// its now() before the window's end and committed after the run, a
// back-office correction, a replica behind its primary), which no run
// reads. It returns how many rows the query gave.
//
// read must give its order numbers in Go's string order (byte order), each
// as often as it likes, as ORDER BY order_no COLLATE "C" gives them; the
// query's are read in that order too (ORDER BY order_no::text COLLATE "C",
// whatever the platform database's default collation), so that the two
// streams are merged and nothing is held but the current order number of
// each: memory stays flat however large the day. A stream that is not in
// that order is an error, never a finding (and the order numbers fn was
// given before it are not to be trusted). An order number the query gives
// as NULL is left out (no run can name it).
//
// The query runs as Orders runs it: in a read-only REPEATABLE READ
// transaction (one snapshot), given w as $1 and $2, its text columns read
// as their bytes on a SQL_ASCII database (as asBytes reads them) and made
// UTF-8 as the snapshot keeps them (pipeline.ValidText); on a database
// whose encoding is not UTF8, an order number that is not ASCII ends the
// comparison with ErrNotComparable (the server sorts its own bytes, not
// the snapshot's UTF-8). It does not wait
// for the day to be over (Margin, Unfinished and StandbyOfPrimary are not
// looked at): the dates compared were read already.
func (s *Source) Unread(ctx context.Context, w pipeline.Window, read iter.Seq2[string, error], fn func(orderNo string) error) (rows int64, err error) {
	what := "source query " + s.name()
	conn, err := dbconn.Fresh(ctx, s.DB.Connx)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	defer conn.Close()
	tx, err := conn.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	defer tx.Rollback()
	var enc string
	if err := tx.QueryRowContext(ctx, `SHOW server_encoding`).Scan(&enc); err != nil {
		return 0, fmt.Errorf("%s: server encoding: %w", what, err)
	}
	// The query on lines of its own: one ending in a -- comment keeps it.
	col, order := `q.order_no`, `q.order_no::text COLLATE "C"`
	if enc == "SQL_ASCII" {
		col = `convert_to(q.order_no::text, 'SQL_ASCII')`
		order = col // bytea: byte order
	}
	q := `SELECT ` + col + ` FROM (` + "\n" + pipeline.QueryBody(s.Query) + "\n" + `) q WHERE q.order_no IS NOT NULL ORDER BY ` + order
	rs, err := tx.QueryContext(ctx, q, w.Start, w.End)
	if err != nil {
		return 0, statementTimeout(what, refused(ctx, what, err))
	}
	defer rs.Close()

	next, stop := iter.Pull2(read)
	defer stop()
	var have string
	haveOK, started := false, false
	advance := func() error {
		prev, was := have, started
		h, err, ok := next()
		if err != nil {
			return fmt.Errorf("the date's snapshot: %w", err)
		}
		if ok && was && haveOK && h < prev {
			return fmt.Errorf("the date's snapshot is not in byte order (%q after %q): nothing compared", h, prev)
		}
		have, haveOK, started = h, ok, true
		return nil
	}
	if err := advance(); err != nil {
		return 0, err
	}
	var b []byte
	var prev string
	for rs.Next() {
		if err := rs.Scan(&b); err != nil {
			return rows, fmt.Errorf("%s: row %d: %w", what, rows+1, err)
		}
		if enc != "UTF8" && !ascii(b) {
			// The server orders its own bytes (SQL_ASCII's raw, LATIN1's,
			// EUC's), not the UTF-8 the snapshot keeps them as: the
			// streams are not in one order, and every night the date was
			// compared it failed, exit 1, though nothing was wrong.
			return rows, fmt.Errorf("%w: order number %q is not ASCII, on a %s database", ErrNotComparable, pipeline.ValidText(string(b)), enc)
		}
		no := pipeline.ValidText(string(b))
		rows++
		if rows > 1 {
			if no < prev {
				return rows, fmt.Errorf("%s: its order numbers do not come in byte order (%q after %q): nothing compared", what, no, prev)
			}
			if no == prev {
				continue // the same order number again: told once
			}
		}
		prev = no
		for haveOK && have < no {
			if err := advance(); err != nil {
				return rows, err
			}
		}
		if haveOK && have == no {
			continue
		}
		if err := fn(no); err != nil {
			return rows, err
		}
	}
	if err := rs.Err(); err != nil {
		return rows, statementTimeout(what, refused(ctx, what, err))
	}
	return rows, nil
}
