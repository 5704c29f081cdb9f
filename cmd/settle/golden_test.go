package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestOrdersReportGolden pins the reports of a small seeded day: columns,
// order, amounts, rules, reject reasons, per-seller and per-channel sums. Rewrite with -update and review
// the diff like code.
func TestOrdersReportGolden(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "60", "--sellers", "8", "--bad-rows", "8", "--seed", "42")
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, "--max-reject-ratio", "0.5", skipAll)
	for _, name := range []string{"orders", "sellers", "summary", "payouts"} {
		got, err := os.ReadFile(filepath.Join(e.reports, testDate, name+".csv"))
		if err != nil {
			t.Fatal(err)
		}
		golden := filepath.Join("testdata", name+".golden.csv")
		if *update {
			if err := os.WriteFile(golden, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s.csv differs from %s (run with -update and review the diff):\n%s", name, golden, got)
		}
	}
}
