// Package ledger is settle's durable state in PostgreSQL (DESIGN section 3):
// runs, the extract snapshot, items, rejects, the intent-first record of
// every side effect, the adjustments journal (carried balances and
// clawbacks), the matchers' final answers and the persons' resolutions. It
// implements the stores the pipeline consumes, the reads behind the reports
// and settle status, and the advisory locks that keep two runs of one date
// apart.
//
// All tables live in one schema (default "settle"), reached through the
// connection's search_path, so the SQL here names no schema.
package ledger

import (
	"context"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/pressly/goose/v3"

	"github.com/settlekit/settle/internal/dbconn"
	"github.com/settlekit/settle/pipeline"
	settlesql "github.com/settlekit/settle/sql"
)

// DefaultSchema is the schema the ledger uses when none is configured.
const DefaultSchema = "settle"

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Ledger is the job's state in one PostgreSQL schema. It is safe for
// concurrent use. Its Reader reads the lines of a date's reports on the
// pool, each read as the ledger is when it begins; View reads a set of
// them at one instant.
type Ledger struct {
	Reader
	db  *sqlx.DB
	dsn string // db's, for the migrations' own pool (Migrate)
	// lockWait is how long a migration waits for a lock (Migrate):
	// migrateLockTimeout but in tests.
	lockWait time.Duration
	schema   string
	stmts    sync.Map // query text -> *sql.Stmt: see prepared
	// actor is the person whose decisions this Ledger records
	// (SetActor): each resolution is recorded with it.
	actor atomic.Pointer[string]

	mu    sync.Mutex
	dates map[pipeline.Date]bool // dates whose lock this Ledger holds (LockDate)
	// held are the sessions holding this Ledger's run and date locks, by
	// what they lock; lost is why one of them ended while held (sticky):
	// MarkSent asks them before every send, the Runner before each stage
	// (CheckLocks), FinishRun before the run's end (checkLocks).
	held map[*sql.Conn]heldLock
	lost error

	// statusHook, a test's, is called between the sections DateStatus
	// reads, with the section read.
	statusHook func(section string)
}

// Open connects to the database at dsn (a postgres:// URL or key=value
// string that must name its sslmode) and uses schema for every table.
func Open(ctx context.Context, dsn, schema string) (*Ledger, error) {
	if schema == "" {
		schema = DefaultSchema
	}
	if !schemaName.MatchString(schema) {
		return nil, pipeline.Errorf(pipeline.KindUsage, "open ledger", "schema %q: want a lower-case SQL identifier", schema)
	}
	withPath, err := WithParam(dsn, "search_path", schema)
	if err != nil {
		return nil, err
	}
	// No JIT compilation on the ledger's sessions. Every ledger statement
	// is a look-up or a read of one run, date or page that takes
	// milliseconds, planned anew at each call; but on a ledger of years
	// the planner's estimates of some of them (a subplan over the open
	// carried entries, say) pass jit_above_cost, and the server's default
	// compiles, inlines and optimizes them at every call: on two years of
	// nights FailedPayouts (every reconcile) took 1.2-3.3 s, of which the
	// query 7 ms and the rest JIT (PERFORMANCE.md, "A ledger of two years").
	if withPath, err = WithParam(withPath, "jit", "off"); err != nil {
		return nil, err
	}
	// The ledger's transactions are written for READ COMMITTED,
	// PostgreSQL's default: their row and advisory locks order them, and
	// View asks for REPEATABLE READ itself. Under a database's or role's
	// default_transaction_isolation of serializable, the upload stage's
	// trade files, recorded side by side, failed with serialization
	// errors (40001) at every run, and the day was never paid (found by a
	// review that set it on the ledger's database).
	if withPath, err = WithParam(withPath, "default_transaction_isolation", "read committed"); err != nil {
		return nil, err
	}
	// No statement timeout on the ledger's sessions. settle's own
	// statements there - the copy of a day's snapshot, the transform's
	// and the reports' reads of a whole day - take as long as the day is
	// large, and every one is bounded by the run's context and by the
	// ledger's own locks (lock_timeout on migrations); a database's or
	// role's statement_timeout shorter than the largest of them (set for
	// the platform's web sessions, say) failed every run at the same
	// statement, exit 1, the day never settled. The ledger's database is
	// settle's, so settle sets what its statements need, as it does jit
	// and the isolation level; the platform's database is the DBA's, and
	// a timeout there is reported as configuration (extract), not
	// overridden.
	if withPath, err = WithParam(withPath, "statement_timeout", "0"); err != nil {
		return nil, err
	}
	// Nor an idle-in-transaction timeout, for the same reasons: a
	// transaction of the ledger's waits on settle's own work between its
	// statements (View: a report's lines written out to disk), or, on a
	// machine whose CPU is taken (settle signs its Infinia and WeChat Pay
	// requests with RSA; the demo's simulator shares its process), on
	// nothing but its turn for it - a demo's upload stage, two or three
	// statements recording a trade file or Infinia's answer on it, sat
	// idle in transaction 100-300 ms between them. A role's
	// idle_in_transaction_session_timeout shorter than that ended the
	// session, "driver: bad connection", exit 1, on every run (a demo
	// under 100 ms). No transaction of the ledger's is held across a
	// provider's answer (checked by sampling pg_stat_activity through a
	// demo whose simulated providers answered in 300 ms: no idle gap
	// reached it).
	if withPath, err = WithParam(withPath, "idle_in_transaction_session_timeout", "0"); err != nil {
		return nil, err
	}
	db, err := sqlx.Open("postgres", withPath)
	if err != nil {
		return nil, pipeline.E(pipeline.KindUsage, "open ledger", err)
	}
	// As many kept idle as may be open: the effect engine's bursts use
	// them all, and a connection closed on return is a new PostgreSQL
	// backend on the next burst (with 4 idle, a 20,000-order day opened
	// about 500).
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to ledger database: %w", err)
	}
	if err := checkSession(ctx, db, schema); err != nil {
		db.Close()
		return nil, err
	}
	if err := dbconn.UnderIdleTimeout(ctx, db.DB); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to ledger database: %w", err)
	}
	return &Ledger{Reader: Reader{db}, db: db, dsn: withPath, schema: schema, lockWait: migrateLockTimeout}, nil
}

