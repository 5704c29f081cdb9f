package pipeline

import (
	"errors"
	"fmt"
)

// Kind classifies an error by what the operator (or the scheduler) should do
// about it. main maps kinds to exit codes and nothing else does.
type Kind int

// The error kinds, in the order of their exit codes.
const (
	KindFailed      Kind = iota // something failed; a retry is safe (exit 1)
	KindUsage                   // bad flags, configuration or rules file (exit 2)
	KindInput                   // input data rejected beyond tolerance (exit 3)
	KindNeedsPerson             // finished, but mismatches or failed payouts need a person (exit 4)
	KindLocked                  // another run holds the lock for this date (exit 75)
)

// ExitCode is the process exit code documented in the README for k.
func (k Kind) ExitCode() int {
	switch k {
	case KindUsage:
		return 2
	case KindInput:
		return 3
	case KindNeedsPerson:
		return 4
	case KindLocked:
		return 75
	}
	return 1
}

// Error is an error with a kind and the operation that failed.
type Error struct {
	Kind Kind
	Op   string // what was being done, e.g. "read rules"
	Err  error
}

func (e *Error) Error() string {
	if e.Op == "" {
		return e.Err.Error()
	}
	return e.Op + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// E wraps err with a kind and an operation. E of a nil error is nil.
func E(kind Kind, op string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: kind, Op: op, Err: err}
}

// Errorf is E with a formatted message.
func Errorf(kind Kind, op, format string, args ...any) error {
	return &Error{Kind: kind, Op: op, Err: fmt.Errorf(format, args...)}
}

// KindOf returns the kind of the outermost *Error in err's chain, KindFailed
// when there is none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindFailed
}
