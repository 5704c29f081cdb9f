package finaltest

import (
	"context"
	"slices"
	"sync"

	"github.com/settlekit/settle/pipeline"
)

// Findings is an in-memory pipeline.MismatchStore of one run, for the
// tests of a reconcile stage over a provider package's matcher: the
// findings the stage recorded (Replaced counts its records), no failed
// payouts, nothing to recheck, every line balanced. The zero value is
// ready to use.
type Findings struct {
	mu       sync.Mutex
	found    []pipeline.Mismatch
	replaced int
}

var _ pipeline.MismatchStore = (*Findings)(nil)

// ReplaceMismatches records ms as the run's findings.
func (f *Findings) ReplaceMismatches(_ context.Context, _ int64, ms []pipeline.Mismatch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.found, f.replaced = slices.Clone(ms), f.replaced+1
	return nil
}

// Found returns the findings recorded last.
func (f *Findings) Found() []pipeline.Mismatch {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.found)
}

// Replaced returns how many times the findings were recorded.
func (f *Findings) Replaced() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.replaced
}

// FailedPayouts is none.
func (*Findings) FailedPayouts(context.Context, pipeline.RunKey) (int64, error) { return 0, nil }

// RunsToRecheck is none.
func (*Findings) RunsToRecheck(context.Context, *pipeline.Run, int) ([]*pipeline.Run, error) {
	return nil, nil
}

// Unbalanced is none.
func (*Findings) Unbalanced(context.Context, pipeline.RunKey) ([]string, error) { return nil, nil }

// Lock takes nothing.
func (*Findings) Lock(context.Context, pipeline.RunKey) (func() error, error) {
	return func() error { return nil }, nil
}
