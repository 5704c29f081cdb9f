package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestProblemsMessageAndGathering(t *testing.T) {
	var list []string
	for i := range 12 {
		list = append(list, fmt.Sprintf("order O%d: refused", i))
	}
	a := E(KindNeedsPerson, "", &Problems{List: list})
	msg := a.Error()
	if !strings.HasPrefix(msg, "12 problem(s); order O0: refused; ") || !strings.HasSuffix(msg, "order O9: refused; ... 2 more (see the reports)") {
		t.Fatalf("message %q", msg)
	}
	b := &Problems{Summary: "40 of 100 rows rejected", List: []string{"order X: no seller"}, Total: 40}
	if got := b.Error(); got != "40 of 100 rows rejected; order X: no seller; ... 39 more (see the reports)" {
		t.Fatalf("message %q", got)
	}
	joined := E(KindNeedsPerson, "run", errors.Join(fmt.Errorf("stage upload: %w", a), fmt.Errorf("stage reconcile: %w", b)))
	first, n := ProblemsOf(joined, 3)
	if n != 52 || strings.Join(first, ",") != "order O0: refused,order O1: refused,order O2: refused" {
		t.Fatalf("ProblemsOf: %v, %d", first, n)
	}
	// Several subjects told on one line are counted each, and are not
	// "more" than the lines tell.
	c := &Problems{}
	c.Add("order A: refused")
	c.AddMany("4 files lost: F1, F2, F3, F4", 4)
	c.AddMany("nothing", 0)
	if got := c.Error(); c.Count() != 5 || got != "5 problem(s); order A: refused; 4 files lost: F1, F2, F3, F4" {
		t.Fatalf("AddMany: %d, %q", c.Count(), got)
	}
	for i := range ProblemsListed {
		c.AddMany(fmt.Sprintf("line %d", i), 2)
	}
	if got := c.Error(); c.Count() != 5+2*ProblemsListed || !strings.HasSuffix(got, "line 7; ... 4 more (see the reports)") {
		t.Fatalf("AddMany past the lines listed: %d, %q", c.Count(), got)
	}
	if first, n := ProblemsOf(errors.New("plain"), 3); n != 0 || first != nil {
		t.Fatalf("ProblemsOf a plain error: %v, %d", first, n)
	}
}

// A line Lead adds is listed first, however many were listed before it;
// the line it pushes out of a full list is still counted, and so are its
// subjects.
func TestProblemsLeadIsListedFirst(t *testing.T) {
	p := &Problems{}
	for i := range ProblemsListed {
		p.Add(fmt.Sprintf("seller S%d: unknown", i))
	}
	p.AddMany("two files lost", 2)
	p.Lead("KWD, 30 sellers: platform balance short", 30)
	got := p.Error()
	want := fmt.Sprintf("%d problem(s); KWD, 30 sellers: platform balance short; seller S0: unknown; ", ProblemsListed+2+30)
	if !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "seller S8: unknown; ... 3 more (see the reports)") {
		t.Fatalf("Lead: %q", got)
	}
	if first, n := ProblemsOf(E(KindNeedsPerson, "", p), 1); n != ProblemsListed+32 || first[0] != "KWD, 30 sellers: platform balance short" {
		t.Fatalf("ProblemsOf: %v, %d", first, n)
	}
	// Into a List given as a literal, each of its lines one subject.
	q := &Problems{List: []string{"order A: refused", "order B: refused"}}
	q.Lead("Infinia refused the balance query in JPY", 5)
	if got := q.Error(); got != "7 problem(s); Infinia refused the balance query in JPY; order A: refused; order B: refused" {
		t.Fatalf("Lead into a literal: %q", got)
	}
}