// SetActor names the person whose decisions this Ledger records (settle
// resolve's --actor, or the OS user running it): every resolution it
// records from now on is recorded with name, and one is refused while no
// name is set - a resolution says who decided it.
func (l *Ledger) SetActor(name string) { l.actor.Store(&name) }

// Actor is the name SetActor gave, "" when none.
func (l *Ledger) Actor() string {
	if p := l.actor.Load(); p != nil {
		return *p
	}
	return ""
}

// sessionParams are the run-time parameters Open connects the ledger's
// sessions with (but search_path, the schema's) and the values PostgreSQL
// shows for them.
var sessionParams = [][2]string{{"jit", "off"}, {"default_transaction_isolation", "read committed"}, {"statement_timeout", "0"}, {"idle_in_transaction_session_timeout", "0"}}

// checkSession refuses (KindUsage) a session of db that did not get the
// run-time parameters Open connects with: something between settle and
// PostgreSQL dropped them - a connection pooler (PgBouncer's
// ignore_startup_parameters, which it needs to let settle in at all). The
// ledger's tables were then created and read in the role's default schema
// (public) instead of schema, every statement under the role's timeout and
// isolation, and - in the pooler's transaction mode - the date's lock, a
// session's, held by a server session other clients are given (found by a
// review that put settle behind PgBouncer: runs went through, into public).
func checkSession(ctx context.Context, db *sqlx.DB, schema string) error {
	var path string
	got := make([]string, len(sessionParams))
	if err := db.QueryRowContext(ctx, `SELECT current_setting('search_path'), current_setting('jit'),
		current_setting('default_transaction_isolation'), current_setting('statement_timeout'),
		current_setting('idle_in_transaction_session_timeout')`).Scan(&path, &got[0], &got[1], &got[2], &got[3]); err != nil {
		return fmt.Errorf("read the ledger session's settings: %w", err)
	}
	var wrong []string
	if path != schema && path != pq.QuoteIdentifier(schema) {
		wrong = append(wrong, fmt.Sprintf("search_path is %q, not %s", path, schema))
	}
	for i, p := range sessionParams {
		if got[i] != p[1] {
			wrong = append(wrong, fmt.Sprintf("%s is %q, not %q", p[0], got[i], p[1]))
		}
	}
	if len(wrong) == 0 {
		return nil
	}
	return pipeline.Errorf(pipeline.KindUsage, "ledger database",
		"its session did not get the settings settle connects with (%s): something between settle and PostgreSQL dropped them, "+
			"a connection pooler such as PgBouncer (ignore_startup_parameters); settle needs PostgreSQL sessions of its own, "+
			"its date's lock is a session's: connect it to PostgreSQL directly (README, \"What settle needs from its databases\")",
		strings.Join(wrong, "; "))
}

