package infiniapay

import (
	"context"
	"fmt"
	"sync"

	"github.com/settlekit/settle/pipeline"
)

// ShareAnswers keeps Infinia's latest answer about each revenue share a
// RevenueShareSender sent or asked about in this process, by requestNo,
// until the distribute stage takes the one behind a final state it
// adopted: the stage compares it with the ledger as the matcher would
// (compareShare), and when they agree records the matcher's final answer,
// so that the reconciliation of the same run does not ask Infinia again
// what the stage has just seen final. Safe for concurrent use; the zero
// value is ready.
type ShareAnswers struct {
	mu sync.Mutex
	m  map[string]RevenueShareResult
}

// put keeps r as Infinia's latest answer about requestNo.
func (a *ShareAnswers) put(requestNo string, r RevenueShareResult) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[string]RevenueShareResult{}
	}
	a.m[requestNo] = r
}

// forget drops what was kept about requestNo: the latest word on it was
// no answer (not found, refused, an error).
func (a *ShareAnswers) forget(requestNo string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.m, requestNo)
}

// take returns and drops the answer kept about requestNo.
func (a *ShareAnswers) take(requestNo string) (RevenueShareResult, bool) {
	if a == nil {
		return RevenueShareResult{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.m[requestNo]
	delete(a.m, requestNo)
	return r, ok
}

// recordAdopted records e, a revenue share the distribute stage has just
// made final in the ledger (committed), as a final answer of the matcher
// (FinalName, finalKey) when the answer Infinia gave about it in this
// process is final and agrees with the ledger in everything the matcher
// compares. An effect whose answer was not seen here (found final in the
// ledger, or refused before Infinia recorded it) or that disagrees is
// left to the matcher, which asks.
func recordAdopted(ctx context.Context, final pipeline.FinalAnswers, answers *ShareAnswers, e pipeline.Effect) error {
	theirs, ok := answers.take(e.Key)
	if final == nil || !ok {
		return nil
	}
	// The sender keeps only answers about the seller it paid (ours).
	if _, clean, _ := compareShare(e, "", theirs, nil); !clean {
		return nil
	}
	if err := final.RecordFinal(ctx, FinalName, []string{finalKey(e)}); err != nil {
		return fmt.Errorf("final answers: %w", err)
	}
	return nil
}
