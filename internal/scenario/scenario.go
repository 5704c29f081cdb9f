// Package scenario loads the scenario days of the top-level testdata/
// folder, which the end-to-end tests, the demo and the benchmarks share, so
// that each day is defined once.
//
// A scenario is a folder testdata/<name>/ holding:
//
//   - README.md: its first line "# <name>: <what it shows>", then how it is
//     produced (which seed, which rows, which rules, which command);
//   - the platform rows, exactly one of: seed.json, a `settle seed`
//     invocation recorded as data (Seed), or platform.sql, hand-written rows
//     run after the reference platform schema;
//   - rules.csv, the commission rules it settles with;
//   - optionally expected/, the reports it must produce (golden files,
//     rewritten by the test's -update flag and reviewed like code).
//
// Load reads and checks a scenario; Platform and Write put its platform rows
// into a test database (internal/pgtest); Rules and Expected give its paths;
// CompareExpected checks reports against expected/.
package scenario

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/seed"
	settlesql "github.com/settlekit/settle/sql"
)

// Files of a scenario folder.
const (
	ReadmeFile   = "README.md"
	SeedFile     = "seed.json"
	PlatformFile = "platform.sql"
	RulesFile    = "rules.csv"
	ExpectedDir  = "expected"
)

// Seed is a `settle seed` invocation recorded as data (seed.json). Every
// field is required: a scenario never depends on a flag's default.
type Seed struct {
	Date    string `json:"date"` // business date YYYY-MM-DD
	TZ      string `json:"tz"`   // time zone of business dates
	Orders  int    `json:"orders"`
	Sellers int    `json:"sellers"`
	Seed    uint64 `json:"seed"`
	BadRows int    `json:"bad_rows"`
}

// Args are the `settle seed` arguments (after "seed") that write this day.
func (s Seed) Args() []string {
	return []string{"--date", s.Date, "--tz", s.TZ, "--orders", strconv.Itoa(s.Orders), "--sellers", strconv.Itoa(s.Sellers),
		"--seed", strconv.FormatUint(s.Seed, 10), "--bad-rows", strconv.Itoa(s.BadRows)}
}

// Options are the seed package's options for this day.
func (s Seed) Options() (seed.Options, error) {
	d, err := pipeline.ParseDate(s.Date)
	if err != nil {
		return seed.Options{}, fmt.Errorf("date: %w", err)
	}
	loc, err := time.LoadLocation(s.TZ)
	if err != nil || s.TZ == "" {
		return seed.Options{}, fmt.Errorf("tz %q: not a time zone", s.TZ)
	}
	return seed.Options{Date: d, Location: loc, Orders: s.Orders, Sellers: s.Sellers, Seed: s.Seed, BadRows: s.BadRows}, nil
}

// Scenario is one loaded scenario folder.
type Scenario struct {
	Name string
	Dir  string // absolute path of testdata/<name>
	What string // what it shows: the README's first line after "# <name>: "
	// Exactly one of Seed and PlatformSQL is set.
	Seed        *Seed
	PlatformSQL string // contents of platform.sql
}

// Rules is the path of the scenario's rules.csv.
func (s *Scenario) Rules() string { return filepath.Join(s.Dir, RulesFile) }

// Expected is the path of the scenario's expected/ reports.
func (s *Scenario) Expected() string { return filepath.Join(s.Dir, ExpectedDir) }

// Root is the repository's top-level testdata/ folder, found from the
// working directory upwards (tests run in their package's folder) as the
// testdata/ beside go.mod.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "testdata"), nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("scenario: no go.mod above the working directory")
		}
		dir = up
	}
}

// Names lists the scenarios: the folders of testdata/, sorted.
func Names() ([]string, error) {
	root, err := Root()
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Read loads and checks the scenario called name.
func Read(name string) (*Scenario, error) {
	root, err := Root()
	if err != nil {
		return nil, err
	}
	return read(root, name)
}

func read(root, name string) (*Scenario, error) {
	s := &Scenario{Name: name, Dir: filepath.Join(root, name)}
	where := func(file string) string { return filepath.Join("testdata", name, file) }
	readme, err := os.ReadFile(filepath.Join(s.Dir, ReadmeFile))
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", name, err)
	}
	first, _, _ := strings.Cut(string(readme), "\n")
	what, ok := strings.CutPrefix(first, "# "+name+": ")
	if !ok || len(strings.Fields(what)) < 4 {
		return nil, fmt.Errorf("%s: the first line must be \"# %s: <what it shows, in a sentence>\", not %q", where(ReadmeFile), name, first)
	}
	s.What = what
	seedJSON, errSeed := os.ReadFile(filepath.Join(s.Dir, SeedFile))
	platform, errPlatform := os.ReadFile(filepath.Join(s.Dir, PlatformFile))
	switch {
	case errSeed == nil && errPlatform == nil:
		return nil, fmt.Errorf("scenario %s: both %s and %s: the platform rows come from one of them", name, SeedFile, PlatformFile)
	case errSeed == nil:
		dec := json.NewDecoder(bytes.NewReader(seedJSON))
		dec.DisallowUnknownFields()
		var sd Seed
		if err := dec.Decode(&sd); err != nil {
			return nil, fmt.Errorf("%s: %w", where(SeedFile), err)
		}
		if err := checkFields(seedJSON); err != nil {
			return nil, fmt.Errorf("%s: %w", where(SeedFile), err)
		}
		if _, err := sd.Options(); err != nil {
			return nil, fmt.Errorf("%s: %w", where(SeedFile), err)
		}
		s.Seed = &sd
	case errPlatform == nil:
		if len(bytes.TrimSpace(platform)) == 0 {
			return nil, fmt.Errorf("%s: empty", where(PlatformFile))
		}
		s.PlatformSQL = string(platform)
	default:
		return nil, fmt.Errorf("scenario %s: no platform rows (%s or %s)", name, SeedFile, PlatformFile)
	}
	if _, err := os.Stat(s.Rules()); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", name, err)
	}
	return s, nil
}

