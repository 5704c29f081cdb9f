// Package extract reads the platform's PostgreSQL database: the orders of a
// business day (Source), the day's window again to compare with what was
// read (Source.Compare: orders written into it, changed or gone since; and
// Source.Given), the sellers with their provider accounts
// (Sellers) and the late refunds of a window (LateRefunds), streaming: rows
// are handed on one at a time and never collected, so memory stays flat
// however large the day.
package extract

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/settlekit/settle/internal/dbconn"
	"github.com/settlekit/settle/pipeline"
)

// Columns are the columns a source query must return, in this order.
var Columns = []string{"order_no", "seller_id", "provider", "provider_txn_id", "currency",
	"amount_minor", "refunded_minor", "category", "paid_at", "confirmed_at"}

// Source runs a source query against the platform database. It implements
// pipeline.Source.
type Source struct {
	DB    *sqlx.DB
	Query string // with $1 = window start (inclusive), $2 = window end (exclusive), both timestamptz
	Name  string // where the query came from, for error messages
	// Margin is how long after a window's end the platform database's
	// clock must be before Orders reads it: an order confirmed in the
	// window's last moments is committed a little later, and a snapshot
	// taken before that commit would miss it for good (a run records the
	// day it read as read). Orders refuses (pipeline.KindUsage) a window
	// the database's clock has not passed by Margin, whatever this
	// machine's clock says: the database's is the one its rows were
	// committed by.
	Margin time.Duration
	// Unfinished lets Orders read a window whose end (and Margin) the
	// database's clock has not passed: a dry run may look at a day not
	// over yet.
	Unfinished bool
	// Now is this machine's clock, named in the error beside the
	// database's; default time.Now.
	Now func() time.Time
	// StandbyOfPrimary says the platform database, if a hot standby,
	// streams its WAL straight from the primary (not from another
	// standby): it may then be read once its WAL receiver shows it
	// replayed all the primary had past the day's end and Margin, though
	// the primary committed nothing since (checkReplayed).
	StandbyOfPrimary bool
}

// Orders streams the rows of the query for window w inside a read-only
// REPEATABLE READ transaction, so that the day is read as one consistent
// snapshot even while the platform keeps writing. Unless Unfinished, the
// snapshot is taken once the database's clock is past w.End + Margin.
func (s *Source) Orders(ctx context.Context, w pipeline.Window, fn func(pipeline.SourceRow) error) error {
	return timedOut("source query "+s.name(), fn, func(fn func(pipeline.SourceRow) error) error { return s.orders(ctx, w, fn) })
}

func (s *Source) orders(ctx context.Context, w pipeline.Window, fn func(pipeline.SourceRow) error) error {
	conn, err := dbconn.Fresh(ctx, s.DB.Connx)
	if err != nil {
		return fmt.Errorf("read orders: %w", err)
	}
	defer conn.Close()
	if !s.Unfinished {
		// Before the transaction, on its session: what a standby has
		// replayed by now is in the snapshot taken after.
		if err := checkReplayed(ctx, ownTx(conn), w.End.Add(s.Margin), s.StandbyOfPrimary); err != nil {
			return err
		}
	}
	tx, err := conn.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return fmt.Errorf("read orders: %w", err)
	}
	defer tx.Rollback()
	if !s.Unfinished {
		// The transaction's first statement: its snapshot is taken now.
		if err := s.checkOver(ctx, tx, w); err != nil {
			return err
		}
	}
	q, err := asBytes(ctx, tx, s.Query, Columns, 8) // all but the two timestamps
	if err != nil {
		return fmt.Errorf("read orders: %w", err)
	}
	rows, err := tx.QueryContext(ctx, q, w.Start, w.End)
	if err != nil {
		return refused(ctx, "source query "+s.name(), err)
	}
	defer rows.Close()
	if err := checkShape(rows, Columns, []string{"paid_at", "confirmed_at"}, []string{"amount_minor", "refunded_minor"}); err != nil {
		return pipeline.E(pipeline.KindUsage, "source query "+s.name(), err)
	}
	var seq int64
	var sc pipeline.SourceScan
	dest := sc.Dest(new(int64))[1:]
	for rows.Next() {
		seq++
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("read orders: row %d: %w", seq, err)
		}
		r := pipeline.SourceRow{Seq: seq}
		sc.Fill(&r)
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		if refusedMidway(err) {
			return refused(ctx, "source query "+s.name(), err)
		}
		return fmt.Errorf("read orders: %w", err)
	}
	return nil
}

func (s *Source) name() string { return name(s.Name) }

