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

// tokenCount is a Limiter that never waits and counts the tokens taken.
type tokenCount struct{ n atomic.Int32 }

func (l *tokenCount) Wait(context.Context) error { l.n.Add(1); return nil }

// Every question of EachFirstAlonePaced takes its token, the first one
// (asked alone) included; a failure of the first asks nothing more.
func TestEachFirstAlonePacedPacesTheFirst(t *testing.T) {
	tokens := &tokenCount{}
	p := NewPacer(Limits{Limit: tokens})
	var asked atomic.Int32
	if err := EachFirstAlonePaced(context.Background(), p, []int{1, 2, 3}, func(int) error { asked.Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	if asked.Load() != 3 || tokens.n.Load() != 3 {
		t.Fatalf("%d asked, %d tokens taken; want 3 and 3", asked.Load(), tokens.n.Load())
	}
	down := errors.New("provider down")
	asked.Store(0)
	if err := EachFirstAlonePaced(context.Background(), p, []int{1, 2, 3}, func(int) error { asked.Add(1); return down }); err != down || asked.Load() != 1 {
		t.Fatalf("first failing: %v after %d asked; want the error itself after 1", err, asked.Load())
	}
}
