package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
)

// A configuration error stops forEach from starting more work and comes
// back alone (one line); other errors are joined, every element run.
func TestForEachStopsOnAConfigurationError(t *testing.T) {
	xs := make([]int, 100)
	for i := range xs {
		xs[i] = i
	}
	var ran atomic.Int32
	err := ForEach(context.Background(), 1, xs, func(i int) error {
		ran.Add(1)
		if i >= 3 {
			return E(KindUsage, "", fmt.Errorf("refused credentials (%d)", i))
		}
		return nil
	})
	if KindOf(err) != KindUsage || strings.Contains(err.Error(), "\n") || ran.Load() > 5 {
		t.Fatalf("%d ran: %v", ran.Load(), err)
	}
	ran.Store(0)
	err = ForEach(context.Background(), 4, xs, func(i int) error {
		ran.Add(1)
		if i%10 == 0 {
			return errors.New("one subject")
		}
		return nil
	})
	if ran.Load() != 100 || strings.Count(err.Error(), "one subject") != 10 {
		t.Fatalf("%d ran: %v", ran.Load(), err)
	}
}

func TestSubjectOnly(t *testing.T) {
	for err, want := range map[error]bool{
		fmt.Errorf("x: %w", ErrNotFound):                  true,
		fmt.Errorf("x: %w", ErrRefused):                   true,
		E(KindUsage, "", fmt.Errorf("x: %w", ErrRefused)): false,
		errors.New("connection reset"):                    false,
		nil:                                               false,
	} {
		if SubjectOnly(err) != want {
			t.Errorf("%v: %v", err, !want)
		}
	}
}
