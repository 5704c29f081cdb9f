package load

// The watch on a stuck server and the end of a rename a lost connection
// asked for, as a second review tried them: uploads sharing a slow link,
// a temporary file removed while its rename was lost, a rename of the
// lost connection arriving late.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/sftptest"
)

// TestUploadsSharingASlowLinkAreNotCut: a first bound of an upload,
// OpTimeout plus its size at a minimum rate, assumed the file alone got
// that rate, but the upload stage puts 32 files at once on one connection,
// which share the link: every one was cut, the cut closed the shared
// connection, and on the new one all started over together and were cut
// again (found by a review). The watch goes by the server's answers on the
// connection: 8 files of 512 KiB sharing a 1 MiB/s link, OpTimeout 0.5 s,
// take about 4 s together, on one connection.
func TestUploadsSharingASlowLinkAreNotCut(t *testing.T) {
	t.Parallel()
	p := startSFTPTest(t, nil)
	_, s, dials := behindProxy(t, p, 1<<20, func(cfg *SFTPConfig) { cfg.OpTimeout = 500 * time.Millisecond })
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := randomContent(512<<10, uint64(100+i))
			errs[i] = s.Upload(ctx, fmt.Sprintf("TD_%d.csv", i), int64(len(c)), c.sha(), c.open)
		}()
	}
	wg.Wait()
	var failed []string
	for i, err := range errs {
		if err != nil {
			failed = append(failed, fmt.Sprintf("TD_%d.csv: %v", i, err))
		}
	}
	if len(failed) > 0 || dials.Load() != 1 {
		t.Fatalf("%d of %d uploads sharing the link failed after %s, %d connections dialled (want all on 1). First: %v",
			len(failed), n, time.Since(begin).Round(time.Second), dials.Load(), failed)
	}
}

// TestATemporaryFileGoneWithoutTheRenameIsNotLanded: a first fix took the
// temporary file being gone as the rename having taken place. Here the
// rename request never reaches the server (the connection dies with it in
// the pipe), and the server removes the partial upload its dead session
// left (as ingest servers that clean up abandoned uploads do): Upload said
// done, and nothing was delivered (found by a review). Its outcome is now
// unknown (errRenameUnknown), for the server's word to settle.
func TestATemporaryFileGoneWithoutTheRenameIsNotLanded(t *testing.T) {
	t.Parallel()
	// Stat calls: 1 the directory check at connect, 2 the upload's stat of
	// its temporary file, answered after 1 s.
	faults := fault.New(1, fault.Rule{Endpoint: sftptest.StatEndpoint, Kind: fault.Latency, Calls: []int{2}, Delay: time.Second})
	p := startSFTPTest(t, faults)
	m, s, _ := behindProxy(t, p, 0, func(cfg *SFTPConfig) { cfg.OpTimeout = 3 * time.Second })
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := randomContent(5000, 14)
	tmp := func() string { return tempOf(p.upload, "TD_gone.csv") }
	go func() {
		// Once the stat of the whole temporary file has arrived (answered 1 s later):
		// from now on nothing the client sends on this connection arrives
		// (the rename is lost with it); the server drops the partial upload.
		statAsked(faults, 2)
		m.muteAll()
		// After the stat's answer (1 s; and the rename sent into the void),
		// before the upload's bound (3 s after it) closes the connection.
		time.Sleep(1500 * time.Millisecond)
		_ = os.Remove(tmp())
	}()
	err := s.Upload(context.Background(), "TD_gone.csv", int64(len(c)), c.sha(), c.open)
	renames := p.renamed()["upload/TD_gone.csv"]
	_, statErr := os.Stat(filepath.Join(p.upload, "TD_gone.csv"))
	if !errors.Is(err, errRenameUnknown) || len(renames) != 0 {
		t.Fatalf("Upload: %v, %d renames (final name: %v); want the outcome unknown and no rename", err, len(renames), statErr)
	}
}

// TestALateRenameOfTheOldConnectionDoesNotDeliverTwice: the old
// connection's rename can still be on its way after a new connection
// looked: a TCP connection closed by abort() still sends what its kernel
// buffer holds. A first fix then uploaded again into the same .NAME.part,
// and the old rename, landing late, moved the file being rewritten into
// place (found by a review). Now the new connection renames the old
// attempt's temporary file itself, and a late old rename finds nothing to
// move. Here the client's bytes of the old connection are held and
// delivered once the new connection has ended the rename.
func TestALateRenameOfTheOldConnectionDoesNotDeliverTwice(t *testing.T) {
	t.Parallel()
	// Stat calls: 1 the directory check at connect, 2 the upload's stat of
	// its temporary file, answered after 1 s.
	faults := fault.New(1, fault.Rule{Endpoint: sftptest.StatEndpoint, Kind: fault.Latency, Calls: []int{2}, Delay: time.Second})
	p := startSFTPTest(t, faults)
	h, s, _ := behindProxy(t, p, 512<<10, func(cfg *SFTPConfig) { cfg.OpTimeout = 1500 * time.Millisecond })
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := randomContent(1<<20, 15)
	tmp := func() string { return tempOf(p.upload, "TD_late.csv") }
	go func() {
		statAsked(faults, 2) // the stat is being answered (1 s): the rename will be held
		h.hold()
		// The new connection ends the rename (the temporary file moved).
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if _, err := os.Stat(tmp()); errors.Is(err, os.ErrNotExist) {
				break
			}
		}
		h.release()
	}()
	err := s.Upload(context.Background(), "TD_late.csv", int64(len(c)), c.sha(), c.open)
	time.Sleep(500 * time.Millisecond)
	renames := p.renamed()["upload/TD_late.csv"]
	if err != nil || len(renames) != 1 || renames[0] != c.sha() {
		t.Logf("Upload: %v", err)
		t.Fatalf("the file was renamed into place %d times, with sha256 %v (want once, %s): the old connection's rename landed after landed() looked", len(renames), renames, c.sha())
	}
}
