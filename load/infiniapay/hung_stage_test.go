package infiniapay_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
	"github.com/settlekit/settle/pipeline"
)

// clientAttempts is how many attempts the client makes of a call (1 +
// MaxRetries).
const clientAttempts = 5

// hungInfinia is a fake Infinia whose endpoints named in hang, while hung
// is set, accept connections and never answer, counting the requests
// they took so (made); the client's attempts take 100 ms (answering: a
// client of the rig's timeouts, for the re-run once Infinia answers).
type hungInfinia struct {
	*rig
	hang []string // endpoints (their path's end) that hang
	hung atomic.Bool
	made atomic.Int64
}

func newHungInfinia(t *testing.T, hang ...string) *hungInfinia {
	h := &hungInfinia{hang: hang}
	release := make(chan struct{})
	h.rig = newRig(t, infiniapaytest.Options{PlatformID: "P1"}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if h.hung.Load() && slices.ContainsFunc(h.hang, func(api string) bool { return strings.HasSuffix(req.URL.Path, api) }) {
				h.made.Add(1)
				select { // accepted, never answered
				case <-req.Context().Done():
				case <-release:
				}
				return
			}
			next.ServeHTTP(w, req)
		})
	}, func(c *infiniapay.Config) { c.Timeout = 100 * time.Millisecond })
	t.Cleanup(func() { close(release) }) // before the server's Close
	return h
}

// answering is a client of the fake with the rig's timeouts: an answer
// that takes long on a busy machine is still one.
func (h *hungInfinia) answering(t *testing.T) *infiniapay.Client {
	cfg := h.cfg
	cfg.Timeout = 5 * time.Second
	c, err := infiniapay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestADistributeAgainstAHungInfiniaStopsPlanning: Infinia stopped
// (SIGSTOP) during the distribute stage's planning accepts connections
// and never answers. Planning asks it about each seller before a revenue
// share is planned - its binding, its available share, and, when the
// platform balance is short of them all, whether Infinia holds its share
// already - outside the engine: the engine's breaker did not count those
// questions, and each took its client's 5 attempts, whatever the ones
// before had found (20 sellers: 100 requests; at real figures, 5
// attempts of 10 s for each seller of the day, a few at a time). A short
// balance whose shares got no answer carried every seller, for a person,
// as if the balance were short. Now the third question in a row that
// gets no answer stops the stage: nothing more is asked, planned or sent,
// no seller carried, and the stage ends resumable (exit 1) naming Infinia
// as not answering. The re-run once Infinia answers pays each seller
// once.
func TestADistributeAgainstAHungInfiniaStopsPlanning(t *testing.T) {
	const n, inFlight = 20, 3
	for _, c := range []struct {
		name  string
		hang  string
		short bool // the platform balance short of the shares: each asked about at Infinia
	}{
		{"binding", infiniapay.APIBindingStatus, false},
		{"available share", infiniapay.APIAvailableShare, false},
		{"shares of a short balance", infiniapay.APIRevenueShareStatus, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHungInfinia(t, c.hang)
			var cands []pipeline.PayoutCandidate
			for i := range n {
				account := fmt.Sprintf("I%02d", i)
				cands = append(cands, pipeline.PayoutCandidate{SellerID: fmt.Sprintf("S%02d", i), Currency: "USD", Payable: 100_00, Items: 1, Account: account})
				h.fake.SetBinding(account, infiniapay.StatusActive)
				h.fake.SetAvailable(account, "USD", 1_000_00)
			}
			h.fake.SetBalance("USD", n*100_00)
			if c.short {
				h.fake.SetBalance("USD", 1)
			}
			ledger := infiniapay.NewMemLedger(cands)
			run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 12, Day: 1}, Shard: pipeline.Whole}}
			stageOf := func(client *infiniapay.Client) pipeline.StageFunc {
				return infiniapay.DistributeStage(infiniapay.StageConfig{Store: ledger, API: infiniapay.StageAPIOf(client),
					Payouts: infiniapay.StageSenderOf(client, ledger), Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: inFlight}),
					FirstPoll: 10 * time.Millisecond, Poll: 10 * time.Millisecond, Wait: 10 * time.Second})
			}
			stage := stageOf(h.client)

			h.hung.Store(true)
			began := time.Now()
			_, err := stage(context.Background(), run)
			took := time.Since(began)
			h.hung.Store(false)
			t.Logf("took %s, %d requests made: %.600v", took, h.made.Load(), err)
			if limit := int64((inFlight + pipeline.NotAnsweringAfter) * clientAttempts); h.made.Load() > limit {
				t.Errorf("%d requests to a hung Infinia, want at most %d", h.made.Load(), limit)
			}
			if !errors.Is(err, pipeline.ErrStillProcessing) || pipeline.KindOf(err) != pipeline.KindFailed || !strings.Contains(err.Error(), "Infinia is not answering") ||
				strings.Contains(err.Error(), "\n") {
				t.Errorf("%v: want the resumable end in one line, naming Infinia as not answering", err)
			}
			if planned, carried := len(ledger.Effects()), ledger.Carried(); planned > 0 || len(carried) > 0 {
				t.Errorf("%d revenue shares planned, carried %v; want none planned, none carried", planned, carried)
			}

			// The re-run, Infinia answering (the balance topped up): each
			// seller paid once.
			h.fake.SetBalance("USD", n*100_00)
			if _, err := stageOf(h.answering(t))(context.Background(), run); err != nil {
				t.Fatalf("re-run: %v", err)
			}
			for _, p := range cands {
				if got := ledger.Paid()[p.SellerID+" USD"]; got != 100_00 {
					t.Errorf("%s paid %d, want 10000", p.SellerID, got)
				}
			}
			for _, e := range ledger.Effects() {
				if e.State != pipeline.EffectSucceeded || e.Sends != 1 || e.Attempt != 1 {
					t.Errorf("%s %s attempt %d after %d sends, want the first succeeded after its one send", e.Key, e.State, e.Attempt, e.Sends)
				}
			}
			if got, sent := len(h.fake.RevenueShares()), h.fake.Calls(infiniapay.APIRevenueShare); got != n || sent != n {
				t.Errorf("%d revenue shares at Infinia, %d sent; want %d, each sent once", got, sent, n)
			}
		})
	}
}

