// Package pgtest gives each test its own new, empty PostgreSQL database: the
// helper used by every package whose tests touch data. Tests run against a
// real server, never a mock, and may run in parallel.
//
// The server is found once per test binary, in this order:
//
//  1. SETTLE_TEST_DATABASE_URL, a postgres:// URL of any database on a
//     server where that role may create databases. When it is set but
//     unusable, every test using pgtest fails.
//  2. postgres://postgres@127.0.0.1:5432/postgres (trust authentication, as
//     scripts/test-deps.sh sets up), unless SETTLE_TEST_NO_LOCAL=1, which
//     exists to exercise step 3 on a machine where step 2 would succeed.
//  3. A throwaway cluster started with internal/pgserver from the locally
//     installed binaries, in a temporary directory. Packages should stop it
//     at exit by calling Main from TestMain; without that (or when the test
//     binary is killed, panics or times out), Linux still shuts the server
//     down when the binary exits, but its directory is left in the
//     temporary directory.
//
// When none works, tests using pgtest are skipped with a message saying
// what to install, and fail instead when CI=true.
//
// Databases are named settle_t_<random hex>, created from template0 with
// UTF8 encoding and the C locale, and dropped (WITH (FORCE)) when the test
// ends. A package whose tests each start from the same prepared database
// (cmd/settle's: a migrated ledger) makes it once per test binary with
// Template and copies it for each test with URLFrom: CREATE DATABASE
// copies its files, cheaper than running its preparation again.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/settlekit/settle/internal/pgserver"
)

// Environment variables read by pgtest.
const (
	EnvURL     = "SETTLE_TEST_DATABASE_URL" // server to use instead of looking for one
	EnvNoLocal = "SETTLE_TEST_NO_LOCAL"     // "1": do not try 127.0.0.1:5432
)

const localURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// URL returns the connection URL of a new, empty database created for t and
// dropped when t and its subtests end. It skips t when no PostgreSQL server
// can be had (fails it when CI=true).
func URL(t testing.TB) string {
	t.Helper()
	return newDatabase(t, "template0")
}

// URLFrom is URL of a copy of template (made by Template) instead of an
// empty database.
func URLFrom(t testing.TB, template string) string {
	t.Helper()
	return newDatabase(t, template)
}

// newDatabase creates a database for t as a copy of template, dropped when
// t ends, and returns its URL.
func newDatabase(t testing.TB, template string) string {
	t.Helper()
	c := get(t)
	name := "settle_t_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.create(ctx, name, template); err != nil {
		t.Fatalf("pgtest: create database %s from %s on %s: %v", name, template, c.where, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.drop(ctx, name); err != nil {
			t.Errorf("pgtest: drop database %s on %s: %v", name, c.where, err)
		}
	})
	return c.url(name)
}

// Template returns the name of a database made once per test binary for
// key: a new, empty one given to prepare (by its URL), which must close
// every connection it opened before it returns. Copies are made with
// URLFrom; Main drops the template at the end. A prepare that fails
// fails every test asking for its template.
func Template(t testing.TB, key string, prepare func(url string) error) string {
	t.Helper()
	c := get(t)
	templates.mu.Lock()
	tp := templates.made[key]
	if tp == nil {
		tp = &template{}
		if templates.made == nil {
			templates.made = map[string]*template{}
		}
		templates.made[key] = tp
	}
	templates.mu.Unlock()
	tp.once.Do(func() {
		name := "settle_t_tpl_" + randomHex(8)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if tp.err = c.create(ctx, name, "template0"); tp.err != nil {
			return
		}
		tp.name = name
		if err := prepare(c.url(name)); err != nil {
			tp.err = fmt.Errorf("prepare %s: %w", key, err)
		}
	})
	if tp.err != nil {
		t.Fatalf("pgtest: template %s on %s: %v", key, c.where, tp.err)
	}
	return tp.name
}

