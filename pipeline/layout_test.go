package pipeline_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/settlekit/settle/"

// imports returns the import paths of the Go files (tests excluded) of the
// package in dir, a path from the module's root.
func imports(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("%s: no Go files (%v)", dir, err)
	}
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, is := range af.Imports {
			p, _ := strconv.Unquote(is.Path.Value)
			out = append(out, p)
		}
	}
	return out
}

// TestTheDependencyRuleHolds: DESIGN.md's rule, as the README states it.
// The core (pipeline) imports only the standard library; extract,
// transform, load and each provider's package import pipeline (and the
// module's internal helpers) and never each other, so that a fourth
// provider is one package and its wiring in cmd.
func TestTheDependencyRuleHolds(t *testing.T) {
	for _, p := range imports(t, "pipeline") {
		if first, _, _ := strings.Cut(p, "/"); strings.Contains(first, ".") {
			t.Errorf("pipeline imports %s: the core imports only the standard library", p)
		}
	}
	adapters := []string{"extract", "transform", "load", "load/infiniapay", "load/wechatpay", "load/payprotocol"}
	for _, dir := range adapters {
		if _, err := os.Stat(filepath.Join("..", dir)); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		for _, p := range imports(t, dir) {
			rest, ok := strings.CutPrefix(p, module)
			if !ok || rest == "pipeline" || strings.HasPrefix(rest, "internal/") {
				continue
			}
			t.Errorf("%s imports %s: adapters import pipeline and never each other", dir, rest)
		}
	}
}

// TestTheCoreNamesNoProvider: DESIGN.md section 2, "the core names no
// provider": no Go file of pipeline (tests excluded) says a provider's
// name, in code or in a comment, so that a fourth provider changes
// nothing here.
func TestTheCoreNamesNoProvider(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "pipeline", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("pipeline: no Go files (%v)", err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(strings.ToLower(string(b)), "\n") {
			for _, name := range []string{"infinia", "wechat", "payprotocol", "pay protocol"} {
				if strings.Contains(line, name) {
					t.Errorf("%s:%d names the provider %q: the core names no provider", f, i+1, name)
				}
			}
		}
	}
}

// readmeQuote finds a README section quoted after the word README, as
// comments and messages name them: README, "Runbook"; the README's
// "Exit codes".
var readmeQuote = regexp.MustCompile(`README[^"]{0,40}?"([^"]{3,80})"`)

// TestTheREADMESectionsTheCodeNamesExist: every README section (or
// passage) a comment or a message of the module quotes after the word
// README is in README.md, so that a reader sent there finds it.
func TestTheREADMESectionsTheCodeNamesExist(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(readme)), " ")
	checked := 0
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != ".." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		// Comments are joined line by line into their blocks; messages
		// are read with their escaped quotes as quotes.
		var comment []string
		check := func(s string, line int) {
			for _, m := range readmeQuote.FindAllStringSubmatch(s, -1) {
				checked++
				if q := strings.Join(strings.Fields(m[1]), " "); !strings.Contains(text, q) {
					t.Errorf("%s:%d quotes README %q, which README.md does not hold", path, line, q)
				}
			}
		}
		lines := strings.Split(string(b), "\n")
		for i, line := range lines {
			trimmed := strings.TrimSpace(line)
			if c, ok := strings.CutPrefix(trimmed, "//"); ok {
				comment = append(comment, strings.TrimSpace(c))
				continue
			}
			if len(comment) > 0 {
				check(strings.Join(comment, " "), i-len(comment)+1)
				comment = nil
			}
			check(strings.ReplaceAll(line, `\"`, `"`), i+1)
		}
		if len(comment) > 0 {
			check(strings.Join(comment, " "), len(lines)-len(comment)+1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no README section quoted anywhere: the pattern no longer finds them")
	}
	t.Logf("%d README quotes checked", checked)
}
