package ledger

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strconv"
	"time"
	"unsafe"

	"github.com/lib/pq"

	"github.com/settlekit/settle/internal/dbconn"
	"github.com/settlekit/settle/pipeline"
)

// copyLine builds one line of COPY's text format. The day's bulk COPYs
// (the snapshot, the items) send their rows as such lines through lib/pq's
// CopyData: database/sql's Exec would convert and check every value of
// every row, a third of the stage's CPU.
type copyLine struct {
	b []byte
}

func (c *copyLine) sep() {
	if len(c.b) > 0 {
		c.b = append(c.b, '\t')
	}
}

// str adds a text value, escaped.
func (c *copyLine) str(s string) {
	c.sep()
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; ch {
		case '\\':
			c.b = append(c.b, '\\', '\\')
		case '\n':
			c.b = append(c.b, '\\', 'n')
		case '\r':
			c.b = append(c.b, '\\', 'r')
		case '\t':
			c.b = append(c.b, '\\', 't')
		default:
			c.b = append(c.b, ch)
		}
	}
}

// text adds a nullable text value.
func (c *copyLine) text(s *string) {
	if s == nil {
		c.null()
		return
	}
	c.str(*s)
}

func (c *copyLine) null() {
	c.sep()
	c.b = append(c.b, '\\', 'N')
}

func (c *copyLine) int(v int64) {
	c.sep()
	c.b = strconv.AppendInt(c.b, v, 10)
}

// bool adds a boolean.
func (c *copyLine) bool(v bool) {
	c.sep()
	if v {
		c.b = append(c.b, 't')
	} else {
		c.b = append(c.b, 'f')
	}
}

// time adds a timestamptz: the instant in UTC, ISO 8601 (years outside
// 1-9999 as lib/pq formats them, with their era).
func (c *copyLine) time(t time.Time) {
	c.sep()
	if y := t.Year(); y < 1 || y > 9999 {
		if inf := pipeline.TimeInfinity(t); inf != "" {
			c.b = append(c.b, inf...) // a source row's, as read
			return
		}
		c.b = append(c.b, pq.FormatTimestamp(t)...)
		return
	}
	c.b = appendUTC(c.b, t)
}

// appendUTC appends t in UTC as t.UTC().AppendFormat(b, "2006-01-02
// 15:04:05.999999999Z07:00") does for years 1-9999, digit by digit:
// AppendFormat was a sixth of settle's CPU in the day's COPYs.
func appendUTC(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	b = append(b, byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+month/10), byte('0'+month%10), '-', byte('0'+day/10), byte('0'+day%10), ' ',
		byte('0'+hour/10), byte('0'+hour%10), ':', byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+sec/10), byte('0'+sec%10))
	if ns := t.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i >= 1; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, 'Z')
}

// timeOrNull adds a nullable timestamptz.
func (c *copyLine) timeOrNull(t *time.Time) {
	if t == nil {
		c.null()
		return
	}
	c.time(*t)
}

// copyData is lib/pq's raw COPY method.
type copyData interface {
	CopyData(ctx context.Context, line string) (driver.Result, error)
}

// lineSender sends the lines of one COPY.
type lineSender struct {
	cd   copyData
	line copyLine
}

// start begins a line.
func (s *lineSender) start() *copyLine {
	s.line.b = s.line.b[:0]
	return &s.line
}

// send sends the line begun by start. CopyData is given no cancellable
// context (it would watch it with a goroutine per line): the stage's
// reading side stops on cancellation, and with it the COPY. The line goes
// as a string over the line's own bytes, not a copy of them: CopyData
// appends it to its buffer before it returns, and the bytes change only at
// the next start (a copy per line was a tenth of settle's allocations).
func (s *lineSender) send() error {
	_, err := s.cd.CopyData(context.Background(), unsafe.String(unsafe.SliceData(s.line.b), len(s.line.b)))
	return err
}

// copyFrom runs query (a COPY ... FROM STDIN) on conn, inside whatever
// transaction conn has open, with the lines write sends, and waits for the
// server to have them all.
//
// Its error is returned beside conn.Raw, never through it: Raw takes an
// error that is driver.ErrBadConn (errors.Is) for the word that conn is
// broken and closes it there, which waits for conn's open transaction to
// end - the transaction the caller rolls back only once copyFrom returned.
// The run hung for good, at the extract stage, when the platform's
// database ended the session the orders were read on (a restart, a
// failover, pg_terminate_backend, a hot standby's "terminating connection
// due to conflict with recovery": lib/pq's error for it is
// driver.ErrBadConn), write handing that error on, or when the ledger's
// own did mid-COPY (found by a review). A broken conn is let go of all the
// same: the transaction's rollback finds it broken.
func copyFrom(ctx context.Context, conn *sql.Conn, query string, write func(*lineSender) error) error {
	var err error
	rerr := conn.Raw(func(dc any) error {
		err = copyRaw(ctx, dc, query, write)
		if err != nil {
			return errCopyFailed
		}
		return nil
	})
	if err != nil {
		return err
	}
	return rerr
}

// errCopyFailed is what copyFrom's function tells conn.Raw of an error,
// which copyFrom returns itself.
var errCopyFailed = errors.New("copy failed")

// copyRaw is copyFrom's work on the driver's connection dc.
func copyRaw(ctx context.Context, dc any, query string, write func(*lineSender) error) error {
	prep, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return errors.New("copy: the driver cannot prepare with a context")
	}
	st, err := prep.PrepareContext(ctx, query)
	if err != nil {
		return err
	}
	cd, ok := st.(copyData)
	if !ok {
		st.Close()
		return errors.New("copy: the driver has no CopyData (lib/pq's COPY)")
	}
	err = write(&lineSender{cd: cd})
	if err == nil {
		//lint:ignore SA1019 lib/pq ends a COPY with Exec(nil): its copyin has no ExecContext
		_, err = st.Exec(nil)
	}
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	return err
}

// inConnTx runs fn in a transaction on one connection of the pool,
// committing when it returns nil: copyFrom needs the connection.
func (l *Ledger) inConnTx(ctx context.Context, fn func(conn *sql.Conn, tx *sql.Tx) error) error {
	conn, err := dbconn.Fresh(ctx, l.db.Conn)
	if err != nil {
		return err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(conn, tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}
