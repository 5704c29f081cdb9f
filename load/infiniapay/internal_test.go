// Tests of the package's unexported parts: the wait for upload statuses
// (awaitUploads), the reconciliation's pages (askNotKept,
// matchAvailable) and the distribute stage's planning by pages
// (distribution.plan).

package infiniapay

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// statusStore keeps trade files in memory: what awaitUploads reads and
// writes of the ledger (the rest of Store is not called).
type statusStore struct {
	Store
	mu      sync.Mutex
	files   []pipeline.TradeFile
	largest int // the largest page read
}

func (s *statusStore) OpenTradeFiles(_ context.Context, _, after int64, n int) ([]pipeline.TradeFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []pipeline.TradeFile
	for _, f := range s.files {
		if f.ID > after && f.Status != StatusSuccess && f.Status != StatusFailed && len(out) < n {
			out = append(out, f)
		}
	}
	s.largest = max(s.largest, len(out))
	return out, nil
}

func (s *statusStore) TradeFileCounts(context.Context, int64) (all, accepted, refused int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.files {
		switch f.Status {
		case StatusSuccess:
			accepted++
		case StatusFailed:
			refused++
		}
	}
	return len(s.files), accepted, refused, nil
}

func (s *statusStore) RefusedTradeFiles(_ context.Context, _ int64, n int) ([]pipeline.TradeFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []pipeline.TradeFile
	for _, f := range s.files {
		if f.Status == StatusFailed && len(out) < n {
			out = append(out, f)
		}
	}
	return out, nil
}

func (s *statusStore) SetFileItemsReason(context.Context, pipeline.TradeFile, string, string) error {
	return nil
}

func (s *statusStore) HoldWaiting(context.Context, int64, string, pipeline.Currency, []pipeline.Channel, string, string) (int64, error) {
	return 0, nil
}

func (s *statusStore) HoldPayoutItems(context.Context, int64, string, pipeline.Currency, []pipeline.Channel, string, string) (int64, error) {
	return 0, nil
}

func (s *statusStore) ReleaseWaiting(context.Context, int64, []pipeline.Channel, string, string) (int64, error) {
	return 0, nil
}

