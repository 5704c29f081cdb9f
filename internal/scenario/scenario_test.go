package scenario

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/transform"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestEveryScenarioIsDescribedValidAndUsed checks every folder of the
// top-level testdata/: it loads (README whose first line says what it
// shows, platform rows, rules), its rules parse and cover its date, and some
// test loads it by name, so no dead fixture accumulates.
func TestEveryScenarioIsDescribedValidAndUsed(t *testing.T) {
	names, err := Names()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("testdata/ holds no scenario")
	}
	used := loadedScenarios(t)
	for _, name := range names {
		s, err := Read(name)
		if err != nil {
			t.Error(err)
			continue
		}
		f, err := os.Open(s.Rules())
		if err != nil {
			t.Fatal(err)
		}
		rules, err := transform.ParseRules(f, RulesFile)
		f.Close()
		if err != nil {
			t.Errorf("testdata/%s/%s: %v", name, RulesFile, err)
		} else if s.Seed != nil {
			o, _ := s.Seed.Options()
			if err := rules.CheckDate(o.Date); err != nil {
				t.Errorf("testdata/%s/%s does not cover %s: %v", name, RulesFile, o.Date, err)
			}
		}
		if len(used[name]) == 0 {
			t.Errorf("no test loads scenario %q (scenario.Load(t, %q)): use it or remove testdata/%s", name, name, name)
		} else {
			t.Logf("%s (%s): loaded by %s", name, s.What, strings.Join(used[name], ", "))
		}
	}
}

