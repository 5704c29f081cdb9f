package infiniapay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// takenFile is Infinia's SFTP server as load.SFTPSession shows it when the
// answer to the rename into place was lost with the connection and Infinia
// took the file at once (moved it out of upload/): the first Upload
// returns the session's errRenameUnknown, and the file is not under its
// final name any more. Each Upload that returns puts a copy at Infinia.
type takenFile struct{ delivered int }

func (f *takenFile) Connect(context.Context) error { return nil }
func (f *takenFile) Upload(_ context.Context, name string, _ int64, _ string, _ func() (io.ReadCloser, error)) error {
	f.delivered++
	if f.delivered == 1 {
		return fmt.Errorf("upload %s to sftp:22: the rename into place was asked for on a connection since lost: %w, and neither .%s.part nor the file is there now: taken by the server, or removed",
			name, pipeline.ErrDeliveryUnknown, name)
	}
	return nil
}
func (f *takenFile) Stat(context.Context, string) (int64, bool, error) { return 0, false, nil }
func (f *takenFile) FinishUpload(context.Context, string, int64, string) (bool, error) {
	return false, nil // taken: no temporary file left
}

// notYetKnown is Infinia's status API a few seconds after it took a file:
// it does not know the requestNo yet (checkUpload waits LostAfter, a day
// by default, on exactly this answer).
type notYetKnown struct{ stageAPI }

func (notYetKnown) UploadStatus(context.Context, pipeline.TradeFile) (string, string, error) {
	return "", "", fmt.Errorf("%w: BIZ-404", pipeline.ErrNotFound)
}

type oneEffect struct{ e pipeline.Effect }

func (s *oneEffect) PlanEffect(_ context.Context, e pipeline.Effect) (pipeline.Effect, error) {
	return e, nil
}
func (s *oneEffect) MarkSent(context.Context, int64) error { s.e.Sends++; return nil }
func (s *oneEffect) RecordOutcome(_ context.Context, _ int64, st pipeline.EffectState, _, lastErr string) error {
	s.e.State, s.e.LastError = st, lastErr
	return nil
}

// TestAnUploadWhoseRenameIsUnknownIsNotSentAgain: the SFTP session says
// its delivery is unknown ("for the server's word to settle, never a
// second upload"); the engine records the send's error as unknown, and the
// first query a poll later found Infinia's status API not knowing the
// file yet and the file gone from upload/ (Infinia took it): "never
// arrived", and the engine sent the file again (found by a review). It is
// still pending now.
func TestAnUploadWhoseRenameIsUnknownIsNotSentAgain(t *testing.T) {
	t.Parallel()
	sftp := &takenFile{}
	up, f := oneUpload(t, notYetKnown{}, sftp, nil)
	store := &oneEffect{}
	e := pipeline.Effect{ID: 1, RunID: 1, Kind: KindUpload, Subject: "U/1", Attempt: 1, Key: f.RequestNo, State: pipeline.EffectPlanned}
	// The engine's first wave: sent; the session's error makes it unknown.
	e, err := pipeline.ApplyEffect(context.Background(), store, up, e)
	if err != nil || e.State != pipeline.EffectUnknown {
		t.Fatalf("first send: %v, %s", err, e.State)
	}
	// The engine's next wave (a poll later): asked about.
	e, err = pipeline.ApplyEffect(context.Background(), store, up, e)
	if sftp.delivered != 1 {
		t.Fatalf("the trade file was uploaded %d times (effect %s, sends %d, err %v): after errRenameUnknown, a status query that does not know the file yet and a file gone from upload/ sent it again", sftp.delivered, e.State, e.Sends, err)
	}
}