func (s *statusStore) FinishTradeFile(_ context.Context, f pipeline.TradeFile, _ []pipeline.ProviderReject, _, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.files {
		if s.files[i].RequestNo == f.RequestNo {
			s.files[i].Status, s.files[i].Reason = f.Status, f.Reason
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

func (a *slowStatuses) UploadStatus(_ context.Context, f pipeline.TradeFile) (string, string, error) {
	requestNo := f.RequestNo
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
// a bounded number of times. The wait counts in the stage's progress.
func TestAwaitUploadsWaitBeginsAfterTheFirstWave(t *testing.T) {
	t.Parallel()
	const n = 40
	for _, stuck := range []bool{false, true} {
		store := &statusStore{}
		for i := range n {
			store.files = append(store.files, pipeline.TradeFile{ID: int64(i + 1), RequestNo: fmt.Sprintf("R%02d", i), Name: fmt.Sprintf("F%02d.csv", i), Status: StatusReceived})
		}
		api := &slowStatuses{took: 5 * time.Millisecond, stuck: stuck, asked: map[string]int{}}
		c := &StageConfig{Store: store, API: api, Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: 1}),
			Wait: 50 * time.Millisecond, Poll: time.Millisecond, Now: time.Now}
		progress := &pipeline.Progress{}
		progress.Restart(n) // the uploads' phase, done
		progress.Add(n)
		accepted, refused, err := awaitUploads(pipeline.WithProgress(context.Background(), progress), c, &pipeline.Run{ID: 1}, &unusableAnswers{}, &pipeline.Problems{})
		// The wait is a phase of its own: the files asked about, counted
		// done as Infinia decides them (none, when it never does).
		if done, total := progress.Counts(); total != 2*n || stuck && done != n || !stuck && done != 2*n {
			t.Fatalf("stuck %v: progress %d of %d, want the uploads' %d and the wait's %d decided of %d", stuck, done, total, n, map[bool]int{true: 0, false: n}[stuck], n)
		}
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

// An answer that fails as Infinia down would fails askNotKept with its
// error, and the answers found clean beside it, in its page too, are kept:
// asked again, only what was not answered is asked.
func TestAskNotKeptKeepsWhatWasAnsweredBeforeAFailure(t *testing.T) {
	t.Parallel()
	items := make([]int, 50)
	for i := range items {
		items[i] = i
	}
	final := &memFinal{keys: map[string]bool{}}
	// One in flight, the items asked in order: 30 fails, the others are
	// asked all the same.
	var mu sync.Mutex
	c := &MatcherConfig{Final: final, Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: 1})}
	key := func(i int) string { return fmt.Sprintf("K%d", i) }
	var asked []int
	ask := func(fail int) func(context.Context, int) ([]pipeline.Mismatch, bool, error) {
		return func(_ context.Context, i int) ([]pipeline.Mismatch, bool, error) {
			mu.Lock()
			asked = append(asked, i)
			mu.Unlock()
			if i == fail {
				return nil, false, errors.New("infinia down")
			}
			return nil, true, nil
		}
	}
	if _, err := askNotKept(context.Background(), c, "test", items, key, ask(30)); err == nil || err.Error() != "infinia down" {
		t.Fatalf("%v, want Infinia's failure", err)
	}
	if len(final.keys) != len(asked)-1 || !final.keys["K29"] || final.keys["K30"] {
		t.Fatalf("kept %d of the %d answered (K29 %v, K30 %v)", len(final.keys), len(asked)-1, final.keys["K29"], final.keys["K30"])
	}
	before := len(asked)
	asked = nil
	if _, err := askNotKept(context.Background(), c, "test", items, key, ask(-1)); err != nil {
		t.Fatal(err)
	}
	if len(asked) != len(items)-(before-1) || asked[0] != 30 {
		t.Fatalf("asked again %v, want 30 and those not asked before", asked)
	}
}

// A wave of status questions walks the open files a page at a time:
// over several pages every file is asked about until it is final, no
// page is larger than uploadPage, and the files refused before are
// counted, the first few named.
func TestAwaitUploadsGoesByPages(t *testing.T) {
	t.Parallel()
	n := 2*uploadPage + 7
	store := &statusStore{}
	for i := range n {
		f := pipeline.TradeFile{ID: int64(i + 1), RequestNo: fmt.Sprintf("R%05d", i), Name: fmt.Sprintf("F%05d.csv", i), Status: StatusReceived}
		if i%100 == 3 {
			f.Status, f.Reason = StatusFailed, "3 rows refused"
		}
		store.files = append(store.files, f)
	}
	api := &slowStatuses{asked: map[string]int{}}
	c := &StageConfig{Store: store, API: api, Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: 8}), Wait: time.Minute, Poll: time.Millisecond, Now: time.Now}
	problems := &pipeline.Problems{}
	accepted, refused, err := awaitUploads(context.Background(), c, &pipeline.Run{ID: 1}, &unusableAnswers{}, problems)
	if err != nil || accepted != n-21 || refused != 21 || problems.Count() != 21 || len(problems.List) != pipeline.ProblemsListed ||
		!strings.HasPrefix(problems.List[0], "trade file F00003.csv refused by Infinia: 3 rows refused (its orders are held; ") ||
		!strings.Contains(problems.List[0], "settle resolve --date") || problems.List[1] != "trade file F00103.csv refused by Infinia: 3 rows refused" {
		t.Fatalf("accepted %d, refused %d, problems %d %q: %v; want %d accepted, 21 refused and counted, the first %d named",
			accepted, refused, problems.Count(), problems.List, err, n-21, pipeline.ProblemsListed)
	}
	if len(api.asked) != n-21 {
		t.Fatalf("%d files asked about, want the %d open", len(api.asked), n-21)
	}
	for no, q := range api.asked {
		if q != 2 {
			t.Fatalf("%s asked %d times, want twice (RECEIVED, then SUCCESS)", no, q)
		}
	}
	if store.largest > uploadPage {
		t.Fatalf("a page of %d files, want at most %d", store.largest, uploadPage)
	}
}

// unusableStatus answers as slowStatuses does, but about one file with a
// status this client does not know (as the adapter classifies it).
type unusableStatus struct {
	*slowStatuses
	odd string
}

func (a unusableStatus) UploadStatus(ctx context.Context, f pipeline.TradeFile) (string, string, error) {
	requestNo := f.RequestNo
	if requestNo == a.odd {
		a.mu.Lock()
		a.asked[requestNo]++
		a.mu.Unlock()
		return "", "", notFound(&Error{API: APIUploadStatus, Err: fmt.Errorf("%w: unknown upload status %q", ErrAnswer, "QUARANTINED")})
	}
	return a.slowStatuses.UploadStatus(ctx, f)
}