// checkFields refuses a seed.json that leaves a field out (it would take
// Go's zero, not the command's default: a silent difference).
func checkFields(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for _, f := range []string{"date", "tz", "orders", "sellers", "seed", "bad_rows"} {
		if _, ok := m[f]; !ok {
			return fmt.Errorf("field %q missing (every field is required)", f)
		}
	}
	return nil
}

// Load is Read for a test: it fails t when the scenario cannot be loaded.
func Load(t testing.TB, name string) *Scenario {
	t.Helper()
	s, err := Read(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Write puts the scenario's platform rows into db: the seed, or the
// reference platform schema and platform.sql.
func (s *Scenario) Write(ctx context.Context, db *sqlx.DB) error {
	if s.Seed != nil {
		o, err := s.Seed.Options()
		if err != nil {
			return err
		}
		_, err = seed.Generate(ctx, db, o)
		return err
	}
	if _, err := db.ExecContext(ctx, settlesql.PlatformSchema); err != nil {
		return fmt.Errorf("scenario %s: platform schema: %w", s.Name, err)
	}
	if _, err := db.ExecContext(ctx, s.PlatformSQL); err != nil {
		return fmt.Errorf("scenario %s: %s: %w", s.Name, PlatformFile, err)
	}
	return nil
}

// WriteT is Write for a test: it fails t on error.
func (s *Scenario) WriteT(t testing.TB, db *sqlx.DB) {
	t.Helper()
	if err := s.Write(context.Background(), db); err != nil {
		t.Fatal(err)
	}
}

// Platform returns the URL of a new test database (internal/pgtest) holding
// the scenario's platform rows.
func (s *Scenario) Platform(t testing.TB) string {
	t.Helper()
	url := pgtest.URL(t)
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s.WriteT(t, db)
	return url
}

// CompareExpected compares the reports named (e.g. "orders.csv") in dir
// with expected/; with update it first rewrites expected/ with them. Every
// file of expected/ must be among the names, so none is left unchecked.
func (s *Scenario) CompareExpected(t testing.TB, dir string, update bool, names ...string) {
	t.Helper()
	problems, err := s.compareExpected(dir, update, names)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

func (s *Scenario) compareExpected(dir string, update bool, names []string) ([]string, error) {
	if update {
		if err := os.MkdirAll(s.Expected(), 0o755); err != nil {
			return nil, err
		}
	}
	var problems []string
	for _, name := range names {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		golden := filepath.Join(s.Expected(), name)
		if update {
			if err := os.WriteFile(golden, got, 0o644); err != nil {
				return nil, err
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(got, want) {
			problems = append(problems, fmt.Sprintf("%s differs from testdata/%s/%s/%s (run the test with -update and review the diff):\n%s",
				name, s.Name, ExpectedDir, name, firstDifference(want, got)))
		}
	}
	entries, err := os.ReadDir(s.Expected())
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !slices.Contains(names, e.Name()) {
			problems = append(problems, fmt.Sprintf("testdata/%s/%s/%s is compared by no test: remove it or compare it", s.Name, ExpectedDir, e.Name()))
		}
	}
	return problems, nil
}

// firstDifference shows the first line where got departs from want, with
// its line number, and the line counts.
func firstDifference(want, got []byte) string {
	ws, gs := bufio.NewScanner(bytes.NewReader(want)), bufio.NewScanner(bytes.NewReader(got))
	ws.Buffer(nil, 1<<20)
	gs.Buffer(nil, 1<<20)
	wn, gn := 0, 0
	for line := 1; ; line++ {
		w, g := ws.Scan(), gs.Scan()
		if w {
			wn++
		}
		if g {
			gn++
		}
		if !w && !g {
			return "(same lines; the bytes differ, e.g. a final newline)"
		}
		if w != g || ws.Text() != gs.Text() {
			wt, gt := textOr(w, ws), textOr(g, gs)
			for ws.Scan() {
				wn++
			}
			for gs.Scan() {
				gn++
			}
			return fmt.Sprintf("line %d:\n want %q\n  got %q\n(%d lines expected, %d got)", line, wt, gt, wn, gn)
		}
	}
}

func textOr(ok bool, s *bufio.Scanner) string {
	if !ok {
		return "(end of file)"
	}
	return s.Text()
}
