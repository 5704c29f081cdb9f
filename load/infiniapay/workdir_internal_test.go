package infiniapay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// checkingUploader keeps what it is sent and, as load.SFTP.Upload does,
// refuses a source that is not size bytes of the digest given.
type checkingUploader struct {
	FileUploader
	got map[string][]byte
}

func (u *checkingUploader) Upload(_ context.Context, name string, size int64, sum string, open func() (io.ReadCloser, error)) error {
	src, err := open()
	if err != nil {
		return fmt.Errorf("open source: %w", err)
	}
	defer src.Close()
	b, err := io.ReadAll(src)
	if err != nil {
		return err
	}
	if h := sha256.Sum256(b); int64(len(b)) != size || hex.EncodeToString(h[:]) != sum {
		return fmt.Errorf("the source gave %d bytes of sha256 %x, want %d of %s", len(b), h, size, sum)
	}
	u.got[name] = b
	return nil
}

// TestAnUploadSendsItsFileAsRecordedWhateverBefellTheWorkDirectory: a
// trade file checked when its upload was planned, then cut short or gone
// (the work directory emptied or removed) before it was sent, was sent as
// it was: the upload refused it (not the recorded size), it was recorded
// sent, its outcome unknown, and sent the same way again until the run's
// wait was over. It is rebuilt from the ledger before it is sent, and
// uploaded whole, as recorded; rebuilt to other bytes (the ledger moved),
// nothing is sent.
func TestAnUploadSendsItsFileAsRecordedWhateverBefellTheWorkDirectory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	split := func(no string, share int64) pipeline.Split {
		return pipeline.Split{Order: pipeline.Order{OrderNo: no, SellerID: "S1", Channel: "infinia", Currency: "USD", Amount: share + 1, PaidAt: at, ConfirmedAt: at},
			Rule: "r", Commission: 1, SellerShare: share}
	}
	store := &tradeStore{items: []pipeline.Split{split("O1", 900), split("O2", 450)}}
	up := &checkingUploader{got: map[string][]byte{}}
	c := &StageConfig{Store: store, SFTP: up, WorkDir: t.TempDir(), Channels: []pipeline.Channel{"infinia"},
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
	whole, err := os.ReadFile(filepath.Join(c.WorkDir, run.Key.Date.String(), recorded.Name))
	if err != nil {
		t.Fatal(err)
	}
	e := pipeline.Effect{ID: 1, Kind: KindUpload, Key: recorded.RequestNo, State: pipeline.EffectPlanned}
	send := func() error {
		u := &uploads{c: c, run: run, files: map[string]*uploading{e.Key: {file: recorded}}}
		var sender pipeline.EffectSender = u
		if p, ok := sender.(pipeline.EffectPreparer); ok {
			var err error
			if sender, err = p.Prepare(ctx, e); err != nil {
				return err
			}
		}
		_, err := sender.Send(ctx, e)
		return err
	}
	path := filepath.Join(c.WorkDir, run.Key.Date.String(), recorded.Name)
	for what, befall := range map[string]func() error{
		"cut short":         func() error { return os.Truncate(path, recorded.Bytes/2) },
		"gone":              func() error { return os.Remove(path) },
		"directory removed": func() error { return os.RemoveAll(c.WorkDir) },
	} {
		clear(up.got)
		if err := befall(); err != nil {
			t.Fatal(err)
		}
		if err := send(); err != nil || !bytes.Equal(up.got[recorded.Name], whole) {
			t.Errorf("%s: sent %d bytes (%v), want the %d recorded", what, len(up.got[recorded.Name]), err, len(whole))
		}
	}
	// The ledger moved under the recorded file: nothing is sent.
	clear(up.got)
	store.items[1].SellerShare = 451
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := send(); err == nil || len(up.got) != 0 {
		t.Errorf("rebuilt to other bytes: sent %d files (%v), want none and an error", len(up.got), err)
	}
}

// TestTradeFilesAndTheirDirectoriesAreSettlesAlone: a trade file holds
// what each seller is paid, and its name the seller's Infinia id: the
// work directory and the date's directory in it are made for settle's
// user alone (WorkDirMode), as the file is (os.CreateTemp's 0600).
// They were 0755: every user of the machine listed the day's sellers.
func TestTradeFilesAndTheirDirectoriesAreSettlesAlone(t *testing.T) {
	t.Parallel()
	work := filepath.Join(t.TempDir(), "work")
	dir := filepath.Join(work, "2026-11-23")
	path, _, _, _, err := DefaultLayout().write(dir, "TD_P_S1_USD_20261123_TDU-1.csv", DefaultCurrencies(), func(emit func(pipeline.TradeRow) error) error {
		return emit(pipeline.TradeRow{OrderNo: "O1", TradeType: "SALE", ProductType: "GOODS", Currency: "USD",
			Amount: "10.00", Commission: "1.00", SellerAmount: "9.00", TradeTime: "2026-11-23T10:00:00Z"})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{work, dir, path} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v, want no access for group and others", p, fi.Mode().Perm())
		}
	}
}
