package infiniapay_test

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

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/pipeline"
)

// gone is Infinia's SFTP server after an upload whose rename into place
// was asked for on a connection since lost: neither its temporary file
// nor the file under its final name is there (FinishUpload cannot end
// it), and no upload reaches it.
type gone struct{ uploads int }

func (*gone) Connect(context.Context) error { return nil }
func (g *gone) Upload(context.Context, string, int64, string, func() (io.ReadCloser, error)) error {
	g.uploads++
	return errors.New("not uploaded in this test")
}
func (*gone) Stat(context.Context, string) (int64, bool, error) { return 0, false, nil }
func (*gone) FinishUpload(context.Context, string, int64, string) (bool, error) {
	return false, nil
}

// TestAnUploadOfUnknownDeliveryBesideAProblemForAPersonEndsResumable: a
// trade file's rename into place was asked for on an SFTP connection
// since lost (chaos trial, seed 20261207, night 17), its temporary file
// is gone and Infinia does not know its requestNo yet, while another
// file of the run was refused by Infinia (for a person). The stage must
// end resumable (exit 1: the CronJob's retry asks Infinia again), naming
// the refused file too, and never upload the file a second time. Past
// --infinia-lost-after the same upload is for a person (exit 4), as
// documented, still never uploaded again.
func TestAnUploadOfUnknownDeliveryBesideAProblemForAPersonEndsResumable(t *testing.T) {
	h := newHungInfinia(t) // nothing hangs: an Infinia that answers
	d := uploadDay
	built := t.TempDir()
	var files []pipeline.TradeFile
	for i := range 2 {
		seller, account := fmt.Sprintf("S%02d", i), fmt.Sprintf("I%02d", i)
		requestNo := infiniapay.TradeRequestNo(d, seller, "USD", 1)
		name, err := h.client.TradeFileName(account, "USD", d, requestNo)
		if err != nil {
			t.Fatal(err)
		}
		_, sum, size, rows, err := h.client.WriteTradeFile(built, name, func(emit func(pipeline.TradeRow) error) error {
			return emit(pipeline.TradeRow{OrderNo: fmt.Sprintf("O%02d", i), TradeType: "SALE", ProductType: "GOODS", Currency: "USD",
				Amount: "10.00", Commission: "1.00", SellerAmount: "9.00", TradeTime: "2026-12-01T10:00:00Z"})
		})
		if err != nil {
			t.Fatal(err)
		}
		f := pipeline.TradeFile{ID: int64(i + 1), RunID: 1, Date: d, SellerID: seller, ProviderSellerID: account, Currency: "USD",
			Attempt: 1, RequestNo: requestNo, Name: name, SHA256: sum, Rows: rows, Bytes: size, SellerMinor: 9_00, Items: 1}
		if i == 1 {
			// Refused by Infinia on an earlier run: its orders held, for a person.
			f.Status, f.Reason, f.Uploaded = infiniapay.StatusFailed, "1 rows refused, first O01: seller not bound", time.Now()
		}
		files = append(files, f)
	}
	for _, tc := range []struct {
		name     string
		since    string // the mark of a delivery found unknown before ("": this run finds it)
		wantCode int
	}{
		{"Infinia does not know it yet", "", 1},
		{"past --infinia-lost-after", " (delivery unknown since " + time.Now().Add(-25*time.Hour).UTC().Format(time.RFC3339) + ")", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ledger := infiniapay.NewUploadLedger(files)
			sent := "sftp 127.0.0.1:47243: 3 connections lost or refused: ... rename upload/." + files[0].Name + ".22831128-3.part to upload/" + files[0].Name +
				": connection lost; the rename into place was asked for on a connection since lost: " + pipeline.ErrDeliveryUnknown.Error() +
				" (its temporary file: ." + files[0].Name + ".22831128-3.part)"
			if err := ledger.RecordOutcome(context.Background(), 1, pipeline.EffectUnknown, "", sent+tc.since); err != nil {
				t.Fatal(err)
			}
			sftp := &gone{}
			stage := infiniapay.UploadStage(infiniapay.StageConfig{Store: ledger, API: infiniapay.StageAPIOf(h.answering(t)), SFTP: sftp, WorkDir: t.TempDir(),
				WriteFile: func(dir, name string, _ func(func(pipeline.TradeRow) error) error) (string, string, int64, int, error) {
					for _, f := range files {
						if f.Name == name {
							data, err := os.ReadFile(filepath.Join(built, name))
							if err != nil {
								return "", "", 0, 0, err
							}
							if err := os.MkdirAll(dir, 0o755); err != nil {
								return "", "", 0, 0, err
							}
							return filepath.Join(dir, name), f.SHA256, f.Bytes, f.Rows, os.WriteFile(filepath.Join(dir, name), data, 0o600)
						}
					}
					return "", "", 0, 0, fmt.Errorf("no trade file %s", name)
				},
				Poll: 10 * time.Millisecond, Wait: 300 * time.Millisecond})
			run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: d, Shard: pipeline.Whole}}
			summary, err := stage(context.Background(), run)
			t.Logf("%s: %v", summary, err)
			if code := pipeline.KindOf(err).ExitCode(); err == nil || code != tc.wantCode {
				t.Errorf("stage ended %v (exit %d), want exit %d", err, code, tc.wantCode)
			}
			if err == nil || !strings.Contains(err.Error(), "seller not bound") {
				t.Errorf("%v: want the refused file named for a person", err)
			}
			if sftp.uploads != 0 {
				t.Errorf("uploaded %d times: a file whose delivery is unknown is never uploaded again", sftp.uploads)
			}
			if u := ledger.Uploads()[0]; u.State.Final() || !pipeline.IsDeliveryUnknown(u.LastError) {
				t.Errorf("upload %s %q: want it still open, its mark kept", u.State, u.LastError)
			}
		})
	}
}
