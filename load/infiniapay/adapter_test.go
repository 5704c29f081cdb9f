package infiniapay

import (
	"errors"
	"fmt"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

// The adapter tells the pipeline what concerns one subject: not found,
// a definite refusal, an error file in another layout; refused
// credentials stay configuration errors, transient failures stay as they are.
func TestInfiniaErrorsClassifiedForThePipeline(t *testing.T) {
	for name, tc := range map[string]struct {
		err               error
		notFound, refused bool
		kind              pipeline.Kind
	}{
		"not found": {err: &Error{API: "account-binding/query", Code: "BIZ-404", Err: ErrNotFound}, notFound: true},
		"layout":    {err: fmt.Errorf("error file: %w", ErrLayout), refused: true},
		// An answer about the subject that cannot be used concerns that
		// subject; an envelope that does not open concerns every request.
		"answer":    {err: &Error{API: "account-binding/query", Err: fmt.Errorf("%w: unknown binding status %q", ErrAnswer, "SUSPENDED")}, refused: true},
		"envelope":  {err: &Error{API: "account-binding/query", Err: fmt.Errorf("%w: not a response envelope", ErrEnvelope)}},
		"signature": {err: &Error{API: "account-binding/query", Err: fmt.Errorf("%w: does not verify", ErrSignature)}},
		"usage":     {err: pipeline.E(pipeline.KindUsage, "", fmt.Errorf("x: %w", ErrCredentials)), kind: pipeline.KindUsage},
		"network":   {err: errors.New("connection refused")},
	} {
		got := notFound(tc.err)
		if errors.Is(got, pipeline.ErrNotFound) != tc.notFound || errors.Is(got, pipeline.ErrRefused) != tc.refused || pipeline.KindOf(got) != tc.kind {
			t.Errorf("%s: %v", name, got)
		}
	}
	if notFound(nil) != nil {
		t.Error("nil")
	}
}
