package infiniapay_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/pipeline"
)

// TestATradeFileNeverUploadedIsNotUploadedPastInfiniasMemory: the ledger
// holds a date's trade files built and never uploaded (a backup taken
// between the build and the upload, restored), and the date ended longer
// ago than Infinia's status query remembers. Each file's requestNo is a
// function of the date: a run the ledger does not hold may have uploaded
// it, and an Infinia that forgot it would take it as new, its orders
// counted twice in the sellers' available shares. The upload stage sends
// none (pipeline.HoldFirstSends, as the revenue shares and WeChat's
// requests), asks Infinia about none (a file never uploaded is not "still
// processing"), and ends for a person naming the files and the flag; with
// SendPastMemory each is uploaded once. Before, the upload, the one sender
// the hold did not wrap, sent them all.
func TestATradeFileNeverUploadedIsNotUploadedPastInfiniasMemory(t *testing.T) {
	t.Parallel()
	h := newSFTPInfinia(t, 3, 2)
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: uploadDay, Shard: pipeline.Whole}, TimeZone: "UTC"}
	now := func() time.Time { return pipeline.WindowOf(uploadDay, time.UTC).End.Add(45 * 24 * time.Hour) }
	stage := func(send bool) pipeline.StageFunc {
		c := h.configOf(h.answering)
		c.Memory, c.Now, c.SendPastMemory = infiniapay.DefaultMemory, now, send
		return infiniapay.UploadStage(c)
	}
	summary, err := stage(false)(context.Background(), run)
	t.Logf("%s: %v", summary, err)
	if pipeline.KindOf(err) != pipeline.KindNeedsPerson || !strings.Contains(err.Error(), "3 trade files built and never uploaded") ||
		!strings.Contains(err.Error(), "--send-past-memory") {
		t.Errorf("%v: want the 3 files held for a person, never uploaded, naming --send-past-memory", err)
	}
	for _, e := range h.ledger.Uploads() {
		if e.State != pipeline.EffectPlanned || e.Sends != 0 {
			t.Errorf("upload %s %s after %d sends, want it planned and unsent", e.Key, e.State, e.Sends)
		}
	}
	h.mu.Lock()
	landed := len(h.renamed)
	h.mu.Unlock()
	if n := landed; n != 0 {
		t.Errorf("%d files landed at Infinia, want none", n)
	}
	if _, err := stage(true)(context.Background(), run); err != nil {
		t.Fatalf("with SendPastMemory: %v", err)
	}
	for _, e := range h.ledger.Uploads() {
		if e.State != pipeline.EffectSucceeded || e.Sends != 1 {
			t.Errorf("upload %s %s after %d sends, want succeeded after 1", e.Key, e.State, e.Sends)
		}
	}
}