// TestAnUploadWhoseDeliveryStaysUnknownIsForAPerson: the pending answer
// wiped the mark (its reason, empty, became the effect's last error), and
// the next question sent the file again (found by a review); the mark is
// kept, with when the delivery was first found unknown. Past LostAfter,
// Infinia still not knowing the file is for a person (an answer that
// cannot be used: held, exit 4, asked again by the next run), never a
// second upload.
func TestAnUploadWhoseDeliveryStaysUnknownIsForAPerson(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	sftp := &takenFile{}
	up, f := oneUpload(t, notYetKnown{}, sftp, func() time.Time { return now })
	store := &oneEffect{}
	e := pipeline.Effect{ID: 1, RunID: 1, Kind: KindUpload, Subject: "U/1", Attempt: 1, Key: f.RequestNo, State: pipeline.EffectPlanned}
	var err error
	for i := range 4 { // a send, then three waves of questions
		if e, err = pipeline.ApplyEffect(context.Background(), store, up, e); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
	if sftp.delivered != 1 || !pipeline.IsDeliveryUnknown(e.LastError) || !strings.Contains(e.LastError, "since 2026-11-25T03:00:00Z") {
		t.Fatalf("uploaded %d times (effect %s, last error %q): want once, the mark kept with its time", sftp.delivered, e.State, e.LastError)
	}
	now = now.Add(up.c.LostAfter + time.Minute)
	_, err = pipeline.ApplyEffect(context.Background(), store, up, e)
	if !errors.Is(err, ErrAnswer) || !strings.Contains(err.Error(), "ask Infinia") || sftp.delivered != 1 {
		t.Fatalf("a day later: %v, uploaded %d times; want it for a person, never uploaded again", err, sftp.delivered)
	}
}

// strandedFile is Infinia's SFTP server when the answer to the rename
// into place was lost with the upload call's last connection, and the
// rename never happened: the temporary file the error names is still
// there, and FinishUpload renames it into place.
type strandedFile struct {
	takenFile
	finished []string // the last errors FinishUpload was given
}

func (f *strandedFile) FinishUpload(_ context.Context, _ string, _ int64, lastError string) (bool, error) {
	f.finished = append(f.finished, lastError)
	return true, nil
}

// TestAnUploadWhoseRenameNeverHappenedIsFinishedByTheNextQuestion: a
// stranded upload stayed unknown on every run until LostAfter, then went
// to a person, though its temporary file was whole on the server (found
// by the fault matrix in CI). The question that finds Infinia not
// knowing the file and no file under its final name has the session end
// the rename, from the upload's error: the upload succeeded, sent once.
func TestAnUploadWhoseRenameNeverHappenedIsFinishedByTheNextQuestion(t *testing.T) {
	t.Parallel()
	sftp := &strandedFile{}
	up, f := oneUpload(t, notYetKnown{}, sftp, nil)
	store := &oneEffect{}
	e := pipeline.Effect{ID: 1, RunID: 1, Kind: KindUpload, Subject: "U/1", Attempt: 1, Key: f.RequestNo, State: pipeline.EffectPlanned}
	e, err := pipeline.ApplyEffect(context.Background(), store, up, e)
	if err != nil || e.State != pipeline.EffectUnknown {
		t.Fatalf("first send: %v, %s", err, e.State)
	}
	sent := e.LastError
	e, err = pipeline.ApplyEffect(context.Background(), store, up, e)
	if err != nil || e.State != pipeline.EffectSucceeded || e.ProviderRef != f.Name || sftp.delivered != 1 {
		t.Fatalf("asked: %v, %s, ref %q, uploaded %d times; want it finished, uploaded once", err, e.State, e.ProviderRef, sftp.delivered)
	}
	if len(sftp.finished) != 1 || sftp.finished[0] != sent {
		t.Fatalf("FinishUpload was given %q, want the upload's error %q", sftp.finished, sent)
	}
}

// refusesToSay is Infinia's status API answering a requestNo it never
// received with a refusal of its own (a code that is not one of
// NotFoundCodes: "not found" has no published code), or with an answer
// that cannot be used.
type refusesToSay struct {
	stageAPI
	err error
}

func (a refusesToSay) UploadStatus(context.Context, pipeline.TradeFile) (string, string, error) {
	return "", "", a.err
}

// TestAStrandedUploadIsFinishedWhateverInfiniaSaysOfIt: the rename into
// place was asked for on a connection since lost and never happened (its
// temporary file is whole on the server), and Infinia's status API
// answers about the requestNo it never received with a refusal (SYS-002:
// "not found" has no published code) or an answer that cannot be used.
// The question returned that answer before FinishUpload was asked, so the
// upload was held for a person on every run (and, once the server
// cleaned up its temporary files, waited until --infinia-lost-after),
// though the temporary file proved the rename never happened. Ending it
// sends nothing again: it is this upload's own rename.
func TestAStrandedUploadIsFinishedWhateverInfiniaSaysOfIt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"refused", fmt.Errorf("%w: infiniapay trade-details/query TDU-1: SYS-002 invalid parameter", pipeline.ErrRefused)},
		{"unusable", fmt.Errorf("%w: infiniapay trade-details/query TDU-1: status %q", ErrAnswer, "WHATEVER")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sftp := &strandedFile{}
			up, f := oneUpload(t, refusesToSay{err: tc.err}, sftp, nil)
			store := &oneEffect{}
			e := pipeline.Effect{ID: 1, RunID: 1, Kind: KindUpload, Subject: "U/1", Attempt: 1, Key: f.RequestNo, State: pipeline.EffectPlanned}
			e, err := pipeline.ApplyEffect(context.Background(), store, up, e)
			if err != nil || e.State != pipeline.EffectUnknown {
				t.Fatalf("first send: %v, %s", err, e.State)
			}
			e, err = pipeline.ApplyEffect(context.Background(), store, up, e)
			if err != nil || e.State != pipeline.EffectSucceeded || e.ProviderRef != f.Name || sftp.delivered != 1 || len(sftp.finished) != 1 {
				t.Fatalf("asked: %v, %s, ref %q, uploaded %d times, finished %d times; want it finished, uploaded once", err, e.State, e.ProviderRef, sftp.delivered, len(sftp.finished))
			}
		})
	}
}