// connected is an SFTP server the upload stage connects to and uploads
// nothing to: its files were uploaded by an earlier run.
type connected struct{ uploads atomic.Int64 }

func (*connected) Connect(context.Context) error { return nil }

func (s *connected) Upload(context.Context, string, int64, string, func() (io.ReadCloser, error)) error {
	s.uploads.Add(1)
	return errors.New("not uploaded in this test")
}

func (*connected) Stat(context.Context, string) (int64, bool, error) { return 0, false, nil }

func (*connected) FinishUpload(context.Context, string, int64, string) (bool, error) {
	return false, nil
}

// TestAnUploadStageAgainstAHungInfiniaStopsAsking: Infinia stopped
// (SIGSTOP) once the trade files are uploaded accepts connections and
// never answers. The upload stage asks it the status of each file after
// its engine (awaitUploads), outside it: the engine's breaker did not
// count those questions, and each took its client's 5 attempts, whatever
// the ones before had found (20 files: 100 requests; at real figures, 5
// attempts of 10 s for each file of the day, a few at a time). Now the
// third question in a row that gets no answer stops the stage: no file is
// asked about more, each left as the ledger holds it, and the stage ends
// resumable (exit 1) naming Infinia as not answering. The re-run once
// Infinia answers finds each file accepted, none uploaded again.
func TestAnUploadStageAgainstAHungInfiniaStopsAsking(t *testing.T) {
	const n, inFlight = 20, 3
	h, ledger, sftp, stageOf := hungUploads(t, n, inFlight, 0)
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: uploadDay, Shard: pipeline.Whole}}
	stage := stageOf(h.client)

	h.hung.Store(true)
	began := time.Now()
	_, err := stage(context.Background(), run)
	took := time.Since(began)
	h.hung.Store(false)
	t.Logf("took %s, %d requests made: %.600v", took, h.made.Load(), err)
	if limit := int64((inFlight + pipeline.NotAnsweringAfter) * clientAttempts); h.made.Load() > limit {
		t.Errorf("%d requests to a hung Infinia, want at most %d", h.made.Load(), limit)
	}
	if !errors.Is(err, pipeline.ErrStillProcessing) || pipeline.KindOf(err) != pipeline.KindFailed || !strings.Contains(err.Error(), "Infinia is not answering") ||
		strings.Contains(err.Error(), "\n") {
		t.Errorf("%v: want the resumable end in one line, naming Infinia as not answering", err)
	}
	for _, f := range ledger.Files() {
		if f.Status != infiniapay.StatusReceived {
			t.Errorf("%s %s, want it left as it was", f.Name, f.Status)
		}
	}

	// The re-run, Infinia answering: each file accepted, none uploaded
	// again.
	if _, err := stageOf(h.answering(t))(context.Background(), run); err != nil {
		t.Fatalf("re-run: %v", err)
	}
	for _, f := range ledger.Files() {
		if f.Status != infiniapay.StatusSuccess {
			t.Errorf("%s %s, want accepted", f.Name, f.Status)
		}
	}
	for _, e := range ledger.Uploads() {
		if e.State != pipeline.EffectSucceeded || e.Sends != 1 {
			t.Errorf("upload %s %s after %d sends, want its one upload", e.Key, e.State, e.Sends)
		}
	}
	if sftp.uploads.Load() > 0 {
		t.Errorf("%d files uploaded again, want none", sftp.uploads.Load())
	}
}

