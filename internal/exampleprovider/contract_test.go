package exampleprovider

import (
	"context"
	"errors"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

var day = pipeline.Date{Year: 2026, Month: 11, Day: 23}

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestTheToyImportsOnlyThePipeline: the provider (provider_test.go) is
// what README "Adding a provider" asks of load/<name>: it imports
// pipeline and the standard library, nothing of another provider, of the
// ledger or of internal/.
func TestTheToyImportsOnlyThePipeline(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "provider_test.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, is := range f.Imports {
		p, _ := strconv.Unquote(is.Path.Value)
		if first, _, _ := strings.Cut(p, "/"); strings.Contains(first, ".") && p != "github.com/settlekit/settle/pipeline" {
			t.Errorf("the toy provider imports %s: a provider imports pipeline and the standard library", p)
		}
	}
}

// openLedger returns a migrated ledger in a database of its own.
func openLedger(t *testing.T) *ledger.Ledger {
	t.Helper()
	url := pgtest.URLFrom(t, pgtest.Template(t, "migrated ledger", func(url string) error {
		l, err := ledger.Open(context.Background(), url, "")
		if err != nil {
			return err
		}
		defer l.Close()
		_, err = l.Migrate(context.Background())
		return err
	}))
	l, err := ledger.Open(context.Background(), url, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	l.SetActor("example provider test")
	return l
}

// runner is cmd's wiring in small (cmd/settle/cmd_run.go): the provider plugged (pipeline.Plug)
// into the Runner's distribute and reconcile stages, over the ledger.
func runner(l *ledger.Ledger, prov pipeline.Provider) *pipeline.Runner {
	p := pipeline.Plug(nil, prov)
	return &pipeline.Runner{
		Store:     l,
		Preflight: p.Preflight,
		Stages: map[pipeline.Stage]pipeline.StageFunc{
			pipeline.StageDistribute: p.Distribute,
			pipeline.StageReconcile: pipeline.ReconcileStage(l, p.Matchers,
				func(context.Context, *pipeline.Run) (string, error) { return "", nil }, 0),
		},
		// As cmd's: the sending stages and reconcile run at every
		// invocation, done or not.
		Repeat: map[pipeline.Stage]bool{pipeline.StageDistribute: true, pipeline.StageReconcile: true},
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func cny(minor int64) pipeline.Money { return pipeline.Money{Minor: minor, Currency: "CNY"} }

// causes are the causes of an effect's history, oldest first.
func causes(t *testing.T, l *ledger.Ledger, id int64) []pipeline.EffectCause {
	t.Helper()
	h, err := l.EffectHistory(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []pipeline.EffectCause
	for _, ev := range h {
		out = append(out, ev.Cause)
	}
	return out
}

// TestToyProviderOnTheEngine drives the toy provider through the Runner,
// the effect engine and the ledger on PostgreSQL: intent before every
// send; an answer lost resolved by a status query, never sent again; a
// run that stopped after the intent (planned) and one that stopped after
// recording the send but before the request left (sent, not at the
// provider) each finished with one request; one wallet's failure stops
// no other; a re-run sends nothing; reconcile reports what the provider
// shows differently.
func TestToyProviderOnTheEngine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := openLedger(t)
	f, client := newFake(t)
	payouts := []Payout{{"W1", cny(1000)}, {"W2", cny(2000)}, {"W3", cny(3000)}, {"W4", cny(4000)}, {"W5", cny(5000)}, {"W6", cny(6000)}}
	prov := NewProvider(Config{Client: client, Store: l, Pacer: pipeline.NewPacer(pipeline.Limits{}),
		Payouts:   func(context.Context, *pipeline.Run) ([]Payout, error) { return payouts, nil },
		FirstPoll: 30 * time.Millisecond, Poll: 30 * time.Millisecond, Wait: 10 * time.Second})
	key := pipeline.RunKey{Date: day, Shard: pipeline.Whole}
	effect := func(wallet string) pipeline.Effect {
		t.Helper()
		e, ok, err := l.LatestEffect(ctx, KindTransfer, Subject(day, wallet, "CNY"))
		if err != nil || !ok {
			t.Fatalf("%s: no transfer in the ledger (%v)", wallet, err)
		}
		return e
	}

	// A run that stopped: W4's intent recorded and nothing sent; W5's
	// send recorded (MarkSent) and the process gone before the request
	// left.
	run, _, err := l.OpenRun(ctx, key, pipeline.RunParams{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"W4", "W5"} {
		s := Subject(day, w, "CNY")
		e, err := l.PlanEffect(ctx, pipeline.Effect{RunID: run.ID, Kind: KindTransfer, Subject: s, Attempt: 1, Key: Key(s, 1), Currency: "CNY", Amount: 4000})
		if w == "W5" {
			if err == nil {
				err = l.MarkSent(ctx, e.ID)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// W4 and W5 were planned at 4000 and are paid 4000 now: a payout the stage
	// planned differently would be refused by the ledger (PlanEffect).
	payouts[4].Amount = cny(4000)

	// Intent first: every request that reaches the provider is recorded
	// sent in the ledger before it arrives.
	var (
		mu        sync.Mutex
		notIntent []string
	)
	f.onPost = func(k string) {
		var state string
		var sends int
		err := l.DB().QueryRowContext(ctx, `SELECT state, sends FROM effects WHERE idem_key = $1`, k).Scan(&state, &sends)
		if err != nil || state != string(pipeline.EffectSent) || sends < 1 {
			mu.Lock()
			notIntent = append(notIntent, k+": "+state+" "+strconv.Itoa(sends)+" "+errString(err))
			mu.Unlock()
		}
	}
	f.loseAnswer["W2"] = true
	f.closed["W3"] = true
	// W6: its answer lost, and the provider refuses to tell its status:
	// held for a person (SubjectOnly), never sent again, and no one
	// else's business.
	f.loseAnswer["W6"], f.secret["W6"] = true, true

	_, err = runner(l, prov).Execute(ctx, key, pipeline.RunParams{}, pipeline.StageReconcile)
	if pipeline.KindOf(err) != pipeline.KindNeedsPerson || !strings.Contains(err.Error(), "wallet closed") || !strings.Contains(err.Error(), "not yours to ask") {
		t.Fatalf("first run: want W3's failure and W6's refused query for a person, got %v", err)
	}
	mu.Lock()
	if len(notIntent) > 0 {
		t.Errorf("requests that reached the provider before their intent and send were recorded: %v", notIntent)
	}
	mu.Unlock()

	// One wallet's failure stops no other.
	for _, w := range []string{"W1", "W2", "W4", "W5"} {
		if e := effect(w); e.State != pipeline.EffectSucceeded {
			t.Errorf("%s: %s (%s), want succeeded: W3's failure is its own", w, e.State, e.LastError)
		}
	}
	if e := effect("W3"); e.State != pipeline.EffectFailed {
		t.Errorf("W3: %s, want failed", e.State)
	}
	if e := effect("W6"); e.State != pipeline.EffectUnknown || e.Sends != 1 {
		t.Errorf("W6: %s after %d sends, want unknown after 1: its outcome is not known", e.State, e.Sends)
	}
	// Each transfer reached the provider once: the lost answer was found
	// by a status query, the planned and the unsent ones sent once.
	for _, w := range []string{"W1", "W2", "W3", "W4", "W5", "W6"} {
		if n := f.count(f.posts, effect(w).Key); n != 1 {
			t.Errorf("%s: %d requests reached the provider, want 1", w, n)
		}
	}
	w2 := effect("W2")
	if f.count(f.gets, w2.Key) == 0 || w2.Sends != 1 {
		t.Errorf("W2 (answer lost): %d queries, %d sends; want asked by its key and sent once", f.count(f.gets, w2.Key), w2.Sends)
	}
	if got := causes(t, l, w2.ID); !slices.Contains(got, pipeline.CauseSendError) || !slices.Contains(got, pipeline.CauseQuery) || slices.Contains(got, pipeline.CauseResent) {
		t.Errorf("W2's history %v: want its send error resolved by a query, never sent again", got)
	}
	// W5: recorded sent, never at the provider: its query found nothing,
	// and it went again under the same key (the ledger counts two sends).
	if w5 := effect("W5"); w5.Sends != 2 || !slices.Contains(causes(t, l, w5.ID), pipeline.CauseResent) {
		t.Errorf("W5: %d sends, history %v; want sent again under its key once its query did not know it", w5.Sends, causes(t, l, w5.ID))
	}
	if w4 := effect("W4"); w4.Sends != 1 {
		t.Errorf("W4: %d sends, want its intent sent once", w4.Sends)
	}

	// A re-run sends nothing: every request's count stays.
	posts := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		n := 0
		for _, c := range f.posts {
			n += c
		}
		return n
	}
	before := posts()
	if _, err := runner(l, prov).Execute(ctx, key, pipeline.RunParams{}, pipeline.StageReconcile); pipeline.KindOf(err) != pipeline.KindNeedsPerson {
		t.Fatalf("re-run: want W3 and W6 still for a person, got %v", err)
	}
	if n := posts(); n != before {
		t.Errorf("re-run sent %d requests, want none", n-before)
	}
	if e := effect("W6"); e.State != pipeline.EffectUnknown || e.Sends != 1 {
		t.Errorf("W6 after the re-run: %s after %d sends, want still unknown after 1", e.State, e.Sends)
	}

	// Reconcile: the provider shows W1 at another amount, and a transfer
	// the ledger never made.
	f.edit(effect("W1").Key, func(tr *Transfer) { tr.Amount = 1001 })
	f.edit("LTFOREIGN", func(tr *Transfer) { tr.To, tr.Currency, tr.Amount, tr.Date = "W9", "CNY", 700, day.String() })
	_, err = runner(l, prov).Execute(ctx, key, pipeline.RunParams{}, pipeline.StageReconcile)
	if pipeline.KindOf(err) != pipeline.KindNeedsPerson {
		t.Fatalf("reconcile: want the mismatches for a person, got %v", err)
	}
	rows, err := l.DB().QueryContext(ctx, `SELECT category, subject FROM mismatches WHERE run_id = $1 ORDER BY seq`, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var c, s string
		if err := rows.Scan(&c, &s); err != nil {
			t.Fatal(err)
		}
		got = append(got, c+" "+s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := []string{pipeline.MismatchAmount + " " + effect("W1").Key, pipeline.MismatchMissingInLedger + " LTFOREIGN",
		pipeline.MismatchStatus + " " + effect("W6").Key} // unknown here, succeeded there: for the person W6 waits on
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("mismatches %v, want %v", got, want)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, context.Canceled) {
		return "cancelled"
	}
	return err.Error()
}