// failingFinish is a stranded upload whose server cannot be reached to
// end it now.
type failingFinish struct{ takenFile }

func (f *failingFinish) FinishUpload(context.Context, string, int64, string) (bool, error) {
	return false, errors.New("sftp sftp:22: 3 connections lost or refused")
}

// TestAStrandedUploadInfiniaRefusesToSayOfStaysForAPerson: when the
// session cannot end the rename now, Infinia's refusal still says what
// the upload is (for a person, never sent again), the session's error
// beside it.
func TestAStrandedUploadInfiniaRefusesToSayOfStaysForAPerson(t *testing.T) {
	t.Parallel()
	sftp := &failingFinish{}
	refusal := fmt.Errorf("%w: infiniapay trade-details/query TDU-1: SYS-002 invalid parameter", pipeline.ErrRefused)
	up, f := oneUpload(t, refusesToSay{err: refusal}, sftp, nil)
	store := &oneEffect{}
	e := pipeline.Effect{ID: 1, RunID: 1, Kind: KindUpload, Subject: "U/1", Attempt: 1, Key: f.RequestNo, State: pipeline.EffectPlanned}
	e, _ = pipeline.ApplyEffect(context.Background(), store, up, e)
	e, err := pipeline.ApplyEffect(context.Background(), store, up, e)
	if !pipeline.SubjectOnly(err) || !strings.Contains(err.Error(), "connections lost") || e.State != pipeline.EffectUnknown || sftp.delivered != 1 {
		t.Fatalf("asked: %v, %s, uploaded %d times; want Infinia's refusal and the session's error, the upload unknown, sent once", err, e.State, sftp.delivered)
	}
}

// oneUpload is the upload stage's sender of one trade file of 100 bytes
// (requestNo TDU-1) over api and sftp, on the clock now (nil: the
// default).
func oneUpload(t testing.TB, api API, sftp FileUploader, now func() time.Time) (*uploads, pipeline.TradeFile) {
	c := &StageConfig{API: api, SFTP: sftp, WorkDir: t.TempDir(), Now: now}
	c.defaults()
	f := pipeline.TradeFile{ID: 1, RequestNo: "TDU-1", Name: "TD_1_S1_USD_20250101_TDU-1.csv", Bytes: 100, SHA256: strings.Repeat("a", 64)}
	// In the work directory, of its size, as the stage's planning leaves
	// it (ensureTradeFile): Prepare sends it as it is.
	path := filepath.Join(c.WorkDir, f.Date.String(), f.Name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, make([]byte, f.Bytes), 0o600); err != nil {
		t.Fatal(err)
	}
	return &uploads{c: c, run: &pipeline.Run{ID: 1}, files: map[string]*uploading{f.RequestNo: {file: f}}}, f
}