// TestADistributeWhoseFewSharesGetNoAnswerCarriesNoSeller: Infinia stops
// answering its revenue share status query while planning asks, of the
// few sellers of a day (fewer than pipeline.NotAnsweringAfter), whether
// it holds their shares already: the platform balance short of them all,
// or a seller's available share short of what it is owed. Those
// questions got no answer, and no answer was read as "Infinia holds
// nothing": the balance short, every seller carried for a person; the
// available share short, the seller held for a person, "and Infinia's
// status ...: no answer". A question that got no answer says nothing of
// the seller, nor of the balance: the stage ends resumable (exit 1), no
// seller carried, nothing planned, and the re-run once Infinia answers
// pays each seller once. (With NotAnsweringAfter sellers or more the
// breaker stops the stage first, pipeline.ErrNotAnswering; with fewer it
// never opens.)
func TestADistributeWhoseFewSharesGetNoAnswerCarriesNoSeller(t *testing.T) {
	const inFlight = 3
	for _, c := range []struct {
		name         string
		n            int
		shortBalance bool // else each seller's available share is short
	}{
		{"short balance", pipeline.NotAnsweringAfter - 1, true},
		{"short available share", pipeline.NotAnsweringAfter - 1, false},
		// The breaker opens, on the third: the two before it got no
		// answer too, and were held.
		{"short available shares, many", 20, false},
	} {
		n := c.n
		t.Run(c.name, func(t *testing.T) {
			h := newHungInfinia(t, infiniapay.APIRevenueShareStatus)
			var cands []pipeline.PayoutCandidate
			for i := range n {
				account := fmt.Sprintf("I%02d", i)
				cands = append(cands, pipeline.PayoutCandidate{SellerID: fmt.Sprintf("S%02d", i), Currency: "USD", Payable: 100_00, Items: 1, Account: account})
				h.fake.SetBinding(account, infiniapay.StatusActive)
				h.fake.SetAvailable(account, "USD", 1_000_00)
				if !c.shortBalance {
					h.fake.SetAvailable(account, "USD", 50_00)
				}
			}
			h.fake.SetBalance("USD", int64(n)*100_00)
			if c.shortBalance {
				h.fake.SetBalance("USD", 1)
			}
			ledger := infiniapay.NewMemLedger(cands)
			run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: pipeline.Date{Year: 2026, Month: 12, Day: 1}, Shard: pipeline.Whole}}
			stageOf := func(client *infiniapay.Client) pipeline.StageFunc {
				return infiniapay.DistributeStage(infiniapay.StageConfig{Store: ledger, API: infiniapay.StageAPIOf(client),
					Payouts: infiniapay.StageSenderOf(client, ledger), Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: inFlight}),
					FirstPoll: 10 * time.Millisecond, Poll: 10 * time.Millisecond, Wait: 10 * time.Second})
			}

			h.hung.Store(true)
			_, err := stageOf(h.client)(context.Background(), run)
			h.hung.Store(false)
			t.Logf("%d requests made: %.600v", h.made.Load(), err)
			if err == nil || pipeline.KindOf(err) != pipeline.KindFailed || !errors.Is(err, pipeline.ErrNoAnswer) && !errors.Is(err, pipeline.ErrStillProcessing) {
				t.Errorf("%v: want the stage failed (exit 1) on Infinia's no answer", err)
			}
			if planned, carried := len(ledger.Effects()), ledger.Carried(); planned > 0 || len(carried) > 0 {
				t.Errorf("%d revenue shares planned, carried %v; want none planned, none carried", planned, carried)
			}

			// The re-run, Infinia answering (the balance, the available
			// shares topped up): each seller paid once.
			h.fake.SetBalance("USD", int64(n)*100_00)
			for _, p := range cands {
				h.fake.SetAvailable(p.Account, "USD", 1_000_00)
			}
			if _, err := stageOf(h.answering(t))(context.Background(), run); err != nil {
				t.Fatalf("re-run: %v", err)
			}
			for _, p := range cands {
				if got := ledger.Paid()[p.SellerID+" USD"]; got != 100_00 {
					t.Errorf("%s paid %d, want 10000", p.SellerID, got)
				}
			}
			if got, sent := len(h.fake.RevenueShares()), h.fake.Calls(infiniapay.APIRevenueShare); got != n || sent != n {
				t.Errorf("%d revenue shares at Infinia, %d sent; want %d, each sent once", got, sent, n)
			}
		})
	}
}

// uploadDay is the date of hungUploads' trade files.
var uploadDay = pipeline.Date{Year: 2026, Month: 12, Day: 1}

