package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocarina/gocsv"

	"github.com/settlekit/settle/pipeline"
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
	// settle status (text) shows where the seller shares are, and no
	// error for a run that had none.
	text := e.mustSettle("status", "--date", testDate)
	for _, want := range []string{"seller shares of the date", "side effects: none", "late refunds read on this date: none"} {
		if !strings.Contains(text, want) {
			t.Errorf("status lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "last error") {
		t.Errorf("status of a run without error shows one:\n%s", text)
	}
	// settle status -o json is one JSON document carrying the figures of
	// the reports: the summary rows, and totals by currency that add up.
	out := e.mustSettle("status", "--date", testDate, "-o", "json")
	var doc struct {
		Date string `json:"date"`
		Runs []struct {
			State  string `json:"state"`
			Stages []struct {
				Done bool `json:"done"`
			} `json:"stages"`
		} `json:"runs"`
		Summary []struct {
			Channel  string `json:"channel"`
			Currency string `json:"currency"`
			Seller   int64  `json:"seller_minor"`
			Paid     int64  `json:"paid_minor"`
			Carried  int64  `json:"carried_minor"`
			Held     int64  `json:"held_minor"`
			Progress int64  `json:"in_progress_minor"`
			Balanced bool   `json:"balanced"`
		} `json:"summary"`
		Totals []struct {
			Currency   string `json:"currency"`
			Seller     int64  `json:"seller_minor"`
			Paid       int64  `json:"paid_minor"`
			Carried    int64  `json:"carried_minor"`
			Held       int64  `json:"held_minor"`
			Unverified int64  `json:"unverified_minor"`
			Rejected   int64  `json:"rejected_by_provider_minor"`
			Progress   int64  `json:"in_progress_minor"`
		} `json:"totals"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("status -o json is not one JSON document: %v\n%s", err, out)
	}
	var csvLines []pipeline.SummaryLine
	if err := gocsv.UnmarshalFile(mustOpen(t, filepath.Join(e.reports, testDate, "summary.csv")), &csvLines); err != nil {
		t.Fatal(err)
	}
	if doc.Date != testDate || len(doc.Runs) != 1 || len(doc.Summary) != len(csvLines) {
		t.Fatalf("status -o json: %d runs, %d summary rows (summary.csv has %d):\n%s", len(doc.Runs), len(doc.Summary), len(csvLines), out)
	}
	for i, c := range csvLines {
		j := doc.Summary[i]
		if j.Channel != c.Channel || j.Currency != c.Currency || j.Seller != c.Seller || j.Paid != c.Paid || j.Carried != c.Carried ||
			j.Held != c.Held || j.Progress != c.InProgress || j.Balanced != c.Balanced {
			t.Errorf("status -o json summary row %d %+v, summary.csv %+v", i, j, c)
		}
	}
	for _, tot := range doc.Totals {
		if tot.Seller == 0 || tot.Seller != tot.Paid+tot.Carried+tot.Held+tot.Unverified+tot.Rejected+tot.Progress {
			t.Errorf("status -o json totals do not add up: %+v", tot)
		}
	}
}

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
