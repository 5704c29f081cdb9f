package load

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/sftptest"
)

// TestALateRenameDoesNotMoveTheResentUploadInPart: the temporary names
// were per attempt within one Upload call only; the next call started
// again at .NAME.part. The first call's rename held in the network (its
// connection cut by the watch, the next two dials refused: a partition),
// the call failed, and a resend wrote .NAME.part again; the held rename,
// delivered while it wrote, moved the half-written file into place (found
// by a review). Every call's attempts write names of their own now, and
// the failed call says its delivery is unknown (the engine does not send
// it again; here it is sent again by hand all the same).
func TestALateRenameDoesNotMoveTheResentUploadInPart(t *testing.T) {
	t.Parallel()
	// Stat calls: 1 the directory check at connect, 2 the upload's stat of
	// its temporary file, answered after 1 s.
	faults := fault.New(1, fault.Rule{Endpoint: sftptest.StatEndpoint, Kind: fault.Latency, Calls: []int{2}, Delay: time.Second})
	p := startSFTPTest(t, faults)
	h, s, dials := behindProxy(t, p, 512<<10, func(cfg *SFTPConfig) { cfg.OpTimeout = 1500 * time.Millisecond })
	s.Dial = func(ctx context.Context, cfg SFTPConfig) (*SFTP, error) {
		if n := dials.Add(1); n == 2 || n == 3 {
			return nil, errors.New("connect: network is unreachable")
		}
		return DialSFTP(ctx, cfg)
	}
	c := randomContent(1<<20, 21)
	go func() {
		statAsked(faults, 2) // the stat is being answered (1 s): the rename will be held
		h.hold()
	}()
	err := s.Upload(context.Background(), "TD_resend.csv", int64(len(c)), c.sha(), c.open)
	if !errors.Is(err, errRenameUnknown) {
		t.Fatalf("first upload: %v; want its delivery unknown (the rename held)", err)
	}
	// Sent again all the same; the network heals while it writes.
	go func() {
		time.Sleep(300 * time.Millisecond)
		h.release() // the held rename arrives
	}()
	err = s.Upload(context.Background(), "TD_resend.csv", int64(len(c)), c.sha(), c.open)
	t.Logf("second upload: %v", err)
	time.Sleep(500 * time.Millisecond)
	for _, sum := range p.renamed()["upload/TD_resend.csv"] {
		if sum != c.sha() {
			t.Fatalf("a file with sha256 %s (want %s) was renamed into place: the first call's late rename moved the resend's half-written .NAME.part", sum, c.sha())
		}
	}
}
