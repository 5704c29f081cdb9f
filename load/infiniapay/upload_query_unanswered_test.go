package infiniapay_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/pipeline"
)

// landsLate is Infinia and its SFTP server for one trade file whose
// upload's rename into place was asked for on a connection since lost,
// the rename never done: the first end of that rename (FinishUpload)
// moves the file into place on the server, and every connection is lost
// before its answer; from then on Infinia knows the file, and accepts it.
type landsLate struct {
	mu       sync.Mutex
	landed   bool
	finishes int
	uploads  int
}

func (l *landsLate) UploadStatus(context.Context, pipeline.TradeFile) (string, string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.landed {
		return "", "", fmt.Errorf("%w: BIZ-404 requestNo not found", pipeline.ErrNotFound)
	}
	return infiniapay.StatusSuccess, "", nil
}

func (*landsLate) ErrorRows(context.Context, string) ([]pipeline.ProviderReject, error) {
	return nil, errors.New("no error file in this test")
}
func (*landsLate) BindingStatus(context.Context, string, string) (string, error) {
	return "", errors.New("not asked in this test")
}
func (*landsLate) Balance(context.Context, string, pipeline.Currency) (int64, error) {
	return 0, errors.New("not asked in this test")
}
func (*landsLate) AvailableShare(context.Context, string, string, pipeline.Currency) (int64, error) {
	return 0, errors.New("not asked in this test")
}

func (*landsLate) Connect(context.Context) error { return nil }
func (l *landsLate) Upload(context.Context, string, int64, string, func() (io.ReadCloser, error)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.uploads++
	return errors.New("not uploaded in this test")
}
func (l *landsLate) Stat(context.Context, string) (int64, bool, error) {
	return 0, false, nil // Infinia takes what lands: never seen under its final name
}
func (l *landsLate) FinishUpload(context.Context, string, int64, string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.finishes++
	if l.finishes == 1 {
		l.landed = true // renamed on the server; the answer lost with every connection
		return false, pipeline.NoAnswer(errors.New("sftp 127.0.0.1:2222: 3 connections lost or refused: connection lost"))
	}
	return false, nil // the temporary file is gone, and Infinia took the file
}

// TestAnUploadWhoseQuestionGotNoAnswerIsAskedAgainAndEndsFinal: a trade
// file's upload is unknown (its rename into place asked for on an SFTP
// connection since lost: chaos trial, seed 20261207, night 17). The
// stage's first question about it gets no answer (the end of its rename
// lost every connection, having moved the file into place): the engine
// keeps the upload pending and asks again. The stage's Error handler let
// go of the file all the same, so every later question of the run failed
// ("no trade file for upload"), the upload was not among the files left
// out of the status questions, and the status questions found the file
// accepted: the trade file was recorded SUCCESS, its orders paid, and its
// upload left unknown for ever (the feed reads open files only): the
// date's next run ended 4 (or 0) with an upload in flight. The second
// question must find the file accepted and the upload succeeded, once.
func TestAnUploadWhoseQuestionGotNoAnswerIsAskedAgainAndEndsFinal(t *testing.T) {
	h := newHungInfinia(t) // its client names and writes the file
	d := uploadDay
	built := t.TempDir()
	seller, account := "S00", "I00"
	requestNo := infiniapay.TradeRequestNo(d, seller, "USD", 1)
	name, err := h.client.TradeFileName(account, "USD", d, requestNo)
	if err != nil {
		t.Fatal(err)
	}
	_, sum, size, rows, err := h.client.WriteTradeFile(built, name, func(emit func(pipeline.TradeRow) error) error {
		return emit(pipeline.TradeRow{OrderNo: "O00", TradeType: "SALE", ProductType: "GOODS", Currency: "USD",
			Amount: "10.00", Commission: "1.00", SellerAmount: "9.00", TradeTime: "2026-12-01T10:00:00Z"})
	})
	if err != nil {
		t.Fatal(err)
	}
	f := pipeline.TradeFile{ID: 1, RunID: 1, Date: d, SellerID: seller, ProviderSellerID: account, Currency: "USD",
		Attempt: 1, RequestNo: requestNo, Name: name, SHA256: sum, Rows: rows, Bytes: size, SellerMinor: 9_00, Items: 1}
	ledger := infiniapay.NewUploadLedger([]pipeline.TradeFile{f})
	sent := "sftp 127.0.0.1:2222: 3 connections lost or refused: ... rename upload/." + name + ".22831128-3.part to upload/" + name +
		": connection lost; the rename into place was asked for on a connection since lost: " + pipeline.ErrDeliveryUnknown.Error() +
		" (its temporary file: ." + name + ".22831128-3.part)"
	if err := ledger.RecordOutcome(context.Background(), 1, pipeline.EffectUnknown, "", sent); err != nil {
		t.Fatal(err)
	}
	infinia := &landsLate{}
	stage := infiniapay.UploadStage(infiniapay.StageConfig{Store: ledger, API: infinia, SFTP: infinia, WorkDir: t.TempDir(),
		WriteFile: func(dir, n string, _ func(func(pipeline.TradeRow) error) error) (string, string, int64, int, error) {
			data, err := os.ReadFile(filepath.Join(built, n))
			if err != nil {
				return "", "", 0, 0, err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return "", "", 0, 0, err
			}
			return filepath.Join(dir, n), sum, size, rows, os.WriteFile(filepath.Join(dir, n), data, 0o600)
		},
		Poll: 10 * time.Millisecond, Wait: 2 * time.Second})
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: d, Shard: pipeline.Whole}}
	summary, err := stage(context.Background(), run)
	t.Logf("%s: %v", summary, err)
	u, file := ledger.Uploads()[0], ledger.Files()[0]
	if u.State != pipeline.EffectSucceeded {
		t.Errorf("upload %s (%q), its file %q: want succeeded, as Infinia accepted the file", u.State, u.LastError, file.Status)
	}
	if file.Status == infiniapay.StatusSuccess && !u.State.Final() {
		t.Errorf("trade file recorded %s while its upload is %s: no later run asks about the upload", file.Status, u.State)
	}
	if err != nil {
		t.Errorf("stage ended %v, want done: the file was accepted", err)
	}
	if infinia.uploads != 0 {
		t.Errorf("uploaded %d times: an upload whose delivery is unknown is never sent again", infinia.uploads)
	}
}