// DB is the underlying pool, for status and report queries.
func (l *Ledger) DB() *sqlx.DB { return l.db }

// Schema is the schema the ledger's tables live in.
func (l *Ledger) Schema() string { return l.schema }

// Clock returns the ledger database's time: the clock of every time the
// ledger records (an effect's updated_at, its history's at), which the
// stages compare with their own (a trade file lost after 24 hours, a
// request known after KnownAfter).
func (l *Ledger) Clock(ctx context.Context) (time.Time, error) {
	var t time.Time
	if err := l.db.QueryRowContext(ctx, `SELECT statement_timestamp()`).Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("read the ledger database's clock: %w", err)
	}
	return t, nil
}

// Close closes the prepared statements and the pool.
func (l *Ledger) Close() error {
	l.stmts.Range(func(_, s any) bool {
		_ = s.(*sql.Stmt).Close()
		return true
	})
	return l.db.Close()
}

// maxConns is the most connections the ledger's pool opens.
const maxConns = 16

// prepared returns query prepared, once per Ledger (and, by database/sql,
// once per connection it runs on). It is for the statements run once per
// effect or order: PostgreSQL planned each of them anew for every call
// when sent unprepared, which cost it several times the statement itself
// (an effect's change of state: 0.41 ms planned each time, 0.06 ms
// prepared, by pgbench). Their plans are the same for every argument
// (one row by its key), so the plan PostgreSQL keeps is the right one.
func (l *Ledger) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	if s, ok := l.stmts.Load(query); ok {
		return s.(*sql.Stmt), nil
	}
	s, err := l.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if had, loaded := l.stmts.LoadOrStore(query, s); loaded {
		_ = s.Close()
		return had.(*sql.Stmt), nil
	}
	return s, nil
}

// execPrepared runs query, prepared (see prepared), with args.
func (l *Ledger) execPrepared(ctx context.Context, query string, args ...any) (sql.Result, error) {
	s, err := l.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(ctx, args...)
}

// queryRowPrepared is QueryRowContext of query, prepared (see prepared).
func (l *Ledger) queryRowPrepared(ctx context.Context, query string, args ...any) scanner {
	s, err := l.prepared(ctx, query)
	if err != nil {
		return failedRow{err}
	}
	return s.QueryRowContext(ctx, args...)
}

// scanner is a row to scan (*sql.Row, or failedRow).
type scanner interface{ Scan(dest ...any) error }

// failedRow is a row whose statement could not be prepared.
type failedRow struct{ err error }

func (r failedRow) Scan(...any) error { return r.err }

// CheckDSN returns a usage error unless dsn names its sslmode: the job talks
// to production databases, so TLS is never left to a default. The sslmode
// is the one lib/pq reads (pq.NewConfig: the URL's query parameter, a key of
// a key=value string, or PGSSLMODE), not the text "sslmode=" anywhere: in a
// password or another value it does not count.
func CheckDSN(dsn string) error {
	cfg, err := pq.NewConfig(dsn)
	if err != nil {
		// lib/pq's words may quote the URL, password and all.
		return pipeline.Errorf(pipeline.KindUsage, "database URL", "lib/pq cannot read it (its text is not shown: it may hold a password)")
	}
	if cfg.SSLMode == "" {
		return pipeline.Errorf(pipeline.KindUsage, "database URL", "set sslmode explicitly (disable for a loopback or socket connection, verify-full in production)")
	}
	return nil
}

