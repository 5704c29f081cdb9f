package main

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline/ledger"
)

// TestTheRulesFileOfADateIsKept: each order of orders.csv names the rule it
// was split by as a line of the rules file, "rules.csv:3". The ledger keeps
// that file as the run read it, and settle status --rules gives it back:
// byte for byte, with the line each order names, also after the file on
// disk was changed and the date run again (its split stands, and so does
// the file it was split with).
func TestTheRulesFileOfADateIsKept(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(60, 0)
	original, err := os.ReadFile(e.rules)
	if err != nil {
		t.Fatal(err)
	}
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, skipAll)
	changed := strings.Replace(string(original), ",,,500,", ",,,900,", 1)
	if changed == string(original) {
		t.Fatal("the demo rules have no default rule of 500 bps to change")
	}
	if err := os.WriteFile(e.rules, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, skipAll)

	out := e.mustSettle("status", "--date", testDate, "--rules")
	header, body, _ := strings.Cut(out, "\n")
	if !strings.HasPrefix(header, "== run "+testDate+" shard ") || !strings.Contains(header, filepath.Base(e.rules)) || body != string(original) {
		t.Fatalf("status --rules: want a line naming %s, then the file as the run read it:\n%s", filepath.Base(e.rules), out)
	}
	var rs []ledger.RunRules
	if err := json.Unmarshal([]byte(e.mustSettle("status", "--date", testDate, "--rules", "-o", "json")), &rs); err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || !rs[0].Kept || rs[0].Body != string(original) {
		t.Fatalf("status --rules -o json: %+v", rs)
	}

	// Every rule orders.csv names is a rule line of the kept file.
	f, err := os.Open(filepath.Join(e.reports, testDate, "orders.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := -1
	for i, h := range rows[0] {
		if h == "rule" {
			col = i
		}
	}
	lines := strings.Split(rs[0].Body, "\n")
	named := 0
	for _, row := range rows[1:] {
		name, n, ok := strings.Cut(row[col], ":")
		if !ok {
			continue // a rejected row names no rule
		}
		i, err := strconv.Atoi(n)
		if name != rs[0].Name || err != nil || i < 2 || i > len(lines) || strings.TrimSpace(lines[i-1]) == "" {
			t.Fatalf("order %s names rule %q, not a rule line of the kept %s:\n%s", row[0], row[col], rs[0].Name, rs[0].Body)
		}
		named++
	}
	if named == 0 {
		t.Fatal("orders.csv names no rule")
	}
}
