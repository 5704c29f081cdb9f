package extract

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/maphash"
	"iter"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lib/pq"

	"github.com/settlekit/settle/internal/dbconn"
	"github.com/settlekit/settle/pipeline"
)

// ErrNotComparable is Compare's error when the platform's order numbers
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

// DifferenceKind is what Compare found of an order number.
type DifferenceKind int

const (
	// WrittenLate: the query gives the order number now, the snapshot
	// lacks it: an order written into the window after the date was read
	// (a transaction that took its now() before the window's end and
	// committed after the run, a back-office correction, a replica behind
	// its primary), which no run reads.
	WrittenLate DifferenceKind = iota
	// Changed: both give it, and its money-deciding columns
	// (MoneyColumns) differ.
	Changed
	// Gone: the snapshot has it, the query no longer gives it for the
	// window (deleted, its confirmed_at moved out of the window, or
	// dropped by the query's own filter, a status say).
	Gone
)

// String is the kind as the ledger records it (late_orders.kind):
// written_late, changed or gone.
func (k DifferenceKind) String() string {
	switch k {
	case WrittenLate:
		return "written_late"
	case Changed:
		return "changed"
	case Gone:
		return "gone"
	}
	return fmt.Sprintf("DifferenceKind(%d)", int(k))
}

// MoneyColumns are the columns of a source row Compare compares: those
// that decide who is paid what. refunded_minor is not among them (a refund
// after the window is a late refund, read by its own query; the source
// query's refunded_minor counts only those before the window's end), nor
// are paid_at and confirmed_at (an order whose confirmed_at left the
// window is Gone).
var MoneyColumns = []string{"seller_id", "provider", "provider_txn_id", "currency", "amount_minor", "category"}

// Difference is one order number Compare found given otherwise now than
// the snapshot holds it.
type Difference struct {
	Kind    DifferenceKind
	OrderNo string
	// Read and Now are the order number's first row in the snapshot and
	// in the query (their order number and MoneyColumns alone); Read is
	// zero for WrittenLate, Now for Gone.
	Read, Now pipeline.SourceRow
	// ReadRows and NowRows are how many rows of the order number the
	// snapshot holds and the query gives: more than one is an order
	// number the transform rejects every copy of (a duplicate), whose
	// rows are compared as a whole (the same rows, in any order, is no
	// difference).
	ReadRows, NowRows int
}

// Changes says how a Changed order differs: each MoneyColumns column
// that differs, old -> new, an amount in money form (12.34 USD) where its
// currency is one settle knows and it is an integer (as written where
// only its spelling differs, "100.00" -> "100"); of an order number
// of several rows on either side, how many rows each has.
func (d Difference) Changes() string {
	if d.ReadRows != 1 || d.NowRows != 1 {
		return fmt.Sprintf("read as %d rows, given as %d now, which differ", d.ReadRows, d.NowRows)
	}
	var out []string
	for i, c := range MoneyColumns {
		old, now := moneyColumns(&d.Read)[i], moneyColumns(&d.Now)[i]
		if sameColumn(i, old, now) {
			continue
		}
		if c == "amount_minor" && (old == nil || now == nil || canonicalAmount(*old) != canonicalAmount(*now)) {
			out = append(out, fmt.Sprintf("%s %s -> %s", c, amountText(old, d.Read.Currency), amountText(now, d.Now.Currency)))
			continue
		}
		out = append(out, fmt.Sprintf("%s %s -> %s", c, columnText(old), columnText(now)))
	}
	return strings.Join(out, "; ")
}

// Detail says what Compare found of the order number: of a Changed one,
// Changes; of one WrittenLate, its row as given now, of one Gone, its row
// as read, each MoneyColumns column named with its value (an amount in
// money form, as Changes gives it), the first of several rows said so.
func (d Difference) Detail() string {
	r, n, how := d.Now, d.NowRows, "given as"
	switch d.Kind {
	case Changed:
		return d.Changes()
	case Gone:
		r, n, how = d.Read, d.ReadRows, "read as"
	}
	if n > 1 {
		how = fmt.Sprintf("%s %d rows, the first", how, n)
	}
	var out []string
	for i, c := range MoneyColumns {
		v := moneyColumns(&r)[i]
		if i == amountColumn {
			out = append(out, c+" "+amountText(v, r.Currency))
			continue
		}
		out = append(out, c+" "+columnText(v))
	}
	return how + ": " + strings.Join(out, "; ")
}

