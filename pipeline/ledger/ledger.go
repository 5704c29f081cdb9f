// Package ledger is settle's durable state in PostgreSQL (DESIGN section 3):
// runs, the extract snapshot, items, rejects and the intent-first record of
// every side effect. It implements the stores the pipeline consumes, and the
// advisory locks that keep two runs of one date apart.
//
// All tables live in one schema (default "settle"), reached through the
// connection's search_path, so the SQL here names no schema.
package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/pressly/goose/v3"

	"github.com/settlekit/settle/pipeline"
	settlesql "github.com/settlekit/settle/sql"
)

// DefaultSchema is the schema the ledger uses when none is configured.
const DefaultSchema = "settle"

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Ledger is the job's state in one PostgreSQL schema. It is safe for
// concurrent use.
type Ledger struct {
	db     *sqlx.DB
	schema string
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
	db, err := sqlx.Open("postgres", withPath)
	if err != nil {
		return nil, pipeline.E(pipeline.KindUsage, "open ledger", err)
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(4)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to ledger database: %w", err)
	}
	return &Ledger{db: db, schema: schema}, nil
}

// DB is the underlying pool, for status and report queries.
func (l *Ledger) DB() *sqlx.DB { return l.db }

// Schema is the schema the ledger's tables live in.
func (l *Ledger) Schema() string { return l.schema }

// Close closes the pool.
func (l *Ledger) Close() error { return l.db.Close() }

// CheckDSN returns a usage error unless dsn names its sslmode: the job talks
// to production databases, so TLS is never left to a default.
func CheckDSN(dsn string) error {
	if !strings.Contains(dsn, "sslmode=") {
		return pipeline.Errorf(pipeline.KindUsage, "database URL", "set sslmode explicitly (disable for a loopback or socket connection, verify-full in production)")
	}
	return nil
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
	return dsn + " " + key + "=" + value, nil
}

// redactErr drops a URL (which may hold a password) from a url.Parse error.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// migrateLockKey serializes migrations of all settle processes on a database.
const migrateLockKey = "settle/migrate"

// Migrate creates the schema if needed and applies the embedded migrations
// with goose. Two processes migrating at once are serialized by an advisory
// lock, so both succeed.
func (l *Ledger) Migrate(ctx context.Context) ([]string, error) {
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(hashtextextended($1, 0))`, migrateLockKey); err != nil {
		return nil, fmt.Errorf("migrate: take lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, migrateLockKey)
	if _, err := conn.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS `+pq.QuoteIdentifier(l.schema)); err != nil {
		return nil, fmt.Errorf("migrate: create schema %s: %w", l.schema, err)
	}
	fsys, err := fs.Sub(settlesql.Migrations, "migrations")
	if err != nil {
		return nil, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, l.db.DB, fsys)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	var applied []string
	for _, r := range results {
		applied = append(applied, r.Source.Path)
	}
	return applied, nil
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