// CheckTLS returns a usage error when dsn may talk to a database on
// another machine without TLS: sslmode disable, allow or prefer (the last
// two fall back to plain text, or take it, without a word) to a host that
// is not this machine's (localhost, a loopback address, a socket). Over
// that connection go the password, the platform's orders and every
// payout the ledger records; a network in between can read them, or
// answer for the server. The error names the mode and the host, never the
// URL (it may hold a password). require and verify-ca pass: encrypted,
// though only verify-full checks the server is the one named. With
// verify-ca or verify-full, an sslrootcert file that holds no PEM
// certificate is refused too (checkRootCert).
//
// allowPlainText (an operator's word that the network is trusted) takes
// the modes of plain text to any host.
func CheckTLS(dsn string, allowPlainText bool) error {
	cfg, err := pq.NewConfig(dsn)
	if err != nil {
		return pipeline.Errorf(pipeline.KindUsage, "database URL", "lib/pq cannot read it (its text is not shown: it may hold a password)")
	}
	switch cfg.SSLMode {
	case pq.SSLModeDisable, pq.SSLModeAllow, pq.SSLModePrefer:
		if allowPlainText {
			return nil
		}
	case pq.SSLModeVerifyCA, pq.SSLModeVerifyFull:
		return checkRootCert(cfg.SSLRootCert)
	default:
		return nil
	}
	hosts := []pq.ConfigMultihost{{Host: cfg.Host, Hostaddr: cfg.Hostaddr}}
	hosts = append(hosts, cfg.Multi...)
	for _, h := range hosts {
		if !thisMachine(h.Host, h.Hostaddr) {
			name := h.Host
			if h.Hostaddr.IsValid() {
				name = h.Hostaddr.String()
			}
			return pipeline.Errorf(pipeline.KindUsage, "database URL",
				"sslmode=%s to %s, another machine, %w: set sslmode=verify-full (with sslrootcert=the server's CA file)", cfg.SSLMode, name, ErrPlainText)
		}
	}
	return nil
}

// UnverifiedServer returns the first host of dsn on another machine when
// its sslmode is require: the connection is encrypted, but nothing checks
// the server is the one named, so a network in between can answer for it
// (and take the password); "" otherwise, or when lib/pq cannot read dsn
// (CheckDSN says so). CheckTLS takes it; the run warns of it.
func UnverifiedServer(dsn string) string {
	cfg, err := pq.NewConfig(dsn)
	if err != nil || cfg.SSLMode != pq.SSLModeRequire {
		return ""
	}
	for _, h := range append([]pq.ConfigMultihost{{Host: cfg.Host, Hostaddr: cfg.Hostaddr}}, cfg.Multi...) {
		if !thisMachine(h.Host, h.Hostaddr) {
			if h.Hostaddr.IsValid() {
				return h.Hostaddr.String()
			}
			return h.Host
		}
	}
	return ""
}

// ErrPlainText is in the chain of CheckTLS's error about a connection
// that may go in plain text.
var ErrPlainText = errors.New("may send the password and the data in plain text")

// checkRootCert refuses an sslrootcert file that holds no PEM certificate
// (a mounted Secret's key left "replace-me", the wrong file): lib/pq fails
// every connection on it, a failure to retry (exit 1) until the Job's
// deadline, when nothing but the file can help. "" and "system" (the
// system's roots) are lib/pq's to judge.
func checkRootCert(path string) error {
	if path == "" || path == "system" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		// Missing or refused, configuration; a failure of its file system
		// (EIO, ESTALE), one a retry may get past.
		return pipeline.FileError("database URL", fmt.Errorf("sslrootcert: %w", err))
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return pipeline.Errorf(pipeline.KindUsage, "database URL", "sslrootcert %s holds no PEM certificate: put the database server's CA certificate there", path)
	}
	return nil
}

// thisMachine reports whether a connection to host (at addr, when valid)
// stays on this machine: a socket, localhost, a loopback address. A name
// is not resolved: one that is not localhost is another machine.
func thisMachine(host string, addr netip.Addr) bool {
	if addr.IsValid() {
		return addr.IsLoopback()
	}
	if host == "" || filepath.IsAbs(host) || strings.HasPrefix(host, "@") || strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// WithParam returns dsn with the run-time parameter key=value added, for a
// postgres:// URL or a key=value connection string alike. It also checks
// that dsn names its sslmode.
func WithParam(dsn, key, value string) (string, error) {
	if err := CheckDSN(dsn); err != nil {
		return "", err
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", pipeline.Errorf(pipeline.KindUsage, "database URL", "cannot parse it (%v)", redactErr(err))
		}
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	// Quoted as libpq quotes a value (a space would end it).
	return dsn + " " + key + "='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(value) + "'", nil
}

// redactErr drops a URL (which may hold a password) from a url.Parse error.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// migrateLockTimeout is how long a migration waits for a lock on a table
// before it gives up (Migrate).
const migrateLockTimeout = time.Minute

// migrateLockKey serializes migrations of all settle processes on a database.
const migrateLockKey = "settle/migrate"

// migrateLockPoll is how often a migration waiting for another to end
// asks for the lock again.
const migrateLockPoll = 200 * time.Millisecond

// waitAdvisoryLock takes the session advisory lock of key on conn, asking
// again every migrateLockPoll until it is free or ctx ends. It does not
// wait inside pg_advisory_lock: a session waiting in a statement holds a
// snapshot, and a CREATE INDEX CONCURRENTLY anywhere in the database (the
// platform's own, where the ledger shares its database) waits for every
// older snapshot - until the migration ahead ends, up to its lock wait.
func waitAdvisoryLock(ctx context.Context, conn *sql.Conn, key string) error {
	for {
		var ok bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, key).Scan(&ok); err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(migrateLockPoll):
		}
	}
}