// hungUploads is a hung Infinia's upload status (newHungInfinia) and a
// ledger of n trade files an earlier run uploaded, Infinia holding each,
// and of refused more that Infinia refused (FAILED in the ledger: for a
// person); the upload stage over that ledger and a client is stageOf's.
func hungUploads(t *testing.T, n, inFlight, refused int) (*hungInfinia, *infiniapay.UploadLedger, *connected, func(*infiniapay.Client) pipeline.StageFunc) {
	h := newHungInfinia(t, infiniapay.APIUploadStatus)
	d := uploadDay
	built := t.TempDir()
	var files []pipeline.TradeFile
	for i := range n + refused {
		seller, account := fmt.Sprintf("S%02d", i), fmt.Sprintf("I%02d", i)
		requestNo := infiniapay.TradeRequestNo(d, seller, "USD", 1)
		name, err := h.client.TradeFileName(account, "USD", d, requestNo)
		if err != nil {
			t.Fatal(err)
		}
		path, sum, size, rows, err := h.client.WriteTradeFile(built, name, func(emit func(pipeline.TradeRow) error) error {
			return emit(pipeline.TradeRow{OrderNo: fmt.Sprintf("O%02d", i), TradeType: "SALE", ProductType: "GOODS", Currency: "USD",
				Amount: "10.00", Commission: "1.00", SellerAmount: "9.00", TradeTime: "2026-12-01T10:00:00Z"})
		})
		if err != nil {
			t.Fatal(err)
		}
		f := pipeline.TradeFile{ID: int64(i + 1), RunID: 1, Date: d, SellerID: seller, ProviderSellerID: account, Currency: "USD",
			Attempt: 1, RequestNo: requestNo, Name: name, SHA256: sum, Rows: rows, Bytes: size, SellerMinor: 9_00, Items: 1,
			Status: infiniapay.StatusReceived, Uploaded: time.Now()}
		if i >= n {
			// Refused by Infinia on an earlier run: its orders held, for a person.
			f.Status, f.Reason = infiniapay.StatusFailed, "1 rows refused, first O"+fmt.Sprint(i)+": seller not bound"
			files = append(files, f)
			continue
		}
		rf, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		err = h.fake.ReceiveFile(name, rf) // uploaded by an earlier run
		rf.Close()
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	ledger := infiniapay.NewUploadLedger(files)
	sftp := &connected{}
	stageOf := func(client *infiniapay.Client) pipeline.StageFunc {
		return infiniapay.UploadStage(infiniapay.StageConfig{Store: ledger, API: infiniapay.StageAPIOf(client), SFTP: sftp, WorkDir: t.TempDir(),
			// The files are as recorded: rebuilt to the recorded digest.
			WriteFile: func(dir, name string, _ func(func(pipeline.TradeRow) error) error) (string, string, int64, int, error) {
				for _, f := range files {
					if f.Name == name {
						return filepath.Join(dir, name), f.SHA256, f.Bytes, f.Rows, nil
					}
				}
				return "", "", 0, 0, fmt.Errorf("no trade file %s", name)
			},
			Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: inFlight}), Poll: 10 * time.Millisecond, Wait: 10 * time.Second})
	}
	return h, ledger, sftp, stageOf
}

// TestAnUploadStageAgainstAHungInfiniaStillSaysTheFilesItRefused: the
// trade files Infinia refused (for a person: their orders held) are in
// the ledger, whatever Infinia answers now. The stage that stopped once
// Infinia did not answer ended resumable (exit 1) without them: they
// were listed only once every open file had been asked about. They are
// said with it now, as the ledger holds them.
func TestAnUploadStageAgainstAHungInfiniaStillSaysTheFilesItRefused(t *testing.T) {
	const n, inFlight, refused = 20, 3, 2
	h, _, _, stageOf := hungUploads(t, n, inFlight, refused)
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: uploadDay, Shard: pipeline.Whole}}
	h.hung.Store(true)
	summary, err := stageOf(h.client)(context.Background(), run)
	h.hung.Store(false)
	t.Logf("%s: %v", summary, err)
	if !errors.Is(err, pipeline.ErrStillProcessing) || pipeline.KindOf(err) != pipeline.KindFailed || !strings.Contains(err.Error(), "Infinia is not answering") {
		t.Errorf("%v: want the resumable end (exit 1) naming Infinia as not answering", err)
	}
	if err == nil || !strings.Contains(err.Error(), "2 problem(s)") || !strings.Contains(err.Error(), "refused by Infinia: 1 rows refused, first O20") ||
		!strings.Contains(summary, "2 refused by Infinia") {
		t.Errorf("%q, %v: want the 2 files Infinia refused said, for a person", summary, err)
	}
}
