package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/seed"
)

// A trade file Infinia did not know past --infinia-lost-after holds its
// orders as lost; once Infinia knows it after all (it picked the file up
// late, and is processing it), the orders are in progress again, not held
// as lost by a file Infinia is working on.
func TestALostFileInfiniaKnowsLaterIsNoLongerHeld(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "200", "--sellers", "5", "--seed", "6")
	const balance = 1_000_000_000_00
	sim := e.simWith(paysim.Options{Polls: 100000, ShareKeys: true, KeyBits: testKeyBits}, 5, nil, balance)
	lost := seed.InfiniaID(2)
	sim.Infinia.LoseFilesOf(lost, true)
	out, _ := e.runInfinia(sim, "--infinia-lost-after", "1ms", "--provider-wait", "200ms")
	var names []string
	if err := e.db.Select(&names, `SELECT name FROM settle.trade_files WHERE name LIKE '%\_' || $1 || '\_%' ORDER BY name`, lost); err != nil || len(names) == 0 {
		t.Fatal(names, err)
	}
	held := e.count(`SELECT count(*) FROM settle.items WHERE reason LIKE 'held: trade file % was lost by Infinia%'`)
	if held == 0 {
		t.Fatalf("nothing held as lost:\n%s", out)
	}
	// Infinia picked the files up late after all: it knows them now.
	sim.Infinia.LoseFilesOf(lost, false)
	for _, n := range names {
		f, err := os.Open(filepath.Join(e.reports, "work", testDate, n))
		if err != nil {
			t.Fatal(err)
		}
		err = sim.Infinia.ReceiveFile(n, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	out, code := e.runInfinia(sim, "--infinia-lost-after", "1ms", "--provider-wait", "200ms")
	if code != 1 || !strings.Contains(out, "still processing at Infinia") {
		t.Fatalf("Infinia processing every file: exit %d, want 1\n%s", code, out)
	}
	for _, l := range e.checkReportsBalance(testDate, "run2") {
		if l.Held != 0 {
			t.Errorf("summary.csv %s %s: %d held while Infinia is processing every file (want in progress)", l.Channel, l.Currency, l.Held)
		}
	}
	if n := e.count(`SELECT count(*) FROM settle.items WHERE reason LIKE 'held: trade file % was lost by Infinia%'`); n != 0 {
		var s string
		e.db.Get(&s, `SELECT order_no || ' ' || state || ' ' || reason FROM settle.items WHERE reason LIKE 'held: trade file % was lost by Infinia%' LIMIT 1`)
		t.Errorf("%d orders still held as lost by Infinia, which knows their file now (e.g. %s)", n, s)
	}
}
