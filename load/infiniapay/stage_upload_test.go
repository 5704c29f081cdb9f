package infiniapay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// statusStore keeps trade files in memory: what awaitUploads reads and
// writes of the ledger (the rest of Store is not called).
type statusStore struct {
	Store
	mu    sync.Mutex
	files []pipeline.TradeFile
}

func (s *statusStore) TradeFiles(context.Context, int64) ([]pipeline.TradeFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]pipeline.TradeFile(nil), s.files...), nil
}

func (s *statusStore) FinishTradeFile(_ context.Context, f pipeline.TradeFile, _ []pipeline.ProviderReject, _, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.files {
		if s.files[i].RequestNo == f.RequestNo {
			s.files[i].Status = f.Status
		}
	}
	return nil
}

// slowStatuses answers RECEIVED to a file's first question and then
// SUCCESS (never, when stuck), each answer taking a while.
type slowStatuses struct {
	API
	took  time.Duration
	stuck bool
	mu    sync.Mutex
	asked map[string]int
}

func (a *slowStatuses) UploadStatus(_ context.Context, requestNo string) (string, string, error) {
	time.Sleep(a.took)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked[requestNo]++
	if a.asked[requestNo] == 1 || a.stuck {
		return StatusReceived, "", nil
	}
	return StatusSuccess, "", nil
}

// The wait for upload statuses begins once every file was asked about:
// a first wave that takes four times the wait (one question at a time)
// does not end the stage with files Infinia would accept at the next
// question. A provider that never decides still ends it, each file asked
// a bounded number of times.
func TestAwaitUploadsWaitBeginsAfterTheFirstWave(t *testing.T) {
	t.Parallel()
	const n = 40
	for _, stuck := range []bool{false, true} {
		store := &statusStore{}
		for i := range n {
			store.files = append(store.files, pipeline.TradeFile{RequestNo: fmt.Sprintf("R%02d", i), Name: fmt.Sprintf("F%02d.csv", i), Status: StatusReceived})
		}
		api := &slowStatuses{took: 5 * time.Millisecond, stuck: stuck, asked: map[string]int{}}
		c := &StageConfig{Store: store, API: api, Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: 1}),
			Wait: 50 * time.Millisecond, Poll: time.Millisecond}
		accepted, refused, _, err := awaitUploads(context.Background(), c, &pipeline.Run{ID: 1})
		questions := 0
		for _, q := range api.asked {
			questions += q
		}
		if !stuck {
			if err != nil || accepted != n || refused != 0 || questions != 2*n {
				t.Fatalf("accepted %d refused %d after %d questions: %v; want %d accepted after %d", accepted, refused, questions, err, n, 2*n)
			}
			continue
		}
		if !errors.Is(err, pipeline.ErrStillProcessing) || accepted != 0 {
			t.Fatalf("stuck provider: accepted %d: %v", accepted, err)
		}
		if questions < 2*n || questions > 4*n {
			t.Fatalf("stuck provider: %d questions about %d files; want each asked after the first wave, and not without end", questions, n)
		}
	}
}
