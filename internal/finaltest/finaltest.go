// Package finaltest is an in-memory pipeline.FinalAnswers for the tests of
// the provider packages' matchers: what a matcher kept final, per matcher,
// as the ledger's reconciled_final keeps it; and an in-memory
// pipeline.MismatchStore (Findings) for a reconcile stage over them.
package finaltest

import (
	"context"
	"slices"
	"sync"
)

// Answers is an in-memory pipeline.FinalAnswersForgetting. The zero value
// is ready to use.
type Answers struct {
	mu   sync.Mutex
	keys map[string]map[string]bool // matcher -> key
}

// FinalKeys returns which of keys matcher recorded.
func (a *Answers) FinalKeys(_ context.Context, matcher string, keys []string) (map[string]bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]bool{}
	for _, k := range keys {
		if a.keys[matcher][k] {
			out[k] = true
		}
	}
	return out, nil
}

// RecordFinal records keys for matcher.
func (a *Answers) RecordFinal(_ context.Context, matcher string, keys []string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.keys == nil {
		a.keys = map[string]map[string]bool{}
	}
	if a.keys[matcher] == nil {
		a.keys[matcher] = map[string]bool{}
	}
	for _, k := range keys {
		a.keys[matcher][k] = true
	}
	return nil
}

// ForgetFinal forgets keys of matcher.
func (a *Answers) ForgetFinal(_ context.Context, matcher string, keys []string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, k := range keys {
		delete(a.keys[matcher], k)
	}
	return nil
}

// Len returns how many keys are kept, all matchers together.
func (a *Answers) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, ks := range a.keys {
		n += len(ks)
	}
	return n
}

// Keys returns matcher's keys, sorted.
func (a *Answers) Keys(matcher string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for k := range a.keys[matcher] {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
