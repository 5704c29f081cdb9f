// Package dbconn keeps settle's database connections alive to their
// servers: Fresh takes a connection of its own from a database/sql pool
// that is known to answer, and UnderIdleTimeout keeps a pool's idle
// connections within the server's idle_session_timeout.
//
// database/sql hands out the connections its pool keeps idle as they are:
// one whose server session ended while it sat idle - a server's
// idle_session_timeout (a DBA's setting for the platform's web sessions),
// a restart or failover of the database, pg_terminate_backend, a firewall
// that dropped the idle connection - is found broken only by its first
// statement. A statement run on the pool (DB.QueryContext, DB.BeginTx)
// is tried again on another connection then (lib/pq says driver.ErrBadConn
// for such a session), but not one run on a connection taken with
// DB.Conn, which settle takes for a lock's session, a COPY, and the
// platform's reads in one snapshot: their first statement failed
// "driver: bad connection", exit 1, and, where the session was idle
// longer than the server allows on every run (the platform's connection
// from the extract stage to the late refunds read in distribute, after the
// trade files' wait), every run failed the same way and the day was never
// distributed (found by a review that set idle_session_timeout on the
// database).
package dbconn

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"
)

// maxStale bounds how many broken connections Fresh lets go of before it
// gives up: more than a pool keeps idle (a broken one is closed, not put
// back, so the pool opens a new one once its idle ones are gone).
const maxStale = 64

// Conn is what Fresh needs of a connection: *sql.Conn, *sqlx.Conn.
type Conn interface {
	PingContext(ctx context.Context) error
	Close() error
}

// Fresh returns a connection taken by take (db.Conn, say) whose session
// answers: each one found broken (its ping says driver.ErrBadConn) is
// closed and another taken. Any other error is returned as it is.
func Fresh[C Conn](ctx context.Context, take func(context.Context) (C, error)) (C, error) {
	for i := 0; ; i++ {
		conn, err := take(ctx)
		if err != nil {
			return conn, err
		}
		err = conn.PingContext(ctx)
		if err == nil {
			return conn, nil
		}
		conn.Close()
		if !errors.Is(err, driver.ErrBadConn) || i >= maxStale || ctx.Err() != nil {
			var none C
			return none, err
		}
	}
}

// UnderIdleTimeout keeps db's idle connections from outliving their server
// sessions: when the server ends a session idle longer than its
// idle_session_timeout (PostgreSQL 14 and later; a DBA's setting, by role
// or database), the pool's next statement on that connection failed,
// "connection reset by peer" - lib/pq says so as a network error, which
// database/sql does not try again on another connection - and the run
// with it, exit 1, at whatever statement came after a wait on a provider
// (found by a review: a 2,000-order day took three runs under a short
// timeout). db then closes a connection idle for a third of the timeout:
// its cleaner sweeps at that interval, so none is handed out idle for
// more than two thirds of it. A server without the setting, or with it 0,
// changes nothing. db is asked on one of its connections, the session's
// setting (the role's and database's included), in a read-only READ
// COMMITTED transaction: in the session's default isolation, a role's
// default_transaction_isolation = serializable had a hot standby refuse
// the question ("cannot use serializable mode in a hot standby"), and the
// platform's database could not be opened, exit 1 on every run.
func UnderIdleTimeout(ctx context.Context, db *sql.DB) error {
	var ms sql.NullInt64
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("read the server's idle_session_timeout: %w", err)
	}
	defer tx.Rollback()
	err = tx.QueryRowContext(ctx, `SELECT setting::bigint FROM pg_settings WHERE name = 'idle_session_timeout'`).Scan(&ms)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && ms.Int64 <= 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the server's idle_session_timeout: %w", err)
	}
	db.SetConnMaxIdleTime(max(time.Duration(ms.Int64)*time.Millisecond/3, time.Millisecond))
	return nil
}