// checkOver refuses a window the database's clock has not passed by
// Margin. It is the transaction's first statement, so the snapshot the
// orders are read in is taken after the clock was read.
func (s *Source) checkOver(ctx context.Context, tx *sqlx.Tx, w pipeline.Window) error {
	var dbNow time.Time
	if err := tx.QueryRowContext(ctx, `SELECT statement_timestamp()`).Scan(&dbNow); err != nil {
		return fmt.Errorf("read orders: the platform database's clock: %w", err)
	}
	from := w.End.Add(s.Margin)
	if !dbNow.Before(from) {
		return nil
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	ours := now()
	return pipeline.Errorf(pipeline.KindUsage, "platform database",
		"its clock reads %s, and the day ending at %s is read from %s on (%v after its end, once the orders confirmed in its last moments are committed); this machine's clock reads %s (%v apart): if it says the day is over, one of the clocks is wrong (clock skew: check NTP)",
		dbNow.UTC().Format(time.RFC3339), w.End.UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339), s.Margin,
		ours.UTC().Format(time.RFC3339), ours.Sub(dbNow).Abs().Round(time.Second))
}

// checkReplayed refuses (a failure to retry, exit 1) to read the day on a
// hot standby (a read replica) that has not replayed the primary's
// transactions up to from, the day's end and its margin: the orders the
// primary committed in the day's last moments would not be in the
// snapshot, and a day is read once - they were never paid (README, "Rows
// written into a settled window afterwards", used to say only to keep the
// replica's lag small; the standby's clock, which checkOver reads, says
// nothing of it).
//
// A standby passes when the last transaction it replayed committed at or
// after from, on the primary's clock. A primary that committed nothing
// since from (a quiet platform) shows the same as a lagging standby, so,
// when direct (the standby streams straight from the primary: settle is
// told so, it cannot see it), a standby also passes when its WAL receiver
// proves it replayed all the primary had at a moment at or after from:
// it is streaming, the last message it received from the primary was sent
// at or after from (last_msg_send_time, the primary's clock: the primary
// answers the receiver's pings, every wal_receiver_timeout/2, when it has
// nothing to send), and it replayed up to that message's end of WAL
// (latest_end_lsn, the message's walEnd). In PostgreSQL's walsender that
// end is, in a WAL data message, the primary's flush position read just
// before it was sent (GetFlushRecPtr), and in a keepalive all the WAL it
// had sent by then (sentPtr), which is the flush position whenever the
// walsender is caught up - one sent between a flush and the walsender's
// sending of that WAL is followed at once by the WAL, so the last message
// must have stayed the last for receiverSettled on the standby's clock
// (last_msg_receipt_time; checkReplayed waits for that a little). A
// commit is flushed before it returns (not so under synchronous_commit =
// off, which a platform whose orders matter does not set). From a cascading standby, the walEnd is its upstream
// standby's own WAL, not the primary's, and its time the upstream's clock:
// that upstream's lag would pass unseen, hence direct. A WAL receiver
// just started shows its own start (the standby's clock) as its last
// message's time and an old end of WAL until the primary's first message:
// no word of the primary, refused. The receiver's
// columns are NULL to a role without pg_read_all_stats (or superuser):
// then the first rule alone holds, and the error says what would let
// settle see them. Each question is asked in a transaction of its own
// (ownTx).
func checkReplayed(ctx context.Context, ask asker, from time.Time, direct bool) error {
	var standby bool
	var replayed, sent sql.NullTime
	if err := ask(ctx, []any{&standby, &replayed}, `SELECT pg_is_in_recovery(), pg_last_xact_replay_timestamp()`); err != nil {
		return fmt.Errorf("is the platform database a standby: %w", err)
	}
	if !standby || (replayed.Valid && !replayed.Time.Before(from)) {
		return nil
	}
	var receiver, hidden, heard, caughtUp sql.NullBool
	var quietFor sql.NullFloat64
	for attempt := 1; direct; attempt++ {
		// One row whether a WAL receiver runs or not; pg_stat_wal_receiver
		// shows a role without the privilege its pid alone. quietFor is
		// how long ago, on the standby's clock, its last message arrived.
		// A WAL receiver starts with both its times at its own start, on
		// the standby's clock, and the end of WAL of its predecessor's
		// last message (none after a restart of the standby): until the
		// primary's first message, they say nothing of the primary (a
		// message sent and received at the very same microsecond is
		// taken for that too: refused, the next run looks again).
		if err := ask(ctx, []any{&receiver, &hidden, &sent, &heard, &caughtUp, &quietFor}, `SELECT r.pid IS NOT NULL, r.pid IS NOT NULL AND r.status IS NULL, r.last_msg_send_time,
			r.last_msg_send_time <> r.last_msg_receipt_time,
			r.status = 'streaming' AND r.last_msg_send_time <> r.last_msg_receipt_time
				AND r.last_msg_send_time >= $1::timestamptz AND pg_last_wal_replay_lsn() >= r.latest_end_lsn,
			extract(epoch FROM clock_timestamp() - r.last_msg_receipt_time)
			FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver AS r ON true`, from); err != nil {
			return fmt.Errorf("is the platform database's standby caught up: %w", err)
		}
		if !caughtUp.Valid || !caughtUp.Bool || !quietFor.Valid {
			break
		}
		// A keepalive the walsender sent between a flush and its sending
		// of that WAL carries the end of what it had sent: it is the last
		// message only until the WAL data that follows it at once arrives.
		// A last message that stayed the last for receiverSettled is not
		// that one.
		wait := receiverSettled - time.Duration(quietFor.Float64*float64(time.Second))
		if wait <= 0 {
			return nil
		}
		if attempt == receiverAttempts {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("is the platform database's standby caught up: %w", context.Cause(ctx))
		case <-t.C:
		}
	}
	last := "none yet"
	if replayed.Valid {
		last = replayed.Time.UTC().Format(time.RFC3339)
	}
	var quiet string
	switch {
	case !direct:
		quiet = "a primary that committed nothing since looks the same until it commits (unless settle is told the standby streams straight from the primary, " +
			"--source-standby-of-primary, and it can read its WAL receiver)"
	case hidden.Valid && hidden.Bool:
		quiet = "a primary that committed nothing since looks the same until it commits: settle's role cannot read the standby's WAL receiver " +
			"(pg_stat_wal_receiver), which would tell it the standby replayed all the primary had; GRANT pg_read_all_stats TO <settle's platform role> on the primary lets it"
	case !receiver.Bool:
		quiet = "it is not streaming from the primary now (no WAL receiver): nothing tells settle the primary had no more"
	case heard.Valid && !heard.Bool:
		quiet = "its WAL receiver has heard nothing from the primary since it started (the primary answers its pings every wal_receiver_timeout/2), so nothing tells settle the primary had no more"
	case caughtUp.Valid && caughtUp.Bool:
		quiet = fmt.Sprintf("the primary's messages to it kept coming less than %v apart, so none says the primary had no more than it sent", receiverSettled)
	default:
		msg := "none yet"
		if sent.Valid {
			msg = sent.Time.UTC().Format(time.RFC3339)
		}
		quiet = fmt.Sprintf("it has not replayed all the primary had when it last heard from it (its last message sent at %s)", msg)
	}
	return pipeline.Errorf(pipeline.KindFailed, "platform database",
		"it is a standby (a read replica) whose last replayed transaction committed at %s (the primary's clock), before %s (the day's end and its margin), and %s: "+
			"orders the primary committed since may not be on it yet, and a day is read once; running again once it caught up is safe, "+
			"or point --source-database-url at the primary",
		last, from.UTC().Format(time.RFC3339), quiet)
}