// moneyColumns are r's MoneyColumns, in their order.
func moneyColumns(r *pipeline.SourceRow) [6]*string {
	return [6]*string{r.SellerID, r.Provider, r.ProviderTxnID, r.Currency, r.AmountMinor, r.Category}
}

// amountColumn is amount_minor's index in MoneyColumns.
const amountColumn = 4

// sameColumn reports whether MoneyColumns[i] is the same in a, as read,
// and b, as given now: text the same, NULL the same as NULL alone; an
// amount the same number, however written ("100", "100.00", "0100": a
// column's type changed on the platform, bigint to numeric say, changes no
// money), unless a is not written as an integer and b is: the transform
// rejected a ("100.00" is not an amount in minor units) and would take b,
// so the change mends a reject no run reads again.
func sameColumn(i int, a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	if *a == *b {
		return true
	}
	return i == amountColumn && canonicalAmount(*a) == canonicalAmount(*b) && (integerText(*a) || !integerText(*b))
}

// integerText reports whether s is an integer as the transform takes an
// amount (transform.Validate): strconv's spelling of an int64, no plus
// sign, no leading zero, no decimals.
func integerText(s string) bool {
	n, err := strconv.ParseInt(s, 10, 64)
	return err == nil && strconv.FormatInt(n, 10) == s
}