// A status answer about one file that cannot be used leaves that file
// open - never refused, as Infinia may have accepted it - asked once in
// the run, and named in one problem; the other files are decided. Before,
// it stopped the stage for every file; held as refused, its items would
// never have been paid.
func TestAwaitUploadsLeavesAFileWithAnUnusableAnswerOpen(t *testing.T) {
	t.Parallel()
	store := &statusStore{}
	for i := range 5 {
		store.files = append(store.files, pipeline.TradeFile{ID: int64(i + 1), RequestNo: fmt.Sprintf("R%d", i), Name: fmt.Sprintf("F%d.csv", i), Status: StatusReceived})
	}
	api := unusableStatus{&slowStatuses{asked: map[string]int{}}, "R2"}
	c := &StageConfig{Store: store, API: api, Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: 2}), Wait: time.Minute, Poll: time.Millisecond, Now: time.Now}
	unusable := &unusableAnswers{}
	problems := &pipeline.Problems{}
	accepted, refused, err := awaitUploads(context.Background(), c, &pipeline.Run{ID: 1}, unusable, problems)
	if err != nil || accepted != 4 || refused != 0 || problems.Count() != 0 {
		t.Fatalf("accepted %d, refused %d, problems %q: %v; want the 4 others accepted", accepted, refused, problems.List, err)
	}
	if st := store.files[2].Status; st != StatusReceived || api.asked["R2"] != 1 {
		t.Fatalf("the file with the unusable answer: %s, asked %d times; want it left open, asked once", st, api.asked["R2"])
	}
	if p := unusable.problem(); !strings.Contains(p, "1 trade files") || !strings.Contains(p, "F2.csv") || !strings.Contains(p, "QUARANTINED") {
		t.Fatalf("problem %q", p)
	}
}

// tradeStore serves one seller's items for its trade file, counting the
// reads.
type tradeStore struct {
	Store
	items []pipeline.Split
	reads int
}

// ReleaseWaiting: nothing is held past Infinia's memory here (the stages
// take the hold back on every run the guard does not hold).
func (s *tradeStore) ReleaseWaiting(context.Context, int64, []pipeline.Channel, string, string) (int64, error) {
	return 0, nil
}

func (s *tradeStore) ItemsForTrade(_ context.Context, _ int64, _ string, _ pipeline.Currency, _ []pipeline.Channel, _ string, fn func(pipeline.Split) error) error {
	s.reads++
	for _, sp := range s.items {
		if err := fn(sp); err != nil {
			return err
		}
	}
	return nil
}

