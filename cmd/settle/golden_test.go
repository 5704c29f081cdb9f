package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gocarina/gocsv"
	"github.com/urfave/cli/v2"

	"github.com/settlekit/settle/internal/scenario"
	"github.com/settlekit/settle/pipeline"
)

var update = flag.Bool("update", false, "rewrite the expected reports of the scenarios in testdata/ (the repository's)")

// TestOrdersReportGolden pins the reports of a small seeded day (the
// golden-day scenario, testdata/golden-day): columns, order, amounts, rules,
// reject reasons, per-seller and per-channel sums. Rewrite with -update and
// review the diff like code.
func TestOrdersReportGolden(t *testing.T) {
	t.Parallel()
	sc := scenario.Load(t, "golden-day")
	if sc.Seed.Date != testDate {
		t.Fatalf("golden-day is %s: the status checks of this test read %s", sc.Seed.Date, testDate)
	}
	e := newEnv(t)
	e.mustSettle(append([]string{"seed"}, sc.Seed.Args()...)...)
	e.mustSettle("run", "--date", sc.Seed.Date, "--tz", sc.Seed.TZ, "--rules", sc.Rules(), "--out", e.reports, "--max-reject-ratio", "0.5", skipAll)
	sc.CompareExpected(t, filepath.Join(e.reports, sc.Seed.Date), *update, "orders.csv", "sellers.csv", "summary.csv", "payouts.csv")
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

// TestDemoScenarioIsTheDemo checks that testdata/demo is the day `settle
// demo` settles: its rules.csv is the embedded demo_rules.csv byte for byte,
// and its seed.json is the demo's flag defaults and seed.
func TestDemoScenarioIsTheDemo(t *testing.T) {
	sc := scenario.Load(t, "demo")
	want, err := os.ReadFile(sc.Rules())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(demoRules, want) {
		t.Errorf("cmd/settle/demo_rules.csv differs from testdata/demo/rules.csv: copy one onto the other (cp testdata/demo/rules.csv cmd/settle/demo_rules.csv)")
	}
	defaults := map[string]string{}
	for _, f := range demoCommand(&config{}).Flags {
		switch f := f.(type) {
		case *cli.IntFlag:
			defaults[f.Name] = strconv.Itoa(f.Value)
		case *cli.StringFlag:
			defaults[f.Name] = f.Value
		}
	}
	got := map[string]string{"orders": defaults["orders"], "sellers": defaults["sellers"], "bad-rows": defaults["bad-rows"], "tz": defaults[flagTZ], "seed": strconv.Itoa(demoSeed)}
	wantSeed := map[string]string{"orders": strconv.Itoa(sc.Seed.Orders), "sellers": strconv.Itoa(sc.Seed.Sellers), "bad-rows": strconv.Itoa(sc.Seed.BadRows),
		"tz": sc.Seed.TZ, "seed": strconv.FormatUint(sc.Seed.Seed, 10)}
	for k, w := range wantSeed {
		if got[k] != w {
			t.Errorf("settle demo's %s is %q, testdata/demo/seed.json says %q", k, got[k], w)
		}
	}
	opts, err := sc.Seed.Options()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadRules(sc.Rules(), opts.Date); err != nil {
		t.Errorf("testdata/demo/rules.csv does not load for %s: %v", sc.Seed.Date, err)
	}
}
