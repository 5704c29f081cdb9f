package load

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/sftptest"
	"github.com/settlekit/settle/pipeline"
)

// TestAnUploadGivenUpWithItsRenameAskedIsFinishedLater: the rename into
// place was asked for on the call's last connection, and lost with it (the
// fault matrix in CI lost three connections in one call, the rename asked
// on the third). Upload gives up with the delivery unknown and names the
// temporary file; the file never landed, and its temporary file is there,
// whole. Before, nothing ever ended it: every later run found Infinia not
// knowing the file and waited on it until --infinia-lost-after. Now
// FinishUpload renames it into place once; the old connection's rename,
// arriving late, finds nothing to move; a second FinishUpload finds the
// file landed and renames nothing.
func TestAnUploadGivenUpWithItsRenameAskedIsFinishedLater(t *testing.T) {
	t.Parallel()
	// Stat calls: 1 the directory check at connect, 2 the upload's stat of
	// its temporary file, answered after 1 s.
	faults := fault.New(1, fault.Rule{Endpoint: sftptest.StatEndpoint, Kind: fault.Latency, Calls: []int{2}, Delay: time.Second})
	p := startSFTPTest(t, faults)
	h, s, _ := behindProxy(t, p, 0, func(cfg *SFTPConfig) { cfg.OpTimeout = 1500 * time.Millisecond })
	s.Attempts = 1 // the rename is asked on the call's last connection
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	const name = "TD_finish.csv"
	c := randomContent(5000, 31)
	go func() {
		statAsked(faults, 2) // the stat is being answered (1 s): the rename will be held
		h.hold()
	}()
	err := s.Upload(context.Background(), name, int64(len(c)), c.sha(), c.open)
	if !errors.Is(err, pipeline.ErrDeliveryUnknown) || tempOf(p.upload, name) == "" {
		t.Fatalf("Upload: %v; want its delivery unknown, the temporary file left", err)
	}
	if !strings.Contains(err.Error(), filepath.Base(tempOf(p.upload, name))) {
		t.Fatalf("the error does not name the temporary file %s: %v", filepath.Base(tempOf(p.upload, name)), err)
	}
	if n := len(p.renamed()["upload/"+name]); n != 0 {
		t.Fatalf("renamed %d times before FinishUpload", n)
	}
	// What the ledger keeps: the error's text, a reason appended.
	lastError := err.Error() + " (delivery unknown since 2026-11-24T01:00:00Z)"
	landed, err := s.FinishUpload(context.Background(), name, int64(len(c)), lastError)
	if err != nil || !landed {
		t.Fatalf("FinishUpload: landed %v, %v; want the file renamed into place", landed, err)
	}
	h.release() // the old connection's rename arrives
	time.Sleep(500 * time.Millisecond)
	if landed, err := s.FinishUpload(context.Background(), name, int64(len(c)), lastError); err != nil || !landed {
		t.Fatalf("FinishUpload again: landed %v, %v; want landed", landed, err)
	}
	renames := p.renamed()["upload/"+name]
	if len(renames) != 1 || renames[0] != c.sha() || string(p.onDisk(t, name)) != string(c) {
		t.Fatalf("renamed into place %d times, with sha256 %v (want once, %s)", len(renames), renames, c.sha())
	}
	p.noTempFiles(t)
}

// statAsked waits (up to a minute) until the SFTP server has had n stat
// calls: the upload's stat of its temporary file is the second, which the
// tests delay a second, so that what the client sends next (the rename)
// can be held or lost. Waiting for the temporary file to be whole and a
// further 300 ms guessed when the stat had arrived.
func statAsked(faults *fault.Injector, n int) {
	for deadline := time.Now().Add(time.Minute); faults.Calls(sftptest.StatEndpoint) < n && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
}

// TestFinishUploadEndsOnlyWhatTheErrorNames: FinishUpload renames only
// one of Upload's own temporary names of the file, and only when it is
// there; otherwise only the server can tell (false), and nothing moves.
func TestFinishUploadEndsOnlyWhatTheErrorNames(t *testing.T) {
	t.Parallel()
	p := startSFTPTest(t, nil)
	s := NewSFTPSession(p.config())
	t.Cleanup(func() { s.Close() })
	const name = "TD_named.csv"
	c := randomContent(300, 5)
	put := func(n string) {
		if err := os.WriteFile(filepath.Join(p.upload, n), c, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ why, lastError, onServer string }{
		{"no mark", "upload " + name + ": connection lost", ".TD_named.csv.0badc0de-1.part"},
		{"another file's temporary file", "x" + tempMark + ".TD_other.csv.0badc0de-1.part)", ".TD_other.csv.0badc0de-1.part"},
		{"not a temporary name", "x" + tempMark + ".TD_named.csv.../../x-1.part)", ".TD_named.csv.0badc0de-1.part"},
		{"the temporary file gone (the server took it, or removed it)", "x" + tempMark + ".TD_named.csv.0badc0de-2.part)", ".TD_named.csv.0badc0de-1.part"},
	} {
		put(tc.onServer)
		landed, err := s.FinishUpload(context.Background(), name, int64(len(c)), tc.lastError)
		if err != nil || landed {
			t.Errorf("%s: landed %v, %v; want false", tc.why, landed, err)
		}
		if _, err := os.Stat(filepath.Join(p.upload, name)); err == nil || len(p.renamed()) != 0 {
			t.Fatalf("%s: a file was renamed into place", tc.why)
		}
		os.Remove(filepath.Join(p.upload, tc.onServer))
	}
	put(".TD_named.csv.0badc0de-3.part")
	if landed, err := s.FinishUpload(context.Background(), name, int64(len(c)), "x"+tempMark+".TD_named.csv.0badc0de-3.part)"); err != nil || !landed {
		t.Fatalf("the named temporary file: landed %v, %v; want it renamed into place", landed, err)
	}
	if string(p.onDisk(t, name)) != string(c) {
		t.Fatal("the file under its final name is not the temporary file")
	}
}