// A trade file is uploaded as it was recorded: the one the stage just
// built, when it has the recorded digest (not read from the ledger
// again); else - missing, changed on disk, or left by an earlier run -
// rebuilt from the ledger, and refused when the ledger no longer gives
// the recorded bytes, even if the file left on disk still has them.
func TestTradeFileUploadedAsRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	split := func(no string, share int64) pipeline.Split {
		return pipeline.Split{Order: pipeline.Order{OrderNo: no, SellerID: "S1", Channel: "infinia", Currency: "USD", Amount: share + 1, PaidAt: at, ConfirmedAt: at},
			Rule: "r", Commission: 1, SellerShare: share}
	}
	store := &tradeStore{items: []pipeline.Split{split("O1", 900), split("O2", 450)}}
	c := &StageConfig{Store: store, WorkDir: t.TempDir(), Channels: []pipeline.Channel{"infinia"},
		WriteFile: func(dir, name string, rows func(func(pipeline.TradeRow) error) error) (string, string, int64, int, error) {
			return DefaultLayout().write(dir, name, nil, rows)
		},
		Rows: func(s pipeline.Split) []pipeline.TradeRow {
			return []pipeline.TradeRow{{OrderNo: s.OrderNo, TradeType: "SALE", Currency: string(s.Currency), Amount: fmt.Sprint(s.Amount),
				Commission: fmt.Sprint(s.Commission), SellerAmount: fmt.Sprint(s.SellerShare), TradeTime: s.PaidAt.Format(time.RFC3339)}}
		}}
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}}}
	recorded := pipeline.TradeFile{RunID: 1, Date: run.Key.Date, SellerID: "S1", Currency: "USD", Attempt: 1, RequestNo: "R1", Name: "TD_R1.csv"}
	if err := writeTradeFile(ctx, c, run, &recorded, ""); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(c.WorkDir, run.Key.Date.String(), recorded.Name)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	built := fi.ModTime() // the stage began when it built the file, or before
	check := func(what string, since time.Time, wantReads int, wantErr bool) {
		t.Helper()
		store.reads = 0
		f := recorded
		err := ensureTradeFile(ctx, c, run, &f, since)
		if (err != nil) != wantErr || store.reads != wantReads {
			t.Fatalf("%s: %v after %d reads of the ledger; want error %v after %d", what, err, store.reads, wantErr, wantReads)
		}
		if wantErr {
			return
		}
		if sum, size, err := fileDigest(path); err != nil || sum != recorded.SHA256 || size != recorded.Bytes {
			t.Fatalf("%s: the file on disk is %s, %d bytes (%v); want the recorded %s, %d", what, sum, size, err, recorded.SHA256, recorded.Bytes)
		}
	}
	check("built by the stage", built, 0, false)
	earlier := built.Add(time.Hour) // the stage began after the file was written
	check("left by an earlier run", earlier, 1, false)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	check("missing", built, 1, false)
	if err := os.WriteFile(path, []byte("order_no\nX\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	check("changed on disk", built.Add(-time.Hour), 1, false)
	store.items[1].SellerShare = 451 // the ledger moved under the recorded file
	check("left by an earlier run, the ledger changed", earlier, 1, true)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	check("missing, the ledger changed", built, 1, true)
}

// planStore is what distribute's planning reads and writes of the ledger,
// in memory: the candidates stream in, the checked ones are kept, summed
// and read back by pages (the rest of Store is not called).
type planStore struct {
	Store
	cands []pipeline.PayoutCandidate

	mu       sync.Mutex
	kept     map[pipeline.Currency]map[string]pipeline.PayoutCandidate
	mostKept int // the most payouts a call kept at once
	mostRead int // the most payouts a call read back at once
	carried  map[string]string
	planned  map[string]int64
}

// ReleaseWaiting: nothing is held past Infinia's memory here (the stages
// take the hold back on every run the guard does not hold).
func (s *planStore) ReleaseWaiting(context.Context, int64, []pipeline.Channel, string, string) (int64, error) {
	return 0, nil
}

// ReleaseCarriedWithDate, CarriedHeldGoneFromDate and HoldCarriedWithDate:
// no carried balance is held past Infinia's memory here.
func (s *planStore) ReleaseCarriedWithDate(context.Context, *pipeline.Run) (int, error) {
	return 0, nil
}

func (s *planStore) CarriedHeldGoneFromDate(context.Context, *pipeline.Run, []pipeline.Channel) ([]pipeline.SellerCurrency, error) {
	return nil, nil
}

func (s *planStore) HoldCarriedWithDate(context.Context, *pipeline.Run, []pipeline.Channel, string) ([]pipeline.SellerCurrency, error) {
	return nil, nil
}

func (s *planStore) BlockedByLateRefunds(context.Context, []pipeline.Channel) (map[pipeline.SellerCurrency]string, error) {
	return nil, nil
}

// SellerHolds: no order held for its seller's account.
func (s *planStore) SellerHolds(context.Context, int64) ([]pipeline.SellerHold, error) {
	return nil, nil
}

// SellersRejectedHeld: no order rejected with its seller.
func (s *planStore) SellersRejectedHeld(context.Context, int64) ([]pipeline.SellerHold, error) {
	return nil, nil
}

func (s *planStore) LatestEffect(context.Context, string, string) (pipeline.Effect, bool, error) {
	return pipeline.Effect{}, false, nil
}

func (s *planStore) SetBinding(context.Context, pipeline.Binding) error { return nil }

// PayingRuns: no other run pays now.
func (s *planStore) PayingRuns(context.Context, int64, string) ([]*pipeline.Run, error) {
	return nil, nil
}

// OpenEffectsAfter: nothing planned before.
func (s *planStore) OpenEffectsAfter(context.Context, int64, string, int64, int) ([]pipeline.Effect, error) {
	return nil, nil
}

// UnappliedPayouts: nothing paid before.
func (s *planStore) UnappliedPayouts(context.Context, int64, string) ([]pipeline.Effect, error) {
	return nil, nil
}

func (s *planStore) EachPayoutCandidate(_ context.Context, _ *pipeline.Run, _ []pipeline.Channel, _ string, fn func(pipeline.PayoutCandidate) error) error {
	for _, p := range s.cands {
		if err := fn(p); err != nil {
			return err
		}
	}
	return nil
}

func (s *planStore) ClearPayoutCandidates(context.Context, int64, string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kept = nil
	return nil
}

func (s *planStore) AddPayoutCandidates(_ context.Context, _ int64, _ string, ps []pipeline.PayoutCandidate) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kept == nil {
		s.kept = map[pipeline.Currency]map[string]pipeline.PayoutCandidate{}
	}
	for _, p := range ps {
		if s.kept[p.Currency] == nil {
			s.kept[p.Currency] = map[string]pipeline.PayoutCandidate{}
		}
		s.kept[p.Currency][p.SellerID] = p
	}
	s.mostKept = max(s.mostKept, len(ps))
	return nil
}

func (s *planStore) PayoutCandidateTotals(context.Context, int64, string) ([]pipeline.Money, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []pipeline.Money
	for cur, ps := range s.kept {
		m := pipeline.Money{Currency: cur}
		for _, p := range ps {
			n, _ := p.Net()
			m.Minor += n
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b pipeline.Money) int { return strings.Compare(string(a.Currency), string(b.Currency)) })
	return out, nil
}

func (s *planStore) PayoutCandidatesAfter(_ context.Context, _ int64, _ string, cur pipeline.Currency, after string, n int) ([]pipeline.PayoutCandidate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []pipeline.PayoutCandidate
	for _, seller := range slices.Sorted(maps.Keys(s.kept[cur])) {
		if seller > after && len(out) < n {
			out = append(out, s.kept[cur][seller])
		}
	}
	s.mostRead = max(s.mostRead, len(out))
	return out, nil
}

func (s *planStore) CarryItems(_ context.Context, _ *pipeline.Run, seller string, cur pipeline.Currency, _ []pipeline.Channel, _, reason string) (int64, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.carried[seller+" "+string(cur)] = reason
	return 0, 0, nil
}

