// Tests of the package's unexported parts: the wait for upload statuses
// (awaitUploads) and the reconciliation's pages (askNotKept).

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

// memFinal keeps final answers in memory, and the largest list of keys it
// was asked about at once.
type memFinal struct {
	mu      sync.Mutex
	keys    map[string]bool
	largest int
}

func (f *memFinal) FinalKeys(_ context.Context, _ string, keys []string) (map[string]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.largest = max(f.largest, len(keys))
	out := map[string]bool{}
	for _, k := range keys {
		if f.keys[k] {
			out[k] = true
		}
	}
	return out, nil
}

func (f *memFinal) RecordFinal(_ context.Context, _ string, keys []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		f.keys[k] = true
	}
	return nil
}

// askNotKept goes a page at a time: over several pages each item not
// kept is asked about once, each clean one is kept, every mismatch is
// returned, and no page of keys is larger than askPage.
func TestAskNotKeptGoesByPages(t *testing.T) {
	t.Parallel()
	n := 2*askPage + 7
	items := make([]int, n)
	for i := range items {
		items[i] = i
	}
	final := &memFinal{keys: map[string]bool{"K5": true, fmt.Sprintf("K%d", askPage+5): true}}
	c := &MatcherConfig{Final: final, Pacer: pipeline.NewPacer(pipeline.Limits{})}
	var mu sync.Mutex
	asked := map[int]int{}
	found, err := askNotKept(context.Background(), c, "test", items, func(i int) string { return fmt.Sprintf("K%d", i) },
		func(_ context.Context, i int) ([]pipeline.Mismatch, bool, error) {
			mu.Lock()
			asked[i]++
			mu.Unlock()
			if i%1000 == 0 {
				return []pipeline.Mismatch{{Subject: fmt.Sprint(i)}}, false, nil
			}
			return nil, true, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) != n-2 || asked[5] != 0 || asked[askPage+5] != 0 {
		t.Fatalf("%d of %d items asked about (kept ones: %d, %d times)", len(asked), n, asked[5], asked[askPage+5])
	}
	for i, c := range asked {
		if c != 1 {
			t.Fatalf("item %d asked %d times", i, c)
		}
	}
	if want := (n + 999) / 1000; len(found) != want {
		t.Fatalf("%d mismatches, want %d", len(found), want)
	}
	if want := n - (n+999)/1000; len(final.keys) != want {
		t.Fatalf("%d kept, want %d", len(final.keys), want)
	}
	if final.largest > askPage {
		t.Fatalf("%d keys asked of the final answers at once, want at most %d", final.largest, askPage)
	}
}
