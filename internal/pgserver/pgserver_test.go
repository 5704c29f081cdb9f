package pgserver

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// start starts a server for t, skipping (failing under CI=true) when no
// binaries are installed.
func start(t *testing.T, dir string) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	begin := time.Now()
	s, err := Start(ctx, dir, t.Output())
	if errors.Is(err, ErrNotInstalled) {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatalf("CI=true: %v", err)
		}
		t.Skipf("SKIPPED, PostgreSQL is not installed: %v", err)
	}
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("started %s in %v", s.URL(""), time.Since(begin).Round(time.Millisecond))
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

func TestStartQueryStop(t *testing.T) {
	t.Parallel()
	s := start(t, "")

	admin := open(t, s.URL("postgres"))
	if _, err := admin.Exec(`CREATE DATABASE app`); err != nil {
		t.Fatal(err)
	}
	var encoding string
	if err := admin.QueryRow(`SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = 'app'`).Scan(&encoding); err != nil {
		t.Fatal(err)
	}
	if encoding != "UTF8" {
		t.Errorf("encoding = %s, want UTF8", encoding)
	}
	var maxConns, fsync string
	if err := admin.QueryRow(`SELECT current_setting('max_connections'), current_setting('fsync')`).Scan(&maxConns, &fsync); err != nil {
		t.Fatal(err)
	}
	if maxConns != "200" || fsync != "off" {
		t.Errorf("max_connections=%s fsync=%s, want 200 and off", maxConns, fsync)
	}

	app := open(t, s.URL("app"))
	if _, err := app.Exec(`CREATE TABLE t (n bigint); INSERT INTO t VALUES (41), (1)`); err != nil {
		t.Fatal(err)
	}
	var sum int64
	if err := app.QueryRow(`SELECT sum(n) FROM t`).Scan(&sum); err != nil {
		t.Fatal(err)
	}
	if sum != 42 {
		t.Errorf("sum = %d, want 42", sum)
	}
	if _, err := os.Stat(filepath.Join(s.dir, ".s.PGSQL."+strconv.Itoa(s.port))); err != nil {
		t.Errorf("unix socket not in the data directory: %v", err)
	}
	if os.Geteuid() == 0 {
		var st syscall.Stat_t
		if err := syscall.Stat(s.dir, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid == 0 {
			t.Errorf("data directory owned by root, want an unprivileged user")
		}
	}
	app.Close()
	admin.Close()

	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := os.Stat(s.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data directory %s still there after Stop (%v)", s.dir, err)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.port), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d still accepts connections after Stop", s.port)
	}
}

func TestStartInGivenDir(t *testing.T) {
	t.Parallel()
	// Not t.TempDir: when root, the server user must be able to reach dir.
	parent, err := os.MkdirTemp("", "pgserver-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "data")

	s := start(t, dir)
	if got := s.URL("x y"); !strings.HasSuffix(got, "/x%20y?sslmode=disable") {
		t.Errorf("URL = %s", got)
	}
	db := open(t, s.URL("postgres"))
	var got string
	if err := db.QueryRow(`SHOW data_directory`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != dir {
		t.Errorf("data_directory = %s, want %s", got, dir)
	}
	db.Close()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s, created by Start, still there after Stop (%v)", dir, err)
	}
	if _, err := os.Stat(parent); err != nil {
		t.Errorf("parent directory removed: %v", err)
	}
}

func TestFindBinariesMissing(t *testing.T) {
	_, err := findBinaries(t.TempDir(), filepath.Join(t.TempDir(), "nothing"))
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("err = %v, want ErrNotInstalled", err)
	}
	for _, want := range []string{"initdb", "/usr/lib/postgresql/*/bin", "apt-get install postgresql", "--database-url"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// settle demo never reads SETTLE_DATABASE_URL (a production URL in the
	// shell is never written to): it is no advice to give.
	if strings.Contains(err.Error(), " SETTLE_DATABASE_URL") {
		t.Errorf("error %q advises SETTLE_DATABASE_URL, which settle demo ignores", err)
	}
}

func TestFindBinariesHighestVersion(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"9.6", "15", "13", "16"} {
		fakeBinaries(t, filepath.Join(root, v, "bin"))
	}
	os.Remove(filepath.Join(root, "16", "bin", "postgres")) // incomplete: skipped

	b, err := findBinaries("", root)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "15", "bin", "initdb"); b.initdb != want {
		t.Errorf("initdb = %s, want %s", b.initdb, want)
	}
}

func TestFindBinariesPathFirst(t *testing.T) {
	root, onPath := t.TempDir(), t.TempDir()
	fakeBinaries(t, filepath.Join(root, "15", "bin"))
	fakeBinaries(t, onPath)

	b, err := findBinaries(t.TempDir()+string(filepath.ListSeparator)+onPath, root)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(onPath, "postgres"); b.postgres != want {
		t.Errorf("postgres = %s, want %s", b.postgres, want)
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int // sign
	}{
		{"15", "9.6", 1}, {"9.6", "9.5", 1}, {"10", "10", 0}, {"13", "13.1", -1}, {"devel", "15", 1},
	} {
		got := compareVersions(c.a, c.b)
		if (got > 0) != (c.want > 0) || (got < 0) != (c.want < 0) {
			t.Errorf("compareVersions(%s, %s) = %d, want sign %d", c.a, c.b, got, c.want)
		}
	}
}

func fakeBinaries(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"initdb", "postgres"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func open(t *testing.T, url string) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		t.Fatalf("ping %s: %v", url, err)
	}
	return db
}