func (s *planStore) PlanPayout(_ context.Context, _ *pipeline.Run, seller string, _ []pipeline.Channel, e pipeline.Effect) (pipeline.Effect, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.planned[seller+" "+string(e.Currency)] = e.Amount
	e.ID = int64(len(s.planned))
	return e, nil
}

// planAPI answers every seller ACTIVE, counting the binding queries by
// seller, with the platform balance given by currency.
type planAPI struct {
	API
	balance map[pipeline.Currency]int64

	mu       sync.Mutex
	bindings map[string]int
}

func (a *planAPI) BindingStatus(_ context.Context, _, id string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.bindings[id]++
	return StatusActive, nil
}

func (a *planAPI) Balance(_ context.Context, _ string, cur pipeline.Currency) (int64, error) {
	return a.balance[cur], nil
}

func (a *planAPI) AvailableShare(context.Context, string, string, pipeline.Currency) (int64, error) {
	return 1 << 40, nil
}

// TestDistributePlanGoesByPages: planning checks the candidates a page at
// a time without splitting a seller's currencies (its binding is asked
// once), keeps the checked payouts in the ledger, checks each currency's
// balance against all of its payouts (a short one holds every payout in it,
// planning none), and plans the others, read back a page at a time.
func TestDistributePlanGoesByPages(t *testing.T) {
	const sellers = 1500
	currencies := []pipeline.Currency{"EUR", "JPY", "USD"} // 3: a page of 1,000 ends inside a seller
	s := &planStore{carried: map[string]string{}, planned: map[string]int64{}}
	var need int64
	for i := range sellers {
		for j, cur := range currencies {
			p := pipeline.PayoutCandidate{SellerID: fmt.Sprintf("S%05d", i), Currency: cur, Payable: int64(100 + i + j), Items: 1, Account: fmt.Sprintf("I%05d", i)}
			if cur == "JPY" {
				need += p.Payable
			}
			s.cands = append(s.cands, p)
		}
	}
	api := &planAPI{bindings: map[string]int{}, balance: map[pipeline.Currency]int64{"EUR": 1 << 40, "JPY": need - 1, "USD": 1 << 40}}
	c := StageConfig{Store: s, API: api}
	c.defaults()
	d := &distribution{c: &c, run: &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 12, Day: 1}, Shard: pipeline.Whole}}}
	if err := d.plan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(api.bindings) != sellers {
		t.Fatalf("bindings of %d sellers asked, want %d", len(api.bindings), sellers)
	}
	for id, n := range api.bindings {
		if n != 1 {
			t.Fatalf("binding of %s asked %d times, want once", id, n)
		}
	}
	if s.mostKept > planPage+len(currencies)-1 || s.mostKept < planPage {
		t.Fatalf("a page kept %d payouts at once, want a page (%d, with the rest of its last seller)", s.mostKept, planPage)
	}
	if s.mostRead != planPage {
		t.Fatalf("payouts read back %d at a time, want %d", s.mostRead, planPage)
	}
	for i := range sellers {
		seller := fmt.Sprintf("S%05d", i)
		for j, cur := range currencies {
			k := seller + " " + string(cur)
			switch amount, ok := s.planned[k]; {
			case cur == "JPY" && (ok || !strings.Contains(s.carried[k], "platform balance")):
				t.Fatalf("%s: planned %v (%d), carried %q; want it held for the short JPY balance", k, ok, amount, s.carried[k])
			case cur != "JPY" && (!ok || amount != int64(100+i+j)):
				t.Fatalf("%s: planned %v (%d), carried %q; want %d planned", k, ok, amount, s.carried[k], 100+i+j)
			}
		}
	}
	if len(d.todo) != 2*sellers || d.carried != sellers {
		t.Fatalf("%d payouts to drive and %d carried, want %d and %d", len(d.todo), d.carried, 2*sellers, sellers)
	}
	// The short balance is one cause: said once, first, counted a seller.
	if first, n := pipeline.ProblemsOf(d.problems.NeedsPerson(), 2); n != sellers || len(first) != 1 ||
		!strings.HasPrefix(first[0], fmt.Sprintf("JPY, %d sellers' revenue shares carried: platform balance ", sellers)) {
		t.Fatalf("problems: %d, %q; want the short JPY balance once, for %d sellers", n, first, sellers)
	}
	if s.kept != nil {
		t.Fatal("the checked payouts are still kept after planning")
	}
}

// shareAPI is planAPI with each seller's available share at Infinia
// given by its Infinia id.
type shareAPI struct {
	*planAPI
	available map[string]int64
}

func (a *shareAPI) AvailableShare(_ context.Context, _, id string, _ pipeline.Currency) (int64, error) {
	return a.available[id], nil
}

