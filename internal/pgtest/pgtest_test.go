package pgtest_test

import (
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Two parallel tests get different, empty, usable databases, dropped when
// they end.
func TestParallelDatabases(t *testing.T) {
	var (
		mu    sync.Mutex
		names []string
	)
	t.Run("group", func(t *testing.T) {
		for _, sub := range []string{"a", "b"} {
			t.Run(sub, func(t *testing.T) {
				t.Parallel()
				db := pgtest.DB(t)
				var name string
				if err := db.Get(&name, `SELECT current_database()`); err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(name, "settle_t_") {
					t.Errorf("database %q, want a settle_t_ prefix", name)
				}
				var tables int
				if err := db.Get(&tables, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`); err != nil {
					t.Fatal(err)
				}
				if tables != 0 {
					t.Errorf("new database has %d tables, want 0", tables)
				}
				db.MustExec(`CREATE TABLE mine (who text PRIMARY KEY)`)
				db.MustExec(`INSERT INTO mine VALUES ($1)`, sub)
				var who string
				if err := db.Get(&who, `SELECT who FROM mine`); err != nil || who != sub {
					t.Errorf("read back %q, %v; want %q", who, err, sub)
				}
				var enc, collate string
				if err := db.QueryRow(`SELECT pg_encoding_to_char(encoding), datcollate FROM pg_database WHERE datname = current_database()`).Scan(&enc, &collate); err != nil {
					t.Fatal(err)
				}
				if enc != "UTF8" || collate != "C" {
					t.Errorf("encoding %s collate %s, want UTF8 and C", enc, collate)
				}
				mu.Lock()
				names = append(names, name)
				mu.Unlock()
			})
		}
	})
	if t.Failed() || len(names) != 2 {
		return
	}
	if names[0] == names[1] {
		t.Fatalf("both tests got database %s", names[0])
	}
	db := pgtest.DB(t)
	var left int
	if err := db.Get(&left, `SELECT count(*) FROM pg_database WHERE datname = ANY($1)`, "{"+strings.Join(names, ",")+"}"); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d of %v not dropped after their tests ended", left, names)
	}
}

// A connection left open past the test's end does not keep its database
// from being dropped.
func TestDropWithOpenConnection(t *testing.T) {
	var (
		name string
		open *sqlx.DB
	)
	t.Run("leaky", func(t *testing.T) {
		u := pgtest.URL(t)
		if !strings.Contains(u, "/settle_t_") || !strings.Contains(u, "sslmode=disable") {
			t.Errorf("URL = %s", u)
		}
		var err error
		if open, err = sqlx.Open("postgres", u); err != nil {
			t.Fatal(err)
		}
		if err := open.Get(&name, `SELECT current_database()`); err != nil {
			t.Fatal(err)
		}
	})
	if open == nil {
		return
	}
	defer open.Close()
	var n int
	if err := pgtest.DB(t).Get(&n, `SELECT count(*) FROM pg_database WHERE datname = $1`, name); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s not dropped", name)
	}
}

func TestManyConcurrent(t *testing.T) {
	for i := range 8 {
		t.Run("db", func(t *testing.T) {
			t.Parallel()
			db := pgtest.DB(t)
			db.MustExec(`CREATE TABLE x (n int)`)
			db.MustExec(`INSERT INTO x VALUES ($1)`, i)
		})
	}
}

// TestTemplateIsPreparedOnceAndCopied: every copy of a template holds what
// its preparation wrote, the preparation runs once however many tests ask
// at once, and a copy is its own database (a write to one is not in
// another).
func TestTemplateIsPreparedOnceAndCopied(t *testing.T) {
	var prepared atomic.Int32
	prepare := func(url string) error {
		prepared.Add(1)
		db, err := sql.Open("postgres", url)
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = db.Exec(`CREATE TABLE prepared (n int); INSERT INTO prepared VALUES (7)`)
		return err
	}
	t.Run("copies", func(t *testing.T) {
		for i := range 4 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				db, err := sql.Open("postgres", pgtest.URLFrom(t, pgtest.Template(t, "prepared", prepare)))
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				var n, rows int
				if err := db.QueryRow(`SELECT max(n), count(*) FROM prepared`).Scan(&n, &rows); err != nil || n != 7 || rows != 1 {
					t.Fatalf("copy holds %d in %d rows (%v), want the prepared 7 alone", n, rows, err)
				}
				if _, err := db.Exec(`INSERT INTO prepared VALUES ($1)`, 100+i); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
	if n := prepared.Load(); n != 1 {
		t.Fatalf("prepared %d times, want once", n)
	}
}