// PrimaryAndStandby starts a cluster of its own and a hot standby streaming
// from it (pgserver.Start, pgserver.StartStandby), both stopped when t
// ends: for tests of what settle does on a read replica, or a failover's
// demoted primary. Without the server binaries t is skipped, and fails
// under CI=true.
func PrimaryAndStandby(t testing.TB) (primary, standby *pgserver.Server) {
	t.Helper()
	ctx := context.Background()
	primary, err := pgserver.Start(ctx, "", nil)
	if errors.Is(err, pgserver.ErrNotInstalled) {
		if isCI() {
			t.Fatalf("CI=true: %v", err)
		}
		t.Skipf("SKIPPED, PostgreSQL is not installed: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { primary.Stop() })
	if standby, err = pgserver.StartStandby(ctx, primary, "", nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { standby.Stop() })
	return primary, standby
}

// templates are the databases Template made, dropped by Main.
var templates struct {
	mu   sync.Mutex
	made map[string]*template
}

type template struct {
	once sync.Once
	name string
	err  error
}

// DB opens a new, empty database for t (see URL) with sqlx and the lib/pq
// driver. It is closed when t ends, before the database is dropped.
func DB(t testing.TB) *sqlx.DB {
	t.Helper()
	u := URL(t)
	db, err := sqlx.Open("postgres", u)
	if err != nil {
		t.Fatalf("pgtest: open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("pgtest: connect to the new database: %v", err)
	}
	return db
}

// Main runs the tests and then stops the throwaway server, if pgtest
// started one. Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// The test binary exits with m.Run's code when TestMain returns.
func Main(m *testing.M) {
	m.Run()
	stop()
}

// M wraps m so that running it also does what Main does after the tests
// (the throwaway server stopped, the admin pool closed), for a TestMain
// that hands m on to another runner, goleak's say:
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.M(m)) }
//
// The pool's goroutines are gone by the time the runner looks.
func M(m *testing.M) interface{ Run() int } { return mainRun{m} }

type mainRun struct{ m *testing.M }

func (r mainRun) Run() int {
	code := r.m.Run()
	stop()
	return code
}

// The server found for this test binary. Discovery happens once: every test
// of a package shares the server and the admin connection pool.
var (
	once     sync.Once
	shared   *cluster
	errFind  error // why no server was found
	mustFail bool  // errFind is about an explicit EnvURL: a failure even outside CI
)

// cluster is a server on which pgtest creates and drops databases.
type cluster struct {
	admin  *url.URL // a database to connect to for CREATE/DROP DATABASE
	db     *sql.DB  // pool on admin
	where  string   // description for messages, without secrets
	server *pgserver.Server
}

// get returns the cluster, or ends t with a skip or a failure.
func get(t testing.TB) *cluster {
	t.Helper()
	once.Do(find)
	if shared != nil {
		return shared
	}
	if isCI() || mustFail {
		t.Fatalf("pgtest: %v", errFind)
	}
	t.Skipf("SKIPPED (no PostgreSQL): %v", errFind)
	return nil
}

func find() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if u := os.Getenv(EnvURL); u != "" {
		shared, errFind = connect(ctx, u, EnvURL, 10*time.Second)
		mustFail = errFind != nil
		return
	}
	var tried []string
	if os.Getenv(EnvNoLocal) != "1" {
		c, err := connect(ctx, localURL, "127.0.0.1:5432", 2*time.Second)
		if err == nil {
			shared = c
			return
		}
		tried = append(tried, err.Error())
	} else {
		tried = append(tried, "127.0.0.1:5432: not tried ("+EnvNoLocal+"=1)")
	}
	c, err := startServer(ctx)
	if err == nil {
		shared = c
		return
	}
	tried = append(tried, "throwaway cluster: "+err.Error())
	errFind = fmt.Errorf("no PostgreSQL server for tests (tried %s): run `bash scripts/test-deps.sh` as root, "+
		"or `apt-get install postgresql`, or set %s=postgres://USER@HOST:PORT/DB?sslmode=disable",
		strings.Join(tried, "; "), EnvURL)
	// A skip message is only shown with -v; say it where it is seen.
	outcome := "SKIPPED"
	if isCI() {
		outcome = "FAILING (CI=true)"
	}
	fmt.Fprintf(os.Stderr, "\n*** pgtest: %v\n*** Tests that need PostgreSQL are %s.\n\n", errFind, outcome)
}

// isCI reports whether CI=true, where a missing server fails tests.
func isCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// connect opens and pings an admin pool on rawURL.
func connect(ctx context.Context, rawURL, where string, timeout time.Duration) (*cluster, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("%s: not a postgres:// URL", where)
	}
	if where == EnvURL {
		where = EnvURL + " (" + u.Redacted() + ")"
	}
	db, err := sql.Open("postgres", rawURL)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return &cluster{admin: u, db: db, where: where}, nil
}

func startServer(ctx context.Context) (*cluster, error) {
	s, err := pgserver.Start(ctx, "", nil)
	if err != nil {
		return nil, err
	}
	c, err := connect(ctx, s.URL("postgres"), "throwaway cluster", 10*time.Second)
	if err != nil {
		_ = s.Stop()
		return nil, err
	}
	c.where = "throwaway cluster " + s.URL("")
	c.server = s
	return c, nil
}

// stop closes the admin pool and stops the server pgtest started.
func stop() {
	once.Do(func() {}) // no server was ever needed: nothing to stop
	if shared == nil {
		return
	}
	templates.mu.Lock()
	for _, tp := range templates.made {
		if tp.name != "" {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := shared.drop(ctx, tp.name); err != nil {
				fmt.Fprintf(os.Stderr, "pgtest: drop template %s: %v\n", tp.name, err)
			}
			cancel()
		}
	}
	templates.mu.Unlock()
	shared.db.Close()
	if shared.server != nil {
		if err := shared.server.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stop throwaway cluster: %v\n", err)
		}
	}
}

func (c *cluster) url(dbname string) string {
	u := *c.admin
	u.Path, u.RawPath = "/"+dbname, ""
	return u.String()
}

// create creates database name as a copy of template. CREATE DATABASE
// is safe to run concurrently from a template no session is connected to
// (template0, or one Template prepared); the retry covers a transient
// "object in use" (a prepare's last connection not gone yet) all the
// same. A copy of template0 gets UTF8 and the C locale; a copy of another
// template, the template's.
func (c *cluster) create(ctx context.Context, name, template string) error {
	q := "CREATE DATABASE " + pq.QuoteIdentifier(name) + " TEMPLATE " + pq.QuoteIdentifier(template)
	if template == "template0" {
		q += " ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if _, err = c.db.ExecContext(ctx, q); !isObjectInUse(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
	}
	return err
}

func (c *cluster) drop(ctx context.Context, name string) error {
	_, err := c.db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(name)+" WITH (FORCE)")
	return err
}

func isObjectInUse(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code == "55006"
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b)
}

// EndSessions ends, from a session of its own, every other session of the
// database at url (as a server's idle_session_timeout, a restart or a
// failover does) and waits until they are gone: the connections a pool
// keeps idle there are broken, and the pool does not know it yet. It
// fails t when there was none to end: the test would prove nothing.
func EndSessions(t testing.TB, url string) {
	t.Helper()
	admin, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	admin.SetMaxOpenConns(1)
	const others = `FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`
	var n int
	if err := admin.QueryRow(`SELECT count(pg_terminate_backend(pid)) ` + others).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no idle session to end: the test would prove nothing")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := admin.QueryRow(`SELECT count(*) ` + others).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions still there", n)
		}
	}
}