// WithProblems keeps a stopping error's words and kind (exit 2, its one
// line) and carries the problems found before it, for ProblemsOf, NotesOf
// and StopProblems, through the runner's wraps; nil problems leave the
// error as it is.
func TestWithProblemsKeepsTheErrorsWordsAndKind(t *testing.T) {
	refused := Errorf(KindUsage, "Infinia", "refused our credentials: check --infinia-private-key-file")
	if got := WithProblems(refused, (&Problems{}).NeedsPerson()); got != refused {
		t.Fatalf("no problems: %v, want the error itself", got)
	}
	p := &Problems{List: []string{"seller S1 USD: binding FROZEN"}, Notes: []string{"why it is held"}}
	err := fmt.Errorf("run D: %w", fmt.Errorf("stage distribute: %w", WithProblems(refused, p.NeedsPerson())))
	if KindOf(err) != KindUsage || err.Error() != "run D: stage distribute: "+refused.Error() {
		t.Fatalf("kind %v, %q; want usage and the refusal's words alone", KindOf(err), err.Error())
	}
	if first, n := ProblemsOf(err, 3); n != 1 || first[0] != p.List[0] {
		t.Fatalf("ProblemsOf: %v, %d", first, n)
	}
	if notes := NotesOf(err); len(notes) != 1 || notes[0] != "why it is held" {
		t.Fatalf("NotesOf: %v", notes)
	}
	if np := StopProblems(err); np == nil || !strings.Contains(np.Error(), "binding FROZEN") {
		t.Fatalf("StopProblems: %v", np)
	}
	if StopProblems(refused) != nil {
		t.Fatal("StopProblems of an error without problems is not nil")
	}
}

// TestAStopKeepsTheOtherPartsProblems: a stage of parts (Combine, and
// Concurrent's joinParts) stopped by one part's refusal of our
// credentials (exit 2) keeps what the other parts had found for a person
// with the stopping part's own (StopProblems), its words and kind the
// refusal's. Before, the other parts' were dropped: the stage's NEEDS A
// PERSON line said the stopping part's alone, beside a summary of all.
func TestAStopKeepsTheOtherPartsProblems(t *testing.T) {
	refused := Errorf(KindUsage, "P", "refused our credentials")
	held := func(context.Context, *Run) (string, error) {
		return "A: 1 held", (&Problems{List: []string{"seller S1 held"}}).NeedsPerson()
	}
	stop := func(context.Context, *Run) (string, error) {
		return "B: stopped", WithProblems(refused, (&Problems{List: []string{"order O1 held"}}).NeedsPerson())
	}
	for name, fn := range map[string]StageFunc{"Combine": Combine(held, stop), "Concurrent": Concurrent(held, stop)} {
		summary, err := fn(context.Background(), &Run{})
		if KindOf(err) != KindUsage || err.Error() != refused.Error() {
			t.Errorf("%s: %v (kind %v), want the refusal's words and kind", name, err, KindOf(err))
		}
		np := StopProblems(err)
		if np == nil || !strings.Contains(np.Error(), "order O1 held") || !strings.Contains(np.Error(), "seller S1 held") {
			t.Errorf("%s: StopProblems %v, want the stopping part's and the other part's", name, np)
		}
		if first, n := ProblemsOf(err, 10); n != 2 || first[0] != "order O1 held" {
			t.Errorf("%s: ProblemsOf %v, %d; want the stopping part's first, each once", name, first, n)
		}
		if !strings.Contains(summary, "A: 1 held") || !strings.Contains(summary, "B: stopped") {
			t.Errorf("%s: summary %q", name, summary)
		}
	}
}

