package ledger_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

// TestRunStateNeverContradictsItsStages drives the Runner over the real
// ledger: a stage's error is no longer the run's last word once a later
// invocation gets past it; a run with every stage done is never "failed",
// even when a re-run's reconcile needs a person.
func TestRunStateNeverContradictsItsStages(t *testing.T) {
	t.Parallel()
	l, _ := open(t)
	ctx := context.Background()
	key := pipeline.RunKey{Date: day, Shard: pipeline.Whole}
	var uploadErr, reconcileErr error
	ok := func(context.Context, *pipeline.Run) (string, error) { return "ok", nil }
	r := &pipeline.Runner{Store: l, Repeat: map[pipeline.Stage]bool{pipeline.StageReconcile: true}, Stages: map[pipeline.Stage]pipeline.StageFunc{
		pipeline.StageExtract: ok, pipeline.StageTransform: ok, pipeline.StageDistribute: ok,
		pipeline.StageUpload:    func(context.Context, *pipeline.Run) (string, error) { return "", uploadErr },
		pipeline.StageReconcile: func(context.Context, *pipeline.Run) (string, error) { return "", reconcileErr },
	}}
	state := func(when, wantState, wantErr string) {
		t.Helper()
		run, err := l.GetRun(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if string(run.State) != wantState || !strings.HasPrefix(run.LastError, wantErr) || (wantErr == "") != (run.LastError == "") {
			t.Errorf("%s: state %s, last error %q; want %s, %q", when, run.State, run.LastError, wantState, wantErr)
		}
	}

	uploadErr = errors.New("sftp: connection refused")
	if _, err := r.Execute(ctx, key, pipeline.RunParams{TimeZone: "UTC"}, pipeline.StageReconcile); err == nil {
		t.Fatal("the upload stage's error was not returned")
	}
	state("upload failed", "failed", "stage upload: sftp: connection refused")

	// The next invocation gets past upload but stops before the end: the
	// upload error is gone.
	uploadErr = nil
	if _, err := r.Execute(ctx, key, pipeline.RunParams{TimeZone: "UTC"}, pipeline.StageDistribute); err != nil {
		t.Fatal(err)
	}
	state("stopped after distribute", "running", "")

	if _, err := r.Execute(ctx, key, pipeline.RunParams{TimeZone: "UTC"}, pipeline.StageReconcile); err != nil {
		t.Fatal(err)
	}
	state("finished", "done", "")

	// A re-run whose reconcile needs a person: every stage is done, so the
	// run stays done, with a note of what needs a person.
	reconcileErr = pipeline.E(pipeline.KindNeedsPerson, "", errors.New("1 unexpected mismatch"))
	if _, err := r.Execute(ctx, key, pipeline.RunParams{TimeZone: "UTC"}, pipeline.StageReconcile); pipeline.KindOf(err) != pipeline.KindNeedsPerson {
		t.Fatalf("re-run: %v, want needs a person", err)
	}
	state("re-run needs a person", "done", "needs a person: stage reconcile: 1 unexpected mismatch")
	if s, err := l.DateStatus(ctx, day); err != nil || s.Runs[0].LastError != "" || s.Runs[0].NeedsPerson != "stage reconcile: 1 unexpected mismatch" {
		t.Errorf("status of a done run that needs a person: %+v %v", s.Runs, err)
	}

	reconcileErr = nil
	if _, err := r.Execute(ctx, key, pipeline.RunParams{TimeZone: "UTC"}, pipeline.StageReconcile); err != nil {
		t.Fatal(err)
	}
	state("re-run clean", "done", "")

	// A stage done by an attempt that then died keeps no error of its own.
	key2 := pipeline.RunKey{Date: day.AddDays(1), Shard: pipeline.Whole}
	run, _, err := l.OpenRun(ctx, key2, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.FinishRun(ctx, run.ID, pipeline.RunFailed, "stage upload: timeout"); err != nil {
		t.Fatal(err)
	}
	if err := l.CompleteStage(ctx, run.ID, pipeline.StageTransform); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.GetRun(ctx, key2); got.LastError == "" {
		t.Error("completing transform cleared upload's error")
	}
	if err := l.CompleteStage(ctx, run.ID, pipeline.StageUpload); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.GetRun(ctx, key2); got.LastError != "" {
		t.Errorf("upload done, its error still recorded: %q", got.LastError)
	}

	// status says whether a process holds the run now: a run recorded as
	// running whose lock nobody holds was stopped.
	if s, err := l.DateStatus(ctx, key2.Date); err != nil || s.Runs[0].Active {
		t.Errorf("nobody holds the run, status says active: %+v %v", s.Runs, err)
	}
	release, err := l.Lock(ctx, key2)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := l.DateStatus(ctx, key2.Date); err != nil || !s.Runs[0].Active {
		t.Errorf("the run's lock is held, status says not active: %+v %v", s.Runs, err)
	}
	release()
	if s, err := l.DateStatus(ctx, key2.Date); err != nil || s.Runs[0].Active {
		t.Errorf("released, status still says active: %+v %v", s.Runs, err)
	}
}
