package main

import (
	"strings"
	"testing"

	"github.com/settlekit/settle/internal/pgtest"
)

// TestAnotherPlatformDatabaseIsRefused: a source URL pointing at another
// platform database (a staging copy, another marketplace's, one exported
// in a person's shell) had the next date's orders read there and paid -
// eight revenue shares sent - and only the reconcile stage's look at the
// date before's window, after the sending, said so (exit 4: its orders
// "no longer given"). A run of a date whose platform database is another
// than the one the date, or else the latest earlier date, read from is
// refused (exit 2) naming both, nothing read nor sent; so is a date
// resumed there (its late refunds would be read there and clawed back by
// order number); --new-source takes the other database for good.
func TestAnotherPlatformDatabaseIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const balance = 1_000_000_000_00
	for _, d := range []string{"2026-11-22", "2026-11-23"} {
		e.mustSettle("seed", "--date", d, "--orders", "20", "--sellers", "3", "--seed", "8", "--allow-other-orders")
	}
	sim := e.sim(nil, 3, nil, balance)
	if out, code := e.runInfiniaOn(sim, "2026-11-22"); code != 0 {
		t.Fatalf("2026-11-22: exit %d:\n%s", code, out)
	}
	var ours string
	if err := e.db.Get(&ours, `SELECT source_db FROM settle.runs WHERE business_date = '2026-11-22'`); err != nil || !strings.Contains(ours, "(system ") {
		t.Fatalf("2026-11-22 recorded platform database %q (%v), want its name and system identifier", ours, err)
	}
	other := pgtest.URL(t)
	if out, code := e.raw(plainTextArgs([]string{"settle", "seed", "--database-url", other, "--date", "2026-11-23", "--orders", "20", "--sellers", "3", "--seed", "99"})...); code != 0 {
		t.Fatalf("seed the other platform database: exit %d:\n%s", code, out)
	}
	sent := len(sim.Infinia.RevenueShares())
	out, code := e.runInfiniaOn(sim, "2026-11-23", "--source-database-url", other)
	if code != 2 || !strings.Contains(out, "the latest date before it, 2026-11-22, read its day from "+ours) || !strings.Contains(out, "--new-source") {
		t.Fatalf("2026-11-23 from another platform database: exit %d, want 2 naming the one 2026-11-22 read from:\n%s", code, out)
	}
	if n := len(sim.Infinia.RevenueShares()); n != sent {
		t.Fatalf("%d revenue shares sent on the other platform database's orders", n-sent)
	}
	// A dry run says so (it checked the accounts alone: found by a review).
	if out, code := e.runInfiniaOn(sim, "2026-11-23", "--source-database-url", other, "--dry-run"); code != 0 ||
		!strings.Contains(out, "a real run is refused") || !strings.Contains(out, "read its day from "+ours) {
		t.Fatalf("dry run of 2026-11-23 from another platform database: exit %d, want 0 saying a real run is refused:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.runs WHERE business_date = '2026-11-23'`); n != 0 {
		t.Fatalf("%d runs of 2026-11-23 opened by the refused run", n)
	}
	if out, code := e.runInfiniaOn(sim, "2026-11-23"); code != 0 {
		t.Fatalf("2026-11-23 from the platform's own database: exit %d:\n%s", code, out)
	}
	// Resumed there, it would read its late refunds there.
	if out, code := e.runInfiniaOn(sim, "2026-11-23", "--source-database-url", other); code != 2 || !strings.Contains(out, "its date's runs read their day from "+ours) {
		t.Fatalf("2026-11-23 run again from another platform database: exit %d, want 2:\n%s", code, out)
	}
	// The platform moved for good: taken once with the flag, then kept.
	if out, code := e.runInfiniaOn(sim, "2026-11-23", "--source-database-url", other, "--new-source"); code == 2 {
		t.Fatalf("2026-11-23 from the other database with --new-source: exit 2:\n%s", out)
	}
	var now string
	if err := e.db.Get(&now, `SELECT source_db FROM settle.runs WHERE business_date = '2026-11-23'`); err != nil || now == ours || now == "" {
		t.Fatalf("after --new-source 2026-11-23 records platform database %q (%v), want the other one", now, err)
	}
}