// TestARefusalLetsTheOtherChainsFinish: one provider's chain of the
// distribute stage (Concurrent) is stopped by a refusal of our
// credentials (exit 2); the other provider's chain, beside it, is not
// cancelled: it finishes (its sellers paid), and what it held for a
// person goes with the refusal (StopProblems), its summary beside the
// refused chain's. The error is the refusal's, in its words and kind.
// Before, the refusal cancelled the other chain: its work waited for the
// re-run, and its holds were said by no line of the run. Two chains each
// refused say each refusal, exit 2.
func TestARefusalLetsTheOtherChainsFinish(t *testing.T) {
	refused := Errorf(KindUsage, "P", "refused our credentials")
	done := make(chan struct{})
	stop := func(context.Context, *Run) (string, error) {
		defer close(done)
		return "P: stopped", WithProblems(refused, (&Problems{List: []string{"order O1 held"}}).NeedsPerson())
	}
	other := func(ctx context.Context, _ *Run) (string, error) {
		<-done
		select {
		case <-ctx.Done():
			return "", ctx.Err() // cut short
		case <-time.After(time.Second):
		}
		return "Q: 3 paid, 1 held", (&Problems{List: []string{"seller S2 held"}}).NeedsPerson()
	}
	summary, err := Concurrent(stop, other)(context.Background(), &Run{})
	if KindOf(err) != KindUsage || err.Error() != refused.Error() {
		t.Fatalf("%v (kind %v), want the refusal's words and kind", err, KindOf(err))
	}
	if !strings.Contains(summary, "Q: 3 paid, 1 held") {
		t.Fatalf("summary %q: the other chain was cut short", summary)
	}
	if np := StopProblems(err); np == nil || !strings.Contains(np.Error(), "order O1 held") || !strings.Contains(np.Error(), "seller S2 held") {
		t.Errorf("StopProblems %v, want the refused chain's and the other chain's", np)
	}

	other2 := Errorf(KindUsage, "Q", "refused our key too")
	_, err = Concurrent(func(context.Context, *Run) (string, error) { return "", refused },
		func(context.Context, *Run) (string, error) { return "", other2 })(context.Background(), &Run{})
	if KindOf(err) != KindUsage || !errors.Is(err, refused) || !errors.Is(err, other2) {
		t.Errorf("%v (kind %v), want both refusals, exit 2", err, KindOf(err))
	}
}

// TestARefusalKeepsWhatTheOtherChainLeftStillProcessing: beside one
// provider's chain stopped by a refusal of our credentials (exit 2), the
// other provider's chain, let finish, ends with work still processing at
// its provider (ErrStillProcessing) and a hold for a person (as Combine
// joins them). Both are said with the refusal (StopProblems), and the
// stage's error is still the refusal's alone in kind and chain: not work
// still processing, which the runner would take for exit 1 and go on.
// Before, such a chain's error was dropped: its hold and what still
// processed were said by no line of the run.
func TestARefusalKeepsWhatTheOtherChainLeftStillProcessing(t *testing.T) {
	refused := Errorf(KindUsage, "P", "refused our credentials")
	stop := func(context.Context, *Run) (string, error) { return "P: stopped", refused }
	other := func(context.Context, *Run) (string, error) {
		pending := fmt.Errorf("%w: share Q-S3 still processing at Q", ErrStillProcessing)
		return "Q: 3 paid, 1 processing", E(KindFailed, "", errors.Join(pending, (&Problems{List: []string{"seller S2 held"}}).NeedsPerson()))
	}
	for name, fn := range map[string]StageFunc{"Concurrent": Concurrent(stop, other), "Concurrent, other first": Concurrent(other, stop)} {
		_, err := fn(context.Background(), &Run{})
		if KindOf(err) != KindUsage || errors.Is(err, ErrStillProcessing) {
			t.Errorf("%s: %v (kind %v, still processing %v), want the refusal alone in kind and chain", name, err, KindOf(err), errors.Is(err, ErrStillProcessing))
		}
		np := StopProblems(err)
		if np == nil || !strings.Contains(np.Error(), "seller S2 held") || !strings.Contains(np.Error(), "Q-S3 still processing") {
			t.Errorf("%s: StopProblems %v, want the other chain's hold and what it left processing", name, np)
		}
		if first, n := ProblemsOf(err, 10); n != 1 || first[0] != "seller S2 held" {
			t.Errorf("%s: ProblemsOf %v, %d; want the other chain's hold, once", name, first, n)
		}
	}
}