// canonicalAmount is s as one spelling of its number when s is a decimal
// number (sign, digits, a point and digits), leading and trailing zeros
// and a plus sign dropped, -0 as 0: "#" and the number; else "=" and s as
// it is, which no number's spelling equals.
func canonicalAmount(s string) string {
	neg := false
	t := s
	if t != "" && (t[0] == '-' || t[0] == '+') {
		neg = t[0] == '-'
		t = t[1:]
	}
	whole, frac, _ := strings.Cut(t, ".")
	digits := func(x string) bool {
		for _, c := range []byte(x) {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	if whole+frac == "" || !digits(whole) || !digits(frac) {
		return "=" + s
	}
	whole, frac = strings.TrimLeft(whole, "0"), strings.TrimRight(frac, "0")
	if whole == "" {
		whole = "0"
	}
	n := whole
	if frac != "" {
		n += "." + frac
	}
	if neg && n != "0" {
		n = "-" + n
	}
	return "#" + n
}

// columnText is a column's value for a message: quoted, or NULL.
func columnText(v *string) string {
	if v == nil {
		return "NULL"
	}
	return strconv.Quote(*v)
}

// amountText is an amount for a message: in money form (12.34 USD) when
// it is an integer and its currency one settle knows, else as columnText.
func amountText(v, currency *string) string {
	if v == nil || currency == nil {
		return columnText(v)
	}
	c := pipeline.Currency(*currency)
	n, err := strconv.ParseInt(strings.TrimPrefix(canonicalAmount(*v), "#"), 10, 64)
	if err != nil || !c.Valid() {
		return columnText(v)
	}
	return pipeline.Money{Minor: n, Currency: c}.String()
}

// group is what Compare holds of one order number's rows on one side:
// how many, the first, and a hash of them all that no order of the rows
// changes (the sum of each row's hash), so that the rows of an order
// number given several times are compared without holding them.
type group struct {
	n     int
	first pipeline.SourceRow
	sum   uint64
}

func (g *group) add(seed maphash.Seed, r pipeline.SourceRow) {
	if g.n == 0 {
		g.first = r
	}
	g.n++
	var h maphash.Hash
	h.SetSeed(seed)
	for i, v := range moneyColumns(&r) {
		if v == nil {
			h.WriteByte(0)
			continue
		}
		h.WriteByte(1)
		if i == amountColumn {
			h.WriteString(canonicalAmount(*v))
		} else {
			h.WriteString(*v)
		}
		h.WriteByte(0xff) // never in UTF-8 text: the columns' boundary
	}
	g.sum += h.Sum64()
}

// same reports whether the two groups hold the same rows (MoneyColumns),
// in any order.
func (g *group) same(o *group) bool {
	if g.n != o.n {
		return false
	}
	if g.n == 1 {
		a, b := moneyColumns(&g.first), moneyColumns(&o.first)
		for i := range a {
			if !sameColumn(i, a[i], b[i]) {
				return false
			}
		}
		return true
	}
	return g.sum == o.sum
}

// Compare compares what the source query gives for window w now with
// read, the rows a date was read with (its snapshot: their order number
// and MoneyColumns), and calls fn with each order number given otherwise
// now, once (Difference): given by the query and not read (WrittenLate),
// read and given with other MoneyColumns (Changed: a text value as the
// extract reads it, made UTF-8 as the snapshot keeps it, so that an
// unchanged row never differs; an amount as a number, "100" and "100.00"
// the same, but for one read not written as an integer, so rejected, and
// given as one now: sameColumn), or read and not given now (Gone). It
// returns how many rows the query gave.
//
// read must give its rows in Go's string order (byte order) of their
// order numbers, each order number as often as it likes, as ORDER BY
// order_no COLLATE "C" gives them; the query's are read in that order too
// (ORDER BY order_no::text COLLATE "C", whatever the platform database's
// default collation), so that the two streams are merged and nothing is
// held but the current row of each and the first row of the current order
// number on each side: memory stays flat however large the day. An order
// number given several times, on either side, is compared as its rows
// taken together (a sum of their hashes): the same rows in another order
// are no difference. A stream that is not in that order is an error,
// never a finding (and the differences fn was given before it are not to
// be trusted). An order number NULL on either side is left out (no run
// can name it).
//
// The query runs as Orders runs it: in a read-only REPEATABLE READ
// transaction (one snapshot), given w as $1 and $2, its text columns read
// as their bytes on a SQL_ASCII database (as asBytes reads them) and made
// UTF-8 as the snapshot keeps them (pipeline.ValidText); on a database
// whose encoding is not UTF8, an order number that is not ASCII ends the
// comparison with ErrNotComparable (the server sorts its own bytes, not
// the snapshot's UTF-8). It does not wait for the day to be over (Margin,
// Unfinished and StandbyOfPrimary are not looked at): the dates compared
// were read already.
func (s *Source) Compare(ctx context.Context, w pipeline.Window, read iter.Seq2[pipeline.SourceRow, error], fn func(Difference) error) (rows int64, err error) {
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
	// The columns as Orders reads them: as the query returns them, or,
	// on a SQL_ASCII database, as the bytes they hold (asBytes).
	cols := append([]string{"order_no"}, MoneyColumns...)
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = "q." + pq.QuoteIdentifier(c)
		if enc == "SQL_ASCII" {
			sel[i] = fmt.Sprintf(`convert_to(q.%s::text, 'SQL_ASCII')`, pq.QuoteIdentifier(c))
		}
	}
	order := `q.order_no::text COLLATE "C"`
	if enc == "SQL_ASCII" {
		order = sel[0] // bytea: byte order
	}
	// The query on lines of its own: one ending in a -- comment keeps it.
	q := `SELECT ` + strings.Join(sel, ", ") + ` FROM (` + "\n" + pipeline.QueryBody(s.Query) + "\n" + `) q WHERE q.order_no IS NOT NULL ORDER BY ` + order
	rs, err := tx.QueryContext(ctx, q, w.Start, w.End)
	if err != nil {
		return 0, statementTimeout(what, refused(ctx, what, err))
	}
	defer rs.Close()

	// The snapshot's stream.
	next, stop := iter.Pull2(read)
	defer stop()
	var have pipeline.SourceRow
	haveOK, started := false, false
	advance := func() error {
		for {
			prev, was := have, started && haveOK
			h, err, ok := next()
			if err != nil {
				return fmt.Errorf("the date's snapshot: %w", err)
			}
			if ok && h.OrderNo == nil {
				continue // no run can name it
			}
			if ok && was && *h.OrderNo < *prev.OrderNo {
				return fmt.Errorf("the date's snapshot is not in byte order (%q after %q): nothing compared", *h.OrderNo, *prev.OrderNo)
			}
			have, haveOK, started = h, ok, true
			return nil
		}
	}
	// The query's stream.
	var (
		now    pipeline.SourceRow
		nowOK  bool
		prevNo string
		b      []byte
		text   [6]sql.NullString
	)
	dest := []any{&b}
	for i := range text {
		dest = append(dest, &text[i])
	}
	pull := func() error {
		if !rs.Next() {
			nowOK = false
			if err := rs.Err(); err != nil {
				return statementTimeout(what, refused(ctx, what, err))
			}
			return nil
		}
		if err := rs.Scan(dest...); err != nil {
			return fmt.Errorf("%s: row %d: %w", what, rows+1, err)
		}
		if enc != "UTF8" && !ascii(b) {
			// The server orders its own bytes (SQL_ASCII's raw, LATIN1's,
			// EUC's), not the UTF-8 the snapshot keeps them as: the
			// streams are not in one order, and every night the date was
			// compared it failed, exit 1, though nothing was wrong.
			return fmt.Errorf("%w: order number %q is not ASCII, on a %s database", ErrNotComparable, pipeline.ValidText(string(b)), enc)
		}
		no := pipeline.ValidText(string(b))
		rows++
		if rows > 1 && no < prevNo {
			return fmt.Errorf("%s: its order numbers do not come in byte order (%q after %q): nothing compared", what, no, prevNo)
		}
		prevNo = no
		var vals [6]*string // MoneyColumns, in their order; NULL is nil
		for i := range text {
			if text[i].Valid {
				v := pipeline.ValidText(text[i].String)
				vals[i] = &v
			}
		}
		now = pipeline.SourceRow{OrderNo: &no, SellerID: vals[0], Provider: vals[1], ProviderTxnID: vals[2], Currency: vals[3], AmountMinor: vals[4], Category: vals[5]}
		nowOK = true
		return nil
	}

	if err := advance(); err != nil {
		return 0, err
	}
	if err := pull(); err != nil {
		return rows, err
	}
	seed := maphash.MakeSeed()
	for haveOK || nowOK {
		var no string
		switch {
		case !nowOK:
			no = *have.OrderNo
		case !haveOK:
			no = *now.OrderNo
		default:
			no = min(*have.OrderNo, *now.OrderNo)
		}
		var was, is group
		for haveOK && *have.OrderNo == no {
			was.add(seed, have)
			if err := advance(); err != nil {
				return rows, err
			}
		}
		for nowOK && *now.OrderNo == no {
			is.add(seed, now)
			if err := pull(); err != nil {
				return rows, err
			}
		}
		d := Difference{OrderNo: no, Read: was.first, Now: is.first, ReadRows: was.n, NowRows: is.n}
		switch {
		case was.n == 0:
			d.Kind = WrittenLate
		case is.n == 0:
			d.Kind = Gone
		case !was.same(&is):
			d.Kind = Changed
		default:
			continue
		}
		if err := fn(d); err != nil {
			return rows, err
		}
	}
	return rows, nil
}

// Given returns, of orderNos, those the source query gives now for a
// window of all time ($1 the year 1, $2 the year 9999): an order Compare
// found Gone from a date's window that the platform still has, moved to
// another day, which a run of that day reads (and rejects, where it was
// settled: an order settles once) or its comparison counts. The query
// runs as Compare runs it, in a read-only REPEATABLE READ transaction,
// its order numbers compared as text (q.order_no::text).
func (s *Source) Given(ctx context.Context, orderNos []string) (map[string]bool, error) {
	what := "source query " + s.name()
	conn, err := dbconn.Fresh(ctx, s.DB.Connx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer conn.Close()
	tx, err := conn.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer tx.Rollback()
	// The query on lines of its own: one ending in a -- comment keeps it.
	q := `SELECT DISTINCT q.order_no::text FROM (` + "\n" + pipeline.QueryBody(s.Query) + "\n" + `) q WHERE q.order_no::text = ANY ($3::text[])`
	rs, err := tx.QueryContext(ctx, q, allTime.Start, allTime.End, pq.Array(orderNos))
	if err != nil {
		return nil, statementTimeout(what, refused(ctx, what, err))
	}
	defer rs.Close()
	out := map[string]bool{}
	for rs.Next() {
		var no string
		if err := rs.Scan(&no); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out[no] = true
	}
	if err := rs.Err(); err != nil {
		return nil, statementTimeout(what, refused(ctx, what, err))
	}
	return out, nil
}

// allTime is the window Given asks the source query for: every instant
// an order of a platform is confirmed at.
var allTime = pipeline.Window{Start: time.Date(1, time.January, 1, 0, 0, 0, 0, time.UTC), End: time.Date(9999, time.December, 31, 0, 0, 0, 0, time.UTC)}
