package pipeline

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPlugComposesProviders checks what Plug makes of two providers: the
// pre-flights and upload parts in the providers' order, the distribute
// chains after the first step, the matchers, channels and money kinds of
// both.
func TestPlugComposesProviders(t *testing.T) {
	var (
		mu  sync.Mutex
		ran []string
	)
	step := func(name string, err error) StageFunc {
		return func(context.Context, *Run) (string, error) {
			mu.Lock()
			ran = append(ran, name)
			mu.Unlock()
			return name, err
		}
	}
	check := func(name string, err error) func(context.Context) error {
		return func(ctx context.Context) error { _, err := step(name, err)(ctx, nil); return err }
	}
	noMatch := func(context.Context, *Run) ([]Mismatch, error) { return nil, nil }
	refused := E(KindUsage, "", errors.New("refused")) // credentials: the run stops
	verifier := Provider{Name: "verifier", Settles: []Channel{"a"}, Preflight: check("verifier preflight", nil),
		Upload: step("verify", nil), Distribute: step("ask ahead", nil), Matchers: []Matcher{noMatch}}
	payer := Provider{Name: "payer", Settles: []Channel{"b", "c"}, Pays: []string{"share", "unfreeze"},
		Preflight: check("payer preflight", refused), Upload: step("file", nil), Distribute: step("pay", nil), Matchers: []Matcher{noMatch, noMatch}}
	p := Plug(step("channel check", nil), verifier, payer)

	if !slices.Equal(p.Pays, []string{"share", "unfreeze"}) || len(p.Matchers) != 3 ||
		len(p.Settles) != 3 || !p.Settles["a"] || !p.Settles["b"] || !p.Settles["c"] {
		t.Fatalf("pays %v, %d matchers, settles %v", p.Pays, len(p.Matchers), p.Settles)
	}
	ctx := context.Background()
	if err := p.Preflight(ctx); !errors.Is(err, refused) {
		t.Fatalf("preflight: %v, want the payer's refusal", err)
	}
	if _, err := p.Upload(ctx, &Run{}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Distribute(ctx, &Run{}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"verifier preflight", "payer preflight", "verify", "file", "channel check"}; !slices.Equal(ran[:5], want) {
		t.Fatalf("ran %v, want %v then the two chains", ran, want)
	}
	if chains := ran[5:]; len(chains) != 2 || !slices.Contains(chains, "ask ahead") || !slices.Contains(chains, "pay") {
		t.Fatalf("distribute chains ran %v", chains)
	}
}

// TestAProviderWhosePreflightFailsLeavesOnlyItsOwnWork: a provider's
// pre-flight that fails other than as configuration (no answer: the
// provider down at the start) stopped the whole run, every other
// provider's work of the date with it. Now Plug's pre-flight passes; that
// provider's upload, prepare and distribute parts do nothing and end with
// the failure as work left for the next run (ErrStillProcessing, of kind
// failed: exit 1), the others run; and the next pre-flight decides anew.
func TestAProviderWhosePreflightFailsLeavesOnlyItsOwnWork(t *testing.T) {
	var (
		mu  sync.Mutex
		ran []string
	)
	step := func(name string) StageFunc {
		return func(context.Context, *Run) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			ran = append(ran, name)
			return name, nil
		}
	}
	down := NoAnswer(errors.New("dial tcp: connection refused"))
	var silent error = down
	wallet := Provider{Name: "wallet", Settles: []Channel{"a"}, Preflight: func(context.Context) error { return silent },
		Upload: step("file"), Prepare: step("prepare"), Distribute: step("pay")}
	other := Provider{Name: "other", Settles: []Channel{"b"}, Preflight: func(context.Context) error { return nil },
		Upload: step("other file"), Distribute: step("other pay")}
	p := Plug(nil, wallet, other)
	ctx := context.Background()
	if err := p.Preflight(ctx); err != nil {
		t.Fatalf("preflight: %v, want nil: a provider not answering stops only its own work", err)
	}
	for _, stage := range []StageFunc{p.Upload, p.Distribute} {
		_, err := stage(ctx, &Run{})
		if !errors.Is(err, ErrStillProcessing) || !errors.Is(err, down) || KindOf(err) != KindFailed ||
			!strings.Contains(err.Error(), "wallet is not answering") {
			t.Errorf("%v: want the wallet's work left for the next run, naming it as not answering", err)
		}
	}
	slices.Sort(ran)
	if want := []string{"other file", "other pay"}; !slices.Equal(ran, want) {
		t.Errorf("ran %v, want %v: nothing of the wallet's", ran, want)
	}
	// It answers again: the next pre-flight lets its parts run.
	silent, ran = nil, nil
	if err := p.Preflight(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Upload(ctx, &Run{}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ran, "file") {
		t.Errorf("ran %v, want the wallet's upload part", ran)
	}
	// Refused credentials still stop the run.
	silent = E(KindUsage, "wallet", errors.New("signature refused"))
	if err := p.Preflight(ctx); KindOf(err) != KindUsage {
		t.Errorf("preflight: %v, want the refusal (exit 2)", err)
	}
}

// TestPlugRunsPrepareBesideTheUploads: a provider's Prepare part runs
// beside the upload parts, not after them: here the upload waits until
// the Prepare part has started (it would wait for ever were they run one
// after the other); both summaries are the stage's.
func TestPlugRunsPrepareBesideTheUploads(t *testing.T) {
	started := make(chan struct{})
	verifier := Provider{Name: "verifier", Upload: func(ctx context.Context, _ *Run) (string, error) {
		select {
		case <-started:
			return "verified", nil
		case <-time.After(30 * time.Second):
			return "", errors.New("the Prepare part did not start while the upload part ran")
		}
	}}
	checker := Provider{Name: "checker", Prepare: func(context.Context, *Run) (string, error) {
		close(started)
		return "checked", nil
	}}
	p := Plug(nil, verifier, checker)
	summary, err := p.Upload(context.Background(), &Run{})
	if err != nil || summary != "verified; checked" {
		t.Fatalf("upload: %q, %v", summary, err)
	}
	alone := Plug(nil, Provider{Name: "checker", Prepare: func(context.Context, *Run) (string, error) { return "checked", nil }})
	if summary, err := alone.Upload(context.Background(), &Run{}); err != nil || summary != "checked" {
		t.Fatalf("a Prepare part alone: %q, %v", summary, err)
	}
}

// TestBesideStopsTheHelpersWithMain: a helper runs while main does and is
// stopped once main is done, without failing the stage; a helper's error
// of its own is the stage's, after main has finished all the same.
func TestBesideStopsTheHelpersWithMain(t *testing.T) {
	helperStarted := make(chan struct{})
	helper := func(ctx context.Context, _ *Run) (string, error) {
		close(helperStarted)
		<-ctx.Done() // works until stopped
		return "helped", ctx.Err()
	}
	mainDone := false
	main := func(context.Context, *Run) (string, error) {
		<-helperStarted
		mainDone = true
		return "main", nil
	}
	summary, err := Beside(main, helper)(context.Background(), &Run{})
	if err != nil || summary != "main; helped" || !mainDone {
		t.Fatalf("%q, %v; want both summaries and no error", summary, err)
	}

	// A helper whose stop its database driver reports as an error of its
	// own (lib/pq's "canceling statement due to user request", 57014, not
	// context.Canceled): the stop all the same, not the stage's failure.
	driver := func(ctx context.Context, _ *Run) (string, error) {
		<-ctx.Done()
		return "", errors.New("pq: canceling statement due to user request")
	}
	quick := func(context.Context, *Run) (string, error) { return "main", nil }
	if summary, err := Beside(quick, driver)(context.Background(), &Run{}); err != nil || summary != "main" {
		t.Fatalf("%q, %v; want main's summary and no error", summary, err)
	}
	// A configuration error a helper ends with once stopped is still the
	// stage's.
	refused := func(ctx context.Context, _ *Run) (string, error) {
		<-ctx.Done()
		return "", Errorf(KindUsage, "credentials", "refused by the provider")
	}
	if _, err := Beside(quick, refused)(context.Background(), &Run{}); KindOf(err) != KindUsage {
		t.Fatalf("%v; want the helper's configuration error", err)
	}

	broken := errors.New("ledger down")
	failing := func(context.Context, *Run) (string, error) { return "", broken }
	slow := func(ctx context.Context, _ *Run) (string, error) {
		select {
		case <-ctx.Done():
			return "", errors.New("main was stopped by a helper's error")
		case <-time.After(50 * time.Millisecond):
			return "main", nil
		}
	}
	summary, err = Beside(slow, failing)(context.Background(), &Run{})
	if !errors.Is(err, broken) || summary != "main" {
		t.Fatalf("%q, %v; want main finished and the helper's error", summary, err)
	}
}