// receiverSettled is how long the last message a standby's WAL receiver
// got from the primary must have stayed its last for checkReplayed to
// trust its end of WAL; checkReplayed waits for that receiverAttempts
// times at most (a quiet primary's keepalives come every
// wal_receiver_timeout/2, 30 s by default).
const (
	receiverSettled  = time.Second
	receiverAttempts = 4
)

// queryer runs a query: a transaction or a database.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// asker asks query, of one row, and scans that row into dest.
type asker func(ctx context.Context, dest []any, query string, args ...any) error

// ownTx asks each query on conn in a read-only READ COMMITTED transaction
// of its own. A statement outside a transaction settle began with its
// isolation runs in the session's default, and a platform role or database
// whose default_transaction_isolation is serializable (a DBA's setting for
// the platform's own sessions) is refused any statement on a hot standby,
// "cannot use serializable mode in a hot standby" (0A000): every run
// failed at the standby check, exit 1 on every retry (found by a review).
// One transaction a question, not one for them all: checkReplayed waits
// between its questions, which a role's idle_in_transaction_session_timeout
// would end the session for.
func ownTx(conn *sqlx.Conn) asker {
	return func(ctx context.Context, dest []any, query string, args ...any) error {
		tx, err := conn.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted, ReadOnly: true})
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if err := tx.QueryRowContext(ctx, query, args...).Scan(dest...); err != nil {
			return err
		}
		return tx.Commit()
	}
}

// asBytes returns query as it is, or, on a SQL_ASCII database (which
// holds any bytes as text, and whose text PostgreSQL refuses to send to a
// UTF-8 client when it is not UTF-8: one such value stopped the whole
// day), wrapped to return each of the text columns as the bytes it holds
// (convert_to, a bytea), which the readers make UTF-8 (pipeline.ValidText,
// U+FFFD for the rest) so that only the row or seller holding them is
// rejected. The columns keep their names and order.
func asBytes(ctx context.Context, q queryer, query string, cols []string, text int) (string, error) {
	var enc string
	if err := q.QueryRowContext(ctx, `SHOW server_encoding`).Scan(&enc); err != nil {
		return "", fmt.Errorf("server encoding: %w", err)
	}
	if enc != "SQL_ASCII" {
		return query, nil
	}
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = "s." + pq.QuoteIdentifier(c)
		if i < text {
			out[i] = fmt.Sprintf(`convert_to(s.%[1]s::text, 'SQL_ASCII') AS %[1]s`, pq.QuoteIdentifier(c))
		}
	}
	// The query on lines of its own: one ending in a -- comment keeps it.
	return `SELECT ` + strings.Join(out, ", ") + " FROM (\n" + pipeline.QueryBody(query) + "\n) s", nil
}

// checkColumns checks that a query returns the columns want, in order.
func checkColumns(rows *sql.Rows, want []string) error {
	got, err := rows.Columns()
	if err != nil {
		return err
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		return fmt.Errorf("returns columns (%s), want (%s)", strings.Join(got, ", "), strings.Join(want, ", "))
	}
	return nil
}

