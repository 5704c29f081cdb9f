package infiniapay_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/sftptest"
	"github.com/settlekit/settle/pipeline"
)

// TestAnUploadStageStoppedByTheSFTPServerStillSaysWhatItHeld: a trade
// file of the date was refused by Infinia (held for a person) at an
// earlier run, the others not yet uploaded; then Infinia's SFTP server
// refuses our key, at the stage's first connection or at a reconnect
// after the first upload (its connection dropped). The stage ends with a
// configuration error (exit 2) in one line, and the file held is in its
// problems (pipeline.StopProblems: the runner's NEEDS A PERSON line for
// the stage), with the stage's summary so far. Before, only a refusal of
// our key by Infinia's API kept them: a stop at the SFTP server returned
// its error alone, and the night's log said nothing of the file held.
func TestAnUploadStageStoppedByTheSFTPServerStillSaysWhatItHeld(t *testing.T) {
	for _, c := range []struct {
		name      string
		reconnect bool
	}{{"at the first connection", false}, {"at a reconnect", true}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newSFTPInfinia(t, 3, 1)
			ctx := context.Background()
			held := h.ledger.Files()[0]
			held.Status, held.Reason = infiniapay.StatusFailed, "1 rows refused, first O00: bad row"
			if err := h.ledger.FinishTradeFile(ctx, held, nil, "held", "held: trade file "+held.Name+" was refused by Infinia"); err != nil {
				t.Fatal(err)
			}
			other, err := sftptest.NewKey()
			if err != nil {
				t.Fatal(err)
			}
			session := load.NewSFTPSession(h.sftpConfig)
			var dials atomic.Int64
			session.Dial = func(ctx context.Context, cfg load.SFTPConfig) (*load.SFTP, error) {
				if !c.reconnect || dials.Add(1) > 1 {
					cfg.Signer = other // our key, changed at the server
				}
				return load.DialSFTP(ctx, cfg)
			}
			t.Cleanup(func() { session.Close() })
			if c.reconnect {
				// The second upload's open drops the connection.
				h.faults.Add(fault.Rule{Endpoint: sftptest.Endpoint, Kind: fault.Reset, Calls: []int{2}})
			}
			run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: uploadDay, Shard: pipeline.Whole}, TimeZone: "UTC"}
			summary, err := h.stageOf(session)(ctx, run)
			t.Logf("%s: %v", summary, err)
			if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "refused our key") || strings.Contains(err.Error(), "\n") ||
				strings.Contains(err.Error(), held.Name) {
				t.Fatalf("%v: want a configuration error in one line, the SFTP server refusing our key, not the file held", err)
			}
			if c.reconnect && dials.Load() < 2 {
				t.Fatalf("%d connections: the stage never reconnected", dials.Load())
			}
			problems := pipeline.StopProblems(err)
			if problems == nil || !strings.Contains(problems.Error(), "trade file "+held.Name+" refused by Infinia") {
				t.Fatalf("the stop's problems are %v, want the file %s held", problems, held.Name)
			}
			if !strings.Contains(summary, "1 refused by Infinia") || !strings.Contains(summary, "stopped: a configuration error") {
				t.Errorf("summary %q, want the stage's so far, the file refused counted, and why it stopped", summary)
			}
		})
	}
}
