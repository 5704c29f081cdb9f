package infiniapay_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/infiniapay"
)

// FuzzParseStatuses checks the status mapping (--infinia-statuses): one
// that parses reads every word the client knows as itself (SUCCESS is
// never mapped to FAILED, nor anything to a word the client does not
// know), and is written (String) as a mapping that parses the same; one
// that does not is an error naming the status mapping.
func FuzzParseStatuses(f *testing.F) {
	for _, s := range []string{"SUCCEEDED=SUCCESS", "", "none", "SUCCEEDED=SUCCESS,DONE=SUCCESS", " DONE = FAILED ,", "SUCCESS=FAILED",
		"DONE=SUCCEEDED", "DONE=SUCCESS,DONE=FAILED", "=SUCCESS", "DONE", "A=B=SUCCESS", "none=SUCCESS", "success=FAILED"} {
		f.Add(s, "SUCCEEDED")
	}
	known := []string{infiniapay.StatusPending, infiniapay.StatusActive, infiniapay.StatusFrozen, infiniapay.StatusRejected,
		infiniapay.StatusReceived, infiniapay.StatusProcessing, infiniapay.StatusSuccess, infiniapay.StatusFailed}
	f.Fuzz(func(t *testing.T, s, word string) {
		m, err := infiniapay.ParseStatuses(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "status mapping") {
				t.Fatalf("ParseStatuses(%q): %v does not name the status mapping", s, err)
			}
			return
		}
		for _, k := range known {
			if m.In(k) != k {
				t.Fatalf("mapping %q reads %s as %s", s, k, m.In(k))
			}
		}
		if in := m.In(word); in != word && !slices.Contains(known, in) {
			t.Fatalf("mapping %q reads %q as %q, a word the client does not know", s, word, in)
		}
		again, err := infiniapay.ParseStatuses(m.String())
		if err != nil || again.String() != m.String() || again.In(word) != m.In(word) {
			t.Fatalf("mapping %q written %q reads back as %v, %v", s, m.String(), again, err)
		}
	})
}