// TestAPayoutIsSentFromTheMinimumAndUpToTheAvailableShareAndNetOfItsCarry:
// a net at the currency's minimum payout is sent and one a unit below it
// carried; a net Infinia's available share covers exactly is sent and one
// it misses by a unit carried; a carried clawback is netted (sent less),
// and a net it makes negative is carried, never sent.
func TestAPayoutIsSentFromTheMinimumAndUpToTheAvailableShareAndNetOfItsCarry(t *testing.T) {
	s := &planStore{carried: map[string]string{}, planned: map[string]int64{}, cands: []pipeline.PayoutCandidate{
		{SellerID: "AT-MIN", Currency: "USD", Payable: 500, Items: 1, Account: "I1"},
		{SellerID: "BELOW-MIN", Currency: "USD", Payable: 499, Items: 1, Account: "I2"},
		{SellerID: "COVERED", Currency: "USD", Payable: 1000, Items: 1, Account: "I3"},
		{SellerID: "SHORT", Currency: "USD", Payable: 1000, Items: 1, Account: "I4"},
		{SellerID: "CLAWED", Currency: "USD", Payable: 1000, Items: 1, Carried: -300, Account: "I5"},
		{SellerID: "NEGATIVE", Currency: "USD", Payable: 100, Items: 1, Carried: -300, Account: "I6"},
	}}
	api := &shareAPI{planAPI: &planAPI{bindings: map[string]int{}, balance: map[pipeline.Currency]int64{"USD": 1 << 40}},
		available: map[string]int64{"I1": 500, "I2": 1 << 40, "I3": 1000, "I4": 999, "I5": 700, "I6": 1 << 40}}
	c := StageConfig{Store: s, API: api, MinPayout: map[pipeline.Currency]int64{"USD": 500}}
	c.defaults()
	d := &distribution{c: &c, run: &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 12, Day: 1}, Shard: pipeline.Whole}}}
	if err := d.plan(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantPlanned := map[string]int64{"AT-MIN USD": 500, "COVERED USD": 1000, "CLAWED USD": 700}
	if !maps.Equal(s.planned, wantPlanned) {
		t.Errorf("planned %v, want %v", s.planned, wantPlanned)
	}
	for k, why := range map[string]string{"BELOW-MIN USD": "below the minimum payout", "SHORT USD": "available", "NEGATIVE USD": "negative"} {
		if !strings.Contains(s.carried[k], why) {
			t.Errorf("%s carried %q, want it carried as %q", k, s.carried[k], why)
		}
	}
	if len(s.carried) != 3 {
		t.Errorf("carried %v, want 3", s.carried)
	}
}

// heldPlanStore is a planStore whose run holds some sellers' orders for
// their account.
type heldPlanStore struct {
	*planStore
	holds []pipeline.SellerHold
}

func (s *heldPlanStore) SellerHolds(context.Context, int64) ([]pipeline.SellerHold, error) {
	return s.holds, nil
}

// SetItemsState records a seller's items settled without a payout (its
// share 0) as planned at 0.
func (s *heldPlanStore) SetItemsState(_ context.Context, _ int64, seller string, cur pipeline.Currency, _ []pipeline.Channel, _, _, _, _, _ string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.planned[seller+" "+string(cur)] = 0
	return 1, nil
}

// TestAPayoutIsPlannedOnlyForANetToSendToAUsableAccount: without a
// minimum payout, a net of 0 (a clawback as large as the items) is
// carried, never sent as a payout of nothing; a seller with only a
// carried balance is paid it, and so is one whose items of the run are
// all refunded (0) and who carries a balance; one with no Infinia id, or whose orders the
// run holds for its account, is carried with the reason, its balance not
// paid to the account recorded.
func TestAPayoutIsPlannedOnlyForANetToSendToAUsableAccount(t *testing.T) {
	s := &planStore{carried: map[string]string{}, planned: map[string]int64{}, cands: []pipeline.PayoutCandidate{
		{SellerID: "CARRIED-ONLY", Currency: "USD", Carried: 600, Account: "I1"},
		{SellerID: "HELD", Currency: "USD", Payable: 100, Items: 1, Carried: 600, Account: "I2"},
		{SellerID: "NO-ID", Currency: "USD", Payable: 1000, Items: 1},
		{SellerID: "NOTHING", Currency: "USD", Payable: 300, Items: 1, Carried: -300, Account: "I4"},
		{SellerID: "PAID", Currency: "USD", Payable: 1000, Items: 2, Account: "I5"},
		{SellerID: "REFUNDED", Currency: "USD", Items: 1, Carried: 500, Account: "I6"}, // its items are 0, its balance is not
		{SellerID: "ALL-REFUNDED", Currency: "USD", Items: 1, Account: "I7"},           // settled at 0: nothing to send
	}}
	api := &planAPI{bindings: map[string]int{}, balance: map[pipeline.Currency]int64{"USD": 1 << 40}}
	c := StageConfig{API: api, Channels: []pipeline.Channel{Channel}}
	c.defaults()
	c.Store = &heldPlanStore{planStore: s, holds: []pipeline.SellerHold{{SellerID: "HELD", Channel: Channel, Currency: "USD", Orders: 1, Share: 100, Reason: "another seller has it too"}}}
	d := &distribution{c: &c, run: &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 12, Day: 1}, Shard: pipeline.Whole}}}
	if err := d.plan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"CARRIED-ONLY USD": 600, "PAID USD": 1000, "REFUNDED USD": 500, "ALL-REFUNDED USD": 0}; !maps.Equal(s.planned, want) {
		t.Errorf("planned %v, want %v", s.planned, want)
	}
	for k, why := range map[string]string{"HELD USD": "held for its account", "NO-ID USD": "no Infinia seller id", "NOTHING USD": "net is 0"} {
		if !strings.Contains(s.carried[k], why) {
			t.Errorf("%s carried %q, want it carried as %q", k, s.carried[k], why)
		}
	}
	if len(s.carried) != 3 {
		t.Errorf("carried %v, want 3", s.carried)
	}
}

