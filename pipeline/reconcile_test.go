package pipeline

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// mismatchStore keeps the findings of one run, in memory.
type mismatchStore struct{ found []Mismatch }

func (s *mismatchStore) ReplaceMismatches(_ context.Context, _ int64, ms []Mismatch) error {
	s.found = ms
	return nil
}
func (s *mismatchStore) FailedPayouts(context.Context, Date) (int64, error)       { return 0, nil }
func (s *mismatchStore) RunsToRecheck(context.Context, *Run, int) ([]*Run, error) { return nil, nil }
func (s *mismatchStore) Unbalanced(context.Context, Date) ([]string, error)       { return nil, nil }
func (s *mismatchStore) Lock(context.Context, RunKey) (release func() error, err error) {
	return nil, nil
}

// sideBySide is far above any scheduling delay: a matcher waiting this
// long for the other one to start means they ran one after the other.
const sideBySide = 10 * time.Second

// TestMatchersRunSideBySide: each matcher waits until the other has
// started (so run one after the other, the first fails after sideBySide
// instead of hanging); the findings are still those of the matchers in
// their order, sorted: the second matcher finishes first, and its row,
// equal to the first's in every sorting field, still comes second.
func TestMatchersRunSideBySide(t *testing.T) {
	started := []chan struct{}{make(chan struct{}), make(chan struct{})}
	finished := make(chan struct{})
	row := func(ours string) Mismatch {
		return Mismatch{Provider: "p", Category: MismatchAmount, Subject: "s", OrderNo: "o", Ours: ours, Detail: "d"}
	}
	matcher := func(me int, then func() error, ms ...Mismatch) Matcher {
		return func(ctx context.Context, _ *Run) ([]Mismatch, error) {
			close(started[me])
			select {
			case <-started[1-me]:
			case <-time.After(sideBySide):
				return nil, errors.New("the other matcher did not start: the matchers ran one after the other")
			}
			return ms, then()
		}
	}
	first := matcher(0, func() error {
		select {
		case <-finished:
			return nil
		case <-time.After(sideBySide):
			return errors.New("the second matcher did not finish")
		}
	}, row("1"), Mismatch{Provider: "a", Subject: "z"})
	second := matcher(1, func() error { close(finished); return nil }, row("2"))
	store := &mismatchStore{}
	write := func(context.Context, *Run) (string, error) { return "written", nil }
	_, err := ReconcileStage(store, []Matcher{first, second}, write, 0)(context.Background(), &Run{ID: 1})
	if KindOf(err) != KindNeedsPerson {
		t.Fatalf("%v (kind %v), want the findings needing a person", err, KindOf(err))
	}
	want := []Mismatch{{Provider: "a", Subject: "z"}, row("1"), row("2")}
	if !reflect.DeepEqual(store.found, want) {
		t.Fatalf("findings\n%+v\nwant\n%+v", store.found, want)
	}
}

// TestAMatcherErrorCancelsTheOthers: the first matcher's error is the
// stage's, and the other matcher's context is cancelled (it would
// otherwise wait sideBySide and fail with another error).
func TestAMatcherErrorCancelsTheOthers(t *testing.T) {
	started := make(chan struct{})
	cancelled := make(chan error, 1)
	failing := func(ctx context.Context, _ *Run) ([]Mismatch, error) {
		select {
		case <-started:
		case <-time.After(sideBySide):
		}
		return nil, errors.New("provider X unreachable")
	}
	waiting := func(ctx context.Context, _ *Run) ([]Mismatch, error) {
		close(started)
		select {
		case <-ctx.Done():
			cancelled <- ctx.Err()
			return nil, ctx.Err()
		case <-time.After(sideBySide):
			cancelled <- nil
			return nil, errors.New("not cancelled")
		}
	}
	store := &mismatchStore{found: []Mismatch{{Subject: "kept"}}}
	write := func(context.Context, *Run) (string, error) { return "", nil }
	_, err := ReconcileStage(store, []Matcher{waiting, failing}, write, 0)(context.Background(), &Run{ID: 1})
	if err == nil || !strings.Contains(err.Error(), "provider X unreachable") || strings.Contains(err.Error(), "cancel") {
		t.Fatalf("%v, want the failing matcher's error alone", err)
	}
	if c := <-cancelled; !errors.Is(c, context.Canceled) {
		t.Fatalf("the other matcher's context: %v, want cancelled", c)
	}
	if len(store.found) != 1 || store.found[0].Subject != "kept" {
		t.Fatalf("a failed reconciliation replaced the findings: %+v", store.found)
	}
}
