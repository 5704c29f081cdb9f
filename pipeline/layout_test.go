package pipeline_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
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
// provider is one package and one wiring line in cmd.
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