// TestAPlatformBalanceThatCoversThePayoutsExactlyPaysThem: a balance of
// exactly what the run's payouts in the currency need plans them all; a
// unit less holds them all, for a person.
func TestAPlatformBalanceThatCoversThePayoutsExactlyPaysThem(t *testing.T) {
	for balance, want := range map[int64]int{800: 2, 799: 0} {
		s := &planStore{carried: map[string]string{}, planned: map[string]int64{}, cands: []pipeline.PayoutCandidate{
			{SellerID: "A", Currency: "USD", Payable: 500, Items: 1, Account: "I1"},
			{SellerID: "B", Currency: "USD", Payable: 400, Items: 1, Carried: -100, Account: "I2"},
		}}
		api := &planAPI{bindings: map[string]int{}, balance: map[pipeline.Currency]int64{"USD": balance}}
		c := StageConfig{Store: s, API: api}
		c.defaults()
		d := &distribution{c: &c, run: &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 12, Day: 1}, Shard: pipeline.Whole}}}
		if err := d.plan(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(s.planned) != want || len(s.carried) != 2-want {
			t.Errorf("balance %d for 800 of payouts: planned %v, carried %v; want %d planned", balance, s.planned, s.carried, want)
		}
		for k, why := range s.carried {
			if !strings.Contains(why, "platform balance") {
				t.Errorf("balance %d: %s carried %q, want it carried for the platform balance", balance, k, why)
			}
		}
	}
}

// expectedStore streams n expected shares, one a seller, every tenth with
// no Infinia id (not asked about), and counts how many it has given.
type expectedStore struct {
	ReconcileStore
	n     int
	given atomic.Int64
}

func (s *expectedStore) EachExpectedShare(_ context.Context, _ int64, fn func(pipeline.ExpectedShare) error) error {
	for i := range s.n {
		x := pipeline.ExpectedShare{SellerID: fmt.Sprintf("S%06d", i), Currency: "USD", Uploaded: 100, Paid: 40}
		if i%10 != 0 {
			x.ProviderSellerID = "I" + x.SellerID
		}
		s.given.Add(1)
		if err := fn(x); err != nil {
			return err
		}
	}
	return nil
}

// availableAPI answers every seller's available share as the ledger
// expects it (60) but for S000007's (59), and records how far the stream
// of expected shares had gone at each question.
type availableAPI struct {
	Reconciler
	store *expectedStore

	mu    sync.Mutex
	asked int
	ahead int64 // the most shares given and not asked about yet, at a question
}

func (a *availableAPI) AvailableShare(_ context.Context, _, id string, _ pipeline.Currency) (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked++
	a.ahead = max(a.ahead, a.store.given.Load()-int64(a.asked))
	if id == "IS000007" {
		return 59, nil
	}
	return 60, nil
}