// loadedScenarios maps each scenario name a test file of the repository
// loads (scenario.Load(t, "name") or scenario.Read("name")) to those files.
func loadedScenarios(t *testing.T) map[string][]string {
	t.Helper()
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Dir(root)
	call := regexp.MustCompile(`scenario\.(?:Load\([^,()]+,\s*|Read\()"([^"]+)"\)`)
	used := map[string][]string{}
	err = filepath.WalkDir(repo, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != repo && (n == "testdata" || strings.HasPrefix(n, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		// This package's own tests do not count as a use.
		if !strings.HasSuffix(path, "_test.go") || filepath.Dir(path) == filepath.Join(repo, "internal", "scenario") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repo, path)
		for _, m := range call.FindAllSubmatch(b, -1) {
			used[string(m[1])] = append(used[string(m[1])], rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return used
}

func TestUseFinderSeesTheCallForms(t *testing.T) {
	used := loadedScenarios(t)
	for _, name := range []string{"golden-day", "late-refunds"} {
		if len(used[name]) == 0 {
			t.Errorf("the use finder does not see the test loading %q (finds %v)", name, used)
		}
	}
	call := regexp.MustCompile(`scenario\.(?:Load\([^,()]+,\s*|Read\()"([^"]+)"\)`)
	for src, want := range map[string]string{
		`sc := scenario.Load(t, "a-b")`:         "a-b",
		`scenario.Load(e.t, "x")`:               "x",
		`s, err := scenario.Read("y")`:          "y",
		`scenario.Load(t, name)`:                "",
		`// "z" is a scenario, not loaded here`: "",
	} {
		m := call.FindStringSubmatch(src)
		got := ""
		if m != nil {
			got = m[1]
		}
		if got != want {
			t.Errorf("%s: found %q, want %q", src, got, want)
		}
	}
}

// writeScenario makes a scenario folder under root with the given files.
func writeScenario(t *testing.T, root, name string, files map[string]string) {
	t.Helper()
	for file, text := range files {
		p := filepath.Join(root, name, file)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadRefusesAnIncompleteScenario(t *testing.T) {
	const (
		readme = "# s: a day that shows something worth pinning.\n\nHow it is made.\n"
		seed   = `{"date": "2026-11-23", "tz": "UTC", "orders": 3, "sellers": 1, "seed": 1, "bad_rows": 0}`
		rules  = "seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from\n,,,500,,,,2020-01-01\n"
	)
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string // in the error
	}{
		{"no README", map[string]string{SeedFile: seed, RulesFile: rules}, "README.md"},
		{"README names no purpose", map[string]string{ReadmeFile: "# s\n", SeedFile: seed, RulesFile: rules}, `first line must be "# s: `},
		{"README of another scenario", map[string]string{ReadmeFile: "# t: a day that shows something.\n", SeedFile: seed, RulesFile: rules}, "first line"},
		{"no platform rows", map[string]string{ReadmeFile: readme, RulesFile: rules}, "no platform rows"},
		{"two sources of platform rows", map[string]string{ReadmeFile: readme, SeedFile: seed, PlatformFile: "SELECT 1;", RulesFile: rules}, "one of them"},
		{"seed field missing", map[string]string{ReadmeFile: readme, SeedFile: `{"date": "2026-11-23", "tz": "UTC", "orders": 3, "sellers": 1, "seed": 1}`, RulesFile: rules}, `"bad_rows" missing`},
		{"unknown seed field", map[string]string{ReadmeFile: readme, SeedFile: `{"date": "2026-11-23", "tz": "UTC", "orders": 3, "sellers": 1, "seed": 1, "bad_rows": 0, "badrows": 2}`, RulesFile: rules}, "badrows"},
		{"bad date", map[string]string{ReadmeFile: readme, SeedFile: strings.Replace(seed, "2026-11-23", "2026-13-01", 1), RulesFile: rules}, "date"},
		{"bad time zone", map[string]string{ReadmeFile: readme, SeedFile: strings.Replace(seed, "UTC", "Mars/Olympus", 1), RulesFile: rules}, "Mars/Olympus"},
		{"empty platform.sql", map[string]string{ReadmeFile: readme, PlatformFile: " \n", RulesFile: rules}, "empty"},
		{"no rules", map[string]string{ReadmeFile: readme, SeedFile: seed}, "rules.csv"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeScenario(t, root, "s", tc.files)
			_, err := read(root, "s")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("read: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	root := t.TempDir()
	writeScenario(t, root, "s", map[string]string{ReadmeFile: readme, SeedFile: seed, RulesFile: rules})
	s, err := read(root, "s")
	if err != nil {
		t.Fatal(err)
	}
	if s.What != "a day that shows something worth pinning." || s.Seed == nil || s.Seed.Orders != 3 || s.PlatformSQL != "" {
		t.Errorf("read: %+v", s)
	}
	if got := strings.Join(s.Seed.Args(), " "); got != "--date 2026-11-23 --tz UTC --orders 3 --sellers 1 --seed 1 --bad-rows 0" {
		t.Errorf("Args: %s", got)
	}
}

func TestCompareExpected(t *testing.T) {
	root, got := t.TempDir(), t.TempDir()
	writeScenario(t, root, "s", map[string]string{"expected/a.csv": "h\n1\n2\n", "expected/b.csv": "h\n"})
	s := &Scenario{Name: "s", Dir: filepath.Join(root, "s")}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(got, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.csv", "h\n1\n3\n")
	write("b.csv", "h\n")
	problems, err := s.compareExpected(got, false, []string{"a.csv", "b.csv"})
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 || !strings.Contains(problems[0], "a.csv differs") || !strings.Contains(problems[0], `line 3:`) ||
		!strings.Contains(problems[0], `want "2"`) || !strings.Contains(problems[0], `got "3"`) {
		t.Errorf("a changed line: %q", problems)
	}
	// A golden file no test compares is reported.
	problems, err = s.compareExpected(got, false, []string{"a.csv"})
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 2 || !strings.Contains(problems[1], "b.csv is compared by no test") {
		t.Errorf("an unchecked golden file: %q", problems)
	}
	// -update rewrites, and then they agree.
	if problems, err = s.compareExpected(got, true, []string{"a.csv", "b.csv"}); err != nil || len(problems) != 0 {
		t.Fatalf("after update: %q, %v", problems, err)
	}
	if b, _ := os.ReadFile(filepath.Join(s.Expected(), "a.csv")); !bytes.Equal(b, []byte("h\n1\n3\n")) {
		t.Errorf("update wrote %q", b)
	}
	// A missing final newline is a difference too.
	write("b.csv", "h")
	if problems, _ = s.compareExpected(got, false, []string{"a.csv", "b.csv"}); len(problems) != 1 || !strings.Contains(problems[0], "final newline") {
		t.Errorf("a missing final newline: %q", problems)
	}
	// A report the run did not write is an error.
	if _, err := s.compareExpected(got, false, []string{"c.csv"}); err == nil {
		t.Error("a missing report compared without error")
	}
}

// TestWrite seeds both kinds of scenario into test databases: the seed's
// orders of the date, and the hand-written rows of platform.sql.
func TestWrite(t *testing.T) {
	t.Parallel()
	count := func(url, q string, args ...any) int {
		db, err := sqlx.Open("postgres", url)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.GetContext(context.Background(), &n, q, args...); err != nil {
			t.Fatal(err)
		}
		return n
	}
	g := Load(t, "golden-day")
	o, err := g.Seed.Options()
	if err != nil {
		t.Fatal(err)
	}
	w := pipeline.WindowOf(o.Date, o.Location)
	url := g.Platform(t)
	if n := count(url, `SELECT count(DISTINCT order_no) FROM orders WHERE confirmed_at >= $1 AND confirmed_at < $2`, w.Start, w.End); n != g.Seed.Orders {
		t.Errorf("golden-day seeded %d order numbers on its date (a duplicate bad row shares one), seed.json says %d", n, g.Seed.Orders)
	}
	l := Load(t, "late-refunds")
	url = l.Platform(t)
	if n := count(url, `SELECT count(*) FROM orders`); n != 9 {
		t.Errorf("late-refunds wrote %d orders, platform.sql has 9", n)
	}
	if n := count(url, `SELECT count(*) FROM refunds`); n != 4 {
		t.Errorf("late-refunds wrote %d refunds, platform.sql has 4", n)
	}
}