// checkShape checks what a query returns: the columns want, in order
// (checkColumns), those named in times instants (checkTime) and those named
// in amounts integers (checkAmount).
func checkShape(rows *sql.Rows, want, times, amounts []string) error {
	if err := checkColumns(rows, want); err != nil {
		return err
	}
	types, err := rows.ColumnTypes()
	if err != nil {
		return err
	}
	for _, t := range types {
		switch {
		case slices.Contains(times, t.Name()):
			err = checkTime(t)
		case slices.Contains(amounts, t.Name()):
			err = checkAmount(t)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkLateRefundShape is checkShape of a late-refunds query.
func checkLateRefundShape(rows *sql.Rows) error {
	return checkShape(rows, LateRefundColumns, []string{"created_at"}, []string{"amount_minor"})
}

// checkTime checks that a column is a timestamptz: an instant. Another
// type (text, say) cannot be read as one, and stopped the day at its first
// row as a failure to retry (exit 1) rather than a query to fix. A
// timestamp without time zone or a date is a wall clock whose zone only
// the query's author knows: lib/pq reads it as UTC, while the query's
// comparisons with $1 and $2 drop their offset, so a day was chosen by the
// wall clock and its rows dated hours off (a Beijing wall clock: the last
// 8 hours of every day rejected as outside the window, the others recorded
// 8 hours off); the query converts it, at the zone its values are in.
func checkTime(t *sql.ColumnType) error {
	switch typ := t.DatabaseTypeName(); typ {
	case "TIMESTAMPTZ":
		return nil
	case "TIMESTAMP", "DATE":
		return fmt.Errorf("returns %[1]s as %[2]s (without time zone), want a timestamptz: settle cannot know the zone of a wall clock; "+
			"convert it in the query, where it is returned and where it is compared with $1 and $2, at the zone its values are in "+
			"(%[1]s AT TIME ZONE 'Asia/Shanghai')", t.Name(), strings.ToLower(typ))
	default:
		return fmt.Errorf("returns %[1]s as %[2]s, want a timestamptz: convert it in the query, where it is returned and where it is compared with $1 and $2 "+
			"(%[1]s::timestamptz where its values carry their offset, else %[1]s::timestamp AT TIME ZONE 'Asia/Shanghai', at the zone its values are in)",
			t.Name(), strings.ToLower(typ))
	}
}

// checkAmount checks that a column can hold an amount in minor units, an
// integer: a numeric of a declared scale above 0 (numeric(12,2): a decimal
// of the major unit, 19.99 dollars) writes every value with its decimals
// (100.00), and money with a currency symbol, so that no row of such a
// column is ever read as an amount. Each row was rejected on its own
// (exit 3, "fix the platform's data", the day recorded as read) where the
// query is what to fix. A numeric of no declared scale (a sum, a cast to
// numeric) is judged value by value, as the transform does; lib/pq gives
// its precision as 65535, above numeric's 1000, and a negative scale
// (PostgreSQL 15: numeric(5,-2), integers) as 11 bits, above 1000 too.
// A float (real, double precision) is refused too: its text is not an
// integer's from a million up (1e+06), so a day's small orders were read
// and its large ones rejected, and a real rounds from 2^24 up.
func checkAmount(t *sql.ColumnType) error {
	typ := strings.ToLower(t.DatabaseTypeName())
	switch typ {
	case "numeric":
		p, sc, ok := t.DecimalSize()
		if !ok || p > 1000 || sc < 1 || sc > 1000 {
			return nil
		}
		typ = fmt.Sprintf("numeric(%d,%d)", p, sc)
	case "money":
	case "float4", "float8":
		return fmt.Errorf("returns %[1]s as %[2]s, want an integer: a float holds no amount exactly, and PostgreSQL writes one of a million minor units as 1e+06, "+
			"so that rows are read or rejected by their size (a float4 rounds from 16,777,217 up); convert it in the query, to the currency's minor unit "+
			"(round(%[1]s)::bigint where its values are whole minor units)", t.Name(), typ)
	default:
		return nil
	}
	return fmt.Errorf("returns %[1]s as %[2]s, want an integer: amounts are in the currency's minor unit (USD 19.99 is 1999, JPY 1500 is 1500, "+
		"KWD 1.500 is 1500); convert it in the query, exactly, by the decimals of each row's currency, or return the column that holds minor units", t.Name(), typ)
}

// SellerColumns are the columns a sellers query must return, in this order.
var SellerColumns = []string{"seller_id", "name", "entity_type", "country", "infinia_seller_id", "wechat_sub_mchid"}

// SellerAccounts names, for each account column of a sellers query (the
// columns after country, in order), the provider the seller's account is
// at: its key in pipeline.Seller.Accounts. The columns are the v1 contract;
// the names are those the providers' channel specs give as their Account.
func SellerAccounts() []string { return []string{"infiniapay", "wechatpay"} }

// Sellers runs a sellers query against the platform database. It
// implements pipeline.SellerSource.
type Sellers struct {
	DB    *sqlx.DB
	Query string // $1 = text[] of seller ids
	Name  string
	Batch int // ids per query, default 1000
	// Refused, when set, is told each id of a lookup that the query could
	// not take alone (take) while it took others, with the database's
	// refusal of it, once the lookup is done: its orders are rejected as
	// of a seller the platform does not give, and their reason cannot say
	// what the database said.
	Refused func(id string, err error)
	// Disagree, when set, is told each id the query gives in rows that
	// disagree, with how many rows and the columns in which they do (a
	// join with a table of several rows a seller: two accounts at one
	// provider, or a name kept per language): it is given no seller, its
	// orders rejected as of a seller the platform does not give, a
	// reason that cannot say which columns.
	Disagree func(id string, rows int, columns []string)

	mu        sync.Mutex
	query, of string // the query as run (asBytes) of Query of
}

// Sellers calls fn for every seller of ids the platform knows, with its
// accounts (SellerAccounts); a NULL or empty account column is no account.
// An id the query cannot take (a cast of $1 refuses it: take) is given no
// seller.
// A seller the query gives in rows that disagree is not given (the same
// row twice is given once).
func (s *Sellers) Sellers(ctx context.Context, ids []string, fn func(pipeline.Seller) error) error {
	return timedOut("sellers query "+name(s.Name), fn, func(fn func(pipeline.Seller) error) error { return s.sellers(ctx, ids, fn) })
}

func (s *Sellers) sellers(ctx context.Context, ids []string, fn func(pipeline.Seller) error) error {
	batch := s.Batch
	if batch <= 0 {
		batch = 1000
	}
	tookAny := false
	var refused []refusedID
	for len(ids) > 0 {
		n := min(batch, len(ids))
		took, err := s.take(ctx, ids[:n], fn, &refused)
		if err != nil && (!IDsRefused(err) || !tookAny) {
			// Not the ids' fault, or the query took none of them yet:
			// the query is what to fix.
			return err
		}
		tookAny = tookAny || took > 0
		ids = ids[n:]
	}
	if s.Refused != nil {
		for _, r := range refused {
			s.Refused(r.id, r.err)
		}
	}
	return nil
}

// refusedID is an id the query could not take alone, and the database's
// refusal of it.
type refusedID struct {
	id  string
	err error
}

// take reads the sellers of ids (batch) and returns how many of the ids
// the query took. The array of ids holds every seller id the day's rows
// name, and a platform whose ids are numbers casts it (README: m.id = ANY
// ($1::bigint[])): one id that is no number ("", "N/A") had the database
// refuse the cast (a data exception, class 22), and the whole day stopped,
// exit 2 on every run, where a bad value is the reject of its row. The ids
// are then read in halves, down to the ids the query cannot take alone,
// which are given no seller (their orders are rejected as of a seller the
// platform does not give); the error is returned only when the query took
// none of ids. Each id the query cannot take alone is added to refused,
// with the database's refusal: given no seller unless the lookup fails.
func (s *Sellers) take(ctx context.Context, ids []string, fn func(pipeline.Seller) error, refused *[]refusedID) (int, error) {
	err := s.batch(ctx, ids, fn)
	if err == nil {
		return len(ids), nil
	}
	if IDsRefused(err) && len(ids) == 1 {
		*refused = append(*refused, refusedID{ids[0], err})
	}
	if !IDsRefused(err) || len(ids) == 1 {
		return 0, err
	}
	took, half := 0, len(ids)/2
	for _, part := range [][]string{ids[:half], ids[half:]} {
		n, err := s.take(ctx, part, fn, refused)
		if err != nil && !IDsRefused(err) {
			return took, err
		}
		took += n
	}
	if took == 0 {
		return 0, err
	}
	return took, nil
}

// IDsRefused reports whether err, a sellers lookup's, is the database's
// refusal of a value, a data exception (class 22:
// invalid_text_representation, an id cast to a number that is none;
// numeric_value_out_of_range), which an id of the array may cause: a
// lookup of that id alone that fails so gives it no seller, as Sellers
// does of an id it cannot take while it takes others.
func IDsRefused(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code.Class() == "22"
}

// MaxAccount bounds a seller's account id as read: a longer value is no
// id any provider takes, and would not fit the ledger's index of the
// accounts (one such seller stopped the whole day).
const MaxAccount = 256

// boundAccount is an account value as recorded: itself, or, longer than
// MaxAccount, a short note of its length that every provider's account
// check refuses, so that the seller's orders are rejected with a reason.
func boundAccount(v string) string {
	if len(v) <= MaxAccount {
		return v
	}
	return fmt.Sprintf("(unusable: %d bytes)", len(v))
}

func (s *Sellers) batch(ctx context.Context, ids []string, fn func(pipeline.Seller) error) error {
	// Read-only, as the orders and late-refunds queries are: a sellers
	// query (the operator's SQL) writes nothing, also where the platform
	// and the ledger share a database and settle's role could. REPEATABLE
	// READ, as they are too, and the server's encoding asked in it: in
	// the role's default isolation, serializable by a DBA's setting, a hot
	// standby refused them (ownTx), exit 2 on every run.
	tx, err := s.DB.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return fmt.Errorf("read sellers: %w", err)
	}
	defer tx.Rollback()
	s.mu.Lock()
	if s.of != s.Query || s.query == "" {
		q, err := asBytes(ctx, tx, s.Query, SellerColumns, len(SellerColumns))
		if err != nil {
			s.mu.Unlock()
			return fmt.Errorf("read sellers: %w", err)
		}
		s.query, s.of = q, s.Query
	}
	query := s.query
	s.mu.Unlock()
	rows, err := tx.QueryContext(ctx, query, pq.Array(ids))
	if err != nil {
		return refused(ctx, "sellers query "+name(s.Name), err)
	}
	defer rows.Close()
	if err := checkColumns(rows, SellerColumns); err != nil {
		return pipeline.E(pipeline.KindUsage, "sellers query "+name(s.Name), err)
	}
	providers := SellerAccounts()
	// A query that joins another table may give a seller more than once:
	// the same row again is the seller; rows that disagree (two accounts
	// at one provider, say) make it a seller the platform does not give,
	// whose orders are rejected, never paid to either account.
	got, twice, rowsOf := map[string]pipeline.Seller{}, map[string][]string{}, map[string]int{}
	var order []string
	for rows.Next() {
		var nid, nm, et, country sql.NullString
		dest := []any{&nid, &nm, &et, &country}
		acc := make([]sql.NullString, len(providers))
		for i := range acc {
			dest = append(dest, &acc[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("read sellers: %w", err)
		}
		if !nid.Valid {
			// A row naming no seller (a LEFT JOIN from an accounts table
			// to a seller filtered out, say) is no seller's: it stopped
			// the day as a scan error, exit 1 on every retry. The orders
			// of a seller it was meant to be are rejected as of a seller
			// the query gives no row for.
			continue
		}
		id := pipeline.ValidText(nid.String)
		seller := pipeline.Seller{ID: id, Name: pipeline.ValidText(nm.String), EntityType: pipeline.ValidText(et.String), Country: pipeline.ValidText(country.String)}
		for i, a := range acc {
			if a.String != "" {
				if seller.Accounts == nil {
					seller.Accounts = make(map[string]string, len(acc))
				}
				seller.Accounts[providers[i]] = boundAccount(pipeline.ValidText(a.String))
			}
		}
		rowsOf[id]++
		if prev, seen := got[id]; seen {
			if !reflect.DeepEqual(prev, seller) {
				twice[id] = disagreeing(twice[id], prev, seller, providers)
			}
			continue
		}
		got[id] = seller
		order = append(order, id)
	}
	if err := rows.Err(); err != nil {
		if refusedMidway(err) {
			return refused(ctx, "sellers query "+name(s.Name), err)
		}
		return err
	}
	for _, id := range order {
		if cols := twice[id]; cols != nil {
			// Its rows disagree: no account of it can be trusted.
			if s.Disagree != nil {
				s.Disagree(id, rowsOf[id], cols)
			}
			continue
		}
		if err := fn(got[id]); err != nil {
			return err
		}
	}
	return nil
}

// disagreeing adds to cols, in SellerColumns' order, the columns in
// which two rows of one seller, a and b, differ.
func disagreeing(cols []string, a, b pipeline.Seller, providers []string) []string {
	vals := func(s pipeline.Seller) []string {
		v := []string{s.ID, s.Name, s.EntityType, s.Country}
		for _, p := range providers {
			v = append(v, s.Accounts[p])
		}
		return v
	}
	va, vb := vals(a), vals(b)
	out := []string{} // never nil: the seller is not given, whatever differs
	for i, col := range SellerColumns {
		if va[i] != vb[i] || slices.Contains(cols, col) {
			out = append(out, col)
		}
	}
	return out
}

func name(s string) string {
	if s == "" {
		return "(built in)"
	}
	return s
}

// LateRefundColumns are the columns a late-refunds query must return, in
// this order.
var LateRefundColumns = []string{"refund_no", "order_no", "seller_id", "amount_minor", "created_at"}

// LateRefunds runs a late-refunds query against the platform database. It
// implements pipeline.LateRefundSource.
type LateRefunds struct {
	DB    *sqlx.DB
	Query string // $1 = window start (inclusive), $2 = window end (exclusive)
	Name  string
	// Margin, when set, has a window read on a hot standby only once the
	// standby replayed the primary's transactions past its end by Margin
	// (checkReplayed, as Source's): a refund it had not would be read by
	// no window. A dry run leaves it 0.
	Margin time.Duration
	// StandbyOfPrimary is as Source's.
	StandbyOfPrimary bool
}

// LateRefunds streams the query's rows for window w, in one read-only
// snapshot.
func (s *LateRefunds) LateRefunds(ctx context.Context, w pipeline.Window, fn func(pipeline.LateRefundRow) error) error {
	return timedOut("late-refunds query "+name(s.Name), fn, func(fn func(pipeline.LateRefundRow) error) error { return s.lateRefunds(ctx, w, fn) })
}

func (s *LateRefunds) lateRefunds(ctx context.Context, w pipeline.Window, fn func(pipeline.LateRefundRow) error) error {
	conn, err := dbconn.Fresh(ctx, s.DB.Connx)
	if err != nil {
		return fmt.Errorf("read late refunds: %w", err)
	}
	defer conn.Close()
	if s.Margin > 0 {
		if err := checkReplayed(ctx, ownTx(conn), w.End.Add(s.Margin), s.StandbyOfPrimary); err != nil {
			return err
		}
	}
	tx, err := conn.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return fmt.Errorf("read late refunds: %w", err)
	}
	defer tx.Rollback()
	q, err := asBytes(ctx, tx, s.Query, LateRefundColumns, 4) // all but created_at
	if err != nil {
		return fmt.Errorf("read late refunds: %w", err)
	}
	rows, err := tx.QueryContext(ctx, q, w.Start, w.End)
	if err != nil {
		return refused(ctx, "late-refunds query "+name(s.Name), err)
	}
	defer rows.Close()
	if err := checkLateRefundShape(rows); err != nil {
		return pipeline.E(pipeline.KindUsage, "late-refunds query "+name(s.Name), err)
	}
	var seq int64
	for rows.Next() {
		seq++
		r := pipeline.LateRefundRow{Seq: seq}
		if err := rows.Scan(&r.RefundNo, &r.OrderNo, &r.SellerID, &r.AmountMinor, &r.CreatedAt); err != nil {
			return fmt.Errorf("read late refunds: row %d: %w", seq, err)
		}
		for _, v := range []*string{r.RefundNo, r.OrderNo, r.SellerID, r.AmountMinor} {
			if v != nil {
				*v = pipeline.ValidText(*v)
			}
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil && refusedMidway(err) {
		return refused(ctx, "late-refunds query "+name(s.Name), err)
	} else if err != nil {
		return err
	}
	return nil
}

// Check runs the query for window w without reading a row (LIMIT 0: the
// database plans it and names its columns; refused so, the query is run as
// given, for the position of the error in its file) and checks what
// LateRefunds checks of them: a query the database refuses, or whose columns or types
// are not the contract, is a usage error (exit 2) naming it. The late
// refunds are read in the distribute stage, after the trade files went
// up, and only where a provider nets clawbacks: a broken query stopped a
// day half sent (exit 2 after the upload), or was never seen at all.
func (s *LateRefunds) Check(ctx context.Context, w pipeline.Window) error {
	what := "late-refunds query " + name(s.Name)
	// REPEATABLE READ, as LateRefunds reads: in the role's default
	// isolation, serializable by a DBA's setting, a hot standby refused
	// the check (ownTx).
	tx, err := s.DB.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return fmt.Errorf("check the late-refunds query: %w", err)
	}
	defer tx.Rollback()
	q, err := asBytes(ctx, tx, s.Query, LateRefundColumns, 4)
	if err != nil {
		return fmt.Errorf("check the late-refunds query: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "SAVEPOINT check_query"); err != nil {
		return fmt.Errorf("check the late-refunds query: %w", err)
	}
	// The query on lines of its own: one ending in a -- comment keeps it.
	rows, err := tx.QueryContext(ctx, "SELECT * FROM (\n"+pipeline.QueryBody(q)+"\n) s LIMIT 0", w.Start, w.End)
	if err != nil {
		// The database's position of the error is in the wrapped query,
		// a line below the operator's: the query as given is refused the
		// same way (as it is parsed and planned, before any row), at the
		// position in its file.
		if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT check_query"); rerr == nil {
			if raw, rawErr := tx.QueryContext(ctx, q, w.Start, w.End); rawErr != nil {
				err = rawErr
			} else {
				raw.Close()
			}
		}
		return statementTimeout(what, refused(ctx, what, err))
	}
	defer rows.Close()
	if err := checkLateRefundShape(rows); err != nil {
		return pipeline.E(pipeline.KindUsage, what, err)
	}
	for rows.Next() {
	}
	if err := rows.Err(); err != nil {
		return statementTimeout(what, refused(ctx, what, err))
	}
	return nil
}

// refused is err, the platform database's refusal of the operator's query
// what, as configuration (KindUsage, exit 2: the same query is refused on
// every run), unless it is no refusal of the query:
//
//   - ctx was done: the run being stopped (SIGTERM: a node drained, the
//     Job's deadline), which ends the statement in flight with the same pq
//     error as any cancel (query_canceled). It wraps ctx's cause (exit 1,
//     resumed by the next run): as configuration, a pod stopped during its
//     source query failed the Job for good (podFailurePolicy FailJob on
//     exit 2), drained node or not (found by a review);
//   - the connection failed: a network error, or a connection the driver
//     found broken (driver.ErrBadConn: lib/pq's word for a FATAL from the
//     server too, a restart or failover ending the session, 57P01): a
//     failure a retry may get past (exit 1), not the query refused;
//   - the transaction was rolled back for another's sake (class 40:
//     serialization_failure, deadlock_detected): on a hot standby,
//     "canceling statement due to conflict with recovery", which a query
//     needing rows the primary's vacuum removed gets. The next read is
//     likely to pass: exit 1 (it was exit 2, the Job failed for good, when
//     the standby cancelled the query before its first row);
//   - the server's own trouble, which says nothing of the query (as
//     refusedMidway judges it on a later row): out of memory or temporary
//     file space (class 53: a day's sort or hash spilling onto a full
//     disk), an operator's intervention (57: a DBA's pg_cancel_backend of
//     the long read, "canceling statement due to user request"), a system
//     or internal error (58, XX). On the query's first row these were exit
//     2, the Job failed for good, where the same error on a later row was
//     exit 1 (found by a review). A statement_timeout's cancel (57014 too)
//     stays configuration: statementTimeout judges it after;
//   - a table it reads locked past the platform's lock_timeout
//     (lock_not_available, 55P03: a migration of the platform's schema, a
//     VACUUM FULL, at the hour settle reads): a lock held then, which the
//     next run is likely not to meet. It was exit 2, the Job failed for
//     good.
func refused(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w (%w)", what, err, context.Cause(ctx))
	}
	var ne net.Error
	var pe *pq.Error
	if errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.ErrUnexpectedEOF) ||
		(errors.As(err, &pe) && (pe.Code.Class() == "40" || !refusedMidway(err))) {
		if pe != nil && pe.Code == "55P03" {
			return fmt.Errorf("%s: %w: a table it reads was locked longer than the platform database's lock_timeout "+
				"(a migration of the platform's schema, a VACUUM FULL, say); running again once the lock is let go of reads it", what, err)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	if errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000") { // undefined_table, invalid_schema_name
		return pipeline.Errorf(pipeline.KindUsage, what, "%w: %s", err, platformTables)
	}
	return pipeline.E(pipeline.KindUsage, what, err)
}

// platformTables is the hint to a query naming a table or schema its
// database does not have: an operator who set no --source-database-url met
// PostgreSQL's `relation "orders" does not exist` on the ledger's
// database, with nothing saying the platform's tables were looked for
// there (found by a review).
const platformTables = "the platform's tables are read from --source-database-url's database, " +
	"or --database-url's (the ledger's) when it is not set: is that the platform's database, and its search_path the platform's schema?"

// refusedMidway reports whether err, the end of a query's rows
// (rows.Err), is the platform database's error on one of its rows, for
// refused to judge as it judges one on the query's first: lib/pq reports
// an error of the first row from QueryContext, of any later one from
// rows.Err, and the same refusal was exit 2 or 1 by the row it came on.
// A source query whose later rows write (nextval, a function that logs)
// is refused in settle's read-only transaction, 25006, on every run: as
// exit 1, settle asked the ledger's server why it was read-only
// (whyReadOnly) and, a primary, "a retry is safe". Connection failures
// (lib/pq's driver.ErrBadConn for a FATAL), a cancel and class 40 stay
// exit 1, in refused; so do, here, the server's own troubles - out of
// memory or temporary file space (class 53), an operator's intervention
// (57), a system or internal error (58, XX) - which say nothing of the
// query, as they did before; and so does a lock its table was held in past
// the platform's lock_timeout (55P03).
func refusedMidway(err error) bool {
	var pe *pq.Error
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code.Class() {
	case "53", "57", "58", "XX":
		return false
	}
	return pe.Code != "55P03"
}

// timedOut runs read, which hands each row to fn, and returns its error
// as statementTimeout makes it (what names the query), unless it is fn's
// own: settle's handling of a row (the ledger's write, say) is not the
// platform database's timeout.
func timedOut[T any](what string, fn func(T) error, read func(func(T) error) error) error {
	var handed error
	err := read(func(x T) error {
		handed = fn(x)
		return handed
	})
	if handed != nil {
		return err
	}
	return statementTimeout(what, err)
}

// statementTimeout makes err, the platform database's, a configuration
// error (KindUsage, exit 2) naming what to change when it is a statement
// the database cancelled after its statement_timeout (query_canceled,
// 57014, "canceling statement due to statement timeout"; the same code
// for a cancel a person or the run's own context asked is left as it
// is). The same query over the same day takes as long on every run: it
// failed every night, exit 1, "running the same command again is safe".
// settle does not set statement_timeout on the platform's sessions itself:
// the platform's database is its DBA's, who chose the limit, perhaps for
// every role; it lifts it on its own ledger's (ledger.Open).
func statementTimeout(what string, err error) error {
	var pe *pq.Error
	if !errors.As(err, &pe) || pe.Code != "57014" || !strings.Contains(pe.Message, "statement timeout") {
		return err
	}
	return pipeline.Errorf(pipeline.KindUsage, what, "%w: the platform database's statement_timeout is shorter than this query takes, and it would end it the same way on every run: "+
		"give settle's role a longer one or none (ALTER ROLE <settle's role> SET statement_timeout = 0, or ... IN DATABASE <db> SET ...), "+
		"or set it on settle's connections in the database URL (statement_timeout=0, or options=-c statement_timeout=0)", err)
}
