package infiniapay

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Statuses maps status words Infinia may write in its answers to the ones
// this client knows (StatusPending ... StatusFailed). The status values of
// the binding, upload and revenue-sharing queries are assumed
// (PROVIDERS.md: only ACTIVE, FROZEN and FAILED are documented): an
// onboarding that finds Infinia writing SUCCEEDED where we assumed SUCCESS
// is a line of configuration, not a release. A word mapped is read as its
// target in every answer; a word neither known nor mapped is an answer
// that cannot be used, as before. A word the client knows cannot be
// mapped: SUCCESS always means success, FAILED failure.
type Statuses map[string]string

// knownStatuses are the words the client knows, of every query.
var knownStatuses = []string{StatusPending, StatusActive, StatusFrozen, StatusRejected, StatusReceived, StatusProcessing, StatusSuccess, StatusFailed}

// ParseStatuses reads a mapping written "SUCCEEDED=SUCCESS,DONE=SUCCESS"
// (spaces allowed); "" or "none" is no mapping.
func ParseStatuses(s string) (Statuses, error) {
	m := Statuses{}
	pairs, err := mappingPairs(s, "status mapping", "INFINIA=OURS, e.g. SUCCEEDED=SUCCESS")
	if err != nil {
		return nil, err
	}
	for _, p := range pairs {
		pair, from, to := p.text, p.from, p.to
		switch {
		case !slices.Contains(knownStatuses, to):
			return nil, fmt.Errorf("status mapping %q: %q is not one of %s", pair, to, strings.Join(knownStatuses, ", "))
		case slices.Contains(knownStatuses, from):
			return nil, fmt.Errorf("status mapping %q: %s is a status settle knows, and means itself", pair, from)
		case m[from] != "":
			return nil, fmt.Errorf("status mapping: %s mapped twice", from)
		}
		m[from] = to
	}
	return m, nil
}

// In is the status word of an answer as this client reads it.
func (m Statuses) In(word string) string {
	if to, ok := m[word]; ok {
		return to
	}
	return word
}

// String writes m as ParseStatuses reads it, sorted.
func (m Statuses) String() string {
	pairs := make([]string, 0, len(m))
	for from, to := range m {
		pairs = append(pairs, from+"="+to)
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}
