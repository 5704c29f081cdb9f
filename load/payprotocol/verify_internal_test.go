package payprotocol

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

// keepFirst keeps the held orders first by number, as many as a problem
// lists, whatever the order they are verified in.
func TestKeepFirstKeepsTheFirstHeldByNumber(t *testing.T) {
	var all []string
	for i := range 3 * pipeline.ProblemsListed {
		all = append(all, fmt.Sprintf("O%03d", i))
	}
	shuffled := append([]string(nil), all...)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	var first []heldLine
	for _, o := range shuffled {
		first = keepFirst(first, heldLine{o, "held: " + o})
	}
	if len(first) != pipeline.ProblemsListed {
		t.Fatalf("kept %d, want %d", len(first), pipeline.ProblemsListed)
	}
	for i, h := range first {
		if h.order != all[i] || h.reason != "held: "+all[i] {
			t.Errorf("kept %d: %+v, want %s", i, h, all[i])
		}
	}
}
