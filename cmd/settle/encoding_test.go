package main

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// asciiPlatform creates a SQL_ASCII database beside e's (a platform whose
// database takes any bytes as text), seeds it, and returns its URL.
func asciiPlatform(e *env) string {
	e.t.Helper()
	u, err := url.Parse(e.url)
	if err != nil {
		e.t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/") + "_ascii"
	e.db.MustExec("CREATE DATABASE " + pq.QuoteIdentifier(name) + " TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'")
	e.t.Cleanup(func() { e.db.Exec("DROP DATABASE IF EXISTS " + pq.QuoteIdentifier(name) + " WITH (FORCE)") })
	u.Path = "/" + name
	if out, code := e.raw("settle", "seed", "--database-url", u.String(), "--date", testDate, "--orders", "200", "--sellers", "30", "--bad-rows", "0", "--seed", "7"); code != 0 {
		e.t.Fatalf("seed: exit %d\n%s", code, out)
	}
	return u.String()
}

// TestTextNotUTF8InASQLASCIIPlatformStopsNoDay: a seller's name and an
// order's category in a legacy encoding (GBK bytes in a SQL_ASCII
// platform database): PostgreSQL refused to send them to settle (a UTF-8
// client), and the whole day stopped, on every run (found by a review).
// They are read as bytes there and made UTF-8 (U+FFFD): the day is read,
// every row an item or a reject.
func TestTextNotUTF8InASQLASCIIPlatformStopsNoDay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	src := asciiPlatform(e)
	plat, err := sqlx.Open("postgres", src)
	if err != nil {
		t.Fatal(err)
	}
	defer plat.Close()
	plat.MustExec(`UPDATE sellers SET name = E'\xc9\xcc\xb5\xea' WHERE seller_id = (SELECT min(seller_id) FROM orders)`)
	plat.MustExec(`UPDATE orders SET category = E'\xc9\xcc\xb5\xea' WHERE order_no = 'O20261123-00000010'`)
	out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--until", "transform", "--source-database-url", src)
	if code != 0 {
		t.Fatalf("text not UTF-8 stopped the day: exit %d\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.items`) + e.count(`SELECT count(*) FROM settle.rejects`); n != 200 {
		t.Fatalf("%d items and rejects, want 200\n%s", n, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.run_sellers WHERE name LIKE '%' || chr(65533) || '%'`); n != 1 {
		t.Fatalf("%d sellers recorded with U+FFFD in their name, want 1", n)
	}
}

// TestASQLASCIIPlatformTakesAQueryEndingInAComment: a sellers query whose
// last line is a comment, as a platform's own file may have: wrapped on a
// SQL_ASCII platform, the comment swallowed the wrapper's end and every
// run stopped with exit 2 (found by a review).
func TestASQLASCIIPlatformTakesAQueryEndingInAComment(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	src := asciiPlatform(e)
	q := filepath.Join(t.TempDir(), "sellers.sql")
	if err := os.WriteFile(q, []byte("SELECT seller_id, name, entity_type, country, infinia_seller_id, wechat_sub_mchid\nFROM sellers\nWHERE seller_id = ANY ($1) -- the platform's sellers"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--until", "transform", "--source-database-url", src, "--sellers-query", q); code != 0 {
		t.Fatalf("a sellers query ending in a comment, on a SQL_ASCII platform: exit %d\n%s", code, out)
	}
}
