package infiniapay_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/pipeline"
)

// TestInfiniaRefusingOurKeyForAnUploadStatusSaysWhatToCheck: our key pair
// changed at Infinia (it refuses our signature, SYS-002 "invalid
// signature") before the upload stage asks the status of the trade files
// it uploaded. The stage ends exit 2 in one line naming the flags to
// check, as the distribute stage does (before, the client's generic
// text). The re-run with the key put right uploads no file again.
func TestInfiniaRefusingOurKeyForAnUploadStatusSaysWhatToCheck(t *testing.T) {
	t.Parallel()
	h := newSFTPInfinia(t, 2, 1)
	other, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	h.fake.RegisterPlatformKey(&other.PublicKey) // the files go by SFTP; their status questions are refused
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: uploadDay, Shard: pipeline.Whole}, TimeZone: "UTC"}
	summary, err := h.stageOf(h.answering)(context.Background(), run)
	t.Logf("%s: %v", summary, err)
	if pipeline.KindOf(err) != pipeline.KindUsage || !errors.Is(err, infiniapay.ErrCredentials) || strings.Contains(err.Error(), "\n") ||
		!strings.Contains(err.Error(), "--infinia-private-key-file") || !strings.Contains(err.Error(), "--infinia-app-id") {
		t.Fatalf("%v: want a configuration error in one line, telling to check our key and appId", err)
	}
	if n := h.fake.Calls(infiniapay.APIUploadStatus); n != 1 {
		t.Errorf("%d status questions, want 1: nothing more asked once Infinia refused our key", n)
	}
	// The key put right: the re-run asks, and uploads no file again.
	h.fake.RegisterPlatformKey(&keys(t).PlatformPrivate.PublicKey)
	if _, err := h.stageOf(h.answering)(context.Background(), run); err != nil {
		t.Fatalf("re-run: %v", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.renamed) != 2 {
		t.Errorf("%d files at Infinia, want 2", len(h.renamed))
	}
	for name, n := range h.renamed {
		if n != 1 {
			t.Errorf("%s uploaded %d times, want once", name, n)
		}
	}
}