// The available shares are asked about as the expected ones stream in, a
// page at a time: the matcher never holds more than a page of them, asks
// each seller with an Infinia id once, and finds the one that differs.
func TestMatchAvailableGoesByPages(t *testing.T) {
	t.Parallel()
	s := &expectedStore{n: 2*askPage + 15}
	api := &availableAPI{store: s}
	final := &memFinal{keys: map[string]bool{}}
	c := &MatcherConfig{Store: s, API: api, Final: final, Pacer: pipeline.NewPacer(pipeline.Limits{})}
	found, err := matchAvailable(context.Background(), c, &pipeline.Run{ID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := s.n - (s.n+9)/10; api.asked != want {
		t.Fatalf("%d available shares asked, want %d", api.asked, want)
	}
	if len(found) != 1 || found[0].SellerID != "S000007" || found[0].Theirs != pipeline.Minor(59) {
		t.Fatalf("mismatches %+v, want S000007's alone", found)
	}
	// A page is askPage shares with an Infinia id, and the shares without
	// one read while it fills (a tenth).
	if limit := int64(askPage + askPage/9 + 1); api.ahead > limit {
		t.Fatalf("%d expected shares read ahead of the questions, want at most a page (%d)", api.ahead, limit)
	}
	if final.largest > askPage {
		t.Fatalf("%d keys asked of the final answers at once, want at most %d", final.largest, askPage)
	}
}

// TestCompareShareComparesTheSeller: the matcher found a payout Infinia
// reports made to another seller clean, recorded it final and never asked
// again (found by a review).
func TestCompareShareComparesTheSeller(t *testing.T) {
	d := pipeline.Date{Year: 2026, Month: 11, Day: 23}
	e := pipeline.Effect{RunID: 1, Kind: KindRevenueShare, Attempt: 1, Subject: RevenueShareSubject(d, "S1", "USD"),
		Key: RevenueShareRequestNo(d, "S1", "USD", 1), Currency: "USD", Amount: 12600, State: pipeline.EffectSucceeded}
	theirs := RevenueShareResult{RequestNo: e.Key, SellerID: "INF-SOMEONE-ELSE", Status: StatusSuccess, Currency: "USD", Amount: 12600}
	if ms, clean, err := compareShare(e, "INF-S1", theirs, nil); err != nil || clean || len(ms) != 1 || !strings.Contains(ms[0].Detail, "INF-SOMEONE-ELSE") {
		t.Fatalf("a payout Infinia reports made to INF-SOMEONE-ELSE: mismatches %v, clean %v, %v", ms, clean, err)
	}
	theirs.SellerID = "INF-S1"
	if ms, clean, err := compareShare(e, "INF-S1", theirs, nil); err != nil || !clean || len(ms) != 0 {
		t.Fatalf("our own payout: mismatches %v, clean %v, %v", ms, clean, err)
	}
	// An amount echoed without its currency is read in ours, and compared.
	for text, want := range map[string]bool{"126.00": true, "120.00": false, "126.005": false} {
		theirs := RevenueShareResult{RequestNo: e.Key, Status: StatusSuccess, amountText: text}
		if ms, clean, err := compareShare(e, "INF-S1", theirs, nil); err != nil || clean != want || len(ms) == 0 == !want {
			t.Errorf("paid, amount %q without a currency: mismatches %v, clean %v, %v; want clean %v", text, ms, clean, err, want)
		}
	}
}

// TestCompareShareStatusGoneBack: a revenue share the ledger recorded
// final (SUCCESS or FAILED: applied, its items paid or its balance carried
// and sent again under a new requestNo) that Infinia now answers
// PROCESSING is a status that went back, for a person: reported as an
// expected timing row ("not final yet"), it needed no one (exit 0) while a
// failed share Infinia is still paying could pay the seller twice.
func TestCompareShareStatusGoneBack(t *testing.T) {
	d := pipeline.Date{Year: 2026, Month: 11, Day: 23}
	for _, state := range []pipeline.EffectState{pipeline.EffectSucceeded, pipeline.EffectFailed} {
		e := pipeline.Effect{RunID: 1, Kind: KindRevenueShare, Attempt: 1, Subject: RevenueShareSubject(d, "S1", "USD"),
			Key: RevenueShareRequestNo(d, "S1", "USD", 1), Currency: "USD", Amount: 12600, State: state}
		theirs := RevenueShareResult{RequestNo: e.Key, SellerID: "INF-S1", Status: StatusProcessing, Currency: "USD", Amount: 12600}
		ms, clean, err := compareShare(e, "INF-S1", theirs, nil)
		if err != nil || clean || len(ms) != 1 {
			t.Fatalf("%s, Infinia PROCESSING: mismatches %+v, clean %v, %v", state, ms, clean, err)
		}
		if m := ms[0]; m.Expected || m.Category != pipeline.MismatchStatus || !strings.Contains(m.Detail, "PROCESSING") {
			t.Errorf("%s, Infinia PROCESSING: %+v, want an unexpected status mismatch naming PROCESSING", state, m)
		}
	}
	// Still in flight on both sides: timing, expected.
	e := pipeline.Effect{RunID: 1, Kind: KindRevenueShare, Attempt: 1, Subject: RevenueShareSubject(d, "S1", "USD"),
		Key: RevenueShareRequestNo(d, "S1", "USD", 1), Currency: "USD", Amount: 12600, State: pipeline.EffectSent}
	theirs := RevenueShareResult{RequestNo: e.Key, Status: StatusProcessing}
	if ms, _, err := compareShare(e, "INF-S1", theirs, nil); err != nil || len(ms) != 1 || !ms[0].Expected || ms[0].Category != pipeline.MismatchTiming {
		t.Fatalf("in flight, PROCESSING: %+v, %v; want an expected timing row", ms, err)
	}
}