// Migrate creates the schema if needed and applies the embedded migrations
// with goose. Two processes migrating at once are serialized by an advisory
// lock, so both succeed.
func (l *Ledger) Migrate(ctx context.Context) ([]string, error) {
	conn, err := dbconn.Fresh(ctx, l.db.Conn)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	if err := waitAdvisoryLock(ctx, conn, migrateLockKey); err != nil {
		return nil, fmt.Errorf("migrate: take lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, migrateLockKey)
	// CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when
	// the schema is there: a role given a schema of its own and nothing
	// more (README, "Pointing it at a real database") could never migrate.
	// The schema is created only when it is missing.
	var exists bool
	if err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, l.schema).Scan(&exists); err != nil {
		return nil, fmt.Errorf("migrate: look for schema %s: %w", l.schema, err)
	}
	if !exists {
		if _, err := conn.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS `+pq.QuoteIdentifier(l.schema)); err != nil {
			var pe *pq.Error
			if errors.As(err, &pe) && pe.Code == "42501" { // insufficient_privilege
				return nil, pipeline.Errorf(pipeline.KindUsage, "migrate",
					"schema %s does not exist and this role may not create it (%s): create it for the role (CREATE SCHEMA %s AUTHORIZATION <role>, README \"Pointing it at a real database\"), or name the schema it owns with --schema",
					l.schema, pe.Message, pq.QuoteIdentifier(l.schema))
			}
			return nil, fmt.Errorf("migrate: create schema %s: %w", l.schema, err)
		}
	}
	fsys, err := fs.Sub(settlesql.Migrations, "migrations")
	if err != nil {
		return nil, err
	}
	// A ledger up to date (every run's case) is only checked, on the
	// ledger's pool.
	p, err := goose.NewProvider(goose.DialectPostgres, l.db.DB, fsys)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if pending, err := p.HasPending(ctx); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	} else if !pending {
		return nil, l.checkVersion(ctx, p)
	}
	// The migrations run on a pool of their own whose sessions wait at
	// most a minute (migrateLockTimeout) for a lock: a migration that alters a table
	// a running job holds (items, in a day's transaction) gives up (exit
	// 1, to be run again once no run is active) instead of queueing its
	// exclusive lock in front of every other reader and writer of the
	// table - the running job's other sessions too, which it may be
	// waiting on: nothing would move until someone killed one.
	dsn, err := WithParam(l.dsn, "lock_timeout", fmt.Sprint(l.lockWait.Milliseconds()))
	if err != nil {
		return nil, err
	}
	mdb, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer mdb.Close()
	if p, err = goose.NewProvider(goose.DialectPostgres, mdb, fsys); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	results, err := p.Up(ctx)
	var pe *pq.Error
	if errors.As(err, &pe) && pe.Code == "55P03" { // lock_not_available
		return nil, fmt.Errorf("migrate: a migration waited %s for a table a running settle (or another session) holds, and gave up: run it again when no run is active (%w)", l.lockWait, err)
	}
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if err := l.checkVersion(ctx, p); err != nil {
		return nil, err
	}
	var applied []string
	for _, r := range results {
		applied = append(applied, r.Source.Path)
	}
	return applied, nil
}

// CheckVersion refuses, as Migrate does, a ledger migrated past the
// newest migration this binary embeds, without migrating anything: for a
// command that only reads it (a dry run says a real run is refused).
func (l *Ledger) CheckVersion(ctx context.Context) error {
	p, err := l.versions()
	if err != nil {
		return err
	}
	return l.checkVersion(ctx, p)
}

// versions is a goose provider of the embedded migrations on the ledger's
// pool, to read its version with.
func (l *Ledger) versions() (*goose.Provider, error) {
	fsys, err := fs.Sub(settlesql.Migrations, "migrations")
	if err != nil {
		return nil, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, l.db.DB, fsys)
	if err != nil {
		return nil, fmt.Errorf("read the ledger's version: %w", err)
	}
	return p, nil
}

// CheckMigrated refuses a ledger older than this binary, for the commands
// that read it without migrating it (status, report): their queries name
// what the newer migrations added, and on a ledger an older settle left
// (the image deployed before "settle migrate" ran) they failed with
// PostgreSQL's words, "column other_shard does not exist", exit 1 (found
// by a review of the upgrade path). A ledger with no runs table is not
// refused: the commands say there is no run.
func (l *Ledger) CheckMigrated(ctx context.Context) error {
	p, err := l.versions()
	if err != nil {
		return err
	}
	sources := p.ListSources()
	if len(sources) == 0 {
		return nil
	}
	known := sources[len(sources)-1].Version
	var versioned bool
	if err := l.db.QueryRowContext(ctx, `SELECT to_regclass('goose_db_version') IS NOT NULL`).Scan(&versioned); err != nil || !versioned {
		return err
	}
	var current sql.NullInt64
	if err := l.db.QueryRowContext(ctx, `SELECT max(version_id) FROM goose_db_version`).Scan(&current); err != nil {
		return fmt.Errorf("read the ledger's version: %w", err)
	}
	if current.Valid && current.Int64 < known {
		return pipeline.Errorf(pipeline.KindUsage, "migrate",
			"the ledger in schema %s is at migration %d, older than this settle (%d): run \"settle migrate\" with this settle first (README, \"Upgrades go one way\")",
			l.schema, current.Int64, known)
	}
	return nil
}

// checkVersion refuses a ledger migrated past the newest migration this
// binary embeds: an older binary writes rows the newer rules do not see
// (migration 00023 is what that cost once), so a rolled-back image or a
// Job started before the deploy stops here, before it reads or writes a
// day (exit 2), instead of running on a schema it does not know.
func (l *Ledger) checkVersion(ctx context.Context, p *goose.Provider) error {
	sources := p.ListSources()
	if len(sources) == 0 {
		return nil
	}
	known := sources[len(sources)-1].Version
	current, err := p.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("migrate: read the ledger's version: %w", err)
	}
	if current > known {
		return pipeline.Errorf(pipeline.KindUsage, "migrate",
			"the ledger in schema %s is at migration %d, newer than this settle knows (%d): a newer settle migrated it, and this one would write rows its rules do not see; run the newer settle (README, \"Upgrades go one way\")",
			l.schema, current, known)
	}
	return nil
}

// ReleaseParseBuffers lets go of the buffers goose parsed the migrations
// it applied with: a process whose peak memory matters (the settle
// binary) calls it after a Migrate that applied something. It is not done
// by Migrate itself: it forces two full collections, fine in the job's
// small process, not for a library call in a process that migrates many
// databases while other work runs (the tests). Its SQL parser scans each file with 4 MiB buffers taken
// from a sync.Pool, four at once (the up and down directions side by
// side), and the pool keeps them until two collections have run: the first
// collections of the day's stream would count those 16 MiB as live heap
// and let the heap grow by as much again before collecting, which showed
// as 10-20 MiB more peak RSS in a run that migrated a fresh schema than in
// one that did not. Two collections now drop them (the first moves the
// pool's buffers to its victim cache, the second frees them, and returns
// the freed memory to the OS), a few milliseconds once per migration. A
// ledger already at the latest version parses nothing: goose reads the
// files only to apply them.
func ReleaseParseBuffers() {
	runtime.GC()
	debug.FreeOSMemory()
}

// inTx runs fn in a transaction, committing when it returns nil.
func (l *Ledger) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// ReadOnlyCause asks the ledger's server why it may refuse a write as
// read-only: standby, it is in recovery (a hot standby: a replica, or a
// primary demoted in a failover); readOnlyDefault, this session's
// default_transaction_read_only is on (set on the role or the database).
func (l *Ledger) ReadOnlyCause(ctx context.Context) (standby, readOnlyDefault bool, err error) {
	err = l.db.QueryRowContext(ctx, `SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only') = 'on'`).Scan(&standby, &readOnlyDefault)
	if err != nil {
		return false, false, fmt.Errorf("ask the ledger's server whether it takes writes: %w", err)
	}
	return standby, readOnlyDefault, nil
}
