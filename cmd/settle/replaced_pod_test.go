package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/sftptest"
)

// TestAPodReplacedMidUploadLosesNothing: the deployment builds the trade
// files on an emptyDir, gone with the pod. A run whose every upload broke
// off part way (its files built and recorded, their uploads sent and
// never finished) is taken over by a run with an empty work directory, as
// the Job's next pod: it rebuilds each file from the ledger, byte for byte
// the one recorded, asks about the unfinished uploads before it sends, and
// every seller is paid once from files whole on the server, no new file
// made.
func TestAPodReplacedMidUploadLosesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "200", "--sellers", "8", "--seed", "3")
	const balance = 1_000_000_000_00
	faults := fault.New(1, fault.Rule{Endpoint: sftptest.Endpoint, Kind: fault.Disconnect, Prob: 1, Bytes: 20})
	sim := e.sim(faults, 8, nil, balance)
	withWork := func(dir, wait string) []string {
		args := slices.Clone(e.infiniaArgs(sim))
		args[slices.Index(args, "--work-dir")+1] = dir
		args[slices.Index(args, "--provider-wait")+1] = wait
		return append(args, "--skip-channel", "wechatpay", "--skip-channel", "payprotocol")
	}
	first, second := filepath.Join(t.TempDir(), "work"), filepath.Join(t.TempDir(), "work")
	out, code := e.settle(withWork(first, "1s")...)
	if code != 1 || faults.Played(fault.Disconnect) == 0 {
		t.Fatalf("every upload broken off: exit %d after %d broken uploads, want 1:\n%s", code, faults.Played(fault.Disconnect), out)
	}
	files := e.count(`SELECT count(*) FROM settle.trade_files`)
	if built, _ := filepath.Glob(filepath.Join(first, testDate, "*")); files == 0 || len(built) == 0 {
		t.Fatalf("%d trade files recorded, %d built: want the first pod to have built and recorded them", files, len(built))
	}
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE kind = 'upload' AND state IN ('sent', 'unknown')`); n != files {
		t.Fatalf("%d of %d uploads left sent or unknown by the first pod, want every one (broken off part way)", n, files)
	}
	faults.Clear()
	if _, err := os.Stat(second); !os.IsNotExist(err) {
		t.Fatalf("the second pod's work directory exists: %v", err)
	}
	if out, code := e.settle(withWork(second, "5s")...); code != 0 {
		t.Fatalf("the next pod, an empty work directory: exit %d, want 0:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM settle.trade_files`); n != files {
		t.Errorf("%d trade files after the next pod, %d before: want the same files, rebuilt", n, files)
	}
	e.checkFilesWhole(sim)
	e.checkPaidOnce(sim, balance)
}
